package auth

import "strings"

// Role is what a caller may do.
type Role uint8

// Roles. The zero Role is no role and is allowed nothing.
const (
	RoleNone    Role = iota
	RoleService      // back ends: Evaluate, Ingest
	RoleAnalyst      // rules, lists, labels, decisions, appeals
	RoleAdmin        // everything, including data rights
	RoleSubject      // an end user: their own decisions and appeals
)

var roleNames = [...]string{"none", "service", "analyst", "admin", "subject"}

// String returns the role's name: "service", "analyst", "admin", "subject".
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "unknown"
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, bool) {
	for r := RoleService; int(r) < len(roleNames); r++ {
		if roleNames[r] == s {
			return r, true
		}
	}
	return RoleNone, false
}

// Principal is an authenticated caller.
type Principal struct {
	Role Role
	// Name names the credential: "service", "analyst", "admin" or "subject".
	Name string
	// AccountID is the subject's account id (the JWT's sub); empty for the
	// other roles.
	AccountID string
}

// The policy: procedures, or whole services (a key ending in "/"), and the
// roles allowed to call them besides admin. Admin may call every procedure
// of the risk.v1 package, including services added later (data rights).
// Anything else is denied: health and reflection are served unauthenticated
// by the server and never reach Allowed.
var policy = map[string][]Role{
	"/risk.v1.RiskService/": {RoleService},

	// Decisions and appeals: analysts everything (verify, explain ...),
	// subjects only the listed procedures, for their own account.
	"/risk.v1.DecisionService/":              {RoleAnalyst},
	"/risk.v1.DecisionService/GetDecision":   {RoleAnalyst, RoleSubject},
	"/risk.v1.DecisionService/ListDecisions": {RoleAnalyst, RoleSubject},

	"/risk.v1.AppealService/":              {RoleAnalyst},
	"/risk.v1.AppealService/FileAppeal":    {RoleSubject},
	"/risk.v1.AppealService/GetAppeal":     {RoleAnalyst, RoleSubject},
	"/risk.v1.AppealService/ListAppeals":   {RoleAnalyst, RoleSubject},
	"/risk.v1.AppealService/StartReview":   {RoleAnalyst},
	"/risk.v1.AppealService/ResolveAppeal": {RoleAnalyst},

	// The decision log's audit calls: analysts; subjects explain and export
	// their own decisions (admins any account's).
	"/risk.v1.DecisionLogService/":                {RoleAnalyst},
	"/risk.v1.DecisionLogService/ExplainDecision": {RoleAnalyst, RoleSubject},
	"/risk.v1.DecisionLogService/ExportSubject":   {RoleSubject},

	"/risk.v1.RulesService/": {RoleAnalyst},
	"/risk.v1.ListsService/": {RoleAnalyst},
	// The mobile app's back end fetches the exported bloom filter.
	"/risk.v1.ListsService/ExportList": {RoleService, RoleAnalyst},
	"/risk.v1.LabelsService/":          {RoleAnalyst},
	"/risk.v1.LabelsService/PutLabel":  {RoleService, RoleAnalyst},
	"/risk.v1.FeaturesService/":        {RoleAnalyst},
}

// adminScope is the procedure prefix admin may call.
const adminScope = "/risk.v1."

// Allowed reports whether role may call procedure (a Connect procedure name,
// "/risk.v1.RiskService/Evaluate").
func Allowed(role Role, procedure string) bool {
	if role == RoleNone || role > RoleSubject {
		return false
	}
	slash := strings.LastIndexByte(procedure, '/')
	if slash <= 0 || slash == len(procedure)-1 || procedure[0] != '/' {
		return false
	}
	if role == RoleAdmin {
		return strings.HasPrefix(procedure, adminScope)
	}
	roles, ok := policy[procedure]
	if !ok {
		roles = policy[procedure[:slash+1]]
	}
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}
