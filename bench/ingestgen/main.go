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
	if err := bench.WriteAccessLog(dst, n, accounts, time.Now().Add(-span), span/time.Duration(max(n, 1)), seed); err != nil {
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
