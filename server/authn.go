package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/auth"
)

type principalKey struct{}

// principal returns the authenticated caller of a request.
func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

// authInterceptor authenticates every call, checks the role against the
// procedure, and logs one line per request at debug level (procedure, role,
// code, duration: never a request body, so never an identifier).
type authInterceptor struct {
	authn       *auth.Authenticator
	log         *slog.Logger
	requireCert bool
	limits      *limiters
}

func newAuthInterceptor(o Options, log *slog.Logger) *authInterceptor {
	return &authInterceptor{authn: o.Auth, log: log, requireCert: o.RequireServiceCert,
		limits: newLimiters(o.RateLimitService, o.RateLimitUser, o.RateLimitSubject)}
}

func (a *authInterceptor) check(ctx context.Context, procedure, header string) (context.Context, error) {
	p, err := a.authn.Authenticate(header)
	if err != nil {
		return ctx, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	if a.requireCert && p.Role == auth.RoleService && !hasPeerCert(ctx) {
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("service callers must present a client certificate"))
	}
	if !auth.Allowed(p.Role, procedure) {
		return ctx, connect.NewError(connect.CodePermissionDenied, errPermission)
	}
	if !a.limits.allow(p) {
		return ctx, connect.NewError(connect.CodeResourceExhausted, errors.New("rate limit exceeded for this token: slow down"))
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

func (a *authInterceptor) logRequest(ctx context.Context, procedure string, start time.Time, err error) {
	if !a.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	a.log.DebugContext(ctx, "request", "procedure", procedure, "role", principal(ctx).Role.String(),
		"code", code, "duration", time.Since(start))
}

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		ctx, err := a.check(ctx, req.Spec().Procedure, req.Header().Get("Authorization"))
		var res connect.AnyResponse
		if err == nil {
			res, err = next(ctx, req)
		}
		a.logRequest(ctx, req.Spec().Procedure, start, err)
		return res, err
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		ctx, err := a.check(ctx, conn.Spec().Procedure, conn.RequestHeader().Get("Authorization"))
		if err == nil {
			err = next(ctx, conn)
		}
		a.logRequest(ctx, conn.Spec().Procedure, start, err)
		return err
	}
}
