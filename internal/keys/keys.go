// Package keys is the registry of riskd's Pebble keyspaces. Every concept owns
// one or more one-byte prefixes here, so that an evaluation's writes to several
// concepts commit in one batch without colliding, and so that a store walk
// (retention, erasure tests) can name what each key belongs to.
//
// Keys that retention deletes put a big-endian time right after the prefix, so
// that expiry is a range deletion. Feature state is the exception: it is
// keyed by entity first, so that an evaluation's reads of one entity's
// states fall together, and its expired periods are found by a scan that
// goes on from one sweep to the next (features/sweep.go).
package keys

import "encoding/binary"

// Prefixes. Grouped by owning package; never reuse a retired byte.
const (
	// features: windowed feature state, one key per (entity, feature,
	// period): entity first, so that an entity's states sit together.
	FeatureState byte = 0x14
	// features: retired: feature state keyed (feature, period, entity),
	// before the entity-first layout; features.Open migrates it.
	FeatureStateV1 byte = 0x10
	// features: device profiles kept from DEVICE_REPORT events.
	DeviceProfile byte = 0x11
	// features: the feature-state deltas of committed events not yet
	// merged into FeatureState (write-back; a sequence after the prefix).
	FeatureDelta byte = 0x12
	// features: a flush in progress, one key per committed part: which
	// state keys it merged the deltas of (write-back).
	FeatureFlush byte = 0x13

	// features/lists: list metadata and entries.
	ListMeta  byte = 0x20
	ListEntry byte = 0x21

	// decisions: the hash-chained log and its indexes.
	DecisionRecord    byte = 0x30 // decision id -> record
	DecisionChain     byte = 0x31 // sequence -> chain entry
	DecisionByAccount byte = 0x32 // account pseudonym, inverted id -> ()
	ChainHead         byte = 0x33 // the chain's head (seq, hash)
	Appeal            byte = 0x34
	AppealByDue       byte = 0x35
	AppealByDecision  byte = 0x36
	Label             byte = 0x37
	DecisionByTime    byte = 0x38 // decided time, id -> () (retention)

	// ingest: recorded events in event-time order, and idempotency keys.
	EventRecord byte = 0x40 // occurred_at, event id hash -> stored event
	EventSeen   byte = 0x41 // event id hash -> decision id or empty (ingested)

	// rules: rule-set versions, drafts, history.
	RuleSet     byte = 0x50
	RuleSetLive byte = 0x51
	RuleDraft   byte = 0x52
	RuleHistory byte = 0x53

	// server: access audit.
	Audit byte = 0x60

	// engine: store metadata (schema version).
	Meta byte = 0x7f
)

// AppendUint64 appends v big-endian, so that byte order is numeric order.
func AppendUint64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// AppendTime appends t (Unix nanoseconds, biased so negative times sort
// first) big-endian.
func AppendTime(dst []byte, unixNano int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(unixNano)^(1<<63))
}

// Time decodes what AppendTime wrote.
func Time(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// PrefixEnd returns the smallest key greater than every key with prefix p.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
