package decisions

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
)

// EraseAppeals writes into b every appeal on the given decisions with what
// its subject wrote removed: the statement, the contact and the account id.
// Status, times, the reviewer's resolution reason and the chain entries
// (which hold digests, never the text) stay, as the record of how the
// appeal was handled. Committer only, with AppendErasure. It returns how
// many appeals it rewrote.
func (l *Log) EraseAppeals(b *pebble.Batch, decisionIDs []string) (int, error) {
	n := 0
	for _, d := range decisionIDs {
		as, err := l.appealsForDecision(d)
		if err != nil {
			return n, err
		}
		for _, a := range as {
			id, err := ulid.ParseStrict(a.GetAppealId())
			if err != nil {
				return n, fmt.Errorf("decisions: erase appeal %q: %w", a.GetAppealId(), err)
			}
			a.Statement, a.Contact, a.AccountId = "", "", ""
			if err := l.putAppeal(b, a, id); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// DeleteEventLabel writes into b the deletion of the label on an event id
// (the chain keeps its entry, which names the event id, not the subject).
func (l *Log) DeleteEventLabel(b *pebble.Batch, eventID string) error {
	return b.Delete(labelEventKey(eventID), nil)
}
