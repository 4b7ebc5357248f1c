package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
)

// The access audit. Every call that passed authentication is recorded
// (who: role and credential name, or the subject's account as a pseudonym;
// what: the procedure and the ids the request names; when; from where: the
// peer address, pseudonymized for subjects; and the result code) unless the
// procedure table below exempts it. So a new service is audited from its
// first call. Exempt are the service role's hot path (Evaluate, Ingest):
// they are recorded as decisions and events already, and auditing each
// would double the writes of the busiest calls.
//
// Account ids in the audit are pseudonymized in a domain of their own
// ("audit_account"), so the audit can be searched by account (QueryAudit
// pseudonymizes the query the same way) but shares no pseudonym with the
// data an erasure removes: erasing a subject leaves the record of who read
// their data, as the law asks, and no link to the erased data.
var auditExempt = map[string]bool{
	riskv1connect.RiskServiceEvaluateProcedure: true,
	riskv1connect.RiskServiceIngestProcedure:   true,
}

// Pseudonym domains of the audit.
const (
	auditKindAccount = "audit_account"
	auditKindIP      = "audit_ip"
)

type auditInterceptor struct{ eng *engine.Engine }

func newAuditInterceptor(eng *engine.Engine) *auditInterceptor { return &auditInterceptor{eng: eng} }

// auditActorQuery turns a QueryAudit actor ("subject:ACCOUNT") into its
// stored form.
func auditActorQuery(eng *engine.Engine, actor string) string {
	if acct, ok := strings.CutPrefix(actor, "subject:"); ok && acct != "" {
		return "subject:" + eng.Normalizer().Pseudonym(auditKindAccount, acct)
	}
	return actor
}

func (a *auditInterceptor) record(ctx context.Context, procedure, peer string, msg any, err error) {
	if auditExempt[procedure] {
		return
	}
	p := principal(ctx)
	if p.Role == auth.RoleNone {
		return // refused before it reached a service
	}
	norm := a.eng.Normalizer()
	rec := &riskv1.AuditRecord{Role: p.Role.String(), Actor: p.Name, Procedure: procedure, Peer: peer, Code: "ok"}
	if p.Role == auth.RoleSubject {
		rec.Actor = "subject:" + norm.Pseudonym(auditKindAccount, p.AccountID)
		host, _, serr := net.SplitHostPort(peer)
		if serr != nil {
			host = peer
		}
		rec.Peer = "ip:" + norm.Pseudonym(auditKindIP, host)
	}
	if err != nil {
		rec.Code = connect.CodeOf(err).String()
	}
	if m, ok := msg.(proto.Message); ok && m != nil {
		rec.Targets = auditTargets(m.ProtoReflect(), func(s string) string { return norm.Pseudonym(auditKindAccount, s) })
	}
	a.eng.Audit(rec)
}

// auditTargets names what a request points at: its top-level string fields
// that are ids or names (decision_id, appeal_id, rule_id, name ...), with
// account ids pseudonymized.
func auditTargets(m protoreflect.Message, pseud func(string) string) []string {
	var out []string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
			return true
		}
		name := string(fd.Name())
		if !strings.HasSuffix(name, "_id") && name != "name" && name != "list" && name != "version" {
			return true
		}
		s := v.String()
		if s == "" {
			return true
		}
		label := strings.TrimSuffix(name, "_id")
		if strings.Contains(name, "account") {
			s = pseud(s)
		} else if len(s) > 128 {
			s = s[:128]
		}
		out = append(out, label+":"+s)
		if len(out) >= 8 {
			return false
		}
		return true
	})
	return out
}

func (a *auditInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		a.record(ctx, req.Spec().Procedure, req.Peer().Addr, req.Any(), err)
		return res, err
	}
}

func (a *auditInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *auditInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		a.record(ctx, conn.Spec().Procedure, conn.Peer().Addr, nil, err)
		return err
	}
}

// auditStart records that riskd started, with digests of its settings and
// credentials: those change outside the API (flags, environment, files),
// so a change shows in the audit as a new digest at the next start.
func auditStart(eng *engine.Engine, c Config, creds auth.Credentials, oldKeys int) {
	digest := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprintf("%+v", v))
		}
		h := sha256.Sum256(b)
		return hex.EncodeToString(h[:8])
	}
	c.PseudonymKey = "" // in the credentials digest's place: never digest a secret alone
	host, _ := os.Hostname()
	eng.Audit(&riskv1.AuditRecord{Role: "operator", Actor: "riskd", Procedure: "riskd/start", Peer: host, Code: "ok",
		Targets: []string{"settings:" + digest(c), "credentials:" + digest(creds), "pseudonym_keys:" + strconv.Itoa(1+oldKeys)}})
}
