package rules_test

import (
	"fmt"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

func Example() {
	cat := features.DefaultCatalog()
	set, err := rules.Compile([]rules.File{{Name: "ato.yaml", Data: []byte(`
rules:
  - id: ato.new_device_after_failures
    applies_to: [LOGIN]
    when: login.success && features.login_failures_account_10m >= 5 && !features.account_device_seen_before
    action: challenge
    reason:
      en: "Signed in from a new device after {{features.login_failures_account_10m}} failed attempts"
      zh: "在新设备上登录，此前有 {{features.login_failures_account_10m}} 次失败尝试"
`)}}, rules.CompileOptions{Features: cat.Defs(), Version: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fv := make(features.Vector, cat.Len())
	for i, d := range cat.Defs() {
		fv[i] = features.Absent(d.Kind)
	}
	fv[cat.Index("login_failures_account_10m")] = features.IntValue(6)
	fv[cat.Index("account_device_seen_before")] = features.BoolValue(false)
	ev := &event.Event{Type: event.Login, TypeName: "LOGIN", Login: event.LoginDetail{Success: true}}
	res, _ := set.Evaluate(ev, fv, nil)
	fmt.Println(res.Outcome, res.Version)
	fmt.Println(res.Reasons[0].MessageEN)
	fmt.Println(res.Reasons[0].MessageZH)

	// A typo is caught before the rule can run.
	_, err = rules.Compile([]rules.File{{Name: "typo.yaml", Data: []byte(`
rules:
  - id: typo
    when: features.login_failure_account_10m > 1
    score: 10
    reason: {en: x, zh: x}
`)}}, rules.CompileOptions{Features: cat.Defs()})
	fmt.Println(err)
	// Output:
	// CHALLENGE example
	// Signed in from a new device after 6 failed attempts
	// 在新设备上登录，此前有 6 次失败尝试
	// typo.yaml:4:11: rule typo: unknown feature "features.login_failure_account_10m" (did you mean "login_failures_account_10m"?)
	//  |     when: features.login_failure_account_10m > 1
	//  | ..........^
}
