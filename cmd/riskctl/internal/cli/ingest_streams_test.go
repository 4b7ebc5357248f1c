package cli

import (
	"fmt"
	"strings"
	"testing"
)

// With several streams, riskd's rejections (indexed within each stream)
// still come back as the right file:line, and every event is sent once.
func TestIngestStreamsMapRejectionsToLines(t *testing.T) {
	for _, streams := range []int{1, 3} {
		t.Run(fmt.Sprint(streams), func(t *testing.T) {
			fake, srv := startFakeRiskd(t)
			h := newHarness(t, srv.URL)
			var in strings.Builder
			var want []string
			const lines = 40
			for i := 1; i <= lines; i++ {
				if i%7 == 0 { // no account: riskd rejects it
					fmt.Fprintf(&in, `{"eventId":"s%d"}`+"\n", i)
					want = append(want, fmt.Sprintf("x.ndjson:%d: ", i))
					continue
				}
				fmt.Fprintf(&in, `{"eventId":"s%d","accountId":"u%d"}`+"\n", i, i)
			}
			file := writeFile(t, t.TempDir(), "x.ndjson", in.String())
			r := h.run("ingest", "--streams", fmt.Sprint(streams), "--batch", "3", "--progress", "none", file)
			if r.code != ExitRejected {
				t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
			}
			for _, w := range want {
				if !strings.Contains(r.stderr, strings.Replace(w, "x.ndjson", file, 1)) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			accepted := lines - len(want)
			if !strings.Contains(r.stderr, fmt.Sprintf("%d events read, %d accepted, 0 duplicates, %d rejected", lines, accepted, len(want))) {
				t.Errorf("summary:\n%s", r.stderr)
			}
			if ev := fake.ingestedEvent("s40"); ev.GetAccountId() != "u40" {
				t.Errorf("s40 ingested as %v", ev)
			}
		})
	}
}
