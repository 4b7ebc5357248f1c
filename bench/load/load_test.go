package load

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// startFloor serves h (the floor when nil) on loopback for the test.
func startFloor(t *testing.T, h *recordingHandler) *Floor {
	t.Helper()
	opts := FloorOptions{Token: "t0ken"}
	if h != nil {
		opts.Handler = h
	}
	f, err := StartFloor(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func newClient(t *testing.T, o ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// recordingHandler is the floor plus an optional delay, remembering what it
// was sent.
type recordingHandler struct {
	FloorHandler
	delay time.Duration

	mu     sync.Mutex
	events []*riskv1.Event // guarded by mu
}

func (h *recordingHandler) Evaluate(ctx context.Context, req *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error) {
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
	h.mu.Lock()
	h.events = append(h.events, req.Msg.GetEvent())
	h.mu.Unlock()
	return h.FloorHandler.Evaluate(ctx, req)
}

func TestFloorOverEveryProtocol(t *testing.T) {
	f := startFloor(t, nil)
	for _, tc := range []struct {
		name string
		o    ClientOptions
	}{
		{"connect-proto-http1", ClientOptions{Protocol: "connect"}},
		{"connect-json-http1", ClientOptions{Protocol: "connect", JSON: true}},
		{"connect-proto-h2c", ClientOptions{Protocol: "connect", HTTP2: true}},
		{"grpc", ClientOptions{Protocol: "grpc"}},
		{"grpcweb", ClientOptions{Protocol: "grpcweb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.BaseURL, tc.o.Token = f.URL, "t0ken"
			c := newClient(t, tc.o)
			rep, err := Run(t.Context(), c, Options{
				Source: NewRandomSource(RandomOptions{Seed: 1}), Clients: 4, Duration: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Requests.OK == 0 || rep.Requests.Errors != 0 {
				t.Fatalf("requests %+v, errors %v", rep.Requests, rep.Errors)
			}
			if rep.Outcomes.Challenge != rep.Requests.OK {
				t.Errorf("outcomes %+v, want every one of %d ok answers CHALLENGE", rep.Outcomes, rep.Requests.OK)
			}
			if rep.Latency.Count != rep.Requests.OK || rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 {
				t.Errorf("latency %+v", rep.Latency)
			}
		})
	}
}

func TestWrongTokenCountsUnauthenticated(t *testing.T) {
	f := startFloor(t, nil)
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "wrong"})
	rep, err := Run(t.Context(), c, Options{Source: NewRandomSource(RandomOptions{}), Clients: 2, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests.OK != 0 || rep.Errors["unauthenticated"] == 0 || rep.Errors["unauthenticated"] != rep.Requests.Errors {
		t.Fatalf("requests %+v errors %v", rep.Requests, rep.Errors)
	}
}

// An open-loop run above capacity must show the queue: with a 20 ms handler
// and 2 in flight, capacity is 100/s; offered 400/s, request i waits about
// 0.75*t for its turn, so latency from the schedule climbs well past 20 ms.
// The same handler in closed loop stays near 20 ms, which is exactly the
// coordinated omission open loop corrects.
// retry runs attempt up to three times and fails with the last complaint if
// none passes. Timing tests on a shared 2-core machine meet stalls of a
// second now and then; a property that does not hold fails all three.
func retry(t *testing.T, attempt func() []string) {
	t.Helper()
	var problems []string
	for i := range 3 {
		if problems = attempt(); len(problems) == 0 {
			return
		}
		t.Logf("attempt %d: %s", i+1, strings.Join(problems, "; "))
	}
	t.Error(strings.Join(problems, "\n"))
}

func TestOpenLoopLatencyIncludesQueueing(t *testing.T) {
	f := startFloor(t, &recordingHandler{delay: 20 * time.Millisecond})
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken"})
	retry(t, func() (problems []string) {
		complain := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
		open, err := Run(t.Context(), c, Options{
			Source: NewRandomSource(RandomOptions{}), Rate: 400, MaxInflight: 2, MaxLag: -1, Duration: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		closed, err := Run(t.Context(), c, Options{
			Source: NewRandomSource(RandomOptions{}), Clients: 2, Duration: 500 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("open: %d ok, p50 %.1f ms, max %.1f ms, dropped %d; closed: p50 %.1f ms p99 %.1f ms",
			open.Requests.OK, open.Latency.P50, open.Latency.Max, open.Requests.Dropped, closed.Latency.P50, closed.Latency.P99)
		if closed.Latency.P50 < 20 {
			complain("closed p50 %.1f ms is below the handler's 20 ms sleep", closed.Latency.P50)
		}
		// Measured from the actual send, open loop's p50 would be closed loop's.
		if open.Latency.P50 < 100 || open.Latency.P50 < 3*closed.Latency.P50 {
			complain("open p50 %.1f ms does not show queueing (closed p50 %.1f ms)", open.Latency.P50, closed.Latency.P50)
		}
		if open.Latency.Max < 400 {
			complain("open max %.1f ms: latency did not grow with the schedule", open.Latency.Max)
		}
		// What the timetable scheduled but could not send by the end is counted.
		if got, want := open.Requests.Sent+open.Requests.Dropped, int64(400); got < want-2 || got > want+2 {
			complain("sent %d + dropped %d = %d, want the %d the timetable scheduled", open.Requests.Sent, open.Requests.Dropped, got, want)
		}
		if open.Requests.Dropped < 200 {
			complain("dropped %d, want the unsent backlog (about 300)", open.Requests.Dropped)
		}
		return problems
	})
}

// With a lag bound, requests that cannot start in time are dropped and
// counted, and the latency of the sent ones stays bounded by lag + service.
func TestOpenLoopDropsPastMaxLag(t *testing.T) {
	f := startFloor(t, &recordingHandler{delay: 20 * time.Millisecond})
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken"})
	retry(t, func() (problems []string) {
		rep, err := Run(t.Context(), c, Options{
			Source: NewRandomSource(RandomOptions{}), Rate: 400, MaxInflight: 2, MaxLag: 30 * time.Millisecond, Duration: 600 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests.Dropped < 100 {
			problems = append(problems, fmt.Sprintf("dropped %d, want most of the 240 scheduled", rep.Requests.Dropped))
		}
		// Without the bound the p50 would be about 250 ms (see above).
		if rep.Latency.P50 > 150 {
			problems = append(problems, fmt.Sprintf("p50 %.1f ms, want about lag 30 ms + service 20 ms", rep.Latency.P50))
		}
		return problems
	})
}

// Every slot of the timetable inside the window is either sent or counted as
// dropped; warm-up slots are sent but not recorded. (On an idle machine
// nothing is dropped at this rate; on a starved one some may be, which is
// what the count is for.)
func TestOpenLoopAccountsForEverySlot(t *testing.T) {
	f := startFloor(t, nil)
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken"})
	rep, err := Run(t.Context(), c, Options{
		Source: NewRandomSource(RandomOptions{}), Rate: 50, MaxInflight: 16, Warmup: 200 * time.Millisecond, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	c2 := rep.Requests
	if n := c2.Sent + c2.Dropped; n < 49 || n > 51 || c2.Sent == 0 || c2.Warmup < 1 || c2.Warmup > 11 {
		t.Errorf("requests %+v, want 50 slots measured (sent or dropped) and up to 10 warm-up", c2)
	}
	if c2.Dropped > 0 {
		t.Logf("%d of 50 dropped: the machine is starved for CPU", c2.Dropped)
	}
	if rep.Load.Mode != "open" || rep.Load.Rate != 50 {
		t.Errorf("load %+v", rep.Load)
	}
}

func TestEventsAreStampedPerRun(t *testing.T) {
	h := &recordingHandler{}
	f := startFloor(t, h)
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken"})
	before := time.Now()
	if _, err := Run(t.Context(), c, Options{Source: NewRandomSource(RandomOptions{}), Clients: 4, Duration: 200 * time.Millisecond, RunID: "run-xyz"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		t.Fatal("no events")
	}
	seen := make(map[string]bool)
	for _, ev := range h.events {
		if !strings.HasPrefix(ev.GetEventId(), "run-xyz-") || seen[ev.GetEventId()] {
			t.Fatalf("event id %q: want unique, prefixed with the run id", ev.GetEventId())
		}
		seen[ev.GetEventId()] = true
		if at := ev.GetOccurredAt().AsTime(); at.Before(before) || at.After(after) {
			t.Fatalf("occurred_at %v outside the run [%v, %v]", at, before, after)
		}
	}
}

// limited stops after n events.
type limited struct {
	Source
	n int
}

func (l *limited) Next() (*riskv1.Event, bool) {
	if l.n == 0 {
		return nil, false
	}
	l.n--
	return l.Source.Next()
}

func TestRunEndsWhenSourceRunsDry(t *testing.T) {
	f := startFloor(t, nil)
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken"})
	for _, rate := range []float64{0, 1000} {
		start := time.Now()
		rep, err := Run(t.Context(), c, Options{Source: &limited{NewRandomSource(RandomOptions{}), 50}, Rate: rate, Duration: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests.Sent != 50 || rep.Requests.Dropped != 0 {
			t.Errorf("rate %g: requests %+v, want exactly 50 sent", rate, rep.Requests)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("rate %g: run went on after the source ran dry", rate)
		}
	}
}

func TestFloorDecisionIsDecisionSized(t *testing.T) {
	ev, _ := NewRandomSource(RandomOptions{Seed: 3}).Next()
	stamp(ev, NewRunID(), 12345, time.Now())
	d := FloorDecision(ev, time.Now())
	if n := len(d.GetFeatures()); n < 9 || n > 11 || len(d.GetReasons()) < 1 || len(d.GetReasons()) > 2 {
		t.Errorf("features %d reasons %d, want 9-11 (the event's applicable ones) and 1-2", n, len(d.GetReasons()))
	}
	if n := proto.Size(d); n < 700 || n > 2000 {
		t.Errorf("decision is %d bytes, want about a kilobyte like riskd's", n)
	}
	if d.GetEventId() != ev.GetEventId() || d.GetAccountId() != ev.GetAccountId() {
		t.Errorf("decision does not echo the event: %v", d)
	}
}

func TestNewClientRejectsUnknownProtocol(t *testing.T) {
	if _, err := NewClient(ClientOptions{Protocol: "carrier-pigeon"}); err == nil {
		t.Fatal("no error")
	}
}

func TestRunNeedsSource(t *testing.T) {
	if _, err := Run(t.Context(), nil, Options{}); err != ErrNoSource {
		t.Fatalf("err %v, want ErrNoSource", err)
	}
}

// The latency log has one line per request of the measured window, in
// scheduled order, and agrees with the report's counts and latencies.
func TestLatencyLog(t *testing.T) {
	f := startFloor(t, &recordingHandler{delay: time.Millisecond})
	c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken"})
	var log strings.Builder
	rep, err := Run(t.Context(), c, Options{
		Source: NewRandomSource(RandomOptions{Seed: 3}), Rate: 200, Warmup: 100 * time.Millisecond,
		Duration: 300 * time.Millisecond, LatencyLog: &log,
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if lines[0] != "sched_unix_ns,done_unix_ns,latency_us,result" {
		t.Fatalf("header %q", lines[0])
	}
	if int64(len(lines)-1) != rep.Requests.Sent {
		t.Fatalf("%d lines, report sent %d", len(lines)-1, rep.Requests.Sent)
	}
	var prev, maxUS int64
	for _, l := range lines[1:] {
		var sched, done, us int64
		var result string
		if _, err := fmt.Sscanf(strings.ReplaceAll(l, ",", " "), "%d %d %d %s", &sched, &done, &us, &result); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		// latency_us is from the monotonic clock, the times from the wall
		// clock: they differ by rounding (up to a microsecond each way), and
		// by what NTP slews the wall clock meanwhile (at most 500 ppm in
		// Linux; 10 µs over a 17 ms answer was seen in CI twice, once past
		// a slack of 1 µs + 500 ppm). Twice the slew bound leaves room.
		slack := 2 + us/1000
		if d := us - (done-sched)/1000; sched < prev || done < sched || d < -slack || d > slack || result != "ok" {
			t.Fatalf("line %q (previous scheduled at %d)", l, prev)
		}
		prev, maxUS = sched, max(maxUS, us)
	}
	if got := float64(maxUS) / 1000; got < rep.Latency.Max*0.99 || got > rep.Latency.Max*1.01+0.001 {
		t.Errorf("largest logged latency %.3f ms, report's max %.3f ms", got, rep.Latency.Max)
	}
}
