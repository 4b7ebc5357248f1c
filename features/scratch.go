package features

import (
	"errors"
	"fmt"
)

// A scratch store (Options.Scratch) keeps all its state in memory and has no
// DB: a replay (the engine's backtest) recomputes features from an empty
// start without writing to any store. A state not in memory is simply
// absent, Apply writes no merge operands, and nothing is evicted, since
// evicted state could not be read back: memory grows with the (state,
// entity) pairs the replay touches, bounded by Options.CacheEntries, past
// which Apply fails with ErrScratchFull instead of running the process out
// of memory. An entry keeps at most three periods, as in a store on disk,
// which is why a scratch store needs its events in time order
// (ErrScratchOrder): the periods it forgets are then never read again.

var (
	// ErrScratchFull: a scratch store would hold more than
	// Options.CacheEntries states.
	ErrScratchFull = errors.New("features: scratch store is full")
	// ErrScratchOrder: an event applied to a scratch store is older than
	// one applied before it.
	ErrScratchOrder = errors.New("features: scratch store events are not in time order")
	// ErrScratch: the operation needs a store on disk.
	ErrScratch = errors.New("features: not available on a scratch store")
)

// scratchOrder admits an event at t to a scratch store: t must not be
// before the latest event applied.
func (s *Store) scratchOrder(t int64) error {
	for {
		last := s.lastT.Load()
		if t < last {
			return fmt.Errorf("%w: %d before %d", ErrScratchOrder, t, last)
		}
		if t == last || s.lastT.CompareAndSwap(last, t) {
			return nil
		}
	}
}

// scratchApply is the Pending a scratch store's Apply hands loadAll: it
// marks the call as a write, and Done ignores it (done is set).
var scratchApply = &Pending{done: true}

// emptyState is the state of a period a scratch store holds nothing for.
// Never written: only a period an event adds to is created (scratchLoad).
var emptyState state

// scratchLoad is loadAll's part for one plan of a scratch store: the
// periods in memory, or empty. A period (and the entry holding it) is
// created only when the event is added to it (write and the plan counts),
// so that reads of state nobody wrote cost no memory. A missing previous
// period reads as nil, which readState takes as empty.
func (s *Store) scratchLoad(p *plan, st *stateDef, write bool) error {
	curP, prevP, needPrev := periodsOf(st, p.hi)
	add := write && p.counts
	e := s.cache.get(p.h, st.id, p.ent)
	if e == nil {
		if !add {
			p.cur, p.prev = &emptyState, nil
			return nil
		}
		e = newEntry(st.id, p.ent)
		if err := s.cache.putScratch(p.h, e); err != nil {
			return err
		}
	}
	if p.cur = e.find(curP); p.cur == nil {
		if add {
			ps := &periodState{p: curP}
			e.add(ps, curP, prevP)
			p.cur = &ps.st
		} else {
			p.cur = &emptyState
		}
	}
	p.prev = nil
	if needPrev {
		p.prev = e.find(prevP)
	}
	return nil
}

// OpenScratch opens parts scratch stores that together compute opts's
// catalog, so that a replay can run them in parallel: each event goes
// through every part, in time order within each part. The stateful
// features are divided by state (features sharing a state stay together),
// every list_count feature is in part 0 (so only part 0 calls
// opts.Lists), and index[k][j] is the position in opts.Catalog of part k's
// feature j. The parts share one bound of opts.CacheEntries states.
func OpenScratch(opts Options, parts int) (stores []*Store, index [][]int, err error) {
	if parts < 1 {
		return nil, nil, fmt.Errorf("features: OpenScratch of %d parts", parts)
	}
	opts.Scratch = true
	if opts.Catalog == nil {
		opts.Catalog = DefaultCatalog()
	}
	cats, index := opts.Catalog.split(parts)
	for k, c := range cats {
		o := opts
		o.Catalog = c
		s, err := Open(o)
		if err != nil {
			return nil, nil, err
		}
		if k > 0 {
			s.cache.n = stores[0].cache.n
		}
		stores = append(stores, s)
	}
	return stores, index, nil
}

// split divides c into n catalogs by state, round robin, and returns for
// each the positions in c of its features. Filters are shared, so their
// indices stay valid.
func (c *Catalog) split(n int) ([]*Catalog, [][]int) {
	cats := make([]*Catalog, n)
	index := make([][]int, n)
	for k := range cats {
		cats[k] = &Catalog{name: c.name, filters: c.filters}
	}
	at := make([]int, len(c.states)) // a state's index in its part
	for si, st := range c.states {
		k := si % n
		at[si] = len(cats[k].states)
		cats[k].states = append(cats[k].states, st)
	}
	for i, d := range c.defs {
		k := 0
		if d.state >= 0 {
			k = d.state % n
			d.state = at[d.state]
		}
		cats[k].defs = append(cats[k].defs, d)
		index[k] = append(index[k], i)
	}
	return cats, index
}
