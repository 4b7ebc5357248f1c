//go:build rss

package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/mallocarenas"
	"github.com/riskd/riskd/internal/memlimit"
)

// Resident memory with a large population's feature state, behind the rss
// build tag (it writes a million events):
//
//	go test -tags rss -run TestResidentMemory -v -timeout 45m ./engine/
//
// RSS_ACCOUNTS (default 1,000,000) accounts, each with its own device, log
// in once through Ingest (the Evaluate path without rules and decisions),
// so the store holds the state of that many accounts and devices; then
// 20,000 evaluations over random accounts read it back through the cache.
// The process's resident set, now and at its peak, must stay within 1 GiB.
//
// The soft memory limit and the C allocator's arenas are riskd's, set as
// riskd sets them: GOMEMLIMIT when set, else memlimit.Default, and
// RISKD_MEMORY_LIMIT (riskd's own variable) overrides both, to measure
// another limit (0 or off: none); the test binary links mallocarenas, as
// riskd does (MALLOC_ARENA_MAX, when set, wins).
func TestResidentMemory(t *testing.T) {
	n := benchEnv("RSS_ACCOUNTS", 1_000_000)
	limit, prev, err := applyRiskdMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { memlimit.Apply(prev) })
	e := openBenchEngine(t, nil)
	peak := watchPeak(e)
	defer peak.stop()
	now := time.Now()
	event := func(i int, id string, at time.Time) *riskv1.Event {
		return &riskv1.Event{
			EventId: id, Type: riskv1.EventType_EVENT_TYPE_LOGIN, OccurredAt: timestamppb.New(at),
			AccountId: fmt.Sprintf("acct-%07d", i), OrgId: "org-" + strconv.Itoa(i%500),
			Device:   &riskv1.Device{DeviceId: fmt.Sprintf("dev-%07d", i), Platform: "android", Model: "Pixel 8", AppVersion: "5.2.0"},
			Network:  &riskv1.Network{Ip: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)},
			Location: &riskv1.Location{Latitude: 31.2 + float64(i%1000)/1e4, Longitude: 121.4 + float64(i%777)/1e4},
			Login:    &riskv1.Login{Success: i%7 != 0, Method: "password"},
		}
	}
	t0 := time.Now()
	ingestAll(t, e, n, func(i int) *riskv1.Event {
		// Spread over the last hour, so windows hold them.
		return event(i, "rss-"+strconv.Itoa(i), now.Add(-time.Hour+time.Duration(i)*time.Hour/time.Duration(n)))
	})
	load := time.Since(t0)
	t.Logf("soft memory limit %s, malloc arenas capped: %v; %d accounts + %d devices ingested in %v; resident now %d MiB, peak %d MiB; %s",
		memlimit.Format(limit), mallocarenas.Capped(), n, n, load.Round(time.Second), procStatus("VmRSS")>>20, procStatus("VmHWM")>>20, pebbleMem(e))
	t1 := time.Now()
	var wg sync.WaitGroup
	var shed atomic.Int64 // past MaxInFlight, counting pipelines that overran
	for g := range 64 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(1, uint64(g)))
			for k := range 20_000 / 64 {
				i := r.IntN(n)
				_, err := e.Evaluate(context.Background(), event(i, fmt.Sprintf("rss-eval-%d-%d", g, k), time.Now()))
				for errors.Is(err, ErrOverloaded) {
					// Back off and retry, as a caller told resource_exhausted
					// does: every one of the 20,000 is evaluated.
					shed.Add(1)
					time.Sleep(time.Millisecond)
					_, err = e.Evaluate(context.Background(), event(i, fmt.Sprintf("rss-eval-%d-%d", g, k), time.Now()))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	eval := time.Since(t1)
	runtime.GC()
	debug.FreeOSMemory()
	rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%.0f events/s ingested; 20000 evaluations over random accounts, 64 at a time, in %v (%d tries shed as overload, then retried)", float64(n)/load.Seconds(), eval.Round(time.Millisecond), shed.Load())
	t.Logf("resident %d MiB (peak %d MiB); Go heap in use %d MiB; %d GCs, %.1f%% of CPU; Pebble: %s",
		rss>>20, hwm>>20, ms.HeapInuse>>20, ms.NumGC, 100*ms.GCCPUFraction, pebbleMem(e))
	t.Logf("largest sampled resident set (every 100 ms): %s", peak.stop())
	const bound = 1 << 30
	if rss > bound || hwm > bound {
		t.Errorf("resident memory %d MiB (peak %d MiB), want at most 1024 MiB", rss>>20, hwm>>20)
	}
}

// peakWatch samples the resident set and, at the largest sample, what it
// was made of: the Go runtime's memory (what the soft limit bounds) and
// Pebble's block cache and memtables (outside it).
type peakWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	at   string
}

func watchPeak(e *Engine) *peakWatch {
	w := &peakWatch{done: make(chan struct{})}
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	var max int64
	w.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			rss := procStatus("VmRSS")
			if rss <= max {
				continue
			}
			max = rss
			metrics.Read(samples)
			goMem := samples[0].Value.Uint64() - samples[1].Value.Uint64()
			w.at = fmt.Sprintf("%d MiB (%d MiB of it file-backed: the binary): Go runtime %d MiB (heap live at the last GC %d MiB); %s; Pebble's %s",
				rss>>20, procStatus("RssFile")>>20, goMem>>20, samples[2].Value.Uint64()>>20, pebbleMem(e), cgoMem(e))
		}
	})
	return w
}

// stop ends the sampling and describes the largest sample.
func (w *peakWatch) stop() string {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
	return w.at
}

func pebbleMem(e *Engine) string {
	m := e.db.Metrics()
	return fmt.Sprintf("block cache %d MiB, memtables %d MiB, %d sstables %d MiB on disk",
		m.BlockCache.Size>>20, m.MemTable.Size>>20, m.Total().TablesCount, m.DiskSpaceUsage()>>20)
}

// cgoMem is Pebble's own account of the memory it allocates outside the Go
// heap (block cache, memtables), before the C allocator's overhead.
func cgoMem(e *Engine) string {
	for _, line := range strings.Split(e.db.Metrics().String(), "\n") {
		if strings.HasPrefix(line, "Cgo memory usage") {
			return strings.ToLower(line[:1]) + strings.TrimSpace(line[1:])
		}
	}
	return "cgo memory usage not reported"
}

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return -1
}
