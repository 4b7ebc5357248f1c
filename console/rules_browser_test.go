package console_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/testserver"
)

func emulatorLogin(id, account string, at time.Time) *riskv1.Event {
	ev := login(id, account, at)
	ev.Device.Emulator = true
	ev.Device.DeviceId = "emu-" + account
	return ev
}

// newRule is a rule an analyst adds, in shadow, with its when-line last so
// that the test can type it.
const newRule = `
  - id: ato.emulator_login
    description: Successful sign-in from an emulator
    applies_to: [LOGIN]
    action: review
    mode: shadow
    reason:
      en: "You signed in from an emulator, which fraud tools use"
      zh: "您通过模拟器登录，此类工具常被用于欺诈"
    owner: ato-team
    tests:
      - name: emulator sign-in
        event: {type: LOGIN, login: {success: true}, device: {emulator: true}}
        expect: {fired: true}
      - name: phone
        event: {type: LOGIN, login: {success: true}, device: {emulator: false}}
        expect: {fired: false}
    when: login.success && device.emulat`

func ruleMode(t *testing.T, s *testserver.Server, id string) riskv1.RuleMode {
	t.Helper()
	res, err := rulesClient(s, s.Creds.Analyst).GetVersion(context.Background(), connect.NewRequest(&riskv1.GetVersionRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Msg.GetRules() {
		if r.GetId() == id {
			return r.GetMode()
		}
	}
	return riskv1.RuleMode_RULE_MODE_UNSPECIFIED
}

// An analyst adds a rule with a typo and sees the error at its line as they
// type, fixes it, sees the inline tests pass, backtests it against recorded
// traffic, publishes it in shadow, promotes it; a decision it makes cannot
// then be judged by the same analyst (independence), only by another.
func TestAnalystEditsBacktestsAndPublishesARule(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	now := time.Now()
	var before *riskv1.Decision
	for i, acct := range []string{"u1", "u2", "u3"} {
		d := s.Evaluate(emulatorLogin("emu-"+acct, acct, now.Add(-time.Duration(i+1)*time.Hour)))
		if before == nil {
			before = d
		}
		s.Evaluate(login("ok-"+acct, acct+"-x", now.Add(-time.Duration(i+1)*time.Hour)))
	}
	b := newBrowser(t)
	desk := b.tab(1440, 900, "en-US")
	signIn(t, desk, s, s.Creds.Analyst)
	run(t, desk, "open the editor",
		chromedp.Click(`#nav-rules`, chromedp.ByQuery),
		chromedp.WaitVisible(`#compile-ok`, chromedp.ByQuery),
		chromedp.Click(`#file-tabs [data-file="attendance.yaml"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#compile-ok`, chromedp.ByQuery))

	// Paste the rule up to the last word of its condition, then type.
	var line int
	run(t, desk, "paste a rule",
		chromedp.Evaluate(`(() => { const t = document.querySelector('#rule-text');
			t.value = t.value.replace(/\s*$/, '\n') + `+"`"+strings.TrimPrefix(newRule, "\n")+"`"+`;
			t.dispatchEvent(new Event('input')); t.focus(); t.setSelectionRange(t.value.length, t.value.length);
			return t.value.split('\n').length; })()`, &line),
		chromedp.SendKeys(`#rule-text`, "er", chromedp.ByQuery),
		chromedp.WaitVisible(`#compile-bad`, chromedp.ByQuery),
		chromedp.WaitVisible(`#gutter div.err`, chromedp.ByQuery))
	var marked []int
	run(t, desk, "marked lines", chromedp.Evaluate(`[...document.querySelectorAll('#gutter div.err')].map(d => +d.dataset.line)`, &marked))
	if len(marked) != 1 || marked[0] != line {
		t.Errorf("marked lines %v, want [%d] (the when-line)", marked, line)
	}
	problem := textOf(t, desk, "#problems li")
	if !strings.Contains(problem, "attendance.yaml:") || !strings.Contains(problem, "device.emulator") {
		t.Errorf("problem %q: want the place and the suggestion", problem)
	}
	screenshot(t, desk, "console-rule-error")

	run(t, desk, "fix the typo",
		chromedp.SendKeys(`#rule-text`, "\b\bor", chromedp.ByQuery),
		chromedp.WaitVisible(`#compile-ok`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`#gutter div.err`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tests-summary`, chromedp.ByQuery))
	// The bundled rules' own tests are theirs to keep green; the new rule's
	// two must pass.
	if got := textOf(t, desk, "#test-results"); !strings.Contains(got, "passed") || strings.Contains(got, "ato.emulator_login") {
		t.Errorf("inline tests: %q", got)
	}

	run(t, desk, "backtest",
		chromedp.Click(`#backtest`, chromedp.ByQuery),
		chromedp.WaitVisible(`#backtest-report`, chromedp.ByQuery))
	report := textOf(t, desk, "#backtest-report")
	if !strings.Contains(report, "ato.emulator_login") {
		t.Errorf("backtest report lacks the new rule: %q", report)
	}
	var hits string
	run(t, desk, "candidate hits", chromedp.Evaluate(`[...document.querySelectorAll('#backtest-rules tr')].find(r => r.textContent.includes('ato.emulator_login')).children[3].textContent`, &hits))
	if hits != "3" {
		t.Errorf("candidate hits of the new rule %q, want 3 (three emulator logins recorded)", hits)
	}
	screenshot(t, desk, "console-rule-backtest")

	run(t, desk, "publish in shadow",
		chromedp.SendKeys(`#publish-note`, "ATO: watch emulator sign-ins", chromedp.ByQuery),
		chromedp.Click(`#publish`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-yes`, chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#published`, chromedp.ByQuery))
	if m := ruleMode(t, s, "ato.emulator_login"); m != riskv1.RuleMode_RULE_MODE_SHADOW {
		t.Fatalf("live mode of the new rule %v, want shadow", m)
	}
	// In shadow it is logged, not acted on.
	d := s.Evaluate(emulatorLogin("emu-shadow", "u4", time.Now()))
	if len(d.GetShadowReasons()) == 0 || d.GetOutcome() == riskv1.Outcome_OUTCOME_REVIEW {
		t.Errorf("shadow rule: outcome %v, shadow reasons %v", d.GetOutcome(), d.GetShadowReasons())
	}

	// Versions: the new one is live, with the added lines in its diff.
	run(t, desk, "versions",
		chromedp.Click(`#file-tabs`, chromedp.ByQuery),
		chromedp.Navigate(s.URL+"/console/#/rules/versions"),
		chromedp.WaitVisible(`#version-diff .diff .add`, chromedp.ByQuery))
	if got := textOf(t, desk, "#version-diff"); !strings.Contains(got, "+   - id: ato.emulator_login") {
		t.Errorf("version diff: %q", got)
	}
	screenshot(t, desk, "console-rule-versions")
	run(t, desk, "promote to active",
		chromedp.Click(`#live-modes tr[data-rule="ato.emulator_login"] button[data-set-mode=RULE_MODE_ACTIVE]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live-modes tr[data-rule="ato.emulator_login"] .badge[data-mode=RULE_MODE_ACTIVE]`, chromedp.ByQuery))
	if m := ruleMode(t, s, "ato.emulator_login"); m != riskv1.RuleMode_RULE_MODE_ACTIVE {
		t.Fatalf("after promotion: %v", m)
	}

	// A decision by the analyst's own rule, appealed: the analyst may not
	// resolve it, and the console says why.
	d = s.Evaluate(emulatorLogin("emu-active", "u5", time.Now()))
	if d.GetOutcome() != riskv1.Outcome_OUTCOME_REVIEW {
		t.Fatalf("active rule: outcome %v", d.GetOutcome())
	}
	res, err := appealsClient(s, s.SubjectToken("u5")).FileAppeal(context.Background(), connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: d.GetDecisionId(), Statement: "It was me, testing our app in an emulator."}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, desk, "try to resolve",
		chromedp.Navigate(s.URL+"/console/#/appeals?appeal="+res.Msg.GetAppeal().GetAppealId()),
		chromedp.WaitVisible(`#resolve-form`, chromedp.ByQuery),
		chromedp.SendKeys(`#r-reason`, "Emulators are not allowed.", chromedp.ByQuery),
		chromedp.Click(`#resolve`, chromedp.ByQuery),
		chromedp.WaitVisible(`#resolve-msg [data-independence=true]`, chromedp.ByQuery))
	screenshot(t, desk, "console-independence")
	// The admin may.
	if _, err := appealsClient(s, s.Creds.Admin).ResolveAppeal(context.Background(), connect.NewRequest(&riskv1.ResolveAppealRequest{
		AppealId: res.Msg.GetAppeal().GetAppealId(), Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "Emulators are not allowed."})); err != nil {
		t.Errorf("admin resolve: %v", err)
	}

	// What if the emulator sign-in before the rule had met today's rules?
	run(t, desk, "what-if",
		chromedp.Navigate(s.URL+"/console/#/decisions?account=u1&id="+before.GetDecisionId()),
		chromedp.WaitVisible(`#whatif-version`, chromedp.ByQuery),
		chromedp.SendKeys(`#whatif-version`, "v3", chromedp.ByQuery),
		chromedp.Click(`#whatif`, chromedp.ByQuery),
		chromedp.WaitVisible(`#replay-diff`, chromedp.ByQuery))
	if got := textOf(t, desk, "#replay-out"); !strings.Contains(got, "v3 would decide differently") || !strings.Contains(got, "ato.emulator_login") {
		t.Errorf("what-if v3: %q", got)
	}

	// Roll back to the bundled set.
	run(t, desk, "roll back",
		chromedp.Navigate(s.URL+"/console/#/rules/versions"),
		chromedp.WaitVisible(`[data-rollback=v1]`, chromedp.ByQuery),
		chromedp.Click(`[data-rollback=v1]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-yes`, chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#versions-table tr[data-version=v1] .badge`, chromedp.ByQuery))
	vs, err := rulesClient(s, s.Creds.Analyst).ListVersions(context.Background(), connect.NewRequest(&riskv1.ListVersionsRequest{}))
	if err != nil || vs.Msg.GetLiveVersion() != "v1" {
		t.Errorf("live after rollback: %v %v", vs.Msg.GetLiveVersion(), err)
	}
	if m := ruleMode(t, s, "ato.emulator_login"); m != riskv1.RuleMode_RULE_MODE_UNSPECIFIED {
		t.Errorf("the rolled-back rule is still live: %v", m)
	}
}

// Lists: create one, add, bulk load from a file, remove.
func TestAnalystManagesLists(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	b := newBrowser(t)
	desk := b.tab(1440, 900, "en-US")
	signIn(t, desk, s, s.Creds.Analyst)
	file := filepath.Join(t.TempDir(), "cheat.txt")
	if err := os.WriteFile(file, []byte("# cheat apps\ncom.fake.gps\ncom.virtual.location\ncom.auto.clicker\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, desk, "create a list",
		chromedp.Click(`#nav-lists`, chromedp.ByQuery),
		chromedp.WaitVisible(`#create-list`, chromedp.ByQuery),
		chromedp.SendKeys(`#new-name`, "cheat_apps_extra", chromedp.ByQuery),
		chromedp.SendKeys(`#new-desc`, "Location spoofers seen in attendance fraud", chromedp.ByQuery),
		chromedp.Click(`#create-list button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#add-values`, chromedp.ByQuery),
		chromedp.SendKeys(`#add-values`, "com.fake.gps\ncom.mock.locations", chromedp.ByQuery),
		chromedp.Click(`#add-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#entries tr[data-value="com.mock.locations"]`, chromedp.ByQuery),
		chromedp.SetUploadFiles(`#bulk-file`, []string{file}, chromedp.ByQuery),
		chromedp.Click(`#bulk-load`, chromedp.ByQuery),
		chromedp.WaitVisible(`#bulk-ok`, chromedp.ByQuery),
		chromedp.WaitVisible(`#entries tr[data-value="com.auto.clicker"]`, chromedp.ByQuery))
	var values []string
	run(t, desk, "entries", chromedp.Evaluate(`[...document.querySelectorAll('#entries tr[data-value]')].map(r => r.dataset.value)`, &values))
	if strings.Join(values, ",") != "com.auto.clicker,com.fake.gps,com.mock.locations,com.virtual.location" {
		t.Errorf("entries %v", values)
	}
	screenshot(t, desk, "console-lists")
	run(t, desk, "remove one",
		chromedp.Click(`#entries tr[data-value="com.fake.gps"] button`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`#entries tr[data-value="com.fake.gps"]`, chromedp.ByQuery))
}
