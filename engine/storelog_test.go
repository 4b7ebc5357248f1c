package engine

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/logbuf"
)

// TestDebugLogsStoreWork: at debug level the store's flushes and
// compactions, and the feature store's write-back flushes, are logged, to
// line slow answers up with them; above it they are not.
func TestDebugLogsStoreWork(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var logged logbuf.Buffer
		log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: level}))
		e, err := Open(Options{DataDir: t.TempDir(), PseudonymKey: []byte("log-pseudonym-key-0123456789abcd"), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Evaluate(context.Background(), &riskv1.Event{
			EventId: "log-1", Type: riskv1.EventType_EVENT_TYPE_LOGIN, OccurredAt: timestamppb.Now(), AccountId: "acct-log",
			Login: &riskv1.Login{Success: false, Method: "password"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.DB().Flush(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil { // flushes the login's feature deltas
			t.Fatal(err)
		}
		want := level == slog.LevelDebug
		if got := strings.Contains(logged.String(), `msg="store flushed"`); got != want {
			t.Errorf("level %v: flush logged %v, want %v\n%s", level, got, want, logged.String())
		}
		if got := regexp.MustCompile(`msg="feature state flushed" began=\S+ took=\S+ merged=[1-9]`).MatchString(logged.String()); got != want {
			t.Errorf("level %v: feature flush with its merges logged %v, want %v\n%s", level, got, want, logged.String())
		}
	}
}
