// Command riskd is the riskd server. `riskd --help` lists its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/riskd/riskd/internal/mallocarenas"
	"github.com/riskd/riskd/internal/memlimit"
	"github.com/riskd/riskd/server"
)

func main() {
	cfg, err := server.LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "riskd:", err)
		os.Exit(2)
	}
	log := server.NewLogger(cfg)
	// Process-wide, so here rather than in server.Run (which tests run
	// several of in one process).
	memlimit.Apply(cfg.MemoryLimit)
	runtime.GOMAXPROCS(cfg.Procs)
	log.Info("procs", "gomaxprocs", cfg.Procs, "cpus", runtime.NumCPU())
	log.Info("memory", "memory_limit", memlimit.Format(cfg.MemoryLimit), "malloc_arenas_capped", mallocarenas.Capped())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, log, server.Hooks{}); err != nil {
		log.Error("riskd failed", "err", err)
		os.Exit(1)
	}
}
