package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/server"
)

func buildRiskd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "riskd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   *sync.Mutex
}

func startRiskd(t *testing.T, bin, addr, dir string, env ...string) proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "RISKD_LISTEN="+addr, "RISKD_DATA_DIR="+dir, "RISKD_LOG_LEVEL=debug", "GOMAXPROCS=")
	cmd.Env = append(cmd.Env, env...)
	var mu sync.Mutex
	logs := &bytes.Buffer{}
	cmd.Stderr = lockedWriter{&mu, logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Post("http://"+addr+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
		if err == nil {
			res.Body.Close()
			return proc{cmd, logs, &mu}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("riskd did not come up: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	bin := buildRiskd(t)
	cmd := exec.Command(bin, "--help")
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=") // the memory limit's default shows as GOMEMLIMIT's when it is set
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--listen (RISKD_LISTEN, default 127.0.0.1:8080)", "--data-dir (RISKD_DATA_DIR, default ./data)", "--max-event-age (RISKD_MAX_EVENT_AGE, default 24h0m0s)", "--budget", "--fail-mode", "--tls-cert", "--memory-limit (RISKD_MEMORY_LIMIT, default 512MiB)"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// SIGTERM stops accepting, lets in-flight requests finish, closes the store
// cleanly; the next start finds every decision the clients received.
func TestSIGTERMDrainsAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRiskd(t)
	dir := filepath.Join(t.TempDir(), "data")
	addr := freePort(t)
	p := startRiskd(t, bin, addr, dir)
	if n := gomaxprocs(t, addr); n < server.ProcsPerCPU || n%server.ProcsPerCPU != 0 {
		t.Errorf("GOMAXPROCS %d by default, want %d per CPU", n, server.ProcsPerCPU)
	}

	var creds struct{ Service, Analyst string }
	data, err := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &creds); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "credentials.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials.json mode %v, want 0600", fi.Mode().Perm())
	}
	auth := connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+creds.Service)
			return next(ctx, req)
		}
	}))
	client := riskv1connect.NewRiskServiceClient(http.DefaultClient, "http://"+addr, auth)

	// Load in flight while the signal arrives.
	type got struct {
		id  string
		err error
	}
	results := make(chan got, 400)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Evaluate(context.Background(), connect.NewRequest(&riskv1.EvaluateRequest{Event: &riskv1.Event{
					EventId: fmt.Sprintf("w%d-%d", w, i), Type: riskv1.EventType_EVENT_TYPE_LOGIN,
					OccurredAt: timestamppb.Now(), AccountId: fmt.Sprintf("acct-%d", w),
					Login: &riskv1.Login{Success: true},
				}}))
				if err != nil {
					results <- got{err: err}
					return
				}
				results <- got{id: res.Msg.GetDecision().GetDecisionId()}
				if i >= 40 {
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	close(results)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("riskd exited with %v\n%s", err, p.logs)
	}
	p.mu.Lock()
	logs := p.logs.String()
	p.mu.Unlock()
	if !strings.Contains(logs, "riskd stopped") {
		t.Errorf("no clean stop logged:\n%s", logs)
	}
	var acked []string
	for r := range results {
		if r.err == nil {
			acked = append(acked, r.id)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no request completed")
	}

	p2 := startRiskd(t, bin, addr, dir, "RISKD_PROCS=3")
	if n := gomaxprocs(t, addr); n != 3 {
		t.Errorf("GOMAXPROCS %d with RISKD_PROCS=3", n)
	}
	defer func() {
		_ = p2.cmd.Process.Signal(syscall.SIGTERM)
		_ = p2.cmd.Wait()
	}()
	analyst := connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+creds.Analyst)
			return next(ctx, req)
		}
	}))
	dc := riskv1connect.NewDecisionServiceClient(http.DefaultClient, "http://"+addr, analyst)
	for _, id := range acked {
		_, err := dc.GetDecision(context.Background(), connect.NewRequest(&riskv1.GetDecisionRequest{DecisionId: id}))
		switch {
		case connect.CodeOf(err) == connect.CodeNotFound:
			t.Fatalf("acknowledged decision %s lost across SIGTERM", id)
		case err != nil:
			t.Fatalf("GetDecision(%s) after restart: %v", id, err)
		}
	}
	t.Logf("%d acknowledged decisions survived the restart", len(acked))
}

// gomaxprocs reads the running riskd's GOMAXPROCS from /metrics.
func gomaxprocs(t *testing.T, addr string) int {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_sched_gomaxprocs_threads "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("go_sched_gomaxprocs_threads %q", v)
			}
			return n
		}
	}
	t.Fatalf("no go_sched_gomaxprocs_threads in /metrics")
	return 0
}
