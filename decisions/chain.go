package decisions

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"

	"github.com/riskd/riskd/internal/keys"
)

// Kind is what a chain entry records.
type Kind uint8

// Entry kinds. Stored as one byte; never renumber.
const (
	KindDecision Kind = 1 // a decision; record under keys.DecisionRecord
	KindAppeal   Kind = 2 // an appeal filed or changing status; body AppealEntry (JSON)
	KindOverturn Kind = 3 // an overturned decision; body OverturnEntry (JSON)
	KindLabel    Kind = 4 // a caller's outcome label; body Label (JSON)
	KindErasure  Kind = 5 // a subject's records redacted; body ErasureEntry (JSON)
	kindEnd      Kind = 6
)

func (k Kind) String() string {
	switch k {
	case KindDecision:
		return "decision"
	case KindAppeal:
		return "appeal"
	case KindOverturn:
		return "overturn"
	case KindLabel:
		return "label"
	case KindErasure:
		return "erasure"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// The canonical encoding. An entry's hash is
//
//	SHA-256( "riskd/decisions/chain/v1\x00"
//	         || seq (8 bytes, big-endian)
//	         || previous entry's hash (32 bytes; zeros for seq 1)
//	         || kind (1 byte)
//	         || len(ref) (1 byte) || ref (the linked decision's 16-byte ULID, or empty)
//	         || SHA-256(record bytes as stored) )
//
// For a decision the record is the value under keys.DecisionRecord|ULID:
//
//	0x01 || seq (8) || uvarint len(pseudonym) || pseudonym || Decision (protobuf)
//
// For the other kinds the record is the entry's inline body (JSON). The
// record digest, not the record, enters the hash, so that erasure can replace
// a decision record with a redacted one (version byte 0x02) that keeps the
// original digest and names the erasure entry committing to both digests:
//
//	0x02 || seq (8) || original digest (32) || erasure seq (8) || uvarint len(pseudonym) || pseudonym || redacted Decision
//
// A chain entry is stored under keys.DecisionChain|seq (8, big-endian) as
//
//	kind (1) || hash (32) || len(ref) (1) || ref || body
//
// and keys.ChainHead holds seq (8) || hash (32) of the last entry.
const chainDomain = "riskd/decisions/chain/v1\x00"

const (
	recordV1       = 0x01
	recordRedacted = 0x02
)

func digest(b []byte) [32]byte { return sha256.Sum256(b) }

func entryHash(seq uint64, prev [32]byte, kind Kind, ref []byte, dg [32]byte) [32]byte {
	var buf [len(chainDomain) + 8 + 32 + 1 + 1 + 16 + 32]byte
	b := append(buf[:0], chainDomain...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, prev[:]...)
	b = append(b, byte(kind), byte(len(ref)))
	b = append(b, ref...)
	b = append(b, dg[:]...)
	return sha256.Sum256(b)
}

// A record's encoding, written by encodeRecord and read by decodeRecord:
//
//	version (1) || seq (8, big-endian) || [redacted only: the original's
//	digest (32) || the erasure's seq (8)] || uvarint len(pseud) || pseud || body
//
// The seq sits at rec[1:recordSeqEnd], where Append sets it at commit.
const recordSeqEnd = 1 + 8

// encodeRecord appends r's encoding to dst.
func encodeRecord(dst []byte, r *record) []byte {
	dst = append(dst, r.version)
	dst = binary.BigEndian.AppendUint64(dst, r.seq)
	if r.version == recordRedacted {
		dst = append(dst, r.origDigest[:]...)
		dst = binary.BigEndian.AppendUint64(dst, r.erasureSeq)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.pseud)))
	dst = append(dst, r.pseud...)
	return append(dst, r.body...)
}

// record is a decoded decision record.
type record struct {
	version    byte
	seq        uint64
	origDigest [32]byte // redacted only
	erasureSeq uint64   // redacted only
	pseud      string
	body       []byte
}

func decodeRecord(v []byte) (record, error) {
	var r record
	if len(v) < recordSeqEnd {
		return r, errors.New("record too short")
	}
	r.version = v[0]
	r.seq = binary.BigEndian.Uint64(v[1:recordSeqEnd])
	v = v[recordSeqEnd:]
	switch r.version {
	case recordV1:
	case recordRedacted:
		if len(v) < 40 {
			return r, errors.New("redacted record too short")
		}
		copy(r.origDigest[:], v[:32])
		r.erasureSeq = binary.BigEndian.Uint64(v[32:40])
		v = v[40:]
	default:
		return r, fmt.Errorf("unknown record version %d", r.version)
	}
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return r, errors.New("bad pseudonym length")
	}
	r.pseud = string(v[w : w+int(n)])
	r.body = v[w+int(n):]
	return r, nil
}

func encodeEntry(dst []byte, kind Kind, h [32]byte, ref, body []byte) []byte {
	dst = append(dst, byte(kind))
	dst = append(dst, h[:]...)
	dst = append(dst, byte(len(ref)))
	dst = append(dst, ref...)
	return append(dst, body...)
}

type entry struct {
	kind Kind
	hash [32]byte
	ref  []byte
	body []byte
}

func decodeEntry(v []byte) (entry, error) {
	var e entry
	if len(v) < 34 {
		return e, errors.New("entry too short")
	}
	e.kind = Kind(v[0])
	copy(e.hash[:], v[1:33])
	n := int(v[33])
	if n != 0 && n != 16 || len(v) < 34+n {
		return e, errors.New("bad link length")
	}
	e.ref = v[34 : 34+n]
	e.body = v[34+n:]
	if e.kind == 0 || e.kind >= kindEnd {
		return e, fmt.Errorf("unknown kind %d", e.kind)
	}
	if e.kind == KindDecision && n != 16 {
		return e, errors.New("decision entry without a link")
	}
	return e, nil
}

func chainKey(seq uint64) []byte {
	return keys.AppendUint64([]byte{keys.DecisionChain}, seq)
}

func hexHash(h [32]byte) string { return hex.EncodeToString(h[:]) }

func refString(ref []byte) string {
	if len(ref) != 16 {
		return ""
	}
	var id ulid.ULID
	copy(id[:], ref)
	return id.String()
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	From     string        `json:"from,omitempty"` // the decision id verification started at
	FirstSeq uint64        `json:"first_seq"`
	LastSeq  uint64        `json:"last_seq"` // the last entry that verified
	Checked  uint64        `json:"checked"`
	HeadSeq  uint64        `json:"head_seq"`
	HeadHash string        `json:"head_hash"`
	OK       bool          `json:"ok"`
	Broken   *ChainError   `json:"broken,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// Verify walks the chain from the entry of decision from (or from the first
// entry when from is empty) to the head, on a consistent snapshot, and
// reports the first entry that does not verify. A broken chain returns the
// report and a *ChainError (errors.Is ErrChainBroken); other errors are I/O.
// Entries before from are trusted: their stored hash seeds the walk.
func (l *Log) Verify(from string) (VerifyReport, error) {
	start := time.Now()
	snap := l.db.NewSnapshot()
	defer snap.Close()
	rep, err := verify(snap, from)
	rep.Elapsed = time.Since(start)
	if rep.Broken != nil {
		l.opts.Logger.Warn("decisions: chain verification failed", "seq", rep.Broken.Seq, "decision", rep.Broken.DecisionID, "reason", rep.Broken.Reason)
	}
	return rep, err
}

func verify(r pebble.Reader, from string) (VerifyReport, error) {
	rep := VerifyReport{From: from, FirstSeq: 1}
	head, err := readHead(r)
	if err != nil {
		return rep, err
	}
	rep.HeadSeq, rep.HeadHash = head.Seq, hexHash(head.Hash)
	broken := func(ce *ChainError) (VerifyReport, error) {
		rep.Broken = ce
		return rep, ce
	}
	var prev [32]byte
	// After retention deleted the oldest entries, the chain starts at its
	// base, seeded with the hash of the entry before it (see retention.go).
	base, _, err := readBase(r)
	if err != nil {
		return rep, err
	}
	rep.FirstSeq, prev = base.seq, base.prev
	if from != "" {
		id, err := ulid.ParseStrict(from)
		if err != nil {
			return rep, &FieldError{Field: "from", Reason: "not a decision id"}
		}
		v, c, err := r.Get(decisionKey(id))
		if errors.Is(err, pebble.ErrNotFound) {
			return rep, fmt.Errorf("verify from %s: %w", from, ErrNotFound)
		}
		if err != nil {
			return rep, fmt.Errorf("decisions: verify: %w", err)
		}
		rec, derr := decodeRecord(v)
		c.Close()
		if derr != nil || rec.seq == 0 {
			return broken(&ChainError{Seq: rec.seq, Kind: KindDecision, DecisionID: from, Reason: "record unreadable"})
		}
		rep.FirstSeq = rec.seq
		if rec.seq > base.seq {
			v, c, err := r.Get(chainKey(rec.seq - 1))
			if errors.Is(err, pebble.ErrNotFound) {
				return broken(&ChainError{Seq: rec.seq - 1, Reason: "entry missing"})
			}
			if err != nil {
				return rep, fmt.Errorf("decisions: verify: %w", err)
			}
			e, derr := decodeEntry(v)
			if derr == nil {
				prev = e.hash
			}
			c.Close()
			if derr != nil {
				return broken(&ChainError{Seq: rec.seq - 1, Reason: "entry unreadable: " + derr.Error()})
			}
		}
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: chainKey(rep.FirstSeq), UpperBound: []byte{keys.DecisionChain + 1}})
	if err != nil {
		return rep, fmt.Errorf("decisions: verify: %w", err)
	}
	defer it.Close()
	ri, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.DecisionRecord}, UpperBound: []byte{keys.DecisionRecord + 1}})
	if err != nil {
		return rep, fmt.Errorf("decisions: verify: %w", err)
	}
	defer ri.Close()
	recs := &recordCursor{it: ri}
	erasures := map[uint64]map[uint64]ErasedRecord{}
	want := rep.FirstSeq
	rkey := make([]byte, 17)
	rkey[0] = keys.DecisionRecord
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return broken(&ChainError{Seq: want, Reason: fmt.Sprintf("malformed chain key %x", k)})
		}
		seq := binary.BigEndian.Uint64(k[1:])
		if seq != want {
			return broken(&ChainError{Seq: want, Reason: fmt.Sprintf("entry missing (next entry is %d)", seq)})
		}
		e, derr := decodeEntry(it.Value())
		if derr != nil {
			return broken(&ChainError{Seq: seq, Reason: "entry unreadable: " + derr.Error()})
		}
		var dg [32]byte
		if e.kind == KindDecision {
			copy(rkey[1:], e.ref)
			ce := func(reason string) *ChainError {
				return &ChainError{Seq: seq, Kind: e.kind, DecisionID: refString(e.ref), Reason: reason}
			}
			if !recs.find(rkey) {
				if err := recs.it.Error(); err != nil {
					return rep, fmt.Errorf("decisions: verify seq %d: %w", seq, err)
				}
				return broken(ce("decision record missing"))
			}
			v, err := recs.it.ValueAndErr()
			if err != nil {
				return rep, fmt.Errorf("decisions: verify seq %d: %w", seq, err)
			}
			rec, derr := decodeRecord(v)
			switch {
			case derr != nil:
				return broken(ce("record unreadable: " + derr.Error()))
			case rec.seq != seq:
				return broken(ce(fmt.Sprintf("record claims seq %d (records moved or swapped)", rec.seq)))
			case rec.version == recordRedacted:
				dg = rec.origDigest
				reason, err := checkRedaction(r, erasures, seq, rec.erasureSeq, digest(v), dg)
				if err != nil {
					return rep, err
				}
				if reason != "" {
					return broken(ce(reason))
				}
			default:
				dg = digest(v)
			}
		} else {
			dg = digest(e.body)
		}
		if h := entryHash(seq, prev, e.kind, e.ref, dg); h != e.hash {
			return broken(&ChainError{Seq: seq, Kind: e.kind, DecisionID: refString(e.ref), Reason: "hash mismatch: the record or its entry was changed"})
		}
		prev = e.hash
		rep.LastSeq = seq
		rep.Checked++
		want++
	}
	if err := it.Error(); err != nil {
		return rep, fmt.Errorf("decisions: verify: %w", err)
	}
	last := want - 1
	switch {
	case head.Seq > last:
		return broken(&ChainError{Seq: want, Reason: fmt.Sprintf("entry missing (head is at %d)", head.Seq)})
	case head.Seq < last:
		return broken(&ChainError{Seq: head.Seq, Reason: fmt.Sprintf("head at %d but the chain runs to %d", head.Seq, last)})
	case head.Seq > 0 && head.Hash != prev && last >= rep.FirstSeq:
		return broken(&ChainError{Seq: head.Seq, Reason: "head hash does not match the last entry"})
	}
	rep.OK = true
	return rep, nil
}

// checkRedaction checks that the erasure entry erasureSeq commits to the
// redacted record of seq: its original digest and its current digest. The
// erasure entry's own integrity is checked when the walk reaches it.
func checkRedaction(r pebble.Reader, cache map[uint64]map[uint64]ErasedRecord, seq, erasureSeq uint64, cur, orig [32]byte) (string, error) {
	if erasureSeq <= seq {
		return "redacted record names an earlier erasure entry", nil
	}
	recs, ok := cache[erasureSeq]
	if !ok {
		v, c, err := r.Get(chainKey(erasureSeq))
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Sprintf("redacted record names missing erasure entry %d", erasureSeq), nil
		}
		if err != nil {
			return "", fmt.Errorf("decisions: verify erasure %d: %w", erasureSeq, err)
		}
		e, derr := decodeEntry(v)
		var body ErasureEntry
		if derr == nil && e.kind == KindErasure {
			derr = json.Unmarshal(e.body, &body)
		} else if derr == nil {
			derr = errors.New("not an erasure entry")
		}
		c.Close()
		if derr != nil {
			return fmt.Sprintf("erasure entry %d unreadable: %v", erasureSeq, derr), nil
		}
		recs = make(map[uint64]ErasedRecord, len(body.Records))
		for _, er := range body.Records {
			recs[er.Seq] = er
		}
		cache[erasureSeq] = recs
	}
	er, ok := recs[seq]
	switch {
	case !ok:
		return fmt.Sprintf("erasure entry %d does not list this record", erasureSeq), nil
	case er.Original != hexHash(orig):
		return "redacted record's original digest differs from the erasure entry's", nil
	case er.Redacted != hexHash(cur):
		return "redacted record changed after erasure", nil
	}
	return "", nil
}

// Checkpoint is a chain head an auditor can anchor elsewhere: after Seq
// entries the chain's hash was Hash.
type Checkpoint struct {
	Seq   uint64    `json:"seq"`
	Count uint64    `json:"count"`
	Hash  string    `json:"hash"`
	At    time.Time `json:"at"`
}

// Checkpoint returns the committed head, for export. On a read error it logs
// and returns the last logged checkpoint.
func (l *Log) Checkpoint() Checkpoint {
	cp, err := l.ReadCheckpoint()
	if err != nil {
		l.opts.Logger.Error("decisions: checkpoint", "err", err)
		return l.LastCheckpoint()
	}
	return cp
}

// ReadCheckpoint returns the committed head (read from the store, so never
// an append that a failed commit will rewind).
func (l *Log) ReadCheckpoint() (Checkpoint, error) {
	h, err := readHead(l.db)
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Seq: h.Seq, Count: h.Seq, Hash: hexHash(h.Hash), At: l.opts.Clock.Now().UTC()}, nil
}

// LastCheckpoint returns the checkpoint last written to the log.
func (l *Log) LastCheckpoint() Checkpoint {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	return l.lastCP
}

// checkpointer logs the committed head every CheckpointInterval entries or
// CheckpointPeriod, whichever comes first, while the chain grows.
func (l *Log) checkpointer() {
	defer close(l.done)
	t := time.NewTicker(l.opts.checkpointPoll)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			l.maybeCheckpoint(true)
			return
		case <-t.C:
			l.maybeCheckpoint(false)
		}
	}
}

func (l *Log) maybeCheckpoint(final bool) {
	cp, err := l.ReadCheckpoint()
	if err != nil {
		l.opts.Logger.Error("decisions: checkpoint", "err", err)
		return
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	last := l.lastCP
	if cp.Seq > last.Seq && (final || cp.Seq-last.Seq >= l.opts.CheckpointInterval || cp.At.Sub(last.At) >= l.opts.CheckpointPeriod) {
		// Logged before it is published: LastCheckpoint is the last one the
		// log holds (a checkpoint is rare; the lock is held for one line).
		l.opts.Logger.Info("decisions: checkpoint", "seq", cp.Seq, "count", cp.Count, "hash", cp.Hash, "at", cp.At)
		l.lastCP = cp
	}
}

// recordCursor finds decision records for a walk in chain order. Chain order
// is nearly id (time) order, so the next record is usually the iterator's
// next key; a seek covers the rest. Cheaper than a point Get per record,
// which re-reads index blocks each time.
type recordCursor struct {
	it      *pebble.Iterator
	started bool
}

func (c *recordCursor) find(key []byte) bool {
	if c.started && c.it.Valid() {
		switch cmp := bytes.Compare(c.it.Key(), key); {
		case cmp == 0:
			return true
		case cmp < 0 && c.it.Next() && bytes.Equal(c.it.Key(), key):
			return true
		}
	}
	c.started = true
	return c.it.SeekGE(key) && bytes.Equal(c.it.Key(), key)
}
