package features

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
)

// Key rotation. After the pseudonym key changes, an entity's state written
// before the change sits under its old pseudonyms. With Options.Aliases
// set, a state loaded from disk (a cache miss) also reads the same state,
// period and entity under each old key's pseudonyms and merges it in (the
// values are merge operands, so the union is exact for counts, sums,
// seen-before, first-seen and last values). New operands go to the current
// key only, and the old state is never rewritten, so a reload computes the
// same union and nothing is counted twice. A distinct set can count a value
// seen both before and after the rotation twice (once per key) until the
// old state leaves the window. Without a rotation this costs one nil check
// per event.

// prepareAliases computes, for every applicable plan, the entity keys the
// event has under the old keys (w.alias). Called after prepare.
func (s *Store) prepareAliases(w *work, ev *event.Event) error {
	w.alias = w.alias[:0]
	if s.aliases == nil {
		return nil
	}
	olds := s.aliases(ev)
	if len(olds) == 0 {
		return nil
	}
	for len(w.alias) < len(w.plans) {
		w.alias = append(w.alias, nil)
	}
	for i := range w.alias {
		w.alias[i] = w.alias[i][:0]
	}
	w2 := workPool.Get().(*work)
	defer workPool.Put(w2)
	for _, p := range olds {
		alt := *ev
		alt.P = p
		if err := s.prepare(w2, &alt, false); err != nil {
			return err
		}
		for si := range w.plans {
			a, b := &w.plans[si], &w2.plans[si]
			if a.ok && b.ok && !bytes.Equal(a.ent, b.ent) {
				w.alias[si] = append(w.alias[si], bytes.Clone(b.ent))
			}
		}
	}
	return nil
}

// aliasesOf returns plan si's old entity keys (nil without a rotation).
func (w *work) aliasesOf(si int) [][]byte {
	if si < len(w.alias) {
		return w.alias[si]
	}
	return nil
}

// mergeAliases merges into st the state stored for key's state and period
// under each alias entity.
func (s *Store) mergeAliases(st *state, key []byte, alias [][]byte) error {
	if len(alias) == 0 {
		return nil
	}
	_, id, per, ok := parseStateKey(key)
	if !ok {
		return fmt.Errorf("features: state key %x: %w", key, errCorrupt)
	}
	var k []byte
	for _, ent := range alias {
		k = appendStateKey(k[:0], id, per, ent)
		v, c, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("features: read state: %w", err)
		}
		err = st.merge(v)
		c.Close()
		if err != nil {
			return fmt.Errorf("features: state %x: %w", k, err)
		}
	}
	return nil
}
