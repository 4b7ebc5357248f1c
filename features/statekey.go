package features

import "github.com/riskd/riskd/internal/keys"

// A state key is
//
//	keys.FeatureState | entity | state id (uint16) | period (keys.AppendTime)
//
// where the entity is each key field's pseudonym, length-prefixed. The
// entity comes first so that every state of one entity (an account's ten,
// both periods of each) sits together on disk: a cold evaluation's two
// dozen reads fall in a few blocks, one or two per entity, instead of one
// each across the whole keyspace, and in key order each read steps on from
// the last. Sweep pays for it with a scan (sweep.go): periods are no longer
// contiguous ranges.
const stateKeySuffix = 2 + 8 // state id, period

// appendStateKey appends the key of state id's period per of entity ent.
func appendStateKey(dst []byte, id uint16, per int64, ent []byte) []byte {
	dst = append(dst, keys.FeatureState)
	dst = append(dst, ent...)
	dst = append(dst, byte(id>>8), byte(id))
	return keys.AppendTime(dst, per)
}

// parseStateKey splits a state key into its parts.
func parseStateKey(key []byte) (ent []byte, id uint16, per int64, ok bool) {
	if len(key) < 1+1+stateKeySuffix || key[0] != keys.FeatureState {
		return nil, 0, 0, false
	}
	n := len(key) - stateKeySuffix
	ent = key[1:n:n]
	if !validEntity(ent) {
		return nil, 0, 0, false
	}
	return ent, uint16(key[n])<<8 | uint16(key[n+1]), keys.Time(key[n+2:]), true
}

// validEntity says whether ent is whole length-prefixed fields.
func validEntity(ent []byte) bool {
	for len(ent) > 0 {
		n := 1 + int(ent[0])
		if len(ent) < n {
			return false
		}
		ent = ent[n:]
	}
	return true
}

// entityFields splits an entity into its fields' pseudonyms.
func entityFields(ent []byte) ([][]byte, bool) {
	if !validEntity(ent) {
		return nil, false
	}
	var out [][]byte
	for len(ent) > 0 {
		n := 1 + int(ent[0])
		out = append(out, ent[1:n])
		ent = ent[n:]
	}
	return out, true
}
