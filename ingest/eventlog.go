package ingest

import (
	"crypto/sha256"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
	"google.golang.org/protobuf/proto"
)

// The event log holds stored events under
//
//	keys.EventRecord | occurred_at (keys.AppendTime) | IDHash(event_id)
//
// so that a scan is in event-time order and retention is one range deletion
// (DeleteEventsBefore).

// IDHashLen is the length of IDHash.
const IDHashLen = 16

// IDHash returns the first 16 bytes of SHA-256 of an event id: fixed-size,
// and collision-free in practice, for keys that name an event (the event log
// here, the engine's idempotency keys).
func IDHash(eventID string) [IDHashLen]byte {
	s := sha256.Sum256([]byte(eventID))
	var h [IDHashLen]byte
	copy(h[:], s[:])
	return h
}

// EventKey returns the event log key of an event.
func EventKey(occurredAt time.Time, eventID string) []byte {
	h := IDHash(eventID)
	k := make([]byte, 0, 1+8+IDHashLen)
	k = append(k, keys.EventRecord)
	k = keys.AppendTime(k, unixNano(occurredAt))
	return append(k, h[:]...)
}

// unixNano clamps t to the range UnixNano represents, so that bounds far in
// the past or future still order correctly.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func timeKey(t time.Time) []byte {
	return keys.AppendTime([]byte{keys.EventRecord}, unixNano(t))
}

// PutEvent writes a stored event (the second result of Normalize) into b
// and returns its encoding (a decision record carries the same bytes).
func PutEvent(b *pebble.Batch, stored *riskv1.Event) ([]byte, error) {
	return AppendEvent(b, nil, stored)
}

// AppendEvent is PutEvent encoding into buf's storage: the batch copies
// what it is given, so a caller that keeps no encoding passes the previous
// result back as buf and allocates nothing per event.
func AppendEvent(b *pebble.Batch, buf []byte, stored *riskv1.Event) ([]byte, error) {
	if stored.GetOccurredAt() == nil || stored.GetEventId() == "" {
		return nil, fmt.Errorf("ingest: put event: stored event without event_id or occurred_at")
	}
	v, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf[:0], stored)
	if err != nil {
		return nil, fmt.Errorf("ingest: put event: %w", err)
	}
	if err := b.Set(EventKey(stored.OccurredAt.AsTime(), stored.EventId), v, nil); err != nil {
		return nil, fmt.Errorf("ingest: put event: %w", err)
	}
	return v, nil
}

// ScanEvents calls fn for each stored event with from <= occurred_at < to, in
// event-time order (ties in an arbitrary but stable order). A zero from or to
// leaves that side unbounded. An error from fn stops the scan and is
// returned as is.
func ScanEvents(r pebble.Reader, from, to time.Time, fn func(*riskv1.Event) error) error {
	return ScanStored(r, from, to, func(k, v []byte) error {
		ev := &riskv1.Event{}
		if err := proto.Unmarshal(v, ev); err != nil {
			return fmt.Errorf("ingest: scan events: key %x: %w", k, err)
		}
		return fn(ev)
	})
}

// ScanStored is ScanEvents without decoding: fn gets each stored event's
// key and encoded bytes, valid only until it returns (DecodeStored copies
// what it keeps).
func ScanStored(r pebble.Reader, from, to time.Time, fn func(key, value []byte) error) error {
	lo, hi := timeKey(from), []byte{keys.EventRecord + 1}
	if from.IsZero() {
		lo = []byte{keys.EventRecord}
	}
	if !to.IsZero() {
		hi = timeKey(to)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("ingest: scan events: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("ingest: scan events: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("ingest: scan events: %w", err)
	}
	return nil
}

// DeleteEventsBefore adds to b a range deletion of every stored event with
// occurred_at < t (retention).
func DeleteEventsBefore(b *pebble.Batch, t time.Time) error {
	if err := b.DeleteRange([]byte{keys.EventRecord}, timeKey(t), nil); err != nil {
		return fmt.Errorf("ingest: delete events: %w", err)
	}
	return nil
}
