package engine

import (
	"hash/maphash"
	"sync"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// call is one event id being processed; duplicates that arrive meanwhile
// wait on done and share the answer. done is made by the first duplicate
// that waits (under the shard's lock): most ids have none, and an ingest
// batch never waits.
type call struct {
	done chan struct{}
	d    *riskv1.Decision
	err  error
}

// inflight tracks event ids under evaluation or ingestion, so that two
// concurrent requests with one id cannot both pass the idempotency check.
type inflight struct {
	seed   maphash.Seed
	once   sync.Once
	shards [64]struct {
		mu    sync.Mutex
		calls map[string]*call // guarded by mu
	}
}

func (f *inflight) shard(key string) int {
	f.once.Do(func() { f.seed = maphash.MakeSeed() })
	return int(maphash.String(f.seed, key) % uint64(len(f.shards)))
}

// begin registers key. leader is false when another request holds it; the
// caller then waits on c.done.
func (f *inflight) begin(key string) (c *call, leader bool) {
	s := &f.shards[f.shard(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.calls[key]; ok {
		if c.done == nil {
			c.done = make(chan struct{})
		}
		return c, false
	}
	if s.calls == nil {
		s.calls = make(map[string]*call)
	}
	c = &call{}
	s.calls[key] = c
	return c, true
}

// end publishes the leader's answer and releases key.
func (f *inflight) end(key string, c *call, d *riskv1.Decision, err error) {
	s := &f.shards[f.shard(key)]
	s.mu.Lock()
	delete(s.calls, key)
	done := c.done
	c.d, c.err = d, err
	s.mu.Unlock()
	if done != nil {
		close(done)
	}
}
