package engine

import (
	"context"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
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
	results := make([]IngestResult, len(events))
	b := e.db.NewBatch()
	type held struct {
		key string
		c   *call
	}
	var (
		calls    []held
		pendings []*features.Pending
	)
	release := func(err error) {
		for _, p := range pendings {
			e.features.Done(p, err == nil)
		}
		for _, h := range calls {
			e.inflight.end(h.key, h.c, nil, ErrIngested)
		}
	}
	for i, pb := range events {
		ev, stored, err := e.norm.Normalize(pb)
		if err != nil {
			results[i].Err = err
			continue
		}
		key := e.seenKey(ev.EventID)
		c, leader := e.inflight.begin(string(key))
		if !leader {
			// Being evaluated or ingested right now, or repeated in this batch.
			results[i].Duplicate = true
			continue
		}
		calls = append(calls, held{string(key), c})
		_, seen, err := e.lookupSeen(key)
		if err != nil {
			_ = b.Close()
			release(err)
			return nil, err
		}
		if seen {
			results[i].Duplicate = true
			continue
		}
		_, pending, err := e.features.Apply(ev, b)
		if pending != nil {
			pendings = append(pendings, pending)
		}
		if err == nil {
			err = b.Set(key, nil, nil)
		}
		if err == nil {
			err = ingest.PutEvent(b, stored)
		}
		if err != nil {
			_ = b.Close()
			release(err)
			return nil, err
		}
	}
	var err error
	if b.Empty() {
		_ = b.Close()
	} else {
		// Once submitted, the batch lands whether or not the stream is still
		// there; waiting for it keeps the feature cache and the disk in step.
		err = e.committer.commit(context.WithoutCancel(ctx), b, nil)
	}
	release(err)
	if err != nil {
		return nil, err
	}
	return results, nil
}
