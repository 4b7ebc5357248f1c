package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
)

// Ingester is the part of a RiskService client that Populate needs.
type Ingester interface {
	Ingest(ctx context.Context) *connect.ClientStreamForClient[riskv1.IngestRequest, riskv1.IngestResponse]
}

// PopulateOptions configures Populate. Population is required; the rest
// have defaults.
type PopulateOptions struct {
	// Population is the world whose accounts get feature state: each
	// account, from its phone at home, logs in once. Give it the seed and
	// sizes the run's workload uses, so that the run meets that state.
	Population population.Options
	// Span spreads the logins evenly over the span before now, so that
	// windows of up to a day hold them. Default 23h (riskd refuses events
	// older than its lateness bound, a day by default).
	Span time.Duration
	// Streams is how many Ingest streams run at once. Default 2.
	Streams int
	// Batch is how many events one IngestRequest carries. Default 1,000.
	Batch int
	// RunID prefixes every event id. Default: a fresh random id.
	RunID string
	// Progress, when set, is called after each message sent with the
	// events sent so far, one call at a time; it must return quickly.
	Progress func(sent int64)
}

// PopulateReport is what riskd said of a Populate.
type PopulateReport struct {
	Events     int           `json:"events"`
	Accepted   int64         `json:"accepted"`
	Duplicates int64         `json:"duplicates"`
	Rejected   int64         `json:"rejected"`
	Elapsed    time.Duration `json:"elapsed_ns"`
}

// Populate gives riskd the feature state of a population, as a store
// serving it holds: every account logs in once, successfully, from its phone
// at home, through riskd's Ingest (features, no rules, no decisions). The
// issue's targets are set for a store holding the state of 1M accounts and
// 1M devices; without this a run meets a store that holds only what the run
// itself wrote. It fails on the first error of a stream, and reports
// rejected events without failing (a rejected event is a bug to look at,
// not a reason to lose the rest).
func Populate(ctx context.Context, client Ingester, o PopulateOptions) (PopulateReport, error) {
	pop, err := population.New(o.Population)
	if err != nil {
		return PopulateReport{}, err
	}
	if o.Span <= 0 {
		o.Span = 23 * time.Hour
	}
	if o.Streams <= 0 {
		o.Streams = 2
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	n := pop.Options().Accounts
	rep := PopulateReport{Events: n}
	start := time.Now()
	var next, sent, accepted, duplicates, rejected atomic.Int64
	var progressMu sync.Mutex // the streams report one at a time
	var wg sync.WaitGroup
	errs := make([]error, o.Streams)
	for s := range o.Streams {
		wg.Go(func() {
			stream := client.Ingest(ctx)
			for {
				lo := int(next.Add(int64(o.Batch))) - o.Batch
				if lo >= n {
					break
				}
				req := &riskv1.IngestRequest{Events: make([]*riskv1.Event, 0, min(o.Batch, n-lo))}
				for i := lo; i < min(lo+o.Batch, n); i++ {
					req.Events = append(req.Events, HomeLogin(pop, i, o.RunID+"-pop-"+strconv.Itoa(i), start.Add(-o.Span+time.Duration(float64(o.Span)*float64(i)/float64(n)))))
				}
				if err := stream.Send(req); err != nil {
					// The server's answer says why the stream broke.
					_, rerr := stream.CloseAndReceive()
					errs[s] = fmt.Errorf("populate: stream %d: %w", s, errors.Join(err, rerr))
					return
				}
				if n := sent.Add(int64(len(req.Events))); o.Progress != nil {
					progressMu.Lock()
					o.Progress(n)
					progressMu.Unlock()
				}
			}
			res, err := stream.CloseAndReceive()
			if err != nil {
				errs[s] = fmt.Errorf("populate: stream %d: %w", s, err)
				return
			}
			accepted.Add(res.Msg.GetAccepted())
			duplicates.Add(res.Msg.GetDuplicates())
			rejected.Add(int64(len(res.Msg.GetErrors())))
		})
	}
	wg.Wait()
	rep.Accepted, rep.Duplicates, rep.Rejected = accepted.Load(), duplicates.Load(), rejected.Load()
	rep.Elapsed = time.Since(start)
	return rep, errors.Join(errs...)
}

// HomeLogin is account i's successful password login from its phone at
// home, at t, as event id: the one event that gives an account, its phone,
// its home address and its place feature state (Populate, and the engine's
// benchmarks).
func HomeLogin(pop *population.Population, i int, id string, t time.Time) *riskv1.Event {
	a := pop.Account(i)
	d := pop.Device(a.Phone())
	return &riskv1.Event{
		EventId: id, Type: riskv1.EventType_EVENT_TYPE_LOGIN,
		OccurredAt: timestamppb.New(t),
		AccountId:  a.ID, OrgId: pop.Org(a.Org).ID,
		Device:   &riskv1.Device{DeviceId: d.ID, Platform: d.Platform, Model: d.Model, OsVersion: d.OSVersion, AppVersion: d.AppVersion},
		Network:  &riskv1.Network{Ip: a.HomeIP.String(), Carrier: a.Carrier},
		Location: &riskv1.Location{Latitude: a.HomeLat, Longitude: a.HomeLon},
		Login:    &riskv1.Login{Success: true, Method: "password"},
	}
}
