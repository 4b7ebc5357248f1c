package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

func (s *testServer) admin(token string) riskv1connect.AdminServiceClient {
	return riskv1connect.NewAdminServiceClient(httpClient(protoConnect), s.url, clientOpts(protoConnect, token)...)
}

// featureValue returns a feature's current value for the pseudonyms p.
func featureValue(t *testing.T, eng *engine.Engine, p event.Pseudonyms, name string) any {
	t.Helper()
	shown, err := eng.Features().Show(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shown {
		if s.Name == name {
			return s.Value.Any()
		}
	}
	return nil
}

// countPrefix counts the keys under a one-byte prefix.
func countPrefix(t *testing.T, db *pebble.DB, p byte) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKeyRotation writes under key A, restarts with key B and A as an old
// key, and finds the account's old decisions, the old idempotency keys and
// the old events for export; new data uses B only.
func TestKeyRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	keysDir := t.TempDir()
	keyA := writeFile(t, keysDir, "a", "key-A-0123456789abcdef\n")
	keyB := writeFile(t, keysDir, "b", "key-B-fedcba9876543210\n")
	old := writeFile(t, keysDir, "old", "# rotated 2026-11\nkey-A-0123456789abcdef\n")

	now := time.Now()
	s := startServer(t, serverSetup{dir: dir, config: func(c *Config) { c.PseudonymKeyFile = keyA }})
	d1 := s.evaluate(loginEvent("rot-1", "acct-rot", "dev-rot", false, now.Add(-2*time.Minute)))
	s.evaluate(loginEvent("rot-2", "acct-rot", "dev-rot", false, now.Add(-time.Minute)))
	pA := s.eng.Normalizer().Pseudonym(ingest.KindAccount, "acct-rot")
	s.stop()

	s = startServer(t, serverSetup{dir: dir, config: func(c *Config) {
		c.PseudonymKeyFile = keyB
		c.PseudonymOldKeysFile = old
	}})
	ps := s.eng.AccountPseudonyms("acct-rot")
	if len(ps) != 2 || ps[1] != pA || ps[0] == pA {
		t.Fatalf("pseudonyms after rotation = %q, want [new, %q]", ps, pA)
	}
	// The same event id again is a retry, found under key A.
	again := s.evaluate(loginEvent("rot-1", "acct-rot", "dev-rot", false, now.Add(-2*time.Minute)))
	if again.GetDecisionId() != d1.GetDecisionId() {
		t.Errorf("retry after rotation decided anew: %s, want %s", again.GetDecisionId(), d1.GetDecisionId())
	}
	d3 := s.evaluate(loginEvent("rot-3", "acct-rot", "dev-rot", false, now))
	// Feature state written under key A counts: two failures, a known device.
	if f := d3.GetFeatures(); f["login_failures_account_10m"].GetNumberValue() != 2 || !f["account_device_seen_before"].GetBoolValue() {
		t.Errorf("features after rotation: failures %v, device seen %v; want 2 and true",
			f["login_failures_account_10m"], f["account_device_seen_before"])
	}
	// And they keep counting on top of the new key's state.
	s.evaluate(loginEvent("rot-4", "acct-rot", "dev-rot", true, now))
	d5 := s.evaluate(loginEvent("rot-5", "acct-rot", "dev-rot", false, now))
	if got := d5.GetFeatures()["login_failures_account_10m"].GetNumberValue(); got != 3 {
		t.Errorf("failures after one more under the new key = %v, want 3", got)
	}

	// Every decision, new key first, across pages of one.
	var ids []string
	tok := ""
	for i := 0; i < 10; i++ {
		res, err := s.decisions(protoConnect, s.creds.Analyst).ListDecisions(context.Background(),
			connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "acct-rot", PageSize: 1, PageToken: tok}))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Msg.GetDecisions() {
			ids = append(ids, d.GetEventId())
		}
		if tok = res.Msg.GetNextPageToken(); tok == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "rot-5,rot-4,rot-3,rot-2,rot-1" {
		t.Errorf("decisions after rotation = %v, want rot-5 .. rot-1", ids)
	}
	// A subject sees their old decisions too.
	res, err := s.decisions(protoConnect, s.subjectToken("acct-rot")).ListDecisions(context.Background(),
		connect.NewRequest(&riskv1.ListDecisionsRequest{}))
	if err != nil || len(res.Msg.GetDecisions()) != 5 {
		t.Errorf("subject's decisions after rotation: %d, %v; want 5", len(res.Msg.GetDecisions()), err)
	}
	// The export finds the events of both keys.
	exp, err := s.admin(s.creds.Admin).ExportSubjectData(context.Background(), connect.NewRequest(&riskv1.ExportSubjectDataRequest{AccountId: "acct-rot"}))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Events    []json.RawMessage `json:"events"`
		Decisions []json.RawMessage `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(exp.Msg.GetJson()), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Events) != 5 || len(doc.Decisions) != 5 {
		t.Errorf("export after rotation: %d events, %d decisions; want 5 and 5", len(doc.Events), len(doc.Decisions))
	}
	// Both starts are audited; the changed settings show as a new digest.
	starts, err := s.admin(s.creds.Admin).QueryAudit(context.Background(), connect.NewRequest(&riskv1.QueryAuditRequest{Procedure: "riskd/start"}))
	if err != nil {
		t.Fatal(err)
	}
	if rs := starts.Msg.GetRecords(); len(rs) != 2 || rs[0].GetTargets()[0] == rs[1].GetTargets()[0] || rs[0].GetTargets()[2] != "pseudonym_keys:2" {
		t.Errorf("start records: %v", rs)
	}
	// New data is under key B only.
	if strings.Contains(string(doc.Events[len(doc.Events)-1]), pA) {
		t.Error("the event written after the rotation carries the old key's pseudonym")
	}
}

func TestPseudonymKeySources(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "k", "  from-the-file-0123456789 \n")
	short := writeFile(t, dir, "short", "tiny\n")
	oldf := writeFile(t, dir, "old", "\n# c\nold-key-0123456789abcdef\nfrom-the-file-0123456789\n")
	creds := struct{ PseudonymKey string }{"from-credentials-0123456789"}
	tests := []struct {
		name    string
		cfg     Config
		want    string
		wantOld int
		err     bool
	}{
		{"credentials", Config{}, creds.PseudonymKey, 0, false},
		{"env", Config{PseudonymKey: "from-the-env-0123456789"}, "from-the-env-0123456789", 0, false},
		{"file beats env", Config{PseudonymKey: "from-the-env-0123456789", PseudonymKeyFile: file}, "from-the-file-0123456789", 0, false},
		{"old keys, current skipped", Config{PseudonymKeyFile: file, PseudonymOldKeysFile: oldf}, "from-the-file-0123456789", 1, false},
		{"short key", Config{PseudonymKeyFile: short}, "", 0, true},
		{"missing file", Config{PseudonymKeyFile: filepath.Join(dir, "nope")}, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			k, old, err := PseudonymKeys(c, credsWithKey(creds.PseudonymKey))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && (string(k) != tt.want || len(old) != tt.wantOld) {
				t.Errorf("key %q (%d old), want %q (%d old)", k, len(old), tt.want, tt.wantOld)
			}
		})
	}
	// The environment variable reaches the config.
	c, err := LoadConfig(nil, func(k string) string {
		if k == "RISKD_PSEUDONYM_KEY" {
			return "env-key-0123456789abcdef"
		}
		return ""
	}, nil)
	if err != nil || c.PseudonymKey != "env-key-0123456789abcdef" {
		t.Errorf("RISKD_PSEUDONYM_KEY: %q, %v", c.PseudonymKey, err)
	}
}

// TestRetentionSweep drives time with a fake clock: events go after 30 days
// (and their idempotency keys), decisions, appeals and the audit after 3
// years, and the chain still verifies from its base.
func TestRetentionSweep(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	fc := clock.NewFake(start)
	s := startServer(t, serverSetup{hooks: Hooks{Clock: fc}})
	db := s.eng.DB()
	d := s.evaluate(loginEvent("ret-1", "acct-ret", "dev-ret", false, start))
	s.evaluate(loginEvent("ret-2", "acct-ret", "dev-ret", true, start))
	ctx := context.Background()
	if _, err := s.appeals(protoConnect, s.subjectToken("acct-ret")).FileAppeal(ctx, connect.NewRequest(&riskv1.FileAppealRequest{DecisionId: d.GetDecisionId(), Statement: "it was me"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()})); err != nil {
		t.Fatal(err)
	}
	if err := s.eng.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []byte{keys.EventRecord, keys.EventSeen, keys.DecisionRecord, keys.Appeal, keys.Audit} {
		if countPrefix(t, db, p) == 0 {
			t.Fatalf("nothing under prefix %#x before the sweep", p)
		}
	}

	// A day later nothing has expired.
	fc.Advance(24 * time.Hour)
	s.evaluate(loginEvent("ret-3", "acct-ret", "dev-ret", true, fc.Now()))
	if _, err := s.eng.SweepRetention(fc.Now()); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, db, keys.EventRecord); n != 3 {
		t.Errorf("%d events after a day, want 3", n)
	}

	// 30 days after the first events they go, with their idempotency keys;
	// the later event stays.
	fc.Set(start.Add(30*24*time.Hour + time.Hour))
	if _, err := s.eng.SweepRetention(fc.Now()); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, db, keys.EventRecord); n != 1 {
		t.Errorf("%d events after 30 days, want 1 (the later one)", n)
	}
	if n := countPrefix(t, db, keys.EventSeen); n != 1 {
		t.Errorf("%d idempotency keys after 30 days, want 1", n)
	}
	if n := countPrefix(t, db, keys.DecisionRecord); n != 3 {
		t.Errorf("%d decisions after 30 days, want 3", n)
	}
	rr, err := s.admin(s.creds.Admin).GetRetention(ctx, connect.NewRequest(&riskv1.GetRetentionRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*riskv1.RetentionClass{}
	for _, c := range rr.Msg.GetClasses() {
		byName[c.GetName()] = c
	}
	if c := byName["events"]; c == nil || c.GetRecords() != 1 || c.GetRetention().AsDuration() != 30*24*time.Hour || c.GetOldest() == nil {
		t.Errorf("retention report for events: %v", c)
	}
	if c := byName["decisions"]; c == nil || c.GetOldest().AsTime().Before(start.Add(-time.Second)) || c.GetRetention().AsDuration() != engine.DefaultRetainDecisions {
		t.Errorf("retention report for decisions: %v", c)
	}
	if rr.Msg.GetLastSweep() == nil {
		t.Error("retention report without the last sweep")
	}

	// Three years on: the first day's decisions, the appeal and the audit
	// go; the chain verifies from its new base.
	fc.Set(start.Add(engine.DefaultRetainDecisions + 12*time.Hour))
	if _, err := s.eng.SweepRetention(fc.Now()); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, db, keys.DecisionRecord); n != 1 {
		t.Errorf("%d decisions after 3 years, want 1 (the one a day later)", n)
	}
	for _, p := range []byte{keys.Appeal, keys.AppealByDecision} {
		if n := countPrefix(t, db, p); n != 0 {
			t.Errorf("%d keys under %#x after 3 years, want 0", n, p)
		}
	}
	// Of the audit, only the GetRetention call of day 30 is younger.
	if recs, _, err := s.eng.QueryAudit(engine.AuditFilter{}); err != nil || len(recs) != 1 || recs[0].GetProcedure() != riskv1connect.AdminServiceGetRetentionProcedure {
		t.Errorf("audit after 3 years: %v, %v", recs, err)
	}
	if rep, err := s.eng.Decisions().Verify(""); err != nil || !rep.OK || rep.FirstSeq < 2 {
		t.Errorf("chain after expiry: %+v, %v", rep, err)
	}
	if _, err := s.eng.Decisions().Get(d.GetDecisionId()); err == nil {
		t.Error("an expired decision is still found")
	}
	// The chain grows on from its base.
	fc.Advance(time.Hour)
	s.evaluate(loginEvent("ret-4", "acct-ret", "dev-ret", true, fc.Now()))
	if rep, err := s.eng.Decisions().Verify(""); err != nil || !rep.OK {
		t.Errorf("chain after a new decision: %+v, %v", rep, err)
	}
}

// TestEraseSubject erases an account that shares one device with another
// account and has one of its own, then walks the whole store.
func TestEraseSubject(t *testing.T) {
	s := startServer(t, serverSetup{})
	ctx := context.Background()
	now := time.Now()
	const subject, other = "acct-erase-7731", "acct-keep-4410"
	ev := loginEvent("er-1", subject, "dev-shared", false, now.Add(-3*time.Minute))
	ev.Attributes = map[string]string{"phone": "+8613800138000"}
	d := s.evaluate(ev)
	s.evaluate(loginEvent("er-2", subject, "dev-own-91", true, now.Add(-2*time.Minute)))
	s.evaluate(loginEvent("er-3", other, "dev-shared", true, now.Add(-time.Minute)))
	sd := s.evaluate(loginEvent("er-4", other, "dev-shared", true, now))
	subTok := s.subjectToken(subject)
	if _, err := s.appeals(protoConnect, subTok).FileAppeal(ctx, connect.NewRequest(&riskv1.FileAppealRequest{
		DecisionId: d.GetDecisionId(), Statement: "I was travelling, statement-9f3e", Contact: "contact-7c1a@example.org"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.labels(protoConnect, s.creds.Service).PutLabel(ctx, connect.NewRequest(&riskv1.PutLabelRequest{EventId: "er-2", Kind: riskv1.LabelKind_LABEL_KIND_FALSE_POSITIVE})); err != nil {
		t.Fatal(err)
	}
	norm := s.eng.Normalizer()
	shared := event.Pseudonyms{Device: norm.Pseudonym(ingest.KindDevice, "dev-shared")}
	if v := featureValue(t, s.eng, shared, "device_distinct_accounts_24h"); v != int64(2) {
		t.Fatalf("device_distinct_accounts_24h of the shared device = %v before erasure, want 2", v)
	}
	// The appeal text is stored as written until erasure.
	if !strings.Contains(dumpStore(t, s.eng.DB()), "statement-9f3e") {
		t.Fatal("the appeal statement is not stored")
	}

	exp, err := s.admin(s.creds.Admin).ExportSubjectData(ctx, connect.NewRequest(&riskv1.ExportSubjectDataRequest{AccountId: subject}))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Decisions, Appeals, Events []json.RawMessage
		Labels                     []decisions.Label
		Features                   []struct{ Of, Name string }
		Devices                    []struct {
			Device string
			Shared bool `json:"shared_with_other_accounts"`
		}
	}
	if err := json.Unmarshal([]byte(exp.Msg.GetJson()), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Decisions) != 2 || len(doc.Appeals) != 1 || len(doc.Events) != 2 || len(doc.Labels) != 1 || len(doc.Features) == 0 {
		t.Errorf("export: %d decisions, %d appeals, %d events, %d labels, %d features; want 2, 1, 2, 1, >0",
			len(doc.Decisions), len(doc.Appeals), len(doc.Events), len(doc.Labels), len(doc.Features))
	}
	if !strings.Contains(exp.Msg.GetJson(), "statement-9f3e") {
		t.Error("export lacks the appeal statement")
	}
	sharedSeen := 0
	for _, dv := range doc.Devices {
		if dv.Shared {
			sharedSeen++
		}
	}
	if sharedSeen == 0 {
		t.Errorf("export marks no device as shared: %+v", doc.Devices)
	}
	// Only admin may.
	if _, err := s.admin(s.creds.Analyst).EraseSubject(ctx, connect.NewRequest(&riskv1.EraseSubjectRequest{AccountId: subject})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("analyst erasure: %v, want permission_denied", err)
	}

	res, err := s.admin(s.creds.Admin).EraseSubject(ctx, connect.NewRequest(&riskv1.EraseSubjectRequest{AccountId: subject, Reason: "ticket 42"}))
	if err != nil {
		t.Fatal(err)
	}
	r := res.Msg
	if r.GetEventsDeleted() != 2 || r.GetDecisionsRedacted() != 2 || r.GetAppealsErased() != 1 || r.GetLabelsDeleted() != 1 || r.GetDevicesForgotten() == 0 || !r.GetChainVerified() || r.GetErasureSeq() == 0 {
		t.Errorf("erasure report: %+v", r)
	}
	if rep, err := s.eng.Decisions().Verify(""); err != nil || !rep.OK {
		t.Errorf("chain after erasure: %+v, %v", rep, err)
	}
	// The aggregate: the shared device's exact distinct set forgot the subject.
	if v := featureValue(t, s.eng, shared, "device_distinct_accounts_24h"); v != int64(1) {
		t.Errorf("device_distinct_accounts_24h of the shared device = %v after erasure, want 1", v)
	}
	// The other account is untouched.
	if _, err := s.eng.Decisions().Get(sd.GetDecisionId()); err != nil {
		t.Errorf("the other account's decision: %v", err)
	}
	if n := len(mustList(t, s, other)); n != 2 {
		t.Errorf("the other account has %d decisions after the erasure, want 2", n)
	}
	// The redacted decision is still there, without the subject.
	red, err := s.eng.Decisions().Get(d.GetDecisionId())
	if err != nil || red.GetAccountId() != "" || red.GetOutcome() == riskv1.Outcome_OUTCOME_UNSPECIFIED {
		t.Errorf("redacted decision: %v, %v", red, err)
	}

	// Walk the whole store, after a flush: no raw id, no pseudonym of the
	// subject under any kind that could name it, no appeal text.
	if err := s.eng.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	dump := dumpStore(t, s.eng.DB())
	traces := map[string]string{"raw account id": subject, "appeal statement": "statement-9f3e", "appeal contact": "contact-7c1a",
		"own device pseudonym": norm.Pseudonym(ingest.KindDevice, "dev-own-91"), "phone pseudonym": norm.Pseudonym(ingest.KindPhone, "+8613800138000")}
	for i, p := range s.eng.AccountPseudonyms(subject) {
		traces["account pseudonym "+string(rune('0'+i))] = p
	}
	for what, v := range traces {
		if strings.Contains(dump, v) {
			t.Errorf("%s %q is still in the store after erasure", what, v)
		}
	}
	if !strings.Contains(dump, norm.Pseudonym(ingest.KindAccount, other)) {
		t.Error("the other account's pseudonym is gone too")
	}
	// The audit recorded the erasure, naming the account only in its own domain.
	recs, err := s.admin(s.creds.Admin).QueryAudit(ctx, connect.NewRequest(&riskv1.QueryAuditRequest{Procedure: riskv1connect.AdminServiceEraseSubjectProcedure}))
	if err != nil {
		t.Fatal(err)
	}
	// The analyst was refused before any service ran: only the admin's call.
	if rs := recs.Msg.GetRecords(); len(rs) != 1 || rs[0].GetActor() != "admin" ||
		rs[0].GetTargets()[0] != "account:"+norm.Pseudonym(auditKindAccount, subject) {
		t.Errorf("audit of erasures: %v", rs)
	}
}

func mustList(t *testing.T, s *testServer, account string) []*riskv1.Decision {
	t.Helper()
	res, err := s.decisions(protoConnect, s.creds.Analyst).ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: account}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetDecisions()
}

// dumpStore concatenates every key and value in the store.
func dumpStore(t *testing.T, db *pebble.DB) string {
	t.Helper()
	var b strings.Builder
	for k, v := range storeValues(t, db) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(v)
		b.WriteByte(0)
	}
	return b.String()
}

// TestAccessAudit: calls by each role appear with who, what, when and from
// where; Evaluate and Ingest do not.
func TestAccessAudit(t *testing.T) {
	s := startServer(t, serverSetup{})
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	var d *riskv1.Decision
	for i := 0; i < 20; i++ {
		d = s.evaluate(loginEvent("aud-"+string(rune('a'+i)), "acct-aud", "dev-aud", true, time.Now()))
	}
	if _, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.decisions(protoConnect, s.subjectToken("acct-aud")).ListDecisions(ctx, connect.NewRequest(&riskv1.ListDecisionsRequest{})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.decisions(protoConnect, s.creds.Analyst).ListDecisions(ctx, connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "acct-aud"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.labels(protoConnect, s.creds.Analyst).PutLabel(ctx, connect.NewRequest(&riskv1.PutLabelRequest{DecisionId: d.GetDecisionId(), Kind: riskv1.LabelKind_LABEL_KIND_CHARGEBACK})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(ctx, connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: "01J0000000000000000000000X"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("GetDecision of an unknown id: %v", err)
	}
	adm := s.admin(s.creds.Admin)
	res, err := adm.QueryAudit(ctx, connect.NewRequest(&riskv1.QueryAuditRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	recs := res.Msg.GetRecords()
	var lines []string
	for _, r := range recs {
		lines = append(lines, r.GetRole()+" "+r.GetActor()+" "+r.GetProcedure()+" "+strings.Join(r.GetTargets(), ",")+" "+r.GetCode())
		if strings.HasPrefix(r.GetProcedure(), "/risk.v1.RiskService/") {
			t.Errorf("Evaluate was audited: %v", r)
		}
		if r.GetProcedure() == "riskd/start" {
			continue
		}
		if r.GetAt().AsTime().Before(before) || r.GetPeer() == "" {
			t.Errorf("record without a time or a peer: %v", r)
		}
	}
	if len(recs) != 6 {
		t.Fatalf("audit has %d records, want 6 (the start and 5 calls; evaluations are not audited):\n%s", len(recs), strings.Join(lines, "\n"))
	}
	if st := recs[5]; st.GetProcedure() != "riskd/start" || len(st.GetTargets()) != 3 || !strings.HasPrefix(st.GetTargets()[0], "settings:") {
		t.Errorf("the start record: %v", st)
	}
	// Newest first.
	subjPseud := s.eng.Normalizer().Pseudonym(auditKindAccount, "acct-aud")
	want := []string{
		"analyst analyst " + riskv1connect.DecisionServiceGetDecisionProcedure + " decision:01J0000000000000000000000X not_found",
		"analyst analyst " + riskv1connect.LabelsServicePutLabelProcedure + " decision:" + d.GetDecisionId() + " ok",
		"analyst analyst " + riskv1connect.DecisionServiceListDecisionsProcedure + " account:" + subjPseud + " ok",
		"subject subject:" + subjPseud + " " + riskv1connect.DecisionServiceListDecisionsProcedure + "  ok",
		"analyst analyst " + riskv1connect.DecisionServiceGetDecisionProcedure + " decision:" + d.GetDecisionId() + " ok",
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("audit record %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	if strings.Contains(recs[3].GetPeer(), "127.0.0.1") || !strings.HasPrefix(recs[3].GetPeer(), "ip:") {
		t.Errorf("a subject's peer is stored raw: %q", recs[3].GetPeer())
	}
	if !strings.HasPrefix(recs[0].GetPeer(), "127.0.0.1:") {
		t.Errorf("an analyst's peer: %q", recs[0].GetPeer())
	}
	// Filters.
	for _, tc := range []struct {
		req  *riskv1.QueryAuditRequest
		want int
	}{
		{&riskv1.QueryAuditRequest{Actor: "subject:acct-aud"}, 1},
		{&riskv1.QueryAuditRequest{Actor: "analyst"}, 4},
		{&riskv1.QueryAuditRequest{Procedure: "/risk.v1.DecisionService/"}, 4},
		{&riskv1.QueryAuditRequest{Procedure: riskv1connect.LabelsServicePutLabelProcedure}, 1},
		{&riskv1.QueryAuditRequest{Actor: "analyst", Limit: 2}, 2},
	} {
		res, err := adm.QueryAudit(ctx, connect.NewRequest(tc.req))
		if err != nil {
			t.Fatal(err)
		}
		// The admin's own earlier QueryAudit calls are audited too; the
		// filters above exclude them.
		if n := len(res.Msg.GetRecords()); n != tc.want {
			t.Errorf("QueryAudit(%v) = %d records, want %d", tc.req, n, tc.want)
		}
	}
	res, err = adm.QueryAudit(ctx, connect.NewRequest(&riskv1.QueryAuditRequest{Actor: "admin"}))
	if err != nil || len(res.Msg.GetRecords()) == 0 || res.Msg.GetRecords()[0].GetProcedure() != riskv1connect.AdminServiceQueryAuditProcedure {
		t.Errorf("the admin's own audit reads are not audited: %v, %v", res.Msg.GetRecords(), err)
	}
	if _, err := adm.QueryAudit(ctx, connect.NewRequest(&riskv1.QueryAuditRequest{Limit: -1})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("negative limit: %v", err)
	}
}

func credsWithKey(k string) (c auth.Credentials) {
	c.PseudonymKey = k
	return c
}
