package decisions

import (
	"errors"
	"sync"
	"testing"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

func TestOverturnRates(t *testing.T) {
	e := newEnv(t, Options{})
	for i := 0; i < 3; i++ {
		ds := e.put("alice", 1, "hot")
		a, _ := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "s"})
		if _, _, err := e.log.Resolve(ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED, Reason: "r", By: admin}); err != nil {
			t.Fatal(err)
		}
	}
	got := e.log.OverturnRates(map[string]int64{"hot": 10, "cold": 100, "rare": 1}, 0.2, 5)
	want := []RuleOverturns{
		{RuleID: "hot", Hits: 10, Overturns: 3, Rate: 0.3, Flagged: true},
		{RuleID: "cold", Hits: 100},
		{RuleID: "rare", Hits: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestConcurrentFileOneOpenAppeal(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 1)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "s"})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrAppealExists) {
			t.Errorf("err = %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d appeals filed, want 1", ok)
	}
}

// Verify reads a snapshot: appends running alongside never make it fail.
func TestVerifyWhileAppending(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("a", 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			p, _ := e.log.Prepare(e.decision("b"), "b")
			if err := e.c.append(p); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			e.verifyOK()
			return
		default:
			e.verifyOK()
		}
	}
}

// FuzzDecodeStored: stored bytes an attacker may have edited never panic the
// decoders that Verify and Get use.
func FuzzDecodeStored(f *testing.F) {
	f.Add(encodeRecord(nil, &record{version: recordV1, seq: 7, pseud: "p:alice", body: []byte{0x0a, 0x01, 'x'}}))
	f.Add(encodeRecord(nil, &record{version: recordRedacted, seq: 8, origDigest: [32]byte{3}, erasureSeq: 9, body: []byte{0x0a, 0x01, 'y'}}))
	f.Add(encodeEntry(nil, KindDecision, [32]byte{1}, make([]byte, 16), nil))
	f.Add(encodeEntry(nil, KindAppeal, [32]byte{2}, nil, []byte(`{"appeal_id":"x"}`)))
	f.Add([]byte{recordRedacted, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRecord(b); err == nil && len(r.body) > len(b) {
			t.Fatal("body longer than input")
		}
		if e, err := decodeEntry(b); err == nil && len(e.ref) != 0 && len(e.ref) != 16 {
			t.Fatalf("ref of %d bytes", len(e.ref))
		}
	})
}
