package decisions

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/riskd/riskd/internal/keys"
)

// TestExpireKeepsRetainedChainVerifying expires the older half of a chain
// (decisions and a label between them), then checks that only the retained
// records remain, that Verify passes from the base (whole and from a
// retained decision), that tampering after the base is still caught, and
// that the chain grows on.
func TestExpireKeepsRetainedChainVerifying(t *testing.T) {
	e := newEnv(t, Options{})
	old := e.put("alice", 3, "r1")
	if _, err := e.log.PutLabel(Label{Kind: LabelChargeback, DecisionID: old[0].DecisionId}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	cut := e.clock.Now()
	kept := e.put("alice", 2, "r1")
	e.put("bob", 1)

	b := e.db.NewBatch()
	rep, err := e.log.ExpireBefore(b, cut, cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if rep.Decisions != 3 || rep.Entries != 4 {
		t.Errorf("expired %+v, want 3 decisions and 4 entries", rep)
	}
	for _, d := range old {
		if _, err := e.log.Get(d.DecisionId); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired decision %s: %v", d.DecisionId, err)
		}
	}
	if ds, _, err := e.log.ListByAccount(pseud("alice"), 10, ""); err != nil || len(ds) != 2 {
		t.Errorf("alice lists %d decisions after expiry (%v), want 2", len(ds), err)
	}
	if _, err := e.log.LabelFor(old[0].DecisionId); !errors.Is(err, ErrNotFound) {
		t.Errorf("label of an expired decision: %v", err)
	}
	r := e.verifyOK()
	if r.FirstSeq != 5 || r.Checked != 3 {
		t.Errorf("verify after expiry: first %d checked %d, want 5 and 3", r.FirstSeq, r.Checked)
	}
	if r, err := e.log.Verify(kept[1].DecisionId); err != nil || !r.OK {
		t.Errorf("verify from a retained decision: %+v, %v", r, err)
	}
	// Expiring again changes nothing.
	b = e.db.NewBatch()
	if rep, err := e.log.ExpireBefore(b, cut, cut); err != nil || rep.Entries != 0 {
		t.Errorf("second expiry: %+v, %v", rep, err)
	}
	_ = b.Commit(pebble.Sync)
	e.verifyOK()
	// A retained entry deleted after the base is caught.
	e.put("bob", 1)
	if err := e.db.Delete(chainKey(6), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Verify(""); !errors.Is(err, ErrChainBroken) {
		t.Errorf("verify with entry 6 deleted: %v, want a broken chain", err)
	}
}

func TestExpireNeverPassesTheHead(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("alice", 2)
	e.clock.Advance(time.Hour)
	b := e.db.NewBatch()
	if _, err := e.log.ExpireBefore(b, e.clock.Now(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	it, _ := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.DecisionRecord}, UpperBound: []byte{keys.DecisionChain + 1}})
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	it.Close()
	if n != 0 {
		t.Errorf("%d records and entries left, want 0", n)
	}
	r := e.verifyOK()
	if r.FirstSeq != 3 || r.Checked != 0 {
		t.Errorf("verify of an empty retained chain: %+v", r)
	}
	e.put("alice", 1)
	if r := e.verifyOK(); r.Checked != 1 {
		t.Errorf("after a new decision: %+v", r)
	}
}
