package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/bench"
	"github.com/riskd/riskd/internal/cputime"
)

// The client's CPU per event of riskctl ingest, end to end within riskctl:
// reading the file, parsing lines, marshalling the stream messages and
// writing them to loopback. riskd and riskctl share the machine's cores, so
// this is what a client costs the server's throughput.

// BenchmarkIngestCombined ingests a file of access log lines like
// bench/ingestgen's into a sink that speaks the Connect protocol but does
// not decode the messages, so the process's CPU is (nearly all) the
// client's; it reports that as cpu-ns/event.
func BenchmarkIngestCombined(b *testing.B) {
	const lines = 100_000
	file := writeCombinedLog(b, lines)
	var events atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		discardIngest(w, r, &events)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	b.Cleanup(srv.Close)
	dir := b.TempDir()
	data, _ := json.Marshal(testCreds)
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{"RISKCTL_SERVER": srv.URL, "RISKCTL_DATA_DIR": dir}[k]
	}
	args := []string{"ingest", "--progress", "none", "--streams", "2", "--account-from", "query:uid", file}
	var errb bytes.Buffer
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		errb.Reset()
		code := Run(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errb, Getenv: getenv})
		if code != ExitOK {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if got := events.Load(); got != int64(b.N)*lines {
		b.Fatalf("sink received %d events, want %d", got, int64(b.N)*lines)
	}
	n := float64(b.N) * lines
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/event")
}

// cpuTime is the process's user and system CPU time so far.
var cpuTime = cputime.Process

// writeCombinedLog writes n lines of bench/ingestgen's combined format: ten
// lines a second, 50,000 accounts, the account in ?uid=.
func writeCombinedLog(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "access.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := bench.WriteAccessLog(f, n, 50000, time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), 100*time.Millisecond, 1); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// discardIngest answers RiskService.Ingest in the Connect protocol without
// decoding the events: it walks the envelopes of the request stream,
// counts the events by their field tag, and replies with an empty
// IngestResponse and the end-of-stream message.
func discardIngest(w http.ResponseWriter, r *http.Request, events *atomic.Int64) {
	if r.URL.Path != riskv1connect.RiskServiceIngestProcedure {
		http.NotFound(w, r)
		return
	}
	br := bufio.NewReaderSize(r.Body, 64<<10)
	var head [5]byte
	var msg []byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			break
		}
		n := binary.BigEndian.Uint32(head[1:])
		if uint32(cap(msg)) < n {
			msg = make([]byte, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(br, msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events.Add(countEvents(msg))
	}
	w.Header().Set("Content-Type", "application/connect+proto")
	w.WriteHeader(http.StatusOK)
	resp, _ := proto.Marshal(&riskv1.IngestResponse{})
	writeEnvelope(w, 0, resp)
	writeEnvelope(w, 2, []byte("{}"))
}

// countEvents counts the top-level length-delimited field 1 (events) of an
// encoded IngestRequest.
func countEvents(msg []byte) int64 {
	var n int64
	for len(msg) > 0 {
		tag, k := binary.Uvarint(msg)
		msg = msg[k:]
		l, k := binary.Uvarint(msg)
		msg = msg[k+int(l):]
		if tag == 1<<3|2 {
			n++
		}
	}
	return n
}

func writeEnvelope(w io.Writer, flags byte, data []byte) {
	var head [5]byte
	head[0] = flags
	binary.BigEndian.PutUint32(head[1:], uint32(len(data)))
	w.Write(head[:])
	w.Write(data)
}
