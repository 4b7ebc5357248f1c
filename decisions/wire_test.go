package decisions

import (
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// A decision prepared in parts (features encoded by hand, the event as
// given bytes) reads back equal to the whole decision, for every kind of
// value a feature map can hold, and the chain verifies over it.
func TestPreparePartsReadsBackWhole(t *testing.T) {
	list, err := structpb.NewList([]any{1.5, "x", true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		features map[string]*structpb.Value
	}{
		{"none", nil},
		{"empty", map[string]*structpb.Value{}},
		{"kinds", map[string]*structpb.Value{
			"count":    structpb.NewNumberValue(6),
			"zero":     structpb.NewNumberValue(0),
			"negzero":  structpb.NewNumberValue(math.Copysign(0, -1)),
			"inf":      structpb.NewNumberValue(math.Inf(-1)),
			"frac":     structpb.NewNumberValue(-12.25),
			"yes":      structpb.NewBoolValue(true),
			"no":       structpb.NewBoolValue(false),
			"absent":   structpb.NewNullValue(),
			"str":      structpb.NewStringValue("新设备"),
			"emptystr": structpb.NewStringValue(""),
			"list":     structpb.NewListValue(list),
			"unset":    {},
			"nil":      nil,
			"":         structpb.NewNumberValue(1),
		}},
	}
	e := newEnv(t, Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.clock.Advance(1e6)
			whole := e.decision("parts", "ato.new_device")
			whole.Features = c.features
			ev, err := proto.MarshalOptions{Deterministic: true}.Marshal(whole.Event)
			if err != nil {
				t.Fatal(err)
			}
			d := proto.Clone(whole).(*riskv1.Decision)
			d.Features, d.Event = nil, nil
			p, err := e.log.PrepareParts(d, pseud("parts"), c.features, ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.c.append(p); err != nil {
				t.Fatal(err)
			}
			got, err := e.log.Get(whole.DecisionId)
			if err != nil {
				t.Fatal(err)
			}
			want := proto.Clone(whole).(*riskv1.Decision)
			if _, ok := want.Features["nil"]; ok {
				want.Features["nil"] = &structpb.Value{} // how protobuf reads a nil value back, too
			}
			if !proto.Equal(got, want) {
				t.Errorf("read back\n%v\nwant\n%v", got, want)
			}
			e.verifyOK()
		})
	}
}

func TestPreparePartsRejectsPartsInTheDecision(t *testing.T) {
	e := newEnv(t, Options{})
	d := e.decision("a")
	if _, err := e.log.PrepareParts(d, "p", nil, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("features and event in d: err = %v, want ErrInvalid", err)
	}
}
