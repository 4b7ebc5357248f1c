package rules

import "testing"

func TestBundledRuleTests(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	res := RunTests(s)
	if len(res) == 0 {
		t.Fatal("bundled set has no tests")
	}
	tested := map[string]bool{}
	for _, r := range res {
		tested[r.RuleID] = true
		if !r.Passed {
			t.Errorf("%s:%d %s / %s: %s", r.File, r.Line, r.RuleID, r.Name, r.Message)
		}
	}
	for _, ri := range s.Rules() {
		if !tested[ri.ID] {
			t.Errorf("rule %s has no inline test", ri.ID)
		}
	}
}
