package cputime

import (
	"syscall"
	"time"
)

// Process returns the user plus system CPU time of the whole process (every
// goroutine, the collector's included), or 0 where getrusage fails.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
