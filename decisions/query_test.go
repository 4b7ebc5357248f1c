package decisions

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

func TestListByAccountPaging(t *testing.T) {
	e := newEnv(t, Options{})
	var mine []string
	for i := 0; i < 17; i++ {
		mine = append(mine, e.put("alice", 1)[0].DecisionId)
		e.put("alicf", 1) // a neighbouring pseudonym must not leak in
	}
	// Newest first.
	want := make([]string, len(mine))
	for i, id := range mine {
		want[len(mine)-1-i] = id
	}
	for _, size := range []int{1, 5, 16, 17, 100} {
		var got []string
		tok := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			ds, next, err := e.log.ListByAccount(pseud("alice"), size, tok)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) > size {
				t.Fatalf("page of %d > %d", len(ds), size)
			}
			for _, d := range ds {
				got = append(got, d.DecisionId)
			}
			if next == "" {
				break
			}
			tok = next
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("size %d: got %v\nwant %v", size, got, want)
		}
	}
	ds, next, err := e.log.ListByAccount(pseud("nobody"), 10, "")
	if err != nil || len(ds) != 0 || next != "" {
		t.Errorf("empty account: %v %q %v", ds, next, err)
	}
}

func TestPageTokenRejected(t *testing.T) {
	e := newEnv(t, Options{})
	e.put("alice", 3)
	e.put("bob", 3)
	_, aliceTok, err := e.log.ListByAccount(pseud("alice"), 1, "")
	if err != nil || aliceTok == "" {
		t.Fatal(err)
	}
	_, appealTok := "", encodeToken(tokenAppeals, make([]byte, 24), binding("appeals", "x"))
	raw, _ := base64.RawURLEncoding.DecodeString(aliceTok)
	short := base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1])
	tests := []struct{ name, tok string }{
		{"garbage", "!!!"},
		{"padded base64", aliceTok + "=="},
		{"empty payload", "AQ"},
		{"truncated", short},
		{"another account's token", aliceTok},
		{"an appeals token", appealTok},
		{"huge", strings.Repeat("A", 4096)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.log.ListByAccount(pseud("bob"), 1, tc.tok)
			var pe *PageTokenError
			if !errors.Is(err, ErrInvalidPageToken) || !errors.As(err, &pe) {
				t.Errorf("err = %v, want *PageTokenError", err)
			}
		})
	}
}

// FuzzDecisionsPageToken: decoding never panics, accepts only what it
// issued, and what it accepts re-encodes to the same token.
func FuzzDecisionsPageToken(f *testing.F) {
	id := ulid.MustParseStrict("01HZY7Q5G0000000000000000A")
	f.Add(encodeToken(tokenDecisions, id[:], binding("decisions", "p:a")), "p:a")
	f.Add(encodeToken(tokenAppeals, make([]byte, 24), binding("appeals")), "p:a")
	f.Add("", "")
	f.Add("AQ", "x")
	f.Add("%%%", "p")
	f.Fuzz(func(t *testing.T, tok, account string) {
		got, err := decodeDecisionsToken(tok, account)
		if err != nil {
			if !errors.Is(err, ErrInvalidPageToken) {
				t.Fatalf("error %v is not ErrInvalidPageToken", err)
			}
			return
		}
		if re := encodeToken(tokenDecisions, got[:], binding("decisions", account)); re != tok {
			t.Fatalf("accepted %q, re-encodes to %q", tok, re)
		}
		if _, err := decodeToken(tok, tokenAppeals, 24, binding("appeals", account)); err == nil {
			t.Fatalf("decisions token %q accepted as an appeals token", tok)
		}
	})
}

func TestSubjectView(t *testing.T) {
	e := newEnv(t, Options{})
	d := e.decision("alice", "ato.a")
	d.Degraded = true
	d.DegradedReason = "store timeout"
	v := SubjectView(d)
	want := &riskv1.Decision{
		DecisionId: d.DecisionId, AccountId: "alice", Outcome: d.Outcome,
		DecidedAt: d.DecidedAt, AppealDeadline: d.AppealDeadline, DataCategories: d.DataCategories,
		FullyAutomated: true, Degraded: true, EventType: d.EventType,
		Reasons: []*riskv1.Reason{{RuleId: "ato.a", RuleVersion: 2, Action: "challenge", MessageEn: d.Reasons[0].MessageEn, MessageZh: d.Reasons[0].MessageZh}},
	}
	if !proto.Equal(v, want) {
		t.Errorf("SubjectView =\n%v\nwant\n%v", v, want)
	}
	if d.Reasons[0].Expression == "" || d.Features == nil {
		t.Error("SubjectView modified its input")
	}
	if SubjectView(nil) != nil {
		t.Error("SubjectView(nil) != nil")
	}
}

func TestSearch(t *testing.T) {
	e := newEnv(t, Options{})
	a := e.put("a", 3, "r.one")
	e.clock.Advance(time.Hour)
	mid := e.clock.Now()
	b := e.put("b", 2, "r.two")
	deny := e.decision("c")
	deny.Outcome = riskv1.Outcome_OUTCOME_DENY
	p, _ := e.log.Prepare(deny, pseud("c"))
	_ = e.c.append(p)
	ids := func(ds []*riskv1.Decision) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.DecisionId)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name string
		f    SearchFilter
		want []*riskv1.Decision
	}{
		{"by rule", SearchFilter{RuleID: "r.one"}, []*riskv1.Decision{a[2], a[1], a[0]}},
		{"by shadow rule and limit", SearchFilter{RuleID: "shadow.x", Limit: 2}, []*riskv1.Decision{deny, b[1]}},
		{"by outcome", SearchFilter{Outcome: riskv1.Outcome_OUTCOME_DENY}, []*riskv1.Decision{deny}},
		{"by time", SearchFilter{From: mid, RuleID: "r.two"}, []*riskv1.Decision{b[1], b[0]}},
		{"before", SearchFilter{To: mid}, []*riskv1.Decision{a[2], a[1], a[0]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.log.Search(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != ids(tc.want) {
				t.Errorf("got %s\nwant %s", ids(got), ids(tc.want))
			}
		})
	}
}

func TestLabels(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 2)
	if _, err := e.log.PutLabel(Label{Kind: LabelChargeback, DecisionID: ds[0].DecisionId, Source: "payments"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.PutLabel(Label{Kind: LabelConfirmedFraud, EventID: ds[1].EventId, Source: "payments"}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []LabelKind{LabelChargeback, LabelConfirmedFraud} {
		lb, err := e.log.LabelFor(ds[i].DecisionId)
		if err != nil || lb.Kind != want || !lb.At.Equal(e.clock.Now()) {
			t.Errorf("LabelFor(%d) = %+v, %v; want %s", i, lb, err, want)
		}
	}
	more := e.put("alice", 1)
	if _, err := e.log.LabelFor(more[0].DecisionId); !errors.Is(err, ErrNotFound) {
		t.Errorf("unlabelled: %v", err)
	}
	for _, bad := range []Label{
		{Kind: "spam", DecisionID: ds[0].DecisionId},
		{Kind: LabelChargeback},
		{Kind: LabelChargeback, DecisionID: ds[0].DecisionId, EventID: "e"},
	} {
		if _, err := e.log.PutLabel(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutLabel(%+v) err = %v", bad, err)
		}
	}
	if _, err := e.log.PutLabel(Label{Kind: LabelChargeback, DecisionID: NewID(t0)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown decision: %v", err)
	}
	n := 0
	if err := e.log.Labels(func(Label) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("Labels: %d, %v", n, err)
	}
	e.verifyOK()
}

func TestExportSubject(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 2, "r1")
	e.put("bob", 2, "r1")
	if _, err := e.log.File(FileRequest{DecisionID: ds[1].DecisionId, Subject: "alice", Statement: "我没有"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.PutLabel(Label{Kind: LabelChargeback, DecisionID: ds[0].DecisionId, Source: "pay"}); err != nil {
		t.Fatal(err)
	}
	b, err := e.log.ExportSubject(pseud("alice"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Decisions []struct {
			DecisionID string `json:"decisionId"`
			AccountID  string `json:"accountId"`
		} `json:"decisions"`
		Appeals []struct {
			Statement string `json:"statement"`
		} `json:"appeals"`
		Labels []Label `json:"labels"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Decisions) != 2 || doc.Decisions[0].DecisionID != ds[1].DecisionId || doc.Decisions[1].AccountID != "alice" {
		t.Errorf("decisions = %+v", doc.Decisions)
	}
	if len(doc.Appeals) != 1 || doc.Appeals[0].Statement != "我没有" || len(doc.Labels) != 1 {
		t.Errorf("appeals = %+v labels = %+v", doc.Appeals, doc.Labels)
	}
	if strings.Contains(string(b), "bob") {
		t.Error("export mentions another account")
	}
}

func TestNewIDOrderedAndUnique(t *testing.T) {
	const goroutines, each = 8, 500
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	now := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := ""
			for i := 0; i < each; i++ {
				id := NewID(now)
				if id <= prev {
					t.Errorf("%s not after %s", id, prev)
				}
				prev = id
				mu.Lock()
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Errorf("%d unique of %d", len(seen), goroutines*each)
	}
	if a, b := NewID(t0), NewID(t0.Add(time.Millisecond)); a >= b {
		t.Errorf("later time sorts first: %s %s", a, b)
	}
}

func TestGetForSubject(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 1, "r1")
	v, err := e.log.GetForSubject(ds[0].DecisionId, "alice")
	if err != nil || !proto.Equal(v, SubjectView(ds[0])) {
		t.Errorf("own: %v, %v", v, err)
	}
	for _, who := range []string{"bob", ""} {
		if _, err := e.log.GetForSubject(ds[0].DecisionId, who); !errors.Is(err, ErrNotFound) {
			t.Errorf("as %q: err = %v", who, err)
		}
	}
}

func TestServiceView(t *testing.T) {
	e := newEnv(t, Options{})
	d := e.decision("alice", "ato.a")
	d.Degraded = true
	d.DegradedReason = "store timeout"
	d.Latency = durationpb.New(3 * time.Millisecond)
	d.Event = &riskv1.Event{EventId: d.EventId, AccountId: "pseudonym"}
	d.Reasons[0].Expression = "features.x > 1"
	orig := proto.Clone(d)
	v := ServiceView(d)
	if v.GetEvent() != nil || v.GetLatency() != nil || v.GetDegradedReason() != "" || v.GetReasons()[0].GetExpression() != "" {
		t.Errorf("service view keeps analysts-only fields: %v", v)
	}
	// Everything else is the record's.
	back := proto.Clone(v).(*riskv1.Decision)
	back.Event, back.Latency, back.DegradedReason = d.Event, d.Latency, d.DegradedReason
	for i, r := range d.Reasons {
		back.Reasons[i].Expression = r.Expression
	}
	for i, r := range d.ShadowReasons {
		if back.ShadowReasons[i].Expression != "" {
			t.Errorf("shadow reason %d keeps its expression", i)
		}
		back.ShadowReasons[i].Expression = r.Expression
	}
	if !proto.Equal(back, d) {
		t.Errorf("service view lost fields:\n%v\nwant\n%v", back, d)
	}
	if !proto.Equal(d, orig) {
		t.Error("ServiceView changed the decision it was given")
	}
	// ServiceView copies field by field: a field added to Decision must be
	// placed here, kept or withheld, before this passes.
	placed := map[string]bool{
		"decision_id": true, "event_id": true, "account_id": true, "outcome": true, "score": true,
		"reasons": true, "shadow_reasons": true, "features": true, "ruleset_version": true,
		"decided_at": true, "appeal_deadline": true, "degraded": true, "data_categories": true,
		"fully_automated": true, "event_type": true, "occurred_at": true,
		"event": false, "latency": false, "degraded_reason": false, // analysts only
	}
	fields := d.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if _, ok := placed[string(fields.Get(i).Name())]; !ok {
			t.Errorf("Decision.%s is new: decide whether ServiceView keeps it", fields.Get(i).Name())
		}
	}
}
