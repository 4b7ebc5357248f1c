package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/logbuf"
)

// testServer is a real riskd (server.Run) on a loopback port with its own
// data directory.
type testServer struct {
	t      *testing.T
	dir    string
	url    string
	creds  auth.Credentials
	eng    *engine.Engine
	logs   *logbuf.Buffer
	cancel context.CancelFunc
	done   chan error
}

type serverSetup struct {
	dir    string // reuse a data dir (restart tests); default a new temp dir
	config func(*Config)
	hooks  Hooks
}

func startServer(t *testing.T, setup serverSetup) *testServer {
	t.Helper()
	dir := setup.dir
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
	}
	cfg, err := LoadConfig([]string{"--listen", "127.0.0.1:0", "--data-dir", dir, "--log-level", "debug"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Tests check semantics, not speed: a loaded machine must not turn
	// their decisions into fail modes. Budget tests set their own.
	cfg.Budget = 5 * time.Second
	if setup.config != nil {
		setup.config(&cfg)
	}
	s := &testServer{t: t, dir: dir, logs: &logbuf.Buffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan net.Addr, 1)
	hooks := setup.hooks
	userOpened := hooks.Opened
	hooks.Ready = func(a net.Addr) { ready <- a }
	hooks.Opened = func(e *engine.Engine) {
		s.eng = e
		if userOpened != nil {
			userOpened(e)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- Run(ctx, cfg, log, hooks) }()
	select {
	case a := <-ready:
		s.url = "http://" + a.String()
	case err := <-s.done:
		cancel()
		t.Fatalf("riskd did not start: %v\nlogs:\n%s", err, s.logs)
	case <-time.After(20 * time.Second):
		t.Fatal("riskd did not start in 20s")
	}
	s.creds, err = auth.Load(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	// The start record is queued, not awaited: land it, so that tests
	// comparing the store before and after a call see only that call.
	if err := s.eng.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// stop shuts the server down gracefully and waits; safe to call twice.
func (s *testServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("riskd stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Error("riskd did not stop in 30s")
	}
}

type protocol string

const (
	protoConnect protocol = "connect"
	protoGRPC    protocol = "grpc"
	protoGRPCWeb protocol = "grpcweb"
)

var protocols = []protocol{protoConnect, protoGRPC, protoGRPCWeb}

// httpClient speaks HTTP/2 without TLS (h2c) for gRPC, HTTP/1.1 otherwise.
func httpClient(p protocol) *http.Client {
	if p == protoGRPC {
		var ps http.Protocols
		ps.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: &http.Transport{Protocols: &ps}}
	}
	return &http.Client{Transport: &http.Transport{}}
}

func clientOpts(p protocol, token string) []connect.ClientOption {
	opts := []connect.ClientOption{connect.WithInterceptors(bearer(token))}
	switch p {
	case protoGRPC:
		opts = append(opts, connect.WithGRPC())
	case protoGRPCWeb:
		opts = append(opts, connect.WithGRPCWeb())
	}
	return opts
}

// bearer sets the Authorization header on every call ("" sends none).
func bearer(token string) connect.Interceptor { return bearerInterceptor(token) }

type bearerInterceptor string

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b != "" {
			req.Header().Set("Authorization", "Bearer "+string(b))
		}
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		}
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (s *testServer) risk(p protocol, token string) riskv1connect.RiskServiceClient {
	return riskv1connect.NewRiskServiceClient(httpClient(p), s.url, clientOpts(p, token)...)
}

func (s *testServer) decisions(p protocol, token string) riskv1connect.DecisionServiceClient {
	return riskv1connect.NewDecisionServiceClient(httpClient(p), s.url, clientOpts(p, token)...)
}

func (s *testServer) subjectToken(account string) string {
	s.t.Helper()
	tok, err := auth.MintSubjectToken([]byte(s.creds.SubjectKey), account, time.Hour, time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func (s *testServer) evaluate(ev *riskv1.Event) *riskv1.Decision {
	s.t.Helper()
	res, err := s.risk(protoConnect, s.creds.Service).Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
	if err != nil {
		s.t.Fatalf("Evaluate(%s): %v", ev.GetEventId(), err)
	}
	return res.Msg.GetDecision()
}

// storeKeys returns every key in the store, to show that a request changed
// nothing.
// metrics returns the server's /metrics page.
func (s *testServer) metrics() string {
	s.t.Helper()
	res, err := http.Get(s.url + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(body)
}

// metric returns the value of the unlabelled metric name on /metrics.
func (s *testServer) metric(name string) string {
	s.t.Helper()
	for _, line := range strings.Split(s.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	s.t.Fatalf("/metrics lacks %s", name)
	return ""
}

// metricLabelled returns the value of metric name on /metrics whose labels
// hold every one of values (0 when there is none yet).
func (s *testServer) metricLabelled(name string, values ...string) int {
	s.t.Helper()
next:
	for _, line := range strings.Split(s.metrics(), "\n") {
		labels, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, v, _ := strings.Cut(labels, "} ")
		for _, want := range values {
			if !strings.Contains(labels, `"`+want+`"`) {
				continue next
			}
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.t.Fatalf("%s: %v", line, err)
		}
		return int(n)
	}
	return 0
}

func (s *testServer) storeKeys() map[string]bool {
	s.t.Helper()
	it, err := s.eng.DB().NewIter(nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer it.Close()
	out := map[string]bool{}
	for it.First(); it.Valid(); it.Next() {
		out[string(it.Key())] = true
	}
	return out
}

// storeValues returns every key and value in the store.
func storeValues(t *testing.T, db *pebble.DB) map[string]string {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			t.Fatal(err)
		}
		out[string(it.Key())] = string(v)
	}
	return out
}

// loginEvent is a valid LOGIN event at time at.
func loginEvent(id, account, device string, success bool, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId:    id,
		Type:       riskv1.EventType_EVENT_TYPE_LOGIN,
		OccurredAt: timestamppb.New(at),
		AccountId:  account,
		Device:     &riskv1.Device{DeviceId: device, Platform: "android", Imei: "356938035643809", Model: "Pixel 8"},
		Network:    &riskv1.Network{Ip: "203.0.113.7", WifiBssid: "00:11:22:33:44:55", UserAgent: "riskd-test/1.0"},
		Location:   &riskv1.Location{Latitude: 31.2304, Longitude: 121.4737, AccuracyM: 20, Provider: "gps"},
		Login:      &riskv1.Login{Success: success, Method: "password"},
	}
}

func paymentEvent(id, account, device, payee string, amount int64, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId:    id,
		Type:       riskv1.EventType_EVENT_TYPE_PAYMENT,
		OccurredAt: timestamppb.New(at),
		AccountId:  account,
		Device:     &riskv1.Device{DeviceId: device, Platform: "ios"},
		Network:    &riskv1.Network{Ip: "198.51.100.20"},
		Payment:    &riskv1.Payment{AmountMinor: amount, Currency: "CNY", Kind: "transfer", PayeeAccountId: payee},
	}
}

func attendanceEvent(id, account, device, site string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId:    id,
		Type:       riskv1.EventType_EVENT_TYPE_ATTENDANCE,
		OccurredAt: timestamppb.New(at),
		AccountId:  account,
		Device:     &riskv1.Device{DeviceId: device, Platform: "android"},
		Network:    &riskv1.Network{Ip: "192.0.2.10", WifiBssid: "aa:bb:cc:dd:ee:ff"},
		Location:   &riskv1.Location{Latitude: 39.9042, Longitude: 116.4074, AccuracyM: 15, Provider: "gps"},
		Attendance: &riskv1.Attendance{SiteId: site, Method: "gps"},
	}
}
