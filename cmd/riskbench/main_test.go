package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riskd/riskd/bench/load"
	"github.com/riskd/riskd/internal/testserver"
)

func TestFloorCommandWritesReportAndPlots(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"builtin-closed", []string{"floor", "--floor-inprocess", "--workload", "builtin", "--pregen", "0", "--clients", "2"}},
		{"bench-open-grpc", []string{"floor", "--floor-inprocess", "--workload", "bench", "--pregen", "200", "--accounts", "1000", "--rate", "100/s", "--protocol", "grpc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "r.json")
			args := append(tc.args, "--duration", "300ms", "--warmup", "0s", "--quiet", "--out", out, "--latency-log", filepath.Join(dir, "lat"))
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), "latency    ms  p50") {
				t.Errorf("stdout:\n%s", stdout.String())
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var o load.Output
			if err := json.Unmarshal(data, &o); err != nil {
				t.Fatal(err)
			}
			if len(o.Runs) != 1 || o.Runs[0].Target != "floor" || o.Runs[0].Requests.OK == 0 {
				t.Fatalf("report %s", data)
			}
			for _, f := range []string{"r-latency-time.svg", "r-percentiles.svg"} {
				if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
					t.Errorf("plot %s: %v", f, err)
				}
			}
			if lat, err := os.ReadFile(filepath.Join(dir, "lat-floor.csv")); err != nil || int64(bytes.Count(lat, []byte("\n"))) != 1+o.Runs[0].Requests.Sent {
				t.Errorf("latency log: %v, %d lines for %d requests", err, bytes.Count(lat, []byte("\n")), o.Runs[0].Requests.Sent)
			}
		})
	}
}

func TestCompareFloorAgainstAServer(t *testing.T) {
	// A second floor stands in for riskd, token and all.
	f, err := load.StartFloor(load.FloorOptions{Token: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), []byte(`{"service":"svc","analyst":"a"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--server", f.URL, "--data-dir", dir, "--compare-floor", "--floor-inprocess", "--workload", "builtin", "--pregen", "100",
		"--clients", "2", "--duration", "300ms", "--warmup", "0s", "--quiet"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "riskd vs transport floor: throughput") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--protocol", "smoke", "floor"},
		{"floor", "--protocol", "smoke", "--duration", "100ms"},
		{"--overload"},
		{"--rate", "fast"},
		{"--target", "moon"},
		{"launch"},
		{"--data-dir", "/nonexistent", "--duration", "100ms"},
		{"floor", "--populate"},
		{"--populate"}, // the builtin workload has no population to give riskd
		{"populate"},
		{"--shed-backoff", "-1ms"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append(args, "--quiet", "--workload", "builtin", "--pregen", "0"), &stdout, &stderr); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestPopulateThenMeasure gives a real riskd the population's state before
// the run, and the run then meets it.
func TestPopulateThenMeasure(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	var stdout, stderr bytes.Buffer
	args := []string{"--server", srv.URL, "--data-dir", srv.DataDir, "--populate", "--accounts", "200", "--workload", "bench", "--pregen", "100",
		"--clients", "2", "--duration", "300ms", "--warmup", "0s", "--quiet"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "populated 200 accounts") || !strings.Contains(stderr.String(), "200 accepted, 0 duplicates, 0 rejected") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "latency    ms  p50") {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
	// The populate command does only that.
	stdout.Reset()
	stderr.Reset()
	if err := run(context.Background(), []string{"populate", "--server", srv.URL, "--data-dir", srv.DataDir, "--accounts", "50", "--quiet"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "populated 50 accounts") || stdout.Len() != 0 {
		t.Fatalf("populate: stdout %q, stderr:\n%s", stdout.String(), stderr.String())
	}
}

// Under go test, the floor must never be a child process: the child would be
// this test binary, running the tests again.
func TestFloorProcessRefusedInTests(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"floor", "--workload", "builtin", "--pregen", "0", "--duration", "100ms", "--quiet"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--floor-inprocess") {
		t.Fatalf("err %v, want a refusal pointing at --floor-inprocess", err)
	}
}
