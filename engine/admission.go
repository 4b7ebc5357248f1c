package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// admission adapts how many evaluations may be under way at once to what
// the machine answers well within the budget. Past capacity, more
// evaluations at once only share the CPU more thinly: each takes longer, a
// growing share overrun the budget and answer with the fail mode, and the
// callers get fewer real decisions, not more. (At twice capacity over
// Connect, with 256 at once, 13-14 % of all requests were answered with the
// fail mode and the accepted p99 was 589-776 ms; with this limit, 0.8-0.9 %
// and 179-231 ms.)
//
// So the limit follows the smoothed time from arrival to answer. Every
// tick (admissionTick) it shrinks by a tenth while that time is above the
// target, and grows by one while it is below half the target; in between it
// holds. Additive increase and multiplicative decrease, as TCP's congestion
// window, between min and max.
//
// A disk that stalls every sync lengthens the answers too, and then the
// limit sheds callers (resource_exhausted, at once) who would otherwise have
// waited for a fail-mode answer at the budget; it comes back by one a tick
// once the disk answers. Telling the two apart by the time to the decision
// before its commit shed less in stalls but let more answers overrun at
// twice capacity (3-5 % in the fail mode), so the simpler rule stays.
type admission struct {
	target   time.Duration
	min, max int64
	limit    atomic.Int64

	mu     sync.Mutex
	answer float64   // smoothed time to answer, in nanoseconds; 0 before the first
	next   time.Time // the next adjustment
}

const (
	admissionTick = 10 * time.Millisecond
	// admissionWeight is the weight of one sample in the smoothed time:
	// about the last 128 answers count, so that a stall shorter than that
	// many answers' worth sheds no one (at 1,800/s, with 1/32, one
	// open-loop run in two shed 3.3 %; with 1/128 none of two), while
	// overload, thousands of answers a second, still moves it within
	// tens of milliseconds.
	admissionWeight = 1.0 / 128
)

func newAdmission(minimum, maximum int, target time.Duration) *admission {
	a := &admission{target: target, min: int64(min(minimum, maximum)), max: int64(maximum)}
	a.limit.Store(a.max)
	return a
}

// admits reports whether one more evaluation may start, with inFlight under
// way.
func (a *admission) admits(inFlight int) bool { return int64(inFlight) < a.limit.Load() }

// answered takes the time one evaluation took to answer, at now, and
// adjusts the limit once a tick.
func (a *admission) answered(now time.Time, took time.Duration) {
	if a.min == a.max || !a.mu.TryLock() {
		return
	}
	defer a.mu.Unlock()
	if a.answer == 0 {
		a.answer = float64(took)
	} else {
		a.answer += (float64(took) - a.answer) * admissionWeight
	}
	if now.Before(a.next) {
		return
	}
	a.next = now.Add(admissionTick)
	l, target := a.limit.Load(), float64(a.target)
	switch {
	case a.answer > target:
		l -= max(1, l/10)
	case a.answer < target/2:
		l++
	}
	a.limit.Store(min(max(l, a.min), a.max))
}
