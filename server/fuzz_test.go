package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
)

// rpc is one procedure the server serves.
type rpc struct {
	path      string
	streaming bool
}

// servedRPCs lists every procedure of every service riskd serves, from the
// generated descriptors, so that a new RPC is fuzzed from its first day.
func servedRPCs(tb testing.TB) []rpc {
	var out []rpc
	for _, name := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			tb.Fatalf("service %s: %v", name, err)
		}
		ms := d.(protoreflect.ServiceDescriptor).Methods()
		for i := 0; i < ms.Len(); i++ {
			m := ms.Get(i)
			out = append(out, rpc{path: "/" + name + "/" + string(m.Name()), streaming: m.IsStreamingClient() || m.IsStreamingServer()})
		}
	}
	return out
}

// FuzzRPC feeds arbitrary bytes as the request message of every RPC,
// encoded as protobuf or JSON, through the real handler with an admin token
// (admin may call everything): whatever the input, the answer is a result
// or a client error, never a crash, a 5xx-class internal error or a hang.
func FuzzRPC(f *testing.F) {
	dir := f.TempDir()
	creds, _, _, err := auth.LoadOrCreate(dir)
	if err != nil {
		f.Fatal(err)
	}
	eng, err := engine.Open(engine.Options{DataDir: dir + "/store", PseudonymKey: []byte(creds.PseudonymKey), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = eng.Close() })
	h, err := NewHandler(Options{Engine: eng, Auth: auth.NewAuthenticator(creds, nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	rpcs := servedRPCs(f)
	now := time.Now().UTC().Format(time.RFC3339)
	jsonSeeds := []string{
		`{}`,
		`{"event":{"eventId":"fz-1","type":"EVENT_TYPE_LOGIN","occurredAt":"` + now + `","accountId":"acct-fz","device":{"deviceId":"d1","imei":"356938035643809"},"network":{"ip":"203.0.113.9"},"login":{"success":false}}}`,
		`{"events":[{"eventId":"fz-2","type":"EVENT_TYPE_PAYMENT","occurredAt":"` + now + `","accountId":"acct-fz","payment":{"amountMinor":"100","currency":"CNY"}}]}`,
		`{"decisionId":"01J0000000000000000000000X"}`,
		`{"accountId":"acct-fz","pageSize":2,"pageToken":"garbage"}`,
		`{"appealId":"x","resolution":"APPEAL_STATUS_OVERTURNED","reason":"r"}`,
		`{"since":"1970-01-01T00:00:00Z","limit":-5}`,
		`{"decisionId":1}`,
		`[`,
	}
	// Every RPC gets an empty message in both codecs and one seed of the
	// others in turn; testdata/fuzz/FuzzRPC holds more.
	for i := range rpcs {
		f.Add(uint8(i), true, []byte(`{}`))
		f.Add(uint8(i), false, []byte{})
		f.Add(uint8(i), i%2 == 0, []byte(jsonSeeds[1+i%(len(jsonSeeds)-1)]))
	}
	f.Add(uint8(0), false, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, which uint8, useJSON bool, body []byte) {
		r := rpcs[int(which)%len(rpcs)]
		ct := "application/proto"
		if useJSON {
			ct = "application/json"
		}
		payload := body
		if r.streaming {
			// The Connect streaming protocol: enveloped messages.
			ct = "application/connect+" + strings.TrimPrefix(ct, "application/")
			env := make([]byte, 5, 5+len(body))
			binary.BigEndian.PutUint32(env[1:], uint32(len(body)))
			payload = append(env, body...)
		}
		req := httptest.NewRequest(http.MethodPost, r.path, bytes.NewReader(payload))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+creds.Admin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out := rec.Body.Bytes()
		if r.streaming {
			// The end-of-stream message carries the error, if any.
			if bytes.Contains(out, []byte(`"code":"internal"`)) || bytes.Contains(out, []byte(`"code":"unknown"`)) {
				t.Fatalf("%s: internal error for %q: %s", r.path, body, out)
			}
			return
		}
		if rec.Code == http.StatusOK {
			return
		}
		var e struct{ Code, Message string }
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("%s: HTTP %d with a body that is not a Connect error: %q", r.path, rec.Code, out)
		}
		switch e.Code {
		case "internal", "unknown", "data_loss", "":
			t.Fatalf("%s: HTTP %d %s %q for input %q", r.path, rec.Code, e.Code, e.Message, body)
		}
	})
}
