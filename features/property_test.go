package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
)

// TestProperty replays random events (every type, small key spaces so keys
// collide, out of order within the lateness bound, failed commits, sweeps and
// a restart in the middle) and compares every value of every Apply with a
// brute-force scan over the committed events, written from the documented
// semantics (doc.go) and the meanings of the default catalog, not from the
// store's code. FEATURES_PROPERTY_EVENTS=N runs a longer replay. Seed 3
// lowers the exact distinct limit to 3, so that distinct states drop
// granules into sketches: a distinct count must still equal the brute
// force when it is at most the limit, and be within 2% (or 2) otherwise.
func TestProperty(t *testing.T) {
	n := 3000
	if s := os.Getenv("FEATURES_PROPERTY_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			if seed == 3 {
				withExactLimit(t, 3)
			}
			runProperty(t, seed, n)
		})
	}
}

const propLateness = 2 * time.Hour

var cheatApps = map[string]bool{"cheat.a": true, "cheat.b": true}

type cheatLists struct{}

func (cheatLists) CountMembers(list string, values []string) int {
	seen := map[string]bool{}
	for _, v := range values {
		if list == "cheat_apps" && cheatApps[v] {
			seen[v] = true
		}
	}
	return len(seen)
}

func randomEvent(r *rand.Rand, at time.Time) *event.Event {
	types := []event.Type{event.Login, event.Login, event.Login, event.Payment, event.Payment, event.Attendance, event.Attendance, event.DeviceReport, event.ServiceLog, event.Register}
	e := &event.Event{OccurredAt: at, Type: types[r.IntN(len(types))]}
	e.TypeName = e.Type.String()
	evSeq++
	e.EventID = fmt.Sprint("p", evSeq)
	acct := fmt.Sprint("acct", r.IntN(20))
	e.AccountID, e.P.Account = acct, "pa:"+acct
	if r.IntN(10) > 0 {
		d := fmt.Sprint("dev", r.IntN(12))
		e.Has.Device, e.Device.DeviceID, e.P.Device = true, d, "pd:"+d
		pk := []string{"ok.a", "ok.b", "cheat.a", "cheat.b"}
		for range r.IntN(4) {
			e.Device.InstalledPackages = append(e.Device.InstalledPackages, pk[r.IntN(len(pk))])
		}
		if r.IntN(3) == 0 {
			e.Device.FlaggedPackages = []string{pk[r.IntN(len(pk))]}
		}
	}
	if r.IntN(10) > 0 {
		i := r.IntN(10)
		e.Has.Network = true
		e.Network.IP = fmt.Sprint("10.0.", i/3, ".", i)
		e.P.IP = "pi:" + e.Network.IP
		e.P.IPPrefix = fmt.Sprint("pn:10.0.", i/3)
	}
	if r.IntN(10) < 6 {
		coords := [][2]float64{{31.23, 121.47}, {39.9, 116.4}, {22.54, 114.06}, {31.23, 121.48}}
		c := coords[r.IntN(len(coords))]
		e.Has.Location = true
		e.Location.Latitude, e.Location.Longitude = c[0], c[1]
		e.P.CoarseLat, e.P.CoarseLon = c[0], c[1]
	}
	switch e.Type {
	case event.Login:
		e.Has.Login = true
		e.Login.Success = r.IntN(3) == 0
	case event.Payment:
		e.Has.Payment = true
		e.Payment.AmountMinor = int64(r.IntN(100000))
		if r.IntN(10) > 0 {
			p := fmt.Sprint("payee", r.IntN(6))
			e.Payment.PayeeAccountID, e.P.Payee = p, "pp:"+p
		}
	case event.Attendance:
		e.Has.Attendance = true
		e.Attendance.SiteID = fmt.Sprint("site", r.IntN(3))
	}
	return e
}

func runProperty(t *testing.T, seed uint64, n int) {
	r := rand.New(rand.NewPCG(seed, seed*7+1))
	dir := t.TempDir()
	db := openDB(t, dir)
	now := base.Add(time.Duration(r.IntN(1000)) * time.Second)
	clk := clock.NewFake(now)
	opts := Options{Lists: cheatLists{}, Lateness: propLateness, CacheEntries: 64 + r.IntN(2000)}
	s := openStore(t, db, clk, opts)
	cat := s.Catalog()
	var committed []*event.Event
	checked, pastLimit := 0, 0
	for i := range n {
		switch {
		case r.IntN(300) == 0:
			now = now.Add(time.Duration(5+r.IntN(35)) * 24 * time.Hour)
		default:
			now = now.Add(time.Duration(r.Int64N(int64(90 * time.Second))))
		}
		clk.Set(now)
		at := now.Add(-time.Duration(r.Int64N(int64(propLateness))))
		if r.IntN(4) == 0 {
			at = now.Add(-time.Duration(r.Int64N(int64(2 * time.Minute)))) // mostly in order
		}
		if r.IntN(8) == 0 {
			at = at.Truncate(10 * time.Second) // on granule boundaries
		}
		ev := randomEvent(r, at)
		if i == n/2 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, dir)
			opts.CacheEntries = 64 + r.IntN(2000)
			s = openStore(t, db, clk, opts)
		}
		if r.IntN(200) == 0 {
			if err := s.Sweep(now); err != nil {
				t.Fatal(err)
			}
		}
		if r.IntN(40) == 0 { // else the deltas wait in memory and in records
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		commit := r.IntN(30) != 0
		if r.IntN(3) == 0 {
			// Ingest's path: nothing to compare now; later reads check it.
			add(t, s, db, ev, commit)
			if commit {
				committed = append(committed, ev)
			}
			continue
		}
		got := apply(t, s, db, ev, commit)
		want := bruteVector(cat, committed, ev)
		for j, d := range cat.defs {
			if !bruteFeatures[d.Name] {
				continue // detection features: same aggregations, own tests
			}
			if d.Agg == AggDistinct && want[j].Present && want[j].Int > int64(exactLimit) {
				pastLimit++
				if diff := math.Abs(float64(got[j].Int - want[j].Int)); got[j].Present && diff <= max(0.02*float64(want[j].Int), 2) {
					continue
				}
			}
			if !sameValue(got[j], want[j]) {
				t.Fatalf("event %d (%s at %v, now %v): %s = %+v, brute force %+v", i, ev.Type, ev.OccurredAt, now, d.Name, got[j], want[j])
			}
			if want[j].Applicable {
				checked++
			}
		}
		if commit {
			committed = append(committed, ev)
		}
	}
	db.Close()
	if checked < n {
		t.Fatalf("only %d applicable values checked", checked)
	}
	if exactLimit < ExactDistinctLimit && pastLimit < n/20 {
		t.Fatalf("only %d distinct counts past the limit of %d", pastLimit, exactLimit)
	}
}

func sameValue(a, b Value) bool {
	if a.Applicable != b.Applicable || a.Present != b.Present || a.Any() == nil {
		return a.Applicable == b.Applicable && a.Present == b.Present
	}
	switch x := b.Any().(type) {
	case float64:
		return math.Abs(a.Float-x) <= 1e-6*math.Max(1, math.Abs(x))
	default:
		return a.Any() == x
	}
}

// inWindow is the documented window: granules of w/60, right-closed; a
// read at t covers the 60 granules ending with the one holding t.
func inWindow(te, t time.Time, w time.Duration) bool {
	g := int64(w) / 60
	gran := func(x time.Time) int64 { // ceil(x/g), times here are positive
		return (x.UnixNano() + g - 1) / g
	}
	gt, ge := gran(t), gran(te)
	return ge <= gt && ge > gt-60
}

type lastCand struct {
	t        time.Time
	lat, lon float64
}

// bruteLast: per horizon-long period the 8 latest distinct values are kept;
// the answer is the latest kept value in (t-h, t] of this or the previous
// period.
func bruteLast(cands []lastCand, t time.Time, h time.Duration) (lastCand, bool) {
	byPeriod := map[int64][]lastCand{}
	for _, c := range cands {
		p := c.t.UnixNano() / int64(h)
		if !slices.Contains(byPeriod[p], c) {
			byPeriod[p] = append(byPeriod[p], c)
		}
	}
	later := func(a, b lastCand) bool {
		if !a.t.Equal(b.t) {
			return a.t.After(b.t)
		}
		if a.lat != b.lat {
			return a.lat > b.lat
		}
		return a.lon > b.lon
	}
	var best lastCand
	found := false
	pt := t.UnixNano() / int64(h)
	for _, p := range []int64{pt, pt - 1} {
		l := byPeriod[p]
		slices.SortFunc(l, func(a, b lastCand) int {
			if later(a, b) {
				return -1
			}
			return 1
		})
		if len(l) > 8 {
			l = l[:8]
		}
		for _, c := range l {
			if !c.t.After(t) && c.t.After(t.Add(-h)) && (!found || later(c, best)) {
				best, found = c, true
			}
		}
	}
	return best, found
}

func greatCircleKM(a, b lastCand) float64 {
	toRad := func(d float64) float64 { return d * math.Pi / 180 }
	p1, p2 := toRad(a.lat), toRad(b.lat)
	dp, dl := p2-p1, toRad(b.lon-a.lon)
	h := math.Pow(math.Sin(dp/2), 2) + math.Cos(p1)*math.Cos(p2)*math.Pow(math.Sin(dl/2), 2)
	return 2 * 6371.0088 * math.Atan2(math.Sqrt(h), math.Sqrt(1-h))
}

// bruteFeatures are the features bruteVector computes: the issue's default
// catalog, which exercises every aggregation, key kind and filter. Features
// added to the catalog later for detection reuse those aggregations.
var bruteFeatures = map[string]bool{
	"login_failures_account_10m": true, "login_failures_ip_1h": true, "ip_distinct_accounts_login_1h": true,
	"device_distinct_accounts_24h": true, "account_distinct_devices_30d": true, "account_device_seen_before": true,
	"account_ip_prefix_seen_before": true, "seconds_since_last_login_account": true, "km_from_last_location_account": true,
	"speed_kmh_from_last_location_account": true, "payments_account_1h": true, "payment_amount_account_24h": true,
	"payee_distinct_payers_24h": true, "attendance_device_distinct_accounts_7d": true,
	"attendance_same_coordinates_account_30d": true, "cheat_packages_installed": true,
	"seconds_since_first_seen_account_device": true,
}

func TestCatalogKeepsIssueFeatures(t *testing.T) {
	cat := DefaultCatalog()
	for name := range bruteFeatures {
		if cat.Index(name) < 0 {
			t.Errorf("the default catalog lost %s", name)
		}
	}
}

func bruteVector(cat *Catalog, prior []*event.Event, ev *event.Event) Vector {
	out := make(Vector, len(cat.defs))
	acct, dev, ipp, pfx := ev.P.Account, ev.P.Device, ev.P.IP, ev.P.IPPrefix
	failedLogin := func(e *event.Event) bool { return e.Type == event.Login && !e.Login.Success }
	count := func(match func(e *event.Event) bool, w time.Duration) int64 {
		var n int64
		for _, e := range prior {
			if match(e) && inWindow(e.OccurredAt, ev.OccurredAt, w) {
				n++
			}
		}
		return n
	}
	distinct := func(match func(e *event.Event) bool, of func(e *event.Event) string, w time.Duration) int64 {
		seen := map[string]bool{}
		for _, e := range prior {
			if v := of(e); v != "" && match(e) && inWindow(e.OccurredAt, ev.OccurredAt, w) {
				seen[v] = true
			}
		}
		return int64(len(seen))
	}
	accountOf := func(e *event.Event) string { return e.P.Account }
	set := func(name string, v Value) { out[cat.Index(name)] = v }

	// Every login reads the failures before it; only failures are counted.
	if ev.Type == event.Login && acct != "" {
		set("login_failures_account_10m", IntValue(count(func(e *event.Event) bool { return failedLogin(e) && e.P.Account == acct }, 10*time.Minute)))
	}
	if ev.Type == event.Login && ipp != "" {
		set("login_failures_ip_1h", IntValue(count(func(e *event.Event) bool { return failedLogin(e) && e.P.IP == ipp }, time.Hour)))
	}
	if ev.Type == event.Login && ipp != "" {
		set("ip_distinct_accounts_login_1h", IntValue(distinct(func(e *event.Event) bool { return e.Type == event.Login && e.P.IP == ipp }, accountOf, time.Hour)))
	}
	if dev != "" {
		set("device_distinct_accounts_24h", IntValue(distinct(func(e *event.Event) bool { return e.P.Device == dev }, accountOf, 24*time.Hour)))
	}
	if acct != "" {
		set("account_distinct_devices_30d", IntValue(distinct(func(e *event.Event) bool { return e.P.Account == acct }, func(e *event.Event) string { return e.P.Device }, 30*24*time.Hour)))
	}
	const h90 = 90 * 24 * time.Hour
	if acct != "" && dev != "" {
		set("account_device_seen_before", BoolValue(count(func(e *event.Event) bool { return e.P.Account == acct && e.P.Device == dev }, h90) > 0))
	}
	if acct != "" && pfx != "" {
		set("account_ip_prefix_seen_before", BoolValue(count(func(e *event.Event) bool { return e.P.Account == acct && e.P.IPPrefix == pfx }, h90) > 0))
	}
	// first_seen: the earliest committed event of the pair in the read's
	// window, whatever the order it came in; a late event can find only
	// later ones in its own granule, which reads as zero, not negative.
	if acct != "" && dev != "" {
		var first time.Time
		found := false
		for _, e := range prior {
			if e.P.Account == acct && e.P.Device == dev && inWindow(e.OccurredAt, ev.OccurredAt, h90) && (!found || e.OccurredAt.Before(first)) {
				first, found = e.OccurredAt, true
			}
		}
		if found {
			set("seconds_since_first_seen_account_device", FloatValue(math.Max(0, float64(ev.OccurredAt.Sub(first))/float64(time.Second))))
		} else {
			set("seconds_since_first_seen_account_device", Absent(KindFloat))
		}
	}
	if ev.Type == event.Login && acct != "" {
		var cands []lastCand
		for _, e := range prior {
			if e.Type == event.Login && e.P.Account == acct {
				cands = append(cands, lastCand{t: e.OccurredAt})
			}
		}
		if c, ok := bruteLast(cands, ev.OccurredAt, h90); ok {
			set("seconds_since_last_login_account", FloatValue(float64(ev.OccurredAt.Sub(c.t))/float64(time.Second)))
		} else {
			set("seconds_since_last_login_account", Absent(KindFloat))
		}
	}
	if ev.Has.Location && acct != "" {
		var cands []lastCand
		for _, e := range prior {
			if e.Has.Location && e.P.Account == acct {
				cands = append(cands, lastCand{e.OccurredAt, e.P.CoarseLat, e.P.CoarseLon})
			}
		}
		if c, ok := bruteLast(cands, ev.OccurredAt, h90); ok {
			km := greatCircleKM(c, lastCand{ev.OccurredAt, ev.P.CoarseLat, ev.P.CoarseLon})
			hours := math.Max(ev.OccurredAt.Sub(c.t).Seconds(), 1) / 3600
			set("km_from_last_location_account", FloatValue(km))
			set("speed_kmh_from_last_location_account", FloatValue(km/hours))
		} else {
			set("km_from_last_location_account", Absent(KindFloat))
			set("speed_kmh_from_last_location_account", Absent(KindFloat))
		}
	}
	if ev.Type == event.Payment && acct != "" {
		set("payments_account_1h", IntValue(count(func(e *event.Event) bool { return e.Type == event.Payment && e.P.Account == acct }, time.Hour)))
		var sum int64
		for _, e := range prior {
			if e.Type == event.Payment && e.P.Account == acct && inWindow(e.OccurredAt, ev.OccurredAt, 24*time.Hour) {
				sum += e.Payment.AmountMinor
			}
		}
		set("payment_amount_account_24h", IntValue(sum))
	}
	if ev.Type == event.Payment && ev.P.Payee != "" {
		set("payee_distinct_payers_24h", IntValue(distinct(func(e *event.Event) bool { return e.Type == event.Payment && e.P.Payee == ev.P.Payee }, accountOf, 24*time.Hour)))
	}
	if ev.Type == event.Attendance && dev != "" {
		set("attendance_device_distinct_accounts_7d", IntValue(distinct(func(e *event.Event) bool { return e.Type == event.Attendance && e.P.Device == dev }, accountOf, 7*24*time.Hour)))
	}
	if ev.Type == event.Attendance && ev.Has.Location && acct != "" {
		set("attendance_same_coordinates_account_30d", IntValue(count(func(e *event.Event) bool {
			return e.Type == event.Attendance && e.Has.Location && e.P.Account == acct && e.P.CoarseLat == ev.P.CoarseLat && e.P.CoarseLon == ev.P.CoarseLon
		}, 30*24*time.Hour)))
	}
	if ev.Has.Device {
		pk := map[string]bool{}
		for _, p := range append(slices.Clone(ev.Device.InstalledPackages), ev.Device.FlaggedPackages...) {
			if cheatApps[p] {
				pk[p] = true
			}
		}
		set("cheat_packages_installed", IntValue(int64(len(pk))))
	}
	return out
}

var _ = pebble.NoSync
