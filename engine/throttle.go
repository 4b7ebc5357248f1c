package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// throttledLog writes a line that can repeat once per request, such as an
// overrun under overload, at most once per interval: overload would
// otherwise also flood the log (hundreds of lines a second), at the moment
// the machine has the least to spare. Each line says how many like it were
// held back since the previous one; the metrics count every occurrence.
type throttledLog struct {
	log      *slog.Logger
	level    slog.Level
	msg      string
	interval time.Duration

	mu   sync.Mutex
	last time.Time // when the last line was written; zero before the first
	held int       // occurrences not written since
}

func newThrottledLog(log *slog.Logger, level slog.Level, msg string, interval time.Duration) *throttledLog {
	return &throttledLog{log: log, level: level, msg: msg, interval: interval}
}

// Log writes the line with args when the interval has passed since the last
// one (the first is always written), and otherwise counts it.
func (t *throttledLog) Log(now time.Time, args ...any) {
	t.mu.Lock()
	if !t.last.IsZero() && now.Sub(t.last) < t.interval {
		t.held++
		t.mu.Unlock()
		return
	}
	held := t.held
	t.last, t.held = now, 0
	t.mu.Unlock()
	if held > 0 {
		args = append(args, "held_back", held)
	}
	t.log.Log(context.Background(), t.level, t.msg, args...)
}
