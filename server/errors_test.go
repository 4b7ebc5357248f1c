package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
)

// TestConnectErrorCodes: transient engine conditions reach callers as the
// codes a client retries on, also when wrapped.
func TestConnectErrorCodes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		err  error
		code connect.Code
	}{
		{engine.ErrOverloaded, connect.CodeResourceExhausted},
		{engine.ErrClosed, connect.CodeUnavailable},
		{fmt.Errorf("engine: ingest: %w", features.ErrRebuilding), connect.CodeUnavailable},
	} {
		if got := connectError(context.Background(), log, "ingest", tc.err).Code(); got != tc.code {
			t.Errorf("%v: code %v, want %v", tc.err, got, tc.code)
		}
	}
}
