// Command riskbench drives riskd (or the transport floor) with Evaluate
// calls at a fixed arrival rate or from N closed-loop clients and reports
// throughput, latency percentiles (HDR histogram), errors by Connect code and
// outcomes, as text, JSON and two SVG plots. The logic is in bench/load.
//
//	riskbench [flags]                 measure riskd at --server
//	riskbench floor [flags]           measure the transport floor alone
//	riskbench --compare-floor [flags] measure riskd, then the floor, same load; print the ratio
//	riskbench serve-floor --listen 127.0.0.1:18081   serve the floor for other tools
//	riskbench plot [--plots PREFIX] report.json       redraw a saved report's plots
//
// Against a local riskd:
//
//	go run ./cmd/riskd --data-dir /tmp/rb-data --listen 127.0.0.1:18080 &
//	go run ./cmd/riskbench --server http://127.0.0.1:18080 --data-dir /tmp/rb-data \
//	    --clients 64 --duration 30s --compare-floor --out closed.json
//	go run ./cmd/riskbench --server http://127.0.0.1:18080 --data-dir /tmp/rb-data \
//	    --rate 5000 --duration 30s --out open.json     # p99 from the scheduled send time
//	go run ./cmd/riskbench ... --overload --rate 40000   # accepted vs shed
//
// Open loop (--rate) schedules request i at start + i/rate and measures its
// latency from that time, so queueing in the server or the client is never
// hidden; --max-inflight bounds concurrency and requests more than --max-lag
// late are dropped and counted. Closed loop (--clients) measures capacity;
// a client that is shed waits (--shed-backoff, with jitter, doubling while
// it is shed) before it sends again, as a caller honouring overload does, so
// that refused requests do not take the CPU the accepted ones need.
// The floor is an empty RiskService handler that decodes the same request and
// answers with a decision of riskd's size, served by a child riskbench
// process of its own (like riskd, not sharing the load generator's runtime),
// or in-process with --floor-inprocess, or at --floor-server.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riskd/riskd/bench"
	"github.com/riskd/riskd/bench/load"
	"github.com/riskd/riskd/bench/population"
)

type config struct {
	server, dataDir, token   string
	protocol                 string
	json, http2              bool
	rate                     rateFlag
	clients, maxInflight     int
	maxLag, shedBackoff      time.Duration
	duration, warmup, timout time.Duration
	accounts, devices        int
	seed                     uint64
	workload                 string
	pregen                   int
	target                   string
	compareFloor, overload   bool
	populate                 bool
	out, plots               string
	latencyLog               string
	runID                    string
	quiet                    bool
	listen                   string
	floorServer              string
	thenOpen                 float64
	floorInProcess           bool
}

// rateFlag accepts "5000" or "5000/s".
type rateFlag float64

func (r *rateFlag) String() string { return strconv.FormatFloat(float64(*r), 'g', -1, 64) }
func (r *rateFlag) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v < 0 {
		return fmt.Errorf("want requests per second, like 5000 or 5000/s")
	}
	*r = rateFlag(v)
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "riskbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("riskbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.server, "server", env("RISKBENCH_SERVER", "http://127.0.0.1:8080"), "riskd base URL (RISKBENCH_SERVER)")
	fs.StringVar(&c.dataDir, "data-dir", env("RISKBENCH_DATA_DIR", "./data"), "riskd data dir, whose credentials.json holds the service token")
	fs.StringVar(&c.token, "token", os.Getenv("RISKBENCH_TOKEN"), "service bearer token (overrides --data-dir)")
	fs.StringVar(&c.protocol, "protocol", "connect", "connect, grpc or grpcweb")
	fs.BoolVar(&c.json, "json", false, "use the Connect JSON codec instead of protobuf")
	fs.BoolVar(&c.http2, "http2", false, "speak h2c for connect/grpcweb too (grpc always does)")
	fs.Var(&c.rate, "rate", "open loop at this many requests/s (e.g. 5000 or 5000/s); 0 = closed loop")
	fs.IntVar(&c.clients, "clients", 16, "closed-loop clients")
	fs.DurationVar(&c.shedBackoff, "shed-backoff", time.Millisecond, "closed loop: after a shed answer (resource_exhausted, unavailable) a client waits up to this, doubling with each shed in a row (at most 32 times), with jitter, as callers honouring overload do; 0 sends again at once")
	fs.IntVar(&c.maxInflight, "max-inflight", 256, "open loop: most requests in flight at once")
	fs.DurationVar(&c.maxLag, "max-lag", time.Second, "open loop: drop (and count) a request not sent within this of its schedule; negative never drops")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "warm-up before the measured window (not recorded)")
	fs.DurationVar(&c.timout, "timeout", 5*time.Second, "per-request timeout")
	fs.IntVar(&c.accounts, "accounts", 100_000, "population: accounts")
	fs.IntVar(&c.devices, "devices", 0, "population: devices (default: bench's 6 per 5 accounts; builtin's one per account)")
	fs.Uint64Var(&c.seed, "seed", 0, "workload seed (builtin: 0 is random)")
	fs.StringVar(&c.workload, "workload", "bench", "event source: bench (the repo's labelled synthetic workload) or builtin (uniform random logins, payments, check-ins)")
	fs.IntVar(&c.pregen, "pregen", 50_000, "generate this many events before the run and replay them (ids and times restamped), so the generator does not compete for CPU; 0 generates live")
	fs.StringVar(&c.target, "target", "riskd", "what to measure: riskd or floor")
	fs.BoolVar(&c.compareFloor, "compare-floor", false, "measure riskd, then the in-process transport floor with the same load, and print the ratio")
	fs.Float64Var(&c.thenOpen, "then-open", 0, "after a closed-loop riskd run, run open loop at this fraction of the throughput it reached (0.5: the issue's p99 target)")
	fs.BoolVar(&c.populate, "populate", false, "before measuring riskd, ingest one login from home for every account of the population (--accounts, --devices, --seed), so that riskd holds their feature state as a store serving them would (the issue's targets assume 1M accounts and 1M devices); bench workload only")
	fs.BoolVar(&c.overload, "overload", false, "overload run: needs --rate above capacity; reports accepted vs shed (defaults --max-inflight 2048 --max-lag 200ms)")
	fs.StringVar(&c.out, "out", "", "write the JSON report here")
	fs.StringVar(&c.plots, "plots", "", "write PREFIX-latency-time.svg and PREFIX-percentiles.svg (default: next to --out)")
	fs.StringVar(&c.latencyLog, "latency-log", "", "write every measured request (scheduled send time, arrival, latency, result) as CSV to PREFIX-TARGET.csv, to line it up with the server's logs")
	fs.StringVar(&c.runID, "run-id", "", "prefix of every event id (default: random)")
	fs.BoolVar(&c.quiet, "quiet", false, "no per-second progress on stderr")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:18081", "serve-floor: address to listen on")
	fs.StringVar(&c.floorServer, "floor-server", "", "measure the floor at this URL (a riskbench serve-floor process, started without --token) instead of in-process")
	fs.BoolVar(&c.floorInProcess, "floor-inprocess", false, "serve the floor inside riskbench instead of in a child process of its own")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: riskbench [floor|serve-floor|populate|plot] [flags]\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sub == "plot" {
		if fs.NArg() != 1 {
			return errors.New("usage: riskbench plot [--plots PREFIX] REPORT.json")
		}
		c.out = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the command, floor, serve-floor or populate, comes first)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch sub {
	case "":
	case "floor":
		c.target = "floor"
	case "serve-floor":
		return serveFloor(ctx, c, stdout, stderr)
	case "plot":
		return replot(c, stdout)
	case "populate":
		if c.workload != "bench" {
			return errors.New("populate: needs --workload bench")
		}
		return populate(ctx, c, stderr)
	default:
		return fmt.Errorf("unknown command %q (want floor, serve-floor, populate or plot, or none)", sub)
	}
	switch c.protocol {
	case "connect", "grpc", "grpcweb":
	default:
		return fmt.Errorf("--protocol %q: want connect, grpc or grpcweb", c.protocol)
	}
	if c.target != "riskd" && c.target != "floor" {
		return fmt.Errorf("--target %q: want riskd or floor", c.target)
	}
	if c.overload {
		if c.rate <= 0 {
			return errors.New("--overload needs --rate")
		}
		if !set["max-inflight"] {
			c.maxInflight = 2048
		}
		if !set["max-lag"] {
			c.maxLag = 200 * time.Millisecond
		}
	}
	if c.shedBackoff < 0 {
		return fmt.Errorf("--shed-backoff %s: want zero or a positive duration", c.shedBackoff)
	}
	if c.plots == "" && c.out != "" {
		c.plots = strings.TrimSuffix(c.out, filepath.Ext(c.out))
	}

	runID := c.runID
	if runID == "" {
		runID = load.NewRunID()
	}
	// One source for every run, so that riskd and the floor get the same
	// events.
	src, err := source(c, stderr)
	if err != nil {
		return err
	}
	var runs []*load.Report
	var target, floor *load.Report
	if c.populate {
		if c.target != "riskd" || c.workload != "bench" {
			return errors.New("--populate: needs --target riskd and --workload bench")
		}
		if err := populate(ctx, c, stderr); err != nil {
			return err
		}
	}
	if c.target == "riskd" {
		rep, err := measure(ctx, c, src, "riskd", runID, stdout, stderr)
		if err != nil {
			return err
		}
		runs, target = append(runs, rep), rep
	}
	if c.target == "floor" || c.compareFloor {
		rep, err := measure(ctx, c, src, "floor", runID+"f", stdout, stderr)
		if err != nil {
			return err
		}
		runs, floor = append(runs, rep), rep
	}
	out := &load.Output{Runs: runs}
	if target != nil && floor != nil {
		out.VsFloor = load.Compare(target, floor)
		fmt.Fprintln(stdout)
		if err := load.WriteRatio(stdout, out.VsFloor, target, floor); err != nil {
			return err
		}
	}
	// The latency target is set at a fraction of the closed-loop
	// maximum: measure it right away, against the same server state.
	if c.thenOpen > 0 && target != nil && target.Load.Mode == "closed" && target.ThroughputOK > 0 {
		oc := c
		oc.rate = rateFlag(math.Round(c.thenOpen * target.ThroughputOK))
		name := fmt.Sprintf("riskd@%g%%", 100*c.thenOpen)
		fmt.Fprintln(stdout)
		rep, err := measure(ctx, oc, src, name, runID+"o", stdout, stderr)
		if err != nil {
			return err
		}
		out.Runs = append(out.Runs, rep)
	}
	return writeFiles(c, out, stdout)
}

// populate gives riskd the feature state of the run's population.
func populate(ctx context.Context, c config, stderr io.Writer) error {
	token := c.token
	if token == "" {
		t, err := load.ServiceToken(c.dataDir)
		if err != nil {
			return fmt.Errorf("%w (or pass --token)", err)
		}
		token = t
	}
	client, err := load.NewClient(load.ClientOptions{BaseURL: c.server, Protocol: c.protocol, JSON: c.json, HTTP2: c.http2, Token: token, Conns: 4})
	if err != nil {
		return err
	}
	defer client.Close()
	o := load.PopulateOptions{Population: population.Options{Seed: c.seed, Accounts: c.accounts, Devices: c.devices}}
	if !c.quiet {
		o.Progress = func(n int64) { fmt.Fprintf(stderr, "\rpopulating: %d of %d accounts sent   ", n, c.accounts) }
	}
	rep, err := load.Populate(ctx, client, o)
	if !c.quiet {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "riskbench: populated %d accounts in %v (%.0f events/s): %d accepted, %d duplicates, %d rejected\n",
		rep.Events, rep.Elapsed.Round(time.Millisecond), float64(rep.Events)/rep.Elapsed.Seconds(), rep.Accepted, rep.Duplicates, rep.Rejected)
	if rep.Rejected > 0 {
		return fmt.Errorf("populate: riskd rejected %d events", rep.Rejected)
	}
	return nil
}

// measure runs the load once against riskd or a fresh in-process floor.
func measure(ctx context.Context, c config, src load.Source, target, runID string, stdout, stderr io.Writer) (*load.Report, error) {
	url, token := c.server, c.token
	switch {
	case target == "floor" && c.floorServer != "":
		url = c.floorServer
	case target == "floor" && c.floorInProcess:
		token = "floor-token"
		f, err := load.StartFloor(load.FloorOptions{Token: token})
		if err != nil {
			return nil, err
		}
		defer f.Close()
		url = f.URL
	case target == "floor":
		token = "floor-token"
		u, stop, err := floorProcess(ctx, token, stderr)
		if err != nil {
			return nil, err
		}
		defer stop()
		url = u
	case token == "":
		t, err := load.ServiceToken(c.dataDir)
		if err != nil {
			return nil, fmt.Errorf("%w (or pass --token)", err)
		}
		token = t
	}
	conns := c.clients
	if c.rate > 0 {
		conns = c.maxInflight
	}
	client, err := load.NewClient(load.ClientOptions{BaseURL: url, Protocol: c.protocol, JSON: c.json, HTTP2: c.http2, Token: token, Conns: conns})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	opts := load.Options{
		Source: src, Rate: float64(c.rate), Clients: c.clients, MaxInflight: c.maxInflight, MaxLag: c.maxLag,
		ShedBackoff: c.shedBackoff,
		Warmup:      c.warmup, Duration: c.duration, Timeout: c.timout, RunID: runID, Target: target,
	}
	if !c.quiet {
		opts.Progress = func(p load.Progress) {
			phase := "warm-up"
			if p.Measuring {
				phase = "measuring"
			}
			fmt.Fprintf(stderr, "\r%-9s %5.0fs  ok %d  errors %d  dropped %d  last-second p99 %.3f ms   ",
				phase, p.Elapsed.Seconds(), p.OK, p.Errors, p.Dropped, float64(p.LastSecondUS)/1000)
		}
	}
	var logFile *os.File
	if c.latencyLog != "" {
		if logFile, err = os.Create(c.latencyLog + "-" + target + ".csv"); err != nil {
			return nil, err
		}
		defer logFile.Close()
		opts.LatencyLog = logFile
	}
	fmt.Fprintf(stderr, "riskbench: %s at %s, %s\n", target, url, opts.Describe())
	rep, err := load.Run(ctx, client, opts)
	if err == nil && logFile != nil {
		if err = logFile.Close(); err == nil {
			fmt.Fprintln(stderr, "riskbench: latency log:", logFile.Name())
		}
	}
	if !c.quiet {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return nil, err
	}
	rep.URL, rep.Transport = client.URL, client.Transport
	if err := load.WriteText(stdout, rep); err != nil {
		return nil, err
	}
	if c.overload {
		if err := load.WriteShed(stdout, rep); err != nil {
			return nil, err
		}
	}
	if rep.Requests.Sent == 0 && ctx.Err() == nil {
		return rep, fmt.Errorf("%s: no request was answered", target)
	}
	return rep, nil
}

func source(c config, stderr io.Writer) (load.Source, error) {
	var src load.Source
	switch c.workload {
	case "builtin":
		src = load.NewRandomSource(load.RandomOptions{Accounts: c.accounts, Devices: c.devices, Seed: c.seed})
	case "bench":
		// Timestamps are restamped to the send time, so the simulated span
		// only has to be long enough never to run dry.
		w, err := bench.New(bench.Options{
			Seed:       c.seed,
			Population: population.Options{Accounts: c.accounts, Devices: c.devices},
			Duration:   365 * 24 * time.Hour,
		})
		if err != nil {
			return nil, err
		}
		src = load.Unlabel(w)
	default:
		return nil, fmt.Errorf("--workload %q: want bench or builtin", c.workload)
	}
	if c.pregen <= 0 {
		return src, nil
	}
	t0 := time.Now()
	r, err := load.NewReplay(src, c.pregen)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "riskbench: %d %s events generated in %v, replayed during the run\n", r.Len(), c.workload, time.Since(t0).Round(time.Millisecond))
	return r, nil
}

func writeFiles(c config, out *load.Output, stdout io.Writer) error {
	if c.out != "" {
		if err := writeFile(c.out, func(w io.Writer) error { return load.WriteJSON(w, out) }); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "report:", c.out)
	}
	if c.plots != "" && len(out.Runs) > 0 {
		tl, pc := c.plots+"-latency-time.svg", c.plots+"-percentiles.svg"
		if err := writeFile(tl, func(w io.Writer) error { return load.WriteTimelinePlot(w, out.Runs) }); err != nil {
			return err
		}
		if err := writeFile(pc, func(w io.Writer) error { return load.WritePercentilePlot(w, out.Runs) }); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "plots: ", tl, pc)
	}
	return nil
}

// replot redraws the plots of a saved JSON report.
func replot(c config, stdout io.Writer) error {
	data, err := os.ReadFile(c.out)
	if err != nil {
		return err
	}
	var out load.Output
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("%s: %w", c.out, err)
	}
	if c.plots == "" {
		c.plots = strings.TrimSuffix(c.out, filepath.Ext(c.out))
	}
	c.out = ""
	return writeFiles(c, &out, stdout)
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// floorProcess runs the floor in a child riskbench process, so that, like
// riskd, it has a process (and a Go runtime) of its own rather than sharing
// the load generator's: on a busy machine that is what makes the two
// comparable. It returns the floor's URL and a func that stops it.
//
// Only the riskbench binary itself may be re-executed: a test binary given
// "serve-floor" would run its tests again (and spawn again), so under go test
// and inside a floor child this refuses.
func floorProcess(ctx context.Context, token string, stderr io.Writer) (string, func(), error) {
	if testing.Testing() || os.Getenv(floorChildEnv) != "" {
		return "", nil, errors.New("floor process: not from a test binary or a floor child; use --floor-inprocess")
	}
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("floor process: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "serve-floor", "--listen", "127.0.0.1:0", "--token", token)
	cmd.Env = append(os.Environ(), floorChildEnv+"=1")
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, fmt.Errorf("floor process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("floor process: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	// The child's first line on stdout is its URL.
	line, err := bufio.NewReader(pipe).ReadString('\n')
	url := strings.TrimSpace(line)
	if err != nil || !strings.HasPrefix(url, "http://") {
		stop()
		return "", nil, fmt.Errorf("floor process did not start (%q): %v; try --floor-inprocess", url, err)
	}
	return url, stop, nil
}

// floorChildEnv marks a floor child process.
const floorChildEnv = "RISKBENCH_FLOOR_CHILD"

func serveFloor(ctx context.Context, c config, stdout, stderr io.Writer) error {
	f, err := load.StartFloor(load.FloorOptions{Addr: c.listen, Token: c.token})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, f.URL)
	fmt.Fprintf(stderr, "riskbench: transport floor serving RiskService at %s (Connect, gRPC, gRPC-Web; HTTP/1.1 and h2c)\n", f.URL)
	select {
	case <-ctx.Done():
		return f.Close()
	case <-waitErr(f):
		return f.Wait()
	}
}

func waitErr(f *load.Floor) <-chan struct{} {
	ch := make(chan struct{})
	go func() { _ = f.Wait(); close(ch) }()
	return ch
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
