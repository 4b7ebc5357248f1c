package features

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/keys"
)

// DefaultSweepKeys is the default Options.SweepKeys: a million state keys,
// a few hundred milliseconds of one core, once a minute.
const DefaultSweepKeys = 1 << 20

// Sweep deletes the state of every period that no read can reach any more
// (reads are at event times no older than now minus the lateness bound) and
// the state of features no longer in the catalog. State keys are entity
// first (statekey.go), so a feature's expired periods are not one range: a
// Sweep scans, from where the last one stopped, at most Options.SweepKeys
// keys, deletes the dead ones, and wraps around at the end; state lives on
// disk for up to one pass past its last reader. Deletions are point
// deletions: a range between two dead keys may hold a live one written
// since the scan began.
func (s *Store) Sweep(now time.Time) error {
	if s.scratch {
		return nil // nothing on disk; memory is bounded by CacheEntries
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	tmin := now.Add(-s.lateness).UnixNano()
	live := make(map[uint16]int64, len(s.cat.states)) // state id -> its oldest live period
	for _, st := range s.cat.states {
		if st.agg == AggLast {
			live[st.id] = floorDiv(tmin, int64(st.window)) - 2
		} else {
			lo := ceilDiv(tmin, st.gran) - (slots - 1)
			live[st.id] = floorDiv(lo, slots) - 1
		}
	}
	lower := []byte{keys.FeatureState}
	if s.sweepAt != nil {
		lower = s.sweepAt
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{keys.FeatureState + 1}})
	if err != nil {
		return fmt.Errorf("features: sweep: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	commit := func() error {
		if b.Empty() {
			return nil
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("features: sweep: %w", err)
		}
		s.diskGen.Add(1)
		b.Close()
		b = s.db.NewBatch()
		return nil
	}
	n := 0
	ok := it.First()
	for ; ok && n < s.sweepKeys; ok = it.Next() {
		n++
		_, id, per, valid := parseStateKey(it.Key())
		if !valid {
			continue // not ours to judge; Erase and Show skip it too
		}
		if minP, isLive := live[id]; isLive && per >= minP {
			continue
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return fmt.Errorf("features: sweep: %w", err)
		}
		if b.Len() >= 1<<20 {
			if err := commit(); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("features: sweep: %w", err)
	}
	if ok {
		s.sweepAt = bytes.Clone(it.Key()) // not in place: the iterator's bound may be the last one
	} else {
		s.sweepAt = nil // the pass is done; the next starts over
	}
	return commit()
}
