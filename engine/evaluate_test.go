package engine

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/ingest"
)

// featureMap builds from slices what one value per feature would: every
// applicable feature, absent ones null, each its own value.
func TestFeatureMap(t *testing.T) {
	defs := []features.Def{
		{Name: "count", Kind: features.KindInt},
		{Name: "ratio", Kind: features.KindFloat},
		{Name: "new_device", Kind: features.KindBool},
		{Name: "absent_int", Kind: features.KindInt},
		{Name: "not_applicable", Kind: features.KindInt},
		{Name: "absent_bool", Kind: features.KindBool},
		{Name: "old_device", Kind: features.KindBool},
		{Name: "past_the_vector", Kind: features.KindInt},
	}
	v := features.Vector{
		{Applicable: true, Present: true, Int: 7},
		{Applicable: true, Present: true, Float: 0.25},
		{Applicable: true, Present: true, Bool: true},
		{Applicable: true},
		{Present: true, Int: 3},
		{Applicable: true},
		{Applicable: true, Present: true, Bool: false},
	}
	want := map[string]*structpb.Value{
		"count":       structpb.NewNumberValue(7),
		"ratio":       structpb.NewNumberValue(0.25),
		"new_device":  structpb.NewBoolValue(true),
		"absent_int":  structpb.NewNullValue(),
		"absent_bool": structpb.NewNullValue(),
		"old_device":  structpb.NewBoolValue(false),
	}
	got := featureMap(defs, v)
	if !proto.Equal(&structpb.Struct{Fields: got}, &structpb.Struct{Fields: want}) {
		t.Fatalf("featureMap = %v, want %v", got, want)
	}
	got["count"].Kind.(*structpb.Value_NumberValue).NumberValue = 8
	if n := got["ratio"].GetNumberValue(); n != 0.25 {
		t.Errorf("changing one value changed another: ratio = %v", n)
	}
	if got := featureMap(defs, nil); len(got) != 0 {
		t.Errorf("featureMap of an empty vector = %v", got)
	}
}

// What Evaluate returns is what it recorded: the decision record reads back
// equal (features and event included), and the event log holds the event
// the decision carries.
func TestEvaluateRecordsWhatItReturns(t *testing.T) {
	// A budget no loaded test machine overruns: a degraded answer is not
	// what this checks.
	e := openBenchEngine(t, func(o *Options) { o.Budget = time.Minute })
	events := workloadEvents(t, 200, 40)
	now := time.Now()
	stored := map[string]*riskv1.Event{}
	for i, src := range events {
		d, err := e.Evaluate(context.Background(), restamp(src, "rec-"+strconv.Itoa(i), now))
		if err != nil {
			t.Fatal(err)
		}
		if d.GetDegraded() {
			t.Fatalf("event %d degraded: %s", i, d.GetDegradedReason())
		}
		if len(d.GetFeatures()) == 0 || d.GetEvent() == nil {
			t.Fatalf("event %d: decision without features or event: %v", i, d)
		}
		got, err := e.Decisions().Get(d.GetDecisionId())
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, d) {
			t.Fatalf("event %d: recorded\n%v\nreturned\n%v", i, got, d)
		}
		stored[d.GetEvent().GetEventId()] = d.GetEvent()
	}
	n := 0
	err := ingest.ScanEvents(e.DB(), time.Time{}, time.Time{}, func(ev *riskv1.Event) error {
		n++
		if want, ok := stored[ev.GetEventId()]; !ok || !proto.Equal(ev, want) {
			t.Errorf("event log holds %v; the decision carried %v", ev, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(events) {
		t.Errorf("event log holds %d events, want %d", n, len(events))
	}
}
