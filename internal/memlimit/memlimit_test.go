package memlimit

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string // part of the error; "" for none
	}{
		{"768MiB", 768 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{" 2 GiB ", 2 << 30, ""},
		{"65536KiB", 64 << 20, ""},
		{"1TiB", 1 << 40, ""},
		{"805306368", 768 << 20, ""},
		{"805306368B", 768 << 20, ""},
		{"0", 0, ""},
		{"off", 0, ""},
		{"", 0, "want a size"},
		{"768MB", 0, "want a size"},
		{"1.5GiB", 0, "want a size"},
		{"-1GiB", 0, "want a size"},
		{"GiB", 0, "want a size"},
		{"lots", 0, "want a size"},
		{"8388608TiB", 0, "too large"},
		{"32MiB", 0, "below 64MiB"},
		{"1B", 0, "below 64MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, n := range []int64{0, Default, Min, 1 << 30, 3 << 40, 768<<20 + 1024, 100_000_001} {
		s := Format(n)
		back, err := Parse(s)
		if err != nil || back != n {
			t.Errorf("Parse(Format(%d) = %q) = %d, %v", n, s, back, err)
		}
	}
	if s := Format(Default); s != "512MiB" {
		t.Errorf("Format(Default) = %q, want 512MiB", s)
	}
}

func TestDefaultFrom(t *testing.T) {
	tests := []struct {
		gomemlimit string
		want       int64
		err        bool
	}{
		{"", Default, false},
		{"2GiB", 2 << 30, false},
		{"off", 0, false},
		{"9223372036854775807", 0, false}, // the runtime's "no limit"
		{"32MiB", 32 << 20, false},        // GOMEMLIMIT is the operator's, even below Min
		{"lots", 0, true},
	}
	for _, tc := range tests {
		got, err := DefaultFrom(func(k string) string {
			if k == Env {
				return tc.gomemlimit
			}
			return ""
		})
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("GOMEMLIMIT=%q: %d, %v; want %d (error %v)", tc.gomemlimit, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), Env) {
			t.Errorf("GOMEMLIMIT=%q: error %v does not name %s", tc.gomemlimit, err, Env)
		}
	}
}

func TestApply(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	Apply(Default)
	if got := debug.SetMemoryLimit(-1); got != Default {
		t.Fatalf("runtime limit %d after Apply(Default), want %d", got, Default)
	}
	if prev := Apply(0); prev != Default {
		t.Errorf("Apply(0) returned %d, want the previous %d", prev, Default)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("runtime limit %d after Apply(0), want none (MaxInt64)", got)
	}
	if prev := Apply(1 << 30); prev != 0 {
		t.Errorf("Apply after none returned %d, want 0", prev)
	}
}

func TestApplySetsTheCollectorsTarget(t *testing.T) {
	orig, origPct := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(orig); debug.SetGCPercent(origPct) })
	gcPercent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	t.Setenv("GOGC", "")
	Apply(Default)
	if got := gcPercent(); got != GCPercent {
		t.Errorf("GC percent %d under a limit, want %d", got, GCPercent)
	}
	Apply(0)
	if got := gcPercent(); got != 100 {
		t.Errorf("GC percent %d without a limit, want 100", got)
	}
	t.Setenv("GOGC", "50")
	debug.SetGCPercent(50) // as the runtime does at start
	Apply(Default)
	if got := gcPercent(); got != 50 {
		t.Errorf("GC percent %d with GOGC=50 in the environment, want 50", got)
	}
}
