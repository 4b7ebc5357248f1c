package load

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is what one run measured. Latencies are in milliseconds; for open
// loop they run from each request's scheduled send time.
type Report struct {
	RunID     string    `json:"run_id"`
	Target    string    `json:"target"`
	URL       string    `json:"url"`
	Transport Transport `json:"transport"`
	Load      LoadShape `json:"load"`
	StartedAt time.Time `json:"started_at"`
	Env       Env       `json:"env"`

	Requests Counts `json:"requests"`
	// ThroughputOK is answered-without-error requests per second of the
	// measured window; ThroughputAll counts errors too.
	ThroughputOK  float64 `json:"throughput_ok_per_s"`
	ThroughputAll float64 `json:"throughput_all_per_s"`
	// Latency is of the requests answered without error; ErrorLatency of
	// the ones answered with one (how fast riskd sheds, for instance).
	Latency      Latency          `json:"latency_ms"`
	ErrorLatency Latency          `json:"error_latency_ms"`
	Errors       map[string]int64 `json:"errors_by_code"`
	Outcomes     Outcomes         `json:"outcomes"`
	Shed         Shed             `json:"shed"`
	// ResponseBytes is the mean protobuf size of a sample of answers.
	ResponseBytes float64  `json:"response_bytes_mean"`
	Timeline      []Second `json:"timeline"`
	Percentiles   []Point  `json:"percentiles"`
	// HDR is the ok-latency histogram (µs) in HdrHistogram's compressed V2
	// encoding, base64: feed it to any HdrHistogram tool to merge or re-plot.
	HDR string `json:"hdr_histogram_us"`

	ok *hdr.Histogram
}

// Transport says how the client spoke to the target.
type Transport struct {
	Protocol string `json:"protocol"` // connect, grpc, grpcweb
	Codec    string `json:"codec"`    // proto, json
	HTTP     string `json:"http"`     // HTTP/1.1, h2c
}

// LoadShape is how the load was offered.
type LoadShape struct {
	Mode        string  `json:"mode"` // open, closed
	Rate        float64 `json:"rate_per_s"`
	Clients     int     `json:"clients"`
	MaxInflight int     `json:"max_inflight"`
	MaxLagMS    float64 `json:"max_lag_ms"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`
	ElapsedS    float64 `json:"elapsed_s"`
}

// Env is the machine the run ran on.
type Env struct {
	GoVersion  string `json:"go_version"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Hostname   string `json:"hostname"`
}

// Counts of requests in the measured window. Sent = OK + Errors.
type Counts struct {
	Sent    int64 `json:"sent"`
	OK      int64 `json:"ok"`
	Errors  int64 `json:"errors"`
	Dropped int64 `json:"dropped"`
	Warmup  int64 `json:"warmup"`
}

// Latency summarizes a histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// Outcomes counts the decisions answered, by outcome.
type Outcomes struct {
	Allow       int64 `json:"ALLOW"`
	Challenge   int64 `json:"CHALLENGE"`
	Review      int64 `json:"REVIEW"`
	Deny        int64 `json:"DENY"`
	Unspecified int64 `json:"UNSPECIFIED"`
	Degraded    int64 `json:"degraded"`
}

// Shed splits what was sent into accepted (answered) and shed
// (resource_exhausted or unavailable), for overload runs.
type Shed struct {
	Accepted      int64   `json:"accepted"`
	Shed          int64   `json:"shed"`
	OtherErrors   int64   `json:"other_errors"`
	ShedFraction  float64 `json:"shed_fraction"`
	AcceptedP99MS float64 `json:"accepted_p99_ms"`
	ShedP99MS     float64 `json:"shed_p99_ms"`
}

// Second is one second of the measured window, by scheduled send time.
type Second struct {
	T      float64 `json:"t_s"`
	OK     int64   `json:"ok"`
	Errors int64   `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// Point is one point of the latency-by-percentile curve.
type Point struct {
	Percentile float64 `json:"percentile"`
	Latency    float64 `json:"latency_ms"`
}

// Output is the JSON file riskbench writes: every run, and the ratio to the
// transport floor when both were measured.
type Output struct {
	Runs    []*Report `json:"runs"`
	VsFloor *Ratio    `json:"vs_floor"`
}

// Ratio sets a target's run against the floor's, same client, same run.
type Ratio struct {
	Target        string  `json:"target"`
	ThroughputPct float64 `json:"throughput_pct_of_floor"`
	P50x          float64 `json:"p50_x_floor"`
	P99x          float64 `json:"p99_x_floor"`
}

func ms(us int64) float64 { return float64(us) / 1000 }

func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Mean:  round3(h.Mean() / 1000),
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// percentileCurve samples h the way HdrHistogram plots do: evenly in
// log(1/(1-p)), so that the tail gets as much room as the body, up to the
// last percentile the sample size supports, then the maximum.
func percentileCurve(h *hdr.Histogram) []Point {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	// The highest percentile with at least one sample above it.
	top := 1 - 1/float64(n)
	var pts []Point
	for x := 0.0; ; x += 0.05 { // x = log10(1/(1-p))
		p := 1 - math.Pow(10, -x)
		if p > top {
			break
		}
		pts = append(pts, Point{Percentile: round6(p * 100), Latency: ms(h.ValueAtQuantile(p * 100))})
	}
	pts = append(pts, Point{Percentile: 100, Latency: ms(h.Max())})
	return pts
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// report builds the Report of the window [measure, end).
func (r *run) report(measure, end time.Time) *Report {
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	o := r.opts
	host, _ := os.Hostname()
	rep := &Report{
		RunID:     o.RunID,
		Target:    o.Target,
		StartedAt: measure.Add(-o.Warmup).UTC(),
		Env:       Env{GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Hostname: host},
		Load: LoadShape{
			Mode:        "closed",
			Clients:     o.Clients,
			MaxInflight: o.MaxInflight,
			WarmupS:     o.Warmup.Seconds(),
			DurationS:   o.Duration.Seconds(),
		},
		Errors: make(map[string]int64, len(rec.codes)),
		ok:     rec.ok,
	}
	if o.Rate > 0 {
		rep.Load.Mode, rep.Load.Rate, rep.Load.Clients = "open", o.Rate, 0
		rep.Load.MaxLagMS = float64(o.MaxLag) / float64(time.Millisecond)
	} else {
		rep.Load.MaxInflight = o.Clients
	}
	// The window ends when its last answer came back (requests sent just
	// before the end still count), or at its planned end if that is later.
	last := end
	if rec.lastDone.After(last) {
		last = rec.lastDone
	}
	elapsed := last.Sub(measure).Seconds()
	rep.Load.ElapsedS = round3(elapsed)

	var errs int64
	for code, n := range rec.codes {
		rep.Errors[code] = n
		errs += n
	}
	okN := rec.ok.TotalCount()
	rep.Requests = Counts{Sent: okN + errs, OK: okN, Errors: errs, Dropped: rec.dropped, Warmup: rec.warmup}
	if elapsed > 0 {
		rep.ThroughputOK = round3(float64(okN) / elapsed)
		rep.ThroughputAll = round3(float64(okN+errs) / elapsed)
	}
	rep.Latency = summarize(rec.ok)
	rep.ErrorLatency = summarize(rec.errLat)
	rep.Outcomes = Outcomes{
		Allow: rec.outcomes["ALLOW"], Challenge: rec.outcomes["CHALLENGE"], Review: rec.outcomes["REVIEW"],
		Deny: rec.outcomes["DENY"], Unspecified: rec.outcomes["UNSPECIFIED"], Degraded: rec.degraded,
	}
	shed := rec.codes["resource_exhausted"] + rec.codes["unavailable"]
	rep.Shed = Shed{Accepted: okN, Shed: shed, OtherErrors: errs - shed, AcceptedP99MS: rep.Latency.P99, ShedP99MS: rep.ErrorLatency.P99}
	if okN+errs > 0 {
		rep.Shed.ShedFraction = round6(float64(shed) / float64(okN+errs))
	}
	if rec.sizeN > 0 {
		rep.ResponseBytes = math.Round(float64(rec.sizeSum) / float64(rec.sizeN))
	}
	rep.Timeline = make([]Second, 0, len(rec.steps))
	for i, st := range rec.steps {
		s := Second{T: float64(i), OK: st.ok, Errors: st.errs}
		if st.ok > 0 {
			s.P50, s.P99, s.Max = ms(st.hist.ValueAtQuantile(50)), ms(st.hist.ValueAtQuantile(99)), ms(st.hist.Max())
		}
		rep.Timeline = append(rep.Timeline, s)
	}
	rep.Percentiles = percentileCurve(rec.ok)
	if enc, err := rec.ok.Encode(hdr.V2CompressedEncodingCookieBase); err == nil {
		rep.HDR = base64.StdEncoding.EncodeToString(enc)
	}
	return rep
}

// Compare sets target against floor.
func Compare(target, floor *Report) *Ratio {
	q := &Ratio{Target: target.Target}
	if floor.ThroughputOK > 0 {
		q.ThroughputPct = math.Round(1000*target.ThroughputOK/floor.ThroughputOK) / 10
	}
	if floor.Latency.P50 > 0 {
		q.P50x = math.Round(100*target.Latency.P50/floor.Latency.P50) / 100
	}
	if floor.Latency.P99 > 0 {
		q.P99x = math.Round(100*target.Latency.P99/floor.Latency.P99) / 100
	}
	return q
}

// WriteJSON writes out, indented.
func WriteJSON(w io.Writer, out *Output) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("load: write report: %w", err)
	}
	return nil
}

// WriteText writes rep for a person.
func WriteText(w io.Writer, rep *Report) error {
	var b strings.Builder
	t := rep.Transport
	fmt.Fprintf(&b, "%s  %s  (%s, %s, %s)  run %s\n", rep.Target, rep.URL, t.Protocol, t.Codec, t.HTTP, rep.RunID)
	l := rep.Load
	if l.Mode == "open" {
		fmt.Fprintf(&b, "  load       open loop %g/s, max %d in flight, warm-up %gs, measured %gs (%.2fs to last answer)\n",
			l.Rate, l.MaxInflight, l.WarmupS, l.DurationS, l.ElapsedS)
	} else {
		fmt.Fprintf(&b, "  load       closed loop, %d clients, warm-up %gs, measured %gs (%.2fs to last answer)\n",
			l.Clients, l.WarmupS, l.DurationS, l.ElapsedS)
	}
	c := rep.Requests
	fmt.Fprintf(&b, "  requests   %d sent: %d ok, %d errors; %d dropped by the client (could not be sent in time); %d warm-up\n",
		c.Sent, c.OK, c.Errors, c.Dropped, c.Warmup)
	fmt.Fprintf(&b, "  throughput %.1f ok/s (%.1f answers/s)\n", rep.ThroughputOK, rep.ThroughputAll)
	lat := rep.Latency
	fmt.Fprintf(&b, "  latency    ms  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (ok answers%s)\n",
		fms(lat.P50), fms(lat.P90), fms(lat.P99), fms(lat.P999), fms(lat.Max), fromWhat(l.Mode))
	if c.Errors > 0 {
		e := rep.ErrorLatency
		fmt.Fprintf(&b, "  err. lat.  ms  p50 %s  p99 %s  max %s\n", fms(e.P50), fms(e.P99), fms(e.Max))
		codes := make([]string, 0, len(rep.Errors))
		for code := range rep.Errors {
			codes = append(codes, code)
		}
		sort.Strings(codes)
		b.WriteString("  errors    ")
		for _, code := range codes {
			fmt.Fprintf(&b, " %s %d", code, rep.Errors[code])
		}
		b.WriteString("\n")
	}
	o := rep.Outcomes
	fmt.Fprintf(&b, "  outcomes   ALLOW %d  CHALLENGE %d  REVIEW %d  DENY %d", o.Allow, o.Challenge, o.Review, o.Deny)
	if o.Unspecified > 0 {
		fmt.Fprintf(&b, "  UNSPECIFIED %d", o.Unspecified)
	}
	fmt.Fprintf(&b, "  (degraded %d); answers about %.0f bytes\n", o.Degraded, rep.ResponseBytes)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteShed writes the overload summary of rep.
func WriteShed(w io.Writer, rep *Report) error {
	s := rep.Shed
	_, err := fmt.Fprintf(w, "  overload   offered %g/s: accepted %d, shed %d (%.1f%%), other errors %d, dropped by client %d; accepted p99 %s ms, shed p99 %s ms\n",
		rep.Load.Rate, s.Accepted, s.Shed, 100*s.ShedFraction, s.OtherErrors, rep.Requests.Dropped, fms(s.AcceptedP99MS), fms(s.ShedP99MS))
	return err
}

// WriteRatio writes the comparison with the floor.
// In open loop both runs are offered the same rate, so the throughput ratio
// only says whether the target kept up; closed loop is where it measures
// capacity.
func WriteRatio(w io.Writer, q *Ratio, target, floor *Report) error {
	tput := fmt.Sprintf("throughput %.1f%% of the floor (%.0f vs %.0f ok/s, closed loop)", q.ThroughputPct, target.ThroughputOK, floor.ThroughputOK)
	if target.Load.Mode == "open" {
		tput = fmt.Sprintf("both offered %g/s: %.0f vs %.0f ok/s (use --clients for the capacity ratio)", target.Load.Rate, target.ThroughputOK, floor.ThroughputOK)
	}
	_, err := fmt.Fprintf(w, "%s vs transport floor: %s; p50 %.2fx (%s vs %s ms); p99 %.2fx (%s vs %s ms)\n",
		q.Target, tput,
		q.P50x, fms(target.Latency.P50), fms(floor.Latency.P50),
		q.P99x, fms(target.Latency.P99), fms(floor.Latency.P99))
	return err
}

func fromWhat(mode string) string {
	if mode == "open" {
		return ", from scheduled send time"
	}
	return ""
}

// fms formats milliseconds with three significant digits or so.
func fms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
