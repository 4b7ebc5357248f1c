package decisions

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestErasureKeepsChainVerifying(t *testing.T) {
	e := newEnv(t, Options{})
	alice := e.put("alice", 4, "r1")
	e.put("bob", 3, "r1")
	var ent ErasureEntry
	err := e.c.Commit(func(b *pebble.Batch) error {
		var err error
		ent, err = e.log.AppendErasure(b, pseud("alice"), "admin-1", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ent.Records) != 4 {
		t.Fatalf("erased %d records, want 4", len(ent.Records))
	}
	e.put("bob", 1)
	rep := e.verifyOK()
	if rep.Checked != 4+3+1+1 {
		t.Errorf("checked %d", rep.Checked)
	}
	d, err := e.log.Get(alice[2].DecisionId)
	if err != nil {
		t.Fatal(err)
	}
	if d.AccountId != "" || d.Features != nil || d.Event != nil || d.Outcome != alice[2].Outcome || len(d.Reasons) != 1 {
		t.Errorf("redacted = %v", d)
	}
	if ds, _, _ := e.log.ListByAccount(pseud("alice"), 10, ""); len(ds) != 0 {
		t.Errorf("account index still lists %d", len(ds))
	}
	// No trace of the pseudonym in the decision records and index.
	it, _ := e.db.NewIter(nil)
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Contains(it.Key(), []byte(pseud("alice"))) || bytes.Contains(it.Value(), []byte(pseud("alice"))) {
			t.Errorf("pseudonym left in key %x", it.Key())
		}
	}
	it.Close()
	// Erasing again is a no-op.
	_ = e.c.Commit(func(b *pebble.Batch) error {
		ent, err = e.log.AppendErasure(b, pseud("alice"), "admin-1", nil)
		return err
	})
	if err != nil || len(ent.Records) != 0 {
		t.Errorf("second erasure: %+v, %v", ent, err)
	}

	// Editing a redacted record is still detected, at that record.
	k := recKey(alice[1].DecisionId)
	v := rawGet(t, e.db, k)
	v[len(v)-1] ^= 1
	rawSet(t, e.db, k, v)
	_, err = e.log.Verify("")
	var ce *ChainError
	if !errors.As(err, &ce) || ce.DecisionID != alice[1].DecisionId {
		t.Fatalf("Verify err = %v, want broken at %s", err, alice[1].DecisionId)
	}
}

func TestRedactionWithoutErasureEntryDetected(t *testing.T) {
	e := newEnv(t, Options{})
	alice := e.put("alice", 2)
	// An erasure whose batch is committed without its chain entry (a forged
	// redaction) does not verify.
	err := e.c.Commit(func(b *pebble.Batch) error {
		_, err := e.log.AppendErasure(b, pseud("alice"), "x", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.Delete(chainKey(3), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, err = e.log.Verify("")
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Seq != 1 || ce.DecisionID != alice[0].DecisionId {
		t.Fatalf("Verify err = %v, want broken at seq 1", err)
	}
}
