package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var (
	floorRunsOnce sync.Once
	floorRunsRes  []*Report
	floorRunsErr  error
)

// floorRuns measures the floor twice, closed and open loop, once for all the
// tests that read reports.
func floorRuns(t *testing.T) []*Report {
	t.Helper()
	floorRunsOnce.Do(func() {
		f, err := StartFloor(FloorOptions{Token: "t0ken"})
		if err != nil {
			floorRunsErr = err
			return
		}
		defer f.Close()
		for _, o := range []Options{
			{Target: "floor", Clients: 2, Duration: 300 * time.Millisecond},
			{Target: "floor", Rate: 300, MaxInflight: 16, Warmup: 100 * time.Millisecond, Duration: 1100 * time.Millisecond},
		} {
			c, err := NewClient(ClientOptions{BaseURL: f.URL, Token: "t0ken"})
			if err != nil {
				floorRunsErr = err
				return
			}
			o.Source = NewRandomSource(RandomOptions{Seed: 7})
			rep, err := Run(context.Background(), c, o)
			c.Close()
			if err != nil {
				floorRunsErr = err
				return
			}
			rep.URL, rep.Transport = c.URL, c.Transport
			floorRunsRes = append(floorRunsRes, rep)
		}
	})
	if floorRunsErr != nil {
		t.Fatal(floorRunsErr)
	}
	return floorRunsRes
}

// keyPaths lists every key path in v ("runs[].latency_ms.p99"), skipping the
// contents of maps whose keys are data (errors_by_code).
func keyPaths(prefix string, v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if strings.HasSuffix(prefix, "errors_by_code") {
			return
		}
		for k, vv := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			keyPaths(p, vv, out)
		}
	case []any:
		for _, vv := range x {
			keyPaths(prefix+"[]", vv, out)
		}
	}
}

func TestReportJSONShape(t *testing.T) {
	runs := floorRuns(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, &Output{Runs: runs, VsFloor: Compare(runs[1], runs[0])}); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	keyPaths("", doc, paths)
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	got := strings.Join(keys, "\n") + "\n"
	golden := filepath.Join("testdata", "report_keys.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("report keys changed (run with -update if intended):\n got:\n%s\nwant:\n%s", got, want)
	}

	// The values hang together.
	for _, r := range runs {
		if r.Requests.Sent != r.Requests.OK+r.Requests.Errors || r.Requests.OK == 0 {
			t.Errorf("%s: counts %+v", r.Load.Mode, r.Requests)
		}
		var tl int64
		for _, s := range r.Timeline {
			tl += s.OK + s.Errors
		}
		if tl != r.Requests.Sent {
			t.Errorf("%s: timeline holds %d requests, report %d", r.Load.Mode, tl, r.Requests.Sent)
		}
		for i := 1; i < len(r.Percentiles); i++ {
			a, b := r.Percentiles[i-1], r.Percentiles[i]
			if b.Percentile <= a.Percentile || b.Latency < a.Latency {
				t.Fatalf("%s: percentile curve not monotonic at %v -> %v", r.Load.Mode, a, b)
			}
		}
		if last := r.Percentiles[len(r.Percentiles)-1]; last.Percentile != 100 || last.Latency != r.Latency.Max {
			t.Errorf("%s: curve ends at %v, want the max %v", r.Load.Mode, last, r.Latency.Max)
		}
		raw, err := base64.StdEncoding.DecodeString(r.HDR)
		if err != nil {
			t.Fatal(err)
		}
		h, err := hdr.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if h.TotalCount() != r.Requests.OK {
			t.Errorf("%s: encoded histogram has %d values, want %d", r.Load.Mode, h.TotalCount(), r.Requests.OK)
		}
	}
	var text bytes.Buffer
	for _, r := range runs {
		if err := WriteText(&text, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"closed loop, 2 clients", "open loop 300/s", "p99.9", "CHALLENGE"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// svgDoc is what the test reads back from a plot.
type svgDoc struct {
	root      string
	width     string
	polylines []string // points
	texts     []string
}

// parseSVG reads a whole document strictly, as an SVG viewer would.
func parseSVG(data []byte) (svgDoc, error) {
	var doc svgDoc
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return doc, nil
		}
		if err != nil {
			return doc, err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := func(name string) string {
				for _, a := range el.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			switch el.Name.Local {
			case "svg":
				if doc.root == "" {
					doc.root, doc.width = el.Name.Space+" svg", attr("width")
				}
			case "polyline":
				doc.polylines = append(doc.polylines, attr("points"))
			case "text":
				inText = true
			}
		case xml.EndElement:
			if el.Name.Local == "text" {
				inText = false
			}
		case xml.CharData:
			if inText {
				doc.texts = append(doc.texts, string(el))
			}
		}
	}
}

func TestPlotsAreValidSVG(t *testing.T) {
	runs := floorRuns(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		write func(io.Writer, []*Report) error
		lines int
		texts []string
	}{
		{"latency-time", WriteTimelinePlot, 2 * len(runs), []string{"latency (ms)", "time since start of measured window (s)", "p99", "p50"}},
		{"percentiles", WritePercentilePlot, len(runs), []string{"latency (ms)", "99%", "90%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.write(&buf, runs); err != nil {
				t.Fatal(err)
			}
			_ = os.WriteFile(filepath.Join(dir, tc.name+".svg"), buf.Bytes(), 0o644)
			doc, err := parseSVG(buf.Bytes())
			if err != nil {
				t.Fatalf("not valid XML: %v", err)
			}
			if doc.root != "http://www.w3.org/2000/svg svg" || doc.width == "" {
				t.Fatalf("root %q width %q", doc.root, doc.width)
			}
			if len(doc.polylines) != tc.lines {
				t.Errorf("%d lines, want %d", len(doc.polylines), tc.lines)
			}
			for _, pl := range doc.polylines {
				if len(strings.Fields(pl)) == 0 {
					t.Error("empty line")
				}
			}
			all := strings.Join(doc.texts, "|")
			for _, want := range tc.texts {
				if !strings.Contains(all, want) {
					t.Errorf("no text %q in %s", want, all)
				}
			}
		})
	}
}

func TestPercentileAxisStretchesTheTail(t *testing.T) {
	for _, tc := range []struct{ p, x float64 }{{0, 0}, {90, 1}, {99, 2}, {99.9, 3}} {
		if got := pctX(tc.p); got < tc.x-1e-9 || got > tc.x+1e-9 {
			t.Errorf("pctX(%v) = %v, want %v", tc.p, got, tc.x)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct{ lo, hi float64 }{{0, 1}, {0, 0.37}, {0, 87}, {3, 1234}, {0, 0}} {
		ticks, lo, hi := niceTicks(tc.lo, tc.hi, 8)
		if lo > tc.lo || hi < tc.hi || len(ticks) < 2 || len(ticks) > 13 {
			t.Errorf("niceTicks(%v, %v) = %v [%v, %v]", tc.lo, tc.hi, ticks, lo, hi)
		}
	}
}
