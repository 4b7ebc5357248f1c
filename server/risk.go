package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/engine"
)

// MaxEventsPerMessage bounds one IngestRequest.
const MaxEventsPerMessage = 10_000

// riskService serves RiskService.
type riskService struct {
	riskv1connect.UnimplementedRiskServiceHandler
	eng *engine.Engine
	log *slog.Logger
}

func (s *riskService) Evaluate(ctx context.Context, req *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error) {
	if req.Msg.GetEvent() == nil {
		return nil, invalid("event", "is required")
	}
	d, err := s.eng.Evaluate(ctx, req.Msg.GetEvent())
	if err != nil {
		return nil, connectError(ctx, s.log, "event", err)
	}
	if d, err = view(principal(ctx), d); err != nil {
		return nil, connectError(ctx, s.log, "event", err)
	}
	return connect.NewResponse(&riskv1.EvaluateResponse{Decision: d}), nil
}

// ingestDepth is how many messages of one stream may be committing while
// the next is prepared: enough to overlap the sync of one with the work on
// the next, few enough that a stream holds little memory. The engine bounds
// the events held across all streams (engine.Options.MaxIngestEvents); when
// that is full the handler stops reading, and HTTP/2 flow control slows
// the sender.
const ingestDepth = 2

func (s *riskService) Ingest(ctx context.Context, stream *connect.ClientStream[riskv1.IngestRequest]) (*connect.Response[riskv1.IngestResponse], error) {
	type inFlight struct {
		index  int64 // of the message's first event in the whole stream
		events []*riskv1.Event
		wait   func() ([]engine.IngestResult, error)
	}
	res := &riskv1.IngestResponse{}
	var failed error // the first message the store could not take
	settle := func(m inFlight) {
		results, err := m.wait()
		if failed != nil {
			return
		}
		if err != nil {
			// Nothing of this message was recorded; what the earlier
			// messages recorded stands, and the counts say how much.
			failed = err
			return
		}
		for i, r := range results {
			switch {
			case r.Err != nil:
				ce := connectError(ctx, s.log, fmt.Sprintf("events[%d]", m.index+int64(i)), r.Err)
				field, msg := splitField(ce.Message())
				res.Errors = append(res.Errors, &riskv1.IngestError{
					Index: m.index + int64(i), EventId: m.events[i].GetEventId(), Field: field, Message: msg,
				})
			case r.Duplicate:
				res.Duplicates++
			default:
				res.Accepted++
			}
		}
	}
	var (
		queue []inFlight
		index int64 // of the next event in the whole stream
		bad   error
	)
	for failed == nil && stream.Receive() {
		events := stream.Msg().GetEvents()
		if len(events) > MaxEventsPerMessage {
			bad = invalid("events", fmt.Sprintf("at most %d events a message, got %d", MaxEventsPerMessage, len(events)))
			break
		}
		if len(queue) == ingestDepth {
			settle(queue[0])
			queue = queue[1:]
		}
		wait, err := s.eng.StartIngest(ctx, events)
		if err != nil {
			failed = err
			break
		}
		queue = append(queue, inFlight{index: index, events: events, wait: wait})
		index += int64(len(events))
	}
	for _, m := range queue {
		settle(m)
	}
	switch {
	case bad != nil:
		return nil, bad
	case failed != nil:
		return nil, connectError(ctx, s.log, "", failed)
	}
	if err := stream.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

// splitField separates "events[3].network.ip: does not parse" into its
// field path and reason.
func splitField(msg string) (field, reason string) {
	for i := 0; i+1 < len(msg); i++ {
		if msg[i] == ':' && msg[i+1] == ' ' {
			return msg[:i], msg[i+2:]
		}
	}
	return "", msg
}
