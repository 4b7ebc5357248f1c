// Command ingestgen writes a synthetic NDJSON event stream (package bench's
// labelled workload, benign and attack traffic over a population) ending
// now, for timing `riskctl ingest`. See bench/ingest.sh.
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench"
	"github.com/riskd/riskd/bench/population"
)

func main() {
	n := flag.Int("n", 1_000_000, "events to write")
	accounts := flag.Int("accounts", 100_000, "population size")
	span := flag.Duration("span", 6*time.Hour, "simulated span, ending now (keep it under riskd's --max-event-age)")
	seed := flag.Uint64("seed", 1, "seed of the population and the stream")
	out := flag.String("o", "-", "output file (- for standard output; a .gz name is gzipped)")
	format := flag.String("format", "ndjson", "ndjson (the bench workload's mixed events) or combined (web access log lines, one account per uid query parameter)")
	flag.Parse()
	var err error
	if *format == "combined" {
		err = runCombined(*n, *accounts, *span, *seed, *out)
	} else {
		err = run(*n, *accounts, *span, *seed, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestgen:", err)
		os.Exit(1)
	}
}

func run(n, accounts int, span time.Duration, seed uint64, out string) error {
	w, err := bench.New(bench.Options{
		Seed:       seed,
		Population: population.Options{Accounts: accounts},
		Start:      bench.StartEndingAt(time.Now().Add(-time.Minute), span),
		Duration:   span,
		Rate:       float64(n) / span.Seconds(),
	})
	if err != nil {
		return err
	}
	var dst io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		dst = f
		if strings.HasSuffix(out, ".gz") {
			zw := gzip.NewWriter(f)
			defer zw.Close()
			dst = zw
		}
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	written, err := bench.WriteNDJSON(&limit{w, n}, bw, nil)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ingestgen: %d events\n", written)
	return nil
}

func create(out string) (io.Writer, func() error, error) {
	if out == "-" {
		return os.Stdout, func() error { return nil }, nil
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, nil, err
	}
	if strings.HasSuffix(out, ".gz") {
		zw := gzip.NewWriter(f)
		return zw, func() error { zw.Close(); return f.Close() }, nil
	}
	return f, f.Close, nil
}

// runCombined writes n access log lines in the combined log format, spread
// over span and ending now, from `accounts` users (query parameter uid) on
// a few thousand IPs.
func runCombined(n, accounts int, span time.Duration, seed uint64, out string) error {
	dst, closeFn, err := create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 99))
	paths := []string{"/", "/item/%d", "/search", "/cart", "/api/feed", "/user/%d/profile", "/static/app.js"}
	methods := []string{"GET", "GET", "GET", "POST"}
	agents := []string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"RiskdDemo/8.0.48 (Android 14; Honor Magic6)",
	}
	start := time.Now().Add(-span)
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(int64(i) * int64(span) / int64(n)))
		acct := rng.IntN(accounts)
		p := paths[rng.IntN(len(paths))]
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, rng.IntN(100000))
		}
		fmt.Fprintf(bw, "10.%d.%d.%d - - [%s] \"%s %s?uid=u%d&q=%d HTTP/1.1\" %d %d \"-\" \"%s\"\n",
			acct%200, (acct/200)%250, rng.IntN(250), at.Format("02/Jan/2006:15:04:05 -0700"),
			methods[rng.IntN(len(methods))], p, acct, i, []int{200, 200, 200, 304, 404}[rng.IntN(5)], 200+rng.IntN(5000),
			agents[rng.IntN(len(agents))])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := closeFn(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ingestgen: %d lines\n", n)
	return nil
}

// limit stops a source after n events.
type limit struct {
	src bench.Source
	n   int
}

func (l *limit) Next() (*riskv1.Event, bench.Label, bool) {
	if l.n <= 0 {
		return nil, bench.Label{}, false
	}
	l.n--
	return l.src.Next()
}
