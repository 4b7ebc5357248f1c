package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// walFS is a filesystem whose WAL syncs can be held (until release) or made
// to fail.
type walFS struct {
	vfs.FS
	held atomic.Pointer[chan struct{}] // non-nil: WAL syncs wait for it to close
	fail atomic.Bool
}

type walFile struct {
	vfs.File
	fs *walFS
}

func (f walFile) sync(do func() error) error {
	if ch := f.fs.held.Load(); ch != nil {
		<-*ch
	}
	if f.fs.fail.Load() {
		return errors.New("injected WAL sync failure")
	}
	return do()
}

func (f walFile) Sync() error     { return f.sync(f.File.Sync) }
func (f walFile) SyncData() error { return f.sync(f.File.SyncData) }
func (f walFile) SyncTo(n int64) (bool, error) {
	full := false
	err := f.sync(func() (err error) { full, err = f.File.SyncTo(n); return err })
	return full, err
}

func (fs *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return walFile{File: f, fs: fs}, nil
}

func (fs *walFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *walFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(old, name, c)
	return fs.wrap(name, f, err)
}

// hold makes WAL syncs wait until the returned func is called (once or
// more).
func (fs *walFS) hold() (release func()) {
	ch := make(chan struct{})
	fs.held.Store(&ch)
	var once sync.Once
	return func() { once.Do(func() { fs.held.Store(nil); close(ch) }) }
}

// testLogger keeps Pebble's log lines in the test's log; a fatal one fails
// the test instead of exiting the process.
type testLogger struct{ t *testing.T }

func (l testLogger) Infof(format string, args ...any)  { l.t.Logf(format, args...) }
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf(format, args...) }
func (l testLogger) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// The committer answers a caller only once the WAL holding its writes is
// synced, and while one group's sync is under way it goes on gathering and
// applying the next ones. A failed sync fails its group and every later
// one (Pebble keeps the WAL's error), and is told to syncFailed first.
func TestCommitterAnswersAfterSync(t *testing.T) {
	fs := &walFS{FS: vfs.NewMem()}
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: testLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }() // fails after the injected failure
	var syncFailures atomic.Int64     // the engine makes the first one fatal
	c := newCommitter(db, 16, noChain{}, nil, nil, func(error) { syncFailures.Add(1) })
	defer c.close()

	commit := func(key string) <-chan error {
		done := make(chan error, 1)
		b := db.NewBatch()
		if err := b.Set([]byte(key), []byte("v-"+key), nil); err != nil {
			t.Fatal(err)
		}
		go func() { done <- c.commit(context.Background(), b, nil) }()
		return done
	}
	visible := func(key string) bool {
		_, closer, err := db.Get([]byte(key))
		if err == nil {
			_ = closer.Close()
		}
		return err == nil
	}
	waitVisible := func(key string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !visible(key); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never applied", key)
			}
		}
	}

	if err := <-commit("a"); err != nil {
		t.Fatalf("commit a: %v", err)
	}

	release := fs.hold()
	defer release() // a failing check must not leave the committer waiting
	b := commit("b")
	waitVisible("b") // applied: its sync is what waits
	// The committer is not stuck behind b's sync: c is gathered, sealed
	// and applied meanwhile.
	cc := commit("c")
	waitVisible("c")
	select {
	case err := <-b:
		t.Fatalf("commit b answered (%v) while its WAL sync was held", err)
	case err := <-cc:
		t.Fatalf("commit c answered (%v) while the WAL sync was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	for key, ch := range map[string]<-chan error{"b": b, "c": cc} {
		if err := <-ch; err != nil {
			t.Errorf("commit %s after the sync: %v", key, err)
		}
	}
	if got := c.committed.Load(); got != 3 {
		t.Errorf("committed %d, want 3", got)
	}

	fs.fail.Store(true)
	for _, key := range []string{"d", "e"} {
		if err := <-commit(key); err == nil {
			t.Errorf("commit %s: no error with the WAL sync failing", key)
		}
	}
	if got := c.committed.Load(); got != 3 {
		t.Errorf("committed %d after the failures, want still 3", got)
	}
	if got := syncFailures.Load(); got != 2 {
		t.Errorf("syncFailed told %d times, want once per failed group (2)", got)
	}
}
