package features

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// entry is the decoded state of one (state, period, entity) key in memory.
type entry struct {
	key string // the full pebble key
	st  state  // guarded by the entity's stripe lock

	// guarded by the shard's mu:
	pending int  // Apply calls whose batch is not yet Done
	stale   bool // a Done(committed=false) touched it: drop once pending is 0
}

// cache is an LRU of entries, sharded by key hash so that concurrent
// evaluations rarely share a mutex. An entry with pending (uncommitted)
// deltas is pinned in a side map: the LRU may forget it, but lookups still
// find it until its last Done, so it is never reloaded from disk without
// the deltas that are not on disk yet.
type cache struct {
	shards []cacheShard
	mask   uint64
}

type cacheShard struct {
	mu     sync.Mutex
	lru    *simplelru.LRU[uint64, *entry] // guarded by mu
	pinned map[uint64]*entry              // guarded by mu
	_      [40]byte                       // keep shards on separate cache lines
}

func newCache(entries int) *cache {
	n := 16
	for n > 1 && entries/n < 64 {
		n /= 2
	}
	c := &cache{shards: make([]cacheShard, n), mask: uint64(n - 1)}
	per := max(entries/n, 1)
	for i := range c.shards {
		l, _ := simplelru.NewLRU[uint64, *entry](per, nil)
		c.shards[i].lru = l
		c.shards[i].pinned = map[uint64]*entry{}
	}
	return c
}

func (c *cache) shard(h uint64) *cacheShard { return &c.shards[(h>>32)&c.mask] }

func (sh *cacheShard) lookupLocked(h uint64, key []byte) *entry {
	if e, ok := sh.pinned[h]; ok && e.key == string(key) {
		sh.lru.Get(h) // refresh recency
		return e
	}
	if e, ok := sh.lru.Get(h); ok && e.key == string(key) {
		return e
	}
	return nil
}

// get returns the cached entry for key, pinning it when pin is set.
func (c *cache) get(h uint64, key []byte, pin bool) *entry {
	sh := c.shard(h)
	sh.mu.Lock()
	e := sh.lookupLocked(h, key)
	if e != nil && pin {
		e.pending++
		sh.pinned[h] = e
	}
	sh.mu.Unlock()
	return e
}

// put inserts a freshly loaded entry (the caller holds its stripe lock, so
// nobody else can have loaded the same key meanwhile).
func (c *cache) put(h uint64, e *entry, pin bool) {
	sh := c.shard(h)
	sh.mu.Lock()
	if pin {
		e.pending++
		sh.pinned[h] = e
	}
	sh.lru.Add(h, e)
	sh.mu.Unlock()
}

// release undoes one pin. When the write behind it failed (ok false) the
// entry holds a delta that is not on disk, so it is dropped as soon as no
// other in-flight write needs it, and the next read reloads from disk.
func (c *cache) release(h uint64, e *entry, ok bool) {
	sh := c.shard(h)
	sh.mu.Lock()
	if !ok {
		e.stale = true
	}
	e.pending--
	if e.pending <= 0 {
		if sh.pinned[h] == e {
			delete(sh.pinned, h)
		}
		if e.stale {
			if cur, ok := sh.lru.Peek(h); ok && cur == e {
				sh.lru.Remove(h)
			}
		}
	}
	sh.mu.Unlock()
}

func (c *cache) len() int {
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
