package server

import (
	"context"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/engine"
)

// adminService serves AdminService (admin only: auth's policy lists no
// other role for it).
type adminService struct {
	riskv1connect.UnimplementedAdminServiceHandler
	eng *engine.Engine
	log *slog.Logger
}

func checkAccount(account string) *connect.Error {
	switch {
	case account == "":
		return invalid("account_id", "is required")
	case len(account) > 128:
		return invalid("account_id", "longer than 128 bytes")
	}
	return nil
}

func (s *adminService) ExportSubjectData(ctx context.Context, req *connect.Request[riskv1.ExportSubjectDataRequest]) (*connect.Response[riskv1.ExportSubjectDataResponse], error) {
	if err := checkAccount(req.Msg.GetAccountId()); err != nil {
		return nil, err
	}
	doc, err := s.eng.ExportSubject(req.Msg.GetAccountId())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.ExportSubjectDataResponse{Json: string(doc)}), nil
}

func (s *adminService) EraseSubject(ctx context.Context, req *connect.Request[riskv1.EraseSubjectRequest]) (*connect.Response[riskv1.EraseSubjectResponse], error) {
	if err := checkAccount(req.Msg.GetAccountId()); err != nil {
		return nil, err
	}
	if len(req.Msg.GetReason()) > 1024 {
		return nil, invalid("reason", "longer than 1024 bytes")
	}
	p := principal(ctx)
	rep, err := s.eng.EraseSubject(ctx, req.Msg.GetAccountId(), p.Role.String()+":"+p.Name)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if !rep.ChainVerified {
		s.log.ErrorContext(ctx, "decision chain does not verify after an erasure", "erasure_seq", rep.ErasureSeq)
	}
	return connect.NewResponse(&riskv1.EraseSubjectResponse{
		EventsDeleted: int64(rep.EventsDeleted), FeatureKeysDeleted: int64(rep.FeatureKeysDeleted),
		DevicesForgotten: int64(rep.DevicesForgotten), DecisionsRedacted: int64(rep.DecisionsRedacted),
		AppealsErased: int64(rep.AppealsErased), LabelsDeleted: int64(rep.LabelsDeleted),
		ListEntriesDeleted: int64(rep.ListEntriesDeleted), ErasureSeq: rep.ErasureSeq, ChainVerified: rep.ChainVerified,
	}), nil
}

func (s *adminService) GetRetention(ctx context.Context, _ *connect.Request[riskv1.GetRetentionRequest]) (*connect.Response[riskv1.GetRetentionResponse], error) {
	classes, last, err := s.eng.RetentionReport()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	res := &riskv1.GetRetentionResponse{}
	if !last.IsZero() {
		res.LastSweep = timestamppb.New(last)
	}
	for _, c := range classes {
		rc := &riskv1.RetentionClass{Name: c.Name, Description: c.Description, Records: c.Records, ApproxBytes: c.ApproxBytes}
		if c.Retention > 0 {
			rc.Retention = durationpb.New(c.Retention)
		}
		if !c.Oldest.IsZero() {
			rc.Oldest = timestamppb.New(c.Oldest)
		}
		res.Classes = append(res.Classes, rc)
	}
	return connect.NewResponse(res), nil
}

func (s *adminService) QueryAudit(ctx context.Context, req *connect.Request[riskv1.QueryAuditRequest]) (*connect.Response[riskv1.QueryAuditResponse], error) {
	m := req.Msg
	if m.GetLimit() < 0 || m.GetLimit() > 10000 {
		return nil, invalid("limit", "must be between 0 and 10000")
	}
	if len(m.GetActor()) > 256 || len(m.GetProcedure()) > 256 {
		return nil, invalid("actor", "longer than 256 bytes")
	}
	f := engine.AuditFilter{Actor: auditActorQuery(s.eng, m.GetActor()), Procedure: m.GetProcedure(), Limit: int(m.GetLimit())}
	if m.GetSince() != nil {
		if err := m.GetSince().CheckValid(); err != nil {
			return nil, invalid("since", "not a valid timestamp")
		}
		f.Since = m.GetSince().AsTime()
	}
	if m.GetUntil() != nil {
		if err := m.GetUntil().CheckValid(); err != nil {
			return nil, invalid("until", "not a valid timestamp")
		}
		f.Until = m.GetUntil().AsTime()
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return nil, invalid("until", "before since")
	}
	// The records of calls that just returned are still in the committer's queue.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.eng.FlushAudit(fctx); err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	recs, more, err := s.eng.QueryAudit(f)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.QueryAuditResponse{Records: recs, Truncated: more}), nil
}
