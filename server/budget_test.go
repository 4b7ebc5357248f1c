package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

// stallFS is the OS filesystem whose syncs stall while stall > 0: a disk
// that stops answering.
type stallFS struct {
	vfs.FS
	stall atomic.Int64 // nanoseconds each sync sleeps
}

type stallFile struct {
	vfs.File
	fs *stallFS
}

func (f stallFile) wait() {
	if d := f.fs.stall.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
}

func (f stallFile) Sync() error { f.wait(); return f.File.Sync() }

func (f stallFile) SyncData() error { f.wait(); return f.File.SyncData() }

func (f stallFile) SyncTo(length int64) (bool, error) { f.wait(); return f.File.SyncTo(length) }

func (fs *stallFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	return stallFile{f, fs}, nil
}

func (fs *stallFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return stallFile{f, fs}, nil
}

func (fs *stallFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	return stallFile{f, fs}, nil
}

// A stalled disk makes Evaluate answer on time with the fail mode, marked
// degraded; the decision lands once the disk answers, and a retry returns it.
func TestBudgetStalledStore(t *testing.T) {
	fs := &stallFS{FS: vfs.Default}
	s := startServer(t, serverSetup{hooks: Hooks{Engine: func(o *engine.Options) {
		o.FS = fs
		o.Budget = 50 * time.Millisecond
	}}})
	s.evaluate(loginEvent("warm", "acct-b", "dev-b", true, time.Now()))

	fs.stall.Store(int64(2 * time.Second))
	client := s.risk(protoConnect, s.creds.Service)
	tests := []struct {
		ev   *riskv1.Event
		want riskv1.Outcome
	}{
		{paymentEvent("stall-pay", "acct-b", "dev-b", "payee", 500, time.Now()), riskv1.Outcome_OUTCOME_REVIEW},
		{loginEvent("stall-login", "acct-b", "dev-b", true, time.Now()), riskv1.Outcome_OUTCOME_ALLOW},
		{attendanceEvent("stall-att", "acct-b", "dev-b", "site-1", time.Now()), riskv1.Outcome_OUTCOME_REVIEW},
	}
	for _, tc := range tests {
		start := time.Now()
		res, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: tc.ev}))
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		d := res.Msg.GetDecision()
		if !d.GetDegraded() || d.GetOutcome() != tc.want {
			t.Errorf("%s: outcome %v degraded %v, want %v degraded", tc.ev.EventId, d.GetOutcome(), d.GetDegraded(), tc.want)
		}
		// The 50 ms budget plus the round trip, with room for a loaded
		// machine; far below the 2 s the disk takes to answer.
		if took > time.Second {
			t.Errorf("%s: answered after %v", tc.ev.EventId, took)
		}
	}
	fs.stall.Store(0)
	// Once the disk answers, the decisions the pipeline submitted are stored.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := s.evaluate(paymentEvent("stall-pay", "acct-b", "dev-b", "payee", 500, time.Now()))
		if !d.GetDegraded() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision never recorded: %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An evaluation that overran its budget keeps its slot until its pipeline
// ends: with the disk stalled, MaxInFlight overruns answer degraded and the
// next request is shed (resource_exhausted) instead of starting one more
// pipeline that would hold its memory until the disk answers.
func TestBudgetOverrunsHoldTheirSlots(t *testing.T) {
	const slots = 4
	fs := &stallFS{FS: vfs.Default}
	var eng atomic.Pointer[engine.Engine]
	s := startServer(t, serverSetup{hooks: Hooks{
		Engine: func(o *engine.Options) { o.FS = fs; o.Budget = 50 * time.Millisecond; o.MaxInFlight = slots },
		Opened: func(e *engine.Engine) { eng.Store(e) },
	}})
	s.evaluate(loginEvent("warm", "acct-s", "dev-s", true, time.Now()))

	fs.stall.Store(int64(3 * time.Second))
	client := s.risk(protoConnect, s.creds.Service)
	errs := make(chan error, slots)
	for i := range slots {
		go func() {
			res, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{
				Event: loginEvent(fmt.Sprintf("slot-%d", i), "acct-s", "dev-s", true, time.Now())}))
			if err == nil && !res.Msg.GetDecision().GetDegraded() {
				err = fmt.Errorf("slot-%d: not degraded with the disk stalled", i)
			}
			errs <- err
		}()
	}
	for range slots {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := eng.Load().Stats().InFlight; n != slots {
		t.Errorf("%d evaluations in flight after %d overran with the disk stalled, want %d", n, slots, slots)
	}
	_, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{
		Event: loginEvent("one-more", "acct-s", "dev-s", true, time.Now())}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("one more evaluation while the overruns' pipelines wait for the disk: %v, want resource_exhausted", err)
	}
	fs.stall.Store(0)
	// The pipelines end once the disk answers, and give their slots back.
	for deadline := time.Now().Add(15 * time.Second); eng.Load().Stats().InFlight != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d evaluations still in flight after the disk answered", eng.Load().Stats().InFlight)
		}
	}
	if d := s.evaluate(loginEvent("after", "acct-s", "dev-s", true, time.Now())); d.GetDegraded() {
		t.Errorf("degraded after the disk answered: %s", d.GetDegradedReason())
	}
}

// A rule that fails at run time is an internal fault: Evaluate answers with
// the fail mode, degraded, and records that decision.
func TestBudgetRuleFault(t *testing.T) {
	faulty := rules.File{Name: "faulty.yaml", Data: []byte(`rules:
  - id: test.divides_by_zero
    description: fails at run time for an amount of 500
    applies_to: [PAYMENT]
    when: payment.amount_minor % (payment.amount_minor - 500) == 0
    score: 10
    reason: {en: "never", zh: "从不"}
`)}
	set, err := rules.Compile(append(rules.BundledFiles(), faulty), rules.CompileOptions{Features: features.DefaultCatalog().Defs()})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverSetup{hooks: Hooks{Engine: func(o *engine.Options) { o.Rules = set }}})
	start := time.Now()
	d := s.evaluate(paymentEvent("fault-1", "acct-f", "dev-f", "payee-f", 500, time.Now()))
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("answered after %v", took)
	}
	if !d.GetDegraded() || d.GetOutcome() != riskv1.Outcome_OUTCOME_REVIEW {
		t.Fatalf("outcome %v degraded %v, want REVIEW degraded", d.GetOutcome(), d.GetDegraded())
	}
	res, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()}))
	if err != nil {
		t.Fatalf("degraded decision not recorded: %v", err)
	}
	if !res.Msg.GetDecision().GetDegraded() || res.Msg.GetDecision().GetDegradedReason() == "" {
		t.Errorf("stored decision: %v", res.Msg.GetDecision())
	}
	if !strings.Contains(s.logs.String(), "rule evaluation failed") {
		t.Error("the fault was not logged")
	}
	// Other amounts are decided normally.
	if d := s.evaluate(paymentEvent("fault-2", "acct-f", "dev-f", "payee-f", 501, time.Now())); d.GetDegraded() {
		t.Errorf("amount 501 degraded: %s", d.GetDegradedReason())
	}
}

// Past capacity riskd sheds at once with resource_exhausted instead of
// queueing; what it accepts is answered within the budget.
func TestOverloadSheds(t *testing.T) {
	fs := &stallFS{FS: vfs.Default}
	s := startServer(t, serverSetup{hooks: Hooks{Engine: func(o *engine.Options) {
		o.FS = fs
		o.MaxInFlight = 4
		o.Budget = 3 * time.Second
	}}})
	s.evaluate(loginEvent("warm", "acct-o", "dev-o", true, time.Now()))
	const stall = 500 * time.Millisecond
	fs.stall.Store(int64(stall))
	defer fs.stall.Store(0)

	const callers = 64
	b := burst(t, s, "ol", callers)
	if b.shed == 0 || b.accepted == 0 {
		t.Fatalf("shed %d, accepted %d: want both", b.shed, b.accepted)
	}
	// Shedding costs a round trip, not a wait for the disk: every shed
	// answer comes back well before one sync would; accepted calls wait for
	// their group commit and still end within the budget.
	if b.slowestShed > stall/2 {
		t.Errorf("slowest shed answer took %v; one sync takes %v", b.slowestShed, stall)
	}
	if b.slowestAccepted > 3*time.Second+time.Second {
		t.Errorf("slowest accepted answer took %v", b.slowestAccepted)
	}
	t.Logf("shed %d (slowest %v), accepted %d (slowest %v)", b.shed, b.slowestShed, b.accepted, b.slowestAccepted)
}

// While answers are slow, riskd admits fewer evaluations at once than
// MaxInFlight (the adaptive limit, engine/admission.go), and sheds the rest
// at once, so that those it accepts are not slowed further by the ones it
// could not answer in time.
func TestOverloadAdaptiveLimit(t *testing.T) {
	fs := &stallFS{FS: vfs.Default}
	const floor = 4
	s := startServer(t, serverSetup{hooks: Hooks{Engine: func(o *engine.Options) {
		o.FS = fs
		o.MaxInFlight, o.MinInFlight = 256, floor
		o.AdmissionTarget = time.Microsecond // every answer is slow
		o.Budget = 3 * time.Second
	}}})
	limit := func() string { return s.metric("riskd_evaluations_in_flight_limit") }
	if got := limit(); got != "256" {
		t.Fatalf("limit %s before any answer, want 256", got)
	}
	// A tenth less every 10 ms of slow answers: 256 comes down to the
	// floor in a few hundred milliseconds.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; limit() != strconv.Itoa(floor); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("limit %s after %d slow answers, want %d", limit(), i, floor)
		}
		s.evaluate(loginEvent(fmt.Sprintf("al-warm-%d", i), "acct-al", "dev-al", true, time.Now()))
	}

	const stall = 500 * time.Millisecond
	fs.stall.Store(int64(stall))
	defer fs.stall.Store(0)
	const callers = 32
	b := burst(t, s, "al", callers)
	if b.slowestShed > stall/2 {
		t.Errorf("slowest shed answer took %v; one sync takes %v", b.slowestShed, stall)
	}
	if b.accepted == 0 || b.accepted > floor {
		t.Errorf("accepted %d of %d with the limit at %d", b.accepted, callers, floor)
	}
	if b.accepted+b.shed != callers {
		t.Errorf("accepted %d, shed %d of %d", b.accepted, b.shed, callers)
	}
	t.Logf("limit %d: accepted %d, shed %d", floor, b.accepted, b.shed)
}

// The admission settings reach the engine: riskd's own flags, not only the
// engine's options.
func TestAdmissionSettings(t *testing.T) {
	cfg, err := LoadConfig([]string{"--max-in-flight", "64", "--min-in-flight", "64"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverSetup{config: func(c *Config) {
		c.MaxInFlight, c.MinInFlight, c.AdmissionTarget = cfg.MaxInFlight, cfg.MinInFlight, cfg.AdmissionTarget
	}})
	if got := s.metric("riskd_evaluations_in_flight_limit"); got != "64" {
		t.Errorf("admission limit %s on /metrics, want --max-in-flight's 64", got)
	}
}

// burstResult tallies a burst of concurrent evaluations.
type burstResult struct {
	accepted, shed               int
	slowestAccepted, slowestShed time.Duration
}

// burst sends n logins at once, each from its own account, and tallies
// what came back; any code but ok and resource_exhausted fails the test.
func burst(t *testing.T, s *testServer, prefix string, n int) burstResult {
	t.Helper()
	type outcome struct {
		code connect.Code
		took time.Duration
	}
	results := make(chan outcome, n)
	client := s.risk(protoConnect, s.creds.Service)
	for i := range n {
		go func() {
			start := time.Now()
			_, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{
				Event: loginEvent(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("acct-%s-%d", prefix, i), "dev-"+prefix, true, time.Now()),
			}))
			c := connect.Code(0)
			if err != nil {
				c = connect.CodeOf(err)
			}
			results <- outcome{c, time.Since(start)}
		}()
	}
	var b burstResult
	for range n {
		switch r := <-results; r.code {
		case connect.CodeResourceExhausted:
			b.shed++
			b.slowestShed = max(b.slowestShed, r.took)
		case 0:
			b.accepted++
			b.slowestAccepted = max(b.slowestAccepted, r.took)
		default:
			t.Errorf("unexpected code %v", r.code)
		}
	}
	return b
}

// Past capacity an Evaluate from a service is shed before its body is read:
// a body that is not even protobuf is answered resource_exhausted, over
// every protocol, and counted on /metrics. A caller without a service token
// meets the handler's refusal as it would without load.
func TestOverloadShedsBeforeDecoding(t *testing.T) {
	fs := &stallFS{FS: vfs.Default}
	s := startServer(t, serverSetup{hooks: Hooks{Engine: func(o *engine.Options) {
		o.FS = fs
		o.MaxInFlight, o.MinInFlight = 1, 1
		o.Budget = 3 * time.Second
	}}})
	s.evaluate(loginEvent("sbd-warm", "acct-sbd", "dev-sbd", true, time.Now()))
	shedBefore := s.metricLabelled("riskd_requests_total", riskv1connect.RiskServiceEvaluateProcedure, "resource_exhausted")

	// One evaluation holds the only slot while its commit's sync stalls.
	fs.stall.Store(int64(time.Second))
	held := make(chan error, 1)
	go func() {
		_, err := s.risk(protoConnect, s.creds.Service).Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{
			Event: loginEvent("sbd-held", "acct-sbd", "dev-sbd", true, time.Now()),
		}))
		held <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); !s.eng.Overloaded(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the engine never filled its one slot")
		}
	}

	post := func(token, contentType string, body []byte) (int, string) {
		req, err := http.NewRequest(http.MethodPost, s.url+riskv1connect.RiskServiceEvaluateProcedure, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	if status, body := post(s.creds.Service, "application/proto", garbage); status != http.StatusTooManyRequests || !strings.Contains(body, `"resource_exhausted"`) {
		t.Errorf("undecodable body while overloaded: %d %s, want 429 resource_exhausted (shed before decoding)", status, body)
	}
	valid, err := proto.Marshal(&riskv1.EvaluateRequest{Event: loginEvent("sbd-other", "acct-sbd", "dev-sbd", true, time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := post("", "application/proto", valid); status != http.StatusUnauthorized {
		t.Errorf("no token while overloaded: %d %s, want 401", status, body)
	}
	if status, body := post(s.creds.Analyst, "application/proto", valid); status != http.StatusForbidden {
		t.Errorf("analyst token while overloaded: %d %s, want the handler's 403, not the shed", status, body)
	}
	for _, p := range protocols {
		_, err := s.risk(p, s.creds.Service).Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{
			Event: loginEvent("sbd-"+string(p), "acct-sbd-"+string(p), "dev-sbd", true, time.Now()),
		}))
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Errorf("%s while overloaded: %v, want resource_exhausted", p, err)
		}
	}
	if got := s.metricLabelled("riskd_requests_total", riskv1connect.RiskServiceEvaluateProcedure, "resource_exhausted"); got != shedBefore+4 {
		t.Errorf("resource_exhausted on /metrics went %d -> %d, want 4 more", shedBefore, got)
	}

	fs.stall.Store(0)
	if err := <-held; err != nil {
		t.Fatalf("the held evaluation: %v", err)
	}
	for s.eng.Overloaded() {
		time.Sleep(time.Millisecond)
	}
	// The shed events changed nothing: decided now, they are new.
	d := s.evaluate(loginEvent("sbd-connect", "acct-sbd-connect", "dev-sbd", true, time.Now()))
	if d.GetDegraded() {
		t.Errorf("after the stall: %v", d)
	}
}
