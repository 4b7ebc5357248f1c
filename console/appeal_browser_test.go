package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/testserver"
)

// A subject opens the appeal page from the app (token in the fragment),
// sees their decisions, files an appeal and sees its status; a reviewer
// resolves it in the console and the subject sees the reason.
func TestSubjectAppealsAndSeesTheReason(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	b := newBrowser(t)
	now := time.Now()
	d := s.Evaluate(mockedCheckIn("chk-1", "alice", now))
	if d.GetOutcome() < riskv1.Outcome_OUTCOME_CHALLENGE {
		t.Fatalf("mocked check-in decided %v, want review or worse", d.GetOutcome())
	}
	s.Evaluate(login("login-1", "alice", now.Add(time.Second)))
	other := s.Evaluate(mockedCheckIn("chk-bob", "bob", now))
	tok := s.SubjectToken("alice")

	phone := b.tab(360, 780, "en-US")
	var hash, stored string
	run(t, phone, "open the appeal page",
		chromedp.Navigate(appealURL(s, tok)),
		chromedp.WaitVisible(`#decisions a[data-decision="`+d.GetDecisionId()+`"]`, chromedp.ByQuery),
		chromedp.Evaluate(`location.hash`, &hash),
		chromedp.Evaluate(`sessionStorage.getItem('riskd.token')`, &stored),
	)
	if hash != "" || stored != tok {
		t.Errorf("after sign-in: hash %q, stored token ok=%v; want the fragment gone and the token in sessionStorage", hash, stored == tok)
	}
	if strings.Contains(textOf(t, phone, "#decisions"), other.GetDecisionId()) {
		t.Error("bob's decision is listed for alice")
	}

	run(t, phone, "open the decision",
		chromedp.Click(`a[data-decision="`+d.GetDecisionId()+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#appeal-form`, chromedp.ByQuery))
	why := textOf(t, phone, "#why")
	if !strings.Contains(why, "modified phone") {
		t.Errorf("why: %q, want the rule's English message", why)
	}
	if used := textOf(t, phone, "#used"); !strings.Contains(used, "location") {
		t.Errorf("information used: %q", used)
	}
	screenshot(t, phone, "appeal-decision-en")

	const statement = "I was at the site. My phone was repaired last week and the shop left developer options on."
	run(t, phone, "file an appeal",
		chromedp.SendKeys(`#statement`, statement, chromedp.ByQuery),
		chromedp.SendKeys(`#contact`, "alice@example.com", chromedp.ByQuery))
	if got, want := textOf(t, phone, "#counter"), fmt.Sprintf("%d / 4,000", utf8.RuneCountInString(statement)); got != want {
		t.Errorf("counter %q, want %q", got, want)
	}
	run(t, phone, "submit the appeal",
		chromedp.Click(`#submit-appeal`, chromedp.ByQuery),
		chromedp.WaitVisible(`#filed-ok`, chromedp.ByQuery))
	if st := textOf(t, phone, "#appeal-status"); !strings.Contains(st, "Received") {
		t.Errorf("status after filing: %q", st)
	}

	// Nothing about anyone else: bob's decision by id is not found, and the
	// API refuses to list his decisions or appeals with alice's token, even
	// from the page itself.
	run(t, phone, "open bob's decision",
		chromedp.Navigate(s.URL+"/appeal/#/d/"+other.GetDecisionId()),
		chromedp.WaitVisible(`.alert.error[data-code="not_found"]`, chromedp.ByQuery))
	for _, c := range []struct{ method, body, want string }{
		{"DecisionService/ListDecisions", `{"accountId":"bob"}`, "403 permission_denied"},
		{"AppealService/ListAppeals", `{"accountId":"bob"}`, "403 permission_denied"},
		{"DecisionService/GetDecision", `{"decisionId":"` + other.GetDecisionId() + `"}`, "404 not_found"},
		{"DecisionLogService/ExplainDecision", `{"decisionId":"` + other.GetDecisionId() + `"}`, "404 not_found"},
		{"DecisionLogService/ExportSubject", `{"accountId":"bob"}`, "403 permission_denied"},
	} {
		var got string
		run(t, phone, "call "+c.method+" for bob", chromedp.Evaluate(`fetch('/risk.v1.`+c.method+`', {method: 'POST', body: '`+c.body+`',
			headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + sessionStorage.getItem('riskd.token'), 'X-CSRF-Token': 'x'}})
			.then(async r => r.status + ' ' + (await r.json()).code)`, &got, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		if got != c.want {
			t.Errorf("%s for bob with alice's token: %s, want %s", c.method, got, c.want)
		}
	}

	// The reviewer signs in to the console, finds the appeal in the queue,
	// starts the review and overturns the decision with a reason.
	desk := b.tab(1440, 900, "en-US")
	signIn(t, desk, s, s.Creds.Analyst)
	row := `#appeals-table tr[data-appeal]`
	run(t, desk, "open the queue",
		chromedp.Click(`#nav-appeals`, chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
		chromedp.Click(row, chromedp.ByQuery),
		chromedp.WaitVisible(`#start-review`, chromedp.ByQuery))
	if st := textOf(t, desk, "#statement"); !strings.Contains(st, "developer options") {
		t.Errorf("statement in the console: %q", st)
	}
	const reason = "We checked the site's visitor log: you were there. The mocked-location flag came from a repair shop setting."
	run(t, desk, "start review and overturn",
		chromedp.Click(`#start-review`, chromedp.ByQuery),
		chromedp.WaitVisible(`#appeal-detail .badge[data-status=APPEAL_STATUS_IN_REVIEW]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#resolve-form`, chromedp.ByQuery),
		chromedp.Click(`#r-overturn`, chromedp.ByQuery),
		chromedp.WaitVisible(`#remedy-field`, chromedp.ByQuery),
		chromedp.SendKeys(`#r-reason`, reason, chromedp.ByQuery),
		chromedp.SetValue(`#r-remedy`, "30", chromedp.ByQuery),
		chromedp.Click(`#resolve`, chromedp.ByQuery),
		chromedp.WaitVisible(`#resolution-reason`, chromedp.ByQuery))
	if got := textOf(t, desk, "#appeal-detail .badge[data-status]"); !strings.Contains(got, "Overturned") {
		t.Errorf("status after resolving: %q", got)
	}

	// The subject sees the outcome and the reviewer's reason, in Chinese
	// when the browser prefers it.
	zh := b.tab(360, 780, "zh-CN")
	run(t, zh, "subject reopens the decision",
		chromedp.Navigate(appealURL(s, tok)+"&decision="+d.GetDecisionId()),
		chromedp.WaitVisible(`#resolution-reason`, chromedp.ByQuery))
	if got := textOf(t, zh, "#resolution-reason"); got != reason {
		t.Errorf("subject sees reason %q, want %q", got, reason)
	}
	if got := textOf(t, zh, "#appeal-status"); !strings.Contains(got, "已撤销原决定") {
		t.Errorf("status in Chinese: %q", got)
	}
	if got := textOf(t, zh, "#why"); !strings.Contains(got, "改装") {
		t.Errorf("reasons in Chinese: %q", got)
	}
	screenshot(t, zh, "appeal-resolved-zh")
	run(t, zh, "switch to English", chromedp.Click(`#lang`, chromedp.ByQuery), chromedp.WaitVisible(`#resolution-reason`, chromedp.ByQuery))
	if got := textOf(t, zh, "#appeal-status"); !strings.Contains(got, "Decision reversed") {
		t.Errorf("after the toggle: %q", got)
	}

	noTokenInURLs(t, b, tok, s.Creds.Analyst)
	if strings.Contains(s.Logs(), tok) || strings.Contains(s.Logs(), s.Creds.Analyst) {
		t.Error("a token reached riskd's log")
	}
}

// signIn opens the console and signs in with token.
func signIn(t *testing.T, ctx context.Context, s *testserver.Server, token string) {
	t.Helper()
	run(t, ctx, "sign in to the console",
		chromedp.Navigate(s.URL+"/console/"),
		chromedp.WaitVisible(`#token`, chromedp.ByQuery),
		chromedp.SendKeys(`#token`, token, chromedp.ByQuery),
		chromedp.Click(`#signin button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#role`, chromedp.ByQuery))
}
