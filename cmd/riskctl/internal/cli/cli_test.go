package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// harness runs riskctl in-process with its own data dir, environment and
// fixed clock.
type harness struct {
	t       *testing.T
	dataDir string
	env     map[string]string
	stdin   string
}

func newHarness(t *testing.T, server string) *harness {
	t.Helper()
	dir := t.TempDir()
	data, _ := json.Marshal(testCreds)
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, dataDir: dir, env: map[string]string{"RISKCTL_SERVER": server, "RISKCTL_DATA_DIR": dir}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	env := Env{
		Stdin:  strings.NewReader(h.stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return h.env[k] },
		Clock:  clock.NewFake(testNow),
	}
	code := Run(context.Background(), args, env)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

const loginEvent = `{
  "eventId": "e1",
  "type": "EVENT_TYPE_LOGIN",
  "occurredAt": "2026-11-28T09:29:58Z",
  "accountId": "acct-1",
  "device": {"deviceId": "dev-9", "platform": "android"},
  "network": {"ip": "203.0.113.7"},
  "login": {"success": true, "method": "password"},
  "attributes": {"want": "CHALLENGE"}
}`

func TestHelp(t *testing.T) {
	h := newHarness(t, "http://127.0.0.1:1")
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"help.golden", []string{"help"}},
		{"help.golden", []string{"--help"}},
		{"help-evaluate.golden", []string{"evaluate", "--help"}},
		{"help-evaluate.golden", []string{"help", "evaluate"}},
		{"help-decisions.golden", []string{"decisions", "--help"}},
		{"help-decisions-get.golden", []string{"decisions", "get", "-h"}},
		{"help-decisions-list.golden", []string{"help", "decisions", "list"}},
		{"help-token-subject.golden", []string{"token", "subject", "--help"}},
		{"help-ingest.golden", []string{"ingest", "--help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != ExitOK || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			golden(t, tc.golden, r.stdout)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	_, srv := startFakeRiskd(t)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		want  string // in stderr
	}{
		{"no command", nil, "", "Usage: riskctl"},
		{"unknown command", []string{"frobnicate"}, "", `unknown command "frobnicate"`},
		{"unknown verb", []string{"decisions", "delete", "x"}, "", `unknown command "decisions delete"`},
		{"noun without verb", []string{"decisions"}, "", "Usage: riskctl decisions <command>"},
		{"unknown flag", []string{"decisions", "get", "--bogus", "x"}, "", "flag provided but not defined: -bogus"},
		{"get without id", []string{"decisions", "get"}, "", "decisions get takes one DECISION_ID"},
		{"get two ids", []string{"decisions", "get", "a", "b"}, "", "decisions get takes one DECISION_ID"},
		{"list without account", []string{"decisions", "list"}, "", "needs --account"},
		{"list page size", []string{"decisions", "list", "--account", "a", "--page-size", "501"}, "", "--page-size 501"},
		{"list positional", []string{"decisions", "list", "a"}, "", "takes no arguments"},
		{"bad fail-on", []string{"evaluate", "--fail-on", "maybe"}, loginEvent, `--fail-on "maybe"`},
		{"bad protocol", []string{"--protocol", "carrier-pigeon", "decisions", "get", "x"}, "", `--protocol "carrier-pigeon"`},
		{"bad server", []string{"--server", "127.0.0.1:8080", "decisions", "get", "x"}, "", "want an http:// or https:// URL"},
		{"bad timeout", []string{"decisions", "get", "x", "--timeout", "-1s"}, "", "--timeout must be positive"},
		{"evaluate two files", []string{"evaluate", "a.json", "b.json"}, "", "one FILE"},
		{"evaluate missing file", []string{"evaluate", "/nonexistent/event.json"}, "", "no such file"},
		{"evaluate empty stdin", []string{"evaluate"}, "", "standard input: empty input"},
		{"evaluate not json", []string{"evaluate", "-"}, "login please", "want one JSON object"},
		{"evaluate array", []string{"evaluate", "-"}, "[1,2]", "want one JSON object"},
		{"evaluate unknown field", []string{"evaluate", "-"}, `{"eventId":"e","acount_id":"a"}`, "not an Event"},
		{"token without account", []string{"token", "subject"}, "", "takes one ACCOUNT_ID"},
		{"token bad ttl", []string{"token", "subject", "a", "--ttl", "0s"}, "", "--ttl must be positive"},
		{"token account with spaces", []string{"token", "subject", " a "}, "", "not a clean account id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, srv.URL)
			h.stdin = tc.stdin
			r := h.run(tc.args...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr %q", r.code, ExitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	for _, protocol := range []string{"connect", "grpc", "grpcweb"} {
		t.Run(protocol, func(t *testing.T) {
			fake, srv := startFakeRiskd(t)
			h := newHarness(t, srv.URL)
			h.env["RISKCTL_PROTOCOL"] = protocol
			h.stdin = loginEvent

			r := h.run("evaluate", "--features")
			if r.code != ExitOK {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			golden(t, "evaluate.golden", r.stdout)
			if got := fake.authHeaders(); len(got) != 1 || got[0] != "Bearer "+serviceToken {
				t.Errorf("Authorization headers %q, want one %q", got, "Bearer "+serviceToken)
			}

			// --json prints the EvaluateResponse that riskd sent, losslessly.
			r = h.run("evaluate", "-", "--json")
			if r.code != ExitOK {
				t.Fatalf("--json: exit %d, stderr %q", r.code, r.stderr)
			}
			golden(t, "evaluate.json.golden", r.stdout)
			var got riskv1.EvaluateResponse
			if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("--json output does not parse: %v", err)
			}
			ev, err := parseEvent([]byte(loginEvent))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmpDecision(got.GetDecision(), sampleDecision(ev)); diff != "" {
				t.Errorf("--json decision differs from the server's: %s", diff)
			}
		})
	}
}

func cmpDecision(a, b *riskv1.Decision) string {
	if proto.Equal(a, b) {
		return ""
	}
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	return "got " + string(ja) + "\nwant " + string(jb)
}

func TestEvaluateOverrides(t *testing.T) {
	_, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	path := filepath.Join(t.TempDir(), "event.json")
	// Proto field names and an EvaluateRequest wrapper, as a curl body has.
	body := `{"event": {"event_id": "old", "type": "EVENT_TYPE_PAYMENT", "account_id": "acct-2",
	  "payment": {"amount_minor": 100, "currency": "CNY"}}}`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.run("--json", "evaluate", "--now", "--event-id", "new-id", path)
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got riskv1.EvaluateResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	d := got.GetDecision()
	if d.GetEventId() != "new-id" || d.GetAccountId() != "acct-2" {
		t.Errorf("event id %q account %q, want new-id acct-2", d.GetEventId(), d.GetAccountId())
	}
	if !d.GetOccurredAt().AsTime().Equal(testNow) {
		t.Errorf("occurredAt %v, want --now = %v", d.GetOccurredAt().AsTime(), testNow)
	}
}

func TestExitCodes(t *testing.T) {
	_, srv := startFakeRiskd(t)
	// A loopback address where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()

	withWant := func(outcome string) string {
		// A distinct event id per outcome: the fake, like riskd, answers a
		// repeated event id with the stored decision.
		ev := strings.Replace(loginEvent, `"want": "CHALLENGE"`, `"want": "`+outcome+`"`, 1)
		return strings.Replace(ev, `"e1"`, `"e-`+outcome+`"`, 1)
	}
	for _, tc := range []struct {
		name   string
		server string
		env    map[string]string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"ok", srv.URL, nil, withWant("ALLOW"), []string{"evaluate"}, ExitOK, ""},
		{"fail-on below", srv.URL, nil, withWant("CHALLENGE"), []string{"evaluate", "--fail-on", "review"}, ExitOK, ""},
		{"fail-on equal", srv.URL, nil, withWant("REVIEW"), []string{"evaluate", "--fail-on", "review"}, ExitThreshold, ""},
		{"fail-on above", srv.URL, nil, withWant("DENY"), []string{"evaluate", "--fail-on", "challenge"}, ExitThreshold, ""},
		{"server invalid_argument", srv.URL, nil, `{"type":"EVENT_TYPE_LOGIN"}`, []string{"evaluate"}, ExitServerError, "riskd answered invalid_argument: event_id: required"},
		{"server not_found", srv.URL, nil, "", []string{"decisions", "get", "nope"}, ExitServerError, `riskd answered not_found: decision "nope" not found`},
		{"wrong role token", srv.URL, map[string]string{"RISKCTL_TOKEN": serviceToken}, "", []string{"decisions", "get", "x"}, ExitServerError, "riskd answered permission_denied"},
		{"bad token flag", srv.URL, nil, "", []string{"decisions", "get", "x", "--token", "forged"}, ExitServerError, "riskd answered unauthenticated"},
		{"unreachable", deadURL, nil, "", []string{"decisions", "get", "x"}, ExitUnreachable, "no answer from riskd at " + deadURL},
		{"unreachable evaluate", deadURL, nil, loginEvent, []string{"evaluate"}, ExitUnreachable, "no answer from riskd"},
		{"no credentials", srv.URL, map[string]string{"RISKCTL_DATA_DIR": "/nonexistent"}, "", []string{"decisions", "get", "x"}, ExitUnreachable, "/nonexistent/credentials.json does not exist"},
		{"no credentials token", srv.URL, map[string]string{"RISKCTL_DATA_DIR": "/nonexistent"}, "", []string{"token", "subject", "a"}, ExitUnreachable, "credentials.json does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.server)
			for k, v := range tc.env {
				h.env[k] = v
			}
			h.stdin = tc.stdin
			r := h.run(tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			if tc.stderr != "" && !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.stderr)
			}
			if tc.stderr == "" && r.stderr != "" {
				t.Errorf("stderr %q, want nothing", r.stderr)
			}
		})
	}
}

func TestBadCredentials(t *testing.T) {
	_, srv := startFakeRiskd(t)
	for _, tc := range []struct {
		name   string
		data   string
		mode   os.FileMode
		stderr string
	}{
		{"readable by others", mustJSON(t, testCreds), 0o644, "chmod 600"},
		{"not json", "service=x", 0o600, "invalid credentials"},
		{"missing key", `{"service":"` + serviceToken + `"}`, 0o600, "invalid credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, srv.URL)
			path := filepath.Join(h.dataDir, "credentials.json")
			if err := os.WriteFile(path, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"decisions", "get", "x"}, {"token", "subject", "a"}} {
				r := h.run(args...)
				if r.code != ExitUnreachable || !strings.Contains(r.stderr, tc.stderr) {
					t.Errorf("%v: exit %d stderr %q, want %d and %q", args, r.code, r.stderr, ExitUnreachable, tc.stderr)
				}
			}
			// --token needs no credentials file.
			if r := h.run("decisions", "get", "nope", "--token", analystToken); r.code != ExitServerError || !strings.Contains(r.stderr, "not_found") {
				t.Errorf("--token: exit %d stderr %q, want riskd's not_found", r.code, r.stderr)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTimeout(t *testing.T) {
	// A server that accepts the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	h := newHarness(t, "http://"+ln.Addr().String())
	start := time.Now()
	r := h.run("decisions", "get", "x", "--timeout", "200ms")
	if r.code != ExitUnreachable || !strings.Contains(r.stderr, "deadline_exceeded") {
		t.Errorf("exit %d stderr %q, want %d and deadline_exceeded", r.code, r.stderr, ExitUnreachable)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v with --timeout 200ms", took)
	}
}

func TestDecisions(t *testing.T) {
	fake, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	// Five decisions for acct-1, one for acct-2, through evaluate.
	for i, want := range []string{"ALLOW", "DENY", "REVIEW", "ALLOW", "CHALLENGE"} {
		h.stdin = strings.Replace(strings.Replace(loginEvent, `"e1"`, `"e`+string(rune('1'+i))+`"`, 1), `"CHALLENGE"`, `"`+want+`"`, 1)
		if r := h.run("evaluate"); r.code != ExitOK {
			t.Fatalf("evaluate: exit %d, stderr %q", r.code, r.stderr)
		}
	}
	h.stdin = strings.Replace(loginEvent, `"acct-1"`, `"acct-2"`, 1)
	h.stdin = strings.Replace(h.stdin, `"e1"`, `"other"`, 1)
	if r := h.run("evaluate"); r.code != ExitOK {
		t.Fatalf("evaluate: exit %d, stderr %q", r.code, r.stderr)
	}
	h.stdin = ""
	before := len(fake.authHeaders())

	t.Run("get", func(t *testing.T) {
		r := h.run("decisions", "get", "01JDECE2")
		if r.code != ExitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		golden(t, "decisions-get.golden", r.stdout)
	})
	t.Run("get json, globals after the verb", func(t *testing.T) {
		r := h.run("decisions", "get", "01JDECE2", "--json", "--server", srv.URL)
		if r.code != ExitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		var got riskv1.GetDecisionResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		if got.GetDecision().GetOutcome() != riskv1.Outcome_OUTCOME_DENY {
			t.Errorf("outcome %v, want DENY", got.GetDecision().GetOutcome())
		}
	})
	t.Run("list first page", func(t *testing.T) {
		r := h.run("decisions", "list", "--account", "acct-1")
		if r.code != ExitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		golden(t, "decisions-list-page.golden", r.stdout)
		if want := "more: riskctl decisions list --account acct-1 --page-token 2\n"; r.stderr != want {
			t.Errorf("stderr %q, want %q", r.stderr, want)
		}
	})
	t.Run("list all", func(t *testing.T) {
		r := h.run("decisions", "list", "--account", "acct-1", "--all")
		if r.code != ExitOK || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		golden(t, "decisions-list-all.golden", r.stdout)
	})
	t.Run("list all json", func(t *testing.T) {
		r := h.run("--json", "decisions", "list", "--account", "acct-1", "--all", "--page-size", "2")
		if r.code != ExitOK {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		var got riskv1.ListDecisionsResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range got.GetDecisions() {
			ids = append(ids, d.GetEventId())
		}
		if want := "e5 e4 e3 e2 e1"; strings.Join(ids, " ") != want || got.GetNextPageToken() != "" {
			t.Errorf("events %q token %q, want %q and no token", ids, got.GetNextPageToken(), want)
		}
	})
	t.Run("list page token", func(t *testing.T) {
		r := h.run("--json", "decisions", "list", "--account", "acct-1", "--page-token", "4")
		var got riskv1.ListDecisionsResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.GetDecisions()) != 1 || got.GetDecisions()[0].GetEventId() != "e1" {
			t.Errorf("got %v, want only e1", got.GetDecisions())
		}
	})
	t.Run("list empty", func(t *testing.T) {
		r := h.run("decisions", "list", "--account", "nobody")
		if r.code != ExitOK || r.stdout != "no decisions\n" {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
	})
	for _, a := range fake.authHeaders()[before:] {
		if a != "Bearer "+analystToken {
			t.Errorf("decisions sent Authorization %q, want the analyst token", a)
		}
	}
}

func TestWriteDecision(t *testing.T) {
	for _, tc := range []struct {
		golden string
		d      *riskv1.Decision
	}{
		{"decision-degraded.golden", sampleDecision(&riskv1.Event{EventId: "p1", AccountId: "a", Type: riskv1.EventType_EVENT_TYPE_PAYMENT,
			Attributes: map[string]string{"want": "REVIEW", "degraded": "yes"}})},
		{"decision-minimal.golden", &riskv1.Decision{DecisionId: "d", Outcome: riskv1.Outcome_OUTCOME_ALLOW}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeDecision(&b, tc.d, decisionView{features: true}); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b.String())
		})
	}
}

func TestTokenSubject(t *testing.T) {
	h := newHarness(t, "http://127.0.0.1:1")
	r := h.run("token", "subject", "acct-7", "--ttl", "2h")
	if r.code != ExitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	tok := strings.TrimSuffix(r.stdout, "\n")
	key := []byte(testCreds.SubjectKey)
	parsed, err := jwt.ParseWithClaims(tok, &jwt.RegisteredClaims{}, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return testNow }))
	if err != nil {
		t.Fatalf("token does not verify with subject_key: %v", err)
	}
	c := parsed.Claims.(*jwt.RegisteredClaims)
	if c.Subject != "acct-7" {
		t.Errorf("sub %q, want acct-7", c.Subject)
	}
	if !c.ExpiresAt.Time.Equal(testNow.Add(2 * time.Hour)) {
		t.Errorf("exp %v, want %v", c.ExpiresAt.Time, testNow.Add(2*time.Hour))
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("another key"), nil }); err == nil {
		t.Error("token verifies with another key")
	}

	r = h.run("token", "subject", "acct-7", "--json")
	var j struct{ Token, ExpiresAt string }
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.Token == "" || j.ExpiresAt != "2026-11-28T10:30:00Z" {
		t.Errorf("--json %q: %+v %v", r.stdout, j, err)
	}
}

func TestParseEvent(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *riskv1.Event // nil: an error
	}{
		{"lowerCamelCase", `{"eventId":"e","type":"EVENT_TYPE_LOGIN","accountId":"a","login":{"success":true}}`,
			&riskv1.Event{EventId: "e", Type: riskv1.EventType_EVENT_TYPE_LOGIN, AccountId: "a", Login: &riskv1.Login{Success: true}}},
		{"proto names", `{"event_id":"e","type":"EVENT_TYPE_PAYMENT","account_id":"a","payment":{"amount_minor":"5","currency":"CNY"}}`,
			&riskv1.Event{EventId: "e", Type: riskv1.EventType_EVENT_TYPE_PAYMENT, AccountId: "a", Payment: &riskv1.Payment{AmountMinor: 5, Currency: "CNY"}}},
		{"enum number", `{"eventId":"e","type":5}`, &riskv1.Event{EventId: "e", Type: riskv1.EventType_EVENT_TYPE_ATTENDANCE}},
		{"evaluate request", ` {"event":{"eventId":"e"}} `, &riskv1.Event{EventId: "e"}},
		{"empty object", `{}`, &riskv1.Event{}},
		{"empty", "  \n", nil},
		{"null", "null", nil},
		{"array", "[]", nil},
		{"string", `"e"`, nil},
		{"two objects", `{}{}`, nil},
		{"unknown field", `{"eventId":"e","colour":"red"}`, nil},
		{"event plus more", `{"event":{"eventId":"e"},"eventId":"x"}`, nil},
		{"bad enum", `{"type":"EVENT_TYPE_TELEPORT"}`, nil},
		{"bad timestamp", `{"occurredAt":"yesterday"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEvent([]byte(tc.in))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzParseEvent checks that any input either fails cleanly or yields an
// event that survives a round trip through its JSON form.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(loginEvent))
	f.Add([]byte(`{"event":{"event_id":"e","attributes":{"k":"v"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := parseEvent(data)
		if err != nil {
			return
		}
		out, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatalf("parsed event does not marshal: %v", err)
		}
		again, err := parseEvent(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !proto.Equal(ev, again) {
			t.Fatalf("round trip changed the event: %v -> %v", ev, again)
		}
	})
}
