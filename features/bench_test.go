package features

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
)

// Benchmarks run over a population of accounts and devices (one of each per
// index) whose state is written first:
//
//	go test -run XXX -bench . -benchtime 200000x ./features/
//	FEATURES_BENCH_POP=1000000 FEATURES_BENCH_CACHE=2000000 go test -run XXX -bench . -benchtime 200000x -timeout 30m ./features/
//
// FEATURES_BENCH_POP (default 20000) is the population size,
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

// populate writes one event of each type per entity, group-committed.
func populate(b *testing.B, s *Store, db *pebble.DB, pop int, at time.Time) {
	b.Helper()
	batch := db.NewBatch()
	var pend []*Pending
	flush := func() {
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		for _, p := range pend {
			s.Done(p, true)
		}
		pend = pend[:0]
		batch.Close()
		batch = db.NewBatch()
	}
	for i := range pop {
		for k, typ := range benchTypes {
			_, p, err := s.Apply(benchEvent(i, at.Add(time.Duration(i%600+k)*time.Second), typ), batch)
			if err != nil {
				b.Fatal(err)
			}
			pend = append(pend, p)
		}
		if len(pend) >= 768 {
			flush()
		}
	}
	flush()
	batch.Close()
}

// benchState is populated once per test binary run: testing runs each
// benchmark body more than once, and a 1M population takes minutes.
var benchState struct {
	s   *Store
	db  *pebble.DB
	pop int
	dir string
}

func benchStore(b *testing.B) (*Store, *pebble.DB, int, time.Time) {
	if benchState.s == nil {
		pop := envInt("FEATURES_BENCH_POP", 20000)
		dir, err := os.MkdirTemp("", "features-bench")
		if err != nil {
			b.Fatal(err)
		}
		db := openDB(b, dir)
		s := openStore(b, db, clock.NewFake(base), Options{CacheEntries: envInt("FEATURES_BENCH_CACHE", DefaultCacheEntries)})
		start := time.Now()
		populate(b, s, db, pop, base)
		fmt.Printf("population: %d accounts + %d devices (%d events) written in %v\n", pop, pop, pop*len(benchTypes), time.Since(start))
		benchState.s, benchState.db, benchState.pop, benchState.dir = s, db, pop, dir
	}
	return benchState.s, benchState.db, benchState.pop, base.Add(time.Hour)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchState.db != nil {
		benchState.db.Close()
		os.RemoveAll(benchState.dir)
	}
	os.Exit(code)
}

// cpuTime is the process's user+system CPU time: on a shared, loaded
// machine it measures the work per operation better than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
	hot := min(envInt("FEATURES_BENCH_HOT", 10000), pop)
	evs := make([]*event.Event, hot)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range evs {
		evs[i] = benchEvent(r.IntN(pop), at, benchTypes[i%len(benchTypes)])
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

// BenchmarkApply reads and updates every default feature per event over the
// whole population (cold and warm state as the LRU holds it), with merge
// operands group-committed 256 events a batch without fsync (the engine's
// fsync is amortized by group commit and not counted here).
func BenchmarkApply(b *testing.B) {
	s, db, pop, at := benchStore(b)
	r := rand.New(rand.NewPCG(3, 4))
	evs := make([]*event.Event, 4096)
	for i := range evs {
		evs[i] = benchEvent(r.IntN(pop), at.Add(time.Duration(i)*time.Millisecond), benchTypes[i%len(benchTypes)])
	}
	batch := db.NewBatch()
	pend := make([]*Pending, 0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		if i%len(evs) == 0 && i > 0 {
			for j := range evs { // fresh entities for the next round
				evs[j] = benchEvent(r.IntN(pop), at.Add(time.Duration(i+j)*time.Millisecond), benchTypes[j%len(benchTypes)])
			}
			ev = evs[0]
		}
		_, p, err := s.Apply(ev, batch)
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
			batch.Close()
			batch = db.NewBatch()
		}
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	batch.Close()
}
