package features

import (
	"bytes"
	"testing"

	"github.com/riskd/riskd/internal/keys"
)

// FuzzStateKey: no key, however damaged, panics the parsers, and every key
// they accept round-trips: parseStateKey against appendStateKey, and an
// upgraded old-layout key parses as the same state, period and entity.
func FuzzStateKey(f *testing.F) {
	ent := []byte{2, 'a', 'b', 1, 'c'}
	f.Add(appendStateKey(nil, 7, 12345, ent))
	f.Add(append([]byte{keys.FeatureStateV1, 0, 7}, append(keys.AppendTime(nil, 12345), ent...)...))
	f.Add([]byte{keys.FeatureState, 0})
	f.Add([]byte{keys.FeatureStateV1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, key []byte) {
		if ent, id, per, ok := parseStateKey(key); ok {
			if back := appendStateKey(nil, id, per, ent); !bytes.Equal(back, key) {
				t.Fatalf("%x parses to (%x, %d, %d), which makes %x", key, ent, id, per, back)
			}
		}
		if nk, ok := upgradeV1Key(key); ok {
			ent, id, per, ok := parseStateKey(nk)
			if !ok {
				t.Fatalf("%x upgrades to %x, which does not parse", key, nk)
			}
			if id != uint16(key[1])<<8|uint16(key[2]) || per != keys.Time(key[3:11]) || !bytes.Equal(ent, key[11:]) {
				t.Fatalf("%x upgrades to (%x, %d, %d)", key, ent, id, per)
			}
		}
	})
}
