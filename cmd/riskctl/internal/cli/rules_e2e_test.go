package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/riskd/riskd/internal/testserver"
)

// analystCLI runs riskctl against a real riskd.
type analystCLI struct {
	t   *testing.T
	srv *testserver.Server
}

func startAnalystCLI(t *testing.T) *analystCLI {
	t.Helper()
	return &analystCLI{t: t, srv: testserver.Start(t, testserver.Options{})}
}

func (a *analystCLI) run(code int, args ...string) (string, string) {
	a.t.Helper()
	var out, errb bytes.Buffer
	env := Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if a.srv == nil {
				return "" // offline verbs
			}
			switch k {
			case "RISKCTL_SERVER":
				return a.srv.URL
			case "RISKCTL_DATA_DIR":
				return a.srv.DataDir
			}
			return ""
		},
	}
	if got := Run(context.Background(), args, env); got != code {
		a.t.Fatalf("riskctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// TestRulesPullPushRoundTrip: pull, edit a comment, push and publish, pull
// again: the files come back byte for byte.
func TestRulesPullPushRoundTrip(t *testing.T) {
	a := startAnalystCLI(t)
	first := filepath.Join(t.TempDir(), "rules")
	a.run(ExitOK, "rules", "pull", first)
	files := readDir(t, first)
	if len(files) == 0 {
		t.Fatal("pulled nothing")
	}
	// An analyst's edit that a YAML re-encoder would lose: a comment and
	// odd spacing.
	var name string
	for n := range files {
		name = n
		break
	}
	edited := append([]byte("# owned by the risk team\n\n"), files[name]...)
	if err := os.WriteFile(filepath.Join(first, name), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := a.run(ExitOK, "rules", "push", first, "--publish", "--note", "round trip")
	if !strings.Contains(out, "published") {
		t.Errorf("push said %q", out)
	}
	second := filepath.Join(t.TempDir(), "again")
	a.run(ExitOK, "rules", "pull", second)
	got := readDir(t, second)
	want := readDir(t, first)
	if len(got) != len(want) {
		t.Fatalf("pulled %d files, pushed %d", len(got), len(want))
	}
	for n, b := range want {
		if !bytes.Equal(got[n], b) {
			t.Errorf("%s differs after the round trip", n)
		}
	}
	hist, _ := a.run(ExitOK, "rules", "history")
	if !strings.Contains(hist, "analyst (analyst)") || !strings.Contains(hist, "round trip") {
		t.Errorf("history does not name who and why:\n%s", hist)
	}
}

func TestRulesValidateAndTestVerbs(t *testing.T) {
	a := startAnalystCLI(t)
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte(`rules:
  - id: test.typo
    applies_to: [LOGIN]
    when: login.success && features.login_failure_account_10m >= 5
    action: challenge
    reason: {en: "x", zh: "x"}
`), 0o644)
	out, _ := a.run(ExitTestsFailed, "rules", "validate", typo)
	if !strings.Contains(out, "typo.yaml:4:28: rule test.typo") || !strings.Contains(out, `did you mean "login_failures_account_10m"`) {
		t.Errorf("validate output:\n%s", out)
	}
	_, errOut := a.run(ExitServerError, "rules", "draft", "put", "typo", typo)
	if !strings.Contains(errOut, "typo.yaml:4:28") {
		t.Errorf("draft put of a typo:\n%s", errOut)
	}

	// Offline tests: a failing inline test exits non-zero, like go test.
	failing := filepath.Join(t.TempDir(), "failing.yaml")
	os.WriteFile(failing, []byte(`rules:
  - id: test.wrong_expectation
    applies_to: [LOGIN]
    when: login.success
    action: deny
    reason: {en: "x", zh: "x"}
    tests:
      - name: expects the wrong outcome
        event: {type: LOGIN, login: {success: true}}
        expect: {fired: true, outcome: ALLOW}
`), 0o644)
	out, _ = a.run(ExitTestsFailed, "rules", "test", failing)
	if !strings.Contains(out, "--- FAIL: test.wrong_expectation") {
		t.Errorf("rules test output:\n%s", out)
	}
	out, _ = a.run(ExitOK, "rules", "test", "../../../../rules/bundled")
	if !strings.HasPrefix(out, "ok") {
		t.Errorf("bundled tests:\n%s", out)
	}
	a.run(ExitOK, "rules", "test") // the live set, on riskd
	out, _ = a.run(ExitOK, "rules", "stats")
	if !strings.Contains(out, "RULE") {
		t.Errorf("stats:\n%s", out)
	}
}

func TestFeaturesCheckVerb(t *testing.T) {
	a := &analystCLI{t: t}
	bad := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(bad, []byte(`features:
  - name: ok_count
    key: [account_id]
    agg: count
    window: 10m
  - name: broken_window
    key: [account_id]
    agg: count
    window: 7y
`), 0o644)
	_, errOut := a.run(ExitTestsFailed, "features", "check", bad)
	if !strings.Contains(errOut, "broken_window") || !strings.Contains(errOut, "catalog.yaml:9:") {
		t.Errorf("features check did not name the feature and its line:\n%s", errOut)
	}
}

// TestListsLoadAndExport loads 100,000 values from a file and exports the
// filter a device matches against.
func TestListsLoadAndExport(t *testing.T) {
	a := startAnalystCLI(t)
	a.run(ExitOK, "lists", "create", "big_apps", "--kind", "plain", "--description", "load test")
	var b strings.Builder
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&b, "com.example.app%d\n", i)
	}
	path := filepath.Join(t.TempDir(), "apps.txt")
	os.WriteFile(path, []byte(b.String()), 0o644)
	start := time.Now()
	out, _ := a.run(ExitOK, "lists", "load", "big_apps", path)
	took := time.Since(start)
	if !strings.Contains(out, "loaded 100000") {
		t.Errorf("load: %s", out)
	}
	t.Logf("lists load: 100000 values in %v", took)
	bf := filepath.Join(t.TempDir(), "big_apps.bloom")
	a.run(ExitOK, "lists", "export", "big_apps", "--out", bf)
	data, err := os.ReadFile(bf)
	if err != nil {
		t.Fatal(err)
	}
	var f bloom.BloomFilter
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if !f.TestString("com.example.app4242") {
		t.Error("exported filter misses a member")
	}
	a.run(ExitOK, "lists", "add", "big_apps", "com.extra", "--expires", "1h")
	a.run(ExitOK, "lists", "rm", "big_apps", "com.example.app1")
	out, _ = a.run(ExitOK, "lists", "ls")
	if !strings.Contains(out, "big_apps") || !strings.Contains(out, "cheat_apps") {
		t.Errorf("ls:\n%s", out)
	}
	out, _ = a.run(ExitOK, "lists", "show", "big_apps", "--limit", "3")
	if !strings.Contains(out, "100000 entries") {
		t.Errorf("show:\n%s", out)
	}
	a.run(ExitServerError, "lists", "show", "nope")
	a.run(ExitOK, "features", "show", "--account", "acct-1")
}
