package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/internal/clock"
)

// floorFeatures mirrors the default catalog's 16 features (names, kinds and
// the event type each applies to, 0 for any), so that the floor answers with
// the features riskd would compute for the event: 9 to 11 of them. It is
// copied, not imported, to keep the floor free of riskd's engine.
var floorFeatures = []struct {
	name string
	kind byte // i int, f float, b bool
	on   riskv1.EventType
}{
	{"login_failures_account_10m", 'i', riskv1.EventType_EVENT_TYPE_LOGIN},
	{"login_failures_ip_1h", 'i', riskv1.EventType_EVENT_TYPE_LOGIN},
	{"ip_distinct_accounts_login_1h", 'i', riskv1.EventType_EVENT_TYPE_LOGIN},
	{"device_distinct_accounts_24h", 'i', 0},
	{"account_distinct_devices_30d", 'i', 0},
	{"account_device_seen_before", 'b', 0},
	{"account_ip_prefix_seen_before", 'b', 0},
	{"seconds_since_last_login_account", 'i', riskv1.EventType_EVENT_TYPE_LOGIN},
	{"km_from_last_location_account", 'f', 0},
	{"speed_kmh_from_last_location_account", 'f', 0},
	{"payments_account_1h", 'i', riskv1.EventType_EVENT_TYPE_PAYMENT},
	{"payment_amount_account_24h", 'i', riskv1.EventType_EVENT_TYPE_PAYMENT},
	{"payee_distinct_payers_24h", 'i', riskv1.EventType_EVENT_TYPE_PAYMENT},
	{"attendance_device_distinct_accounts_7d", 'i', riskv1.EventType_EVENT_TYPE_ATTENDANCE},
	{"attendance_same_coordinates_account_30d", 'i', riskv1.EventType_EVENT_TYPE_ATTENDANCE},
	{"cheat_packages_installed", 'i', 0},
}

var floorReasons = []*riskv1.Reason{
	{
		RuleId: "ato.new_device_after_failures", RuleVersion: 3, Action: "challenge", Score: 0,
		MessageEn: "Signed in from a new device after 6 failed attempts",
		MessageZh: "在新设备上登录，此前有 6 次失败尝试",
	},
	{
		RuleId: "velocity.payments_account_1h", RuleVersion: 1, Action: "score", Score: 20,
		MessageEn: "12 payments from this account in the last hour",
		MessageZh: "该账户在过去一小时内支付 12 次",
	},
}

// FloorHandler is the transport floor: a RiskService whose Evaluate does no
// risk work at all but decodes the same request and answers with a
// decision-sized response (the event's applicable features, one or two
// reasons, the echoed event, ids and timestamps: the fields riskd fills),
// built fresh per call as riskd builds its own. Ingest is unimplemented. It
// is safe for concurrent use.
type FloorHandler struct {
	riskv1connect.UnimplementedRiskServiceHandler
	// Clock stamps decided_at. Default: the real clock.
	Clock clock.Clock
}

// Evaluate answers with a canned decision about req's event.
func (f *FloorHandler) Evaluate(_ context.Context, req *connect.Request[riskv1.EvaluateRequest]) (*connect.Response[riskv1.EvaluateResponse], error) {
	return connect.NewResponse(&riskv1.EvaluateResponse{Decision: FloorDecision(req.Msg.GetEvent(), clock.Or(f.Clock).Now())}), nil
}

// FloorDecision is the decision the floor returns for ev at now.
func FloorDecision(ev *riskv1.Event, now time.Time) *riskv1.Decision {
	id := ev.GetEventId()
	feats := make(map[string]*structpb.Value, len(floorFeatures))
	for i, f := range floorFeatures {
		if f.on != 0 && f.on != ev.GetType() {
			continue
		}
		switch f.kind {
		case 'b':
			feats[f.name] = structpb.NewBoolValue(i%2 == 0)
		case 'f':
			feats[f.name] = structpb.NewNumberValue(float64(len(id)) * 1.37)
		default:
			feats[f.name] = structpb.NewNumberValue(float64(i + len(id)%7))
		}
	}
	reasons := floorReasons[:1+len(id)%2] // one or two, as riskd's usually are
	return &riskv1.Decision{
		DecisionId:     ulid.Make().String(),
		EventId:        id,
		AccountId:      ev.GetAccountId(),
		Outcome:        riskv1.Outcome_OUTCOME_CHALLENGE,
		Score:          20,
		Reasons:        reasons,
		Features:       feats,
		RulesetVersion: "sha-d570854e5e23",
		DecidedAt:      timestamppb.New(now),
		AppealDeadline: timestamppb.New(now.Add(30 * 24 * time.Hour)),
		DataCategories: []string{"device", "network", "behaviour"},
		FullyAutomated: true,
		// riskd echoes the stored (pseudonymized) event; the request's is
		// the same size.
		Event:      ev,
		Latency:    durationpb.New(150 * time.Microsecond),
		EventType:  ev.GetType(),
		OccurredAt: ev.GetOccurredAt(),
	}
}

// FloorOptions configures StartFloor. The zero value works.
type FloorOptions struct {
	// Addr to listen on. Default 127.0.0.1:0 (a free loopback port).
	Addr string
	// Token, when set, is required as the bearer token, checked as cheaply
	// as riskd checks its own; empty accepts any request.
	Token string
	// Handler serves RiskService. Default: &FloorHandler{}.
	Handler riskv1connect.RiskServiceHandler
}

// Floor is a running floor server.
type Floor struct {
	URL string
	srv *http.Server
	err chan error
}

// StartFloor serves the floor (Connect, gRPC and gRPC-Web over HTTP/1.1 and
// h2c, as riskd does) until Close.
func StartFloor(o FloorOptions) (*Floor, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Handler == nil {
		o.Handler = &FloorHandler{}
	}
	var opts []connect.HandlerOption
	if o.Token != "" {
		opts = append(opts, connect.WithInterceptors(requireBearer(o.Token)))
	}
	mux := http.NewServeMux()
	mux.Handle(riskv1connect.NewRiskServiceHandler(o.Handler, opts...))
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("load: floor: %w", err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	f := &Floor{
		URL: "http://" + l.Addr().String(),
		srv: &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute},
		err: make(chan error, 1),
	}
	go func() { f.err <- f.srv.Serve(l) }()
	return f, nil
}

// Close stops the floor server.
func (f *Floor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := f.srv.Shutdown(ctx)
	if serr := <-f.err; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("load: floor: %w", err)
	}
	return nil
}

// Wait blocks until the floor server stops and returns why.
func (f *Floor) Wait() error {
	err := <-f.err
	f.err <- err
	return err
}

func requireBearer(token string) connect.UnaryInterceptorFunc {
	want := "Bearer " + token
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Header().Get("Authorization") != want {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("bad token"))
			}
			return next(ctx, req)
		}
	}
}
