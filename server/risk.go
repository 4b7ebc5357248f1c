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
	return connect.NewResponse(&riskv1.EvaluateResponse{Decision: d}), nil
}

func (s *riskService) Ingest(ctx context.Context, stream *connect.ClientStream[riskv1.IngestRequest]) (*connect.Response[riskv1.IngestResponse], error) {
	res := &riskv1.IngestResponse{}
	var index int64 // of the next event in the whole stream
	for stream.Receive() {
		events := stream.Msg().GetEvents()
		if len(events) > MaxEventsPerMessage {
			return nil, invalid("events", fmt.Sprintf("at most %d events a message, got %d", MaxEventsPerMessage, len(events)))
		}
		results, err := s.eng.Ingest(ctx, events)
		if err != nil {
			// Nothing of this message was recorded; what the earlier
			// messages recorded stands, and the counts say how much.
			return nil, connectError(ctx, s.log, "", err)
		}
		for i, r := range results {
			switch {
			case r.Err != nil:
				ce := connectError(ctx, s.log, fmt.Sprintf("events[%d]", index+int64(i)), r.Err)
				field, msg := splitField(ce.Message())
				res.Errors = append(res.Errors, &riskv1.IngestError{
					Index: index + int64(i), EventId: events[i].GetEventId(), Field: field, Message: msg,
				})
			case r.Duplicate:
				res.Duplicates++
			default:
				res.Accepted++
			}
		}
		index += int64(len(events))
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
