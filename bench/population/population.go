package population

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
)

// Options size a Population. The zero value is a 10,000-account world.
type Options struct {
	// Seed makes the population; the same seed gives the same world.
	Seed uint64
	// Accounts is the number of registered accounts. Default 10,000.
	Accounts int
	// Devices is the number of registered devices. Default Accounts*6/5: one
	// phone per account plus household tablets.
	Devices int
	// Orgs is the number of organizations (employers with attendance sites).
	// Default Accounts/200, at least 1.
	Orgs int
	// Merchants is the number of shops accounts pay. Default Accounts/100,
	// at least 10.
	Merchants int
}

// Validate reports options that cannot make a population.
func (o Options) Validate() error {
	if o.Accounts < 0 || o.Devices < 0 || o.Orgs < 0 || o.Merchants < 0 {
		return errors.New("population: sizes must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Accounts == 0 {
		o.Accounts = 10_000
	}
	if o.Devices == 0 {
		o.Devices = o.Accounts * 6 / 5
	}
	if o.Orgs == 0 {
		o.Orgs = max(1, o.Accounts/200)
	}
	if o.Merchants == 0 {
		o.Merchants = max(10, o.Accounts/100)
	}
	return o
}

// Population is a lazily generated synthetic world.
type Population struct {
	opts Options
}

// New returns the population for opts.
func New(opts Options) (*Population, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Population{opts: opts.withDefaults()}, nil
}

// Options returns the options in force, defaults filled in.
func (p *Population) Options() Options { return p.opts }

// Entity kinds, mixed into the seed so that account 7 and device 7 are
// unrelated.
const (
	kindAccount uint64 = 0xa5a5_0001 + iota
	kindDevice
	kindOrg
	kindMerchant
	kindSite
	kindHousehold
)

// rng returns the generator of entity (kind, i): the same stream every time.
func (p *Population) rng(kind, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(p.opts.Seed^(kind*0x9e3779b97f4a7c15), i*0xbf58476d1ce4e5b9+kind))
}

// Account is a registered user.
type Account struct {
	Index int
	ID    string
	Org   int // index of the employer
	Site  int // index of the org's site the account checks in at
	City  City
	// Home is where the account lives, a few km from its city's centre.
	HomeLat, HomeLon float64
	// Devices are the device indices the account uses: its phone first, then
	// a household tablet for some accounts.
	Devices []int
	// HomeIP is the home broadband address (its /24 is the account's usual
	// prefix); MobileIP the phone's carrier address.
	HomeIP, MobileIP netip.Addr
	HomeBSSID        string
	HomeSSID         string
	Carrier          string
	// Payees are accounts this one transfers money to now and then.
	Payees []int
}

// Phone is the account's own phone.
func (a Account) Phone() int { return a.Devices[0] }

// Tablet is the household tablet and whether the account uses one.
func (a Account) Tablet() (int, bool) {
	if len(a.Devices) > 1 {
		return a.Devices[1], true
	}
	return 0, false
}

// AccountID returns the identifier of account i without generating the rest.
func AccountID(i int) string { return "acct-" + pad(i, 7) }

func pad(i, w int) string {
	s := strconv.Itoa(i)
	for len(s) < w {
		s = "0" + s
	}
	return s
}

// Account returns account i (0 <= i < Accounts).
func (p *Population) Account(i int) Account {
	r := p.rng(kindAccount, uint64(i))
	org := p.OrgOf(i)
	o := p.orgCore(org)
	a := Account{Index: i, ID: AccountID(i), Org: org, City: o.City}
	a.Site = r.IntN(o.NumSites)
	// The household (accounts 3h..3h+2) shares a home: its place, its
	// broadband line and its Wi-Fi.
	hr := p.rng(kindHousehold, uint64(i/3))
	a.HomeLat, a.HomeLon = Offset(o.City.Lat, o.City.Lon, 2000+hr.Float64()*15000, hr.Float64()*360)
	a.HomeIP = broadbandAddr(hr)
	a.HomeBSSID = RandomBSSID(hr)
	a.HomeSSID = homeSSIDs[hr.IntN(len(homeSSIDs))] + "-" + strconv.Itoa(1000+hr.IntN(9000))
	a.Devices = []int{i % p.opts.Devices}
	if t, ok := p.householdTablet(i); ok && r.IntN(3) < 2 {
		a.Devices = append(a.Devices, t)
	}
	a.Carrier = carriers[r.IntN(len(carriers))]
	a.MobileIP = mobileAddr(r, a.Carrier)
	n := 1 + r.IntN(4)
	for range n {
		if p.opts.Accounts > 1 {
			j := r.IntN(p.opts.Accounts)
			if j != i {
				a.Payees = append(a.Payees, j)
			}
		}
	}
	return a
}

// OrgOf returns the org account i works for. A household (accounts 3h,
// 3h+1, 3h+2) works for one org, so that it lives in one city.
func (p *Population) OrgOf(i int) int { return (i / 3) % p.opts.Orgs }

// Employee returns the k-th account of org, and false when there is none
// (k past the org's size). Employees 0, 1, 2 share a household, and so on.
func (p *Population) Employee(org, k int) (int, bool) {
	i := 3*(org+(k/3)*p.opts.Orgs) + k%3
	return i, org >= 0 && org < p.opts.Orgs && k >= 0 && i < p.opts.Accounts
}

// OrgSize is the number of accounts of org.
func (p *Population) OrgSize(org int) int {
	n := 0
	for k := 0; ; k += 3 {
		i, ok := p.Employee(org, k)
		if !ok {
			return n
		}
		n += min(3, p.opts.Accounts-i)
	}
}

// householdTablet is the tablet of account i's household (accounts 3h, 3h+1,
// 3h+2), when the population has devices left over for one.
func (p *Population) householdTablet(i int) (int, bool) {
	if p.opts.Devices <= p.opts.Accounts {
		return 0, false
	}
	h := i / 3
	if h >= p.opts.Devices-p.opts.Accounts {
		return 0, false
	}
	return p.opts.Accounts + h, true
}

// Household returns the accounts sharing account i's household tablet
// (including i), or nil when it has none.
func (p *Population) Household(i int) []int {
	t, ok := p.householdTablet(i)
	if !ok {
		return nil
	}
	var out []int
	for j := (i / 3) * 3; j < (i/3)*3+3 && j < p.opts.Accounts; j++ {
		if d := p.Account(j).Devices; len(d) > 1 && d[1] == t {
			out = append(out, j)
		}
	}
	return out
}

// Device is a phone, tablet or emulator.
type Device struct {
	Index      int
	ID         string
	Platform   string
	Model      string
	OSVersion  string
	AppVersion string
	IMEI       string
	AndroidID  string
	OAID       string
	IDFA       string
	Timezone   string
	Language   string
	// Installed is the app list (Android and HarmonyOS only; iOS does not
	// expose it).
	Installed []string
	// DeveloperMode is on for a few enthusiasts' phones: not a cheat by itself.
	DeveloperMode bool
}

type model struct{ platform, name, os string }

var phoneModels = []model{
	{"android", "Xiaomi 14", "14"}, {"android", "Redmi K70", "14"}, {"android", "Redmi Note 13 Pro", "13"},
	{"android", "OPPO Reno11", "14"}, {"android", "OPPO A2", "13"}, {"android", "vivo X100", "14"},
	{"android", "vivo Y36", "13"}, {"android", "OnePlus 12", "14"}, {"android", "Honor Magic6", "14"},
	{"android", "Honor X50", "13"}, {"android", "realme GT5", "14"}, {"android", "Samsung Galaxy S24", "14"},
	{"ios", "iPhone15,2", "17.5.1"}, {"ios", "iPhone16,1", "17.6"}, {"ios", "iPhone14,5", "16.7.8"},
	{"ios", "iPhone13,2", "17.4"}, {"ios", "iPhone12,1", "16.6"},
	{"harmonyos", "HUAWEI Mate 60 Pro", "4.2.0"}, {"harmonyos", "HUAWEI nova 12", "4.0.0"},
	{"harmonyos", "HUAWEI P60", "4.2.0"},
}

var tabletModels = []model{
	{"android", "Xiaomi Pad 6", "13"}, {"harmonyos", "HUAWEI MatePad 11", "4.0.0"},
	{"ios", "iPad13,18", "17.5"}, {"android", "Lenovo Xiaoxin Pad Pro", "13"},
}

var appVersions = []string{"8.0.47", "8.0.48", "8.0.49", "8.0.50"}

// Device returns device i. Indices below Devices are the registered
// population (household tablets among them); any other non-negative index is
// a phone from outside it.
func (p *Population) Device(i int) Device {
	r := p.rng(kindDevice, uint64(i))
	d := Device{Index: i, Timezone: "Asia/Shanghai", Language: "zh-CN"}
	d.ID = fmt.Sprintf("dev-%016x", r.Uint64())
	ms := phoneModels
	if i >= p.opts.Accounts && i < p.opts.Devices {
		ms = tabletModels
	}
	m := ms[r.IntN(len(ms))]
	d.Platform, d.Model, d.OSVersion = m.platform, m.name, m.os
	d.AppVersion = appVersions[r.IntN(len(appVersions))]
	if r.IntN(20) == 0 {
		d.Language = "en-US"
	}
	switch d.Platform {
	case "ios":
		d.IDFA = upperUUID(r)
	default:
		d.IMEI = imei(r)
		d.AndroidID = fmt.Sprintf("%016x", r.Uint64())
		d.OAID = lowerUUID(r)
		d.DeveloperMode = r.IntN(30) == 0
		d.Installed = pick(r, BenignApps, 12+r.IntN(25))
	}
	return d
}

// Org is an employer.
type Org struct {
	Index    int
	ID       string
	Name     string
	City     City
	NumSites int
}

var orgWords = []string{"Huaxin", "Jinding", "Tianrui", "Hengtong", "Boyuan", "Zhongke", "Xinda", "Ruifeng", "Longteng", "Anbang", "Meida", "Kaiyuan"}

func (p *Population) orgCore(i int) Org {
	r := p.rng(kindOrg, uint64(i))
	c := Cities[r.IntN(len(Cities))]
	return Org{
		Index: i, ID: "org-" + pad(i, 5),
		Name:     orgWords[r.IntN(len(orgWords))] + " " + strconv.Itoa(i),
		City:     c,
		NumSites: 1 + r.IntN(3),
	}
}

// Org returns org i (0 <= i < Orgs).
func (p *Population) Org(i int) Org { return p.orgCore(i) }

// Site is a place employees check in at.
type Site struct {
	Org      int
	Index    int // within the org
	ID       string
	Lat, Lon float64
	// RadiusM is how far from (Lat, Lon) a genuine check-in may be.
	RadiusM float64
	// BSSIDs are the site's access points; SSID their network name.
	BSSIDs []string
	SSID   string
	// Office is the site's /24; NAT is the address its traffic leaves from.
	Office netip.Prefix
	NAT    netip.Addr
	// Beacons are the site's Bluetooth beacons.
	Beacons []string
}

// Site returns site k of org i.
func (p *Population) Site(org, k int) Site {
	o := p.orgCore(org)
	r := p.rng(kindSite, uint64(org)<<8|uint64(k))
	s := Site{Org: org, Index: k, ID: "site-" + pad(org, 5) + "-" + strconv.Itoa(k)}
	s.Lat, s.Lon = Offset(o.City.Lat, o.City.Lon, r.Float64()*12000, r.Float64()*360)
	s.RadiusM = 150 + float64(r.IntN(250))
	for range 2 + r.IntN(5) {
		s.BSSIDs = append(s.BSSIDs, RandomBSSID(r))
	}
	s.SSID = o.Name + "-Staff"
	b := broadbandAddr(r).As4()
	s.Office = netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], b[2], 0}), 24)
	s.NAT = netip.AddrFrom4([4]byte{b[0], b[1], b[2], byte(1 + r.IntN(30))})
	for range 2 + r.IntN(3) {
		s.Beacons = append(s.Beacons, fmt.Sprintf("beacon-%08x", r.Uint32()))
	}
	return s
}

// AccountSite returns the site account a checks in at.
func (p *Population) AccountSite(a Account) Site { return p.Site(a.Org, a.Site) }

// Merchant is a shop accounts pay for orders.
type Merchant struct {
	Index int
	ID    string
}

// Merchant returns merchant i (0 <= i < Merchants).
func (p *Population) Merchant(i int) Merchant {
	return Merchant{Index: i, ID: "mch-" + pad(i, 6)}
}

// PopularMerchant picks a merchant with a Zipf-like popularity: a few big
// shops, a long tail.
func (p *Population) PopularMerchant(r *rand.Rand) Merchant {
	n := p.opts.Merchants
	// Inverse-transform of a 1/x density over [1, n+1).
	i := int(math.Exp(r.Float64()*math.Log(float64(n)+1))) - 1
	return p.Merchant(min(max(i, 0), n-1))
}

var carriers = []string{"China Mobile", "China Unicom", "China Telecom"}
var homeSSIDs = []string{"TP-LINK", "ChinaNet", "CMCC", "MERCURY", "Xiaomi", "HUAWEI"}

// Public first octets of Chinese broadband and mobile address space.
var (
	broadbandOctets = []byte{27, 36, 58, 59, 60, 61, 101, 106, 110, 113, 114, 115, 116, 118, 119, 121, 122, 124, 125, 180, 182, 183, 202, 218, 219, 220, 221, 222}
	mobileOctets    = map[string][]byte{
		"China Mobile":  {111, 112, 117, 120, 223},
		"China Unicom":  {42, 123, 175},
		"China Telecom": {14, 171, 223},
	}
	// Hosting and proxy ranges that stuffing tools and attackers rent.
	hostingOctets = []byte{5, 23, 45, 64, 91, 103, 104, 146, 154, 185, 193, 194}
)

func broadbandAddr(r *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{broadbandOctets[r.IntN(len(broadbandOctets))], byte(r.IntN(256)), byte(r.IntN(256)), byte(2 + r.IntN(252))})
}

func mobileAddr(r *rand.Rand, carrier string) netip.Addr {
	o := mobileOctets[carrier]
	return netip.AddrFrom4([4]byte{o[r.IntN(len(o))], byte(r.IntN(256)), byte(r.IntN(256)), byte(2 + r.IntN(252))})
}

// ResidentialAddr is a random address in broadband space: what a residential
// proxy network hands an attacker.
func ResidentialAddr(r *rand.Rand) netip.Addr { return broadbandAddr(r) }

// HostingPrefix is a random /24 in hosting space.
func HostingPrefix(r *rand.Rand) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{hostingOctets[r.IntN(len(hostingOctets))], byte(r.IntN(256)), byte(r.IntN(256)), 0}), 24)
}

// HostInPrefix is a random host address inside the /24 pfx.
func HostInPrefix(r *rand.Rand, pfx netip.Prefix) netip.Addr {
	b := pfx.Addr().As4()
	b[3] = byte(2 + r.IntN(252))
	return netip.AddrFrom4(b)
}

// Common access point vendor OUIs (TP-Link, Huawei, Xiaomi, H3C, Ruijie).
var ouis = [][3]byte{{0x50, 0xbd, 0x5f}, {0x48, 0x7d, 0x2e}, {0x64, 0x09, 0x80}, {0x58, 0x6a, 0xb1}, {0x30, 0x0d, 0x9e}}

// RandomBSSID returns a locally plausible access point MAC.
func RandomBSSID(r *rand.Rand) string {
	// Common AP vendor OUIs (TP-Link, Huawei, Xiaomi, H3C, Ruijie).
	o := ouis[r.IntN(len(ouis))]
	v := r.Uint32()
	b := [6]byte{o[0], o[1], o[2], byte(v), byte(v >> 8), byte(v >> 16)}
	const hexd = "0123456789abcdef"
	var out [17]byte
	for i, x := range b {
		out[i*3], out[i*3+1] = hexd[x>>4], hexd[x&15]
		if i < 5 {
			out[i*3+2] = ':'
		}
	}
	return string(out[:])
}

func imei(r *rand.Rand) string {
	var d [15]byte
	d[0], d[1] = 8, 6 // a TAC allocated in China
	for i := 2; i < 14; i++ {
		d[i] = byte(r.IntN(10))
	}
	// Luhn check digit.
	sum := 0
	for i := 0; i < 14; i++ {
		v := int(d[i])
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d[14] = byte((10 - sum%10) % 10)
	for i := range d {
		d[i] += '0'
	}
	return string(d[:])
}

func lowerUUID(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

func upperUUID(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08X-%04X-4%03X-%04X-%012X", a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

// pick returns n distinct entries of pool in pool order.
func pick(r *rand.Rand, pool []string, n int) []string {
	n = min(n, len(pool))
	idx := r.Perm(len(pool))[:n]
	// Keep pool order so the list looks like a sorted app list.
	mark := make([]bool, len(pool))
	for _, i := range idx {
		mark[i] = true
	}
	out := make([]string, 0, n)
	for i, ok := range mark {
		if ok {
			out = append(out, pool[i])
		}
	}
	return out
}

// SiteRecord is a site as WriteSites writes it: what a rule author needs to
// check a check-in against its site (coordinates, radius, known access
// points, office network).
type SiteRecord struct {
	SiteID     string   `json:"site_id"`
	OrgID      string   `json:"org_id"`
	Latitude   float64  `json:"latitude"`
	Longitude  float64  `json:"longitude"`
	RadiusM    float64  `json:"radius_m"`
	BSSIDs     []string `json:"bssids"`
	SSID       string   `json:"ssid"`
	OfficeCIDR string   `json:"office_cidr"`
	NATIP      string   `json:"nat_ip"`
	Beacons    []string `json:"beacons"`
}

// Record returns s as a SiteRecord.
func (p *Population) Record(s Site) SiteRecord {
	return SiteRecord{
		SiteID: s.ID, OrgID: p.Org(s.Org).ID, Latitude: s.Lat, Longitude: s.Lon, RadiusM: s.RadiusM,
		BSSIDs: s.BSSIDs, SSID: s.SSID, OfficeCIDR: s.Office.String(), NATIP: s.NAT.String(), Beacons: s.Beacons,
	}
}

// Sites calls fn with every site of every org, in order, stopping at the
// first error.
func (p *Population) Sites(fn func(Site) error) error {
	for o := range p.opts.Orgs {
		for k := range p.orgCore(o).NumSites {
			if err := fn(p.Site(o, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteSites writes every site as one JSON line (SiteRecord).
func (p *Population) WriteSites(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := p.Sites(func(s Site) error { return enc.Encode(p.Record(s)) }); err != nil {
		return fmt.Errorf("population: write sites: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("population: write sites: %w", err)
	}
	return nil
}
