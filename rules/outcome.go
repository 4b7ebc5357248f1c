package rules

// Outcome is a decision's answer; the numbers match risk.v1.Outcome.
type Outcome int32

// Outcomes, in increasing severity.
const (
	Allow     Outcome = 1
	Challenge Outcome = 2
	Review    Outcome = 3
	Deny      Outcome = 4
)

var outcomeNames = [...]string{"UNSPECIFIED", "ALLOW", "CHALLENGE", "REVIEW", "DENY"}

func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "UNKNOWN"
}

// ParseOutcome parses ALLOW, CHALLENGE, REVIEW or DENY (or OUTCOME_...).
func ParseOutcome(s string) (Outcome, bool) {
	if len(s) > 8 && s[:8] == "OUTCOME_" {
		s = s[8:]
	}
	for o := Allow; o <= Deny; o++ {
		if outcomeNames[o] == s {
			return o, true
		}
	}
	return 0, false
}

var actionOutcome = map[string]Outcome{"allow": Allow, "challenge": Challenge, "review": Review, "deny": Deny}

// scoreOutcome maps a summed score to an outcome under t.
func (t Thresholds) outcome(score int32) Outcome {
	switch {
	case score >= t.Deny:
		return Deny
	case score >= t.Review:
		return Review
	case score >= t.Challenge:
		return Challenge
	}
	return Allow
}

// Reason is one fired rule, as the decision records it.
type Reason struct {
	RuleID      string
	RuleVersion int32
	Action      string // allow, challenge, review, deny, or "score"
	Score       int32
	MessageEN   string
	MessageZH   string
	Expression  string
}

// Result is what a Set says about one event.
type Result struct {
	Outcome Outcome
	Score   int32    // sum of fired active score rules, capped at 100
	Reasons []Reason // fired active rules, in set order
	Shadow  []Reason // fired shadow rules, never acted on
	Version string   // the Set that produced this result
}
