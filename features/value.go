package features

// Value is one feature's value for one event. Applicable is false when the
// feature does not apply to the event (another type, a key field missing,
// or, for list_count, its where filter false); Present is false when it applies but
// has no value yet (no previous login, no previous location). Only the field
// matching the feature's Kind is meaningful. Build values with IntValue,
// FloatValue, BoolValue or Absent: they record the kind that Any needs.
type Value struct {
	Applicable bool
	Present    bool
	Int        int64
	Float      float64
	Bool       bool
	kind       Kind
}

// Kind returns the value's kind (0 when not applicable).
func (v Value) Kind() Kind { return v.kind }

// Any returns the value as int64, float64 or bool, or nil when it is absent
// or not applicable.
func (v Value) Any() any {
	if !v.Applicable || !v.Present {
		return nil
	}
	switch v.kind {
	case KindInt:
		return v.Int
	case KindFloat:
		return v.Float
	case KindBool:
		return v.Bool
	}
	return nil
}

// IntValue, FloatValue and BoolValue build present values (tests, rule tests).
func IntValue(n int64) Value { return Value{Applicable: true, Present: true, Int: n, kind: KindInt} }
func FloatValue(f float64) Value {
	return Value{Applicable: true, Present: true, Float: f, kind: KindFloat}
}
func BoolValue(b bool) Value { return Value{Applicable: true, Present: true, Bool: b, kind: KindBool} }

// Absent is an applicable feature without a value yet.
func Absent(k Kind) Value { return Value{Applicable: true, kind: k} }

// Vector holds one Value per feature, aligned with Catalog.Defs().
type Vector []Value

// Map returns name -> value for every present value (what rules see as
// features.NAME); absent and inapplicable features are left out so that a
// rule can test for them.
func (v Vector) Map(c *Catalog) map[string]any {
	m := make(map[string]any, len(v))
	for i, x := range v {
		if a := x.Any(); a != nil && i < len(c.defs) {
			m[c.defs[i].Name] = a
		}
	}
	return m
}
