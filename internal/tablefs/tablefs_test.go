package tablefs

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingFS counts the writes that reach its files.
type countingFS struct {
	vfs.FS
	writes map[string]int
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return &countingFile{f, fs, name}, err
}

type countingFile struct {
	vfs.File
	fs   *countingFS
	name string
}

func (f *countingFile) Write(p []byte) (int, error) {
	f.fs.writes[f.name]++
	return f.File.Write(p)
}

func read(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTableWrites checks that a table's writes reach the file whole, in
// order, in fewer calls, and that every observation of the file (size,
// reads, syncs) sees all that was written before it; other files' writes
// pass through one by one.
func TestTableWrites(t *testing.T) {
	mem := &countingFS{FS: vfs.NewMem(), writes: map[string]int{}}
	fs := New(mem)
	r := rand.New(rand.NewPCG(3, 4))
	var want bytes.Buffer
	f, err := fs.Create("000007.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	const writes = 300
	for w := range writes {
		// Mostly blocks, now and then one larger than the buffer.
		size := []int{1, 100, 4096, 5000}[r.IntN(4)]
		if r.IntN(50) == 0 {
			size = Buffer + 7
		}
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		want.Write(p) // first: a vfs.File may mangle what it is given
		if n, err := f.Write(p); err != nil || n != len(p) {
			t.Fatalf("write: %d, %v", n, err)
		}
		if w%5 == 0 { // the file as observed matches what was written
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != int64(want.Len()) {
				t.Fatalf("size %d after writing %d bytes", st.Size(), want.Len())
			}
			got := make([]byte, want.Len())
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatal("ReadAt differs from what was written")
			}
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, mem, "000007.sst"); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("file holds %d bytes, want the %d written", len(got), want.Len())
	}
	if n := mem.writes["000007.sst"]; n > writes/4 {
		t.Fatalf("%d writes reached the file for %d made", n, writes)
	}

	log, err := fs.Create("000008.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := log.Write([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if mem.writes["000008.log"] != 3 {
		t.Fatalf("log: %d writes reached the file, want 3", mem.writes["000008.log"])
	}
	_ = log.Close()
}

// TestPebbleOnTableFS runs Pebble on the filesystem through flushes and a
// compaction, and reopens it.
func TestPebbleOnTableFS(t *testing.T) {
	mem := vfs.NewMem()
	open := func() *pebble.DB {
		db, err := pebble.Open("db", &pebble.Options{FS: New(mem), MemTableSize: 1 << 20, Logger: quiet{}})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	val := bytes.Repeat([]byte("v"), 300)
	for i := range 20000 {
		if err := db.Set(fmt.Appendf(nil, "k%08d", i*7919%20000), val, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Compact(t.Context(), []byte("k"), []byte("l"), true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if want := fmt.Sprintf("k%08d", n); string(it.Key()) != want || !bytes.Equal(it.Value(), val) {
			t.Fatalf("key %q, want %q", it.Key(), want)
		}
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if n != 20000 {
		t.Fatalf("%d keys after reopening, want 20000", n)
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
