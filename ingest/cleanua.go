package ingest

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// cleanUASlots bounds the user agents a Normalizer remembers: at most
// cleanUASlots × MaxUserAgentLen bytes (512 KiB) of text.
const cleanUASlots = 1024

// cleanUAs remembers user agents known to carry no identifier, so that a
// repeated one (most traffic comes from a few agents) is returned without
// being scanned again. Privacy: an agent is kept only when neither the user
// agent scan nor the stricter free-text scan (which also replaces IP
// literals and dotted digit runs) finds anything in it, so nothing kept was
// ever an identifier or held one; it is exactly what the stored form holds
// anyway. An agent is kept on its second miss in a row for its slot, so that
// one-off agents cost no copy; the slot remembers the miss only as a hash.
//
// It is direct-mapped and lock-free: a slot is replaced whole, and readers
// compare the whole string, so a race costs at most a scan. Safe for
// concurrent use.
type cleanUAs struct {
	seed  maphash.Seed
	slots [cleanUASlots]cleanUASlot
}

type cleanUASlot struct {
	ua atomic.Pointer[string] // a clean agent, or nil
	// missed is the hash of the last agent that missed here, or its
	// complement once that agent was found not clean (not tried again).
	missed atomic.Uint64
}

func newCleanUAs() *cleanUAs { return &cleanUAs{seed: maphash.MakeSeed()} }

// scrubUA is scrubText(s, false) for a user agent, through the cache.
func (n *Normalizer) scrubUA(s string) string {
	if !mayCarryIdentifier(s) {
		return s
	}
	c := n.uas
	h := maphash.String(c.seed, s)
	slot := &c.slots[h%cleanUASlots]
	if p := slot.ua.Load(); p != nil && *p == s {
		return s
	}
	out := n.scrubText(s, false)
	if out != s {
		return out
	}
	switch slot.missed.Load() {
	case h: // the second miss in a row
		if n.scrubText(s, true) == s {
			kept := strings.Clone(s) // not the caller's backing array
			slot.ua.Store(&kept)
		} else {
			slot.missed.Store(^h)
		}
	case ^h: // not clean by the free-text rules: never kept
	default:
		slot.missed.Store(h)
	}
	return s
}
