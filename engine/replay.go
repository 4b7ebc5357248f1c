package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/rules"
)

// Replay errors callers branch on.
var (
	// ErrUnknownRuleset: no rule set of that version is known here.
	ErrUnknownRuleset = errors.New("engine: unknown rule-set version")
	// ErrNotReplayable: the record lacks what a replay needs (an erased or
	// degraded-before-features decision has no event or feature snapshot).
	ErrNotReplayable = errors.New("engine: decision cannot be replayed")
	// ErrReplayMismatch: replaying the recorded rule-set version did not
	// reproduce the decision (see *MismatchError).
	ErrReplayMismatch = errors.New("engine: replay does not match the record")
)

// MismatchError lists how a replay with the recorded version differs from
// the record.
type MismatchError struct {
	DecisionID  string
	Version     string
	Differences []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("engine: replay of decision %s with %s does not match the record: %s",
		e.DecisionID, e.Version, strings.Join(e.Differences, "; "))
}

// Unwrap makes errors.Is(err, ErrReplayMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrReplayMismatch }

// RulesetLookup finds a published rule-set version (the rules store's
// Version); it returns an error matching rules.ErrNotFound for an unknown one.
type RulesetLookup func(version string) (*rules.Set, error)

// ReplayResult is what a rule set decides on a recorded decision's event
// and feature snapshot, compared with the record.
type ReplayResult struct {
	Version string       // the version replayed
	Result  rules.Result // what it decided
	// Matches: outcome, score and every reason (rule, version, action,
	// score, both messages, expression; shadow hits too) equal the record.
	Matches     bool
	Differences []string // one line per difference when not Matches
}

// Replayer re-runs recorded decisions through rule sets. It compiles its own
// copy of each version it replays, so that replays never count in the live
// set's statistics. Safe for concurrent use.
type Replayer struct {
	eng    *Engine
	lookup RulesetLookup // may be nil

	mu   sync.Mutex
	sets map[string]*rules.Set // private compiled copies by version; guarded by mu
}

// maxReplaySets bounds the compiled copies a Replayer keeps.
const maxReplaySets = 16

// NewReplayer returns a Replayer for e's decisions. lookup finds versions
// that are neither the set in force nor the bundled set (nil: none).
func NewReplayer(e *Engine, lookup RulesetLookup) *Replayer {
	return &Replayer{eng: e, lookup: lookup, sets: map[string]*rules.Set{}}
}

// source finds the set named version: the set in force, the bundled set, or
// one the lookup knows.
func (r *Replayer) source(version string) (*rules.Set, error) {
	if s := r.eng.Rules(); s != nil && s.Version() == version {
		return s, nil
	}
	if d, err := rules.Default(); err == nil && d.Version() == version {
		return d, nil
	}
	if r.lookup != nil {
		s, err := r.lookup(version)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, rules.ErrNotFound) {
			return nil, fmt.Errorf("engine: rule set %s: %w", version, err)
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownRuleset, version)
}

// set returns the Replayer's private compiled copy of version.
func (r *Replayer) set(version string) (*rules.Set, error) {
	r.mu.Lock()
	s := r.sets[version]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	src, err := r.source(version)
	if err != nil {
		return nil, err
	}
	rv := map[string]int32{}
	for _, ri := range src.Rules() {
		rv[ri.ID] = ri.Version
	}
	s, err = rules.Compile(src.Files(), rules.CompileOptions{Features: src.Features(), Version: src.Version(), RuleVersions: rv})
	if err != nil {
		return nil, fmt.Errorf("engine: recompiling rule set %s for replay: %w", version, err)
	}
	r.mu.Lock()
	if len(r.sets) >= maxReplaySets {
		for k := range r.sets {
			delete(r.sets, k)
			break
		}
	}
	r.sets[version] = s
	r.mu.Unlock()
	return s, nil
}

// Replay runs d's stored event and feature snapshot through the rule set
// version (empty: d's own) and compares the result with d.
//
// List membership is read as of the decision's time (see asOfLists), so that
// a later change, such as an appeal remedy allow-listing the account, does
// not change the replay; identifier lists match the stored pseudonyms as
// they matched the raw values live. What replay cannot see: entries removed
// since (the lists keep no history of removals), and raw values the stored
// event does not keep: an IP matched against a CIDR list or parsed as an
// address, coordinates and location accuracy (stored coarsened). The account
// id is the record's raw one, as live.
func (r *Replayer) Replay(d *riskv1.Decision, version string) (ReplayResult, error) {
	if version == "" {
		version = d.GetRulesetVersion()
	}
	if d.GetEvent() == nil {
		return ReplayResult{}, fmt.Errorf("%w: the record keeps no event (erased or redacted)", ErrNotReplayable)
	}
	if version == "" {
		return ReplayResult{}, fmt.Errorf("%w: the record names no rule-set version", ErrNotReplayable)
	}
	set, err := r.set(version)
	if err != nil {
		return ReplayResult{}, err
	}
	ev, err := ingest.FromStored(d.GetEvent())
	if err != nil {
		return ReplayResult{}, fmt.Errorf("%w: stored event: %v", ErrNotReplayable, err)
	}
	if a := d.GetAccountId(); a != "" {
		// Live, rules saw the raw account id; the stored event holds its
		// pseudonym, and the record the raw id.
		ev.AccountID = a
	}
	fv, err := SnapshotVector(set.Features(), d.GetFeatures())
	if err != nil {
		return ReplayResult{}, err
	}
	var ls rules.Lists
	if r.eng.lst != nil {
		ls = &asOfLists{l: r.eng.lst, ps: r.eng.norm, at: d.GetDecidedAt().AsTime().UnixNano(), cache: map[string]*listAt{}}
	}
	res, err := set.Evaluate(ev, fv, ls)
	if err != nil {
		return ReplayResult{}, fmt.Errorf("engine: replay with %s: %w", version, err)
	}
	out := ReplayResult{Version: set.Version(), Result: res}
	out.Differences = Compare(d, res)
	out.Matches = len(out.Differences) == 0
	return out, nil
}

// SnapshotVector turns a decision's feature map back into the vector the
// rules saw, in defs order: a feature missing from the map was not
// applicable, a null one applicable but absent.
func SnapshotVector(defs []features.Def, m map[string]*structpb.Value) (features.Vector, error) {
	fv := make(features.Vector, len(defs))
	for i, def := range defs {
		v, ok := m[def.Name]
		if !ok {
			continue
		}
		fv[i].Applicable = true
		switch k := v.GetKind().(type) {
		case *structpb.Value_NullValue:
		case *structpb.Value_BoolValue:
			if def.Kind != features.KindBool {
				return nil, fmt.Errorf("%w: feature %s is a bool in the record, %v in the catalog", ErrNotReplayable, def.Name, def.Kind)
			}
			fv[i].Present, fv[i].Bool = true, k.BoolValue
		case *structpb.Value_NumberValue:
			switch def.Kind {
			case features.KindFloat:
				fv[i].Present, fv[i].Float = true, k.NumberValue
			case features.KindInt:
				fv[i].Present, fv[i].Int = true, int64(k.NumberValue)
			default:
				return nil, fmt.Errorf("%w: feature %s is a number in the record, a bool in the catalog", ErrNotReplayable, def.Name)
			}
		default:
			return nil, fmt.Errorf("%w: feature %s has an unexpected value in the record", ErrNotReplayable, def.Name)
		}
	}
	return fv, nil
}

// Compare lists how res differs from the recorded decision d (nil: exactly
// the same outcome, score, reasons and shadow hits). A degraded record is
// the fail mode, not the rules' verdict, so it never matches.
func Compare(d *riskv1.Decision, res rules.Result) []string {
	var diffs []string
	if d.GetDegraded() {
		diffs = append(diffs, fmt.Sprintf("the record is degraded (%s): its outcome is the event type's fail mode, not the rules' verdict", d.GetDegradedReason()))
	}
	if got, want := riskv1.Outcome(res.Outcome), d.GetOutcome(); got != want {
		diffs = append(diffs, fmt.Sprintf("outcome: recorded %s, replayed %s", want, got))
	}
	if res.Score != d.GetScore() {
		diffs = append(diffs, fmt.Sprintf("score: recorded %d, replayed %d", d.GetScore(), res.Score))
	}
	diffs = append(diffs, compareReasons("reasons", d.GetReasons(), reasonsPB(res.Reasons))...)
	diffs = append(diffs, compareReasons("shadow reasons", d.GetShadowReasons(), reasonsPB(res.Shadow))...)
	return diffs
}

func compareReasons(what string, rec, got []*riskv1.Reason) []string {
	var diffs []string
	for i := 0; i < max(len(rec), len(got)); i++ {
		switch {
		case i >= len(got):
			diffs = append(diffs, fmt.Sprintf("%s[%d]: recorded %s v%d, not fired on replay", what, i, rec[i].GetRuleId(), rec[i].GetRuleVersion()))
		case i >= len(rec):
			diffs = append(diffs, fmt.Sprintf("%s[%d]: %s v%d fired on replay, not recorded", what, i, got[i].GetRuleId(), got[i].GetRuleVersion()))
		case !proto.Equal(rec[i], got[i]):
			diffs = append(diffs, fmt.Sprintf("%s[%d]: recorded %s, replayed %s", what, i, reasonText(rec[i]), reasonText(got[i])))
		}
	}
	return diffs
}

func reasonText(r *riskv1.Reason) string {
	return fmt.Sprintf("%s v%d %s score %d %q/%q", r.GetRuleId(), r.GetRuleVersion(), r.GetAction(), r.GetScore(), r.GetMessageEn(), r.GetMessageZh())
}

// Reasons converts rule reasons to the API's form, as the engine records them.
func Reasons(rs []rules.Reason) []*riskv1.Reason { return reasonsPB(rs) }

// withFilledDevice returns a copy of stored whose device carries what the
// device profile filled into ev (flags, packages, platform, model, OS
// version), so that the record shows what the rules saw and a replay
// reproduces it. The copy keeps stored itself unchanged for anyone else
// holding it.
func withFilledDevice(stored *riskv1.Event, ev *event.Event) *riskv1.Event {
	if stored.GetDevice() == nil {
		return stored
	}
	out := proto.Clone(stored).(*riskv1.Event)
	d, src := out.Device, &ev.Device
	d.Rooted, d.Emulator, d.MockLocationEnabled, d.DeveloperMode = src.Rooted, src.Emulator, src.MockLocationEnabled, src.DeveloperMode
	d.HookFrameworks, d.InstalledPackages, d.FlaggedPackages = src.HookFrameworks, src.InstalledPackages, src.FlaggedPackages
	d.Platform, d.Model, d.OsVersion = src.Platform, src.Model, src.OSVersion
	return out
}

// asOfLists answers rules' list lookups as the lists stood at a past time:
// an entry counts when it was added at or before then and had not expired.
// It reads each list's entries once per replay. Not safe for concurrent use
// (one per Replay call).
type asOfLists struct {
	l     *lists.Lists
	ps    lists.Pseudonymizer
	at    int64 // unix nanoseconds
	cache map[string]*listAt
}

// listAt is one list's members at the replay's time.
type listAt struct {
	meta     lists.Meta
	values   map[string]bool
	prefixes []netip.Prefix
}

func (a *asOfLists) load(name string) *listAt {
	if la, ok := a.cache[name]; ok {
		return la
	}
	var la *listAt
	if meta, err := a.l.Meta(name); err == nil {
		if entries, err := a.l.Entries(name); err == nil {
			la = &listAt{meta: meta, values: map[string]bool{}}
			for _, e := range entries {
				if e.AddedAt.UnixNano() > a.at || (!e.Expires.IsZero() && e.Expires.UnixNano() <= a.at) {
					continue
				}
				if meta.Kind == lists.CIDR {
					if p, err := netip.ParsePrefix(e.Value); err == nil {
						la.prefixes = append(la.prefixes, p.Masked())
					} else if ip, err := netip.ParseAddr(e.Value); err == nil {
						la.prefixes = append(la.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
					}
					continue
				}
				la.values[e.Value] = true
			}
		}
	}
	a.cache[name] = la
	return la
}

// Contains reports whether value was a live member of the list then.
func (a *asOfLists) Contains(name, value string) bool {
	la := a.load(name)
	if la == nil || value == "" {
		return false
	}
	switch la.meta.Kind {
	case lists.CIDR:
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return false
		}
		ip = ip.Unmap()
		for _, p := range la.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	case lists.Identifier:
		// The stored event carries identifiers as the pseudonyms the list
		// stores (its kinds are ingest's), the record the raw account id.
		return la.values[value] || la.values[a.ps.Pseudonym(la.meta.IdentifierKind, value)]
	}
	return la.values[value]
}

// AnyIn reports whether any of values was a live member then.
func (a *asOfLists) AnyIn(name string, values []string) bool {
	for _, v := range values {
		if a.Contains(name, v) {
			return true
		}
	}
	return false
}
