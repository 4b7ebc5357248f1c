package decisions

import (
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

// ErasedRecord names one redacted decision record and commits to its digest
// before and after redaction.
type ErasedRecord struct {
	Seq        uint64 `json:"seq"`
	DecisionID string `json:"decision_id"`
	Original   string `json:"original_sha256"`
	Redacted   string `json:"redacted_sha256"`
}

// ErasureEntry is the chain record of one erasure. It names no account.
type ErasureEntry struct {
	Records []ErasedRecord `json:"records"`
	Actor   string         `json:"actor"`
	At      time.Time      `json:"at"`
}

// Redact is the default redaction: it keeps what the decision record must
// keep to stay accountable (id, outcome, score, reasons, ruleset version,
// times, appeal deadline, categories, flags) and drops the account and event
// ids, the feature snapshot, the stored event and fault detail.
func Redact(d *riskv1.Decision) {
	d.AccountId = ""
	d.EventId = ""
	d.Features = nil
	d.Event = nil
	d.DegradedReason = ""
	d.Latency = nil
}

// AppendErasure redacts every committed decision record indexed under
// accountPseudonym with redact (nil: Redact), removes the account index, and
// appends one erasure entry committing to each record's original and
// redacted digest, so that Verify still passes. Committer only. Records
// already redacted are skipped; an account with no records appends nothing.
func (l *Log) AppendErasure(b *pebble.Batch, accountPseudonym, actor string, redact func(*riskv1.Decision)) (ErasureEntry, error) {
	if redact == nil {
		redact = Redact
	}
	prefix := accountPrefix(accountPseudonym)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return ErasureEntry{}, fmt.Errorf("decisions: erase: %w", err)
	}
	var ids []ulid.ULID
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			continue
		}
		var id ulid.ULID
		for i, c := range k[len(prefix):] {
			id[i] = ^c
		}
		ids = append(ids, id)
	}
	err = errors.Join(it.Error(), it.Close())
	if err != nil {
		return ErasureEntry{}, fmt.Errorf("decisions: erase: %w", err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	eseq := l.head.Seq + 1
	ent := ErasureEntry{Actor: actor, At: l.opts.Clock.Now().UTC()}
	for _, id := range ids {
		if err := b.Delete(accountKey(accountPseudonym, id), nil); err != nil {
			return ErasureEntry{}, fmt.Errorf("decisions: erase: %w", err)
		}
		v, c, err := l.db.Get(decisionKey(id))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return ErasureEntry{}, fmt.Errorf("decisions: erase %s: %w", id, err)
		}
		rec, derr := decodeRecord(v)
		orig := digest(v)
		d := &riskv1.Decision{}
		if derr == nil && rec.version == recordV1 {
			derr = proto.Unmarshal(rec.body, d)
		}
		c.Close()
		if derr != nil {
			return ErasureEntry{}, fmt.Errorf("decisions: erase %s: %w", id, derr)
		}
		if rec.version != recordV1 {
			continue
		}
		redact(d)
		body, err := marshalOpts.Marshal(d)
		if err != nil {
			return ErasureEntry{}, fmt.Errorf("decisions: erase %s: %w", id, err)
		}
		// The pseudonym goes.
		nv := encodeRecord(nil, &record{version: recordRedacted, seq: rec.seq, origDigest: orig, erasureSeq: eseq, body: body})
		if err := b.Set(decisionKey(id), nv, nil); err != nil {
			return ErasureEntry{}, fmt.Errorf("decisions: erase %s: %w", id, err)
		}
		ent.Records = append(ent.Records, ErasedRecord{Seq: rec.seq, DecisionID: id.String(), Original: hexHash(orig), Redacted: hexHash(digest(nv))})
	}
	if len(ent.Records) == 0 {
		return ent, nil
	}
	body, err := json.Marshal(ent)
	if err != nil {
		return ErasureEntry{}, fmt.Errorf("decisions: erase: %w", err)
	}
	return ent, l.linkLocked(b, eseq, KindErasure, nil, digest(body), body)
}
