package bench

import (
	"context"
	"io"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// StartEndingAt returns the Start that makes a stream of duration d end at
// end: use it with the real clock's now so that a generated file is fresh
// for riskd, which refuses events older than --max-event-age (24h by
// default) or more than 5 minutes ahead of its clock. Whole seconds, so that
// two runs in the same second match.
func StartEndingAt(end time.Time, d time.Duration) time.Time {
	return end.Add(-d).Truncate(time.Second)
}

// PaceOptions configure a Pacer.
type PaceOptions struct {
	// Clock tells wall time. Default the real clock.
	Clock clock.Clock
	// Speed is simulated seconds per wall-clock second: 1 replays in real
	// time, 60 plays an hour a minute. Default 1.
	Speed float64
	// Sleep waits d or until ctx is done. Default a timer; tests pass a fake
	// that advances their clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Pacer releases a stream's events at wall-clock pace and restamps each one
// with the wall time it is released at, so that a live riskd sees current
// traffic whatever the stream's Start. Not safe for concurrent use.
type Pacer struct {
	src    Source
	opts   PaceOptions
	wall0  time.Time
	stream time.Time // occurred_at of the first event
	begun  bool
}

// NewPacer paces src.
func NewPacer(src Source, opts PaceOptions) *Pacer {
	opts.Clock = clock.Or(opts.Clock)
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	return &Pacer{src: src, opts: opts}
}

// Next waits until the next event is due and returns it, restamped; io.EOF
// at the end of the stream, or ctx's error.
func (p *Pacer) Next(ctx context.Context) (*riskv1.Event, Label, error) {
	ev, l, ok := p.src.Next()
	if !ok {
		return nil, Label{}, io.EOF
	}
	t := ev.GetOccurredAt().AsTime()
	if !p.begun {
		p.begun, p.wall0, p.stream = true, p.opts.Clock.Now(), t
	}
	due := p.wall0.Add(time.Duration(float64(t.Sub(p.stream)) / p.opts.Speed))
	if wait := due.Sub(p.opts.Clock.Now()); wait > 0 {
		if err := p.opts.Sleep(ctx, wait); err != nil {
			return nil, Label{}, err
		}
	}
	ev.OccurredAt = timestamppb.New(due)
	return ev, l, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
