package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/rules"
)

// decisionLogService serves DecisionLogService.
type decisionLogService struct {
	riskv1connect.UnimplementedDecisionLogServiceHandler
	eng    *engine.Engine
	log    *slog.Logger
	replay *engine.Replayer
	alert  overturnAlert
}

func newDecisionLogService(eng *engine.Engine, log *slog.Logger, alert overturnAlert) *decisionLogService {
	lookup := func(v string) (*rules.Set, error) {
		if h := ruleStoreOf(eng); h != nil {
			return h.Version(v)
		}
		return nil, rules.ErrNotFound
	}
	return &decisionLogService{eng: eng, log: log, replay: engine.NewReplayer(eng, lookup), alert: alert}
}

func (s *decisionLogService) VerifyChain(ctx context.Context, req *connect.Request[riskv1.VerifyChainRequest]) (*connect.Response[riskv1.VerifyChainResponse], error) {
	rep, err := s.eng.Decisions().Verify(req.Msg.GetFromDecisionId())
	if err != nil && !errors.Is(err, decisions.ErrChainBroken) {
		return nil, connectError(ctx, s.log, "", err)
	}
	out := &riskv1.VerifyChainResponse{
		Ok: rep.OK && rep.Broken == nil, FromDecisionId: rep.From, FirstSeq: rep.FirstSeq, LastSeq: rep.LastSeq,
		Checked: rep.Checked, HeadSeq: rep.HeadSeq, HeadHash: rep.HeadHash, Elapsed: durationpb.New(rep.Elapsed),
	}
	if b := rep.Broken; b != nil {
		kind := ""
		if b.Kind != 0 {
			kind = b.Kind.String()
		}
		out.Broken = &riskv1.BrokenRecord{Seq: b.Seq, Kind: kind, DecisionId: b.DecisionID, Reason: b.Reason}
	}
	return connect.NewResponse(out), nil
}

func checkpointPB(c decisions.Checkpoint) *riskv1.Checkpoint {
	out := &riskv1.Checkpoint{Seq: c.Seq, Count: c.Count, Hash: c.Hash}
	if !c.At.IsZero() {
		out.At = timestamppb.New(c.At)
	}
	return out
}

func (s *decisionLogService) GetCheckpoint(ctx context.Context, _ *connect.Request[riskv1.GetCheckpointRequest]) (*connect.Response[riskv1.GetCheckpointResponse], error) {
	c, err := s.eng.Decisions().ReadCheckpoint()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.GetCheckpointResponse{
		Checkpoint: checkpointPB(c), LastLogged: checkpointPB(s.eng.Decisions().LastCheckpoint()),
	}), nil
}

func (s *decisionLogService) ExplainDecision(ctx context.Context, req *connect.Request[riskv1.ExplainDecisionRequest]) (*connect.Response[riskv1.ExplainDecisionResponse], error) {
	p := principal(ctx)
	id := req.Msg.GetDecisionId()
	if id == "" {
		return nil, invalid("decision_id", "is required")
	}
	log := s.eng.Decisions()
	var (
		d   *riskv1.Decision
		err error
	)
	subject := p.Role == auth.RoleSubject
	if subject {
		d, err = log.GetForSubject(id, p.AccountID)
	} else {
		d, err = log.Get(id)
	}
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	appeals, err := s.appealsOf(d, subject)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	now := log.Options().Clock.Now()
	x := &riskv1.Explanation{
		DecisionId: d.GetDecisionId(), EventType: d.GetEventType(), Outcome: d.GetOutcome(), DecidedAt: d.GetDecidedAt(),
		Reasons: d.GetReasons(), DataCategories: d.GetDataCategories(), FullyAutomated: d.GetFullyAutomated(),
		AppealDeadline: d.GetAppealDeadline(), Degraded: d.GetDegraded(), Appeals: appeals,
		Appealable: d.GetAppealDeadline() != nil && now.Before(d.GetAppealDeadline().AsTime()),
	}
	if !subject {
		x.Full = true
		x.Score = d.GetScore()
		x.RulesetVersion = d.GetRulesetVersion()
		x.ShadowReasons = d.GetShadowReasons()
		x.Event = d.GetEvent()
		x.Latency = d.GetLatency()
		x.DegradedReason = d.GetDegradedReason()
		x.EventId = d.GetEventId()
		x.AccountId = d.GetAccountId()
		names := make([]string, 0, len(d.GetFeatures()))
		for n := range d.GetFeatures() {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			x.Features = append(x.Features, &riskv1.FeatureValue{Name: n, Value: d.GetFeatures()[n]})
		}
	}
	return connect.NewResponse(&riskv1.ExplainDecisionResponse{Explanation: x}), nil
}

// appealsOf returns the appeals filed on d, oldest first (the subject's view
// for a subject).
func (s *decisionLogService) appealsOf(d *riskv1.Decision, subject bool) ([]*riskv1.Appeal, error) {
	if d.GetAccountId() == "" {
		return nil, nil // erased: appeals are found by account
	}
	var out []*riskv1.Appeal
	token := ""
	for range 100 {
		as, next, err := s.eng.Decisions().ListAppeals(decisions.AppealFilter{AccountID: d.GetAccountId(), PageSize: decisions.MaxPageSize, PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if a.GetDecisionId() != d.GetDecisionId() {
				continue
			}
			if subject {
				a = decisions.SubjectAppealView(a)
			}
			out = append(out, a)
		}
		if next == "" {
			break
		}
		token = next
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetFiledAt().AsTime().Before(out[j].GetFiledAt().AsTime()) })
	return out, nil
}

func (s *decisionLogService) ReplayDecision(ctx context.Context, req *connect.Request[riskv1.ReplayDecisionRequest]) (*connect.Response[riskv1.ReplayDecisionResponse], error) {
	id := req.Msg.GetDecisionId()
	if id == "" {
		return nil, invalid("decision_id", "is required")
	}
	if len(req.Msg.GetRulesetVersion()) > 128 {
		return nil, invalid("ruleset_version", "longer than 128 bytes")
	}
	d, err := s.eng.Decisions().Get(id)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	rr, err := s.replay.Replay(d, req.Msg.GetRulesetVersion())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	recordedVersion := rr.Version == d.GetRulesetVersion()
	if recordedVersion && !rr.Matches && !d.GetDegraded() {
		s.log.ErrorContext(ctx, "replay does not reproduce a recorded decision", "decision", id, "ruleset", rr.Version, "differences", len(rr.Differences))
		return nil, connectError(ctx, s.log, "", &engine.MismatchError{DecisionID: id, Version: rr.Version, Differences: rr.Differences})
	}
	return connect.NewResponse(&riskv1.ReplayDecisionResponse{
		DecisionId: id, RulesetVersion: rr.Version, RecordedRulesetVersion: d.GetRulesetVersion(),
		Outcome: riskv1.Outcome(rr.Result.Outcome), Score: rr.Result.Score,
		Reasons: engine.Reasons(rr.Result.Reasons), ShadowReasons: engine.Reasons(rr.Result.Shadow),
		RecordedOutcome: d.GetOutcome(), RecordedScore: d.GetScore(), RecordedReasons: d.GetReasons(),
		Matches: rr.Matches, Differences: rr.Differences,
	}), nil
}

// accountPseudonyms returns the account's pseudonyms: under the current key
// first, then under old keys when the engine rotates keys
// (AccountPseudonyms), so that records from before a rotation are found.
func accountPseudonyms(e *engine.Engine, account string) []string {
	if ps := e.AccountPseudonyms(account); len(ps) > 0 {
		return ps
	}
	return []string{e.Normalizer().Pseudonym(ingest.KindAccount, account)}
}

// subjectExport is a subject's own export: their decisions and appeals as
// they may see them.
type subjectExport struct {
	AccountID string            `json:"accountId"`
	Decisions []json.RawMessage `json:"decisions"`
	Appeals   []json.RawMessage `json:"appeals"`
}

func (s *decisionLogService) ExportSubject(ctx context.Context, req *connect.Request[riskv1.ExportSubjectRequest]) (*connect.Response[riskv1.ExportSubjectResponse], error) {
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
	switch {
	case account == "":
		return nil, invalid("account_id", "is required")
	case len(account) > 128:
		return nil, invalid("account_id", "longer than 128 bytes")
	}
	pseuds := accountPseudonyms(s.eng, account)
	if p.Role != auth.RoleSubject {
		// Everything the store holds about the account, across pseudonym keys.
		data, err := s.eng.ExportSubject(account)
		if err != nil {
			return nil, connectError(ctx, s.log, "", err)
		}
		return connect.NewResponse(&riskv1.ExportSubjectResponse{Json: string(data)}), nil
	}
	sd := &decisions.SubjectData{}
	for _, ps := range pseuds {
		part, err := s.eng.Decisions().SubjectRecords(ps)
		if err != nil {
			return nil, connectError(ctx, s.log, "", err)
		}
		sd.Decisions = append(sd.Decisions, part.Decisions...)
		sd.Appeals = append(sd.Appeals, part.Appeals...)
	}
	out := subjectExport{AccountID: account, Decisions: []json.RawMessage{}, Appeals: []json.RawMessage{}}
	mo := protojson.MarshalOptions{}
	add := func(dst *[]json.RawMessage, m proto.Message) error {
		b, err := mo.Marshal(m)
		if err == nil {
			*dst = append(*dst, b)
		}
		return err
	}
	for _, d := range sd.Decisions {
		if err := add(&out.Decisions, decisions.SubjectView(d)); err != nil {
			return nil, connectError(ctx, s.log, "", err)
		}
	}
	for _, a := range sd.Appeals {
		if err := add(&out.Appeals, decisions.SubjectAppealView(a)); err != nil {
			return nil, connectError(ctx, s.log, "", err)
		}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.ExportSubjectResponse{Json: string(data)}), nil
}

func (s *decisionLogService) GetOverturnRates(ctx context.Context, req *connect.Request[riskv1.GetOverturnRatesRequest]) (*connect.Response[riskv1.GetOverturnRatesResponse], error) {
	th, minHits := req.Msg.GetThreshold(), req.Msg.GetMinHits()
	switch {
	case th < 0 || th > 1:
		return nil, invalid("threshold", "must be between 0 and 1")
	case minHits < 0:
		return nil, invalid("min_hits", "must not be negative")
	}
	if th == 0 {
		th = s.alert.threshold
	}
	if minHits == 0 {
		minHits = s.alert.minHits
	}
	set := s.eng.Rules()
	rates := s.eng.Decisions().OverturnRates(ruleHits(s.eng), th, minHits)
	out := &riskv1.GetOverturnRatesResponse{Threshold: th, MinHits: minHits, RulesetVersion: set.Version()}
	for _, r := range rates {
		out.Rules = append(out.Rules, &riskv1.RuleOverturnRate{RuleId: r.RuleID, Hits: r.Hits, Overturns: int64(r.Overturns), Rate: r.Rate, Flagged: r.Flagged})
	}
	return connect.NewResponse(out), nil
}
