package engine

import (
	"context"
	"sync"
)

// weighted is a counting semaphore whose waiters are served in arrival
// order: Ingest takes one unit per event, so that the events held in memory
// across all streams stay bounded and a stalled store slows senders (their
// streams stop being read, and HTTP/2 flow control pushes back) instead of
// growing a queue. A request larger than the capacity takes all of it.
type weighted struct {
	size int64

	mu      sync.Mutex
	cur     int64           // guarded by mu
	waiters []*weightWaiter // FIFO, guarded by mu
}

type weightWaiter struct {
	n     int64
	ready chan struct{}
}

func newWeighted(size int64) *weighted { return &weighted{size: size} }

// acquire takes n units, waiting until they are free or ctx ends. It returns
// the units actually taken (n, or the capacity when n exceeds it), to be
// given back with release.
func (w *weighted) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, w.size)
	w.mu.Lock()
	if len(w.waiters) == 0 && w.cur+n <= w.size {
		w.cur += n
		w.mu.Unlock()
		return n, nil
	}
	ww := &weightWaiter{n: n, ready: make(chan struct{})}
	w.waiters = append(w.waiters, ww)
	w.mu.Unlock()
	select {
	case <-ww.ready:
		return n, nil
	case <-ctx.Done():
		w.mu.Lock()
		select {
		case <-ww.ready: // granted meanwhile: give it back
			w.cur -= n
			w.grantLocked()
		default:
			for i, x := range w.waiters {
				if x == ww {
					w.waiters = append(w.waiters[:i], w.waiters[i+1:]...)
					break
				}
			}
			w.grantLocked() // the head may have changed
		}
		w.mu.Unlock()
		return 0, ctx.Err()
	}
}

func (w *weighted) release(n int64) {
	w.mu.Lock()
	w.cur -= n
	w.grantLocked()
	w.mu.Unlock()
}

// grantLocked wakes waiters in order while their units are free.
func (w *weighted) grantLocked() {
	for len(w.waiters) > 0 {
		ww := w.waiters[0]
		if w.cur+ww.n > w.size {
			return
		}
		w.cur += ww.n
		w.waiters = w.waiters[1:]
		close(ww.ready)
	}
}

// held reports the units taken now, for metrics and tests.
func (w *weighted) held() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}
