package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

func compileOne(t *testing.T, yaml string) *Set {
	t.Helper()
	s, err := Compile([]File{{Name: "t.yaml", Data: []byte(yaml)}}, CompileOptions{Features: features.DefaultCatalog().Defs()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ruleYAML(id, when, effect, mode string) string {
	return fmt.Sprintf("  - id: %s\n    when: '%s'\n    %s\n    mode: %s\n    reason: {en: \"%s {{features.login_failures_account_10m}}\", zh: \"中 %s\"}\n", id, when, effect, mode, id, id)
}

type mapLists map[string][]string

func (m mapLists) Contains(l, v string) bool {
	for _, x := range m[l] {
		if x == v {
			return true
		}
	}
	return false
}
func (m mapLists) AnyIn(l string, vs []string) bool {
	for _, v := range vs {
		if m.Contains(l, v) {
			return true
		}
	}
	return false
}

func TestPrecedence(t *testing.T) {
	defs := features.DefaultCatalog().Defs()
	ev := &event.Event{Type: event.Login, TypeName: "LOGIN", AccountID: "acct", Login: event.LoginDetail{Success: true},
		Network: event.Network{IP: "10.1.2.3"}, Device: event.Device{InstalledPackages: []string{"com.lexa.fakegps"}}}
	fv := vec(defs, map[string]features.Value{"login_failures_account_10m": features.IntValue(7)})
	cases := []struct {
		name    string
		rules   string
		thr     string
		outcome Outcome
		score   int32
		fired   string
		shadow  string
	}{
		{"nothing fires", ruleYAML("a", "login.success == false", "score: 50", "active"), "", Allow, 0, "", ""},
		{"score below challenge", ruleYAML("a", "true", "score: 29", "active"), "", Allow, 29, "a", ""},
		{"scores add up to review", ruleYAML("a", "true", "score: 30", "active") + ruleYAML("b", "login.success", "score: 35", "active"), "", Review, 65, "a b", ""},
		{"score capped at 100", ruleYAML("a", "true", "score: 90", "active") + ruleYAML("b", "true", "score: 90", "active"), "", Deny, 100, "a b", ""},
		{"highest action wins", ruleYAML("a", "true", "action: challenge", "active") + ruleYAML("b", "true", "action: review", "active"), "", Review, 0, "a b", ""},
		{"score beats lower action", ruleYAML("a", "true", "action: challenge", "active") + ruleYAML("b", "true", "score: 85", "active"), "", Deny, 85, "a b", ""},
		{"allow overrides deny", ruleYAML("a", "true", "action: deny", "active") + ruleYAML("b", `in_list("allowed_accounts", account_id)`, "action: allow", "active"), "", Allow, 0, "a b", ""},
		{"shadow never acts", ruleYAML("a", "true", "action: deny", "shadow") + ruleYAML("b", "true", "score: 10", "active"), "", Allow, 10, "b", "a"},
		{"disabled never runs", ruleYAML("a", "true", "action: deny", "disabled"), "", Allow, 0, "", ""},
		{"custom thresholds", ruleYAML("a", "true", "score: 20", "active"), "thresholds: {challenge: 10, review: 20, deny: 90}\n", Review, 20, "a", ""},
		{"functions", ruleYAML("a", `cidr_contains("10.0.0.0/8", network.ip) && any_in_list("cheat_apps", device.installed_packages) && distance_km(39.9, 116.4, 31.2, 121.5) > 1000`, "action: review", "active"), "", Review, 0, "a", ""},
		{"absent feature does not fire", ruleYAML("a", "features.km_from_last_location_account < 1000", "action: deny", "active"), "", Allow, 0, "", ""},
		{"absent feature negated does not fire", ruleYAML("a", "!features.account_device_seen_before", "action: deny", "active"), "", Allow, 0, "", ""},
		{"has() sees absence", ruleYAML("a", "!has(features.km_from_last_location_account)", "action: challenge", "active"), "", Challenge, 0, "a", ""},
		{"short circuit past absent", ruleYAML("a", "!has(features.km_from_last_location_account) || features.km_from_last_location_account > 5", "score: 40", "active"), "", Challenge, 40, "a", ""},
		{"applies_to filters", "  - id: a\n    applies_to: [PAYMENT]\n    when: 'true'\n    action: deny\n    reason: {en: x, zh: x}\n", "", Allow, 0, "", ""},
	}
	lists := mapLists{"allowed_accounts": {"acct"}, "cheat_apps": {"com.lexa.fakegps"}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := compileOne(t, "rules:\n"+c.rules+c.thr)
			res, err := s.Evaluate(ev, fv, lists)
			if err != nil {
				t.Fatal(err)
			}
			ids := func(rs []Reason) string {
				var out []string
				for _, r := range rs {
					out = append(out, r.RuleID)
				}
				return strings.Join(out, " ")
			}
			if res.Outcome != c.outcome || res.Score != c.score || ids(res.Reasons) != c.fired || ids(res.Shadow) != c.shadow || res.Version != s.Version() {
				t.Fatalf("got %s score %d fired [%s] shadow [%s] version %s", res.Outcome, res.Score, ids(res.Reasons), ids(res.Shadow), res.Version)
			}
		})
	}
}

func TestReasonsAndStats(t *testing.T) {
	defs := features.DefaultCatalog().Defs()
	s := compileOne(t, `rules:
  - id: travel
    applies_to: [LOGIN]
    when: features.km_from_last_location_account > 500
    score: 50
    reason:
      en: "{{features.km_from_last_location_account}} km from {{login.method}}; failures {{features.login_failures_account_10m}}"
      zh: "距离 {{features.km_from_last_location_account}} 公里"
  - id: never
    applies_to: [PAYMENT]
    when: payment.amount_minor > 0
    score: 10
    reason: {en: x, zh: x}
`)
	ev := &event.Event{Type: event.Login, TypeName: "LOGIN", Login: event.LoginDetail{Method: "password"}}
	fv := vec(defs, map[string]features.Value{"km_from_last_location_account": features.FloatValue(1234.56)})
	for i := range 10 {
		if i%2 == 1 {
			fv = vec(defs, nil)
		}
		res, err := s.Evaluate(ev, fv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			r := res.Reasons[0]
			if r.MessageEN != "1234.6 km from password; failures unknown" || r.MessageZH != "距离 1234.6 公里" || r.Action != "score" || r.Score != 50 || r.RuleVersion != 1 || !strings.Contains(r.Expression, "> 500") {
				t.Fatalf("reason %+v", r)
			}
		}
		fv = vec(defs, map[string]features.Value{"km_from_last_location_account": features.FloatValue(1234.56)})
	}
	st := s.Stats()
	if st[0].RuleID != "travel" || st[0].Evaluations != 10 || st[0].Hits != 5 || st[0].HitRate != 0.5 {
		t.Fatalf("stats %+v", st[0])
	}
	if st[1].Evaluations != 0 || st[1].Hits != 0 {
		t.Fatalf("stats %+v", st[1])
	}
}

func TestRuntimeErrorAndVectorMismatch(t *testing.T) {
	defs := features.DefaultCatalog().Defs()
	s := compileOne(t, "rules:\n"+ruleYAML("boom", `attributes["k"] != "" && int(attributes["k"]) > 3`, "score: 10", "active"))
	ev := &event.Event{Type: event.Login, TypeName: "LOGIN", Attributes: map[string]string{"k": "not a number"}}
	_, err := s.Evaluate(ev, vec(defs, nil), nil)
	var re *RuntimeError
	if !errors.As(err, &re) || re.RuleID != "boom" || !errors.Is(err, ErrRuntime) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Evaluate(ev, features.Vector{}, nil); err == nil {
		t.Fatal("a misaligned vector was accepted")
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	s := compileOne(t, `rules:
  - id: r
    applies_to: [LOGIN]
    when: features.login_failures_account_10m >= 5
    score: 40
    reason: {en: x, zh: x}
    tests:
      - name: passes
        features: {login_failures_account_10m: 5}
        expect: {fired: true, outcome: CHALLENGE, score: 40}
      - name: wrong expectation
        features: {login_failures_account_10m: 4}
        expect: {fired: true, outcome: DENY}
`)
	res := RunTests(s)
	if len(res) != 2 || !res[0].Passed || res[1].Passed || res[1].Message != "fired = false, want true; outcome = ALLOW, want DENY" || res[1].Line != 11 {
		t.Fatalf("results %+v", res)
	}
}
