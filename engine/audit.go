package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
)

// The access audit: one record per audited call, append-only, under
//
//	keys.Audit | time (keys.AppendTime) | process id (4) | counter (4)
//
// so that retention is one range deletion and a query by time is a seek.
// Records go through the committer without the caller waiting: one group
// commit carries many, and an audited read never pays a synced write of
// its own. FlushAudit waits for what was submitted.

// auditTimeKey is the first audit key at or after t.
func auditTimeKey(t time.Time) []byte {
	return keys.AppendTime([]byte{keys.Audit}, t.UnixNano())
}

var auditProcess = func() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}()

// Audit records rec (At is set from the clock when unset). It returns once
// the record is queued for the next group commit; when the store is stalled
// for over a second the record is dropped and the failure logged.
func (e *Engine) Audit(rec *riskv1.AuditRecord) {
	if rec.At == nil {
		rec.At = timestamppb.New(e.clock.Now())
	}
	v, err := marshalDet(rec)
	if err != nil {
		e.log.Error("audit record not written", "err", err)
		return
	}
	k := auditTimeKey(rec.At.AsTime())
	k = binary.BigEndian.AppendUint32(k, auditProcess)
	k = binary.BigEndian.AppendUint32(k, uint32(e.priv.auditSeq.Add(1)))
	r := &commitReq{seal: func(b *pebble.Batch) error { return b.Set(k, v, nil) }, done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.committer.submit(ctx, r); err != nil {
		e.log.Error("audit record dropped", "procedure", rec.GetProcedure(), "err", err)
	}
}

// FlushAudit returns once every record Audit queued before it is committed.
func (e *Engine) FlushAudit(ctx context.Context) error {
	return e.committer.commit(ctx, nil, func(*pebble.Batch) error { return nil })
}

// AuditFilter selects audit records. Zero fields do not filter.
type AuditFilter struct {
	Since, Until time.Time
	Actor        string
	// Procedure matches exactly, or as a prefix when it ends in "/".
	Procedure string
	// Limit bounds the records returned (default 1,000, at most 10,000).
	Limit int
}

// QueryAudit returns the matching records newest first, and whether more
// matched than Limit.
func (e *Engine) QueryAudit(f AuditFilter) ([]*riskv1.AuditRecord, bool, error) {
	switch {
	case f.Limit <= 0:
		f.Limit = 1000
	case f.Limit > 10000:
		f.Limit = 10000
	}
	lo, hi := []byte{keys.Audit}, []byte{keys.Audit + 1}
	if !f.Since.IsZero() {
		lo = auditTimeKey(f.Since)
	}
	if !f.Until.IsZero() {
		hi = auditTimeKey(f.Until)
	}
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, fmt.Errorf("engine: audit: %w", err)
	}
	var out []*riskv1.AuditRecord
	more := false
	for ok := it.Last(); ok; ok = it.Prev() {
		rec := &riskv1.AuditRecord{}
		if err := proto.Unmarshal(it.Value(), rec); err != nil {
			_ = it.Close()
			return nil, false, fmt.Errorf("engine: audit record %x: %w", it.Key(), err)
		}
		if f.Actor != "" && rec.GetActor() != f.Actor {
			continue
		}
		if p := f.Procedure; p != "" && rec.GetProcedure() != p && !(strings.HasSuffix(p, "/") && strings.HasPrefix(rec.GetProcedure(), p)) {
			continue
		}
		if len(out) == f.Limit {
			more = true
			break
		}
		out = append(out, rec)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, false, fmt.Errorf("engine: audit: %w", err)
	}
	return out, more, nil
}
