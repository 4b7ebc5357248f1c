package lists

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// Sentinel errors.
var (
	ErrNotFound      = errors.New("lists: no such list")
	ErrExists        = errors.New("lists: list already exists")
	ErrInvalid       = errors.New("lists: invalid argument")
	ErrNotExportable = errors.New("lists: only plain lists can be exported")
	ErrNoDB          = errors.New("lists: Options.DB is required")
)

// Kind says how a list's values are stored and matched.
type Kind string

// Kinds.
const (
	// Plain values are stored as given (package names, site ids).
	Plain Kind = "plain"
	// Identifier values are personal identifiers, stored as pseudonyms.
	Identifier Kind = "identifier"
	// CIDR values are IP prefixes (or single addresses) matched by containment.
	CIDR Kind = "cidr"
)

// Pseudonymizer turns an identifier into its keyed pseudonym (package ingest
// provides it). kind names the identifier (ingest's kinds: account, device ...), so
// that a list's pseudonyms match the ones events carry.
type Pseudonymizer interface {
	Pseudonym(kind, value string) string
}

// Options configure Open. The zero value works except for DB.
type Options struct {
	// DB holds lists under keys.ListMeta and keys.ListEntry. Required.
	DB *pebble.DB
	// Pseudonymizer is required to create or use Identifier lists.
	Pseudonymizer Pseudonymizer
	// Clock decides expiry; default the system clock.
	Clock clock.Clock
	// FalsePositiveRate of the bloom filters; default 0.001.
	FalsePositiveRate float64
}

// Meta describes a list.
type Meta struct {
	Name           string    `json:"name"`
	Kind           Kind      `json:"kind"`
	IdentifierKind string    `json:"identifier_kind,omitempty"` // for Identifier lists: account, device ... (ingest's kinds)
	Description    string    `json:"description,omitempty"`
	Version        uint64    `json:"version"` // bumped by every change
	Count          int       `json:"count"`   // entries stored, expired ones included until removed
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Entry is one stored value. For Identifier lists Value is the pseudonym.
type Entry struct {
	Value   string
	Expires time.Time // zero: never
	AddedAt time.Time
}

// Lists is the set of named lists. Safe for concurrent use.
type Lists struct {
	db    *pebble.DB
	ps    Pseudonymizer
	clock clock.Clock
	fp    float64

	writeMu sync.Mutex // serializes changes

	mu    sync.RWMutex
	lists map[string]*list // guarded by mu
}

type list struct {
	mu       sync.RWMutex
	meta     Meta                   // guarded by mu
	filter   *bloom.BloomFilter     // guarded by mu; nil for CIDR lists
	capacity uint                   // entries the filter was sized for
	prefixes map[netip.Prefix]int64 // CIDR lists: prefix -> expiry (unix ns, 0 never)
	bits     []int                  // prefix lengths present, for lookup
	export   *exported              // cached Export for meta.Version
}

type exported struct {
	version uint64
	data    []byte
}

// Open loads every list's metadata, bloom filter and CIDR prefixes.
func Open(opts Options) (*Lists, error) {
	if opts.DB == nil {
		return nil, ErrNoDB
	}
	if opts.FalsePositiveRate <= 0 || opts.FalsePositiveRate >= 1 {
		opts.FalsePositiveRate = 0.001
	}
	l := &Lists{db: opts.DB, ps: opts.Pseudonymizer, clock: clock.Or(opts.Clock), fp: opts.FalsePositiveRate, lists: map[string]*list{}}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.ListMeta}, UpperBound: []byte{keys.ListMeta + 1}})
	if err != nil {
		return nil, fmt.Errorf("lists: open: %w", err)
	}
	var metas []Meta
	for it.First(); it.Valid(); it.Next() {
		var m Meta
		if err := json.Unmarshal(it.Value(), &m); err != nil {
			it.Close()
			return nil, fmt.Errorf("lists: open: list %q: %w", it.Key()[1:], err)
		}
		metas = append(metas, m)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("lists: open: %w", err)
	}
	for _, m := range metas {
		ls := &list{meta: m}
		if err := l.rebuild(ls); err != nil {
			return nil, err
		}
		l.lists[m.Name] = ls
	}
	return l, nil
}

func metaKey(name string) []byte { return append([]byte{keys.ListMeta}, name...) }

func entryPrefix(name string) []byte {
	k := append([]byte{keys.ListEntry}, name...)
	return append(k, 0)
}

func entryKey(name, value string) []byte { return append(entryPrefix(name), value...) }

// entry values: expiry (unix ns, 0 never) then added-at, both big-endian.
func encodeEntry(exp, added int64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(exp))
	binary.BigEndian.PutUint64(b[8:], uint64(added))
	return b
}

func decodeEntry(b []byte) (exp, added int64) {
	if len(b) < 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:]))
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// rebuild sizes a fresh filter (or prefix map) from the entries on Pebble.
func (l *Lists) rebuild(ls *list) error {
	name := ls.meta.Name
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: entryPrefix(name), UpperBound: keys.PrefixEnd(entryPrefix(name))})
	if err != nil {
		return fmt.Errorf("lists: %s: %w", name, err)
	}
	defer it.Close()
	plen := len(entryPrefix(name))
	n := 0
	var vals [][]byte
	prefixes := map[netip.Prefix]int64{}
	for it.First(); it.Valid(); it.Next() {
		n++
		v := it.Key()[plen:]
		if ls.meta.Kind == CIDR {
			p, err := parsePrefix(string(v))
			if err != nil {
				continue
			}
			exp, _ := decodeEntry(it.Value())
			prefixes[p] = exp
			continue
		}
		vals = append(vals, append([]byte(nil), v...))
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("lists: %s: %w", name, err)
	}
	ls.meta.Count = n
	if ls.meta.Kind == CIDR {
		ls.prefixes = prefixes
		ls.bits = prefixBits(prefixes)
		return nil
	}
	ls.capacity = max(uint(2*n), 1024)
	ls.filter = bloom.NewWithEstimates(ls.capacity, l.fp)
	for _, v := range vals {
		ls.filter.Add(v)
	}
	return nil
}

func prefixBits(m map[netip.Prefix]int64) []int {
	seen := map[int]bool{}
	var out []int
	for p := range m {
		seen[p.Bits()] = true
	}
	for b := range seen {
		out = append(out, b)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %q is not a CIDR or IP address", ErrInvalid, s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// CreateOptions describe a new list.
type CreateOptions struct {
	// IdentifierKind names the identifier an Identifier list holds
	// (ingest's kinds: account, device ...; the API accepts no other, so that
	// members match the pseudonyms recorded events carry); it selects the pseudonym.
	IdentifierKind string
	Description    string
}

// Create makes an empty list.
func (l *Lists) Create(name string, kind Kind, opts CreateOptions) (Meta, error) {
	if !validName(name) {
		return Meta{}, fmt.Errorf("%w: list name %q must be 1-64 characters of a-z, 0-9, _, - or .", ErrInvalid, name)
	}
	switch kind {
	case Plain, CIDR:
	case Identifier:
		if l.ps == nil {
			return Meta{}, fmt.Errorf("%w: identifier lists need a Pseudonymizer", ErrInvalid)
		}
		if opts.IdentifierKind == "" {
			return Meta{}, fmt.Errorf("%w: identifier list %q needs an identifier kind (account, device ...)", ErrInvalid, name)
		}
	default:
		return Meta{}, fmt.Errorf("%w: list kind %q (want plain, identifier or cidr)", ErrInvalid, kind)
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.RLock()
	_, exists := l.lists[name]
	l.mu.RUnlock()
	if exists {
		return Meta{}, fmt.Errorf("%w: %s", ErrExists, name)
	}
	now := l.clock.Now().UTC()
	m := Meta{Name: name, Kind: kind, IdentifierKind: opts.IdentifierKind, Description: opts.Description, Version: 1, CreatedAt: now, UpdatedAt: now}
	ls := &list{meta: m}
	if kind == CIDR {
		ls.prefixes = map[netip.Prefix]int64{}
	} else {
		ls.capacity = 1024
		ls.filter = bloom.NewWithEstimates(ls.capacity, l.fp)
	}
	if err := l.putMeta(nil, m); err != nil {
		return Meta{}, err
	}
	l.mu.Lock()
	l.lists[name] = ls
	l.mu.Unlock()
	return m, nil
}

func (l *Lists) putMeta(b *pebble.Batch, m Meta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if b != nil {
		return b.Set(metaKey(m.Name), data, nil)
	}
	if err := l.db.Set(metaKey(m.Name), data, pebble.Sync); err != nil {
		return fmt.Errorf("lists: %s: %w", m.Name, err)
	}
	return nil
}

// Delete removes a list and all its entries.
func (l *Lists) Delete(name string) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if _, err := l.get(name); err != nil {
		return err
	}
	b := l.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(entryPrefix(name), keys.PrefixEnd(entryPrefix(name)), nil)
	_ = b.Delete(metaKey(name), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("lists: delete %s: %w", name, err)
	}
	l.mu.Lock()
	delete(l.lists, name)
	l.mu.Unlock()
	return nil
}

func (l *Lists) get(name string) (*list, error) {
	ls := l.lookup(name)
	if ls == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return ls, nil
}

// lookup returns the named list or nil. The evaluation path uses it: a rule
// may name a list nobody created, and that must cost no allocation.
func (l *Lists) lookup(name string) *list {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lists[name]
}

// All returns every list's metadata, by name.
func (l *Lists) All() []Meta {
	l.mu.RLock()
	out := make([]Meta, 0, len(l.lists))
	for _, ls := range l.lists {
		ls.mu.RLock()
		out = append(out, ls.meta)
		ls.mu.RUnlock()
	}
	l.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Meta returns one list's metadata.
func (l *Lists) Meta(name string) (Meta, error) {
	ls, err := l.get(name)
	if err != nil {
		return Meta{}, err
	}
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	return ls.meta, nil
}

// stored turns a caller's value into what the list stores.
func (l *Lists) stored(m *Meta, value string) (string, error) {
	switch m.Kind {
	case Identifier:
		if l.ps == nil {
			return "", fmt.Errorf("%w: no Pseudonymizer for identifier list %s", ErrInvalid, m.Name)
		}
		return l.ps.Pseudonym(m.IdentifierKind, value), nil
	case CIDR:
		p, err := parsePrefix(value)
		if err != nil {
			return "", err
		}
		return p.String(), nil
	}
	return value, nil
}

// Add puts value on the list; a zero expires means it never expires. Adding
// a value again replaces its expiry.
func (l *Lists) Add(name, value string, expires time.Time) error {
	_, err := l.add(name, []string{value}, expires)
	return err
}

// Load adds one value per line from r (blank lines and lines starting with #
// are skipped), all with the same expiry, in one synced commit. It returns
// the number of values read.
func (l *Lists) Load(name string, r io.Reader, expires time.Time) (int, error) {
	var vals []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		vals = append(vals, s)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("lists: load %s: %w", name, err)
	}
	return l.add(name, vals, expires)
}

const maxValueLen = 512

var timeZero time.Time

func (l *Lists) add(name string, values []string, expires time.Time) (int, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	ls, err := l.get(name)
	if err != nil {
		return 0, err
	}
	ls.mu.RLock()
	m := ls.meta
	ls.mu.RUnlock()
	var exp int64
	if !expires.IsZero() {
		exp = expires.UnixNano()
	}
	now := l.clock.Now()
	stored := make([]string, 0, len(values))
	seen := make(map[string]bool, len(values))
	b := l.db.NewBatch()
	defer b.Close()
	added := 0
	for i, v := range values {
		if v == "" || len(v) > maxValueLen {
			return 0, fmt.Errorf("%w: value %d: must be 1-%d bytes", ErrInvalid, i+1, maxValueLen)
		}
		s, err := l.stored(&m, v)
		if err != nil {
			return 0, fmt.Errorf("value %d: %w", i+1, err)
		}
		if seen[s] {
			continue
		}
		seen[s] = true
		k := entryKey(name, s)
		if _, closer, err := l.db.Get(k); err == nil {
			closer.Close()
		} else if errors.Is(err, pebble.ErrNotFound) {
			added++
		} else {
			return 0, fmt.Errorf("lists: add to %s: %w", name, err)
		}
		if err := b.Set(k, encodeEntry(exp, now.UnixNano()), nil); err != nil {
			return 0, err
		}
		stored = append(stored, s)
	}
	m.Count += added
	m.Version++
	m.UpdatedAt = now.UTC()
	if err := l.putMeta(b, m); err != nil {
		return 0, err
	}
	// The filter learns the values before the commit makes them visible to
	// exact reads, so a reader never misses a committed value.
	ls.mu.Lock()
	if m.Kind == CIDR {
		for _, s := range stored {
			p, _ := parsePrefix(s)
			ls.prefixes[p] = exp
		}
		ls.bits = prefixBits(ls.prefixes)
	} else {
		for _, s := range stored {
			ls.filter.AddString(s)
		}
	}
	ls.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("lists: add to %s: %w", name, err)
	}
	ls.mu.Lock()
	ls.meta = m
	if m.Kind != CIDR && uint(m.Count) > ls.capacity {
		// Past its sizing the filter's false-positive rate climbs; resize.
		err = l.rebuild(ls)
	}
	ls.mu.Unlock()
	return len(values), err
}

// Remove takes value off the list; it reports whether it was there.
func (l *Lists) Remove(name, value string) (bool, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	ls, err := l.get(name)
	if err != nil {
		return false, err
	}
	ls.mu.RLock()
	m := ls.meta
	ls.mu.RUnlock()
	s, err := l.stored(&m, value)
	if err != nil {
		return false, err
	}
	k := entryKey(name, s)
	_, closer, err := l.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lists: remove from %s: %w", name, err)
	}
	closer.Close()
	m.Count--
	m.Version++
	m.UpdatedAt = l.clock.Now().UTC()
	b := l.db.NewBatch()
	defer b.Close()
	_ = b.Delete(k, nil)
	if err := l.putMeta(b, m); err != nil {
		return false, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return false, fmt.Errorf("lists: remove from %s: %w", name, err)
	}
	// The bloom filter keeps the bit; the exact read decides.
	ls.mu.Lock()
	ls.meta = m
	if m.Kind == CIDR {
		p, _ := parsePrefix(s)
		delete(ls.prefixes, p)
		ls.bits = prefixBits(ls.prefixes)
	}
	ls.mu.Unlock()
	return true, nil
}

// Entries returns the stored entries of a list, in value order.
func (l *Lists) Entries(name string) ([]Entry, error) {
	if _, err := l.get(name); err != nil {
		return nil, err
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: entryPrefix(name), UpperBound: keys.PrefixEnd(entryPrefix(name))})
	if err != nil {
		return nil, fmt.Errorf("lists: %s: %w", name, err)
	}
	defer it.Close()
	plen := len(entryPrefix(name))
	var out []Entry
	for it.First(); it.Valid(); it.Next() {
		exp, added := decodeEntry(it.Value())
		e := Entry{Value: string(it.Key()[plen:]), AddedAt: time.Unix(0, added).UTC()}
		if exp != 0 {
			e.Expires = time.Unix(0, exp).UTC()
		}
		out = append(out, e)
	}
	return out, it.Error()
}

// Contains reports whether value is a live member of list. An unknown list
// contains nothing. A CIDR list contains every address inside its prefixes.
func (l *Lists) Contains(name, value string) bool {
	ls := l.lookup(name)
	if ls == nil || value == "" {
		return false
	}
	return l.contains(ls, value, l.clock.Now().UnixNano())
}

func (l *Lists) contains(ls *list, value string, now int64) bool {
	ls.mu.RLock()
	kind, ik, name := ls.meta.Kind, ls.meta.IdentifierKind, ls.meta.Name
	if kind == CIDR {
		defer ls.mu.RUnlock()
		a, err := netip.ParseAddr(value)
		if err != nil {
			p, err := netip.ParsePrefix(value)
			if err != nil {
				return false
			}
			exp, ok := ls.prefixes[p.Masked()]
			return ok && live(exp, now)
		}
		a = a.Unmap()
		for _, bits := range ls.bits {
			if bits > a.BitLen() {
				continue
			}
			p, err := a.Prefix(bits)
			if err != nil {
				continue
			}
			if exp, ok := ls.prefixes[p]; ok && live(exp, now) {
				return true
			}
		}
		return false
	}
	s := value
	if kind == Identifier {
		if l.ps == nil {
			ls.mu.RUnlock()
			return false
		}
		s = l.ps.Pseudonym(ik, value)
	}
	maybe := ls.filter.TestString(s)
	ls.mu.RUnlock()
	if !maybe {
		return false
	}
	// Confirm exactly: a bloom false positive must never count.
	v, closer, err := l.db.Get(entryKey(name, s))
	if err != nil {
		return false
	}
	exp, _ := decodeEntry(v)
	closer.Close()
	return live(exp, now)
}

func live(exp, now int64) bool { return exp == 0 || now < exp }

// AnyIn reports whether any of values is a live member of list.
func (l *Lists) AnyIn(name string, values []string) bool {
	ls := l.lookup(name)
	if ls == nil {
		return false
	}
	now := l.clock.Now().UnixNano()
	for _, v := range values {
		if v != "" && l.contains(ls, v, now) {
			return true
		}
	}
	return false
}

// CountMembers counts the distinct values that are live members of list
// (features.ListMatcher). values may repeat and need no order: only the
// members found are compared with each other, and they are few.
func (l *Lists) CountMembers(name string, values []string) int {
	ls := l.lookup(name)
	if ls == nil || len(values) == 0 {
		return 0
	}
	now := l.clock.Now().UnixNano()
	var buf [8]string
	hits := buf[:0]
	for _, v := range values {
		if v == "" || !l.contains(ls, v, now) || slices.Contains(hits, v) {
			continue
		}
		hits = append(hits, v)
	}
	return len(hits)
}

// Export returns a plain list's bloom filter, freshly built from its live
// entries, in bits-and-blooms' binary format (BloomFilter.WriteTo), and the
// list version it reflects. A device reads it with BloomFilter.ReadFrom and
// tests package names with TestString.
func (l *Lists) Export(name string) (uint64, []byte, error) {
	ls, err := l.get(name)
	if err != nil {
		return 0, nil, err
	}
	ls.mu.RLock()
	m, cached := ls.meta, ls.export
	ls.mu.RUnlock()
	if m.Kind != Plain {
		return 0, nil, fmt.Errorf("%w: %s is a %s list", ErrNotExportable, name, m.Kind)
	}
	if cached != nil && cached.version == m.Version {
		return cached.version, cached.data, nil
	}
	entries, err := l.Entries(name)
	if err != nil {
		return 0, nil, err
	}
	now := l.clock.Now().UnixNano()
	f := bloom.NewWithEstimates(max(uint(len(entries)), 64), l.fp)
	expiring := false
	for _, e := range entries {
		expiring = expiring || !e.Expires.IsZero()
		if e.Expires.IsZero() || now < e.Expires.UnixNano() {
			f.AddString(e.Value)
		}
	}
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		return 0, nil, fmt.Errorf("lists: export %s: %w", name, err)
	}
	ex := &exported{version: m.Version, data: buf.Bytes()}
	ls.mu.Lock()
	// Entries that expire change the filter without a version bump; only
	// lists without expiries are cached.
	if ls.meta.Version == m.Version && !expiring {
		ls.export = ex
	}
	ls.mu.Unlock()
	return ex.version, ex.data, nil
}
