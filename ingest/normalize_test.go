package ingest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/cputime"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newTestNormalizer(t testing.TB) *Normalizer {
	t.Helper()
	n, err := New(Options{PseudonymKey: testKey, Clock: clock.NewFake(testNow)})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Raw identifiers used by the fixtures; none may reach the stored form.
const (
	rawIMEI      = "356938035643809"
	rawIDFA      = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
	rawAndroidID = "9774d56d682e549c"
	rawOAID      = "a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6"
	rawMAC       = "AC:DE:48:00:11:22"
	rawIMSI      = "460001234567890"
	rawIP        = "203.0.113.57"
	rawBSSID     = "F0-9F-C2-11-22-33"
	rawPhone     = "+86 138 1234 5678"
	rawDeviceID  = "dev-7f3a9c"
	rawAccount   = "acct-42"
)

func loginEvent() *riskv1.Event {
	return &riskv1.Event{
		EventId:    "evt-1",
		Type:       riskv1.EventType_EVENT_TYPE_LOGIN,
		OccurredAt: timestamppb.New(testNow.Add(-time.Minute)),
		AccountId:  rawAccount,
		OrgId:      "org-1",
		Device: &riskv1.Device{
			DeviceId: rawDeviceID, Imei: rawIMEI, Idfa: rawIDFA, AndroidId: rawAndroidID, Oaid: rawOAID,
			Mac: rawMAC, Imsi: rawIMSI, Platform: " Android ", Model: "Pixel 8", OsVersion: "14",
			AppVersion: "5.2.0", Rooted: true, HookFrameworks: []string{"xposed"},
			InstalledPackages: []string{"com.tencent.mm", "com.eg.android.AlipayGphone"},
			Timezone:          "Asia/Shanghai", Language: "zh-CN",
		},
		Network: &riskv1.Network{
			Ip: rawIP, UserAgent: "okhttp/4.12.0", Carrier: "China Mobile", WifiBssid: rawBSSID,
			WifiSsid: "HQ-Guest", CellId: "46000-1a2b",
		},
		Location: &riskv1.Location{Latitude: 31.230416, Longitude: 121.473701, AccuracyM: 12, Provider: "GPS"},
		Login:    &riskv1.Login{Success: true, Method: "password"},
		Attributes: map[string]string{
			"phone":   rawPhone,
			"note":    "call me on " + rawPhone + " please",
			"channel": "app",
		},
	}
}

func paymentEvent() *riskv1.Event {
	e := loginEvent()
	e.EventId = "evt-2"
	e.Type = riskv1.EventType_EVENT_TYPE_PAYMENT
	e.Login = nil
	e.Payment = &riskv1.Payment{AmountMinor: 12_345, Currency: "CNY", Kind: "transfer", PayeeAccountId: "acct-99", InstrumentId: "card-1"}
	return e
}

func attendanceEvent() *riskv1.Event {
	e := loginEvent()
	e.EventId = "evt-3"
	e.Type = riskv1.EventType_EVENT_TYPE_ATTENDANCE
	e.Login = nil
	e.Attendance = &riskv1.Attendance{SiteId: "site-sh-1", Method: "wifi", BeaconIds: []string{"b-1"}}
	return e
}

func TestNormalizeLogin(t *testing.T) {
	n := newTestNormalizer(t)
	ev, st, err := n.Normalize(loginEvent())
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != event.Login || ev.TypeName != "LOGIN" {
		t.Errorf("type = %v %q", ev.Type, ev.TypeName)
	}
	if ev.Device.Platform != "android" {
		t.Errorf("platform = %q, want android", ev.Device.Platform)
	}
	if ev.Device.MAC != "ac:de:48:00:11:22" || ev.Network.WifiBSSID != "f0:9f:c2:11:22:33" {
		t.Errorf("mac %q bssid %q not canonical", ev.Device.MAC, ev.Network.WifiBSSID)
	}
	if ev.Device.IDFA != strings.ToLower(rawIDFA) {
		t.Errorf("idfa = %q", ev.Device.IDFA)
	}
	if ev.Network.IP != rawIP || ev.Device.IMEI != rawIMEI {
		t.Errorf("raw values must stay in memory: ip %q imei %q", ev.Network.IP, ev.Device.IMEI)
	}
	if !ev.Has.Device || !ev.Has.Network || !ev.Has.Location || !ev.Has.Login || ev.Has.Payment {
		t.Errorf("presence = %+v", ev.Has)
	}
	if want := n.Pseudonym(KindIMEI, rawIMEI); ev.P.IMEI != want || st.Device.Imei != want {
		t.Errorf("imei pseudonym: P %q stored %q want %q", ev.P.IMEI, st.Device.Imei, want)
	}
	if want := n.Pseudonym(KindIPPrefix, "203.0.113.0/24"); ev.P.IPPrefix != want || st.Network.IpPrefix != want {
		t.Errorf("ip prefix pseudonym: P %q stored %q want %q", ev.P.IPPrefix, st.Network.IpPrefix, want)
	}
	if st.AccountId != n.Pseudonym(KindAccount, rawAccount) {
		t.Errorf("stored account = %q", st.AccountId)
	}
	if st.Location.Latitude != 31.230 || st.Location.Longitude != 121.474 {
		t.Errorf("stored location not coarsened: %v,%v", st.Location.Latitude, st.Location.Longitude)
	}
	if ev.P.CoarseLat != 31.230 || ev.P.CoarseLon != 121.474 {
		t.Errorf("coarse P = %v,%v", ev.P.CoarseLat, ev.P.CoarseLon)
	}
	if ev.Location.Latitude != 31.230416 {
		t.Errorf("in-memory latitude changed: %v", ev.Location.Latitude)
	}
	if st.Attributes["phone"] != n.Pseudonym(KindPhone, "8613812345678") {
		t.Errorf("phone attribute stored as %q", st.Attributes["phone"])
	}
	if st.Attributes["channel"] != "app" || ev.Attributes["phone"] != rawPhone {
		t.Errorf("attributes: stored %v mem %v", st.Attributes, ev.Attributes)
	}
	if len(ev.P.Account) != PseudonymLen {
		t.Errorf("pseudonym length %d", len(ev.P.Account))
	}
}

func TestNormalizeCanonicalIP(t *testing.T) {
	n := newTestNormalizer(t)
	for _, tc := range []struct{ in, want, prefix string }{
		{" 203.0.113.57 ", "203.0.113.57", "203.0.113.0/24"},
		{"::ffff:203.0.113.57", "203.0.113.57", "203.0.113.0/24"},
		{"2001:DB8:0:0:1::7", "2001:db8::1:0:0:7", "2001:db8::/64"},
		{"fe80::1%eth0", "fe80::1", "fe80::/64"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			e := loginEvent()
			e.Network.Ip = tc.in
			ev, st, err := n.Normalize(e)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Network.IP != tc.want {
				t.Errorf("ip = %q, want %q", ev.Network.IP, tc.want)
			}
			if st.Network.Ip != n.Pseudonym(KindIP, tc.want) || st.Network.IpPrefix != n.Pseudonym(KindIPPrefix, tc.prefix) {
				t.Errorf("stored ip/prefix pseudonyms do not match canonical %q / %q", tc.want, tc.prefix)
			}
		})
	}
}

func TestNormalizeBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "com.example.p"
		}
		return out
	}
	tooManyAttrs := map[string]string{}
	for i := 0; i <= MaxAttributes; i++ {
		tooManyAttrs[long(i+1)] = "v"
	}
	for _, tc := range []struct {
		name   string
		mutate func(e *riskv1.Event)
		field  string
		is     error
	}{
		{"missing event_id", func(e *riskv1.Event) { e.EventId = "" }, "event_id", nil},
		{"blank event_id", func(e *riskv1.Event) { e.EventId = "   " }, "event_id", nil},
		{"long event_id", func(e *riskv1.Event) { e.EventId = long(MaxIDLen + 1) }, "event_id", nil},
		{"bad utf8 event_id", func(e *riskv1.Event) { e.EventId = "a\xffb" }, "event_id", nil},
		{"missing type", func(e *riskv1.Event) { e.Type = 0 }, "type", nil},
		{"unknown type", func(e *riskv1.Event) { e.Type = 99 }, "type", nil},
		{"negative type", func(e *riskv1.Event) { e.Type = -1 }, "type", nil},
		{"missing occurred_at", func(e *riskv1.Event) { e.OccurredAt = nil }, "occurred_at", nil},
		{"invalid timestamp", func(e *riskv1.Event) { e.OccurredAt = &timestamppb.Timestamp{Seconds: 1, Nanos: -5} }, "occurred_at", nil},
		{"in future", func(e *riskv1.Event) { e.OccurredAt = timestamppb.New(testNow.Add(MaxFuture + time.Second)) }, "occurred_at", ErrInFuture},
		{"too old", func(e *riskv1.Event) { e.OccurredAt = timestamppb.New(testNow.Add(-DefaultMaxEventAge - time.Second)) }, "occurred_at", ErrTooOld},
		{"missing account_id", func(e *riskv1.Event) { e.AccountId = "" }, "account_id", nil},
		{"long account_id", func(e *riskv1.Event) { e.AccountId = long(MaxIDLen + 1) }, "account_id", nil},
		{"long org_id", func(e *riskv1.Event) { e.OrgId = long(MaxIDLen + 1) }, "org_id", nil},
		{"login without login", func(e *riskv1.Event) { e.Login = nil }, "login", nil},
		{"payment without payment", func(e *riskv1.Event) { e.Type = riskv1.EventType_EVENT_TYPE_PAYMENT }, "payment", nil},
		{"attendance without attendance", func(e *riskv1.Event) { e.Type = riskv1.EventType_EVENT_TYPE_ATTENDANCE }, "attendance", nil},
		{"service log without service_log", func(e *riskv1.Event) { e.Type = riskv1.EventType_EVENT_TYPE_SERVICE_LOG }, "service_log", nil},
		{"device report without device", func(e *riskv1.Event) {
			e.Type = riskv1.EventType_EVENT_TYPE_DEVICE_REPORT
			e.Device = nil
		}, "device", nil},
		{"bad ip", func(e *riskv1.Event) { e.Network.Ip = "300.1.2.3" }, "network.ip", nil},
		{"ip garbage", func(e *riskv1.Event) { e.Network.Ip = "not-an-ip" }, "network.ip", nil},
		{"long user agent", func(e *riskv1.Event) { e.Network.UserAgent = long(MaxUserAgentLen + 1) }, "network.user_agent", nil},
		{"long bssid", func(e *riskv1.Event) { e.Network.WifiBssid = long(MaxBSSIDLen + 1) }, "network.wifi_bssid", nil},
		{"latitude high", func(e *riskv1.Event) { e.Location.Latitude = 90.5 }, "location.latitude", nil},
		{"latitude NaN", func(e *riskv1.Event) { e.Location.Latitude = math.NaN() }, "location.latitude", nil},
		{"longitude low", func(e *riskv1.Event) { e.Location.Longitude = -180.01 }, "location.longitude", nil},
		{"longitude Inf", func(e *riskv1.Event) { e.Location.Longitude = math.Inf(1) }, "location.longitude", nil},
		{"accuracy negative", func(e *riskv1.Event) { e.Location.AccuracyM = -1 }, "location.accuracy_m", nil},
		{"accuracy NaN", func(e *riskv1.Event) { e.Location.AccuracyM = math.NaN() }, "location.accuracy_m", nil},
		{"long imei", func(e *riskv1.Event) { e.Device.Imei = long(MaxIDLen + 1) }, "device.imei", nil},
		{"long platform", func(e *riskv1.Event) { e.Device.Platform = long(MaxShortLen + 1) }, "device.platform", nil},
		{"too many packages", func(e *riskv1.Event) { e.Device.InstalledPackages = many(MaxPackages + 1) }, "device.installed_packages[1000]", nil},
		{"long package", func(e *riskv1.Event) { e.Device.InstalledPackages[1] = long(MaxPackageLen + 1) }, "device.installed_packages[1]", nil},
		{"bad utf8 package", func(e *riskv1.Event) { e.Device.InstalledPackages[0] = "\xc3" }, "device.installed_packages[0]", nil},
		{"too many flagged", func(e *riskv1.Event) { e.Device.FlaggedPackages = many(MaxPackages + 1) }, "device.flagged_packages[1000]", nil},
		{"too many hook frameworks", func(e *riskv1.Event) { e.Device.HookFrameworks = many(MaxHookFrameworks + 1) }, "device.hook_frameworks[32]", nil},
		{"long timezone", func(e *riskv1.Event) { e.Device.Timezone = long(MaxTimezoneLen + 1) }, "device.timezone", nil},
		{"long language", func(e *riskv1.Event) { e.Device.Language = long(MaxLanguageLen + 1) }, "device.language", nil},
		{"long login method", func(e *riskv1.Event) { e.Login.Method = long(MaxShortLen + 1) }, "login.method", nil},
		{"too many attributes", func(e *riskv1.Event) { e.Attributes = tooManyAttrs }, "attributes", nil},
		{"long attribute key", func(e *riskv1.Event) { e.Attributes[long(MaxAttrKeyLen+1)] = "v" }, "attributes", nil},
		{"empty attribute key", func(e *riskv1.Event) { e.Attributes[""] = "v" }, "attributes", nil},
		{"long attribute value", func(e *riskv1.Event) { e.Attributes["b"] = long(MaxAttrValueLen + 1) }, `attributes["b"]`, nil},
		{"two bad attribute values", func(e *riskv1.Event) {
			e.Attributes["z"] = long(MaxAttrValueLen + 1)
			e.Attributes["a"] = "\xff"
		}, `attributes["a"]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNormalizer(t)
			e := loginEvent()
			tc.mutate(e)
			checkFieldError(t, n, e, tc.field, tc.is)
		})
	}

	payment := []struct {
		name   string
		mutate func(p *riskv1.Payment)
		field  string
	}{
		{"negative amount", func(p *riskv1.Payment) { p.AmountMinor = -1 }, "payment.amount_minor"},
		{"overflowing amount", func(p *riskv1.Payment) { p.AmountMinor = MaxAmountMinor + 1 }, "payment.amount_minor"},
		{"max int amount", func(p *riskv1.Payment) { p.AmountMinor = math.MaxInt64 }, "payment.amount_minor"},
		{"lowercase currency", func(p *riskv1.Payment) { p.Currency = "cny" }, "payment.currency"},
		{"short currency", func(p *riskv1.Payment) { p.Currency = "CN" }, "payment.currency"},
		{"long currency", func(p *riskv1.Payment) { p.Currency = "CNYY" }, "payment.currency"},
		{"missing currency", func(p *riskv1.Payment) { p.Currency = "" }, "payment.currency"},
		{"digit currency", func(p *riskv1.Payment) { p.Currency = "C1Y" }, "payment.currency"},
		{"long payee", func(p *riskv1.Payment) { p.PayeeAccountId = long(MaxIDLen + 1) }, "payment.payee_account_id"},
	}
	for _, tc := range payment {
		t.Run(tc.name, func(t *testing.T) {
			e := paymentEvent()
			tc.mutate(e.Payment)
			checkFieldError(t, newTestNormalizer(t), e, tc.field, nil)
		})
	}

	other := []struct {
		name  string
		event func() *riskv1.Event
		field string
	}{
		{"too many beacons", func() *riskv1.Event {
			e := attendanceEvent()
			e.Attendance.BeaconIds = many(MaxBeacons + 1)
			return e
		}, "attendance.beacon_ids[32]"},
		{"long site", func() *riskv1.Event {
			e := attendanceEvent()
			e.Attendance.SiteId = long(MaxIDLen + 1)
			return e
		}, "attendance.site_id"},
		{"long resource", func() *riskv1.Event { return serviceLogEvent(long(MaxResourceLen+1), "", 200) }, "service_log.resource"},
		{"long query", func() *riskv1.Event { return serviceLogEvent("/", long(MaxQueryLen+1), 200) }, "service_log.query"},
		{"bad status", func() *riskv1.Event { return serviceLogEvent("/", "", 1000) }, "service_log.status"},
		{"nil event", func() *riskv1.Event { return nil }, "event"},
	}
	for _, tc := range other {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldError(t, newTestNormalizer(t), tc.event(), tc.field, nil)
		})
	}
}

func serviceLogEvent(resource, query string, status int32) *riskv1.Event {
	e := loginEvent()
	e.Type = riskv1.EventType_EVENT_TYPE_SERVICE_LOG
	e.Login = nil
	e.ServiceLog = &riskv1.ServiceLog{Action: "search", Resource: resource, Query: query, Status: status}
	return e
}

func checkFieldError(t *testing.T, n *Normalizer, e *riskv1.Event, field string, is error) {
	t.Helper()
	ev, st, err := n.Normalize(e)
	if err == nil {
		t.Fatalf("accepted; want error on %s", field)
	}
	if ev != nil || st != nil {
		t.Errorf("results returned with an error")
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	if fe.Field != field {
		t.Errorf("field = %q (%s), want %q", fe.Field, fe.Reason, field)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not match ErrInvalid", err)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %v does not match %v", err, is)
	}
}

func TestNormalizeTimeBounds(t *testing.T) {
	clk := clock.NewFake(testNow)
	n, err := New(Options{PseudonymKey: testKey, Clock: clk, MaxEventAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"at the future bound", testNow.Add(MaxFuture), nil},
		{"past the future bound", testNow.Add(MaxFuture + time.Nanosecond), ErrInFuture},
		{"at the age bound", testNow.Add(-time.Hour), nil},
		{"past the age bound", testNow.Add(-time.Hour - time.Nanosecond), ErrTooOld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := loginEvent()
			e.OccurredAt = timestamppb.New(tc.at)
			_, _, err := n.Normalize(e)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewRejectsShortKey(t *testing.T) {
	if _, err := New(Options{PseudonymKey: []byte("short")}); err == nil {
		t.Error("New accepted a 5-byte key")
	}
	if _, err := New(Options{PseudonymKey: testKey, OldKeys: [][]byte{[]byte("x")}}); err == nil {
		t.Error("New accepted a 1-byte old key")
	}
}

func TestPseudonymRotation(t *testing.T) {
	oldKey := []byte("fedcba9876543210fedcba9876543210")
	before, err := New(Options{PseudonymKey: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	after, err := New(Options{PseudonymKey: testKey, OldKeys: [][]byte{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	old := before.Pseudonym(KindIMEI, rawIMEI)
	if after.Pseudonym(KindIMEI, rawIMEI) == old {
		t.Fatal("new key gives the old pseudonym")
	}
	all := after.Pseudonyms(KindIMEI, rawIMEI)
	if len(all) != 2 || all[0] != after.Pseudonym(KindIMEI, rawIMEI) || all[1] != old {
		t.Errorf("Pseudonyms = %v, want [current, %s]", all, old)
	}
	if olds := after.OldKeyPseudonyms(KindIMEI, rawIMEI); len(olds) != 1 || olds[0] != old {
		t.Errorf("OldKeyPseudonyms = %v, want [%s]", olds, old)
	}
	if olds := before.OldKeyPseudonyms(KindIMEI, rawIMEI); olds != nil {
		t.Errorf("OldKeyPseudonyms without a rotation = %v, want nil", olds)
	}
	if after.Pseudonym(KindIMEI, rawIMEI) == after.Pseudonym(KindIMSI, rawIMEI) {
		t.Error("kinds are not domain-separated")
	}
}

// TestStoredHasNoRawIdentifier marshals the stored form of events carrying
// known identifiers and looks for each raw value, in every spelling a
// normalizer might keep, in the bytes.
func TestStoredHasNoRawIdentifier(t *testing.T) {
	n := newTestNormalizer(t)
	for _, e := range []*riskv1.Event{loginEvent(), paymentEvent(), attendanceEvent(), func() *riskv1.Event {
		e := serviceLogEvent("/users/13812345678/profile?ip=203.0.113.57&mac=ac:de:48:00:11:22", "my phone 13812345678", 200)
		e.Attributes["contact_email"] = "Jane.Doe@example.com"
		e.Attributes["free"] = "wifi f0:9f:c2:11:22:33 from 2001:db8::1 mail jane.doe@example.com"
		e.Attributes["clientIp"] = rawIP
		e.Login = &riskv1.Login{FailureReason: "sms to 138-1234-5678 failed"}
		return e
	}()} {
		t.Run(e.EventId+e.Type.String(), func(t *testing.T) {
			_, st, err := n.Normalize(e)
			if err != nil {
				t.Fatal(err)
			}
			b, err := proto.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ToLower(string(b))
			for _, raw := range []string{
				rawIMEI, rawIDFA, rawAndroidID, rawOAID, rawMAC, "ac:de:48:00:11:22", rawIMSI, rawIP, "203.0.113",
				rawBSSID, "f0:9f:c2:11:22:33", rawPhone, "13812345678", "1234 5678", "1234-5678", rawDeviceID, rawAccount,
				"jane.doe", "2001:db8::1", "acct-99", "card-1", "my phone",
			} {
				if strings.Contains(text, strings.ToLower(raw)) {
					t.Errorf("stored form contains %q", raw)
				}
			}
		})
	}
}

func TestNormalizeIdempotent(t *testing.T) {
	n := newTestNormalizer(t)
	for _, e := range []*riskv1.Event{loginEvent(), paymentEvent(), attendanceEvent(), serviceLogEvent("/a", "q", 200)} {
		ev, st, err := n.Normalize(e)
		if err != nil {
			t.Fatal(err)
		}
		ev2, st2, err := n.Normalize(toProto(ev))
		if err != nil {
			t.Fatalf("normalized event does not re-validate: %v", err)
		}
		if !proto.Equal(st, st2) {
			t.Errorf("normalizing twice changed the stored form:\n%v\n%v", st, st2)
		}
		if ev2.P != ev.P {
			t.Errorf("normalizing twice changed the pseudonyms")
		}
		back, err := FromStored(st)
		if err != nil {
			t.Fatal(err)
		}
		if back.P != ev.P {
			t.Errorf("FromStored P = %+v\nwant %+v", back.P, ev.P)
		}
		if back.Has != ev.Has || back.Type != ev.Type || !back.OccurredAt.Equal(ev.OccurredAt) || back.TypeName != ev.TypeName {
			t.Errorf("FromStored lost structure")
		}
	}
}

// toProto turns a normalized event back into its request form.
func toProto(ev *event.Event) *riskv1.Event {
	e := &riskv1.Event{
		EventId: ev.EventID, Type: riskv1.EventType(ev.Type), OccurredAt: timestamppb.New(ev.OccurredAt),
		AccountId: ev.AccountID, OrgId: ev.OrgID, Attributes: ev.Attributes,
	}
	if ev.Has.Device {
		d := ev.Device
		e.Device = &riskv1.Device{DeviceId: d.DeviceID, Imei: d.IMEI, Idfa: d.IDFA, AndroidId: d.AndroidID, Oaid: d.OAID,
			Mac: d.MAC, Imsi: d.IMSI, Platform: d.Platform, Model: d.Model, OsVersion: d.OSVersion, AppVersion: d.AppVersion,
			Rooted: d.Rooted, Emulator: d.Emulator, MockLocationEnabled: d.MockLocationEnabled, DeveloperMode: d.DeveloperMode,
			HookFrameworks: d.HookFrameworks, InstalledPackages: d.InstalledPackages, Timezone: d.Timezone,
			Language: d.Language, FlaggedPackages: d.FlaggedPackages}
	}
	if ev.Has.Network {
		w := ev.Network
		e.Network = &riskv1.Network{Ip: w.IP, UserAgent: w.UserAgent, Carrier: w.Carrier, WifiBssid: w.WifiBSSID,
			WifiSsid: w.WifiSSID, CellId: w.CellID, Vpn: w.VPN, Proxy: w.Proxy}
	}
	if ev.Has.Location {
		l := ev.Location
		e.Location = &riskv1.Location{Latitude: l.Latitude, Longitude: l.Longitude, AccuracyM: l.AccuracyM, Provider: l.Provider, Mocked: l.Mocked}
	}
	if ev.Has.Login {
		e.Login = &riskv1.Login{Success: ev.Login.Success, Method: ev.Login.Method, FailureReason: ev.Login.FailureReason}
	}
	if ev.Has.Payment {
		p := ev.Payment
		e.Payment = &riskv1.Payment{AmountMinor: p.AmountMinor, Currency: p.Currency, Kind: p.Kind, PayeeAccountId: p.PayeeAccountID, InstrumentId: p.InstrumentID}
	}
	if ev.Has.Attendance {
		a := ev.Attendance
		e.Attendance = &riskv1.Attendance{SiteId: a.SiteID, Method: a.Method, BeaconIds: a.BeaconIDs}
	}
	if ev.Has.ServiceLog {
		s := ev.ServiceLog
		e.ServiceLog = &riskv1.ServiceLog{Action: s.Action, Resource: s.Resource, Query: s.Query, Status: s.Status}
	}
	return e
}

func BenchmarkNormalizeLogin(b *testing.B) {
	n := newTestNormalizer(b)
	e := loginEvent()
	e.Attributes = map[string]string{"channel": "app"}
	e.Device.InstalledPackages = nil
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := n.Normalize(e); err != nil {
			b.Fatal(err)
		}
	}
}

// accessLogEvents are SERVICE_LOG events as riskctl makes them from the
// combined access log lines of bench/ingestgen (bench/ingest.sh combined):
// an IPv4 address, one of a few user agents, a path, the query string, a
// status and the account from ?uid=. They cycle through distinct accounts,
// addresses and agents, as a stream does.
func accessLogEvents() []*riskv1.Event {
	agents := []string{
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"RiskdDemo/8.0.48 (Android 14; Honor Magic6)",
	}
	paths := []string{"/", "/item/48213", "/search", "/cart", "/api/feed", "/user/7731/profile", "/static/app.js"}
	out := make([]*riskv1.Event, 64)
	for i := range out {
		acct := i * 7919 % 50000
		out[i] = &riskv1.Event{
			EventId:    fmt.Sprintf("clf-%032x", i*2654435761),
			Type:       riskv1.EventType_EVENT_TYPE_SERVICE_LOG,
			OccurredAt: timestamppb.New(testNow.Add(-time.Duration(i) * time.Second)),
			AccountId:  fmt.Sprintf("u%d", acct),
			Network: &riskv1.Network{
				Ip:        fmt.Sprintf("10.%d.%d.%d", acct%200, acct/200%250, i*37%250),
				UserAgent: agents[i%len(agents)],
			},
			ServiceLog: &riskv1.ServiceLog{
				Action:   []string{"get", "get", "get", "post"}[i%4],
				Resource: paths[i%len(paths)],
				Query:    fmt.Sprintf("uid=u%d&q=%d", acct, 100000+i),
				Status:   []int32{200, 200, 200, 304, 404}[i%5],
			},
		}
	}
	return out
}

// deviceReportEvent is a device report as the bench workload sends one: an
// Android phone's identifiers, its app list and the mobile network.
func deviceReportEvent() *riskv1.Event {
	apps := make([]string, 24)
	for i := range apps {
		apps[i] = fmt.Sprintf("com.example.app%02d", i)
	}
	return &riskv1.Event{
		EventId:    "evt-dr-1",
		Type:       riskv1.EventType_EVENT_TYPE_DEVICE_REPORT,
		OccurredAt: timestamppb.New(testNow.Add(-time.Minute)),
		AccountId:  rawAccount,
		OrgId:      "org-1",
		Device: &riskv1.Device{
			DeviceId: rawDeviceID, Imei: rawIMEI, AndroidId: rawAndroidID, Oaid: rawOAID,
			Platform: "android", Model: "Honor Magic6", OsVersion: "14", AppVersion: "8.0.48",
			InstalledPackages: apps, Timezone: "Asia/Shanghai", Language: "zh-CN",
		},
		Network: &riskv1.Network{
			Ip: rawIP, UserAgent: "RiskdDemo/8.0.48 (Android 14; Honor Magic6)", Carrier: "China Mobile",
			CellId: "460-01-23456-789",
		},
	}
}

// BenchmarkNormalizeServiceLog normalizes the access-log events of
// bench/ingest.sh combined, one per op.
func BenchmarkNormalizeServiceLog(b *testing.B) {
	n := newTestNormalizer(b)
	events := accessLogEvents()
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		if _, _, err := n.Normalize(events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportCPU(b, cpu0)
}

// BenchmarkNormalizeIntoServiceLog is BenchmarkNormalizeServiceLog reusing
// one event.Event, as a caller that pools them would.
func BenchmarkNormalizeIntoServiceLog(b *testing.B) {
	n := newTestNormalizer(b)
	events := accessLogEvents()
	var ev event.Event
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		if _, err := n.NormalizeInto(&ev, events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportCPU(b, cpu0)
}

func BenchmarkNormalizeDeviceReport(b *testing.B) {
	n := newTestNormalizer(b)
	e := deviceReportEvent()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, _, err := n.Normalize(e); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}

// cpuTime is the CPU time the process has used, the collector's included:
// on a shared machine it measures an op better than the wall clock does.
var cpuTime = cputime.Process

// reportCPU reports the process CPU time per op since cpu0 (cpu-ns/op).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkPseudonym(b *testing.B) {
	n := newTestNormalizer(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = n.Pseudonym(KindIMEI, rawIMEI)
	}
}

// TestMaxEventBytes builds an event with every field at its bound: it must be
// accepted and fit in MaxEventBytes, the figure servers size requests by.
func TestMaxEventBytes(t *testing.T) {
	s := func(n int) string { return strings.Repeat("x", n) }
	list := func(n, l int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s(l)
		}
		return out
	}
	attrs := map[string]string{}
	for i := 0; i < MaxAttributes; i++ {
		k := fmt.Sprintf("%02d", i) + s(MaxAttrKeyLen-2)
		attrs[k] = s(MaxAttrValueLen)
	}
	e := &riskv1.Event{
		EventId: s(MaxIDLen), Type: riskv1.EventType_EVENT_TYPE_PAYMENT, OccurredAt: timestamppb.New(testNow),
		AccountId: s(MaxIDLen), OrgId: s(MaxIDLen),
		Device: &riskv1.Device{
			DeviceId: s(MaxIDLen), Imei: s(MaxIDLen), Idfa: s(MaxIDLen), AndroidId: s(MaxIDLen), Oaid: s(MaxIDLen),
			Mac: s(MaxIDLen), Imsi: s(MaxIDLen), Platform: s(MaxShortLen), Model: s(MaxTextLen), OsVersion: s(MaxTextLen),
			AppVersion: s(MaxTextLen), HookFrameworks: list(MaxHookFrameworks, MaxTextLen),
			InstalledPackages: list(MaxPackages, MaxPackageLen), Timezone: s(MaxTimezoneLen), Language: s(MaxLanguageLen),
			FlaggedPackages: list(MaxPackages, MaxPackageLen),
		},
		Network: &riskv1.Network{Ip: "2001:db8:1:2:3:4:5:6", UserAgent: s(MaxUserAgentLen), Carrier: s(MaxTextLen),
			WifiBssid: s(MaxBSSIDLen), WifiSsid: s(MaxTextLen), CellId: s(MaxTextLen)},
		Location: &riskv1.Location{Latitude: -89.999999, Longitude: 179.999999, AccuracyM: MaxAccuracyM, Provider: s(MaxShortLen)},
		Login:    &riskv1.Login{Method: s(MaxShortLen), FailureReason: s(MaxTextLen)},
		Payment: &riskv1.Payment{AmountMinor: MaxAmountMinor, Currency: "CNY", Kind: s(MaxShortLen),
			PayeeAccountId: s(MaxIDLen), InstrumentId: s(MaxIDLen)},
		Attendance: &riskv1.Attendance{SiteId: s(MaxIDLen), Method: s(MaxShortLen), BeaconIds: list(MaxBeacons, MaxIDLen)},
		ServiceLog: &riskv1.ServiceLog{Action: s(MaxActionLen), Resource: s(MaxResourceLen), Query: s(MaxQueryLen), Status: MaxStatus},
		Attributes: attrs,
	}
	if _, _, err := newTestNormalizer(t).Normalize(e); err != nil {
		t.Fatalf("an event at every bound is refused: %v", err)
	}
	if size := proto.Size(e); size > MaxEventBytes {
		t.Errorf("an event at every bound is %d bytes, over MaxEventBytes %d", size, MaxEventBytes)
	}
}

// TestNormalizeIntoReused normalizes events of every shape, and a refused
// one, into one event.Event in turn: each result equals a fresh Normalize's,
// nothing of the previous event is left over.
func TestNormalizeIntoReused(t *testing.T) {
	n := newTestNormalizer(t)
	bad := loginEvent()
	bad.Network.Ip = "not an ip"
	events := []*riskv1.Event{loginEvent(), deviceReportEvent(), paymentEvent(), bad, attendanceEvent(),
		serviceLogEvent("/users/13812345678", "q", 200), accessLogEvents()[1], loginEvent()}
	var ev event.Event
	for i, e := range events {
		want, wantSt, wantErr := n.Normalize(e)
		st, err := n.NormalizeInto(&ev, e)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("event %d: NormalizeInto error %v, Normalize %v", i, err, wantErr)
		}
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(ev, *want) {
			t.Errorf("event %d: NormalizeInto gave\n%+v\nNormalize\n%+v", i, ev, *want)
		}
		if !proto.Equal(st, wantSt) {
			t.Errorf("event %d: stored forms differ:\n%v\n%v", i, st, wantSt)
		}
	}
}

func TestNormalizeConcurrent(t *testing.T) {
	n := newTestNormalizer(t)
	_, want, err := n.Normalize(loginEvent())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, st, err := n.Normalize(loginEvent())
				if err != nil || !proto.Equal(st, want) {
					t.Errorf("concurrent Normalize differs: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestHMACMatchesStdlib(t *testing.T) {
	for _, key := range [][]byte{testKey, []byte("sixteen byte key"), []byte(strings.Repeat("k", 64)), []byte(strings.Repeat("long key ", 20))} {
		m := newKeyedMAC(key)
		for _, msg := range []string{"", "a", rawIMEI, strings.Repeat("x", 200)} {
			s := m.pool.Get().(*macState)
			m.sum(s, []byte(msg))
			h := hmac.New(sha256.New, key)
			h.Write([]byte(msg))
			if want := h.Sum(nil); !bytes.Equal(s.sum[:], want) {
				t.Errorf("key %d bytes, msg %q: HMAC differs from crypto/hmac", len(key), msg)
			}
			m.pool.Put(s)
		}
	}
}
