package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestThrottledLog(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		at   []time.Duration // occurrences, after t0
		want []string        // the lines written
	}{
		"one":                 {at: []time.Duration{0}, want: []string{"level=WARN msg=overran k=v"}},
		"a burst is one line": {at: []time.Duration{0, 1, 2, 500 * time.Millisecond, 999 * time.Millisecond}, want: []string{"level=WARN msg=overran k=v"}},
		"the next says held back": {
			at:   []time.Duration{0, 1, 2, time.Second, time.Second + 1, 5 * time.Second},
			want: []string{"level=WARN msg=overran k=v", "level=WARN msg=overran k=v held_back=2", "level=WARN msg=overran k=v held_back=1"},
		},
		"sparse lines each show": {
			at:   []time.Duration{0, 2 * time.Second, 4 * time.Second},
			want: []string{"level=WARN msg=overran k=v", "level=WARN msg=overran k=v", "level=WARN msg=overran k=v"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))
			tl := newThrottledLog(log, slog.LevelWarn, "overran", time.Second)
			for _, d := range tc.at {
				tl.Log(t0.Add(d), "k", "v")
			}
			got := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
