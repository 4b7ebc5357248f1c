package features

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
)

// TestScratchMatchesPebble: a scratch store gives, event for event, the
// values a store on a real Pebble directory gives for the same events in
// time order (a small cache there, so that its state goes through the disk
// and comes back), and so do the parts of OpenScratch put together. The
// gaps between events cross the periods of every window: short runs, long
// pauses, equal times, granule boundaries.
func TestScratchMatchesPebble(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed*13+5))
			now := base
			clk := clock.NewFake(now)
			db := openDB(t, t.TempDir())
			defer db.Close()
			disk := openStore(t, db, clk, Options{Lists: cheatLists{}, CacheEntries: 64})
			scratch, err := Open(Options{Scratch: true, Lists: cheatLists{}, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			cat := disk.Catalog()
			parts, index, err := OpenScratch(Options{Lists: cheatLists{}, Clock: clk}, 3)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int]bool{}
			for k := range parts {
				if got := len(parts[k].Catalog().Defs()); got != len(index[k]) {
					t.Fatalf("part %d has %d features and %d indices", k, got, len(index[k]))
				}
				for _, i := range index[k] {
					seen[i] = true
				}
			}
			if len(seen) != cat.Len() {
				t.Fatalf("the parts hold %d of %d features", len(seen), cat.Len())
			}
			at := now
			for i := range 4000 {
				switch k := r.IntN(100); {
				case k == 0:
					at = at.Add(time.Duration(1+r.IntN(40)) * 24 * time.Hour)
				case k < 5:
					at = at.Add(time.Duration(r.IntN(300)) * time.Minute)
				case k < 15: // the same time as the event before
				default:
					at = at.Add(time.Duration(r.Int64N(int64(3 * time.Minute))))
				}
				if r.IntN(8) == 0 {
					at = at.Truncate(10 * time.Second).Add(10 * time.Second) // on a granule boundary
				}
				clk.Set(at)
				ev := randomEvent(r, at)
				want := apply(t, disk, db, ev, true)
				got, p, err := scratch.Apply(ev, nil)
				if err != nil {
					t.Fatal(err)
				}
				if p != nil {
					t.Fatal("scratch Apply returned a Pending")
				}
				scratch.Done(p, true)
				joined := make(Vector, cat.Len())
				for k, ps := range parts {
					v, _, err := ps.Apply(ev, nil)
					if err != nil {
						t.Fatal(err)
					}
					for j, at := range index[k] {
						joined[at] = v[j]
					}
				}
				for j, d := range cat.Defs() {
					if fmt.Sprint(got[j]) != fmt.Sprint(want[j]) {
						t.Fatalf("event %d (%s at %s): %s = %v in the scratch store, %v on Pebble", i, ev.TypeName, at, d.Name, got[j], want[j])
					}
					if fmt.Sprint(joined[j]) != fmt.Sprint(want[j]) {
						t.Fatalf("event %d (%s at %s): %s = %v from the scratch parts, %v on Pebble", i, ev.TypeName, at, d.Name, joined[j], want[j])
					}
				}
				// Read agrees too, and writes nothing.
				if i%50 == 0 {
					rv, err := scratch.Read(ev)
					if err != nil {
						t.Fatal(err)
					}
					dv, err := disk.Read(ev)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(rv) != fmt.Sprint(dv) {
						t.Fatalf("event %d: Read gives %v in the scratch store, %v on Pebble", i, rv, dv)
					}
				}
			}
		})
	}
}

// TestScratchBounds: a scratch store refuses what it cannot answer
// correctly rather than growing without bound or reading forgotten state.
func TestScratchBounds(t *testing.T) {
	clk := clock.NewFake(base)
	s, err := Open(Options{Scratch: true, Clock: clk, CacheEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Each account adds a handful of states: 100 fill up before 100 accounts.
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		_, _, full = s.Apply(mkEvent(base, fmt.Sprint("a", i), login(false), device(fmt.Sprint("d", i))), nil)
	}
	if !errors.Is(full, ErrScratchFull) {
		t.Errorf("100 accounts in a store of 100 states: %v, want ErrScratchFull", full)
	}
	if n := held(s); n > 100 || n < 90 {
		t.Errorf("scratch store holds %d states when full, limit 100", n)
	}

	// The parts of OpenScratch share the bound.
	parts, _, err := OpenScratch(Options{Clock: clk, CacheEntries: 100}, 2)
	if err != nil {
		t.Fatal(err)
	}
	full = nil
	for i := 0; i < 100 && full == nil; i++ {
		for _, p := range parts {
			if _, _, full = p.Apply(mkEvent(base, fmt.Sprint("a", i), login(false), device(fmt.Sprint("d", i))), nil); full != nil {
				break
			}
		}
	}
	if !errors.Is(full, ErrScratchFull) {
		t.Errorf("100 accounts in two parts sharing 100 states: %v, want ErrScratchFull", full)
	}
	if n := held(parts[0]) + held(parts[1]); n > 100 || n < 90 {
		t.Errorf("the parts hold %d states when full, limit 100", n)
	}

	s, err = Open(Options{Scratch: true, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{base, base, base.Add(time.Minute)} {
		if _, _, err := s.Apply(mkEvent(at, "a", login(false)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Apply(mkEvent(base, "a", login(false)), nil); !errors.Is(err, ErrScratchOrder) {
		t.Errorf("an event a minute older than the last: %v, want ErrScratchOrder", err)
	}
	if err := s.Sweep(base); err != nil {
		t.Errorf("Sweep: %v", err)
	}
	if _, err := s.Erase([]string{"pa:a"}, nil); !errors.Is(err, ErrScratch) {
		t.Errorf("Erase: %v, want ErrScratch", err)
	}

	for _, o := range []Options{{Scratch: true, DB: openDB(t, t.TempDir())}, {Scratch: true, Aliases: func(*event.Event) []event.Pseudonyms { return nil }}} {
		if o.DB != nil {
			defer o.DB.Close()
		}
		if _, err := Open(o); err == nil {
			t.Errorf("Open(%+v) of a scratch store succeeded", o)
		}
	}
}

// held counts the states in a scratch store's maps.
func held(s *Store) int {
	n := 0
	for i := range s.cache.shards {
		n += len(s.cache.shards[i].all)
	}
	return n
}

// BenchmarkScratchApply replays random events over 5,000 accounts, 7,000
// devices, 60,000 IPs (3,750 prefixes), 3,000 payees and 3,000 sites into a
// scratch store (a backtest's feature work); it reports the states held and
// the heap they take.
//
//	go test -run '^$' -bench ScratchApply -benchtime 200000x ./features/
func BenchmarkScratchApply(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	tmpl := make([]event.Event, 10000) // shapes, replayed at later times
	for i := range tmpl {
		ev := randomEvent(r, base)
		ip := r.IntN(60000)
		ev.P.Account = fmt.Sprint("pa:", r.IntN(5000))
		ev.P.Device = fmt.Sprint("pd:", r.IntN(7000))
		ev.P.IP, ev.P.IPPrefix = fmt.Sprint("pi:", ip), fmt.Sprint("pn:", ip/16)
		if ev.P.Payee != "" {
			ev.P.Payee = fmt.Sprint("pp:", r.IntN(3000))
		}
		if ev.Has.Attendance {
			ev.P.Site = fmt.Sprint("ps:", r.IntN(3000))
		}
		tmpl[i] = *ev
	}
	s, err := Open(Options{Scratch: true, Lists: cheatLists{}, CacheEntries: 1 << 24})
	if err != nil {
		b.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	var ev event.Event
	at := base
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		at = at.Add(time.Duration(r.IntN(70)) * time.Millisecond)
		ev = tmpl[i%len(tmpl)]
		ev.OccurredAt = at
		if _, _, err := s.Apply(&ev, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	n := s.cache.len()
	b.ReportMetric(float64(n), "states")
	b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/float64(n), "B/state")
}
