package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/keys"
)

// Write-back.
//
// Apply changes state in memory and writes one delta record per event into
// the caller's batch (keys.FeatureDelta | sequence: every (state key,
// operand) the event adds), instead of a merge operand per state: the batch
// that makes the event durable makes its feature deltas durable with it, at
// the cost of one memtable insert instead of 9-14. Each period in memory
// also accumulates its deltas since the last flush, per epoch. A flush
// (Flush, or the background flusher every Options.FlushInterval) cuts the
// epoch, waits until every Apply of the closed epoch has settled (Done),
// and writes each period's accumulated delta as one merge operand, with a
// range deletion of the delta records of the closed epochs, in one batch.
// Hot state thus costs one operand per flush rather than one per event.
//
// Exactly once, across crashes: a delta record and the operands a flush
// derives from it never both survive (the flush batch deletes the records
// it covers, atomically), and Open merges the surviving records before
// anything reads state. A flush covers only committed events: it waits for
// its epoch's Applies to settle, and Applies of the next epoch go into the
// other delta slot. A period holding a delta no flush has committed is
// pinned in memory (the cache never drops it, so it is never reloaded from
// a disk that lacks the delta).
//
// A failed commit (Done(p, false)) leaves memory holding a delta that is
// not on disk. Apply then fails with ErrRebuilding; the next Flush waits for
// the Applies in flight to settle, forgets everything in memory, and merges
// the delta records on disk (those of committed events only), after which
// the store works again.

// ErrRebuilding is returned by Apply after a failed commit, until a Flush
// has rebuilt the store's memory from the disk.
var ErrRebuilding = errors.New("features: rebuilding state after a failed commit")

// writeBack is a Store's write-back bookkeeping.
type writeBack struct {
	// mu orders Applies' in-memory updates (read-locked from their epoch
	// to their delta record's sequence, after their stripe locks and their
	// reads) against a flush's cut and a rebuild (locked, holding no
	// stripe lock).
	mu       sync.RWMutex
	epoch    uint64            // guarded by mu
	inflight [2]sync.WaitGroup // Applies of the epochs of each parity not yet Done
	seq      atomic.Uint64     // the latest delta record's sequence
	dirtyMu  sync.Mutex        // guards dirty
	dirty    []dirtySlot       // the delta slots of the current epoch
	spare    []dirtySlot       // guarded by flushMu: the last flush's slots, emptied, for the next epoch
	maxDirty int
	failed   atomic.Bool
	flushMu  sync.Mutex // one flush or rebuild at a time
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	// statistics (Stats)
	flushes, merged, rebuilds atomic.Int64
	flushNanos                atomic.Int64
}

// dirtySlot is a period's delta of one epoch, for the flush that takes it.
type dirtySlot struct {
	e  *entry
	ps *periodState
	h  uint64
	si int
}

var deltaPool = sync.Pool{New: func() any { return new(state) }}

func (s *Store) openWriteBack(opts Options) error {
	if err := s.mergeDeltaLog(); err != nil {
		return err
	}
	s.wb.epoch = 1
	s.wb.maxDirty = opts.MaxDirty
	if s.wb.maxDirty <= 0 {
		s.wb.maxDirty = max(opts.CacheEntries/2, 1)
	}
	s.wb.kick = make(chan struct{}, 1)
	if opts.FlushInterval > 0 {
		s.wb.stop, s.wb.done = make(chan struct{}), make(chan struct{})
		go s.flushLoop(opts.FlushInterval)
	}
	return nil
}

func (s *Store) flushLoop(every time.Duration) {
	defer close(s.wb.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.wb.stop:
			return
		case <-t.C:
		case <-s.wb.kick:
		}
		// A failed flush leaves its deltas where they were (in memory and
		// in the records); the next one retries.
		_ = s.Flush()
	}
}

// Close stops the background flusher and flushes what is left. The DB must
// stay open until it returns.
func (s *Store) Close() error {
	if s.scratch {
		return nil
	}
	s.wb.stopOnce.Do(func() {
		if s.wb.stop != nil {
			close(s.wb.stop)
			<-s.wb.done
		}
	})
	return s.Flush()
}

// fail marks memory as ahead of the disk after a failed commit.
func (wb *writeBack) fail() {
	wb.failed.Store(true)
	select {
	case wb.kick <- struct{}{}:
	default:
	}
}

// enter starts an Apply's update: it read-locks wb.mu, counts the Apply in
// flight and returns its epoch. It fails while the store waits to be
// rebuilt, so that the Applies in flight drain.
func (wb *writeBack) enter() (uint64, error) {
	wb.mu.RLock()
	if wb.failed.Load() {
		wb.mu.RUnlock()
		return 0, ErrRebuilding
	}
	e := wb.epoch
	wb.inflight[e&1].Add(1)
	return e, nil
}

// deltaOf returns the plan's current period's delta for epoch, creating it
// (and pinning the entry) on the epoch's first write to the period. Called
// with the entity's stripe lock and wb.mu read-locked.
func (s *Store) deltaOf(w *work, p *plan, epoch uint64) *state {
	ps := p.curPS
	if d := ps.delta[epoch&1]; d != nil {
		return d
	}
	d := deltaPool.Get().(*state)
	ps.delta[epoch&1] = d
	ps.dirty.Add(1)
	s.cache.pin(p.h, p.e)
	w.dirty = append(w.dirty, dirtySlot{e: p.e, ps: ps, h: p.h, si: p.si})
	return d
}

// addDirty hands the slots an Apply created to the epoch's flush, and
// starts one early past Options.MaxDirty. Called with wb.mu read-locked.
func (wb *writeBack) addDirty(slots []dirtySlot) {
	if len(slots) == 0 {
		return
	}
	wb.dirtyMu.Lock()
	wb.dirty = append(wb.dirty, slots...)
	n := len(wb.dirty)
	wb.dirtyMu.Unlock()
	if n >= wb.maxDirty {
		select {
		case wb.kick <- struct{}{}:
		default:
		}
	}
}

// deltaKey is the key of delta record seq.
func deltaKey(seq uint64) []byte {
	return keys.AppendUint64([]byte{keys.FeatureDelta}, seq)
}

// Flush merges the deltas of every event applied so far into the state
// keys (see Write-back above), once those events' commits are settled; or,
// after a failed commit, rebuilds memory from the disk. Safe to call
// concurrently with Apply; a scratch store has nothing to flush.
func (s *Store) Flush() error {
	if s.scratch {
		return nil
	}
	s.wb.flushMu.Lock()
	defer s.wb.flushMu.Unlock()
	start := time.Now()
	merged0 := s.wb.merged.Load()
	err := s.flushLocked()
	took := time.Since(start)
	s.wb.flushNanos.Add(int64(took))
	// To line slow answers up with the flushes (BenchmarkEvaluateOpenLoop's
	// ENGINE_BENCH_WINDOWS).
	s.log.Debug("feature state flushed", "began", start, "took", took, "merged", s.wb.merged.Load()-merged0, "err", err)
	return err
}

// flushLocked is Flush with wb.flushMu held.
func (s *Store) flushLocked() error {
	wb := &s.wb
	if wb.failed.Load() {
		return s.rebuild()
	}
	// The cut: Applies of epoch f are in memory, with records below end.
	wb.mu.Lock()
	f := wb.epoch
	wb.epoch++
	end := wb.seq.Load() + 1
	wb.dirtyMu.Lock()
	slots := wb.dirty
	wb.dirty, wb.spare = wb.spare, nil // growing a new one each second cost a kilobyte an event
	wb.dirtyMu.Unlock()
	wb.mu.Unlock()
	wb.inflight[f&1].Wait()
	if wb.failed.Load() {
		return s.rebuild()
	}
	if len(slots) == 0 { // no Apply wrote in epoch f, so no record is left
		wb.spare = slots
		return nil
	}
	merged, err := s.mergeSlots(f, end, slots)
	if err != nil {
		// The deltas taken out of memory are in the records still: a
		// rebuild merges them.
		wb.fail()
		return fmt.Errorf("features: flush: %w", err)
	}
	s.diskGen.Add(1) // before any period written can leave memory
	for _, x := range slots {
		x.ps.dirty.Add(-1)
		s.cache.release(x.h, x.e)
	}
	clear(slots) // no references from the spare
	wb.spare = slots[:0]
	wb.flushes.Add(1)
	wb.merged.Add(int64(merged))
	return nil
}

// flushPart bounds the merges one batch of a flush carries: Pebble
// publishes commits in order, so every commit behind a batch waits while
// its operands go into the memtable (about a microsecond each).
var flushPart = 1024

// flushYield is how many deltas a flush merges between yields of its P.
// In-process at 2,000 evaluations/s (three alternating runs, each answer
// timed against the flush windows), yielding every 16 took the p90 of the
// answers that met a flush from 10-52 ms to 7-13 ms, and the p99.9 of all
// answers from 35-64 ms to 20-33 ms; BenchmarkEvaluateOpenLoop's noisier
// runs could not tell the two apart. A yield costs a fraction of a
// microsecond.
const flushYield = 16

// afterFlushPart, when set (by tests), runs after each committed part but
// the last; an error stops the flush there, as a crash would.
var afterFlushPart func(part uint64) error

// mergeSlots writes epoch f's deltas as merge operands, in batches of at
// most flushPart, and deletes the delta records below end with the last.
// Each earlier batch also writes a marker (keys.FeatureFlush) naming the
// state keys it merged, so that after a crash between batches
// mergeDeltaLog merges each delta exactly once; the last batch deletes the
// markers too.
func (s *Store) mergeSlots(f, end uint64, slots []dirtySlot) (merged int, err error) {
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	var key, val []byte
	marker := keys.AppendUint64(nil, end)
	parts, inBatch := uint64(0), 0
	for i, x := range slots {
		// No stripe lock (see periodState): a flush that waited for one
		// behind Applies holding a dozen stripes while they read Pebble
		// stalled evaluations for tens of milliseconds.
		d := x.ps.delta[f&1]
		x.ps.delta[f&1] = nil
		if val, err = d.encode(val[:0]); err != nil {
			return merged, err
		}
		putDelta(d)
		if i%flushYield == flushYield-1 {
			// A flush runs for tens of milliseconds. Without a yield, the
			// evaluations' goroutines queued on its P wait until the
			// scheduler preempts it (10 ms) or another P steals them.
			runtime.Gosched()
		}
		if len(val) == 0 { // erased since
			continue
		}
		key = appendStateKey(key[:0], s.cat.states[x.si].id, x.ps.p, x.e.ent)
		if err := b.Merge(key, val, nil); err != nil {
			return merged, err
		}
		merged++
		marker = appendField(marker, key)
		if inBatch++; inBatch == flushPart && i < len(slots)-1 {
			if err := b.Set(flushMarker(f, parts), marker, nil); err != nil {
				return merged, err
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				return merged, err
			}
			if afterFlushPart != nil {
				if err := afterFlushPart(parts); err != nil {
					return merged, err
				}
			}
			b.Reset()
			parts, inBatch, marker = parts+1, 0, marker[:8]
		}
	}
	if err := b.DeleteRange(deltaKey(0), deltaKey(end), nil); err != nil {
		return merged, err
	}
	if parts > 0 {
		if err := b.DeleteRange(flushMarker(f, 0), flushMarker(f+1, 0), nil); err != nil {
			return merged, err
		}
	}
	return merged, b.Commit(pebble.NoSync)
}

// flushMarker is the key of part n of flush f.
func flushMarker(f, n uint64) []byte {
	return keys.AppendUint64(keys.AppendUint64([]byte{keys.FeatureFlush}, f), n)
}

// putDelta returns a flushed delta to the pool, keeping its storage; a
// distinct delta's set only when small (one past the exact limit is large).
func putDelta(d *state) {
	set := d.set
	if len(set) > 64 {
		set = nil
	}
	clear(set)
	*d = state{cnt: d.cnt[:0], first: d.first[:0], last: d.last[:0], set: set}
	deltaPool.Put(d)
}

// rebuild forgets memory and merges the delta records on disk, after a
// failed commit. Called with flushMu held and failed set.
func (s *Store) rebuild() error {
	wb := &s.wb
	// Every Apply that counted itself in flight did so before this barrier;
	// every later one sees failed and changes nothing.
	wb.mu.Lock()
	wb.mu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	wb.inflight[0].Wait()
	wb.inflight[1].Wait()
	if err := s.mergeDeltaLog(); err != nil {
		return err
	}
	// Under every stripe lock, so that no read still loading state from
	// before the merge puts it back afterwards.
	for i := range s.locks {
		s.locks[i].Lock()
	}
	wb.dirtyMu.Lock()
	wb.dirty = nil
	wb.dirtyMu.Unlock()
	s.cache.clear()
	s.diskGen.Add(1)
	for i := range s.locks {
		s.locks[i].Unlock()
	}
	wb.mu.Lock()
	wb.epoch++
	wb.failed.Store(false)
	wb.mu.Unlock()
	wb.rebuilds.Add(1)
	return nil
}

// mergeDeltaLog merges every delta record on disk into the state keys and
// deletes the records, in one batch. A flush that a crash interrupted
// between its batches left markers: an operand of a record below a
// marker's end on a key the marker names is merged already.
func (s *Store) mergeDeltaLog() error {
	merged, err := s.flushMarkers()
	if err != nil {
		return err
	}
	lo, hi := []byte{keys.FeatureDelta}, []byte{keys.FeatureDelta + 1}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("features: delta log: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err == nil && len(k) != 9 {
			err = errCorrupt
		}
		if err == nil {
			seq := binary.BigEndian.Uint64(k[1:])
			err = mergeRecord(b, v, func(key []byte) bool { end, ok := merged[string(key)]; return ok && seq < end })
		}
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("features: delta record %x: %w", k, err)
		}
		n++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("features: delta log: %w", err)
	}
	if n == 0 && len(merged) == 0 {
		return nil
	}
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return fmt.Errorf("features: delta log: %w", err)
	}
	if err := b.DeleteRange([]byte{keys.FeatureFlush}, []byte{keys.FeatureFlush + 1}, nil); err != nil {
		return fmt.Errorf("features: delta log: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("features: delta log: %w", err)
	}
	return nil
}

// flushMarkers reads the markers of an interrupted flush: state key -> the
// end of the records whose operands on it were merged.
func (s *Store) flushMarkers() (map[string]uint64, error) {
	merged := map[string]uint64{}
	err := scanPrefix(s.db, keys.FeatureFlush, func(k, v []byte) error {
		if len(v) < 8 {
			return fmt.Errorf("features: flush marker %x: %w", k, errCorrupt)
		}
		end, rest := binary.BigEndian.Uint64(v), v[8:]
		for len(rest) > 0 {
			key, r, ok := cutField(rest)
			if !ok {
				return fmt.Errorf("features: flush marker %x: %w", k, errCorrupt)
			}
			merged[string(key)] = max(merged[string(key)], end)
			rest = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("features: flush markers: %w", err)
	}
	return merged, nil
}

// mergeRecord adds a delta record's operands to b as merges, but for the
// keys skip names.
func mergeRecord(b *pebble.Batch, rec []byte, skip func(key []byte) bool) error {
	for len(rec) > 0 {
		key, rest, ok := cutField(rec)
		if !ok {
			return errCorrupt
		}
		if _, _, _, ok := parseStateKey(key); !ok {
			return errCorrupt
		}
		op, rest, ok := cutField(rest)
		if !ok || len(op) == 0 {
			return errCorrupt
		}
		if !skip(key) {
			if err := b.Merge(key, op, nil); err != nil {
				return err
			}
		}
		rec = rest
	}
	return nil
}

// cutField splits a uvarint-length-prefixed field off b.
func cutField(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// scanPrefix calls fn with every key under prefix and its value.
func scanPrefix(db *pebble.DB, prefix byte, fn func(k, v []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// appendField appends a uvarint-length-prefixed field (cutField's inverse).
func appendField(dst, f []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(f))), f...)
}

// Stats are a Store's counters, for metrics.
type Stats struct {
	// PeriodHits and PeriodLoads count the periods reads and Applies found
	// in memory and those they read from Pebble.
	PeriodHits, PeriodLoads int64
	// Flushes and DeltasMerged count the write-back flushes and the merge
	// operands they wrote; DeltasWaiting is the deltas of the current epoch
	// (pinned in memory until a flush); Rebuilds counts the rebuilds after
	// failed commits.
	Flushes, DeltasMerged, Rebuilds int64
	DeltasWaiting                   int
	// FlushTime is the time flushes and rebuilds took, in all: an
	// evaluation that meets one waits longer (for the CPU, and for the
	// commits of its parts), so its share of the wall clock bounds how
	// many answers a flush can slow.
	FlushTime time.Duration
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{PeriodHits: s.hits.Load(), PeriodLoads: s.loads.Load()}
	if s.scratch {
		return st
	}
	s.wb.dirtyMu.Lock()
	st.DeltasWaiting = len(s.wb.dirty)
	s.wb.dirtyMu.Unlock()
	st.Flushes, st.DeltasMerged, st.Rebuilds = s.wb.flushes.Load(), s.wb.merged.Load(), s.wb.rebuilds.Load()
	st.FlushTime = time.Duration(s.wb.flushNanos.Load())
	return st
}
