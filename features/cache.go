package features

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
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
	pending int    // delta slots not yet merged to disk (writeback.go): pinned while positive
	tick    uint64 // the shard's tick when it last moved to the LRU's front

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

// cache is an LRU of entries, sharded by hash so that concurrent
// evaluations rarely share a mutex. An entry with deltas not yet merged to
// disk (pinned by pin) that the LRU evicts moves to a side map (pinned):
// lookups still find it until the flush that merges its last delta
// releases it, so it is never reloaded from disk without them. The hash is the one that picks the
// entity's stripe lock (prepare), computed once per state and event.
//
// A hit moves an entry to the LRU's front only when it has aged past the
// newest quarter of its shard (by a tick counted per move): an entry that
// recent cannot be evicted before it ages, so skipping the move keeps the
// eviction order of an LRU for every entry that matters while most hits
// on hot state write nothing.
//
// A scratch store's cache (newCache with scratch) is no LRU: each shard
// keeps every entry in a map, up to limit in all, since an evicted entry of
// a store without a DB would be lost.
type cache struct {
	shards []cacheShard
	mask   uint64
	limit  int64         // scratch: the most entries held; 0: an LRU
	n      *atomic.Int64 // scratch: entries held (shared by the parts of OpenScratch)
}

type cacheShard struct {
	mu     sync.Mutex
	lru    *simplelru.LRU[uint64, *entry] // guarded by mu
	pinned map[uint64]*entry              // guarded by mu; evicted while pending
	tick   uint64                         // guarded by mu
	fresh  uint64                         // a quarter of the shard's capacity
	all    map[uint64]*entry              // guarded by mu; scratch: every entry
	_      [16]byte                       // keep shards on separate cache lines
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
		sh.fresh = uint64(per / 4)
		sh.lru, _ = simplelru.NewLRU(per, func(h uint64, e *entry) {
			if e.pending > 0 { // called under sh.mu
				sh.pinned[h] = e
			} else {
				e.gone.Store(true)
			}
		})
	}
	return c
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
	if e, ok := sh.lru.Peek(h); ok && e.is(id, ent) {
		if sh.tick-e.tick > sh.fresh {
			sh.lru.Get(h) // move to front
			sh.tick++
			e.tick = sh.tick
		}
		return e
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
	if old, ok := sh.lru.Peek(h); ok && old != e {
		old.gone.Store(true) // another entity of the same hash: Add replaces it without eviction
	}
	sh.tick++
	e.tick = sh.tick
	sh.lru.Add(h, e)
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
	if cur, ok := sh.lru.Peek(h); !ok || cur != e {
		sh.pinned[h] = e
		e.gone.Store(false)
	}
	sh.mu.Unlock()
}

// release undoes one pin: once none is left, an entry the LRU evicted
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
		if sh.lru != nil {
			sh.lru.Purge()
		}
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
		n += sh.lru.Len()
		for h := range sh.pinned {
			if !sh.lru.Contains(h) {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}
