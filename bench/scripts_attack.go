package bench

import (
	"fmt"
	"net/netip"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
)

// Attackers' tools: the user agents of scripted clients.
var toolAgents = []string{
	"okhttp/3.12.13", "okhttp/4.9.0", "python-requests/2.31.0", "Go-http-client/1.1",
	"RiskdDemo/8.0.12 (Android 9; SM-G9550)", "Dalvik/2.1.0 (Linux; U; Android 9; MI 8 MIUI/V10.2)",
}

// toolDevice is what a scripted client claims to be: a fresh random id per
// request (or none) and a fixed, old model.
func (s *session) toolDevice(model string) *riskv1.Device {
	d := &riskv1.Device{Platform: "android", Model: model, OsVersion: "9", AppVersion: "8.0.12"}
	if s.chance(0.8) {
		d.DeviceId = fmt.Sprintf("dev-%016x", s.r.Uint64())
	}
	return d
}

// takeover emits the attacker's successful login on victim v from device d
// at t, and the follow-ups that cash in: a password reset, a new payee and a
// large transfer. The login is caught-or-not per uncaught; the follow-ups
// are always expected to be caught.
func (s *session) takeover(t int64, v population.Account, d population.Device, nw *riskv1.Network, loc *riskv1.Location, uncaughtLogin bool) {
	ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, v.ID, s.org(v))
	ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
	ev.Login = &riskv1.Login{Success: true, Method: "password"}
	if uncaughtLogin {
		s.attackUncaught(t, ev)
	} else {
		s.attack(t, ev)
	}
	if s.chance(0.6) {
		t += int64(s.between(30*time.Second, 5*time.Minute))
		ev := event(riskv1.EventType_EVENT_TYPE_PASSWORD_RESET, v.ID, s.org(v))
		ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
		ev.Login = &riskv1.Login{Success: true, Method: "sms"}
		s.attack(t, ev)
	}
	payee := s.freshAccountID()
	for range s.intIn(1, 3) {
		t += int64(s.between(20*time.Second, 6*time.Minute))
		ev := event(riskv1.EventType_EVENT_TYPE_PAYMENT, v.ID, s.org(v))
		ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
		kind := "transfer"
		if s.chance(0.25) {
			kind = "withdrawal"
		}
		ev.Payment = &riskv1.Payment{
			AmountMinor: s.amount(1_500_000, 0.6, 300_000, 10_000_000), Currency: "CNY", Kind: kind,
			PayeeAccountId: payee, InstrumentId: "balance-" + v.ID,
		}
		s.attack(t, ev)
	}
}

// victimWarmup emits the victim's own login at home (benign): the history a
// takeover is measured against.
func (s *session) victimWarmup(v population.Account) int64 {
	d := s.phone(v)
	return s.login(s.now, BenignLogin, v, d, homeNet(v, d), s.phoneFix(v.HomeLat, v.HomeLon, 150))
}

// runATOImpossibleTravel: the victim signs in at home; within the hour a
// stolen password is used from another continent on an unknown device.
func runATOImpossibleTravel(s *session) {
	v, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	s.reserve(v.Index, 48*time.Hour)
	t := s.victimWarmup(v) + int64(s.gap(5*time.Minute, 40*time.Minute))
	s.later(t, func() {
		c := population.AttackerCities[s.r.IntN(len(population.AttackerCities))]
		d := s.freshDevice()
		d.Timezone, d.Language, d.Installed = "UTC", "en-US", nil
		nw := netFrom(population.HostInPrefix(s.r, population.HostingPrefix(s.r)), userAgent(d))
		nw.Vpn = s.chance(0.3)
		s.takeover(s.now, v, d, nw, s.phoneFix(c.Lat, c.Lon, 10000), false)
	})
}

// runATOFailedBurst: a burst of wrong passwords from a new device, then the
// right one, then the cash-out.
func runATOFailedBurst(s *session) {
	v, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	s.reserve(v.Index, 48*time.Hour)
	t := s.now
	if s.chance(0.5) {
		t = s.victimWarmup(v) + int64(s.gap(10*time.Minute, 40*time.Minute))
	}
	s.later(t, func() { s.failedBurst(v) })
}

func (s *session) failedBurst(v population.Account) {
	t := s.now
	d := s.freshDevice()
	var nw *riskv1.Network
	if s.chance(0.5) {
		nw = netFrom(population.ResidentialAddr(s.r), userAgent(d))
	} else {
		nw = netFrom(population.HostInPrefix(s.r, population.HostingPrefix(s.r)), userAgent(d))
	}
	var loc *riskv1.Location // a script denies the location permission
	if s.chance(0.4) {
		loc = s.phoneFix(v.City.Lat, v.City.Lon, 20000)
	}
	n := s.intIn(5, 14)
	for range n {
		ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, v.ID, s.org(v))
		ev.Device, ev.Network, ev.Location = deviceMsg(d), nw, loc
		ev.Login = &riskv1.Login{Success: false, Method: "password", FailureReason: "bad_password"}
		s.attackUncaught(t, ev)
		t += int64(s.between(3*time.Second, 40*time.Second))
	}
	s.takeover(t, v, d, nw, loc, false)
}

// stuffingAttempt emits one scripted login against a random account (a
// third of them unregistered). About 2% of guesses on real accounts work;
// those accounts are the attacker's from then on.
func (s *session) stuffingAttempt(t int64, ip netip.Addr, ua, model string) {
	var id, org string
	var real bool
	if s.chance(0.3) {
		id = s.unregisteredAccountID()
	} else if a, ok := s.pickAccount(nil); ok {
		id, org, real = a.ID, s.org(a), true
		if s.chance(0.02) {
			s.reserve(a.Index, 48*time.Hour)
			ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, id, org)
			ev.Device, ev.Network = s.toolDevice(model), netFrom(ip, ua)
			ev.Login = &riskv1.Login{Success: true, Method: "password"}
			s.attack(t, ev)
			return
		}
	} else {
		id = s.unregisteredAccountID()
	}
	ev := event(riskv1.EventType_EVENT_TYPE_LOGIN, id, org)
	ev.Device, ev.Network = s.toolDevice(model), netFrom(ip, ua)
	ev.Login = &riskv1.Login{Success: false, Method: "password", FailureReason: "bad_password"}
	if !real {
		ev.Login.FailureReason = "no_such_account"
	}
	s.attack(t, ev)
}

var toolModels = []string{"SM-G9550", "MI 8", "Pixel 2", "vivo X21", "OPPO R15"}

// runStuffingSingleIP: one hosting address trying hundreds of accounts in
// well under an hour.
func runStuffingSingleIP(s *session) {
	ip := population.HostInPrefix(s.r, population.HostingPrefix(s.r))
	ua, model := toolAgents[s.r.IntN(len(toolAgents))], toolModels[s.r.IntN(len(toolModels))]
	n := s.intIn(400, 1000)
	span := s.between(15*time.Minute, 50*time.Minute)
	step := int64(span) / int64(n)
	s.every(n, s.now, func(t int64) int64 { return t + step/2 + s.r.Int64N(step+1) },
		func(t int64) { s.stuffingAttempt(t, ip, ua, model) })
}

// runStuffingIPPool: a pool of 20-60 addresses in a few hosting /24s.
func runStuffingIPPool(s *session) {
	var pool []netip.Addr
	nets := make([]netip.Prefix, s.intIn(2, 6))
	for i := range nets {
		nets[i] = population.HostingPrefix(s.r)
	}
	for range s.intIn(20, 60) {
		pool = append(pool, population.HostInPrefix(s.r, nets[s.r.IntN(len(nets))]))
	}
	ua, model := toolAgents[s.r.IntN(len(toolAgents))], toolModels[s.r.IntN(len(toolModels))]
	n := s.intIn(600, 1300)
	span := s.between(20*time.Minute, 60*time.Minute)
	step := int64(span) / int64(n)
	s.every(n, s.now, func(t int64) int64 { return t + step/2 + s.r.Int64N(step+1) },
		func(t int64) { s.stuffingAttempt(t, pool[s.r.IntN(len(pool))], ua, model) })
}

// runStuffingSlow: residential proxies, a new /24 for nearly every attempt,
// spread over hours so that no address or prefix crosses a threshold.
func runStuffingSlow(s *session) {
	ua, model := toolAgents[s.r.IntN(len(toolAgents))], toolModels[s.r.IntN(len(toolModels))]
	n := s.intIn(300, 600)
	span := s.between(2*time.Hour, 6*time.Hour)
	step := int64(span) / int64(n)
	var ip netip.Addr
	i := 0
	s.every(n, s.now, func(t int64) int64 { return t + s.r.Int64N(2*step+1) }, func(t int64) {
		if i%2 == 0 || s.chance(0.5) {
			ip = population.ResidentialAddr(s.r)
		}
		i++
		s.stuffingAttempt(t, ip, ua, model)
	})
}

// runPaymentAfterTakeover: a quiet takeover (a new phone in the victim's own
// city, the right password first time: on its own no different from a new
// phone) followed at once by transfers out.
func runPaymentAfterTakeover(s *session) {
	v, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	s.reserve(v.Index, 48*time.Hour)
	t := s.victimWarmup(v) + int64(s.gap(5*time.Minute, 40*time.Minute))
	s.later(t, func() {
		d := s.freshDevice()
		nw := netFrom(population.ResidentialAddr(s.r), userAgent(d))
		s.takeover(s.now, v, d, nw, s.phoneFix(v.City.Lat, v.City.Lon, 20000), true)
	})
}

// farmDevice is a phone in a fraud farm: an emulator or a phone running a
// cloner to host many accounts.
func (s *session) farmDevice() *riskv1.Device {
	d := s.freshDevice()
	m := deviceMsg(d)
	m.Platform, m.Idfa, m.OsVersion = "android", "", "12"
	cl := population.CheatPackages(population.CheatCloner)
	m.InstalledPackages = append(append([]string(nil), population.BenignApps[:8]...), cl[s.r.IntN(len(cl))])
	if s.chance(0.5) {
		m.Emulator = true
		m.Model = []string{"sdk_gphone64_x86_64", "MuMu", "LDPlayer", "Nox"}[s.r.IntN(4)]
		m.Imei = ""
	}
	return m
}

// runRedPacketFarming: a payer hands out a group red packet; a farm of new
// accounts on a few devices registers and claims it. A claim is a PAYMENT of
// kind red_packet_claim by the claimer whose payee_account_id is the payer
// (the counterparty).
func runRedPacketFarming(s *session) {
	payer, ok := s.pickAccount(nil)
	if !ok {
		return
	}
	pd := s.phone(payer)
	pnw, ploc := s.where(payer, pd)
	ev := event(riskv1.EventType_EVENT_TYPE_PAYMENT, payer.ID, s.org(payer))
	ev.Device, ev.Network, ev.Location = deviceMsg(pd), pnw, ploc
	ev.Payment = &riskv1.Payment{AmountMinor: s.amount(20_000, 0.5, 5_000, 100_000), Currency: "CNY", Kind: "red_packet", InstrumentId: "balance-" + payer.ID}
	packet := fmt.Sprintf("rp-%016x", s.r.Uint64())
	ev.Attributes = map[string]string{"red_packet_id": packet}
	s.benign(s.now, BenignPayment, ev)

	devs := make([]*riskv1.Device, s.intIn(2, 4))
	for i := range devs {
		devs[i] = s.farmDevice()
	}
	ip := population.ResidentialAddr(s.r)
	next := func(t int64) int64 { return t + int64(s.between(15*time.Second, 90*time.Second)) }
	s.every(s.intIn(20, 45), next(s.now), next, func(t int64) {
		d := devs[s.r.IntN(len(devs))]
		id := s.freshAccountID()
		nw := netFrom(ip, "RiskdDemo/8.0.49 (Android 12; "+d.Model+")")
		reg := event(riskv1.EventType_EVENT_TYPE_REGISTER, id, "")
		reg.Device, reg.Network = d, nw
		s.attack(t, reg)
		t += int64(s.between(5*time.Second, 30*time.Second))
		in := event(riskv1.EventType_EVENT_TYPE_LOGIN, id, "")
		in.Device, in.Network = d, nw
		in.Login = &riskv1.Login{Success: true, Method: "sms"}
		s.attack(t, in)
		t += int64(s.between(2*time.Second, 20*time.Second))
		cl := event(riskv1.EventType_EVENT_TYPE_PAYMENT, id, "")
		cl.Device, cl.Network = d, nw
		cl.Payment = &riskv1.Payment{AmountMinor: int64(s.intIn(1, 888)), Currency: "CNY", Kind: "red_packet_claim", PayeeAccountId: payer.ID}
		cl.Attributes = map[string]string{"red_packet_id": packet}
		s.attack(t, cl)
	})
}

// runMoneyMule: freshly registered payer accounts, each on its own phone,
// each sending one transfer to the same new payee within an hour or two.
// The registrations look like any sign-up and are not expected to be caught;
// the transfers are.
func runMoneyMule(s *session) {
	mule := s.freshAccountID()
	span := s.between(30*time.Minute, 2*time.Hour)
	n := s.intIn(30, 80)
	c := population.Cities[s.r.IntN(len(population.Cities))]
	mean := float64(span) / float64(n)
	next := func(t int64) int64 { return t + int64(s.r.ExpFloat64()*mean) }
	s.every(n, next(s.now), next, func(t int64) {
		d := s.freshDevice()
		id := s.freshAccountID()
		nw := netFrom(population.ResidentialAddr(s.r), userAgent(d))
		loc := s.phoneFix(c.Lat, c.Lon, 30000)
		reg := event(riskv1.EventType_EVENT_TYPE_REGISTER, id, "")
		reg.Device, reg.Network, reg.Location = deviceMsg(d), nw, loc
		s.attackUncaught(t, reg)
		t += int64(s.between(time.Minute, 10*time.Minute))
		p := event(riskv1.EventType_EVENT_TYPE_PAYMENT, id, "")
		p.Device, p.Network, p.Location = deviceMsg(d), nw, loc
		p.Payment = &riskv1.Payment{
			AmountMinor: s.amount(200_000, 0.7, 20_000, 2_000_000), Currency: "CNY", Kind: "transfer",
			PayeeAccountId: mule, InstrumentId: fmt.Sprintf("card-%016x", s.r.Uint64()),
		}
		s.attack(t, p)
	})
}

// runCardTesting: a new account on an emulator runs stolen cards through
// tiny orders at one shop, one card after another, within minutes.
func runCardTesting(s *session) {
	id := s.freshAccountID()
	d := s.freshDevice()
	dm := deviceMsg(d)
	if s.chance(0.5) {
		dm.Emulator, dm.Model, dm.Imei = true, "sdk_gphone64_x86_64", ""
	}
	nw := netFrom(population.HostInPrefix(s.r, population.HostingPrefix(s.r)), userAgent(d))
	reg := event(riskv1.EventType_EVENT_TYPE_REGISTER, id, "")
	reg.Device, reg.Network = dm, nw
	s.attackUncaught(s.now, reg)
	shop := s.w.pop.PopularMerchant(s.r).ID
	next := func(t int64) int64 { return t + int64(s.between(3*time.Second, 25*time.Second)) }
	s.every(s.intIn(15, 50), s.now+int64(s.between(time.Minute, 5*time.Minute)), next, func(t int64) {
		p := event(riskv1.EventType_EVENT_TYPE_PAYMENT, id, "")
		p.Device, p.Network = dm, nw
		p.Payment = &riskv1.Payment{
			AmountMinor: int64(s.intIn(100, 500)), Currency: "CNY", Kind: "order",
			PayeeAccountId: shop, InstrumentId: fmt.Sprintf("card-%016x", s.r.Uint64()),
		}
		if s.chance(0.7) {
			p.Attributes = map[string]string{"card_result": "declined"}
		}
		s.attack(t, p)
	})
}
