package rules

import "testing"

// BenchmarkDefaultSet runs the bundled rule set (compiled against the
// default catalog, as riskd runs it out of the box) on a login event.
func BenchmarkDefaultSet(b *testing.B) {
	ev, fv, _ := benchEvent()
	s, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Evaluate(ev, fv, noLists{}); err != nil {
			b.Fatal(err)
		}
	}
}
