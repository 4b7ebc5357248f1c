package rules

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

// ErrOutOfOrder: a backtest's events went back in time.
var ErrOutOfOrder = errors.New("rules: backtest events are not in time order")

// Label is what became known about an event's decision later.
type Label struct {
	Fraud      bool // labelled fraud
	Overturned bool // the decision was overturned on appeal
}

// BacktestOptions configure Backtest. Live and Events and Features are
// required.
type BacktestOptions struct {
	Live *Set
	// Candidate is compared with Live; nil reports Live alone.
	Candidate *Set
	// Events calls yield for each recorded event in time order and stops
	// at the first error yield returns.
	Events func(yield func(*event.Event) error) error
	// Features recomputes the feature vector as of the event (the caller
	// replays feature state in a scratch store, never the live one).
	Features func(*event.Event) (features.Vector, error)
	// Lists answers list functions; nil means every list is empty.
	Lists Lists
	// Label looks up what is known about an event; nil means nothing.
	Label func(*event.Event) Label
	// Samples bounds the changed decisions kept (default 20).
	Samples int
}

// BacktestReport is what a replay found.
type BacktestReport struct {
	LiveVersion, CandidateVersion string
	Events                        int
	Changed                       int             // events whose outcome changed
	Before, After                 map[Outcome]int // outcome mix, live and candidate
	Rules                         []RuleBacktest  // by rule id
	Samples                       []ChangedDecision
	Elapsed                       time.Duration
}

// RuleBacktest is one rule's numbers over the replay. Hits include shadow
// rules (they run), Fraud and Overturned count hits on labelled events.
type RuleBacktest struct {
	RuleID                              string
	LiveMode, CandidateMode             Mode // empty when the rule is not in that set
	LiveHits, CandidateHits             int
	OutcomesChanged                     int // events it fired on (in either set) whose outcome changed
	LiveFraud, LiveOverturned           int
	CandidateFraud, CandidateOverturned int
}

// ChangedDecision is one event whose outcome the candidate changes.
type ChangedDecision struct {
	EventID       string
	OccurredAt    time.Time
	Before, After Outcome
	BeforeRules   []string
	AfterRules    []string
}

// Backtest replays events through the live set and the candidate. It reads
// only what the caller supplies and counts nothing in the sets' statistics.
func Backtest(opts BacktestOptions) (*BacktestReport, error) {
	if opts.Live == nil || opts.Events == nil || opts.Features == nil {
		return nil, errors.New("rules: backtest needs Live, Events and Features")
	}
	if opts.Samples <= 0 {
		opts.Samples = 20
	}
	start := time.Now()
	rep := &BacktestReport{LiveVersion: opts.Live.version, Before: map[Outcome]int{}, After: map[Outcome]int{}}
	rows := map[string]*RuleBacktest{}
	row := func(id string) *RuleBacktest {
		r := rows[id]
		if r == nil {
			r = &RuleBacktest{RuleID: id}
			rows[id] = r
		}
		return r
	}
	for _, r := range opts.Live.rules {
		row(r.id).LiveMode = r.mode
	}
	if opts.Candidate != nil {
		rep.CandidateVersion = opts.Candidate.version
		for _, r := range opts.Candidate.rules {
			row(r.id).CandidateMode = r.mode
		}
	}
	// A candidate is mostly the live set with a few rules changed: over the
	// same features, its unchanged conditions take the live results.
	var memo *evalMemo
	if c := opts.Candidate; c != nil && sameFeatures(opts.Live.defs, c.defs) {
		memo = &evalMemo{st: statePool.Get().(*evalState), fired: make([]int8, len(opts.Live.rules)), same: make([]int, len(c.rules))}
		defer memo.st.release()
		byWhen := map[string]int{}
		for i, r := range opts.Live.rules {
			byWhen[r.when] = i
		}
		for i, r := range c.rules {
			j, ok := byWhen[r.when]
			if !ok {
				j = -1
			}
			memo.same[i] = j
		}
	}
	var liveFired, candFired []string
	var last time.Time
	err := opts.Events(func(ev *event.Event) error {
		if ev.OccurredAt.Before(last) {
			return fmt.Errorf("%w: event %s at %s after %s", ErrOutOfOrder, ev.EventID, ev.OccurredAt, last)
		}
		last = ev.OccurredAt
		fv, err := opts.Features(ev)
		if err != nil {
			return fmt.Errorf("rules: backtest: features of event %s: %w", ev.EventID, err)
		}
		var label Label
		if opts.Label != nil {
			label = opts.Label(ev)
		}
		liveFired = liveFired[:0]
		before, err := opts.Live.evaluate(ev, fv, opts.Lists, false, func(r *rule) { liveFired = append(liveFired, r.id) }, memo.forFirst(ev, fv, opts.Live.kinds, opts.Lists))
		if err != nil {
			return fmt.Errorf("rules: backtest: event %s: %w", ev.EventID, err)
		}
		after := before
		candFired = candFired[:0]
		if opts.Candidate != nil {
			if after, err = opts.Candidate.evaluate(ev, fv, opts.Lists, false, func(r *rule) { candFired = append(candFired, r.id) }, memo.forSecond()); err != nil {
				return fmt.Errorf("rules: backtest: event %s: %w", ev.EventID, err)
			}
		} else {
			candFired = append(candFired, liveFired...)
		}
		rep.Events++
		rep.Before[before.Outcome]++
		rep.After[after.Outcome]++
		changed := before.Outcome != after.Outcome
		for _, id := range liveFired {
			r := row(id)
			r.LiveHits++
			if label.Fraud {
				r.LiveFraud++
			}
			if label.Overturned {
				r.LiveOverturned++
			}
			if changed {
				r.OutcomesChanged++
			}
		}
		for _, id := range candFired {
			r := row(id)
			r.CandidateHits++
			if label.Fraud {
				r.CandidateFraud++
			}
			if label.Overturned {
				r.CandidateOverturned++
			}
			if changed && !contains(liveFired, id) {
				r.OutcomesChanged++
			}
		}
		if changed {
			rep.Changed++
			if len(rep.Samples) < opts.Samples {
				rep.Samples = append(rep.Samples, ChangedDecision{EventID: ev.EventID, OccurredAt: ev.OccurredAt,
					Before: before.Outcome, After: after.Outcome,
					BeforeRules: append([]string(nil), liveFired...), AfterRules: append([]string(nil), candFired...)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		rep.Rules = append(rep.Rules, *r)
	}
	sort.Slice(rep.Rules, func(i, j int) bool { return rep.Rules[i].RuleID < rep.Rules[j].RuleID })
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// sameFeatures: rules compiled over a and over b read the same feature at
// each index, with the same kind, so one condition is one program.
func sameFeatures(a, b []features.Def) bool {
	return slices.EqualFunc(a, b, func(x, y features.Def) bool { return x.Name == y.Name && x.Kind == y.Kind })
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
