package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
)

// Options configures the API edge.
type Options struct {
	// Engine evaluates and records. Required.
	Engine *engine.Engine
	// Auth authenticates bearer tokens. Required.
	Auth *auth.Authenticator
	// Logger; default slog.Default().
	Logger *slog.Logger
	// MaxRequestBytes bounds one request message (after decompression).
	// Default 4 MiB.
	MaxRequestBytes int

	// metrics is shared with the engine's Observer; NewHandler makes its
	// own when nil.
	metrics *metrics
}

// DefaultMaxRequestBytes bounds a request message by default: room for an
// IngestRequest of a few thousand events.
const DefaultMaxRequestBytes = 4 << 20

// services lists every service riskd serves, for reflection and health.
var services = []string{
	riskv1connect.RiskServiceName,
	riskv1connect.DecisionServiceName,
}

// NewHandler returns the HTTP handler that serves every service.
func NewHandler(opts Options) (http.Handler, error) {
	if opts.Engine == nil || opts.Auth == nil {
		return nil, errors.New("server: Options.Engine and Options.Auth are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.metrics == nil {
		opts.metrics = newMetrics()
	}
	log := opts.Logger
	handlerOpts := []connect.HandlerOption{
		connect.WithInterceptors(metricsInterceptor{opts.metrics}, &authInterceptor{authn: opts.Auth, log: log}),
		connect.WithReadMaxBytes(opts.MaxRequestBytes),
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", opts.metrics.handler(opts.Engine))
	mux.Handle("/debug/pprof/", adminOnly(opts.Auth, pprofMux()))
	mux.Handle(riskv1connect.NewRiskServiceHandler(&riskService{eng: opts.Engine, log: log}, handlerOpts...))
	mux.Handle(riskv1connect.NewDecisionServiceHandler(&decisionService{eng: opts.Engine, log: log}, handlerOpts...))

	checker := grpchealth.NewStaticChecker(services...)
	mux.Handle(grpchealth.NewHandler(checker))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	return mux, nil
}

// HTTPServer returns an http.Server for h that speaks HTTP/1.1 and h2c and
// resists slow clients.
func HTTPServer(h http.Handler) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve serves h on l until ctx ends, then stops accepting, lets in-flight
// requests finish (up to grace), and returns.
func Serve(ctx context.Context, l net.Listener, h http.Handler, grace time.Duration) error {
	srv := HTTPServer(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	<-errc
	return nil
}
