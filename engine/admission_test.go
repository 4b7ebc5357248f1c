package engine

import (
	"testing"
	"time"
)

func TestAdmission(t *testing.T) {
	const target = 20 * time.Millisecond
	const ms = time.Millisecond
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	type phase struct {
		answer time.Duration // each evaluation's time to answer
		ticks  int           // how many ticks the phase lasts, 8 evaluations a tick
	}
	slow := phase{100 * ms, 100}
	for name, tc := range map[string]struct {
		min, max int
		start    []phase // run first
		then     []phase
		lo, hi   int // the limit after then; 0, 0: as it was after start, and below max
	}{
		"fast answers keep the maximum":            {min: 16, max: 256, then: []phase{{ms, 50}}, lo: 256, hi: 256},
		"slow answers shrink it to the floor":      {min: 16, max: 256, then: []phase{slow}, lo: 16, hi: 16},
		"by a tenth a tick":                        {min: 16, max: 256, then: []phase{{100 * ms, 1}}, lo: 256 - 25, hi: 256 - 25},
		"between half and the target it holds":     {min: 16, max: 256, then: []phase{{15 * ms, 200}}, lo: 256, hi: 256},
		"it grows back by one a tick":              {min: 16, max: 256, start: []phase{slow}, then: []phase{{ms, 100}}, lo: 16 + 50, hi: 16 + 100},
		"and all the way":                          {min: 16, max: 256, start: []phase{slow}, then: []phase{{ms, 300}}, lo: 256, hi: 256},
		"min equal to max is fixed":                {min: 64, max: 64, then: []phase{slow}, lo: 64, hi: 64},
		"a floor above the maximum is the maximum": {min: 512, max: 64, then: []phase{slow}, lo: 64, hi: 64},
		// Once the smoothed time has come down between half the target and
		// the target (it lags: about 128 answers count), the limit stays
		// where the slow spell left it.
		"and holds in between": {min: 16, max: 256,
			start: []phase{{100 * ms, 5}, {15 * ms, 50}},
			then:  []phase{{15 * ms, 200}}},
	} {
		t.Run(name, func(t *testing.T) {
			a := newAdmission(tc.min, tc.max, target)
			now := t0
			run := func(ps []phase) {
				for _, p := range ps {
					for range p.ticks {
						for i := range 8 {
							a.answered(now.Add(time.Duration(i)*admissionTick/8), p.answer)
						}
						now = now.Add(admissionTick)
					}
				}
			}
			run(tc.start)
			mid := int(a.limit.Load())
			run(tc.then)
			got := int(a.limit.Load())
			lo, hi := tc.lo, tc.hi
			if lo == 0 && hi == 0 {
				if mid == tc.max {
					t.Fatalf("the slow spell left the limit at the maximum, %d", mid)
				}
				lo, hi = mid, mid
			}
			if got < lo || got > hi {
				t.Fatalf("limit %d (after start %d), want %d..%d", got, mid, lo, hi)
			}
		})
	}
	if a := newAdmission(4, 8, target); !a.admits(7) || a.admits(8) {
		t.Error("admits: want 7 of 8 admitted, the 8th shed")
	}
}
