package server

import (
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/engine"
)

func errOverloaded() *connect.Error {
	return connect.NewError(connect.CodeResourceExhausted, errors.New("overloaded: back off and retry"))
}

// shedEarly answers an Evaluate that the engine has no room for with
// resource_exhausted before its body is read and decoded. Past capacity the
// requests shed outnumber those served, and each used to cost a full
// decode and the interceptors before the engine refused it. Only a caller
// that authenticates as a service is shed here; any other goes on to the
// handler, which refuses it as it would without load, so that overload
// tells nothing to a caller without a token. The engine checks again when
// it starts an evaluation.
func shedEarly(eng *engine.Engine, authn *auth.Authenticator, m *metrics, next http.Handler, opts []connect.HandlerOption) http.Handler {
	ew := connect.NewErrorWriter(opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != riskv1connect.RiskServiceEvaluateProcedure || !eng.Overloaded() || !ew.IsSupported(r) {
			next.ServeHTTP(w, r)
			return
		}
		if p, err := authn.Authenticate(r.Header.Get("Authorization")); err != nil || p.Role != auth.RoleService {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		err := errOverloaded()
		_ = ew.Write(w, r, err)
		m.observe(riskv1connect.RiskServiceEvaluateProcedure, start, err)
	})
}
