package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/rules"
)

// Hooks lets tests observe and steer a running server. The zero value does
// nothing.
type Hooks struct {
	// Ready is called with the bound address once the server accepts.
	Ready func(addr net.Addr)
	// Clock replaces the system clock (event-time "now").
	Clock clock.Clock
	// Engine adjusts the engine's options before it opens (fault injection).
	Engine func(*engine.Options)
	// Opened is called with the engine once it is open.
	Opened func(*engine.Engine)
	// Serve adjusts the listener's options.
	Serve func(*ServeOptions)
}

// NewLogger builds the process logger the configuration asks for.
func NewLogger(c Config) *slog.Logger {
	ho := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, ho))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, ho))
}

// Run opens the store, serves until ctx ends, then shuts down gracefully:
// stop accepting, let in-flight requests finish, close the store cleanly.
func Run(ctx context.Context, c Config, log *slog.Logger, hooks Hooks) error {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var (
		creds   auth.Credentials
		created bool
		path    = c.CredentialsFile
		err     error
	)
	if path == "" || path == filepath.Join(c.DataDir, "credentials.json") {
		creds, created, path, err = auth.LoadOrCreate(c.DataDir)
	} else {
		creds, err = auth.Load(path)
	}
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if created {
		log.Info("wrote new credentials; riskctl reads them from there", "path", path)
	} else {
		log.Info("using credentials", "path", path)
	}
	catalog := features.DefaultCatalog()
	if c.CatalogFile != "" {
		if catalog, err = features.LoadCatalog(c.CatalogFile); err != nil {
			return fmt.Errorf("feature catalog: %w", err)
		}
	}
	var ruleFiles []rules.File
	if c.RulesDir != "" {
		if ruleFiles, err = ReadRuleDir(c.RulesDir); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
		if _, err := rules.Compile(ruleFiles, rules.CompileOptions{Features: catalog.Defs()}); err != nil {
			return fmt.Errorf("rules in %s: %w", c.RulesDir, err)
		}
	}
	key, oldKeys, err := PseudonymKeys(c, creds)
	if err != nil {
		return err
	}
	m := newMetrics()
	eopts := engine.Options{
		Observer:          m,
		DataDir:           c.DataDir,
		PseudonymKey:      key,
		Catalog:           catalog,
		RuleFiles:         ruleFiles,
		MaxEventAge:       c.MaxEventAge,
		Budget:            c.Budget,
		AppealWindow:      c.AppealWindow,
		FailModes:         c.FailModes,
		CacheEntries:      c.CacheEntries,
		MaxInFlight:       c.MaxInFlight,
		MinInFlight:       c.MinInFlight,
		AdmissionTarget:   c.AdmissionTarget,
		Clock:             hooks.Clock,
		BacktestMaxStates: c.BacktestMaxStates,
		Logger:            log,
	}
	eopts.OldPseudonymKeys, eopts.Retention = oldKeys, c.Retention
	eopts.DeviceProfileHorizon = c.DeviceProfileHorizon
	if hooks.Engine != nil {
		hooks.Engine(&eopts)
	}
	eng, err := engine.Open(eopts)
	if err != nil {
		return err
	}
	auditStart(eng, c, creds, len(oldKeys))
	if hooks.Opened != nil {
		hooks.Opened(eng)
	}
	defer func() {
		if cerr := eng.Close(); cerr != nil {
			log.Error("closing the store", "err", cerr)
		}
	}()
	tlsConfig, err := loadTLS(c)
	if err != nil {
		return err
	}
	h, err := NewHandler(Options{
		Engine:             eng,
		Auth:               auth.NewAuthenticator(creds, hooks.Clock),
		Logger:             log,
		MaxRequestBytes:    c.MaxRequestBytes,
		RequireServiceCert: c.TLSClientCA != "",
		RateLimitService:   c.RateLimitService,
		RateLimitUser:      c.RateLimitUser,
		RateLimitSubject:   c.RateLimitSubject,
		OverturnAlert:      c.OverturnAlert,
		OverturnMinHits:    c.OverturnMinHits,
		metrics:            m,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("riskd serving", "addr", l.Addr().String(), "data_dir", c.DataDir, "tls", tlsConfig != nil,
		"ruleset", eng.Rules().Version(), "features", len(catalog.Defs()))
	if hooks.Ready != nil {
		hooks.Ready(l.Addr())
	}
	so := ServeOptions{Grace: c.ShutdownGrace, TLS: tlsConfig, MaxConnections: c.MaxConnections, MaxStreams: c.MaxStreams}
	if hooks.Serve != nil {
		hooks.Serve(&so)
	}
	err = Serve(ctx, l, h, so)
	log.Info("riskd stopped")
	return err
}

// loadTLS builds the TLS configuration the settings ask for, or nil.
func loadTLS(c Config) (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TLSClientCA != "" {
		pem, err := os.ReadFile(c.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client CA %s: no certificate found", c.TLSClientCA)
		}
		// Subjects in a browser have no client certificate; service callers
		// must have one (checked per call).
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = pool
	}
	return cfg, nil
}
