package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// pebbleLogger sends Pebble's own log lines to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Log(context.Background(), slog.LevelError+4, fmt.Sprintf(format, args...), "component", "pebble")
	os.Exit(1)
}
