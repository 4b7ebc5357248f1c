package engine

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// An evaluation that overruns its budget still counts in the features: the
// caller gets the fail mode at once, and the pipeline commits the event's
// feature updates when it finishes, so overload does not blind velocity
// features.
func TestOverrunEventsCountInFeatures(t *testing.T) {
	e := openBenchEngine(t, func(o *Options) { o.Budget = 300 * time.Microsecond; o.MaxInFlight, o.MinInFlight = 4096, 4096 })
	const n = 300
	at := time.Now()
	login := func(id string, t time.Time) *riskv1.Event {
		return &riskv1.Event{
			EventId: id, Type: riskv1.EventType_EVENT_TYPE_LOGIN, OccurredAt: timestamppb.New(t), AccountId: "acct-overrun",
			Device:  &riskv1.Device{DeviceId: "dev-overrun"},
			Network: &riskv1.Network{Ip: "198.51.100.7"},
			Login:   &riskv1.Login{Success: false, Method: "password"},
		}
	}
	var wg sync.WaitGroup
	var overran atomic.Int64
	for i := range n {
		wg.Go(func() {
			d, err := e.Evaluate(context.Background(), login("overrun-"+strconv.Itoa(i), at.Add(-time.Duration(n-i)*time.Millisecond)))
			if err != nil {
				t.Errorf("event %d: %v", i, err)
				return
			}
			if strings.HasPrefix(d.GetDegradedReason(), "budget exceeded before a decision") {
				overran.Add(1)
			}
		})
	}
	wg.Wait()
	if overran.Load() == 0 {
		t.Fatal("no evaluation overran its budget: the test exercised nothing")
	}
	probe, _, err := e.norm.Normalize(login("probe", at))
	if err != nil {
		t.Fatal(err)
	}
	idx := e.Features().Catalog().Index("login_failures_account_10m")
	var got int64
	// The overrun pipelines finish after their callers were answered.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		v, err := e.Features().Read(probe)
		if err != nil {
			t.Fatal(err)
		}
		if got = v[idx].Int; got == n {
			break
		}
	}
	if got != n {
		t.Fatalf("%d of %d failed logins counted (%d overran their budget)", got, n, overran.Load())
	}
	// Each was recorded, once the writes still committing land: a retry
	// then returns the stored decision and counts nothing.
	for i := range n {
		id := "overrun-" + strconv.Itoa(i)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			_, seen, err := e.lookupSeen(e.seenKey(id), id)
			if err != nil {
				t.Fatal(err)
			}
			if seen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %d was never recorded", i)
			}
		}
		if _, err := e.Evaluate(context.Background(), login(id, at.Add(-time.Duration(n-i)*time.Millisecond))); err != nil {
			t.Fatalf("retry of event %d: %v", i, err)
		}
	}
	v, err := e.Features().Read(probe)
	if err != nil {
		t.Fatal(err)
	}
	if v[idx].Int != n {
		t.Fatalf("after retrying every event: %d failed logins, want %d", v[idx].Int, n)
	}
}
