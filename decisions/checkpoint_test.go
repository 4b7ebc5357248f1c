package decisions

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/internal/logbuf"
)

func TestCheckpointEveryInterval(t *testing.T) {
	var buf logbuf.Buffer
	e := newEnv(t, Options{CheckpointInterval: 5, checkpointPoll: 5 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	waitFor := func(seq uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for e.log.LastCheckpoint().Seq != seq && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if cp := e.log.LastCheckpoint(); cp.Seq != seq {
			t.Fatalf("LastCheckpoint = %+v, want seq %d", cp, seq)
		}
	}
	e.put("a", 5)
	waitFor(5)
	if cp := e.log.LastCheckpoint(); cp.Hash != hexHash(e.log.Head().Hash) {
		t.Errorf("checkpoint hash %s, head %x", cp.Hash, e.log.Head().Hash)
	}
	if !strings.Contains(buf.String(), `"msg":"decisions: checkpoint","seq":5`) {
		t.Errorf("log lacks the checkpoint:\n%s", buf.String())
	}
	e.put("a", 4) // below the interval: no checkpoint
	time.Sleep(30 * time.Millisecond)
	if got := e.log.LastCheckpoint().Seq; got != 5 {
		t.Errorf("checkpoint at %d before the interval", got)
	}
	e.put("a", 1)
	waitFor(10)
	e.put("a", 4)
	e.log.Close()
	if !strings.Contains(buf.String(), `"seq":14`) {
		t.Errorf("no final checkpoint on Close:\n%s", buf.String())
	}
	j, err := json.Marshal(e.log.LastCheckpoint())
	if err != nil || !strings.Contains(string(j), `"count":14`) {
		t.Errorf("checkpoint JSON %s, %v", j, err)
	}
}

func TestCheckpointPeriod(t *testing.T) {
	var buf logbuf.Buffer
	e := newEnv(t, Options{CheckpointPeriod: time.Minute, checkpointPoll: 5 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	e.put("a", 3)
	time.Sleep(30 * time.Millisecond)
	if got := e.log.LastCheckpoint().Seq; got != 0 {
		t.Fatalf("checkpoint at %d before the period", got)
	}
	e.clock.Advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for e.log.LastCheckpoint().Seq != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.log.LastCheckpoint().Seq; got != 3 {
		t.Fatalf("checkpoint at %d after the period, want 3", got)
	}
}
