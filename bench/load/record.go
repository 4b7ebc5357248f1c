package load

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"
	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// Latencies are recorded in microseconds from 1 µs to 100 s. The run total
// keeps 3 significant digits; the per-second histograms behind the timeline
// keep 2, which is plenty for a plot and keeps a long run's memory small.
const (
	histMinUS   = 1
	histMaxUS   = 100_000_000
	histDigits  = 3
	stepDigits  = 2
	codeUnknown = "transport"
)

// step is one second of the measured window, by scheduled send time.
type step struct {
	ok, errs int64
	hist     *hdr.Histogram // ok latencies
}

// recorder collects results from all workers. One mutex is enough: a record
// costs well under a microsecond, against the tens of microseconds of the
// request it records.
type recorder struct {
	start time.Time // the measured window begins here

	mu        sync.Mutex
	ok        *hdr.Histogram   // guarded by mu
	errLat    *hdr.Histogram   // guarded by mu
	steps     []step           // guarded by mu
	codes     map[string]int64 // guarded by mu
	outcomes  map[string]int64 // guarded by mu
	degraded  int64            // guarded by mu
	dropped   int64            // guarded by mu
	attempted int64            // guarded by mu; includes dropped
	warmup    int64            // guarded by mu
	lastDone  time.Time        // guarded by mu
	// A sample of answer sizes (protobuf bytes), to show that the floor's
	// answers weigh what riskd's do.
	sizeSum, sizeN int64 // guarded by mu
	// keep asks for every request's sample (Options.LatencyLog).
	keep    bool
	samples []sample // guarded by mu
}

// sample is one request of the measured window, for the latency log.
type sample struct {
	sched, done time.Time
	code        string // "ok", "degraded" or the error's code
}

func newRecorder(start time.Time) *recorder {
	return &recorder{
		start:    start,
		ok:       hdr.New(histMinUS, histMaxUS, histDigits),
		errLat:   hdr.New(histMinUS, histMaxUS, histDigits),
		codes:    make(map[string]int64),
		outcomes: make(map[string]int64),
	}
}

func clampUS(d time.Duration) int64 {
	us := d.Microseconds()
	if us < histMinUS {
		return histMinUS
	}
	if us > histMaxUS {
		return histMaxUS
	}
	return us
}

func (r *recorder) stepLocked(sched time.Time) *step {
	i := int(sched.Sub(r.start) / time.Second)
	if i < 0 {
		i = 0
	}
	for len(r.steps) <= i {
		r.steps = append(r.steps, step{hist: hdr.New(histMinUS, histMaxUS, stepDigits)})
	}
	return &r.steps[i]
}

// warm counts a request sent during warm-up; nothing else about it is kept.
func (r *recorder) warm() {
	r.mu.Lock()
	r.warmup++
	r.mu.Unlock()
}

// drop counts a request that the client could not send in time.
func (r *recorder) drop(n int64) {
	r.mu.Lock()
	r.dropped += n
	r.attempted += n
	r.mu.Unlock()
}

// record keeps one answered (or failed) request, scheduled at sched and
// finished at done.
func (r *recorder) record(sched, done time.Time, resp *riskv1.EvaluateResponse, err error) {
	us := clampUS(done.Sub(sched))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempted++
	if done.After(r.lastDone) {
		r.lastDone = done
	}
	st := r.stepLocked(sched)
	if r.keep {
		code := "ok"
		switch {
		case err != nil:
			code = errorCode(err)
		case resp.GetDecision().GetDegraded():
			code = "degraded"
		}
		r.samples = append(r.samples, sample{sched, done, code})
	}
	if err != nil {
		st.errs++
		_ = r.errLat.RecordValue(us)
		r.codes[errorCode(err)]++
		return
	}
	st.ok++
	_ = st.hist.RecordValue(us)
	_ = r.ok.RecordValue(us)
	if st.ok%64 == 1 {
		r.sizeSum += int64(proto.Size(resp))
		r.sizeN++
	}
	d := resp.GetDecision()
	r.outcomes[outcomeName(d.GetOutcome())]++
	if d.GetDegraded() {
		r.degraded++
	}
}

// errorCode names err by its Connect code; errors that never reached a
// Connect peer (refused connections and the like) come out as "unavailable"
// or "unknown" from connect itself.
func errorCode(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code().String()
	}
	return codeUnknown
}

func outcomeName(o riskv1.Outcome) string {
	switch o {
	case riskv1.Outcome_OUTCOME_ALLOW:
		return "ALLOW"
	case riskv1.Outcome_OUTCOME_CHALLENGE:
		return "CHALLENGE"
	case riskv1.Outcome_OUTCOME_REVIEW:
		return "REVIEW"
	case riskv1.Outcome_OUTCOME_DENY:
		return "DENY"
	}
	return "UNSPECIFIED"
}

// writeLatencyLog writes one CSV line per request, in scheduled order:
// the scheduled send time (Unix nanoseconds), when the answer arrived
// (Unix nanoseconds), the latency in microseconds, and "ok", "degraded" or
// the error's code.
func writeLatencyLog(w io.Writer, samples []sample) error {
	sort.Slice(samples, func(i, j int) bool { return samples[i].sched.Before(samples[j].sched) })
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "sched_unix_ns,done_unix_ns,latency_us,result")
	for _, s := range samples {
		fmt.Fprintf(bw, "%d,%d,%d,%s\n", s.sched.UnixNano(), s.done.UnixNano(), s.done.Sub(s.sched).Microseconds(), s.code)
	}
	return bw.Flush()
}
