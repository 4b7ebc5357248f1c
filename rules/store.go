package rules

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// Actor is who made a change: the role and the name of the token used.
type Actor struct {
	Role  string `json:"role"`
	Token string `json:"token"`
}

// StoreOptions configure OpenStore. The zero value works except for DB.
type StoreOptions struct {
	// DB holds versions, drafts and history. Required.
	DB *pebble.DB
	// Features types every compiled set (the engine's catalog Defs).
	Features []features.Def
	// Clock stamps changes; default the system clock.
	Clock clock.Clock
	// Bootstrap is published as the first version when the store has none;
	// default BundledFiles(). Set NoBootstrap to start empty.
	Bootstrap   []File
	NoBootstrap bool
	// CacheVersions bounds how many non-live compiled versions are kept in
	// memory (default 16).
	CacheVersions int
}

// Store keeps rule-set versions on Pebble and the live set in memory.
// Published versions are immutable and kept forever. Safe for concurrent
// use; Live never blocks.
type Store struct {
	db    *pebble.DB
	opts  StoreOptions
	clock clock.Clock
	live  atomic.Pointer[Set]

	mu      sync.Mutex      // serializes changes and guards the fields below
	next    uint64          // next version number
	histSeq uint64          // history key tiebreaker
	cache   map[uint64]*Set // compiled versions
}

// ErrNoDB is returned by OpenStore without a DB.
var ErrNoDB = errors.New("rules: StoreOptions.DB is required")

type versionRecord struct {
	Version      uint64           `json:"version"`
	Files        []File           `json:"files"`
	RuleVersions map[string]int32 `json:"rule_versions"`
	Author       Actor            `json:"author"`
	At           time.Time        `json:"at"`
	Note         string           `json:"note,omitempty"`
	Kind         string           `json:"kind"` // publish, set_mode, bootstrap
}

type draftRecord struct {
	Name   string    `json:"name"`
	Files  []File    `json:"files"`
	Author Actor     `json:"author"`
	At     time.Time `json:"at"`
}

// Change is one entry of the audit history.
type Change struct {
	At      time.Time `json:"at"`
	Author  Actor     `json:"author"`
	Action  string    `json:"action"` // put_draft, delete_draft, publish, rollback, set_mode, bootstrap
	Version string    `json:"version,omitempty"`
	Draft   string    `json:"draft,omitempty"`
	RuleID  string    `json:"rule_id,omitempty"`
	Mode    Mode      `json:"mode,omitempty"`
	Note    string    `json:"note,omitempty"`
}

func versionKey(n uint64) []byte { return keys.AppendUint64([]byte{keys.RuleSet}, n) }

var liveKey = []byte{keys.RuleSetLive}

// OpenStore loads the live version (publishing Bootstrap when there is none).
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.DB == nil {
		return nil, ErrNoDB
	}
	if opts.CacheVersions <= 0 {
		opts.CacheVersions = 16
	}
	s := &Store{db: opts.DB, opts: opts, clock: clock.Or(opts.Clock), cache: map[uint64]*Set{}}
	// The next version follows the highest stored one.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.RuleSet}, UpperBound: []byte{keys.RuleSet + 1}})
	if err != nil {
		return nil, fmt.Errorf("rules: open store: %w", err)
	}
	if it.Last() {
		s.next = binary.BigEndian.Uint64(it.Key()[1:]) + 1
	} else {
		s.next = 1
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("rules: open store: %w", err)
	}
	hit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.RuleHistory}, UpperBound: []byte{keys.RuleHistory + 1}})
	if err != nil {
		return nil, fmt.Errorf("rules: open store: %w", err)
	}
	if hit.Last() && len(hit.Key()) >= 17 {
		s.histSeq = binary.BigEndian.Uint64(hit.Key()[9:]) + 1
	}
	if err := hit.Close(); err != nil {
		return nil, fmt.Errorf("rules: open store: %w", err)
	}

	v, closer, err := s.db.Get(liveKey)
	switch {
	case err == nil:
		n := binary.BigEndian.Uint64(v)
		closer.Close()
		set, err := s.load(n)
		if err != nil {
			return nil, fmt.Errorf("rules: open store: live version: %w", err)
		}
		s.live.Store(set)
	case errors.Is(err, pebble.ErrNotFound):
		if !opts.NoBootstrap {
			files := opts.Bootstrap
			if files == nil {
				files = BundledFiles()
			}
			s.mu.Lock()
			_, err := s.publishLocked(files, Actor{Role: "system", Token: "bootstrap"}, "bundled rule set", "bootstrap")
			s.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("rules: open store: bootstrap: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("rules: open store: %w", err)
	}
	return s, nil
}

// Live returns the live set, or nil when nothing was ever published. It
// never blocks: a publish swaps one pointer.
func (s *Store) Live() *Set { return s.live.Load() }

// Validate compiles files against the store's features without storing them.
func (s *Store) Validate(files []File) (*Set, error) {
	return Compile(files, CompileOptions{Features: s.opts.Features})
}

// PutDraft stores files as the named draft after checking that they compile.
func (s *Store) PutDraft(name string, files []File, who Actor) (*Set, error) {
	if !validID(name) {
		return nil, fmt.Errorf("%w: draft name %q must be 1-100 characters of a-z, 0-9, '.', '_' or '-'", ErrInvalid, name)
	}
	set, err := s.Validate(files)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()
	data, err := json.Marshal(draftRecord{Name: name, Files: files, Author: who, At: now})
	if err != nil {
		return nil, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(append([]byte{keys.RuleDraft}, name...), data, nil)
	if err := s.historyLocked(b, Change{At: now, Author: who, Action: "put_draft", Draft: name}); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("rules: put draft %s: %w", name, err)
	}
	return set, nil
}

// Draft is a stored, unpublished rule set.
type Draft struct {
	Name   string
	Files  []File
	Author Actor
	At     time.Time
}

// Draft returns the named draft's files as they were put.
func (s *Store) Draft(name string) (Draft, error) {
	v, closer, err := s.db.Get(append([]byte{keys.RuleDraft}, name...))
	if errors.Is(err, pebble.ErrNotFound) {
		return Draft{}, fmt.Errorf("%w: draft %q", ErrNotFound, name)
	}
	if err != nil {
		return Draft{}, fmt.Errorf("rules: draft %s: %w", name, err)
	}
	defer closer.Close()
	var r draftRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Draft{}, fmt.Errorf("rules: draft %s: %w", name, err)
	}
	return Draft{Name: r.Name, Files: r.Files, Author: r.Author, At: r.At}, nil
}

// Drafts lists the stored drafts by name.
func (s *Store) Drafts() ([]Draft, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.RuleDraft}, UpperBound: []byte{keys.RuleDraft + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Draft
	for it.First(); it.Valid(); it.Next() {
		var r draftRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, fmt.Errorf("rules: draft %s: %w", it.Key()[1:], err)
		}
		out = append(out, Draft{Name: r.Name, Files: r.Files, Author: r.Author, At: r.At})
	}
	return out, it.Error()
}

// DeleteDraft removes a draft.
func (s *Store) DeleteDraft(name string, who Actor) error {
	if _, err := s.Draft(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(append([]byte{keys.RuleDraft}, name...), nil)
	if err := s.historyLocked(b, Change{At: s.clock.Now().UTC(), Author: who, Action: "delete_draft", Draft: name}); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Diff compares the named draft with the live set.
func (s *Store) Diff(draft string) (Diff, error) {
	d, err := s.Draft(draft)
	if err != nil {
		return Diff{}, err
	}
	cand, err := s.Validate(d.Files)
	if err != nil {
		return Diff{}, err
	}
	return DiffSets(s.Live(), cand), nil
}

// Publish makes the named draft the live set, as a new version.
func (s *Store) Publish(draft string, who Actor, note string) (*Set, error) {
	d, err := s.Draft(draft)
	if err != nil {
		return nil, err
	}
	return s.PublishFiles(d.Files, who, note)
}

// PublishFiles compiles files and makes them the live set, as a new version.
func (s *Store) PublishFiles(files []File, who Actor, note string) (*Set, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publishLocked(files, who, note, "publish")
}

func (s *Store) publishLocked(files []File, who Actor, note, kind string) (*Set, error) {
	// Rule versions: unchanged text keeps its number, a change bumps it.
	prev := s.Live()
	ruleVersions := map[string]int32{}
	probe, err := Compile(files, CompileOptions{Features: s.opts.Features})
	if err != nil {
		return nil, err
	}
	for _, r := range probe.rules {
		ruleVersions[r.id] = 1
		if prev != nil {
			if old := prev.rule(r.id); old != nil {
				ruleVersions[r.id] = old.version
				if old.source != r.source {
					ruleVersions[r.id] = old.version + 1
				}
			} else if v, ok := s.lastRuleVersionLocked(r.id); ok {
				ruleVersions[r.id] = v + 1
			}
		}
	}
	n := s.next
	set, err := Compile(files, CompileOptions{Features: s.opts.Features, Version: "v" + strconv.FormatUint(n, 10), RuleVersions: ruleVersions})
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	rec := versionRecord{Version: n, Files: set.Files(), RuleVersions: ruleVersions, Author: who, At: now, Note: note, Kind: kind}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(versionKey(n), data, nil)
	_ = b.Set(liveKey, keys.AppendUint64(nil, n), nil)
	if err := s.historyLocked(b, Change{At: now, Author: who, Action: kind, Version: set.version, Note: note}); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("rules: publish: %w", err)
	}
	s.next = n + 1
	s.cachePutLocked(n, set)
	s.live.Store(set)
	return set, nil
}

// lastRuleVersionLocked finds the version a rule id last had, for a rule
// that comes back after being removed.
func (s *Store) lastRuleVersionLocked(id string) (int32, bool) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.RuleSet}, UpperBound: []byte{keys.RuleSet + 1}})
	if err != nil {
		return 0, false
	}
	defer it.Close()
	for it.Last(); it.Valid(); it.Prev() {
		var rec versionRecord
		if json.Unmarshal(it.Value(), &rec) == nil {
			if v, ok := rec.RuleVersions[id]; ok {
				return v, true
			}
		}
	}
	return 0, false
}

func (s *Store) historyLocked(b *pebble.Batch, c Change) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	k := keys.AppendTime([]byte{keys.RuleHistory}, c.At.UnixNano())
	k = keys.AppendUint64(k, s.histSeq)
	s.histSeq++
	return b.Set(k, data, nil)
}

// History returns the newest limit changes (all when limit <= 0), newest
// first.
func (s *Store) History(limit int) ([]Change, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.RuleHistory}, UpperBound: []byte{keys.RuleHistory + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Change
	for it.Last(); it.Valid() && (limit <= 0 || len(out) < limit); it.Prev() {
		var c Change
		if err := json.Unmarshal(it.Value(), &c); err != nil {
			return nil, fmt.Errorf("rules: history: %w", err)
		}
		out = append(out, c)
	}
	return out, it.Error()
}

// VersionInfo describes one published version.
type VersionInfo struct {
	Version string
	Author  Actor
	At      time.Time
	Note    string
	Kind    string
	Rules   []string
	Live    bool
}

func parseVersion(v string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "v"), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: version %q (want v1, v2 ...)", ErrNotFound, v)
	}
	return n, nil
}

// Versions lists every published version, oldest first.
func (s *Store) Versions() ([]VersionInfo, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.RuleSet}, UpperBound: []byte{keys.RuleSet + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	live := ""
	if l := s.Live(); l != nil {
		live = l.version
	}
	var out []VersionInfo
	for it.First(); it.Valid(); it.Next() {
		var rec versionRecord
		if err := json.Unmarshal(it.Value(), &rec); err != nil {
			return nil, fmt.Errorf("rules: version record: %w", err)
		}
		vi := VersionInfo{Version: "v" + strconv.FormatUint(rec.Version, 10), Author: rec.Author, At: rec.At, Note: rec.Note, Kind: rec.Kind}
		for id := range rec.RuleVersions {
			vi.Rules = append(vi.Rules, id)
		}
		sort.Strings(vi.Rules)
		vi.Live = vi.Version == live
		out = append(out, vi)
	}
	return out, it.Error()
}

// Version returns the compiled set of a published version ("v7"), exactly as
// it was published, for replay.
func (s *Store) Version(v string) (*Set, error) {
	n, err := parseVersion(v)
	if err != nil {
		return nil, err
	}
	return s.load(n)
}

func (s *Store) load(n uint64) (*Set, error) {
	if l := s.Live(); l != nil && l.version == "v"+strconv.FormatUint(n, 10) {
		return l, nil
	}
	s.mu.Lock()
	set := s.cache[n]
	s.mu.Unlock()
	if set != nil {
		return set, nil
	}
	v, closer, err := s.db.Get(versionKey(n))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("%w: version v%d", ErrNotFound, n)
	}
	if err != nil {
		return nil, fmt.Errorf("rules: version v%d: %w", n, err)
	}
	var rec versionRecord
	err = json.Unmarshal(v, &rec)
	closer.Close()
	if err != nil {
		return nil, fmt.Errorf("rules: version v%d: %w", n, err)
	}
	set, err = Compile(rec.Files, CompileOptions{Features: s.opts.Features, Version: "v" + strconv.FormatUint(n, 10), RuleVersions: rec.RuleVersions})
	if err != nil {
		return nil, fmt.Errorf("rules: version v%d no longer compiles against the feature catalog: %w", n, err)
	}
	s.mu.Lock()
	s.cachePutLocked(n, set)
	s.mu.Unlock()
	return set, nil
}

func (s *Store) cachePutLocked(n uint64, set *Set) {
	if len(s.cache) >= s.opts.CacheVersions {
		for k := range s.cache {
			delete(s.cache, k)
			break
		}
	}
	s.cache[n] = set
}

// Rollback makes a published version live again. No new version is made:
// decisions name the version that actually ran.
func (s *Store) Rollback(v string, who Actor, note string) (*Set, error) {
	n, err := parseVersion(v)
	if err != nil {
		return nil, err
	}
	set, err := s.load(n)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(liveKey, keys.AppendUint64(nil, n), nil)
	if err := s.historyLocked(b, Change{At: s.clock.Now().UTC(), Author: who, Action: "rollback", Version: set.version, Note: note}); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("rules: rollback: %w", err)
	}
	s.live.Store(set)
	return set, nil
}

// SetMode changes one rule's mode in the live set and publishes the result
// as a new version. The file is edited in place (only the mode), so comments
// and layout survive.
func (s *Store) SetMode(ruleID string, mode Mode, who Actor, note string) (*Set, error) {
	if mode != ModeActive && mode != ModeShadow && mode != ModeDisabled {
		return nil, fmt.Errorf("%w: mode %q (want active, shadow or disabled)", ErrInvalid, mode)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.Live()
	if live == nil {
		return nil, fmt.Errorf("%w: no live rule set", ErrNotFound)
	}
	r := live.rule(ruleID)
	if r == nil {
		return nil, fmt.Errorf("%w: rule %q in %s", ErrNotFound, ruleID, live.version)
	}
	files := live.Files()
	for i := range files {
		if files[i].Name != r.file {
			continue
		}
		data, err := setModeText(files[i].Data, ruleID, mode)
		if err != nil {
			return nil, err
		}
		files[i].Data = data
	}
	set, err := s.publishLocked(files, who, note, "set_mode")
	if err != nil {
		return nil, err
	}
	// Name the rule and mode in the history too.
	b := s.db.NewBatch()
	defer b.Close()
	if err := s.historyLocked(b, Change{At: s.clock.Now().UTC(), Author: who, Action: "rule_mode", Version: set.version, RuleID: ruleID, Mode: mode, Note: note}); err == nil {
		_ = b.Commit(pebble.Sync)
	}
	return set, nil
}

func (s *Set) rule(id string) *rule {
	for _, r := range s.rules {
		if r.id == id {
			return r
		}
	}
	return nil
}

// setModeText rewrites (or inserts) the mode of one rule in a YAML file's
// text, leaving every other byte alone.
func setModeText(data []byte, ruleID string, mode Mode) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("rules: set mode: %w", err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "rules" {
			continue
		}
		for _, rn := range root.Content[i+1].Content {
			var idKey, modeVal *yaml.Node
			for j := 0; j+1 < len(rn.Content); j += 2 {
				switch rn.Content[j].Value {
				case "id":
					if rn.Content[j+1].Value == ruleID {
						idKey = rn.Content[j]
					}
				case "mode":
					modeVal = rn.Content[j+1]
				}
			}
			if idKey == nil {
				continue
			}
			if rn.Style&yaml.FlowStyle != 0 {
				return nil, fmt.Errorf("%w: rule %s is written in flow style; edit its mode by hand", ErrInvalid, ruleID)
			}
			if modeVal != nil {
				line := lines[modeVal.Line-1]
				start := modeVal.Column - 1
				end := start + len(modeVal.Value)
				if modeVal.Style == yaml.DoubleQuotedStyle || modeVal.Style == yaml.SingleQuotedStyle {
					end += 2
				}
				if end > len(line) {
					return nil, fmt.Errorf("%w: cannot locate the mode of rule %s", ErrInvalid, ruleID)
				}
				lines[modeVal.Line-1] = line[:start] + string(mode) + line[end:]
			} else {
				ins := strings.Repeat(" ", idKey.Column-1) + "mode: " + string(mode) + "\n"
				// After the id line: the id value is a one-line scalar.
				at := idKey.Line
				lines = append(lines[:at], append([]string{ins}, lines[at:]...)...)
			}
			return []byte(strings.Join(lines, "")), nil
		}
	}
	return nil, fmt.Errorf("%w: rule %q", ErrNotFound, ruleID)
}

// Diff says how a candidate set differs from a base set.
type Diff struct {
	From, To          string
	Added, Removed    []string
	Changed           []RuleChange
	ThresholdsChanged bool
	Before, After     Thresholds
}

// RuleChange is one rule present in both sets with different text.
type RuleChange struct {
	ID     string
	Fields []string // which parts changed: when, action, score, mode, reason, applies_to, tests, other
	Before string   // the rule's YAML text in the base set
	After  string
}

// Empty reports whether the sets are the same.
func (d Diff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0 && !d.ThresholdsChanged
}

// DiffSets compares candidate b with base a (a may be nil).
func DiffSets(a, b *Set) Diff {
	d := Diff{To: b.version, After: b.thresholds, Before: DefaultThresholds}
	base := map[string]*rule{}
	if a != nil {
		d.From, d.Before = a.version, a.thresholds
		for _, r := range a.rules {
			base[r.id] = r
		}
	}
	d.ThresholdsChanged = d.Before != d.After
	seen := map[string]bool{}
	for _, r := range b.rules {
		seen[r.id] = true
		old, ok := base[r.id]
		if !ok {
			d.Added = append(d.Added, r.id)
			continue
		}
		if old.source == r.source {
			continue
		}
		rc := RuleChange{ID: r.id, Before: old.source, After: r.source}
		add := func(cond bool, f string) {
			if cond {
				rc.Fields = append(rc.Fields, f)
			}
		}
		add(old.when != r.when, "when")
		add(old.action != r.action, "action")
		add(old.score != r.score, "score")
		add(old.mode != r.mode, "mode")
		add(!bytes.Equal([]byte(fmt.Sprint(old.appliesTo)), []byte(fmt.Sprint(r.appliesTo))), "applies_to")
		add(fmt.Sprint(old.en, old.zh) != fmt.Sprint(r.en, r.zh), "reason")
		add(len(old.tests) != len(r.tests), "tests")
		if len(rc.Fields) == 0 {
			rc.Fields = []string{"other"}
		}
		d.Changed = append(d.Changed, rc)
	}
	if a != nil {
		for _, r := range a.rules {
			if !seen[r.id] {
				d.Removed = append(d.Removed, r.id)
			}
		}
	}
	return d
}
