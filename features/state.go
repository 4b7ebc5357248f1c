package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
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

// ExactDistinctLimit is how many distinct values a read's window may hold
// and still be counted exactly. Past it, per key and period, a distinct
// state drops whole granules into per-granule HyperLogLog sketches
// (precision 14: standard error 0.81%, documented bound 2%); see bigSet.
const ExactDistinctLimit = 1024

// exactLimit is ExactDistinctLimit; tests lower it to overflow small sets.
var exactLimit = ExactDistinctLimit

// lastKeep is how many of the latest values a last state keeps per period,
// so that a late event still finds its own predecessor among them.
const lastKeep = 8

// Encoded state tags (first byte of every stored value and operand).
const (
	tagCount    byte = 1 // (slot byte, zigzag varint n)*
	tagDistinct byte = 2 // (hash u64, slot mask u64)*, sorted by hash
	tagHLL      byte = 3 // (slot byte, uvarint len, sketch)*: sketches only; no longer written, still read
	tagLast     byte = 4 // (time i64, lat f64, lon f64)*, newest first
	tagFirst    byte = 5 // (slot byte, time i64)*, sorted by slot: the slot's earliest event
	tagSketched byte = 6 // uvarint n, n (hash u64, slot mask u64) sorted by hash, then tagHLL's sketches
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
	set   map[uint64]uint64 // tagDistinct: value hash -> mask of slots it was seen in (outside big.drop)
	big   *bigSet           // tagDistinct: nil until the set holds more than exactLimit values
	last  []lastVal         // tagLast, newest first, at most lastKeep
	first []slotTime        // tagFirst, sorted by slot
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

// A distinct state of one period is an exact set (value hash -> mask of
// the granules it was seen in) while it holds at most exactLimit values.
// Past that it drops whole granules D = [hi, lo] (a contiguous range, grown
// from either end) into per-granule sketches, keeping exact only the
// granules outside D. The rule, for the union U of everything added to the
// period: lo is the smallest granule such that at most exactLimit values of
// U have their latest granule above lo, hi the largest such that at most
// exactLimit have their earliest below hi; D is empty when hi > lo (then U,
// at most 2*exactLimit values, stays exact). A read's window meets a period
// in a suffix of its granules (the previous period) or a prefix (the
// current one). A suffix that reaches into D holds more than exactLimit
// values, those whose latest granule is lo or later, and likewise a prefix
// reaching hi; so a window of at most exactLimit values never touches D and
// is counted exactly.
//
// Merging is order-independent. Every state holds U restricted to the
// granules outside its D, and its sketches hold, for each granule of D, the
// values of U seen there. A merge takes the union of the sets and
// sketches, D = the span of the operands' D's (each at most the D of the
// merged union: more values only push lo up and hi down), moves the set's
// bits in D to the sketches, then grows D by the rule. Above the old lo
// and below the old hi the set equals U there, so the counts the rule looks
// at are U's: the result is the rule applied to U and the span of all the
// operands' D's, whatever the grouping and order. Both ends of a non-empty
// D hold a value (the granule that made it grow, or an operand's end), so
// D is stored as the span of the sketched granules.
type bigSet struct {
	drop uint64                     // the granules of D
	hll  [slots]*hyperloglog.Sketch // per granule of D: the values seen there
	hist bool                       // last and first count the set
	// last[g] and first[g]: how many values of the set have g as their
	// latest and earliest granule; kept while hist, so that a hot key's add
	// checks the rule in O(slots), not O(set).
	last, first [slots]int32
}

func (b *bigSet) sketch(h, mask uint64) {
	for ; mask != 0; mask &= mask - 1 {
		slot := bits.TrailingZeros64(mask)
		sk := b.hll[slot]
		if sk == nil {
			sk = hyperloglog.New14()
			b.hll[slot] = sk
		}
		sk.InsertHash(h)
	}
}

func (b *bigSet) fillHist(set map[uint64]uint64) {
	b.last, b.first = [slots]int32{}, [slots]int32{}
	for _, m := range set {
		countEnds(&b.last, &b.first, m, 1)
	}
	b.hist = true
}

// countEnds adds d to the counts of m's latest and earliest granules.
func countEnds(last, first *[slots]int32, m uint64, d int32) {
	last[63-bits.LeadingZeros64(m)] += d
	first[bits.TrailingZeros64(m)] += d
}

// span is the smallest range of granules holding every bit of m.
func span(m uint64) uint64 {
	if m == 0 {
		return 0
	}
	return rangeMask(int64(bits.TrailingZeros64(m)), int64(63-bits.LeadingZeros64(m)))
}

// dropOf applies the rule (bigSet) to a set of n values whose latest and
// earliest granules last and first count, starting from the dropped range
// drop: it returns the range to drop.
func dropOf(last, first *[slots]int32, n int, drop uint64) uint64 {
	if n <= exactLimit {
		return drop // no count can exceed the limit
	}
	lo, hi := -1, slots
	if drop != 0 {
		hi, lo = bits.TrailingZeros64(drop), 63-bits.LeadingZeros64(drop)
	}
	// Smallest w >= lo with at most exactLimit values later than w.
	w, c := slots-1, 0
	for w > lo && c+int(last[w]) <= exactLimit {
		c += int(last[w])
		w--
	}
	// Largest v <= hi with at most exactLimit values earlier than v.
	v, c := 0, 0
	for v < hi && c+int(first[v]) <= exactLimit {
		c += int(first[v])
		v++
	}
	if v > w {
		return 0
	}
	return rangeMask(int64(v), int64(w))
}

func (s *state) addDistinct(h, mask uint64) {
	s.tag = tagDistinct
	s.addPair(h, mask)
	s.normalize()
}

// addPair adds a value seen in the granules of mask, the ones in D to the
// sketches; the caller normalizes.
func (s *state) addPair(h, mask uint64) {
	if s.set == nil {
		s.set = make(map[uint64]uint64, 4)
	}
	b := s.big
	if b == nil {
		s.set[h] |= mask
		return
	}
	if d := mask & b.drop; d != 0 {
		b.sketch(h, d)
		if mask &^= d; mask == 0 {
			return
		}
	}
	old := s.set[h]
	m := old | mask
	if m == old {
		return
	}
	s.set[h] = m
	if b.hist {
		if old != 0 {
			countEnds(&b.last, &b.first, old, -1)
		}
		countEnds(&b.last, &b.first, m, 1)
	}
}

// normalize grows D by the rule (bigSet) once the set is past the limit.
func (s *state) normalize() {
	if len(s.set) <= exactLimit {
		return
	}
	b := s.big
	if b == nil {
		b = new(bigSet)
		s.big = b
	}
	if !b.hist {
		b.fillHist(s.set)
	}
	s.dropTo(dropOf(&b.last, &b.first, len(s.set), b.drop))
}

// dropTo widens D to d (a range holding the current one), moving the
// set's values in the new granules to their sketches.
func (s *state) dropTo(d uint64) {
	b := s.big
	add := d &^ b.drop
	if add == 0 {
		return
	}
	b.drop = d
	for h, m := range s.set {
		if m&add == 0 {
			continue
		}
		b.sketch(h, m&add)
		if m &^= add; m == 0 {
			delete(s.set, h)
		} else {
			s.set[h] = m
		}
	}
	b.hist = false
	if len(s.set) > exactLimit {
		b.fillHist(s.set)
	}
}

// mergeSketches merges an operand's sketches (tagHLL's encoding): D widens
// to span both, and each sketch joins its granule's.
func (s *state) mergeSketches(b []byte) error {
	var sks [slots]*hyperloglog.Sketch
	var d uint64
	for len(b) > 0 {
		slot := b[0]
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || slot >= slots || uint64(len(b)-1-k) < n {
			return errCorrupt
		}
		v := b[1+k : 1+k+int(n)]
		if len(v) < 2 || v[1] != 14 { // byte 1: the precision; every sketch here is New14's
			return fmt.Errorf("%w: sketch not of precision 14", errCorrupt)
		}
		sk := hyperloglog.New14()
		if err := sk.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		if sks[slot] == nil {
			sks[slot] = sk
		} else if err := sks[slot].Merge(sk); err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		d |= 1 << slot
		b = b[1+k+int(n):]
	}
	if d == 0 {
		return nil
	}
	if s.big == nil {
		s.big = new(bigSet)
	}
	s.dropTo(span(s.big.drop | d))
	for slot, sk := range sks {
		switch {
		case sk == nil:
		case s.big.hll[slot] == nil:
			s.big.hll[slot] = sk
		default:
			if err := s.big.hll[slot].Merge(sk); err != nil {
				return fmt.Errorf("%w: %v", errCorrupt, err)
			}
		}
	}
	return nil
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
	case tagDistinct, tagSketched, tagHLL:
		pairs := b
		if tag != tagDistinct {
			pairs = nil
			if tag == tagSketched {
				n, k := binary.Uvarint(b)
				if k <= 0 || n > uint64(len(b)-k)/16 {
					return errCorrupt
				}
				pairs, b = b[k:k+16*int(n)], b[k+16*int(n):]
			}
			if err := s.mergeSketches(b); err != nil {
				return err
			}
		}
		if len(pairs)%16 != 0 {
			return errCorrupt
		}
		s.tag = tagDistinct
		for ; len(pairs) > 0; pairs = pairs[16:] {
			m := binary.BigEndian.Uint64(pairs[8:])
			if m>>slots != 0 || m == 0 {
				return errCorrupt
			}
			s.addPair(binary.BigEndian.Uint64(pairs), m)
		}
		s.normalize()
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

func isDistinct(t byte) bool { return t == tagDistinct || t == tagHLL || t == tagSketched }

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
		hs := make([]uint64, 0, len(s.set))
		for h := range s.set {
			hs = append(hs, h)
		}
		slices.Sort(hs)
		sketched := s.big != nil && s.big.drop != 0
		if sketched {
			dst = append(dst, tagSketched)
			dst = binary.AppendUvarint(dst, uint64(len(hs)))
		} else {
			dst = append(dst, tagDistinct)
		}
		for _, h := range hs {
			dst = binary.BigEndian.AppendUint64(dst, h)
			dst = binary.BigEndian.AppendUint64(dst, s.set[h])
		}
		if sketched {
			return s.big.appendSketches(dst)
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

// appendSketches appends the sketches in tagHLL's encoding. Estimate first
// compacts a sketch's sparse form (and makes it dense past its size), so
// the bytes depend only on the values the sketch holds, not on the order
// they were merged in.
func (b *bigSet) appendSketches(dst []byte) ([]byte, error) {
	for slot, sk := range b.hll {
		if sk == nil {
			continue
		}
		sk.Estimate()
		v, err := sk.MarshalBinary()
		if err != nil {
			return nil, err
		}
		dst = append(dst, byte(slot))
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
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

// mergerName is stored by pebble; a DB opened with another merger fails.
const mergerName = "riskd.features.v1"

// Merger returns the merge operator the store's DB must be opened with. It
// combines feature-state operands (keys under keys.FeatureState) and leaves
// every other key to pebble's default (concatenating) merger.
func Merger() *pebble.Merger {
	return &pebble.Merger{
		Name: mergerName,
		Merge: func(key, value []byte) (pebble.ValueMerger, error) {
			// The old layout's keys too, until Open migrates them.
			if len(key) == 0 || (key[0] != keys.FeatureState && key[0] != keys.FeatureStateV1) {
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
// sketches (and sets that drop granules into them) go through state. The
// result equals state.merge then encode.
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
		m.cnt[bits.TrailingZeros64(p)] = 0
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
			if x.mask>>slots != 0 || x.mask == 0 {
				return errCorrupt
			}
			m.pairs = append(m.pairs, x)
		}
		if len(m.pairs) > 4*exactLimit && m.compact() > exactLimit && m.pairsDrop() != 0 {
			return m.toSlow() // granules to drop into sketches
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
			slot := bits.TrailingZeros64(p)
			dst = append(dst, byte(slot))
			dst = binary.AppendVarint(dst, m.cnt[slot])
		}
		return dst, nil
	case tagFirst:
		dst = append(dst, tagFirst)
		for p := m.present; p != 0; p &= p - 1 {
			slot := bits.TrailingZeros64(p)
			dst = appendFirst(dst, uint8(slot), m.cnt[slot])
		}
		return dst, nil
	case tagDistinct:
		if m.compact() > exactLimit && m.pairsDrop() != 0 {
			st := state{tag: tagDistinct, set: make(map[uint64]uint64, len(m.pairs))}
			for _, x := range m.pairs {
				st.set[x.h] = x.mask
			}
			st.normalize()
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

// pairsDrop returns the granules the compacted exact pairs would drop
// (bigSet's rule; 0 while the set stays exact).
func (m *valueMerger) pairsDrop() uint64 {
	var last, first [slots]int32
	for _, x := range m.pairs {
		countEnds(&last, &first, x.mask, 1)
	}
	return dropOf(&last, &first, len(m.pairs), 0)
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
	if cap(m.pairs) > 16*exactLimit || cap(m.buf) > 1<<20 {
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
