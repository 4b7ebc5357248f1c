package load

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/internal/clock"
)

// Source yields the events a run sends. Next returns false when the source is
// exhausted, which ends the run early. The caller owns the returned event and
// may modify it (Run overwrites event_id and occurred_at). Run calls Next from
// one goroutine at a time, so a Source need not be safe for concurrent use.
type Source interface {
	Next() (*riskv1.Event, bool)
}

// labelled is the shape of bench's workload iterator: each event comes with
// its ground-truth label, which a load run does not need.
type labelled[L any] interface {
	Next() (*riskv1.Event, L, bool)
}

type unlabelled[L any] struct{ it labelled[L] }

func (u unlabelled[L]) Next() (*riskv1.Event, bool) {
	ev, _, ok := u.it.Next()
	return ev, ok
}

// Unlabel adapts a labelled workload iterator (bench's generator) to a Source.
func Unlabel[L any](it labelled[L]) Source { return unlabelled[L]{it} }

// RandomOptions configures RandomSource. The zero value works.
type RandomOptions struct {
	// Accounts and Devices size the population. Default 10,000 each.
	Accounts, Devices int
	// Seed makes the sequence reproducible. Zero picks a random seed.
	Seed uint64
	// Clock stamps occurred_at. Default: the real clock.
	Clock clock.Clock
}

// RandomSource is a simple built-in workload: about half logins (most of them
// successful), a third payments and the rest attendance check-ins, spread
// uniformly over the population, each account mostly on its own device. It
// has no attack scenarios; bench's generator does.
type RandomSource struct {
	opts RandomOptions
	rng  *rand.Rand
	seq  uint64
}

// NewRandomSource returns a RandomSource.
func NewRandomSource(o RandomOptions) *RandomSource {
	if o.Accounts <= 0 {
		o.Accounts = 10_000
	}
	if o.Devices <= 0 {
		o.Devices = 10_000
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	o.Clock = clock.Or(o.Clock)
	return &RandomSource{opts: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
}

var (
	platforms = []string{"android", "ios", "harmonyos", "web"}
	models    = []string{"Pixel 8", "iPhone 15", "Mate 60", "Galaxy S24", "Redmi Note 13"}
	methods   = []string{"password", "sms", "sso", "qr", "biometric"}
	kinds     = []string{"order", "transfer", "red_packet", "withdrawal"}
	checkins  = []string{"gps", "wifi", "beacon", "face", "qr"}
)

// Next returns a fresh event; it never runs out.
func (s *RandomSource) Next() (*riskv1.Event, bool) {
	r := s.rng
	s.seq++
	acct := r.IntN(s.opts.Accounts)
	dev := acct % s.opts.Devices
	if r.IntN(10) == 0 { // now and then an account shows up on another device
		dev = r.IntN(s.opts.Devices)
	}
	ev := &riskv1.Event{
		EventId:    fmt.Sprintf("rand-%d", s.seq),
		OccurredAt: timestamppb.New(s.opts.Clock.Now()),
		AccountId:  fmt.Sprintf("acct-%07d", acct),
		OrgId:      fmt.Sprintf("org-%03d", acct%100),
		Device: &riskv1.Device{
			DeviceId:   fmt.Sprintf("dev-%07d", dev),
			Platform:   platforms[dev%len(platforms)],
			Model:      models[dev%len(models)],
			OsVersion:  "14",
			AppVersion: "8.2.1",
			Timezone:   "Asia/Shanghai",
			Language:   "zh-CN",
		},
		Network: &riskv1.Network{
			Ip:        fmt.Sprintf("10.%d.%d.%d", acct>>16&0xff, acct>>8&0xff, r.IntN(4)+acct&0xfc),
			UserAgent: "riskbench/1",
		},
		Location: &riskv1.Location{
			Latitude:  31.2 + float64(acct%1000)/10_000 + r.Float64()/1000,
			Longitude: 121.4 + float64(acct%997)/10_000 + r.Float64()/1000,
			AccuracyM: 20,
			Provider:  "fused",
		},
	}
	switch n := r.IntN(100); {
	case n < 50:
		ev.Type = riskv1.EventType_EVENT_TYPE_LOGIN
		ev.Login = &riskv1.Login{Success: r.IntN(100) < 90, Method: methods[r.IntN(len(methods))]}
		if !ev.Login.Success {
			ev.Login.FailureReason = "bad_password"
		}
	case n < 80:
		ev.Type = riskv1.EventType_EVENT_TYPE_PAYMENT
		ev.Payment = &riskv1.Payment{
			AmountMinor:    int64(100 + r.IntN(500_000)),
			Currency:       "CNY",
			Kind:           kinds[r.IntN(len(kinds))],
			PayeeAccountId: fmt.Sprintf("acct-%07d", r.IntN(s.opts.Accounts)),
			InstrumentId:   fmt.Sprintf("card-%07d", acct),
		}
	default:
		ev.Type = riskv1.EventType_EVENT_TYPE_ATTENDANCE
		ev.Attendance = &riskv1.Attendance{
			SiteId: fmt.Sprintf("site-%03d", acct%50),
			Method: checkins[r.IntN(len(checkins))],
		}
	}
	return ev, true
}

// stamp makes ev unique within the run and current: the run id prefixes the
// sequence number (so reruns never hit riskd's idempotency store) and
// occurred_at is the send time.
func stamp(ev *riskv1.Event, runID string, seq int64, now time.Time) {
	ev.EventId = runID + "-" + strconv.FormatInt(seq, 10)
	ev.OccurredAt = timestamppb.New(now)
}

// Replay is a Source that plays back events read up front from another
// source, over and over. It takes a generator's cost out of the measured
// run: bench's workload costs tens of microseconds an event, which on a
// small machine would compete with the server for CPU. The recorded events
// are kept encoded, in one buffer without pointers, and each Next decodes a
// fresh copy: tens of thousands of events kept as messages made a heap that
// every one of the load generator's collections had to mark (tens of
// milliseconds, on the machine the server shares), which showed up as
// latency spikes in open-loop runs. Run restamps the id and time, so repeats
// are distinct events to the server.
type Replay struct {
	buf  []byte  // the recorded events, encoded one after another
	ends []int32 // where each event ends in buf
	i    int
}

// NewReplay reads up to n events from src. It fails only if src yields none.
func NewReplay(src Source, n int) (*Replay, error) {
	r := &Replay{ends: make([]int32, 0, n)}
	for len(r.ends) < n {
		ev, ok := src.Next()
		if !ok || ev == nil {
			break
		}
		var err error
		r.buf, err = proto.MarshalOptions{}.MarshalAppend(r.buf, ev)
		if err != nil {
			return nil, fmt.Errorf("load: replay: %w", err)
		}
		if len(r.buf) > math.MaxInt32 {
			return nil, errors.New("load: replay: recorded events exceed 2 GiB")
		}
		r.ends = append(r.ends, int32(len(r.buf)))
	}
	if len(r.ends) == 0 {
		return nil, errors.New("load: replay: the source yielded no events")
	}
	return r, nil
}

// Len is the number of recorded events.
func (r *Replay) Len() int { return len(r.ends) }

// Next returns a fresh copy of the next recorded event; it never runs out.
func (r *Replay) Next() (*riskv1.Event, bool) {
	start := 0
	if r.i > 0 {
		start = int(r.ends[r.i-1])
	}
	b := r.buf[start:r.ends[r.i]]
	r.i = (r.i + 1) % len(r.ends)
	ev := new(riskv1.Event)
	if err := proto.Unmarshal(b, ev); err != nil {
		// NewReplay encoded it: the buffer cannot be corrupt.
		panic(fmt.Sprintf("load: replay: decoding a recorded event: %v", err))
	}
	return ev, true
}
