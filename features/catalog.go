package features

import (
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/event"
)

// ErrCatalog is matched (errors.Is) by every error that rejects a catalog.
var ErrCatalog = errors.New("features: invalid catalog")

// CatalogError says which feature of which file is wrong, and where.
type CatalogError struct {
	File    string // the catalog's name (a path, or "default")
	Feature string // the feature's name; empty when the error is not about one feature
	Line    int    // 1-based line in the file; 0 when unknown
	Msg     string
}

func (e *CatalogError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Feature != "" {
		fmt.Fprintf(&b, ": feature %q", e.Feature)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrCatalog) true.
func (e *CatalogError) Unwrap() error { return ErrCatalog }

// Kind is the type of a feature's value.
type Kind uint8

// Kinds.
const (
	KindInt Kind = iota + 1
	KindFloat
	KindBool
)

func (k Kind) String() string {
	switch k {
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	case KindBool:
		return "bool"
	}
	return "unknown"
}

// Agg is a feature's aggregation.
type Agg uint8

// Aggregations.
const (
	AggCount      Agg = iota + 1 // events in the window
	AggSum                       // sum of an integer expression over the window
	AggDistinct                  // distinct values of a key field in the window
	AggSeenBefore                // an earlier event within the horizon (bool)
	AggLast                      // derived from the previous event within the horizon
	AggListCount                 // values of the event found on a named list (stateless)
	AggFirstSeen                 // seconds since the earliest event within the horizon
)

var aggNames = map[string]Agg{
	"count": AggCount, "sum": AggSum, "distinct": AggDistinct,
	"seen_before": AggSeenBefore, "last": AggLast, "list_count": AggListCount,
	"first_seen": AggFirstSeen,
}

func (a Agg) String() string {
	for n, v := range aggNames {
		if v == a {
			return n
		}
	}
	return "unknown"
}

// Derivations of AggLast (AggFirstSeen: seconds_since only).
const (
	DeriveSecondsSince = "seconds_since"
	DeriveKM           = "km"
	DeriveKMH          = "kmh"
)

// Personal-information categories a feature may use.
const (
	CatDevice    = "device"
	CatNetwork   = "network"
	CatLocation  = "location"
	CatBehaviour = "behaviour"
	CatPayment   = "payment"
)

// Window bounds.
const (
	MinWindow = time.Minute
	MaxWindow = 90 * 24 * time.Hour
	// DefaultHorizon is the horizon of seen_before, first_seen and last when
	// none is given.
	DefaultHorizon = MaxWindow
)

// Def is one compiled feature definition. Defs are immutable.
type Def struct {
	Name        string
	Description string
	Kind        Kind
	Agg         Agg
	// AppliesTo lists the event types the feature is computed for; empty
	// means every type.
	AppliesTo []event.Type
	Where     string   // expr filter source; empty means none
	Key       []string // key field names (see KeyFields)
	Of        []string // distinct: one key field; sum: one expr; last: time|location; list_count: list-valued fields
	Window    time.Duration
	Horizon   time.Duration
	Derive    string // AggLast: seconds_since | km | kmh; AggFirstSeen: seconds_since
	List      string // AggListCount: the list's name
	// Categories names the personal-information categories the feature uses.
	Categories []string
	Line       int // line of the definition in its catalog

	state  int // index into Catalog.states; -1 for stateless features
	filter int // index into Catalog.filters; -1 for none

	whereLine int
}

// Catalog is a validated, compiled set of feature definitions. It is
// immutable and safe for concurrent use.
type Catalog struct {
	name    string
	defs    []Def
	states  []*stateDef
	filters []*filter
}

// Defs returns the definitions in catalog order; a Vector is aligned with it.
func (c *Catalog) Defs() []Def { return slices.Clone(c.defs) }

// Len returns the number of features.
func (c *Catalog) Len() int { return len(c.defs) }

// Index returns the position of the feature named name, or -1.
func (c *Catalog) Index(name string) int {
	for i := range c.defs {
		if c.defs[i].Name == name {
			return i
		}
	}
	return -1
}

// filter is one compiled where expression, shared by every state using it.
type filter struct {
	src  string
	prog *vm.Program
}

// stateDef is the stored state behind one or more features: features with
// the same types, filter, key, aggregation, operand and window share it
// (km and speed share the previous location).
type stateDef struct {
	id      uint16 // stable: a hash of the signature
	sig     string
	agg     Agg
	types   uint32 // bit per event.Type; 0 = all
	filter  int    // index into Catalog.filters, -1 = none
	key     []keyField
	of      keyField      // distinct
	sum     *vm.Program   // sum
	lastLoc bool          // last: location (else time)
	window  time.Duration // count/sum/distinct window; seen_before/first_seen/last horizon
	gran    int64         // granule, ns (window/60)
	first   string        // first feature using it (for messages)
}

//go:embed default.yaml
var defaultYAML []byte

var defaultCatalog = func() *Catalog {
	c, err := ParseCatalog("default", defaultYAML)
	if err != nil {
		panic(err)
	}
	return c
}()

// DefaultCatalog returns the catalog embedded in the binary.
func DefaultCatalog() *Catalog { return defaultCatalog }

// DefaultCatalogYAML returns the embedded catalog's source.
func DefaultCatalogYAML() []byte { return slices.Clone(defaultYAML) }

// LoadCatalog reads and parses the catalog file at path.
func LoadCatalog(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("features: read catalog: %w", err)
	}
	return ParseCatalog(path, data)
}

// CheckFile gives the verdict riskd would give on the catalog at path: nil,
// or an error naming the feature and its line (a *CatalogError when the file
// was read).
func CheckFile(path string) error {
	_, err := LoadCatalog(path)
	return err
}

// ParseCatalog parses and validates a catalog; name is used in messages.
// The whole catalog is refused on the first error.
func ParseCatalog(name string, data []byte) (*Catalog, error) {
	fail := func(line int, feature, format string, a ...any) error {
		return &CatalogError{File: name, Feature: feature, Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fail(0, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fail(0, "", "empty catalog")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "", "expected a mapping with a features list")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "features" {
			return nil, fail(k.Line, "", "unknown field %q at the top level", k.Value)
		}
		list = v
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil, fail(root.Line, "", "missing features list")
	}
	c := &Catalog{name: name}
	names := map[string]int{}
	states := map[string]int{}
	filters := map[string]int{}
	ids := map[uint16]string{}
	for _, n := range list.Content {
		d, st, err := parseDef(name, n)
		if err != nil {
			return nil, err
		}
		if prev, dup := names[d.Name]; dup {
			return nil, fail(d.Line, d.Name, "duplicate name (first defined at line %d)", prev)
		}
		names[d.Name] = d.Line
		d.state, d.filter = -1, -1
		if d.Where != "" {
			fi, ok := filters[d.Where]
			if !ok {
				prog, err := expr.Compile(d.Where, expr.Env(event.Event{}), expr.AsBool())
				if err != nil {
					return nil, fail(d.whereLine, d.Name, "where: %s", oneLine(err))
				}
				fi = len(c.filters)
				filters[d.Where] = fi
				c.filters = append(c.filters, &filter{src: d.Where, prog: prog})
			}
			d.filter = fi
		}
		if st != nil {
			st.filter = d.filter
			si, ok := states[st.sig]
			if !ok {
				h := fnv.New32a()
				h.Write([]byte(st.sig))
				sum := h.Sum32()
				st.id = uint16(sum>>16) ^ uint16(sum)
				if other, clash := ids[st.id]; clash {
					return nil, fail(d.Line, d.Name, "state id %d collides with feature %q; rename or change one of them", st.id, other)
				}
				ids[st.id] = d.Name
				st.first = d.Name
				si = len(c.states)
				states[st.sig] = si
				c.states = append(c.states, st)
			}
			d.state = si
		}
		c.defs = append(c.defs, d)
	}
	if len(c.defs) == 0 {
		return nil, fail(list.Line, "", "no features")
	}
	if len(c.defs) > 1024 {
		return nil, fail(list.Line, "", "more than 1024 features")
	}
	return c, nil
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// keyField is one field an entity key or a distinct count can use; the
// value is the identifier's pseudonym, never the raw value.
type keyField struct {
	name string
	cat  string
	get  func(ev *event.Event, dst []byte) ([]byte, bool)
}

// appendHash appends a 64-bit FNV-1a hash of s, for key fields that are not
// identifiers (and so have no pseudonym) but should not be stored as text.
func appendHash(dst []byte, s string) []byte {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum(dst)
}

func str(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	return append(dst, s...), true
}

// KeyFields lists the field names a key or a distinct count may name.
func KeyFields() []string {
	out := make([]string, 0, len(keyFields))
	for k := range keyFields {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var keyFields = map[string]keyField{
	"account_id": {cat: CatBehaviour, get: func(ev *event.Event, d []byte) ([]byte, bool) { return str(d, ev.P.Account) }},
	"org_id":     {cat: CatBehaviour, get: func(ev *event.Event, d []byte) ([]byte, bool) { return str(d, ev.P.Org) }},
	"device.device_id": {cat: CatDevice, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		return str(d, ev.P.Device)
	}},
	"network.ip": {cat: CatNetwork, get: func(ev *event.Event, d []byte) ([]byte, bool) { return str(d, ev.P.IP) }},
	"network.ip_prefix": {cat: CatNetwork, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		return str(d, ev.P.IPPrefix)
	}},
	"network.wifi_bssid": {cat: CatNetwork, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		return str(d, ev.P.BSSID)
	}},
	"payment.payee_account_id": {cat: CatPayment, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		return str(d, ev.P.Payee)
	}},
	"payment.instrument_id": {cat: CatPayment, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		return str(d, ev.P.Instrument)
	}},
	// A site is not personal; its pseudonym is used when ingest made one.
	"attendance.site_id": {cat: CatLocation, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		if ev.P.Site != "" {
			return append(d, ev.P.Site...), true
		}
		return str(d, ev.Attendance.SiteID)
	}},
	// A hash of the user agent: an agent is shared by every device of a
	// model and app version; the hash keeps free text out of keys.
	"network.user_agent": {cat: CatNetwork, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		if ev.Network.UserAgent == "" {
			return d, false
		}
		return appendHash(d, ev.Network.UserAgent), true
	}},
	// A hash of the raw coordinates' exact bits: equal only for fixes
	// identical to the last digit (a replayed location), which the coarse
	// location cannot tell from two genuine fixes 50 m apart. Only the hash
	// is stored, never the coordinates.
	"location.exact": {cat: CatLocation, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		if !ev.Has.Location {
			return d, false
		}
		return appendHash(d, fmt.Sprintf("%x/%x", math.Float64bits(ev.Location.Latitude), math.Float64bits(ev.Location.Longitude))), true
	}},
	// The stored (coarsened) coordinates, compared exactly.
	"location": {cat: CatLocation, get: func(ev *event.Event, d []byte) ([]byte, bool) {
		if !ev.Has.Location {
			return d, false
		}
		d = appendFloat(d, ev.P.CoarseLat)
		return appendFloat(d, ev.P.CoarseLon), true
	}},
}

func init() {
	for k, f := range keyFields {
		f.name = k
		keyFields[k] = f
	}
}

// listFields are the list-valued fields list_count may count.
var listFields = map[string]struct {
	cat string
	get func(ev *event.Event) []string
}{
	"device.installed_packages": {CatDevice, func(ev *event.Event) []string { return ev.Device.InstalledPackages }},
	"device.flagged_packages":   {CatDevice, func(ev *event.Event) []string { return ev.Device.FlaggedPackages }},
	"device.hook_frameworks":    {CatDevice, func(ev *event.Event) []string { return ev.Device.HookFrameworks }},
	"attendance.beacon_ids":     {CatLocation, func(ev *event.Event) []string { return ev.Attendance.BeaconIDs }},
}

var defFields = map[string]bool{
	"name": true, "description": true, "on": true, "where": true, "key": true, "agg": true,
	"of": true, "window": true, "horizon": true, "value": true, "list": true, "categories": true,
}

func strOrList(n *yaml.Node) ([]string, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			return nil, true
		}
		return []string{n.Value}, true
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Value == "" {
				return nil, false
			}
			out = append(out, c.Value)
		}
		return out, true
	}
	return nil, false
}

func parseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err != nil || fmt.Sprintf("%dd", days) != s {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		if days > 100000 {
			return 0, fmt.Errorf("%q is too long", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	return d, nil
}

func parseDef(file string, n *yaml.Node) (Def, *stateDef, error) {
	d := Def{Line: n.Line}
	fail := func(line int, format string, a ...any) error {
		return &CatalogError{File: file, Feature: d.Name, Line: line, Msg: fmt.Sprintf(format, a...)}
	}
	if n.Kind != yaml.MappingNode {
		return d, nil, fail(n.Line, "a feature must be a mapping")
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "name" && v.Kind == yaml.ScalarNode {
			d.Name = v.Value
		}
		fields[k.Value] = v
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !defFields[k.Value] {
			return d, nil, fail(k.Line, "unknown field %q", k.Value)
		}
	}
	scalar := func(f string) (string, int, error) {
		v := fields[f]
		if v == nil {
			return "", 0, nil
		}
		if v.Kind != yaml.ScalarNode {
			return "", v.Line, fail(v.Line, "%s must be a string", f)
		}
		return v.Value, v.Line, nil
	}
	list := func(f string) ([]string, int, error) {
		v := fields[f]
		if v == nil {
			return nil, 0, nil
		}
		l, ok := strOrList(v)
		if !ok {
			return nil, v.Line, fail(v.Line, "%s must be a string or a list of strings", f)
		}
		return l, v.Line, nil
	}
	if fields["name"] == nil || d.Name == "" {
		return d, nil, fail(n.Line, "missing name")
	}
	if !validName(d.Name) {
		return d, nil, fail(fields["name"].Line, "name must match [a-z][a-z0-9_]* (at most 64 characters)")
	}
	var err error
	if d.Description, _, err = scalar("description"); err != nil {
		return d, nil, err
	}
	on, onLine, err := list("on")
	if err != nil {
		return d, nil, err
	}
	var types uint32
	for _, s := range on {
		t, ok := event.ParseType(s)
		if !ok {
			return d, nil, fail(onLine, "unknown event type %q in on", s)
		}
		if types&(1<<t) == 0 {
			d.AppliesTo = append(d.AppliesTo, t)
		}
		types |= 1 << t
	}
	if d.Where, d.whereLine, err = scalar("where"); err != nil {
		return d, nil, err
	}
	aggS, aggLine, err := scalar("agg")
	if err != nil {
		return d, nil, err
	}
	if aggS == "" {
		return d, nil, fail(n.Line, "missing agg")
	}
	agg, ok := aggNames[aggS]
	if !ok {
		return d, nil, fail(aggLine, "unknown aggregation %q (want count, sum, distinct, seen_before, first_seen, last or list_count)", aggS)
	}
	d.Agg = agg
	keyNames, keyLine, err := list("key")
	if err != nil {
		return d, nil, err
	}
	of, ofLine, err := list("of")
	if err != nil {
		return d, nil, err
	}
	d.Of = of
	if c := fields["categories"]; c != nil {
		l, ok := strOrList(c)
		if !ok {
			return d, nil, fail(c.Line, "categories must be a list of strings")
		}
		for _, x := range l {
			switch x {
			case CatDevice, CatNetwork, CatLocation, CatBehaviour, CatPayment:
			default:
				return d, nil, fail(c.Line, "unknown category %q (want device, network, location, behaviour or payment)", x)
			}
		}
	}
	cats := map[string]bool{}
	st := &stateDef{agg: agg, types: types, filter: -1}
	if d.Where != "" {
		cats[CatBehaviour] = true
	}
	if agg == AggListCount {
		if len(keyNames) > 0 {
			return d, nil, fail(keyLine, "list_count takes no key")
		}
		if fields["window"] != nil || fields["horizon"] != nil {
			return d, nil, fail(n.Line, "list_count takes no window or horizon")
		}
		if d.List, _, err = scalar("list"); err != nil {
			return d, nil, err
		}
		if d.List == "" {
			return d, nil, fail(n.Line, "list_count needs list")
		}
		if len(of) == 0 {
			return d, nil, fail(n.Line, "list_count needs of (the list-valued fields to look up)")
		}
		for _, f := range of {
			lf, ok := listFields[f]
			if !ok {
				return d, nil, fail(ofLine, "unknown field %q in of (list_count counts %s)", f, strings.Join(sortedKeys(listFields), ", "))
			}
			cats[lf.cat] = true
		}
		d.Kind = KindInt
		d.Categories = catList(cats, fields["categories"])
		return d, nil, nil
	}
	if fields["list"] != nil {
		return d, nil, fail(fields["list"].Line, "list is only for list_count")
	}
	if len(keyNames) == 0 {
		return d, nil, fail(n.Line, "missing key")
	}
	seen := map[string]bool{}
	for _, k := range keyNames {
		kf, ok := keyFields[k]
		if !ok {
			return d, nil, fail(keyLine, "unknown key field %q (want one of %s)", k, strings.Join(KeyFields(), ", "))
		}
		if seen[k] {
			return d, nil, fail(keyLine, "key field %q twice", k)
		}
		seen[k] = true
		st.key = append(st.key, kf)
		cats[kf.cat] = true
	}
	d.Key = keyNames
	dur := func(f string) (time.Duration, error) {
		s, line, err := scalar(f)
		if err != nil || s == "" {
			return 0, err
		}
		w, err := parseDuration(s)
		if err != nil {
			return 0, fail(line, "bad %s: %v", f, err)
		}
		if w < MinWindow || w > MaxWindow {
			return 0, fail(line, "bad %s %s: must be from 1m to 90d", f, s)
		}
		if w%time.Second != 0 || int64(w)%60 != 0 {
			return 0, fail(line, "bad %s %s: must be whole seconds divisible into 60 granules", f, s)
		}
		return w, nil
	}
	derive, deriveLine, err := scalar("value")
	if err != nil {
		return d, nil, err
	}
	if derive != "" && agg != AggLast && agg != AggFirstSeen {
		return d, nil, fail(deriveLine, "value is only for last and first_seen")
	}
	switch agg {
	case AggCount, AggSum, AggDistinct:
		if fields["horizon"] != nil {
			return d, nil, fail(fields["horizon"].Line, "%s takes a window, not a horizon", aggS)
		}
		if d.Window, err = dur("window"); err != nil {
			return d, nil, err
		}
		if d.Window == 0 {
			return d, nil, fail(n.Line, "missing window")
		}
		st.window = d.Window
	case AggSeenBefore, AggFirstSeen, AggLast:
		if fields["window"] != nil {
			return d, nil, fail(fields["window"].Line, "%s takes a horizon, not a window", aggS)
		}
		if d.Horizon, err = dur("horizon"); err != nil {
			return d, nil, err
		}
		if d.Horizon == 0 {
			d.Horizon = DefaultHorizon
		}
		st.window = d.Horizon
	}
	st.gran = int64(st.window) / slots
	switch agg {
	case AggCount:
		d.Kind = KindInt
		if len(of) > 0 {
			return d, nil, fail(ofLine, "count takes no of")
		}
	case AggSum:
		d.Kind = KindInt
		if len(of) != 1 {
			return d, nil, fail(n.Line, "sum needs of: one integer expression")
		}
		prog, err := expr.Compile(of[0], expr.Env(event.Event{}), expr.AsInt64())
		if err != nil {
			return d, nil, fail(ofLine, "of: %s", oneLine(err))
		}
		st.sum = prog
		cats[catOfPath(of[0])] = true
	case AggDistinct:
		d.Kind = KindInt
		if len(of) != 1 {
			return d, nil, fail(n.Line, "distinct needs of: one key field")
		}
		kf, ok := keyFields[of[0]]
		if !ok {
			return d, nil, fail(ofLine, "unknown field %q in of (want one of %s)", of[0], strings.Join(KeyFields(), ", "))
		}
		st.of = kf
		cats[kf.cat] = true
	case AggSeenBefore:
		d.Kind = KindBool
		if len(of) > 0 {
			return d, nil, fail(ofLine, "seen_before takes no of")
		}
	case AggFirstSeen:
		d.Kind = KindFloat
		if len(of) > 0 {
			return d, nil, fail(ofLine, "first_seen takes no of")
		}
		switch derive {
		case "", DeriveSecondsSince:
		default:
			return d, nil, fail(deriveLine, "unknown value %q (first_seen gives seconds_since)", derive)
		}
		d.Derive = DeriveSecondsSince
	case AggLast:
		d.Kind = KindFloat
		if len(of) != 1 || (of[0] != "time" && of[0] != "location") {
			return d, nil, fail(n.Line, "last needs of: time or location")
		}
		st.lastLoc = of[0] == "location"
		switch derive {
		case "":
			return d, nil, fail(n.Line, "last needs value: seconds_since, km or kmh")
		case DeriveSecondsSince:
		case DeriveKM, DeriveKMH:
			if !st.lastLoc {
				return d, nil, fail(deriveLine, "value %s needs of: location", derive)
			}
		default:
			return d, nil, fail(deriveLine, "unknown value %q (want seconds_since, km or kmh)", derive)
		}
		d.Derive = derive
		if st.lastLoc {
			cats[CatLocation] = true
		}
	}
	cats[CatBehaviour] = true
	d.Categories = catList(cats, fields["categories"])
	st.sig = fmt.Sprintf("%s|%x|%s|%s|%s|%s|%d", agg, types, d.Where, strings.Join(d.Key, ","), strings.Join(of, ","), "", st.window)
	return d, st, nil
}

func catOfPath(p string) string {
	switch {
	case strings.HasPrefix(p, "payment."):
		return CatPayment
	case strings.HasPrefix(p, "device."):
		return CatDevice
	case strings.HasPrefix(p, "network."):
		return CatNetwork
	case strings.HasPrefix(p, "location."), strings.HasPrefix(p, "attendance."):
		return CatLocation
	}
	return CatBehaviour
}

func catList(cats map[string]bool, extra *yaml.Node) []string {
	if extra != nil {
		if l, ok := strOrList(extra); ok {
			for _, c := range l {
				cats[c] = true
			}
		}
	}
	out := make([]string, 0, len(cats))
	for c := range cats {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
