package decisions

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
)

// Defaults for Options.
const (
	DefaultAppealWindow       = 30 * 24 * time.Hour
	DefaultAppealDue          = 15 * 24 * time.Hour
	DefaultCheckpointInterval = 100_000
	DefaultCheckpointPeriod   = time.Hour
)

// CommitFunc runs fn in the engine's committer goroutine, in order with
// Append, and returns once the batch fn filled is durably committed (or
// failed). The engine provides it. When fn returns an error, none of its
// writes may reach the store (give fn its own batch and apply that to the
// group only on success) and the head must be rewound to where it was
// before fn; when the group commit fails, fn's caller must see the error.
type CommitFunc func(fn func(b *pebble.Batch) error) error

// Options configure a Log. The zero value works (appeals and labels need
// Commit).
type Options struct {
	// Clock is the time source (default: the system clock).
	Clock clock.Clock
	// AppealWindow is how long after decided_at a decision may be appealed
	// (default 30 days). The engine sets appeal_deadline from it; File falls
	// back to it when a record has no deadline.
	AppealWindow time.Duration
	// AppealDue is how long reviewers have to resolve an appeal (default 15 days).
	AppealDue time.Duration
	// CheckpointInterval logs a checkpoint every this many chain entries
	// (default 100,000).
	CheckpointInterval uint64
	// CheckpointPeriod logs a checkpoint at least this often while the chain
	// grows (default 1h).
	CheckpointPeriod time.Duration
	// Logger receives checkpoints and notable events (default slog.Default()).
	Logger *slog.Logger
	// Commit runs appeal and label writes in the committer (required for
	// File, StartReview, Resolve, PutLabel).
	Commit CommitFunc

	checkpointPoll time.Duration // how often the checkpointer looks (tests)
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.AppealWindow < 0:
		return &FieldError{Field: "AppealWindow", Reason: "negative"}
	case o.AppealDue < 0:
		return &FieldError{Field: "AppealDue", Reason: "negative"}
	case o.CheckpointPeriod < 0:
		return &FieldError{Field: "CheckpointPeriod", Reason: "negative"}
	}
	return nil
}

func (o *Options) ensureDefaults() {
	o.Clock = clock.Or(o.Clock)
	if o.AppealWindow <= 0 {
		o.AppealWindow = DefaultAppealWindow
	}
	if o.AppealDue <= 0 {
		o.AppealDue = DefaultAppealDue
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.CheckpointPeriod <= 0 {
		o.CheckpointPeriod = DefaultCheckpointPeriod
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.checkpointPoll <= 0 {
		o.checkpointPoll = time.Second
	}
}

// Head is the chain's last entry: its sequence number (= entry count) and hash.
type Head struct {
	Seq  uint64
	Hash [32]byte
}

// Log is the decision log. See the package doc for what is safe for
// concurrent use.
type Log struct {
	db   *pebble.DB
	opts Options

	mu   sync.Mutex // guards head and scratch; held by Append*
	head Head
	// scratch holds keys and chain entries while they are written into a
	// batch (which copies them).
	scratch []byte

	locks [64]sync.Mutex // per appeal / decision stripes

	statsMu   sync.Mutex
	overturns map[string]int // rule id -> overturned decisions; guarded by statsMu

	cpMu   sync.Mutex
	lastCP Checkpoint // guarded by cpMu

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Open loads the chain head and starts the checkpointer. db must stay open
// until Close.
func Open(db *pebble.DB, opts Options) (*Log, error) {
	if db == nil {
		return nil, errors.New("decisions: nil db")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.ensureDefaults()
	l := &Log{db: db, opts: opts, overturns: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	h, err := readHead(db)
	if err != nil {
		return nil, err
	}
	l.head = h
	if err := l.loadOverturns(); err != nil {
		return nil, err
	}
	l.lastCP = Checkpoint{Seq: h.Seq, Count: h.Seq, Hash: hexHash(h.Hash), At: opts.Clock.Now().UTC()}
	opts.Logger.Info("decisions: chain head", "seq", h.Seq, "hash", hexHash(h.Hash))
	go l.checkpointer()
	return l, nil
}

// Close stops the checkpointer (logging a final checkpoint). It does not close db.
func (l *Log) Close() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
	})
	return nil
}

// Options returns the effective options (defaults filled in).
func (l *Log) Options() Options { return l.opts }

var headKey = []byte{keys.ChainHead}

func readHead(r pebble.Reader) (Head, error) {
	v, c, err := r.Get(headKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("decisions: read head: %w", err)
	}
	defer c.Close()
	if len(v) != 40 {
		return Head{}, fmt.Errorf("decisions: head record has %d bytes, want 40", len(v))
	}
	var h Head
	h.Seq = binary.BigEndian.Uint64(v)
	copy(h.Hash[:], v[8:])
	return h, nil
}

// Head returns the in-memory chain head (including appends not yet committed).
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Rewind resets the in-memory head to h, which the committer saved before a
// group whose commit failed. The failed batch's writes never reached the store.
func (l *Log) Rewind(h Head) {
	l.mu.Lock()
	l.head = h
	l.mu.Unlock()
}

var entropy = &lockedEntropy{m: ulid.Monotonic(rand.Reader, 0)}

type lockedEntropy struct {
	mu sync.Mutex
	m  *ulid.MonotonicEntropy
}

func (e *lockedEntropy) newID(ms uint64) (ulid.ULID, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return ulid.New(ms, e.m)
}

// NewID returns a new ULID for time t: time-ordered, and monotonic within a
// millisecond across goroutines.
func NewID(t time.Time) string {
	id, err := entropy.newID(ulid.Timestamp(t))
	if err != nil {
		// Monotonic entropy overflowed within one millisecond (2^80 ids):
		// fall back to fresh randomness rather than fail a decision.
		id = ulid.MustNew(ulid.Timestamp(t), rand.Reader)
	}
	return id.String()
}

// Pending is a decision marshaled by Prepare, ready for Append.
type Pending struct {
	id      ulid.ULID
	pseud   string
	decided int64
	// rec is the whole record (see encodeRecord) with its seq left zero:
	// Append fills the seq in place instead of copying the record.
	rec []byte
}

// ID returns the decision id.
func (p *Pending) ID() string { return p.id.String() }

// marshalOpts encodes records. Not Deterministic: the chain hashes a record's
// bytes as stored and nothing re-encodes to compare, so sorting the feature
// map on every decision would buy nothing (it cost 5 µs a decision).
// appendOpts reuses the sizes marshalOpts.Size computed just before to size
// the record's buffer (d does not change in between).
var (
	marshalOpts = proto.MarshalOptions{}
	appendOpts  = proto.MarshalOptions{UseCachedSize: true}
)

// Prepare validates and marshals d outside the commit path. d must carry a
// ULID decision_id (NewID) and decided_at; accountPseudonym indexes it for
// ListByAccount.
func (l *Log) Prepare(d *riskv1.Decision, accountPseudonym string) (*Pending, error) {
	return l.prepare(d, accountPseudonym, nil, nil)
}

// PrepareParts is Prepare for a decision whose features and stored event
// are given apart from d, which must leave Features and Event unset: the
// record is d's encoding followed by features, encoded by hand (protobuf
// encodes a map through reflection, allocating for every entry: that was
// most of an evaluation's allocations), and by event, the stored event's
// encoding, which the engine writes to the event log as well and so
// encodes once. The record decodes to d with Features and Event set.
func (l *Log) PrepareParts(d *riskv1.Decision, accountPseudonym string, features map[string]*structpb.Value, event []byte) (*Pending, error) {
	if d.GetFeatures() != nil || d.GetEvent() != nil {
		return nil, &FieldError{Field: "features, event", Reason: "given both in the decision and apart"}
	}
	return l.prepare(d, accountPseudonym, features, event)
}

func (l *Log) prepare(d *riskv1.Decision, accountPseudonym string, features map[string]*structpb.Value, event []byte) (*Pending, error) {
	id, err := ulid.ParseStrict(d.GetDecisionId())
	if err != nil {
		return nil, &FieldError{Field: "decision_id", Reason: "not a ULID"}
	}
	if d.GetDecidedAt() == nil {
		return nil, &FieldError{Field: "decided_at", Reason: "missing"}
	}
	if len(accountPseudonym) > 1024 {
		return nil, &FieldError{Field: "account pseudonym", Reason: "longer than 1024 bytes"}
	}
	size := recordHeaderLen(accountPseudonym) + marshalOpts.Size(d) + valueMapLen(fieldFeatures, features)
	if event != nil {
		size += protowire.SizeTag(fieldEvent) + protowire.SizeBytes(len(event))
	}
	rec := encodeRecord(recordBuf(size), &record{version: recordV1, pseud: accountPseudonym})
	rec, err = appendOpts.MarshalAppend(rec, d)
	if err != nil {
		return nil, fmt.Errorf("decisions: marshal %s: %w", d.GetDecisionId(), err)
	}
	if rec, err = appendValueMap(rec, fieldFeatures, features); err != nil {
		return nil, fmt.Errorf("decisions: marshal %s: %w", d.GetDecisionId(), err)
	}
	if event != nil {
		rec = protowire.AppendTag(rec, fieldEvent, protowire.BytesType)
		rec = protowire.AppendBytes(rec, event)
	}
	return &Pending{id: id, pseud: accountPseudonym, decided: d.GetDecidedAt().AsTime().UnixNano(), rec: rec}, nil
}

// Append adds the prepared decision to the chain and writes its record,
// chain entry, indexes and the new head into b. Only the committer calls it,
// in commit order, and never twice for one decision id (idempotency is the
// engine's): a second record would replace the first and break the chain.
func (l *Log) Append(b *pebble.Batch, p *Pending) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := p.rec
	if rec == nil {
		return fmt.Errorf("decisions: append %s: appended before", p.id)
	}
	seq := l.head.Seq + 1
	binary.BigEndian.PutUint64(rec[1:recordSeqEnd], seq)
	ref := p.id[:]
	k := appendDecisionKey(l.scratch[:0], p.id)
	if err := b.Set(k, rec, nil); err != nil {
		return fmt.Errorf("decisions: append %s: %w", p.id, err)
	}
	k = appendAccountKey(k[:0], p.pseud, p.id)
	if err := b.Set(k, nil, nil); err != nil {
		return fmt.Errorf("decisions: append %s: %w", p.id, err)
	}
	k = appendTimeKey(k[:0], p.decided, p.id)
	if err := b.Set(k, nil, nil); err != nil {
		return fmt.Errorf("decisions: append %s: %w", p.id, err)
	}
	l.scratch = k
	err := l.linkLocked(b, seq, KindDecision, ref, digest(rec), nil)
	// The batch holds its own copy now, and a Pending is appended once.
	p.rec = nil
	putRecordBuf(rec)
	return err
}

// recordBufs recycles the buffers records are encoded into (1.5 KB with
// the default catalog, a sixth of an evaluation's allocated bytes):
// Append hands a record's buffer back once the batch has copied it.
var recordBufs sync.Pool

// maxPooledRecord bounds the buffers kept: a rare large record (a long
// attribute map) is not held for every later one.
const maxPooledRecord = 16 << 10

// recordBuf returns an empty buffer with room for n bytes.
func recordBuf(n int) []byte {
	if bp, ok := recordBufs.Get().(*[]byte); ok && cap(*bp) >= n {
		return (*bp)[:0]
	}
	return make([]byte, 0, max(n, 2<<10))
}

func putRecordBuf(b []byte) {
	if cap(b) <= maxPooledRecord {
		b = b[:0]
		recordBufs.Put(&b)
	}
}

// AppendEntry appends an entry of kind (not KindDecision) whose record is
// body itself, stored inside the chain entry, linked to decisionID (may be
// empty). Only the committer calls it, in commit order. It returns the
// entry's sequence number.
func (l *Log) AppendEntry(b *pebble.Batch, kind Kind, decisionID string, body []byte) (uint64, error) {
	if kind == KindDecision || kind == 0 || kind >= kindEnd {
		return 0, &FieldError{Field: "kind", Reason: fmt.Sprintf("%d cannot be appended as an inline entry", kind)}
	}
	var ref []byte
	if decisionID != "" {
		id, err := ulid.ParseStrict(decisionID)
		if err != nil {
			return 0, &FieldError{Field: "decision_id", Reason: "not a ULID"}
		}
		ref = id[:]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.head.Seq + 1
	return seq, l.linkLocked(b, seq, kind, ref, digest(body), body)
}

// linkLocked writes chain entry seq and the new head, and advances the
// in-memory head. l.mu is held.
func (l *Log) linkLocked(b *pebble.Batch, seq uint64, kind Kind, ref []byte, dg [32]byte, body []byte) error {
	h := entryHash(seq, l.head.Hash, kind, ref, dg)
	var kbuf [9]byte
	kbuf[0] = keys.DecisionChain
	binary.BigEndian.PutUint64(kbuf[1:], seq)
	ev := encodeEntry(l.scratch[:0], kind, h, ref, body)
	l.scratch = ev
	if err := b.Set(kbuf[:], ev, nil); err != nil {
		return fmt.Errorf("decisions: chain entry %d: %w", seq, err)
	}
	var hv [40]byte
	binary.BigEndian.PutUint64(hv[:], seq)
	copy(hv[8:], h[:])
	if err := b.Set(headKey, hv[:], nil); err != nil {
		return fmt.Errorf("decisions: chain head %d: %w", seq, err)
	}
	l.head = Head{Seq: seq, Hash: h}
	return nil
}

// decisionKey is DecisionRecord | 16-byte ULID.
func decisionKey(id ulid.ULID) []byte { return appendDecisionKey(make([]byte, 0, 17), id) }

func appendDecisionKey(k []byte, id ulid.ULID) []byte {
	k = append(k, keys.DecisionRecord)
	return append(k, id[:]...)
}

// accountKey is DecisionByAccount | uvarint len | pseudonym | inverted ULID,
// so that a prefix scan runs newest first.
func accountKey(pseud string, id ulid.ULID) []byte {
	return appendAccountKey(make([]byte, 0, 1+binary.MaxVarintLen64+len(pseud)+16), pseud, id)
}

func appendAccountKey(k []byte, pseud string, id ulid.ULID) []byte {
	k = appendAccountPrefix(k, pseud)
	for _, c := range id {
		k = append(k, ^c)
	}
	return k
}

func accountPrefix(pseud string) []byte {
	return appendAccountPrefix(make([]byte, 0, 1+binary.MaxVarintLen64+len(pseud)+16), pseud)
}

func appendAccountPrefix(k []byte, pseud string) []byte {
	k = append(k, keys.DecisionByAccount)
	k = binary.AppendUvarint(k, uint64(len(pseud)))
	return append(k, pseud...)
}

// timeKey is DecisionByTime | decided time | ULID (retention, Search).
func timeKey(unixNano int64, id ulid.ULID) []byte {
	return appendTimeKey(make([]byte, 0, 25), unixNano, id)
}

func appendTimeKey(k []byte, unixNano int64, id ulid.ULID) []byte {
	k = append(k, keys.DecisionByTime)
	k = keys.AppendTime(k, unixNano)
	return append(k, id[:]...)
}

var _ io.Closer = (*Log)(nil)
