package ingest

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzNormalize from the seed events")

// seedEvents are the valid events and edge cases the fuzz corpus starts from.
func seedEvents() map[string]*riskv1.Event {
	seeds := map[string]*riskv1.Event{
		"login":      loginEvent(),
		"payment":    paymentEvent(),
		"attendance": attendanceEvent(),
		"servicelog": serviceLogEvent("/users/13812345678?ip=10.0.0.1", "who is jane@example.com", 200),
		"minimal": {EventId: "e", Type: riskv1.EventType_EVENT_TYPE_REGISTER,
			OccurredAt: timestamppb.New(testNow), AccountId: "a"},
	}
	e := loginEvent()
	e.Network.Ip = "::ffff:192.0.2.1"
	e.Device.Mac = "acde.4800.1122"
	e.Location = &riskv1.Location{Latitude: -90, Longitude: 180, AccuracyM: 0}
	seeds["edges"] = e
	e = loginEvent()
	e.Location.Latitude = math.NaN()
	seeds["nan"] = e
	e = loginEvent()
	e.OccurredAt = timestamppb.New(testNow.Add(time.Hour))
	seeds["future"] = e
	e = paymentEvent()
	e.Payment.AmountMinor = MaxAmountMinor
	e.Attributes = map[string]string{"mobile": "(555) 123-4567", "clientIp": "2001:db8::1", "when": "2026-11-28 10:00"}
	seeds["maxamount"] = e
	return seeds
}

func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite the corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzNormalize")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, e := range seedEvents() {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		j, err := protojson.Marshal(e)
		if err != nil {
			// NaN has a JSON form ("NaN"), but keep going whatever happens.
			j = nil
		}
		for suffix, data := range map[string][]byte{"pb": b, "json": j} {
			if data == nil {
				continue
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, name+"-"+suffix), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzNormalize decodes arbitrary bytes as a binary and as a JSON Event and
// normalizes them: it must never panic, and what it accepts must normalize
// again to the same stored form, rebuild with FromStored, and carry only
// pseudonyms in identifier fields and no digit run in scrubbed text.
func FuzzNormalize(f *testing.F) {
	for _, e := range seedEvents() {
		b, _ := proto.Marshal(e)
		f.Add(b)
	}
	n := newTestNormalizer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var pb riskv1.Event
		if proto.Unmarshal(data, &pb) == nil {
			checkNormalize(t, n, &pb)
		}
		var pj riskv1.Event
		if protojson.Unmarshal(data, &pj) == nil {
			checkNormalize(t, n, &pj)
		}
	})
}

var (
	scrubToken = regexp.MustCompile(`#(e|ip|mac|p):[A-Za-z0-9_-]{22}`)
	digitRun   = regexp.MustCompile(`[0-9]{7}`)
)

func checkNormalize(t *testing.T, n *Normalizer, pb *riskv1.Event) {
	ev, st, err := n.Normalize(pb)
	if err != nil {
		if _, ok := err.(*FieldError); !ok {
			t.Fatalf("error %T is not a *FieldError", err)
		}
		return
	}
	ev2, st2, err := n.Normalize(toProto(ev))
	if err != nil {
		t.Fatalf("accepted event does not re-validate: %v", err)
	}
	if !proto.Equal(st, st2) || ev2.P != ev.P {
		t.Fatalf("normalizing twice changed the result")
	}
	back, err := FromStored(st)
	if err != nil {
		t.Fatalf("FromStored: %v", err)
	}
	if back.P != ev.P || back.Has != ev.Has {
		t.Fatalf("FromStored P/Has differ")
	}
	b, err := proto.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var round riskv1.Event
	if err := proto.Unmarshal(b, &round); err != nil || !proto.Equal(&round, st) {
		t.Fatalf("stored form does not round-trip: %v", err)
	}

	pseud := func(field, kind, raw, stored string) {
		if raw == "" {
			if stored != "" {
				t.Fatalf("%s: stored %q for an absent value", field, stored)
			}
			return
		}
		if stored != n.Pseudonym(kind, raw) {
			t.Fatalf("%s: stored value is not the pseudonym of the raw one", field)
		}
	}
	var texts []string
	pseud("account_id", KindAccount, ev.AccountID, st.AccountId)
	pseud("org_id", KindOrg, ev.OrgID, st.OrgId)
	if ev.Has.Device {
		d, s := ev.Device, st.Device
		pseud("device.device_id", KindDevice, d.DeviceID, s.DeviceId)
		pseud("device.imei", KindIMEI, d.IMEI, s.Imei)
		pseud("device.idfa", KindIDFA, d.IDFA, s.Idfa)
		pseud("device.android_id", KindAndroidID, d.AndroidID, s.AndroidId)
		pseud("device.oaid", KindOAID, d.OAID, s.Oaid)
		pseud("device.mac", KindMAC, d.MAC, s.Mac)
		pseud("device.imsi", KindIMSI, d.IMSI, s.Imsi)
	}
	if ev.Has.Network {
		w, s := ev.Network, st.Network
		pseud("network.ip", KindIP, w.IP, s.Ip)
		pseud("network.wifi_bssid", KindBSSID, w.WifiBSSID, s.WifiBssid)
		pseud("network.wifi_ssid", KindSSID, w.WifiSSID, s.WifiSsid)
		texts = append(texts, s.UserAgent)
		if (w.IP == "") != (s.IpPrefix == "") {
			t.Fatalf("ip_prefix without ip or the reverse")
		}
	}
	if ev.Has.Location {
		if st.Location.Latitude != Coarsen(ev.Location.Latitude) || st.Location.Longitude != Coarsen(ev.Location.Longitude) {
			t.Fatalf("stored location not coarsened")
		}
	}
	if ev.Has.Payment {
		pseud("payment.payee_account_id", KindAccount, ev.Payment.PayeeAccountID, st.Payment.PayeeAccountId)
		pseud("payment.instrument_id", KindInstrument, ev.Payment.InstrumentID, st.Payment.InstrumentId)
	}
	if ev.Has.Attendance && st.Attendance.SiteId != ev.Attendance.SiteID {
		// The organization's site is kept as given (not personal).
		t.Fatalf("attendance.site_id stored as %q, want %q", st.Attendance.SiteId, ev.Attendance.SiteID)
	}
	if ev.Has.ServiceLog {
		pseud("service_log.query", KindQuery, ev.ServiceLog.Query, st.ServiceLog.Query)
		texts = append(texts, st.ServiceLog.Resource)
	}
	if ev.Has.Login {
		texts = append(texts, st.Login.FailureReason)
	}
	for k, v := range st.Attributes {
		if identifierKind(k) != "" && ev.Attributes[k] != "" {
			if len(v) != PseudonymLen {
				t.Fatalf("attribute %q names an identifier but is stored as %q", k, v)
			}
			continue
		}
		texts = append(texts, v)
	}
	for _, s := range texts {
		if rest := scrubToken.ReplaceAllString(s, " "); digitRun.MatchString(rest) {
			t.Fatalf("stored text keeps a digit run: %q", s)
		}
	}
}
