package quality

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/bench"
)

// ErrNoLabel is returned by ReadNDJSON for an event the labels file does not
// name.
var ErrNoLabel = errors.New("quality: event without a label")

// Item is one labelled event.
type Item struct {
	Event *riskv1.Event
	Label bench.Label
}

// Drain reads src to its end.
func Drain(src bench.Source) []Item {
	var out []Item
	for {
		ev, l, ok := src.Next()
		if !ok {
			return out
		}
		out = append(out, Item{Event: ev, Label: l})
	}
}

// ReadNDJSON reads an events file (one Event a line in the contract's JSON
// form) and pairs each event with its label.
func ReadNDJSON(events io.Reader, labels map[string]bench.Label) ([]Item, error) {
	var out []Item
	sc := bufio.NewScanner(events)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev := &riskv1.Event{}
		if err := protojson.Unmarshal(b, ev); err != nil {
			return nil, fmt.Errorf("quality: events line %d: %w", line, err)
		}
		l, ok := labels[ev.GetEventId()]
		if !ok {
			return nil, fmt.Errorf("%w: line %d, event %q", ErrNoLabel, line, ev.GetEventId())
		}
		out = append(out, Item{Event: ev, Label: l})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("quality: read events: %w", err)
	}
	return out, nil
}

// Restamp says whether Run shifts the stream's timestamps.
type Restamp int

const (
	// RestampAuto shifts the stream to end now when its first event is
	// older than MaxAge allows or its last is in the future.
	RestampAuto Restamp = iota
	// RestampAlways shifts the stream to end now.
	RestampAlways
	// RestampNever sends the timestamps as they are.
	RestampNever
)

// Options configure Run. Risk is required; the rest has defaults.
type Options struct {
	Risk riskv1connect.RiskServiceClient
	// Now is the wall clock restamping aims at. Default time.Now.
	Now func() time.Time
	// Restamp, default RestampAuto.
	Restamp Restamp
	// MaxAge is riskd's --max-event-age. Default 24h.
	MaxAge time.Duration
	// IngestBatch is the most events one Ingest message carries. Default 500.
	IngestBatch int
	// Progress, when set, is called every 1,000 events with the count done.
	Progress func(done, total int)
}

// Evaluated types go through Evaluate; the rest through Ingest.
func evaluated(t riskv1.EventType) bool {
	switch t {
	case riskv1.EventType_EVENT_TYPE_SERVICE_LOG, riskv1.EventType_EVENT_TYPE_DEVICE_REPORT:
		return false
	}
	return true
}

// Run sends items, in the order given (a bench stream is in time order),
// through riskd and builds the report. It stops at the first error that is
// not riskd refusing one event; refused events are counted as Errors.
func Run(ctx context.Context, items []Item, o Options) (*Report, error) {
	if o.Risk == nil {
		return nil, errors.New("quality: no RiskService client")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.IngestBatch <= 0 {
		o.IngestBatch = 500
	}
	a := newAccumulator()
	if len(items) > 0 {
		first, last := items[0].Event.GetOccurredAt().AsTime(), items[len(items)-1].Event.GetOccurredAt().AsTime()
		now := o.Now()
		if o.Restamp == RestampAlways || (o.Restamp == RestampAuto && (first.Before(now.Add(-o.MaxAge+10*time.Minute)) || last.After(now))) {
			a.r.Shift = now.Add(-time.Second).Sub(last)
		}
	}
	var pending []*riskv1.Event
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		st := o.Risk.Ingest(ctx)
		for i := 0; i < len(pending); i += o.IngestBatch {
			j := min(i+o.IngestBatch, len(pending))
			if err := st.Send(&riskv1.IngestRequest{Events: pending[i:j]}); err != nil && !errors.Is(err, io.EOF) {
				break // CloseAndReceive has the reason
			}
		}
		res, err := st.CloseAndReceive()
		if err != nil {
			return fmt.Errorf("quality: ingest: %w", err)
		}
		a.r.Ingested += int(res.Msg.GetAccepted() + res.Msg.GetDuplicates())
		a.r.Errors += len(res.Msg.GetErrors())
		if len(res.Msg.GetErrors()) > 0 && a.r.FirstError == "" {
			a.r.FirstError = res.Msg.GetErrors()[0].String()
		}
		pending = pending[:0]
		return nil
	}
	for i, it := range items {
		ev := it.Event
		if a.r.Shift != 0 {
			ev = cloneShifted(ev, a.r.Shift)
		}
		a.r.Events++
		a.scenario(it.Label).Events++
		if !evaluated(ev.GetType()) {
			pending = append(pending, ev)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		res, err := o.Risk.Evaluate(ctx, connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
		if err != nil {
			if connect.CodeOf(err) == connect.CodeInvalidArgument || connect.CodeOf(err) == connect.CodeFailedPrecondition {
				a.r.Errors++
				if a.r.FirstError == "" {
					a.r.FirstError = fmt.Sprintf("%s: %v", ev.GetEventId(), err)
				}
				continue
			}
			return nil, fmt.Errorf("quality: evaluate %s: %w", ev.GetEventId(), err)
		}
		a.add(ev.GetType(), it.Label, res.Msg.GetDecision())
		if o.Progress != nil && (i+1)%1000 == 0 {
			o.Progress(i+1, len(items))
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return a.finish(), nil
}

func cloneShifted(ev *riskv1.Event, d time.Duration) *riskv1.Event {
	c := proto.Clone(ev).(*riskv1.Event)
	c.OccurredAt = timestamppb.New(ev.GetOccurredAt().AsTime().Add(d))
	return c
}

// Report is the outcome of one run.
type Report struct {
	Events     int           `json:"events"`
	Evaluated  int           `json:"evaluated"`
	Ingested   int           `json:"ingested"`
	Degraded   int           `json:"degraded"`
	Errors     int           `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Shift      time.Duration `json:"shift_ns"`

	Scenarios []*ScenarioReport `json:"scenarios"`
	// AccountFP covers benign logins, payments, registrations and password
	// resets (false positive: CHALLENGE or above); CheckinFP benign check-ins
	// (REVIEW or above).
	AccountFP Rate          `json:"account_false_positives"`
	CheckinFP Rate          `json:"checkin_false_positives"`
	Rules     []*RuleReport `json:"rules"`
}

// Rate is a count out of a total.
type Rate struct {
	Count int     `json:"count"`
	Total int     `json:"total"`
	Rate  float64 `json:"rate"`
}

func (r *Rate) add(hit bool) {
	r.Total++
	if hit {
		r.Count++
	}
}

func (r *Rate) finish() {
	if r.Total > 0 {
		r.Rate = float64(r.Count) / float64(r.Total)
	}
}

// ScenarioReport is one scenario's figures.
type ScenarioReport struct {
	Scenario  string `json:"scenario"`
	Attack    bool   `json:"attack"`
	Expect    string `json:"expect,omitempty"`
	Events    int    `json:"events"`
	Evaluated int    `json:"evaluated"`
	// Detection: caught out of the evaluated events whose label has Expect.
	Detection Rate `json:"detection"`
	// FalsePositives: flagged out of the evaluated benign events.
	FalsePositives Rate `json:"false_positives"`
}

// RuleReport is one rule's hits; Precision is the share of its hits on
// attack events.
type RuleReport struct {
	RuleID     string  `json:"rule_id"`
	Shadow     bool    `json:"shadow,omitempty"`
	Hits       int     `json:"hits"`
	AttackHits int     `json:"attack_hits"`
	Precision  float64 `json:"precision"`
}

type accumulator struct {
	r     *Report
	scens map[bench.Scenario]*ScenarioReport
	rules map[string]*RuleReport
}

func newAccumulator() *accumulator {
	return &accumulator{r: &Report{}, scens: map[bench.Scenario]*ScenarioReport{}, rules: map[string]*RuleReport{}}
}

func (a *accumulator) scenario(l bench.Label) *ScenarioReport {
	s := a.scens[l.Scenario]
	if s == nil {
		s = &ScenarioReport{Scenario: string(l.Scenario), Attack: l.Attack}
		if info, ok := bench.Lookup(l.Scenario); ok {
			s.Attack, s.Expect = info.Attack, info.Expect
		}
		a.scens[l.Scenario] = s
	}
	return s
}

// FalsePositive reports whether outcome o on a benign event of type t is a
// false positive.
func FalsePositive(t riskv1.EventType, o riskv1.Outcome) bool {
	if t == riskv1.EventType_EVENT_TYPE_ATTENDANCE {
		return o >= riskv1.Outcome_OUTCOME_REVIEW
	}
	return o >= riskv1.Outcome_OUTCOME_CHALLENGE
}

func (a *accumulator) add(t riskv1.EventType, l bench.Label, d *riskv1.Decision) {
	a.r.Evaluated++
	if d.GetDegraded() {
		a.r.Degraded++
	}
	s := a.scenario(l)
	s.Evaluated++
	o := d.GetOutcome()
	switch {
	case l.ExpectOutcome() != riskv1.Outcome_OUTCOME_UNSPECIFIED:
		s.Detection.add(l.Caught(o))
	case !l.Attack:
		fp := FalsePositive(t, o)
		s.FalsePositives.add(fp)
		if t == riskv1.EventType_EVENT_TYPE_ATTENDANCE {
			a.r.CheckinFP.add(fp)
		} else {
			a.r.AccountFP.add(fp)
		}
	}
	hit := func(id string, shadow bool) {
		key := id
		if shadow {
			key += " (shadow)"
		}
		r := a.rules[key]
		if r == nil {
			r = &RuleReport{RuleID: id, Shadow: shadow}
			a.rules[key] = r
		}
		r.Hits++
		if l.Attack {
			r.AttackHits++
		}
	}
	for _, re := range d.GetReasons() {
		hit(re.GetRuleId(), false)
	}
	for _, re := range d.GetShadowReasons() {
		hit(re.GetRuleId(), true)
	}
}

func (a *accumulator) finish() *Report {
	order := map[bench.Scenario]int{}
	for i, s := range bench.Scenarios() {
		order[s.Name] = i
	}
	for name, s := range a.scens {
		s.Detection.finish()
		s.FalsePositives.finish()
		_ = name
		a.r.Scenarios = append(a.r.Scenarios, s)
	}
	sort.Slice(a.r.Scenarios, func(i, j int) bool {
		oi, iok := order[bench.Scenario(a.r.Scenarios[i].Scenario)]
		oj, jok := order[bench.Scenario(a.r.Scenarios[j].Scenario)]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return a.r.Scenarios[i].Scenario < a.r.Scenarios[j].Scenario
	})
	for _, r := range a.rules {
		if r.Hits > 0 {
			r.Precision = float64(r.AttackHits) / float64(r.Hits)
		}
		a.r.Rules = append(a.r.Rules, r)
	}
	sort.Slice(a.r.Rules, func(i, j int) bool {
		if a.r.Rules[i].Shadow != a.r.Rules[j].Shadow {
			return !a.r.Rules[i].Shadow
		}
		return a.r.Rules[i].RuleID < a.r.Rules[j].RuleID
	})
	a.r.AccountFP.finish()
	a.r.CheckinFP.finish()
	return a.r
}
