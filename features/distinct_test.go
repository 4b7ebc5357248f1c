package features

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// withExactLimit lowers the exact limit for one test, so that small sets
// overflow. Tests that use it are not parallel.
func withExactLimit(t testing.TB, n int) {
	old := exactLimit
	exactLimit = n
	t.Cleanup(func() { exactLimit = old })
}

// mix spreads small ids over 64 bits, as xxhash does pseudonyms (the
// sketches need uniform hashes).
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

func distinctOp(h uint64, slot int) []byte {
	return appendU64(appendU64([]byte{tagDistinct}, h), 1<<uint(slot))
}

type distinctEv struct {
	g int // granule 0..119: periods 0 and 1
	h uint64
}

// randomDistinctEvents draws bursts of values (more than the limit in a
// few granules, early, late or in the middle of a period) and a few
// values spread thin, some recurring across granules and periods.
func randomDistinctEvents(r *rand.Rand, limit int) []distinctEv {
	var evs []distinctEv
	for range 1 + r.IntN(5) {
		a := r.IntN(120)
		b := min(a+r.IntN(6), 119)
		n := 1 + r.IntN(4*limit)
		pool := uint64(1 + n*(1+r.IntN(3))/2)
		off := uint64(r.IntN(3 * limit))
		for range n {
			evs = append(evs, distinctEv{a + r.IntN(b-a+1), mix(off + r.Uint64N(pool))})
		}
	}
	for range r.IntN(3 * limit) {
		evs = append(evs, distinctEv{r.IntN(120), mix(r.Uint64N(uint64(4 * limit)))})
	}
	return evs
}

// mergeGrouped merges ops through the merger in a random grouping and
// order: groups merged first, their results then merged in random order.
func mergeGrouped(t *testing.T, r *rand.Rand, key []byte, ops [][]byte) []byte {
	t.Helper()
	ops = append([][]byte(nil), ops...)
	r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	var parts [][]byte
	for len(ops) > 0 {
		n := 1 + r.IntN(len(ops))
		parts = append(parts, mergeOps(t, key, ops[:n]))
		ops = ops[n:]
	}
	if len(parts) == 1 {
		return parts[0]
	}
	r.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	return mergeOps(t, key, parts)
}

func decodeState(t *testing.T, b []byte) *state {
	t.Helper()
	st := new(state)
	if err := st.merge(b); err != nil {
		t.Fatal(err)
	}
	return st
}

// readAt is distinctRead for a read at granule hi over periods -1 (empty),
// 0 and 1.
func readAt(per [3]*state, hi int) int64 {
	p := &plan{hi: int64(hi)}
	cur, prev, needPrev := periodsOf(&stateDef{agg: AggDistinct}, p.hi)
	p.cur = per[cur+1]
	if needPrev {
		p.prev = per[prev+1]
	}
	return distinctRead(p)
}

// TestDistinctExactPerWindow checks bigSet's rule with a limit of 8:
// random values in two periods, added one by one (as Apply does) and
// merged as single operands in random groupings and orders (as Pebble
// does), give the same stored state, at most twice the limit in exact
// values; and every read at every granule equals a brute-force count when
// its window holds at most the limit, and is within 2% (or 2) otherwise.
func TestDistinctExactPerWindow(t *testing.T) {
	const limit = 8
	withExactLimit(t, limit)
	r := rand.New(rand.NewPCG(11, 12))
	key := []byte{keys.FeatureState, 0, 1}
	exactPastLimit, estimated := 0, 0
	for round := range 300 {
		evs := randomDistinctEvents(r, limit)
		var per [3]*state // periods -1, 0, 1
		per[0] = new(state)
		for p := range 2 {
			var ops [][]byte
			inMem := new(state)
			for _, i := range r.Perm(len(evs)) {
				if e := evs[i]; e.g/slots == p {
					inMem.addDistinct(e.h, 1<<uint(e.g%slots))
					ops = append(ops, distinctOp(e.h, e.g%slots))
				}
			}
			if len(ops) == 0 {
				per[p+1] = new(state)
				continue
			}
			want, err := inMem.encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if got := mergeGrouped(t, r, key, ops); !bytes.Equal(got, want) {
					t.Fatalf("round %d period %d: merged %x, added one by one %x", round, p, got, want)
				}
			}
			per[p+1] = decodeState(t, want)
			if n := len(per[p+1].set); n > 2*limit {
				t.Fatalf("round %d period %d: %d exact values kept, limit %d", round, p, n, limit)
			}
		}
		for hi := range 120 {
			seen := map[uint64]bool{}
			for _, e := range evs {
				if e.g <= hi && e.g > hi-slots {
					seen[e.h] = true
				}
			}
			want := int64(len(seen))
			got := readAt(per, hi)
			if want <= limit {
				if got != want {
					t.Fatalf("round %d, read at granule %d: %d, brute force %d (exact)", round, hi, got, want)
				}
				if dropped(per, hi) {
					t.Fatalf("round %d, read at granule %d: a window of %d values reaches dropped granules", round, hi, want)
				}
				continue
			}
			if dropped(per, hi) {
				estimated++
			} else {
				exactPastLimit++
			}
			if math.Abs(float64(got-want)) > max(0.02*float64(want), 2) {
				t.Fatalf("round %d, read at granule %d: %d, brute force %d", round, hi, got, want)
			}
		}
	}
	if estimated == 0 || exactPastLimit == 0 {
		t.Fatalf("%d estimated reads, %d exact past the limit: the test misses a case", estimated, exactPastLimit)
	}
}

// dropped says whether the read at hi reaches a granule some period
// dropped into its sketches.
func dropped(per [3]*state, hi int) bool {
	for g := hi - slots + 1; g <= hi; g++ {
		p := floorDiv(int64(g), slots)
		if b := per[p+1].big; b != nil && b.drop&(1<<uint(g-int(p)*slots)) != 0 {
			return true
		}
	}
	return false
}

// TestDistinctMergeOrder: at the real limit, with sketches past it (one
// granule past the sparse sketch's size, so dense), any grouping and order
// of the operands, through the merger or state.merge, stores the same bytes.
func TestDistinctMergeOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	key := []byte{keys.FeatureState, 0, 1}
	var ops [][]byte
	add := func(n, a, b int, off uint64) {
		// Operands of up to 64 pairs (an Apply writes one; merged ones more).
		for i := 0; i < n; {
			op := []byte{tagDistinct}
			for k := 0; k < 64 && i < n; k++ {
				op = appendU64(op, mix(off+uint64(i)))
				op = appendU64(op, 1<<uint(a+r.IntN(b-a+1)))
				i++
			}
			ops = append(ops, op)
		}
	}
	add(12000, 3, 3, 0)       // dense: past the sparse form's size
	add(2000, 0, 5, 100000)   // early
	add(700, 40, 59, 200000)  // late, exact
	add(300, 0, 59, 0)        // recurring values everywhere
	add(1500, 20, 22, 300000) // middle
	var want []byte
	for i := range 6 {
		var got []byte
		if i%2 == 0 {
			got = mergeGrouped(t, r, key, ops)
		} else {
			var st state
			for _, j := range r.Perm(len(ops)) {
				if err := st.merge(ops[j]); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			if got, err = st.encode(nil); err != nil {
				t.Fatal(err)
			}
		}
		if want == nil {
			want = got
			st := decodeState(t, want)
			if want[0] != tagSketched || st.big == nil || st.big.drop == 0 || len(st.set) == 0 || len(st.set) > 2*ExactDistinctLimit {
				t.Fatalf("tag %d, %d exact values: want sketches and an exact part", want[0], len(st.set))
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ordering %d stored %d bytes differing from the first's %d", i, len(got), len(want))
		}
	}
}

// TestDistinctTagHLLStillReads: a state stored before exact parts (tagHLL,
// sketches only) decodes as sketches over the span of its granules and
// merges with new operands.
func TestDistinctTagHLLStillReads(t *testing.T) {
	var old state
	old.big = new(bigSet)
	for i := range 2000 {
		old.big.sketch(mix(uint64(i)), 1<<uint(10+i%5))
	}
	b := []byte{tagHLL}
	for slot, sk := range old.big.hll {
		if sk != nil {
			v, err := sk.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			b = append(binary.AppendUvarint(append(b, byte(slot)), uint64(len(v))), v...)
		}
	}
	st := decodeState(t, b)
	if err := st.merge(distinctOp(mix(5000), 30)); err != nil {
		t.Fatal(err)
	}
	if st.big.drop != rangeMask(10, 14) || len(st.set) != 1 {
		t.Fatalf("drop %x, %d exact values: want granules 10-14 and one", st.big.drop, len(st.set))
	}
	empty := new(state)
	for _, c := range []struct {
		hi   int
		want int64
		est  bool
	}{{75, 1, false}, {70, 1601, true}, {59, 2001, true}} {
		got := readAt([3]*state{empty, st, empty}, c.hi)
		if c.est && math.Abs(float64(got-c.want)) > 0.02*float64(c.want) || !c.est && got != c.want {
			t.Errorf("read at %d: %d, want %d", c.hi, got, c.want)
		}
	}
}

// TestDistinctExactAfterOverflow: on a device whose previous day (period)
// took 3,000 accounts in its first granules, a read whose window holds
// 1,001 is exact, in memory, from disk after compactions, and on
// the window's edges (t on a granule boundary: an account exactly w before
// t is out, 1 ns later in). A read reaching the busy granules is an
// estimate within 2%. A late read in a day whose later granules took 3,000
// accounts is exact too.
func TestDistinctExactAfterOverflow(t *testing.T) {
	const name = "device_distinct_accounts_24h"
	const w = 24 * time.Hour
	g := w / slots // 24 min
	day := base    // a period starts at midnight UTC
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(day.Add(3*w)), Options{})
	ev := func(at time.Time, acct string) { apply(t, s, db, mkEvent(at, acct, device("busy")), true) }
	for i := range 3000 { // granules 0-2 of the day
		ev(day.Add(time.Duration(i)*(3*g/3000)), fmt.Sprint("crowd", i))
	}
	for i := range 1000 { // granules 20-40
		ev(day.Add(20*g+time.Duration(i)*(20*g/1000)), fmt.Sprint("regular", i))
	}
	tt := day.Add(w + 10*g) // granule boundary: the window is (tt-w, tt]
	ev(tt.Add(-w), "edge-out")
	ev(tt.Add(-w+1), "edge-in")
	for i := range 100 { // the next day, half of them seen the day before
		ev(day.Add(w+time.Duration(i)*(10*g/100)+1), fmt.Sprint("regular", 2*i))
	}
	read := func(s *Store, at time.Time) int64 {
		t.Helper()
		v, err := s.Read(mkEvent(at, "reader", device("busy")))
		if err != nil {
			t.Fatal(err)
		}
		return valueOf(t, s.cat, v, name).Int
	}
	check := func(s *Store, when string) {
		t.Helper()
		if got, want := read(s, tt), int64(1000+1); got != want { // the next day's are all regulars
			t.Errorf("%s: read at the window's edge: %d, want exactly %d", when, got, want)
		}
		if got, want := read(s, tt.Add(-1)), int64(1000+1); got != want { // the same granule
			t.Errorf("%s: read 1ns earlier: %d, want exactly %d", when, got, want)
		}
		if got, want := read(s, tt.Add(-g)), int64(1000+2); got != want { // a granule earlier: edge-out in
			t.Errorf("%s: read a granule earlier: %d, want exactly %d", when, got, want)
		}
		// The whole busy day: past the limit, an estimate.
		got, want := read(s, day.Add(w-g)), 3000+1000+2.0
		if math.Abs(float64(got)-want) > 0.02*want {
			t.Errorf("%s: read over the busy granules: %d, want %v ±2%%", when, got, want)
		}
	}
	check(s, "in memory")
	// The busy day dropped granules, none of the reads' windows.
	if st := decodeStored(t, db, s, name, day, "busy"); st.big == nil || st.big.drop == 0 || st.big.drop&rangeMask(10, 59) != 0 {
		t.Fatalf("the busy day dropped granules %x: want some, none of 10-59", droppedGranules(st))
	}
	if err := db.Compact(context.Background(), []byte{keys.FeatureState}, []byte{keys.FeatureState + 1}, false); err != nil {
		t.Fatal(err)
	}
	check(openStore(t, db, clock.NewFake(day.Add(3*w)), Options{}), "from disk after a compaction")

	// Late read: day 3's later granules (31-33) take 3,000 accounts, then an
	// event from granule 5 of that day reads the 1,000 accounts before it.
	d3 := day.Add(3 * w)
	for i := range 1000 {
		ev(d3.Add(time.Duration(i)*(4*g/1000)+1), fmt.Sprint("early", i))
	}
	for i := range 3000 {
		ev(d3.Add(30*g+time.Duration(i)*(3*g/3000)+1), fmt.Sprint("late-crowd", i))
	}
	late := d3.Add(5 * g)
	// Dropped in the middle: the prefix up to the late read stays exact.
	if st := decodeStored(t, db, s, name, d3, "busy"); st.big == nil || st.big.drop == 0 || st.big.drop&rangeMask(0, 5) != 0 {
		t.Fatalf("day 3 dropped granules %x: want some, none of 0-5", droppedGranules(st))
	}
	for _, s := range []*Store{s, openStore(t, db, clock.NewFake(d3.Add(w)), Options{})} {
		if got := read(s, late); got != 1000 {
			t.Errorf("late read: %d, want exactly 1000", got)
		}
	}
}

func droppedGranules(st *state) uint64 {
	if st.big == nil {
		return 0
	}
	return st.big.drop
}

// decodeStored returns the stored state of feature name's period holding
// day for the device.
func decodeStored(t *testing.T, db *pebble.DB, s *Store, name string, day time.Time, dev string) *state {
	t.Helper()
	if err := s.Flush(); err != nil { // the deltas applied so far, to disk
		t.Fatal(err)
	}
	d := s.cat.defs[s.cat.Index(name)]
	st := s.cat.states[d.state]
	ent := append([]byte{byte(len("pd:" + dev))}, "pd:"+dev...)
	k := appendStateKey(nil, st.id, floorDiv(ceilDiv(day.UnixNano()+1, st.gran), slots), ent)
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return decodeState(t, v)
}

// FuzzDistinctMerger merges random distinct operands (exact pairs,
// sketched states, old sketch-only states) through the merger and through
// state.merge in reverse: both accept or refuse them, and agree. The seeds
// run with go test.
func FuzzDistinctMerger(f *testing.F) {
	sketched := func(lim int) []byte {
		old := exactLimit
		exactLimit = lim
		defer func() { exactLimit = old }()
		var st state
		for i := range 40 {
			st.addDistinct(mix(uint64(i%25)), 1<<uint(i%7*9))
		}
		b, _ := st.encode(nil)
		return b
	}
	f.Add(byte(4), sketched(4), distinctOp(7, 3))
	f.Add(byte(2), sketched(2), sketched(3))
	f.Add(byte(50), distinctOp(1, 0), distinctOp(1, 59))
	f.Add(byte(1), []byte{tagHLL, 3, 1, 2}, []byte{tagSketched, 0})
	f.Fuzz(func(t *testing.T, lim byte, a, b []byte) {
		withExactLimit(t, 1+int(lim%64))
		key := []byte{keys.FeatureState, 0, 1}
		ops := [][]byte{a, b, distinctOp(mix(uint64(lim)), int(lim%slots))}
		var st state
		var slowErr error
		for i := len(ops) - 1; i >= 0 && slowErr == nil; i-- {
			slowErr = st.merge(ops[i])
		}
		m, err := Merger().Merge(key, ops[0])
		for _, op := range ops[1:] {
			if err == nil {
				err = m.MergeNewer(op)
			}
		}
		var got []byte
		if err == nil {
			var closer io.Closer
			got, closer, err = m.Finish(true)
			if closer != nil {
				defer closer.Close()
			}
		}
		if (err == nil) != (slowErr == nil) {
			t.Fatalf("merger error %v, state.merge error %v", err, slowErr)
		}
		if err != nil {
			return
		}
		want, err := st.encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("merger %x, state.merge in reverse %x", got, want)
		}
		if n := len(decodeState(t, got).set); n > 2*exactLimit {
			t.Fatalf("%d exact values kept, limit %d", n, exactLimit)
		}
	})
}
