package decisions

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/keys"
)

// Page sizes for the list calls.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

func clampPage(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// Get returns the stored decision (the redacted record after an erasure).
func (l *Log) Get(id string) (*riskv1.Decision, error) {
	d, _, err := l.getRecord(l.db, id)
	return d, err
}

// GetForSubject returns SubjectView of the decision if it is about subject
// (compared with the record's account_id); otherwise ErrNotFound, exactly as
// for a decision that does not exist.
func (l *Log) GetForSubject(id, subject string) (*riskv1.Decision, error) {
	d, err := l.Get(id)
	if err != nil {
		return nil, err
	}
	if subject == "" || d.GetAccountId() != subject {
		return nil, fmt.Errorf("decision %s: %w", id, ErrNotFound)
	}
	return SubjectView(d), nil
}

func (l *Log) getRecord(r pebble.Reader, id string) (*riskv1.Decision, record, error) {
	uid, err := ulid.ParseStrict(id)
	if err != nil {
		return nil, record{}, fmt.Errorf("decision %q: %w", id, ErrNotFound)
	}
	return l.getByULID(r, uid)
}

func (l *Log) getByULID(r pebble.Reader, id ulid.ULID) (*riskv1.Decision, record, error) {
	v, c, err := r.Get(decisionKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, record{}, fmt.Errorf("decision %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, record{}, fmt.Errorf("decisions: get %s: %w", id, err)
	}
	defer c.Close()
	rec, err := decodeRecord(v)
	if err != nil {
		return nil, rec, fmt.Errorf("decisions: get %s: %w", id, err)
	}
	d := &riskv1.Decision{}
	if err := proto.Unmarshal(rec.body, d); err != nil {
		return nil, rec, fmt.Errorf("decisions: decode %s: %w", id, err)
	}
	rec.body = nil // aliases c's buffer
	return d, rec, nil
}

// Page tokens are base64url(version || payload || 8-byte query binding);
// the binding ties a token to the query that issued it.
const (
	tokenDecisions = 0x01
	tokenAppeals   = 0x02
)

func binding(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return h.Sum(nil)[:8]
}

func encodeToken(version byte, payload, bind []byte) string {
	b := append([]byte{version}, payload...)
	return base64.RawURLEncoding.EncodeToString(append(b, bind...))
}

// decodeToken returns the payload of a token of version, payloadLen bytes
// long, issued for bind.
func decodeToken(tok string, version byte, payloadLen int, bind []byte) ([]byte, error) {
	if len(tok) > 128 {
		return nil, &PageTokenError{Reason: "too long"}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	// The decoder skips CR and LF; a token is only what we issued, byte for byte.
	if err != nil || strings.ContainsAny(tok, "\r\n") {
		return nil, &PageTokenError{Reason: "not base64url"}
	}
	if len(b) != 1+payloadLen+len(bind) || b[0] != version {
		return nil, &PageTokenError{Reason: "not a token for this list"}
	}
	if !bytes.Equal(b[1+payloadLen:], bind) {
		return nil, &PageTokenError{Reason: "issued for a different query"}
	}
	return b[1 : 1+payloadLen], nil
}

// decodeDecisionsToken parses a ListByAccount token for pseud.
func decodeDecisionsToken(tok, pseud string) (ulid.ULID, error) {
	var id ulid.ULID
	p, err := decodeToken(tok, tokenDecisions, 16, binding("decisions", pseud))
	if err != nil {
		return id, err
	}
	copy(id[:], p)
	return id, nil
}

// ListByAccount returns the account's decisions newest first, pageSize at a
// time (default 50, at most 1000), and the token for the next page ("" at the
// end). A token from elsewhere is a *PageTokenError.
func (l *Log) ListByAccount(accountPseudonym string, pageSize int, pageToken string) ([]*riskv1.Decision, string, error) {
	pageSize = clampPage(pageSize)
	prefix := accountPrefix(accountPseudonym)
	lower := prefix
	if pageToken != "" {
		last, err := decodeDecisionsToken(pageToken, accountPseudonym)
		if err != nil {
			return nil, "", err
		}
		lower = append(accountKey(accountPseudonym, last), 0) // just after last
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, "", fmt.Errorf("decisions: list: %w", err)
	}
	defer it.Close()
	var out []*riskv1.Decision
	var lastID ulid.ULID
	more := false
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			continue
		}
		if len(out) == pageSize {
			more = true
			break
		}
		var id ulid.ULID
		for i, c := range k[len(prefix):] {
			id[i] = ^c
		}
		d, _, err := l.getByULID(l.db, id)
		if errors.Is(err, ErrNotFound) {
			continue // erased or swept between index and record
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, d)
		lastID = id
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("decisions: list: %w", err)
	}
	if !more {
		return out, "", nil
	}
	return out, encodeToken(tokenDecisions, lastID[:], binding("decisions", accountPseudonym)), nil
}

// SearchFilter selects decisions for the console. Zero fields do not filter.
type SearchFilter struct {
	From, To time.Time      // decided_at in [From, To)
	Outcome  riskv1.Outcome // exact outcome
	RuleID   string         // fired (active or shadow) rule
	Degraded bool           // only degraded decisions
	Limit    int            // default 100, at most 10,000
}

// Search scans decisions by decided time, newest first, and returns up to
// Limit that match. It is a scan: meant for the console, not a hot path.
func (l *Log) Search(f SearchFilter) ([]*riskv1.Decision, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10_000)
	lower := []byte{keys.DecisionByTime}
	upper := []byte{keys.DecisionByTime + 1}
	if !f.From.IsZero() {
		lower = keys.AppendTime(lower, f.From.UnixNano())
	}
	if !f.To.IsZero() {
		upper = keys.AppendTime([]byte{keys.DecisionByTime}, f.To.UnixNano())
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("decisions: search: %w", err)
	}
	defer it.Close()
	var out []*riskv1.Decision
	for ok := it.Last(); ok && len(out) < limit; ok = it.Prev() {
		k := it.Key()
		if len(k) != 25 {
			continue
		}
		var id ulid.ULID
		copy(id[:], k[9:])
		d, _, err := l.getByULID(l.db, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if matches(d, f) {
			out = append(out, d)
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("decisions: search: %w", err)
	}
	return out, nil
}

func matches(d *riskv1.Decision, f SearchFilter) bool {
	if f.Outcome != riskv1.Outcome_OUTCOME_UNSPECIFIED && d.GetOutcome() != f.Outcome {
		return false
	}
	if f.Degraded && !d.GetDegraded() {
		return false
	}
	if f.RuleID == "" {
		return true
	}
	for _, rs := range [][]*riskv1.Reason{d.GetReasons(), d.GetShadowReasons()} {
		for _, r := range rs {
			if r.GetRuleId() == f.RuleID {
				return true
			}
		}
	}
	return false
}

// SubjectView returns what the person a decision is about may see: outcome,
// reasons in both languages (no expressions), data categories, whether it
// was fully automated, the appeal deadline, decided_at, decision_id,
// event_type, account_id and degraded. No features, event, event id, shadow
// reasons, score, ruleset, latency or fault detail.
func SubjectView(d *riskv1.Decision) *riskv1.Decision {
	if d == nil {
		return nil
	}
	v := &riskv1.Decision{
		DecisionId:     d.GetDecisionId(),
		AccountId:      d.GetAccountId(),
		Outcome:        d.GetOutcome(),
		DataCategories: append([]string(nil), d.GetDataCategories()...),
		FullyAutomated: d.GetFullyAutomated(),
		Degraded:       d.GetDegraded(),
		EventType:      d.GetEventType(),
	}
	if t := d.GetDecidedAt(); t != nil {
		v.DecidedAt = proto.Clone(t).(*timestamppb.Timestamp)
	}
	if t := d.GetAppealDeadline(); t != nil {
		v.AppealDeadline = proto.Clone(t).(*timestamppb.Timestamp)
	}
	for _, r := range d.GetReasons() {
		v.Reasons = append(v.Reasons, &riskv1.Reason{
			RuleId:      r.GetRuleId(),
			RuleVersion: r.GetRuleVersion(),
			Action:      r.GetAction(),
			MessageEn:   r.GetMessageEn(),
			MessageZh:   r.GetMessageZh(),
		})
	}
	return v
}

// ServiceView is what a calling back end gets from Evaluate: the decision
// without the fields the contract reserves for analysts (the stored event,
// latency, why it degraded, the rules' expressions). d is not changed: the
// engine may share one decision among concurrent callers of the same event.
func ServiceView(d *riskv1.Decision) *riskv1.Decision {
	if d == nil {
		return nil
	}
	return &riskv1.Decision{
		DecisionId:     d.GetDecisionId(),
		EventId:        d.GetEventId(),
		AccountId:      d.GetAccountId(),
		Outcome:        d.GetOutcome(),
		Score:          d.GetScore(),
		RulesetVersion: d.GetRulesetVersion(),
		Features:       d.GetFeatures(),
		DecidedAt:      d.GetDecidedAt(),
		AppealDeadline: d.GetAppealDeadline(),
		Degraded:       d.GetDegraded(),
		DataCategories: d.GetDataCategories(),
		FullyAutomated: d.GetFullyAutomated(),
		EventType:      d.GetEventType(),
		OccurredAt:     d.GetOccurredAt(),
		Reasons:        serviceReasons(d.GetReasons()),
		ShadowReasons:  serviceReasons(d.GetShadowReasons()),
	}
}

func serviceReasons(rs []*riskv1.Reason) []*riskv1.Reason {
	if len(rs) == 0 {
		return nil
	}
	out := make([]*riskv1.Reason, len(rs))
	for i, r := range rs {
		out[i] = &riskv1.Reason{
			RuleId: r.GetRuleId(), RuleVersion: r.GetRuleVersion(), Action: r.GetAction(),
			Score: r.GetScore(), MessageEn: r.GetMessageEn(), MessageZh: r.GetMessageZh(),
		}
	}
	return out
}

// SubjectData is everything the log holds about one account.
type SubjectData struct {
	Decisions []*riskv1.Decision
	Appeals   []*riskv1.Appeal
	Labels    []Label
}

// SubjectRecords collects every decision about the account (full records),
// their appeals with history, and the labels on them.
func (l *Log) SubjectRecords(accountPseudonym string) (*SubjectData, error) {
	out := &SubjectData{}
	tok := ""
	for {
		ds, next, err := l.ListByAccount(accountPseudonym, MaxPageSize, tok)
		if err != nil {
			return nil, err
		}
		out.Decisions = append(out.Decisions, ds...)
		if next == "" {
			break
		}
		tok = next
	}
	for _, d := range out.Decisions {
		as, err := l.appealsForDecision(d.GetDecisionId())
		if err != nil {
			return nil, err
		}
		out.Appeals = append(out.Appeals, as...)
		lb, err := l.LabelFor(d.GetDecisionId())
		if err == nil {
			out.Labels = append(out.Labels, lb)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return out, nil
}

// ExportSubject returns SubjectRecords as one JSON document (protobuf
// messages in protojson form, lowerCamelCase like the API).
func (l *Log) ExportSubject(accountPseudonym string) ([]byte, error) {
	sd, err := l.SubjectRecords(accountPseudonym)
	if err != nil {
		return nil, err
	}
	doc := struct {
		Decisions []json.RawMessage `json:"decisions"`
		Appeals   []json.RawMessage `json:"appeals"`
		Labels    []Label           `json:"labels"`
	}{Decisions: []json.RawMessage{}, Appeals: []json.RawMessage{}, Labels: sd.Labels}
	if doc.Labels == nil {
		doc.Labels = []Label{}
	}
	for _, d := range sd.Decisions {
		b, err := protojson.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("decisions: export: %w", err)
		}
		doc.Decisions = append(doc.Decisions, b)
	}
	for _, a := range sd.Appeals {
		b, err := protojson.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("decisions: export: %w", err)
		}
		doc.Appeals = append(doc.Appeals, b)
	}
	return json.MarshalIndent(doc, "", "  ")
}
