// Package tablefs is a Pebble filesystem that writes the tables Pebble
// builds (flushes and compactions) through a large buffer.
//
// Pebble's table writer hands each finished block (about 4 KiB) to a
// 4 KiB bufio.Writer, so every block becomes one write system call. On the
// development VM a 4 KiB write cost about 5 µs of CPU and a 256 KiB one
// 1.1-1.5 µs per 4 KiB (a write loop, 512 MiB each way), and an
// evaluation makes about 4 KiB of tables: the calls took a twentieth of
// BenchmarkEvaluate's CPU (syscall.write, 1.17 s of 23 s), and with them
// batched the benchmark went from 109-119 to 87-92 CPU µs an evaluation
// in two alternating runs. FS batches a table's writes into Buffer-sized
// calls; the log, the manifest and every other file pass through
// untouched, since their writes are synced one by one and must reach the
// file when Pebble asks.
//
// A buffered table is flushed before anything that observes its contents
// or its size (Sync, SyncData, SyncTo, Stat, ReadAt, Read, WriteAt, Close),
// so Pebble sees the file as it wrote it at every point it looks.
package tablefs

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Buffer is the size of the writes a table's bytes are gathered into.
const Buffer = 256 << 10

// FS wraps a Pebble filesystem. The zero value is not usable: use New.
type FS struct {
	vfs.FS
}

// New returns fs with the writes of the tables it creates buffered; a nil
// fs means vfs.Default.
func New(fs vfs.FS) FS {
	if fs == nil {
		fs = vfs.Default
	}
	return FS{fs}
}

// Unwrap returns the filesystem FS wraps.
func (fs FS) Unwrap() vfs.FS { return fs.FS }

// Create creates the file, buffering its writes when it is a table.
func (fs FS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".sst") {
		return f, err
	}
	return &file{File: f}, nil
}

// buffers recycles the write buffers: a compaction writes many tables.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, Buffer); return &b }}

// file gathers writes into buf and writes them to File when it is full or
// when the file is observed.
type file struct {
	vfs.File
	mu  sync.Mutex
	buf *[]byte // nil until the first write, and after a flush on close
}

func (f *file) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buf == nil {
		f.buf = buffers.Get().(*[]byte)
	}
	b := *f.buf
	if len(b)+len(p) > cap(b) {
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
		b = *f.buf
		if len(p) >= cap(b) { // as large as the buffer: no copy
			return f.File.Write(p)
		}
	}
	*f.buf = append(b, p...)
	return len(p), nil
}

// flushLocked writes out what the buffer holds.
func (f *file) flushLocked() error {
	if f.buf == nil || len(*f.buf) == 0 {
		return nil
	}
	_, err := f.File.Write(*f.buf)
	*f.buf = (*f.buf)[:0]
	return err
}

// flush writes out what the buffer holds, for an operation that observes
// the file.
func (f *file) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushLocked()
}

func (f *file) Close() error {
	f.mu.Lock()
	err := f.flushLocked()
	if f.buf != nil {
		buffers.Put(f.buf)
		f.buf = nil
	}
	f.mu.Unlock()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f *file) Sync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *file) SyncData() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *file) SyncTo(length int64) (bool, error) {
	if err := f.flush(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

func (f *file) Stat() (vfs.FileInfo, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *file) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

var _ vfs.File = (*file)(nil)
