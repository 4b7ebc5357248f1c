package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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
	// MaxStates bounds the feature states the replay holds in memory (one
	// per feature state and entity the window writes, e.g. an account's
	// failed logins); past it Backtest fails with ErrBacktestTooLarge
	// rather than running the process out of memory. Default
	// Options.BacktestMaxStates, else DefaultBacktestMaxStates.
	MaxStates int
}

// ErrBacktestTooLarge: the backtest's window holds more feature states
// than BacktestOptions.MaxStates allows in memory.
var ErrBacktestTooLarge = errors.New("engine: backtest window too large")

// DefaultBacktestMaxStates is the default BacktestOptions.MaxStates. A
// state took about 300 bytes in a replay of the default catalog (128 MiB
// for 442,000), so the default bounds a replay's feature state near 600
// MiB; a distinct count past its exact limit holds sketches and is larger.
// BenchmarkBacktest's 100,000 events write about 265,000 states.
const DefaultBacktestMaxStates = 2 << 20

// backtestChunk is how many events travel from the reader to the rule
// evaluation at once, in one of backtestChunks batches.
const (
	backtestChunk  = 1024
	backtestChunks = 6
)

// backtestParts is how many goroutines compute a replay's features, each a
// part of the catalog (features.OpenScratch); with the rule evaluation that
// makes three, for two cores: the features cost twice the rules.
const backtestParts = 2

// backtestBatch is a chunk of decoded events and their feature vectors.
type backtestBatch struct {
	evs  []event.Event
	vecs []features.Vector // windows of one allocation
	n    int
}

func newBacktestBatch(nfeat int) *backtestBatch {
	c := &backtestBatch{evs: make([]event.Event, backtestChunk), vecs: make([]features.Vector, backtestChunk)}
	slab := make(features.Vector, backtestChunk*nfeat)
	for i := range c.vecs {
		c.vecs[i] = slab[i*nfeat : (i+1)*nfeat : (i+1)*nfeat]
	}
	return c
}

// Backtest replays the recorded events of a window in event-time order
// through the live set and a candidate. Features are recomputed as of each
// event in a scratch feature store (features.OpenScratch: in memory, no
// Pebble), starting empty at From, so nothing live is read for features or
// written at all; its memory grows with the states the window writes,
// bounded by MaxStates. Labels (fraud, chargeback, and decisions overturned
// on appeal) come from the decision log.
//
// The replay is a pipeline of three goroutines, so that it uses both cores:
// reading and decoding (ingest.DecodeStored) with one part of the features,
// the other part, and the rules, which evaluate the candidate's unchanged
// conditions once for both sets. Events and vectors move in reused batches.
// BenchmarkBacktest (100,000 events, the bundled set and a candidate) on
// the 2-core VM, 2026-11-28: 91,000-105,000 events/s at load average 3-3.6,
// 34,000-62,000 at 4-6.6, 16-25 CPU µs an event (before: 7,100-12,000
// events/s, 80-90 CPU µs, with the features on an in-memory Pebble). The
// CPU is about 11 µs features, 4 rules, 2 reading and decoding, the rest
// garbage collection and scheduling; above load 3 the other processes take
// the second core and the rate follows the CPU per event.
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
	maxStates := o.MaxStates
	if maxStates <= 0 {
		maxStates = e.opts.BacktestMaxStates
	}
	if maxStates <= 0 {
		maxStates = DefaultBacktestMaxStates
	}
	stores, index, err := features.OpenScratch(features.Options{
		Catalog: e.opts.Catalog, Lists: bl.view(), Clock: e.clock, Lateness: e.opts.MaxEventAge,
		CacheEntries: maxStates,
	}, backtestParts)
	if err != nil {
		return nil, fmt.Errorf("engine: backtest features: %w", err)
	}
	// apply computes part k's features of ev into vec (through tmp).
	apply := func(k int, tmp features.Vector, ev *event.Event, vec features.Vector) error {
		v, _, err := stores[k].ApplyTo(tmp, ev, nil)
		if errors.Is(err, features.ErrScratchFull) {
			return fmt.Errorf("%w: the window holds more than %d feature states; replay a shorter window", ErrBacktestTooLarge, maxStates)
		}
		if err != nil {
			return fmt.Errorf("engine: backtest: features of event %s: %w", ev.EventID, err)
		}
		for j, i := range index[k] {
			vec[i] = v[j]
		}
		return nil
	}

	// Events and vectors travel in batches from stage to stage and back to
	// the reader once evaluated, so a replay allocates them once. No send
	// blocks: each channel holds every batch there is.
	nfeat := len(e.opts.Catalog.Defs())
	free := make(chan *backtestBatch, backtestChunks)
	for range backtestChunks {
		free <- newBacktestBatch(nfeat)
	}
	pipe := make([]chan *backtestBatch, backtestParts+1) // pipe[k]: into stage k; pipe[backtestParts]: into the rules
	for k := 1; k <= backtestParts; k++ {
		pipe[k] = make(chan *backtestBatch, backtestChunks)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stageErr := make([]error, backtestParts)
	var wg sync.WaitGroup
	wg.Add(backtestParts)
	// Stage 0 reads and decodes, and computes part 0 of the features.
	go func() {
		defer wg.Done()
		defer close(pipe[1])
		tmp := make(features.Vector, len(index[0]))
		var c *backtestBatch
		take := func() error {
			select {
			case c = <-free:
				c.n = 0
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := take()
		if err == nil {
			err = ingest.ScanStored(e.db, o.From, o.To, func(k, v []byte) error {
				ev := &c.evs[c.n]
				if err := ingest.DecodeStored(ev, v); err != nil {
					// The key, not the event id: a record that does not
					// decode may not have one.
					return fmt.Errorf("engine: backtest: stored event at key %x: %w", k, err)
				}
				if err := apply(0, tmp, ev, c.vecs[c.n]); err != nil {
					return err
				}
				if c.n++; c.n == len(c.evs) {
					pipe[1] <- c
					return take()
				}
				return nil
			})
		}
		if err == nil && c.n > 0 {
			pipe[1] <- c
		}
		if err != nil {
			cancel()
		}
		stageErr[0] = err
	}()
	// Stages 1.. compute the other parts.
	for k := 1; k < backtestParts; k++ {
		go func() {
			defer wg.Done()
			defer close(pipe[k+1])
			tmp := make(features.Vector, len(index[k]))
			for c := range pipe[k] {
				if ctx.Err() != nil {
					return
				}
				for i := range c.n {
					if err := apply(k, tmp, &c.evs[i], c.vecs[i]); err != nil {
						stageErr[k] = err
						cancel()
						return
					}
				}
				pipe[k+1] <- c
			}
		}()
	}

	var cur features.Vector
	rep, err := rules.Backtest(rules.BacktestOptions{
		Live: live, Candidate: o.Candidate, Samples: o.Samples, Lists: bl.view(),
		Events: func(yield func(*event.Event) error) error {
			for c := range pipe[backtestParts] {
				for i := range c.n {
					cur = c.vecs[i]
					if err := yield(&c.evs[i]); err != nil {
						return err
					}
				}
				free <- c
			}
			return nil
		},
		Features: func(*event.Event) (features.Vector, error) { return cur, nil },
		Label:    labels,
	})
	cancel()
	for range pipe[backtestParts] { // let the stages finish
	}
	wg.Wait()
	for _, err := range stageErr {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
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
//
// Each goroutine of the replay asks through its own view (listView), which
// remembers the live lists' answers: a replay asks about the same values
// again and again (every device reports the same apps), and a live list
// confirms each bloom filter hit with a read.
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

// backtestListMemo bounds the answers one view remembers per list.
const backtestListMemo = 1 << 18

// listView is one goroutine's view of a backtestLists; it is not safe for
// concurrent use.
type listView struct {
	b     *backtestLists
	lists map[string]*viewList
	seen  map[string]struct{} // CountMembers' scratch
}

// viewList is what a view knows of one list.
type viewList struct {
	ids  map[string]int64 // an identifier list's pseudonyms (shared, read only)
	memo map[string]bool  // another list's answers so far
}

func (b *backtestLists) view() *listView {
	return &listView{b: b, lists: map[string]*viewList{}, seen: map[string]struct{}{}}
}

func (v *listView) Contains(name, value string) bool {
	if v.b.l == nil {
		return false
	}
	l := v.lists[name]
	if l == nil {
		l = &viewList{ids: v.b.identifiers(name)}
		if l.ids == nil {
			l.memo = map[string]bool{}
		}
		v.lists[name] = l
	}
	if l.ids != nil {
		exp, ok := l.ids[value]
		return ok && (exp == 0 || v.b.now < exp)
	}
	if in, ok := l.memo[value]; ok {
		return in
	}
	in := v.b.l.Contains(name, value)
	if len(l.memo) < backtestListMemo {
		l.memo[strings.Clone(value)] = in
	}
	return in
}

func (v *listView) AnyIn(name string, values []string) bool {
	for _, x := range values {
		if v.Contains(name, x) {
			return true
		}
	}
	return false
}

func (v *listView) CountMembers(name string, values []string) int {
	n := 0
	clear(v.seen)
	for _, x := range values {
		if _, dup := v.seen[x]; dup || x == "" {
			continue
		}
		v.seen[x] = struct{}{}
		if v.Contains(name, x) {
			n++
		}
	}
	return n
}
