package decisions

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// Hand encoding of the parts of a decision record that PrepareParts takes
// apart from the decision. A protobuf message's encoding may carry its
// fields in any order, so a record is d's encoding followed by these.

var (
	fieldFeatures = decisionField("features")
	fieldEvent    = decisionField("event")
)

func decisionField(name string) protowire.Number {
	fd := (&riskv1.Decision{}).ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic("decisions: Decision has no field " + name)
	}
	return fd.Number()
}

// recordHeaderLen is the length of a recordV1 encoding's header (see
// encodeRecord), all but the body, for pseud.
func recordHeaderLen(pseud string) int {
	return recordSeqEnd + protowire.SizeVarint(uint64(len(pseud))) + len(pseud)
}

// google.protobuf.Value's field numbers and a map entry's.
const (
	valueNull   protowire.Number = 1
	valueNumber protowire.Number = 2
	valueString protowire.Number = 3
	valueBool   protowire.Number = 4
	entryKey    protowire.Number = 1
	entryValue  protowire.Number = 2
)

// valueLen is the encoded length of v: the common kinds by hand, others
// (lists, structs: no feature has one) as protobuf sizes them.
func valueLen(v *structpb.Value) int {
	switch k := v.GetKind().(type) {
	case nil:
		return 0
	case *structpb.Value_NullValue:
		return protowire.SizeTag(valueNull) + protowire.SizeVarint(uint64(k.NullValue))
	case *structpb.Value_NumberValue:
		return protowire.SizeTag(valueNumber) + protowire.SizeFixed64()
	case *structpb.Value_BoolValue:
		return protowire.SizeTag(valueBool) + 1
	case *structpb.Value_StringValue:
		return protowire.SizeTag(valueString) + protowire.SizeBytes(len(k.StringValue))
	default:
		return proto.Size(v)
	}
}

func appendValue(b []byte, v *structpb.Value) ([]byte, error) {
	switch k := v.GetKind().(type) {
	case nil:
		return b, nil
	case *structpb.Value_NullValue:
		b = protowire.AppendTag(b, valueNull, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(k.NullValue)), nil
	case *structpb.Value_NumberValue:
		b = protowire.AppendTag(b, valueNumber, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(k.NumberValue)), nil
	case *structpb.Value_BoolValue:
		b = protowire.AppendTag(b, valueBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(k.BoolValue)), nil
	case *structpb.Value_StringValue:
		b = protowire.AppendTag(b, valueString, protowire.BytesType)
		return protowire.AppendString(b, k.StringValue), nil
	default:
		return marshalOpts.MarshalAppend(b, v)
	}
}

// entryLen is the encoded length of a map entry with key k and a value
// valueLen long.
func entryLen(k string, valueLen int) int {
	return protowire.SizeTag(entryKey) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(entryValue) + protowire.SizeBytes(valueLen)
}

// valueMapLen is the encoded length of m as field num.
func valueMapLen(num protowire.Number, m map[string]*structpb.Value) int {
	n := 0
	for k, v := range m {
		n += protowire.SizeTag(num) + protowire.SizeBytes(entryLen(k, valueLen(v)))
	}
	return n
}

// appendValueMap appends m as map field num, as protobuf would (a nil value
// as an empty message), without reflection.
func appendValueMap(b []byte, num protowire.Number, m map[string]*structpb.Value) ([]byte, error) {
	for k, v := range m {
		vl := valueLen(v) // sized once: it is on every evaluation's path
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entryLen(k, vl)))
		b = protowire.AppendTag(b, entryKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, entryValue, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(vl))
		start := len(b)
		var err error
		if b, err = appendValue(b, v); err != nil {
			return nil, fmt.Errorf("feature %q: %w", k, err)
		}
		if got, want := len(b)-start, vl; got != want {
			return nil, fmt.Errorf("feature %q: encoded %d bytes, sized %d", k, got, want)
		}
	}
	return b, nil
}
