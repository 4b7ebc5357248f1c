package decisions

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
)

// Bounds on appeal text, in characters (runes).
const (
	MaxStatement    = 4000
	MaxContact      = 256
	MaxReason       = 4000
	MaxRemedyDays   = 365
	RoleAdmin       = "admin"
	RoleSubject     = "subject"
	actorSubjectTag = "subject"
)

// Actor is who changes an appeal: a reviewer's identity and role.
type Actor struct {
	ID   string
	Role string // "analyst", "admin", ...
}

// AppealEntry is the chain record of one appeal status change. It carries
// digests of free text, not the text, so that the permanent chain holds no
// statement or reason a subject could ask to erase.
type AppealEntry struct {
	AppealID     string    `json:"appeal_id"`
	DecisionID   string    `json:"decision_id"`
	From         string    `json:"from"`
	To           string    `json:"to"`
	Actor        string    `json:"actor"`
	Role         string    `json:"role"`
	ReasonSHA256 string    `json:"reason_sha256,omitempty"`
	At           time.Time `json:"at"`
}

// OverturnEntry is the chain record linking an overturn to its decision.
type OverturnEntry struct {
	AppealID     string    `json:"appeal_id"`
	DecisionID   string    `json:"decision_id"`
	RuleIDs      []string  `json:"rule_ids"`
	Actor        string    `json:"actor"`
	Role         string    `json:"role"`
	ReasonSHA256 string    `json:"reason_sha256"`
	RemedyDays   int       `json:"remedy_days,omitempty"`
	At           time.Time `json:"at"`
}

// Remedy is what an overturn asks the caller to apply: put the account on
// the allowed list until Until, so the same rules do not hit it meanwhile.
type Remedy struct {
	AccountID        string    // the decision's account_id
	AccountPseudonym string    // as indexed by the log
	Days             int       // as requested
	Until            time.Time // resolved_at + Days
	RuleIDs          []string  // the rules that fired
	AppealID         string
	DecisionID       string
}

// FileRequest is a subject's appeal.
type FileRequest struct {
	DecisionID string
	// Subject is the authenticated subject's account id; it must equal the
	// decision's account_id, or the decision is ErrNotFound to them.
	Subject   string
	Statement string // 1..4000 characters
	Contact   string // optional, up to 256 characters
}

// ResolveRequest resolves an appeal.
type ResolveRequest struct {
	AppealID   string
	Resolution riskv1.AppealStatus // UPHELD or OVERTURNED
	Reason     string              // required; the subject sees it
	RemedyDays int                 // OVERTURNED only: allow-list the account this long (0: none)
	By         Actor
	// Authored reports whether the reviewer authored or last changed the
	// rule. Required unless By.Role is admin: without it independence cannot
	// be checked and Resolve refuses.
	Authored func(ruleID string) bool
}

// AppealFilter selects appeals for ListAppeals.
type AppealFilter struct {
	Status      riskv1.AppealStatus // UNSPECIFIED: all
	OverdueOnly bool                // unresolved and past due
	AccountID   string              // only this account's appeals (subjects: their own)
	PageSize    int
	PageToken   string
}

func (l *Log) stripe(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &l.locks[h.Sum32()%uint32(len(l.locks))]
}

func appealKey(id ulid.ULID) []byte { return append([]byte{keys.Appeal}, id[:]...) }

// dueKey is AppealByDue | status | due time | appeal ULID: per status, oldest due first.
func dueKey(st riskv1.AppealStatus, due time.Time, id ulid.ULID) []byte {
	k := make([]byte, 0, 26)
	k = append(k, keys.AppealByDue, byte(st))
	k = keys.AppendTime(k, due.UnixNano())
	return append(k, id[:]...)
}

func byDecisionKey(dec, app ulid.ULID) []byte {
	k := append([]byte{keys.AppealByDecision}, dec[:]...)
	return append(k, app[:]...)
}

func resolved(st riskv1.AppealStatus) bool {
	return st == riskv1.AppealStatus_APPEAL_STATUS_UPHELD || st == riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED
}

func statusName(st riskv1.AppealStatus) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "APPEAL_STATUS_"))
}

func textDigest(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func checkText(field, s string, minRunes, maxRunes int) error {
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Reason: "not valid UTF-8"}
	}
	n := utf8.RuneCountInString(s)
	if n < minRunes || n > maxRunes {
		return &FieldError{Field: field, Reason: fmt.Sprintf("must be %d to %d characters, got %d", minRunes, maxRunes, n)}
	}
	return nil
}

func (l *Log) readAppeal(id ulid.ULID) (*riskv1.Appeal, error) {
	v, c, err := l.db.Get(appealKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("appeal %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("decisions: appeal %s: %w", id, err)
	}
	defer c.Close()
	a := &riskv1.Appeal{}
	if err := proto.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("decisions: decode appeal %s: %w", id, err)
	}
	return a, nil
}

func (l *Log) withOverdue(a *riskv1.Appeal, now time.Time) *riskv1.Appeal {
	a.Overdue = !resolved(a.GetStatus()) && now.After(a.GetDueAt().AsTime())
	return a
}

// appealsForDecision returns every appeal on a decision, oldest first.
func (l *Log) appealsForDecision(decisionID string) ([]*riskv1.Appeal, error) {
	dec, err := ulid.ParseStrict(decisionID)
	if err != nil {
		return nil, nil
	}
	prefix := append([]byte{keys.AppealByDecision}, dec[:]...)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("decisions: appeals of %s: %w", decisionID, err)
	}
	defer it.Close()
	now := l.opts.Clock.Now()
	var out []*riskv1.Appeal
	for ok := it.First(); ok; ok = it.Next() {
		var id ulid.ULID
		copy(id[:], it.Key()[17:])
		a, err := l.readAppeal(id)
		if err != nil {
			return nil, err
		}
		out = append(out, l.withOverdue(a, now))
	}
	return out, it.Error()
}

// File records a subject's appeal on their own decision: status OPEN, due
// AppealDue after filing. Someone else's decision is ErrNotFound.
func (l *Log) File(req FileRequest) (*riskv1.Appeal, error) {
	if err := checkText("statement", req.Statement, 1, MaxStatement); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Statement) == "" {
		return nil, &FieldError{Field: "statement", Reason: "blank"}
	}
	if err := checkText("contact", req.Contact, 0, MaxContact); err != nil {
		return nil, err
	}
	mu := l.stripe(req.DecisionID)
	mu.Lock()
	defer mu.Unlock()
	d, err := l.Get(req.DecisionID)
	if err != nil {
		return nil, err
	}
	if req.Subject == "" || d.GetAccountId() != req.Subject {
		// Indistinguishable from a missing decision: reveals nothing.
		return nil, fmt.Errorf("decision %s: %w", req.DecisionID, ErrNotFound)
	}
	now := l.opts.Clock.Now().UTC()
	deadline := d.GetDecidedAt().AsTime().Add(l.opts.AppealWindow)
	if d.GetAppealDeadline() != nil {
		deadline = d.GetAppealDeadline().AsTime()
	}
	if !now.Before(deadline) {
		return nil, fmt.Errorf("decision %s (deadline %s): %w", req.DecisionID, deadline.Format(time.RFC3339), ErrAppealWindowClosed)
	}
	prior, err := l.appealsForDecision(req.DecisionID)
	if err != nil {
		return nil, err
	}
	for _, p := range prior {
		if !resolved(p.GetStatus()) {
			return nil, fmt.Errorf("decision %s has appeal %s: %w", req.DecisionID, p.GetAppealId(), ErrAppealExists)
		}
	}
	aid := ulid.MustParseStrict(NewID(now))
	did := ulid.MustParseStrict(d.GetDecisionId())
	due := now.Add(l.opts.AppealDue)
	a := &riskv1.Appeal{
		AppealId:   aid.String(),
		DecisionId: d.GetDecisionId(),
		AccountId:  d.GetAccountId(),
		Status:     riskv1.AppealStatus_APPEAL_STATUS_OPEN,
		Statement:  req.Statement,
		Contact:    req.Contact,
		FiledAt:    timestamppb.New(now),
		DueAt:      timestamppb.New(due),
		History: []*riskv1.AppealTransition{{
			From: riskv1.AppealStatus_APPEAL_STATUS_UNSPECIFIED, To: riskv1.AppealStatus_APPEAL_STATUS_OPEN,
			Role: RoleSubject, At: timestamppb.New(now),
		}},
	}
	ent := AppealEntry{AppealID: a.AppealId, DecisionID: a.DecisionId, From: "unspecified", To: "open", Actor: actorSubjectTag, Role: RoleSubject, At: now}
	err = l.commit(func(b *pebble.Batch) error {
		if err := l.putAppeal(b, a, aid); err != nil {
			return err
		}
		if err := b.Set(dueKey(a.Status, due, aid), nil, nil); err != nil {
			return err
		}
		if err := b.Set(byDecisionKey(did, aid), nil, nil); err != nil {
			return err
		}
		return l.appendJSON(b, KindAppeal, a.DecisionId, ent)
	})
	if err != nil {
		return nil, fmt.Errorf("decisions: file appeal on %s: %w", req.DecisionID, err)
	}
	return l.withOverdue(a, now), nil
}

func (l *Log) putAppeal(b *pebble.Batch, a *riskv1.Appeal, id ulid.ULID) error {
	stored := proto.Clone(a).(*riskv1.Appeal)
	stored.Overdue = false // computed on read
	v, err := marshalOpts.Marshal(stored)
	if err != nil {
		return fmt.Errorf("decisions: marshal appeal: %w", err)
	}
	return b.Set(appealKey(id), v, nil)
}

func (l *Log) appendJSON(b *pebble.Batch, kind Kind, decisionID string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("decisions: %s entry: %w", kind, err)
	}
	_, err = l.AppendEntry(b, kind, decisionID, body)
	return err
}

// GetAppeal returns an appeal with its history. subject non-empty restricts
// it to that account's own appeals (another's is ErrNotFound).
func (l *Log) GetAppeal(id, subject string) (*riskv1.Appeal, error) {
	aid, err := ulid.ParseStrict(id)
	if err != nil {
		return nil, fmt.Errorf("appeal %q: %w", id, ErrNotFound)
	}
	a, err := l.readAppeal(aid)
	if err != nil {
		return nil, err
	}
	if subject != "" && a.GetAccountId() != subject {
		return nil, fmt.Errorf("appeal %q: %w", id, ErrNotFound)
	}
	return l.withOverdue(a, l.opts.Clock.Now()), nil
}

// transition moves an appeal under its lock; check validates the current
// state, and extra adds writes into the same batch.
func (l *Log) transition(id string, to riskv1.AppealStatus, by Actor, reason string,
	check func(a *riskv1.Appeal) error, extra func(b *pebble.Batch, a *riskv1.Appeal, now time.Time) error) (*riskv1.Appeal, time.Time, error) {
	aid, err := ulid.ParseStrict(id)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("appeal %q: %w", id, ErrNotFound)
	}
	mu := l.stripe(id)
	mu.Lock()
	defer mu.Unlock()
	a, err := l.readAppeal(aid)
	if err != nil {
		return nil, time.Time{}, err
	}
	if resolved(a.GetStatus()) {
		return nil, time.Time{}, fmt.Errorf("appeal %s is %s: %w", id, statusName(a.GetStatus()), ErrAlreadyResolved)
	}
	if err := check(a); err != nil {
		return nil, time.Time{}, err
	}
	now := l.opts.Clock.Now().UTC()
	from := a.GetStatus()
	oldDue := dueKey(from, a.GetDueAt().AsTime(), aid)
	a.Status = to
	a.History = append(a.History, &riskv1.AppealTransition{From: from, To: to, Actor: by.ID, Role: by.Role, Reason: reason, At: timestamppb.New(now)})
	if resolved(to) {
		a.ResolvedAt = timestamppb.New(now)
		a.ResolutionReason = reason
		a.ResolvedBy = by.ID
	}
	ent := AppealEntry{AppealID: a.AppealId, DecisionID: a.DecisionId, From: statusName(from), To: statusName(to),
		Actor: by.ID, Role: by.Role, ReasonSHA256: textDigest(reason), At: now}
	err = l.commit(func(b *pebble.Batch) error {
		if err := l.putAppeal(b, a, aid); err != nil {
			return err
		}
		if err := b.Delete(oldDue, nil); err != nil {
			return err
		}
		if err := b.Set(dueKey(to, a.GetDueAt().AsTime(), aid), nil, nil); err != nil {
			return err
		}
		if err := l.appendJSON(b, KindAppeal, a.DecisionId, ent); err != nil {
			return err
		}
		if extra != nil {
			return extra(b, a, now)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("decisions: appeal %s to %s: %w", id, statusName(to), err)
	}
	return l.withOverdue(a, now), now, nil
}

// SubjectAppealView is an appeal as its subject sees it: everything but the
// reviewers' identities (their roles stay).
func SubjectAppealView(a *riskv1.Appeal) *riskv1.Appeal {
	if a == nil {
		return nil
	}
	v := proto.Clone(a).(*riskv1.Appeal)
	v.ResolvedBy = ""
	for _, h := range v.History {
		h.Actor = ""
	}
	return v
}

// StartReview moves an open appeal to in_review.
func (l *Log) StartReview(appealID string, by Actor) (*riskv1.Appeal, error) {
	if by.ID == "" {
		return nil, &FieldError{Field: "actor", Reason: "missing"}
	}
	a, _, err := l.transition(appealID, riskv1.AppealStatus_APPEAL_STATUS_IN_REVIEW, by, "", func(a *riskv1.Appeal) error {
		if a.GetStatus() != riskv1.AppealStatus_APPEAL_STATUS_OPEN {
			return fmt.Errorf("appeal %s is %s: %w", appealID, statusName(a.GetStatus()), ErrBadTransition)
		}
		return nil
	}, nil)
	return a, err
}

// Resolve upholds or overturns an open or in-review appeal, with a written
// reason. Of two concurrent resolutions exactly one wins; the other gets
// ErrAlreadyResolved. A non-admin reviewer who authored or last changed a
// rule that fired in the decision gets ErrConflictOfInterest. Overturning
// appends an overturn entry linked to the (unchanged) decision, labels it a
// false positive, counts it against its rules, and returns the remedy to
// apply when RemedyDays > 0.
func (l *Log) Resolve(req ResolveRequest) (*riskv1.Appeal, *Remedy, error) {
	overturn := req.Resolution == riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED
	if !overturn && req.Resolution != riskv1.AppealStatus_APPEAL_STATUS_UPHELD {
		return nil, nil, &FieldError{Field: "resolution", Reason: "must be UPHELD or OVERTURNED"}
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, nil, &FieldError{Field: "reason", Reason: "a resolution needs a written reason"}
	}
	if err := checkText("reason", req.Reason, 1, MaxReason); err != nil {
		return nil, nil, err
	}
	if req.By.ID == "" {
		return nil, nil, &FieldError{Field: "actor", Reason: "missing"}
	}
	if req.RemedyDays < 0 || req.RemedyDays > MaxRemedyDays || (!overturn && req.RemedyDays != 0) {
		return nil, nil, &FieldError{Field: "remedy_days", Reason: fmt.Sprintf("0..%d, and only when overturning", MaxRemedyDays)}
	}
	var d *riskv1.Decision
	var rec record
	var rules []string
	check := func(a *riskv1.Appeal) error {
		var err error
		d, rec, err = l.getRecord(l.db, a.GetDecisionId())
		if err != nil {
			return err
		}
		rules = firedRules(d)
		if req.By.Role == RoleAdmin {
			return nil
		}
		if req.Authored == nil {
			return fmt.Errorf("no rule authorship to check against: %w", ErrConflictOfInterest)
		}
		for _, r := range rules {
			if req.Authored(r) {
				return fmt.Errorf("rule %s: %w", r, ErrConflictOfInterest)
			}
		}
		return nil
	}
	var extra func(b *pebble.Batch, a *riskv1.Appeal, now time.Time) error
	if overturn {
		extra = func(b *pebble.Batch, a *riskv1.Appeal, now time.Time) error {
			ov := OverturnEntry{AppealID: a.AppealId, DecisionID: a.DecisionId, RuleIDs: rules, Actor: req.By.ID, Role: req.By.Role,
				ReasonSHA256: textDigest(req.Reason), RemedyDays: req.RemedyDays, At: now}
			if err := l.appendJSON(b, KindOverturn, a.DecisionId, ov); err != nil {
				return err
			}
			return l.AppendLabel(b, Label{Kind: LabelFalsePositive, DecisionID: a.DecisionId, Source: "appeal", At: now})
		}
	}
	a, now, err := l.transition(req.AppealID, req.Resolution, req.By, req.Reason, check, extra)
	if err != nil {
		return nil, nil, err
	}
	if !overturn {
		return a, nil, nil
	}
	l.statsMu.Lock()
	for _, r := range rules {
		l.overturns[r]++
	}
	l.statsMu.Unlock()
	l.opts.Logger.Info("decisions: decision overturned", "decision", a.DecisionId, "appeal", a.AppealId, "rules", rules)
	if req.RemedyDays == 0 {
		return a, nil, nil
	}
	return a, &Remedy{
		AccountID: d.GetAccountId(), AccountPseudonym: rec.pseud, Days: req.RemedyDays,
		Until: now.Add(time.Duration(req.RemedyDays) * 24 * time.Hour), RuleIDs: rules,
		AppealID: a.AppealId, DecisionID: a.DecisionId,
	}, nil
}

// firedRules returns the distinct active rules that fired in d.
func firedRules(d *riskv1.Decision) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range d.GetReasons() {
		if id := r.GetRuleId(); id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// OverturnsByRule returns, per rule id, how many decisions it fired in were
// overturned on appeal. A copy; cheap.
func (l *Log) OverturnsByRule() map[string]int {
	l.statsMu.Lock()
	defer l.statsMu.Unlock()
	out := make(map[string]int, len(l.overturns))
	for k, v := range l.overturns {
		out[k] = v
	}
	return out
}

// loadOverturns rebuilds the per-rule overturn counts from the overturned
// appeals (few, next to decisions).
func (l *Log) loadOverturns() error {
	lo := []byte{keys.AppealByDue, byte(riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED)}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: keys.PrefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("decisions: load overturns: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 26 {
			continue
		}
		var id ulid.ULID
		copy(id[:], k[10:])
		a, err := l.readAppeal(id)
		if err != nil {
			return err
		}
		d, err := l.Get(a.GetDecisionId())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, r := range firedRules(d) {
			l.overturns[r]++
		}
	}
	return it.Error()
}

// ListAppeals lists appeals oldest due first (ties by id), with overdue ones
// flagged from the clock, a page at a time.
func (l *Log) ListAppeals(f AppealFilter) ([]*riskv1.Appeal, string, error) {
	pageSize := clampPage(f.PageSize)
	statuses := []riskv1.AppealStatus{f.Status}
	if f.Status == riskv1.AppealStatus_APPEAL_STATUS_UNSPECIFIED {
		statuses = []riskv1.AppealStatus{
			riskv1.AppealStatus_APPEAL_STATUS_OPEN, riskv1.AppealStatus_APPEAL_STATUS_IN_REVIEW,
			riskv1.AppealStatus_APPEAL_STATUS_UPHELD, riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED,
		}
	} else if _, ok := riskv1.AppealStatus_name[int32(f.Status)]; !ok {
		return nil, "", &FieldError{Field: "status", Reason: "unknown"}
	}
	bind := binding("appeals", f.Status.String(), fmt.Sprint(f.OverdueOnly), f.AccountID)
	var after []byte // due (8) || id (16) of the last appeal returned
	if f.PageToken != "" {
		p, err := decodeToken(f.PageToken, tokenAppeals, 24, bind)
		if err != nil {
			return nil, "", err
		}
		after = p
	}
	now := l.opts.Clock.Now()
	var curs []*pebble.Iterator
	defer func() {
		for _, it := range curs {
			it.Close()
		}
	}()
	for _, st := range statuses {
		if f.OverdueOnly && resolved(st) {
			continue
		}
		prefix := []byte{keys.AppealByDue, byte(st)}
		lower := prefix
		if after != nil {
			lower = append(append(append([]byte(nil), prefix...), after...), 0)
		}
		it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			return nil, "", fmt.Errorf("decisions: list appeals: %w", err)
		}
		curs = append(curs, it)
		it.First()
	}
	var out []*riskv1.Appeal
	var last []byte
	more := false
	for {
		// Merge the per-status streams by (due, id).
		var best *pebble.Iterator
		for _, it := range curs {
			if it.Valid() && len(it.Key()) == 26 && (best == nil || bytes.Compare(it.Key()[2:], best.Key()[2:]) < 0) {
				best = it
			}
		}
		if best == nil {
			break
		}
		k := best.Key()
		if f.OverdueOnly && !now.After(time.Unix(0, keys.Time(k[2:10]))) {
			break // sorted by due: nothing later is overdue
		}
		if len(out) == pageSize {
			more = true
			break
		}
		var id ulid.ULID
		copy(id[:], k[10:])
		suffix := append([]byte(nil), k[2:]...)
		best.Next()
		a, err := l.readAppeal(id)
		if err != nil {
			return nil, "", err
		}
		if f.AccountID != "" && a.GetAccountId() != f.AccountID {
			continue
		}
		out = append(out, l.withOverdue(a, now))
		last = suffix
	}
	for _, it := range curs {
		if err := it.Error(); err != nil {
			return nil, "", fmt.Errorf("decisions: list appeals: %w", err)
		}
	}
	if !more || last == nil {
		return out, "", nil
	}
	return out, encodeToken(tokenAppeals, last, bind), nil
}
