package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/keys"
)

// The idempotency filter. Nearly every event id Evaluate and Ingest see is
// new, and proving it took a point read that misses: a search of every
// memtable and a bloom probe per level, about a tenth of an evaluation's
// CPU when the feature state is in memory. seenFilter answers most of those
// from memory: a bloom filter over every idempotency key in the store, so
// that "not in the filter" means "never recorded" and the read is skipped;
// "maybe" (a recorded id, or a false positive) reads as before.
//
// What makes "not in the filter" true:
//
//   - Keys already in the store when a build starts are read from a
//     point-in-time iterator over keys.EventSeen.
//   - Keys committed after that point are added by the committer, before
//     the group commit that writes them (commitReq.seen): while a build
//     runs, into its buffer (the filter is not sized yet), then into it.
//   - All builds, the first at Open included, start between two group
//     commits in the committer goroutine (or before it runs), so every key
//     is in the iterator or goes through the committer afterwards.
//   - Until the first build completes there is no filter, and every lookup
//     reads. Retention and erasure delete keys that the filter keeps: those
//     are false positives, which read.
//
// The filter is in memory only: a restart builds it again. It grows with
// the keys added; once full, the committer starts a new build, which also
// forgets deleted keys. A store with more idempotency keys than
// Options.IdempotencyFilterKeys has no filter (it would cost more memory
// than it is worth), and every new id reads as before.

// Filter sizing.
const (
	seenBitsPerKey = 16      // false positives ≈ 0.1% when full
	seenMinKeys    = 1 << 20 // the smallest filter: 2 MiB
	seenBlockBits  = 512     // one cache line of 64 bytes: a probe touches one line
	seenProbes     = 6
)

// seenBloom is a blocked bloom filter safe for concurrent adds and probes
// (atomic words; no lock on the lookup path).
type seenBloom struct {
	words    []atomic.Uint64
	blocks   uint64
	capacity int // keys it was sized for
	added    atomic.Int64
}

func newSeenBloom(capacity int) *seenBloom {
	blocks := uint64((capacity*seenBitsPerKey + seenBlockBits - 1) / seenBlockBits)
	return &seenBloom{words: make([]atomic.Uint64, blocks*seenBlockBits/64), blocks: blocks, capacity: capacity}
}

// probe returns the first word of k's block and the bits to test within it.
func (f *seenBloom) probe(k []byte) (base uint64, h2 uint64) {
	h := xxhash.Sum64(k)
	base = (h >> 32) * f.blocks >> 32 * (seenBlockBits / 64)
	return base, h * 0x9e3779b97f4a7c15
}

func (f *seenBloom) add(k []byte) {
	base, h2 := f.probe(k)
	for i := 0; i < seenProbes; i++ {
		bit := h2 >> (9 * i) & (seenBlockBits - 1)
		f.words[base+bit/64].Or(1 << (bit % 64))
	}
	f.added.Add(1)
}

func (f *seenBloom) mayContain(k []byte) bool {
	base, h2 := f.probe(k)
	for i := 0; i < seenProbes; i++ {
		bit := h2 >> (9 * i) & (seenBlockBits - 1)
		if f.words[base+bit/64].Load()&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *seenBloom) bytes() int { return len(f.words) * 8 }

// seenBuild is a build under way: keys committed since its iterator was
// opened wait in buf until the filter exists, then go into it.
type seenBuild struct {
	mu  sync.Mutex
	buf [][]byte   // guarded by mu
	f   *seenBloom // guarded by mu; set once sized
}

type seenFilter struct {
	db      *pebble.DB
	log     *slog.Logger
	maxKeys int          // more live keys than this: no filter
	minKeys int          // the smallest filter's capacity: seenMinKeys but in tests
	builds  atomic.Int64 // completed, for tests

	cur   atomic.Pointer[seenBloom] // nil: no filter, every lookup reads
	build atomic.Pointer[seenBuild] // nil: no build under way

	// adds counts the keys added since the last build started; only the
	// committer goroutine (or Open, before it runs) uses it.
	adds int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newSeenFilter starts the first build. maxKeys < 0 disables the filter
// (nil); minKeys 0 means seenMinKeys. Call before the committer runs.
func newSeenFilter(db *pebble.DB, log *slog.Logger, maxKeys, minKeys int) *seenFilter {
	if maxKeys < 0 {
		return nil
	}
	if minKeys <= 0 {
		minKeys = seenMinKeys
	}
	f := &seenFilter{db: db, log: log, maxKeys: maxKeys, minKeys: minKeys}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.startBuild()
	return f
}

// mayContain reports whether key may be recorded; false only when it
// certainly is not.
func (f *seenFilter) mayContain(key []byte) bool {
	if f == nil {
		return true
	}
	cur := f.cur.Load()
	return cur == nil || cur.mayContain(key)
}

// add records keys about to be committed. Only the committer calls it,
// before the commit.
func (f *seenFilter) add(keys [][]byte) {
	if f == nil || len(keys) == 0 {
		return
	}
	// build before cur: a build that completes swaps cur before it clears
	// build, so seeing no build means seeing its filter as cur.
	b := f.build.Load()
	cur := f.cur.Load()
	if b != nil {
		b.mu.Lock()
		if b.f == nil {
			for _, k := range keys {
				b.buf = append(b.buf, append([]byte(nil), k...))
			}
		}
		nf := b.f
		b.mu.Unlock()
		if nf != nil && nf != cur {
			for _, k := range keys {
				nf.add(k)
			}
		}
	}
	if cur != nil {
		for _, k := range keys {
			cur.add(k)
		}
	}
	f.adds += len(keys)
}

// maybeRebuild starts a build once the filter holds the keys it was sized
// for, or, when there is none (the last build failed or found too many
// keys), after as many adds as it may cover. Only the committer calls it,
// between group commits.
func (f *seenFilter) maybeRebuild() {
	if f == nil || f.build.Load() != nil || f.ctx.Err() != nil {
		return
	}
	if cur := f.cur.Load(); cur != nil && cur.added.Load() < int64(cur.capacity) || cur == nil && f.adds < max(f.maxKeys, f.minKeys) {
		return
	}
	f.startBuild()
}

// startBuild opens the iterator (the point after which keys come from the
// committer) and scans it in the background.
func (f *seenFilter) startBuild() {
	b := &seenBuild{}
	f.build.Store(b)
	f.adds = 0
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.EventSeen}, UpperBound: []byte{keys.EventSeen + 1}})
	if err != nil {
		f.log.Warn("idempotency filter: build failed; lookups read the store", "err", err)
		f.fail(b)
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.scan(b, it)
	}()
}

// fail ends build b without a filter: lookups read until a later build
// (maybeRebuild) succeeds.
func (f *seenFilter) fail(b *seenBuild) {
	f.cur.Store(nil)
	f.build.CompareAndSwap(b, nil)
}

func (f *seenFilter) scan(b *seenBuild, it *pebble.Iterator) {
	start := time.Now()
	n, err := f.count(it)
	if err == nil && n <= f.maxKeys {
		b.mu.Lock()
		n += len(b.buf)
		b.mu.Unlock()
	}
	switch {
	case err != nil:
		_ = it.Close()
		if !errors.Is(err, context.Canceled) {
			f.log.Warn("idempotency filter: build failed; lookups read the store", "err", err)
		}
		f.fail(b)
		return
	case n > f.maxKeys:
		_ = it.Close()
		f.log.Info("idempotency filter: more keys than it may cover; lookups read the store", "keys_over", f.maxKeys)
		f.fail(b)
		return
	}
	nf := newSeenBloom(max(2*n, f.minKeys))
	for ok := it.First(); ok && f.ctx.Err() == nil; ok = it.Next() {
		nf.add(it.Key())
	}
	if err := errors.Join(it.Error(), it.Close(), f.ctx.Err()); err != nil {
		if !errors.Is(err, context.Canceled) {
			f.log.Warn("idempotency filter: build failed; lookups read the store", "err", err)
		}
		f.fail(b)
		return
	}
	b.mu.Lock()
	for _, k := range b.buf {
		nf.add(k)
	}
	b.buf, b.f = nil, nf
	b.mu.Unlock()
	// From here on the committer adds to nf (through b, then as cur).
	f.cur.Store(nf)
	f.build.Store(nil)
	f.builds.Add(1)
	f.log.Info("idempotency filter: built", "keys", nf.added.Load(), "bytes", nf.bytes(), "took", time.Since(start))
}

// count counts the keys under the iterator, giving up past maxKeys.
func (f *seenFilter) count(it *pebble.Iterator) (int, error) {
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
		if n > f.maxKeys {
			return n, nil
		}
		if n%65536 == 0 && f.ctx.Err() != nil {
			return n, f.ctx.Err()
		}
	}
	return n, it.Error()
}

// close stops a build under way. Call after the committer has stopped.
func (f *seenFilter) close() {
	if f == nil {
		return
	}
	f.cancel()
	f.wg.Wait()
}
