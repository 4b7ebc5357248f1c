package features

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// deltaRecords counts the delta records on disk.
func deltaRecords(t *testing.T, db *pebble.DB) int { return countPrefix(t, db, keys.FeatureDelta) }

// stateKeys counts the feature state keys on disk.
func stateKeys(t *testing.T, db *pebble.DB) int { return countPrefix(t, db, keys.FeatureState) }

// TestWriteBackExactlyOnce applies committed events over a few accounts,
// flushing and crashing (reopening the DB under an abandoned store) at
// random points, and checks after each crash that every count equals the
// events applied: a delta is neither lost nor merged twice.
func TestWriteBackExactlyOnce(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			db := openDB(t, dir)
			defer func() { db.Close() }()
			clk := clock.NewFake(base)
			s := openStore(t, db, clk, Options{CacheEntries: 8 + r.IntN(64)})
			want := map[string]int64{}
			at := base.Add(time.Hour)
			check := func(s *Store, when string) {
				t.Helper()
				for acct, n := range want {
					v, err := s.Read(mkEvent(at.Add(time.Second), acct, login(false)))
					if err != nil {
						t.Fatal(err)
					}
					if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != n {
						t.Fatalf("%s: %s has %d failures, want %d", when, acct, got, n)
					}
				}
			}
			for range 600 {
				acct := fmt.Sprint("a", r.IntN(12))
				apply(t, s, db, mkEvent(at, acct, login(false), device(fmt.Sprint("d", r.IntN(5)))), true)
				want[acct]++
				switch r.IntN(60) {
				case 0:
					if err := s.Flush(); err != nil {
						t.Fatal(err)
					}
					if n := deltaRecords(t, db); n != 0 {
						t.Fatalf("%d delta records left after a flush", n)
					}
				case 1:
					check(s, "before a crash")
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
					db = openDB(t, dir)
					s = openStore(t, db, clk, Options{CacheEntries: 8 + r.IntN(64)})
					if n := deltaRecords(t, db); n != 0 {
						t.Fatalf("%d delta records left after Open", n)
					}
					check(s, "after a crash")
				}
			}
			check(s, "at the end")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check(openStore(t, db, clk, Options{}), "after Close")
		})
	}
}

// TestFlushCoversOnlySettledEvents: a flush waits for the Applies of its
// epoch to settle, and merges an event's delta only once its batch is
// committed; an Apply of the next epoch stays in memory and its record.
func TestFlushCoversOnlySettledEvents(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	b := db.NewBatch()
	defer b.Close()
	_, p, err := s.Apply(mkEvent(base, "a", login(false)), b)
	if err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush() }()
	select {
	case err := <-flushed:
		t.Fatalf("flush returned (%v) before the event in flight settled", err)
	default:
	}
	if n := stateKeys(t, db); n != 0 {
		t.Fatalf("%d state keys on disk before the commit", n)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	s.Done(p, true)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if stateKeys(t, db) == 0 || deltaRecords(t, db) != 0 {
		t.Fatalf("after the flush: %d state keys, %d records; want some, none", stateKeys(t, db), deltaRecords(t, db))
	}
	st := s.Stats()
	if st.Flushes != 1 || st.DeltasMerged != int64(stateKeys(t, db)) || st.DeltasWaiting != 0 || st.PeriodLoads == 0 || st.FlushTime <= 0 {
		t.Fatalf("stats after one flush: %+v (%d state keys)", st, stateKeys(t, db))
	}
	// The next event waits in memory and in its record until a flush.
	before := stateKeys(t, db)
	apply(t, s, db, mkEvent(base.Add(time.Second), "b", login(false)), true)
	if stateKeys(t, db) != before || deltaRecords(t, db) != 1 {
		t.Fatalf("an applied event: %d state keys (%d before), %d records; want unchanged, 1", stateKeys(t, db), before, deltaRecords(t, db))
	}
	if st := s.Stats(); st.DeltasWaiting == 0 {
		t.Fatalf("stats: no delta waiting after an Apply: %+v", st)
	}
}

// TestOpenRefusesCorruptDeltaRecord: a record that does not decode stops
// Open (naming the record) rather than dropping deltas silently.
func TestOpenRefusesCorruptDeltaRecord(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	for _, rec := range [][]byte{{0x05, keys.FeatureState}, {0x0b, keys.FeatureState, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, {0x02, 0x99, 0x00}} {
		if err := db.Set(deltaKey(1), rec, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		_, err := Open(Options{DB: db})
		if !errors.Is(err, errCorrupt) {
			t.Errorf("record %x: Open: %v, want errCorrupt", rec, err)
		}
	}
}

// TestFlushInterruptedBetweenParts stops a flush after its first part (of
// three operands each) has committed, then recovers both ways: a rebuild
// in the same process and a restart. The markers keep the committed part's
// operands from being merged a second time from the records.
func TestFlushInterruptedBetweenParts(t *testing.T) {
	defer func(n int) { flushPart, afterFlushPart = n, nil }(flushPart)
	flushPart = 3
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir)
			defer func() { db.Close() }()
			clk := clock.NewFake(base)
			s := openStore(t, db, clk, Options{})
			want := map[string]int64{}
			failLogins(t, s, db, 0, 40, want)
			afterFlushPart = func(part uint64) error { return errors.New("stop") }
			if err := s.Flush(); err == nil {
				t.Fatal("flush: no error from the interrupted part")
			}
			afterFlushPart = nil
			if n := countPrefix(t, db, keys.FeatureFlush); n != 1 {
				t.Fatalf("%d flush markers, want 1 (the committed part)", n)
			}
			if restart {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db = openDB(t, dir)
				s = openStore(t, db, clk, Options{})
			} else if err := s.Flush(); err != nil { // the rebuild
				t.Fatal(err)
			}
			if n := countPrefix(t, db, keys.FeatureFlush) + deltaRecords(t, db); n != 0 {
				t.Fatalf("%d markers and records left after recovery", n)
			}
			checkTenAccountsOnD(t, s, want)
		})
	}
}

func countPrefix(t testing.TB, db *pebble.DB, p byte) int {
	t.Helper()
	n := 0
	if err := scanPrefix(db, p, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRotationStateCountsOnceAfterFlush: during a pseudonym-key rotation a
// period's memory holds the state read under the old key too, which its own
// key does not have: what a flush writes under the new key must leave the
// old key's state counted once when the period is read back from disk.
func TestRotationStateCountsOnceAfterFlush(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer func() { db.Close() }()
	clk := clock.NewFake(base)
	at := base.Add(time.Hour)
	s := openStore(t, db, clk, Options{})
	for range 2 {
		apply(t, s, db, mkEvent(at, "old", login(false)), true)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The account's pseudonym under the new key is pa:new; pa:old under the old.
	aliases := func(ev *event.Event) []event.Pseudonyms {
		if ev.P.Account == "pa:new" {
			return []event.Pseudonyms{{Account: "pa:old"}}
		}
		return nil
	}
	s = openStore(t, db, clk, Options{Aliases: aliases})
	for range 2 {
		apply(t, s, db, mkEvent(at, "new", login(false)), true)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, db, clk, Options{Aliases: aliases}) // state read back from disk
	if got := readFeature(t, s, mkEvent(at.Add(time.Second), "new", login(false)), "login_failures_account_10m").Int; got != 4 {
		t.Fatalf("after the flush: %d failures, want 4 (2 under the old key, 2 under the new)", got)
	}
}

// TestPreloadReadAgainAfterAWrite: an Apply reads the periods of an entity
// not in memory before it takes the stripe locks; when meanwhile another
// Apply loaded the entity, added an event, flushed it to disk and lost it
// from memory again, what was read first is stale and must be read again.
func TestPreloadReadAgainAfterAWrite(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{CacheEntries: 4})
	at := base.Add(time.Hour)
	evict := func(tag string) { evictAccount(t, s, db, at, "a", tag, 8) }
	for range 2 {
		apply(t, s, db, mkEvent(at, "a", login(false)), true)
	}
	evict("x")
	afterPreload = func() {
		afterPreload = nil
		apply(t, s, db, mkEvent(at, "a", login(false)), true) // the third
		evict("y")
	}
	defer func() { afterPreload = nil }()
	v := apply(t, s, db, mkEvent(at, "a", login(false)), true)
	if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != 3 {
		t.Fatalf("the fourth failure read %d earlier ones, want 3", got)
	}
	if afterPreload != nil {
		t.Fatal("the hook did not run")
	}
}

// TestRepeatedValuesWriteNoDelta: once a period is on disk, an event that
// repeats a value its exact distinct sets and first-seen granules hold
// already writes no delta for them; the values stay exact across a crash.
func TestRepeatedValuesWriteNoDelta(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	defer func() { db.Close() }()
	clk := clock.NewFake(base)
	s := openStore(t, db, clk, Options{})
	at := base.Add(time.Hour)
	apply(t, s, db, mkEvent(at, "a", login(true), device("d")), true)
	first := s.Stats().DeltasWaiting
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, db, mkEvent(at.Add(time.Second), "a", login(true), device("d")), true)
	again := s.Stats().DeltasWaiting
	if again == 0 || again >= first {
		t.Fatalf("the repeat left %d deltas waiting, the first event %d: want fewer, but some (counts)", again, first)
	}
	// Crash before a flush: Open merges the repeat's record.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	s = openStore(t, db, clk, Options{})
	v, err := s.Read(mkEvent(at.Add(2*time.Second), "a", login(true), device("d")))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int64{"account_distinct_devices_30d": 1, "device_distinct_accounts_24h": 1} {
		if got := valueOf(t, s.cat, v, name).Int; got != want {
			t.Errorf("after the crash %s = %d, want %d", name, got, want)
		}
	}
	if !valueOf(t, s.cat, v, "account_device_seen_before").Bool {
		t.Errorf("after the crash the device is not seen before")
	}
}

// TestRepeatAfterAnUncommittedEventCounts: a value in memory only through
// an event whose commit is still pending is not durable: a repeat of it
// must write its own delta, or it is lost when that commit fails.
func TestRepeatAfterAnUncommittedEventCounts(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{})
	at := base.Add(time.Hour)
	apply(t, s, db, mkEvent(at, "a", login(true), device("old")), true)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	b1 := db.NewBatch()
	defer b1.Close()
	_, p1, err := s.Apply(mkEvent(at.Add(time.Second), "a", login(true), device("d")), b1)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, db, mkEvent(at.Add(2*time.Second), "a", login(true), device("d")), true)
	s.Done(p1, false)                 // the first event's commit failed
	if err := s.Flush(); err != nil { // rebuilds memory from the disk
		t.Fatal(err)
	}
	if got := readFeature(t, s, mkEvent(at.Add(3*time.Second), "a", login(true), device("x")), "account_distinct_devices_30d").Int; got != 2 {
		t.Fatalf("account_distinct_devices_30d = %d after the failed commit, want 2 (old and d, from the committed repeat)", got)
	}
}

// TestRepeatDuringRotationKeptUnderTheNewKey: during a rotation a value
// found only under the old key is written under the new one when an event
// repeats it, so that it is still there once the rotation is over and the
// old keys are no longer read.
func TestRepeatDuringRotationKeptUnderTheNewKey(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	clk := clock.NewFake(base)
	at := base.Add(time.Hour)
	s := openStore(t, db, clk, Options{})
	apply(t, s, db, mkEvent(at, "old", login(true), device("d")), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, db, clk, Options{Aliases: func(ev *event.Event) []event.Pseudonyms {
		if ev.P.Account == "pa:new" {
			return []event.Pseudonyms{{Account: "pa:old", Device: "pd:d"}}
		}
		return nil
	}})
	apply(t, s, db, mkEvent(at.Add(time.Second), "new", login(true), device("d")), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, db, clk, Options{}) // the rotation is over
	if got := readFeature(t, s, mkEvent(at.Add(2*time.Second), "new", login(true), device("x")), "account_distinct_devices_30d").Int; got != 1 {
		t.Fatalf("account_distinct_devices_30d = %d under the new key after the rotation, want 1", got)
	}
}

// TestPreloadedEntryGoneIsLookedUpAgain: an Apply finds its entity's entry
// before it takes the stripe locks; when that entry is evicted meanwhile
// and another Apply loads the entity anew and adds an event to it, the
// first must use the new entry, not the one it found.
func TestPreloadedEntryGoneIsLookedUpAgain(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clock.NewFake(base), Options{CacheEntries: 32})
	at := base.Add(time.Hour)
	cached := func() bool { return inMemory(t, s, mkEvent(at, "a", login(false)), "login_failures_account_10m") }
	evict := func(tag string) { evictAccount(t, s, db, at, "a", tag, 24) }
	for range 2 {
		apply(t, s, db, mkEvent(at, "a", login(false)), true)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !cached() {
		t.Fatal("a's failures not in memory: preload would find no entry")
	}
	afterPreload = func() {
		afterPreload = nil
		evict("x")
		apply(t, s, db, mkEvent(at, "a", login(false)), true) // the third, in a new entry
	}
	defer func() { afterPreload = nil }()
	v := apply(t, s, db, mkEvent(at, "a", login(false)), true)
	if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != 3 {
		t.Fatalf("the fourth failure read %d earlier ones, want 3", got)
	}
	if got := readFeature(t, s, mkEvent(at.Add(time.Second), "a", login(false)), "login_failures_account_10m").Int; got != 4 {
		t.Fatalf("after the fourth: %d failures, want 4", got)
	}
}

// inMemory reports whether the state behind feature, for ev's entity, is
// in the store's cache.
func inMemory(t *testing.T, s *Store, ev *event.Event, feature string) bool {
	t.Helper()
	w := new(work)
	if err := s.prepare(w, ev, false); err != nil {
		t.Fatal(err)
	}
	si := s.cat.defs[s.cat.Index(feature)].state
	p := &w.plans[si]
	return s.cache.get(p.h, s.cat.states[si].id, p.ent) != nil
}

// evictAccount applies and flushes one failed login for each of n other
// accounts (flushed, so unpinned and evictable) until acct's failure count
// is out of the store's memory, and fails the test if it is not.
func evictAccount(t *testing.T, s *Store, db *pebble.DB, at time.Time, acct, tag string, n int) {
	t.Helper()
	for i := range n {
		apply(t, s, db, mkEvent(at, fmt.Sprint(tag, i), login(false)), true)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if inMemory(t, s, mkEvent(at, acct, login(false)), "login_failures_account_10m") {
		t.Fatalf("%s's failures still in memory: the test needs them evicted", acct)
	}
}

// failLogins applies failed logins number from to to-1, one a second, of
// accounts a0-a9 in turn on device d, counting them in want.
func failLogins(t *testing.T, s *Store, db *pebble.DB, from, to int, want map[string]int64) {
	t.Helper()
	for i := from; i < to; i++ {
		acct := fmt.Sprint("a", i%10)
		apply(t, s, db, mkEvent(base.Add(time.Duration(i)*time.Second), acct, login(false), device("d")), true)
		want[acct]++
	}
}

// checkTenAccountsOnD checks a store after failLogins: each
// account's failures are want's, and device d has seen ten accounts.
func checkTenAccountsOnD(t *testing.T, s *Store, want map[string]int64) {
	t.Helper()
	for acct, n := range want {
		v, err := s.Read(mkEvent(base.Add(time.Minute), acct, login(false)))
		if err != nil {
			t.Fatal(err)
		}
		if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != n {
			t.Errorf("%s: %d failures, want %d", acct, got, n)
		}
	}
	v, err := s.Read(mkEvent(base.Add(time.Minute), "new", login(false), device("d")))
	if err != nil {
		t.Fatal(err)
	}
	if got := valueOf(t, s.cat, v, "device_distinct_accounts_24h").Int; got != 10 {
		t.Errorf("device d: %d accounts, want 10", got)
	}
}
