// Package testserver starts a real riskd (server.Run) on a loopback port
// with its own data directory, for tests of clients such as riskctl. It is
// for tests only; each Server is independent, so tests may run in parallel.
package testserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/logbuf"
	"github.com/riskd/riskd/server"
)

// Options adjust the server. The zero value starts riskd on the system
// clock without per-token rate limits.
type Options struct {
	// Clock replaces the system clock (tokens from SubjectToken follow it).
	Clock clock.Clock
	// Config adjusts the configuration after the defaults.
	Config func(*server.Config)
}

// Server is a running riskd.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	DataDir string // holds credentials.json
	Creds   auth.Credentials
	Engine  *engine.Engine
	Clock   clock.Clock

	t      testing.TB
	logs   *logbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

// Start runs riskd until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg, err := server.LoadConfig([]string{"--listen", "127.0.0.1:0", "--data-dir", dir}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Budget = 5 * time.Second // semantics, not speed: no fail modes on a loaded machine
	cfg.RateLimitUser, cfg.RateLimitService, cfg.RateLimitSubject = 0, 0, 0
	if o.Config != nil {
		o.Config(&cfg)
	}
	s := &Server{DataDir: dir, Clock: clock.Or(o.Clock), t: t, logs: &logbuf.Buffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ready := make(chan net.Addr, 1)
	hooks := server.Hooks{
		Clock:  o.Clock,
		Ready:  func(a net.Addr) { ready <- a },
		Opened: func(e *engine.Engine) { s.Engine = e },
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- server.Run(ctx, cfg, log, hooks) }()
	select {
	case a := <-ready:
		s.URL = "http://" + a.String()
	case err := <-s.done:
		cancel()
		t.Fatalf("riskd did not start: %v\nlogs:\n%s", err, s.logs)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("riskd did not start in 20s")
	}
	if s.Creds, err = auth.Load(filepath.Join(dir, auth.FileName)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts riskd down gracefully and waits; safe to call twice.
func (s *Server) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("riskd stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Error("riskd did not stop in 30s")
	}
}

// Logs returns what riskd logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// SubjectToken mints a subject token for account, valid for a day from the
// server's clock.
func (s *Server) SubjectToken(account string) string {
	s.t.Helper()
	tok, err := auth.MintSubjectToken([]byte(s.Creds.SubjectKey), account, 24*time.Hour, s.Clock.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// Evaluate records ev with the service token and returns the decision.
func (s *Server) Evaluate(ev *riskv1.Event) *riskv1.Decision {
	s.t.Helper()
	c := riskv1connect.NewRiskServiceClient(http.DefaultClient, s.URL, connect.WithInterceptors(bearer(s.Creds.Service)))
	res, err := c.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
	if err != nil {
		s.t.Fatalf("Evaluate(%s): %v", ev.GetEventId(), err)
	}
	return res.Msg.GetDecision()
}
