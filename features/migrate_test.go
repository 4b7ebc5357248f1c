package features

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
	"github.com/riskd/riskd/internal/logbuf"
)

// v1Key is upgradeV1Key's inverse: the key of the layout before
// entity-first.
func v1Key(t *testing.T, k []byte) []byte {
	t.Helper()
	ent, id, per, ok := parseStateKey(k)
	if !ok {
		t.Fatalf("state key %x does not parse", k)
	}
	out := append([]byte{keys.FeatureStateV1, byte(id >> 8), byte(id)}, keys.AppendTime(nil, per)...)
	return append(out, ent...)
}

// downgradeToV1 rewrites db as the code before the entity-first layout
// left it: state keys under keys.FeatureStateV1, and the state keys inside
// delta records and flush markers too.
func downgradeToV1(t *testing.T, db *pebble.DB) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := scanPrefix(db, keys.FeatureState, func(k, v []byte) error {
		return errors.Join(b.Set(v1Key(t, k), v, nil), b.Delete(k, nil))
	}); err != nil {
		t.Fatal(err)
	}
	records := func(prefix byte, head int, pairs bool) {
		if err := scanPrefix(db, prefix, func(k, v []byte) error {
			out := append([]byte(nil), v[:head]...)
			for rest := v[head:]; len(rest) > 0; {
				key, r, ok := cutField(rest)
				if !ok {
					t.Fatalf("record %x does not parse", k)
				}
				out, rest = appendField(out, v1Key(t, key)), r
				if pairs {
					op, r, _ := cutField(rest)
					out, rest = appendField(out, op), r
				}
			}
			return b.Set(k, out, nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	records(keys.FeatureDelta, 0, true)
	records(keys.FeatureFlush, 8, false)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateV1 leaves a store as the old layout would have after a crash
// (merged state, delta records and the marker of an interrupted flush, all
// keyed feature first) and opens it: every count is as applied, nothing is
// left under the old prefix, and the deltas were replayed once. Half of the
// state copied already (a crash in the middle of a migration) changes
// nothing.
func TestMigrateV1(t *testing.T) {
	defer func(n int) { flushPart, afterFlushPart = n, nil }(flushPart)
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprint("partial=", partial), func(t *testing.T) {
			flushPart, afterFlushPart = 3, nil
			dir := t.TempDir()
			db := openDB(t, dir)
			defer func() { db.Close() }()
			clk := clock.NewFake(base)
			s := openStore(t, db, clk, Options{})
			want := map[string]int64{}
			failLogins(t, s, db, 0, 20, want)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			failLogins(t, s, db, 20, 60, want)
			afterFlushPart = func(uint64) error { return errors.New("stop") }
			if err := s.Flush(); err == nil {
				t.Fatal("flush: no error from the interrupted part")
			}
			afterFlushPart = nil
			if countPrefix(t, db, keys.FeatureFlush) == 0 || deltaRecords(t, db) == 0 || stateKeys(t, db) == 0 {
				t.Fatal("want merged state, delta records and a flush marker to migrate")
			}
			downgradeToV1(t, db)
			if n := stateKeys(t, db); n != 0 {
				t.Fatalf("%d state keys in the new layout after the downgrade", n)
			}
			old := countPrefix(t, db, keys.FeatureStateV1)
			if partial {
				i := 0
				if err := scanPrefix(db, keys.FeatureStateV1, func(k, v []byte) error {
					i++
					if i%2 == 1 {
						return nil
					}
					nk, ok := upgradeV1Key(k)
					if !ok {
						t.Fatalf("%x does not upgrade", k)
					}
					return db.Set(nk, v, pebble.NoSync)
				}); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, dir)
			var logged logbuf.Buffer
			s = openStore(t, db, clk, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			if want := fmt.Sprintf(`msg="features: moved state to the entity-first layout" keys=%d`, old); !strings.Contains(logged.String(), want) {
				t.Errorf("log %q, want it to say %s", logged.String(), want)
			}
			if n := countPrefix(t, db, keys.FeatureStateV1); n != 0 {
				t.Fatalf("%d keys left under the old prefix", n)
			}
			if n := countPrefix(t, db, keys.FeatureFlush) + deltaRecords(t, db); n != 0 {
				t.Fatalf("%d markers and records left after Open", n)
			}
			if n := stateKeys(t, db); n < old {
				t.Errorf("%d state keys after the migration, %d before", n, old)
			}
			checkTenAccountsOnD(t, s, want)
			if n, err := migrateV1(db, slog.Default()); err != nil || n != 0 { // again: nothing to do
				t.Fatalf("again: %d moved, %v", n, err)
			}
		})
	}
}

func TestMigrateV1RefusesACorruptKey(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	if err := db.Set([]byte{keys.FeatureStateV1, 0, 1, 2}, []byte{tagCount}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{DB: db, Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, errCorrupt) {
		t.Fatalf("Open: %v, want errCorrupt", err)
	}
	if n := countPrefix(t, db, keys.FeatureStateV1); n != 1 {
		t.Fatalf("%d old keys, want the one left as it was", n)
	}
}
