package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/axiomhq/hyperloglog"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/riskd/riskd/internal/keys"
)

// slots is the number of granules in a window (and in a period).
const slots = 60

// ExactDistinctLimit is the number of distinct values a distinct state keeps
// exactly per key and period; past it the state becomes per-granule
// HyperLogLog sketches (precision 14: standard error 0.81%, documented bound 2%).
const ExactDistinctLimit = 1024

// lastKeep is how many of the latest values a last state keeps per period,
// so that a late event still finds its own predecessor among them.
const lastKeep = 8

// Encoded state tags (first byte of every stored value and operand).
const (
	tagCount    byte = 1 // (slot byte, zigzag varint n)*
	tagDistinct byte = 2 // (hash u64, slot mask u64)*, sorted by hash
	tagHLL      byte = 3 // (slot byte, uvarint len, sketch)*
	tagLast     byte = 4 // (time i64, lat f64, lon f64)*, newest first
	tagFirst    byte = 5 // (slot byte, time i64)*, sorted by slot: the slot's earliest event
)

var errCorrupt = errors.New("features: corrupt state")

type slotCount struct {
	slot uint8
	n    int64
}

// slotTime is a first_seen granule: the earliest event time (unix ns)
// applied to it.
type slotTime struct {
	slot uint8
	t    int64
}

type lastVal struct {
	t        int64
	lat, lon float64
}

// newer orders last values: later time first, then larger coordinates, so
// that the choice among equal times does not depend on arrival order.
func (a lastVal) newer(b lastVal) bool {
	if a.t != b.t {
		return a.t > b.t
	}
	if a.lat != b.lat {
		return a.lat > b.lat
	}
	return a.lon > b.lon
}

// state is the decoded value of one (state, period, entity) key. Exactly one
// representation is in use, named by tag; tag 0 is the empty state.
type state struct {
	tag   byte
	cnt   []slotCount       // tagCount, sorted by slot
	set   map[uint64]uint64 // tagDistinct: value hash -> mask of slots it was seen in
	hll   *[slots]*hyperloglog.Sketch
	last  []lastVal  // tagLast, newest first, at most lastKeep
	first []slotTime // tagFirst, sorted by slot
}

func (s *state) addCount(slot uint8, n int64) {
	s.tag = tagCount
	i := sort.Search(len(s.cnt), func(i int) bool { return s.cnt[i].slot >= slot })
	if i < len(s.cnt) && s.cnt[i].slot == slot {
		s.cnt[i].n += n
		return
	}
	s.cnt = slices.Insert(s.cnt, i, slotCount{slot, n})
}

// sumRange sums the counts of slots lo..hi (inclusive).
func (s *state) sumRange(lo, hi int) int64 {
	var t int64
	for _, c := range s.cnt {
		if int(c.slot) >= lo && int(c.slot) <= hi {
			t += c.n
		}
	}
	return t
}

// addFirst lowers slot's earliest time to t. A minimum is commutative,
// associative and idempotent, so operands may merge in any order.
func (s *state) addFirst(slot uint8, t int64) {
	s.tag = tagFirst
	i := sort.Search(len(s.first), func(i int) bool { return s.first[i].slot >= slot })
	if i < len(s.first) && s.first[i].slot == slot {
		s.first[i].t = min(s.first[i].t, t)
		return
	}
	s.first = slices.Insert(s.first, i, slotTime{slot, t})
}

// minRange returns the earliest time of slots lo..hi (inclusive), and
// whether any of them holds one.
func (s *state) minRange(lo, hi int) (int64, bool) {
	var m int64
	found := false
	for _, f := range s.first {
		if int(f.slot) >= lo && int(f.slot) <= hi && (!found || f.t < m) {
			m, found = f.t, true
		}
	}
	return m, found
}

func (s *state) addDistinct(h, mask uint64) {
	switch s.tag {
	case tagHLL:
		s.hllInsert(h, mask)
		return
	case 0:
		s.tag = tagDistinct
	}
	if s.set == nil {
		s.set = make(map[uint64]uint64, 4)
	}
	s.set[h] |= mask
	if len(s.set) > ExactDistinctLimit {
		s.toHLL()
	}
}

func (s *state) hllInsert(h, mask uint64) {
	for mask != 0 {
		slot := bitsTrailing(mask)
		mask &^= 1 << slot
		sk := s.hll[slot]
		if sk == nil {
			sk = hyperloglog.New14()
			s.hll[slot] = sk
		}
		sk.InsertHash(h)
	}
}

func (s *state) toHLL() {
	s.tag = tagHLL
	s.hll = new([slots]*hyperloglog.Sketch)
	for h, m := range s.set {
		s.hllInsert(h, m)
	}
	s.set = nil
}

func (s *state) addLast(v lastVal) {
	s.tag = tagLast
	for _, x := range s.last {
		if x == v {
			return
		}
	}
	i := 0
	for i < len(s.last) && s.last[i].newer(v) {
		i++
	}
	if i >= lastKeep {
		return
	}
	if len(s.last) == lastKeep { // full: shift in place rather than grow
		copy(s.last[i+1:], s.last[i:lastKeep-1])
		s.last[i] = v
		return
	}
	s.last = slices.Insert(s.last, i, v)
}

// merge adds the encoded state or operand b. Merging is commutative and
// associative, so pebble may combine operands in any grouping and the
// engine's committer may commit events in any order.
func (s *state) merge(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	tag, b := b[0], b[1:]
	if s.tag != 0 && s.tag != tag && !(isDistinct(s.tag) && isDistinct(tag)) {
		return fmt.Errorf("%w: merging tag %d into %d", errCorrupt, tag, s.tag)
	}
	switch tag {
	case tagCount:
		for len(b) > 0 {
			slot := b[0]
			n, k := binary.Varint(b[1:])
			if k <= 0 || slot >= slots {
				return errCorrupt
			}
			s.addCount(slot, n)
			b = b[1+k:]
		}
		if s.tag == 0 {
			s.tag = tagCount
		}
	case tagDistinct:
		if len(b)%16 != 0 {
			return errCorrupt
		}
		if s.tag == 0 {
			s.tag = tagDistinct
		}
		for ; len(b) > 0; b = b[16:] {
			m := binary.BigEndian.Uint64(b[8:])
			if m>>slots != 0 {
				return errCorrupt
			}
			s.addDistinct(binary.BigEndian.Uint64(b), m)
		}
	case tagHLL:
		if s.tag != tagHLL {
			if s.tag == 0 {
				s.set = nil
			}
			s.toHLL()
		}
		for len(b) > 0 {
			slot := b[0]
			n, k := binary.Uvarint(b[1:])
			if k <= 0 || slot >= slots || uint64(len(b)-1-k) < n {
				return errCorrupt
			}
			sk := hyperloglog.New14()
			if err := sk.UnmarshalBinary(b[1+k : 1+k+int(n)]); err != nil {
				return fmt.Errorf("%w: %v", errCorrupt, err)
			}
			if s.hll[slot] == nil {
				s.hll[slot] = sk
			} else if err := s.hll[slot].Merge(sk); err != nil {
				return fmt.Errorf("%w: %v", errCorrupt, err)
			}
			b = b[1+k+int(n):]
		}
	case tagFirst:
		if len(b)%9 != 0 {
			return errCorrupt
		}
		for ; len(b) > 0; b = b[9:] {
			if b[0] >= slots {
				return errCorrupt
			}
			s.addFirst(b[0], int64(binary.BigEndian.Uint64(b[1:])))
		}
		if s.tag == 0 {
			s.tag = tagFirst
		}
	case tagLast:
		if len(b)%24 != 0 {
			return errCorrupt
		}
		if s.tag == 0 {
			s.tag = tagLast
		}
		for ; len(b) > 0; b = b[24:] {
			s.addLast(lastVal{
				t:   int64(binary.BigEndian.Uint64(b)),
				lat: math.Float64frombits(binary.BigEndian.Uint64(b[8:])),
				lon: math.Float64frombits(binary.BigEndian.Uint64(b[16:])),
			})
		}
	default:
		return fmt.Errorf("%w: unknown tag %d", errCorrupt, tag)
	}
	return nil
}

func isDistinct(t byte) bool { return t == tagDistinct || t == tagHLL }

// encode appends the state's stored form to dst.
func (s *state) encode(dst []byte) ([]byte, error) {
	switch s.tag {
	case 0:
		return dst, nil
	case tagCount:
		dst = append(dst, tagCount)
		for _, c := range s.cnt {
			dst = append(dst, c.slot)
			dst = binary.AppendVarint(dst, c.n)
		}
	case tagDistinct:
		dst = append(dst, tagDistinct)
		hs := make([]uint64, 0, len(s.set))
		for h := range s.set {
			hs = append(hs, h)
		}
		slices.Sort(hs)
		for _, h := range hs {
			dst = binary.BigEndian.AppendUint64(dst, h)
			dst = binary.BigEndian.AppendUint64(dst, s.set[h])
		}
	case tagHLL:
		dst = append(dst, tagHLL)
		for slot, sk := range s.hll {
			if sk == nil {
				continue
			}
			b, err := sk.MarshalBinary()
			if err != nil {
				return nil, err
			}
			dst = append(dst, byte(slot))
			dst = binary.AppendUvarint(dst, uint64(len(b)))
			dst = append(dst, b...)
		}
	case tagLast:
		dst = append(dst, tagLast)
		for _, v := range s.last {
			dst = appendLast(dst, v)
		}
	case tagFirst:
		dst = append(dst, tagFirst)
		for _, f := range s.first {
			dst = appendFirst(dst, f.slot, f.t)
		}
	}
	return dst, nil
}

func appendFirst(dst []byte, slot uint8, t int64) []byte {
	dst = append(dst, slot)
	return binary.BigEndian.AppendUint64(dst, uint64(t))
}

func appendLast(dst []byte, v lastVal) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(v.t))
	dst = appendFloat(dst, v.lat)
	return appendFloat(dst, v.lon)
}

func appendFloat(dst []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func bitsTrailing(m uint64) uint {
	var n uint
	for m&1 == 0 {
		m >>= 1
		n++
	}
	return n
}

// mergerName is stored by pebble; a DB opened with another merger fails.
const mergerName = "riskd.features.v1"

// Merger returns the merge operator the store's DB must be opened with. It
// combines feature-state operands (keys under keys.FeatureState) and leaves
// every other key to pebble's default (concatenating) merger.
func Merger() *pebble.Merger {
	return &pebble.Merger{
		Name: mergerName,
		Merge: func(key, value []byte) (pebble.ValueMerger, error) {
			if len(key) == 0 || key[0] != keys.FeatureState {
				return pebble.DefaultMerger.Merge(key, value)
			}
			m := mergerPool.Get().(*valueMerger)
			m.reset()
			if err := m.add(value); err != nil {
				return nil, err
			}
			return m, nil
		},
	}
}

// valueMerger combines operands during flushes, compactions and reads. It
// is the hot loop of every compaction, so counts, first-seen times and exact sets are
// combined in flat arrays (no maps, no allocation once pooled) and only
// sketches go through state. The result equals state.merge then encode.
type valueMerger struct {
	tag     byte
	slow    bool  // st holds everything (sketches)
	st      state // slow path; tagLast always
	present uint64
	cnt     [slots]int64 // tagCount: sums; tagFirst: minimum times
	pairs   []distinctPair
	buf     []byte
}

type distinctPair struct{ h, mask uint64 }

var mergerPool = sync.Pool{New: func() any { return new(valueMerger) }}

func (m *valueMerger) reset() {
	for p := m.present; p != 0; p &= p - 1 {
		m.cnt[bitsTrailing(p)] = 0
	}
	m.tag, m.slow, m.present = 0, false, 0
	m.st = state{last: m.st.last[:0]}
	m.pairs = m.pairs[:0]
	m.buf = m.buf[:0]
}

func (m *valueMerger) add(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if m.slow {
		return m.st.merge(b)
	}
	tag := b[0]
	if m.tag != 0 && m.tag != tag && !(isDistinct(m.tag) && isDistinct(tag)) {
		return fmt.Errorf("%w: merging tag %d into %d", errCorrupt, tag, m.tag)
	}
	switch tag {
	case tagCount:
		m.tag = tagCount
		for p := b[1:]; len(p) > 0; {
			slot := p[0]
			n, k := binary.Varint(p[1:])
			if k <= 0 || slot >= slots {
				return errCorrupt
			}
			m.cnt[slot] += n
			m.present |= 1 << slot
			p = p[1+k:]
		}
	case tagDistinct:
		if (len(b)-1)%16 != 0 {
			return errCorrupt
		}
		m.tag = tagDistinct
		for p := b[1:]; len(p) > 0; p = p[16:] {
			x := distinctPair{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])}
			if x.mask>>slots != 0 {
				return errCorrupt
			}
			m.pairs = append(m.pairs, x)
		}
		if len(m.pairs) > 4*ExactDistinctLimit {
			if m.compact() > ExactDistinctLimit {
				return m.toSlow()
			}
		}
	case tagFirst:
		if (len(b)-1)%9 != 0 {
			return errCorrupt
		}
		m.tag = tagFirst
		for p := b[1:]; len(p) > 0; p = p[9:] {
			slot := p[0]
			if slot >= slots {
				return errCorrupt
			}
			t := int64(binary.BigEndian.Uint64(p[1:]))
			if m.present&(1<<slot) == 0 || t < m.cnt[slot] {
				m.cnt[slot] = t
			}
			m.present |= 1 << slot
		}
	case tagLast:
		m.tag = tagLast
		return m.st.merge(b)
	default: // sketches (and unknown tags, which state reports)
		if err := m.toSlow(); err != nil {
			return err
		}
		return m.st.merge(b)
	}
	return nil
}

// compact sorts the exact pairs by hash and ORs duplicates' masks; it
// returns the number of distinct hashes.
func (m *valueMerger) compact() int {
	slices.SortFunc(m.pairs, func(a, b distinctPair) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	out := m.pairs[:0]
	for _, x := range m.pairs {
		if n := len(out); n > 0 && out[n-1].h == x.h {
			out[n-1].mask |= x.mask
			continue
		}
		out = append(out, x)
	}
	m.pairs = out
	return len(out)
}

// toSlow moves what the flat arrays hold into st.
func (m *valueMerger) toSlow() error {
	if m.slow || m.tag == tagLast {
		m.slow = true
		return nil
	}
	buf, err := m.encodeFast(m.buf[:0])
	m.buf = buf
	if err != nil {
		return err
	}
	m.slow = true
	return m.st.merge(buf)
}

func (m *valueMerger) encodeFast(dst []byte) ([]byte, error) {
	switch m.tag {
	case tagCount:
		dst = append(dst, tagCount)
		for p := m.present; p != 0; p &= p - 1 {
			slot := bitsTrailing(p)
			dst = append(dst, byte(slot))
			dst = binary.AppendVarint(dst, m.cnt[slot])
		}
		return dst, nil
	case tagFirst:
		dst = append(dst, tagFirst)
		for p := m.present; p != 0; p &= p - 1 {
			slot := bitsTrailing(p)
			dst = appendFirst(dst, uint8(slot), m.cnt[slot])
		}
		return dst, nil
	case tagDistinct:
		if m.compact() > ExactDistinctLimit {
			var st state
			st.tag = tagDistinct
			st.set = make(map[uint64]uint64, len(m.pairs))
			for _, x := range m.pairs {
				st.set[x.h] = x.mask
			}
			st.toHLL()
			return st.encode(dst)
		}
		dst = append(dst, tagDistinct)
		for _, x := range m.pairs {
			dst = binary.BigEndian.AppendUint64(dst, x.h)
			dst = binary.BigEndian.AppendUint64(dst, x.mask)
		}
		return dst, nil
	}
	return dst, nil
}

func (m *valueMerger) MergeNewer(v []byte) error { return m.add(v) }
func (m *valueMerger) MergeOlder(v []byte) error { return m.add(v) }

// Finish returns the merged value; pebble closes the closer when done with
// it, which returns the merger (and the value's buffer) to the pool.
func (m *valueMerger) Finish(bool) ([]byte, io.Closer, error) {
	var err error
	if m.slow || m.tag == tagLast {
		m.buf, err = m.st.encode(m.buf[:0])
	} else {
		m.buf, err = m.encodeFast(m.buf[:0])
	}
	if err != nil {
		return nil, nil, err
	}
	return m.buf, m, nil
}

func (m *valueMerger) Close() error {
	if cap(m.pairs) > 16*ExactDistinctLimit || cap(m.buf) > 1<<20 {
		return nil // let an outsized merger go
	}
	mergerPool.Put(m)
	return nil
}

// ConfigureDB sets what the feature store needs from the DB's options: the
// Merger and, where the caller set none, 10-bit bloom filters on every level
// (most state lookups are point reads of keys that do not exist yet, which
// a filter answers without reading a block), and write settings for a
// stream of small merge operands (each only where the caller left the
// field zero):
//
//   - MemTableSize 64 MiB: fewer, larger flushes (the memtable count that
//     stops writes stays Pebble's 2, so memtables hold at most 128 MiB);
//   - L0StopWritesThreshold 24 (default 12): a burst raises L0 read
//     amplification, which the bloom filters make cheap, before it stops
//     writes;
//   - LBaseMaxBytes 256 MiB (default 64): the state of a million-entity
//     population fits in fewer levels, so compactions rewrite it less often;
//   - CompactionConcurrencyRange 1-2: a second compaction when L0 or the
//     compaction debt grows (two cores; evaluation keeps the rest).
func ConfigureDB(o *pebble.Options) {
	o.Merger = Merger()
	for i := range o.Levels {
		if o.Levels[i].FilterPolicy == nil {
			o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 64 << 20
	}
	if o.L0StopWritesThreshold == 0 {
		o.L0StopWritesThreshold = 24
	}
	if o.LBaseMaxBytes == 0 {
		o.LBaseMaxBytes = 256 << 20
	}
	if o.CompactionConcurrencyRange == nil {
		o.CompactionConcurrencyRange = func() (int, int) { return 1, 2 }
	}
}
