package population

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func newPop(t *testing.T, o Options) *Population {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeterministic(t *testing.T) {
	a, b := newPop(t, Options{Seed: 1}), newPop(t, Options{Seed: 1})
	c := newPop(t, Options{Seed: 2})
	for _, i := range []int{0, 1, 4999, 9999} {
		if !reflect.DeepEqual(a.Account(i), b.Account(i)) || !reflect.DeepEqual(a.Device(i), b.Device(i)) {
			t.Fatalf("entity %d differs between two populations of one seed", i)
		}
		if reflect.DeepEqual(a.Device(i), c.Device(i)) {
			t.Fatalf("device %d same under another seed", i)
		}
	}
	if !reflect.DeepEqual(a.Site(3, 0), b.Site(3, 0)) {
		t.Fatal("site differs")
	}
}

func TestDefaults(t *testing.T) {
	o := newPop(t, Options{}).Options()
	if o.Accounts != 10_000 || o.Devices != 12_000 || o.Orgs != 50 || o.Merchants != 100 {
		t.Fatalf("defaults %+v", o)
	}
	if _, err := New(Options{Devices: -1}); err == nil {
		t.Fatal("negative size accepted")
	}
}

func TestDevices(t *testing.T) {
	p := newPop(t, Options{Seed: 9, Accounts: 3000, Devices: 3600})
	ids := map[string]bool{}
	for i := range 3600 + 200 { // registered devices and some from outside
		d := p.Device(i)
		if ids[d.ID] {
			t.Fatalf("device id %s repeated", d.ID)
		}
		ids[d.ID] = true
		switch d.Platform {
		case "ios":
			if d.IDFA == "" || d.IMEI != "" || len(d.Installed) != 0 {
				t.Fatalf("ios device %+v", d)
			}
		case "android", "harmonyos":
			if !luhn(d.IMEI) || len(d.AndroidID) != 16 || d.OAID == "" || len(d.Installed) < 12 {
				t.Fatalf("android device %+v", d)
			}
		default:
			t.Fatalf("platform %q", d.Platform)
		}
		for _, pkg := range d.Installed {
			if slices.Contains(CheatPackages(0), pkg) {
				t.Fatalf("benign device %d has cheat app %s", i, pkg)
			}
		}
	}
}

func luhn(s string) bool {
	if len(s) != 15 {
		return false
	}
	sum := 0
	for i := 0; i < 15; i++ {
		v := int(s[i] - '0')
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// TestTablets: extra devices are household tablets shared by at most three
// accounts, and every account's phone is its own.
func TestTablets(t *testing.T) {
	p := newPop(t, Options{Seed: 4, Accounts: 3000, Devices: 3600})
	users := map[int]int{}
	tablets := 0
	for i := range 3000 {
		a := p.Account(i)
		if a.Phone() != i || a.ID != AccountID(i) {
			t.Fatalf("account %d: phone %d id %s", i, a.Phone(), a.ID)
		}
		for _, d := range a.Devices {
			users[d]++
		}
		if tab, ok := a.Tablet(); ok {
			tablets++
			if tab < 3000 || tab >= 3600 || !slices.Contains(p.Household(i), i) {
				t.Fatalf("account %d tablet %d household %v", i, tab, p.Household(i))
			}
		}
	}
	for d, n := range users {
		if n > 3 {
			t.Fatalf("device %d shared by %d accounts", d, n)
		}
	}
	if tablets < 600 {
		t.Fatalf("only %d accounts use a tablet", tablets)
	}
	if _, ok := newPop(t, Options{Accounts: 100, Devices: 100}).Account(5).Tablet(); ok {
		t.Fatal("tablet without spare devices")
	}
}

func TestSites(t *testing.T) {
	p := newPop(t, Options{Seed: 5, Accounts: 2000})
	n := 0
	err := p.Sites(func(s Site) error {
		n++
		if len(s.BSSIDs) < 2 || !s.Office.Contains(s.NAT) || s.Office.Bits() != 24 || len(s.Beacons) == 0 {
			t.Fatalf("site %+v", s)
		}
		o := p.Org(s.Org)
		if km := DistanceKm(s.Lat, s.Lon, o.City.Lat, o.City.Lon); km > 13 {
			t.Fatalf("site %s %0.f km from its city", s.ID, km)
		}
		return nil
	})
	if err != nil || n < p.Options().Orgs {
		t.Fatalf("%d sites, %v", n, err)
	}
	var b strings.Builder
	if err := p.WriteSites(&b); err != nil || strings.Count(b.String(), "\n") != n {
		t.Fatalf("WriteSites: %v, %d lines for %d sites", err, strings.Count(b.String(), "\n"), n)
	}
	a := p.Account(17)
	s := p.AccountSite(a)
	if s.Org != a.Org || a.Org != p.OrgOf(17) {
		t.Fatalf("account 17 org %d site org %d", a.Org, s.Org)
	}
}

func TestEmployees(t *testing.T) {
	p := newPop(t, Options{Seed: 5, Accounts: 1001, Orgs: 7})
	seen := map[int]bool{}
	for org := range 7 {
		n := 0
		for k := 0; ; k++ {
			i, ok := p.Employee(org, k)
			if !ok {
				break
			}
			n++
			if seen[i] || p.OrgOf(i) != org || p.Account(i).Org != org {
				t.Fatalf("org %d employee %d is account %d (org %d, seen %v)", org, k, i, p.OrgOf(i), seen[i])
			}
			seen[i] = true
		}
		if n != p.OrgSize(org) {
			t.Fatalf("org %d: %d employees, OrgSize %d", org, n, p.OrgSize(org))
		}
	}
	if len(seen) != 1001 {
		t.Fatalf("%d accounts in orgs, want 1001", len(seen))
	}
	// A household shares a home and an org.
	a, b := p.Account(300), p.Account(302)
	if a.HomeIP != b.HomeIP || a.HomeLat != b.HomeLat || a.Org != b.Org || a.HomeBSSID != b.HomeBSSID {
		t.Fatalf("household split: %+v / %+v", a, b)
	}
}

func TestCheatApps(t *testing.T) {
	all := CheatPackages(0)
	if len(all) < 40 {
		t.Fatalf("%d cheat apps, want at least 40", len(all))
	}
	seen := map[string]bool{}
	for _, a := range CheatApps {
		if seen[a.Package] || !strings.Contains(a.Package, ".") {
			t.Fatalf("cheat app %q repeated or malformed", a.Package)
		}
		seen[a.Package] = true
	}
	for _, k := range []CheatKind{CheatFakeGPS, CheatCloner, CheatHook} {
		if len(CheatPackages(k)) < 8 {
			t.Fatalf("kind %d: %d packages", k, len(CheatPackages(k)))
		}
	}
	for _, b := range BenignApps {
		if seen[b] {
			t.Fatalf("%s is both benign and a cheat app", b)
		}
	}
}

func TestGeo(t *testing.T) {
	// Beijing to Shanghai is about 1,070 km.
	if km := DistanceKm(39.9042, 116.4074, 31.2304, 121.4737); km < 1050 || km > 1090 {
		t.Fatalf("Beijing-Shanghai %0.f km", km)
	}
	la, lo := Offset(31.2304, 121.4737, 5000, 45)
	if km := DistanceKm(31.2304, 121.4737, la, lo); km < 4.99 || km > 5.01 {
		t.Fatalf("offset 5 km gave %f km", km)
	}
}

func BenchmarkAccount(b *testing.B) {
	p, _ := New(Options{Seed: 1, Accounts: 1_000_000, Devices: 1_000_000})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Account(i % 1_000_000)
		i += 7919
	}
}

func TestCheatKinds(t *testing.T) {
	for pkg, want := range map[string]CheatKind{
		"com.lexa.fakegps": CheatFakeGPS, "ru.gavrikov.mocklocations": CheatFakeGPS, "com.lerist.fakelocation": CheatFakeGPS,
		"com.lbe.parallel.intl": CheatCloner, "io.va.exposed": CheatCloner, "com.qihoo.magic": CheatCloner, "com.vmos.pro": CheatCloner,
		"com.topjohnwu.magisk": CheatHook, "org.lsposed.manager": CheatHook, "re.frida.server": CheatHook, "me.weishu.exp": CheatHook,
	} {
		if got := kindOf(pkg); got != want {
			t.Errorf("kindOf(%s) = %d, want %d", pkg, got, want)
		}
	}
}
