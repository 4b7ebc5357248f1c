package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// rulesService serves RulesService over the engine's rules store. Every
// change is attributed to the caller's role and token name.
type rulesService struct {
	eng   *engine.Engine
	log   *slog.Logger
	alert overturnAlert
}

var errNoRuleStore = errors.New("server: the engine has no rules store")

func (s *rulesService) store() (*rules.Store, error) {
	st := s.eng.RuleStore()
	if st == nil {
		return nil, errNoRuleStore
	}
	return st, nil
}

// actor names the caller as the rules store records it.
func actor(ctx context.Context) rules.Actor {
	p := principal(ctx)
	return rules.Actor{Role: p.Role.String(), Token: p.Name}
}

// maxRuleFiles bounds one request's files.
const maxRuleFiles = 1000

// filesFromPB checks and converts request files; field names the request
// field for errors.
func filesFromPB(field string, fs []*riskv1.RuleFile) ([]rules.File, error) {
	if len(fs) > maxRuleFiles {
		return nil, invalid(field, fmt.Sprintf("at most %d files", maxRuleFiles))
	}
	out := make([]rules.File, 0, len(fs))
	seen := map[string]bool{}
	for i, f := range fs {
		n := f.GetName()
		switch {
		case n == "" || n != path.Base(n) || strings.ContainsAny(n, `/\`) || strings.HasPrefix(n, "."):
			return nil, invalid(fmt.Sprintf("%s[%d].name", field, i), "must be a base file name")
		case !strings.HasSuffix(n, ".yaml") && !strings.HasSuffix(n, ".yml"):
			return nil, invalid(fmt.Sprintf("%s[%d].name", field, i), "must end in .yaml or .yml")
		case seen[n]:
			return nil, invalid(fmt.Sprintf("%s[%d].name", field, i), "duplicate file name "+n)
		}
		seen[n] = true
		out = append(out, rules.File{Name: n, Data: []byte(f.GetContent())})
	}
	return out, nil
}

func filesPB(fs []rules.File) []*riskv1.RuleFile {
	out := make([]*riskv1.RuleFile, len(fs))
	for i, f := range fs {
		out[i] = &riskv1.RuleFile{Name: f.Name, Content: string(f.Data)}
	}
	return out
}

func modePB(m rules.Mode) riskv1.RuleMode {
	switch m {
	case rules.ModeActive:
		return riskv1.RuleMode_RULE_MODE_ACTIVE
	case rules.ModeShadow:
		return riskv1.RuleMode_RULE_MODE_SHADOW
	case rules.ModeDisabled:
		return riskv1.RuleMode_RULE_MODE_DISABLED
	}
	return riskv1.RuleMode_RULE_MODE_UNSPECIFIED
}

func modeFromPB(m riskv1.RuleMode) (rules.Mode, bool) {
	switch m {
	case riskv1.RuleMode_RULE_MODE_ACTIVE:
		return rules.ModeActive, true
	case riskv1.RuleMode_RULE_MODE_SHADOW:
		return rules.ModeShadow, true
	case riskv1.RuleMode_RULE_MODE_DISABLED:
		return rules.ModeDisabled, true
	}
	return "", false
}

func actorPB(a rules.Actor) *riskv1.Actor { return &riskv1.Actor{Role: a.Role, Token: a.Token} }

func tsPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func thresholdsPB(t rules.Thresholds) *riskv1.Thresholds {
	return &riskv1.Thresholds{Challenge: t.Challenge, Review: t.Review, Deny: t.Deny}
}

func ruleSummaries(s *rules.Set) []*riskv1.RuleSummary {
	if s == nil {
		return nil
	}
	rs := s.Rules()
	out := make([]*riskv1.RuleSummary, len(rs))
	for i, r := range rs {
		out[i] = &riskv1.RuleSummary{
			Id: r.ID, Version: r.Version, Description: r.Description, AppliesTo: r.AppliesTo,
			When: r.When, Action: r.Action, Score: r.Score, Mode: modePB(r.Mode), Owner: r.Owner,
			Tags: r.Tags, File: r.File, Line: int32(r.Line), Tests: int32(r.Tests),
		}
	}
	return out
}

// didYouMean pulls the suggestion out of a compile message.
var didYouMean = regexp.MustCompile(`did you mean "([^"]+)"\?`)

func compileErrorsPB(es rules.CompileErrors) []*riskv1.CompileError {
	out := make([]*riskv1.CompileError, len(es))
	for i, e := range es {
		ce := &riskv1.CompileError{File: e.File, RuleId: e.RuleID, Line: int32(e.Line), Column: int32(e.Column), Message: e.Msg, Snippet: e.Snippet}
		if m := didYouMean.FindStringSubmatch(e.Msg); m != nil {
			ce.Suggestion = m[1]
		}
		out[i] = ce
	}
	return out
}

// asCompileErrors returns every compile error in err, or nil.
func asCompileErrors(err error) rules.CompileErrors {
	var es rules.CompileErrors
	if errors.As(err, &es) {
		return es
	}
	var one *rules.CompileError
	if errors.As(err, &one) {
		return rules.CompileErrors{one}
	}
	return nil
}

// compileError is the invalid_argument error for rule files that do not
// compile: the message places the first error; a ValidateRulesResponse
// detail lists them all.
func compileError(es rules.CompileErrors) *connect.Error {
	first := es[0]
	msg := first.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // the snippet is in the detail
	}
	if len(es) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(es)-1)
	}
	ce := connect.NewError(connect.CodeInvalidArgument, errors.New(msg))
	if d, err := connect.NewErrorDetail(&riskv1.ValidateRulesResponse{Errors: compileErrorsPB(es)}); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

func (s *rulesService) ValidateRules(ctx context.Context, req *connect.Request[riskv1.ValidateRulesRequest]) (*connect.Response[riskv1.ValidateRulesResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	files, err := filesFromPB("files", req.Msg.GetFiles())
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, invalid("files", "at least one rule file is required")
	}
	set, err := st.Validate(files)
	if es := asCompileErrors(err); es != nil {
		return connect.NewResponse(&riskv1.ValidateRulesResponse{Errors: compileErrorsPB(es)}), nil
	}
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.ValidateRulesResponse{Valid: true, Rules: ruleSummaries(set), ContentVersion: rules.ContentVersion(files)}), nil
}

func draftPB(d rules.Draft, withFiles bool) *riskv1.Draft {
	out := &riskv1.Draft{Name: d.Name, Author: actorPB(d.Author), UpdatedAt: tsPB(d.At)}
	if withFiles {
		out.Files = filesPB(d.Files)
	}
	return out
}

func (s *rulesService) PutDraft(ctx context.Context, req *connect.Request[riskv1.PutDraftRequest]) (*connect.Response[riskv1.PutDraftResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	files, err := filesFromPB("files", req.Msg.GetFiles())
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, invalid("files", "at least one rule file is required")
	}
	set, err := st.PutDraft(req.Msg.GetName(), files, actor(ctx))
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	d, err := st.Draft(req.Msg.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.PutDraftResponse{Draft: draftPB(d, false), Rules: ruleSummaries(set)}), nil
}

func (s *rulesService) GetDraft(ctx context.Context, req *connect.Request[riskv1.GetDraftRequest]) (*connect.Response[riskv1.GetDraftResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	d, err := st.Draft(req.Msg.GetName())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.GetDraftResponse{Draft: draftPB(d, true)}), nil
}

func (s *rulesService) ListDrafts(ctx context.Context, _ *connect.Request[riskv1.ListDraftsRequest]) (*connect.Response[riskv1.ListDraftsResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	ds, err := st.Drafts()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	out := &riskv1.ListDraftsResponse{}
	for _, d := range ds {
		out.Drafts = append(out.Drafts, draftPB(d, false))
	}
	return connect.NewResponse(out), nil
}

func (s *rulesService) DeleteDraft(ctx context.Context, req *connect.Request[riskv1.DeleteDraftRequest]) (*connect.Response[riskv1.DeleteDraftResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if err := st.DeleteDraft(req.Msg.GetName(), actor(ctx)); err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.DeleteDraftResponse{}), nil
}

// candidate compiles what a request names: a draft, files, or (neither)
// nothing. field prefixes error fields.
func (s *rulesService) candidate(st *rules.Store, draft string, pbFiles []*riskv1.RuleFile, draftField, filesField string) (*rules.Set, error) {
	if draft != "" && len(pbFiles) > 0 {
		return nil, invalid(draftField, "give a draft or files, not both")
	}
	var files []rules.File
	switch {
	case draft != "":
		d, err := st.Draft(draft)
		if err != nil {
			return nil, err
		}
		files = d.Files
	case len(pbFiles) > 0:
		var err error
		if files, err = filesFromPB(filesField, pbFiles); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	return st.Validate(files)
}

func (s *rulesService) TestRules(ctx context.Context, req *connect.Request[riskv1.TestRulesRequest]) (*connect.Response[riskv1.TestRulesResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	set, err := s.candidate(st, req.Msg.GetDraft(), req.Msg.GetFiles(), "draft", "files")
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if set == nil {
		set = s.eng.Rules()
	}
	out := &riskv1.TestRulesResponse{Version: set.Version()}
	for _, r := range rules.RunTests(set) {
		out.Results = append(out.Results, &riskv1.RuleTestResult{
			RuleId: r.RuleID, Name: r.Name, File: r.File, Line: int32(r.Line), Passed: r.Passed,
			Fired: r.Fired, Outcome: riskv1.Outcome(r.Outcome), Score: r.Score, Message: r.Message,
		})
		if r.Passed {
			out.Passed++
		} else {
			out.Failed++
		}
	}
	return connect.NewResponse(out), nil
}

// ruleSources maps rule ids to their YAML text.
func ruleSources(s *rules.Set) map[string]string {
	m := map[string]string{}
	if s != nil {
		for _, r := range s.Rules() {
			m[r.ID] = r.Source
		}
	}
	return m
}

func (s *rulesService) DiffDraft(ctx context.Context, req *connect.Request[riskv1.DiffDraftRequest]) (*connect.Response[riskv1.DiffDraftResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if req.Msg.GetDraft() == "" {
		return nil, invalid("draft", "required")
	}
	cand, err := s.candidate(st, req.Msg.GetDraft(), nil, "draft", "")
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	live := st.Live()
	d := rules.DiffSets(live, cand)
	out := &riskv1.DiffDraftResponse{
		LiveVersion: d.From, Added: d.Added, Removed: d.Removed, ThresholdsChanged: d.ThresholdsChanged,
		ThresholdsBefore: thresholdsPB(d.Before), ThresholdsAfter: thresholdsPB(d.After),
	}
	if live != nil {
		out.LiveVersion = live.Version()
	}
	for _, c := range d.Changed {
		out.Changed = append(out.Changed, &riskv1.RuleDiff{RuleId: c.ID, Fields: c.Fields, Before: c.Before, After: c.After})
	}
	if len(d.Added) > 0 {
		src := ruleSources(cand)
		out.AddedText = map[string]string{}
		for _, id := range d.Added {
			out.AddedText[id] = src[id]
		}
	}
	if len(d.Removed) > 0 {
		src := ruleSources(live)
		out.RemovedText = map[string]string{}
		for _, id := range d.Removed {
			out.RemovedText[id] = src[id]
		}
	}
	return connect.NewResponse(out), nil
}

// versionInfo returns the store's description of version v.
func versionInfo(st *rules.Store, v string) (*riskv1.RuleSetVersion, error) {
	vs, err := st.Versions()
	if err != nil {
		return nil, err
	}
	for _, vi := range vs {
		if vi.Version == v {
			return versionPB(vi), nil
		}
	}
	return nil, fmt.Errorf("%w: version %q", rules.ErrNotFound, v)
}

func versionPB(vi rules.VersionInfo) *riskv1.RuleSetVersion {
	return &riskv1.RuleSetVersion{
		Version: vi.Version, Author: actorPB(vi.Author), PublishedAt: tsPB(vi.At), Note: vi.Note,
		Kind: vi.Kind, RuleIds: vi.Rules, Live: vi.Live,
	}
}

func (s *rulesService) Publish(ctx context.Context, req *connect.Request[riskv1.PublishRequest]) (*connect.Response[riskv1.PublishResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	m := req.Msg
	var set *rules.Set
	switch {
	case m.GetDraft() != "" && len(m.GetFiles()) > 0:
		return nil, invalid("draft", "give a draft or files, not both")
	case m.GetDraft() != "":
		set, err = st.Publish(m.GetDraft(), actor(ctx), m.GetNote())
	case len(m.GetFiles()) > 0:
		files, ferr := filesFromPB("files", m.GetFiles())
		if ferr != nil {
			return nil, ferr
		}
		set, err = st.PublishFiles(files, actor(ctx), m.GetNote())
	default:
		return nil, invalid("draft", "name a draft or give files")
	}
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	s.log.InfoContext(ctx, "rule set published", "version", set.Version(), "by", actor(ctx).Token, "role", actor(ctx).Role)
	vi, err := versionInfo(st, set.Version())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.PublishResponse{Version: vi}), nil
}

func (s *rulesService) ListVersions(ctx context.Context, _ *connect.Request[riskv1.ListVersionsRequest]) (*connect.Response[riskv1.ListVersionsResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	vs, err := st.Versions()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	out := &riskv1.ListVersionsResponse{}
	if live := st.Live(); live != nil {
		out.LiveVersion = live.Version()
	}
	for _, vi := range vs {
		out.Versions = append(out.Versions, versionPB(vi))
	}
	return connect.NewResponse(out), nil
}

func (s *rulesService) GetVersion(ctx context.Context, req *connect.Request[riskv1.GetVersionRequest]) (*connect.Response[riskv1.GetVersionResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	v := req.Msg.GetVersion()
	var set *rules.Set
	if v == "" {
		if set = st.Live(); set == nil {
			return nil, connectError(ctx, s.log, "", fmt.Errorf("%w: no live version", rules.ErrNotFound))
		}
		v = set.Version()
	} else if set, err = st.Version(v); err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	vi, err := versionInfo(st, v)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.GetVersionResponse{
		Version: vi, Files: filesPB(set.Files()), Rules: ruleSummaries(set), Thresholds: thresholdsPB(set.Thresholds()),
	}), nil
}

func (s *rulesService) Rollback(ctx context.Context, req *connect.Request[riskv1.RollbackRequest]) (*connect.Response[riskv1.RollbackResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if req.Msg.GetVersion() == "" {
		return nil, invalid("version", "required")
	}
	set, err := st.Rollback(req.Msg.GetVersion(), actor(ctx), req.Msg.GetNote())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	s.log.InfoContext(ctx, "rule set rolled back", "version", set.Version(), "by", actor(ctx).Token, "role", actor(ctx).Role)
	vi, err := versionInfo(st, set.Version())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.RollbackResponse{Version: vi}), nil
}

func (s *rulesService) SetRuleMode(ctx context.Context, req *connect.Request[riskv1.SetRuleModeRequest]) (*connect.Response[riskv1.SetRuleModeResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	if req.Msg.GetRuleId() == "" {
		return nil, invalid("rule_id", "required")
	}
	mode, ok := modeFromPB(req.Msg.GetMode())
	if !ok {
		return nil, invalid("mode", "must be ACTIVE, SHADOW or DISABLED")
	}
	set, err := st.SetMode(req.Msg.GetRuleId(), mode, actor(ctx), req.Msg.GetNote())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	s.log.InfoContext(ctx, "rule mode changed", "rule", req.Msg.GetRuleId(), "mode", mode, "version", set.Version(), "by", actor(ctx).Token)
	vi, err := versionInfo(st, set.Version())
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(&riskv1.SetRuleModeResponse{Version: vi}), nil
}

func (s *rulesService) History(ctx context.Context, req *connect.Request[riskv1.HistoryRequest]) (*connect.Response[riskv1.HistoryResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	limit := int(req.Msg.GetLimit())
	switch {
	case limit < 0 || limit > 10000:
		return nil, invalid("limit", "must be 0..10000")
	case limit == 0:
		limit = 100
	}
	hist, err := st.History(limit)
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	out := &riskv1.HistoryResponse{}
	for _, c := range hist {
		out.Changes = append(out.Changes, &riskv1.RuleChange{
			At: tsPB(c.At), Author: actorPB(c.Author), Action: c.Action, Version: c.Version,
			Draft: c.Draft, RuleId: c.RuleID, Mode: modePB(c.Mode), Note: c.Note,
		})
	}
	return connect.NewResponse(out), nil
}

func outcomeCounts(m map[rules.Outcome]int) []*riskv1.OutcomeCount {
	out := make([]*riskv1.OutcomeCount, 0, len(m))
	for o := rules.Allow; o <= rules.Deny; o++ {
		if n := m[o]; n > 0 {
			out = append(out, &riskv1.OutcomeCount{Outcome: riskv1.Outcome(o), Count: int64(n)})
		}
	}
	return out
}

func (s *rulesService) Backtest(ctx context.Context, req *connect.Request[riskv1.BacktestRequest]) (*connect.Response[riskv1.BacktestResponse], error) {
	st, err := s.store()
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	m := req.Msg
	switch {
	case m.GetFrom() == nil:
		return nil, invalid("from", "required")
	case m.GetTo() == nil:
		return nil, invalid("to", "required")
	case !m.GetTo().AsTime().After(m.GetFrom().AsTime()):
		return nil, invalid("to", "must be after from")
	case m.GetSamples() < 0 || m.GetSamples() > 1000:
		return nil, invalid("samples", "must be 0..1000")
	}
	cand, err := s.candidate(st, m.GetCandidateDraft(), m.GetCandidateFiles(), "candidate_draft", "candidate_files")
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	rep, err := s.eng.Backtest(ctx, engine.BacktestOptions{
		From: m.GetFrom().AsTime(), To: m.GetTo().AsTime(), Candidate: cand, Samples: int(m.GetSamples()),
	})
	if err != nil {
		return nil, connectError(ctx, s.log, "", err)
	}
	return connect.NewResponse(backtestPB(rep)), nil
}

func backtestPB(rep *rules.BacktestReport) *riskv1.BacktestResponse {
	out := &riskv1.BacktestResponse{
		LiveVersion: rep.LiveVersion, CandidateVersion: rep.CandidateVersion, Events: int64(rep.Events),
		Changed: int64(rep.Changed), Before: outcomeCounts(rep.Before), After: outcomeCounts(rep.After),
		ElapsedSeconds: rep.Elapsed.Seconds(),
	}
	if rep.Elapsed > 0 {
		out.EventsPerSecond = float64(rep.Events) / rep.Elapsed.Seconds()
	}
	for _, r := range rep.Rules {
		out.Rules = append(out.Rules, &riskv1.RuleBacktestResult{
			RuleId: r.RuleID, LiveMode: modePB(r.LiveMode), CandidateMode: modePB(r.CandidateMode),
			LiveHits: int64(r.LiveHits), CandidateHits: int64(r.CandidateHits), OutcomesChanged: int64(r.OutcomesChanged),
			LiveFraud: int64(r.LiveFraud), LiveOverturned: int64(r.LiveOverturned),
			CandidateFraud: int64(r.CandidateFraud), CandidateOverturned: int64(r.CandidateOverturned),
		})
	}
	for _, c := range rep.Samples {
		out.Samples = append(out.Samples, &riskv1.ChangedDecision{
			EventId: c.EventID, OccurredAt: tsPB(c.OccurredAt), Before: riskv1.Outcome(c.Before), After: riskv1.Outcome(c.After),
			BeforeRules: c.BeforeRules, AfterRules: c.AfterRules,
		})
	}
	return out
}

func (s *rulesService) RuleStats(ctx context.Context, req *connect.Request[riskv1.RuleStatsRequest]) (*connect.Response[riskv1.RuleStatsResponse], error) {
	th, minHits := req.Msg.GetOverturnThreshold(), req.Msg.GetMinHits()
	switch {
	case th < 0 || th > 1:
		return nil, invalid("overturn_threshold", "must be between 0 and 1")
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
	st := set.Stats()
	hits := make(map[string]int64, len(st))
	for _, r := range st {
		hits[r.RuleID] = int64(r.Hits)
	}
	ov := s.eng.Decisions().OverturnRates(hits, th, minHits)
	rates := make(map[string]int, len(ov))
	for i, r := range ov {
		rates[r.RuleID] = i
	}
	out := &riskv1.RuleStatsResponse{LiveVersion: set.Version(), OverturnThreshold: th, MinHits: minHits}
	for _, r := range st {
		rs := &riskv1.RuleStat{
			RuleId: r.RuleID, Mode: modePB(r.Mode), Evaluations: int64(r.Evaluations), Hits: int64(r.Hits),
			HitRate: r.HitRate, CostNs: r.CostNs,
		}
		if i, ok := rates[r.RuleID]; ok {
			o := ov[i]
			rs.Overturns, rs.OverturnRate, rs.Flagged = int64(o.Overturns), o.Rate, o.Flagged
		}
		out.Rules = append(out.Rules, rs)
	}
	sort.SliceStable(out.Rules, func(i, j int) bool { return out.Rules[i].GetRuleId() < out.Rules[j].GetRuleId() })
	return connect.NewResponse(out), nil
}
