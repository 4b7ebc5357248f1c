package bench

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/clock"
)

// small is a run that takes well under a second and still has every
// scenario.
func small(seed uint64) Options {
	return Options{Seed: seed, Population: population.Options{Accounts: 1000}, Duration: time.Hour}
}

func render(t *testing.T, o Options) (events, labels []byte) {
	t.Helper()
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var e, l bytes.Buffer
	if _, err := WriteNDJSON(w, &e, &l); err != nil {
		t.Fatal(err)
	}
	return e.Bytes(), l.Bytes()
}

func TestDeterministic(t *testing.T) {
	o := small(1)
	o.Duration = 30 * time.Minute
	e1, l1 := render(t, o)
	e2, l2 := render(t, o)
	if !bytes.Equal(e1, e2) || !bytes.Equal(l1, l2) {
		t.Fatal("same seed gave different output")
	}
	o.Seed = 2
	e3, _ := render(t, o)
	if bytes.Equal(e1, e3) {
		t.Fatal("different seeds gave the same events")
	}
	// The start time only shifts timestamps: same labels.
	o.Seed = 1
	o.Start = o.Start.Add(37 * time.Hour)
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var l4 bytes.Buffer
	if _, err := WriteNDJSON(w, nil, &l4); err != nil || !bytes.Equal(l1, l4.Bytes()) {
		t.Fatal("moving the start changed the stream beyond its timestamps")
	}
}

// TestStream checks, on one run: time order, one label per event with the
// event's id, unique ids, the timestamp bounds, that ingest accepts every
// event, and that every scenario is present with sensible labels.
func TestStream(t *testing.T) {
	for _, seed := range []uint64{3} {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			w, err := New(small(seed))
			if err != nil {
				t.Fatal(err)
			}
			norm, err := ingest.New(ingest.Options{PseudonymKey: make([]byte, 32), Clock: clock.NewFake(w.End())})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			events := map[Scenario]int{}
			caught := map[Scenario]int{}
			var last time.Time
			for {
				ev, l, ok := w.Next()
				if !ok {
					break
				}
				at := ev.GetOccurredAt().AsTime()
				if at.Before(last) {
					t.Fatalf("event %s at %v before previous %v", ev.EventId, at, last)
				}
				last = at
				if at.Before(w.Start()) || !at.Before(w.End()) {
					t.Fatalf("event %s at %v outside [%v, %v)", ev.EventId, at, w.Start(), w.End())
				}
				if l.EventID != ev.EventId || seen[ev.EventId] {
					t.Fatalf("label %q for event %q (seen before: %v)", l.EventID, ev.EventId, seen[ev.EventId])
				}
				seen[ev.EventId] = true
				info, ok := Lookup(l.Scenario)
				if !ok {
					t.Fatalf("event %s: unknown scenario %q", ev.EventId, l.Scenario)
				}
				if l.Attack != info.Attack || (l.Expect != "" && l.Expect != info.Expect) || (!l.Attack && l.Expect != "") {
					t.Fatalf("event %s: label %+v inconsistent with scenario %+v", ev.EventId, l, info)
				}
				if _, _, err := norm.Normalize(ev); err != nil {
					t.Fatalf("event %s (%s) invalid: %v", ev.EventId, l.Scenario, err)
				}
				events[l.Scenario]++
				if l.Expect != "" {
					caught[l.Scenario]++
				}
			}
			if uint64(len(seen)) != w.Emitted() || len(seen) < 3000 {
				t.Fatalf("%d events, %d emitted", len(seen), w.Emitted())
			}
			for _, s := range Scenarios() {
				if events[s.Name] == 0 {
					t.Errorf("scenario %s absent", s.Name)
				}
				if s.Attack && caught[s.Name] == 0 {
					t.Errorf("attack %s has no event a detector is expected to catch", s.Name)
				}
			}
			t.Logf("%d events: %v", len(seen), events)
		})
	}
}

func TestAttackRate(t *testing.T) {
	count := func(o Options) (benign, attack int) {
		w, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, l, ok := w.Next()
			if !ok {
				return
			}
			if info, _ := Lookup(l.Scenario); l.Attack && info.perSession < 50 {
				// Large sessions (stuffing, farms) make the event count too
				// lumpy for a ratio; the small ones count sessions well.
				attack++
			} else if !l.Attack {
				benign++
			}
		}
	}
	o := small(5)
	o.Duration = 3 * time.Hour
	o.Mix = map[Scenario]float64{StuffingSingleIP: 0, StuffingIPPool: 0, StuffingSlow: 0, RedPacketFarming: 0, MoneyMule: 0}
	b1, a1 := count(o)
	o.AttackRate = 2
	_, a2 := count(o)
	o.AttackRate, o.NoAttacks = 1, true
	b0, a0 := count(o)
	if a0 != 0 {
		t.Errorf("NoAttacks: %d attack events", a0)
	}
	if r := float64(a2) / float64(a1); r < 1.5 || r > 2.6 {
		t.Errorf("doubling the attack rate: %d -> %d attack events", a1, a2)
	}
	// Benign volume is about Rate * Duration whatever the attacks.
	want := 1.0 * o.Duration.Seconds()
	for _, b := range []int{b0, b1} {
		if f := float64(b) / want; f < 0.75 || f > 1.3 {
			t.Errorf("benign events %d, want about %.0f", b, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Options{
		"negative duration": {Duration: -time.Second},
		"negative rate":     {Rate: -1},
		"unknown scenario":  {Mix: map[Scenario]float64{"nope": 1}},
		"negative fraction": {Mix: map[Scenario]float64{CardTesting: -1}},
		"negative accounts": {Population: population.Options{Accounts: -1}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestMixDisables(t *testing.T) {
	o := small(6)
	o.Duration = 20 * time.Minute
	o.Mix = map[Scenario]float64{CardTesting: 0, BenignFlight: 0}
	w, _ := New(o)
	for {
		_, l, ok := w.Next()
		if !ok {
			break
		}
		if l.Scenario == CardTesting || l.Scenario == BenignFlight {
			t.Fatalf("disabled scenario %s present", l.Scenario)
		}
	}
}

func TestReadLabelsRoundTrip(t *testing.T) {
	o := small(7)
	o.Duration = 20 * time.Minute
	e, l := render(t, o)
	m, err := ReadLabels(bytes.NewReader(l))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(e, []byte("\n")); len(m) != n {
		t.Fatalf("%d labels for %d events", len(m), n)
	}
}

func TestPacer(t *testing.T) {
	o := small(8)
	o.Duration = 10 * time.Minute
	w, _ := New(o)
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := clock.NewFake(wall)
	p := NewPacer(w, PaceOptions{Clock: fc, Speed: 10, Sleep: func(_ context.Context, d time.Duration) error {
		fc.Advance(d)
		return nil
	}})
	var first, last time.Time
	n := 0
	for {
		ev, _, err := p.Next(context.Background())
		if err != nil {
			break
		}
		at := ev.OccurredAt.AsTime()
		if n == 0 {
			first = at
		}
		if fc.Now().Before(at) {
			t.Fatalf("event stamped %v released at %v", at, fc.Now())
		}
		last = at
		n++
	}
	if !first.Equal(wall) || n == 0 {
		t.Fatalf("first event at %v, want %v", first, wall)
	}
	// Ten minutes at speed 10: about a minute of wall time.
	if span := last.Sub(first); span < 50*time.Second || span > time.Minute {
		t.Fatalf("paced span %v", span)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w2, _ := New(o)
	p2 := NewPacer(w2, PaceOptions{Clock: clock.NewFake(wall)})
	p2.Next(ctx) // the first event is due at once
	if _, _, err := p2.Next(ctx); err == nil {
		t.Fatal("cancelled context: no error")
	}
}

func TestStartEndingAt(t *testing.T) {
	now := time.Date(2026, 11, 28, 16, 0, 0, 5e8, time.UTC)
	o := small(9)
	o.Start = StartEndingAt(now, o.Duration)
	w, _ := New(o)
	if w.End().After(now) || now.Sub(w.End()) >= time.Second {
		t.Fatalf("stream ends %v, want just before %v", w.End(), now)
	}
}

// TestMemoryFlat generates 100k events from a population of a million
// accounts and devices and checks that the live heap stays small: the
// population is generated on demand, never held.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 100k events")
	}
	w, err := New(Options{Seed: 1, Population: population.Options{Accounts: 1_000_000, Devices: 1_000_000}, Duration: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak uint64
	for i := range 100_000 {
		if _, _, ok := w.Next(); !ok {
			t.Fatalf("stream ended after %d events", i)
		}
		if i%20_000 == 0 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapAlloc)
	const limit = 64 << 20
	if grown := int64(peak) - int64(before.HeapAlloc); grown > limit {
		t.Fatalf("live heap grew by %d MiB generating 100k events", grown>>20)
	}
	t.Logf("live heap: %d KiB before, %d KiB peak", before.HeapAlloc>>10, peak>>10)
}

func BenchmarkNext(b *testing.B) {
	w, err := New(Options{Seed: 1, Population: population.Options{Accounts: 1_000_000}, Duration: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := w.Next(); !ok {
			b.Fatal("stream ended")
		}
	}
}

func TestEventSeq(t *testing.T) {
	for n, want := range map[uint64]string{0: "000000000", 42: "000000042", 999_999_999: "999999999", 1_000_000_000: "1000000000", 2_000_000_000: "2000000000"} {
		if got := eventSeq(n); got != want {
			t.Errorf("eventSeq(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLabelCaught(t *testing.T) {
	for _, c := range []struct {
		l    Label
		o    riskv1.Outcome
		want bool
	}{
		{Label{Expect: ExpectChallenge}, riskv1.Outcome_OUTCOME_CHALLENGE, true},
		{Label{Expect: ExpectChallenge}, riskv1.Outcome_OUTCOME_DENY, true},
		{Label{Expect: ExpectReview}, riskv1.Outcome_OUTCOME_CHALLENGE, false},
		{Label{Expect: ExpectReview}, riskv1.Outcome_OUTCOME_REVIEW, true},
		{Label{}, riskv1.Outcome_OUTCOME_DENY, false},
	} {
		if got := c.l.Caught(c.o); got != c.want {
			t.Errorf("%+v caught by %v = %v", c.l, c.o, got)
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("card_testing=0.01, benign_flight=0")
	if err != nil || m[CardTesting] != 0.01 || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"card_testing", "nope=1", "card_testing=-1", "card_testing=x"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
