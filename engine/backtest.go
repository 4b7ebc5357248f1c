package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/rules"
)

// BacktestOptions select what Backtest replays.
type BacktestOptions struct {
	// From and To bound the recorded events by event time: From <= t < To.
	// A zero side is unbounded.
	From, To time.Time
	// Live is the set the candidate is compared with; default the set in
	// force (Rules()).
	Live *rules.Set
	// Candidate is compared with Live; nil reports Live alone.
	Candidate *rules.Set
	// Samples bounds the changed decisions reported (default 20).
	Samples int
}

// backtestChunk is how many events one scratch batch carries: features are
// read from memory as each event is applied, and the batch is committed (not
// synced) before their cache entries are released.
const backtestChunk = 1024

// backtestCacheEntries sizes the scratch feature store's cache: a replay
// touches every entity of its window once at least.
const backtestCacheEntries = 1 << 20

// Backtest replays the recorded events of a window in event-time order
// through the live set and a candidate. Features are recomputed as of each
// event in a scratch feature store on an in-memory Pebble, starting empty at
// From, so nothing live is read for features or written at all. Labels
// (fraud, chargeback, and decisions overturned on appeal) come from the
// decision log.
//
// Reading, feature recomputation and rule evaluation run in two goroutines
// joined by a channel, so that a replay uses both cores.
//
// What a backtest cannot see: features whose history starts before From
// (the scratch store starts empty), raw identifiers (events carry their
// pseudonyms, see ingest.FromStored), and list membership as it was: lists
// are read as they are now.
func (e *Engine) Backtest(ctx context.Context, o BacktestOptions) (*rules.BacktestReport, error) {
	live := o.Live
	if live == nil {
		live = e.Rules()
	}
	if live == nil {
		return nil, errors.New("engine: backtest: no live rule set")
	}
	labels, err := e.backtestLabels()
	if err != nil {
		return nil, err
	}
	bl := newBacktestLists(e.lst, e.clock.Now())
	// The scratch store lives in memory: no WAL, and memtables large
	// enough that a replay of hours of traffic rarely flushes (a flush of
	// a small memtable stalls the replay far more than it saves).
	sopts := &pebble.Options{FS: vfs.NewMem(), Merger: features.Merger(), DisableWAL: true,
		MemTableSize: 256 << 20, Cache: pebble.NewCache(64 << 20)}
	defer sopts.Cache.Unref()
	features.ConfigureDB(sopts)
	scratch, err := pebble.Open("", sopts)
	if err != nil {
		return nil, fmt.Errorf("engine: backtest scratch store: %w", err)
	}
	defer scratch.Close()
	fs, err := features.Open(features.Options{
		DB: scratch, Catalog: e.opts.Catalog, Lists: bl, Clock: e.clock, Lateness: e.opts.MaxEventAge,
		CacheEntries: backtestCacheEntries,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: backtest features: %w", err)
	}

	type item struct {
		ev  *event.Event
		vec features.Vector
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []item, 4)
	var prodErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		var (
			b     = scratch.NewBatch()
			buf   = make([]item, 0, backtestChunk)
			pends = make([]*features.Pending, 0, backtestChunk)
		)
		flush := func() error {
			err := b.Commit(pebble.NoSync)
			for _, p := range pends {
				fs.Done(p, err == nil)
			}
			pends = pends[:0]
			b.Reset()
			if err != nil {
				return fmt.Errorf("engine: backtest scratch commit: %w", err)
			}
			if len(buf) > 0 {
				select {
				case chunks <- buf:
				case <-ctx.Done():
					return ctx.Err()
				}
				buf = make([]item, 0, backtestChunk)
			}
			return nil
		}
		err := ingest.ScanEvents(e.db, o.From, o.To, func(pb *riskv1.Event) error {
			ev, err := ingest.FromStored(pb)
			if err != nil {
				return fmt.Errorf("engine: backtest: stored event %s: %w", pb.GetEventId(), err)
			}
			vec, p, err := fs.Apply(ev, b)
			if err != nil {
				return fmt.Errorf("engine: backtest: features of event %s: %w", ev.EventID, err)
			}
			pends = append(pends, p)
			buf = append(buf, item{ev, vec})
			if len(buf) == backtestChunk {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		} else {
			_ = flush()
		}
		_ = b.Close()
		prodErr = err
	}()

	var cur features.Vector
	rep, err := rules.Backtest(rules.BacktestOptions{
		Live: live, Candidate: o.Candidate, Samples: o.Samples, Lists: bl,
		Events: func(yield func(*event.Event) error) error {
			for chunk := range chunks {
				for _, it := range chunk {
					cur = it.vec
					if err := yield(it.ev); err != nil {
						return err
					}
				}
			}
			return nil
		},
		Features: func(*event.Event) (features.Vector, error) { return cur, nil },
		Label:    labels,
	})
	cancel()
	for range chunks { // let the producer finish
	}
	wg.Wait()
	if prodErr != nil && !errors.Is(prodErr, context.Canceled) {
		return nil, prodErr
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// backtestLabels loads what became known about recorded events: labels put
// on events, and labels put on their decisions (an overturned appeal labels
// its decision false_positive with source "appeal"). Labels are few, so they
// are read once, and a replay pays a map lookup per event.
func (e *Engine) backtestLabels() (func(*event.Event) rules.Label, error) {
	byEvent := map[string]rules.Label{}
	merge := func(id string, lb decisions.Label) {
		l := byEvent[id]
		switch {
		case lb.Source == "appeal":
			l.Overturned = true
		case lb.Kind == decisions.LabelConfirmedFraud || lb.Kind == decisions.LabelChargeback:
			l.Fraud = true
		}
		byEvent[id] = l
	}
	err := e.decisions.Labels(func(lb decisions.Label) error {
		switch {
		case lb.EventID != "":
			merge(lb.EventID, lb)
		case lb.DecisionID != "":
			d, err := e.decisions.Get(lb.DecisionID)
			if errors.Is(err, decisions.ErrNotFound) {
				return nil // expired or erased
			}
			if err != nil {
				return err
			}
			merge(d.GetEventId(), lb)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: backtest labels: %w", err)
	}
	if len(byEvent) == 0 {
		return nil, nil
	}
	return func(ev *event.Event) rules.Label { return byEvent[ev.EventID] }, nil
}

// backtestLists answers list questions during a backtest. Recorded events
// carry pseudonyms where the live ones carried raw identifiers, and
// identifier lists store pseudonyms: so an identifier list is matched
// against its stored values directly (loaded once per list), and the other
// kinds go to the live lists.
type backtestLists struct {
	l   *lists.Lists
	now int64 // expiry is judged as of the start of the backtest

	mu  sync.Mutex
	ids map[string]map[string]int64 // identifier list -> pseudonym -> expiry (0: never)
}

func newBacktestLists(l *lists.Lists, now time.Time) *backtestLists {
	return &backtestLists{l: l, now: now.UnixNano(), ids: map[string]map[string]int64{}}
}

// identifiers returns the stored values of an identifier list, or nil for
// any other list.
func (b *backtestLists) identifiers(name string) map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.ids[name]; ok {
		return m
	}
	var m map[string]int64
	if meta, err := b.l.Meta(name); err == nil && meta.Kind == lists.Identifier {
		m = map[string]int64{}
		if ents, err := b.l.Entries(name); err == nil {
			for _, en := range ents {
				var exp int64
				if !en.Expires.IsZero() {
					exp = en.Expires.UnixNano()
				}
				m[en.Value] = exp
			}
		}
	}
	b.ids[name] = m
	return m
}

func (b *backtestLists) Contains(name, value string) bool {
	if b.l == nil {
		return false
	}
	if m := b.identifiers(name); m != nil {
		exp, ok := m[value]
		return ok && (exp == 0 || b.now < exp)
	}
	return b.l.Contains(name, value)
}

func (b *backtestLists) AnyIn(name string, values []string) bool {
	for _, v := range values {
		if b.Contains(name, v) {
			return true
		}
	}
	return false
}

func (b *backtestLists) CountMembers(name string, values []string) int {
	if b.l == nil {
		return 0
	}
	if m := b.identifiers(name); m != nil {
		n := 0
		seen := map[string]bool{}
		for _, v := range values {
			if exp, ok := m[v]; ok && (exp == 0 || b.now < exp) && !seen[v] {
				seen[v] = true
				n++
			}
		}
		return n
	}
	return b.l.CountMembers(name, values)
}
