package rules

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

// Set is a compiled, immutable rule set. Safe for concurrent use.
type Set struct {
	version    string
	files      []File
	rules      []*rule
	byType     [32][]*rule // active and shadow rules that run for each event type
	thresholds Thresholds
	defs       []features.Def
	kinds      []features.Kind

	events [32]atomic.Uint64 // evaluations per event type
	sample atomic.Uint64     // drives cost sampling
}

// costSampleEvery: one evaluation in this many times each rule, so that
// statistics cost two clock reads per rule only rarely.
const costSampleEvery = 64

type ruleCounters struct {
	hits      atomic.Uint64
	sampled   atomic.Uint64
	sampledNs atomic.Uint64
}

func (s *Set) index() {
	for i, r := range s.rules {
		r.idx = i
	}
	for t := range s.byType {
		for _, r := range s.rules {
			if r.mode == ModeDisabled {
				continue
			}
			if r.types == 0 || r.types&(1<<t) != 0 {
				s.byType[t] = append(s.byType[t], r)
			}
		}
	}
}

// Version names the set: "v<N>" when published by a Store, else "sha-...".
func (s *Set) Version() string { return s.version }

// Thresholds returns the set's score thresholds.
func (s *Set) Thresholds() Thresholds { return s.thresholds }

// Files returns copies of the files the set was compiled from, byte for byte.
func (s *Set) Files() []File {
	out := make([]File, len(s.files))
	for i, f := range s.files {
		out[i] = File{Name: f.Name, Data: append([]byte(nil), f.Data...)}
	}
	return out
}

// Features returns the feature definitions the set was typed against.
func (s *Set) Features() []features.Def { return s.defs }

// RuleInfo describes one rule of a Set.
type RuleInfo struct {
	ID          string
	Version     int32
	Description string
	AppliesTo   []string
	When        string
	Action      string // empty for score rules
	Score       int32
	Mode        Mode
	Owner       string
	Tags        []string
	File        string
	Line        int
	Tests       int
	Source      string // the rule's YAML text
}

// Rules lists the set's rules in file order.
func (s *Set) Rules() []RuleInfo {
	out := make([]RuleInfo, len(s.rules))
	for i, r := range s.rules {
		out[i] = RuleInfo{ID: r.id, Version: r.version, Description: r.description, AppliesTo: r.appliesTo, When: r.when,
			Action: r.action, Score: r.score, Mode: r.mode, Owner: r.owner, Tags: r.tags, File: r.file, Line: r.line,
			Tests: len(r.tests), Source: r.source}
	}
	return out
}

// Evaluate runs the set on one event and its feature vector (aligned with
// the Defs the set was compiled with). A rule that fails at run time makes
// Evaluate return a *RuntimeError; the engine then degrades.
func (s *Set) Evaluate(ev *event.Event, fv features.Vector, lists Lists) (Result, error) {
	return s.evaluate(ev, fv, lists, true, nil, nil)
}

// evalMemo lets a backtest evaluate two sets on one event without doing
// the same work twice: both use one evalState (values boxed once), and a
// rule of the second set whose condition is that of a rule the first set
// ran takes that rule's result. Conditions are the same program only over
// the same features (sameFeatures).
type evalMemo struct {
	st     *evalState // reset for the event by forFirst
	second bool       // evaluating the second set
	fired  []int8     // by first-set rule index: 0 not run, 1 fired, -1 not
	same   []int      // by second-set rule index: the first set's rule with its condition, or -1
}

// forFirst readies the memo for the first set's run on ev, forgetting the
// previous event; nil stays nil (no memo).
func (m *evalMemo) forFirst(ev *event.Event, fv features.Vector, kinds []features.Kind, lists Lists) *evalMemo {
	if m != nil {
		m.st.reset(ev, fv, kinds, lists)
		m.second = false
		clear(m.fired)
	}
	return m
}

// forSecond readies the memo for the second set's run on the same event,
// which takes the first set's results for the conditions they share.
func (m *evalMemo) forSecond() *evalMemo {
	if m != nil {
		m.second = true
	}
	return m
}

// evaluate runs the set; record says whether to count statistics (not in
// backtests); fired, when not nil, receives every fired rule; memo, when
// not nil, shares work between two sets (backtests).
func (s *Set) evaluate(ev *event.Event, fv features.Vector, lists Lists, record bool, fired func(r *rule), memo *evalMemo) (Result, error) {
	res := Result{Outcome: Allow, Version: s.version}
	if len(fv) != len(s.kinds) {
		return res, fmt.Errorf("rules: feature vector has %d values, set %s expects %d", len(fv), s.version, len(s.kinds))
	}
	t := int(ev.Type) & 31
	rs := s.byType[t]
	var st *evalState
	if memo != nil {
		st = memo.st
	} else {
		st = statePool.Get().(*evalState)
		defer st.release()
		st.reset(ev, fv, s.kinds, lists)
	}
	e := st.env
	timed := false
	if record {
		s.events[t].Add(1)
		timed = s.sample.Add(1)%costSampleEvery == 0
	}
	var score int32
	act := Outcome(0)
	allow := false
	for _, r := range rs {
		hit, known := false, false
		if memo != nil && memo.second {
			if j := memo.same[r.idx]; j >= 0 && memo.fired[j] != 0 {
				hit, known = memo.fired[j] > 0, true
			}
		}
		if !known {
			st.absent = false
			var t0 time.Time
			if timed {
				t0 = time.Now()
			}
			out, err := st.vm.Run(r.prog, e)
			if timed {
				r.stats.sampled.Add(1)
				r.stats.sampledNs.Add(uint64(time.Since(t0)))
			}
			if err != nil {
				return Result{Version: s.version}, &RuntimeError{RuleID: r.id, Err: err}
			}
			b, _ := out.(bool)
			hit = b && !st.absent
			if memo != nil && !memo.second {
				memo.fired[r.idx] = -1
				if hit {
					memo.fired[r.idx] = 1
				}
			}
		}
		if !hit {
			continue
		}
		if record {
			r.stats.hits.Add(1)
		}
		if fired != nil {
			// Backtests need only which rules fired, not their messages.
			fired(r)
			if r.mode == ModeShadow {
				continue
			}
		} else {
			reason := s.reason(r, st)
			if r.mode == ModeShadow {
				res.Shadow = append(res.Shadow, reason)
				continue
			}
			res.Reasons = append(res.Reasons, reason)
		}
		if r.action == "" {
			score += r.score
		} else if r.outcome == Allow {
			allow = true
		} else if r.outcome > act {
			act = r.outcome
		}
	}
	res.Score = min(score, 100)
	res.Outcome = max(s.thresholds.outcome(res.Score), act, Allow)
	if allow {
		res.Outcome = Allow
	}
	return res, nil
}

func (s *Set) reason(r *rule, st *evalState) Reason {
	rs := Reason{RuleID: r.id, RuleVersion: r.version, Action: r.action, MessageEN: r.en.render(st, "unknown"),
		MessageZH: r.zh.render(st, "未知"), Expression: r.when}
	if r.action == "" {
		rs.Action, rs.Score = "score", r.score
	}
	return rs
}

// RuleStats is one rule's counters since its Set was compiled.
type RuleStats struct {
	RuleID      string
	Mode        Mode
	Evaluations uint64
	Hits        uint64
	HitRate     float64 // hits / evaluations, 0 when never evaluated
	CostNs      float64 // mean evaluation cost, from a sample of evaluations
}

// Stats returns a snapshot of every rule's counters. Evaluations are counted
// per event type at the set level, so the hot path pays one atomic add per
// event, not per rule; backtests are not counted.
func (s *Set) Stats() []RuleStats {
	out := make([]RuleStats, 0, len(s.rules))
	for _, r := range s.rules {
		st := RuleStats{RuleID: r.id, Mode: r.mode}
		if r.mode != ModeDisabled {
			for t := range s.events {
				if r.types == 0 || r.types&(1<<t) != 0 {
					st.Evaluations += s.events[t].Load()
				}
			}
		}
		st.Hits = r.stats.hits.Load()
		if st.Evaluations > 0 {
			st.HitRate = float64(st.Hits) / float64(st.Evaluations)
		}
		if n := r.stats.sampled.Load(); n > 0 {
			st.CostNs = float64(r.stats.sampledNs.Load()) / float64(n)
		}
		out = append(out, st)
	}
	return out
}
