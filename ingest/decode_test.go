package ingest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
)

// fullEvent sets every field of riskv1.Event, walking its descriptor, each
// to a value of its own: a field added to the proto and to FromStored but
// not to DecodeStored fails TestDecodeStoredMatchesFromStored.
func fullEvent() *riskv1.Event {
	pb := &riskv1.Event{}
	n := 0
	var fill func(m protoreflect.Message)
	scalar := func(fd protoreflect.FieldDescriptor) protoreflect.Value {
		n++
		switch fd.Kind() {
		case protoreflect.StringKind:
			return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é", fd.Name(), n))
		case protoreflect.BoolKind:
			return protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(1 + n%7))
		case protoreflect.Int32Kind:
			return protoreflect.ValueOfInt32(int32(-n))
		case protoreflect.Int64Kind:
			return protoreflect.ValueOfInt64(int64(1000 + n))
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(float64(n) + 0.25)
		}
		panic(fmt.Sprintf("fullEvent: field %s of kind %s: teach fullEvent (and DecodeStored) this kind", fd.FullName(), fd.Kind()))
	}
	fill = func(m protoreflect.Message) {
		fds := m.Descriptor().Fields()
		for i := 0; i < fds.Len(); i++ {
			fd := fds.Get(i)
			switch {
			case fd.IsMap():
				mp := m.Mutable(fd).Map()
				for j := 0; j < 2; j++ {
					mp.Set(protoreflect.ValueOfString(fmt.Sprintf("k%d", j)).MapKey(), scalar(fd.MapValue()))
				}
			case fd.IsList():
				l := m.Mutable(fd).List()
				l.Append(scalar(fd))
				l.Append(scalar(fd))
			case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp":
				m.Set(fd, protoreflect.ValueOfMessage(timestamppb.New(testNow).ProtoReflect()))
			case fd.Message() != nil:
				fill(m.Mutable(fd).Message())
			default:
				m.Set(fd, scalar(fd))
			}
		}
	}
	fill(pb.ProtoReflect())
	return pb
}

// fromStoredBytes is the reference DecodeStored must match.
func fromStoredBytes(data []byte) (*event.Event, error) {
	pb := &riskv1.Event{}
	if err := proto.Unmarshal(data, pb); err != nil {
		return nil, err
	}
	return FromStored(pb)
}

// sameDecode reports how DecodeStored differs from the reference, or "".
func sameDecode(data []byte) string {
	want, werr := fromStoredBytes(data)
	var got event.Event
	gerr := DecodeStored(&got, data)
	switch {
	case (werr == nil) != (gerr == nil):
		return fmt.Sprintf("reference error %v, DecodeStored error %v", werr, gerr)
	case werr != nil:
		var wf, gf *FieldError
		if errors.As(werr, &wf) != errors.As(gerr, &gf) || (wf != nil && wf.Field != gf.Field) {
			return fmt.Sprintf("reference error %v, DecodeStored error %v", werr, gerr)
		}
		return ""
	case fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", *want): // not DeepEqual: NaN coordinates
		return fmt.Sprintf("DecodeStored\n%#v\nreference\n%#v", got, *want)
	}
	return ""
}

func marshal(t testing.TB, pb *riskv1.Event) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeCases are stored encodings DecodeStored must read exactly as
// proto.Unmarshal and FromStored do, the failures included.
func decodeCases(t testing.TB) map[string][]byte {
	full := fullEvent()
	full.Type = riskv1.EventType_EVENT_TYPE_LOGIN
	cases := map[string][]byte{"full": marshal(t, full)}
	for name, pb := range seedEvents() {
		cases["seed/"+name] = marshal(t, pb)
	}
	with := func(name string, f func(pb *riskv1.Event)) {
		pb := proto.Clone(full).(*riskv1.Event)
		f(pb)
		cases[name] = marshal(t, pb)
	}
	with("no event_id", func(pb *riskv1.Event) { pb.EventId = "" })
	with("no account", func(pb *riskv1.Event) { pb.AccountId = "" })
	with("type unspecified", func(pb *riskv1.Event) { pb.Type = 0 })
	with("type unknown", func(pb *riskv1.Event) { pb.Type = 99 })
	with("type negative", func(pb *riskv1.Event) { pb.Type = -1 })
	with("no time", func(pb *riskv1.Event) { pb.OccurredAt = nil })
	with("time zero", func(pb *riskv1.Event) { pb.OccurredAt = &timestamppb.Timestamp{} })
	with("time bad nanos", func(pb *riskv1.Event) { pb.OccurredAt.Nanos = 1e9 })
	with("time before year 1", func(pb *riskv1.Event) { pb.OccurredAt.Seconds = -62135596801 })
	with("empty messages", func(pb *riskv1.Event) {
		pb.Device, pb.Network, pb.Location, pb.Login = &riskv1.Device{}, &riskv1.Network{}, &riskv1.Location{}, &riskv1.Login{}
		pb.Payment, pb.Attendance, pb.ServiceLog = &riskv1.Payment{}, &riskv1.Attendance{}, &riskv1.ServiceLog{}
		pb.Attributes = map[string]string{"": ""}
	})
	with("no messages", func(pb *riskv1.Event) {
		pb.Device, pb.Network, pb.Location, pb.Login, pb.Payment, pb.Attendance, pb.ServiceLog, pb.Attributes = nil, nil, nil, nil, nil, nil, nil, nil
	})
	base := cases["full"]
	// A second occurrence of a message merges into the first; a scalar's
	// last value wins.
	more := marshal(t, &riskv1.Event{EventId: "other", Device: &riskv1.Device{Model: "m2", InstalledPackages: []string{"p3"}},
		OccurredAt: &timestamppb.Timestamp{Nanos: 7}, Attributes: map[string]string{"k0": "v0", "k9": "v9"}})
	cases["merged"] = append(append([]byte(nil), base...), more...)
	// Unknown fields of every wire type, at the top and inside a message.
	var unk []byte
	unk = protowire.AppendTag(unk, 99, protowire.VarintType)
	unk = protowire.AppendVarint(unk, 5)
	unk = protowire.AppendTag(unk, 98, protowire.Fixed32Type)
	unk = protowire.AppendFixed32(unk, 5)
	unk = protowire.AppendTag(unk, 97, protowire.Fixed64Type)
	unk = protowire.AppendFixed64(unk, 5)
	unk = protowire.AppendTag(unk, 96, protowire.BytesType)
	unk = protowire.AppendString(unk, "x")
	unk = protowire.AppendTag(unk, 95, protowire.StartGroupType)
	unk = protowire.AppendTag(unk, 1, protowire.VarintType)
	unk = protowire.AppendVarint(unk, 1)
	unk = protowire.AppendTag(unk, 95, protowire.EndGroupType)
	cases["unknown fields"] = append(append([]byte(nil), base...), unk...)
	var dev []byte
	dev = protowire.AppendTag(dev, 6, protowire.BytesType)
	dev = protowire.AppendBytes(dev, unk)
	cases["unknown in device"] = append(append([]byte(nil), base...), dev...)
	// A known field with another wire type is an unknown field.
	var wrong []byte
	wrong = protowire.AppendTag(wrong, 1, protowire.VarintType) // event_id
	wrong = protowire.AppendVarint(wrong, 3)
	wrong = protowire.AppendTag(wrong, 6, protowire.VarintType) // device
	wrong = protowire.AppendVarint(wrong, 3)
	cases["wrong wire type"] = append(append([]byte(nil), base...), wrong...)
	var bad []byte
	bad = protowire.AppendTag(bad, 4, protowire.BytesType) // account_id
	bad = protowire.AppendBytes(bad, []byte{0xff, 'a'})
	cases["invalid utf-8"] = append(append([]byte(nil), base...), bad...)
	cases["truncated"] = base[:len(base)-3]
	cases["field zero"] = append(append([]byte(nil), base...), 0x00, 0x01)
	cases["stray end group"] = append(append([]byte(nil), base...), protowire.AppendTag(nil, 5, protowire.EndGroupType)...)
	cases["empty"] = nil
	return cases
}

// TestDecodeStoredMatchesFromStored: the fast decoder of replays gives the
// event (or the failure) that proto.Unmarshal and FromStored give.
func TestDecodeStoredMatchesFromStored(t *testing.T) {
	for name, data := range decodeCases(t) {
		t.Run(name, func(t *testing.T) {
			if d := sameDecode(data); d != "" {
				t.Error(d)
			}
		})
	}
	// The full event really is full: every struct field of the result is
	// set, so the comparison above covers each.
	var ev event.Event
	if err := DecodeStored(&ev, decodeCases(t)["full"]); err != nil {
		t.Fatal(err)
	}
	var zero func(v reflect.Value, path string)
	zero = func(v reflect.Value, path string) {
		if v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(ev.OccurredAt) {
			for i := 0; i < v.NumField(); i++ {
				zero(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
			return
		}
		if v.IsZero() {
			t.Errorf("full event leaves %s unset", path)
		}
	}
	zero(reflect.ValueOf(ev), "Event")
}

func FuzzDecodeStored(f *testing.F) {
	for _, data := range decodeCases(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if d := sameDecode(data); d != "" {
			t.Error(d)
		}
	})
}

func BenchmarkDecodeStored(b *testing.B) {
	data := marshal(b, loginEvent())
	b.Run("DecodeStored", func(b *testing.B) {
		b.ReportAllocs()
		var ev event.Event
		for b.Loop() {
			if err := DecodeStored(&ev, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnmarshalFromStored", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fromStoredBytes(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
