package ingest

import (
	"errors"
	"fmt"
)

// ErrInvalid matches (errors.Is) every validation failure; the API edge maps
// it to invalid_argument.
var ErrInvalid = errors.New("ingest: invalid event")

// ErrTooOld and ErrInFuture say why occurred_at was refused. Both also match
// ErrInvalid.
var (
	ErrTooOld   = fmt.Errorf("ingest: occurred_at older than the lateness bound: %w", ErrInvalid)
	ErrInFuture = fmt.Errorf("ingest: occurred_at too far in the future: %w", ErrInvalid)
)

// FieldError names the field of an event that failed validation. Field is
// relative to the event, in proto names: "network.ip",
// "device.installed_packages[1000]", `attributes["phone"]`. Reason is safe to
// show to the caller: it never echoes the rejected value.
type FieldError struct {
	Field  string
	Reason string
	// Err is the sentinel the error matches: ErrInvalid, ErrTooOld or
	// ErrInFuture (nil means ErrInvalid).
	Err error
}

func (e *FieldError) Error() string { return "ingest: " + e.Field + ": " + e.Reason }

// Unwrap returns the sentinel, so that errors.Is(err, ErrInvalid) holds.
func (e *FieldError) Unwrap() error {
	if e.Err == nil {
		return ErrInvalid
	}
	return e.Err
}

func fieldErr(field, reason string) *FieldError { return &FieldError{Field: field, Reason: reason} }
