package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// shedding admits cap requests at a time, each taking work, and refuses the
// rest at once, as riskd must past capacity.
type shedding struct {
	FloorHandler
	slots chan struct{}
	work  time.Duration
	code  connect.Code
	queue bool // wait for a slot instead of refusing
}

func (s *shedding) Evaluate(ctx context.Context, req *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error) {
	if s.queue {
		s.slots <- struct{}{}
	} else {
		select {
		case s.slots <- struct{}{}:
		default:
			return nil, connect.NewError(s.code, errors.New("overloaded"))
		}
	}
	defer func() { <-s.slots }()
	time.Sleep(s.work)
	return s.FloorHandler.Evaluate(ctx, req)
}

// overloadRun offers 50/s for 1.5 s to a handler that can do one request of
// 50 ms at a time (20/s), either refusing the excess with code or, when
// queue is set, making it wait.
func overloadRun(t *testing.T, code connect.Code, queue bool) *Report {
	t.Helper()
	h := &shedding{slots: make(chan struct{}, 1), work: 50 * time.Millisecond, code: code, queue: queue}
	f, err := StartFloor(FloorOptions{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	c := newClient(t, ClientOptions{BaseURL: f.URL})
	opts := Overload(NewRandomSource(RandomOptions{}), 50, 1500*time.Millisecond)
	opts.MaxInflight = 32 // enough here; 2048 idle goroutines would only slow the test
	rep, err := Run(t.Context(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Shed
	t.Logf("queue %v: accepted %d shed %d (%.0f%%) other %d dropped %d; accepted p99 %.1f ms, shed p99 %.1f ms",
		queue, s.Accepted, s.Shed, 100*s.ShedFraction, s.OtherErrors, rep.Requests.Dropped, s.AcceptedP99MS, s.ShedP99MS)
	return rep
}

func TestOverloadSplitsAcceptedAndShed(t *testing.T) {
	for _, code := range []connect.Code{connect.CodeResourceExhausted, connect.CodeUnavailable} {
		t.Run(code.String(), func(t *testing.T) {
			retry(t, func() (problems []string) {
				complain := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
				// The control: a server that queues instead of shedding. Its
				// accepted p99 grows with the backlog, which is what the split
				// must tell apart.
				queued := overloadRun(t, code, true)
				if queued.Shed.Shed != 0 || queued.Shed.AcceptedP99MS < 300 {
					complain("queueing control: %+v, want no shedding and a long p99", queued.Shed)
				}
				rep := overloadRun(t, code, false)
				s := rep.Shed
				if s.Accepted == 0 || s.Shed == 0 || s.OtherErrors != 0 {
					complain("shed %+v, want both accepted and shed, nothing else", s)
				}
				if s.Accepted+s.Shed != rep.Requests.Sent || rep.Errors[code.String()] != s.Shed {
					complain("split %+v does not add up to %+v / %v", s, rep.Requests, rep.Errors)
				}
				if s.ShedFraction < 0.3 || s.ShedFraction > 0.9 {
					complain("shed fraction %.2f, want about 0.6 (20 of 50/s accepted)", s.ShedFraction)
				}
				// Shedding at once keeps the accepted ones near their 50 ms.
				if s.AcceptedP99MS < 50 || s.AcceptedP99MS > 300 || 2*s.AcceptedP99MS > queued.Shed.AcceptedP99MS {
					complain("accepted p99 %.1f ms, want bounded near the 50 ms of work (queueing: %.1f ms)", s.AcceptedP99MS, queued.Shed.AcceptedP99MS)
				}
				var out bytes.Buffer
				if err := WriteShed(&out, rep); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.String(), "shed") || !strings.Contains(out.String(), "accepted p99") {
					complain("summary %q", out.String())
				}
				return problems
			})
		})
	}
}

// refusing sheds every request with resource_exhausted and counts them.
type refusing struct {
	FloorHandler
	calls atomic.Int64
}

func (s *refusing) Evaluate(context.Context, *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error) {
	s.calls.Add(1)
	return nil, connect.NewError(connect.CodeResourceExhausted, errors.New("overloaded"))
}

// TestClosedLoopShedBackoff: a closed-loop client that is shed waits before
// it sends again, longer with every shed in a row; without ShedBackoff it
// sends again at once.
func TestClosedLoopShedBackoff(t *testing.T) {
	count := func(backoff time.Duration) int64 {
		h := &refusing{}
		f, err := StartFloor(FloorOptions{Handler: h})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c := newClient(t, ClientOptions{BaseURL: f.URL})
		rep, err := Run(t.Context(), c, Options{Source: NewRandomSource(RandomOptions{}), Clients: 4, Duration: 500 * time.Millisecond, ShedBackoff: backoff})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Shed.Shed == 0 || rep.Shed.Accepted != 0 || rep.Shed.Shed != rep.Requests.Sent {
			t.Errorf("backoff %v: %+v, want every request shed and counted", backoff, rep.Shed)
		}
		return h.calls.Load()
	}
	eager, patient := count(0), count(5*time.Millisecond)
	t.Logf("requests in 500 ms from 4 clients: %d without backoff, %d with 5 ms", eager, patient)
	// With 5 ms doubling to 160 ms (mean wait half of that), 4 clients send
	// a few dozen times in 500 ms; without, thousands.
	if patient > 150 || eager < 4*patient {
		t.Errorf("%d requests with backoff, %d without: want few with, and far more without", patient, eager)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	var b backoff
	const base = time.Millisecond
	for i := range 12 {
		ceil := base << min(i, maxBackoffDoublings)
		for range 50 {
			c := b // the same shed count each draw
			if w := c.next(base); w <= 0 || w > ceil {
				t.Fatalf("shed %d: wait %v, want in (0, %v]", i+1, w, ceil)
			}
		}
		b.next(base)
	}
	if b.sheds != 12 {
		t.Fatalf("sheds %d, want 12", b.sheds)
	}
}
