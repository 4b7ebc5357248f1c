package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/rules"
)

// What a caller sees for a bad token or a role it lacks.
var (
	errUnauthenticated = errors.New("missing or invalid bearer token")
	errPermission      = errors.New("permission denied")
)

// invalid builds an invalid_argument error naming a request field.
func invalid(field, reason string) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, reason))
}

// connectError maps a domain error to the Connect error a client sees. It is
// the only place that does; messages never carry internals. prefix is the
// request path of the event ("event" or "events[3]") for field errors.
func connectError(ctx context.Context, log *slog.Logger, prefix string, err error) *connect.Error {
	var ce *connect.Error
	var fe *ingest.FieldError
	var dfe *decisions.FieldError
	var mismatch *engine.MismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &fe):
		field := fe.Field
		if prefix != "" {
			field = prefix + "." + field
		}
		return invalid(field, fe.Reason)
	case errors.Is(err, auth.ErrUnauthenticated):
		return connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	case errors.Is(err, errPermission):
		return connect.NewError(connect.CodePermissionDenied, errPermission)
	case errors.Is(err, decisions.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New("not found"))
	case errors.Is(err, decisions.ErrInvalidPageToken):
		return invalid("page_token", "not a token this server issued for this query")
	case errors.As(err, &dfe):
		return invalid(dfe.Field, dfe.Reason)
	case errors.Is(err, decisions.ErrAppealExists):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("an appeal is already open for this decision"))
	case errors.Is(err, decisions.ErrAppealWindowClosed):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("the appeal deadline of this decision has passed"))
	case errors.Is(err, decisions.ErrAlreadyResolved):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("the appeal is already resolved"))
	case errors.Is(err, decisions.ErrBadTransition):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("the appeal's status does not allow this change"))
	case errors.Is(err, decisions.ErrConflictOfInterest):
		return connect.NewError(connect.CodePermissionDenied, errors.New("you authored or last changed a rule that fired in this decision; another reviewer must resolve it"))
	case errors.As(err, &mismatch):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("replay does not reproduce the recorded decision: "+strings.Join(mismatch.Differences, "; ")))
	case asCompileErrors(err) != nil:
		return compileError(asCompileErrors(err))
	case errors.Is(err, rules.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(domainMessage(err, "rules: ")))
	case errors.Is(err, rules.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New(domainMessage(err, "rules: ")))
	case errors.Is(err, lists.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New(domainMessage(err, "lists: ")))
	case errors.Is(err, lists.ErrExists):
		return connect.NewError(connect.CodeAlreadyExists, errors.New(domainMessage(err, "lists: ")))
	case errors.Is(err, lists.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, errors.New(domainMessage(err, "lists: ")))
	case errors.Is(err, lists.ErrNotExportable):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(domainMessage(err, "lists: ")))
	case errors.Is(err, engine.ErrUnknownRuleset):
		return connect.NewError(connect.CodeNotFound, errors.New("no rule set of that version is known"))
	case errors.Is(err, engine.ErrNotReplayable):
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("the decision cannot be replayed: its record keeps no event or feature snapshot"))
	case errors.Is(err, engine.ErrIngested):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("event id was already ingested without a decision"))
	case errors.Is(err, engine.ErrBacktestTooLarge):
		return connect.NewError(connect.CodeResourceExhausted, errors.New(domainMessage(err, "engine: ")+" or raise the server's --backtest-max-states"))
	case errors.Is(err, engine.ErrOverloaded):
		return errOverloaded()
	case errors.Is(err, engine.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("server is shutting down"))
	case errors.Is(err, features.ErrRebuilding):
		return connect.NewError(connect.CodeUnavailable, errors.New("feature state is being rebuilt after a failed write: retry"))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

// domainMessage is a domain error's text for a client, without the
// package prefixes (those errors describe the request, not internals).
func domainMessage(err error, prefix string) string {
	return strings.ReplaceAll(err.Error(), prefix, "")
}
