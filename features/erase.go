package features

import (
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/keys"
)

// Erasure of a subject from feature state (a data-rights request).
//
//   - State keyed by the subject (an entity key with a field equal to one of
//     its pseudonyms: the account, or a device only the subject used) is
//     deleted.
//   - Exact distinct sets keyed by someone else that counted the subject
//     (device_distinct_accounts_24h of a shared device) hold the 64-bit hash
//     of the subject's pseudonym; the member is removed and the set
//     rewritten, so the count drops by one.
//   - HyperLogLog sketches (the granules a set past ExactDistinctLimit
//     dropped) cannot forget a member. They hold only register maxima
//     derived from hashes, never a pseudonym, and expire with their window;
//     EraseReport.Sketches counts the sketched states that may have counted
//     the subject. Their exact part forgets it as above.
//   - Counts, sums and seen-before states keyed by someone else keep no
//     trace of who contributed and are left alone.
//
// Each touched key is rewritten under its entity's stripe lock and the
// in-memory entry is changed with it, so a concurrent Apply either sees
// the erasure or its operand is merged (idempotently, for sets) after it.

// EraseReport says what Erase changed.
type EraseReport struct {
	Deleted        int // state keys of the subject, deleted
	MembersRemoved int // exact distinct sets the subject was removed from
	Sketches       int // sketched distinct states that cannot forget
}

// SubjectKeys calls fn for every state key whose entity names one of
// entities, with its current (merged, as stored) value.
func (s *Store) SubjectKeys(entities []string, fn func(key, value []byte) error) error {
	if s.scratch {
		return ErrScratch
	}
	// The disk is complete once the deltas of the events applied so far
	// are merged (writeback.go).
	if err := s.Flush(); err != nil {
		return err
	}
	return s.subjectKeys(entities, fn)
}

func (s *Store) subjectKeys(entities []string, fn func(key, value []byte) error) error {
	want := make(map[string]bool, len(entities))
	for _, e := range entities {
		if e != "" {
			want[e] = true
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.FeatureState}, UpperBound: []byte{keys.FeatureState + 1}})
	if err != nil {
		return fmt.Errorf("features: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		ent, _, _, ok := parseStateKey(k)
		if !ok {
			continue
		}
		fields, _ := entityFields(ent)
		for _, f := range fields {
			if want[string(f)] {
				v, err := it.ValueAndErr()
				if err != nil {
					_ = it.Close()
					return fmt.Errorf("features: scan: %w", err)
				}
				if err := fn(k, v); err != nil {
					_ = it.Close()
					return err
				}
				break
			}
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// Erase removes the subject from feature state as described above:
// entities are the pseudonyms whose state goes (the account, its exclusive
// devices), members the pseudonyms removed from other keys' exact distinct
// sets (the account, under every key in use).
func (s *Store) Erase(entities, members []string) (EraseReport, error) {
	var rep EraseReport
	if s.scratch {
		return rep, ErrScratch
	}
	// No flush runs until the erasure is done: eraseKey clears deltas that
	// a flush would otherwise be taking without the stripe lock.
	s.wb.flushMu.Lock()
	defer s.wb.flushMu.Unlock()
	if err := s.flushLocked(); err != nil {
		return rep, err
	}
	var del [][]byte
	if err := s.subjectKeys(entities, func(k, _ []byte) error {
		del = append(del, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return rep, err
	}
	hashes := make(map[uint64]bool, len(members))
	for _, m := range members {
		if m != "" {
			hashes[xxhash.Sum64String(m)] = true
		}
	}
	var rewrite [][]byte
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.FeatureState}, UpperBound: []byte{keys.FeatureState + 1}})
	if err != nil {
		return rep, fmt.Errorf("features: erase: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil || len(v) == 0 {
			continue
		}
		if !isDistinct(v[0]) {
			continue
		}
		if v[0] != tagDistinct {
			rep.Sketches++
		}
		var st state
		if st.merge(v) != nil {
			continue
		}
		for h := range hashes {
			if _, ok := st.set[h]; ok {
				rewrite = append(rewrite, append([]byte(nil), it.Key()...))
				break
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return rep, fmt.Errorf("features: erase: %w", err)
	}
	deleted := make(map[string]bool, len(del))
	for _, k := range del {
		deleted[string(k)] = true
		if err := s.eraseKey(k, nil); err != nil {
			return rep, err
		}
		rep.Deleted++
	}
	for _, k := range rewrite {
		if deleted[string(k)] {
			continue
		}
		if err := s.eraseKey(k, hashes); err != nil {
			return rep, err
		}
		rep.MembersRemoved++
	}
	return rep, nil
}

// eraseKey deletes key (hashes nil) or removes hashes from its exact set,
// on disk and in memory, under the entity's stripe lock.
func (s *Store) eraseKey(key []byte, hashes map[uint64]bool) error {
	ent, id, per, ok := parseStateKey(key)
	if !ok {
		return fmt.Errorf("features: erase: state key %x: %w", key, errCorrupt)
	}
	h := entityHash(id, ent)
	mu := &s.locks[h%stripes]
	mu.Lock()
	defer mu.Unlock()
	defer s.diskGen.Add(1) // under the lock, after the write
	var mem *state         // the period in memory, if loaded
	var ps *periodState
	if e := s.cache.get(h, id, ent); e != nil {
		if ps = e.findPeriod(per); ps != nil {
			mem = &ps.st
		}
	}
	if hashes == nil {
		if ps != nil {
			// Deltas of events applied since the flush go too; their
			// slots stay for the flush that takes them (empty: no merge).
			*mem = state{}
			for _, d := range ps.delta {
				if d != nil {
					*d = state{}
				}
			}
		}
		if err := s.db.Delete(key, pebble.Sync); err != nil {
			return fmt.Errorf("features: erase: %w", err)
		}
		return nil
	}
	var st state
	if mem != nil {
		st = *mem
	} else {
		v, c, err := s.db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("features: erase: %w", err)
		}
		err = st.merge(v)
		c.Close()
		if err != nil {
			return fmt.Errorf("features: erase %x: %w", key, err)
		}
	}
	if st.tag != tagDistinct {
		return nil
	}
	set := make(map[uint64]uint64, len(st.set))
	for k, m := range st.set {
		if !hashes[k] {
			set[k] = m
		}
	}
	st.set = set
	if st.big != nil {
		st.big.hist = false // recounted when next needed
	}
	if mem != nil {
		*mem = st
		for _, d := range ps.delta {
			if d != nil && d.tag == tagDistinct {
				for k := range hashes {
					delete(d.set, k)
				}
				if d.big != nil {
					d.big.hist = false
				}
			}
		}
	}
	v, err := st.encode(nil)
	if err != nil {
		return fmt.Errorf("features: erase: %w", err)
	}
	if len(v) == 1 { // an empty exact set
		err = s.db.Delete(key, pebble.Sync)
	} else {
		err = s.db.Set(key, v, pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("features: erase: %w", err)
	}
	return nil
}
