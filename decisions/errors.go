package decisions

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on. The API edge maps them to codes.
var (
	// ErrNotFound: no such decision or appeal, or not one the caller may see.
	ErrNotFound = errors.New("decisions: not found")
	// ErrInvalidPageToken: a page token that this package did not issue for
	// this query.
	ErrInvalidPageToken = errors.New("decisions: invalid page token")
	// ErrInvalid: a malformed argument (statement too long, bad resolution...).
	ErrInvalid = errors.New("decisions: invalid argument")
	// ErrAppealExists: the decision already has an unresolved appeal.
	ErrAppealExists = errors.New("decisions: an appeal is already open for this decision")
	// ErrAppealWindowClosed: the decision's appeal deadline has passed.
	ErrAppealWindowClosed = errors.New("decisions: the appeal deadline has passed")
	// ErrAlreadyResolved: the appeal was resolved already (maybe concurrently).
	ErrAlreadyResolved = errors.New("decisions: appeal already resolved")
	// ErrBadTransition: the appeal is not in a state that allows the change.
	ErrBadTransition = errors.New("decisions: appeal status does not allow this")
	// ErrConflictOfInterest: the reviewer authored or last changed a rule that
	// fired in the decision and is not an admin.
	ErrConflictOfInterest = errors.New("decisions: reviewer authored or changed a rule in this decision")
	// ErrChainBroken: Verify found a broken link (see *ChainError).
	ErrChainBroken = errors.New("decisions: chain broken")
	// ErrNoCommitter: Options.Commit was not set, so appeals and labels cannot
	// be written.
	ErrNoCommitter = errors.New("decisions: no committer configured")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("decisions: closed")
)

// FieldError is an invalid argument naming the field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("decisions: invalid %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// PageTokenError says why a page token was refused.
type PageTokenError struct{ Reason string }

func (e *PageTokenError) Error() string { return "decisions: invalid page token: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidPageToken) true.
func (e *PageTokenError) Unwrap() error { return ErrInvalidPageToken }

// ChainError names the first broken chain entry.
type ChainError struct {
	Seq        uint64 // the first entry that does not verify
	Kind       Kind   // its kind, when it could be read
	DecisionID string // the record it links to, when known
	Reason     string
}

func (e *ChainError) Error() string {
	s := fmt.Sprintf("decisions: chain broken at seq %d", e.Seq)
	if e.Kind != 0 {
		s += " (" + e.Kind.String() + ")"
	}
	if e.DecisionID != "" {
		s += " decision " + e.DecisionID
	}
	return s + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrChainBroken) true.
func (e *ChainError) Unwrap() error { return ErrChainBroken }
