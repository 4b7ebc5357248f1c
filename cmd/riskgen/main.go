// Command riskgen writes bench/'s labelled workload: a time-ordered NDJSON
// stream of risk.v1 events (the contract's JSON form) and a labels file, from
// a synthetic population, deterministic from a seed. `riskgen --help` lists
// the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/riskd/riskd/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, time.Now)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "riskgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("riskgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o                  bench.Options
		start, mix         string
		out, labels, sites string
		endNow, list       bool
		pace               float64
	)
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the population and the stream; the same seed gives byte-identical output")
	fs.IntVar(&o.Population.Accounts, "accounts", 10_000, "registered accounts")
	fs.IntVar(&o.Population.Devices, "devices", 0, "registered devices (0: accounts*6/5, one phone each plus household tablets)")
	fs.IntVar(&o.Population.Orgs, "orgs", 0, "organizations with attendance sites (0: accounts/200)")
	fs.IntVar(&o.Population.Merchants, "merchants", 0, "merchants (0: accounts/100, at least 10)")
	fs.DurationVar(&o.Duration, "duration", 2*time.Hour, "simulated span of the stream")
	fs.Float64Var(&o.Rate, "rate", 0, "benign events per simulated second (0: accounts/1000, at least 1)")
	fs.Float64Var(&o.AttackRate, "attack-rate", 1, "multiplier on every attack's share: 2 doubles the attacks, 0.5 halves them, 0 turns them off")
	fs.BoolVar(&o.NoAttacks, "no-attacks", false, "benign traffic only")
	fs.StringVar(&mix, "mix", "", "override scenario fractions of --rate: scenario=fraction,... (0 disables one; see --list)")
	fs.StringVar(&start, "start", "", "first instant of the stream, RFC 3339 (default "+bench.DefaultStart.Format(time.RFC3339)+")")
	fs.BoolVar(&endNow, "end-now", false, "shift the stream so that it ends now (riskd refuses events older than --max-event-age, 24h by default)")
	fs.Float64Var(&pace, "pace", 0, "release events in real time at this speed (1: real time, 60: an hour a minute), restamped with the wall clock; 0 writes at once")
	fs.StringVar(&out, "out", "-", "events file (NDJSON); - for stdout")
	fs.StringVar(&labels, "labels", "", "labels file (NDJSON: event_id, scenario, attack, expect); empty for none")
	fs.StringVar(&sites, "sites", "", "also write the population's attendance sites (NDJSON: coordinates, radius, BSSIDs, office /24) to this file")
	fs.BoolVar(&list, "list", false, "list the scenarios and their default fractions, and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: riskgen [flags]\n\nWrites a labelled, deterministic riskd workload: benign traffic mixed with\naccount takeover, credential stuffing, payment fraud and attendance cheating.\n\nExample:\n  riskgen --seed 1 --accounts 10000 --duration 2h --attack-rate 1 --end-now \\\n    --out events.ndjson --labels labels.ndjson\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if list {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SCENARIO\tATTACK\tEXPECT\tFRACTION")
		for _, s := range bench.Scenarios() {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%g\n", s.Name, s.Attack, s.Expect, s.Fraction)
		}
		return tw.Flush()
	}
	if o.AttackRate == 0 {
		o.NoAttacks = true // Options reads 0 as "default"; on the command line it means none
	}
	if mix != "" {
		m, err := bench.ParseMix(mix)
		if err != nil {
			return err
		}
		o.Mix = m
	}
	switch {
	case endNow && start != "":
		return errors.New("--start and --end-now exclude each other")
	case endNow:
		o.Start = bench.StartEndingAt(now(), o.Duration)
	case start != "":
		t, err := time.Parse(time.RFC3339, start)
		if err != nil {
			return fmt.Errorf("--start: %w", err)
		}
		o.Start = t
	}
	w, err := bench.New(o)
	if err != nil {
		return err
	}
	if sites != "" {
		if err := writeFile(sites, stdout, func(f io.Writer) error { return w.Population().WriteSites(f) }); err != nil {
			return err
		}
	}
	var n int
	err = writeFile(out, stdout, func(ev io.Writer) error {
		if labels == "" {
			n, err = write(ctx, w, pace, ev, nil)
			return err
		}
		return writeFile(labels, stdout, func(lw io.Writer) error {
			n, err = write(ctx, w, pace, ev, lw)
			return err
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "riskgen: %d events from %s to %s\n", n, w.Start().Format(time.RFC3339), w.End().Format(time.RFC3339))
	return nil
}

func write(ctx context.Context, w *bench.Workload, pace float64, events, labels io.Writer) (int, error) {
	if pace > 0 {
		return bench.StreamNDJSON(ctx, bench.NewPacer(w, bench.PaceOptions{Speed: pace}), events, labels)
	}
	return bench.WriteNDJSON(w, events, labels)
}

// writeFile runs fn on the named file ("-" is stdout), closing it after.
func writeFile(name string, stdout io.Writer, fn func(io.Writer) error) error {
	if name == "-" {
		return fn(stdout)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
