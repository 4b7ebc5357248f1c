package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench"
	"github.com/riskd/riskd/bench/load"
	"github.com/riskd/riskd/bench/population"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/internal/cputime"
	"github.com/riskd/riskd/internal/logbuf"
	"github.com/riskd/riskd/internal/memlimit"
)

// Benchmarks of the whole in-process evaluation and of the group committer.
// They run only under -bench:
//
//	go test -run '^$' -bench 'Evaluate|GroupCommit' -benchtime 50000x ./engine/
//	ENGINE_BENCH_RATE=10000 go test -run '^$' -bench EvaluateOpenLoop -benchtime 50000x ./engine/
//
// ENGINE_BENCH_ACCOUNTS (default 1,000,000) sizes bench's population (drawn
// lazily, so a large one costs nothing up front; ENGINE_BENCH_POPULATE=1
// first gives every account and its phone feature state, as a store serving
// that population holds, which takes a minute or more); ENGINE_BENCH_EVENTS
// (default 50,000) is how many workload events are generated once and
// replayed (each replay a new event id, stamped now), all of them evaluated
// once before the clock starts so that the state they touch is warm;
// ENGINE_BENCH_PARALLELISM (default 32) times GOMAXPROCS goroutines call
// Evaluate in BenchmarkEvaluate. ENGINE_BENCH_WINDOWS=100ms makes
// BenchmarkEvaluateOpenLoop print, to stderr, every window of that length
// in which answers took over 2 ms, and opens the engine with a debug log
// there, whose store flush, compaction and feature flush lines (timed by
// the clock) show what the slow windows met. Benchmarks run under riskd's
// soft memory limit and collector target (RISKD_MEMORY_LIMIT=off: Go's
// defaults).

// benchWindow is ENGINE_BENCH_WINDOWS, or 0.
func benchWindow() time.Duration {
	d, err := time.ParseDuration(os.Getenv("ENGINE_BENCH_WINDOWS"))
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openBenchEngine(tb testing.TB, mod func(*Options)) *Engine {
	tb.Helper()
	o := Options{DataDir: tb.TempDir(), PseudonymKey: []byte("bench-pseudonym-key-0123456789"), Logger: quiet}
	if mod != nil {
		mod(&o)
	}
	e, err := Open(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

// workloadSeed draws the replayed workload, and the population
// populateEngine gives state to: the same world.
const workloadSeed = 7

// workloadEvents returns n events of bench's labelled workload over a
// population of accounts (devices by bench's default ratio).
func workloadEvents(tb testing.TB, accounts, n int) []*riskv1.Event {
	tb.Helper()
	w, err := bench.New(bench.Options{
		Seed:       workloadSeed,
		Population: population.Options{Accounts: accounts},
		Duration:   365 * 24 * time.Hour,
	})
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]*riskv1.Event, 0, n)
	for len(out) < n {
		ev, _, ok := w.Next()
		if !ok {
			break
		}
		out = append(out, ev)
	}
	return out
}

// restamp returns a new top-level event sharing src's sub-messages (only
// ever read) with a fresh id and occurred_at: a new event to the engine.
func restamp(src *riskv1.Event, id string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId: id, Type: src.Type, OccurredAt: timestamppb.New(at),
		AccountId: src.AccountId, OrgId: src.OrgId,
		Device: src.Device, Network: src.Network, Location: src.Location,
		Login: src.Login, Payment: src.Payment, Attendance: src.Attendance, ServiceLog: src.ServiceLog,
		Attributes: src.Attributes,
	}
}

// cpuTime is the process's user+system CPU time: on a shared, loaded
// machine the work per operation is better measured in CPU than wall time.
var cpuTime = cputime.Process

type evalBench struct {
	e      *Engine
	events []*riskv1.Event
	seq    atomic.Int64
	run    string
}

func (eb *evalBench) next() *riskv1.Event {
	i := eb.seq.Add(1)
	return restamp(eb.events[int(i)%len(eb.events)], eb.run+strconv.FormatInt(i, 10), time.Now())
}

// warm evaluates every recorded event once, 64 at a time.
func (eb *evalBench) warm(tb testing.TB) {
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			for range work {
				if _, err := eb.e.Evaluate(context.Background(), eb.next()); err != nil && !errors.Is(err, ErrOverloaded) {
					tb.Error(err)
				}
			}
		})
	}
	for range eb.events {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
}

// populateEngine gives every account of bench's population, and its phone,
// feature state: one successful login each from home, spread over the
// last 23 hours, through Ingest (1,000 events a call, four calls in
// flight). Without it the store holds only the state of the accounts the
// replayed workload touches.
func populateEngine(tb testing.TB, e *Engine, accounts int) {
	tb.Helper()
	pop, err := population.New(population.Options{Accounts: accounts, Seed: workloadSeed})
	if err != nil {
		tb.Fatal(err)
	}
	t0, cpu0, now := time.Now(), cpuTime(), time.Now()
	ingestAll(tb, e, accounts, func(i int) *riskv1.Event {
		return load.HomeLogin(pop, i, "pop-"+strconv.Itoa(i), now.Add(-23*time.Hour+time.Duration(float64(23*time.Hour)*float64(i)/float64(accounts))))
	})
	fmt.Printf("engine bench: populated %d accounts and their phones in %v (%v CPU)\n", accounts, time.Since(t0).Round(time.Second), (cpuTime() - cpu0).Round(time.Second))
}

// ingestAll ingests event(0) .. event(n-1) through StartIngest, 1,000 a
// call and four calls in flight, and fails on any rejected event.
func ingestAll(tb testing.TB, e *Engine, n int, event func(i int) *riskv1.Event) {
	tb.Helper()
	const batch = 1000
	var waits []func() ([]IngestResult, error)
	settle := func() {
		res, err := waits[0]()
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				tb.Fatal(r.Err)
			}
		}
		waits = waits[1:]
	}
	for lo := 0; lo < n; lo += batch {
		evs := make([]*riskv1.Event, 0, batch)
		for i := lo; i < min(n, lo+batch); i++ {
			evs = append(evs, event(i))
		}
		w, err := e.StartIngest(context.Background(), evs)
		if err != nil {
			tb.Fatal(err)
		}
		if waits = append(waits, w); len(waits) == 4 {
			settle()
		}
	}
	for len(waits) > 0 {
		settle()
	}
}

// applyRiskdMemory sets the soft memory limit and the collector's target
// as riskd does (memlimit.Apply): GOMEMLIMIT when set, else
// memlimit.Default, and RISKD_MEMORY_LIMIT (riskd's own variable)
// overrides both, to measure another limit (0 or off: none). It returns
// the limit set and the previous one.
func applyRiskdMemory() (limit, prev int64, err error) {
	limit, err = memlimit.DefaultFrom(os.Getenv)
	if v := os.Getenv("RISKD_MEMORY_LIMIT"); v != "" && err == nil {
		limit, err = memlimit.Parse(v)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("memory limit: %w", err)
	}
	return limit, memlimit.Apply(limit), nil
}

// shared is the warmed engine every evaluation benchmark in one test binary
// run uses: testing calls each benchmark body more than once, and warming
// a large population takes a while. TestMain removes it.
var shared struct {
	eb  *evalBench
	dir string
}

func newEvalBench(b *testing.B) *evalBench {
	b.Helper()
	if shared.eb != nil {
		return shared.eb
	}
	dir, err := os.MkdirTemp("", "engine-bench")
	if err != nil {
		b.Fatal(err)
	}
	shared.dir = dir
	// A budget far above an evaluation's cost: on a loaded machine the
	// default 50 ms would turn much of the run into the fail mode, which is
	// not the path measured here (degraded/op reports any that remain).
	logger := quiet
	if benchWindow() > 0 {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, err := Open(Options{DataDir: dir, PseudonymKey: []byte("bench-pseudonym-key-0123456789"), Logger: logger, Budget: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	accounts := benchEnv("ENGINE_BENCH_ACCOUNTS", 1_000_000)
	if os.Getenv("ENGINE_BENCH_POPULATE") != "" {
		populateEngine(b, e, accounts)
	}
	eb := &evalBench{
		e:      e,
		events: workloadEvents(b, accounts, benchEnv("ENGINE_BENCH_EVENTS", 50_000)),
		run:    fmt.Sprintf("bench-%d-", time.Now().UnixNano()),
	}
	t0 := time.Now()
	eb.warm(b)
	fmt.Printf("engine bench: population %d accounts; %d workload events evaluated to warm up in %v\n", accounts, len(eb.events), time.Since(t0))
	shared.eb = eb
	return eb
}

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// Benchmarks measure the engine as riskd runs it: under riskd's soft
		// memory limit and collector target.
		if _, _, err := applyRiskdMemory(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if shared.eb != nil {
		_ = shared.eb.e.Close()
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// BenchmarkEvaluate is the whole in-process evaluation: normalize,
// idempotency check, features read and update, the bundled rules, the
// decision built, encoded and durably group-committed (synced), from 64
// goroutines. evals/s is wall-clock throughput; cpu-µs/op the process's CPU
// per evaluation, which a loaded machine distorts less.
func BenchmarkEvaluate(b *testing.B) {
	eb := newEvalBench(b)
	var degraded, shed atomic.Int64
	b.SetParallelism(benchEnv("ENGINE_BENCH_PARALLELISM", 32)) // 64 goroutines on two cores by default
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	w0, g0, f0 := eb.e.Writes(), eb.e.Stats().GroupCommits, eb.e.features.Stats()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, err := eb.e.Evaluate(context.Background(), eb.next())
			switch {
			case errors.Is(err, ErrOverloaded):
				shed.Add(1)
			case err != nil:
				b.Error(err)
				return
			case d.GetDegraded():
				degraded.Add(1)
			}
		}
	})
	b.StopTimer()
	w1, g1, f1 := eb.e.Writes(), eb.e.Stats().GroupCommits, eb.e.features.Stats()
	b.ReportMetric(float64(w1.WAL-w0.WAL)/float64(b.N), "wal-B/op")
	b.ReportMetric(float64(w1.Flushed-w0.Flushed)/float64(b.N), "flushed-B/op")
	b.ReportMetric(float64(w1.Compacted-w0.Compacted)/float64(b.N), "compacted-B/op")
	b.ReportMetric(float64(b.N)/float64(max(g1-g0, 1)), "evals/commit")
	b.ReportMetric(float64(f1.PeriodLoads-f0.PeriodLoads)/float64(b.N), "state-loads/op")
	b.ReportMetric(float64(f1.PeriodHits-f0.PeriodHits)/float64(b.N), "state-hits/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(degraded.Load())/float64(b.N), "degraded/op")
	b.ReportMetric(float64(shed.Load())/float64(b.N), "shed/op")
}

// BenchmarkEvaluateOpenLoop offers b.N evaluations at a fixed arrival rate
// (ENGINE_BENCH_RATE, default 10,000/s), each in its own goroutine, and
// reports latency percentiles measured from each one's scheduled arrival, so
// that queueing behind a slow answer is counted (no coordinated omission).
func BenchmarkEvaluateOpenLoop(b *testing.B) {
	eb := newEvalBench(b)
	rate := benchEnv("ENGINE_BENCH_RATE", 10_000)
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, b.N)
	var degraded, shed atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, g0, s0 := cpuTime(), eb.e.Stats().GroupCommits, walSyncs(b, eb.e)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			d, err := eb.e.Evaluate(context.Background(), eb.next())
			lat[i] = time.Since(sched)
			switch {
			case errors.Is(err, ErrOverloaded):
				shed.Add(1)
			case err != nil:
				b.Error(err)
			case d.GetDegraded():
				degraded.Add(1)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	el := time.Since(start)
	syncs := walSyncs(b, eb.e) - s0
	if w := benchWindow(); w > 0 && b.N > 1 { // not the framework's first, one-evaluation run
		printSlowWindows(lat, start, interval, w)
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1e3 }
	b.ReportMetric(float64(b.N)/el.Seconds(), "evals/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(degraded.Load()+shed.Load())/float64(b.N), "degraded+shed/op")
	b.ReportMetric(float64(b.N)/float64(max(eb.e.Stats().GroupCommits-g0, 1)), "evals/commit")
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "evals/sync")
}

// walSyncs is how many times Pebble has synced its write-ahead log.
func walSyncs(tb testing.TB, e *Engine) uint64 {
	var m dto.Metric
	if err := e.db.Metrics().LogWriter.FsyncLatency.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// printSlowWindows prints each window w long (by scheduled arrival) in
// which answers took over 2 ms: how many, and the window's p99 and max.
// lat[i] is the answer to the arrival at start + i*interval.
func printSlowWindows(lat []time.Duration, start time.Time, interval, w time.Duration) {
	per := max(int(w/interval), 1)
	for lo := 0; lo < len(lat); lo += per {
		win := slices.Clone(lat[lo:min(lo+per, len(lat))])
		slices.Sort(win)
		i, _ := slices.BinarySearch(win, 2*time.Millisecond+1)
		if slow := len(win) - i; slow > 0 {
			fmt.Fprintf(os.Stderr, "window %s: %d of %d answers over 2 ms, p99 %v, max %v\n",
				start.Add(time.Duration(lo)*interval).Format("15:04:05.000"), slow, len(win),
				win[len(win)*99/100].Round(10*time.Microsecond), win[len(win)-1].Round(10*time.Microsecond))
		}
	}
}

// BenchmarkGroupCommit measures the committer alone: N goroutines each
// submitting a decision-sized batch (an idempotency key, a 700-byte record,
// two index keys) and waiting for its synced group commit.
func BenchmarkGroupCommit(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run("writers="+strconv.Itoa(n), func(b *testing.B) {
			db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: pebbleLogger{quiet}})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			c := newCommitter(db, DefaultMaxGroup, noChain{}, nil, nil, nil)
			defer c.close()
			val := make([]byte, 700)
			var seq atomic.Int64
			b.SetParallelism(max(1, n/2))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				key := make([]byte, 0, 16)
				for pb.Next() {
					i := seq.Add(1)
					batch := db.NewBatch()
					for k := byte(0); k < 4; k++ {
						key = strconv.AppendInt(append(key[:0], 'k', k), i, 10)
						v := val
						if k > 1 {
							v = nil
						}
						if err := batch.Set(key, v, nil); err != nil {
							b.Error(err)
							return
						}
					}
					if err := c.commit(context.Background(), batch, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			b.ReportMetric(float64(b.N)/float64(max(1, c.groups.Load())), "per-group")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}

// noChain is a committer's chain for batches without decisions.
type noChain struct{}

func (noChain) Head() decisions.Head                           { return decisions.Head{} }
func (noChain) Rewind(decisions.Head)                          {}
func (noChain) Append(*pebble.Batch, *decisions.Pending) error { return errors.New("no chain") }

// An overrun is the fail mode, never an error: with a budget far below what
// an evaluation takes, every answer is a decision (most degraded), every
// one encodes (the handler's marshal must not race the pipeline still
// running on the same event), and a retry of each id returns a decision.
func TestEvaluateOverrunIsFailModeNotError(t *testing.T) {
	events := workloadEvents(t, 2000, 300)
	for _, budget := range []time.Duration{300 * time.Microsecond, time.Millisecond, 3 * time.Millisecond} {
		t.Run(budget.String(), func(t *testing.T) {
			var logged logbuf.Buffer
			e := openBenchEngine(t, func(o *Options) {
				// Every call is admitted (no adaptive limit): the test is of
				// overruns, which would otherwise shrink it and shed.
				o.Budget, o.MaxInFlight, o.MinInFlight = budget, 4096, 4096
				o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
			})
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			reasons := map[string]int{}
			ids := make([]string, len(events))
			for i, src := range events {
				ids[i] = "overrun-" + strconv.Itoa(i)
				wg.Go(func() {
					d, err := e.Evaluate(context.Background(), restamp(src, ids[i], time.Now()))
					if err != nil {
						t.Errorf("event %d: %v", i, err)
						return
					}
					mu.Lock()
					reasons[d.GetDegradedReason()]++
					mu.Unlock()
					if _, err := proto.Marshal(&riskv1.EvaluateResponse{Decision: d}); err != nil {
						t.Errorf("event %d: encoding the answer: %v", i, err)
					}
				})
			}
			wg.Wait()
			if reasons[""] == len(events) {
				t.Fatalf("no evaluation overran a %v budget: the test exercised nothing", budget)
			}
			t.Logf("degraded reasons: %v", reasons)
			// One line of each kind a second at most, not one per overrun.
			most, text := 1+int(time.Since(start)/time.Second), logged.String()
			for reason, line := range map[string]string{
				"budget exceeded before a decision": "evaluate overran its budget",
				"store stalled past the budget":     "store stalled past the evaluate budget",
			} {
				n := 0
				for r, c := range reasons {
					if strings.HasPrefix(r, reason) {
						n += c
					}
				}
				if lines := strings.Count(text, line); lines > most {
					t.Errorf("%d answers %q wrote %d lines %q; want at most %d", n, reason, lines, line, most)
				}
			}
			for i, src := range events[:50] {
				wg.Go(func() {
					d, err := e.Evaluate(context.Background(), restamp(src, ids[i], time.Now()))
					if err != nil || d == nil {
						t.Errorf("retry of event %d: %v, %v", i, d, err)
					}
				})
			}
			wg.Wait()
		})
	}
}

// A request whose caller has already given up is not decided: under
// overload, deciding it would take capacity from callers still waiting.
// Nothing is recorded, so a retry is decided normally.
func TestEvaluateSkipsAbandonedRequests(t *testing.T) {
	e := openBenchEngine(t, nil)
	src := workloadEvents(t, 100, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := e.Evaluate(ctx, restamp(src, "abandoned-1", time.Now())); !errors.Is(err, context.Canceled) || d != nil {
		t.Fatalf("Evaluate with a canceled context = %v, %v; want context.Canceled", d, err)
	}
	d, err := e.Evaluate(context.Background(), restamp(src, "abandoned-1", time.Now()))
	if err != nil || d.GetDegraded() {
		t.Fatalf("retry = %v, %v; want a normal decision", d, err)
	}
}
