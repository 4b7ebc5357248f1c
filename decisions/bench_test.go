package decisions

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/types/known/structpb"
)

var million = flag.Bool("decisions.million", false, "write 1M decisions and verify them under a minute")

// fill appends n decisions over 1,000 accounts, committing every 1,000
// without sync (as a bulk load would), and returns the time spent.
func fill(tb testing.TB, e *env, n int) time.Duration {
	tb.Helper()
	start := time.Now()
	b := e.db.NewBatch()
	for i := 0; i < n; i++ {
		acct := fmt.Sprintf("acct-%d", i%1000)
		d := e.decision(acct, "ato.new_device")
		d.Features = map[string]*structpb.Value{"f1": structpb.NewNumberValue(float64(i))}
		d.Event = nil
		d.ShadowReasons = nil
		p, err := e.log.Prepare(d, acct)
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.log.Append(b, p); err != nil {
			tb.Fatal(err)
		}
		if b.Count() >= 4000 {
			if err := b.Commit(pebble.NoSync); err != nil {
				tb.Fatal(err)
			}
			b.Close()
			b = e.db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		tb.Fatal(err)
	}
	b.Close()
	return time.Since(start)
}

func TestVerifyMillion(t *testing.T) {
	if !*million {
		t.Skip("run with -decisions.million")
	}
	e := newEnv(t, Options{})
	const n = 1_000_000
	w := fill(t, e, n)
	rep, err := e.log.Verify("")
	if err != nil || !rep.OK || rep.Checked != n {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	t.Logf("wrote %d decisions in %v; verified in %v (%.0f records/s)", n, w, rep.Elapsed, float64(n)/rep.Elapsed.Seconds())
	if rep.Elapsed > time.Minute {
		t.Errorf("verify took %v, want < 1m", rep.Elapsed)
	}
	e.reopen()
	rep, err = e.log.Verify("")
	if err != nil || !rep.OK {
		t.Fatalf("Verify after reopen = %+v, %v", rep, err)
	}
	t.Logf("after reopen (cold cache): verified in %v", rep.Elapsed)
}

func BenchmarkPrepareAppend(b *testing.B) {
	e := newEnv(b, Options{})
	ds := e.decision("acct-1", "ato.new_device", "ato.burst")
	for i := 0; i < 8; i++ {
		ds.Features[fmt.Sprintf("feature_%d", i)] = structpb.NewNumberValue(float64(i))
	}
	batch := e.db.NewBatch()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ds.DecisionId = NewID(t0)
		p, err := e.log.Prepare(ds, "acct-1")
		if err != nil {
			b.Fatal(err)
		}
		if err := e.log.Append(batch, p); err != nil {
			b.Fatal(err)
		}
		if batch.Count() >= 4000 {
			// The commit is the committer's cost, measured elsewhere.
			batch.Reset()
		}
	}
	b.StopTimer()
	batch.Close()
}

func BenchmarkVerify(b *testing.B) {
	e := newEnv(b, Options{})
	const n = 100_000
	fill(b, e, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := e.log.Verify("")
		if err != nil || rep.Checked != n {
			b.Fatal(rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkAppend is the committer's share: Append of prepared decisions.
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b, Options{})
	d := e.decision("acct-1", "ato.new_device", "ato.burst")
	ps := make([]*Pending, 4096)
	prepare := func() { // a Pending is appended once
		for i := range ps {
			d.DecisionId = NewID(t0)
			p, err := e.log.Prepare(d, "acct-1")
			if err != nil {
				b.Fatal(err)
			}
			ps[i] = p
		}
	}
	prepare()
	batch := e.db.NewBatch()
	defer batch.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.log.Append(batch, ps[i%len(ps)]); err != nil {
			b.Fatal(err)
		}
		if i%len(ps) == len(ps)-1 {
			b.StopTimer()
			batch.Reset()
			prepare()
			b.StartTimer()
		}
	}
}
