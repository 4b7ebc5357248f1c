package features

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/expr-lang/expr/vm"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// ErrNoDB is returned by Open without a DB.
var ErrNoDB = errors.New("features: Options.DB is required")

// ListMatcher counts how many distinct values of values (which may repeat,
// in any order) are on the named list. It is satisfied by features/lists;
// nil means every list is empty.
type ListMatcher interface {
	CountMembers(list string, values []string) int
}

// Options configure a Store. The zero value works except for DB.
type Options struct {
	// DB holds the state; it must be opened with Merger(). Required
	// unless Scratch.
	DB *pebble.DB
	// Scratch keeps all state in memory, without a DB (scratch.go): for
	// replays in event-time order. CacheEntries then bounds the states
	// held, and Aliases must be nil.
	Scratch bool
	// Catalog defaults to DefaultCatalog().
	Catalog *Catalog
	// Lists answers list_count features; nil counts 0.
	Lists ListMatcher
	// CacheEntries bounds the hot-state cache (one entry per feature state,
	// period and entity; in-flight entries are pinned on top). Default 262144.
	CacheEntries int
	// Clock defaults to the system clock; Sweep and Show read it.
	Clock clock.Clock
	// Lateness is the oldest event (relative to now) the store must still
	// count correctly; it should equal ingest's MaxEventAge. Default 24h.
	Lateness time.Duration
	// Aliases returns an event's pseudonyms under the keys of a rotation
	// (ingest's OldPseudonyms); nil when none is under way. See rotation.go.
	Aliases func(ev *event.Event) []event.Pseudonyms
	// FlushInterval is how often a background flush merges the deltas of
	// committed events into the state keys (writeback.go). Zero starts no
	// background flusher: Flush and Close merge them, and until then they
	// are durable in the batches' delta records.
	FlushInterval time.Duration
	// Logger receives the progress of Open's migration of an older store
	// layout (migrate.go) and, at debug level, each write-back flush;
	// default slog.Default().
	Logger *slog.Logger
	// SweepKeys bounds the state keys one Sweep reads (sweep.go): a pass
	// over the store takes (state keys / SweepKeys) calls. Default
	// DefaultSweepKeys.
	SweepKeys int
	// MaxDirty starts a background flush early once this many (state,
	// period, entity) deltas wait; they pin their entries in memory on top
	// of CacheEntries. Default CacheEntries/2.
	MaxDirty int
}

// DefaultCacheEntries is the default Options.CacheEntries.
const DefaultCacheEntries = 1 << 18

// DefaultLateness is the default Options.Lateness.
const DefaultLateness = 24 * time.Hour

const stripes = 1024

// Store computes and keeps feature state. It is safe for concurrent use.
type Store struct {
	db       *pebble.DB
	cat      *Catalog
	lists    ListMatcher
	clock    clock.Clock
	lateness time.Duration
	aliases  func(ev *event.Event) []event.Pseudonyms
	cache    *cache
	scratch  bool
	lastT    atomic.Int64 // scratch: the latest event time applied
	locks    [stripes]sync.Mutex
	vms      sync.Pool
	wb       writeBack
	log      *slog.Logger // nil in a scratch store

	hits, loads atomic.Int64 // periods found in memory, read from the DB (Stats)

	// diskGen counts the writes of state keys (flushes, erasures, sweeps,
	// rebuilds); a period preload read before one of them is read again.
	// Each writer adds to it after its write is on disk and before a
	// period it wrote can leave memory.
	diskGen atomic.Uint64

	sweepKeys int
	sweepMu   sync.Mutex
	sweepAt   []byte // guarded by sweepMu: where the next Sweep starts; nil from the first key
}

// Open returns a Store over opts.DB.
func Open(opts Options) (*Store, error) {
	if opts.Scratch {
		if opts.DB != nil || opts.Aliases != nil {
			return nil, errors.New("features: a scratch store takes no DB and no Aliases")
		}
	} else if opts.DB == nil {
		return nil, ErrNoDB
	}
	if opts.Catalog == nil {
		opts.Catalog = DefaultCatalog()
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.Lateness <= 0 {
		opts.Lateness = DefaultLateness
	}
	s := &Store{
		db:       opts.DB,
		cat:      opts.Catalog,
		lists:    opts.Lists,
		clock:    clock.Or(opts.Clock),
		lateness: opts.Lateness,
		aliases:  opts.Aliases,
		cache:    newCache(opts.CacheEntries, opts.Scratch),
		scratch:  opts.Scratch,
	}
	s.lastT.Store(math.MinInt64)
	s.vms.New = func() any { return new(vm.VM) }
	if opts.SweepKeys <= 0 {
		opts.SweepKeys = DefaultSweepKeys
	}
	s.sweepKeys = opts.SweepKeys
	if !s.scratch {
		if opts.Logger == nil {
			opts.Logger = slog.Default()
		}
		s.log = opts.Logger
		if _, err := migrateV1(s.db, opts.Logger); err != nil {
			return nil, err
		}
		if err := s.openWriteBack(opts); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Catalog returns the store's catalog.
func (s *Store) Catalog() *Catalog { return s.cat }

// Pending is an Apply whose batch has not committed yet; hand it to Done
// once the batch's fate is known.
type Pending struct {
	epoch uint64
	done  bool
}

// Done settles an Apply: committed says whether its batch reached disk. A
// flush waits for the Applies of its epoch to settle before it merges their
// deltas. A failed commit leaves memory holding a delta the disk does not
// have: the store then refuses Apply and Read (ErrRebuilding) until the
// next Flush has rebuilt memory from what is on disk (writeback.go).
// Done(nil, ...) and a second Done are no-ops.
func (s *Store) Done(p *Pending, committed bool) {
	if p == nil || p.done {
		return
	}
	p.done = true
	if !committed {
		s.wb.fail()
	}
	s.wb.inflight[p.epoch&1].Done()
}

// plan is one state's part in one evaluation.
type plan struct {
	si     int
	ok     bool   // applicable: the event's type reads this state
	used   bool   // ok was set: prepare resets the plan (the others are still zero)
	counts bool   // the event passes the where filter: Apply adds it
	ent    []byte // entity key (view into work.buf)
	stripe int
	hi     int64  // windowed: granule index of t; last: period of t
	h      uint64 // hash of (state, entity): stripe and cache shard
	cur    *state
	prev   *state       // nil when the window does not reach the previous period
	e      *entry       // not scratch: the cached entry, and
	curPS  *periodState // the period cur is the state of
	hits   int          // periods loadAll found in memory
	loads  int          // and read from the DB
	of     []byte       // distinct: the value's pseudonym
	hasOf  bool
	sum    int64
	res    stateRead
	curKey []byte
	key    []byte // scratch for period keys on a cache miss
	// pre: the periods (current, previous) preload read from the DB
	// without the stripe locks, for an entity not in memory then.
	pre [2]*periodState
}

type stateRead struct {
	n     int64 // count, sum, distinct; first_seen: the earliest time
	found bool  // last, first_seen
	last  lastVal
}

type work struct {
	plans   []plan
	buf     []byte
	filters []int8 // 0 unknown, 1 true, -1 false
	env     any
	op      []byte
	stripes []int
	alias   [][][]byte  // per plan: the entity keys of a rotation's old keys (rotation.go)
	rec     []byte      // the event's delta record (writeback.go)
	key     []byte      // its key
	dirty   []dirtySlot // the delta slots the event created
	reads   []preRead   // preload's reads, and
	rkeys   []byte      // their keys
	gen     uint64      // Store.diskGen when preload began
	noRead  bool        // Add: no previous periods, nothing to read
}

var workPool = sync.Pool{New: func() any { return new(work) }}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

func (s *Store) filterTrue(w *work, ev *event.Event, fi int) (bool, error) {
	if fi < 0 {
		return true, nil
	}
	switch w.filters[fi] {
	case 1:
		return true, nil
	case -1:
		return false, nil
	}
	if w.env == nil {
		w.env = ev // a pointer: boxing the struct would copy its kilobyte on every evaluation
	}
	m := s.vms.Get().(*vm.VM)
	out, err := m.Run(s.cat.filters[fi].prog, w.env)
	s.vms.Put(m)
	if err != nil {
		return false, fmt.Errorf("features: where %q: %w", s.cat.filters[fi].src, err)
	}
	b, _ := out.(bool)
	if b {
		w.filters[fi] = 1
	} else {
		w.filters[fi] = -1
	}
	return b, nil
}

// prepare decides which states apply to ev and builds their keys.
func (s *Store) prepare(w *work, ev *event.Event, ignoreFilters bool) error {
	states := s.cat.states
	if cap(w.plans) < len(states) {
		w.plans = make([]plan, len(states))
	}
	w.plans = w.plans[:len(states)]
	w.noRead = false
	if cap(w.filters) < len(s.cat.filters) {
		w.filters = make([]int8, len(s.cat.filters))
	}
	w.filters = w.filters[:len(s.cat.filters)]
	clear(w.filters)
	w.env = nil
	w.buf = w.buf[:0]
	w.stripes = w.stripes[:0]
	w.alias = w.alias[:0]
	t := ev.OccurredAt.UnixNano()
	// Entity keys first, into one buffer; slices are taken once it stops growing.
	type span struct{ a, b, oa, ob int }
	var spansArr [32]span
	spans := spansArr[:0]
	for si, st := range states {
		p := &w.plans[si]
		if p.used {
			// Most events use few of the states: rewriting every plan (a
			// struct with pointers, so under the collector's write
			// barrier) cost more than the rest of prepare.
			*p = plan{si: si, curKey: p.curKey, key: p.key}
		}
		p.si = si
		spans = append(spans, span{})
		// The type decides what an event reads; the where filter only
		// whether it counts: a successful login reads the failures before it.
		counts := true
		if !ignoreFilters {
			if st.types != 0 && st.types&(1<<ev.Type) == 0 {
				continue
			}
			var err error
			if counts, err = s.filterTrue(w, ev, st.filter); err != nil {
				return err
			}
		}
		a := len(w.buf)
		ok := true
		for _, kf := range st.key {
			start := len(w.buf)
			w.buf = append(w.buf, 0)
			var has bool
			w.buf, has = kf.get(ev, w.buf)
			if !has || len(w.buf)-start-1 > 255 {
				ok = false
				break
			}
			w.buf[start] = byte(len(w.buf) - start - 1)
		}
		if !ok {
			w.buf = w.buf[:a]
			continue
		}
		if st.lastLoc && !ev.Has.Location {
			w.buf = w.buf[:a]
			continue
		}
		spans[si] = span{a: a, b: len(w.buf)}
		p.ok, p.used = true, true
		p.counts = counts
		switch st.agg {
		case AggDistinct:
			oa := len(w.buf)
			w.buf, p.hasOf = st.of.get(ev, w.buf)
			spans[si].oa, spans[si].ob = oa, len(w.buf)
		case AggSum:
			if !ignoreFilters {
				if w.env == nil {
					w.env = ev
				}
				m := s.vms.Get().(*vm.VM)
				out, err := m.Run(st.sum, w.env)
				s.vms.Put(m)
				if err != nil {
					return fmt.Errorf("features: %s of: %w", st.first, err)
				}
				p.sum, _ = out.(int64)
			}
		}
		if st.agg == AggLast {
			p.hi = floorDiv(t, int64(st.window))
		} else {
			p.hi = ceilDiv(t, st.gran)
		}
	}
	for si := range w.plans {
		p := &w.plans[si]
		if !p.ok {
			continue
		}
		sp := spans[si]
		p.ent = w.buf[sp.a:sp.b:sp.b]
		p.of = w.buf[sp.oa:sp.ob:sp.ob]
		p.h = entityHash(states[si].id, p.ent)
		p.stripe = int(p.h % stripes)
		w.stripes = append(w.stripes, p.stripe)
	}
	slices.Sort(w.stripes)
	w.stripes = slices.Compact(w.stripes)
	return nil
}

func (s *Store) lock(w *work) {
	for _, i := range w.stripes {
		s.locks[i].Lock()
	}
}

func (s *Store) unlock(w *work) {
	for i := len(w.stripes) - 1; i >= 0; i-- {
		s.locks[w.stripes[i]].Unlock()
	}
}

// entityHash picks the stripe lock and cache slot of a state's entity.
func entityHash(id uint16, ent []byte) uint64 {
	return xxhash.Sum64(ent) ^ uint64(id)*0x9E3779B97F4A7C15
}

// periodsOf returns the period holding granule (or, for last, period) hi
// and the previous period, with whether a read at hi reaches it.
func periodsOf(st *stateDef, hi int64) (cur, prev int64, needPrev bool) {
	if st.agg == AggLast {
		return hi, hi - 1, true
	}
	cur = floorDiv(hi, slots)
	prev = floorDiv(hi-(slots-1), slots)
	return cur, prev, prev != cur
}

// loadPeriod returns period per of e, reading it from the DB (and the
// rotation's old keys) when it is not in memory.
func (s *Store) loadPeriod(w *work, p *plan, st *stateDef, e *entry, per int64, keep int64, alias [][]byte) (*periodState, error) {
	if x := e.findPeriod(per); x != nil {
		p.hits++
		return x, nil
	}
	p.loads++
	for _, ps := range p.pre {
		if ps != nil && ps.p == per && s.diskGen.Load() == w.gen {
			e.add(ps, per, keep)
			return ps, nil
		}
	}
	ps, err := s.readPeriod(p, st, per, alias)
	if err != nil {
		return nil, err
	}
	e.add(ps, per, keep)
	return ps, nil
}

// readPeriod reads period per of the plan's state from the DB (and the
// rotation's old keys).
func (s *Store) readPeriod(p *plan, st *stateDef, per int64, alias [][]byte) (*periodState, error) {
	p.key = appendStateKey(p.key[:0], st.id, per, p.ent)
	v, closer, err := s.db.Get(p.key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		v = nil
	case err != nil:
		return nil, fmt.Errorf("features: read state: %w", err)
	default:
		defer closer.Close()
	}
	return s.storedPeriod(p.key, per, v, alias)
}

// storedPeriod makes the period of key from its stored value v (nil when
// absent) and the rotation's old keys.
func (s *Store) storedPeriod(key []byte, per int64, v []byte, alias [][]byte) (*periodState, error) {
	ps := &periodState{p: per}
	if v != nil {
		if err := ps.st.merge(v); err != nil {
			return nil, fmt.Errorf("features: state %x: %w", key, err)
		}
	}
	if err := s.mergeAliases(&ps.st, key, alias); err != nil {
		return nil, err
	}
	ps.aliased = len(alias) > 0
	return ps, nil
}

// afterPreload, when set (by tests), runs between an Apply's preload and
// its taking the stripe locks.
var afterPreload func()

// preload looks up every plan's entry and reads from the DB, before the
// stripe locks are taken, the periods of every plan whose entity is not in
// memory, so that an Apply does not hold a dozen stripes (and every
// evaluation waiting for one of them) while it reads Pebble. loadAll uses
// the entry it found unless it is gone since, and what it read unless the
// entity came into memory meanwhile or a write of state keys landed since
// (diskGen). An entity in memory is left to loadAll: its periods are
// guarded by the stripe lock, and a period missing there (a new period) is
// rare.
func (s *Store) preload(w *work) error {
	w.gen = s.diskGen.Load()
	w.reads, w.rkeys = w.reads[:0], w.rkeys[:0]
	for si := range w.plans {
		p := &w.plans[si]
		if !p.ok {
			continue // its pre is nil: prepare reset the plans it used
		}
		p.pre = [2]*periodState{}
		st := s.cat.states[si]
		if p.e = s.cache.get(p.h, st.id, p.ent); p.e != nil {
			continue
		}
		curP, prevP, needPrev := periodsOf(st, p.hi)
		w.addRead(si, 0, st.id, curP, p.ent)
		if needPrev && !w.noRead {
			w.addRead(si, 1, st.id, prevP, p.ent)
		}
	}
	if len(w.reads) == 0 {
		return nil
	}
	// In key order an entity's reads are together, in the same block or
	// the next, and a seek to a later key than the last steps forward from
	// where the last left each level (Pebble's TrySeekUsingNext) instead of
	// searching it anew.
	slices.SortFunc(w.reads, func(a, b preRead) int { return bytes.Compare(w.rkeys[a.a:a.b], w.rkeys[b.a:b.b]) })
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("features: read state: %w", err)
	}
	defer it.Close()
	for _, r := range w.reads {
		key := w.rkeys[r.a:r.b]
		var v []byte
		if it.SeekPrefixGE(key) && bytes.Equal(it.Key(), key) {
			if v, err = it.ValueAndErr(); err != nil {
				return fmt.Errorf("features: read state: %w", err)
			}
		} else if err := it.Error(); err != nil {
			return fmt.Errorf("features: read state: %w", err)
		}
		p := &w.plans[r.si]
		if p.pre[r.slot], err = s.storedPeriod(key, r.per, v, w.aliasesOf(r.si)); err != nil {
			return err
		}
	}
	return nil
}

// preRead is one period preload reads: plan si's current (slot 0) or
// previous period per, whose key is work.rkeys[a:b].
type preRead struct {
	si, slot, a, b int
	per            int64
}

func (w *work) addRead(si, slot int, id uint16, per int64, ent []byte) {
	a := len(w.rkeys)
	w.rkeys = appendStateKey(w.rkeys, id, per, ent)
	w.reads = append(w.reads, preRead{si: si, slot: slot, a: a, b: len(w.rkeys), per: per})
}

// loadAll fetches the state every applicable plan reads: the entry preload
// found (looked up again only if it is gone since, or when there was no
// preload), and per period not in memory what preload read or, when that
// is stale or missing, a DB read. Called with the stripes locked; write
// says the event is being applied.
func (s *Store) loadAll(w *work, write bool) error {
	for si := range w.plans {
		p := &w.plans[si]
		if !p.ok {
			continue
		}
		st := s.cat.states[si]
		if s.scratch {
			if err := s.scratchLoad(p, st, write); err != nil {
				return err
			}
			continue
		}
		e := p.e // preload's, if any
		if e == nil || e.gone.Load() {
			e = s.cache.get(p.h, st.id, p.ent)
		}
		if e == nil {
			e = newEntry(st.id, p.ent)
			s.cache.put(p.h, e)
		}
		p.e = e
		curP, prevP, needPrev := periodsOf(st, p.hi)
		needPrev = needPrev && !w.noRead
		if !needPrev {
			prevP = curP
		}
		alias := w.aliasesOf(si)
		ps, err := s.loadPeriod(w, p, st, e, curP, prevP, alias)
		if err != nil {
			return err
		}
		p.curPS, p.cur = ps, &ps.st
		p.prev = nil
		if needPrev {
			if ps, err = s.loadPeriod(w, p, st, e, prevP, curP, alias); err != nil {
				return err
			}
			p.prev = &ps.st
		}
		if p.counts && write {
			p.curKey = appendStateKey(p.curKey[:0], st.id, curP, p.ent)
		}
	}
	var hits, loads int
	for i := range w.plans {
		hits, loads = hits+w.plans[i].hits, loads+w.plans[i].loads
		if w.plans[i].pre != [2]*periodState{} { // a write only where one is needed
			w.plans[i].pre = [2]*periodState{}
		}
	}
	s.hits.Add(int64(hits))
	s.loads.Add(int64(loads))
	return nil
}

// readState computes the plan's reading as of t from its entries.
func (s *Store) readState(p *plan, t int64) {
	st := s.cat.states[p.si]
	p.res = stateRead{}
	switch st.agg {
	case AggCount, AggSum, AggSeenBefore:
		curLo, curHi, prevLo := windowSlots(p.hi)
		p.res.n = p.cur.sumRange(int(curLo), int(curHi))
		if p.prev != nil {
			p.res.n += p.prev.sumRange(int(prevLo), slots-1)
		}
	case AggFirstSeen:
		curLo, curHi, prevLo := windowSlots(p.hi)
		p.res.n, p.res.found = p.cur.minRange(int(curLo), int(curHi))
		if p.prev != nil {
			if m, ok := p.prev.minRange(int(prevLo), slots-1); ok && (!p.res.found || m < p.res.n) {
				p.res.n, p.res.found = m, true
			}
		}
	case AggDistinct:
		p.res.n = distinctRead(p)
	case AggLast:
		h := int64(st.window)
		for _, e := range [2]*state{p.cur, p.prev} {
			if e == nil {
				continue
			}
			for _, v := range e.last {
				if v.t <= t && v.t > t-h && (!p.res.found || v.newer(p.res.last)) {
					p.res.found, p.res.last = true, v
				}
			}
		}
	}
}

// windowSlots returns the granules of the window ending at granule hi:
// curLo..curHi of the current period, and prevLo..slots-1 of the previous
// one (none when prevLo >= slots).
func windowSlots(hi int64) (curLo, curHi, prevLo int64) {
	curBase := floorDiv(hi, slots) * slots
	lo := hi - (slots - 1)
	return max(lo, curBase) - curBase, hi - curBase, lo - (curBase - slots)
}

func rangeMask(lo, hi int64) uint64 {
	if hi < lo {
		return 0
	}
	return (^uint64(0) >> (63 - uint(hi-lo))) << uint(lo)
}

func distinctRead(p *plan) int64 {
	curLo, curHi, prevLo := windowSlots(p.hi)
	curMask := rangeMask(curLo, curHi)
	var prevMask uint64
	if p.prev != nil {
		prevMask = rangeMask(prevLo, slots-1)
	}
	cur, prev := p.cur, p.prev
	// Exact unless the window reaches granules a period dropped into its
	// sketches, which it does only when it holds more than exactLimit
	// values (bigSet).
	exact := cur.big == nil || cur.big.drop&curMask == 0
	if prev != nil && prev.big != nil && prev.big.drop&prevMask != 0 {
		exact = false
	}
	if exact {
		var n int64
		for h, m := range cur.set {
			if m&curMask != 0 {
				n++
			} else if prev != nil && prev.set[h]&prevMask != 0 {
				n++
			}
		}
		if prev != nil {
			for h, m := range prev.set {
				if _, inCur := cur.set[h]; m&prevMask != 0 && !inCur {
					n++ // members of cur.set were counted above
				}
			}
		}
		return n
	}
	sk := newHLL()
	for _, x := range [2]struct {
		s    *state
		mask uint64
	}{{cur, curMask}, {prev, prevMask}} {
		if x.s == nil {
			continue
		}
		if b := x.s.big; b != nil {
			for d := b.drop & x.mask; d != 0; d &= d - 1 {
				sk.Merge(b.hll[bits.TrailingZeros64(d)]) // nil: nothing seen there
			}
		}
		for h, m := range x.s.set {
			if m&x.mask != 0 {
				sk.InsertHash(h)
			}
		}
	}
	return int64(sk.Estimate())
}

// update adds the event to the plan's current period and, unless the store
// is a scratch store, to the period's delta of this write-back epoch and to
// the event's delta record (w.rec), which the caller writes to the batch.
func (s *Store) update(w *work, p *plan, ev *event.Event, epoch uint64) {
	x, ok := s.operand(w, p, ev)
	if !ok {
		return
	}
	if !s.scratch && x.durableIn(p.curPS) {
		return // memory and disk have it already
	}
	x.addTo(p.cur)
	if s.scratch {
		return
	}
	x.addTo(s.deltaOf(w, p, epoch))
	w.rec = appendField(appendField(w.rec, p.curKey), w.op)
}

// operand returns what ev adds to the plan's state, and its encoding as a
// merge operand in w.op; false when it adds nothing.
func (s *Store) operand(w *work, p *plan, ev *event.Event) (delta, bool) {
	st := s.cat.states[p.si]
	x := delta{agg: st.agg, slot: uint8(p.hi - floorDiv(p.hi, slots)*slots), n: 1, t: ev.OccurredAt.UnixNano()}
	op := w.op[:0]
	switch st.agg {
	case AggCount, AggSeenBefore, AggSum:
		if st.agg == AggSum {
			if x.n = p.sum; x.n == 0 {
				return x, false
			}
		}
		op = append(op, tagCount, x.slot)
		op = appendVarint(op, x.n)
	case AggFirstSeen:
		op = append(op, tagFirst)
		op = appendFirst(op, x.slot, x.t)
	case AggDistinct:
		if !p.hasOf {
			return x, false
		}
		x.h = xxhash.Sum64(p.of)
		op = append(op, tagDistinct)
		op = appendU64(op, x.h)
		op = appendU64(op, 1<<x.slot)
	case AggLast:
		x.v = lastVal{t: x.t}
		if st.lastLoc {
			x.v.lat, x.v.lon = ev.P.CoarseLat, ev.P.CoarseLon
		}
		op = append(op, tagLast)
		op = appendLast(op, x.v)
	}
	w.op = op
	return x, true
}

// delta is one event's addition to one state, as update's operand encodes it.
type delta struct {
	agg  Agg
	slot uint8
	n    int64  // count, sum
	t    int64  // first_seen: the event's time
	h    uint64 // distinct: the value's hash
	v    lastVal
}

// durableIn reports whether adding x to ps would change nothing that can
// be read, in memory or on disk: an exact distinct set that has the value
// in x's granule, a first-seen granule as early as x, a seen-before granule
// that counts an event already. Most events repeat their account's
// device and address, so most such updates are no-ops, and skipping them
// spares a delta, its record and a merge. Only a period with no delta
// waiting for a flush (so that memory is what the disk has, not a delta of
// an event whose commit may still fail) and without a rotation's old-key
// state (which its own key does not hold) qualifies. Called with the
// stripe lock.
func (x *delta) durableIn(ps *periodState) bool {
	if ps == nil || ps.aliased || ps.dirty.Load() != 0 {
		return false
	}
	st := &ps.st
	switch x.agg {
	case AggSeenBefore:
		// Read only as "more than none" in a window: a granule that counts
		// one event already answers every window over it.
		for _, c := range st.cnt {
			if c.slot == x.slot {
				return c.n > 0
			}
		}
	case AggFirstSeen:
		for _, f := range st.first {
			if f.slot == x.slot {
				return f.t <= x.t
			}
		}
	case AggDistinct:
		return st.tag == tagDistinct && st.big == nil && st.set[x.h]&(1<<x.slot) != 0
	}
	return false
}

func (x *delta) addTo(st *state) {
	switch x.agg {
	case AggCount, AggSeenBefore, AggSum:
		st.addCount(x.slot, x.n)
	case AggFirstSeen:
		st.addFirst(x.slot, x.t)
	case AggDistinct:
		st.addDistinct(x.h, 1<<x.slot)
	case AggLast:
		st.addLast(x.v)
	}
}

// Apply reads every applicable feature for ev as of its time, from the
// events applied before it, then adds ev: to memory at once, and as one
// delta record into b (writeback.go), which a flush merges into the state
// keys once b has committed. Concurrent Apply calls on the same keys
// serialize, so each sees the others either wholly or not at all. Call
// Done with the returned Pending once b's commit succeeded or failed (a
// flush waits for it); on error nothing was changed. A scratch store takes
// no batch (b is ignored) and returns a nil Pending: there is no commit to
// wait for.
func (s *Store) Apply(ev *event.Event, b *pebble.Batch) (Vector, *Pending, error) {
	return s.ApplyTo(nil, ev, b)
}

// ApplyTo is Apply writing the vector into dst's storage when it is large
// enough (replays reuse their vectors instead of allocating one an event).
func (s *Store) ApplyTo(dst Vector, ev *event.Event, b *pebble.Batch) (Vector, *Pending, error) {
	return s.apply(dst, ev, b, true)
}

// Add is Apply without the reading: it adds ev and returns no vector, for
// events whose features nobody reads (Ingest). It loads only the current
// period of the states ev counts in, not the previous periods and the
// states a read alone would need.
func (s *Store) Add(ev *event.Event, b *pebble.Batch) (*Pending, error) {
	_, p, err := s.apply(nil, ev, b, false)
	return p, err
}

func (s *Store) apply(dst Vector, ev *event.Event, b *pebble.Batch, read bool) (Vector, *Pending, error) {
	w := workPool.Get().(*work)
	defer workPool.Put(w)
	if err := s.prepare(w, ev, false); err != nil {
		return nil, nil, err
	}
	if err := s.prepareAliases(w, ev); err != nil {
		return nil, nil, err
	}
	w.noRead = !read
	if !read {
		for i := range w.plans {
			w.plans[i].ok = w.plans[i].ok && w.plans[i].counts
		}
	}
	if s.scratch {
		if err := s.scratchOrder(ev.OccurredAt.UnixNano()); err != nil {
			return nil, nil, err
		}
		s.lock(w)
		err := s.loadAll(w, true)
		if err == nil {
			if read {
				s.readAll(w, ev)
			}
			s.updateAll(w, ev, 0)
		}
		s.unlock(w)
		if err != nil || !read {
			return nil, nil, err
		}
		return s.vectorTo(dst, w, ev, false), nil, nil
	}
	if b == nil {
		return nil, nil, errors.New("features: Apply needs a batch")
	}
	if err := s.preload(w); err != nil {
		return nil, nil, err
	}
	if afterPreload != nil {
		afterPreload()
	}
	s.lock(w)
	if err := s.loadAll(w, true); err != nil {
		s.unlock(w)
		return nil, nil, err
	}
	if read {
		s.readAll(w, ev)
	}
	// Only the in-memory update is in the write-back epoch: the reads from
	// Pebble above do not hold up a flush's cut.
	epoch, err := s.wb.enter()
	if err != nil {
		s.unlock(w)
		return nil, nil, err
	}
	pend := &Pending{epoch: epoch}
	w.rec, w.dirty = w.rec[:0], w.dirty[:0]
	s.updateAll(w, ev, epoch)
	s.unlock(w)
	var seq uint64
	if len(w.rec) > 0 {
		seq = s.wb.seq.Add(1)
	}
	s.wb.addDirty(w.dirty)
	s.wb.mu.RUnlock()
	clear(w.dirty) // no references from the pooled work
	if seq != 0 {
		w.key = keys.AppendUint64(append(w.key[:0], keys.FeatureDelta), seq)
		if err := b.Set(w.key, w.rec, nil); err != nil { // the batch copies both
			s.Done(pend, false) // memory is ahead of any disk now
			return nil, nil, fmt.Errorf("features: batch: %w", err)
		}
	}
	if !read {
		return nil, pend, nil
	}
	return s.vectorTo(dst, w, ev, false), pend, nil
}

// readAll reads every applicable plan as of ev's time.
func (s *Store) readAll(w *work, ev *event.Event) {
	t := ev.OccurredAt.UnixNano()
	for i := range w.plans {
		if w.plans[i].ok {
			s.readState(&w.plans[i], t)
		}
	}
}

// updateAll adds ev to every plan that counts it.
func (s *Store) updateAll(w *work, ev *event.Event, epoch uint64) {
	for i := range w.plans {
		if w.plans[i].ok && w.plans[i].counts {
			s.update(w, &w.plans[i], ev, epoch)
		}
	}
}

// readLocked reads w's plans with the stripes locked.
func (s *Store) readLocked(w *work, ev *event.Event) error {
	if !s.scratch {
		if err := s.preload(w); err != nil {
			return err
		}
	}
	s.lock(w)
	defer s.unlock(w)
	if err := s.loadAll(w, false); err != nil {
		return err
	}
	s.readAll(w, ev)
	return nil
}

// Read returns every applicable feature for ev as of its time without
// adding ev (what-if evaluation, backtests).
func (s *Store) Read(ev *event.Event) (Vector, error) {
	w := workPool.Get().(*work)
	defer workPool.Put(w)
	if err := s.prepare(w, ev, false); err != nil {
		return nil, err
	}
	if err := s.prepareAliases(w, ev); err != nil {
		return nil, err
	}
	if err := s.readLocked(w, ev); err != nil {
		return nil, err
	}
	return s.vector(w, ev, false), nil
}

func (s *Store) vector(w *work, ev *event.Event, show bool) Vector {
	return s.vectorTo(nil, w, ev, show)
}

func (s *Store) vectorTo(dst Vector, w *work, ev *event.Event, show bool) Vector {
	out := dst[:0]
	if cap(out) < len(s.cat.defs) {
		out = make(Vector, len(s.cat.defs))
	} else {
		out = out[:len(s.cat.defs)]
		clear(out)
	}
	t := ev.OccurredAt.UnixNano()
	for i := range s.cat.defs {
		d := &s.cat.defs[i]
		if d.state < 0 {
			if show {
				continue
			}
			out[i] = s.listCount(w, d, ev)
			continue
		}
		p := &w.plans[d.state]
		if !p.ok {
			continue
		}
		switch d.Agg {
		case AggCount, AggSum, AggDistinct:
			out[i] = IntValue(p.res.n)
		case AggSeenBefore:
			out[i] = BoolValue(p.res.n > 0)
		case AggFirstSeen:
			// p.res.n is the earliest time; a late event in the read's own
			// granule may be after t, hence max.
			if !p.res.found {
				out[i] = Absent(KindFloat)
			} else {
				out[i] = FloatValue(float64(max(t-p.res.n, 0)) / 1e9)
			}
		case AggLast:
			if !p.res.found {
				out[i] = Absent(KindFloat)
				continue
			}
			secs := float64(t-p.res.last.t) / 1e9
			switch d.Derive {
			case DeriveSecondsSince:
				out[i] = FloatValue(secs)
			case DeriveKM, DeriveKMH:
				if show {
					out[i] = Absent(KindFloat)
					continue
				}
				km := haversineKM(p.res.last.lat, p.res.last.lon, ev.P.CoarseLat, ev.P.CoarseLon)
				if d.Derive == DeriveKM {
					out[i] = FloatValue(km)
				} else {
					out[i] = FloatValue(km / (max(secs, 1) / 3600))
				}
			}
		}
	}
	return out
}

func (s *Store) listCount(w *work, d *Def, ev *event.Event) Value {
	if len(d.AppliesTo) > 0 && !slices.Contains(d.AppliesTo, ev.Type) {
		return Value{}
	}
	if ok, err := s.filterTrue(w, ev, d.filter); err != nil || !ok {
		return Value{}
	}
	if s.lists == nil {
		return IntValue(0)
	}
	var vals []string
	if len(d.Of) == 1 { // the usual case: the event's own slice, not a copy
		vals = listFields[d.Of[0]].get(ev)
	} else {
		for _, f := range d.Of {
			vals = append(vals, listFields[f].get(ev)...)
		}
	}
	return IntValue(int64(s.lists.CountMembers(d.List, vals)))
}

// haversineKM is the great-circle distance in km on a sphere of the Earth's
// mean radius.
func haversineKM(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Shown is one feature's current value for an identifier (Show).
type Shown struct {
	Name  string
	Key   []string
	Value Value
	// LastAt is the time of the latest value of a last feature.
	LastAt time.Time
}

// Show returns the current value (as of the clock's now) of every stateful
// feature whose key fields are all set in p, ignoring the features' type and
// where filters: the state as it stands. Distances and speeds need an event
// and are absent; their LastAt says when the last location was seen.
func (s *Store) Show(p event.Pseudonyms) ([]Shown, error) {
	ev := &event.Event{P: p, OccurredAt: s.clock.Now()}
	w := workPool.Get().(*work)
	defer workPool.Put(w)
	// Location-keyed and location-valued states cannot be shown without an
	// event's coordinates; they come out not applicable.
	if err := s.prepare(w, ev, true); err != nil {
		return nil, err
	}
	if err := s.readLocked(w, ev); err != nil {
		return nil, err
	}
	vec := s.vector(w, ev, true)
	var out []Shown
	for i, d := range s.cat.defs {
		if d.state < 0 || !vec[i].Applicable {
			continue
		}
		sh := Shown{Name: d.Name, Key: d.Key, Value: vec[i]}
		if p := &w.plans[d.state]; d.Agg == AggLast && p.res.found {
			sh.LastAt = time.Unix(0, p.res.last.t).UTC()
		}
		out = append(out, sh)
	}
	return out, nil
}
