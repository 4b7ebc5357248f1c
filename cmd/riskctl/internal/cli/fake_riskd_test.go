package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

// testCreds are the credentials the tests' data dirs hold and the fake riskd
// accepts, one token per role.
var testCreds = func() auth.Credentials {
	c, err := auth.Generate()
	if err != nil {
		panic(err)
	}
	return c
}()

var (
	serviceToken = testCreds.Service
	analystToken = testCreds.Analyst
	adminToken   = testCreds.Admin
)

// testNow is the fixed time of the tests' fake clock and fake riskd.
var testNow = time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)

// fakeRiskd stands in for the remote riskd: it serves the generated Connect
// handlers (so every protocol and codec is the real one) with a small
// in-memory implementation, and records the Authorization headers it saw.
// riskctl is only a client, so the peer's internals do not matter here; its
// wire behaviour does.
type fakeRiskd struct {
	riskv1connect.UnimplementedRiskServiceHandler
	riskv1connect.UnimplementedDecisionServiceHandler

	mu        sync.Mutex
	auth      []string                      // Authorization headers seen, guarded by mu
	decisions map[string]*riskv1.Decision   // by id, guarded by mu
	byAccount map[string][]*riskv1.Decision // newest first, guarded by mu
	pageSize  int                           // default page size
	ingested  map[string]*riskv1.Event      // by event id, guarded by mu
	messages  int                           // Ingest messages received, guarded by mu
}

// startFakeRiskd serves a fakeRiskd on loopback over HTTP/1.1 and h2c.
func startFakeRiskd(t *testing.T) (*fakeRiskd, *httptest.Server) {
	t.Helper()
	f := &fakeRiskd{decisions: map[string]*riskv1.Decision{}, byAccount: map[string][]*riskv1.Decision{},
		ingested: map[string]*riskv1.Event{}, pageSize: 2}
	mux := http.NewServeMux()
	mux.Handle(riskv1connect.NewRiskServiceHandler(f))
	mux.Handle(riskv1connect.NewDecisionServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeRiskd) authHeaders() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...)
}

// authorize mimics riskd's role check: unauthenticated for a missing or
// unknown token, permission_denied for a known token of another role.
func (f *fakeRiskd) authorize(h http.Header, want string) error {
	v := h.Get("Authorization")
	f.mu.Lock()
	f.auth = append(f.auth, v)
	f.mu.Unlock()
	tok, ok := strings.CutPrefix(v, "Bearer ")
	if !ok {
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing bearer token"))
	}
	switch tok {
	case want:
		return nil
	case serviceToken, analystToken, adminToken:
		return connect.NewError(connect.CodePermissionDenied, errors.New("this token's role may not call this method"))
	}
	return connect.NewError(connect.CodeUnauthenticated, errors.New("invalid token"))
}

// Evaluate decides by the event's "want" attribute (ALLOW by default), so
// that tests choose the outcome; a missing event_id is invalid_argument.
func (f *fakeRiskd) Evaluate(ctx context.Context, req *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error) {
	if err := f.authorize(req.Header(), serviceToken); err != nil {
		return nil, err
	}
	ev := req.Msg.GetEvent()
	if ev.GetEventId() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("event_id: required"))
	}
	d := sampleDecision(ev)
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.decisions[d.DecisionId]; ok {
		return connect.NewResponse(&riskv1.EvaluateResponse{Decision: old}), nil
	}
	f.decisions[d.DecisionId] = d
	f.byAccount[ev.GetAccountId()] = append([]*riskv1.Decision{d}, f.byAccount[ev.GetAccountId()]...)
	return connect.NewResponse(&riskv1.EvaluateResponse{Decision: d}), nil
}

// Ingest accepts each event once by id; an event without an id or account,
// or with a status over 999, is rejected by its index in the stream, as
// riskd does.
func (f *fakeRiskd) Ingest(ctx context.Context, stream *connect.ClientStream[riskv1.IngestRequest]) (*connect.Response[riskv1.IngestResponse], error) {
	if err := f.authorize(stream.RequestHeader(), serviceToken); err != nil {
		return nil, err
	}
	res := &riskv1.IngestResponse{}
	var index int64
	for stream.Receive() {
		f.mu.Lock()
		f.messages++
		for _, ev := range stream.Msg().GetEvents() {
			switch {
			case ev.GetEventId() == "":
				res.Errors = append(res.Errors, &riskv1.IngestError{Index: index, Field: fmt.Sprintf("events[%d].event_id", index), Message: "required"})
			case ev.GetAccountId() == "":
				res.Errors = append(res.Errors, &riskv1.IngestError{Index: index, EventId: ev.GetEventId(), Field: fmt.Sprintf("events[%d].account_id", index), Message: "required"})
			case f.ingested[ev.GetEventId()] != nil:
				res.Duplicates++
			default:
				f.ingested[ev.GetEventId()] = ev
				res.Accepted++
			}
			index++
		}
		f.mu.Unlock()
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

func (f *fakeRiskd) ingestedEvent(id string) *riskv1.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ingested[id]
}

func (f *fakeRiskd) ingestedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ingested)
}

func (f *fakeRiskd) messageCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.messages
}

func (f *fakeRiskd) GetDecision(ctx context.Context, req *connect.Request[riskv1.GetDecisionRequest]) (*connect.Response[riskv1.GetDecisionResponse], error) {
	if err := f.authorize(req.Header(), analystToken); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.decisions[req.Msg.GetDecisionId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("decision %q not found", req.Msg.GetDecisionId()))
	}
	return connect.NewResponse(&riskv1.GetDecisionResponse{Decision: d}), nil
}

// ListDecisions pages by offset; the page token is the next offset.
func (f *fakeRiskd) ListDecisions(ctx context.Context, req *connect.Request[riskv1.ListDecisionsRequest]) (*connect.Response[riskv1.ListDecisionsResponse], error) {
	if err := f.authorize(req.Header(), analystToken); err != nil {
		return nil, err
	}
	if req.Msg.GetAccountId() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("account_id: required"))
	}
	size := int(req.Msg.GetPageSize())
	if size == 0 {
		size = f.pageSize
	}
	from := 0
	if tok := req.Msg.GetPageToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token: malformed"))
		}
		from = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	all := f.byAccount[req.Msg.GetAccountId()]
	resp := &riskv1.ListDecisionsResponse{}
	if from < len(all) {
		to := min(from+size, len(all))
		resp.Decisions = all[from:to]
		if to < len(all) {
			resp.NextPageToken = strconv.Itoa(to)
		}
	}
	return connect.NewResponse(resp), nil
}

// sampleDecision builds a decision that exercises every part of the human
// output: reasons in both languages, a scoring rule, a shadow hit, features
// absent and present.
func sampleDecision(ev *riskv1.Event) *riskv1.Decision {
	outcome := riskv1.Outcome_OUTCOME_ALLOW
	if w := ev.GetAttributes()["want"]; w != "" {
		outcome = riskv1.Outcome(riskv1.Outcome_value["OUTCOME_"+w])
	}
	d := &riskv1.Decision{
		DecisionId:     "01JDEC" + strings.ToUpper(ev.GetEventId()),
		EventId:        ev.GetEventId(),
		AccountId:      ev.GetAccountId(),
		EventType:      ev.GetType(),
		OccurredAt:     ev.GetOccurredAt(),
		Outcome:        outcome,
		RulesetVersion: "bundled-1",
		DecidedAt:      timestamppb.New(testNow),
		AppealDeadline: timestamppb.New(testNow.Add(30 * 24 * time.Hour)),
		Latency:        durationpb.New(1200 * time.Microsecond),
		DataCategories: []string{"behaviour", "device"},
		Features: map[string]*structpb.Value{
			"login_failures_account_10m":   structpb.NewNumberValue(6),
			"account_device_seen_before":   structpb.NewBoolValue(false),
			"device_distinct_accounts_24h": structpb.NewNullValue(),
		},
	}
	if outcome > riskv1.Outcome_OUTCOME_ALLOW {
		d.Score = 40
		d.Reasons = []*riskv1.Reason{
			{RuleId: "ato.new_device_after_failures", RuleVersion: 3, Action: strings.ToLower(strings.TrimPrefix(outcome.String(), "OUTCOME_")),
				MessageEn: "Signed in from a new device after 6 failed attempts", MessageZh: "在新设备上登录，此前有 6 次失败尝试",
				Expression: "login.success && features.login_failures_account_10m >= 5"},
			{RuleId: "ato.many_failures", RuleVersion: 1, Action: "score", Score: 40,
				MessageEn: "Many failed sign-ins", MessageZh: "多次登录失败"},
		}
		d.ShadowReasons = []*riskv1.Reason{{RuleId: "ato.candidate", RuleVersion: 1, Action: "deny", MessageEn: "Candidate rule", MessageZh: "候选规则"}}
	}
	if ev.GetAttributes()["degraded"] != "" {
		d.Degraded = true
		d.DegradedReason = "budget exceeded"
	}
	return proto.Clone(d).(*riskv1.Decision)
}
