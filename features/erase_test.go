package features

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/clock"
)

// TestEraseForgetsTheSubject: the subject's own state goes, the shared
// device's exact distinct set forgets it (on disk and in the cache), other
// accounts keep theirs, and a set past the exact limit is reported as a
// sketch that cannot forget.
func TestEraseForgetsTheSubject(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	db := openDB(t, t.TempDir())
	defer db.Close()
	s := openStore(t, db, clk, Options{})
	cat := s.Catalog()
	apply(t, s, db, mkEvent(t0, "subject", login(false), device("shared")), true)
	apply(t, s, db, mkEvent(t0.Add(time.Second), "subject", login(false), device("own")), true)
	apply(t, s, db, mkEvent(t0.Add(2*time.Second), "other", login(true), device("shared")), true)
	// A busy device: past the exact limit, its set is sketched.
	for i := 0; i <= ExactDistinctLimit; i++ {
		acct := fmt.Sprintf("crowd-%d", i)
		if i == 0 {
			acct = "subject"
		}
		ev := mkEvent(t0.Add(3*time.Second), acct, device("busy"))
		b := db.NewBatch()
		_, p, err := s.Apply(ev, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		s.Done(p, true)
	}
	read := func(account, dev string) Vector {
		v, err := s.Read(mkEvent(t0.Add(time.Minute), account, login(false), device(dev)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := valueOf(t, cat, read("x", "shared"), "device_distinct_accounts_24h").Int; got != 2 {
		t.Fatalf("shared device counts %d accounts before erasure, want 2", got)
	}
	rep, err := s.Erase([]string{"pa:subject", "pd:own"}, []string{"pa:subject"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted == 0 || rep.MembersRemoved == 0 || rep.Sketches == 0 {
		t.Errorf("erase report %+v: want deletions, removed members and sketches", rep)
	}
	// In memory (the cache held these entries) and after a reopen, from disk.
	for _, st := range []*Store{s, openStore(t, db, clk, Options{})} {
		if got := valueOf(t, cat, read("x", "shared"), "device_distinct_accounts_24h").Int; got != 1 {
			t.Errorf("shared device counts %d accounts after erasure, want 1", got)
		}
		v := read("subject", "own")
		if got := valueOf(t, cat, v, "login_failures_account_10m"); got.Int != 0 {
			t.Errorf("the subject's failures after erasure: %+v, want 0", got)
		}
		if got := valueOf(t, cat, read("other", "shared"), "account_device_seen_before"); !got.Bool {
			t.Error("the other account's state went too")
		}
		s = st
	}
	// No key names the subject or its own device any more.
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if k := string(it.Key()); strings.Contains(k, "pa:subject") || strings.Contains(k, "pd:own") {
			t.Errorf("key %q left after erasure", k)
		}
	}
}
