package rules

import (
	"strings"
	"testing"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

// FuzzCompileFile feeds arbitrary rule files to the parser and compiler:
// they must return a set or CompileErrors, never panic, and a set that
// compiles must evaluate without panicking.
func FuzzCompileFile(f *testing.F) {
	for _, bf := range BundledFiles() {
		f.Add(string(bf.Data))
	}
	f.Add("rules: []")
	f.Add("rules:\n  - id: a\n    when: true\n    score: 1\n    reason: {en: a, zh: b}\n")
	defs := features.DefaultCatalog().Defs()
	ev, fv, _ := benchEvent()
	f.Fuzz(func(t *testing.T, data string) {
		s, err := Compile([]File{{Name: "f.yaml", Data: []byte(data)}}, CompileOptions{Features: defs})
		if err != nil {
			if _, ok := err.(CompileErrors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		_, _ = s.Evaluate(ev, fv, noLists{})
		_ = RunTests(s)
	})
}

// FuzzCompileWhen feeds arbitrary conditions to the type checker and runs
// what compiles on an event with present and absent features.
func FuzzCompileWhen(f *testing.F) {
	for _, w := range []string{
		"login.success && features.login_failures_account_10m >= 5 && !features.account_device_seen_before",
		`in_list("cheat_apps", device.device_id) || any_in_list("x", device.installed_packages)`,
		`cidr_contains("10.0.0.0/8", network.ip) && distance_km(1, 2, 3.5, 4) > 10`,
		"has(features.km_from_last_location_account) && features.speed_kmh_from_last_location_account > 900",
		`attributes["k"] == "v" && len(device.hook_frameworks) > 0`,
		"let x = payment.amount_minor; x > 100 && x < 1e6",
		"any(device.installed_packages, # startsWith \"com.\")",
		"map(device.installed_packages, # + \"x\")[0] != \"\"",
		"1..10 == []",
		"occurred_at.Year() > 2000",
	} {
		f.Add(w)
	}
	defs := features.DefaultCatalog().Defs()
	c := newCompiler(CompileOptions{Features: defs, MaxNodes: DefaultMaxNodes})
	ev, fv, _ := benchEvent()
	empty := vec(defs, nil)
	f.Fuzz(func(t *testing.T, when string) {
		if strings.ContainsAny(when, "\x00") {
			return
		}
		prog, errs := c.compileWhen(when, []event.Type{event.Login})
		if prog == nil {
			if len(errs) == 0 {
				t.Fatal("no program and no error")
			}
			return
		}
		s := &Set{version: "fuzz", kinds: c.kinds, thresholds: DefaultThresholds,
			rules: []*rule{{id: "f", mode: ModeActive, score: 1, prog: prog}}}
		s.index()
		_, _ = s.Evaluate(ev, fv, noLists{})
		_, _ = s.Evaluate(ev, empty, nil)
	})
}
