package server

import (
	"context"
	"log/slog"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
)

// Page sizes of list calls.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// decisionService serves DecisionService.
type decisionService struct {
	riskv1connect.UnimplementedDecisionServiceHandler
	eng *engine.Engine
	log *slog.Logger
}

// view returns what the caller may see of d: the whole record for analysts
// and admins, the service view (no analysts-only fields) for a calling back
// end, the subject's view for the subject it is about, and
// decisions.ErrNotFound for anyone else, so that a stranger's decision id
// reveals nothing.
func view(p auth.Principal, d *riskv1.Decision) (*riskv1.Decision, error) {
	switch p.Role {
	case auth.RoleService:
		return decisions.ServiceView(d), nil
	case auth.RoleSubject:
		if d.GetAccountId() != p.AccountID {
			return nil, decisions.ErrNotFound
		}
		return decisions.SubjectView(d), nil
	}
	return d, nil
}

func (s *decisionService) GetDecision(ctx context.Context, req *connect.Request[riskv1.GetDecisionRequest]) (*connect.Response[riskv1.GetDecisionResponse], error) {
	id := req.Msg.GetDecisionId()
	if id == "" {
		return nil, invalid("decision_id", "is required")
	}
	d, err := s.eng.Decisions().Get(id)
	if err == nil {
		d, err = view(principal(ctx), d)
	}
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.GetDecisionResponse{Decision: d}), nil
}

func (s *decisionService) ListDecisions(ctx context.Context, req *connect.Request[riskv1.ListDecisionsRequest]) (*connect.Response[riskv1.ListDecisionsResponse], error) {
	p := principal(ctx)
	account := req.Msg.GetAccountId()
	if p.Role == auth.RoleSubject {
		if account == "" {
			account = p.AccountID
		}
		if account != p.AccountID {
			return nil, connectError(ctx, s.log, "", errPermission)
		}
	}
	if account == "" {
		return nil, invalid("account_id", "is required")
	}
	if len(account) > 128 {
		return nil, invalid("account_id", "longer than 128 bytes")
	}
	size := int(req.Msg.GetPageSize())
	switch {
	case size < 0 || size > maxPageSize:
		return nil, invalid("page_size", "must be between 0 and 500")
	case size == 0:
		size = defaultPageSize
	}
	ds, next, err := s.eng.ListDecisions(account, size, req.Msg.GetPageToken())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if p.Role == auth.RoleSubject {
		for i, d := range ds {
			ds[i] = decisions.SubjectView(d)
		}
	}
	return connect.NewResponse(&riskv1.ListDecisionsResponse{Decisions: ds, NextPageToken: next}), nil
}
