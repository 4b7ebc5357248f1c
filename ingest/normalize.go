package ingest

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MinKeyLen is the shortest pseudonym key New accepts.
const MinKeyLen = 16

// Options configure a Normalizer.
type Options struct {
	// PseudonymKey keys the HMAC behind every pseudonym. Required, at least
	// MinKeyLen bytes; riskd keeps it in credentials.json (pseudonym_key).
	PseudonymKey []byte
	// OldKeys are keys that were current before a rotation, newest first.
	// New data is always pseudonymized with PseudonymKey; Pseudonyms returns
	// the pseudonyms under the old keys too, so that lookups (a subject's
	// decisions, an erasure) still find data written before the rotation
	// until it expires. Drop a key from here once the longest retention class
	// has passed since the rotation.
	OldKeys [][]byte
	// Clock tells the server's time for the occurred_at bounds. Default: the
	// real clock.
	Clock clock.Clock
	// MaxEventAge is the lateness bound: an event whose occurred_at is older
	// than now - MaxEventAge is refused with ErrTooOld. Default
	// DefaultMaxEventAge (24h). The future bound is the constant MaxFuture.
	MaxEventAge time.Duration
}

// Normalizer validates, normalizes and pseudonymizes events.
type Normalizer struct {
	macs   []*keyedMAC // [0] is the current key
	clock  clock.Clock
	maxAge time.Duration
	uas    *cleanUAs // user agents known to carry no identifier; safe for concurrent use
}

// New returns a Normalizer for opts.
func New(opts Options) (*Normalizer, error) {
	if len(opts.PseudonymKey) < MinKeyLen {
		return nil, fmt.Errorf("ingest: pseudonym key must be at least %d bytes, got %d", MinKeyLen, len(opts.PseudonymKey))
	}
	n := &Normalizer{clock: clock.Or(opts.Clock), maxAge: opts.MaxEventAge, uas: newCleanUAs()}
	if n.maxAge <= 0 {
		n.maxAge = DefaultMaxEventAge
	}
	n.macs = append(n.macs, newKeyedMAC(opts.PseudonymKey))
	for i, k := range opts.OldKeys {
		if len(k) < MinKeyLen {
			return nil, fmt.Errorf("ingest: old pseudonym key %d must be at least %d bytes", i, MinKeyLen)
		}
		n.macs = append(n.macs, newKeyedMAC(k))
	}
	return n, nil
}

// MaxEventAge returns the lateness bound in force.
func (n *Normalizer) MaxEventAge() time.Duration { return n.maxAge }

// validator keeps the first error met, so that the normalizing code reads
// straight through; fields are checked in proto order, which makes the
// reported field deterministic.
type validator struct {
	err *FieldError
}

func (v *validator) fail(field, reason string) {
	if v.err == nil {
		v.err = fieldErr(field, reason)
	}
}

// str trims s and checks it is valid UTF-8 of at most max bytes.
func (v *validator) str(field, s string, max int) string {
	if !utf8.ValidString(s) {
		v.fail(field, "not valid UTF-8")
		return ""
	}
	s = strings.TrimSpace(s)
	if len(s) > max {
		v.fail(field, "longer than "+strconv.Itoa(max)+" bytes")
		return ""
	}
	return s
}

func (v *validator) required(field, s string, max int) string {
	s = v.str(field, s, max)
	if s == "" && v.err == nil {
		v.fail(field, "required")
	}
	return s
}

// list checks a repeated string field: at most maxN entries of at most max
// bytes each. It returns in itself when no entry needed trimming.
func (v *validator) list(field string, in []string, maxN, max int) []string {
	if len(in) > maxN {
		v.fail(field+"["+strconv.Itoa(maxN)+"]", "at most "+strconv.Itoa(maxN)+" entries")
		return nil
	}
	out := in
	for i, s := range in {
		t := s
		if !utf8.ValidString(s) {
			v.fail(field+"["+strconv.Itoa(i)+"]", "not valid UTF-8")
			return nil
		}
		t = strings.TrimSpace(s)
		if len(t) > max {
			v.fail(field+"["+strconv.Itoa(i)+"]", "longer than "+strconv.Itoa(max)+" bytes")
			return nil
		}
		if len(t) != len(s) {
			if &out[0] == &in[0] {
				out = append([]string(nil), in...)
			}
			out[i] = t
		}
	}
	return out
}

// lower lowercases ASCII letters only: identifiers and keywords are ASCII,
// and Unicode case mapping may change a string's length (and so its bound).
// It returns s itself when nothing changes.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			// b is never written again: view it as a string without a copy.
			return unsafe.String(&b[0], len(b))
		}
	}
	return s
}

// canonicalMAC returns a 48-bit MAC (or BSSID) as lowercase colon-separated
// hex, whatever separators the caller used (colons, dashes, dots or none).
// A string that is not such a MAC is returned lowercased as it is, so that an
// odd value from a device still compares equal to itself.
func canonicalMAC(s string) string {
	var hex [12]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		case c == ':' || c == '-' || c == '.':
			continue
		default:
			return lower(s)
		}
		if n == len(hex) {
			return lower(s)
		}
		hex[n] = c
		n++
	}
	if n != len(hex) {
		return lower(s)
	}
	var out [17]byte
	for i := 0; i < 6; i++ {
		out[i*3] = hex[i*2]
		out[i*3+1] = hex[i*2+1]
		if i < 5 {
			out[i*3+2] = ':'
		}
	}
	if string(out[:]) == s {
		return s
	}
	return string(out[:])
}

// Coarsen rounds a coordinate to CoordDecimals places: what is stored and
// what location features use.
func Coarsen(deg float64) float64 {
	const scale = 1000 // 10^CoordDecimals
	return math.Round(deg*scale) / scale
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Normalize validates pb once, at the edge, and returns the in-memory event
// (raw, normalized values plus pseudonyms in ev.P) and the stored form (a new
// message carrying pseudonyms in place of identifiers, coarse coordinates,
// scrubbed free text). A validation failure is a *FieldError matching
// ErrInvalid (and ErrTooOld or ErrInFuture for occurred_at out of bounds).
//
// The results may share string slices and the attributes map with pb; the
// caller must not modify pb afterwards.
func (n *Normalizer) Normalize(pb *riskv1.Event) (*event.Event, *riskv1.Event, error) {
	if pb == nil {
		return nil, nil, fieldErr("event", "required")
	}
	ev := &event.Event{}
	st, err := n.NormalizeInto(ev, pb)
	if err != nil {
		return nil, nil, err
	}
	return ev, st, nil
}

// NormalizeInto is Normalize writing the in-memory event into *ev, which it
// overwrites whole, so that a caller can reuse events (an Event is a
// kilobyte, the largest allocation of an ingested event): *ev must not be
// in use elsewhere, and after an error its contents are unspecified.
func (n *Normalizer) NormalizeInto(ev *event.Event, pb *riskv1.Event) (*riskv1.Event, error) {
	if pb == nil {
		return nil, fieldErr("event", "required")
	}
	*ev = event.Event{}
	var v validator
	st, stTime, stNet, stLog := newStored(pb)
	mac := n.macs[0]
	ar := newArena(pb)
	ps := func(kind, s string) string { return ar.pseudonym(mac, kind, s) }

	ev.EventID = v.required("event_id", pb.GetEventId(), MaxIDLen)
	st.EventId = ev.EventID

	switch t := pb.GetType(); {
	case t == riskv1.EventType_EVENT_TYPE_UNSPECIFIED:
		v.fail("type", "required")
	case t < 0 || t > riskv1.EventType_EVENT_TYPE_SERVICE_LOG:
		v.fail("type", "unknown event type "+strconv.Itoa(int(t)))
	default:
		ev.Type = event.Type(t)
		ev.TypeName = ev.Type.String()
		st.Type = t
	}

	if ts := pb.GetOccurredAt(); ts == nil {
		v.fail("occurred_at", "required")
	} else if ts.CheckValid() != nil {
		v.fail("occurred_at", "not a valid timestamp")
	} else {
		ev.OccurredAt = ts.AsTime()
		stTime.Seconds, stTime.Nanos = ts.Seconds, ts.Nanos
		st.OccurredAt = stTime
		now := n.clock.Now()
		switch {
		case ev.OccurredAt.After(now.Add(MaxFuture)):
			if v.err == nil {
				v.err = &FieldError{Field: "occurred_at", Reason: "more than " + MaxFuture.String() + " ahead of the server clock", Err: ErrInFuture}
			}
		case ev.OccurredAt.Before(now.Add(-n.maxAge)):
			if v.err == nil {
				v.err = &FieldError{Field: "occurred_at", Reason: "older than the lateness bound (" + n.maxAge.String() + ")", Err: ErrTooOld}
			}
		}
	}

	ev.AccountID = v.required("account_id", pb.GetAccountId(), MaxIDLen)
	ev.P.Account = ps(KindAccount, ev.AccountID)
	st.AccountId = ev.P.Account
	ev.OrgID = v.str("org_id", pb.GetOrgId(), MaxIDLen)
	ev.P.Org = ps(KindOrg, ev.OrgID)
	st.OrgId = ev.P.Org

	if d := pb.GetDevice(); d != nil {
		ev.Has.Device = true
		e := &ev.Device
		e.DeviceID = v.str("device.device_id", d.DeviceId, MaxIDLen)
		e.IMEI = v.str("device.imei", d.Imei, MaxIDLen)
		e.IDFA = lower(v.str("device.idfa", d.Idfa, MaxIDLen))
		e.AndroidID = lower(v.str("device.android_id", d.AndroidId, MaxIDLen))
		e.OAID = lower(v.str("device.oaid", d.Oaid, MaxIDLen))
		e.MAC = canonicalMAC(v.str("device.mac", d.Mac, MaxIDLen))
		e.IMSI = v.str("device.imsi", d.Imsi, MaxIDLen)
		e.Platform = lower(v.str("device.platform", d.Platform, MaxShortLen))
		e.Model = v.str("device.model", d.Model, MaxTextLen)
		e.OSVersion = v.str("device.os_version", d.OsVersion, MaxTextLen)
		e.AppVersion = v.str("device.app_version", d.AppVersion, MaxTextLen)
		e.Rooted, e.Emulator, e.MockLocationEnabled, e.DeveloperMode = d.Rooted, d.Emulator, d.MockLocationEnabled, d.DeveloperMode
		e.HookFrameworks = v.list("device.hook_frameworks", d.HookFrameworks, MaxHookFrameworks, MaxTextLen)
		e.InstalledPackages = v.list("device.installed_packages", d.InstalledPackages, MaxPackages, MaxPackageLen)
		e.Timezone = v.str("device.timezone", d.Timezone, MaxTimezoneLen)
		e.Language = v.str("device.language", d.Language, MaxLanguageLen)
		e.FlaggedPackages = v.list("device.flagged_packages", d.FlaggedPackages, MaxPackages, MaxPackageLen)
		if v.err == nil {
			p := &ev.P
			p.Device = ps(KindDevice, e.DeviceID)
			p.IMEI = ps(KindIMEI, e.IMEI)
			p.IDFA = ps(KindIDFA, e.IDFA)
			p.AndroidID = ps(KindAndroidID, e.AndroidID)
			p.OAID = ps(KindOAID, e.OAID)
			p.MAC = ps(KindMAC, e.MAC)
			p.IMSI = ps(KindIMSI, e.IMSI)
			st.Device = &riskv1.Device{
				DeviceId: p.Device, Imei: p.IMEI, Idfa: p.IDFA, AndroidId: p.AndroidID,
				Oaid: p.OAID, Mac: p.MAC, Imsi: p.IMSI,
				Platform: e.Platform, Model: e.Model, OsVersion: e.OSVersion, AppVersion: e.AppVersion,
				Rooted: e.Rooted, Emulator: e.Emulator, MockLocationEnabled: e.MockLocationEnabled,
				DeveloperMode: e.DeveloperMode, HookFrameworks: e.HookFrameworks,
				InstalledPackages: e.InstalledPackages, Timezone: e.Timezone, Language: e.Language,
				FlaggedPackages: e.FlaggedPackages,
			}
		}
	}

	if nw := pb.GetNetwork(); nw != nil {
		ev.Has.Network = true
		e := &ev.Network
		var addr netip.Addr
		if ip := v.str("network.ip", nw.Ip, MaxIPLen); ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				v.fail("network.ip", "not an IPv4 or IPv6 address")
			} else {
				addr = a.Unmap().WithZone("")
				// Most callers send the canonical form already: keep
				// their string rather than make an equal one.
				var buf [64]byte
				if canon := addr.AppendTo(buf[:0]); string(canon) == ip {
					e.IP = ip
				} else {
					e.IP = string(canon)
				}
			}
		}
		e.UserAgent = v.str("network.user_agent", nw.UserAgent, MaxUserAgentLen)
		e.Carrier = v.str("network.carrier", nw.Carrier, MaxTextLen)
		e.WifiBSSID = canonicalMAC(v.str("network.wifi_bssid", nw.WifiBssid, MaxBSSIDLen))
		e.WifiSSID = v.str("network.wifi_ssid", nw.WifiSsid, MaxTextLen)
		e.CellID = v.str("network.cell_id", nw.CellId, MaxTextLen)
		e.VPN, e.Proxy = nw.Vpn, nw.Proxy
		if v.err == nil {
			p := &ev.P
			if addr.IsValid() {
				p.IP = ps(KindIP, e.IP)
				bits := 64
				if addr.Is4() {
					bits = 24
				}
				pfx, _ := addr.Prefix(bits)
				var buf [64]byte
				p.IPPrefix = arenaPseudonym(&ar, mac, KindIPPrefix, pfx.AppendTo(buf[:0]))
			}
			p.BSSID = ps(KindBSSID, e.WifiBSSID)
			w := stNet
			w.Ip, w.IpPrefix, w.UserAgent, w.Carrier = p.IP, p.IPPrefix, n.scrubUA(e.UserAgent), e.Carrier
			w.WifiBssid, w.WifiSsid, w.CellId = p.BSSID, ps(KindSSID, e.WifiSSID), e.CellID
			w.Vpn, w.Proxy = e.VPN, e.Proxy
			st.Network = w
		}
	}

	if l := pb.GetLocation(); l != nil {
		ev.Has.Location = true
		switch {
		case !finite(l.Latitude) || l.Latitude < -90 || l.Latitude > 90:
			v.fail("location.latitude", "must be a number in -90..90")
		case !finite(l.Longitude) || l.Longitude < -180 || l.Longitude > 180:
			v.fail("location.longitude", "must be a number in -180..180")
		case !finite(l.AccuracyM) || l.AccuracyM < 0 || l.AccuracyM > MaxAccuracyM:
			v.fail("location.accuracy_m", "must be a number in 0..100000")
		}
		e := &ev.Location
		e.Latitude, e.Longitude, e.AccuracyM, e.Mocked = l.Latitude, l.Longitude, l.AccuracyM, l.Mocked
		e.Provider = lower(v.str("location.provider", l.Provider, MaxShortLen))
		if v.err == nil {
			ev.P.CoarseLat, ev.P.CoarseLon = Coarsen(e.Latitude), Coarsen(e.Longitude)
			st.Location = &riskv1.Location{
				Latitude: ev.P.CoarseLat, Longitude: ev.P.CoarseLon,
				// The accuracy the device reported for its own fix: not
				// personal, and rules read it, so replay needs it as it was.
				AccuracyM: e.AccuracyM,
				Provider:  e.Provider, Mocked: e.Mocked,
			}
		}
	}

	if l := pb.GetLogin(); l != nil {
		ev.Has.Login = true
		e := &ev.Login
		e.Success = l.Success
		e.Method = lower(v.str("login.method", l.Method, MaxShortLen))
		e.FailureReason = v.str("login.failure_reason", l.FailureReason, MaxTextLen)
		if v.err == nil {
			st.Login = &riskv1.Login{Success: e.Success, Method: e.Method, FailureReason: n.scrub(e.FailureReason)}
		}
	}

	if p := pb.GetPayment(); p != nil {
		ev.Has.Payment = true
		e := &ev.Payment
		if p.AmountMinor < 0 || p.AmountMinor > MaxAmountMinor {
			v.fail("payment.amount_minor", "must be in 0..10^15 minor units")
		}
		e.AmountMinor = p.AmountMinor
		e.Currency = v.str("payment.currency", p.Currency, 3)
		if v.err == nil && !isCurrency(e.Currency) {
			v.fail("payment.currency", "must be three capital letters (ISO 4217)")
		}
		e.Kind = lower(v.str("payment.kind", p.Kind, MaxShortLen))
		e.PayeeAccountID = v.str("payment.payee_account_id", p.PayeeAccountId, MaxIDLen)
		e.InstrumentID = v.str("payment.instrument_id", p.InstrumentId, MaxIDLen)
		if v.err == nil {
			ev.P.Payee = ps(KindAccount, e.PayeeAccountID)
			ev.P.Instrument = ps(KindInstrument, e.InstrumentID)
			st.Payment = &riskv1.Payment{
				AmountMinor: e.AmountMinor, Currency: e.Currency, Kind: e.Kind,
				PayeeAccountId: ev.P.Payee, InstrumentId: ev.P.Instrument,
			}
		}
	}

	if a := pb.GetAttendance(); a != nil {
		ev.Has.Attendance = true
		e := &ev.Attendance
		e.SiteID = v.str("attendance.site_id", a.SiteId, MaxIDLen)
		e.Method = lower(v.str("attendance.method", a.Method, MaxShortLen))
		e.BeaconIDs = v.list("attendance.beacon_ids", a.BeaconIds, MaxBeacons, MaxIDLen)
		if v.err == nil {
			// A site is the organization's, not a person's: kept as given, so
			// that rules matching it against the org's site lists replay exactly.
			ev.P.Site = e.SiteID
			st.Attendance = &riskv1.Attendance{SiteId: e.SiteID, Method: e.Method, BeaconIds: e.BeaconIDs}
		}
	}

	if s := pb.GetServiceLog(); s != nil {
		ev.Has.ServiceLog = true
		e := &ev.ServiceLog
		e.Action = lower(v.str("service_log.action", s.Action, MaxActionLen))
		e.Resource = v.str("service_log.resource", s.Resource, MaxResourceLen)
		e.Query = v.str("service_log.query", s.Query, MaxQueryLen)
		if s.Status < 0 || s.Status > MaxStatus {
			v.fail("service_log.status", "must be in 0..999")
		}
		e.Status = s.Status
		if v.err == nil {
			// A search query is whatever a person typed: stored only as its
			// pseudonym, which still lets features count repeats.
			sl := stLog
			if sl == nil {
				sl = new(riskv1.ServiceLog)
			}
			sl.Action, sl.Resource, sl.Query, sl.Status = e.Action, n.scrub(e.Resource), ps(KindQuery, e.Query), e.Status
			st.ServiceLog = sl
		}
	}

	if v.err == nil {
		switch ev.Type {
		case event.Login:
			if !ev.Has.Login {
				v.fail("login", "required for LOGIN events")
			}
		case event.Payment:
			if !ev.Has.Payment {
				v.fail("payment", "required for PAYMENT events")
			}
		case event.Attendance:
			if !ev.Has.Attendance {
				v.fail("attendance", "required for ATTENDANCE events")
			}
		case event.ServiceLog:
			if !ev.Has.ServiceLog {
				v.fail("service_log", "required for SERVICE_LOG events")
			}
		case event.DeviceReport:
			if !ev.Has.Device {
				v.fail("device", "required for DEVICE_REPORT events")
			}
		}
	}

	if attrs := pb.GetAttributes(); len(attrs) > 0 && v.err == nil {
		ev.Attributes, st.Attributes = n.attributes(&v, attrs)
	}

	if v.err != nil {
		return nil, v.err
	}
	return st, nil
}

// newStored allocates the stored form of pb together with the parts most
// events carry, in one object: the timestamp, the network when pb has one,
// and the service log of an access log (a network and a service log, the
// busiest kind of event). Fewer objects cost the allocator and the collector
// less; the parts live as long as the event does anyway. stNet and stLog are
// nil when pb lacks the part (stLog also when pb has no network).
func newStored(pb *riskv1.Event) (st *riskv1.Event, stTime *timestamppb.Timestamp, stNet *riskv1.Network, stLog *riskv1.ServiceLog) {
	switch {
	case pb.Network != nil && pb.ServiceLog != nil:
		b := new(struct {
			ev riskv1.Event
			ts timestamppb.Timestamp
			nw riskv1.Network
			sl riskv1.ServiceLog
		})
		return &b.ev, &b.ts, &b.nw, &b.sl
	case pb.Network != nil:
		b := new(struct {
			ev riskv1.Event
			ts timestamppb.Timestamp
			nw riskv1.Network
		})
		return &b.ev, &b.ts, &b.nw, nil
	default:
		b := new(struct {
			ev riskv1.Event
			ts timestamppb.Timestamp
		})
		return &b.ev, &b.ts, nil, nil
	}
}

func isCurrency(s string) bool {
	return len(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z'
}

// attributes validates the caller's extras and returns them for memory (values
// trimmed; the input map itself when nothing changed) and for storage
// (identifier-looking values pseudonymized, see scrub and identifierKind).
func (n *Normalizer) attributes(v *validator, in map[string]string) (mem, stored map[string]string) {
	if len(in) > MaxAttributes {
		v.fail("attributes", "at most "+strconv.Itoa(MaxAttributes)+" entries")
		return nil, nil
	}
	// Map order is random: report the smallest offending key, so that the
	// same bad event always names the same field.
	var bad string
	var badErr *FieldError
	mem = in
	copied := false
	stored = make(map[string]string, len(in))
	for k, val := range in {
		var fe *FieldError
		switch {
		case k == "" || len(k) > MaxAttrKeyLen || !utf8.ValidString(k):
			fe = fieldErr("attributes", "keys must be 1.."+strconv.Itoa(MaxAttrKeyLen)+" bytes of UTF-8")
		case !utf8.ValidString(val):
			fe = fieldErr(attrField(k), "not valid UTF-8")
		}
		t := strings.TrimSpace(val)
		if fe == nil && len(t) > MaxAttrValueLen {
			fe = fieldErr(attrField(k), "longer than "+strconv.Itoa(MaxAttrValueLen)+" bytes")
		}
		if fe != nil {
			if badErr == nil || k < bad {
				bad, badErr = k, fe
			}
			continue
		}
		if len(t) != len(val) {
			if !copied {
				copied = true
				mem = make(map[string]string, len(in))
				for k2, v2 := range in {
					mem[k2] = v2
				}
			}
			mem[k] = t
		}
		if kind := identifierKind(k); kind != "" && t != "" {
			stored[k] = n.identifierValue(kind, t)
		} else {
			stored[k] = n.scrub(t)
		}
	}
	if badErr != nil {
		v.err = badErr
		return nil, nil
	}
	return mem, stored
}

func attrField(k string) string { return "attributes[" + strconv.Quote(k) + "]" }

// identifierValue pseudonymizes a whole attribute value that its key says is
// an identifier of kind; phone numbers are reduced to their digits first so
// that formatting does not change the pseudonym.
func (n *Normalizer) identifierValue(kind, s string) string {
	switch kind {
	case KindPhone:
		if d, ok := phoneDigits(s); ok {
			return n.Pseudonym(KindPhone, d)
		}
	case KindMAC, KindBSSID:
		s = canonicalMAC(s)
	case KindIP:
		if a, err := netip.ParseAddr(s); err == nil {
			s = a.Unmap().WithZone("").String()
		}
	case KindEmail:
		s = lower(s)
	}
	return n.Pseudonym(kind, s)
}
