package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// ErrNoSource is returned by Run without a Source.
var ErrNoSource = errors.New("load: no source")

// Evaluator is the one call a run makes; riskv1connect.RiskServiceClient
// satisfies it.
type Evaluator interface {
	Evaluate(context.Context, *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error)
}

// Options configures one run. The zero value (plus a Source) is a 10 s
// closed-loop run with 16 clients.
type Options struct {
	// Source yields the events. Required.
	Source Source
	// Rate, when positive, runs open loop: request i is scheduled at
	// start + i/Rate whatever happened to earlier ones, and its latency is
	// measured from that scheduled time. Zero runs closed loop.
	Rate float64
	// Clients is the closed-loop concurrency. Default 16.
	Clients int
	// ShedBackoff, when positive, is how long a closed-loop client waits
	// after a shed answer (resource_exhausted or unavailable) before it
	// sends again, as a caller honouring overload does: it doubles with
	// every shed in a row, up to 32 times, with full jitter, and resets on
	// any other answer. Zero sends again at once, so that every client keeps
	// the server as busy as it can (and sheds cost the server CPU too).
	ShedBackoff time.Duration
	// MaxInflight bounds the requests in flight in open loop. Default 256.
	// When all are busy, scheduled requests wait (their latency grows) until
	// MaxLag, then are dropped and counted.
	MaxInflight int
	// MaxLag is how late, past its scheduled time, an open-loop request may
	// still be sent; later ones are dropped and counted. Default 1 s;
	// negative never drops.
	MaxLag time.Duration
	// Warmup runs before the measured window and is not recorded. Default 0.
	Warmup time.Duration
	// Duration is the measured window. Default 10 s.
	Duration time.Duration
	// Timeout bounds each request. Default 5 s.
	Timeout time.Duration
	// RunID prefixes every event id. Default: a fresh random id.
	RunID string
	// Target names what is measured in the report ("riskd", "floor").
	Target string
	// Progress, when set, is called about once a second with the counts so
	// far; it must return quickly.
	Progress func(Progress)
	// LatencyLog, when set, receives one CSV line per request of the
	// measured window once the run ends (WriteLatencyLog's format), to line
	// latency up with the server's own logs (GC, flushes, compactions) at a
	// finer grain than the report's per-second timeline.
	LatencyLog io.Writer
}

// Progress is a running count, for a human watching a long run.
type Progress struct {
	Elapsed      time.Duration
	OK, Errors   int64
	Dropped      int64
	Measuring    bool
	LastSecondUS int64 // p99 of ok answers scheduled in the last whole second
}

// Validate reports options that cannot make a run.
func (o Options) Validate() error {
	switch {
	case o.Source == nil:
		return ErrNoSource
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("load: rate %v: want a non-negative number", o.Rate)
	case o.Clients < 0 || o.MaxInflight < 0:
		return errors.New("load: clients and max in flight must not be negative")
	case o.Duration < 0 || o.Warmup < 0 || o.Timeout < 0 || o.ShedBackoff < 0:
		return errors.New("load: durations must not be negative")
	}
	return nil
}

func (o *Options) defaults() {
	if o.Clients <= 0 {
		o.Clients = 16
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 256
	}
	if o.MaxLag == 0 {
		o.MaxLag = time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	if o.Target == "" {
		o.Target = "riskd"
	}
}

// NewRunID returns a short random run id, unique enough to keep one run's
// event ids apart from every other's.
func NewRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rb" + time.Now().UTC().Format("0102T1504") + "-" + hex.EncodeToString(b[:])
}

// run is the state shared by a run's workers.
type run struct {
	opts   Options
	client Evaluator
	rec    *recorder

	srcMu sync.Mutex
	src   Source // guarded by srcMu

	seq      atomic.Int64
	srcEnded atomic.Bool
}

// next returns the next event, stamped for this run, or false when the
// source has run dry.
func (r *run) next(now time.Time) (*riskv1.Event, bool) {
	r.srcMu.Lock()
	ev, ok := r.src.Next()
	r.srcMu.Unlock()
	if !ok || ev == nil {
		r.srcEnded.Store(true)
		return nil, false
	}
	stamp(ev, r.opts.RunID, r.seq.Add(1), now)
	return ev, true
}

// do sends one request scheduled at sched and records it if it belongs to
// the measured window. It returns false when the source has run dry, and
// whether the server shed the request.
func (r *run) do(ctx context.Context, sched time.Time) (more, shed bool) {
	ev, ok := r.next(time.Now())
	if !ok {
		return false, false
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	resp, err := r.client.Evaluate(rctx, connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
	cancel()
	done := time.Now()
	shed = isShed(err)
	if sched.Before(r.rec.start) {
		r.rec.warm()
		return true, shed
	}
	var msg *riskv1.EvaluateResponse
	if err == nil {
		msg = resp.Msg
	}
	r.rec.record(sched, done, msg, err)
	return true, shed
}

// isShed reports whether err is the server refusing work past its capacity.
func isShed(err error) bool {
	c := connect.CodeOf(err)
	return err != nil && (c == connect.CodeResourceExhausted || c == connect.CodeUnavailable)
}

// Run drives client with opts and returns the report of the measured window.
// It returns early, with what it measured, when ctx ends or the source runs
// dry.
func Run(ctx context.Context, client Evaluator, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{opts: opts, client: client, src: opts.Source}

	// Every worker is started and parked before the clock starts, so that
	// goroutine start-up never shows up as latency or eats the window.
	var ready sync.WaitGroup
	gate := make(chan struct{})
	var start, measure, end time.Time
	park := func() bool {
		ready.Done()
		select {
		case <-gate:
			return true
		case <-ctx.Done():
			return false
		}
	}

	var wg sync.WaitGroup
	var next atomic.Int64
	n := opts.Clients
	if opts.Rate > 0 {
		n = opts.MaxInflight
	}
	ready.Add(n)
	for range n {
		wg.Go(func() {
			if !park() {
				return
			}
			if opts.Rate > 0 {
				r.openWorker(ctx, &next, start, end)
			} else {
				r.closedWorker(ctx, end)
			}
		})
	}
	ready.Wait()
	start = time.Now()
	measure = start.Add(opts.Warmup)
	end = measure.Add(opts.Duration)
	r.rec = newRecorder(measure)
	r.rec.keep = opts.LatencyLog != nil
	stopProgress := r.progress(ctx, start)
	close(gate)
	wg.Wait()
	if opts.Rate > 0 {
		// Whatever was scheduled inside the window but never sent (the run
		// ended with a backlog) counts as dropped too.
		due := slots(opts.Rate, end.Sub(start)) - slots(opts.Rate, measure.Sub(start))
		r.rec.mu.Lock()
		unsent := due - r.rec.attempted
		r.rec.mu.Unlock()
		if unsent > 0 && !r.srcEnded.Load() && ctx.Err() == nil {
			r.rec.drop(unsent)
		}
	}
	stopProgress()
	rep := r.report(measure, end)
	if opts.LatencyLog != nil {
		if err := writeLatencyLog(opts.LatencyLog, r.rec.samples); err != nil {
			return rep, fmt.Errorf("load: latency log: %w", err)
		}
	}
	return rep, nil
}

// slots is how many requests the timetable schedules in the first d.
func slots(rate float64, d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds() * rate))
}

// openWorker takes the next slot of the timetable, waits for its time, sends
// and repeats. Workers that fall behind send late, and the lateness counts.
func (r *run) openWorker(ctx context.Context, next *atomic.Int64, start, end time.Time) {
	interval := float64(time.Second) / r.opts.Rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil && !r.srcEnded.Load() {
		i := next.Add(1) - 1
		sched := start.Add(time.Duration(float64(i) * interval))
		if !sched.Before(end) {
			return
		}
		now := time.Now()
		if !now.Before(end) {
			return // a backlog left at the end is counted by Run
		}
		if wait := sched.Sub(now); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if r.opts.MaxLag > 0 && -wait > r.opts.MaxLag {
			if !sched.Before(r.rec.start) {
				r.rec.drop(1)
			}
			continue
		}
		if more, _ := r.do(ctx, sched); !more {
			return
		}
	}
}

func (r *run) closedWorker(ctx context.Context, end time.Time) {
	var b backoff
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		more, shed := r.do(ctx, now)
		if !more {
			return
		}
		if !shed || r.opts.ShedBackoff <= 0 {
			b.sheds = 0
			continue
		}
		wait := b.next(r.opts.ShedBackoff)
		if left := time.Until(end); wait > left {
			wait = left
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// backoff is one closed-loop client's wait after sheds in a row.
type backoff struct{ sheds int }

// maxBackoffDoublings caps the wait at 32 times the first.
const maxBackoffDoublings = 5

// next returns the wait after one more shed: uniform in [0, base*2^n) for
// the n-th in a row (full jitter, so that clients shed together do not come
// back together).
func (b *backoff) next(base time.Duration) time.Duration {
	ceil := base << min(b.sheds, maxBackoffDoublings)
	b.sheds++
	return time.Duration(mrand.Int64N(int64(ceil)) + 1)
}

// progress calls opts.Progress once a second until the returned func is
// called.
func (r *run) progress(ctx context.Context, start time.Time) func() {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case now := <-t.C:
				r.opts.Progress(r.snapshot(now.Sub(start), now))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (r *run) snapshot(elapsed time.Duration, now time.Time) Progress {
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	p := Progress{Elapsed: elapsed, Measuring: !now.Before(rec.start), Dropped: rec.dropped}
	for i := range rec.steps {
		p.OK += rec.steps[i].ok
		p.Errors += rec.steps[i].errs
	}
	if last := int(now.Sub(rec.start)/time.Second) - 1; last >= 0 && last < len(rec.steps) {
		p.LastSecondUS = rec.steps[last].hist.ValueAtQuantile(99)
	}
	return p
}

// Describe says in a line what a run with opts does.
func (o Options) Describe() string {
	o.defaults()
	if o.Rate > 0 {
		return fmt.Sprintf("open loop at %g/s (max %d in flight, drop after %v late)", o.Rate, o.MaxInflight, o.MaxLag)
	}
	return fmt.Sprintf("closed loop with %d clients", o.Clients)
}

// Overload returns the options of an overload run: open loop at rate (meant
// to be above the target's capacity) with enough requests in flight that the
// client never becomes the queue, so what the report's Shed shows is the
// target's own behaviour: how much it refused, how fast, and how long the
// requests it accepted took.
func Overload(src Source, rate float64, d time.Duration) Options {
	return Options{Source: src, Rate: rate, MaxInflight: 2048, MaxLag: 200 * time.Millisecond, Duration: d, Target: "riskd"}
}
