// Package batchorder copies a Pebble batch's writes into another batch in
// key order, so that the memtable inserts them in order.
//
// Pebble applies a batch to its memtable one key at a time through an
// inserter that remembers where the last key went in the skiplist: a key
// just after the previous one is placed from there, a few nodes away,
// while a key elsewhere is searched for from the top of a skiplist of
// hundreds of thousands of nodes, a cache miss at each of its levels. An
// evaluation's writes (its event, feature delta, decision record, chain
// entry, indexes) each land at the end of their own key range, next to
// the same write of the evaluation before; a group of them gathered in
// arrival order jumps between those ranges at every key, and in key order
// walks each range once.
//
// The writes of one batch become visible together, so neither the order of
// writes to different keys within it nor a write that a later one to the
// same key replaces can be observed; Sort keeps the order of the writes to
// the same key, drops the replaced ones, and declines batches whose
// reordering could be observed (a range deletion spanning a key the batch
// writes) or that hold kinds it does not copy.
package batchorder

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// Sorter sorts batches, reusing its memory from one to the next. The zero
// value is ready; a Sorter is not safe for concurrent use.
type Sorter struct {
	points []write
	ranges []write
	order  []sortKey
}

// sortKey is what the sort moves and compares: the first eight bytes of a
// point write's key, which tell most keys apart without a cache miss on
// the key itself, and the write's index in points.
type sortKey struct {
	pfx uint64
	i   int
}

// write is one entry of the source batch.
type write struct {
	key []byte // the user key; a range deletion's start
	end []byte // a range deletion's end
	raw []byte // the entry as src encodes it
}

// Sort writes src's entries into dst, which must be empty, with the point
// writes in key order (writes to one key in their order in src, less those
// a later set or deletion of the key shadows) followed by the range
// deletions in theirs, and reports true. It writes nothing
// and reports false when src holds anything but sets, merges, deletions
// and range deletions, or a range deletion spans a key src writes. src is
// not changed; dst holds a copy of its entries.
func (s *Sorter) Sort(dst, src *pebble.Batch) (bool, error) {
	defer s.reset()
	repr := src.Repr()
	r := batchrepr.Read(repr)
	for {
		at := len(r)
		kind, key, value, ok, err := r.Next()
		if err != nil {
			return false, fmt.Errorf("batchorder: %w", err)
		}
		if !ok {
			break
		}
		raw := repr[len(repr)-at : len(repr)-len(r)]
		switch kind {
		case pebble.InternalKeyKindSet, pebble.InternalKeyKindMerge, pebble.InternalKeyKindDelete:
			s.points = append(s.points, write{key: key, raw: raw})
		case pebble.InternalKeyKindRangeDelete:
			s.ranges = append(s.ranges, write{key: key, end: value, raw: raw})
		default:
			return false, nil
		}
	}
	for i, w := range s.points {
		var b [8]byte
		copy(b[:], w.key)
		s.order = append(s.order, sortKey{binary.BigEndian.Uint64(b[:]), i})
	}
	slices.SortFunc(s.order, func(a, b sortKey) int {
		if a.pfx != b.pfx {
			return cmp.Compare(a.pfx, b.pfx)
		}
		if c := bytes.Compare(s.points[a.i].key, s.points[b.i].key); c != 0 {
			return c
		}
		return a.i - b.i // writes to one key keep their order
	})
	for _, rd := range s.ranges {
		i, _ := slices.BinarySearchFunc(s.order, rd.key, func(o sortKey, k []byte) int { return bytes.Compare(s.points[o.i].key, k) })
		if i < len(s.order) && bytes.Compare(s.points[s.order[i].i].key, rd.end) < 0 {
			return false, nil
		}
	}
	if dst.Count() != 0 {
		return false, fmt.Errorf("batchorder: destination batch holds %d entries", dst.Count())
	}
	// Copied entry by entry into dst's own buffer: no key is encoded again.
	out := dst.Repr()[:batchrepr.HeaderLen]
	n := 0
	for run := s.order; len(run) > 0; {
		// The writes to one key: those before its last set or deletion are
		// shadowed by it (the decision log's chain head, set once per
		// decision, is the usual case), and would each cost a search from
		// the top of the memtable, since a later write to a key sorts
		// before the earlier ones there.
		end, from := 1, 0
		for end < len(run) && bytes.Equal(s.points[run[end].i].key, s.points[run[0].i].key) {
			end++
		}
		for j := end - 1; j > 0; j-- {
			if k := pebble.InternalKeyKind(s.points[run[j].i].raw[0]); k == pebble.InternalKeyKindSet || k == pebble.InternalKeyKindDelete {
				from = j
				break
			}
		}
		for _, o := range run[from:end] {
			out = append(out, s.points[o.i].raw...)
			n++
		}
		run = run[end:]
	}
	for _, w := range s.ranges {
		out = append(out, w.raw...)
	}
	batchrepr.SetCount(out, uint32(n+len(s.ranges)))
	if err := dst.SetRepr(out); err != nil {
		return false, fmt.Errorf("batchorder: %w", err)
	}
	return true, nil
}

// reset drops the references into the last source batch, keeping the
// slices' memory.
func (s *Sorter) reset() {
	clear(s.points)
	clear(s.ranges)
	s.points, s.ranges, s.order = s.points[:0], s.ranges[:0], s.order[:0]
}
