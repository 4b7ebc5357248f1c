package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/bench"
)

func gen(t *testing.T, args ...string) (events, labels []byte) {
	t.Helper()
	dir := t.TempDir()
	ev, lb := filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "labels.ndjson")
	var stderr bytes.Buffer
	args = append([]string{"--out", ev, "--labels", lb}, args...)
	if err := run(context.Background(), args, &bytes.Buffer{}, &stderr, time.Now); err != nil {
		t.Fatalf("riskgen %v: %v\n%s", args, err, stderr.String())
	}
	e, err := os.ReadFile(ev)
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.ReadFile(lb)
	if err != nil {
		t.Fatal(err)
	}
	return e, l
}

func TestRiskgen(t *testing.T) {
	args := []string{"--seed", "3", "--accounts", "500", "--duration", "20m"}
	e1, l1 := gen(t, args...)
	e2, l2 := gen(t, args...)
	if !bytes.Equal(e1, e2) || !bytes.Equal(l1, l2) {
		t.Fatal("same flags, different output")
	}
	if n, m := bytes.Count(e1, []byte("\n")), bytes.Count(l1, []byte("\n")); n == 0 || n != m {
		t.Fatalf("%d events, %d labels", n, m)
	}
	if !bytes.HasPrefix(e1, []byte(`{"eventId":"evt-`)) {
		t.Fatalf("events not in the contract's JSON form: %.80s", e1)
	}

	_, l0 := gen(t, append(args, "--attack-rate", "0")...)
	if bytes.Contains(l0, []byte(`"attack":true`)) {
		t.Fatal("--attack-rate 0 still generated attacks")
	}
}

func TestRiskgenEndNow(t *testing.T) {
	now := time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC)
	var out, stderr bytes.Buffer
	err := run(context.Background(), []string{"--accounts", "200", "--duration", "5m", "--end-now", "--mix", "stuffing_ip_pool=0,stuffing_single_ip=0,stuffing_slow=0"}, &out, &stderr, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "to 2026-11-28T16:00:00Z") || !bytes.Contains(out.Bytes(), []byte(`"occurredAt":"2026-11-28T15:5`)) {
		t.Fatalf("stream not ending now: %s", stderr.String())
	}
}

func TestRiskgenFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--mix", "nope=1"},
		{"--start", "yesterday"},
		{"--start", "2026-01-01T00:00:00Z", "--end-now"},
		{"--duration", "-1h"},
		{"extra"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}, time.Now); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--list"}, &out, &bytes.Buffer{}, time.Now); err != nil {
		t.Fatal(err)
	}
	for _, s := range bench.Scenarios() {
		if !strings.Contains(out.String(), string(s.Name)) {
			t.Errorf("--list lacks %s", s.Name)
		}
	}
	var help bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &bytes.Buffer{}, &help, time.Now); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "--attack-rate") && !strings.Contains(help.String(), "-attack-rate") {
		t.Fatalf("--help: %v\n%s", err, help.String())
	}
}

func TestRiskgenSites(t *testing.T) {
	dir := t.TempDir()
	sites := filepath.Join(dir, "sites.ndjson")
	if err := run(context.Background(), []string{"--accounts", "1000", "--duration", "1m", "--no-attacks", "--out", filepath.Join(dir, "e"), "--sites", sites}, &bytes.Buffer{}, &bytes.Buffer{}, time.Now); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sites)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n < 5 || !bytes.Contains(b, []byte(`"bssids":[`)) {
		t.Fatalf("%d sites: %.200s", n, b)
	}
}
