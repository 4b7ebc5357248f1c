package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
	"github.com/riskd/riskd/rules"
)

// appealServer is a riskd on a fake clock, without per-token rate limits.
type appealServer struct {
	*testServer
	clk *clock.Fake
}

func startAppealServer(t *testing.T) *appealServer {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	s := startServer(t, serverSetup{
		config: func(c *Config) {
			c.RateLimitUser, c.RateLimitService, c.RateLimitSubject = 0, 0, 0
			c.OverturnMinHits = 1
		},
		hooks: Hooks{Clock: clk},
	})
	return &appealServer{testServer: s, clk: clk}
}

// subject mints a subject token valid at the fake clock's now.
func (s *appealServer) subject(account string) string {
	s.t.Helper()
	tok, err := auth.MintSubjectToken([]byte(s.creds.SubjectKey), account, 90*24*time.Hour, s.clk.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func (s *testServer) appeals(p protocol, token string) riskv1connect.AppealServiceClient {
	return riskv1connect.NewAppealServiceClient(httpClient(p), s.url, clientOpts(p, token)...)
}

func (s *testServer) decisionLog(p protocol, token string) riskv1connect.DecisionLogServiceClient {
	return riskv1connect.NewDecisionLogServiceClient(httpClient(p), s.url, clientOpts(p, token)...)
}

func (s *testServer) labels(p protocol, token string) riskv1connect.LabelsServiceClient {
	return riskv1connect.NewLabelsServiceClient(httpClient(p), s.url, clientOpts(p, token)...)
}

// mockedCheckIn is an attendance check-in with a mocked location: the bundled
// rule attendance.mock_location fires.
func mockedCheckIn(id, account string, at time.Time) *riskv1.Event {
	ev := attendanceEvent(id, account, "dev-"+account, "site-1", at)
	ev.Location.Mocked = true
	return ev
}

func (s *appealServer) file(token, decisionID string) (*riskv1.Appeal, error) {
	res, err := s.appeals(protoConnect, token).FileAppeal(context.Background(), connect.NewRequest(&riskv1.FileAppealRequest{
		DecisionId: decisionID, Statement: "I was at the site; my phone's GPS app was off.", Contact: "me@example.com",
	}))
	if err != nil {
		return nil, err
	}
	return res.Msg.GetAppeal(), nil
}

func wantCode(t *testing.T, what string, err error, want connect.Code) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Errorf("%s: %v, want ok", what, err)
		}
		return
	}
	if got := connect.CodeOf(err); err == nil || got != want {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}

// Every decision, decision-log, appeal and label call, for every role,
// including a subject asking about another subject's decision.
func TestPermissionMatrix(t *testing.T) {
	s := startAppealServer(t)
	now := s.clk.Now()
	dA := s.evaluate(mockedCheckIn("perm-a", "acct-a", now))
	s.evaluate(mockedCheckIn("perm-b", "acct-b", now))
	tokA, tokB := s.subject("acct-a"), s.subject("acct-b")
	appeal, err := s.file(tokA, dA.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ok connect.Code = 0
	type call struct {
		name string
		run  func(tok string) error
	}
	dec := func(tok string) riskv1connect.DecisionServiceClient { return s.decisions(protoConnect, tok) }
	ap := func(tok string) riskv1connect.AppealServiceClient { return s.appeals(protoConnect, tok) }
	dl := func(tok string) riskv1connect.DecisionLogServiceClient { return s.decisionLog(protoConnect, tok) }
	lb := func(tok string) riskv1connect.LabelsServiceClient { return s.labels(protoConnect, tok) }
	calls := []call{
		{"GetDecision", func(tok string) error {
			_, err := dec(tok).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: dA.DecisionId}))
			return err
		}},
		{"ListDecisions", func(tok string) error {
			_, err := dec(tok).ListDecisions(ctx, connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "acct-a"}))
			return err
		}},
		{"FileAppeal", func(tok string) error {
			// A second appeal on the same decision: AlreadyExists for its subject.
			_, err := ap(tok).FileAppeal(ctx, connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: dA.DecisionId, Statement: "again"}))
			return err
		}},
		{"GetAppeal", func(tok string) error {
			_, err := ap(tok).GetAppeal(ctx, connect.NewRequest(&riskv1.GetAppealRequest{AppealId: appeal.AppealId}))
			return err
		}},
		{"ListAppeals", func(tok string) error {
			_, err := ap(tok).ListAppeals(ctx, connect.NewRequest(&riskv1.ListAppealsRequest{AccountId: "acct-a"}))
			return err
		}},
		// State changes aim at an appeal that does not exist, so that an
		// allowed role gets NotFound and a refused one PermissionDenied.
		{"StartReview", func(tok string) error {
			_, err := ap(tok).StartReview(ctx, connect.NewRequest(&riskv1.StartReviewRequest{AppealId: "01JNOTANAPPEAL00000000000A"}))
			return err
		}},
		{"ResolveAppeal", func(tok string) error {
			_, err := ap(tok).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{AppealId: "01JNOTANAPPEAL00000000000A",
				Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "r"}))
			return err
		}},
		{"VerifyChain", func(tok string) error {
			_, err := dl(tok).VerifyChain(ctx, connect.NewRequest(&riskv1.VerifyChainRequest{}))
			return err
		}},
		{"GetCheckpoint", func(tok string) error {
			_, err := dl(tok).GetCheckpoint(ctx, connect.NewRequest(&riskv1.GetCheckpointRequest{}))
			return err
		}},
		{"ExplainDecision", func(tok string) error {
			_, err := dl(tok).ExplainDecision(ctx, connect.NewRequest(&riskv1.ExplainDecisionRequest{DecisionId: dA.DecisionId}))
			return err
		}},
		{"ReplayDecision", func(tok string) error {
			_, err := dl(tok).ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: dA.DecisionId}))
			return err
		}},
		{"ExportSubject", func(tok string) error {
			_, err := dl(tok).ExportSubject(ctx, connect.NewRequest(&riskv1.ExportSubjectRequest{AccountId: "acct-a"}))
			return err
		}},
		{"GetOverturnRates", func(tok string) error {
			_, err := dl(tok).GetOverturnRates(ctx, connect.NewRequest(&riskv1.GetOverturnRatesRequest{}))
			return err
		}},
		{"PutLabel", func(tok string) error {
			_, err := lb(tok).PutLabel(ctx, connect.NewRequest(&riskv1.PutLabelRequest{EventId: "ev-labelled", Kind: riskv1.LabelKind_LABEL_KIND_CHARGEBACK}))
			return err
		}},
		{"ListLabels", func(tok string) error {
			_, err := lb(tok).ListLabels(ctx, connect.NewRequest(&riskv1.ListLabelsRequest{}))
			return err
		}},
	}
	const (
		deny     = connect.CodePermissionDenied
		notFound = connect.CodeNotFound
		exists   = connect.CodeAlreadyExists
	)
	roles := []struct {
		name  string
		token string
		want  map[string]connect.Code
	}{
		{"service", s.creds.Service, map[string]connect.Code{
			"GetDecision": deny, "ListDecisions": deny, "FileAppeal": deny, "GetAppeal": deny, "ListAppeals": deny,
			"StartReview": deny, "ResolveAppeal": deny, "VerifyChain": deny, "GetCheckpoint": deny, "ExplainDecision": deny,
			"ReplayDecision": deny, "ExportSubject": deny, "GetOverturnRates": deny, "PutLabel": ok, "ListLabels": deny}},
		{"analyst", s.creds.Analyst, map[string]connect.Code{
			"GetDecision": ok, "ListDecisions": ok, "FileAppeal": deny, "GetAppeal": ok, "ListAppeals": ok,
			"StartReview": notFound, "ResolveAppeal": notFound, "VerifyChain": ok, "GetCheckpoint": ok, "ExplainDecision": ok,
			"ReplayDecision": ok, "ExportSubject": deny, "GetOverturnRates": ok, "PutLabel": ok, "ListLabels": ok}},
		{"admin", s.creds.Admin, map[string]connect.Code{
			"GetDecision": ok, "ListDecisions": ok, "FileAppeal": deny, "GetAppeal": ok, "ListAppeals": ok,
			"StartReview": notFound, "ResolveAppeal": notFound, "VerifyChain": ok, "GetCheckpoint": ok, "ExplainDecision": ok,
			"ReplayDecision": ok, "ExportSubject": ok, "GetOverturnRates": ok, "PutLabel": ok, "ListLabels": ok}},
		{"subject (own)", tokA, map[string]connect.Code{
			"GetDecision": ok, "ListDecisions": ok, "FileAppeal": exists, "GetAppeal": ok, "ListAppeals": ok,
			"StartReview": deny, "ResolveAppeal": deny, "VerifyChain": deny, "GetCheckpoint": deny, "ExplainDecision": ok,
			"ReplayDecision": deny, "ExportSubject": ok, "GetOverturnRates": deny, "PutLabel": deny, "ListLabels": deny}},
		{"subject (another's)", tokB, map[string]connect.Code{
			"GetDecision": notFound, "ListDecisions": deny, "FileAppeal": notFound, "GetAppeal": notFound, "ListAppeals": deny,
			"StartReview": deny, "ResolveAppeal": deny, "VerifyChain": deny, "GetCheckpoint": deny, "ExplainDecision": notFound,
			"ReplayDecision": deny, "ExportSubject": deny, "GetOverturnRates": deny, "PutLabel": deny, "ListLabels": deny}},
		{"no token", "", map[string]connect.Code{
			"GetDecision": connect.CodeUnauthenticated, "ListDecisions": connect.CodeUnauthenticated, "FileAppeal": connect.CodeUnauthenticated,
			"GetAppeal": connect.CodeUnauthenticated, "ListAppeals": connect.CodeUnauthenticated, "StartReview": connect.CodeUnauthenticated,
			"ResolveAppeal": connect.CodeUnauthenticated, "VerifyChain": connect.CodeUnauthenticated, "GetCheckpoint": connect.CodeUnauthenticated,
			"ExplainDecision": connect.CodeUnauthenticated, "ReplayDecision": connect.CodeUnauthenticated, "ExportSubject": connect.CodeUnauthenticated,
			"GetOverturnRates": connect.CodeUnauthenticated, "PutLabel": connect.CodeUnauthenticated, "ListLabels": connect.CodeUnauthenticated}},
	}
	for _, r := range roles {
		t.Run(r.name, func(t *testing.T) {
			for _, c := range calls {
				want, listed := r.want[c.name]
				if !listed {
					t.Fatalf("matrix lacks %s", c.name)
				}
				wantCode(t, c.name, c.run(r.token), want)
			}
		})
	}

	// Another subject's decision id reveals nothing: the same answer as an
	// id that does not exist.
	missing := ulid.Make().String()
	for _, c := range []struct {
		name string
		run  func(id string) error
	}{
		{"GetDecision", func(id string) error {
			_, err := dec(tokB).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: id}))
			return err
		}},
		{"ExplainDecision", func(id string) error {
			_, err := dl(tokB).ExplainDecision(ctx, connect.NewRequest(&riskv1.ExplainDecisionRequest{DecisionId: id}))
			return err
		}},
		{"FileAppeal", func(id string) error {
			_, err := ap(tokB).FileAppeal(ctx, connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: id, Statement: "not mine"}))
			return err
		}},
	} {
		other, none := c.run(dA.DecisionId), c.run(missing)
		if other == nil || none == nil || other.Error() != none.Error() {
			t.Errorf("%s: another's decision answered %v, a missing one %v: must be the same", c.name, other, none)
		}
	}
	other := func() error {
		_, err := ap(tokB).GetAppeal(ctx, connect.NewRequest(&riskv1.GetAppealRequest{AppealId: appeal.AppealId}))
		return err
	}()
	none := func() error {
		_, err := ap(tokB).GetAppeal(ctx, connect.NewRequest(&riskv1.GetAppealRequest{AppealId: missing}))
		return err
	}()
	if other == nil || none == nil || other.Error() != none.Error() {
		t.Errorf("GetAppeal: another's appeal answered %v, a missing one %v", other, none)
	}
}

// The subject sees the subject's views: no score, features, rules'
// expressions or reviewer identities.
func TestSubjectViews(t *testing.T) {
	s := startAppealServer(t)
	ctx := context.Background()
	d := s.evaluate(mockedCheckIn("view-1", "acct-v", s.clk.Now()))
	if len(d.GetReasons()) == 0 {
		t.Fatal("the mocked check-in fired no rule")
	}
	tok := s.subject("acct-v")
	a, err := s.file(tok, d.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.decisionLog(protoGRPC, tok).ExplainDecision(ctx, connect.NewRequest(&riskv1.ExplainDecisionRequest{DecisionId: d.DecisionId}))
	if err != nil {
		t.Fatal(err)
	}
	x := res.Msg.GetExplanation()
	switch {
	case x.GetFull() || x.GetScore() != 0 || len(x.GetFeatures()) != 0 || x.GetEvent() != nil || x.GetRulesetVersion() != "" || len(x.GetShadowReasons()) != 0:
		t.Errorf("subject explanation shows analyst fields: %v", x)
	case len(x.GetReasons()) == 0 || x.GetReasons()[0].GetMessageZh() == "" || x.GetReasons()[0].GetMessageEn() == "" || x.GetReasons()[0].GetExpression() != "":
		t.Errorf("subject reasons: %v", x.GetReasons())
	case !x.GetAppealable() || !x.GetFullyAutomated() || len(x.GetDataCategories()) == 0 || x.GetAppealDeadline() == nil:
		t.Errorf("subject explanation lacks appealable/automated/categories/deadline: %v", x)
	case len(x.GetAppeals()) != 1 || x.GetAppeals()[0].GetAppealId() != a.GetAppealId():
		t.Errorf("explanation appeals: %v", x.GetAppeals())
	}
	full, err := s.decisionLog(protoGRPCWeb, s.creds.Analyst).ExplainDecision(ctx, connect.NewRequest(&riskv1.ExplainDecisionRequest{DecisionId: d.DecisionId}))
	if err != nil {
		t.Fatal(err)
	}
	fx := full.Msg.GetExplanation()
	if !fx.GetFull() || len(fx.GetFeatures()) == 0 || fx.GetEvent() == nil || fx.GetRulesetVersion() == "" || fx.GetReasons()[0].GetExpression() == "" || fx.GetLatency() == nil {
		t.Errorf("analyst explanation lacks the whole record: %v", fx)
	}

	// Export: the subject's own, in the subject's view; the admin's whole.
	exp, err := s.decisionLog(protoConnect, tok).ExportSubject(ctx, connect.NewRequest(&riskv1.ExportSubjectRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Decisions []map[string]any `json:"decisions"`
		Appeals   []map[string]any `json:"appeals"`
	}
	if err := json.Unmarshal([]byte(exp.Msg.GetJson()), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Decisions) != 1 || len(doc.Appeals) != 1 || doc.Decisions[0]["decisionId"] != d.DecisionId {
		t.Fatalf("subject export: %s", exp.Msg.GetJson())
	}
	for _, hidden := range []string{"features", "score", "event", "rulesetVersion", "shadowReasons"} {
		if _, ok := doc.Decisions[0][hidden]; ok {
			t.Errorf("subject export shows %s", hidden)
		}
	}
	adm, err := s.decisionLog(protoConnect, s.creds.Admin).ExportSubject(ctx, connect.NewRequest(&riskv1.ExportSubjectRequest{AccountId: "acct-v"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(adm.Msg.GetJson(), d.DecisionId) || !strings.Contains(adm.Msg.GetJson(), "features") {
		t.Errorf("admin export lacks the whole record: %.300s", adm.Msg.GetJson())
	}
}

func TestAppealDeadlineAndOneOpenAppeal(t *testing.T) {
	s := startAppealServer(t)
	now := s.clk.Now()
	early := s.evaluate(mockedCheckIn("dl-1", "acct-d", now))
	late := s.evaluate(mockedCheckIn("dl-2", "acct-d", now.Add(time.Second)))
	tok := s.subject("acct-d")
	if _, err := s.file(tok, early.DecisionId); err != nil {
		t.Fatalf("filing before the deadline: %v", err)
	}
	_, err := s.file(tok, early.DecisionId)
	wantCode(t, "second appeal while one is open", err, connect.CodeAlreadyExists)

	// 30 days later the window is closed.
	s.clk.Advance(30*24*time.Hour + time.Minute)
	_, err = s.file(tok, late.DecisionId)
	wantCode(t, "filing after the deadline", err, connect.CodeFailedPrecondition)

	_, err = s.appeals(protoConnect, tok).FileAppeal(context.Background(), connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: late.DecisionId}))
	wantCode(t, "empty statement", err, connect.CodeInvalidArgument)
	_, err = s.appeals(protoConnect, tok).FileAppeal(context.Background(), connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: late.DecisionId, Statement: strings.Repeat("字", 4001)}))
	wantCode(t, "statement over 4,000 characters", err, connect.CodeInvalidArgument)
}

// An appeal is due 15 days after filing; past that it is overdue, and the
// queue lists the oldest due first.
func TestAppealDueTimeAndOverdueQueue(t *testing.T) {
	s := startAppealServer(t)
	ctx := context.Background()
	start := s.clk.Now()
	var ids []string
	for i := range 3 {
		acct := fmt.Sprintf("acct-due-%d", i)
		d := s.evaluate(mockedCheckIn(fmt.Sprintf("due-%d", i), acct, s.clk.Now()))
		a, err := s.file(s.subject(acct), d.DecisionId)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.GetDueAt().AsTime().Sub(a.GetFiledAt().AsTime()); got != 15*24*time.Hour {
			t.Errorf("due - filed = %v, want 360h", got)
		}
		ids = append(ids, a.GetAppealId())
		s.clk.Advance(24 * time.Hour)
	}
	list := func(overdue bool) []*riskv1.Appeal {
		t.Helper()
		res, err := s.appeals(protoConnect, s.creds.Analyst).ListAppeals(ctx, connect.NewRequest(&riskv1.ListAppealsRequest{OverdueOnly: overdue}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetAppeals()
	}
	if got := list(true); len(got) != 0 {
		t.Fatalf("overdue before 15 days: %v", got)
	}
	all := list(false)
	if len(all) != 3 || all[0].GetAppealId() != ids[0] || all[2].GetAppealId() != ids[2] {
		t.Fatalf("queue not oldest due first: %v", all)
	}
	// The first is due at start+15d; the second at start+16d.
	s.clk.Set(start.Add(15*24*time.Hour + time.Second))
	over := list(true)
	if len(over) != 1 || over[0].GetAppealId() != ids[0] || !over[0].GetOverdue() {
		t.Fatalf("overdue at 15 days: %v", over)
	}
	for _, a := range list(false) {
		if a.GetOverdue() != (a.GetAppealId() == ids[0]) {
			t.Errorf("appeal %s overdue=%v", a.GetAppealId(), a.GetOverdue())
		}
	}
	// Resolved appeals are never overdue.
	if _, err := s.appeals(protoConnect, s.creds.Analyst).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{
		AppealId: ids[0], Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "The location was mocked."})); err != nil {
		t.Fatal(err)
	}
	if got := list(true); len(got) != 0 {
		t.Errorf("a resolved appeal is still overdue: %v", got)
	}
	res, err := s.appeals(protoConnect, s.creds.Analyst).ListAppeals(ctx, connect.NewRequest(&riskv1.ListAppealsRequest{Status: riskv1.AppealStatus_APPEAL_STATUS_UPHELD}))
	if err != nil || len(res.Msg.GetAppeals()) != 1 {
		t.Errorf("by status upheld: %v %v", res, err)
	}
}

func TestTwoReviewersResolveOnceAndTheOverturnIsLinked(t *testing.T) {
	s := startAppealServer(t)
	ctx := context.Background()
	d := s.evaluate(mockedCheckIn("race-1", "acct-r", s.clk.Now()))
	before, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.DecisionId}))
	if err != nil {
		t.Fatal(err)
	}
	tok := s.subject("acct-r")
	a, err := s.file(tok, d.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.appeals(protoConnect, s.creds.Analyst).StartReview(ctx, connect.NewRequest(&riskv1.StartReviewRequest{AppealId: a.AppealId})); err != nil {
		t.Fatal(err)
	}
	head0 := checkpoint(t, s.testServer).GetSeq()
	s.clk.Advance(time.Hour) // reviewers answer later than the decision

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tok := range []string{s.creds.Analyst, s.creds.Admin} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.appeals(protocols[i], tok).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{
				AppealId: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED,
				Reason: fmt.Sprintf("reviewer %d: the site confirms attendance", i), RemedyDays: 30}))
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Errorf("the losing reviewer got %v, want FailedPrecondition", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d reviewers won: %v", wins, errs)
	}

	// The original record is unchanged; an overturn entry and a false
	// positive label were appended and the chain verifies.
	after, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.DecisionId}))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before.Msg, after.Msg) {
		t.Error("overturn edited the decision record")
	}
	if head := checkpoint(t, s.testServer).GetSeq(); head < head0+2 {
		t.Errorf("chain grew from %d to %d: want a resolution and an overturn entry", head0, head)
	}
	v, err := s.decisionLog(protoConnect, s.creds.Analyst).VerifyChain(ctx, connect.NewRequest(&riskv1.VerifyChainRequest{}))
	if err != nil || !v.Msg.GetOk() {
		t.Fatalf("verify after overturn: %v %v", v, err)
	}
	labels, err := s.labels(protoConnect, s.creds.Analyst).ListLabels(ctx, connect.NewRequest(&riskv1.ListLabelsRequest{Kind: riskv1.LabelKind_LABEL_KIND_FALSE_POSITIVE}))
	if err != nil || len(labels.Msg.GetLabels()) != 1 || labels.Msg.GetLabels()[0].GetDecisionId() != d.DecisionId {
		t.Errorf("false positive label: %v %v", labels, err)
	}
	// The subject sees the resolution and its reason, not who resolved it.
	got, err := s.appeals(protoConnect, tok).GetAppeal(ctx, connect.NewRequest(&riskv1.GetAppealRequest{AppealId: a.AppealId}))
	if err != nil {
		t.Fatal(err)
	}
	ga := got.Msg.GetAppeal()
	if ga.GetStatus() != riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED || !strings.Contains(ga.GetResolutionReason(), "site confirms") || ga.GetResolvedBy() != "" || len(ga.GetHistory()) < 3 {
		t.Errorf("subject's appeal: %v", ga)
	}
	for _, h := range ga.GetHistory() {
		if h.GetActor() != "" && h.GetActor() != "subject" {
			t.Errorf("subject sees a reviewer's identity %q", h.GetActor())
		}
	}
	// The fired rule's overturn rate counts it.
	rates, err := s.decisionLog(protoConnect, s.creds.Analyst).GetOverturnRates(ctx, connect.NewRequest(&riskv1.GetOverturnRatesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	rule := d.GetReasons()[0].GetRuleId()
	found := false
	for _, r := range rates.Msg.GetRules() {
		if r.GetRuleId() == rule {
			found = true
			if r.GetOverturns() != 1 || r.GetHits() < 1 || !r.GetFlagged() {
				t.Errorf("rate of %s: %v", rule, r)
			}
		}
	}
	if !found {
		t.Errorf("no overturn rate for %s: %v", rule, rates.Msg.GetRules())
	}
	if !strings.Contains(s.logs.String(), rule) {
		t.Errorf("the flagged rule %s is not in the log", rule)
	}
	// The remedy: the account is allowed through for 30 days, and the
	// original decision still replays exactly (lists as of its time).
	again := s.evaluate(mockedCheckIn("race-2", "acct-r", s.clk.Now()))
	if again.GetOutcome() != riskv1.Outcome_OUTCOME_ALLOW || !firedRule(again, "allow.allowlisted_account") {
		t.Errorf("after the remedy: %v %v", again.GetOutcome(), again.GetReasons())
	}
	if rp, err := s.decisionLog(protoConnect, s.creds.Analyst).ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.DecisionId})); err != nil || !rp.Msg.GetMatches() {
		t.Errorf("replay of the overturned decision after the remedy: %v %v", rp, err)
	}
	s.clk.Advance(31 * 24 * time.Hour)
	later := s.evaluate(mockedCheckIn("race-3", "acct-r", s.clk.Now()))
	if later.GetOutcome() == riskv1.Outcome_OUTCOME_ALLOW || firedRule(later, "allow.allowlisted_account") {
		t.Errorf("after the remedy expired: %v %v", later.GetOutcome(), later.GetReasons())
	}

	// Resolving again: already resolved.
	_, err = s.appeals(protoConnect, s.creds.Analyst).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{
		AppealId: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "late"}))
	wantCode(t, "resolving a resolved appeal", err, connect.CodeFailedPrecondition)
	_, err = s.appeals(protoConnect, s.creds.Analyst).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{
		AppealId: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD}))
	wantCode(t, "resolving without a reason", err, connect.CodeInvalidArgument)
}

func firedRule(d *riskv1.Decision, id string) bool {
	for _, r := range d.GetReasons() {
		if r.GetRuleId() == id {
			return true
		}
	}
	return false
}

func checkpoint(t *testing.T, s *testServer) *riskv1.Checkpoint {
	t.Helper()
	res, err := s.decisionLog(protoConnect, s.creds.Analyst).GetCheckpoint(context.Background(), connect.NewRequest(&riskv1.GetCheckpointRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetCheckpoint()
}

func TestLabels(t *testing.T) {
	s := startAppealServer(t)
	ctx := context.Background()
	d := s.evaluate(loginEvent("lab-1", "acct-l", "dev-l", true, s.clk.Now()))
	put := func(tok string, req *riskv1.PutLabelRequest) (*riskv1.Label, error) {
		res, err := s.labels(protoConnect, tok).PutLabel(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetLabel(), nil
	}
	l, err := put(s.creds.Service, &riskv1.PutLabelRequest{DecisionId: d.DecisionId, Kind: riskv1.LabelKind_LABEL_KIND_CONFIRMED_FRAUD})
	if err != nil || l.GetKind() != riskv1.LabelKind_LABEL_KIND_CONFIRMED_FRAUD || l.GetSource() != "service" || l.GetLabeledAt() == nil {
		t.Fatalf("service label: %v %v", l, err)
	}
	if _, err := put(s.creds.Analyst, &riskv1.PutLabelRequest{EventId: "ingested-1", Kind: riskv1.LabelKind_LABEL_KIND_CHARGEBACK}); err != nil {
		t.Fatal(err)
	}
	_, err = put(s.creds.Service, &riskv1.PutLabelRequest{DecisionId: ulid.Make().String(), Kind: riskv1.LabelKind_LABEL_KIND_CHARGEBACK})
	wantCode(t, "label on a missing decision", err, connect.CodeNotFound)
	_, err = put(s.creds.Service, &riskv1.PutLabelRequest{DecisionId: d.DecisionId, EventId: "x", Kind: riskv1.LabelKind_LABEL_KIND_CHARGEBACK})
	wantCode(t, "both targets", err, connect.CodeInvalidArgument)
	_, err = put(s.creds.Service, &riskv1.PutLabelRequest{DecisionId: d.DecisionId})
	wantCode(t, "no kind", err, connect.CodeInvalidArgument)
	res, err := s.labels(protoConnect, s.creds.Analyst).ListLabels(ctx, connect.NewRequest(&riskv1.ListLabelsRequest{}))
	if err != nil || len(res.Msg.GetLabels()) != 2 {
		t.Fatalf("labels: %v %v", res, err)
	}
	res, err = s.labels(protoConnect, s.creds.Analyst).ListLabels(ctx, connect.NewRequest(&riskv1.ListLabelsRequest{Limit: 1}))
	if err != nil || len(res.Msg.GetLabels()) != 1 || !res.Msg.GetTruncated() {
		t.Fatalf("limit 1: %v %v", res, err)
	}
}

// Tampering with the store directly is reported by VerifyChain, naming the
// record: a flipped byte, a deleted record, two swapped records.
func TestVerifyChainNamesTamperedRecord(t *testing.T) {
	for _, tamper := range []string{"flip", "delete", "swap"} {
		t.Run(tamper, func(t *testing.T) {
			s := startAppealServer(t)
			ctx := context.Background()
			var ds []*riskv1.Decision
			for i := range 6 {
				ds = append(ds, s.evaluate(loginEvent(fmt.Sprintf("tamper-%d", i), "acct-t", "dev-t", true, s.clk.Now().Add(time.Duration(i)*time.Millisecond))))
			}
			verify := func(from string) *riskv1.VerifyChainResponse {
				t.Helper()
				res, err := s.decisionLog(protoConnect, s.creds.Analyst).VerifyChain(ctx, connect.NewRequest(&riskv1.VerifyChainRequest{FromDecisionId: from}))
				if err != nil {
					t.Fatal(err)
				}
				return res.Msg
			}
			if v := verify(""); !v.GetOk() || v.GetChecked() < 6 {
				t.Fatalf("untouched chain: %v", v)
			}
			db := s.eng.DB()
			key := func(id string) []byte {
				u := ulid.MustParse(id)
				return append([]byte{keys.DecisionRecord}, u[:]...)
			}
			get := func(id string) []byte {
				v, c, err := db.Get(key(id))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				return append([]byte(nil), v...)
			}
			victim := ds[3].DecisionId
			switch tamper {
			case "flip":
				v := get(victim)
				v[len(v)/2] ^= 0x01
				if err := db.Set(key(victim), v, pebble.Sync); err != nil {
					t.Fatal(err)
				}
			case "delete":
				if err := db.Delete(key(victim), pebble.Sync); err != nil {
					t.Fatal(err)
				}
			case "swap":
				a, b := get(ds[3].DecisionId), get(ds[4].DecisionId)
				if err := db.Set(key(ds[3].DecisionId), b, pebble.Sync); err != nil {
					t.Fatal(err)
				}
				if err := db.Set(key(ds[4].DecisionId), a, pebble.Sync); err != nil {
					t.Fatal(err)
				}
			}
			v := verify("")
			if v.GetOk() || v.GetBroken() == nil || v.GetBroken().GetDecisionId() != victim || v.GetBroken().GetSeq() == 0 || v.GetBroken().GetReason() == "" {
				t.Fatalf("tampered chain (%s of %s): %v", tamper, victim, v)
			}
			// Verifying from a later record trusts what is before it.
			if v := verify(ds[5].DecisionId); !v.GetOk() {
				t.Errorf("verify from after the damage: %v", v)
			}
		})
	}
}

// Replay reproduces random decisions exactly, through the real server.
func TestReplayReproducesRandomDecisions(t *testing.T) {
	n := 2000
	switch {
	case testing.Short():
		n = 200
	case raceEnabled:
		n = 1000 // ~20 s under the race detector on two cores
	}
	s := startAppealServer(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 24))
	now := s.clk.Now().Add(-time.Hour)
	events := make([]*riskv1.Event, n)
	for i := range events {
		events[i] = randomEvent(rng, i, now.Add(time.Duration(i)*time.Second))
	}
	ids := make([]string, n)
	listHits := 0
	start := time.Now()
	var wg sync.WaitGroup
	risk := s.risk(protoConnect, s.creds.Service)
	evaluate := func(from, to int) {
		jobs := make(chan int)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					res, err := risk.Evaluate(ctx, connect.NewRequest(&riskv1.EvaluateRequest{Event: events[i]}))
					if err != nil {
						t.Errorf("evaluate %d: %v", i, err)
						continue
					}
					ids[i] = res.Msg.GetDecision().GetDecisionId()
				}
			}()
		}
		for i := from; i < to; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
	}
	evaluate(0, n/2)
	// Halfway, analysts allow some accounts and block some devices: replay
	// must read the lists as they stood at each decision.
	s.clk.Advance(time.Second)
	ls := s.eng.Lists()
	for _, l := range []struct{ name, kind string }{{"allowed_accounts", ingest.KindAccount}, {"blocked_devices", ingest.KindDevice}} {
		if _, err := ls.Create(l.name, lists.Identifier, lists.CreateOptions{IdentifierKind: l.kind}); err != nil && !errors.Is(err, lists.ErrExists) {
			t.Fatal(err)
		}
	}
	for _, v := range []struct{ list, value string }{{"allowed_accounts", "acct-3"}, {"allowed_accounts", "acct-7"}, {"blocked_devices", "dev-2"}, {"blocked_devices", "dev-5"}} {
		if err := ls.Add(v.list, v.value, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	evaluate(n/2, n)
	t.Logf("evaluated %d in %v", n, time.Since(start))
	start = time.Now()
	dl := s.decisionLog(protoConnect, s.creds.Analyst)
	replays := make([]*riskv1.ReplayDecisionResponse, n)
	jobs := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				res, err := dl.ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: ids[i]}))
				if err != nil {
					t.Errorf("replay %d (%s): %v", i, ids[i], err)
					continue
				}
				replays[i] = res.Msg
			}
		}()
	}
	for i, id := range ids {
		if id != "" {
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	t.Logf("replayed %d in %v", n, time.Since(start))
	fired, outcomes := 0, map[riskv1.Outcome]int{}
	for i, r := range replays {
		if r == nil {
			continue
		}
		if !r.GetMatches() || r.GetRulesetVersion() != r.GetRecordedRulesetVersion() {
			t.Fatalf("replay %d: %v", i, r)
		}
		if len(r.GetReasons()) > 0 {
			fired++
		}
		for _, rs := range r.GetReasons() {
			if rs.GetRuleId() == "allow.allowlisted_account" || rs.GetRuleId() == "block.blocked_device" {
				listHits++
			}
		}
		outcomes[r.GetOutcome()]++
	}
	// The workload must exercise the rules, or matching proves little.
	if fired < n/20 || len(outcomes) < 2 {
		t.Errorf("random workload too tame: %d of %d fired a rule; outcomes %v", fired, n, outcomes)
	}
	if listHits == 0 {
		t.Error("no decision hit a list: the list half of the workload proves nothing")
	}
	t.Logf("%d decisions replayed; %d fired rules, %d list rules; outcomes %v", n, fired, listHits, outcomes)
}

// randomEvent draws logins (with failures), payments and check-ins over a
// small population, so that features accumulate and rules fire.
func randomEvent(rng *rand.Rand, i int, at time.Time) *riskv1.Event {
	acct := fmt.Sprintf("acct-%d", rng.IntN(40))
	dev := fmt.Sprintf("dev-%d", rng.IntN(25))
	id := fmt.Sprintf("rnd-%d", i)
	switch rng.IntN(4) {
	case 3:
		// A device report: later events from the device are filled from
		// its profile, and replay must see what the rules saw.
		return &riskv1.Event{
			EventId: id, Type: riskv1.EventType_EVENT_TYPE_DEVICE_REPORT, OccurredAt: timestamppb.New(at), AccountId: acct,
			Device: &riskv1.Device{DeviceId: dev, Platform: "android", Model: "Redmi", Rooted: rng.IntN(3) == 0,
				HookFrameworks: []string{"xposed"}[:rng.IntN(2)], InstalledPackages: []string{"com.lexa.fakegps", "com.tencent.mm"}[:rng.IntN(3)]},
		}
	case 0:
		ev := loginEvent(id, acct, dev, rng.IntN(3) > 0, at)
		ev.Network.Ip = fmt.Sprintf("198.51.100.%d", rng.IntN(4))
		return ev
	case 1:
		return paymentEvent(id, acct, dev, fmt.Sprintf("payee-%d", rng.IntN(5)), int64(rng.IntN(2000)+1), at)
	default:
		ev := attendanceEvent(id, acct, dev, fmt.Sprintf("site-%d", rng.IntN(3)), at)
		ev.Location.Mocked = rng.IntN(5) == 0
		ev.Device.Rooted = rng.IntN(7) == 0
		// The stored event keeps accuracy_m coarsened to at least 80 m
		// (ingest), so a fix claiming better than that cannot be replayed
		// exactly by a rule reading it (att.implausible_accuracy's "< 5");
		// draw from what the store keeps as sent.
		ev.Location.AccuracyM = float64(80 + rng.IntN(620))
		return ev
	}
}

// A record whose outcome no longer follows from its event and features is
// a mismatch (FailedPrecondition naming the difference); another rule-set
// version shows what it would decide without error.
func TestReplayMismatchAndOtherVersion(t *testing.T) {
	var eng *engine.Engine
	s := startAppealServer(t)
	eng = s.eng
	ctx := context.Background()
	d := s.evaluate(mockedCheckIn("rep-1", "acct-x", s.clk.Now()))
	dl := s.decisionLog(protoConnect, s.creds.Analyst)

	// A stricter set: every attendance check-in is denied.
	files := append(rules.BundledFiles(), rules.File{Name: "extra.yaml", Data: []byte(`rules:
  - id: test.deny_all_checkins
    applies_to: [ATTENDANCE]
    when: "true"
    action: deny
    reason: {en: "denied", zh: "拒绝"}
`)})
	strict, err := rules.Compile(files, rules.CompileOptions{Features: eng.Rules().Features()})
	if err != nil {
		t.Fatal(err)
	}
	recorded := eng.Rules()
	eng.SetRules(strict)
	res, err := dl.ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.DecisionId, RulesetVersion: strict.Version()}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Msg.GetMatches() || res.Msg.GetOutcome() != riskv1.Outcome_OUTCOME_DENY || len(res.Msg.GetDifferences()) == 0 || res.Msg.GetRecordedOutcome() != d.GetOutcome() {
		t.Errorf("replay with a stricter set: %v", res.Msg)
	}
	// The recorded version is still replayable after the swap (the bundled set).
	if recorded.Version() == strict.Version() {
		t.Fatal("versions collide")
	}
	if _, err := dl.ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.DecisionId})); err != nil {
		t.Errorf("replay with the recorded bundled version after a swap: %v", err)
	}
	_, err = dl.ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.DecisionId, RulesetVersion: "v999"}))
	wantCode(t, "unknown version", err, connect.CodeNotFound)

	// Edit the stored record's score: replay no longer reproduces it.
	u := ulid.MustParse(d.DecisionId)
	k := append([]byte{keys.DecisionRecord}, u[:]...)
	v, c, err := eng.DB().Get(k)
	if err != nil {
		t.Fatal(err)
	}
	// 0x01 || seq (8) || uvarint len(pseudonym) || pseudonym || Decision.
	rec := append([]byte(nil), v...)
	c.Close()
	plen, nb := binary.Uvarint(rec[9:])
	head := 9 + nb + int(plen)
	stored := &riskv1.Decision{}
	if rec[0] != 1 || proto.Unmarshal(rec[head:], stored) != nil {
		t.Fatalf("unexpected record layout")
	}
	stored.Score += 7
	data, _ := proto.MarshalOptions{Deterministic: true}.Marshal(stored)
	if err := eng.DB().Set(k, append(rec[:head:head], data...), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, err = dl.ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.DecisionId}))
	wantCode(t, "replay of an edited record", err, connect.CodeFailedPrecondition)
	var ce *connect.Error
	if errors.As(err, &ce) && !strings.Contains(ce.Message(), "score") {
		t.Errorf("mismatch does not name the score: %v", ce.Message())
	}
}

// Independence end to end: the analyst who published a change to a rule may
// not resolve an appeal on a decision that rule made; an admin may. Replay
// of that decision uses the published version from the rules store.
func TestIndependenceWithRulesStore(t *testing.T) {
	s := startAppealServer(t)
	ctx := context.Background()
	if s.eng.RuleStore() == nil {
		t.Skip("engine has no rules store")
	}
	// The analyst rewords att.mock_location and publishes it through the API.
	var files []*riskv1.RuleFile
	for _, f := range s.eng.Rules().Files() {
		data := strings.Replace(string(f.Data), "reported a simulated (mock) location", "reported a mock location", 1)
		files = append(files, &riskv1.RuleFile{Name: f.Name, Content: data})
	}
	rs := riskv1connect.NewRulesServiceClient(httpClient(protoConnect), s.url, clientOpts(protoConnect, s.creds.Analyst)...)
	if _, err := rs.Publish(ctx, connect.NewRequest(&riskv1.PublishRequest{Files: files, Note: "wording"})); err != nil {
		t.Fatal(err)
	}
	d := s.evaluate(mockedCheckIn("indep-1", "acct-i", s.clk.Now()))
	if !firedRule(d, "att.mock_location") || !strings.Contains(d.GetReasons()[0].GetMessageEn()+d.GetReasons()[len(d.GetReasons())-1].GetMessageEn(), "reported a mock location") {
		t.Fatalf("the analyst's version did not decide: %v", d.GetReasons())
	}
	if rp, err := s.decisionLog(protoConnect, s.creds.Analyst).ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.DecisionId})); err != nil || !rp.Msg.GetMatches() {
		t.Errorf("replay with the published version: %v %v", rp, err)
	}
	a, err := s.file(s.subject("acct-i"), d.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(tok string) error {
		_, err := s.appeals(protoConnect, tok).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{
			AppealId: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "The location was mocked."}))
		return err
	}
	wantCode(t, "the rule's author resolving", resolve(s.creds.Analyst), connect.CodePermissionDenied)
	wantCode(t, "an admin resolving", resolve(s.creds.Admin), 0)
}

// A remedy never shortens an allowance the account already has.
func TestRemedyKeepsLongerAllowance(t *testing.T) {
	s := startAppealServer(t)
	ctx := context.Background()
	d := s.evaluate(mockedCheckIn("keep-1", "acct-k", s.clk.Now()))
	ls := s.eng.Lists()
	if _, err := ls.Create("allowed_accounts", lists.Identifier, lists.CreateOptions{IdentifierKind: ingest.KindAccount}); err != nil && !errors.Is(err, lists.ErrExists) {
		t.Fatal(err)
	}
	if err := ls.Add("allowed_accounts", "acct-k", time.Time{}); err != nil {
		t.Fatal(err)
	}
	a, err := s.file(s.subject("acct-k"), d.DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.appeals(protoConnect, s.creds.Admin).ResolveAppeal(ctx, connect.NewRequest(&riskv1.ResolveAppealRequest{
		AppealId: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED, Reason: "ok", RemedyDays: 3})); err != nil {
		t.Fatal(err)
	}
	s.clk.Advance(10 * 24 * time.Hour)
	if later := s.evaluate(mockedCheckIn("keep-2", "acct-k", s.clk.Now())); later.GetOutcome() != riskv1.Outcome_OUTCOME_ALLOW {
		t.Errorf("the permanent allowance was cut to the remedy's 3 days: %v %v", later.GetOutcome(), later.GetReasons())
	}
}

// Tampering while riskd is down is found after it restarts.
func TestVerifyChainAfterOfflineTampering(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	setup := serverSetup{dir: filepath.Join(t.TempDir(), "data"), hooks: Hooks{Clock: clk},
		config: func(c *Config) { c.RateLimitUser, c.RateLimitService, c.RateLimitSubject = 0, 0, 0 }}
	s := startServer(t, setup)
	var ids []string
	for i := range 5 {
		ids = append(ids, s.evaluate(loginEvent(fmt.Sprintf("off-%d", i), "acct-o", "dev-o", true, clk.Now().Add(time.Duration(i)*time.Millisecond))).DecisionId)
	}
	s.stop()

	db, err := pebble.Open(setup.dir, &pebble.Options{Merger: features.Merger()})
	if err != nil {
		t.Fatal(err)
	}
	u := ulid.MustParse(ids[1])
	k := append([]byte{keys.DecisionRecord}, u[:]...)
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), v...)
	c.Close()
	flipped[len(flipped)-1] ^= 0x80
	if err := db.Set(k, flipped, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, setup)
	res, err := s2.decisionLog(protoGRPC, s2.creds.Analyst).VerifyChain(context.Background(), connect.NewRequest(&riskv1.VerifyChainRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Msg.GetOk() || res.Msg.GetBroken().GetDecisionId() != ids[1] {
		t.Fatalf("offline tampering of %s: %v", ids[1], res.Msg)
	}
}
