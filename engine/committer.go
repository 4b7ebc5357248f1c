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

// committer turns many callers' batches into one synced Pebble commit: one
// goroutine gathers, seals and applies each group, another waits for its
// WAL sync and answers its callers (syncLoop). Commit order is the order of
// the channel.
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
	// the committer goroutine uses it; nil when it was itself the batch
	// applied (batchorder declined to sort it), until the next group.
	group *pebble.Batch
	// sorted is group's writes in key order (batchorder), the batch
	// applied; sorter its scratch. Only the committer goroutine uses them;
	// sorted is nil from its apply until the next group takes a spare.
	sorted *pebble.Batch
	sorter batchorder.Sorter

	// syncs carries the groups applied to the memtable, in commit order, to
	// the sync loop, which waits for each one's WAL sync and answers its
	// callers. Its capacity bounds the groups whose sync is outstanding.
	syncs chan *syncing
	// spare holds batches whose sync is done, reset for the next group, and
	// the syncing records, so that neither is allocated per group.
	spare     chan *pebble.Batch
	spareSync chan *syncing
	// syncFailed, when set, is told of a failed WAL sync before the group's
	// callers are answered (the engine makes it fatal).
	syncFailed func(error)

	// statistics, read by metrics
	groups    atomic.Int64
	committed atomic.Int64
}

// maxSyncing bounds the groups applied to the memtable whose WAL sync is
// still outstanding. Pebble's WAL writer syncs whatever was written by the
// time a sync starts, so while one sync runs the groups gathered meanwhile
// share the next; more in flight than a few only holds more memory.
const maxSyncing = 4

func newCommitter(db *pebble.DB, maxGroup int, ch chain, seen *seenFilter, observer Observer, syncFailed func(error)) *committer {
	c := &committer{db: db, maxGroup: maxGroup, reqs: make(chan *commitReq, maxGroup*4), chain: ch, seen: seen, observer: observer, syncFailed: syncFailed,
		syncs: make(chan *syncing, maxSyncing), spare: make(chan *pebble.Batch, maxSyncing+2), spareSync: make(chan *syncing, maxSyncing+2)}
	c.wg.Add(2)
	go c.run()
	go c.syncLoop()
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
	for first := range c.reqs {
		sy := c.newSyncing()
		sy.reqs = append(sy.reqs, first)
	drain:
		for len(sy.reqs) < c.maxGroup {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				sy.reqs = append(sy.reqs, r)
			default:
				break drain
			}
		}
		c.commitGroup(sy)
	}
	close(c.syncs) // the sync loop answers the groups still syncing, then ends
	for _, b := range []*pebble.Batch{c.group, c.sorted} {
		if b != nil {
			_ = b.Close()
		}
	}
}

// commitGroup seals and applies the group sy gathered and hands it to the
// sync loop.
func (c *committer) commitGroup(sy *syncing) {
	rewind := c.chain.Head()
	if c.group == nil {
		c.group = c.newBatch()
	}
	batch := c.group
	group := sy.reqs
	sy.errs = append(sy.errs[:0], make([]error, len(group))...)
	errs := sy.errs
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
	applied, err := c.applySorted(batch)
	if err != nil {
		c.chain.Rewind(rewind)
	}
	c.seen.maybeRebuild()
	sy.batch, sy.err, sy.start = applied, err, start
	c.syncs <- sy
}

// syncing is a group applied to the memtable (visible, as with a synced
// Commit, before its WAL sync ends) whose callers wait for that sync.
type syncing struct {
	batch *pebble.Batch // applied with ApplyNoSyncWait
	err   error         // the apply's; batch is then not to be synced or reused
	start time.Time
	reqs  []*commitReq // the group, in commit order
	errs  []error      // per request: its seal's
}

func (c *committer) newSyncing() *syncing {
	select {
	case sy := <-c.spareSync:
		return sy
	default:
		return &syncing{}
	}
}

// syncLoop waits, in commit order, for each applied group's WAL sync and
// answers its callers: a decision is acknowledged only once it is on disk.
// Meanwhile the committer gathers, seals and applies the next groups, and
// Pebble's WAL writer syncs them together: a serial commit-then-sync left
// the committer idle during every sync and bounded the throughput.
//
// A failed sync goes to syncFailed first. The engine makes it fatal, as
// Pebble's own synced Commit does: the memtable holds writes that may never
// reach the disk, and a restart recovers what did. Without syncFailed the
// group fails, and every group after it (Pebble's WAL writer keeps the
// error); the chain head is not rewound, as it is for a failed apply, since
// later groups were sealed on top of it.
func (c *committer) syncLoop() {
	defer c.wg.Done()
	for sy := range c.syncs {
		// A batch whose apply failed (sy.err) is dropped, not closed: Pebble
		// may have queued it for a sync that never comes, and says not to
		// close a batch before SyncWait returns.
		err := sy.err
		if err == nil {
			err = sy.batch.SyncWait()
			if err != nil && c.syncFailed != nil {
				c.syncFailed(err)
			}
			if err == nil {
				sy.batch.Reset()
				select {
				case c.spare <- sy.batch:
				default:
					_ = sy.batch.Close()
				}
			} else {
				_ = sy.batch.Close()
			}
		}
		if c.observer != nil {
			c.observer.GroupCommitted(len(sy.reqs), time.Since(sy.start))
		}
		c.groups.Add(1)
		for i, r := range sy.reqs {
			e := sy.errs[i]
			if e == nil {
				e = err
			}
			if e == nil {
				c.committed.Add(1)
			}
			r.done <- e
		}
		clear(sy.reqs)
		sy.batch, sy.err, sy.reqs, sy.errs = nil, nil, sy.reqs[:0], sy.errs[:0]
		select {
		case c.spareSync <- sy:
		default:
		}
	}
	for {
		select {
		case b := <-c.spare:
			_ = b.Close()
		default:
			return
		}
	}
}

// newBatch returns a spare batch, or a new one.
func (c *committer) newBatch() *pebble.Batch {
	select {
	case b := <-c.spare:
		return b
	default:
		return c.db.NewBatch()
	}
}

// applySorted applies the group's writes to the memtable, in key order when
// batchorder can sort them (the memtable then inserts each evaluation's
// write next to the one before it instead of searching from the top), and
// returns the batch applied, whose WAL sync the caller must wait for.
// group is reset for the next group, or, when it is the batch applied,
// replaced.
func (c *committer) applySorted(group *pebble.Batch) (*pebble.Batch, error) {
	applied := group
	if c.sorted == nil {
		c.sorted = c.newBatch()
	}
	if ok, err := c.sorter.Sort(c.sorted, group); err == nil && ok {
		applied, c.sorted = c.sorted, nil
		group.Reset()
	} else {
		c.sorted.Reset()
		c.group = nil
	}
	return applied, c.db.ApplyNoSyncWait(applied, pebble.Sync)
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
