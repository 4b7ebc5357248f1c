package features

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// base is on a granule boundary of every default window (a whole day, and
// 90d/60 = 36h divides it too: 2026-01-01 is day 20454 = 36h * 13636).
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestDefaultCatalog(t *testing.T) {
	c := DefaultCatalog()
	want := []string{
		"login_failures_account_10m", "login_failures_ip_1h", "ip_distinct_accounts_login_1h",
		"device_distinct_accounts_24h", "account_distinct_devices_30d", "account_device_seen_before",
		"account_ip_prefix_seen_before", "seconds_since_last_login_account", "km_from_last_location_account",
		"speed_kmh_from_last_location_account", "payments_account_1h", "payment_amount_account_24h",
		"payee_distinct_payers_24h", "attendance_device_distinct_accounts_7d",
		"attendance_same_coordinates_account_30d", "cheat_packages_installed",
	}
	// The issue-3 features come first, unchanged; later issues append.
	defs := c.Defs()
	if len(defs) < len(want) {
		t.Fatalf("%d defs, want at least %d", len(defs), len(want))
	}
	for i, d := range defs {
		if i < len(want) && d.Name != want[i] {
			t.Errorf("def %d = %s, want %s", i, d.Name, want[i])
		}
		if len(d.Categories) == 0 {
			t.Errorf("%s: no categories", d.Name)
		}
	}
	// km and speed share one state, as does another pair of the first
	// sixteen; the later features each have their own.
	if len(c.states) != len(defs)-2 {
		t.Errorf("%d states, want %d", len(c.states), len(defs)-2)
	}
	if got := defs[c.Index("payment_amount_account_24h")].Categories; !equalStrings(got, []string{"behaviour", "payment"}) {
		t.Errorf("payment_amount categories %v", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWindowEdges uses t on a granule boundary of the 10m window (g = 10s):
// only there is the read's interval exactly (t-w, t]; elsewhere it is
// (G-w, G] with G = t rounded up to the granule (see doc.go).
func TestWindowEdges(t *testing.T) {
	const w = 10 * time.Minute
	tt := base.Add(time.Hour)
	cases := []struct {
		name string
		at   time.Time
		want int64
	}{
		{"exactly w before is excluded", tt.Add(-w), 0},
		{"1ns inside is included", tt.Add(-w + 1), 1},
		{"at t is included", tt, 1},
		{"1ns after t is excluded", tt.Add(1), 0},
		{"w+1ns before is excluded", tt.Add(-w - 1), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t, t.TempDir())
			defer db.Close()
			s := openStore(t, db, clock.NewFake(tt), Options{})
			apply(t, s, db, mkEvent(c.at, "a", login(false)), true)
			v, err := s.Read(mkEvent(tt, "a", login(false)))
			if err != nil {
				t.Fatal(err)
			}
			got := valueOf(t, s.cat, v, "login_failures_account_10m")
			if !got.Applicable || !got.Present || got.Int != c.want {
				t.Fatalf("got %+v, want %d", got, c.want)
			}
		})
	}
}

// TestFirstSeenWindowEdges is TestWindowEdges for first_seen: horizon 90d,
// granules of 36h, t on a granule boundary so that the read covers exactly
// (t-h, t]. The read is checked in the store that applied the event and in
// a fresh one over the same DB (the stored operand through the merger).
func TestFirstSeenWindowEdges(t *testing.T) {
	const h = 90 * 24 * time.Hour
	const name = "seconds_since_first_seen_account_device"
	tt := base.Add(h)
	cases := []struct {
		name    string
		at      time.Time
		present bool
		want    float64
	}{
		{"exactly h before is excluded", tt.Add(-h), false, 0},
		{"1ns inside is included", tt.Add(-h + 1), true, float64(h-1) / 1e9},
		{"at t is included", tt, true, 0},
		{"1ns after t is excluded", tt.Add(1), false, 0},
		{"h+1ns before is excluded", tt.Add(-h - 1), false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t, t.TempDir())
			defer db.Close()
			clk := clock.NewFake(tt)
			s := openStore(t, db, clk, Options{})
			apply(t, s, db, mkEvent(c.at, "a", device("d")), true)
			for _, st := range []*Store{s, openStore(t, db, clk, Options{})} {
				v, err := st.Read(mkEvent(tt, "a", device("d")))
				if err != nil {
					t.Fatal(err)
				}
				got := valueOf(t, st.cat, v, name)
				if !got.Applicable || got.Present != c.present || (c.present && got.Float != c.want) {
					t.Fatalf("got %+v, want present %v, %v s", got, c.present, c.want)
				}
			}
		})
	}
}

// TestFirstSeenLateEvents: a late event earlier than the first one becomes
// the first (the state is a minimum, not the first arrival); a late event
// finding only later events in its granule reads zero, never negative; the
// event being applied never sees itself.
func TestFirstSeenLateEvents(t *testing.T) {
	const name = "seconds_since_first_seen_account_device"
	db := openDB(t, t.TempDir())
	defer db.Close()
	tt := base.Add(time.Hour)
	clk := clock.NewFake(tt.Add(time.Hour))
	s := openStore(t, db, clk, Options{})
	seconds := func(v Vector) any {
		t.Helper()
		got := valueOf(t, s.cat, v, name)
		if !got.Applicable {
			t.Fatalf("%s not applicable", name)
		}
		return got.Any()
	}
	if got := seconds(apply(t, s, db, mkEvent(tt, "a", device("d")), true)); got != nil {
		t.Fatalf("first event: %v, want absent", got)
	}
	if got := seconds(apply(t, s, db, mkEvent(tt.Add(-5*time.Minute), "a", device("d")), true)); got != 0.0 {
		t.Fatalf("late event before the first: %v, want 0 (the only earlier-applied event is after it)", got)
	}
	if got := seconds(apply(t, s, db, mkEvent(tt.Add(time.Hour), "a", device("d")), true)); got != 3900.0 {
		t.Fatalf("an hour later: %v, want 3900 (since the late event)", got)
	}
	// Another device of the same account, and the pair's state after a restart.
	v, err := s.Read(mkEvent(tt.Add(time.Hour), "a", device("e")))
	if err != nil {
		t.Fatal(err)
	}
	if got := seconds(v); got != nil {
		t.Fatalf("other device: %v, want absent", got)
	}
	s = openStore(t, db, clk, Options{})
	apply(t, s, db, mkEvent(tt.Add(-20*time.Minute), "a", device("d")), true)
	v, err = s.Read(mkEvent(tt.Add(2*time.Hour), "a", device("d")))
	if err != nil {
		t.Fatal(err)
	}
	if got := seconds(v); got != 8400.0 {
		t.Fatalf("after a restart and an earlier late event: %v, want 8400", got)
	}
	// Show reads as of the clock (tt+1h), with both key fields given.
	shown, err := s.Show(event.Pseudonyms{Account: "pa:a", Device: "pd:d"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range shown {
		if x.Name == name {
			found = true
			if x.Value.Any() != 4800.0 {
				t.Fatalf("show: %v, want 4800", x.Value.Any())
			}
		}
	}
	if !found {
		t.Fatalf("show: %s missing", name)
	}
}

func TestDecisionSeesHistoryNotItself(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	for i := range int64(5) {
		v := apply(t, s, db, mkEvent(base.Add(time.Duration(i)*time.Second), "a", login(false), device("d1")), true)
		if got := valueOf(t, s.cat, v, "login_failures_account_10m"); got.Int != i {
			t.Fatalf("event %d: login failures %d", i, got.Int)
		}
		if got := valueOf(t, s.cat, v, "account_device_seen_before"); got.Bool != (i > 0) {
			t.Fatalf("event %d: seen before %v", i, got.Bool)
		}
	}
}

// Late events (inside the lateness bound; ingest rejects the rest) land in
// their own granules: later reads count them and earlier reads do not.
func TestLateEvents(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	tt := base.Add(time.Hour)
	apply(t, s, db, mkEvent(tt, "a", login(false)), true)
	late := apply(t, s, db, mkEvent(tt.Add(-5*time.Minute), "a", login(false)), true)
	if got := valueOf(t, s.cat, late, "login_failures_account_10m").Int; got != 0 {
		t.Fatalf("late event saw %d, want 0 (the later event is after it)", got)
	}
	for _, c := range []struct {
		at   time.Duration
		want int64
	}{{-6 * time.Minute, 0}, {-5 * time.Minute, 1}, {0, 2}, {4 * time.Minute, 2}, {6 * time.Minute, 1}, {11 * time.Minute, 0}} {
		v, err := s.Read(mkEvent(tt.Add(c.at), "a", login(false)))
		if err != nil {
			t.Fatal(err)
		}
		if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != c.want {
			t.Errorf("read at t%+v: %d, want %d", c.at, got, c.want)
		}
	}
}

func TestAbsentVersusZero(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	v := apply(t, s, db, mkEvent(base, "a", login(true), loc(31.2, 121.5)), true)
	for _, name := range []string{"seconds_since_last_login_account", "km_from_last_location_account", "speed_kmh_from_last_location_account"} {
		if got := valueOf(t, s.cat, v, name); !got.Applicable || got.Present || got.Any() != nil {
			t.Errorf("%s: %+v, want applicable and absent", name, got)
		}
	}
	// A successful login reads the failures before it (none yet: zero, not
	// absent) but is not counted as one.
	if got := valueOf(t, s.cat, v, "login_failures_account_10m"); !got.Applicable || got.Any() != int64(0) {
		t.Errorf("successful login: failures feature %+v, want applicable 0", got)
	}
	if got := valueOf(t, s.cat, v, "payments_account_1h"); got.Applicable {
		t.Errorf("login: payments feature applicable")
	}
	v = apply(t, s, db, mkEvent(base.Add(time.Hour), "a", login(true), loc(39.9, 116.4)), true)
	secs := valueOf(t, s.cat, v, "seconds_since_last_login_account")
	km := valueOf(t, s.cat, v, "km_from_last_location_account")
	kmh := valueOf(t, s.cat, v, "speed_kmh_from_last_location_account")
	if secs.Any() != 3600.0 {
		t.Errorf("seconds since %v", secs.Any())
	}
	// Shanghai to Beijing: about 1067 km.
	if math.Abs(km.Float-1067) > 5 || math.Abs(kmh.Float-km.Float) > 1e-9 {
		t.Errorf("km %v kmh %v", km.Float, kmh.Float)
	}
	// An event without a location: distance not applicable.
	v = apply(t, s, db, mkEvent(base.Add(2*time.Hour), "a", login(true)), true)
	if got := valueOf(t, s.cat, v, "km_from_last_location_account"); got.Applicable {
		t.Errorf("km applicable without a location: %+v", got)
	}
}

type fakeLists map[string]bool

func (f fakeLists) CountMembers(list string, values []string) int {
	seen := map[string]bool{}
	for _, v := range values {
		if list == "cheat_apps" && f[v] {
			seen[v] = true
		}
	}
	return len(seen)
}

func TestListCount(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	ev := mkEvent(base, "a", device("d"))
	ev.Device.InstalledPackages = []string{"com.ok", "com.cheat.gps", "com.cheat.clicker"}
	ev.Device.FlaggedPackages = []string{"com.cheat.gps"}
	for _, c := range []struct {
		name  string
		lists ListMatcher
		want  int64
	}{{"nil matcher", nil, 0}, {"deduplicated", fakeLists{"com.cheat.gps": true, "com.cheat.clicker": true}, 2}} {
		t.Run(c.name, func(t *testing.T) {
			s := openStore(t, db, clock.NewFake(base), Options{Lists: c.lists})
			v, err := s.Read(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := valueOf(t, s.cat, v, "cheat_packages_installed"); got.Any() != c.want {
				t.Errorf("got %+v, want %d", got, c.want)
			}
		})
	}
	s := openStore(t, db, clock.NewFake(base), Options{})
	v, _ := s.Read(mkEvent(base, "a"))
	if valueOf(t, s.cat, v, "cheat_packages_installed").Applicable {
		t.Error("applicable without a device")
	}
}

// TestFailedCommitRebuilds: an Apply whose batch does not commit leaves
// memory ahead of the disk; the store refuses Applies until a Flush has
// rebuilt memory from the disk, which holds exactly the committed events.
func TestFailedCommitRebuilds(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	failures := func(s *Store, at time.Time) int64 {
		t.Helper()
		v, err := s.Read(mkEvent(at, "a", login(false)))
		if err != nil {
			t.Fatal(err)
		}
		return valueOf(t, s.cat, v, "login_failures_account_10m").Int
	}
	apply(t, s, db, mkEvent(base, "a", login(false)), true)
	apply(t, s, db, mkEvent(base.Add(time.Second), "a", login(false)), false) // flushes
	if got := failures(s, base.Add(time.Minute)); got != 1 {
		t.Fatalf("after a failed commit and a flush: %d, want 1", got)
	}

	// Two in flight on one key; the first fails, the second commits.
	bA, bB := db.NewBatch(), db.NewBatch()
	defer bA.Close()
	defer bB.Close()
	_, pA, err := s.Apply(mkEvent(base.Add(2*time.Second), "a", login(false)), bA)
	if err != nil {
		t.Fatal(err)
	}
	vB, pB, err := s.Apply(mkEvent(base.Add(3*time.Second), "a", login(false)), bB)
	if err != nil {
		t.Fatal(err)
	}
	if got := valueOf(t, s.cat, vB, "login_failures_account_10m").Int; got != 2 {
		t.Fatalf("B saw %d, want 2 (committed + in-flight A)", got)
	}
	s.Done(pA, false)
	bC := db.NewBatch()
	defer bC.Close()
	if _, _, err := s.Apply(mkEvent(base.Add(4*time.Second), "a", login(false)), bC); !errors.Is(err, ErrRebuilding) {
		t.Fatalf("Apply after a failed commit: %v, want ErrRebuilding", err)
	}
	if !bC.Empty() {
		t.Fatal("a refused Apply wrote to its batch")
	}
	// The rebuild waits for B, which commits meanwhile.
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush() }()
	if err := bB.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	s.Done(pB, true)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if got := failures(s, base.Add(time.Minute)); got != 2 {
		t.Fatalf("after A failed and B committed: %d, want 2", got)
	}
	if n := s.Stats().Rebuilds; n != 2 {
		t.Fatalf("%d rebuilds counted, want 2", n)
	}
	apply(t, s, db, mkEvent(base.Add(5*time.Second), "a", login(false)), true)
	if got := failures(s, base.Add(time.Minute)); got != 3 {
		t.Fatalf("after the rebuild, one more: %d, want 3", got)
	}
	// A fresh store over the same DB agrees (the disk holds exactly that).
	s2 := openStore(t, db, clock.NewFake(base), Options{})
	if got := failures(s2, base.Add(time.Minute)); got != 3 {
		t.Fatalf("fresh store: %d, want 3", got)
	}
}

func TestPinnedEntriesSurviveEviction(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{CacheEntries: 1})
	b := db.NewBatch()
	defer b.Close()
	_, p, err := s.Apply(mkEvent(base, "a", login(false)), b)
	if err != nil {
		t.Fatal(err)
	}
	// Thrash the tiny cache with other keys while the first batch is in flight.
	for i := range 50 {
		apply(t, s, db, mkEvent(base, string(rune('b'+i)), login(false), device("x")), true)
	}
	v, err := s.Read(mkEvent(base.Add(time.Second), "a", login(false)))
	if err != nil {
		t.Fatal(err)
	}
	if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != 1 {
		t.Fatalf("uncommitted delta lost on eviction: %d", got)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	s.Done(p, true)
}

func TestSweep(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	clk := clock.NewFake(base)
	s := openStore(t, db, clk, Options{Lateness: time.Hour})
	// 200 days of activity, one event every 6 hours.
	var last time.Time
	for i := range 800 {
		last = base.Add(time.Duration(i) * 6 * time.Hour)
		apply(t, s, db, mkEvent(last, "a", login(false), device("d"), ip("10.0.0.1", "10.0.0"), payment(100, "p")), true)
	}
	clk.Set(last)
	probe := mkEvent(last.Add(time.Second), "a", login(false), device("d"), ip("10.0.0.1", "10.0.0"), payment(5, "p"))
	before, err := s.Read(probe)
	if err != nil {
		t.Fatal(err)
	}
	countKeys := func() map[uint16]int {
		n := map[uint16]int{}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.FeatureState}, UpperBound: []byte{keys.FeatureState + 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			_, id, _, ok := parseStateKey(it.Key())
			if !ok {
				t.Fatalf("state key %x does not parse", it.Key())
			}
			n[id]++
		}
		return n
	}
	if err := s.Flush(); err != nil { // the deltas, to disk
		t.Fatal(err)
	}
	pre := countKeys()
	// State of a retired definition goes too.
	if err := db.Set(appendStateKey(nil, 0, 1, []byte{1, 'x'}), []byte{tagCount}, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := s.Sweep(clk.Now()); err != nil {
		t.Fatal(err)
	}
	post := countKeys()
	if post[0] != 0 {
		t.Errorf("retired state kept")
	}
	tmin := clk.Now().Add(-time.Hour).UnixNano()
	it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.FeatureState}, UpperBound: []byte{keys.FeatureState + 1}})
	for it.First(); it.Valid(); it.Next() {
		_, id, period, _ := parseStateKey(it.Key())
		for _, st := range s.cat.states {
			if st.id != id {
				continue
			}
			// No kept period may lie wholly before what a read at tmin reaches.
			periodLen := int64(st.window)
			if periodEnd := (period + 1) * periodLen; periodEnd < tmin-2*periodLen-int64(st.window) {
				t.Errorf("%s: period %d kept (ends %v)", st.first, period, time.Unix(0, periodEnd))
			}
		}
	}
	it.Close()
	shrunk := 0
	for _, st := range s.cat.states {
		if post[st.id] < pre[st.id] {
			shrunk++
		}
		if st.window <= 24*time.Hour && post[st.id] > 3 {
			t.Errorf("%s: %d keys left for one entity", st.first, post[st.id])
		}
	}
	if shrunk == 0 {
		t.Fatal("sweep deleted nothing")
	}
	// Reads within the lateness bound are unchanged, also from a cold cache.
	s2 := openStore(t, db, clk, Options{Lateness: time.Hour})
	for _, st := range []*Store{s, s2} {
		after, err := st.Read(probe)
		if err != nil {
			t.Fatal(err)
		}
		for i := range before {
			if before[i] != after[i] {
				t.Errorf("%s: %+v before sweep, %+v after", s.cat.defs[i].Name, before[i], after[i])
			}
		}
	}
}

func TestHLLBeyondExact(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	const n = 3000
	for i := range n {
		at := base.Add(time.Duration(i) * 10 * time.Millisecond)
		apply(t, s, db, mkEvent(at, "acct"+itoa(i), device("shared")), true)
	}
	probe := mkEvent(base.Add(time.Hour), "z", device("shared"))
	check := func(s *Store) {
		v, err := s.Read(probe)
		if err != nil {
			t.Fatal(err)
		}
		got := valueOf(t, s.cat, v, "device_distinct_accounts_24h").Int
		if rel := math.Abs(float64(got)-n) / n; rel > 0.02 {
			t.Fatalf("estimate %d for %d (%.2f%%)", got, n, rel*100)
		}
	}
	check(s)
	check(openStore(t, db, clock.NewFake(base), Options{})) // from disk
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

func TestExactDistinctAtLimit(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	for i := range ExactDistinctLimit {
		apply(t, s, db, mkEvent(base.Add(time.Duration(i)*time.Millisecond), "acct"+itoa(i), device("shared")), true)
	}
	s2 := openStore(t, db, clock.NewFake(base), Options{})
	for _, st := range []*Store{s, s2} {
		v, _ := st.Read(mkEvent(base.Add(time.Hour), "z", device("shared")))
		if got := valueOf(t, s.cat, v, "device_distinct_accounts_24h").Int; got != ExactDistinctLimit {
			t.Fatalf("got %d, want exactly %d", got, ExactDistinctLimit)
		}
	}
}

func TestMergerLeavesOtherKeysAlone(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	k := []byte{keys.ListEntry, 'x'}
	db.Merge(k, []byte("ab"), pebble.NoSync)
	db.Merge(k, []byte("cd"), pebble.NoSync)
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !bytes.Equal(v, []byte("abcd")) {
		t.Fatalf("got %q", v)
	}
}

func TestMergeCommutes(t *testing.T) {
	for _, ops := range [][][]byte{
		{{tagCount, 3, 2}, {tagCount, 3, 4, 5, 2}, {tagCount, 59, 1}},
		{appendFirst([]byte{tagFirst}, 3, 900), appendFirst(appendFirst([]byte{tagFirst}, 3, 100), 7, 5), appendFirst([]byte{tagFirst}, 3, 400)},
	} {
		var a, b state
		for _, o := range ops {
			if err := a.merge(o); err != nil {
				t.Fatal(err)
			}
		}
		for i := len(ops) - 1; i >= 0; i-- {
			if err := b.merge(ops[i]); err != nil {
				t.Fatal(err)
			}
		}
		ea, _ := a.encode(nil)
		eb, _ := b.encode(nil)
		if !bytes.Equal(ea, eb) {
			t.Fatalf("%x != %x", ea, eb)
		}
	}
	// first_seen keeps each slot's minimum.
	var f state
	for _, o := range [][]byte{appendFirst([]byte{tagFirst}, 3, 900), appendFirst([]byte{tagFirst}, 3, 100), appendFirst([]byte{tagFirst}, 7, 5)} {
		if err := f.merge(o); err != nil {
			t.Fatal(err)
		}
	}
	if m, ok := f.minRange(0, 5); !ok || m != 100 {
		t.Fatalf("slots 0-5: min %d %v, want 100", m, ok)
	}
	if err := f.merge([]byte{tagFirst, 60, 0, 0, 0, 0, 0, 0, 0, 1}); !errors.Is(err, errCorrupt) {
		t.Fatalf("slot 60: %v", err)
	}
	if err := f.merge([]byte{tagCount, 3, 2}); !errors.Is(err, errCorrupt) {
		t.Fatalf("count into first_seen: %v", err)
	}
	var bad state
	if err := bad.merge([]byte{99}); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown tag: %v", err)
	}
}

func TestShow(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	clk := clock.NewFake(base.Add(time.Minute))
	s := openStore(t, db, clk, Options{})
	ev := mkEvent(base, "a", login(false), device("d"), ip("1.2.3.4", "1.2.3"))
	apply(t, s, db, ev, true)
	shown, err := s.Show(event.Pseudonyms{Account: ev.P.Account})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, x := range shown {
		got[x.Name] = x.Value.Any()
	}
	if got["login_failures_account_10m"] != int64(1) || got["account_distinct_devices_30d"] != int64(1) || got["seconds_since_last_login_account"] != 60.0 {
		t.Fatalf("show account: %v", got)
	}
	if _, ok := got["device_distinct_accounts_24h"]; ok {
		t.Fatalf("device feature shown for an account")
	}
	shown, _ = s.Show(event.Pseudonyms{IP: ev.P.IP})
	got = map[string]any{}
	for _, x := range shown {
		got[x.Name] = x.Value.Any()
	}
	if got["login_failures_ip_1h"] != int64(1) || got["ip_distinct_accounts_login_1h"] != int64(1) {
		t.Fatalf("show ip: %v", got)
	}
}

func TestCacheStaysWithinBound(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	const bound = 256
	s := openStore(t, db, clock.NewFake(base), Options{CacheEntries: bound})
	for i := range 500 {
		apply(t, s, db, mkEvent(base.Add(time.Duration(i)*time.Second), "acct"+itoa(i), login(false), device("d"+itoa(i)), ip("10.0.0."+itoa(i%200), "10.0.0")), true)
	}
	// Entries holding deltas no flush has merged stay on top of the bound.
	if n := s.cache.len(); n <= bound {
		t.Fatalf("%d entries cached before a flush, want the dirty ones pinned past %d", n, bound)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := s.cache.len(); n > bound {
		t.Fatalf("%d entries cached, bound %d", n, bound)
	}
	// Evicted state reloads from disk intact.
	v, err := s.Read(mkEvent(base.Add(time.Hour), "acct0", login(false), device("d0")))
	if err != nil {
		t.Fatal(err)
	}
	if !valueOf(t, s.cat, v, "account_device_seen_before").Bool {
		t.Fatal("evicted state lost")
	}
}

// TestSweepResumes sweeps one store whole and a copy of it a few keys at a
// time: each call goes on where the last stopped, a pass deletes what one
// whole sweep does, and a key written meanwhile is left alone.
func TestSweepResumes(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer db.Close()
	clk := clock.NewFake(base)
	s := openStore(t, db, clk, Options{Lateness: time.Hour})
	var last time.Time
	for i := range 200 {
		last = base.Add(time.Duration(i) * 6 * time.Hour)
		apply(t, s, db, mkEvent(last, fmt.Sprint("a", i%7), login(false), device(fmt.Sprint("d", i%3)), ip("10.0.0.1", "10.0.0")), true)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	clk.Set(last)
	if err := db.Checkpoint(dir + "-copy"); err != nil {
		t.Fatal(err)
	}
	db2 := openDB(t, dir+"-copy")
	defer db2.Close()
	s2 := openStore(t, db2, clk, Options{Lateness: time.Hour, SweepKeys: 7})
	keysOf := func(db *pebble.DB) []string {
		var out []string
		if err := scanPrefix(db, keys.FeatureState, func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := len(keysOf(db2))
	if err := s.Sweep(clk.Now()); err != nil {
		t.Fatal(err)
	}
	want := keysOf(db)
	if len(want) == before {
		t.Fatal("the whole sweep deleted nothing")
	}
	if s.sweepAt != nil {
		t.Fatal("a whole sweep left a place to go on from")
	}
	// A live key the scan has not reached yet, written between calls.
	// Its entity sorts after every real one's.
	fresh := appendStateKey(nil, s.cat.states[0].id, math.MaxInt64/2, append([]byte{0xfe}, bytes.Repeat([]byte{0xff}, 0xfe)...))
	calls := 0
	for {
		if err := s2.Sweep(clk.Now()); err != nil {
			t.Fatal(err)
		}
		calls++
		if calls == 2 {
			if err := db2.Set(fresh, []byte{tagCount}, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		if s2.sweepAt == nil {
			break
		}
		if calls > before {
			t.Fatal("the pass never ended")
		}
	}
	if min := (before + 6) / 7; calls < min {
		t.Errorf("%d calls for %d keys 7 at a time", calls, before)
	}
	got := keysOf(db2)
	if !slices.Contains(got, string(fresh)) {
		t.Error("the key written during the pass was deleted")
	}
	got = slices.DeleteFunc(got, func(k string) bool { return k == string(fresh) })
	if !slices.Equal(got, want) {
		t.Errorf("a pass 7 keys at a time left %d keys, a whole sweep %d", len(got), len(want))
	}
}
