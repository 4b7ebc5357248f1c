package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/rules"
)

// recordEvents writes n normalized events straight into e's event log
// (what Evaluate and Ingest record), spread over the hour before now: 5,000
// accounts, or n/20 for fewer events, so that each has a history.
func recordEvents(tb testing.TB, e *Engine, n int, now time.Time) (from, to time.Time) {
	tb.Helper()
	accounts := min(5000, max(n/20, 1))
	from = now.Add(-time.Hour)
	step := time.Hour / time.Duration(n+1)
	b := e.db.NewBatch()
	for i := 0; i < n; i++ {
		at := from.Add(time.Duration(i) * step)
		pb := &riskv1.Event{
			EventId: fmt.Sprintf("bt-%d", i), OccurredAt: timestamppb.New(at),
			AccountId: fmt.Sprintf("acct-%d", i%accounts),
			Device:    &riskv1.Device{DeviceId: fmt.Sprintf("dev-%d", i%7000), Platform: "android", InstalledPackages: []string{"com.tencent.mm", "com.lexa.fakegps"}},
			Network:   &riskv1.Network{Ip: fmt.Sprintf("203.0.%d.%d", (i/250)%250, i%250)},
		}
		switch i % 4 {
		case 0, 1:
			pb.Type = riskv1.EventType_EVENT_TYPE_LOGIN
			pb.Login = &riskv1.Login{Success: i%8 != 0, Method: "password"}
			pb.Location = &riskv1.Location{Latitude: 31.2 + float64(i%10)/100, Longitude: 121.4, AccuracyM: 20}
		case 2:
			pb.Type = riskv1.EventType_EVENT_TYPE_PAYMENT
			pb.Payment = &riskv1.Payment{AmountMinor: int64(100 + i%5000), Currency: "CNY", Kind: "order", PayeeAccountId: fmt.Sprintf("payee-%d", i%300)}
		default:
			pb.Type = riskv1.EventType_EVENT_TYPE_ATTENDANCE
			pb.Attendance = &riskv1.Attendance{SiteId: "site-1", Method: "gps"}
			pb.Location = &riskv1.Location{Latitude: 39.9, Longitude: 116.4, AccuracyM: 15}
		}
		_, stored, err := e.norm.Normalize(pb)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := ingest.PutEvent(b, stored); err != nil {
			tb.Fatal(err)
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(nil); err != nil {
				tb.Fatal(err)
			}
			b = e.db.NewBatch()
		}
	}
	if err := b.Commit(nil); err != nil {
		tb.Fatal(err)
	}
	return from, now
}

// storeDigest hashes every key and value in the store.
func storeDigest(tb testing.TB, e *Engine) [32]byte {
	tb.Helper()
	it, err := e.db.NewIter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer it.Close()
	h := sha256.New()
	for it.First(); it.Valid(); it.Next() {
		h.Write(it.Key())
		v, err := it.ValueAndErr()
		if err != nil {
			tb.Fatal(err)
		}
		h.Write(v)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func openTestEngine(tb testing.TB, clk clock.Clock) *Engine {
	tb.Helper()
	e, err := Open(Options{DataDir: tb.TempDir(), PseudonymKey: []byte("0123456789abcdef0123456789abcdef"), Clock: clk})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// TestBacktestReadsOnlyTheWindowAndWritesNothing: the replay sees exactly
// the window's events and leaves the live store as it was.
func TestBacktestReadsOnlyTheWindowAndWritesNothing(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := openTestEngine(t, clock.NewFake(now))
	from, to := recordEvents(t, e, 2000, now)
	before := storeDigest(t, e)
	rep, err := e.Backtest(context.Background(), BacktestOptions{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 2000 {
		t.Errorf("replayed %d events, want 2000", rep.Events)
	}
	half := from.Add(30 * time.Minute)
	rep, err = e.Backtest(context.Background(), BacktestOptions{From: from, To: half})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events < 990 || rep.Events > 1010 {
		t.Errorf("half window replayed %d events, want about 1000", rep.Events)
	}
	if storeDigest(t, e) != before {
		t.Error("backtest wrote to the live store")
	}
	// The cheat app every device reports is on the default list: the
	// bundled attendance rule sees it in the replay too.
	var hits int
	for _, r := range rep.Rules {
		hits += r.LiveHits
	}
	if hits == 0 {
		t.Error("no rule fired in the replay")
	}
}

// TestBacktestMatchesReference: the pipelined replay (decoded in place,
// features in parallel parts of a scratch store, rules sharing work between
// the sets) reports what a plain replay reports: each stored event decoded
// with proto and FromStored, its features applied to a store on Pebble and
// committed, and each set evaluated on its own.
func TestBacktestMatchesReference(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := openTestEngine(t, clock.NewFake(now))
	from, to := recordEvents(t, e, 10000, now) // more than the batches hold: they are reused
	// An identifier list holds pseudonyms, as recorded events do: dev-3
	// and dev-4 have two events each (i = 3, 4, 7003, 7004).
	if _, err := e.lst.Create("blocked_devices", lists.Identifier, lists.CreateOptions{IdentifierKind: ingest.KindDevice}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dev-3", "dev-4"} {
		if err := e.lst.Add("blocked_devices", d, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	cand := backtestCandidate(t, e, "PAYMENT", "features.payments_account_1h >= 3", "deny")
	rep, err := e.Backtest(context.Background(), BacktestOptions{From: from, To: to, Candidate: cand})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rules {
		if r.RuleID == "block.blocked_device" && r.LiveHits != 4 {
			t.Errorf("block.blocked_device fired %d times, want 4", r.LiveHits)
		}
	}

	defs := e.opts.Catalog.Defs()
	live2, err := rules.Compile(e.Rules().Files(), rules.CompileOptions{Features: defs})
	if err != nil {
		t.Fatal(err)
	}
	cand2, err := rules.Compile(cand.Files(), rules.CompileOptions{Features: defs})
	if err != nil {
		t.Fatal(err)
	}
	popts := &pebble.Options{FS: vfs.NewMem(), Logger: quietLog{}}
	features.ConfigureDB(popts)
	db, err := pebble.Open("", popts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bl := newBacktestLists(e.lst, now)
	fs, err := features.Open(features.Options{DB: db, Catalog: e.opts.Catalog, Lists: bl.view(), Clock: e.clock,
		Lateness: e.opts.MaxEventAge, CacheEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	lv := bl.view()
	before, after := map[rules.Outcome]int{}, map[rules.Outcome]int{}
	liveHits, candHits := map[string]int{}, map[string]int{}
	events, changed := 0, 0
	err = ingest.ScanEvents(e.db, from, to, func(pb *riskv1.Event) error {
		ev, err := ingest.FromStored(pb)
		if err != nil {
			return err
		}
		b := db.NewBatch()
		defer b.Close()
		fv, p, err := fs.Apply(ev, b)
		if err != nil {
			return err
		}
		err = b.Commit(pebble.NoSync)
		fs.Done(p, err == nil)
		if err != nil {
			return err
		}
		lr, err := live2.Evaluate(ev, fv, lv)
		if err != nil {
			return err
		}
		cr, err := cand2.Evaluate(ev, fv, lv)
		if err != nil {
			return err
		}
		events++
		before[lr.Outcome]++
		after[cr.Outcome]++
		if lr.Outcome != cr.Outcome {
			changed++
		}
		for _, r := range append(lr.Reasons, lr.Shadow...) {
			liveHits[r.RuleID]++
		}
		for _, r := range append(cr.Reasons, cr.Shadow...) {
			candHits[r.RuleID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != events || rep.Changed != changed || !maps.Equal(rep.Before, before) || !maps.Equal(rep.After, after) {
		t.Errorf("backtest: %d events, %d changed, before %v, after %v; reference: %d, %d, %v, %v",
			rep.Events, rep.Changed, rep.Before, rep.After, events, changed, before, after)
	}
	fired := 0
	for _, r := range rep.Rules {
		fired += r.LiveHits
		if r.LiveHits != liveHits[r.RuleID] || r.CandidateHits != candHits[r.RuleID] {
			t.Errorf("rule %s: hits %d live, %d candidate; reference %d, %d", r.RuleID, r.LiveHits, r.CandidateHits, liveHits[r.RuleID], candHits[r.RuleID])
		}
	}
	if fired == 0 || changed == 0 {
		t.Errorf("%d hits, %d outcomes changed: the comparison proves little", fired, changed)
	}
}

// backtestCandidate is the live set plus one rule.
func backtestCandidate(tb testing.TB, e *Engine, on, when, action string) *rules.Set {
	tb.Helper()
	cand, err := rules.Compile(append(e.Rules().Files(), rules.File{Name: "cand.yaml", Data: []byte(`rules:
  - id: cand.rule
    applies_to: [` + on + `]
    when: "` + when + `"
    action: ` + action + `
    reason: {en: "x", zh: "x"}
`)}), rules.CompileOptions{Features: e.opts.Catalog.Defs()})
	if err != nil {
		tb.Fatal(err)
	}
	return cand
}

type quietLog struct{}

func (quietLog) Infof(string, ...any)      {}
func (quietLog) Errorf(string, ...any)     {}
func (quietLog) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// BenchmarkBacktest replays recorded events through the live set and a
// candidate (the bundled set plus one rule); it reports events/s, and the
// process's CPU time per event (both goroutines of the replay and the
// garbage collector counted).
//
//	go test -run '^$' -bench BenchmarkBacktest -benchtime 3x ./engine
func BenchmarkBacktest(b *testing.B) {
	n := benchEvents
	now := time.Now().UTC().Truncate(time.Second)
	e := openTestEngine(b, clock.NewFake(now))
	from, to := recordEvents(b, e, n, now)
	// Flush and compact the recorded events first, so that the live
	// store's background work does not run (and count) during the replay.
	if err := e.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	cand := backtestCandidate(b, e, "LOGIN", "!login.success && features.login_failures_account_10m >= 1", "review")
	b.ReportAllocs()
	b.ResetTimer()
	var total time.Duration
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rep, err := e.Backtest(context.Background(), BacktestOptions{From: from, To: to, Candidate: cand})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if rep.Events != n {
			b.Fatalf("replayed %d events", rep.Events)
		}
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
	// On a shared machine wall time says little: events per CPU-second
	// (both goroutines of the replay counted) is the figure to compare.
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/event")
}

// benchEvents is the size of BenchmarkBacktest's recorded traffic.
var benchEvents = 100000
