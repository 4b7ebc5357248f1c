package main

import (
	"time"

	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
)

// openStore opens riskd's feature engine on a fresh Pebble directory, set
// up as riskd sets up its store (bloom filters, a 256 MB block cache).
type store struct {
	*features.Store
	db *pebble.DB
}

func openStore(dir string, clk clock.Clock, cat *features.Catalog) (*store, func(), error) {
	o := &pebble.Options{Cache: pebble.NewCache(256 << 20), Logger: quietLogger{}}
	defer o.Cache.Unref()
	features.ConfigureDB(o)
	db, err := pebble.Open(dir, o)
	if err != nil {
		return nil, nil, err
	}
	st, err := features.Open(features.Options{DB: db, Catalog: cat, Clock: clk, Lateness: 365 * 24 * 3600e9, FlushInterval: time.Second})
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return &store{st, db}, func() { _ = st.Close(); _ = db.Close() }, nil
}

// riskdApply reads and records one event as riskd's engine does: state
// read as of the event's time, the event's delta record into a batch (its
// deltas merged into the state keys by the store's background flush), the batch
// committed to the write-ahead log (unsynced: riskd's fsync is a group
// commit's, shared by many events).
func riskdApply(st *store, ev *event.Event) error {
	_, err := riskdValues(st, ev)
	return err
}

func riskdValues(st *store, ev *event.Event) (features.Vector, error) {
	b := st.db.NewBatch()
	defer b.Close()
	vec, p, err := st.Apply(ev, b)
	if err != nil {
		return nil, err
	}
	err = b.Commit(pebble.NoSync)
	st.Done(p, err == nil)
	return vec, err
}

// check feeds the same events in the same order to both, one worker each,
// and compares every c.sample-th event's values: counts and sums exactly,
// distinct counts within HyperLogLog error, times and distances to 1e-6.
func check(ctx context.Context, c config, rdb *redis.Client, evs []*event.Event, clk clock.Clock) error {
	st, closeStore, err := openStore(c.dir+"/check", clk, features.DefaultCatalog())
	if err != nil {
		return err
	}
	defer closeStore()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	defs := st.Catalog().Defs()
	inCatalog := map[string]bool{}
	for _, d := range defs {
		inCatalog[d.Name] = true
	}
	for _, name := range redisFeatures {
		if !inCatalog[name] {
			return fmt.Errorf("feature %s, built on Redis here, is not in riskd's default catalog any more", name)
		}
	}
	n := min(len(evs), 20_000)
	var compared, values, distinctOff int
	var worst float64
	var problems []string
	for i, ev := range evs[:n] {
		vec, err := riskdValues(st, ev)
		if err != nil {
			return err
		}
		rv, err := redisApply(ctx, rdb, ev)
		if err != nil {
			return err
		}
		if i%c.sample != 0 {
			continue
		}
		compared++
		for j, d := range defs {
			a := vec[j]
			r, ok := rv[d.Name]
			if !slices.Contains(redisFeatures, d.Name) {
				continue // not built on Redis here (list lookups; features added since)
			}
			if !a.Applicable && !ok {
				continue
			}
			values++
			bad := func(why string) {
				if len(problems) < 10 {
					problems = append(problems, fmt.Sprintf("event %d (%s) %s: riskd %v, redis %v: %s", i, ev.TypeName, d.Name, a.Any(), r.Any(), why))
				}
			}
			switch {
			case a.Applicable != ok:
				bad("applicability differs")
			case a.Present != r.Present:
				bad("presence differs")
			case d.Agg == features.AggDistinct:
				diff := math.Abs(float64(a.Int - r.Int))
				if diff > 0 {
					distinctOff++
					worst = max(worst, diff/math.Max(1, float64(r.Int)))
				}
				if diff > math.Max(1, 0.03*float64(r.Int)) {
					bad("beyond HyperLogLog error")
				}
			case d.Kind == features.KindFloat:
				if a.Present && math.Abs(a.Float-r.Float) > 1e-6*math.Max(1, math.Abs(r.Float)) {
					bad("differs")
				}
			case a.Int != r.Int || a.Bool != r.Bool:
				bad("differs")
			}
		}
	}
	fmt.Printf("check: riskd computes all %d catalog features per event; the Redis side the %d stateful ones of the original catalog (riskd does more work per event)\n", len(defs), len(redisFeatures))
	fmt.Printf("check: %d events in order through both; %d sampled, %d feature values compared; distinct counts off by any: %d (worst %.1f%%); mismatches: %d\n",
		n, compared, values, distinctOff, 100*worst, len(problems))
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Println("  ", p)
		}
		return fmt.Errorf("riskd and Redis computed different feature values")
	}
	return nil
}

// quietLogger drops Pebble's informational lines; failures still surface as
// errors from the store.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// sameCatalog is the default catalog cut down to the features built on
// Redis here, so that both sides do the same work per event.
func sameCatalog() (*features.Catalog, error) {
	var out strings.Builder
	keep := true
	for _, line := range strings.SplitAfter(string(features.DefaultCatalogYAML()), "\n") {
		if name, ok := strings.CutPrefix(line, "  - name: "); ok {
			keep = slices.Contains(redisFeatures, strings.TrimSpace(name))
		}
		if keep {
			out.WriteString(line)
		}
	}
	cat, err := features.ParseCatalog("redisbench", []byte(out.String()))
	if err != nil {
		return nil, err
	}
	if n := len(cat.Defs()); n != len(redisFeatures) {
		return nil, fmt.Errorf("the cut-down catalog has %d features, want %d", n, len(redisFeatures))
	}
	return cat, nil
}
