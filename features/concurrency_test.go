package features

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
)

// TestConcurrentApply runs many goroutines applying events on a few shared
// keys, all at one event time, while a background flusher merges deltas
// every millisecond. Because Apply serializes per key, the failure counts
// returned for one account must be exactly 0..n-1 (each event saw every
// earlier one and not itself), and the final state must equal the serial
// counts, in memory and on disk: after a Close, and after a crash (the
// store abandoned with deltas in memory and records).
func TestConcurrentApply(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprint("crash=", crash), func(t *testing.T) { testConcurrentApply(t, crash) })
	}
}

func testConcurrentApply(t *testing.T, crash bool) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s := openStore(t, db, clock.NewFake(base), Options{CacheEntries: 256, FlushInterval: time.Millisecond, MaxDirty: 16})
	const workers, perWorker, accounts = 8, 150, 4
	at := base.Add(time.Hour)
	var mu sync.Mutex
	seen := map[string][]int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				acct := fmt.Sprint("c", (w+i)%accounts)
				ev := mkEventConc(at, acct, fmt.Sprint("dev", i%3), w*perWorker+i)
				b := db.NewBatch()
				v, p, err := s.Apply(ev, b)
				if err != nil {
					errs <- err
					return
				}
				if err := b.Commit(pebble.NoSync); err != nil {
					errs <- err
					return
				}
				s.Done(p, true)
				b.Close()
				mu.Lock()
				seen[acct] = append(seen[acct], valueOf(t, s.cat, v, "login_failures_account_10m").Int)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for acct, vals := range seen {
		slices.Sort(vals)
		for i, v := range vals {
			if v != int64(i) {
				t.Fatalf("%s: values %v are not 0..%d: two events saw the same history", acct, vals, len(vals)-1)
			}
		}
	}
	check := func(s *Store) {
		for acct, vals := range seen {
			v, err := s.Read(mkEventConc(at, acct, "devX", -1))
			if err != nil {
				t.Fatal(err)
			}
			if got := valueOf(t, s.cat, v, "login_failures_account_10m").Int; got != int64(len(vals)) {
				t.Errorf("%s: %d failures, want %d", acct, got, len(vals))
			}
			if got := valueOf(t, s.cat, v, "account_distinct_devices_30d").Int; got != 3 {
				t.Errorf("%s: %d devices, want 3", acct, got)
			}
		}
		v, _ := s.Read(mkEventConc(at, "new", "dev0", -1))
		if got := valueOf(t, s.cat, v, "device_distinct_accounts_24h").Int; got != accounts {
			t.Errorf("dev0: %d accounts, want %d", got, accounts)
		}
	}
	check(s)
	if !crash {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		s.wb.stopOnce.Do(func() { close(s.wb.stop); <-s.wb.done }) // the flusher, not the flush
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	check(openStore(t, db, clock.NewFake(base), Options{}))
}

func mkEventConc(at time.Time, acct, dev string, n int) *event.Event {
	e := &event.Event{EventID: fmt.Sprint("c", n), Type: event.Login, TypeName: "LOGIN", OccurredAt: at, AccountID: acct}
	e.P.Account = "pa:" + acct
	e.Has.Device, e.Device.DeviceID, e.P.Device = true, dev, "pd:"+dev
	e.Has.Login = true
	return e
}
