package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/internal/batchorder"
)

// ErrClosed is returned for work submitted after Close.
var ErrClosed = errors.New("engine: closed")

// commitReq is one caller's contribution to a group commit.
type commitReq struct {
	// b holds the caller's own writes; nil when seal writes everything.
	b *pebble.Batch
	// seal runs in the committer goroutine, in commit order, writing into
	// the group batch: this is where the decision log links its hash chain.
	// A seal error fails this request alone.
	seal func(group *pebble.Batch) error
	// pending, when set, is a decision to append to the chain: a seal
	// without the closure an evaluation would allocate for it.
	pending *decisions.Pending
	// seen are the idempotency keys the request writes, for the filter.
	seen    [][]byte
	seenOne [1][]byte // seen's storage for an evaluation's one key
	done    chan error
}

// chain is the decision log as the committer sees it: the in-memory chain
// head, which a failed seal or group commit rewinds, and Append.
type chain interface {
	Head() decisions.Head
	Rewind(decisions.Head)
	Append(b *pebble.Batch, p *decisions.Pending) error
}

// reqs recycles the evaluations' commit requests and their channels.
var reqs = sync.Pool{New: func() any { return &commitReq{done: make(chan error, 1)} }}

// committer is the single goroutine that turns many callers' batches into
// one synced Pebble commit. Commit order is the order of the channel.
type committer struct {
	db       *pebble.DB
	maxGroup int
	reqs     chan *commitReq
	chain    chain
	seen     *seenFilter // may be nil
	observer Observer    // may be nil

	mu     sync.RWMutex // guards closed against sends racing Close
	closed bool         // guarded by mu

	wg sync.WaitGroup

	// group is the batch each group is gathered into, reset after its
	// commit rather than taken from Pebble's pool each time: the pool
	// empties at every collection, and regrowing a group's tens of
	// kilobytes was a twentieth of an evaluation's allocated bytes. Only
	// the committer goroutine uses it; nil after a failed commit, since
	// Pebble advises against reusing such a batch.
	group *pebble.Batch
	// sorted is group's writes in key order (batchorder), the batch
	// committed; sorter its scratch. Only the committer goroutine uses them.
	sorted *pebble.Batch
	sorter batchorder.Sorter

	// statistics, read by metrics
	groups    atomic.Int64
	committed atomic.Int64
}

func newCommitter(db *pebble.DB, maxGroup int, ch chain, seen *seenFilter, observer Observer) *committer {
	c := &committer{db: db, maxGroup: maxGroup, reqs: make(chan *commitReq, maxGroup*4), chain: ch, seen: seen, observer: observer}
	c.wg.Add(1)
	go c.run()
	return c
}

// submit queues a request and returns at once; the answer arrives on
// req.done. It fails when the engine is closed or ctx ends first (the queue
// is full because the store stalls).
func (c *committer) submit(ctx context.Context, r *commitReq) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	select {
	case c.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit submits one request and waits for its commit. It takes ownership
// of b (closing it once applied). ctx bounds only the wait; once submitted,
// the write lands whether or not anyone waits for it.
func (c *committer) commit(ctx context.Context, b *pebble.Batch, seal func(*pebble.Batch) error) error {
	r := &commitReq{b: b, seal: seal, done: make(chan error, 1)}
	if err := c.submit(ctx, r); err != nil {
		if b != nil {
			_ = b.Close()
		}
		return err
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitDecision is commit for an evaluation: b's writes, which include
// the idempotency key seen, and the decision p appended to the chain,
// waiting until deadline at most (then context.DeadlineExceeded). It
// allocates neither a context nor a request.
func (c *committer) commitDecision(deadline time.Time, b *pebble.Batch, p *decisions.Pending, seen []byte) error {
	r := reqs.Get().(*commitReq)
	r.b, r.pending = b, p
	r.seenOne[0] = seen
	r.seen = r.seenOne[:]
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		r.reset()
		reqs.Put(r)
		_ = b.Close()
		return ErrClosed
	}
	var t *time.Timer
	select {
	case c.reqs <- r:
	default: // the queue is full: the store stalls
		t = newTimer(time.Until(deadline))
		defer putTimer(t)
		select {
		case c.reqs <- r:
		case <-t.C:
			c.mu.RUnlock()
			r.reset()
			reqs.Put(r)
			_ = b.Close()
			return context.DeadlineExceeded
		}
	}
	c.mu.RUnlock()
	select {
	case err := <-r.done:
		r.reset()
		reqs.Put(r)
		return err
	default:
	}
	if t == nil {
		t = newTimer(time.Until(deadline))
		defer putTimer(t)
	}
	select {
	case err := <-r.done:
		r.reset()
		reqs.Put(r)
		return err
	case <-t.C:
		// The committer still owns r and will answer on r.done: r is not
		// recycled.
		return errStillCommitting
	}
}

// errStillCommitting is commitDecision's answer when its deadline passed
// after the committer took the request: the write lands unless the commit
// fails. Every other error means it did not and will not land.
var errStillCommitting = fmt.Errorf("engine: still committing at the deadline: %w", context.DeadlineExceeded)

// reset clears what a recycled request must not keep.
func (r *commitReq) reset() {
	r.b, r.pending, r.seen, r.seenOne[0] = nil, nil, nil, nil
}

// timers recycles the timers that bound an evaluation's waits. Since Go
// 1.23 a stopped timer delivers no stale tick, so a recycled one is as good
// as new once Reset.
var timers sync.Pool

func newTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

func (c *committer) run() {
	defer c.wg.Done()
	group := make([]*commitReq, 0, c.maxGroup)
	for first := range c.reqs {
		group = append(group[:0], first)
	drain:
		for len(group) < c.maxGroup {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		c.commitGroup(group)
	}
	for _, b := range []*pebble.Batch{c.group, c.sorted} {
		if b != nil {
			_ = b.Close()
		}
	}
}

func (c *committer) commitGroup(group []*commitReq) {
	rewind := c.chain.Head()
	if c.group == nil {
		c.group = c.db.NewBatch()
	}
	batch := c.group
	errs := make([]error, len(group))
	var scratch *pebble.Batch // one per group, reset per seal: a batch per seal was a hot allocation
	defer func() {
		if scratch != nil {
			_ = scratch.Close()
		}
	}()
	for i, r := range group {
		if r.seal != nil || r.pending != nil {
			// A seal writes into a scratch batch first, so that one that fails
			// halfway leaves nothing in the group and its chain link is undone.
			if scratch == nil {
				scratch = c.db.NewBatch()
			} else {
				scratch.Reset()
			}
			before := c.chain.Head()
			var err error
			if r.pending != nil {
				err = c.chain.Append(scratch, r.pending)
			} else {
				err = r.seal(scratch)
			}
			if err == nil {
				err = batch.Apply(scratch, nil)
			}
			if err != nil {
				c.chain.Rewind(before)
				errs[i] = err
				if r.b != nil {
					_ = r.b.Close()
				}
				continue
			}
		}
		if r.b != nil {
			if err := batch.Apply(r.b, nil); err != nil {
				errs[i] = err
			}
			_ = r.b.Close()
		}
	}
	// The filter learns the group's idempotency keys before they are
	// visible (see seen.go).
	for i, r := range group {
		if errs[i] == nil {
			c.seen.add(r.seen)
		}
	}
	start := time.Now()
	err := c.commitSorted(batch)
	if err != nil {
		_ = batch.Close()
		c.group = nil
	} else {
		batch.Reset()
	}
	c.seen.maybeRebuild()
	if c.observer != nil {
		c.observer.GroupCommitted(len(group), time.Since(start))
	}
	if err != nil {
		c.chain.Rewind(rewind)
	}
	c.groups.Add(1)
	for i, r := range group {
		e := errs[i]
		if e == nil {
			e = err
		}
		if e == nil {
			c.committed.Add(1)
		}
		r.done <- e
	}
}

// commitSorted commits the group's writes, synced, in key order when
// batchorder can sort them: the memtable then inserts each evaluation's
// write next to the one before it instead of searching from the top.
func (c *committer) commitSorted(group *pebble.Batch) error {
	if c.sorted == nil {
		c.sorted = c.db.NewBatch()
	}
	ok, err := c.sorter.Sort(c.sorted, group)
	if err != nil || !ok {
		c.sorted.Reset()
		return group.Commit(pebble.Sync)
	}
	err = c.sorted.Commit(pebble.Sync)
	if err != nil {
		_ = c.sorted.Close()
		c.sorted = nil
	} else {
		c.sorted.Reset()
	}
	return err
}

// close stops accepting work, commits what is queued, and waits.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.mu.Unlock()
	c.wg.Wait()
}
