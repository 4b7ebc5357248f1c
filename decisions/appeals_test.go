package decisions

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

var (
	analyst = Actor{ID: "rev-1", Role: "analyst"}
	admin   = Actor{ID: "root", Role: RoleAdmin}
	noRules = func(string) bool { return false }
)

func TestFileAppeal(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 2, "r1")
	other := e.put("bob", 1, "r1")
	long := strings.Repeat("申", MaxStatement) // 4000 characters, 12000 bytes

	tests := []struct {
		name string
		req  FileRequest
		want error
	}{
		{"another subject's decision", FileRequest{DecisionID: other[0].DecisionId, Subject: "alice", Statement: "x"}, ErrNotFound},
		{"no subject", FileRequest{DecisionID: ds[0].DecisionId, Statement: "x"}, ErrNotFound},
		{"unknown decision", FileRequest{DecisionID: NewID(t0), Subject: "alice", Statement: "x"}, ErrNotFound},
		{"malformed id", FileRequest{DecisionID: "../../x", Subject: "alice", Statement: "x"}, ErrNotFound},
		{"empty statement", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice"}, ErrInvalid},
		{"blank statement", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "   "}, ErrInvalid},
		{"statement too long", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: long + "x"}, ErrInvalid},
		{"invalid utf-8", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "\xff"}, ErrInvalid},
		{"contact too long", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "x", Contact: strings.Repeat("c", 257)}, ErrInvalid},
		{"longest statement and contact", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: long, Contact: strings.Repeat("c", 256)}, nil},
		{"second open appeal", FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "again"}, ErrAppealExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := e.log.File(tc.req)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != riskv1.AppealStatus_APPEAL_STATUS_OPEN || a.AccountId != "alice" || a.Statement != tc.req.Statement {
				t.Errorf("appeal = %v", a)
			}
		})
	}
	// Another subject's decision and a missing one are refused alike.
	_, errOther := e.log.File(FileRequest{DecisionID: other[0].DecisionId, Subject: "alice", Statement: "x"})
	_, errNone := e.log.File(FileRequest{DecisionID: "01J0000000000000000000000Z", Subject: "alice", Statement: "x"})
	if strings.Replace(errOther.Error(), other[0].DecisionId, "ID", 1) != strings.Replace(errNone.Error(), "01J0000000000000000000000Z", "ID", 1) {
		t.Errorf("errors differ: %q vs %q", errOther, errNone)
	}
	e.verifyOK()
}

func TestAppealDeadline(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 2)
	e.clock.Advance(DefaultAppealWindow - time.Second)
	if _, err := e.log.File(FileRequest{DecisionID: ds[1].DecisionId, Subject: "alice", Statement: "just in time"}); err != nil {
		t.Fatalf("before deadline: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "late"}); !errors.Is(err, ErrAppealWindowClosed) {
		t.Fatalf("at deadline: err = %v", err)
	}
	// A record without appeal_deadline falls back to decided_at + AppealWindow.
	d := e.decision("zed")
	d.AppealDeadline = nil
	p, _ := e.log.Prepare(d, pseud("zed"))
	if err := e.c.append(p); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultAppealWindow)
	if _, err := e.log.File(FileRequest{DecisionID: d.DecisionId, Subject: "zed", Statement: "late"}); !errors.Is(err, ErrAppealWindowClosed) {
		t.Fatalf("fallback deadline: err = %v", err)
	}
}

func TestGetAppealPermissions(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 1)
	a, err := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "why"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subject string
		want    error
	}{{"alice", nil}, {"", nil}, {"bob", ErrNotFound}} {
		got, err := e.log.GetAppeal(a.AppealId, tc.subject)
		if !errors.Is(err, tc.want) {
			t.Errorf("GetAppeal as %q: err = %v, want %v", tc.subject, err, tc.want)
		}
		if err == nil && !proto.Equal(got, a) {
			t.Errorf("GetAppeal as %q = %v, want %v", tc.subject, got, a)
		}
	}
}

func TestDueAndOverdueList(t *testing.T) {
	e := newEnv(t, Options{})
	var ids []string
	for i := 0; i < 5; i++ {
		ds := e.put("acct", 1, "r1")
		a, err := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "acct", Statement: "please"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := a.DueAt.AsTime().Sub(a.FiledAt.AsTime()), 15*24*time.Hour; got != want {
			t.Fatalf("due - filed = %v, want %v", got, want)
		}
		ids = append(ids, a.AppealId)
		e.clock.Advance(24 * time.Hour) // filed a day apart
	}
	if _, err := e.log.StartReview(ids[1], analyst); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.log.Resolve(ResolveRequest{AppealID: ids[0], Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "rule was right", By: analyst, Authored: noRules}); err != nil {
		t.Fatal(err)
	}
	list := func(f AppealFilter) []string {
		t.Helper()
		as, _, err := e.log.ListAppeals(f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range as {
			s := a.AppealId
			if a.Overdue {
				s += "!"
			}
			out = append(out, s)
		}
		return out
	}
	eq := func(got, want []string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	// Now = t0 + 5 days: nothing overdue.
	eq(list(AppealFilter{OverdueOnly: true}), nil)
	eq(list(AppealFilter{}), ids)
	eq(list(AppealFilter{Status: riskv1.AppealStatus_APPEAL_STATUS_OPEN}), ids[2:])
	eq(list(AppealFilter{Status: riskv1.AppealStatus_APPEAL_STATUS_IN_REVIEW}), ids[1:2])
	// The first appeal was filed at about t0; 15 days later plus a bit the
	// second and third (unresolved) are overdue, the resolved first is not.
	e.clock.Set(t0.Add(15*24*time.Hour + 24*time.Hour + time.Minute))
	eq(list(AppealFilter{OverdueOnly: true}), []string{ids[1] + "!"})
	e.clock.Advance(24 * time.Hour)
	eq(list(AppealFilter{OverdueOnly: true}), []string{ids[1] + "!", ids[2] + "!"})
	eq(list(AppealFilter{}), []string{ids[0], ids[1] + "!", ids[2] + "!", ids[3], ids[4]})
	eq(list(AppealFilter{Status: riskv1.AppealStatus_APPEAL_STATUS_OPEN, OverdueOnly: true}), []string{ids[2] + "!"})
	eq(list(AppealFilter{Status: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, OverdueOnly: true}), nil)
	eq(list(AppealFilter{AccountID: "nobody"}), nil)
	got, err := e.log.GetAppeal(ids[2], "")
	if err != nil || !got.Overdue {
		t.Errorf("GetAppeal overdue = %v, %v", got.GetOverdue(), err)
	}
}

func TestListAppealsPaging(t *testing.T) {
	e := newEnv(t, Options{})
	var want []string
	for i := 0; i < 23; i++ {
		ds := e.put("pager", 1)
		a, err := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "pager", Statement: "s"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, a.AppealId)
		if i%3 == 0 {
			if _, err := e.log.StartReview(a.AppealId, analyst); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, size := range []int{1, 4, 7, 23, 50} {
		var got []string
		tok := ""
		pages := 0
		for {
			as, next, err := e.log.ListAppeals(AppealFilter{PageSize: size, PageToken: tok})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, a := range as {
				got = append(got, a.AppealId)
			}
			if next == "" {
				break
			}
			tok = next
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("size %d: got %v, want %v", size, got, want)
		}
		if wantPages := (23 + size - 1) / size; pages != wantPages {
			t.Errorf("size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	_, tok, _ := e.log.ListAppeals(AppealFilter{PageSize: 2})
	if _, _, err := e.log.ListAppeals(AppealFilter{PageSize: 2, PageToken: tok, OverdueOnly: true}); !errors.Is(err, ErrInvalidPageToken) {
		t.Errorf("token reused with another filter: err = %v", err)
	}
}

func TestResolveTransitions(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 1, "r1")
	a, _ := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "s"})
	bad := []struct {
		name string
		req  ResolveRequest
		want error
	}{
		{"no reason", ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, By: analyst, Authored: noRules}, ErrInvalid},
		{"bad resolution", ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_IN_REVIEW, Reason: "r", By: analyst, Authored: noRules}, ErrInvalid},
		{"remedy on uphold", ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "r", RemedyDays: 3, By: analyst, Authored: noRules}, ErrInvalid},
		{"no actor", ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "r", Authored: noRules}, ErrInvalid},
		{"unknown appeal", ResolveRequest{AppealID: NewID(t0), Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "r", By: analyst, Authored: noRules}, ErrNotFound},
	}
	for _, tc := range bad {
		if _, _, err := e.log.Resolve(tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := e.log.StartReview(a.AppealId, analyst); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.StartReview(a.AppealId, analyst); !errors.Is(err, ErrBadTransition) {
		t.Errorf("second StartReview: %v", err)
	}
	e.clock.Advance(time.Hour)
	got, rem, err := e.log.Resolve(ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "the login came from a new device", By: analyst, Authored: noRules})
	if err != nil || rem != nil {
		t.Fatal(err, rem)
	}
	if got.Status != riskv1.AppealStatus_APPEAL_STATUS_UPHELD || got.ResolutionReason == "" || got.ResolvedBy != "rev-1" || !got.ResolvedAt.AsTime().Equal(e.clock.Now()) {
		t.Errorf("resolved = %v", got)
	}
	var steps []string
	for _, h := range got.History {
		steps = append(steps, statusName(h.From)+">"+statusName(h.To)+":"+h.Role)
	}
	if s := strings.Join(steps, " "); s != "unspecified>open:subject in_review>upheld:analyst" && s != "unspecified>open:subject open>in_review:analyst in_review>upheld:analyst" {
		t.Errorf("history = %s", s)
	}
	if _, err := e.log.StartReview(a.AppealId, analyst); !errors.Is(err, ErrAlreadyResolved) {
		t.Errorf("StartReview after resolve: %v", err)
	}
	// Resolved: a new appeal on the same decision may be filed.
	if _, err := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "again"}); err != nil {
		t.Errorf("refile after resolution: %v", err)
	}
	e.verifyOK()
}

func TestResolveIndependence(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 3, "ato.a", "ato.b")
	authored := func(r string) bool { return r == "ato.b" }
	var as []*riskv1.Appeal
	for _, d := range ds {
		a, err := e.log.File(FileRequest{DecisionID: d.DecisionId, Subject: "alice", Statement: "s"})
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	req := func(a *riskv1.Appeal, by Actor, f func(string) bool) ResolveRequest {
		return ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED, Reason: "r", By: by, Authored: f}
	}
	if _, _, err := e.log.Resolve(req(as[0], analyst, authored)); !errors.Is(err, ErrConflictOfInterest) {
		t.Errorf("author resolving: %v", err)
	}
	if _, _, err := e.log.Resolve(req(as[0], analyst, nil)); !errors.Is(err, ErrConflictOfInterest) {
		t.Errorf("no authorship info: %v", err)
	}
	if _, _, err := e.log.Resolve(req(as[0], admin, authored)); err != nil {
		t.Errorf("admin: %v", err)
	}
	if _, _, err := e.log.Resolve(req(as[1], analyst, noRules)); err != nil {
		t.Errorf("independent analyst: %v", err)
	}
}

func TestConcurrentResolveOneWins(t *testing.T) {
	e := newEnv(t, Options{})
	const appeals, reviewers = 5, 8
	for i := 0; i < appeals; i++ {
		ds := e.put("alice", 1, "r1")
		a, err := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "s"})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, reviewers)
		for r := 0; r < reviewers; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := riskv1.AppealStatus_APPEAL_STATUS_UPHELD
				if r%2 == 1 {
					res = riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED
				}
				_, _, errs[r] = e.log.Resolve(ResolveRequest{AppealID: a.AppealId, Resolution: res, Reason: "r", By: Actor{ID: "rev", Role: "analyst"}, Authored: noRules})
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrAlreadyResolved):
				t.Errorf("loser err = %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d winners, want 1", wins)
		}
		got, _ := e.log.GetAppeal(a.AppealId, "")
		if n := len(got.History); n != 2 {
			t.Errorf("history has %d transitions, want 2", n)
		}
	}
	e.verifyOK()
}

func TestOverturn(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 2, "ato.a", "ato.b")
	e.put("alice", 1, "ato.a")
	before := rawGet(t, e.db, recKey(ds[0].DecisionId))
	a, _ := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "it was me"})
	e.clock.Advance(time.Hour)
	_, rem, err := e.log.Resolve(ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED,
		Reason: "known device", RemedyDays: 7, By: analyst, Authored: noRules})
	if err != nil {
		t.Fatal(err)
	}
	if rem == nil || rem.AccountID != "alice" || rem.AccountPseudonym != pseud("alice") || !rem.Until.Equal(e.clock.Now().Add(7*24*time.Hour)) || len(rem.RuleIDs) != 2 {
		t.Errorf("remedy = %+v", rem)
	}
	if after := rawGet(t, e.db, recKey(ds[0].DecisionId)); string(after) != string(before) {
		t.Error("the original record changed")
	}
	lb, err := e.log.LabelFor(ds[0].DecisionId)
	if err != nil || lb.Kind != LabelFalsePositive || lb.Source != "appeal" {
		t.Errorf("label = %+v, %v", lb, err)
	}
	// The chain's last entries: appeal transition, overturn (linked), label.
	h := e.log.Head()
	var kinds []string
	for s := h.Seq - 2; s <= h.Seq; s++ {
		ent, err := decodeEntry(rawGet(t, e.db, chainKey(s)))
		if err != nil {
			t.Fatal(err)
		}
		if refString(ent.ref) != ds[0].DecisionId {
			t.Errorf("entry %d links %s", s, refString(ent.ref))
		}
		kinds = append(kinds, ent.kind.String())
	}
	if strings.Join(kinds, ",") != "appeal,overturn,label" {
		t.Errorf("tail kinds = %v", kinds)
	}
	want := map[string]int{"ato.a": 1, "ato.b": 1}
	if got := e.log.OverturnsByRule(); len(got) != 2 || got["ato.a"] != 1 || got["ato.b"] != 1 {
		t.Errorf("OverturnsByRule = %v, want %v", got, want)
	}
	e.reopen()
	if got := e.log.OverturnsByRule(); len(got) != 2 || got["ato.a"] != 1 || got["ato.b"] != 1 {
		t.Errorf("after restart OverturnsByRule = %v, want %v", got, want)
	}
	e.verifyOK()
}

func TestNoCommitter(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 1)
	l, err := Open(e.db, Options{Clock: e.clock, Logger: e.log.opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "s"}); !errors.Is(err, ErrNoCommitter) {
		t.Errorf("err = %v", err)
	}
}

func TestSubjectAppealView(t *testing.T) {
	e := newEnv(t, Options{})
	ds := e.put("alice", 1, "r1")
	a, _ := e.log.File(FileRequest{DecisionID: ds[0].DecisionId, Subject: "alice", Statement: "s"})
	a, _, err := e.log.Resolve(ResolveRequest{AppealID: a.AppealId, Resolution: riskv1.AppealStatus_APPEAL_STATUS_UPHELD, Reason: "checked", By: analyst, Authored: noRules})
	if err != nil {
		t.Fatal(err)
	}
	v := SubjectAppealView(a)
	if v.ResolvedBy != "" || v.History[1].Actor != "" || v.History[1].Role != "analyst" || v.ResolutionReason != "checked" {
		t.Errorf("view = %v", v)
	}
	if a.ResolvedBy == "" {
		t.Error("view changed its input")
	}
}

func TestOptionsValidate(t *testing.T) {
	e := newEnv(t, Options{})
	if _, err := Open(e.db, Options{AppealDue: -time.Hour}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative AppealDue: %v", err)
	}
	o := e.log.Options()
	if o.AppealWindow != 30*24*time.Hour || o.AppealDue != 15*24*time.Hour {
		t.Errorf("defaults = %v %v", o.AppealWindow, o.AppealDue)
	}
}
