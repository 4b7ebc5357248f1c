package features

import (
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
)

func deviceEvent(typ event.Type, device string, at time.Time, fill func(d *event.Device)) *event.Event {
	ev := &event.Event{Type: typ, TypeName: typ.String(), OccurredAt: at}
	ev.Has.Device = true
	ev.Device.DeviceID = device
	ev.P.Device = "p-" + device
	if fill != nil {
		fill(&ev.Device)
	}
	return ev
}

func recordReport(t *testing.T, p *Profiles, db *pebble.DB, ev *event.Event, commit bool) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := p.Record(ev, b); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	} else {
		p.Forget(ev)
	}
}

func TestProfilesFill(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	report := func(d *event.Device) {
		d.Platform, d.Model, d.OSVersion = "android", "Pixel 8", "15"
		d.Rooted, d.HookFrameworks = true, []string{"xposed"}
		d.InstalledPackages = []string{"com.example.fakegps", "com.tencent.mm"}
	}
	tests := []struct {
		name   string
		at     time.Time
		dev    func(d *event.Device)
		want   Filled
		check  func(t *testing.T, d event.Device)
		typ    event.Type
		device string
	}{
		{name: "bare login gets everything", at: t0.Add(time.Hour),
			want: FilledPackages | FilledFlags | FilledModel,
			check: func(t *testing.T, d event.Device) {
				if !d.Rooted || !slices.Equal(d.HookFrameworks, []string{"xposed"}) || len(d.InstalledPackages) != 2 || d.Model != "Pixel 8" || d.Platform != "android" || d.OSVersion != "15" {
					t.Errorf("device %+v", d)
				}
			}},
		{name: "own packages and flag stand", at: t0.Add(time.Hour),
			dev: func(d *event.Device) {
				d.FlaggedPackages = []string{"com.other"}
				d.Emulator = true
				d.Model = "own"
			},
			want: FilledModel,
			check: func(t *testing.T, d event.Device) {
				if d.Rooted || len(d.InstalledPackages) != 0 || !slices.Equal(d.FlaggedPackages, []string{"com.other"}) || d.Model != "own" || d.Platform != "android" {
					t.Errorf("device %+v", d)
				}
			}},
		{name: "same instant as the report", at: t0, want: FilledPackages | FilledFlags | FilledModel},
		{name: "before the report", at: t0.Add(-time.Second), want: 0},
		{name: "at the horizon", at: t0.Add(DefaultProfileHorizon), want: FilledPackages | FilledFlags | FilledModel},
		{name: "past the horizon", at: t0.Add(DefaultProfileHorizon + time.Second), want: 0},
		{name: "another device", at: t0.Add(time.Hour), device: "other", want: 0},
		{name: "a report is not filled", at: t0.Add(time.Hour), typ: event.DeviceReport, want: 0},
	}
	db := openDB(t, t.TempDir())
	defer db.Close()
	p, err := OpenProfiles(ProfileOptions{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	recordReport(t, p, db, deviceEvent(event.DeviceReport, "d1", t0, report), true)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, device := tc.typ, tc.device
			if typ == 0 {
				typ = event.Login
			}
			if device == "" {
				device = "d1"
			}
			ev := deviceEvent(typ, device, tc.at, tc.dev)
			got, err := p.Fill(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("filled %b, want %b", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, ev.Device)
			}
		})
	}
}

// A profile survives a restart (it is read back from the store), an older
// report arriving late does not replace a newer one, and a report whose
// batch did not commit is forgotten.
func TestProfilesStoreAndOrder(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	db := openDB(t, dir)
	p, err := OpenProfiles(ProfileOptions{DB: db, Horizon: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	recordReport(t, p, db, deviceEvent(event.DeviceReport, "d1", t0, func(d *event.Device) { d.Model = "new" }), true)
	recordReport(t, p, db, deviceEvent(event.DeviceReport, "d1", t0.Add(-time.Minute), func(d *event.Device) { d.Model = "old" }), true)
	recordReport(t, p, db, deviceEvent(event.DeviceReport, "d1", t0.Add(time.Minute), func(d *event.Device) { d.Model = "uncommitted" }), false)
	recordReport(t, p, db, deviceEvent(event.DeviceReport, "d2", t0, func(d *event.Device) { d.Emulator = true }), false)
	check := func(p *Profiles) {
		t.Helper()
		ev := deviceEvent(event.Login, "d1", t0.Add(30*time.Minute), nil)
		if _, err := p.Fill(ev); err != nil {
			t.Fatal(err)
		}
		if ev.Device.Model != "new" {
			t.Errorf("model %q, want new", ev.Device.Model)
		}
		ev = deviceEvent(event.Login, "d2", t0.Add(time.Minute), nil)
		if f, err := p.Fill(ev); err != nil || f != 0 {
			t.Errorf("uncommitted report filled %b (%v)", f, err)
		}
		ev = deviceEvent(event.Login, "d1", t0.Add(61*time.Minute), nil)
		if f, _ := p.Fill(ev); f != 0 {
			t.Errorf("past a 1h horizon: filled %b", f)
		}
	}
	check(p)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	p, err = OpenProfiles(ProfileOptions{DB: db, Horizon: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	check(p)
}

func BenchmarkProfilesFill(b *testing.B) {
	db := openDB(b, b.TempDir())
	defer db.Close()
	p, err := OpenProfiles(ProfileOptions{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	batch := db.NewBatch()
	if err := p.Record(deviceEvent(event.DeviceReport, "d1", t0, func(d *event.Device) { d.Rooted = true }), batch); err != nil {
		b.Fatal(err)
	}
	_ = batch.Commit(pebble.NoSync)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		dev := "d1"
		if i%2 == 1 {
			dev = "none"
		}
		if _, err := p.Fill(deviceEvent(event.Login, dev, t0.Add(time.Second), nil)); err != nil {
			b.Fatal(err)
		}
	}
}
