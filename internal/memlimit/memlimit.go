// Package memlimit is riskd's soft memory limit: its default, how a setting
// is read, and how it is handed to the Go runtime (runtime/debug.SetMemoryLimit).
//
// The limit bounds the memory the Go runtime manages (heap, stacks, its own
// metadata). Without it the heap grows to twice its live size before a
// collection (GOGC=100), and with a large population's hot state live that
// doubling is what pushed riskd's peak resident set past 1 GiB. Under the limit
// the collector runs earlier instead. It is soft: the runtime never fails an
// allocation for it, and it caps the collector's CPU at about half when the
// live heap itself outgrows the limit.
//
// Pebble's block cache and memtables are allocated outside the Go heap (C
// memory in a cgo build) and come on top of the limit.
package memlimit

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Default is riskd's soft limit when neither a setting nor GOMEMLIMIT gives
// one. With a 1M-account, 1M-device population the live heap was 260-375 MiB
// and Pebble held 266 MiB of C memory (block cache and two memtables): under
// a 768 MiB limit the Go runtime still reached 515-754 MiB at the peak and
// the process 991-1,186 MiB; under 512 MiB the runtime stayed at 493-542 MiB
// and, with mallocarenas, the process peaked at 821-885 MiB, for GC CPU of
// 2.3-4.2 % against 3.1-3.3 %. A larger population needs a larger limit:
// once the live heap nears it, the collector may take up to half the CPU.
const Default int64 = 512 << 20

// Min is the smallest limit accepted from a setting other than GOMEMLIMIT:
// below it the collector would run nearly continuously on riskd's baseline heap.
const Min int64 = 64 << 20

// Env is the Go runtime's own variable; the runtime applies it at start.
const Env = "GOMEMLIMIT"

var units = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// Parse reads a limit in GOMEMLIMIT's syntax: a whole number of bytes with an
// optional unit B, KiB, MiB, GiB or TiB (768MiB, 1GiB). "0" and "off" mean no
// limit and return 0. A limit below Min is refused.
func Parse(s string) (int64, error) {
	n, err := parse(s)
	if err != nil {
		return 0, err
	}
	if n != 0 && n < Min {
		return 0, fmt.Errorf("%q is below %s: the collector would run nearly without pause; give 0 or off for no limit", s, Format(Min))
	}
	return n, nil
}

func parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return 0, nil
	}
	num, shift := s, uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 63)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q: want a size such as 768MiB or 1GiB (units B, KiB, MiB, GiB, TiB), or 0 or off", s)
	}
	if v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return int64(v << shift), nil
}

// Format writes a limit in the largest unit that divides it, or "off" for 0,
// so that Parse(Format(n)) == n.
func Format(n int64) string {
	if n <= 0 {
		return "off"
	}
	for _, u := range units {
		if n&(1<<u.shift-1) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// DefaultFrom is the limit to use when riskd's own setting is not given: the
// one GOMEMLIMIT names when getenv has it (so that applying it changes nothing
// the runtime has not already done), else Default.
func DefaultFrom(getenv func(string) string) (int64, error) {
	v := getenv(Env)
	if v == "" {
		return Default, nil
	}
	n, err := parse(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", Env, err)
	}
	if n == math.MaxInt64 {
		n = 0
	}
	return n, nil
}

// GCPercent is the collector's target (GOGC) under a memory limit, unless
// the environment sets GOGC: between collections the heap may grow to three
// times its live size instead of two. On a small live heap (ingest) that
// halves the collections, and their CPU: 16.7-19.8 µs an ingested event
// against 18.8-21.1 with GOGC=100 (bench/ingest.sh, 1,000,000 lines,
// alternating). On a large one (a 1M population's hot state) the limit, not
// GOGC, sets when the collector runs, as before.
const GCPercent = 200

// Apply sets the process's soft memory limit to n bytes (0 or less: none)
// and returns the previous one (0 when there was none). With a limit, and
// no GOGC in the environment, it sets the collector's target to GCPercent;
// without one, to Go's default 100, since nothing would then bound the
// heap's growth. It is process-wide: a program's main calls it once, as
// riskd's does.
func Apply(n int64) (prev int64) {
	pct := GCPercent
	if n <= 0 {
		n, pct = math.MaxInt64, 100
	}
	if prev = debug.SetMemoryLimit(n); prev == math.MaxInt64 {
		prev = 0
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(pct)
	}
	return prev
}
