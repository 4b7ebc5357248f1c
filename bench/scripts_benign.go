package bench

import (
	"math"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
)

var loginMethods = []string{"password", "password", "biometric", "biometric", "sms", "qr"}

// where picks an everyday context for account a: home Wi-Fi, the office
// or the carrier network somewhere in town.
func (s *session) where(a population.Account, d population.Device) (*riskv1.Network, *riskv1.Location) {
	switch p := s.r.Float64(); {
	case p < 0.5:
		return homeNet(a, d), s.phoneFix(a.HomeLat, a.HomeLon, 150)
	case p < 0.8:
		site := s.w.pop.AccountSite(a)
		return s.officeNet(site, d), s.phoneFix(site.Lat, site.Lon, site.RadiusM)
	default:
		return s.mobileNet(a, d), s.phoneFix(a.HomeLat, a.HomeLon, 15000)
	}
}

// login emits a's login from d at t (with an occasional typo first) and
// returns the time of the successful one.
func (s *session) login(t int64, sc Scenario, a population.Account, d population.Device, nw *riskv1.Network, loc *riskv1.Location) int64 {
	method := loginMethods[s.r.IntN(len(loginMethods))]
	if method == "password" && s.chance(0.05) {
		ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, a.ID, s.org(a))
		ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
		ev.Login = &riskv1.Login{Success: false, Method: method, FailureReason: "bad_password"}
		s.benign(t, sc, ev)
		t += int64(s.between(5*time.Second, 60*time.Second))
	}
	ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, a.ID, s.org(a))
	ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
	ev.Login = &riskv1.Login{Success: true, Method: method}
	s.benign(t, sc, ev)
	return t
}

var browseActions = []struct{ action, resource string }{
	{"view", "/feed"}, {"view", "/product/detail"}, {"search", "/search"}, {"click", "/banner"},
	{"share", "/post"}, {"post", "/moments"}, {"view", "/orders"}, {"send_message", "/chat"},
}
var queries = []string{"手机壳", "咖啡", "running shoes", "火锅", "机票", "耳机", "猫粮", "台灯"}

func (s *session) serviceLog(t int64, sc Scenario, a population.Account, d population.Device, nw *riskv1.Network) {
	b := browseActions[s.r.IntN(len(browseActions))]
	ev := event(riskv1.EventType_EVENT_TYPE_SERVICE_LOG, a.ID, s.org(a))
	ev.Device, ev.Network = deviceMsg(d), nw
	ev.Device.InstalledPackages = nil // the app sends its app list with logins and check-ins only
	ev.ServiceLog = &riskv1.ServiceLog{Action: b.action, Resource: b.resource, Status: 200}
	if b.action == "search" {
		ev.ServiceLog.Query = queries[s.r.IntN(len(queries))]
	}
	s.benign(t, sc, ev)
}

// amount draws a log-normal amount in fen around median, capped.
func (s *session) amount(median, sigma float64, lo, hi int64) int64 {
	v := int64(median * math.Exp(sigma*s.r.NormFloat64()))
	return min(max(v, lo), hi)
}

// payment emits an everyday payment by a: a shop order, a transfer or a red
// packet to someone it knows.
func (s *session) payment(t int64, sc Scenario, a population.Account, d population.Device, nw *riskv1.Network, loc *riskv1.Location) {
	ev := event(riskv1.EventType_EVENT_TYPE_PAYMENT, a.ID, s.org(a))
	ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
	ev.Device.InstalledPackages = nil
	p := &riskv1.Payment{Currency: "CNY", InstrumentId: "card-" + a.ID + "-1"}
	switch x := s.r.Float64(); {
	case x < 0.72 || len(a.Payees) == 0:
		p.Kind = "order"
		p.PayeeAccountId = s.w.pop.PopularMerchant(s.r).ID
		p.AmountMinor = s.amount(4500, 1.0, 600, 600_000)
	case x < 0.9:
		p.Kind = "transfer"
		p.PayeeAccountId = population.AccountID(a.Payees[s.r.IntN(len(a.Payees))])
		p.AmountMinor = s.amount(30_000, 1.0, 1_000, 1_000_000)
	default:
		p.Kind = "red_packet"
		p.PayeeAccountId = population.AccountID(a.Payees[s.r.IntN(len(a.Payees))])
		p.AmountMinor = s.amount(2_000, 0.8, 100, 20_000)
		p.InstrumentId = "balance-" + a.ID
	}
	ev.Payment = p
	s.benign(t, sc, ev)
}

func runBenignLogin(s *session) {
	a, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	d := s.phone(a)
	nw, loc := s.where(a, d)
	if d.Platform == "ios" && s.chance(0.3) {
		loc = nil // location permission denied
	}
	t := s.login(s.now, BenignLogin, a, d, nw, loc)
	if s.chance(0.4) {
		s.later(t+int64(s.between(2*time.Second, 3*time.Minute)), func() { s.serviceLog(s.now, BenignLogin, a, d, nw) })
	}
}

func runBenignPayment(s *session) {
	a, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	d := s.phone(a)
	nw, loc := s.where(a, d)
	s.payment(s.now, BenignPayment, a, d, nw, loc)
	if s.chance(0.3) {
		s.later(s.after(s.between(30*time.Second, 5*time.Minute)), func() { s.payment(s.now, BenignPayment, a, d, nw, loc) })
	}
}

// checkin emits a's genuine check-in at its site from device d.
func (s *session) checkin(t int64, sc Scenario, a population.Account, d population.Device) {
	site := s.w.pop.AccountSite(a)
	ev := event(riskv1.EventType_EVENT_TYPE_ATTENDANCE, a.ID, s.org(a))
	ev.Device = deviceMsg(d)
	la, lo := s.near(site.Lat, site.Lon, site.RadiusM*0.6)
	ev.Location = locMsg(la, lo, 8+s.r.Float64()*52, []string{"gps", "fused"}[s.r.IntN(2)])
	if s.chance(0.75) {
		ev.Network = s.officeNet(site, d)
	} else {
		ev.Network = s.mobileNet(a, d)
	}
	att := &riskv1.Attendance{SiteId: site.ID, Method: "gps"}
	switch x := s.r.Float64(); {
	case x < 0.2 && ev.Network.WifiBssid != "":
		att.Method = "wifi"
	case x < 0.35:
		att.Method = "beacon"
		att.BeaconIds = []string{site.Beacons[s.r.IntN(len(site.Beacons))]}
	}
	ev.Attendance = att
	s.benign(t, sc, ev)
}

func runBenignCheckin(s *session) {
	a, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	s.checkin(s.now, BenignCheckin, a, s.phone(a))
}

func runBenignBrowse(s *session) {
	a, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	d := s.phone(a)
	nw, _ := s.where(a, d)
	s.every(s.intIn(1, 5), s.now, func(t int64) int64 { return t + int64(s.between(3*time.Second, 90*time.Second)) },
		func(t int64) { s.serviceLog(t, BenignBrowse, a, d, nw) })
}

// runBenignFlight: a login at home, then one in a city 800-2,500 km away,
// after a flight at a plausible door-to-door speed.
func runBenignFlight(s *session) {
	a, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	var dest population.City
	var km float64
	for range 16 {
		dest = population.Cities[s.r.IntN(len(population.Cities))]
		km = population.DistanceKm(a.HomeLat, a.HomeLon, dest.Lat, dest.Lon)
		if km >= 800 && km <= 2500 {
			break
		}
	}
	if km < 800 || km > 2500 {
		return
	}
	s.reserve(a.Index, 24*time.Hour) // away from home from now on
	d := s.phone(a)
	s.login(s.now, BenignFlight, a, d, s.mobileNet(a, d), s.phoneFix(a.HomeLat, a.HomeLon, 20000))
	kmh := 450 + s.r.Float64()*400
	s.later(s.now+int64(km/kmh*float64(time.Hour)), func() {
		nw := s.mobileNet(a, d)
		loc := s.phoneFix(dest.Lat, dest.Lon, 20000)
		t := s.login(s.now, BenignFlight, a, d, nw, loc)
		if s.chance(0.5) {
			s.payment(t+int64(s.between(5*time.Minute, 40*time.Minute)), BenignFlight, a, d, nw, loc)
		}
	})
}

// runBenignNewPhone: an account signs in on a phone it never used (with an
// SMS code), browses and pays.
func runBenignNewPhone(s *session) {
	a, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	d := s.freshDevice()
	nw, loc := homeNet(a, d), s.phoneFix(a.HomeLat, a.HomeLon, 150)
	ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, a.ID, s.org(a))
	ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
	ev.Login = &riskv1.Login{Success: true, Method: "sms"}
	s.benign(s.now, BenignNewPhone, ev)
	s.later(s.now+int64(s.between(10*time.Second, 5*time.Minute)), func() {
		s.serviceLog(s.now, BenignNewPhone, a, d, nw)
		if s.chance(0.6) {
			s.later(s.now+int64(s.between(time.Minute, 10*time.Minute)), func() { s.payment(s.now, BenignNewPhone, a, d, nw, loc) })
		}
	})
}

// employees returns up to n accounts of org, free of attacks, from a
// random starting point.
func (s *session) employees(org, n int) []population.Account {
	size := s.w.pop.OrgSize(org)
	if size == 0 {
		return nil
	}
	var out []population.Account
	start := s.r.IntN(size)
	for k := 0; k < size && len(out) < n; k++ {
		i, _ := s.w.pop.Employee(org, (start+k)%size)
		if s.free(i) {
			out = append(out, s.w.pop.Account(i))
		}
	}
	return out
}

// runBenignOfficeNAT: the morning rush at one site: dozens of employees sign
// in from the office's single NAT address, a few with a typo first.
func runBenignOfficeNAT(s *session) {
	org := s.r.IntN(s.w.pop.Options().Orgs)
	site := s.w.pop.Site(org, 0)
	span := s.between(15*time.Minute, 40*time.Minute)
	var staff []int
	for _, a := range s.employees(org, s.intIn(25, 90)) {
		if a.Site == 0 {
			staff = append(staff, a.Index)
		}
	}
	if len(staff) == 0 {
		return
	}
	mean := float64(span) / float64(len(staff))
	k := 0
	s.every(len(staff), s.now, func(t int64) int64 { return t + int64(s.r.ExpFloat64()*mean) }, func(t int64) {
		i := staff[k]
		k++
		if !s.free(i) { // an attack took the account since the rush began
			return
		}
		a := s.w.pop.Account(i)
		d := s.phone(a)
		s.login(t, BenignOfficeNAT, a, d, s.officeNet(site, d), s.phoneFix(site.Lat, site.Lon, site.RadiusM))
	})
}

// runBenignPayroll: an org's finance account pays salaries to many
// employees, and some of them spend right away.
func runBenignPayroll(s *session) {
	org := s.r.IntN(s.w.pop.Options().Orgs)
	staff := s.employees(org, s.intIn(20, 80))
	if len(staff) < 2 {
		return
	}
	fin, staff := staff[0], staff[1:]
	d := s.phone(fin)
	site := s.w.pop.AccountSite(fin)
	nw, loc := s.officeNet(site, d), s.phoneFix(site.Lat, site.Lon, site.RadiusM)
	t := s.login(s.now, BenignPayroll, fin, d, nw, loc)
	payees := make([]int, len(staff))
	for i, e := range staff {
		payees[i] = e.Index
	}
	k := 0
	next := func(t int64) int64 { return t + int64(s.between(2*time.Second, 20*time.Second)) }
	s.every(len(payees), next(t), next, func(t int64) {
		e := s.w.pop.Account(payees[k])
		k++
		ev := event(riskv1.EventType_EVENT_TYPE_PAYMENT, fin.ID, s.org(fin))
		ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
		ev.Payment = &riskv1.Payment{
			AmountMinor: s.amount(900_000, 0.4, 400_000, 4_000_000), Currency: "CNY", Kind: "payroll",
			PayeeAccountId: e.ID, InstrumentId: "corp-" + s.org(fin),
		}
		s.benign(t, BenignPayroll, ev)
		if s.chance(0.35) {
			s.later(t+int64(s.between(2*time.Minute, 20*time.Minute)), func() {
				if !s.free(e.Index) {
					return
				}
				ed := s.phone(e)
				enw, eloc := s.where(e, ed)
				pt := s.now
				for range s.intIn(1, 4) {
					s.payment(pt, BenignPayroll, e, ed, enw, eloc)
					pt += int64(s.between(time.Minute, 10*time.Minute))
				}
			})
		}
	})
}

// runBenignFamilyTablet: a household's shared tablet used by its members for
// chat and payments (never for check-in).
func runBenignFamilyTablet(s *session) {
	a, ok := s.pickAccount(func(a population.Account) bool { _, ok := a.Tablet(); return ok })
	if !ok {
		return
	}
	tab, _ := a.Tablet()
	d := s.w.pop.Device(tab)
	members := s.w.pop.Household(a.Index)
	k := 0
	s.every(len(members), s.now, func(t int64) int64 { return t + int64(s.between(3*time.Minute, 20*time.Minute)) }, func(t int64) {
		i := members[k]
		k++
		if !s.free(i) {
			return
		}
		m := s.w.pop.Account(i)
		nw, loc := homeNet(a, d), s.phoneFix(a.HomeLat, a.HomeLon, 100)
		t = s.login(t, BenignFamilyTablet, m, d, nw, loc)
		for range s.intIn(1, 3) {
			t += int64(s.between(10*time.Second, 4*time.Minute))
			s.serviceLog(t, BenignFamilyTablet, m, d, nw)
		}
		if s.chance(0.6) {
			t += int64(s.between(30*time.Second, 5*time.Minute))
			s.payment(t, BenignFamilyTablet, m, d, nw, loc)
		}
	})
}
