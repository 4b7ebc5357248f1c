package ingest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func openDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestEventLog(t *testing.T) {
	db := openDB(t)
	n := newTestNormalizer(t)
	// Written out of order; several share one timestamp.
	offsets := []time.Duration{-3 * time.Minute, -10 * time.Minute, -time.Minute, -3 * time.Minute, -20 * time.Minute}
	b := db.NewBatch()
	stored := map[string]*riskv1.Event{}
	for i, off := range offsets {
		e := loginEvent()
		e.EventId = fmt.Sprintf("evt-%d", i)
		e.OccurredAt = timestamppb.New(testNow.Add(off))
		_, st, err := n.Normalize(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PutEvent(b, st); err != nil {
			t.Fatal(err)
		}
		stored[st.EventId] = st
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}

	scan := func(from, to time.Time) []*riskv1.Event {
		var out []*riskv1.Event
		if err := ScanEvents(db, from, to, func(e *riskv1.Event) error {
			out = append(out, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := scan(time.Time{}, testNow.Add(time.Hour))
	if len(all) != len(offsets) {
		t.Fatalf("scanned %d events, want %d", len(all), len(offsets))
	}
	for i, e := range all {
		if !proto.Equal(e, stored[e.EventId]) {
			t.Errorf("event %s changed in the log", e.EventId)
		}
		if i > 0 && e.OccurredAt.AsTime().Before(all[i-1].OccurredAt.AsTime()) {
			t.Errorf("not in event-time order at %d", i)
		}
	}
	if got := scan(time.Time{}, time.Time{}); len(got) != len(offsets) {
		t.Errorf("unbounded scan found %d events, want %d", len(got), len(offsets))
	}
	// [from, to): the bound at -3m is included at from, excluded at to.
	if got := scan(testNow.Add(-3*time.Minute), testNow.Add(-time.Minute)); len(got) != 2 {
		t.Errorf("[−3m, −1m) holds %d events, want 2", len(got))
	}
	if got := scan(testNow.Add(-10*time.Minute), testNow.Add(-3*time.Minute)); len(got) != 1 || got[0].EventId != "evt-1" {
		t.Errorf("[−10m, −3m) = %v, want evt-1", got)
	}

	stop := errors.New("stop")
	calls := 0
	if err := ScanEvents(db, time.Time{}, testNow, func(*riskv1.Event) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("fn error: err = %v after %d calls", err, calls)
	}

	// Re-putting the same event overwrites, not duplicates.
	b = db.NewBatch()
	if _, err := PutEvent(b, stored["evt-2"]); err != nil {
		t.Fatal(err)
	}
	if err := DeleteEventsBefore(b, testNow.Add(-5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	left := scan(time.Time{}, testNow.Add(time.Hour))
	if len(left) != 3 {
		t.Fatalf("after retention %d events, want 3", len(left))
	}
	for _, e := range left {
		if e.OccurredAt.AsTime().Before(testNow.Add(-5 * time.Minute)) {
			t.Errorf("%s survived retention", e.EventId)
		}
	}

	if _, err := PutEvent(db.NewBatch(), &riskv1.Event{EventId: "x"}); err == nil {
		t.Error("PutEvent accepted an event without occurred_at")
	}
}

// TestEventLogHoldsNoRawIdentifier writes events carrying known identifiers
// through PutEvent and walks every key and value in the store.
func TestEventLogHoldsNoRawIdentifier(t *testing.T) {
	db := openDB(t)
	n := newTestNormalizer(t)
	b := db.NewBatch()
	for _, e := range []*riskv1.Event{loginEvent(), paymentEvent(), attendanceEvent()} {
		_, st, err := n.Normalize(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PutEvent(b, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	keys := 0
	for ok := it.First(); ok; ok = it.Next() {
		keys++
		kv := strings.ToLower(string(it.Key()) + string(it.Value()))
		for _, raw := range []string{rawIMEI, rawIDFA, rawAndroidID, rawOAID, "ac:de:48:00:11:22", rawIMSI, rawIP,
			"f0:9f:c2:11:22:33", rawBSSID, "13812345678", "1234 5678", rawDeviceID, rawAccount} {
			if strings.Contains(kv, strings.ToLower(raw)) {
				t.Errorf("store holds %q", raw)
			}
		}
	}
	if keys != 3 {
		t.Errorf("walked %d keys, want 3", keys)
	}
}
