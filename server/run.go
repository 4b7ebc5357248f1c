package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
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
	m := newMetrics()
	eopts := engine.Options{
		Observer:     m,
		DataDir:      c.DataDir,
		PseudonymKey: []byte(creds.PseudonymKey),
		Catalog:      catalog,
		MaxEventAge:  c.MaxEventAge,
		Budget:       c.Budget,
		AppealWindow: c.AppealWindow,
		FailModes:    c.FailModes,
		CacheEntries: c.CacheEntries,
		Clock:        hooks.Clock,
		Logger:       log,
	}
	if hooks.Engine != nil {
		hooks.Engine(&eopts)
	}
	eng, err := engine.Open(eopts)
	if err != nil {
		return err
	}
	if hooks.Opened != nil {
		hooks.Opened(eng)
	}
	defer func() {
		if cerr := eng.Close(); cerr != nil {
			log.Error("closing the store", "err", cerr)
		}
	}()
	h, err := NewHandler(Options{
		Engine:          eng,
		Auth:            auth.NewAuthenticator(creds, hooks.Clock),
		Logger:          log,
		MaxRequestBytes: c.MaxRequestBytes,
		metrics:         m,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("riskd serving", "addr", l.Addr().String(), "data_dir", c.DataDir,
		"ruleset", eng.Rules().Version(), "features", len(catalog.Defs()))
	if hooks.Ready != nil {
		hooks.Ready(l.Addr())
	}
	err = Serve(ctx, l, h, c.ShutdownGrace)
	log.Info("riskd stopped")
	return err
}
