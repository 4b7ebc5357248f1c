package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIngestNDJSON(t *testing.T) {
	fake, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.ndjson", `{"eventId":"n1","type":"EVENT_TYPE_SERVICE_LOG","accountId":"u1","serviceLog":{"action":"view"}}

{"eventId":"n2","accountId":"u2"}
{"eventId":"n3", "colour":"red"}
{"eventId":"n4"}
`)
	b := writeFile(t, dir, "b.ndjson", `{"event_id":"n5","account_id":"u5"}
not json
{"eventId":"n1","accountId":"u1"}
`)
	rejects := filepath.Join(dir, "rejects.txt")

	r := h.run("ingest", "--batch", "2", "--progress", "none", "--reject-file", rejects, a, b)
	if r.code != ExitRejected {
		t.Fatalf("exit %d, want %d; stderr %q", r.code, ExitRejected, r.stderr)
	}
	// Local rejects and riskd's, by file and line; the blank line counts.
	for _, want := range []string{
		a + ":4: proto:",
		a + ":5: events[2].account_id: required",
		b + ":2: proto:",
		"ingest: 5 events read, 3 accepted, 1 duplicates, 3 rejected",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	got, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	wantRejects := "{\"eventId\":\"n3\", \"colour\":\"red\"}\nnot json\n{\"eventId\":\"n4\"}\n"
	if string(got) != wantRejects {
		t.Errorf("reject file %q, want %q", got, wantRejects)
	}
	if n := fake.messageCount(); n != 3 {
		t.Errorf("%d stream messages for 5 events with --batch 2, want 3", n)
	}
	if ev := fake.ingestedEvent("n5"); ev.GetAccountId() != "u5" {
		t.Errorf("n5 (proto names) ingested as %v", ev)
	}
	for _, a := range fake.authHeaders() {
		if a != "Bearer "+serviceToken {
			t.Errorf("ingest sent Authorization %q, want the service token", a)
		}
	}

	// Again, as JSON: everything is a duplicate or rejected again.
	r = h.run("ingest", "--json", "--progress", "none", a, b)
	if r.code != ExitRejected {
		t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
	}
	var sum ingestSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if sum.Read != 5 || sum.Accepted != 0 || sum.Duplicates != 4 || sum.Rejected != 3 || len(sum.Rejections) != 3 {
		t.Errorf("summary %+v", sum)
	}
	if rj := sum.Rejections[1]; rj.Line != 5 || rj.EventID != "n4" || rj.Field != "events[2].account_id" {
		t.Errorf("riskd's rejection %+v, want line 5, n4, events[2].account_id", rj)
	}
}

const accessLines = `203.0.113.9 - alice [28/Nov/2026:17:29:58 +0800] "GET /items/42?q=shoes&uid=u-q HTTP/1.1" 200 2326 "https://shop.example/" "Mozilla/5.0 (X11; \"quoted\")" "acct-h"
198.51.100.1 - - [28/Nov/2026:09:29:59 +0000] "POST /login HTTP/1.1" 302 0 "-" "curl/8.5" "-"
`

func TestIngestAccessLog(t *testing.T) {
	fake, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(accessLines))
	zw.Close()
	h.stdin = gz.String()

	r := h.run("ingest", "--progress", "none", "-")
	if r.code != ExitRejected || !strings.Contains(r.stderr, "standard input:2: no account (--account-from user)") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	line := strings.SplitN(accessLines, "\n", 2)[0]
	a, _ := newAccessLog("user", "")
	want, err := a.parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	got := fake.ingestedEvent(want.GetEventId())
	if got == nil || !proto.Equal(got, want) {
		t.Fatalf("ingested %v, want %v", got, want)
	}
	if got.GetAccountId() != "alice" || got.GetNetwork().GetIp() != "203.0.113.9" ||
		got.GetNetwork().GetUserAgent() != `Mozilla/5.0 (X11; "quoted")` ||
		got.GetServiceLog().GetStatus() != 200 || got.GetServiceLog().GetResource() != "/items/42" ||
		!got.GetOccurredAt().AsTime().Equal(time.Date(2026, 11, 28, 9, 29, 58, 0, time.UTC)) {
		t.Errorf("mapped to %v", got)
	}

	// The same log again, from a file: the same ids, so duplicates.
	path := writeFile(t, t.TempDir(), "access.log", accessLines)
	r = h.run("ingest", "--progress", "none", "--format", "combined", path)
	if !strings.Contains(r.stderr, "1 events read, 0 accepted, 1 duplicates, 1 rejected") {
		t.Errorf("re-run: %q", r.stderr)
	}
	// The account from a logged header.
	r = h.run("ingest", "--progress", "none", "--account-from", "header:X-Account-Id", "--extra-fields", "x-account-id", path)
	if !strings.Contains(r.stderr, "1 events read") || !strings.Contains(r.stderr, path+":2: no account") {
		t.Errorf("header: %q", r.stderr)
	}
}

func TestIngestUsage(t *testing.T) {
	_, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ingest"}, "at least one FILE"},
		{[]string{"ingest", "--format", "csv", "-"}, `--format "csv"`},
		{[]string{"ingest", "--batch", "0", "-"}, "--batch 0"},
		{[]string{"ingest", "--batch", "10001", "-"}, "--batch 10001"},
		{[]string{"ingest", "-", "-"}, "may be given once"},
		{[]string{"ingest", "--account-from", "cookie:sid", "-"}, `--account-from "cookie:sid"`},
		{[]string{"ingest", "--account-from", "header:x-user", "-"}, "--extra-fields"},
		{[]string{"ingest", "--progress", "fancy", "-"}, `--progress "fancy"`},
		{[]string{"ingest", "/nonexistent.log"}, "no such file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d stderr %q, want %d and %q", r.code, r.stderr, ExitUsage, tc.want)
			}
		})
	}
}

func TestIngestLongLine(t *testing.T) {
	_, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	long := `{"eventId":"x","accountId":"` + strings.Repeat("a", maxLine) + "\"}\n"
	h.stdin = long + `{"eventId":"ok","accountId":"u"}` + "\n"
	r := h.run("ingest", "--progress", "none", "-")
	if r.code != ExitRejected || !strings.Contains(r.stderr, "standard input:1: line longer than") ||
		!strings.Contains(r.stderr, "1 events read, 1 accepted") {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
}

func TestLocate(t *testing.T) {
	r := &ingestRun{segs: []segment{{index: 0, file: 0, line: 1}, {index: 3, file: 0, line: 7}, {index: 4, file: 1, line: 2}}}
	for _, tc := range []struct {
		index int64
		file  int
		line  int64
		ok    bool
	}{
		{0, 0, 1, true}, {2, 0, 3, true}, {3, 0, 7, true}, {4, 1, 2, true}, {9, 1, 7, true}, {-1, 0, 0, false},
	} {
		f, l, ok := r.locate(tc.index)
		if f != tc.file || l != tc.line || ok != tc.ok {
			t.Errorf("locate(%d) = %d:%d %v, want %d:%d %v", tc.index, f, l, ok, tc.file, tc.line, tc.ok)
		}
	}
}

func TestAccessLogParse(t *testing.T) {
	a, err := newAccessLog("query:uid", "")
	if err != nil {
		t.Fatal(err)
	}
	at := timestamppb.New(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name, line string
		want       *riskv1.ServiceLog // nil: an error
		wantErr    string
	}{
		{"full", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /a/b?uid=u1&x=1 HTTP/2.0" 404 12 "-" "ua"`,
			&riskv1.ServiceLog{Action: "get", Resource: "/a/b", Query: "uid=u1&x=1", Status: 404}, ""},
		{"common format, no headers", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "DELETE /x?uid=u1 HTTP/1.0" 204 -`,
			&riskv1.ServiceLog{Action: "delete", Resource: "/x", Query: "uid=u1", Status: 204}, ""},
		{"nginx escapes", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /?uid=u1 HTTP/1.1" 200 1 "-" "a\x22b"`,
			&riskv1.ServiceLog{Action: "get", Resource: "/", Query: "uid=u1", Status: 200}, ""},
		{"no account", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 1`, nil, "no account"},
		{"bad time", `10.0.0.1 - - [yesterday] "GET /?uid=u HTTP/1.1" 200 1`, nil, "time"},
		{"bad status", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /?uid=u HTTP/1.1" 2000 1`, nil, "status"},
		{"unterminated", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /?uid=u`, nil, "unterminated"},
		{"no brackets", `10.0.0.1 - - 28/Nov/2026 "GET /" 200 1`, nil, "time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := a.parse([]byte(tc.line))
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(ev.GetServiceLog(), tc.want) || ev.GetAccountId() != "u1" || !proto.Equal(ev.GetOccurredAt(), at) {
				t.Errorf("got %v", ev)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"日本語", 4, "日"}, {"a\xffb", 5, "a\uFFFDb"},
	} {
		if got := string(truncate([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// FuzzAccessLog checks that no line panics the parser, and that what it
// accepts is an event riskd could take: valid UTF-8 within the bounds,
// encoded by appendEvent as proto.Marshal encodes it.
func FuzzAccessLog(f *testing.F) {
	for _, l := range strings.Split(accessLines, "\n") {
		f.Add(l)
	}
	f.Add(`1.2.3.4 - u [28/Nov/2026:09:00:00 +0000] "GET /\x22?a=%zz HTTP/1.1" 200 1 "r" "\\"`)
	a, err := newAccessLog("user", "x-a")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := a.parse([]byte(line))
		if err != nil {
			return
		}
		want, err := proto.Marshal(&riskv1.IngestRequest{Events: []*riskv1.Event{ev}})
		if err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
		var e accessEvent
		if err := a.parseFields([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if got := e.appendEvent(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendEvent %x, proto.Marshal %x", got, want)
		}
		if len(ev.GetNetwork().GetUserAgent()) > maxUserAgent || len(ev.GetServiceLog().GetResource()) > maxResource ||
			len(ev.GetServiceLog().GetQuery()) > maxQuery || ev.GetAccountId() == "" {
			t.Fatalf("out of bounds: %v", ev)
		}
	})
}

// A line whose account id decodes to bytes that are not UTF-8 is rejected
// with its place, and the run goes on (it used to end the run: the event
// went to the stream, whose encoding refused it).
func TestIngestAccessLogAccountNotUTF8(t *testing.T) {
	fake, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	path := writeFile(t, t.TempDir(), "access.log",
		`10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /a?uid=u1 HTTP/1.1" 200 1 "-" "curl/8"`+"\n"+
			`10.0.0.2 - - [28/Nov/2026:09:00:01 +0000] "GET /b?uid=%ff HTTP/1.1" 200 1 "-" "curl/8"`+"\n"+
			`10.0.0.3 - - [28/Nov/2026:09:00:02 +0000] "GET /c?uid=u3 HTTP/1.1" 200 1 "-" "curl/8"`+"\n")
	r := h.run("ingest", "--progress", "none", "--account-from", "query:uid", path)
	if r.code != ExitRejected || !strings.Contains(r.stderr, path+":2: account id is not valid UTF-8") ||
		!strings.Contains(r.stderr, "2 events read, 2 accepted, 0 duplicates, 1 rejected") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if n := fake.ingestedCount(); n != 2 {
		t.Errorf("riskd got %d events, want 2", n)
	}
}
