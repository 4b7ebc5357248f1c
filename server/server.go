package server

import (
	"context"
	"crypto/tls"
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
	"github.com/riskd/riskd/console"
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

	// RequireServiceCert demands a verified client certificate (mutual TLS)
	// from service callers.
	RequireServiceCert bool
	// RateLimitService and RateLimitUser bound requests per second per
	// token (0: unlimited); see Config.
	RateLimitService, RateLimitUser, RateLimitSubject float64

	// OverturnAlert flags a rule whose appeal overturn rate passes it, once
	// it has OverturnMinHits hits (defaults 0.2 and 20).
	OverturnAlert   float64
	OverturnMinHits int64

	// metrics is shared with the engine's Observer; NewHandler makes its
	// own when nil.
	metrics *metrics
}

// DefaultMaxRequestBytes bounds a request message by default: room for an
// IngestRequest of a few thousand events.
const DefaultMaxRequestBytes = 4 << 20

// Defaults of the overturn alert: a rule is flagged when more than a fifth
// of its hits were overturned on appeal, once it has 20 hits.
const (
	DefaultOverturnAlert   = 0.2
	DefaultOverturnMinHits = 20
)

// services lists every service riskd serves, for reflection and health.
var services = []string{
	riskv1connect.RiskServiceName,
	riskv1connect.DecisionServiceName,
	riskv1connect.AppealServiceName,
	riskv1connect.DecisionLogServiceName,
	riskv1connect.LabelsServiceName,
	riskv1connect.AdminServiceName,
	riskv1connect.RulesServiceName,
	riskv1connect.ListsServiceName,
	riskv1connect.FeaturesServiceName,
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
		connect.WithInterceptors(metricsInterceptor{opts.metrics}, newAuthInterceptor(opts, log), newAuditInterceptor(opts.Engine)),
		connect.WithReadMaxBytes(opts.MaxRequestBytes),
		// A decision is a kilobyte or two: gzipping it cost about 15% of the
		// server's CPU for bytes that loopback and LAN links carry for free.
		connect.WithCompressMinBytes(16 << 10),
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", opts.metrics.handler(opts.Engine))
	mux.Handle("/debug/pprof/", adminOnly(opts.Auth, pprofMux()))
	riskPath, riskHandler := riskv1connect.NewRiskServiceHandler(&riskService{eng: opts.Engine, log: log}, handlerOpts...)
	mux.Handle(riskPath, shedEarly(opts.Engine, opts.Auth, opts.metrics, riskHandler, handlerOpts))
	mux.Handle(riskv1connect.NewDecisionServiceHandler(&decisionService{eng: opts.Engine, log: log}, handlerOpts...))
	alert := overturnAlert{threshold: opts.OverturnAlert, minHits: opts.OverturnMinHits}
	if alert.threshold <= 0 {
		alert.threshold = DefaultOverturnAlert
	}
	if alert.minHits <= 0 {
		alert.minHits = DefaultOverturnMinHits
	}
	mux.Handle(riskv1connect.NewAppealServiceHandler(&appealService{eng: opts.Engine, log: log, alert: alert}, handlerOpts...))
	mux.Handle(riskv1connect.NewDecisionLogServiceHandler(newDecisionLogService(opts.Engine, log, alert), handlerOpts...))
	mux.Handle(riskv1connect.NewLabelsServiceHandler(&labelsService{eng: opts.Engine, log: log}, handlerOpts...))
	mux.Handle(riskv1connect.NewAdminServiceHandler(&adminService{eng: opts.Engine, log: log}, handlerOpts...))
	mux.Handle(riskv1connect.NewRulesServiceHandler(&rulesService{eng: opts.Engine, log: log, alert: alert}, handlerOpts...))
	mux.Handle(riskv1connect.NewListsServiceHandler(&listsService{eng: opts.Engine, log: log}, handlerOpts...))
	mux.Handle(riskv1connect.NewFeaturesServiceHandler(&featuresService{eng: opts.Engine, log: log}, handlerOpts...))

	checker := grpchealth.NewStaticChecker(services...)
	mux.Handle(grpchealth.NewHandler(checker))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	// The browser pages (console for analysts, appeal page for subjects);
	// Protect refuses cross-site browser calls to the API.
	pages := console.Handler(console.Options{Auth: opts.Auth})
	mux.Handle("/console/", pages)
	mux.Handle("/appeal/", pages)
	return console.Protect(mux), nil
}

// ServeOptions tune how Serve listens.
type ServeOptions struct {
	// Grace is how long in-flight requests may finish after ctx ends.
	Grace time.Duration
	// TLS serves TLS when set (HTTP/2 through ALPN, HTTP/1.1 otherwise).
	TLS *tls.Config
	// MaxConnections bounds open connections (0: unbounded).
	MaxConnections int
	// MaxStreams bounds concurrent HTTP/2 streams per connection (0: Go's default).
	MaxStreams int
	// ReadHeaderTimeout bounds how long a client may take to send request
	// headers (default 5 s).
	ReadHeaderTimeout time.Duration
}

// HTTPServer returns an http.Server for h that speaks HTTP/1.1 and HTTP/2
// (h2c without TLS) and resists slow clients: headers must arrive within 5 s,
// idle connections close after 2 min, and a stalled body read times out.
func HTTPServer(h http.Handler, o ServeOptions) *http.Server {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 5 * time.Second
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           withPeerCert(h),
		Protocols:         &protocols,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         o.TLS,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: o.MaxStreams,
			// A client that stops reading its stream for this long is gone.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	return srv
}

// Serve serves h on l until ctx ends, then stops accepting, lets in-flight
// requests finish (up to o.Grace), and returns.
func Serve(ctx context.Context, l net.Listener, h http.Handler, o ServeOptions) error {
	if o.MaxConnections > 0 {
		l = &limitListener{Listener: l, max: int64(o.MaxConnections)}
	}
	srv := HTTPServer(h, o)
	errc := make(chan error, 1)
	go func() {
		if o.TLS != nil {
			errc <- srv.ServeTLS(l, "", "")
		} else {
			errc <- srv.Serve(l)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Streams still open after the grace period are cut; what they had
		// acknowledged is on disk, the rest their clients resend.
		_ = srv.Close()
	}
	<-errc
	return nil
}

type peerCertKey struct{}

// withPeerCert records in the request's context whether the client
// presented a certificate that verified, for the mutual-TLS check.
func withPeerCert(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), peerCertKey{}, true))
		}
		h.ServeHTTP(w, r)
	})
}

func hasPeerCert(ctx context.Context) bool {
	ok, _ := ctx.Value(peerCertKey{}).(bool)
	return ok
}
