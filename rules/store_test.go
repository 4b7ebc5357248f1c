package rules

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
)

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func openDB(t testing.TB, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const candidateLogin = `# Candidate: stricter failures threshold.
rules:
  - id: ato.new_device_after_failures
    description: Successful login from an unseen device right after repeated failures
    applies_to: [LOGIN]
    when: login.success && features.login_failures_account_10m >= 3 && !features.account_device_seen_before
    action: challenge
    reason:
      en: "Signed in from a new device after {{features.login_failures_account_10m}} failed attempts"
      zh: "在新设备上登录，此前有 {{features.login_failures_account_10m}} 次失败尝试"
  - id: ato.brand_new
    description: new rule
    applies_to: [LOGIN]
    when: login.method == "sms"   # a comment that must survive
    score: 10
    reason: {en: "SMS login", zh: "短信登录"}
`

func TestStoreLifecycle(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	clk := clock.NewFake(t0)
	defs := features.DefaultCatalog().Defs()
	st, err := OpenStore(StoreOptions{DB: db, Features: defs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if v := st.Live().Version(); v != "v1" {
		t.Fatalf("bootstrap live = %s, want v1", v)
	}
	alice := Actor{Role: "analyst", Token: "alice"}

	// An invalid draft is refused with a placed error.
	bad := []File{{Name: "bad.yaml", Data: []byte(strings.Replace(candidateLogin, "login_failures_account_10m >= 3", "login_failure_account_10m >= 3", 1))}}
	_, err = st.PutDraft("d1", bad, alice)
	var ces CompileErrors
	if !errors.As(err, &ces) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `did you mean "login_failures_account_10m"`) {
		t.Fatalf("bad draft: %v", err)
	}

	// Draft = bundled files with login.yaml replaced.
	var files []File
	for _, f := range BundledFiles() {
		if f.Name == "login.yaml" {
			f.Data = []byte(candidateLogin)
		}
		files = append(files, f)
	}
	clk.Advance(time.Minute)
	if _, err := st.PutDraft("d1", files, alice); err != nil {
		t.Fatal(err)
	}
	d, err := st.Diff("d1")
	if err != nil {
		t.Fatal(err)
	}
	// Every bundled login rule but the one the candidate keeps is removed.
	var wantRemoved []string
	for _, f := range BundledFiles() {
		if f.Name != "login.yaml" {
			continue
		}
		s, err := Compile([]File{f}, CompileOptions{Features: defs})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range s.Rules() {
			if r.ID != "ato.new_device_after_failures" {
				wantRemoved = append(wantRemoved, r.ID)
			}
		}
	}
	gotRemoved := slices.Clone(d.Removed)
	slices.Sort(gotRemoved)
	slices.Sort(wantRemoved)
	if fmt.Sprint(d.Added) != "[ato.brand_new]" || len(d.Changed) != 1 || d.Changed[0].ID != "ato.new_device_after_failures" ||
		fmt.Sprint(d.Changed[0].Fields) != "[when reason tests]" || !slices.Equal(gotRemoved, wantRemoved) || d.ThresholdsChanged {
		t.Fatalf("diff = %+v, want removed %v", d, wantRemoved)
	}

	clk.Advance(time.Minute)
	v2, err := st.Publish("d1", alice, "stricter ATO")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version() != "v2" || st.Live() != v2 {
		t.Fatalf("published %s, live %s", v2.Version(), st.Live().Version())
	}
	ruleVersion := func(s *Set, id string) int32 { return s.rule(id).version }
	if ruleVersion(v2, "ato.new_device_after_failures") != 2 || ruleVersion(v2, "ato.brand_new") != 1 || ruleVersion(v2, "pay.card_testing") != 1 {
		t.Fatal("rule versions not bumped only for changed rules")
	}

	// Files round-trip byte for byte.
	got, _ := st.Version("v2")
	for i, f := range got.Files() {
		if !bytes.Equal(f.Data, files[i].Data) || f.Name != files[i].Name {
			t.Fatalf("file %s did not round-trip", f.Name)
		}
	}

	// Mode change: a new version, only the mode text changed.
	bob := Actor{Role: "admin", Token: "bob"}
	clk.Advance(time.Minute)
	v3, err := st.SetMode("ato.brand_new", ModeShadow, bob, "observe first")
	if err != nil {
		t.Fatal(err)
	}
	if v3.Version() != "v3" || v3.rule("ato.brand_new").mode != ModeShadow || ruleVersion(v3, "ato.brand_new") != 2 {
		t.Fatalf("set mode: %s %v", v3.Version(), v3.rule("ato.brand_new").mode)
	}
	var loginV3 []byte
	for _, f := range v3.Files() {
		if f.Name == "login.yaml" {
			loginV3 = f.Data
		}
	}
	want := strings.Replace(candidateLogin, "    score: 10\n", "    mode: shadow\n    score: 10\n", 1)
	want = strings.Replace(candidateLogin, "  - id: ato.brand_new\n", "  - id: ato.brand_new\n    mode: shadow\n", 1)
	if string(loginV3) != want {
		t.Fatalf("mode edit changed more than the mode:\n%s", loginV3)
	}
	clk.Advance(time.Minute)
	v4, err := st.SetMode("ato.brand_new", ModeDisabled, bob, "")
	if err != nil || !strings.Contains(string(v4.Files()[1].Data), "    mode: disabled\n") {
		t.Fatalf("second mode edit: %v", err)
	}

	// Rollback to v1.
	clk.Advance(time.Minute)
	if _, err := st.Rollback("v1", alice, "bad idea"); err != nil {
		t.Fatal(err)
	}
	if st.Live().Version() != "v1" {
		t.Fatal("rollback did not swap")
	}
	vs, err := st.Versions()
	if err != nil || len(vs) != 4 || !vs[0].Live || vs[1].Author != alice || vs[2].Author != bob {
		t.Fatalf("versions = %+v, %v", vs, err)
	}
	h, err := st.History(0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, c := range h {
		actions = append(actions, c.Action+":"+c.Author.Token)
	}
	if strings.Join(actions, " ") != "rollback:alice rule_mode:bob set_mode:bob rule_mode:bob set_mode:bob publish:alice put_draft:alice bootstrap:bootstrap" {
		t.Fatalf("history = %v", actions)
	}
	if !h[0].At.Equal(t0.Add(5 * time.Minute)) {
		t.Fatalf("history time %v", h[0].At)
	}
	if _, err := st.Version("v99"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Version(v99): %v", err)
	}
	if _, err := st.SetMode("nope", ModeShadow, bob, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetMode(nope): %v", err)
	}

	// Reopen: the live pointer and numbering survive.
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	st2, err := OpenStore(StoreOptions{DB: db, Features: defs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if st2.Live().Version() != "v1" {
		t.Fatalf("reopened live %s", st2.Live().Version())
	}
	v5, err := st2.PublishFiles(files, alice, "")
	if err != nil {
		t.Fatal(err)
	}
	// The rule comes back after v1 dropped it: its number continues.
	if v5.Version() != "v5" || ruleVersion(v5, "ato.brand_new") != 4 {
		t.Fatalf("publish after reopen: %s, rule version %d", v5.Version(), ruleVersion(v5, "ato.brand_new"))
	}
	if old, err := st2.Version("v3"); err != nil || old.rule("ato.brand_new").mode != ModeShadow {
		t.Fatalf("old version not replayable: %v", err)
	}
}

// vec builds a vector for defs with the given present values.
func vec(defs []features.Def, vals map[string]features.Value) features.Vector {
	v := make(features.Vector, len(defs))
	for i, d := range defs {
		v[i] = features.Absent(d.Kind)
		if x, ok := vals[d.Name]; ok {
			v[i] = x
		}
	}
	return v
}

// TestPublishWhileEvaluating swaps sets while goroutines evaluate and checks
// that every result names the set that produced it (and only that set's
// rules contributed). Run with -race.
func TestPublishWhileEvaluating(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	st, err := OpenStore(StoreOptions{DB: db, NoBootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	scoreOf := func(n uint64) int { return int(n%90) + 1 }
	files := func(n uint64) []File {
		return []File{{Name: "m.yaml", Data: fmt.Appendf(nil, `rules:
  - id: marker
    when: account_id != ""
    score: %d
    reason: {en: "marker {{account_id}}", zh: "标记"}
`, scoreOf(n))}}
	}
	if _, err := st.PublishFiles(files(1), Actor{Role: "admin", Token: "t"}, ""); err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{Type: event.Login, TypeName: "LOGIN", AccountID: "a1"}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var evals atomic.Int64
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				res, err := st.Live().Evaluate(ev, nil, nil)
				if err != nil {
					errc <- err
					return
				}
				n, _ := strconv.ParseUint(strings.TrimPrefix(res.Version, "v"), 10, 64)
				if int(res.Score) != scoreOf(n) || len(res.Reasons) != 1 || res.Reasons[0].MessageEN != "marker a1" {
					errc <- fmt.Errorf("result %+v does not match set %s", res, res.Version)
					return
				}
				evals.Add(1)
			}
		}()
	}
	for n := uint64(2); n <= 40; n++ {
		if _, err := st.PublishFiles(files(n), Actor{Role: "admin", Token: "t"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if evals.Load() == 0 {
		t.Fatal("no evaluations ran")
	}
}
