package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/logbuf"
)

// riskdProcess is the real riskd binary running on a data directory.
type riskdProcess struct {
	t    *testing.T
	bin  string
	dir  string
	cmd  *exec.Cmd
	url  string
	exit chan error
	logs *logbuf.Buffer
}

var servingAddr = regexp.MustCompile(`msg="riskd serving" addr=(\S+)`)

func startRiskd(t *testing.T, bin, dir string) *riskdProcess {
	t.Helper()
	p := &riskdProcess{t: t, bin: bin, dir: dir, exit: make(chan error, 1), logs: &logbuf.Buffer{}}
	// A generous budget: this test is about durability, not deadlines (a
	// decision answered past its budget may be recorded later, see engine).
	p.cmd = exec.Command(bin, "--data-dir", dir, "--listen", "127.0.0.1:0", "--budget", "10s", "--log-level", "info")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.logs, line)
			if m := servingAddr.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { p.exit <- p.cmd.Wait() }()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.exit:
		t.Fatalf("riskd exited at start: %v\n%s", err, p.logs)
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("riskd did not start in 60s\n%s", p.logs)
	}
	return p
}

func (p *riskdProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exit
}

func (p *riskdProcess) terminate() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exit:
		if err != nil {
			p.t.Errorf("riskd exited with %v after SIGTERM\n%s", err, p.logs)
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		p.t.Errorf("riskd did not stop in 60s after SIGTERM")
	}
}

// crashClient drives load against whichever riskd is up, remembering what
// riskd acknowledged and what it is not sure of.
type crashClient struct {
	mu        sync.Mutex
	url       string                      // guarded by mu; "" while riskd is down
	up        *sync.Cond                  // signalled when url is set
	acked     map[string]*riskv1.Decision // event id -> decision received, guarded by mu
	ingested  map[string]bool             // event ids acknowledged by Ingest, guarded by mu
	unsure    []*riskv1.Event             // sent, no answer, guarded by mu
	sent      map[string]string           // event id -> account, every event sent, guarded by mu
	viaIngest map[string]bool             // event id -> sent through Ingest, guarded by mu
	token     string
}

func (c *crashClient) current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.url == "" {
		c.up.Wait()
	}
	return c.url
}

func (c *crashClient) setURL(u string) {
	c.mu.Lock()
	c.url = u
	c.mu.Unlock()
	c.up.Broadcast()
}

func crashPayment(id, account string) *riskv1.Event {
	return paymentEvent(id, account, "dev-"+account, "payee-crash", 100, time.Now())
}

// evaluate sends ev once; it reports whether riskd answered.
func (c *crashClient) evaluate(hc *http.Client, ev *riskv1.Event) bool {
	client := riskv1connect.NewRiskServiceClient(hc, c.current(), connect.WithInterceptors(bearer(c.token)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := client.Evaluate(ctx, connect.NewRequest(&riskv1.EvaluateRequest{Event: ev}))
	if err != nil {
		return false
	}
	d := res.Msg.GetDecision()
	if d.GetDegraded() && strings.Contains(d.GetDegradedReason(), "not recorded") {
		return false // riskd says so itself: not sure
	}
	c.mu.Lock()
	c.acked[ev.GetEventId()] = d
	c.mu.Unlock()
	return true
}

// ingest streams events in one call; it reports whether riskd acknowledged them.
func (c *crashClient) ingest(hc *http.Client, events []*riskv1.Event) bool {
	client := riskv1connect.NewRiskServiceClient(hc, c.current(), connect.WithInterceptors(bearer(c.token)), connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream := client.Ingest(ctx)
	for i := 0; i < len(events); i += 25 {
		if err := stream.Send(&riskv1.IngestRequest{Events: events[i:min(i+25, len(events))]}); err != nil {
			break
		}
	}
	res, err := stream.CloseAndReceive()
	if err != nil || len(res.Msg.GetErrors()) > 0 || res.Msg.GetAccepted()+res.Msg.GetDuplicates() != int64(len(events)) {
		return false
	}
	c.mu.Lock()
	for _, ev := range events {
		c.ingested[ev.GetEventId()] = true
	}
	c.mu.Unlock()
	return true
}

func (c *crashClient) record(evs []*riskv1.Event, viaIngest bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		c.sent[ev.GetEventId()] = ev.GetAccountId()
		c.viaIngest[ev.GetEventId()] = viaIngest
	}
}

func (c *crashClient) doubt(evs ...*riskv1.Event) {
	c.mu.Lock()
	c.unsure = append(c.unsure, evs...)
	c.mu.Unlock()
}

// kill -9 riskd under Evaluate and Ingest load, several times at random
// moments, restart it on the same data directory, resend what the client
// was not sure of: every acknowledged decision is stored as received, every
// payment is counted exactly once by the payments_account_1h feature, and
// the decision chain verifies.
func TestCrashSafetyUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds riskd and kills it several times (~30 s)")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "riskd")
	build := exec.Command("go", "build", "-o", bin, "github.com/riskd/riskd/cmd/riskd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build riskd: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "data")
	p := startRiskd(t, bin, dir)
	creds, err := auth.Load(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &crashClient{acked: map[string]*riskv1.Decision{}, ingested: map[string]bool{},
		sent: map[string]string{}, viaIngest: map[string]bool{}, token: creds.Service}
	c.up = sync.NewCond(&c.mu)
	c.setURL(p.url)

	const accounts = 8
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ { // evaluators
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := httpClient(protoConnect)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := crashPayment(fmt.Sprintf("eval-%d-%d", g, n), fmt.Sprintf("acct-crash-%d", (g+n)%accounts))
				c.record([]*riskv1.Event{ev}, false)
				if !c.evaluate(hc, ev) {
					c.doubt(ev)
				}
			}
		}()
	}
	for g := 0; g < 2; g++ { // ingesters
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := httpClient(protoGRPC)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				evs := make([]*riskv1.Event, 100)
				for i := range evs {
					evs[i] = crashPayment(fmt.Sprintf("ing-%d-%d-%d", g, n, i), fmt.Sprintf("acct-crash-%d", (g+n+i)%accounts))
				}
				c.record(evs, true)
				if !c.ingest(hc, evs) {
					c.doubt(evs...)
				}
			}
		}()
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const rounds = 4
	for r := 0; r < rounds; r++ {
		time.Sleep(time.Duration(500+rng.IntN(2000)) * time.Millisecond)
		c.setURL("")
		p.kill()
		t.Logf("round %d: killed riskd", r+1)
		p = startRiskd(t, bin, dir)
		c.setURL(p.url)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// Resend everything the client was not sure of, until riskd answers.
	c.mu.Lock()
	unsure := c.unsure
	c.unsure = nil
	c.mu.Unlock()
	hcE, hcI := httpClient(protoConnect), httpClient(protoGRPC)
	for _, ev := range unsure {
		ok := false
		for try := 0; try < 5 && !ok; try++ {
			if c.viaIngest[ev.GetEventId()] {
				ok = c.ingest(hcI, []*riskv1.Event{ev})
			} else {
				ok = c.evaluate(hcE, ev)
			}
		}
		if !ok {
			t.Fatalf("resending %s: no answer", ev.GetEventId())
		}
	}

	// Each account's payments, read by the feature of a probe evaluated now.
	want := map[string]int{}
	for id, acct := range c.sent {
		if d := c.acked[id]; d != nil && d.GetDegraded() {
			continue // a degraded decision is recorded without touching features
		}
		want[acct]++
	}
	hc := httpClient(protoConnect)
	for a := 0; a < accounts; a++ {
		acct := fmt.Sprintf("acct-crash-%d", a)
		probe := crashPayment("probe-"+acct, acct)
		if !c.evaluate(hc, probe) {
			t.Fatalf("probe %s: no answer", acct)
		}
		got := c.acked[probe.GetEventId()].GetFeatures()["payments_account_1h"].GetNumberValue()
		if int(got) != want[acct] {
			t.Errorf("%s: payments_account_1h = %v, sent %d distinct payments", acct, got, want[acct])
		}
	}
	p.terminate()

	// Every acknowledged decision is stored as the client received it, and
	// the chain verifies.
	eng, err := engine.Open(engine.Options{DataDir: dir, PseudonymKey: []byte(creds.PseudonymKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for id, d := range c.acked {
		got, err := eng.Decisions().Get(d.GetDecisionId())
		if err != nil {
			t.Errorf("event %s: acknowledged decision %s: %v", id, d.GetDecisionId(), err)
			continue
		}
		if !proto.Equal(decisions.ServiceView(got), d) {
			t.Errorf("event %s: stored decision differs from the one received:\nstored   %v\nreceived %v", id, got, d)
		}
	}
	rep, err := eng.Decisions().Verify("")
	if err != nil || !rep.OK {
		t.Errorf("chain: %+v %v", rep, err)
	}
	t.Logf("%d events sent (%d through Ingest), %d decisions acknowledged, %d resent after crashes, chain of %d verified",
		len(c.sent), countTrue(c.viaIngest), len(c.acked), len(unsure), rep.Checked)
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
