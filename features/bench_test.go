package features

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/cputime"
	"github.com/riskd/riskd/internal/keys"
)

// Benchmarks run over a population of accounts and devices (one of each per
// index) whose state is written first:
//
//	go test -run XXX -bench . -benchtime 50000x ./features/
//	FEATURES_BENCH_POP=1000000 FEATURES_BENCH_DIR=/tmp/fbench1m go test -run XXX -bench 'Read|Apply$|Ingest$' -benchtime 100000x -timeout 60m ./features/
//	FEATURES_BENCH_POP=1000000 FEATURES_BENCH_DIR=/tmp/fbench1m go test -run XXX -bench Cold -benchtime 20000x -timeout 60m ./features/
//
// The figures are in doc.go ("Performance").
//
// FEATURES_BENCH_POP (default 20000) is the population size,
// FEATURES_BENCH_DIR a directory to keep the populated DB in and reuse
// (each run's benchmarks add events to it; default a temporary directory),
// FEATURES_BENCH_CACHE the store's CacheEntries (default DefaultCacheEntries),
// FEATURES_BENCH_HOT the number of entities the read benchmark draws from
// (default 10000; they are read once first, so the reads are warm).

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var benchCoords = [][2]float64{{31.23, 121.47}, {39.9, 116.4}, {22.54, 114.06}, {30.57, 104.07}}

func benchEvent(i int, at time.Time, typ event.Type) *event.Event {
	e := &event.Event{Type: typ, TypeName: typ.String(), OccurredAt: at}
	a, d := strconv.Itoa(i), strconv.Itoa(i)
	e.AccountID, e.P.Account = a, "pa:"+a
	e.Has.Device, e.Device.DeviceID, e.P.Device = true, d, "pd:"+d
	e.Device.InstalledPackages = []string{"com.a", "com.b"}
	ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	e.Has.Network, e.Network.IP, e.P.IP = true, ip, "pi:"+ip
	e.P.IPPrefix = fmt.Sprintf("pn:10.%d.%d", i>>16&255, i>>8&255)
	c := benchCoords[i%len(benchCoords)]
	e.Has.Location, e.P.CoarseLat, e.P.CoarseLon = true, c[0], c[1]
	switch typ {
	case event.Login:
		e.Has.Login = true
		e.Login.Success = i%3 != 0
	case event.Payment:
		e.Has.Payment = true
		e.Payment.AmountMinor = int64(i % 10000)
		p := strconv.Itoa(i % 5000)
		e.Payment.PayeeAccountID, e.P.Payee = p, "pp:"+p
	case event.Attendance:
		e.Has.Attendance = true
		e.Attendance.SiteID = "s1"
	}
	return e
}

var benchTypes = []event.Type{event.Login, event.Payment, event.Attendance}

// populate writes the state of one event of each type per entity straight
// into large unsynced batches, from two goroutines: the update half of
// Apply without its reads (the state is new), so that a 1M population takes
// minutes rather than the hours that Apply with group commits would. The
// in-memory cache stays cold; the benchmarks warm what they read.
func populate(b testing.TB, s *Store, db *pebble.DB, pop int, at time.Time) {
	b.Helper()
	const workers = 2
	errs := make(chan error, workers)
	for g := range workers {
		go func() {
			errs <- populateRange(s, db, g*pop/workers, (g+1)*pop/workers, at)
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
}

func populateRange(s *Store, db *pebble.DB, from, to int, at time.Time) error {
	w := new(work)
	batch := db.NewBatch()
	defer func() { batch.Close() }()
	for i := from; i < to; i++ {
		for k, typ := range benchTypes {
			ev := benchEvent(i, at.Add(time.Duration(i%600+k)*time.Second), typ)
			if err := s.prepare(w, ev, false); err != nil {
				return err
			}
			for si := range w.plans {
				p := &w.plans[si]
				if !p.ok || !p.counts {
					continue
				}
				st := s.cat.states[si]
				cur, _, _ := periodsOf(st, p.hi)
				p.curKey = appendStateKey(p.curKey[:0], st.id, cur, p.ent)
				if _, ok := s.operand(w, p, ev); !ok {
					continue
				}
				if err := batch.Merge(p.curKey, w.op, nil); err != nil {
					return err
				}
			}
		}
		if batch.Len() >= 16<<20 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return err
			}
			batch.Reset()
		}
	}
	return batch.Commit(pebble.NoSync)
}

// benchState is populated once per test binary run: testing runs each
// benchmark body more than once, and a 1M population takes minutes.
var benchState struct {
	s   *Store
	db  *pebble.DB
	pop int
	dir string
}

// openBenchDB opens the DB as the engine does (engine/engine.go): a 256 MiB
// block cache (FEATURES_BENCH_BLOCK_CACHE_MB), 64 MiB memtables
// (FEATURES_BENCH_MEMTABLE_MB), ConfigureDB.
func openBenchDB(b testing.TB, dir string) *pebble.DB {
	b.Helper()
	o := &pebble.Options{
		Logger:       quiet{},
		Cache:        pebble.NewCache(int64(envInt("FEATURES_BENCH_BLOCK_CACHE_MB", 256)) << 20),
		MemTableSize: uint64(envInt("FEATURES_BENCH_MEMTABLE_MB", 64)) << 20,
	}
	defer o.Cache.Unref()
	ConfigureDB(o)
	db, err := pebble.Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func benchStore(b *testing.B) (*Store, *pebble.DB, int, time.Time) {
	if benchState.s == nil {
		pop := envInt("FEATURES_BENCH_POP", 20000)
		dir, keep := os.Getenv("FEATURES_BENCH_DIR"), true
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "features-bench"); err != nil {
				b.Fatal(err)
			}
			keep = false
		}
		db := openBenchDB(b, dir)
		// Flushed as the engine flushes (engine.Options.FeatureFlushInterval).
		s := openStore(b, db, clock.NewFake(base), Options{CacheEntries: envInt("FEATURES_BENCH_CACHE", DefaultCacheEntries), FlushInterval: time.Second})
		start, cpu0 := time.Now(), cpuTime()
		marker := filepath.Join(dir, fmt.Sprintf("populated-%d", pop))
		if _, err := os.Stat(marker); err == nil {
			fmt.Printf("population: reusing %s\n", dir)
		} else {
			populate(b, s, db, pop, base)
		}
		if keep {
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		// Let the compactions the population started finish, so that they
		// do not run inside the measurements.
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			m := db.Metrics()
			if m.Compact.NumInProgress == 0 && m.Levels[0].Sublevels <= 1 {
				break
			}
		}
		fmt.Printf("population: %d accounts + %d devices (%d events) written in %v (%v CPU); LSM:\n%s\n",
			pop, pop, pop*len(benchTypes), time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond), db.Metrics())
		benchState.s, benchState.db, benchState.pop = s, db, pop
		if !keep {
			benchState.dir = dir
		}
	}
	return benchState.s, benchState.db, benchState.pop, base.Add(time.Hour)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchState.db != nil {
		benchState.db.Close()
		if benchState.dir != "" {
			os.RemoveAll(benchState.dir)
		}
	}
	os.Exit(code)
}

// cpuTime is the process's user+system CPU time: on a shared, loaded
// machine it measures the work per operation better than the wall clock.
var cpuTime = cputime.Process

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
}

func reportQuantiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	q := func(f float64) float64 { return float64(d[int(f*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkRead reads every default feature for one event from warm state.
func BenchmarkRead(b *testing.B) {
	s, _, pop, at := benchStore(b)
	ids := hotSet(pop)
	hot := len(ids)
	evs := make([]*event.Event, hot)
	for i := range evs {
		evs[i] = benchEvent(ids[i], at, benchTypes[i%len(benchTypes)])
		if _, err := s.Read(evs[i]); err != nil { // warm
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.Read(evs[i%hot]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	reportQuantiles(b, lat)
}

// BenchmarkApply reads and updates every default feature per event, with
// merge operands group-committed 256 events a batch without fsync (the
// engine's fsync is amortized by group commit and not counted here). The
// events fall on the warm entities of BenchmarkRead (FEATURES_BENCH_HOT) at
// advancing times; BenchmarkApplyCold draws from the whole population.
func BenchmarkApply(b *testing.B) {
	s, db, pop, at := benchStore(b)
	benchApply(b, s, db, hotSet(pop), at, true, true)
}

// BenchmarkAdd is BenchmarkApply without the reading (Store.Add): the cost
// of updating an event's features alone, as the engine's Ingest does.
func BenchmarkAdd(b *testing.B) {
	s, db, pop, at := benchStore(b)
	benchApply(b, s, db, hotSet(pop), at.Add(30*time.Minute), true, false)
}

// hotSet is the entities the warm benchmarks use: FEATURES_BENCH_HOT
// (default 10000) drawn from the population.
func hotSet(pop int) []int {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]int, min(envInt("FEATURES_BENCH_HOT", 10000), pop))
	for i := range ids {
		ids[i] = r.IntN(pop)
	}
	return ids
}

// BenchmarkApplyCold is BenchmarkApply over the whole population: with a
// large population most state is not in memory and is read from Pebble.
func BenchmarkApplyCold(b *testing.B) {
	s, db, pop, at := benchStore(b)
	ids := make([]int, pop)
	for i := range ids {
		ids[i] = i
	}
	benchApply(b, s, db, ids, at.Add(time.Hour), false, true)
	// Memory with the population's state on disk: the LRU's bound holds.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(s.cache.len()), "entries")
}

// benchApply applies events on entities drawn from ids, warmed first
// (read with every event type) when warm is set; through Add unless read.
func benchApply(b *testing.B, s *Store, db *pebble.DB, ids []int, at time.Time, warm, read bool) {
	r := rand.New(rand.NewPCG(3, 4))
	if warm {
		for _, id := range ids {
			for _, typ := range benchTypes {
				if _, err := s.Read(benchEvent(id, at, typ)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	evs := make([]*event.Event, 4096)
	fill := func(i0 int) {
		for j := range evs {
			evs[j] = benchEvent(ids[r.IntN(len(ids))], at.Add(time.Duration(i0+j)*time.Millisecond), benchTypes[j%len(benchTypes)])
		}
	}
	fill(0)
	batch := db.NewBatch()
	pend := make([]*Pending, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, st0 := cpuTime(), s.Stats()
	for i := 0; i < b.N; i++ {
		if i%len(evs) == 0 && i > 0 {
			b.StopTimer() // building events is not the store's work
			c := cpuTime()
			fill(i)
			cpu0 += cpuTime() - c
			b.StartTimer()
		}
		var p *Pending
		var err error
		if read {
			_, p, err = s.Apply(evs[i%len(evs)], batch)
		} else {
			p, err = s.Add(evs[i%len(evs)], batch)
		}
		if err != nil {
			b.Fatal(err)
		}
		pend = append(pend, p)
		if len(pend) == cap(pend) {
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			for _, p := range pend {
				s.Done(p, true)
			}
			pend = pend[:0]
			batch.Reset()
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
	for _, p := range pend {
		s.Done(p, true)
	}
	if err := s.Flush(); err != nil { // the write-back's share of the work
		b.Fatal(err)
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	// Periods read from Pebble (or found absent there) per event.
	b.ReportMetric(float64(s.Stats().PeriodLoads-st0.PeriodLoads)/float64(b.N), "loads/op")
	batch.Close()
}

// BenchmarkIngest is ingest through the feature store as the engine runs
// it: 2×GOMAXPROCS workers each Add an event into its own batch (engine's
// Ingest reads no features; FEATURES_BENCH_INGEST_APPLY=1 Applies, reading
// them, as it did before session 4); one
// committer applies them into a group batch and commits it with fsync
// every FEATURES_BENCH_GROUP (default 512) events or when no event waits,
// then calls Done. Events draw from the warm set of BenchmarkRead, at
// event times advancing 20 µs apart (50,000 events/s). Reports events/s
// (wall) and the process CPU per event. BenchmarkIngestCold draws from the
// whole population.
func BenchmarkIngest(b *testing.B) {
	s, db, pop, at := benchStore(b)
	ids := hotSet(pop)
	for _, id := range ids {
		for _, typ := range benchTypes {
			if _, err := s.Read(benchEvent(id, at, typ)); err != nil {
				b.Fatal(err)
			}
		}
	}
	benchIngest(b, s, db, ids, at.Add(2*time.Hour))
}

// BenchmarkIngestCold is BenchmarkIngest over the whole population.
func BenchmarkIngestCold(b *testing.B) {
	s, db, pop, at := benchStore(b)
	ids := make([]int, pop)
	for i := range ids {
		ids[i] = i
	}
	benchIngest(b, s, db, ids, at.Add(3*time.Hour))
}

func benchIngest(b *testing.B, s *Store, db *pebble.DB, ids []int, at time.Time) {
	group := envInt("FEATURES_BENCH_GROUP", 512)
	type done struct {
		b *pebble.Batch
		p *Pending
	}
	evs := make([]*event.Event, b.N)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range evs {
		evs[i] = benchEvent(ids[r.IntN(len(ids))], at.Add(time.Duration(i)*20*time.Microsecond), benchTypes[i%len(benchTypes)])
	}
	workers := 2 * runtime.GOMAXPROCS(0)
	withRead := os.Getenv("FEATURES_BENCH_INGEST_APPLY") != ""
	ch := make(chan done, 4*group)
	var next atomic.Int64
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(evs) {
					return
				}
				eb := db.NewBatch()
				var p *Pending
				var err error
				if withRead {
					_, p, err = s.Apply(evs[i], eb)
				} else {
					p, err = s.Add(evs[i], eb)
				}
				if err != nil {
					failed.Store(err)
					return
				}
				ch <- done{eb, p}
			}
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	g := db.NewBatch()
	var inGroup []done
	commit := func() {
		if err := g.Commit(pebble.Sync); err != nil {
			b.Fatal(err)
		}
		for _, d := range inGroup {
			s.Done(d.p, true)
			d.b.Close()
		}
		inGroup = inGroup[:0]
		g.Reset()
	}
	for d := range ch {
		if err := g.Apply(d.b, nil); err != nil {
			b.Fatal(err)
		}
		inGroup = append(inGroup, d)
		if len(inGroup) >= group || len(ch) == 0 {
			commit()
		}
	}
	if len(inGroup) > 0 {
		commit()
	}
	if err := s.Flush(); err != nil { // the write-back's share of the work
		b.Fatal(err)
	}
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	reportCPU(b, cpu0)
	g.Close()
}

// BenchmarkSweep times one Sweep over the population's state keys, all
// live (nothing to delete): the scan a pass costs, per key.
func BenchmarkSweep(b *testing.B) {
	s, db, _, at := benchStore(b)
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	n := countPrefix(b, db, keys.FeatureState)
	sweepKeys := s.sweepKeys
	s.sweepKeys = n + 1 // one call, one whole pass
	defer func() { s.sweepKeys = sweepKeys }()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if err := s.Sweep(at); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	b.ReportMetric(float64(n), "keys")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
}
