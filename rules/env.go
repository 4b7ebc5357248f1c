package rules

import (
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

// Lists is what rules need from named lists (package features/lists
// satisfies it).
type Lists interface {
	Contains(list, value string) bool
	AnyIn(list string, values []string) bool
}

// fieldKind is the expr-visible type of an event field.
type fieldKind uint8

const (
	fString fieldKind = iota
	fBool
	fInt
	fFloat
	fStrings
	fMap
	fTime
)

var kindAccessor = [...]string{fString: "__es", fBool: "__eb", fInt: "__ei", fFloat: "__ef", fStrings: "__el", fMap: "__em", fTime: "__et"}

// eventField is one leaf of the event as rules see it (login.success).
type eventField struct {
	path  string
	kind  fieldKind
	index []int
}

var (
	eventFields   []eventField
	eventFieldIdx = map[string]int{}
	eventGroups   = map[string]bool{}
	eventPaths    []string
)

// The event's expr tags are the rule language's field names; walk them once.
func init() {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("expr")
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			path := prefix + tag
			ft := f.Type
			var k fieldKind
			switch {
			case ft == reflect.TypeOf(time.Time{}):
				k = fTime
			case ft.Kind() == reflect.Struct:
				eventGroups[path] = true
				walk(ft, path+".", idx)
				continue
			case ft.Kind() == reflect.String:
				k = fString
			case ft.Kind() == reflect.Bool:
				k = fBool
			case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Uint64:
				k = fInt
			case ft.Kind() == reflect.Float32 || ft.Kind() == reflect.Float64:
				k = fFloat
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
				k = fStrings
			case ft.Kind() == reflect.Map:
				k = fMap
			default:
				continue
			}
			eventFieldIdx[path] = len(eventFields)
			eventFields = append(eventFields, eventField{path: path, kind: k, index: idx})
			eventPaths = append(eventPaths, path)
		}
	}
	walk(reflect.TypeOf(event.Event{}), "", nil)
	sort.Strings(eventPaths)
}

// checkEnv is the environment rules are type-checked against: typed
// accessor functions over the evaluation state. Programs that run use
// runEnv instead (see compileWhen).
type checkEnv struct {
	S *evalState `expr:"s__"`
}

// runEnv is the environment compiled programs run against. Its fields are
// closures over one pooled evalState, with signatures the expr VM calls
// without reflection or an argument slice (func(any) any and friends), and
// they return values boxed at most once per event: no rule allocates to read
// a value.
type runEnv struct {
	F  func(any) any             `expr:"F__"`  // feature by index; marks absent reads
	H  func(any) any             `expr:"H__"`  // has(feature)
	E  func(any) any             `expr:"E__"`  // event field by index
	IL func(string, string) bool `expr:"IL__"` // in_list
	AL func(any, any) bool       `expr:"AL__"` // any_in_list
	C  func(string, string) bool `expr:"C__"`  // cidr_contains
}

// evalState is the per-evaluation environment, pooled with its VM. Values
// are boxed lazily, at most once per event, so no rule allocates to read one.
type evalState struct {
	vm     vm.VM
	ev     *event.Event
	evv    reflect.Value
	fv     features.Vector
	kinds  []features.Kind
	lists  Lists
	absent bool // a rule read an absent feature
	env    any  // runEnv over this state, boxed once

	fBox  []any
	fDone []bool
	eBox  []any
	eDone []bool
}

var statePool = sync.Pool{New: func() any {
	st := &evalState{eBox: make([]any, len(eventFields)), eDone: make([]bool, len(eventFields))}
	st.env = runEnv{
		F: func(i any) any { return st.feature(i.(int)) },
		H: func(i any) any { return st.has(i.(int)) },
		E: func(i any) any { return st.field(i.(int)) },
		IL: func(list, v string) bool {
			return st.lists != nil && st.lists.Contains(list, v)
		},
		AL: func(list, vs any) bool {
			l, _ := list.(string)
			v, _ := vs.([]string)
			return st.lists != nil && st.lists.AnyIn(l, v)
		},
		C: cidrContains,
	}
	return st
}}

func (s *evalState) reset(ev *event.Event, fv features.Vector, kinds []features.Kind, lists Lists) {
	s.ev, s.fv, s.kinds, s.lists = ev, fv, kinds, lists
	s.absent = false
	s.evv = reflect.ValueOf(ev).Elem()
	if cap(s.fBox) < len(fv) {
		s.fBox = make([]any, len(fv))
		s.fDone = make([]bool, len(fv))
	}
	s.fBox, s.fDone = s.fBox[:len(fv)], s.fDone[:len(fv)]
	clear(s.fDone)
	clear(s.eDone)
}

func (s *evalState) release() {
	s.ev, s.fv, s.lists = nil, nil, nil
	s.evv = reflect.Value{}
	clear(s.fBox)
	clear(s.eBox)
	statePool.Put(s)
}

var zeroOf = [...]any{features.KindInt: 0, features.KindFloat: 0.0, features.KindBool: false}

func (s *evalState) feature(i int) any {
	v := s.fv[i]
	if !v.Applicable || !v.Present {
		s.absent = true
		return zeroOf[s.kinds[i]]
	}
	if s.fDone[i] {
		return s.fBox[i]
	}
	var b any
	switch s.kinds[i] {
	case features.KindInt:
		b = int(v.Int)
	case features.KindFloat:
		b = v.Float
	default:
		b = v.Bool
	}
	s.fBox[i], s.fDone[i] = b, true
	return b
}

func (s *evalState) has(i int) bool {
	v := s.fv[i]
	return v.Applicable && v.Present
}

func (s *evalState) field(i int) any {
	if s.eDone[i] {
		return s.eBox[i]
	}
	f := &eventFields[i]
	rv := s.evv.FieldByIndex(f.index)
	var b any
	switch f.kind {
	case fInt:
		if rv.CanInt() {
			b = int(rv.Int())
		} else {
			b = int(rv.Uint())
		}
	case fFloat:
		b = rv.Float()
	case fStrings:
		l := rv.Interface().([]string)
		if l == nil {
			l = []string{}
		}
		b = l
	case fMap:
		m := rv.Interface().(map[string]string)
		if m == nil {
			m = map[string]string{}
		}
		b = m
	default:
		b = rv.Interface()
	}
	s.eBox[i], s.eDone[i] = b, true
	return b
}

// ---- functions the rule language offers ----

func cidrContains(cidr, ip string) bool {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		// A bare address is a /32 (/128).
		a, err := netip.ParseAddr(cidr)
		if err != nil {
			return false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return p.Contains(a.Unmap())
}

func validCIDR(cidr string) bool {
	if _, err := netip.ParsePrefix(cidr); err == nil {
		return true
	}
	_, err := netip.ParseAddr(cidr)
	return err == nil
}

// distanceKm is the great-circle distance (haversine, mean Earth radius).
func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0088
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(a)))
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float32:
		return float64(x)
	case int32:
		return float64(x)
	}
	return math.NaN()
}

// userFuncs are the names analysts call; each is rewritten to an internal
// function that reaches the evaluation state.
var userFuncs = map[string]string{
	"in_list":       "in_list(list, value): value is on the named list",
	"any_in_list":   "any_in_list(list, values): some value is on the named list",
	"cidr_contains": "cidr_contains(cidr, ip): ip is inside cidr",
	"distance_km":   "distance_km(lat1, lon1, lat2, lon2): great-circle km",
	"has":           "has(features.x): the feature has a value for this event",
}

func isInternalName(s string) bool {
	return strings.HasPrefix(s, "__") || strings.HasSuffix(s, "__") || strings.HasPrefix(s, "$")
}
