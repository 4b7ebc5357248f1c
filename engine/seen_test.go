package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
)

func TestSeenBloom(t *testing.T) {
	const n = 100_000
	f := newSeenBloom(n)
	key := func(set string, i int) []byte { return fmt.Appendf([]byte{keys.EventSeen}, "%s-%d", set, i) }
	for i := range n {
		f.add(key("in", i))
	}
	for i := range n {
		if !f.mayContain(key("in", i)) {
			t.Fatalf("key %d added but not found", i)
		}
	}
	fp := 0
	for i := range n {
		if f.mayContain(key("out", i)) {
			fp++
		}
	}
	// Sized for n keys at 16 bits each, six probes in a 512-bit block.
	if rate := float64(fp) / n; rate > 0.005 {
		t.Errorf("false positives at capacity: %.4f, want < 0.005", rate)
	}
}

// waitSeenBuilt waits until no build of the idempotency filter is under way.
func waitSeenBuilt(t *testing.T, e *Engine) {
	t.Helper()
	for e.seen.build.Load() != nil {
		time.Sleep(time.Millisecond)
	}
}

// checkSeenCovers fails unless every idempotency key in the store is in the
// filter: the invariant that makes skipping a read safe.
func checkSeenCovers(t *testing.T, e *Engine) {
	t.Helper()
	cur := e.seen.cur.Load()
	if cur == nil {
		t.Fatal("no idempotency filter")
	}
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.EventSeen}, UpperBound: []byte{keys.EventSeen + 1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
		if !cur.mayContain(it.Key()) {
			t.Errorf("idempotency key %x is in the store but not in the filter", it.Key())
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no idempotency keys in the store: the check checked nothing")
	}
}

func openSeenEngine(t *testing.T, dir string, mod func(*Options)) *Engine {
	t.Helper()
	o := Options{DataDir: dir, PseudonymKey: []byte("seen-test-pseudonym-key-0123456"), Logger: quiet, Budget: time.Minute}
	if mod != nil {
		mod(&o)
	}
	e, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The filter is rebuilt from the store at Open: after a restart, event ids
// decided or ingested before it are still recognized (the filter would
// otherwise call them new and decide them again), and new ids skip the read.
func TestIdempotencyFilterThroughRestart(t *testing.T) {
	dir := t.TempDir()
	src := workloadEvents(t, 500, 200)
	now := time.Now()
	e := openSeenEngine(t, dir, nil)
	decided := map[string]*riskv1.Decision{}
	for i, ev := range src[:150] {
		id := "eval-" + strconv.Itoa(i)
		d, err := e.Evaluate(context.Background(), restamp(ev, id, now))
		if err != nil || d.GetDegraded() {
			t.Fatalf("evaluate %s: %v, %v", id, d.GetDegradedReason(), err)
		}
		decided[id] = d
	}
	var ingested []*riskv1.Event
	for i, ev := range src[150:] {
		ingested = append(ingested, restamp(ev, "ingest-"+strconv.Itoa(i), now))
	}
	res, err := e.Ingest(context.Background(), ingested)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate {
			t.Fatalf("ingest %d: %+v", i, r)
		}
	}
	waitSeenBuilt(t, e)
	checkSeenCovers(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = openSeenEngine(t, dir, nil)
	defer e.Close()
	waitSeenBuilt(t, e)
	checkSeenCovers(t, e)
	for id, want := range decided {
		if !e.seen.mayContain(e.seenKey(id)) {
			t.Errorf("%s: decided before the restart, not in the filter after it", id)
		}
		d, err := e.Evaluate(context.Background(), restamp(src[0], id, now))
		if err != nil || d.GetDecisionId() != want.GetDecisionId() {
			t.Errorf("%s again after a restart: decision %s, %v; want the stored %s", id, d.GetDecisionId(), err, want.GetDecisionId())
		}
	}
	for _, ev := range ingested {
		if _, err := e.Evaluate(context.Background(), ev); !errors.Is(err, ErrIngested) {
			t.Errorf("%s, ingested before the restart, evaluated after it: %v, want ErrIngested", ev.EventId, err)
		}
	}
	skipped := 0
	for i, ev := range src[:50] {
		id := "new-" + strconv.Itoa(i)
		if !e.seen.mayContain(e.seenKey(id)) {
			skipped++
		}
		d, err := e.Evaluate(context.Background(), restamp(ev, id, now))
		if err != nil || d.GetDegraded() {
			t.Fatalf("evaluate %s: %v, %v", id, d.GetDegradedReason(), err)
		}
		again, err := e.Evaluate(context.Background(), restamp(ev, id, now))
		if err != nil || again.GetDecisionId() != d.GetDecisionId() {
			t.Errorf("%s again: decision %s, %v; want %s", id, again.GetDecisionId(), err, d.GetDecisionId())
		}
	}
	if skipped < 45 {
		t.Errorf("the filter spared %d of 50 new ids a read, want nearly all", skipped)
	}
}

// Builds run while evaluations commit: a filter far smaller than the keys
// written is rebuilt many times over, and no key committed during a build,
// before it or after it is ever missing from the filter.
func TestIdempotencyFilterRebuildsUnderLoad(t *testing.T) {
	e := openSeenEngine(t, t.TempDir(), func(o *Options) { o.seenFilterMin = 32; o.MaxInFlight, o.MinInFlight = 1024, 1024 })
	defer e.Close()
	src := workloadEvents(t, 500, 100)
	now := time.Now()
	const n = 3000
	ids := make([]string, n)
	decided := make([]string, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				d, err := e.Evaluate(context.Background(), restamp(src[i%len(src)], ids[i], now))
				if err != nil {
					t.Errorf("evaluate %s: %v", ids[i], err)
					continue
				}
				decided[i] = d.GetDecisionId()
			}
		})
	}
	for i := range n {
		ids[i] = "load-" + strconv.Itoa(i)
		work <- i
		if i%500 == 0 {
			// Ingest through the same filter, concurrently.
			if _, err := e.Ingest(context.Background(), []*riskv1.Event{restamp(src[i%len(src)], "ing-"+strconv.Itoa(i), now)}); err != nil {
				t.Error(err)
			}
		}
	}
	close(work)
	wg.Wait()
	waitSeenBuilt(t, e)
	if b := e.seen.builds.Load(); b < 3 {
		t.Fatalf("the filter was built %d times, want many: the test did not exercise rebuilds", b)
	}
	checkSeenCovers(t, e)
	work = make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				d, err := e.Evaluate(context.Background(), restamp(src[i%len(src)], ids[i], now))
				if err != nil || d.GetDecisionId() != decided[i] {
					t.Errorf("%s again: decision %s, %v; want the stored %s", ids[i], d.GetDecisionId(), err, decided[i])
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// A store with more idempotency keys than the filter may cover has none,
// and every lookup reads: duplicates are still found.
func TestIdempotencyFilterOverItsBound(t *testing.T) {
	dir := t.TempDir()
	src := workloadEvents(t, 500, 120)
	now := time.Now()
	var evs []*riskv1.Event
	for i, ev := range src {
		evs = append(evs, restamp(ev, "over-"+strconv.Itoa(i), now))
	}
	e := openSeenEngine(t, dir, nil)
	if _, err := e.Ingest(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openSeenEngine(t, dir, func(o *Options) { o.IdempotencyFilterKeys = 100 })
	defer e.Close()
	waitSeenBuilt(t, e)
	if e.seen.cur.Load() != nil {
		t.Fatal("a filter over 120 keys with a bound of 100")
	}
	res, err := e.Ingest(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Duplicate {
			t.Errorf("event %d ingested again: %+v, want a duplicate", i, r)
		}
	}
}

// During a key rotation, ids recorded under the old key are found through
// the filter too.
func TestIdempotencyFilterDuringKeyRotation(t *testing.T) {
	dir := t.TempDir()
	src := workloadEvents(t, 500, 40)
	now := time.Now()
	oldKey := []byte("seen-test-pseudonym-key-0123456")
	e := openSeenEngine(t, dir, nil)
	decided := map[string]string{}
	for i, ev := range src {
		id := "rot-" + strconv.Itoa(i)
		d, err := e.Evaluate(context.Background(), restamp(ev, id, now))
		if err != nil {
			t.Fatal(err)
		}
		decided[id] = d.GetDecisionId()
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openSeenEngine(t, dir, func(o *Options) {
		o.PseudonymKey = []byte("seen-test-rotated-key-abcdefghij")
		o.OldPseudonymKeys = [][]byte{oldKey}
	})
	defer e.Close()
	waitSeenBuilt(t, e)
	viaOld := 0
	for id, want := range decided {
		if !e.seen.mayContain(e.seenKey(id)) && slices.ContainsFunc(e.oldSeenKeys(id), e.seen.mayContain) {
			viaOld++
		}
		d, err := e.Evaluate(context.Background(), restamp(src[0], id, now))
		if err != nil || d.GetDecisionId() != want {
			t.Errorf("%s after the rotation: decision %s, %v; want the stored %s", id, d.GetDecisionId(), err, want)
		}
	}
	if viaOld < len(decided)-2 {
		t.Errorf("%d of %d ids found through the old key's pseudonym, want nearly all", viaOld, len(decided))
	}
}
