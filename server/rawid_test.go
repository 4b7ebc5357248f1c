package server

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/internal/clock"
)

// TestNoRawIdentifierAnywhere extends TestNoRawIdentifierAtRestOrInLogs to
// every path personal identifiers take: phone numbers (attributes and free
// text), events ingested as NDJSON lines the way riskctl ingest reads them,
// an appeal, an identifier list, the access audit of every role's reads, a
// retention sweep; then it flushes the store, walks every key and value,
// and reads every log line (at debug level).
func TestNoRawIdentifierAnywhere(t *testing.T) {
	fc := clock.NewFake(time.Now().UTC())
	s := startServer(t, serverSetup{hooks: Hooks{Clock: fc}})
	ctx := context.Background()
	raw := map[string]string{
		"imei": "867530912345671", "idfa": "AB12CD34-EF56-4A78-9B0C-1D2E3F4A5B6C", "android_id": "a1b2c3d4e5f60718",
		"oaid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "mac": "4c:5d:6e:7f:80:91", "imsi": "460019876543210",
		"ip": "198.51.100.203", "ipv6": "2001:db8:85a3::8a2e:370:7334", "bssid": "a0:b1:c2:d3:e4:f5",
		"phone": "13912345678", "mobile": "+8613698765432", "phone_in_text": "18611112222", "list_phone": "13355556666",
		"list_device_imei": "353456789012347",
	}
	at := fc.Now()
	ev := loginEvent("rawx-1", "acct-rawx", "install-rawx", false, at)
	ev.Device.Imei, ev.Device.Idfa, ev.Device.AndroidId, ev.Device.Oaid = raw["imei"], raw["idfa"], raw["android_id"], raw["oaid"]
	ev.Device.Mac, ev.Device.Imsi = raw["mac"], raw["imsi"]
	ev.Network.Ip, ev.Network.WifiBssid = raw["ip"], raw["bssid"]
	ev.Attributes = map[string]string{"phone": raw["phone"], "mobile": raw["mobile"], "note": "call back on " + raw["phone_in_text"]}
	d := s.evaluate(ev)

	// riskctl ingest: one Event per NDJSON line, in protojson form.
	ndjson := fmt.Sprintf(`{"eventId":"rawx-2","type":"EVENT_TYPE_SERVICE_LOG","occurredAt":%q,"accountId":"acct-rawx","device":{"deviceId":"install-rawx","mac":%q},"network":{"ip":%q,"wifiBssid":%q},"serviceLog":{"action":"search","resource":"/users/%s/profile","query":"%s"},"attributes":{"mobile":%q}}
{"eventId":"rawx-3","type":"EVENT_TYPE_DEVICE_REPORT","occurredAt":%q,"accountId":"acct-rawx","device":{"deviceId":"install-rawx","imei":%q,"idfa":%q,"androidId":%q,"oaid":%q,"imsi":%q,"rooted":true}}
`, at.Format(time.RFC3339Nano), strings.ToUpper(raw["mac"]), raw["ipv6"], raw["bssid"], raw["phone"], raw["mobile"], raw["mobile"],
		at.Format(time.RFC3339Nano), raw["imei"], raw["idfa"], raw["android_id"], raw["oaid"], raw["imsi"])
	var batch []*riskv1.Event
	sc := bufio.NewScanner(strings.NewReader(ndjson))
	for sc.Scan() {
		e := &riskv1.Event{}
		if err := protojson.Unmarshal(sc.Bytes(), e); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, e)
	}
	stream := s.risk(protoConnect, s.creds.Service).Ingest(ctx)
	if err := stream.Send(&riskv1.IngestRequest{Events: batch}); err != nil {
		t.Fatal(err)
	}
	res, err := stream.CloseAndReceive()
	if err != nil || res.Msg.GetAccepted() != 2 {
		t.Fatalf("ingest: %v, %v", res, err)
	}

	// An appeal: what the subject writes is stored as written (and erased
	// on EraseSubject); this one names no identifier.
	subTok := s.subjectToken("acct-rawx")
	if _, err := s.appeals(protoConnect, subTok).FileAppeal(ctx, connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: d.GetDecisionId(), Statement: "That was me signing in."})); err != nil {
		t.Fatal(err)
	}
	// Reads by every role, audited.
	if _, err := s.decisions(protoConnect, subTok).ListDecisions(ctx, connect.NewRequest(&riskv1.ListDecisionsRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin(s.creds.Admin).ExportSubjectData(ctx, connect.NewRequest(&riskv1.ExportSubjectDataRequest{AccountId: "acct-rawx"})); err != nil {
		t.Fatal(err)
	}
	// An identifier list holds pseudonyms only.
	ls, err := lists.Open(lists.Options{DB: s.eng.DB(), Pseudonymizer: s.eng.Normalizer(), Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"blocked_phones": raw["list_phone"], "blocked_imeis": raw["list_device_imei"]} {
		kind := map[string]string{"blocked_phones": "phone", "blocked_imeis": "imei"}[name]
		if _, err := ls.Create(name, lists.Identifier, lists.CreateOptions{IdentifierKind: kind}); err != nil {
			t.Fatal(err)
		}
		if err := ls.Add(name, v, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if !ls.Contains(name, v) {
			t.Fatalf("list %s does not find its entry", name)
		}
	}
	if err := s.eng.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	fc.Advance(time.Hour)
	if _, err := s.eng.SweepRetention(fc.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.eng.DB().Flush(); err != nil {
		t.Fatal(err)
	}

	dump := dumpStore(t, s.eng.DB())
	logs := s.logs.String()
	for name, v := range raw {
		forms := []string{v, strings.ToLower(v), strings.ToUpper(v), strings.TrimPrefix(v, "+86")}
		if strings.Contains(v, ":") {
			forms = append(forms, strings.ReplaceAll(v, ":", ""), strings.ReplaceAll(v, ":", "-"))
		}
		for _, form := range forms {
			if strings.Contains(dump, form) {
				t.Errorf("raw %s %q is stored", name, form)
			}
			if strings.Contains(logs, form) {
				t.Errorf("raw %s %q is in the logs", name, form)
			}
		}
	}
	if !strings.Contains(dump, "That was me signing in.") {
		t.Error("the appeal statement is not stored as written")
	}
	if !strings.Contains(logs, "procedure=/risk.v1.AdminService/ExportSubjectData") || !strings.Contains(logs, "procedure=/risk.v1.RiskService/Ingest") {
		t.Error("debug request lines are missing from the logs")
	}
	recs, _, err := s.eng.QueryAudit(engineAuditAll())
	if err != nil || len(recs) < 3 {
		t.Errorf("audit: %d records, %v", len(recs), err)
	}
}

func engineAuditAll() engine.AuditFilter { return engine.AuditFilter{} }
