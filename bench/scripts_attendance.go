package bench

import (
	"slices"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
)

func isAndroid(a population.Account, p *population.Population) bool {
	return p.Device(a.Phone()).Platform != "ios"
}

// cheater picks an employee for an attendance attack and keeps benign
// traffic away from them, so their genuine check-ins never share a device or
// a history with the cheat.
func (s *session) cheater(androidOnly bool) (population.Account, bool) {
	a, ok := s.pickAccount(func(a population.Account) bool { return !androidOnly || isAndroid(a, s.w.pop) })
	if ok {
		s.reserve(a.Index, 48*time.Hour)
	}
	return a, ok
}

// attendanceEvent is a check-in by a at its site from dm.
func (s *session) attendanceEvent(a population.Account, dm *riskv1.Device, nw *riskv1.Network, loc *riskv1.Location) *riskv1.Event {
	site := s.w.pop.AccountSite(a)
	ev := event(riskv1.EventType_EVENT_TYPE_ATTENDANCE, a.ID, s.org(a))
	ev.Device, ev.Network, ev.Location = dm, nw, loc
	ev.Attendance = &riskv1.Attendance{SiteId: site.ID, Method: "gps"}
	return ev
}

// spoofedAtSite is a fake fix on the site, as a location spoofer reports it.
func (s *session) spoofedAtSite(a population.Account) *riskv1.Location {
	site := s.w.pop.AccountSite(a)
	la, lo := s.near(site.Lat, site.Lon, 40)
	return locMsg(la, lo, 5+s.r.Float64()*15, "gps")
}

// offsiteNet is the network of someone not at work: home Wi-Fi or mobile.
func (s *session) offsiteNet(a population.Account, d population.Device) *riskv1.Network {
	if s.chance(0.6) {
		return homeNet(a, d)
	}
	return s.mobileNet(a, d)
}

// withPackages is d's app list plus extra packages.
func withPackages(dm *riskv1.Device, extra ...string) {
	dm.InstalledPackages = append(slices.Clip(dm.InstalledPackages), extra...)
}

func (s *session) pickPkg(k population.CheatKind) string {
	p := population.CheatPackages(k)
	return p[s.r.IntN(len(p))]
}

// checkInOut emits the cheat check-in and, often, a check-out later the same
// way.
func (s *session) checkInOut(mk func() *riskv1.Event) {
	s.attack(s.now, mk())
	if s.chance(0.5) {
		s.later(s.after(s.gap(30*time.Minute, 100*time.Minute)), func() { s.attack(s.now, mk()) })
	}
}

func runAttFakeGPS(s *session) {
	a, ok := s.cheater(true)
	if !ok {
		return
	}
	d := s.phone(a)
	nw := s.offsiteNet(a, d)
	pkgs := []string{s.pickPkg(population.CheatFakeGPS)}
	if s.chance(0.3) {
		pkgs = append(pkgs, s.pickPkg(population.CheatFakeGPS))
	}
	mock := s.chance(0.3)
	s.checkInOut(func() *riskv1.Event {
		dm := deviceMsg(d)
		withPackages(dm, pkgs...)
		dm.MockLocationEnabled = mock
		return s.attendanceEvent(a, dm, nw, s.spoofedAtSite(a))
	})
}

func runAttClonerHook(s *session) {
	a, ok := s.cheater(true)
	if !ok {
		return
	}
	d := s.phone(a)
	nw := s.offsiteNet(a, d)
	var pkgs, hooks []string
	switch s.r.IntN(3) {
	case 0:
		pkgs = []string{s.pickPkg(population.CheatCloner)}
	case 1:
		pkgs = []string{s.pickPkg(population.CheatHook)}
		hooks = []string{population.HookFrameworks[s.r.IntN(len(population.HookFrameworks))]}
	default:
		pkgs = []string{s.pickPkg(population.CheatCloner), s.pickPkg(population.CheatHook)}
	}
	s.checkInOut(func() *riskv1.Event {
		dm := deviceMsg(d)
		withPackages(dm, pkgs...)
		dm.HookFrameworks = hooks
		return s.attendanceEvent(a, dm, nw, s.spoofedAtSite(a))
	})
}

func runAttMockLocation(s *session) {
	a, ok := s.cheater(true)
	if !ok {
		return
	}
	d := s.phone(a)
	nw := s.offsiteNet(a, d)
	flag, mocked := true, false
	switch s.r.IntN(3) {
	case 0:
		flag, mocked = false, true
	case 1:
		mocked = true
	}
	s.checkInOut(func() *riskv1.Event {
		dm := deviceMsg(d)
		dm.MockLocationEnabled, dm.DeveloperMode = flag, true
		loc := s.spoofedAtSite(a)
		loc.Mocked = mocked
		return s.attendanceEvent(a, dm, nw, loc)
	})
}

func runAttRootedEmulator(s *session) {
	a, ok := s.cheater(true)
	if !ok {
		return
	}
	d := s.phone(a)
	nw := s.offsiteNet(a, d)
	emu := s.chance(0.4)
	magisk := s.chance(0.5)
	s.checkInOut(func() *riskv1.Event {
		dm := deviceMsg(d)
		if emu {
			dm.Emulator, dm.Model, dm.Imei = true, "sdk_gphone64_x86_64", ""
		} else {
			dm.Rooted = true
			if magisk {
				withPackages(dm, "com.topjohnwu.magisk")
			}
		}
		return s.attendanceEvent(a, dm, nw, s.spoofedAtSite(a))
	})
}

// runAttFarFromSite: location and network disagree. Either the fix is at
// home, kilometres from the site, while the Wi-Fi and IP claim the office
// (a relayed or cloned access point), or the fix is on the site while the
// phone sits on its home Wi-Fi and broadband (a hidden spoofer).
func runAttFarFromSite(s *session) {
	a, ok := s.cheater(false)
	if !ok {
		return
	}
	d := s.phone(a)
	site := s.w.pop.AccountSite(a)
	farGPS := s.chance(0.5)
	s.checkInOut(func() *riskv1.Event {
		if farGPS {
			la, lo := s.near(a.HomeLat, a.HomeLon, 200)
			if population.DistanceKm(la, lo, site.Lat, site.Lon) < 2 {
				la, lo = population.Offset(site.Lat, site.Lon, 3000+s.r.Float64()*10000, s.r.Float64()*360)
			}
			return s.attendanceEvent(a, deviceMsg(d), s.officeNet(site, d), locMsg(la, lo, 10+s.r.Float64()*40, "fused"))
		}
		return s.attendanceEvent(a, deviceMsg(d), homeNet(a, d), s.spoofedAtSite(a))
	})
}

func runAttImplausibleAccuracy(s *session) {
	a, ok := s.cheater(false)
	if !ok {
		return
	}
	d := s.phone(a)
	site := s.w.pop.AccountSite(a)
	nw := s.mobileNet(a, d)
	tooGood := s.chance(0.5)
	s.checkInOut(func() *riskv1.Event {
		la, lo := s.near(site.Lat, site.Lon, site.RadiusM*0.5)
		acc := 0.5 + s.r.Float64()*4.4
		if !tooGood {
			acc = 600 + s.r.Float64()*4400
		}
		return s.attendanceEvent(a, deviceMsg(d), nw, locMsg(la, lo, acc, "gps"))
	})
}

// runAttRepeatedCoords: a replay tool reports the very same fix, to the
// last digit, check-in after check-in. The first replay is
// indistinguishable from a real fix.
func runAttRepeatedCoords(s *session) {
	a, ok := s.cheater(false)
	if !ok {
		return
	}
	d := s.phone(a)
	site := s.w.pop.AccountSite(a)
	la, lo := s.near(site.Lat, site.Lon, site.RadiusM*0.5)
	acc := 10 + s.r.Float64()*20
	i := 0
	s.every(s.intIn(3, 5), s.now, func(t int64) int64 { return t + int64(s.gap(8*time.Minute, 25*time.Minute)) }, func(t int64) {
		ev := s.attendanceEvent(a, deviceMsg(d), s.offsiteNet(a, d), locMsg(la, lo, acc, "gps"))
		if i == 0 {
			s.attackUncaught(t, ev)
		} else {
			s.attack(t, ev)
		}
		i++
	})
}

// runAttImpossibleTravel: a genuine check-in, then within the hour one whose
// fix is in a city hundreds of kilometres away.
func runAttImpossibleTravel(s *session) {
	a, ok := s.cheater(false)
	if !ok {
		return
	}
	d := s.phone(a)
	s.checkin(s.now, BenignCheckin, a, d)
	var c population.City
	for range 16 {
		c = population.Cities[s.r.IntN(len(population.Cities))]
		if population.DistanceKm(a.HomeLat, a.HomeLon, c.Lat, c.Lon) > 800 {
			break
		}
	}
	s.later(s.after(s.gap(10*time.Minute, 50*time.Minute)), func() {
		la, lo := s.near(c.Lat, c.Lon, 5000)
		s.attack(s.now, s.attendanceEvent(a, deviceMsg(d), s.mobileNet(a, d), locMsg(la, lo, 8+s.r.Float64()*30, "gps")))
	})
}

// runAttBuddyPunching: one employee checks in, then checks in colleagues
// from the same phone.
func runAttBuddyPunching(s *session) {
	b, ok := s.cheater(false)
	if !ok {
		return
	}
	d := s.phone(b)
	s.checkin(s.now, BenignCheckin, b, d)
	site := s.w.pop.AccountSite(b)
	t := s.now
	for _, c := range s.employees(b.Org, s.intIn(2, 5)) {
		if c.Index == b.Index {
			continue
		}
		s.reserve(c.Index, 48*time.Hour)
		t += int64(s.between(20*time.Second, 4*time.Minute))
		la, lo := s.near(site.Lat, site.Lon, site.RadiusM*0.6)
		ev := event(riskv1.EventType_EVENT_TYPE_ATTENDANCE, c.ID, s.org(c))
		ev.Device, ev.Network = deviceMsg(d), s.officeNet(site, d)
		ev.Location = locMsg(la, lo, 8+s.r.Float64()*40, "gps")
		ev.Attendance = &riskv1.Attendance{SiteId: site.ID, Method: "gps"}
		s.attack(t, ev)
	}
}
