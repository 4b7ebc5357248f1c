package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
	"github.com/riskd/riskd/internal/testserver"
)

// realRiskd runs riskctl against a real riskd (server.Run on loopback).
type realRiskd struct {
	t   *testing.T
	srv *testserver.Server
	clk *clock.Fake
}

func startRealRiskd(t *testing.T) *realRiskd {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	return &realRiskd{t: t, srv: testserver.Start(t, testserver.Options{Clock: clk}), clk: clk}
}

func (r *realRiskd) run(args ...string) result {
	r.t.Helper()
	var out, errb bytes.Buffer
	env := Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			switch k {
			case "RISKCTL_SERVER":
				return r.srv.URL
			case "RISKCTL_DATA_DIR":
				return r.srv.DataDir
			}
			return ""
		},
		Clock: r.clk,
	}
	code := Run(context.Background(), args, env)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// mustRun runs riskctl and fails unless it exits with code.
func (r *realRiskd) mustRun(code int, args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != code {
		r.t.Fatalf("riskctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, code, res.stdout, res.stderr)
	}
	return res
}

// mockedCheckIn fires the bundled rule att.mock_location.
func mockedCheckIn(id, account string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId: id, Type: riskv1.EventType_EVENT_TYPE_ATTENDANCE, OccurredAt: timestamppb.New(at), AccountId: account,
		Device:     &riskv1.Device{DeviceId: "dev-" + account, Platform: "android"},
		Network:    &riskv1.Network{Ip: "192.0.2.10"},
		Location:   &riskv1.Location{Latitude: 39.9042, Longitude: 116.4074, AccuracyM: 15, Provider: "gps", Mocked: true},
		Attendance: &riskv1.Attendance{SiteId: "site-1", Method: "gps"},
	}
}

// lineWith returns the first line of s containing sub ("" if none).
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

var ulidRE = regexp.MustCompile(`[0-9A-HJKMNP-TV-Z]{26}`)

// The reviewer's and the subject's whole journey through riskctl: explain,
// file, list, review, resolve, replay, verify, checkpoint, export, labels.
func TestAppealJourneyThroughRiskctl(t *testing.T) {
	r := startRealRiskd(t)
	d := r.srv.Evaluate(mockedCheckIn("cli-1", "acct-cli", r.clk.Now()))
	subject := r.srv.SubjectToken("acct-cli")
	other := r.srv.SubjectToken("acct-other")

	// explain: the analyst's whole record, the subject's view, both languages.
	full := r.mustRun(0, "decisions", "explain", d.DecisionId)
	for _, want := range []string{"att.mock_location v1", "when: device.mock_location_enabled || location.mocked", "features:", "ruleset", "event (pseudonymized):", "zh: ", "REVIEW (人工审核)"} {
		if !strings.Contains(full.stdout, want) {
			t.Errorf("analyst explain lacks %q:\n%s", want, full.stdout)
		}
	}
	own := r.mustRun(0, "decisions", "explain", d.DecisionId, "--token", subject)
	for _, want := range []string{"simulated (mock) location", "模拟定位", "location (位置信息)", "you may appeal until then", "fully automated"} {
		if !strings.Contains(own.stdout, want) {
			t.Errorf("subject explain lacks %q:\n%s", want, own.stdout)
		}
	}
	for _, hidden := range []string{"when:", "features:", "ruleset", "score"} {
		if strings.Contains(own.stdout, hidden) {
			t.Errorf("subject explain shows %q:\n%s", hidden, own.stdout)
		}
	}
	var x riskv1.ExplainDecisionResponse
	jx := r.mustRun(0, "decisions", "explain", d.DecisionId, "--json", "--token", subject)
	if err := protojson.Unmarshal([]byte(jx.stdout), &x); err != nil || !x.GetExplanation().GetAppealable() || x.GetExplanation().GetFull() {
		t.Errorf("explain --json: %v\n%s", err, jx.stdout)
	}
	// Another subject learns nothing.
	r.mustRun(ExitServerError, "decisions", "explain", d.DecisionId, "--token", other)

	// file: needs the subject's token and a statement.
	r.mustRun(ExitUsage, "appeals", "file", d.DecisionId, "--statement", "x")
	r.mustRun(ExitUsage, "appeals", "file", d.DecisionId, "--token", subject)
	notMine := r.mustRun(ExitServerError, "appeals", "file", d.DecisionId, "--statement", "mine?", "--token", other)
	if !strings.Contains(notMine.stderr, "not_found") {
		t.Errorf("another's decision: %s", notMine.stderr)
	}
	filed := r.mustRun(0, "appeals", "file", d.DecisionId, "--statement", "I was at the site.", "--contact", "me@example.com", "--token", subject)
	appealID := ulidRE.FindString(filed.stdout)
	if appealID == "" || !strings.Contains(filed.stdout, "已提交申诉") {
		t.Fatalf("file output: %s", filed.stdout)
	}
	again := r.mustRun(ExitServerError, "appeals", "file", d.DecisionId, "--statement", "again", "--token", subject)
	if !strings.Contains(again.stderr, "already_exists") {
		t.Errorf("second appeal: %s", again.stderr)
	}

	// list, overdue with the clock moved past the due time.
	list := r.mustRun(0, "appeals", "list")
	if line := lineWith(list.stdout, appealID); !strings.Contains(line, "OPEN") || strings.Contains(line, "OVERDUE") {
		t.Errorf("appeals list:\n%s", list.stdout)
	}
	if over := r.mustRun(0, "appeals", "list", "--overdue"); !strings.Contains(over.stdout, "no appeals") {
		t.Errorf("overdue before due:\n%s", over.stdout)
	}
	r.clk.Advance(15*24*time.Hour + time.Minute)
	over := r.mustRun(0, "appeals", "list", "--overdue")
	if !strings.Contains(lineWith(over.stdout, appealID), "OVERDUE") {
		t.Errorf("overdue after 15 days:\n%s", over.stdout)
	}
	r.mustRun(ExitUsage, "appeals", "list", "--status", "pending")
	if st := r.mustRun(0, "appeals", "list", "--status", "open", "--json"); !strings.Contains(st.stdout, appealID) {
		t.Errorf("list --status open --json:\n%s", st.stdout)
	}
	// The subject lists their own.
	if mine := r.mustRun(0, "appeals", "list", "--token", r.srv.SubjectToken("acct-cli")); !strings.Contains(mine.stdout, appealID) {
		t.Errorf("subject's own list:\n%s", mine.stdout)
	}

	// review, then resolve.
	if rv := r.mustRun(0, "appeals", "review", appealID); !strings.Contains(rv.stdout, "IN_REVIEW") {
		t.Errorf("review:\n%s", rv.stdout)
	}
	r.mustRun(ExitUsage, "appeals", "resolve", appealID, "--reason", "x")
	r.mustRun(ExitUsage, "appeals", "resolve", appealID, "--uphold", "--overturn", "--reason", "x")
	r.mustRun(ExitUsage, "appeals", "resolve", appealID, "--overturn")
	r.mustRun(ExitUsage, "appeals", "resolve", appealID, "--uphold", "--reason", "x", "--remedy-days", "3")
	res := r.mustRun(0, "appeals", "resolve", appealID, "--overturn", "--reason", "The site manager confirmed you were there.", "--remedy-days", "30")
	if !strings.Contains(res.stdout, "OVERTURNED") || !strings.Contains(res.stdout, "IN_REVIEW -> OVERTURNED") {
		t.Errorf("resolve:\n%s", res.stdout)
	}
	got := r.mustRun(0, "appeals", "get", appealID, "--token", r.srv.SubjectToken("acct-cli"))
	if !strings.Contains(got.stdout, "The site manager confirmed") || !strings.Contains(got.stdout, "OVERTURNED") {
		t.Errorf("subject's appeal:\n%s", got.stdout)
	}
	r.mustRun(ExitServerError, "appeals", "resolve", appealID, "--uphold", "--reason", "late")

	// replay: exact with the recorded version; an unknown version is an error.
	rp := r.mustRun(0, "decisions", "replay", d.DecisionId)
	if !strings.Contains(rp.stdout, "match: the replay reproduces the decision exactly") {
		t.Errorf("replay:\n%s", rp.stdout)
	}
	r.mustRun(ExitServerError, "decisions", "replay", d.DecisionId, "--ruleset", "v999")
	if js := r.mustRun(0, "decisions", "replay", d.DecisionId, "--json"); !strings.Contains(js.stdout, `"matches": true`) {
		t.Errorf("replay --json:\n%s", js.stdout)
	}

	// labels.
	r.mustRun(0, "labels", "put", "--decision", d.DecisionId, "--kind", "chargeback", "--token", r.srv.Creds.Service)
	r.mustRun(0, "labels", "put", "--event", "ingested-7", "--kind", "confirmed_fraud")
	r.mustRun(ExitUsage, "labels", "put", "--event", "x", "--kind", "maybe")
	r.mustRun(ExitUsage, "labels", "put", "--kind", "chargeback")
	if ls := r.mustRun(0, "labels", "list"); !strings.Contains(ls.stdout, "chargeback") || !strings.Contains(ls.stdout, "ingested-7") {
		t.Errorf("labels list:\n%s", ls.stdout)
	}
	if ls := r.mustRun(0, "labels", "list", "--kind", "confirmed_fraud"); strings.Contains(ls.stdout, "chargeback") {
		t.Errorf("labels list --kind:\n%s", ls.stdout)
	}

	// checkpoint, verify.
	out := filepath.Join(t.TempDir(), "cp.json")
	cp := r.mustRun(0, "decisions", "checkpoint", "--out", out)
	var saved struct {
		Seq   string `json:"seq"`
		Count string `json:"count"`
		Hash  string `json:"hash"`
	}
	data, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(data, &saved) != nil || saved.Hash == "" || !strings.Contains(cp.stdout, saved.Hash) {
		t.Errorf("checkpoint: %s / %s (%v)", cp.stdout, data, err)
	}
	if v := r.mustRun(0, "decisions", "verify"); !strings.Contains(v.stdout, "ok: ") || !strings.Contains(v.stdout, saved.Hash) {
		t.Errorf("verify:\n%s", v.stdout)
	}
	r.mustRun(0, "decisions", "verify", "--from", d.DecisionId)

	// export: the admin's any account, the subject's own.
	ex := r.mustRun(0, "decisions", "export", "--account", "acct-cli")
	if !strings.Contains(ex.stdout, d.DecisionId) || !strings.Contains(ex.stdout, appealID) {
		t.Errorf("admin export:\n%.400s", ex.stdout)
	}
	subjEx := r.mustRun(0, "decisions", "export", "--token", r.srv.SubjectToken("acct-cli"))
	if !json.Valid([]byte(subjEx.stdout)) || !strings.Contains(subjEx.stdout, d.DecisionId) || strings.Contains(subjEx.stdout, `"features"`) {
		t.Errorf("subject export:\n%.400s", subjEx.stdout)
	}
	r.mustRun(ExitServerError, "decisions", "export", "--account", "acct-cli", "--token", r.srv.Creds.Analyst)
	r.mustRun(ExitUsage, "decisions", "export")
}

// verify names the first broken record and exits 1.
func TestVerifyThroughRiskctlNamesTamperedRecord(t *testing.T) {
	r := startRealRiskd(t)
	var ids []string
	for i := range 4 {
		d := r.srv.Evaluate(mockedCheckIn("tamper-"+string(rune('a'+i)), "acct-t", r.clk.Now().Add(time.Duration(i)*time.Millisecond)))
		ids = append(ids, d.DecisionId)
	}
	r.mustRun(0, "decisions", "verify")
	u := ulid.MustParse(ids[2])
	k := append([]byte{keys.DecisionRecord}, u[:]...)
	db := r.srv.Engine.DB()
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), v...)
	c.Close()
	flipped[len(flipped)-3] ^= 0x40
	if err := db.Set(k, flipped, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	res := r.mustRun(ExitServerError, "decisions", "verify")
	if !strings.Contains(res.stdout, "BROKEN") || !strings.Contains(res.stdout, ids[2]) || !strings.Contains(res.stderr, "broken") {
		t.Errorf("verify of a tampered chain:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
	js := r.mustRun(ExitServerError, "decisions", "verify", "--json")
	if !strings.Contains(js.stdout, ids[2]) || !strings.Contains(js.stdout, `"broken"`) {
		t.Errorf("verify --json:\n%s", js.stdout)
	}
	// The tampered record no longer replays as recorded either... unless the
	// flipped byte left the decision's meaning intact; either way riskctl
	// exits 0 (match) or 1 (mismatch), never anything else.
	if rp := r.run("decisions", "replay", ids[2]); rp.code != 0 && rp.code != ExitServerError {
		t.Errorf("replay of a tampered record: exit %d\n%s", rp.code, rp.stderr)
	}
}
