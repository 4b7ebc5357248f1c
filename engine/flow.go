package engine

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// weighted bounds the events Ingest holds in memory across all streams: one
// unit per event, waiters served in arrival order, so that a stalled store
// slows senders (their streams stop being read, and HTTP/2 flow control
// pushes back) instead of growing a queue. A request larger than the
// capacity takes all of it.
type weighted struct {
	size int64
	sem  *semaphore.Weighted
	cur  atomic.Int64 // units taken now, for metrics and tests
}

func newWeighted(size int64) *weighted {
	return &weighted{size: size, sem: semaphore.NewWeighted(size)}
}

// acquire takes n units (the capacity when n exceeds it), waiting until they
// are free or ctx ends, and returns the units taken, for release.
func (w *weighted) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, w.size)
	if err := w.sem.Acquire(ctx, n); err != nil {
		return 0, err
	}
	w.cur.Add(n)
	return n, nil
}

func (w *weighted) release(n int64) {
	w.cur.Add(-n)
	w.sem.Release(n)
}

// held reports the units taken now.
func (w *weighted) held() int64 { return w.cur.Load() }
