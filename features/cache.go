package features

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxPeriods is how many periods an entry keeps once no in-flight write
// needs the others: a read needs at most two (the current and the previous);
// one more spares reloads for late events around a period boundary.
const maxPeriods = 3

// entry is the decoded state of one (state, entity) in memory: one period
// per loaded key (state, period, entity). One entry answers both periods a
// read touches, so an event costs one lookup per state, not two.
type entry struct {
	id  uint16
	ent []byte         // the entity key: in the entry's own allocation when short (newEntry)
	per []*periodState // guarded by the entity's stripe lock

	// guarded by the shard's mu:
	pending int // delta slots not yet merged to disk (writeback.go): pinned while positive

	// gone: no lookup finds the entry any more (evicted, released from the
	// pinned map, or cleared), so that one looked up before the stripe lock
	// (preload) is not used after it. Set under the shard's mu; pin clears
	// it when it puts an evicted entry back.
	gone atomic.Bool
}

// periodState is one period's state: as on disk plus the deltas not yet
// merged there. Guarded by the entity's stripe lock.
type periodState struct {
	p  int64
	st state
	// delta holds the deltas of the write-back epochs of each parity that
	// no flush has taken yet (writeback.go); dirty counts the slots
	// created and not yet committed by a flush. A dirty period is never
	// dropped: the disk does not have it all. The flush of epoch f takes
	// delta[f&1] without the stripe lock: every Apply that wrote it has
	// settled, and later ones write the other slot.
	delta [2]*state
	dirty atomic.Int32
	// aliased: st holds state read under a rotation's old keys, which the
	// period's own key does not have (delta.durableIn).
	aliased bool
}

// inlineEntity is the longest entity key an entry keeps in its own
// allocation: two pseudonyms with their length prefixes (a pair key).
const inlineEntity = 48

// newEntry returns an empty entry with room for maxPeriods periods and,
// when it is short, the entity key in the same allocation: one object for
// the collector to mark instead of two, and a lookup's key comparison reads
// the line the entry is on.
func newEntry(id uint16, ent []byte) *entry {
	x := &struct {
		e   entry
		per [maxPeriods]*periodState
		key [inlineEntity]byte
	}{e: entry{id: id}}
	x.e.per = x.per[:0]
	if len(ent) <= inlineEntity {
		x.e.ent = x.key[:copy(x.key[:], ent):len(ent)]
	} else {
		x.e.ent = bytes.Clone(ent)
	}
	return &x.e
}

// find returns the loaded state of period p, or nil.
func (e *entry) find(p int64) *state {
	if ps := e.findPeriod(p); ps != nil {
		return &ps.st
	}
	return nil
}

// findPeriod returns the loaded period p, or nil.
func (e *entry) findPeriod(p int64) *periodState {
	for _, ps := range e.per {
		if ps.p == p {
			return ps
		}
	}
	return nil
}

// add records a freshly loaded period. Periods other than keep1 and keep2
// that hold no unmerged deltas are forgotten, oldest first, to stay within
// maxPeriods: they are complete on disk and reload when a late event needs
// them. Called with the stripe lock.
func (e *entry) add(ps *periodState, keep1, keep2 int64) {
	for len(e.per) >= maxPeriods {
		drop := -1
		for i, x := range e.per {
			if x.p != keep1 && x.p != keep2 && x.dirty.Load() == 0 && (drop < 0 || x.p < e.per[drop].p) {
				drop = i
			}
		}
		if drop < 0 {
			break
		}
		e.per[drop] = e.per[len(e.per)-1]
		e.per[len(e.per)-1] = nil
		e.per = e.per[:len(e.per)-1]
	}
	e.per = append(e.per, ps)
}

// cache holds the hot entries, sharded by hash so that concurrent
// evaluations rarely share a mutex. Each shard is a CLOCK, the classic
// approximation of an LRU: entries sit in a ring of slots with a
// referenced bit that a hit sets; an insert into a full shard sweeps the
// hand forward, clearing set bits, and evicts the first entry whose bit is
// clear, one not used since the hand last passed. Against an LRU's list
// this keeps no object per entry (the ring is one slice, the index a map
// with no pointers for the collector to scan, 262,144 list elements
// fewer) and a hit writes one bit at most, and only after the hand has
// cleared it. An entry with deltas not yet merged to disk (pinned by pin)
// that the hand evicts moves to a side map (pinned): lookups still find
// it until the flush that merges its last delta releases it, so it is
// never reloaded from disk without them. The hash is the one that picks
// the entity's stripe lock (prepare), computed once per state and event.
//
// A scratch store's cache (newCache with scratch) evicts nothing: each
// shard keeps every entry in a map, up to limit in all, since an evicted
// entry of a store without a DB would be lost.
type cache struct {
	shards []cacheShard
	mask   uint64
	limit  int64         // scratch: the most entries held; 0: a CLOCK
	n      *atomic.Int64 // scratch: entries held (shared by the parts of OpenScratch)
}

type cacheShard struct {
	mu     sync.Mutex
	ring   []slot            // guarded by mu; up to capacity entries
	index  map[uint64]int32  // guarded by mu; hash -> its slot in ring
	hand   int               // guarded by mu; the next slot the sweep looks at
	cap    int               // the most entries ring holds
	pinned map[uint64]*entry // guarded by mu; evicted while pending
	all    map[uint64]*entry // guarded by mu; scratch: every entry
	_      [16]byte          // keep shards on separate cache lines
}

// slot is one place in a shard's ring. The referenced bit is here, not in
// the entry, so that the hand's sweep reads the ring in order instead of
// an entry somewhere in the heap at every step.
type slot struct {
	h   uint64
	e   *entry
	ref bool // used since the hand last passed it
}

func newCache(entries int, scratch bool) *cache {
	n := 16
	for n > 1 && entries/n < 64 {
		n /= 2
	}
	c := &cache{shards: make([]cacheShard, n), mask: uint64(n - 1)}
	if scratch {
		c.limit, c.n = int64(entries), new(atomic.Int64)
		for i := range c.shards {
			c.shards[i].all = map[uint64]*entry{}
		}
		return c
	}
	per := max(entries/n, 1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.pinned = map[uint64]*entry{}
		sh.cap = per
		sh.index = make(map[uint64]int32)
	}
	return c
}

// peekLocked returns the ring's entry for h, or nil.
func (sh *cacheShard) peekLocked(h uint64) *entry {
	if i, ok := sh.index[h]; ok {
		return sh.ring[i].e
	}
	return nil
}

// evictLocked drops e from the ring's bookkeeping: into the pinned map
// while it holds deltas no flush has merged, otherwise gone.
func (sh *cacheShard) evictLocked(h uint64, e *entry) {
	if e.pending > 0 {
		sh.pinned[h] = e
	} else {
		e.gone.Store(true)
	}
}

// addLocked puts e under h into the ring, replacing the entry already
// under h or, when the ring is full, the first one the hand finds
// unreferenced.
func (sh *cacheShard) addLocked(h uint64, e *entry) {
	// Unreferenced: a whole sweep of the hand before it can go.
	if i, ok := sh.index[h]; ok {
		sh.ring[i] = slot{h: h, e: e}
		return
	}
	if len(sh.ring) < sh.cap {
		sh.index[h] = int32(len(sh.ring))
		sh.ring = append(sh.ring, slot{h: h, e: e})
		return
	}
	for {
		s := &sh.ring[sh.hand]
		if s.ref {
			s.ref = false
			sh.hand = (sh.hand + 1) % len(sh.ring)
			continue
		}
		delete(sh.index, s.h)
		sh.evictLocked(s.h, s.e)
		*s = slot{h: h, e: e}
		sh.index[h] = int32(sh.hand)
		sh.hand = (sh.hand + 1) % len(sh.ring)
		return
	}
}

func (c *cache) shard(h uint64) *cacheShard { return &c.shards[(h>>32)&c.mask] }

func (e *entry) is(id uint16, ent []byte) bool { return e.id == id && bytes.Equal(e.ent, ent) }

func (sh *cacheShard) lookupLocked(h uint64, id uint16, ent []byte) *entry {
	if sh.all != nil {
		if e := sh.all[h]; e != nil && e.is(id, ent) {
			return e
		}
		return nil
	}
	if i, ok := sh.index[h]; ok {
		if s := &sh.ring[i]; s.e.is(id, ent) {
			if !s.ref {
				s.ref = true
			}
			return s.e
		}
	}
	if e, ok := sh.pinned[h]; ok && e.is(id, ent) {
		return e
	}
	return nil
}

// get returns the cached entry for (id, ent), or nil.
func (c *cache) get(h uint64, id uint16, ent []byte) *entry {
	sh := c.shard(h)
	sh.mu.Lock()
	e := sh.lookupLocked(h, id, ent)
	sh.mu.Unlock()
	return e
}

// putScratch inserts a new entry into a scratch cache, or fails with
// ErrScratchFull past its limit (the caller holds its stripe lock).
func (c *cache) putScratch(h uint64, e *entry) error {
	if c.n.Add(1) > c.limit {
		c.n.Add(-1)
		return fmt.Errorf("%w: %d states", ErrScratchFull, c.limit)
	}
	sh := c.shard(h)
	sh.mu.Lock()
	sh.all[h] = e
	sh.mu.Unlock()
	return nil
}

// put inserts a new entry (the caller holds its stripe lock, so nobody
// else can have inserted the same one meanwhile).
func (c *cache) put(h uint64, e *entry) {
	sh := c.shard(h)
	sh.mu.Lock()
	if old := sh.peekLocked(h); old != nil && old != e {
		old.gone.Store(true) // another entity of the same hash: replaced without eviction
	}
	sh.addLocked(h, e)
	sh.mu.Unlock()
}

// pin keeps e in memory until a matching release. The caller holds the
// entity's stripe lock: e may have been evicted since it was looked up (by
// another stripe's insert), and it goes back into the pinned map then, so
// that no load of the entity can start over from disk without it.
func (c *cache) pin(h uint64, e *entry) {
	sh := c.shard(h)
	sh.mu.Lock()
	e.pending++
	if sh.peekLocked(h) != e {
		sh.pinned[h] = e
		e.gone.Store(false)
	}
	sh.mu.Unlock()
}

// release undoes one pin: once none is left, an entry the CLOCK evicted
// meanwhile is gone, and the next read reloads it from disk.
func (c *cache) release(h uint64, e *entry) {
	sh := c.shard(h)
	sh.mu.Lock()
	e.pending--
	if e.pending <= 0 && sh.pinned[h] == e {
		delete(sh.pinned, h)
		e.gone.Store(true)
	}
	sh.mu.Unlock()
}

// clear forgets every entry (a resync after a failed commit).
func (c *cache) clear() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, s := range sh.ring {
			sh.evictLocked(s.h, s.e)
		}
		clear(sh.ring)
		sh.ring, sh.hand = sh.ring[:0], 0
		clear(sh.index)
		for _, e := range sh.pinned {
			e.gone.Store(true)
		}
		clear(sh.pinned)
		sh.mu.Unlock()
	}
}

func (c *cache) len() int {
	if c.limit > 0 {
		return int(c.n.Load())
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.ring)
		for h := range sh.pinned {
			if _, ok := sh.index[h]; !ok {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}
