package features

import "runtime"

// Admission.
//
// An Apply is CPU work with short reads in it, and past the number of
// CPUs more Applies at once only interleave: each takes as long, and the
// Go scheduler's order (a goroutine just woken runs next, one back from a
// system call queues behind the rest) lets most finish at once while a few
// wait for milliseconds. The store therefore runs at most
// Options.MaxApplies at once and queues the rest on a channel, whose
// waiting senders are served first come first served. With 32 callers on
// the 2-core development VM (bench/redisbench, 32 workers, three runs
// alternating with the store unbounded), this took the p99 of an Apply
// from 9.4-11.1 ms to 3.7-4.4 ms and its p99.9 from 43-49 to 16-22 ms, at
// the same rate; the p50 rose from 33-35 µs to 0.45-0.50 ms, close to the
// mean that 32 callers at that rate must see. In-process Evaluate, whose
// callers wait for their commits outside Apply, did not change.

// DefaultMaxApplies is the default Options.MaxApplies: twice the CPUs, so
// that one Apply's read from the disk leaves a CPU something to do.
func DefaultMaxApplies() int { return 2 * runtime.NumCPU() }

// afterAdmit, when set (by tests), runs in each Apply once it has its turn.
var afterAdmit func()

// admit takes a turn, waiting in line when all are taken.
func (s *Store) admit() {
	select {
	case s.turns <- struct{}{}:
	default:
		s.waits.Add(1)
		s.turns <- struct{}{}
	}
	if afterAdmit != nil {
		afterAdmit()
	}
}

// leave gives the turn back; the longest waiter, if any, takes it.
func (s *Store) leave() { <-s.turns }
