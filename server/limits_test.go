package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "riskd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvDER, srvKey := issue(2, "riskd", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cliDER, cliKey := issue(3, "payments-backend", x509.ExtKeyUsageClientAuth, nil)
	p := testPKI{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = writePEM("ca.pem", "CERTIFICATE", caDER)
	p.certFile = writePEM("server.pem", "CERTIFICATE", srvDER)
	p.keyFile = writePEM("server-key.pem", "EC PRIVATE KEY", srvKeyDER)
	p.client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return p
}

func tlsClient(pool *x509.CertPool, cert *tls.Certificate, h2 bool) *http.Client {
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	return &http.Client{Transport: tr}
}

func TestInsecureListenIsRefused(t *testing.T) {
	env := func(string) string { return "" }
	_, err := LoadConfig([]string{"--listen", "0.0.0.0:8080"}, env, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("non-loopback without TLS: %v, want a refusal naming --insecure", err)
	}
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:8080", "--insecure"},
		{"--listen", "0.0.0.0:8080", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
		{"--listen", "localhost:8080"},
		{"--listen", "[::1]:8080"},
	} {
		if _, err := LoadConfig(args, env, io.Discard); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := LoadConfig([]string{"--tls-cert", "c.pem"}, env, io.Discard); err == nil {
		t.Error("--tls-cert without --tls-key accepted")
	}
}

func TestTLSAndMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	s := startServer(t, serverSetup{config: func(c *Config) {
		c.TLSCert, c.TLSKey, c.TLSClientCA = pki.certFile, pki.keyFile, pki.caFile
	}})
	url := strings.Replace(s.url, "http://", "https://", 1)
	ev := func(id string) *connect.Request[riskv1.EvaluateRequest] {
		return connect.NewRequest(&riskv1.EvaluateRequest{Event: loginEvent(id, "acct-tls", "dev-t", true, time.Now())})
	}
	// A service caller with a client certificate, over Connect (HTTP/1.1) and gRPC (HTTP/2 by ALPN).
	for i, opt := range []connect.ClientOption{connect.WithProtoJSON(), connect.WithGRPC()} {
		c := riskv1connect.NewRiskServiceClient(tlsClient(pki.pool, &pki.client, true), url, opt, connect.WithInterceptors(bearer(s.creds.Service)))
		if _, err := c.Evaluate(context.Background(), ev("tls-"+string(rune('a'+i)))); err != nil {
			t.Fatalf("with client certificate: %v", err)
		}
	}
	// Without a client certificate the service token is not enough.
	c := riskv1connect.NewRiskServiceClient(tlsClient(pki.pool, nil, false), url, connect.WithInterceptors(bearer(s.creds.Service)))
	if _, err := c.Evaluate(context.Background(), ev("tls-nocert")); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("service without client certificate: %v, want unauthenticated", err)
	}
	// Analysts (people in browsers) need no certificate.
	d := riskv1connect.NewDecisionServiceClient(tlsClient(pki.pool, nil, false), url, connect.WithInterceptors(bearer(s.creds.Analyst)))
	if _, err := d.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "acct-tls"})); err != nil {
		t.Fatalf("analyst over TLS: %v", err)
	}
	// Plain HTTP to a TLS port fails clearly instead of hanging.
	plain := riskv1connect.NewRiskServiceClient(httpClient(protoConnect), s.url, connect.WithInterceptors(bearer(s.creds.Service)))
	if _, err := plain.Evaluate(context.Background(), ev("tls-plain")); err == nil {
		t.Fatal("plain HTTP to the TLS port succeeded")
	}
}

func TestRateLimitPerToken(t *testing.T) {
	s := startServer(t, serverSetup{config: func(c *Config) { c.RateLimitUser = 2; c.RateLimitSubject = 1 }})
	client := s.decisions(protoConnect, s.creds.Analyst)
	var limited bool
	for i := 0; i < 20 && !limited; i++ {
		_, err := client.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "a"}))
		switch connect.CodeOf(err) {
		case connect.CodeResourceExhausted:
			limited = true
			if !strings.Contains(err.Error(), "rate limit") {
				t.Errorf("unclear error: %v", err)
			}
		case connect.CodeUnknown:
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if !limited {
		t.Fatal("20 quick calls at 2/s were never limited")
	}
	// Another token has its own bucket; the service token is unlimited by default.
	if _, err := s.decisions(protoConnect, s.creds.Admin).ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{AccountId: "a"})); err != nil {
		t.Fatalf("admin limited by the analyst's bucket: %v", err)
	}
	for i := 0; i < 30; i++ {
		s.evaluate(loginEvent("rl-"+string(rune('a'+i)), "acct-rl", "dev", true, time.Now()))
	}
	// Each subject has a bucket of its own.
	subj := s.decisions(protoConnect, s.subjectToken("acct-rl"))
	limited = false
	for i := 0; i < 10 && !limited; i++ {
		_, err := subj.ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{}))
		limited = connect.CodeOf(err) == connect.CodeResourceExhausted
	}
	if !limited {
		t.Fatal("a subject at 1/s was never limited")
	}
	if _, err := s.decisions(protoConnect, s.subjectToken("someone-else")).ListDecisions(context.Background(), connect.NewRequest(&riskv1.ListDecisionsRequest{})); err != nil {
		t.Fatalf("another subject limited: %v", err)
	}
}

func TestConnectionLimit(t *testing.T) {
	s := startServer(t, serverSetup{config: func(c *Config) { c.MaxConnections = 2 }})
	addr := strings.TrimPrefix(s.url, "http://")
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(50 * time.Millisecond) // let the server accept both
	res, err := http.Get(s.url + "/grpc.health.v1.Health/Check")
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("third connection: HTTP %d, want 503", res.StatusCode)
		}
	}
	for _, c := range held {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	res, err = http.Post(s.url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("after closing: HTTP %d", res.StatusCode)
	}
}

func TestStreamLimitPerConnection(t *testing.T) {
	s := startServer(t, serverSetup{config: func(c *Config) { c.MaxStreams = 1 }})
	// One HTTP/2 connection that waits for a free stream rather than dialling another.
	var ps http.Protocols
	ps.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &ps, HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: true}}}
	risk := riskv1connect.NewRiskServiceClient(hc, s.url, clientOpts(protoGRPC, s.creds.Service)...)
	open := risk.Ingest(context.Background())
	if err := open.Send(&riskv1.IngestRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := risk.Evaluate(ctx, connect.NewRequest(&riskv1.EvaluateRequest{Event: loginEvent("st-1", "acct-st", "dev", true, time.Now())}))
	if c := connect.CodeOf(err); c != connect.CodeDeadlineExceeded {
		t.Fatalf("second stream on a full connection: %v, want deadline_exceeded", err)
	}
	if _, err := open.CloseAndReceive(); err != nil {
		t.Fatal(err)
	}
	if _, err := risk.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: loginEvent("st-1", "acct-st", "dev", true, time.Now())})); err != nil {
		t.Fatalf("after the stream closed: %v", err)
	}
}

func TestSlowClientHeadersTimeOut(t *testing.T) {
	s := startServer(t, serverSetup{hooks: Hooks{Serve: func(o *ServeOptions) { o.ReadHeaderTimeout = 200 * time.Millisecond }}})
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("POST /risk.v1.RiskService/Evaluate HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	_, err = c.Read(buf)
	for err == nil {
		_, err = c.Read(buf)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a client that never finished its headers was held %v", took)
	}
}
