package decisions

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"

	"github.com/riskd/riskd/internal/keys"
)

// LabelKind is a caller's verdict on what really happened.
type LabelKind string

// Label kinds.
const (
	LabelConfirmedFraud LabelKind = "confirmed_fraud"
	LabelChargeback     LabelKind = "chargeback"
	LabelFalsePositive  LabelKind = "false_positive"
)

// Valid reports whether k is a known kind.
func (k LabelKind) Valid() bool {
	return k == LabelConfirmedFraud || k == LabelChargeback || k == LabelFalsePositive
}

// Label is an outcome label on a decision or on an event (an ingested event
// has no decision). The latest label on a decision or event wins; the chain
// keeps every one.
type Label struct {
	Kind       LabelKind `json:"kind"`
	DecisionID string    `json:"decision_id,omitempty"`
	EventID    string    `json:"event_id,omitempty"`
	Source     string    `json:"source"` // who labelled: a caller's identity, or "appeal"
	At         time.Time `json:"at"`
}

// Label keys: keys.Label | 'd' | decision ULID, and keys.Label | 'e' |
// SHA-256(event id)[:16] (event ids are the caller's, of any length).
func labelDecisionKey(id ulid.ULID) []byte {
	return append([]byte{keys.Label, 'd'}, id[:]...)
}

func labelEventKey(eventID string) []byte {
	h := sha256.Sum256([]byte(eventID))
	return append([]byte{keys.Label, 'e'}, h[:16]...)
}

// PutLabel records lb (At is set from the clock) through Options.Commit. A
// label names a decision that exists, or an event id.
func (l *Log) PutLabel(lb Label) (Label, error) {
	if !lb.Kind.Valid() {
		return lb, &FieldError{Field: "kind", Reason: fmt.Sprintf("%q is not confirmed_fraud, chargeback or false_positive", lb.Kind)}
	}
	if (lb.DecisionID == "") == (lb.EventID == "") {
		return lb, &FieldError{Field: "decision_id", Reason: "give exactly one of decision_id and event_id"}
	}
	if len(lb.EventID) > 256 || len(lb.Source) > 256 {
		return lb, &FieldError{Field: "event_id", Reason: "longer than 256 bytes"}
	}
	if lb.DecisionID != "" {
		if _, err := l.Get(lb.DecisionID); err != nil {
			return lb, err
		}
	}
	lb.At = l.opts.Clock.Now().UTC()
	err := l.commit(func(b *pebble.Batch) error { return l.AppendLabel(b, lb) })
	return lb, err
}

// AppendLabel writes lb and its chain entry into b. Committer only.
func (l *Log) AppendLabel(b *pebble.Batch, lb Label) error {
	body, err := json.Marshal(lb)
	if err != nil {
		return fmt.Errorf("decisions: label: %w", err)
	}
	var key []byte
	if lb.DecisionID != "" {
		id, err := ulid.ParseStrict(lb.DecisionID)
		if err != nil {
			return &FieldError{Field: "decision_id", Reason: "not a ULID"}
		}
		key = labelDecisionKey(id)
	} else {
		key = labelEventKey(lb.EventID)
	}
	if _, err := l.AppendEntry(b, KindLabel, lb.DecisionID, body); err != nil {
		return err
	}
	if err := b.Set(key, body, nil); err != nil {
		return fmt.Errorf("decisions: label: %w", err)
	}
	return nil
}

// LabelFor returns the label on a decision, or on its event (ErrNotFound
// when neither is labelled).
func (l *Log) LabelFor(decisionID string) (Label, error) {
	id, err := ulid.ParseStrict(decisionID)
	if err != nil {
		return Label{}, fmt.Errorf("label for %q: %w", decisionID, ErrNotFound)
	}
	lb, err := l.readLabel(labelDecisionKey(id))
	if !errors.Is(err, ErrNotFound) {
		return lb, err
	}
	d, err := l.Get(decisionID)
	if err != nil {
		return Label{}, err
	}
	if d.GetEventId() == "" {
		return Label{}, fmt.Errorf("label for %s: %w", decisionID, ErrNotFound)
	}
	return l.LabelForEvent(d.GetEventId())
}

// LabelForEvent returns the label put on an event id (ErrNotFound if none).
func (l *Log) LabelForEvent(eventID string) (Label, error) {
	return l.readLabel(labelEventKey(eventID))
}

func (l *Log) readLabel(key []byte) (Label, error) {
	v, c, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Label{}, fmt.Errorf("label: %w", ErrNotFound)
	}
	if err != nil {
		return Label{}, fmt.Errorf("decisions: label: %w", err)
	}
	defer c.Close()
	var lb Label
	if err := json.Unmarshal(v, &lb); err != nil {
		return Label{}, fmt.Errorf("decisions: label: %w", err)
	}
	return lb, nil
}

// Labels calls fn with every current label (decision labels, then event
// labels), for backtests and statistics.
func (l *Log) Labels(fn func(Label) error) error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.Label}, UpperBound: []byte{keys.Label + 1}})
	if err != nil {
		return fmt.Errorf("decisions: labels: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var lb Label
		if err := json.Unmarshal(it.Value(), &lb); err != nil {
			return fmt.Errorf("decisions: label %x: %w", it.Key(), err)
		}
		if err := fn(lb); err != nil {
			return err
		}
	}
	return it.Error()
}

func (l *Log) commit(fn func(b *pebble.Batch) error) error {
	if l.opts.Commit == nil {
		return ErrNoCommitter
	}
	return l.opts.Commit(fn)
}
