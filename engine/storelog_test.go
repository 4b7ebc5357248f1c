package engine

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/riskd/riskd/internal/logbuf"
)

// TestDebugLogsStoreWork: at debug level the store's flushes and
// compactions are logged, to line slow answers up with them; above it
// they are not.
func TestDebugLogsStoreWork(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var logged logbuf.Buffer
		log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: level}))
		e, err := Open(Options{DataDir: t.TempDir(), PseudonymKey: []byte("log-pseudonym-key-0123456789abcd"), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.DB().Flush(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(logged.String(), `msg="store flushed"`)
		if want := level == slog.LevelDebug; got != want {
			t.Errorf("level %v: flush logged %v, want %v\n%s", level, got, want, logged.String())
		}
	}
}
