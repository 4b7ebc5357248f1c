package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/decisions"
)

func TestEvaluateOverEveryProtocol(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now()
	for i, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			ev := loginEvent(fmt.Sprintf("proto-%d", i), fmt.Sprintf("acct-%s", p), "dev-1", true, now)
			res, err := s.risk(p, s.creds.Service).Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
			if err != nil {
				t.Fatal(err)
			}
			d := res.Msg.GetDecision()
			if d.GetDecisionId() == "" || d.GetEventId() != ev.EventId || d.GetAccountId() != ev.AccountId {
				t.Fatalf("decision ids: %+v", d)
			}
			if d.GetOutcome() != riskv1.Outcome_OUTCOME_ALLOW {
				t.Errorf("first clean login: outcome %v, want ALLOW", d.GetOutcome())
			}
			if d.GetRulesetVersion() == "" {
				t.Error("no ruleset_version")
			}
			if _, ok := d.GetFeatures()["login_failures_account_10m"]; !ok {
				t.Errorf("features lack login_failures_account_10m: %v", d.GetFeatures())
			}
			got := d.GetAppealDeadline().AsTime().Sub(d.GetDecidedAt().AsTime())
			if got != 30*24*time.Hour {
				t.Errorf("appeal_deadline - decided_at = %v, want 720h", got)
			}
			if d.GetDegraded() {
				t.Errorf("degraded: %s", d.GetDegradedReason())
			}
		})
	}
}

// A burst of failures then a success from an unseen device must be
// challenged, with reasons in both languages.
func TestEvaluateFiresBundledRules(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now().Add(-time.Minute)
	for i := 0; i < 6; i++ {
		d := s.evaluate(loginEvent(fmt.Sprintf("f%d", i), "victim", "attacker-dev", false, now.Add(time.Duration(i)*time.Second)))
		if d.GetDegraded() {
			t.Fatalf("degraded: %s", d.GetDegradedReason())
		}
	}
	d := s.evaluate(loginEvent("win", "victim", "attacker-dev-2", true, now.Add(10*time.Second)))
	if d.GetOutcome() < riskv1.Outcome_OUTCOME_CHALLENGE {
		t.Fatalf("outcome %v, want at least CHALLENGE; features %v", d.GetOutcome(), d.GetFeatures())
	}
	if len(d.GetReasons()) == 0 {
		t.Fatal("no reasons")
	}
	for _, r := range d.GetReasons() {
		if r.GetMessageEn() == "" || r.GetMessageZh() == "" || r.GetRuleId() == "" {
			t.Errorf("reason lacks a message or id: %+v", r)
		}
		if strings.Contains(r.GetMessageEn(), "{{") || strings.Contains(r.GetMessageZh(), "{{") {
			t.Errorf("unfilled placeholder: %+v", r)
		}
	}
	if v := d.GetFeatures()["login_failures_account_10m"].GetNumberValue(); v != 6 {
		t.Errorf("login_failures_account_10m = %v, want 6", v)
	}
	if v, ok := d.GetFeatures()["account_device_seen_before"]; !ok || v.GetBoolValue() {
		t.Errorf("account_device_seen_before = %v, want false", v)
	}
}

func TestEvaluateRejectsBadInput(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now()
	valid := func() *riskv1.Event { return loginEvent("bad-1", "acct-bad", "dev-bad", true, now) }
	long := strings.Repeat("x", 129)
	tests := []struct {
		name  string
		mod   func(*riskv1.Event)
		field string
	}{
		{"no event_id", func(e *riskv1.Event) { e.EventId = "" }, "event.event_id"},
		{"no type", func(e *riskv1.Event) { e.Type = 0 }, "event.type"},
		{"unknown type", func(e *riskv1.Event) { e.Type = 99 }, "event.type"},
		{"no occurred_at", func(e *riskv1.Event) { e.OccurredAt = nil }, "event.occurred_at"},
		{"no account_id", func(e *riskv1.Event) { e.AccountId = "" }, "event.account_id"},
		{"login without login", func(e *riskv1.Event) { e.Login = nil }, "event.login"},
		{"payment without payment", func(e *riskv1.Event) { e.Type = riskv1.EventType_EVENT_TYPE_PAYMENT }, "event.payment"},
		{"attendance without attendance", func(e *riskv1.Event) { e.Type = riskv1.EventType_EVENT_TYPE_ATTENDANCE }, "event.attendance"},
		{"service log without detail", func(e *riskv1.Event) { e.Type = riskv1.EventType_EVENT_TYPE_SERVICE_LOG }, "event.service_log"},
		{"bad ip", func(e *riskv1.Event) { e.Network.Ip = "300.1.2.3" }, "event.network.ip"},
		{"latitude out of range", func(e *riskv1.Event) { e.Location.Latitude = 91 }, "event.location.latitude"},
		{"longitude NaN", func(e *riskv1.Event) { e.Location.Longitude = math.NaN() }, "event.location.longitude"},
		{"negative amount", func(e *riskv1.Event) {
			*e = *paymentEvent("bad-1", "acct-bad", "dev-bad", "payee", -1, now)
		}, "event.payment.amount_minor"},
		{"overflowing amount", func(e *riskv1.Event) {
			*e = *paymentEvent("bad-1", "acct-bad", "dev-bad", "payee", math.MaxInt64, now)
		}, "event.payment.amount_minor"},
		{"bad currency", func(e *riskv1.Event) {
			*e = *paymentEvent("bad-1", "acct-bad", "dev-bad", "payee", 100, now)
			e.Payment.Currency = "cny"
		}, "event.payment.currency"},
		{"long account id", func(e *riskv1.Event) { e.AccountId = long }, "event.account_id"},
		{"long device id", func(e *riskv1.Event) { e.Device.DeviceId = long }, "event.device.device_id"},
		{"too many packages", func(e *riskv1.Event) {
			for i := 0; i <= 1000; i++ {
				e.Device.InstalledPackages = append(e.Device.InstalledPackages, fmt.Sprintf("com.example.app%d", i))
			}
		}, "event.device.installed_packages"},
		{"future", func(e *riskv1.Event) { e.OccurredAt = timestamppb.New(now.Add(6 * time.Minute)) }, "event.occurred_at"},
		{"too old", func(e *riskv1.Event) { e.OccurredAt = timestamppb.New(now.Add(-25 * time.Hour)) }, "event.occurred_at"},
	}
	before := s.storeKeys()
	client := s.risk(protoConnect, s.creds.Service)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := valid()
			tc.mod(ev)
			_, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("code %v (%v), want invalid_argument", connect.CodeOf(err), err)
			}
			var ce *connect.Error
			errors.As(err, &ce)
			if !strings.HasPrefix(ce.Message(), tc.field) {
				t.Errorf("message %q does not start with field %q", ce.Message(), tc.field)
			}
		})
	}
	t.Run("no event", func(t *testing.T) {
		_, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("code %v, want invalid_argument", connect.CodeOf(err))
		}
	})
	t.Run("request over the size limit", func(t *testing.T) {
		ev := valid()
		ev.Attributes = map[string]string{}
		for i := 0; i < 20000; i++ {
			ev.Attributes[fmt.Sprintf("k%05d", i)] = strings.Repeat("v", 250)
		}
		_, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
		if c := connect.CodeOf(err); c != connect.CodeResourceExhausted && c != connect.CodeInvalidArgument {
			t.Fatalf("code %v, want resource_exhausted", c)
		}
	})
	after := s.storeKeys()
	for k := range after {
		if !before[k] {
			t.Errorf("bad input stored key %x", k)
		}
	}
}

func TestIdempotentEvaluate(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now().Add(-time.Minute)
	first := s.evaluate(loginEvent("same", "acct-idem", "dev-i", false, now))
	for i := 0; i < 3; i++ {
		again := s.evaluate(loginEvent("same", "acct-idem", "dev-i", false, now))
		if !proto.Equal(first, again) {
			t.Fatalf("repeat %d differs:\n%v\n%v", i, first, again)
		}
	}
	// The repeats moved no feature: one failure counted, not four.
	next := s.evaluate(loginEvent("next", "acct-idem", "dev-i", false, now.Add(time.Second)))
	if v := next.GetFeatures()["login_failures_account_10m"].GetNumberValue(); v != 1 {
		t.Fatalf("login_failures_account_10m after a repeated failure = %v, want 1", v)
	}
}

func TestIdempotentUnderConcurrency(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now().Add(-time.Minute)
	const n = 16
	ids := make(chan string, n)
	client := s.risk(protoConnect, s.creds.Service)
	for i := 0; i < n; i++ {
		go func() {
			res, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: loginEvent("race", "acct-race", "dev-r", false, now)}))
			if err != nil {
				ids <- "error: " + err.Error()
				return
			}
			ids <- res.Msg.GetDecision().GetDecisionId()
		}()
	}
	first := <-ids
	for i := 1; i < n; i++ {
		if id := <-ids; id != first {
			t.Fatalf("concurrent duplicates got decisions %q and %q", first, id)
		}
	}
	next := s.evaluate(loginEvent("race-next", "acct-race", "dev-r", false, now.Add(time.Second)))
	if v := next.GetFeatures()["login_failures_account_10m"].GetNumberValue(); v != 1 {
		t.Fatalf("login_failures_account_10m = %v, want 1", v)
	}
}

func TestRestartKeepsDecisions(t *testing.T) {
	s := startServer(t, serverSetup{})
	d := s.evaluate(paymentEvent("pay-1", "acct-r", "dev-r", "payee-r", 1234, time.Now()))
	dir := s.dir
	s.stop()
	s2 := startServer(t, serverSetup{dir: dir})
	res, err := s2.decisions(protoConnect, s2.creds.Analyst).GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()}))
	if err != nil {
		t.Fatal(err)
	}
	stored := res.Msg.GetDecision()
	// The service caller got the record without the analysts-only fields,
	// which the analyst reading the log sees.
	if !proto.Equal(decisions.ServiceView(stored), d) {
		t.Fatalf("after restart:\n%v\nwant\n%v", stored, d)
	}
	if d.GetEvent() != nil || d.GetLatency() != nil || d.GetReasons() != nil && d.GetReasons()[0].GetExpression() != "" {
		t.Fatalf("service caller got analysts-only fields: %v", d)
	}
	if stored.GetEvent() == nil || stored.GetLatency() == nil {
		t.Fatalf("analyst's record lacks the stored event or latency: %v", stored)
	}
	again := s2.evaluate(paymentEvent("pay-1", "acct-r", "dev-r", "payee-r", 1234, time.Now()))
	if again.GetDecisionId() != d.GetDecisionId() {
		t.Fatalf("idempotency lost across restart: %s vs %s", again.GetDecisionId(), d.GetDecisionId())
	}
	next := s2.evaluate(paymentEvent("pay-2", "acct-r", "dev-r", "payee-r", 100, time.Now()))
	if v := next.GetFeatures()["payment_amount_account_24h"].GetNumberValue(); v != 1234 {
		t.Fatalf("payment_amount_account_24h after restart = %v, want 1234", v)
	}
}

func TestListDecisionsPagesNewestFirst(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now().Add(-time.Minute)
	var want []string
	for i := 0; i < 7; i++ {
		d := s.evaluate(loginEvent(fmt.Sprintf("l%d", i), "acct-list", "dev-l", true, now.Add(time.Duration(i)*time.Second)))
		want = append([]string{d.GetDecisionId()}, want...)
	}
	s.evaluate(loginEvent("other", "acct-other", "dev-o", true, now))
	client := s.decisions(protoConnect, s.creds.Analyst)
	var got []string
	token := ""
	for page := 0; ; page++ {
		res, err := client.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "acct-list", PageSize: 3, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Msg.GetDecisions() {
			got = append(got, d.GetDecisionId())
		}
		token = res.Msg.GetNextPageToken()
		if token == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages:\n%v\nwant\n%v", got, want)
	}
	_, err := client.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "acct-list", PageToken: "garbage"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad page token: %v, want invalid_argument", err)
	}
}

func TestSubjectSeesOnlyOwnDecisions(t *testing.T) {
	s := startServer(t, serverSetup{})
	mine := s.evaluate(loginEvent("m1", "alice", "dev-a", true, time.Now()))
	theirs := s.evaluate(loginEvent("t1", "bob", "dev-b", true, time.Now()))
	alice := s.decisions(protoConnect, s.subjectToken("alice"))

	res, err := alice.GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: mine.GetDecisionId()}))
	if err != nil {
		t.Fatal(err)
	}
	d := res.Msg.GetDecision()
	if d.GetOutcome() != mine.GetOutcome() || d.GetAppealDeadline() == nil || len(d.GetDataCategories()) == 0 {
		t.Errorf("subject view lacks what a subject may see: %v", d)
	}
	if len(d.GetFeatures()) != 0 || d.GetEvent() != nil || d.GetLatency() != nil {
		t.Errorf("subject view shows analyst-only fields: %v", d)
	}

	_, err = alice.GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: theirs.GetDecisionId()}))
	if c := connect.CodeOf(err); c != connect.CodeNotFound && c != connect.CodePermissionDenied {
		t.Fatalf("another's decision: %v", err)
	}
	var ce *connect.Error
	if errors.As(err, &ce) && strings.Contains(ce.Message(), "bob") {
		t.Errorf("error reveals the other subject: %q", ce.Message())
	}
	_, err = alice.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "bob"}))
	if c := connect.CodeOf(err); c != connect.CodePermissionDenied && c != connect.CodeNotFound {
		t.Fatalf("listing another's decisions: %v", err)
	}
	list, err := alice.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.GetDecisions()) != 1 || list.Msg.GetDecisions()[0].GetDecisionId() != mine.GetDecisionId() {
		t.Fatalf("own list: %v", list.Msg.GetDecisions())
	}
}

func TestRoleMatrix(t *testing.T) {
	s := startServer(t, serverSetup{})
	d := s.evaluate(loginEvent("rm", "carol", "dev-c", true, time.Now()))
	tokens := map[string]string{
		"none":    "",
		"garbage": "not-a-token",
		"service": s.creds.Service,
		"analyst": s.creds.Analyst,
		"admin":   s.creds.Admin,
		"subject": s.subjectToken("carol"),
	}
	type call func(token string) error
	calls := map[string]call{
		"Evaluate": func(tok string) error {
			_, err := s.risk(protoConnect, tok).Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: loginEvent("rm", "carol", "dev-c", true, time.Now())}))
			return err
		},
		"Ingest": func(tok string) error {
			st := s.risk(protoConnect, tok).Ingest(context.Background())
			_ = st.Send(&riskv1.IngestRequest{})
			_, err := st.CloseAndReceive()
			return err
		},
		"GetDecision": func(tok string) error {
			_, err := s.decisions(protoConnect, tok).GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()}))
			return err
		},
		"ListDecisions": func(tok string) error {
			_, err := s.decisions(protoConnect, tok).ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "carol"}))
			return err
		},
	}
	ok := connect.Code(0)
	want := map[string]map[string]connect.Code{
		"Evaluate":      {"service": ok, "analyst": connect.CodePermissionDenied, "admin": ok, "subject": connect.CodePermissionDenied},
		"Ingest":        {"service": ok, "analyst": connect.CodePermissionDenied, "admin": ok, "subject": connect.CodePermissionDenied},
		"GetDecision":   {"service": connect.CodePermissionDenied, "analyst": ok, "admin": ok, "subject": ok},
		"ListDecisions": {"service": connect.CodePermissionDenied, "analyst": ok, "admin": ok, "subject": ok},
	}
	for rpc, byRole := range want {
		byRole["none"] = connect.CodeUnauthenticated
		byRole["garbage"] = connect.CodeUnauthenticated
		for role, code := range byRole {
			t.Run(rpc+"/"+role, func(t *testing.T) {
				got := connect.Code(0)
				if err := calls[rpc](tokens[role]); err != nil {
					got = connect.CodeOf(err)
				}
				if got != code {
					t.Errorf("code %v, want %v", got, code)
				}
			})
		}
	}
}

func TestIngestCountsAndReportsEachEvent(t *testing.T) {
	s := startServer(t, serverSetup{})
	now := time.Now().Add(-time.Minute)
	// Seen before by Evaluate: a duplicate for Ingest.
	s.evaluate(loginEvent("ing-0", "acct-ing", "dev-g", false, now))
	before := s.storeKeys()
	stream := s.risk(protoGRPC, s.creds.Service).Ingest(context.Background())
	bad := loginEvent("ing-bad", "acct-ing", "dev-g", false, now)
	bad.Network.Ip = "not-an-ip"
	msgs := [][]*riskv1.Event{
		{loginEvent("ing-0", "acct-ing", "dev-g", false, now), loginEvent("ing-1", "acct-ing", "dev-g", false, now.Add(time.Second))},
		{bad, loginEvent("ing-2", "acct-ing", "dev-g", false, now.Add(2*time.Second)), loginEvent("ing-2", "acct-ing", "dev-g", false, now.Add(2*time.Second))},
	}
	for _, m := range msgs {
		if err := stream.Send(&riskv1.IngestRequest{Events: m}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := stream.CloseAndReceive()
	if err != nil {
		t.Fatal(err)
	}
	r := res.Msg
	if r.GetAccepted() != 2 || r.GetDuplicates() != 2 || len(r.GetErrors()) != 1 {
		t.Fatalf("accepted %d duplicates %d errors %v; want 2, 2, 1", r.GetAccepted(), r.GetDuplicates(), r.GetErrors())
	}
	e := r.GetErrors()[0]
	if e.GetIndex() != 2 || e.GetEventId() != "ing-bad" || e.GetField() != "events[2].network.ip" {
		t.Errorf("error %+v, want index 2, field events[2].network.ip", e)
	}
	if len(s.storeKeys()) <= len(before) {
		t.Error("ingest stored nothing")
	}
	// Ingested events count in features; the duplicate and the bad one do not.
	d := s.evaluate(loginEvent("ing-3", "acct-ing", "dev-g", false, now.Add(3*time.Second)))
	if v := d.GetFeatures()["login_failures_account_10m"].GetNumberValue(); v != 3 {
		t.Fatalf("login_failures_account_10m = %v, want 3", v)
	}
	// An ingested event has no decision: evaluating it is refused, not double counted.
	_, err = s.risk(protoConnect, s.creds.Service).Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: loginEvent("ing-1", "acct-ing", "dev-g", false, now.Add(time.Second))}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("evaluating an ingested event: %v, want already_exists", err)
	}
}

func TestHealthAndReflectionNeedNoToken(t *testing.T) {
	s := startServer(t, serverSetup{})
	res, err := http.Post(s.url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("health: HTTP %d", res.StatusCode)
	}
	client := grpcreflect.NewClient(httpClient(protoGRPC), s.url, connect.WithGRPC())
	stream := client.NewStream(context.Background())
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || string(n) == "risk.v1.RiskService"
	}
	if !found {
		t.Fatalf("reflection lists %v, lacking risk.v1.RiskService", names)
	}
}

func TestMetricsAndProfiles(t *testing.T) {
	s := startServer(t, serverSetup{})
	s.evaluate(loginEvent("m-1", "acct-m", "dev-m", false, time.Now()))
	body := s.metrics()
	for _, want := range []string{
		`riskd_requests_total{code="ok",procedure="/risk.v1.RiskService/Evaluate"} 1`,
		`riskd_decisions_total{degraded="false",event_type="LOGIN",outcome="ALLOW"} 1`,
		`riskd_group_commit_size_count`,
		`riskd_rule_evaluations_total{mode="active",rule_id="ato.new_device_after_failures"}`,
		`riskd_evaluations_in_flight_limit 256`,
		`riskd_pebble_compactions_total`,
		`riskd_pebble_compactions_in_progress`,
		`riskd_pebble_compaction_debt_bytes`,
		`riskd_pebble_flushes_total`,
		`riskd_pebble_flushed_bytes_total`,
		`riskd_pebble_compacted_bytes_total`,
		`riskd_pebble_wal_bytes_total`,
		`riskd_request_duration_seconds_bucket`,
		// The login's states were not in memory: read (or found absent).
		`riskd_feature_state_loads_total`,
		`riskd_feature_state_hits_total`,
		`riskd_feature_flushes_total`,
		`riskd_feature_flush_seconds_total`,
		`riskd_feature_deltas_merged_total`,
		`riskd_feature_deltas_waiting`,
		`riskd_feature_rebuilds_total 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^riskd_pebble_wal_sync_seconds_count [1-9]`).MatchString(body) {
		t.Errorf("/metrics counts no write-ahead log syncs after a durable evaluation")
	}
	if !regexp.MustCompile(`(?m)^riskd_pebble_wal_sync_seconds_bucket\{le="0\.0001"\} `).MatchString(body) {
		t.Errorf("/metrics has no WAL sync bucket at 100 µs (Pebble's nanoseconds restated in seconds)")
	}
	if strings.Contains(string(body), "riskd_pebble_wal_bytes_total 0\n") {
		t.Errorf("/metrics counts no write-ahead log bytes after a durable evaluation")
	}
	if strings.Contains(string(body), "riskd_feature_state_loads_total 0\n") {
		t.Errorf("/metrics counts no feature state loads after an evaluation of a new account")
	}
	for _, tc := range []struct {
		token string
		code  int
	}{{"", http.StatusUnauthorized}, {s.creds.Analyst, http.StatusForbidden}, {s.creds.Admin, http.StatusOK}} {
		req, _ := http.NewRequest("GET", s.url+"/debug/pprof/heap?debug=1", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.code {
			t.Errorf("pprof with token %.8q: HTTP %d, want %d", tc.token, res.StatusCode, tc.code)
		}
	}
}

// Raw device identifiers, IPs and BSSIDs never reach the store or the logs.
func TestNoRawIdentifierAtRestOrInLogs(t *testing.T) {
	s := startServer(t, serverSetup{})
	raw := map[string]string{
		"imei": "356938035643809", "idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "android_id": "9774d56d682e549c",
		"oaid": "1fe9a970-8b2c-4d53-a1b3-2f4f3a9c8d7e", "mac": "3c:22:fb:11:22:33", "imsi": "460001234567890",
		"ip": "203.0.113.77", "bssid": "f4:f2:6d:aa:bb:cc", "device_id": "install-7f3e9c2a",
	}
	ev := loginEvent("raw-1", "acct-raw", raw["device_id"], false, time.Now())
	ev.Device.Imei, ev.Device.Idfa, ev.Device.AndroidId, ev.Device.Oaid = raw["imei"], raw["idfa"], raw["android_id"], raw["oaid"]
	ev.Device.Mac, ev.Device.Imsi = raw["mac"], raw["imsi"]
	ev.Network.Ip, ev.Network.WifiBssid = raw["ip"], raw["bssid"]
	d := s.evaluate(ev)
	stream := s.risk(protoConnect, s.creds.Service).Ingest(context.Background())
	ev2 := proto.Clone(ev).(*riskv1.Event)
	ev2.EventId = "raw-2"
	if err := stream.Send(&riskv1.IngestRequest{Events: []*riskv1.Event{ev2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndReceive(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.decisions(protoConnect, s.creds.Analyst).GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: d.GetDecisionId()})); err != nil {
		t.Fatal(err)
	}
	db := s.eng.DB()
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	kv := storeValues(t, db)
	logs := s.logs.String()
	for name, v := range raw {
		for _, form := range []string{v, strings.ToLower(v), strings.ToUpper(v)} {
			for k, val := range kv {
				if strings.Contains(k, form) || strings.Contains(val, form) {
					t.Errorf("raw %s %q stored under key %x", name, form, k)
				}
			}
			if strings.Contains(logs, form) {
				t.Errorf("raw %s %q in the logs", name, form)
			}
		}
	}
	if !strings.Contains(logs, "procedure=/risk.v1.RiskService/Evaluate") {
		t.Error("no request line logged at debug level")
	}
}
