package cli

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// wireLines cover every field appendProto writes, present and absent,
// escaped and not, and values at and over their bounds.
var wireLines = []struct {
	from, extra, line string
}{
	{"user", "", `203.0.113.9 - alice [28/Nov/2026:17:29:58 +0800] "GET /items/42?q=shoes HTTP/1.1" 200 2326 "https://shop.example/" "Mozilla/5.0 (X11; \"quoted\")"`},
	{"user", "", `203.0.113.9 - alice [28/Nov/2026:17:29:58.25 +0800] "get" 0 -`},
	{"user", "", `::1 - b [01/Jan/1970:00:00:00 +0000] "" 000 - "-" "-"`},
	{"user", "", `::1 - b [31/Dec/1969:23:59:59 -0100] "PROPFIND /dav HTTP/1.1" 207 1 "\xff" "\x22"`},
	{"user", "", "10.0.0.1 - b\xe6 [28/Nov/2026:09:00:00 +0000] \"GET /\xe6\x97\xa5?x=\xff HTTP/1.1\" 999 1 \"r\" \"" + strings.Repeat("日", 200) + "\""},
	{"query:uid", "", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /a\x22b?uid=u%41+1&uid=2 HTTP/1.1" 404 1 "` + strings.Repeat("r", 300) + `" "ua"`},
	{"query:uid", "", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /` + strings.Repeat("p", 1100) + `?uid=u&` + strings.Repeat("q", 1100) + ` HTTP/1.1" 200 1`},
	{"header:x-a", "x-a", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "POST /login HTTP/1.1" 302 0 "-" "curl/8.5" "acct\x41"`},
	{"cookie:uid", "x,cookie", `10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 0 "-" "-" "x" "a=b; uid=c9"`},
}

// appendEvent writes what proto.Marshal writes for the same event in an
// IngestRequest, so riskd reads the same message either way.
func TestAccessEventWire(t *testing.T) {
	for _, tc := range wireLines {
		t.Run(tc.line[:min(len(tc.line), 60)], func(t *testing.T) {
			a, err := newAccessLog(tc.from, tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			var e accessEvent
			if err := a.parseFields([]byte(tc.line), &e); err != nil {
				t.Fatal(err)
			}
			want, err := proto.Marshal(&riskv1.IngestRequest{Events: []*riskv1.Event{e.event(), e.event()}})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.appendEvent(e.appendEvent(nil)); !bytes.Equal(got, want) {
				t.Errorf("appendEvent\n%x\nproto.Marshal\n%x", got, want)
			}
		})
	}
}

// An account id that is not UTF-8 (from an escape) rejects its line: the
// API's strings are UTF-8.
func TestAccessEventInvalidAccount(t *testing.T) {
	a, err := newAccessLog("query:uid", "")
	if err != nil {
		t.Fatal(err)
	}
	var e accessEvent
	err = a.parseFields([]byte(`10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET /?uid=%ff HTTP/1.1" 200 1`), &e)
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("parse: %v, want an account id that is not valid UTF-8", err)
	}
}

func TestQueryValue(t *testing.T) {
	for _, q := range []string{
		"", "uid=u1", "a=1&uid=u1&uid=u2", "&&uid=u1&", "uid", "uid=", "=uid", "xuid=1&uid=2",
		"uid=%41", "uid=%zz&uid=u1", "a=%zz", "uid=a+b", "u+id=x&uid=y", "uid=1;a=2", "a;b&uid=3",
		"uid=a=b", "UID=1",
	} {
		for _, name := range []string{"uid", "u id", ""} {
			want, wantErr := url.ParseQuery(q)
			got, err := queryValue([]byte(q), name)
			if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Errorf("queryValue(%q, %q) error %v, want %v", q, name, err, wantErr)
				continue
			}
			if err == nil && string(got) != want.Get(name) {
				t.Errorf("queryValue(%q, %q) = %q, want %q", q, name, got, want.Get(name))
			}
		}
	}
}

// The remembered time is the last line's: a new time, a bad one and the
// same one again each parse as they would alone.
func TestAccessLogTimes(t *testing.T) {
	a, err := newAccessLog("user", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		time string
		want int64 // Unix seconds; 0 for an error
	}{
		{"", 0},
		{"28/Nov/2026:09:00:00 +0000", 1795856400},
		{"28/Nov/2026:09:00:00 +0000", 1795856400},
		{"28/Nov/2026:09:00:00 +0100", 1795852800},
		{"28/Nov/2026:09:00:0 +0100", 0},
		{"28/Nov/2026:09:00:00 +0100", 1795852800},
		{"", 0},
		{"", 0},
		{"28/Nov/2026:09:00:01 +0100", 1795852801},
	} {
		ev, err := a.parse([]byte(`10.0.0.1 - u [` + tc.time + `] "GET / HTTP/1.1" 200 1`))
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("%q: no error", tc.time)
		case tc.want != 0 && err != nil:
			t.Errorf("%q: %v", tc.time, err)
		case tc.want != 0 && ev.GetOccurredAt().GetSeconds() != tc.want:
			t.Errorf("%q: %d, want %d", tc.time, ev.GetOccurredAt().GetSeconds(), tc.want)
		}
	}
}

// A header named twice (--extra-fields referer) is read from its last
// occurrence the line has, as a map of the fields read in order would.
func TestAccessLogRepeatedField(t *testing.T) {
	a, err := newAccessLog("header:referer", "referer")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ fields, want string }{
		{`"r1" "ua"`, "r1"},
		{`"r1" "ua" "r2"`, "r2"},
	} {
		ev, err := a.parse([]byte(`10.0.0.1 - - [28/Nov/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 1 ` + tc.fields))
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetAccountId() != tc.want || ev.GetAttributes()["referer"] != tc.want {
			t.Errorf("%s: account %q, referer %q; want %q", tc.fields, ev.GetAccountId(), ev.GetAttributes()["referer"], tc.want)
		}
	}
}

// Files of both formats in one run: a message holds events of one form
// (messages or encoded), and riskd's rejections still come back as the
// right file:line across the change.
func TestIngestMixedFormats(t *testing.T) {
	fake, srv := startFakeRiskd(t)
	h := newHarness(t, srv.URL)
	dir := t.TempDir()
	a := writeFile(t, dir, "a.ndjson", `{"eventId":"n1","accountId":"u1"}
{"eventId":"n2"}
`)
	b := writeFile(t, dir, "b.log", accessLines+"not a log line\n"+accessLines)
	c := writeFile(t, dir, "c.ndjson", `{"eventId":"n3"}
`)
	r := h.run("ingest", "--batch", "3", "--progress", "none", a, b, c)
	if r.code != ExitRejected {
		t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		a + ":2: events[1].account_id: required",
		b + ":2: no account",
		b + ":3: ",
		b + ":5: no account",
		c + ":1: events[",
		"ingest: 5 events read, 2 accepted, 1 duplicates, 5 rejected",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	// n1 n2 | the log's first line and its copy (a duplicate) | n3: each
	// form in messages of its own, though three events fit in one.
	if n := fake.messageCount(); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
	al, err := newAccessLog("user", "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := al.parse([]byte(strings.SplitN(accessLines, "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got := fake.ingestedEvent(want.GetEventId()); !proto.Equal(got, want) {
		t.Errorf("ingested %v, want %v", got, want)
	}
	if got := fake.ingestedEvent("n1"); got.GetAccountId() != "u1" {
		t.Errorf("n1 ingested as %v", got)
	}
}
