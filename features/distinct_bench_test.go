package features

import "testing"

// BenchmarkDistinctHot measures distinct states past the exact limit, in
// memory (no store):
//
//	add       Apply's in-memory add of a new value, in a period that
//	          already took 6,000 (100 new values a granule)
//	estimate  a read whose window holds 6,000 values, 100 a granule
//	exact     a read whose window holds 1,100 values, in granules the
//	          previous period kept exact although it took 3,000 more
//	          in its first three granules
//
//	go test -run XXX -bench DistinctHot ./features/
func BenchmarkDistinctHot(b *testing.B) {
	id := uint64(0)
	next := func() uint64 { // distinct, well spread hashes (splitmix64)
		id++
		x := id * 0x9E3779B97F4A7C15
		x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
		x = (x ^ x>>27) * 0x94D049BB133111EB
		return x ^ x>>31
	}
	fill := func(st *state, from, to, each int) *state {
		for slot := from; slot <= to; slot++ {
			for range each {
				st.addDistinct(next(), 1<<uint(slot))
			}
		}
		return st
	}
	b.Run("add", func(b *testing.B) {
		cur := fill(new(state), 0, 59, 100)
		b.ReportAllocs()
		for b.Loop() {
			cur.addDistinct(next(), 1<<59)
		}
	})
	b.Run("estimate", func(b *testing.B) {
		prev := fill(new(state), 0, 59, 100)
		cur := fill(new(state), 0, 29, 100)
		benchRead(b, &plan{hi: slots + 29, cur: cur, prev: prev})
	})
	b.Run("exact", func(b *testing.B) {
		prev := fill(fill(new(state), 0, 2, 1000), 50, 59, 100)
		cur := fill(new(state), 0, 4, 20)
		benchRead(b, &plan{hi: slots + 4, cur: cur, prev: prev})
	})
}

func benchRead(b *testing.B, p *plan) {
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		n = distinctRead(p)
	}
	b.ReportMetric(float64(n), "values")
}
