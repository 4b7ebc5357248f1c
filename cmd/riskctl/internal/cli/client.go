package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

// errNoCredentials marks a missing or unusable credentials file: exit 3,
// like an unreachable riskd, because the command could not ask it.
var errNoCredentials = errors.New("no credentials")

func (inv *invocation) credentialsPath() string {
	return filepath.Join(inv.g.dataDir, auth.FileName)
}

// loadCredentials reads credentials.json with package auth, which riskd uses
// too: the same validation, and the same refusal of a file that group or
// others can read.
func (inv *invocation) loadCredentials() (*auth.Credentials, error) {
	if inv.creds != nil {
		return inv.creds, nil
	}
	path := inv.credentialsPath()
	c, err := auth.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &exitError{code: ExitUnreachable, err: fmt.Errorf("%w: %s does not exist (start riskd once with --data-dir %s, or pass --data-dir or --token)", errNoCredentials, path, inv.g.dataDir)}
	}
	if err != nil {
		return nil, &exitError{code: ExitUnreachable, err: fmt.Errorf("%w: %v", errNoCredentials, err)}
	}
	inv.creds = &c
	return &c, nil
}

// bearer returns the token for the verb's role: --token (or RISKCTL_TOKEN) if
// given, else the role's token from credentials.json.
func (inv *invocation) bearer() (string, error) {
	if inv.g.token != "" {
		return inv.g.token, nil
	}
	c, err := inv.loadCredentials()
	if err != nil {
		return "", err
	}
	var tok string
	switch inv.role {
	case auth.RoleService:
		tok = c.Service
	case auth.RoleAnalyst:
		tok = c.Analyst
	case auth.RoleAdmin:
		tok = c.Admin
	default:
		return "", fmt.Errorf("riskctl %s has no role to pick a token for: this is a bug", inv.path)
	}
	return tok, nil
}

// connectConfig returns the HTTP client, base URL and options for the
// generated Connect clients, with the bearer token attached to every call.
func (inv *invocation) connectConfig() (connect.HTTPClient, string, []connect.ClientOption, error) {
	tok, err := inv.bearer()
	if err != nil {
		return nil, "", nil, err
	}
	opts := []connect.ClientOption{connect.WithInterceptors(bearerInterceptor(tok))}
	switch inv.g.protocol {
	case "grpc":
		opts = append(opts, connect.WithGRPC())
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	}
	return inv.httpClient(), strings.TrimRight(inv.g.server, "/"), opts, nil
}

// httpClient speaks HTTP/1.1 to http:// URLs, except for gRPC, which needs
// HTTP/2: there it speaks h2c (HTTP/2 without TLS), as riskd serves both.
func (inv *invocation) httpClient() *http.Client {
	if inv.env.HTTPClient != nil {
		return inv.env.HTTPClient
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	if inv.g.protocol == "grpc" && strings.HasPrefix(inv.g.server, "http://") {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: t}
}

func (inv *invocation) riskClient() (riskv1connect.RiskServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewRiskServiceClient(hc, base, opts...), nil
}

func (inv *invocation) decisionClient() (riskv1connect.DecisionServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewDecisionServiceClient(hc, base, opts...), nil
}

// callContext bounds one call by --timeout.
func (inv *invocation) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, inv.g.timeout)
}

// bearerInterceptor adds "Authorization: Bearer <token>" to unary and
// streaming calls alike.
type bearerInterceptor string

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// classify maps an error from a call to riskd to an exit code and the line
// to print. An error riskd sent is ExitServerError with its Connect code;
// anything the client made up (refused connection, timeout, an HTTP answer
// that is not riskd's) is ExitUnreachable.
func classify(err error) (int, string) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return ExitServerError, err.Error()
	}
	if connect.IsWireError(err) {
		return ExitServerError, fmt.Sprintf("riskd answered %s: %s", ce.Code(), ce.Message())
	}
	return ExitUnreachable, fmt.Sprintf("no answer from riskd (%s): %s", ce.Code(), ce.Message())
}

// callError turns an error from a call into one that report prints and maps
// to its exit code, naming the server when it did not answer.
func (inv *invocation) callError(err error) error {
	code, msg := classify(err)
	if code == ExitUnreachable {
		var ce *connect.Error
		errors.As(err, &ce)
		msg = fmt.Sprintf("no answer from riskd at %s (%s): %s", inv.g.server, ce.Code(), ce.Message())
	}
	return &exitError{code: code, err: errors.New(msg)}
}

// unary runs one RPC under the invocation's timeout and turns a failure into
// the exit error riskctl reports.
func unary[Req, Res any](ctx context.Context, inv *invocation, call func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	return unaryWith(ctx, inv, call, req, inv.callError)
}

// unaryWith is unary with the verb's own error reporting.
func unaryWith[Req, Res any](ctx context.Context, inv *invocation, call func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req, onErr func(error) error) (*Res, error) {
	cctx, cancel := inv.callContext(ctx)
	defer cancel()
	res, err := call(cctx, connect.NewRequest(req))
	if err != nil {
		return nil, onErr(err)
	}
	return res.Msg, nil
}
