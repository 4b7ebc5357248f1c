package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/cputime"
)

// recorded is a synthetic recorded stream: events, their feature vectors as
// of each event, and labels.
type recorded struct {
	events []*event.Event
	fv     map[string]features.Vector
	labels map[string]Label
}

func recordStream(n int, seed uint64) recorded {
	defs := features.DefaultCatalog().Defs()
	rng := rand.New(rand.NewPCG(seed, 1))
	rec := recorded{fv: map[string]features.Vector{}, labels: map[string]Label{}}
	at := t0
	types := []event.Type{event.Login, event.Payment, event.Attendance}
	for i := range n {
		at = at.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
		t := types[rng.IntN(len(types))]
		ev := &event.Event{EventID: fmt.Sprintf("e%06d", i), Type: t, TypeName: t.String(), OccurredAt: at,
			AccountID: fmt.Sprintf("a%d", rng.IntN(50)), Device: event.Device{DeviceID: fmt.Sprintf("d%d", rng.IntN(40)),
				Rooted: rng.IntN(20) == 0, MockLocationEnabled: rng.IntN(30) == 0},
			Login:   event.LoginDetail{Success: rng.IntN(3) > 0},
			Payment: event.PaymentDetail{AmountMinor: int64(rng.IntN(3000000))}}
		vals := map[string]features.Value{}
		for _, d := range defs {
			if len(d.AppliesTo) > 0 && !containsType(d.AppliesTo, t) {
				continue
			}
			if rng.IntN(6) == 0 {
				continue // absent
			}
			switch d.Kind {
			case features.KindInt:
				vals[d.Name] = features.IntValue(int64(rng.IntN(40)))
			case features.KindFloat:
				vals[d.Name] = features.FloatValue(rng.Float64() * 3000)
			case features.KindBool:
				vals[d.Name] = features.BoolValue(rng.IntN(2) == 0)
			}
		}
		fv := vec(defs, vals)
		for i, d := range defs {
			fv[i].Applicable = len(d.AppliesTo) == 0 || containsType(d.AppliesTo, t)
		}
		rec.fv[ev.EventID] = fv
		rec.labels[ev.EventID] = Label{Fraud: rng.IntN(10) == 0, Overturned: rng.IntN(25) == 0}
		rec.events = append(rec.events, ev)
	}
	return rec
}

func candidateFiles() []File {
	var out []File
	for _, f := range BundledFiles() {
		d := string(f.Data)
		d = strings.Replace(d, "features.login_failures_account_10m >= 5", "features.login_failures_account_10m >= 3", 1)
		d = strings.Replace(d, "features.attendance_device_distinct_accounts_7d >= 2", "features.attendance_device_distinct_accounts_7d >= 10", 1)
		d = strings.Replace(d, "score: 30\n    mode: shadow", "score: 30\n    mode: active", 1)
		out = append(out, File{Name: f.Name, Data: []byte(d)})
	}
	// A rule of the candidate's own, so that outcomes change whatever the
	// bundled set holds today.
	return append(out, File{Name: "candidate.yaml", Data: []byte(`rules:
  - id: candidate.deny_failed_logins
    description: deny every failed login (a deliberately drastic candidate)
    applies_to: [LOGIN]
    when: "!login.success"
    action: deny
    reason: {en: "Failed sign-in", zh: "登录失败"}
  # The condition of a live attendance rule, on other events: the live
  # rule's result for it is not this event's (the memo must not reuse it).
  - id: candidate.tampered_device_login
    description: a rooted, emulated or hooked device signing in
    applies_to: [LOGIN, PAYMENT]
    when: device.rooted || device.emulator || len(device.hook_frameworks) > 0
    score: 10
    reason: {en: "Tampered device", zh: "设备被篡改"}
`)})
}

func TestBacktestMatchesBruteForce(t *testing.T) {
	defs := features.DefaultCatalog().Defs()
	live, err := Compile(BundledFiles(), CompileOptions{Features: defs, Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	cand, err := Compile(candidateFiles(), CompileOptions{Features: defs})
	if err != nil {
		t.Fatal(err)
	}
	rec := recordStream(3000, 7)
	lists := mapLists{"blocked_devices": {"d3"}}
	statsBefore := live.Stats()
	rep, err := Backtest(BacktestOptions{Live: live, Candidate: cand, Lists: lists, Samples: 5,
		Events: func(yield func(*event.Event) error) error {
			for _, ev := range rec.events {
				if err := yield(ev); err != nil {
					return err
				}
			}
			return nil
		},
		Features: func(ev *event.Event) (features.Vector, error) { return rec.fv[ev.EventID], nil },
		Label:    func(ev *event.Event) Label { return rec.labels[ev.EventID] },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(live.Stats(), statsBefore) {
		t.Fatal("backtest changed the live set's statistics")
	}

	// Brute force: evaluate each event in each set separately, from fresh
	// compilations, and tally by hand.
	live2, _ := Compile(BundledFiles(), CompileOptions{Features: defs})
	cand2, _ := Compile(candidateFiles(), CompileOptions{Features: defs})
	before, after := map[Outcome]int{}, map[Outcome]int{}
	type tally struct{ lh, ch, changed, lf, lo, cf, co int }
	want := map[string]*tally{}
	for _, r := range live2.Rules() {
		want[r.ID] = &tally{}
	}
	for _, r := range cand2.Rules() {
		want[r.ID] = &tally{}
	}
	changed := 0
	var samples []string
	for _, ev := range rec.events {
		fv := rec.fv[ev.EventID]
		b, err := live2.Evaluate(ev, fv, lists)
		if err != nil {
			t.Fatal(err)
		}
		a, err := cand2.Evaluate(ev, fv, lists)
		if err != nil {
			t.Fatal(err)
		}
		before[b.Outcome]++
		after[a.Outcome]++
		lab := rec.labels[ev.EventID]
		firedB := map[string]bool{}
		for _, r := range append(b.Reasons, b.Shadow...) {
			firedB[r.RuleID] = true
		}
		firedA := map[string]bool{}
		for _, r := range append(a.Reasons, a.Shadow...) {
			firedA[r.RuleID] = true
		}
		for id, tl := range want {
			if firedB[id] {
				tl.lh++
				if lab.Fraud {
					tl.lf++
				}
				if lab.Overturned {
					tl.lo++
				}
			}
			if firedA[id] {
				tl.ch++
				if lab.Fraud {
					tl.cf++
				}
				if lab.Overturned {
					tl.co++
				}
			}
			if (firedA[id] || firedB[id]) && a.Outcome != b.Outcome {
				tl.changed++
			}
		}
		if a.Outcome != b.Outcome {
			changed++
			if len(samples) < 5 {
				samples = append(samples, ev.EventID)
			}
		}
	}
	if rep.Events != len(rec.events) || rep.Changed != changed || !reflect.DeepEqual(rep.Before, before) || !reflect.DeepEqual(rep.After, after) {
		t.Fatalf("totals: events %d changed %d before %v after %v; brute force changed %d before %v after %v",
			rep.Events, rep.Changed, rep.Before, rep.After, changed, before, after)
	}
	if changed == 0 {
		t.Fatal("the candidate changed nothing; the test proves little")
	}
	if len(rep.Rules) != len(want) {
		t.Fatalf("%d rule rows, want %d", len(rep.Rules), len(want))
	}
	for _, r := range rep.Rules {
		w := want[r.RuleID]
		got := tally{r.LiveHits, r.CandidateHits, r.OutcomesChanged, r.LiveFraud, r.LiveOverturned, r.CandidateFraud, r.CandidateOverturned}
		if got != *w {
			t.Errorf("rule %s: got %+v, brute force %+v", r.RuleID, got, *w)
		}
	}
	var gotSamples []string
	for _, s := range rep.Samples {
		gotSamples = append(gotSamples, s.EventID)
		if s.Before == s.After {
			t.Errorf("sample %s did not change", s.EventID)
		}
	}
	if !reflect.DeepEqual(gotSamples, samples) {
		t.Fatalf("samples %v, want %v", gotSamples, samples)
	}

	// Out-of-order input is refused.
	_, err = Backtest(BacktestOptions{Live: live, Events: func(yield func(*event.Event) error) error {
		if err := yield(rec.events[1]); err != nil {
			return err
		}
		return yield(rec.events[0])
	}, Features: func(ev *event.Event) (features.Vector, error) { return rec.fv[ev.EventID], nil }})
	if err == nil || !strings.Contains(err.Error(), "time order") {
		t.Fatalf("out of order: %v", err)
	}
}

func BenchmarkBacktest(b *testing.B) {
	defs := features.DefaultCatalog().Defs()
	live, _ := Compile(BundledFiles(), CompileOptions{Features: defs})
	cand, _ := Compile(candidateFiles(), CompileOptions{Features: defs})
	rec := recordStream(10000, 3)
	cpu0 := cputime.Process()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := Backtest(BacktestOptions{Live: live, Candidate: cand,
			Events: func(yield func(*event.Event) error) error {
				for _, ev := range rec.events {
					if err := yield(ev); err != nil {
						return err
					}
				}
				return nil
			},
			Features: func(ev *event.Event) (features.Vector, error) { return rec.fv[ev.EventID], nil }})
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := cputime.Process() - cpu0
	b.ReportMetric(float64(b.N*len(rec.events))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N*len(rec.events))/cpu.Seconds(), "events/cpu-s")
}
