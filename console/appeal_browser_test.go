package console_test

import (
	"strings"
	"testing"
	"time"

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

	phone := b.tab(390, 844, "en-US")
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
	screenshot(t, phone, "appeal-list-en")

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

	run(t, phone, "file an appeal",
		chromedp.SendKeys(`#statement`, "I was at the site. My phone was repaired last week and the shop left developer options on.", chromedp.ByQuery),
		chromedp.SendKeys(`#contact`, "alice@example.com", chromedp.ByQuery),
		chromedp.Click(`#submit-appeal`, chromedp.ByQuery),
		chromedp.WaitVisible(`#filed-ok`, chromedp.ByQuery))
	if st := textOf(t, phone, "#appeal-status"); !strings.Contains(st, "Received") {
		t.Errorf("status after filing: %q", st)
	}

	// Nothing about anyone else: bob's decision by id is not found.
	run(t, phone, "open bob's decision",
		chromedp.Navigate(s.URL+"/appeal/#/d/"+other.GetDecisionId()),
		chromedp.WaitVisible(`.alert.error[data-code="not_found"]`, chromedp.ByQuery))

	noTokenInURLs(t, b, tok)
}
