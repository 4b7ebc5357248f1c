package features

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/keys"
)

// migrateV1 moves feature state written before the entity-first layout
// (keys.FeatureStateV1 | state id | period | entity) to its keys under
// keys.FeatureState, and rewrites the state keys inside delta records and
// flush markers (writeback.go) the same way, before Open replays them. It
// copies, then deletes the old keys with one range deletion, so a crash at
// any point leaves either layout whole or both, and running it again
// finishes the job: every step writes the same values again. A store with
// nothing under the old prefix costs one seek. It returns the number of
// state keys moved, and logs its start, every million keys and its end: a
// large store takes minutes, before the server answers.
func migrateV1(db *pebble.DB, log *slog.Logger) (int, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.FeatureStateV1}, UpperBound: []byte{keys.FeatureStateV1 + 1}})
	if err != nil {
		return 0, fmt.Errorf("features: migrate: %w", err)
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("features: migrate: %w", err)
	}
	if !found {
		return 0, nil
	}
	start := time.Now()
	log.Info("features: moving state to the entity-first layout (once, before serving)")
	b := db.NewBatch()
	defer func() { b.Close() }()
	put := func(k, v []byte) error {
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() < 4<<20 {
			return nil
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return err
		}
		b.Close()
		b = db.NewBatch()
		return nil
	}
	// Delta records: (key, operand) fields. Flush markers: an 8-byte end,
	// then key fields.
	rewrite := func(prefix byte, head int, pairs bool) error {
		return scanPrefix(db, prefix, func(k, v []byte) error {
			if len(v) < head {
				return fmt.Errorf("record %x: %w", k, errCorrupt)
			}
			out, changed := append([]byte(nil), v[:head]...), false
			for rest := v[head:]; len(rest) > 0; {
				key, r, ok := cutField(rest)
				if !ok {
					return fmt.Errorf("record %x: %w", k, errCorrupt)
				}
				if nk, ok := upgradeV1Key(key); ok {
					key, changed = nk, true
				}
				out = appendField(out, key)
				if rest = r; pairs {
					op, r, ok := cutField(rest)
					if !ok {
						return fmt.Errorf("record %x: %w", k, errCorrupt)
					}
					out, rest = appendField(out, op), r
				}
			}
			if !changed {
				return nil
			}
			return put(k, out)
		})
	}
	if err := rewrite(keys.FeatureDelta, 0, true); err != nil {
		return 0, fmt.Errorf("features: migrate deltas: %w", err)
	}
	if err := rewrite(keys.FeatureFlush, 8, false); err != nil {
		return 0, fmt.Errorf("features: migrate flush markers: %w", err)
	}
	moved := 0
	if err := scanPrefix(db, keys.FeatureStateV1, func(k, v []byte) error {
		if moved++; moved%(1<<20) == 0 {
			log.Info("features: moving state to the entity-first layout", "keys", moved)
		}
		nk, ok := upgradeV1Key(k)
		if !ok {
			return fmt.Errorf("state key %x: %w", k, errCorrupt)
		}
		return put(nk, v)
	}); err != nil {
		return 0, fmt.Errorf("features: migrate state: %w", err)
	}
	if err := b.DeleteRange([]byte{keys.FeatureStateV1}, []byte{keys.FeatureStateV1 + 1}, nil); err != nil {
		return 0, fmt.Errorf("features: migrate: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("features: migrate: %w", err)
	}
	log.Info("features: moved state to the entity-first layout", "keys", moved, "took", time.Since(start).Round(time.Millisecond))
	return moved, nil
}

// upgradeV1Key returns the entity-first key of a key of the old layout.
func upgradeV1Key(k []byte) ([]byte, bool) {
	const head = 1 + 2 + 8 // prefix, state id, period
	if len(k) <= head || k[0] != keys.FeatureStateV1 {
		return nil, false
	}
	ent := k[head:]
	if !validEntity(ent) {
		return nil, false
	}
	return appendStateKey(nil, uint16(k[1])<<8|uint16(k[2]), keys.Time(k[3:head]), ent), true
}
