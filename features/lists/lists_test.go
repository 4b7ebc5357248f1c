package lists

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/rules"
)

type hmacPseudonymizer struct{ key []byte }

func (p hmacPseudonymizer) Pseudonym(kind, value string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(kind + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

var t0 = time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newLists(t testing.TB, opts Options) (*Lists, *pebble.DB, string) {
	t.Helper()
	dir := t.TempDir()
	db := openDB(t, dir)
	t.Cleanup(func() { db.Close() })
	opts.DB = db
	if opts.Pseudonymizer == nil {
		opts.Pseudonymizer = hmacPseudonymizer{key: []byte("k")}
	}
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return l, db, dir
}

func TestNoFalsePositiveEverCounts(t *testing.T) {
	// A deliberately poor filter, so the bloom says "maybe" often.
	l, _, _ := newLists(t, Options{FalsePositiveRate: 0.3})
	if _, err := l.Create("blocked_devices_plain", Plain, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var members []string
	for i := range 2000 {
		members = append(members, fmt.Sprintf("member-%d", i))
	}
	if _, err := l.Load("blocked_devices_plain", strings.NewReader(strings.Join(members, "\n")), time.Time{}); err != nil {
		t.Fatal(err)
	}
	ls, _ := l.get("blocked_devices_plain")
	bloomSaidMaybe := 0
	for i := range 20000 {
		v := fmt.Sprintf("stranger-%d", i)
		if ls.filter.TestString(v) {
			bloomSaidMaybe++
		}
		if l.Contains("blocked_devices_plain", v) {
			t.Fatalf("Contains(%q) = true for a non-member", v)
		}
	}
	if bloomSaidMaybe == 0 {
		t.Fatal("the filter produced no false positive; the test proves nothing")
	}
	for _, m := range members {
		if !l.Contains("blocked_devices_plain", m) {
			t.Fatalf("member %q missing", m)
		}
	}
	if n := l.CountMembers("blocked_devices_plain", []string{"member-1", "stranger-1", "member-2", "member-1"}); n != 2 {
		t.Fatalf("CountMembers = %d, want 2", n)
	}
	if !l.AnyIn("blocked_devices_plain", []string{"x", "member-7"}) || l.AnyIn("blocked_devices_plain", []string{"x", "y"}) {
		t.Fatal("AnyIn wrong")
	}
}

func TestKindsExpiryRemoveReopen(t *testing.T) {
	clk := clock.NewFake(t0)
	ps := hmacPseudonymizer{key: []byte("secret")}
	dir := t.TempDir()
	db := openDB(t, dir)
	l, err := Open(Options{DB: db, Pseudonymizer: ps, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate := func(name string, k Kind, o CreateOptions) {
		t.Helper()
		if _, err := l.Create(name, k, o); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate("allowed_accounts", Identifier, CreateOptions{IdentifierKind: "account_id"})
	mustCreate("blocked_ip_cidrs", CIDR, CreateOptions{})
	mustCreate("cheat_apps", Plain, CreateOptions{})
	if _, err := l.Create("cheat_apps", Plain, CreateOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := l.Create("Bad Name", Plain, CreateOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := l.Create("ids", Identifier, CreateOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("identifier list without kind: %v", err)
	}

	// Identifier lists never store the raw value; an appeal remedy expires.
	if err := l.Add("allowed_accounts", "alice@example.com", t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	entries, _ := l.Entries("allowed_accounts")
	if len(entries) != 1 || strings.Contains(entries[0].Value, "alice") || entries[0].Value != ps.Pseudonym("account_id", "alice@example.com") {
		t.Fatalf("stored entry %+v is not the pseudonym", entries)
	}
	it, _ := db.NewIter(nil)
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Key(), []byte("alice")) || bytes.Contains(it.Value(), []byte("alice")) {
			t.Fatal("raw identifier reached the store")
		}
	}
	it.Close()
	if !l.Contains("allowed_accounts", "alice@example.com") || l.Contains("allowed_accounts", "bob@example.com") {
		t.Fatal("identifier lookup wrong")
	}

	// CIDR containment, IPv4 and IPv6, single addresses.
	for _, v := range []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"} {
		if err := l.Add("blocked_ip_cidrs", v, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Add("blocked_ip_cidrs", "not-an-ip", time.Time{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad CIDR: %v", err)
	}
	for ip, want := range map[string]bool{"203.0.113.99": true, "203.0.114.1": false, "2001:db8:1::5": true,
		"2001:db9::1": false, "198.51.100.7": true, "198.51.100.8": false, "::ffff:203.0.113.5": true, "junk": false} {
		if got := l.Contains("blocked_ip_cidrs", ip); got != want {
			t.Errorf("cidr Contains(%s) = %v, want %v", ip, got, want)
		}
	}

	// Remove.
	if err := l.Add("cheat_apps", "com.lexa.fakegps", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Remove("cheat_apps", "com.lexa.fakegps"); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if l.Contains("cheat_apps", "com.lexa.fakegps") {
		t.Fatal("removed value still a member")
	}
	if ok, _ := l.Remove("cheat_apps", "com.lexa.fakegps"); ok {
		t.Fatal("second Remove reported a removal")
	}
	if ok, _ := l.Remove("blocked_ip_cidrs", "198.51.100.7"); !ok || l.Contains("blocked_ip_cidrs", "198.51.100.7") {
		t.Fatal("cidr remove failed")
	}

	// Expiry follows the clock.
	clk.Advance(25 * time.Hour)
	if l.Contains("allowed_accounts", "alice@example.com") {
		t.Fatal("expired entry still a member")
	}

	// Reopen: everything persisted, filters rebuilt.
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	l2, err := Open(Options{DB: db, Pseudonymizer: ps, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if !l2.Contains("blocked_ip_cidrs", "203.0.113.1") || l2.Contains("allowed_accounts", "alice@example.com") {
		t.Fatal("state lost on reopen")
	}
	m, _ := l2.Meta("blocked_ip_cidrs")
	if m.Count != 2 || m.Kind != CIDR {
		t.Fatalf("meta after reopen: %+v", m)
	}
	if err := l2.Delete("blocked_ip_cidrs"); err != nil {
		t.Fatal(err)
	}
	if l2.Contains("blocked_ip_cidrs", "203.0.113.1") {
		t.Fatal("deleted list still matches")
	}
	if _, err := l2.Meta("blocked_ip_cidrs"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Meta of deleted list: %v", err)
	}
}

// TestDeviceMatchesLocally plays the mobile app: it downloads the exported
// filter, matches its installed apps on the device, sends only the matches
// as device.flagged_packages, and riskd confirms them exactly.
func TestDeviceMatchesLocally(t *testing.T) {
	l, _, _ := newLists(t, Options{FalsePositiveRate: 0.2}) // a coarse filter, so the device errs
	if err := l.EnsureDefaults(); err != nil {
		t.Fatal(err)
	}
	version, data, err := l.Export(CheatApps)
	if err != nil {
		t.Fatal(err)
	}

	// The device side: only the downloaded bytes and the bloom library.
	var f bloom.BloomFilter
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	installed := []string{"com.tencent.mm", "com.eg.android.AlipayGphone", "com.lexa.fakegps", "com.parallel.space.lite"}
	// Find benign packages the coarse filter wrongly flags on the device.
	falseOnDevice := 0
	for i := 0; falseOnDevice < 3 && i < 10000; i++ {
		p := fmt.Sprintf("com.example.app%d", i)
		if f.TestString(p) {
			installed = append(installed, p)
			falseOnDevice++
		}
	}
	if falseOnDevice == 0 {
		t.Fatal("no device-side false positive found; the test proves nothing")
	}
	var flagged []string
	for _, p := range installed {
		if f.TestString(p) {
			flagged = append(flagged, p)
		}
	}
	// riskd side.
	if got := l.CountMembers(CheatApps, flagged); got != 2 {
		t.Fatalf("CountMembers(flagged %d packages) = %d, want exactly 2", len(flagged), got)
	}

	// A change bumps the version the device sees.
	if err := l.Add(CheatApps, "com.example.newcheat", time.Time{}); err != nil {
		t.Fatal(err)
	}
	v2, data2, err := l.Export(CheatApps)
	if err != nil || v2 <= version {
		t.Fatalf("version after change = %d (was %d), %v", v2, version, err)
	}
	var f2 bloom.BloomFilter
	if _, err := f2.ReadFrom(bytes.NewReader(data2)); err != nil || !f2.TestString("com.example.newcheat") {
		t.Fatalf("new export misses the added package: %v", err)
	}
	if _, _, err := l.Export("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("export of unknown list: %v", err)
	}
}

func TestEnsureDefaults(t *testing.T) {
	l, _, _ := newLists(t, Options{})
	if err := l.EnsureDefaults(); err != nil {
		t.Fatal(err)
	}
	m, err := l.Meta(CheatApps)
	if err != nil || m.Count != len(DefaultCheatApps) || m.Count < 40 {
		t.Fatalf("seeded meta %+v, %v", m, err)
	}
	for _, p := range DefaultCheatApps {
		if !l.Contains(CheatApps, p) {
			t.Fatalf("seed %s missing", p)
		}
	}
	// An analyst's list is left alone.
	if ok, _ := l.Remove(CheatApps, "com.lexa.fakegps"); !ok {
		t.Fatal("remove failed")
	}
	if err := l.EnsureDefaults(); err != nil {
		t.Fatal(err)
	}
	if l.Contains(CheatApps, "com.lexa.fakegps") {
		t.Fatal("EnsureDefaults refilled an analyst's non-empty list")
	}
}

// TestBulkLoad checks what a bulk load stores; BenchmarkLoad100k measures
// the speed (100,000 values in seconds).
func TestBulkLoad(t *testing.T) {
	const n = 20000
	l, _, _ := newLists(t, Options{})
	if _, err := l.Create("blocked_devices", Identifier, CreateOptions{IdentifierKind: "device_id"}); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "device-%d\n", i)
	}
	got, err := l.Load("blocked_devices", strings.NewReader(b.String()), time.Time{})
	if err != nil || got != n {
		t.Fatalf("Load = %d, %v", got, err)
	}
	if m, _ := l.Meta("blocked_devices"); m.Count != n {
		t.Fatalf("count %d", m.Count)
	}
	if !l.Contains("blocked_devices", fmt.Sprintf("device-%d", n-1)) || l.Contains("blocked_devices", fmt.Sprintf("device-%d", n)) {
		t.Fatal("lookup after bulk load wrong")
	}
}

func BenchmarkLoad100k(b *testing.B) {
	var sb strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&sb, "com.example.package%d\n", i)
	}
	data := sb.String()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l, _, _ := newLists(b, Options{})
		l.Create("x", Plain, CreateOptions{})
		b.StartTimer()
		if _, err := l.Load("x", strings.NewReader(data), time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkContainsMiss(b *testing.B) {
	l, _, _ := newLists(b, Options{})
	l.EnsureDefaults()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Contains(CheatApps, "com.tencent.mm")
	}
}

func BenchmarkContainsHit(b *testing.B) {
	l, _, _ := newLists(b, Options{})
	l.EnsureDefaults()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Contains(CheatApps, "com.lexa.fakegps")
	}
}

// Lists is what rules and features consume.
var (
	_ rules.Lists          = (*Lists)(nil)
	_ features.ListMatcher = (*Lists)(nil)
)

func TestLookupOfMissingListAllocatesNothing(t *testing.T) {
	l, _, _ := newLists(t, Options{})
	allocs := testing.AllocsPerRun(100, func() {
		if l.Contains("no_such_list", "x") || l.AnyIn("no_such_list", []string{"x"}) || l.CountMembers("no_such_list", []string{"x"}) != 0 {
			t.Fatal("a missing list matched")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations looking up a missing list", allocs)
	}
}
