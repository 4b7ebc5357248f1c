package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/ingest"
)

// result is what the pipeline goroutine hands back.
type result struct {
	d   *riskv1.Decision
	err error
}

// run coordinates the two paths of one evaluation: the pipeline goroutine
// and the caller waiting on the budget. Exactly one of them records a
// decision for the event (claim), and exactly one releases the event id
// (state): the caller, unless it answered early while the pipeline was still
// committing, in which case the pipeline releases it once its commit is done,
// so that a retry cannot decide the event twice.
type run struct {
	claimed atomic.Bool
	state   atomic.Int32 // runRunning, runAbandoned, runFinished
	key     string
	call    *call
	res     result        // the pipeline's, once out is signalled
	out     chan struct{} // buffered: the pipeline never waits on it
	// late, set by the overrun path before it claims the event, carries
	// its answer to the pipeline when recording it failed (nil when it
	// landed or still may), so that the pipeline records it instead.
	late chan *riskv1.Decision
	// pipelined: a pipeline runs for the event and releases the
	// evaluation's slot (Engine.slots) when it ends. Set before it starts.
	pipelined bool
}

const (
	runRunning int32 = iota
	runAbandoned
	runFinished
)

func (r *run) claim() bool { return r.claimed.CompareAndSwap(false, true) }

// Overloaded reports whether an Evaluate starting now would be shed with
// ErrOverloaded, so that a server can refuse it before decoding the
// request. Evaluate checks again: one that passes here may still be shed.
func (e *Engine) Overloaded() bool { return !e.admission.admits(len(e.slots)) }

// Evaluate validates, decides and durably records one event. Invalid input
// returns an error matching ingest.ErrInvalid and changes nothing. Internal
// faults and overruns do not return errors: they return the event type's
// fail mode, marked degraded.
func (e *Engine) Evaluate(ctx context.Context, pb *riskv1.Event) (*riskv1.Decision, error) {
	arrived := time.Now()
	if err := ctx.Err(); err != nil {
		// The caller gave up while the request queued (an overloaded server
		// reads requests late): deciding it now would only take capacity
		// from callers still waiting. Nothing is recorded; a retry decides.
		return nil, err
	}
	if e.Overloaded() {
		return nil, ErrOverloaded
	}
	select {
	case e.slots <- struct{}{}:
	default:
		return nil, ErrOverloaded
	}
	// The slot is held until the work is done, not until the answer: a
	// pipeline that overran the budget keeps it (and its memory) until it
	// ends, so that overruns shed new requests instead of piling up
	// pipelines without bound.
	var r *run
	defer func() {
		if r == nil || !r.pipelined {
			<-e.slots
		}
	}()
	ev, stored, err := e.norm.Normalize(pb)
	if err != nil {
		return nil, err
	}
	deadline := arrived.Add(e.opts.Budget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	key := e.seenKey(ev.EventID)
	skey := string(key)
	c, leader := e.inflight.begin(skey)
	if !leader {
		// The same event is being decided right now: share its answer.
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-c.done:
			return c.d, c.err
		case <-t.C:
			d := e.newDecision(ev, stored, e.clock.Now())
			e.degrade(d, ev.Type, "a request with the same event id is still in flight; not recorded")
			return d, nil
		}
	}
	r = &run{key: skey, call: c, out: make(chan struct{}, 1)}
	d, err, handedOff := e.evaluateLeader(ev, stored, key, arrived, deadline, r)
	if !handedOff {
		e.inflight.end(r.key, c, d, err)
	}
	answered := time.Now()
	e.admission.answered(answered, answered.Sub(arrived))
	return d, err
}

// evaluateLeader answers for the first request of an event id. handedOff
// reports that the pipeline, still committing, will release the event id.
func (e *Engine) evaluateLeader(ev *event.Event, stored *riskv1.Event, key []byte, arrived, deadline time.Time, r *run) (d *riskv1.Decision, err error, handedOff bool) {
	prev, seen, err := e.lookupSeen(key, ev.EventID)
	switch {
	case err != nil:
		e.log.Error("idempotency lookup failed", "err", err)
		d := e.newDecision(ev, stored, e.clock.Now())
		e.degrade(d, ev.Type, "store unavailable; not recorded")
		return d, nil, false
	case seen && prev == nil:
		return nil, ErrIngested, false
	case seen:
		return prev, nil, false
	}

	r.pipelined = true // the pipeline gives the slot back
	go e.pipeline(ev, stored, key, arrived, r)

	// Keep a fifth of the budget to record the fail mode if the pipeline
	// overruns.
	soft := deadline.Add(-time.Until(deadline) / 5)
	t := newTimer(time.Until(soft))
	defer putTimer(t)
	select {
	case <-r.out:
		return r.res.d, r.res.err, false
	case <-t.C:
	}
	r.late = make(chan *riskv1.Decision, 1)
	if r.claim() {
		d := e.newDecision(ev, stored, e.clock.Now())
		e.degrade(d, ev.Type, "budget exceeded before a decision")
		e.overranLog.Log(e.clock.Now(), "event_type", ev.Type.String(), "budget", e.opts.Budget)
		err := e.record(deadline, d, ev, stored, key, nil)
		var unrecorded *riskv1.Decision
		if err != nil && !errors.Is(err, errStillCommitting) {
			unrecorded = proto.Clone(d).(*riskv1.Decision) // d goes to the caller
		}
		r.late <- unrecorded
		if err != nil {
			d.DegradedReason += "; not recorded yet: " + err.Error()
		}
		return d, nil, false
	}
	// The pipeline is committing its decision: wait for the store until
	// the hard deadline.
	t.Reset(time.Until(deadline))
	select {
	case <-r.out:
		return r.res.d, r.res.err, false
	case <-t.C:
	}
	if !r.state.CompareAndSwap(runRunning, runAbandoned) {
		<-r.out // finished just now
		return r.res.d, r.res.err, false
	}
	d = e.newDecision(ev, stored, e.clock.Now())
	e.degrade(d, ev.Type, "store stalled past the budget; not recorded yet")
	e.stalledLog.Log(e.clock.Now(), "budget", e.opts.Budget)
	return d, nil, true
}

// finish hands the pipeline's result to the waiting caller, or, when the
// caller has answered already, releases the event id itself.
func (e *Engine) finish(r *run, res result) {
	if r.state.CompareAndSwap(runRunning, runFinished) {
		r.res = res
		r.out <- struct{}{}
		return
	}
	e.inflight.end(r.key, r.call, res.d, res.err)
}

// record commits a decision (and b's writes, if any) with the idempotency
// key and the stored event, waiting at most until deadline. d must be the
// caller's alone: record lends its features and event to the encoder.
func (e *Engine) record(deadline time.Time, d *riskv1.Decision, ev *event.Event, stored *riskv1.Event, key []byte, b *pebble.Batch) error {
	if b == nil {
		b = e.db.NewBatch()
	}
	buf := eventBufs.Get().(*[]byte)
	evb, err := e.stage(b, *buf, d, stored, key)
	if err == nil {
		*buf = evb
	}
	if err == nil && d.Event != stored {
		evb, err = marshalDet(d.Event)
	}
	var prep *decisions.Pending
	if err == nil {
		// The record carries the event's bytes as the event log has them
		// (encoded once), and the features encoded without reflection.
		feats, event := d.Features, d.Event
		d.Features, d.Event = nil, nil
		prep, err = e.decisions.PrepareParts(d, ev.P.Account, feats, evb)
		d.Features, d.Event = feats, event
	}
	// The batch and the record have copied the event's bytes.
	if cap(*buf) <= maxPooledEvent {
		eventBufs.Put(buf)
	}
	if err != nil {
		_ = b.Close()
		return err
	}
	return e.committer.commitDecision(deadline, b, prep, key)
}

// stage writes the idempotency key and the stored event and returns the
// event's encoding, in buf's storage.
func (e *Engine) stage(b *pebble.Batch, buf []byte, d *riskv1.Decision, stored *riskv1.Event, key []byte) ([]byte, error) {
	if err := b.Set(key, []byte(d.DecisionId), nil); err != nil {
		return nil, err
	}
	return ingest.AppendEvent(b, buf, stored)
}

// eventBufs recycles the buffers stored events are encoded into (about
// 700 bytes each); maxPooledEvent bounds the ones kept.
var eventBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledEvent = 16 << 10

// vectorPool recycles the feature vectors of evaluations (a kilobyte and a
// half each with the default catalog).
var vectorPool = sync.Pool{New: func() any { return new(features.Vector) }}

// pipeline reads and updates features, runs the rules, and records the
// decision, unless the overrun path claimed the event first.
func (e *Engine) pipeline(ev *event.Event, stored *riskv1.Event, key []byte, arrived time.Time, r *run) {
	defer func() { <-e.slots }() // Evaluate's, taken over (run.pipelined)

	mine := false // this goroutine claimed the event
	var pending *features.Pending
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		// A flush waits for every Apply to settle (features/writeback.go).
		e.features.Done(pending, false)
		e.log.Error("evaluate pipeline panicked", "panic", fmt.Sprint(p))
		d := e.newDecision(ev, stored, e.clock.Now())
		e.degrade(d, ev.Type, "internal fault")
		switch {
		case r.claim():
			if err := e.record(time.Now().Add(e.opts.Budget), d, ev, stored, key, nil); err != nil {
				d.DegradedReason += "; not recorded: " + err.Error()
			}
		case mine:
			d.DegradedReason += "; not recorded"
		default:
			return // the caller claimed, recorded and answered
		}
		e.finish(r, result{d: d})
	}()
	b := e.db.NewBatch()
	set := e.Rules()
	now := e.clock.Now()
	d := e.newDecision(ev, stored, now)
	d.RulesetVersion = set.Version()

	if filled, err := e.profiles.Fill(ev); err != nil {
		e.log.Warn("device profile read failed", "err", err)
	} else if filled != 0 {
		// Record what the rules see, so that replay reproduces it.
		stored = withFilledDevice(stored, ev)
		d.Event = stored
	}
	vp := vectorPool.Get().(*features.Vector)
	vec, pending, ferr := e.features.ApplyTo(*vp, ev, b)
	if ferr == nil {
		ferr = e.profiles.Record(ev, b)
	}
	if ferr != nil {
		e.log.Error("feature read failed", "err", ferr)
		if pending != nil {
			e.features.Done(pending, false)
			pending = nil
		}
		b.Reset()
		e.degrade(d, ev.Type, "features unavailable")
	} else {
		defs := e.defs
		d.Features = featureMap(defs, vec)
		d.DataCategories = categories(ev, defs, vec)
		res, rerr := set.Evaluate(ev, vec, e.lists())
		if rerr != nil {
			e.log.Error("rule evaluation failed", "ruleset", set.Version(), "err", rerr)
			e.degrade(d, ev.Type, "rules failed")
		} else {
			d.Outcome = riskv1.Outcome(res.Outcome)
			d.Score = res.Score
			d.Reasons = reasonsPB(res.Reasons)
			d.ShadowReasons = reasonsPB(res.Shadow)
		}
	}
	// The decision holds copies of the values now.
	*vp = vec
	vectorPool.Put(vp)
	d.Latency = durationPB(time.Since(arrived))

	if mine = r.claim(); !mine {
		// The overrun path answered with the fail mode and recorded it with
		// the event but without its features: commit those now, so that the
		// event counts (overload must not blind the velocity features) and
		// the features' flush, which waits for this Apply, goes on. When
		// the overrun path could not record its answer, record it here with
		// them, so that a retry returns it and the event counts once.
		var err error
		switch unrecorded := <-r.late; {
		case unrecorded != nil:
			err = e.record(time.Now().Add(time.Hour), unrecorded, ev, stored, key, b)
		case b.Empty():
			_ = b.Close()
		default:
			err = e.committer.commit(context.Background(), b, nil)
		}
		e.features.Done(pending, err == nil)
		if err != nil {
			e.profiles.Forget(ev)
		}
		return
	}
	err := e.record(time.Now().Add(time.Hour), d, ev, stored, key, b)
	if pending != nil {
		e.features.Done(pending, err == nil)
	}
	if err != nil {
		e.profiles.Forget(ev)
		e.log.Error("recording the decision failed", "err", err)
		if errors.Is(err, ErrClosed) {
			e.finish(r, result{err: err})
			return
		}
		e.degrade(d, ev.Type, "store unavailable; not recorded")
	}
	e.finish(r, result{d: d})
}
