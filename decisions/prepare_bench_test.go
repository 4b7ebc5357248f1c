package decisions

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// BenchmarkPrepare is the decision's encoding alone, as the engine pays it
// on every evaluation outside the commit path: a decision with two reasons,
// the default catalog's 16 features and the stored event; "parts" is the
// engine's way, with the features encoded by hand and the event's bytes
// (encoded for the event log) given.
func BenchmarkPrepare(b *testing.B) {
	e := newEnv(b, Options{})
	d := e.decision("acct-1", "ato.new_device", "ato.burst")
	for i := len(d.Features); i < 16; i++ {
		d.Features[fmt.Sprintf("feature_%d", i)] = structpb.NewNumberValue(float64(i))
	}
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.DecisionId = NewID(t0)
			if _, err := e.log.Prepare(d, "acct-1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parts", func(b *testing.B) {
		ev, err := proto.Marshal(d.Event)
		if err != nil {
			b.Fatal(err)
		}
		feats := d.Features
		d.Features, d.Event = nil, nil
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.DecisionId = NewID(t0)
			if _, err := e.log.PrepareParts(d, "acct-1", feats, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
