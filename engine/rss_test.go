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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
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
func TestResidentMemory(t *testing.T) {
	n := benchEnv("RSS_ACCOUNTS", 1_000_000)
	e := openBenchEngine(t, nil)
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
	const batch = 1000
	t0 := time.Now()
	var waits []func() ([]IngestResult, error)
	settle := func() {
		res, err := waits[0]()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		waits = waits[1:]
	}
	for lo := 0; lo < n; lo += batch {
		evs := make([]*riskv1.Event, 0, batch)
		for i := lo; i < min(n, lo+batch); i++ {
			// Spread over the last hour, so windows hold them.
			evs = append(evs, event(i, "rss-"+strconv.Itoa(i), now.Add(-time.Hour+time.Duration(i)*time.Hour/time.Duration(n))))
		}
		w, err := e.StartIngest(context.Background(), evs)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
		if len(waits) == 4 {
			settle()
		}
	}
	for len(waits) > 0 {
		settle()
	}
	load := time.Since(t0)
	t.Logf("%d accounts + %d devices ingested in %v; resident now %d MiB, peak %d MiB; %s",
		n, n, load.Round(time.Second), procStatus("VmRSS")>>20, procStatus("VmHWM")>>20, pebbleMem(e))
	t1 := time.Now()
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(1, uint64(g)))
			for k := range 20_000 / 64 {
				i := r.IntN(n)
				if _, err := e.Evaluate(context.Background(), event(i, fmt.Sprintf("rss-eval-%d-%d", g, k), time.Now())); err != nil && !errors.Is(err, ErrOverloaded) {
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
	rss, peak := procStatus("VmRSS"), procStatus("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%.0f events/s ingested; 20000 evaluations over random accounts, 64 at a time, in %v", float64(n)/load.Seconds(), eval.Round(time.Millisecond))
	t.Logf("resident %d MiB (peak %d MiB); Go heap in use %d MiB; Pebble: %s", rss>>20, peak>>20, ms.HeapInuse>>20, pebbleMem(e))
	const limit = 1 << 30
	if rss > limit || peak > limit {
		t.Errorf("resident memory %d MiB (peak %d MiB), want at most 1024 MiB", rss>>20, peak>>20)
	}
}

func pebbleMem(e *Engine) string {
	m := e.db.Metrics()
	return fmt.Sprintf("block cache %d MiB, memtables %d MiB, %d sstables %d MiB on disk",
		m.BlockCache.Size>>20, m.MemTable.Size>>20, m.Total().TablesCount, m.DiskSpaceUsage()>>20)
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
