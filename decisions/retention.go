package decisions

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
)

// Retention. The chain is append-only, but not kept forever: once a
// decision's retention has passed, its record, its indexes and the chain
// entries before the first entry still retained are deleted, and the chain
// keeps a base (keys.ChainHead|'b': seq of the first retained entry and the
// hash of the entry before it) that seeds Verify, exactly as a checkpoint
// an auditor anchored would. Records and chain entries are deleted with
// range deletions (decision ids are ULIDs, time-first; chain keys are
// sequence numbers); the per-account index, keyed by pseudonym, gets a point
// deletion per expired decision, read from the expired records themselves,
// so the work is proportional to what expires.

var baseKey = []byte{keys.ChainHead, 'b'}

// chainBase is the first retained chain entry and the hash before it.
type chainBase struct {
	seq  uint64
	prev [32]byte
}

func readBase(r pebble.Reader) (chainBase, bool, error) {
	v, c, err := r.Get(baseKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return chainBase{seq: 1}, false, nil
	}
	if err != nil {
		return chainBase{}, false, fmt.Errorf("decisions: read chain base: %w", err)
	}
	defer c.Close()
	if len(v) != 40 {
		return chainBase{}, false, fmt.Errorf("decisions: chain base has %d bytes, want 40", len(v))
	}
	var b chainBase
	b.seq = binary.BigEndian.Uint64(v)
	copy(b.prev[:], v[8:])
	return b, true, nil
}

// ExpiryReport says what ExpireBefore deleted.
type ExpiryReport struct {
	Decisions int // decision records
	Entries   int // chain entries
	Appeals   int // appeal records (approximate: range deletions are not counted exactly)
}

// entryTime is when a chain entry was made: a decision's id time, or the
// "at" of the other kinds' JSON bodies.
func entryTime(e entry) (time.Time, error) {
	if e.kind == KindDecision {
		if len(e.ref) != 16 {
			return time.Time{}, errors.New("decision entry without a ULID")
		}
		var id ulid.ULID
		copy(id[:], e.ref)
		return ulid.Time(id.Time()), nil
	}
	var body struct {
		At time.Time `json:"at"`
	}
	if err := json.Unmarshal(e.body, &body); err != nil {
		return time.Time{}, err
	}
	return body.At, nil
}

// ulidFloor is the smallest ULID of time t.
func ulidFloor(t time.Time) []byte {
	var id ulid.ULID
	if t.UnixMilli() > 0 {
		_ = id.SetTime(uint64(t.UnixMilli()))
	}
	return id[:]
}

// ExpireBefore writes into b the deletion of every decision, chain entry and
// decision label older than decisions, and of every appeal filed before
// appeals (event labels: ExpireEventLabels). The chain's first entries
// go only up to the first entry that is retained, so the retained chain
// stays contiguous and verifies from its base. Safe to run beside Append:
// it never touches the head.
func (l *Log) ExpireBefore(b *pebble.Batch, decisions, appeals time.Time) (ExpiryReport, error) {
	var rep ExpiryReport
	base, _, err := readBase(l.db)
	if err != nil {
		return rep, err
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: chainKey(base.seq), UpperBound: []byte{keys.DecisionChain + 1}})
	if err != nil {
		return rep, fmt.Errorf("decisions: expire: %w", err)
	}
	next := base
	var expired []ulid.ULID
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) != 9 {
			break
		}
		e, derr := decodeEntry(it.Value())
		if derr != nil {
			break
		}
		at, terr := entryTime(e)
		if terr != nil || !at.Before(decisions) {
			break
		}
		if e.kind == KindDecision {
			var id ulid.ULID
			copy(id[:], e.ref)
			expired = append(expired, id)
		}
		next = chainBase{seq: binary.BigEndian.Uint64(it.Key()[1:]) + 1, prev: e.hash}
		rep.Entries++
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return rep, fmt.Errorf("decisions: expire: %w", err)
	}
	if next.seq > base.seq {
		// Keep the head's own entry: the base never passes the head.
		head, err := readHead(l.db)
		if err != nil {
			return rep, err
		}
		if next.seq > head.Seq+1 {
			return rep, nil
		}
		for _, id := range expired {
			v, c, err := l.db.Get(decisionKey(id))
			if errors.Is(err, pebble.ErrNotFound) {
				continue
			}
			if err != nil {
				return rep, fmt.Errorf("decisions: expire %s: %w", id, err)
			}
			rec, derr := decodeRecord(v)
			d := &riskv1.Decision{}
			if derr == nil {
				derr = proto.Unmarshal(rec.body, d)
			}
			c.Close()
			if derr == nil && rec.pseud != "" {
				if err := b.Delete(accountKey(rec.pseud, id), nil); err != nil {
					return rep, fmt.Errorf("decisions: expire: %w", err)
				}
			}
			if derr == nil && d.GetDecidedAt() != nil {
				if err := b.Delete(timeKey(d.GetDecidedAt().AsTime().UnixNano(), id), nil); err != nil {
					return rep, fmt.Errorf("decisions: expire: %w", err)
				}
			}
			if err := b.Delete(decisionKey(id), nil); err != nil {
				return rep, fmt.Errorf("decisions: expire: %w", err)
			}
			if err := b.Delete(labelDecisionKey(id), nil); err != nil {
				return rep, fmt.Errorf("decisions: expire: %w", err)
			}
			rep.Decisions++
		}
		if err := b.DeleteRange(chainKey(base.seq), chainKey(next.seq), nil); err != nil {
			return rep, fmt.Errorf("decisions: expire: %w", err)
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 40), next.seq)
		if err := b.Set(baseKey, append(v, next.prev[:]...), nil); err != nil {
			return rep, fmt.Errorf("decisions: expire: %w", err)
		}
	}
	// The time index is time-first: one range deletion.
	if err := b.DeleteRange([]byte{keys.DecisionByTime}, keys.AppendTime([]byte{keys.DecisionByTime}, decisions.UnixNano()), nil); err != nil {
		return rep, fmt.Errorf("decisions: expire: %w", err)
	}
	// Appeals: records and the by-decision index are ULID-keyed (time-first);
	// the due index is per status, due time first, and due comes AppealDue
	// after filing.
	if err := b.DeleteRange([]byte{keys.Appeal}, append([]byte{keys.Appeal}, ulidFloor(appeals)...), nil); err != nil {
		return rep, fmt.Errorf("decisions: expire appeals: %w", err)
	}
	// An appeal is filed after its decision, so every appeal whose record
	// went has its decision before the cutoff too; the index of a retained
	// appeal on an older decision goes with it (GetAppeal still finds it).
	byDec := appeals
	if err := b.DeleteRange([]byte{keys.AppealByDecision}, append([]byte{keys.AppealByDecision}, ulidFloor(byDec)...), nil); err != nil {
		return rep, fmt.Errorf("decisions: expire appeals: %w", err)
	}
	for st := byte(0); st <= byte(riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED); st++ {
		lo := []byte{keys.AppealByDue, st}
		hi := keys.AppendTime([]byte{keys.AppealByDue, st}, appeals.Add(l.opts.AppealDue).UnixNano())
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return rep, fmt.Errorf("decisions: expire appeals: %w", err)
		}
	}
	return rep, nil
}

// ExpireEventLabels writes into b the deletion of every label put on an
// event id before t. Event labels are keyed by the event id's hash, not by
// time, so this is a scan; the engine runs it with the daily sweeps.
func (l *Log) ExpireEventLabels(b *pebble.Batch, t time.Time) (int, error) {
	n := 0
	lo := []byte{keys.Label, 'e'}
	li, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: keys.PrefixEnd(lo)})
	if err != nil {
		return n, fmt.Errorf("decisions: expire labels: %w", err)
	}
	for ok := li.First(); ok; ok = li.Next() {
		var lb Label
		if json.Unmarshal(li.Value(), &lb) == nil && lb.At.Before(t) {
			if err := b.Delete(append([]byte(nil), li.Key()...), nil); err != nil {
				_ = li.Close()
				return n, fmt.Errorf("decisions: expire labels: %w", err)
			}
			n++
		}
	}
	if err := errors.Join(li.Error(), li.Close()); err != nil {
		return n, fmt.Errorf("decisions: expire labels: %w", err)
	}
	return n, nil
}
