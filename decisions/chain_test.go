package decisions

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
)

func TestAppendGet(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 5, "ato.new_device")
	for i, d := range ds {
		got, err := e.log.Get(d.DecisionId)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, d) {
			t.Errorf("Get(%d) = %v, want %v", i, got, d)
		}
	}
	if h := e.log.Head(); h.Seq != 5 {
		t.Errorf("head seq = %d, want 5", h.Seq)
	}
	for _, id := range []string{"", "nope", ulid.Make().String()} {
		if _, err := e.log.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) err = %v, want ErrNotFound", id, err)
		}
	}
	e.verifyOK()
}

func TestPrepareRejects(t *testing.T) {
	e := newEnv(t, Options{})
	d := e.decision("a")
	d.DecisionId = "not-a-ulid"
	if _, err := e.log.Prepare(d, "p"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad id: err = %v", err)
	}
	d = e.decision("a")
	d.DecidedAt = nil
	if _, err := e.log.Prepare(d, "p"); !errors.Is(err, ErrInvalid) {
		t.Errorf("no decided_at: err = %v", err)
	}
}

// rawSet / rawDelete tamper with the store directly, as an attacker with
// disk access would.
func rawSet(t *testing.T, db *pebble.DB, k, v []byte) {
	t.Helper()
	if err := db.Set(k, v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, db *pebble.DB, k []byte) []byte {
	t.Helper()
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatalf("get %x: %v", k, err)
	}
	defer c.Close()
	return append([]byte(nil), v...)
}

func recKey(id string) []byte { return decisionKey(ulid.MustParseStrict(id)) }

func TestVerifyDetectsTampering(t *testing.T) {
	const n = 20
	tests := []struct {
		name    string
		tamper  func(t *testing.T, e *env, ds []*riskv1.Decision)
		seq     uint64 // first broken entry
		decided int    // index into ds of the decision named, -1 for none
	}{
		{"flip a byte in a record", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			k := recKey(ds[7].DecisionId)
			v := rawGet(t, e.db, k)
			v[len(v)-3] ^= 0x01
			rawSet(t, e.db, k, v)
		}, 8, 7},
		{"flip a byte in the pseudonym", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			k := recKey(ds[3].DecisionId)
			v := rawGet(t, e.db, k)
			v[11] ^= 0x20
			rawSet(t, e.db, k, v)
		}, 4, 3},
		{"delete a record", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			if err := e.db.Delete(recKey(ds[12].DecisionId), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}, 13, 12},
		{"swap two records", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			a, b := recKey(ds[5].DecisionId), recKey(ds[15].DecisionId)
			va, vb := rawGet(t, e.db, a), rawGet(t, e.db, b)
			rawSet(t, e.db, a, vb)
			rawSet(t, e.db, b, va)
		}, 6, 5},
		{"swap two records and fix their sequence numbers", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			a, b := recKey(ds[5].DecisionId), recKey(ds[6].DecisionId)
			va, vb := rawGet(t, e.db, a), rawGet(t, e.db, b)
			sa, sb := binary.BigEndian.Uint64(va[1:9]), binary.BigEndian.Uint64(vb[1:9])
			binary.BigEndian.PutUint64(va[1:9], sb)
			binary.BigEndian.PutUint64(vb[1:9], sa)
			rawSet(t, e.db, a, vb)
			rawSet(t, e.db, b, va)
		}, 6, 5},
		{"delete a record and its chain entry", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			_ = e.db.Delete(recKey(ds[9].DecisionId), pebble.Sync)
			_ = e.db.Delete(chainKey(10), pebble.Sync)
		}, 10, -1},
		{"swap two chain entries", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			va, vb := rawGet(t, e.db, chainKey(3)), rawGet(t, e.db, chainKey(4))
			rawSet(t, e.db, chainKey(3), vb)
			rawSet(t, e.db, chainKey(4), va)
		}, 3, 3},
		{"drop the last entry", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			_ = e.db.Delete(recKey(ds[n-1].DecisionId), pebble.Sync)
			_ = e.db.Delete(chainKey(n), pebble.Sync)
		}, n, -1},
		{"edit the last record", func(t *testing.T, e *env, ds []*riskv1.Decision) {
			k := recKey(ds[n-1].DecisionId)
			v := rawGet(t, e.db, k)
			v[len(v)-1] ^= 0xff
			rawSet(t, e.db, k, v)
		}, n, n - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			ds := e.put("alice", n, "r1")
			e.verifyOK()
			tc.tamper(t, e, ds)
			rep, err := e.log.Verify("")
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChainBroken) {
				t.Fatalf("Verify err = %v, want *ChainError", err)
			}
			if rep.OK || rep.Broken == nil || ce.Seq != tc.seq {
				t.Fatalf("broken at %d (%v), want seq %d; report %+v", ce.Seq, ce, tc.seq, rep)
			}
			if tc.decided >= 0 && ce.DecisionID != ds[tc.decided].DecisionId {
				t.Errorf("named decision %s, want %s", ce.DecisionID, ds[tc.decided].DecisionId)
			}
			if rep.LastSeq != tc.seq-1 {
				t.Errorf("last verified = %d, want %d", rep.LastSeq, tc.seq-1)
			}
		})
	}
}

func TestVerifyTamperedAppealEntry(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("bob", 3, "r1")
	a, err := e.log.File(FileRequest{DecisionID: ds[1].DecisionId, Subject: "bob", Statement: "not me"})
	if err != nil {
		t.Fatal(err)
	}
	e.put("bob", 2)
	e.verifyOK()
	v := rawGet(t, e.db, chainKey(4)) // the filing
	if Kind(v[0]) != KindAppeal {
		t.Fatalf("entry 4 is %v", Kind(v[0]))
	}
	v[len(v)-5] ^= 1
	rawSet(t, e.db, chainKey(4), v)
	_, err = e.log.Verify("")
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Seq != 4 || ce.Kind != KindAppeal || ce.DecisionID != a.DecisionId {
		t.Fatalf("Verify err = %v, want broken appeal entry 4 of %s", err, a.DecisionId)
	}
}

func TestVerifyFrom(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("carol", 10)
	rep, err := e.log.Verify(ds[6].DecisionId)
	if err != nil || !rep.OK || rep.FirstSeq != 7 || rep.Checked != 4 {
		t.Fatalf("Verify(from 7th) = %+v, %v", rep, err)
	}
	// Breaking an entry before from goes unnoticed from there, noticed from the start.
	k := recKey(ds[2].DecisionId)
	v := rawGet(t, e.db, k)
	v[len(v)-1] ^= 1
	rawSet(t, e.db, k, v)
	if rep, err := e.log.Verify(ds[6].DecisionId); err != nil || !rep.OK {
		t.Fatalf("Verify(from 7th) after earlier edit = %+v, %v", rep, err)
	}
	if _, err := e.log.Verify(ds[1].DecisionId); !errors.Is(err, ErrChainBroken) {
		t.Fatalf("Verify(from 2nd) err = %v, want broken", err)
	}
	if _, err := e.log.Verify(ulid.Make().String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify(unknown) err = %v", err)
	}
	if _, err := e.log.Verify("junk"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Verify(junk) err = %v", err)
	}
}

func TestRestartKeepsHead(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("dave", 7)
	h := e.log.Head()
	e.reopen()
	if got := e.log.Head(); got != h {
		t.Fatalf("head after reopen = %+v, want %+v", got, h)
	}
	e.put("dave", 3)
	rep := e.verifyOK()
	if rep.Checked != 10 {
		t.Errorf("checked %d, want 10", rep.Checked)
	}
	e.reopen()
	e.verifyOK()
}

func TestRewindAfterFailedCommit(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("erin", 2)
	before := e.log.Head()
	failed := e.decision("erin")
	p, err := e.log.Prepare(failed, pseud("erin"))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err = e.c.Commit(func(b *pebble.Batch) error {
		if err := e.log.Append(b, p); err != nil {
			return err
		}
		return boom // the group commit fails after the append
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got := e.log.Head(); got != before {
		t.Fatalf("head after rewind = %+v, want %+v", got, before)
	}
	if _, err := e.log.Get(failed.DecisionId); !errors.Is(err, ErrNotFound) {
		t.Errorf("failed decision stored: %v", err)
	}
	e.put("erin", 2)
	if rep := e.verifyOK(); rep.Checked != 4 {
		t.Errorf("checked %d, want 4", rep.Checked)
	}
}

func TestGroupCommitManyPerBatch(t *testing.T) {
	e := newEnv(t, Options{})
	var ps []*Pending
	for i := 0; i < 50; i++ {
		p, err := e.log.Prepare(e.decision("grp"), pseud("grp"))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if err := e.c.append(ps...); err != nil {
		t.Fatal(err)
	}
	if rep := e.verifyOK(); rep.Checked != 50 {
		t.Errorf("checked %d", rep.Checked)
	}
	cp := e.log.Checkpoint()
	if cp.Seq != 50 || cp.Hash != hexHash(e.log.Head().Hash) {
		t.Errorf("Checkpoint = %+v", cp)
	}
}

func TestAppendEntryRejectsDecisionKind(t *testing.T) {
	e := newEnv(t, Options{})
	b := e.db.NewBatch()
	defer b.Close()
	for _, k := range []Kind{0, KindDecision, kindEnd} {
		if _, err := e.log.AppendEntry(b, k, "", nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("kind %d: err = %v", k, err)
		}
	}
	if e.log.Head().Seq != 0 {
		t.Error("head moved")
	}
	_ = keys.ChainHead
}
