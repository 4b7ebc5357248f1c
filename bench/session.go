package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
)

// session is one scenario instance: it has its own random stream and emits
// events at or after the moment it started.
type session struct {
	w    *Workload
	r    *rand.Rand
	now  int64 // ns offset the session started at
	info ScenarioInfo
}

// emit queues ev at offset at under scenario sc; events past the end are
// dropped (a session may run over the stream's end). Only the session's own
// scenario can be an attack: what it emits under other names is benign
// preparation.
func (s *session) emit(at int64, sc Scenario, expect string, ev *riskv1.Event) {
	if at >= s.w.end {
		return
	}
	if at < s.now {
		at = s.now
	}
	// Millisecond stamps, as back ends send them.
	at -= at % int64(time.Millisecond)
	s.w.seq++
	heapPush(&s.w.h, &item{at: at, seq: s.w.seq, ev: ev, label: Label{Scenario: sc, Attack: sc == s.info.Name && s.info.Attack, Expect: expect}})
}

// later runs fn at offset at, with the session's clock moved there. Sessions
// build what lies in the future only when it is due, so that memory holds a
// small closure per session in flight rather than every event it will emit
// over the next hours.
func (s *session) later(at int64, fn func()) {
	if at >= s.w.end {
		return
	}
	at = max(at, s.now)
	s.w.seq++
	heapPush(&s.w.h, &item{at: at, seq: s.w.seq, label: Label{Scenario: s.info.Name}, fn: func() {
		s.now = at
		fn()
	}})
}

// every runs body(t) n times, first at t and then at next(t) after each,
// keeping one step pending at a time.
func (s *session) every(n int, t int64, next func(int64) int64, body func(int64)) {
	if n <= 0 {
		return
	}
	s.later(t, func() {
		body(t)
		s.every(n-1, next(t), next, body)
	})
}

// benign emits a benign event.
func (s *session) benign(at int64, sc Scenario, ev *riskv1.Event) { s.emit(at, sc, "", ev) }

// attack emits an event of the session's attack that a detector must catch.
func (s *session) attack(at int64, ev *riskv1.Event) { s.emit(at, s.info.Name, s.info.Expect, ev) }

// attackUncaught emits an event of the session's attack that no detector can
// tell apart on its own (Expect empty).
func (s *session) attackUncaught(at int64, ev *riskv1.Event) { s.emit(at, s.info.Name, "", ev) }

// after returns the offset d after the session's start.
func (s *session) after(d time.Duration) int64 { return s.now + int64(d) }

// between returns a duration uniformly in [lo, hi).
func (s *session) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.r.Int64N(int64(hi-lo)))
}

// gap is a pause within a session: uniformly in [lo, hi), both capped at a
// fifth of the stream so that a short run still sees the session's end.
func (s *session) gap(lo, hi time.Duration) time.Duration {
	c := s.w.opts.Duration / 5
	return s.between(min(lo, c/2), min(hi, c))
}

func (s *session) intIn(lo, hi int) int { return lo + s.r.IntN(hi-lo+1) }

func (s *session) chance(p float64) bool { return s.r.Float64() < p }

// free reports whether account i is not owned by an attack right now.
func (s *session) free(i int) bool {
	until, ok := s.w.busy[i]
	return !ok || until <= s.now
}

// pickAccount picks a random account that no attack owns and that ok
// accepts (nil accepts any).
func (s *session) pickAccount(ok func(population.Account) bool) (population.Account, bool) {
	n := s.w.pop.Options().Accounts
	for range 16 {
		i := s.r.IntN(n)
		if !s.free(i) {
			continue
		}
		a := s.w.pop.Account(i)
		if ok == nil || ok(a) {
			return a, true
		}
	}
	return population.Account{}, false
}

// reserve keeps benign traffic away from account i for d.
func (s *session) reserve(i int, d time.Duration) {
	until := s.now + int64(d)
	if s.w.busy[i] < until {
		s.w.busy[i] = until
	}
}

// freshDevice is a phone outside the registered population, never seen
// before in this stream.
func (s *session) freshDevice() population.Device {
	s.w.fresh++
	return s.w.pop.Device(s.w.pop.Options().Devices + s.w.fresh)
}

// freshAccountID is an account registered during the stream.
func (s *session) freshAccountID() string {
	s.w.fresh++
	return "acct-n" + s.w.idTag[4:12] + "-" + strconv.Itoa(s.w.fresh)
}

// unregisteredAccountID is a plausible account id that does not exist (from
// a leaked combo list).
func (s *session) unregisteredAccountID() string {
	n := s.w.pop.Options().Accounts
	return population.AccountID(n + s.r.IntN(9*n+1))
}

func (s *session) org(a population.Account) string { return s.w.pop.Org(a.Org).ID }

func (s *session) phone(a population.Account) population.Device { return s.w.pop.Device(a.Phone()) }

// Message builders.

func deviceMsg(d population.Device) *riskv1.Device {
	return &riskv1.Device{
		DeviceId: d.ID, Imei: d.IMEI, Idfa: d.IDFA, AndroidId: d.AndroidID, Oaid: d.OAID,
		Platform: d.Platform, Model: d.Model, OsVersion: d.OSVersion, AppVersion: d.AppVersion,
		DeveloperMode: d.DeveloperMode, InstalledPackages: d.Installed,
		Timezone: d.Timezone, Language: d.Language,
	}
}

func userAgent(d population.Device) string {
	os := map[string]string{"android": "Android", "ios": "iOS", "harmonyos": "HarmonyOS"}[d.Platform]
	return "RiskdDemo/" + d.AppVersion + " (" + os + " " + d.OSVersion + "; " + d.Model + ")"
}

func homeNet(a population.Account, d population.Device) *riskv1.Network {
	return &riskv1.Network{Ip: a.HomeIP.String(), UserAgent: userAgent(d), WifiBssid: a.HomeBSSID, WifiSsid: a.HomeSSID}
}

func (s *session) mobileNet(a population.Account, d population.Device) *riskv1.Network {
	return &riskv1.Network{
		Ip: a.MobileIP.String(), UserAgent: userAgent(d), Carrier: a.Carrier,
		CellId: fmt.Sprintf("460-%02d-%d-%d", s.r.IntN(12), 10000+s.r.IntN(50000), s.r.IntN(60000)),
	}
}

func (s *session) officeNet(site population.Site, d population.Device) *riskv1.Network {
	return &riskv1.Network{
		Ip: site.NAT.String(), UserAgent: userAgent(d),
		WifiBssid: site.BSSIDs[s.r.IntN(len(site.BSSIDs))], WifiSsid: site.SSID,
	}
}

func netFrom(ip netip.Addr, ua string) *riskv1.Network {
	return &riskv1.Network{Ip: ip.String(), UserAgent: ua}
}

// near returns a point uniformly within maxM metres of (lat, lon).
func (s *session) near(lat, lon, maxM float64) (float64, float64) {
	return population.Offset(lat, lon, maxM*math.Sqrt(s.r.Float64()), s.r.Float64()*360)
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

func locMsg(lat, lon, acc float64, provider string) *riskv1.Location {
	return &riskv1.Location{Latitude: round6(lat), Longitude: round6(lon), AccuracyM: math.Round(acc*10) / 10, Provider: provider}
}

// phoneFix is an ordinary phone location fix near (lat, lon).
func (s *session) phoneFix(lat, lon, maxM float64) *riskv1.Location {
	la, lo := s.near(lat, lon, maxM)
	switch s.r.IntN(3) {
	case 0:
		return locMsg(la, lo, 8+s.r.Float64()*32, "gps")
	case 1:
		return locMsg(la, lo, 10+s.r.Float64()*50, "fused")
	default:
		return locMsg(la, lo, 30+s.r.Float64()*120, "network")
	}
}

func event(t riskv1.EventType, accountID, orgID string) *riskv1.Event {
	return &riskv1.Event{Type: t, AccountId: accountID, OrgId: orgID}
}
