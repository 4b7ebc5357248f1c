package batchorder

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Merger: pebble.DefaultMerger, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// contents lists every key and value in db.
func contents(t *testing.T, db *pebble.DB) string {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s=%s\n", it.Key(), v)
	}
	return out.String()
}

type op struct {
	kind       byte // s(et) m(erge) d(elete) r(ange delete) l(og data)
	key, value string
}

func build(db *pebble.DB, ops []op) *pebble.Batch {
	b := db.NewBatch()
	for _, o := range ops {
		k, v := []byte(o.key), []byte(o.value)
		switch o.kind {
		case 's':
			_ = b.Set(k, v, nil)
		case 'm':
			_ = b.Merge(k, v, nil)
		case 'd':
			_ = b.Delete(k, nil)
		case 'r':
			_ = b.DeleteRange(k, v, nil)
		case 'l':
			_ = b.LogData(v, nil)
		}
	}
	return b
}

// keysOf lists the user keys of b's entries in order.
func keysOf(t *testing.T, b *pebble.Batch) []string {
	t.Helper()
	var out []string
	r := b.Reader()
	for {
		_, k, _, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, string(k))
	}
}

func TestSort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prior  []op // committed first, so that range deletions have something to delete
		ops    []op
		sorted bool
		order  []string // dst's keys, when sorted
	}{
		{"interleaved writes", nil,
			[]op{{'s', "e2", "a"}, {'s', "d1", "b"}, {'m', "c", "1"}, {'s', "e1", "c"}, {'m', "c", "2"}, {'d', "d0", ""}, {'s', "d1", "b2"}},
			true, []string{"c", "c", "d0", "d1", "e1", "e2"}},
		{"shadowed writes", []op{{'s', "a", "old"}, {'s', "b", "old"}, {'s', "c", "old"}},
			[]op{{'m', "a", "1"}, {'d', "b", ""}, {'m', "a", "2"}, {'s', "a", "x"}, {'m', "b", "3"}, {'m', "a", "4"}, {'s', "c", "1"}, {'d', "c", ""}},
			true, []string{"a", "a", "b", "b", "c"}},
		{"range deletion apart from the writes", []op{{'s', "x1", "old"}, {'s', "x2", "old"}, {'s', "y", "keep"}},
			[]op{{'s', "b", "1"}, {'r', "x", "xz"}, {'s', "a", "2"}},
			true, []string{"a", "b", "x"}},
		{"range deletion over a written key", []op{{'s', "x1", "old"}},
			[]op{{'s', "x2", "new"}, {'r', "x", "xz"}, {'s', "a", "1"}},
			false, nil},
		{"range deletion over a key written before it", nil,
			[]op{{'r', "x", "xz"}, {'s', "x5", "new"}},
			false, nil},
		{"log data", nil,
			[]op{{'s', "b", "1"}, {'l', "", "note"}, {'s', "a", "2"}},
			false, nil},
		{"empty", nil, nil, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, got := openMem(t), openMem(t)
			for _, db := range []*pebble.DB{want, got} {
				if err := build(db, tc.prior).Commit(pebble.Sync); err != nil {
					t.Fatal(err)
				}
			}
			src := build(got, tc.ops)
			dst := got.NewBatch()
			var s Sorter
			ok, err := s.Sort(dst, src)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.sorted {
				t.Fatalf("sorted = %v, want %v", ok, tc.sorted)
			}
			if !ok {
				if dst.Count() != 0 {
					t.Fatalf("declined, but wrote %d entries", dst.Count())
				}
				return
			}
			if k := keysOf(t, dst); fmt.Sprint(k) != fmt.Sprint(tc.order) {
				t.Fatalf("order %q, want %q", k, tc.order)
			}
			if err := build(want, tc.ops).Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := dst.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if w, g := contents(t, want), contents(t, got); w != g {
				t.Fatalf("sorted batch left\n%s\nthe batch as written\n%s", g, w)
			}
		})
	}
}

// TestSortRandom applies random batches as written and as sorted to two
// stores and compares them, whenever Sort accepts the batch.
func TestSortRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	want, got := openMem(t), openMem(t)
	var s Sorter // reused, as the committer does
	// Short keys, and long ones that share their first eight bytes.
	key := func() string { return fmt.Sprintf("%sk%02d", []string{"", "shared-prefix/"}[r.IntN(2)], r.IntN(40)) }
	accepted := 0
	for range 300 {
		var ops []op
		for range 1 + r.IntN(30) {
			switch n := r.IntN(20); {
			case n < 9:
				ops = append(ops, op{'s', key(), fmt.Sprint(r.IntN(100))})
			case n < 15:
				ops = append(ops, op{'m', key(), fmt.Sprint(r.IntN(10))})
			case n < 19:
				ops = append(ops, op{'d', key(), ""})
			default:
				a, b := key(), key()
				ops = append(ops, op{'r', min(a, b), max(a, b) + "~"})
			}
		}
		src := build(got, ops)
		dst := got.NewBatch()
		ok, err := s.Sort(dst, src)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if dst.Count() != 0 {
				t.Fatal("declined, but wrote")
			}
			dst = src
		} else {
			accepted++
		}
		if err := dst.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := build(want, ops).Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if w, g := contents(t, want), contents(t, got); w != g {
		t.Fatalf("stores differ:\n%s\nwant\n%s", g, w)
	}
	if accepted < 100 {
		t.Fatalf("only %d of 300 batches sorted: the test exercises too little", accepted)
	}
}

func BenchmarkSort(b *testing.B) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quiet{}})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// A group of 20 evaluations' writes, 8 keys each.
	src := db.NewBatch()
	val := bytes.Repeat([]byte{'v'}, 400)
	for i := range 20 {
		for p := range 8 {
			_ = src.Set(fmt.Appendf(nil, "%c%016x", 'a'+p, uint64(i)*0x9e3779b97f4a7c15>>uint(p*7)), val, nil)
		}
	}
	dst := db.NewBatch()
	var s Sorter
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if ok, err := s.Sort(dst, src); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
