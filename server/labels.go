package server

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
)

// labelsService serves LabelsService.
type labelsService struct {
	riskv1connect.UnimplementedLabelsServiceHandler
	eng *engine.Engine
	log *slog.Logger
}

var labelKinds = map[riskv1.LabelKind]decisions.LabelKind{
	riskv1.LabelKind_LABEL_KIND_CONFIRMED_FRAUD: decisions.LabelConfirmedFraud,
	riskv1.LabelKind_LABEL_KIND_CHARGEBACK:      decisions.LabelChargeback,
	riskv1.LabelKind_LABEL_KIND_FALSE_POSITIVE:  decisions.LabelFalsePositive,
}

func labelPB(l decisions.Label) *riskv1.Label {
	out := &riskv1.Label{DecisionId: l.DecisionID, EventId: l.EventID, Source: l.Source}
	for k, v := range labelKinds {
		if v == l.Kind {
			out.Kind = k
		}
	}
	if !l.At.IsZero() {
		out.LabeledAt = timestamppb.New(l.At)
	}
	return out
}

// maxEventIDLen bounds an event id, as ingest does.
const maxEventIDLen = 128

func (s *labelsService) PutLabel(ctx context.Context, req *connect.Request[riskv1.PutLabelRequest]) (*connect.Response[riskv1.PutLabelResponse], error) {
	m := req.Msg
	kind, ok := labelKinds[m.GetKind()]
	switch {
	case !ok:
		return nil, invalid("kind", "must be LABEL_KIND_CONFIRMED_FRAUD, LABEL_KIND_CHARGEBACK or LABEL_KIND_FALSE_POSITIVE")
	case (m.GetDecisionId() == "") == (m.GetEventId() == ""):
		return nil, invalid("decision_id", "give exactly one of decision_id and event_id")
	case len(m.GetEventId()) > maxEventIDLen:
		return nil, invalid("event_id", "longer than 128 bytes")
	case len(m.GetDecisionId()) > maxEventIDLen:
		return nil, invalid("decision_id", "longer than 128 bytes")
	}
	l, err := s.eng.Decisions().PutLabel(decisions.Label{
		Kind: kind, DecisionID: m.GetDecisionId(), EventID: m.GetEventId(), Source: principal(ctx).Role.String(),
	})
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.PutLabelResponse{Label: labelPB(l)}), nil
}

// Label list bounds.
const (
	defaultLabelLimit = 1000
	maxLabelLimit     = 10000
)

// errEnough stops the label walk once the page is full.
var errEnough = errors.New("enough labels")

func (s *labelsService) ListLabels(ctx context.Context, req *connect.Request[riskv1.ListLabelsRequest]) (*connect.Response[riskv1.ListLabelsResponse], error) {
	m := req.Msg
	limit := int(m.GetLimit())
	switch {
	case limit < 0 || limit > maxLabelLimit:
		return nil, invalid("limit", "must be between 0 and 10000")
	case limit == 0:
		limit = defaultLabelLimit
	}
	var want decisions.LabelKind
	if m.GetKind() != riskv1.LabelKind_LABEL_KIND_UNSPECIFIED {
		k, ok := labelKinds[m.GetKind()]
		if !ok {
			return nil, invalid("kind", "unknown label kind")
		}
		want = k
	}
	out := &riskv1.ListLabelsResponse{}
	err := s.eng.Decisions().Labels(func(l decisions.Label) error {
		if want != "" && l.Kind != want {
			return nil
		}
		if len(out.Labels) == limit {
			out.Truncated = true
			return errEnough
		}
		out.Labels = append(out.Labels, labelPB(l))
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(out), nil
}
