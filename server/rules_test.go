package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/bits-and-blooms/bloom/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/clock"
)

func (s *testServer) rulesClient(token string) riskv1connect.RulesServiceClient {
	return riskv1connect.NewRulesServiceClient(httpClient(protoConnect), s.url, clientOpts(protoConnect, token)...)
}

func (s *testServer) listsClient(token string) riskv1connect.ListsServiceClient {
	return riskv1connect.NewListsServiceClient(httpClient(protoConnect), s.url, clientOpts(protoConnect, token)...)
}

// liveFiles returns the live version's files.
func liveFiles(t *testing.T, rc riskv1connect.RulesServiceClient) []*riskv1.RuleFile {
	t.Helper()
	res, err := rc.GetVersion(context.Background(), connect.NewRequest(&riskv1.GetVersionRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetFiles()
}

func withFile(files []*riskv1.RuleFile, name, content string) []*riskv1.RuleFile {
	out := append([]*riskv1.RuleFile(nil), files...)
	return append(out, &riskv1.RuleFile{Name: name, Content: content})
}

func reasonIDs(rs []*riskv1.Reason) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.GetRuleId())
	}
	sort.Strings(out)
	return out
}

func hasReason(rs []*riskv1.Reason, id string) bool {
	for _, r := range rs {
		if r.GetRuleId() == id {
			return true
		}
	}
	return false
}

const shadowRule = `rules:
  - id: test.deny_logins
    description: every successful login (a test rule)
    applies_to: [LOGIN]
    when: login.success
    action: deny
    mode: shadow
    reason: {en: "denied by a test", zh: "测试拒绝"}
    tests:
      - name: fires on success
        event: {type: LOGIN, login: {success: true}}
        expect: {fired: true, outcome: DENY}
`

func TestAnalystRuleLoop(t *testing.T) {
	s := startServer(t, serverSetup{})
	ctx := context.Background()
	rc := s.rulesClient(s.creds.Analyst)
	live := liveFiles(t, rc)

	// A typo: the error points at it and suggests the name meant.
	typo := withFile(live, "typo.yaml", `rules:
  - id: test.typo
    applies_to: [LOGIN]
    when: login.success && features.login_failure_account_10m >= 5
    action: challenge
    reason: {en: "x", zh: "x"}
`)
	v, err := rc.ValidateRules(ctx, connect.NewRequest(&riskv1.ValidateRulesRequest{Files: typo}))
	if err != nil {
		t.Fatal(err)
	}
	if v.Msg.GetValid() || len(v.Msg.GetErrors()) != 1 {
		t.Fatalf("validate a typo: %v", v.Msg)
	}
	e := v.Msg.GetErrors()[0]
	if e.GetFile() != "typo.yaml" || e.GetRuleId() != "test.typo" || e.GetLine() != 4 || e.GetColumn() != 28 || e.GetSuggestion() != "login_failures_account_10m" {
		t.Errorf("compile error %v, want typo.yaml:4:28 test.typo with a suggestion", e)
	}
	_, err = rc.PutDraft(ctx, connect.NewRequest(&riskv1.PutDraftRequest{Name: "typo", Files: typo}))
	wantCode(t, "put a draft that does not compile", err, connect.CodeInvalidArgument)
	if ce := new(connect.Error); err != nil && !strings.Contains(err.Error(), "typo.yaml:4:28") {
		t.Errorf("error %v does not place the problem (%T)", err, ce)
	}
	if ce, ok := err.(*connect.Error); ok && len(ce.Details()) == 0 {
		t.Error("no compile errors in the details")
	}

	// Draft, test, diff.
	draft := withFile(live, "test.yaml", shadowRule)
	if _, err := rc.PutDraft(ctx, connect.NewRequest(&riskv1.PutDraftRequest{Name: "shadow-deny", Files: draft})); err != nil {
		t.Fatal(err)
	}
	tr, err := rc.TestRules(ctx, connect.NewRequest(&riskv1.TestRulesRequest{Draft: "shadow-deny"}))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Msg.GetFailed() != 0 || tr.Msg.GetPassed() == 0 {
		t.Errorf("draft tests: %d passed, %d failed", tr.Msg.GetPassed(), tr.Msg.GetFailed())
	}
	diff, err := rc.DiffDraft(ctx, connect.NewRequest(&riskv1.DiffDraftRequest{Draft: "shadow-deny"}))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(diff.Msg.GetAdded()) != "[test.deny_logins]" || len(diff.Msg.GetRemoved())+len(diff.Msg.GetChanged()) != 0 ||
		!strings.Contains(diff.Msg.GetAddedText()["test.deny_logins"], "when: login.success") {
		t.Errorf("diff: %v", diff.Msg)
	}

	// Publish in shadow: the rule shows in shadow_reasons, never acts.
	pub, err := rc.Publish(ctx, connect.NewRequest(&riskv1.PublishRequest{Draft: "shadow-deny", Note: "try it in shadow"}))
	if err != nil {
		t.Fatal(err)
	}
	shadowV := pub.Msg.GetVersion().GetVersion()
	now := time.Now()
	d := s.evaluate(loginEvent("loop-1", "acct-loop", "dev-loop", true, now))
	if d.GetRulesetVersion() != shadowV || !hasReason(d.GetShadowReasons(), "test.deny_logins") || hasReason(d.GetReasons(), "test.deny_logins") || d.GetOutcome() == riskv1.Outcome_OUTCOME_DENY {
		t.Errorf("shadow: version %s (want %s), outcome %v, reasons %v, shadow %v", d.GetRulesetVersion(), shadowV, d.GetOutcome(), reasonIDs(d.GetReasons()), reasonIDs(d.GetShadowReasons()))
	}

	// Promote.
	mode, err := rc.SetRuleMode(ctx, connect.NewRequest(&riskv1.SetRuleModeRequest{RuleId: "test.deny_logins", Mode: riskv1.RuleMode_RULE_MODE_ACTIVE, Note: "promote"}))
	if err != nil {
		t.Fatal(err)
	}
	d = s.evaluate(loginEvent("loop-2", "acct-loop", "dev-loop", true, now.Add(time.Second)))
	if d.GetRulesetVersion() != mode.Msg.GetVersion().GetVersion() || d.GetOutcome() != riskv1.Outcome_OUTCOME_DENY || !hasReason(d.GetReasons(), "test.deny_logins") {
		t.Errorf("promoted: version %s, outcome %v, reasons %v", d.GetRulesetVersion(), d.GetOutcome(), reasonIDs(d.GetReasons()))
	}

	// Roll back in one step.
	if _, err := rc.Rollback(ctx, connect.NewRequest(&riskv1.RollbackRequest{Version: shadowV, Note: "too strict"})); err != nil {
		t.Fatal(err)
	}
	d = s.evaluate(loginEvent("loop-3", "acct-loop", "dev-loop", true, now.Add(2*time.Second)))
	if d.GetRulesetVersion() != shadowV || d.GetOutcome() == riskv1.Outcome_OUTCOME_DENY {
		t.Errorf("rolled back: version %s, outcome %v", d.GetRulesetVersion(), d.GetOutcome())
	}

	// History names who and when, newest first.
	h, err := rc.History(ctx, connect.NewRequest(&riskv1.HistoryRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, c := range h.Msg.GetChanges() {
		actions = append(actions, c.GetAction())
		if c.GetAction() != "bootstrap" && (c.GetAuthor().GetRole() != "analyst" || c.GetAuthor().GetToken() == "" || c.GetAt() == nil) {
			t.Errorf("change %v does not name who and when", c)
		}
	}
	if got := strings.Join(actions, ","); !strings.HasPrefix(got, "rollback,") || !strings.Contains(got, "set_mode,publish,put_draft") {
		t.Errorf("history actions %s", got)
	}

	// Only analysts and admins manage rules.
	_, err = s.rulesClient(s.creds.Service).ListVersions(ctx, connect.NewRequest(&riskv1.ListVersionsRequest{}))
	wantCode(t, "service lists versions", err, connect.CodePermissionDenied)
	_, err = rc.GetVersion(ctx, connect.NewRequest(&riskv1.GetVersionRequest{Version: "v99"}))
	wantCode(t, "unknown version", err, connect.CodeNotFound)
}

// raceRule fires on every login and names its set.
func raceRule(id string) string {
	return fmt.Sprintf(`rules:
  - id: %s
    applies_to: [LOGIN]
    when: login.success || !login.success
    score: 1
    reason: {en: "race", zh: "race"}
`, id)
}

// TestPublishWhileEvaluating swaps two sets whose rules fire differently
// while evaluations run: every decision names one whole set and carries
// exactly that set's reasons.
func TestPublishWhileEvaluating(t *testing.T) {
	s := startServer(t, serverSetup{})
	ctx := context.Background()
	rc := s.rulesClient(s.creds.Analyst)
	live := liveFiles(t, rc)
	publish := func(id string) string {
		res, err := rc.Publish(ctx, connect.NewRequest(&riskv1.PublishRequest{Files: withFile(live, "race.yaml", raceRule(id))}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetVersion().GetVersion()
	}
	va, vb := publish("race.a"), publish("race.b")
	want := map[string]string{va: "race.a", vb: "race.b"}

	stop := make(chan struct{})
	var swaps sync.WaitGroup
	swaps.Add(1)
	go func() {
		defer swaps.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := va
			if i%2 == 1 {
				v = vb
			}
			if _, err := rc.Rollback(ctx, connect.NewRequest(&riskv1.RollbackRequest{Version: v})); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	seen := make(chan string, 1000)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			risk := s.risk(protoConnect, s.creds.Service)
			for i := 0; i < 40; i++ {
				ev := loginEvent(fmt.Sprintf("race-%d-%d", g, i), fmt.Sprintf("acct-race-%d", g), "dev-race", true, time.Now())
				res, err := risk.Evaluate(ctx, connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
				if err != nil {
					t.Error(err)
					return
				}
				d := res.Msg.GetDecision()
				id, ok := want[d.GetRulesetVersion()]
				if !ok || d.GetDegraded() {
					t.Errorf("decision names version %q (degraded %v), want %s or %s", d.GetRulesetVersion(), d.GetDegraded(), va, vb)
					continue
				}
				other := "race.b"
				if id == "race.b" {
					other = "race.a"
				}
				if !hasReason(d.GetReasons(), id) || hasReason(d.GetReasons(), other) {
					t.Errorf("version %s gave reasons %v", d.GetRulesetVersion(), reasonIDs(d.GetReasons()))
				}
				seen <- d.GetRulesetVersion()
			}
		}()
	}
	wg.Wait()
	close(stop)
	swaps.Wait()
	close(seen)
	count := map[string]int{}
	for v := range seen {
		count[v]++
	}
	t.Logf("decisions per version: %v", count)
}

// TestListsOnDeviceMatching plays the device: it downloads the cheat_apps
// filter, matches its app list locally, and sends only what matched; a
// false match on the device never counts.
func TestListsOnDeviceMatching(t *testing.T) {
	s := startServer(t, serverSetup{})
	ctx := context.Background()
	// The app's back end fetches the filter with its service token.
	exp, err := s.listsClient(s.creds.Service).ExportList(ctx, connect.NewRequest(&riskv1.ExportListRequest{Name: "cheat_apps"}))
	if err != nil {
		t.Fatal(err)
	}
	var f bloom.BloomFilter
	if _, err := f.ReadFrom(bytes.NewReader(exp.Msg.GetFilter())); err != nil {
		t.Fatalf("filter in %s: %v", exp.Msg.GetFormat(), err)
	}
	apps := []string{"com.tencent.mm", "com.lexa.fakegps", "com.eg.android.AlipayGphone", "com.parallel.space.lite"}
	var flagged []string
	for _, a := range apps {
		if f.TestString(a) {
			flagged = append(flagged, a)
		}
	}
	if len(flagged) < 2 {
		t.Fatalf("device matched %v, want at least the two cheat apps", flagged)
	}
	// A false positive on the device: riskd must not count it.
	flagged = append(flagged, "com.example.not.a.cheat")
	ev := attendanceEvent("att-1", "acct-att", "dev-att", "site-1", time.Now())
	ev.Device.FlaggedPackages = flagged
	d := s.evaluate(ev)
	if got := d.GetFeatures()["cheat_packages_installed"].GetNumberValue(); got != 2 {
		t.Errorf("cheat_packages_installed = %v for flagged %v, want 2", got, flagged)
	}

	// Service tokens may only export.
	_, err = s.listsClient(s.creds.Service).AddEntries(ctx, connect.NewRequest(&riskv1.AddEntriesRequest{Name: "cheat_apps", Values: []string{"x"}}))
	wantCode(t, "service adds to a list", err, connect.CodePermissionDenied)
}

// TestAllowListExpiry: an allow-list entry with an expiry lets the account
// through until it expires.
func TestAllowListExpiry(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	s := startServer(t, serverSetup{hooks: Hooks{Clock: clk}})
	ctx := context.Background()
	lc := s.listsClient(s.creds.Analyst)
	_, err := lc.CreateList(ctx, connect.NewRequest(&riskv1.CreateListRequest{Name: "allowed_accounts", Kind: riskv1.ListKind_LIST_KIND_IDENTIFIER, IdentifierKind: "account_id"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lc.AddEntries(ctx, connect.NewRequest(&riskv1.AddEntriesRequest{Name: "allowed_accounts", Values: []string{"acct-vip"}, ExpiresAt: timestamppb.New(clk.Now().Add(time.Hour))}))
	if err != nil {
		t.Fatal(err)
	}
	// Stored pseudonymized.
	got, err := lc.GetList(ctx, connect.NewRequest(&riskv1.GetListRequest{Name: "allowed_accounts"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Msg.GetEntries()) != 1 || got.Msg.GetEntries()[0].GetValue() == "acct-vip" {
		t.Errorf("entries %v: want one pseudonym", got.Msg.GetEntries())
	}
	d := s.evaluate(loginEvent("vip-1", "acct-vip", "dev-vip", true, clk.Now()))
	if !hasReason(d.GetReasons(), "allow.allowlisted_account") || d.GetOutcome() != riskv1.Outcome_OUTCOME_ALLOW {
		t.Errorf("before expiry: outcome %v reasons %v", d.GetOutcome(), reasonIDs(d.GetReasons()))
	}
	clk.Advance(time.Hour + time.Second)
	d = s.evaluate(loginEvent("vip-2", "acct-vip", "dev-vip", true, clk.Now()))
	if hasReason(d.GetReasons(), "allow.allowlisted_account") {
		t.Errorf("after expiry the allow rule still fires: %v", reasonIDs(d.GetReasons()))
	}
	_, err = lc.CreateList(ctx, connect.NewRequest(&riskv1.CreateListRequest{Name: "allowed_accounts", Kind: riskv1.ListKind_LIST_KIND_PLAIN}))
	wantCode(t, "create twice", err, connect.CodeAlreadyExists)
	_, err = lc.GetList(ctx, connect.NewRequest(&riskv1.GetListRequest{Name: "nope"}))
	wantCode(t, "unknown list", err, connect.CodeNotFound)
}

// TestBacktestAgainstBruteForce records login traffic, then backtests a
// candidate rule on failures and compares its hits with a plain scan.
func TestBacktestAgainstBruteForce(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	s := startServer(t, serverSetup{hooks: Hooks{Clock: clk}})
	ctx := context.Background()
	start := clk.Now().Add(-time.Hour)
	type rec struct {
		acct    string
		at      time.Time
		success bool
	}
	var evs []rec
	for i := 0; i < 150; i++ {
		r := rec{acct: fmt.Sprintf("acct-bt-%d", i%7), at: start.Add(time.Duration(i) * 17 * time.Second), success: i%2 != 0}
		evs = append(evs, r)
		s.evaluate(loginEvent(fmt.Sprintf("bt-%d", i), r.acct, fmt.Sprintf("dev-bt-%d", i%5), r.success, r.at))
	}
	// Brute force: failed logins of the account in (t-10m, t) before this one.
	want := 0
	for i, e := range evs {
		n := 0
		for _, p := range evs[:i] {
			if p.acct == e.acct && !p.success && p.at.After(e.at.Add(-10*time.Minute)) {
				n++
			}
		}
		if !e.success && n >= 2 {
			want++
		}
	}
	rc := s.rulesClient(s.creds.Analyst)
	cand := withFile(liveFiles(t, rc), "bt.yaml", `rules:
  - id: bt.repeated_failures
    applies_to: [LOGIN]
    when: "!login.success && features.login_failures_account_10m >= 2"
    action: review
    reason: {en: "x", zh: "x"}
`)
	res, err := rc.Backtest(ctx, connect.NewRequest(&riskv1.BacktestRequest{
		From: timestamppb.New(start), To: timestamppb.New(clk.Now().Add(time.Minute)), CandidateFiles: cand,
	}))
	if err != nil {
		t.Fatal(err)
	}
	m := res.Msg
	if m.GetEvents() != int64(len(evs)) {
		t.Errorf("backtest saw %d events, want %d", m.GetEvents(), len(evs))
	}
	var got *riskv1.RuleBacktestResult
	for _, r := range m.GetRules() {
		if r.GetRuleId() == "bt.repeated_failures" {
			got = r
		}
	}
	if got == nil || got.GetCandidateHits() != int64(want) || got.GetLiveHits() != 0 || got.GetLiveMode() != riskv1.RuleMode_RULE_MODE_UNSPECIFIED {
		t.Errorf("candidate rule %v, want %d candidate hits", got, want)
	}
	if want == 0 {
		t.Fatal("the traffic has no repeated failures: the test cannot fail")
	}
	var before, after int64
	for _, c := range m.GetBefore() {
		before += c.GetCount()
	}
	for _, c := range m.GetAfter() {
		after += c.GetCount()
	}
	if before != int64(len(evs)) || after != int64(len(evs)) {
		t.Errorf("outcome mix sums %d/%d, want %d", before, after, len(evs))
	}
	t.Logf("backtest: %d events, %d changed, %.0f events/s", m.GetEvents(), m.GetChanged(), m.GetEventsPerSecond())

	// Stats: the live set's counters through the API.
	st, err := rc.RuleStats(ctx, connect.NewRequest(&riskv1.RuleStatsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var evals int64
	for _, r := range st.Msg.GetRules() {
		evals = max(evals, r.GetEvaluations())
	}
	if st.Msg.GetLiveVersion() == "" || len(st.Msg.GetRules()) == 0 || evals == 0 {
		t.Errorf("stats: %v", st.Msg)
	}
}

// TestRulesDirBootstrapsAndFeaturesShow: riskd --rules DIR publishes DIR's
// files as v1; ShowFeatures pseudonymizes the raw value it is given.
func TestRulesDirBootstrapsAndFeaturesShow(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "only.yaml"), []byte(raceRule("only.rule")), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverSetup{config: func(c *Config) { c.RulesDir = dir }})
	ctx := context.Background()
	vs, err := s.rulesClient(s.creds.Analyst).ListVersions(ctx, connect.NewRequest(&riskv1.ListVersionsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Msg.GetVersions()) != 1 || vs.Msg.GetLiveVersion() != "v1" || fmt.Sprint(vs.Msg.GetVersions()[0].GetRuleIds()) != "[only.rule]" {
		t.Errorf("versions %v", vs.Msg)
	}
	d := s.evaluate(loginEvent("show-1", "acct-show", "dev-show", false, time.Now()))
	if fmt.Sprint(reasonIDs(d.GetReasons())) != "[only.rule]" {
		t.Errorf("reasons %v", reasonIDs(d.GetReasons()))
	}
	fc := riskv1connect.NewFeaturesServiceClient(httpClient(protoConnect), s.url, clientOpts(protoConnect, s.creds.Analyst)...)
	res, err := fc.ShowFeatures(ctx, connect.NewRequest(&riskv1.ShowFeaturesRequest{Kind: riskv1.EntityKind_ENTITY_KIND_ACCOUNT, Value: "acct-show"}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range res.Msg.GetFeatures() {
		got[f.GetName()] = f.GetValue().GetNumberValue()
	}
	if got["login_failures_account_10m"] != 1 {
		t.Errorf("account features after one failed login: %v", got)
	}
	_, err = fc.ShowFeatures(ctx, connect.NewRequest(&riskv1.ShowFeaturesRequest{Kind: riskv1.EntityKind_ENTITY_KIND_IP, Value: "not-an-ip"}))
	wantCode(t, "show a bad IP", err, connect.CodeInvalidArgument)
	_, err = riskv1connect.NewFeaturesServiceClient(httpClient(protoConnect), s.url, clientOpts(protoConnect, s.creds.Service)...).
		ShowFeatures(ctx, connect.NewRequest(&riskv1.ShowFeaturesRequest{Kind: riskv1.EntityKind_ENTITY_KIND_ACCOUNT, Value: "acct-show"}))
	wantCode(t, "service shows features", err, connect.CodePermissionDenied)
}

// A backtest whose window holds more feature states than the server's
// bound (--backtest-max-states) fails with resource_exhausted and says what
// to do, instead of an internal error or the process running out of memory.
func TestBacktestPastTheStateBound(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	s := startServer(t, serverSetup{hooks: Hooks{Clock: clk}, config: func(c *Config) { c.BacktestMaxStates = 20 }})
	start := clk.Now().Add(-time.Hour)
	for i := range 30 {
		s.evaluate(loginEvent(fmt.Sprintf("big-%d", i), fmt.Sprintf("acct-big-%d", i), fmt.Sprintf("dev-big-%d", i), true, start.Add(time.Duration(i)*time.Minute)))
	}
	rc := s.rulesClient(s.creds.Analyst)
	_, err := rc.Backtest(context.Background(), connect.NewRequest(&riskv1.BacktestRequest{
		From: timestamppb.New(start), To: timestamppb.New(clk.Now().Add(time.Minute)),
	}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "shorter window") || !strings.Contains(err.Error(), "--backtest-max-states") {
		t.Fatalf("backtest past the bound: %v (code %v), want resource_exhausted naming the remedy", err, connect.CodeOf(err))
	}
	// Within the default bound the same window replays.
	if _, err := s.eng.Backtest(context.Background(), engine.BacktestOptions{From: start, To: clk.Now().Add(time.Minute), MaxStates: 1 << 20}); err != nil {
		t.Fatalf("the same window under a larger bound: %v", err)
	}
}
