package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
)

// allowedAccounts is the list an overturn's remedy puts the account on; the
// bundled rule allow.appeal_remedy (login.yaml) reads it.
const allowedAccounts = "allowed_accounts"

// appealService serves AppealService.
type appealService struct {
	riskv1connect.UnimplementedAppealServiceHandler
	eng   *engine.Engine
	log   *slog.Logger
	alert overturnAlert
}

// overturnAlert is the per-rule overturn rate past which a rule is flagged.
type overturnAlert struct {
	threshold float64
	minHits   int64
}

func actorOf(p auth.Principal) decisions.Actor {
	return decisions.Actor{ID: p.Name, Role: p.Role.String()}
}

func (s *appealService) FileAppeal(ctx context.Context, req *connect.Request[riskv1.FileAppealRequest]) (*connect.Response[riskv1.FileAppealResponse], error) {
	p := principal(ctx)
	if p.Role != auth.RoleSubject {
		// Only the person a decision is about may contest it.
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("only the subject of a decision can appeal it: use a subject token"))
	}
	if req.Msg.GetDecisionId() == "" {
		return nil, invalid("decision_id", "is required")
	}
	a, err := s.eng.Decisions().File(decisions.FileRequest{
		DecisionID: req.Msg.GetDecisionId(), Subject: p.AccountID,
		Statement: req.Msg.GetStatement(), Contact: req.Msg.GetContact(),
	})
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.FileAppealResponse{Appeal: decisions.SubjectAppealView(a)}), nil
}

func (s *appealService) GetAppeal(ctx context.Context, req *connect.Request[riskv1.GetAppealRequest]) (*connect.Response[riskv1.GetAppealResponse], error) {
	p := principal(ctx)
	id := req.Msg.GetAppealId()
	if id == "" {
		return nil, invalid("appeal_id", "is required")
	}
	subject := ""
	if p.Role == auth.RoleSubject {
		subject = p.AccountID
	}
	a, err := s.eng.Decisions().GetAppeal(id, subject)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if subject != "" {
		a = decisions.SubjectAppealView(a)
	}
	return connect.NewResponse(&riskv1.GetAppealResponse{Appeal: a}), nil
}

func (s *appealService) ListAppeals(ctx context.Context, req *connect.Request[riskv1.ListAppealsRequest]) (*connect.Response[riskv1.ListAppealsResponse], error) {
	p := principal(ctx)
	m := req.Msg
	f := decisions.AppealFilter{Status: m.GetStatus(), OverdueOnly: m.GetOverdueOnly(), AccountID: m.GetAccountId(), PageToken: m.GetPageToken()}
	if p.Role == auth.RoleSubject {
		if f.AccountID == "" {
			f.AccountID = p.AccountID
		}
		if f.AccountID != p.AccountID {
			return nil, connectError(ctx, s.log, "", errPermission)
		}
	}
	if len(f.AccountID) > 128 {
		return nil, invalid("account_id", "longer than 128 bytes")
	}
	if _, ok := riskv1.AppealStatus_name[int32(f.Status)]; !ok {
		return nil, invalid("status", "unknown appeal status")
	}
	size := int(m.GetPageSize())
	switch {
	case size < 0 || size > maxPageSize:
		return nil, invalid("page_size", "must be between 0 and 500")
	case size == 0:
		size = defaultPageSize
	}
	f.PageSize = size
	as, next, err := s.eng.Decisions().ListAppeals(f)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if p.Role == auth.RoleSubject {
		for i, a := range as {
			as[i] = decisions.SubjectAppealView(a)
		}
	}
	return connect.NewResponse(&riskv1.ListAppealsResponse{Appeals: as, NextPageToken: next}), nil
}

func (s *appealService) StartReview(ctx context.Context, req *connect.Request[riskv1.StartReviewRequest]) (*connect.Response[riskv1.StartReviewResponse], error) {
	if req.Msg.GetAppealId() == "" {
		return nil, invalid("appeal_id", "is required")
	}
	a, err := s.eng.Decisions().StartReview(req.Msg.GetAppealId(), actorOf(principal(ctx)))
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.StartReviewResponse{Appeal: a}), nil
}

func (s *appealService) ResolveAppeal(ctx context.Context, req *connect.Request[riskv1.ResolveAppealRequest]) (*connect.Response[riskv1.ResolveAppealResponse], error) {
	p := principal(ctx)
	m := req.Msg
	switch {
	case m.GetAppealId() == "":
		return nil, invalid("appeal_id", "is required")
	case m.GetResolution() != riskv1.AppealStatus_APPEAL_STATUS_UPHELD && m.GetResolution() != riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED:
		return nil, invalid("resolution", "must be APPEAL_STATUS_UPHELD or APPEAL_STATUS_OVERTURNED")
	case strings.TrimSpace(m.GetReason()) == "":
		return nil, invalid("reason", "is required: the subject sees it")
	case m.GetRemedyDays() < 0 || m.GetRemedyDays() > decisions.MaxRemedyDays:
		return nil, invalid("remedy_days", "must be between 0 and 365")
	case m.GetRemedyDays() > 0 && m.GetResolution() != riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED:
		return nil, invalid("remedy_days", "only an overturn has a remedy")
	}
	rr := decisions.ResolveRequest{
		AppealID: m.GetAppealId(), Resolution: m.GetResolution(), Reason: m.GetReason(),
		RemedyDays: int(m.GetRemedyDays()), By: actorOf(p),
	}
	if p.Role != auth.RoleAdmin {
		rr.Authored = authoredBy(ruleStoreOf(s.eng), p)
	}
	a, remedy, err := s.eng.Decisions().Resolve(rr)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if a.GetStatus() == riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED {
		if remedy != nil {
			s.applyRemedy(ctx, remedy)
		}
		// Logs a warning for each rule now past the threshold.
		s.eng.Decisions().OverturnRates(ruleHits(s.eng), s.alert.threshold, s.alert.minHits)
	}
	return connect.NewResponse(&riskv1.ResolveAppealResponse{Appeal: a}), nil
}

// applyRemedy puts the account on the allowed list until the remedy ends.
// The overturn entry in the chain records the remedy either way.
func (s *appealService) applyRemedy(ctx context.Context, r *decisions.Remedy) {
	l := s.eng.Lists()
	if l == nil || r.AccountID == "" {
		s.log.WarnContext(ctx, "appeal remedy recorded but not applied: no lists store, or an erased account",
			"appeal", r.AppealID, "decision", r.DecisionID, "days", r.Days)
		return
	}
	if _, err := l.Meta(allowedAccounts); errors.Is(err, lists.ErrNotFound) {
		if _, err := l.Create(allowedAccounts, lists.Identifier, lists.CreateOptions{
			IdentifierKind: ingest.KindAccount, Description: "accounts allowed through: appeal remedies and analysts' exceptions",
		}); err != nil && !errors.Is(err, lists.ErrExists) {
			s.log.ErrorContext(ctx, "appeal remedy: creating the allowed list", "err", err)
			return
		}
	}
	if l.Contains(allowedAccounts, r.AccountID) && allowedAtLeastUntil(l, s.eng.Normalizer().Pseudonym(ingest.KindAccount, r.AccountID), r.Until) {
		// Adding again would replace a longer (or permanent) allowance.
		s.log.InfoContext(ctx, "appeal remedy: the account is already allowed for longer", "appeal", r.AppealID)
		return
	}
	if err := l.Add(allowedAccounts, r.AccountID, r.Until); err != nil {
		s.log.ErrorContext(ctx, "appeal remedy: adding the account to the allowed list", "appeal", r.AppealID, "err", err)
		return
	}
	s.log.InfoContext(ctx, "appeal remedy applied", "appeal", r.AppealID, "until", r.Until)
}

// allowedAtLeastUntil reports whether the allowed list holds the account's
// pseudonym with no expiry or one at or after until.
func allowedAtLeastUntil(l *lists.Lists, pseudonym string, until time.Time) bool {
	entries, err := l.Entries(allowedAccounts)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Value == pseudonym {
			return e.Expires.IsZero() || !e.Expires.Before(until)
		}
	}
	return false
}

// ruleHits returns the live set's per-rule hit counts.
func ruleHits(e *engine.Engine) map[string]int64 {
	st := e.Rules().Stats()
	hits := make(map[string]int64, len(st))
	for _, r := range st {
		hits[r.RuleID] = int64(r.Hits)
	}
	return hits
}
