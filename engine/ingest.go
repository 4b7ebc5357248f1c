package engine

import (
	"bytes"
	"context"
	"slices"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/ingest"
)

// IngestResult is the fate of one ingested event.
type IngestResult struct {
	Duplicate bool
	// Err is non-nil for a rejected event (matching ingest.ErrInvalid for
	// bad input).
	Err error
}

// Ingest records events and updates features without deciding: the path of
// Evaluate without rules and without a decision. The whole batch commits
// once, synced; results[i] tells the fate of events[i]. A returned error
// means nothing was recorded (the store failed or the engine closed).
func (e *Engine) Ingest(ctx context.Context, events []*riskv1.Event) ([]IngestResult, error) {
	wait, err := e.StartIngest(ctx, events)
	if err != nil {
		return nil, err
	}
	return wait()
}

// StartIngest does Ingest's work up to the commit and returns a function
// that waits for the commit, so that a stream can prepare its next message
// while the previous one is being synced. It first takes one unit of the
// engine's ingest capacity (Options.MaxIngestEvents) per event, waiting while
// other ingests hold it: that wait is the backpressure a slow store puts on
// senders. ctx bounds only that wait. The returned function must be called
// at most once; the capacity is given back when the commit is done.
func (e *Engine) StartIngest(ctx context.Context, events []*riskv1.Event) (wait func() ([]IngestResult, error), err error) {
	units, err := e.ingestSem.acquire(ctx, int64(len(events)))
	if err != nil {
		return nil, err
	}
	results := make([]IngestResult, len(events))
	// The memtable inserts a batch's keys in batch order, and an insert
	// next to the previous one is cheap: so the feature deltas (in
	// sequence order) and profiles go into b, the stored events (in the
	// stream's time order) into eb, and the idempotency keys (hashes) are
	// set sorted at the end, rather than the three interleaved per event.
	b, eb := e.db.NewBatch(), e.db.NewBatch()
	defer eb.Close()
	type held struct {
		key string
		c   *call
	}
	var (
		calls    []held
		written  [][]byte // the idempotency keys written, for the filter
		pendings []*features.Pending
		reports  []*event.Event // device reports whose profiles this batch writes
		enc      []byte         // the last stored event's encoding, for the next one
	)
	release := func(err error) {
		for _, p := range pendings {
			e.features.Done(p, err == nil)
		}
		if err != nil {
			for _, ev := range reports {
				e.profiles.Forget(ev)
			}
		}
		for _, h := range calls {
			e.inflight.end(h.key, h.c, nil, ErrIngested)
		}
		e.ingestSem.release(units)
	}
	var ev *event.Event // reused until an event is kept (a device report)
	for i, pb := range events {
		if ev == nil {
			ev = new(event.Event)
		}
		stored, err := e.norm.NormalizeInto(ev, pb)
		if err != nil {
			results[i].Err = err
			continue
		}
		key := e.seenKey(ev.EventID)
		skey := string(key)
		c, leader := e.inflight.begin(skey)
		if !leader {
			// Being evaluated or ingested right now, or repeated in this batch.
			results[i].Duplicate = true
			continue
		}
		calls = append(calls, held{skey, c})
		_, seen, err := e.lookupSeen(key, ev.EventID)
		if err != nil {
			_ = b.Close()
			release(err)
			return nil, err
		}
		if seen {
			results[i].Duplicate = true
			continue
		}
		if _, err := e.profiles.Fill(ev); err != nil {
			e.log.Warn("device profile read failed", "err", err)
		}
		// Nobody reads an ingested event's features: add it only.
		pending, err := e.features.Add(ev, b)
		if pending != nil {
			pendings = append(pendings, pending)
		}
		if err == nil && ev.Type == event.DeviceReport {
			reports = append(reports, ev)
			err = e.profiles.Record(ev, b)
			ev = nil
		}
		if err == nil {
			written = append(written, key)
			enc, err = ingest.AppendEvent(eb, enc, stored)
		}
		if err != nil {
			_ = b.Close()
			release(err)
			return nil, err
		}
	}
	slices.SortFunc(written, bytes.Compare)
	for _, key := range written {
		if err := b.Set(key, nil, nil); err != nil {
			_ = b.Close()
			release(err)
			return nil, err
		}
	}
	if err := b.Apply(eb, nil); err != nil {
		_ = b.Close()
		release(err)
		return nil, err
	}
	if b.Empty() {
		_ = b.Close()
		release(nil)
		return func() ([]IngestResult, error) { return results, nil }, nil
	}
	// Once submitted, the batch lands whether or not the stream is still
	// there; waiting for it keeps the feature cache and the disk in step.
	r := &commitReq{b: b, seen: written, done: make(chan error, 1)}
	if err := e.committer.submit(context.WithoutCancel(ctx), r); err != nil {
		_ = b.Close()
		release(err)
		return nil, err
	}
	// Settle as soon as the commit is done, not when the caller asks: the
	// caller may itself be waiting for the capacity this batch holds.
	settled := make(chan error, 1)
	go func() {
		err := <-r.done
		release(err)
		settled <- err
	}()
	return func() ([]IngestResult, error) {
		if err := <-settled; err != nil {
			return nil, err
		}
		return results, nil
	}, nil
}
