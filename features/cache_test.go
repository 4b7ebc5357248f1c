package features

import "testing"

// TestCacheClock checks the CLOCK's eviction: a full shard evicts the
// first entry the hand finds unused since it last passed, keeps the ones
// hit meanwhile, moves an evicted entry with unmerged deltas to the pinned
// map (still found) and marks the others gone.
func TestCacheClock(t *testing.T) {
	c := newCache(4, false) // one shard of four
	if len(c.shards) != 1 {
		t.Fatalf("%d shards, want 1", len(c.shards))
	}
	ent := func(i int) []byte { return []byte{byte(i)} }
	es := make([]*entry, 9)
	put := func(i int) {
		es[i] = newEntry(1, ent(i))
		c.put(uint64(i)<<8, es[i])
	}
	get := func(i int) *entry { return c.get(uint64(i)<<8, 1, ent(i)) }
	for i := range 4 {
		put(i)
	}
	get(1) // referenced: survives the next sweep
	c.pin(uint64(2)<<8, es[2])
	get(2)
	put(4) // the hand: 0 is unreferenced
	if get(0) != nil || !es[0].gone.Load() {
		t.Fatal("entry 0 not evicted")
	}
	put(5) // 1 and 2 lose their bits, 3 goes
	if get(3) != nil || !es[3].gone.Load() {
		t.Fatal("entry 3 not evicted")
	}
	for _, i := range []int{1, 2, 4, 5} {
		if get(i) != es[i] {
			t.Fatalf("entry %d lost", i)
		}
	}
	// Every entry has its bit set again, so the sweep clears them all and
	// comes round to 4, then 1, then 2, which is pinned.
	put(6)
	put(7)
	put(8)
	for _, i := range []int{4, 1} {
		if get(i) != nil || !es[i].gone.Load() {
			t.Fatalf("entry %d not evicted", i)
		}
	}
	if get(2) != es[2] || es[2].gone.Load() {
		t.Fatal("pinned entry 2 not kept aside")
	}
	if n := c.len(); n != 5 {
		t.Fatalf("len %d, want 4 in the ring and 1 pinned", n)
	}
	c.release(uint64(2)<<8, es[2])
	if get(2) != nil || !es[2].gone.Load() {
		t.Fatal("released entry 2 still found")
	}
	// Another entity under a hash already held replaces it in place.
	other := newEntry(1, ent(99))
	c.put(uint64(7)<<8, other)
	if !es[7].gone.Load() || c.get(uint64(7)<<8, 1, ent(99)) != other || get(7) != nil {
		t.Fatal("replacement under the same hash")
	}
	c.clear()
	if c.len() != 0 || !es[5].gone.Load() || get(5) != nil {
		t.Fatal("clear kept entries")
	}
	put(1)
	if get(1) != es[1] {
		t.Fatal("insert after clear")
	}
}
