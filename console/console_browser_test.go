package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/testserver"
	"github.com/riskd/riskd/server"
)

// seeded is a riskd on a fake clock with a few weeks of decisions and
// appeals: some overdue, one overturned, one upheld.
type seeded struct {
	*testserver.Server
	clk       *clock.Fake
	appealIDs []string
}

func seed(t *testing.T) *seeded {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Second))
	s := &seeded{Server: testserver.Start(t, testserver.Options{Clock: clk, Config: func(c *server.Config) { c.OverturnMinHits = 1 }}), clk: clk}
	ctx := context.Background()
	file := func(account, decisionID, statement string) {
		t.Helper()
		res, err := appealsClient(s.Server, s.SubjectToken(account)).FileAppeal(ctx, connect.NewRequest(&riskv1.FileAppealRequest{
			DecisionId: decisionID, Statement: statement, Contact: account + "@example.com"}))
		if err != nil {
			t.Fatalf("FileAppeal(%s): %v", account, err)
		}
		s.appealIDs = append(s.appealIDs, res.Msg.GetAppeal().GetAppealId())
	}
	for i := range 6 {
		at := clk.Now()
		s.Evaluate(login(fmt.Sprintf("l-%d", i), "wang.fang", at))
		clk.Advance(17 * time.Minute)
	}
	d := s.Evaluate(mockedCheckIn("c-1", "wang.fang", clk.Now()))
	file("wang.fang", d.GetDecisionId(), "I was at the Pudong site all morning; the guard can confirm. I don't know why my phone said the location was mocked.")
	clk.Advance(26 * time.Hour)
	d = s.Evaluate(largePayment("p-1", "li.wei", clk.Now()))
	file("li.wei", d.GetDecisionId(), "I bought a new phone last week and was paying my rent. Please release the transfer.")
	clk.Advance(30 * time.Hour)
	d = s.Evaluate(mockedCheckIn("c-2", "zhao.min", clk.Now()))
	file("zhao.min", d.GetDecisionId(), "My colleague checked in for me because my phone died. I understand that is not allowed.")
	clk.Advance(3 * 24 * time.Hour)
	d = s.Evaluate(largePayment("p-2", "chen.jie", clk.Now()))
	file("chen.jie", d.GetDecisionId(), "This was me paying a supplier for my shop.")
	clk.Advance(9 * 24 * time.Hour)
	d = s.Evaluate(mockedCheckIn("c-3", "sun.li", clk.Now()))
	file("sun.li", d.GetDecisionId(), "My phone had a GPS app installed by the previous owner.")
	clk.Advance(40 * time.Hour)
	for i := range 3 {
		s.Evaluate(login(fmt.Sprintf("w-%d", i), "wang.fang", clk.Now()))
		clk.Advance(3 * time.Hour)
	}
	// Reviewers answered two.
	an := appealsClient(s.Server, s.Creds.Analyst)
	if _, err := an.ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{AppealId: s.appealIDs[2],
		Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "Buddy punching is against the attendance policy."})); err != nil {
		t.Fatal(err)
	}
	if _, err := an.ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{AppealId: s.appealIDs[4],
		Resolution: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED, Reason: "The mock-location app came with the phone; site records confirm attendance.", RemedyDays: 30})); err != nil {
		t.Fatal(err)
	}
	if _, err := an.StartReview(ctx, connect.NewRequest(&riskv1.StartReviewRequest{AppealId: s.appealIDs[3]})); err != nil {
		t.Fatal(err)
	}
	return s
}

// The console's main screens render real data: the decision search with
// the full record and a replay, the queue with overdue appeals marked, and
// the statistics.
func TestConsoleScreens(t *testing.T) {
	s := seed(t)
	b := newBrowser(t)
	desk := b.tab(1440, 900, "en-US")
	signIn(t, desk, s.Server, s.Creds.Analyst)
	if role := textOf(t, desk, "#role"); !strings.EqualFold(role, "analyst") {
		t.Errorf("role %q", role)
	}
	var auditNav bool
	run(t, desk, "nav", chromedp.Evaluate(`!!document.querySelector('#nav-audit')`, &auditNav))
	if auditNav {
		t.Error("an analyst is shown the admins' audit page")
	}

	// The queue: oldest due first, the ones past 15 days marked overdue.
	run(t, desk, "queue", chromedp.Click(`#nav-appeals`, chromedp.ByQuery), chromedp.WaitVisible(`#appeals-table`, chromedp.ByQuery))
	var ids, overdue []string
	run(t, desk, "read the queue",
		chromedp.Evaluate(`[...document.querySelectorAll('#appeals-table tr[data-appeal]')].map(r => r.dataset.appeal)`, &ids),
		chromedp.Evaluate(`[...document.querySelectorAll('#appeals-table tr[data-overdue=true]')].map(r => r.dataset.appeal)`, &overdue))
	want := []string{s.appealIDs[0], s.appealIDs[1], s.appealIDs[3]}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("queue %v, want %v (oldest due first, resolved ones out)", ids, want)
	}
	if strings.Join(overdue, ",") != strings.Join(want[:2], ",") {
		t.Errorf("overdue %v, want %v", overdue, want[:2])
	}
	run(t, desk, "open the oldest", chromedp.Click(`#appeals-table tr[data-appeal]`, chromedp.ByQuery), chromedp.WaitVisible(`#resolve-form`, chromedp.ByQuery))
	screenshot(t, desk, "console-appeals")

	// Decisions: search one account, open the full record, replay it.
	run(t, desk, "search decisions",
		chromedp.Click(`#nav-decisions`, chromedp.ByQuery),
		chromedp.WaitVisible(`#q-account`, chromedp.ByQuery),
		chromedp.SendKeys(`#q-account`, "wang.fang", chromedp.ByQuery),
		chromedp.Click(`#q-go`, chromedp.ByQuery),
		chromedp.WaitVisible(`#results-table`, chromedp.ByQuery))
	var n int
	run(t, desk, "count", chromedp.Evaluate(`document.querySelectorAll('#results-table tr[data-decision]').length`, &n))
	if n != 10 {
		t.Errorf("%d decisions for wang.fang, want 10", n)
	}
	run(t, desk, "open and replay",
		chromedp.Click(`#results-table .badge[data-outcome=OUTCOME_REVIEW]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#replay`, chromedp.ByQuery),
		chromedp.Click(`#replay`, chromedp.ByQuery),
		chromedp.WaitVisible(`#replay-match`, chromedp.ByQuery))
	if got := textOf(t, desk, "#detail"); !strings.Contains(got, "att.mock_location") || !strings.Contains(got, "location.mocked") {
		t.Errorf("full record lacks the rule or its expression: %q", got)
	}
	screenshot(t, desk, "console-decisions")
	run(t, desk, "filter by outcome",
		chromedp.SetValue(`#q-outcome`, "OUTCOME_REVIEW", chromedp.ByQuery),
		chromedp.Click(`#q-go`, chromedp.ByQuery),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Evaluate(`document.querySelectorAll('#results-table tr[data-decision]').length`, &n))
	if n != 1 {
		t.Errorf("%d review decisions for wang.fang, want 1", n)
	}
	run(t, desk, "filter by rule",
		chromedp.SetValue(`#q-outcome`, "", chromedp.ByQuery),
		chromedp.SendKeys(`#q-rule`, "ato.impossible", chromedp.ByQuery),
		chromedp.Click(`#q-go`, chromedp.ByQuery),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Evaluate(`[...document.querySelectorAll('#results-table tr[data-decision]')].filter(r => !r.textContent.includes('ato.impossible_travel')).length`, &n))
	if n != 0 {
		t.Errorf("%d results without the rule filtered on", n)
	}

	run(t, desk, "statistics", chromedp.Click(`#nav-stats`, chromedp.ByQuery), chromedp.WaitVisible(`#rates svg`, chromedp.ByQuery),
		chromedp.Click(`#verify`, chromedp.ByQuery), chromedp.WaitVisible(`#verify-out .alert.ok`, chromedp.ByQuery),
		chromedp.SetValue(`#trend-rule`, "att.mock_location", chromedp.ByQuery),
		chromedp.Click(`#trend-go`, chromedp.ByQuery), chromedp.WaitVisible(`#trend-out svg`, chromedp.ByQuery))
	if got := textOf(t, desk, `#flagged`); !strings.Contains(got, "att.mock_location") {
		t.Errorf("flagged rules: %q (one of its three hits was overturned)", got)
	}
	screenshot(t, desk, "console-statistics")

	// Signing out forgets the token; a subject's token cannot sign in.
	var stored string
	run(t, desk, "sign out",
		chromedp.Click(`#sign-out`, chromedp.ByQuery),
		chromedp.WaitVisible(`#signin`, chromedp.ByQuery),
		chromedp.Evaluate(`sessionStorage.getItem('riskd.token') || ''`, &stored),
		chromedp.SendKeys(`#token`, s.SubjectToken("wang.fang"), chromedp.ByQuery),
		chromedp.Click(`#signin button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#signin-msg .alert`, chromedp.ByQuery))
	if stored != "" {
		t.Error("the token survived sign-out")
	}
	if got := textOf(t, desk, "#signin-msg"); !strings.Contains(got, "subject token cannot use the console") {
		t.Errorf("subject sign-in: %q", got)
	}

	// An admin reads the access audit: the console's calls are there like
	// any other client's.
	run(t, desk, "admin audit",
		chromedp.Evaluate(`document.querySelector('#token').value = ''`, nil),
		chromedp.SendKeys(`#token`, s.Creds.Admin, chromedp.ByQuery),
		chromedp.Click(`#signin button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#nav-audit`, chromedp.ByQuery),
		chromedp.Click(`#nav-audit`, chromedp.ByQuery),
		chromedp.WaitVisible(`#audit-table`, chromedp.ByQuery),
		chromedp.SendKeys(`#au-proc`, "/risk.v1.DecisionLogService/ReplayDecision", chromedp.ByQuery),
		chromedp.Click(`#au-go`, chromedp.ByQuery),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.WaitVisible(`#audit-table`, chromedp.ByQuery))
	if got := textOf(t, desk, "#audit-table tbody"); !strings.Contains(got, "ReplayDecision") || !strings.Contains(got, "analyst") {
		t.Errorf("audit of the console's replay: %q", got)
	}

	// The appeal page of one subject, for the README.
	phone := b.tab(360, 780, "en-US")
	run(t, phone, "subject list", chromedp.Navigate(appealURL(s.Server, s.SubjectToken("wang.fang"))), chromedp.WaitVisible(`#decisions`, chromedp.ByQuery))
	screenshot(t, phone, "appeal-list-en")
}
