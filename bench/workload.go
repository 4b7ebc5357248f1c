package bench

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/bench/population"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultStart is the stream's start when Options.Start is zero: a Monday
// 09:00 in China.
var DefaultStart = time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC)

// Options configure a Workload. The zero value is a two-hour stream over a
// 10,000-account population at seed 0.
type Options struct {
	// Seed makes the population and the stream.
	Seed uint64
	// Population sizes the world; its Seed is ignored (Seed above is used).
	Population population.Options
	// Start is the first instant of the stream. Default DefaultStart. Events
	// are stamped Start + offset; nothing else depends on Start.
	Start time.Time
	// Duration is the simulated span. Default 2h.
	Duration time.Duration
	// Rate is the mean benign events per simulated second. Default
	// Accounts/1000 (at least 1): a few events per account per hour.
	Rate float64
	// AttackRate multiplies every attack's share of Rate: 2 doubles the
	// attacks, 0.5 halves them. Default 1; NoAttacks turns them off.
	AttackRate float64
	// NoAttacks generates benign traffic only.
	NoAttacks bool
	// Mix overrides scenarios' default fractions of Rate (see Scenarios); a
	// zero fraction disables a scenario.
	Mix map[Scenario]float64
}

// Validate reports options that cannot make a stream.
func (o Options) Validate() error {
	switch {
	case o.Duration < 0:
		return errors.New("bench: duration must not be negative")
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return errors.New("bench: rate must be a non-negative number")
	case o.AttackRate < 0 || math.IsNaN(o.AttackRate) || math.IsInf(o.AttackRate, 0):
		return errors.New("bench: attack rate must be a non-negative number")
	}
	for s, f := range o.Mix {
		if _, ok := Lookup(s); !ok {
			return fmt.Errorf("bench: unknown scenario %q in mix", s)
		}
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("bench: fraction of %s must be a non-negative number", s)
		}
	}
	return o.Population.Validate()
}

// Source is what consumers of a labelled stream read: the next event and its
// label, or false at the end.
type Source interface {
	Next() (*riskv1.Event, Label, bool)
}

// Workload is a labelled event stream. Not safe for concurrent use.
type Workload struct {
	opts     Options
	pop      *population.Population
	end      int64 // ns offset past the last event
	h        itemHeap
	seq      uint64 // push order: breaks ties deterministically
	emitted  uint64
	sessions uint64
	arrivals *rand.Rand
	rates    []float64 // sessions per second, per registry entry
	idTag    string
	// busy holds accounts an attack session owns until an offset, so that
	// benign traffic does not touch them meanwhile (a victim's own login
	// right after a far-away takeover would itself look like impossible
	// travel). Pruned as time passes, so it stays as small as the attacks in
	// flight.
	busy      map[int]int64
	lastPrune int64
	fresh     int // counter for identities outside the population
}

// New returns the workload for opts.
func New(opts Options) (*Workload, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	popOpts := opts.Population
	popOpts.Seed = opts.Seed
	pop, err := population.New(popOpts)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart
	}
	if opts.Duration == 0 {
		opts.Duration = 2 * time.Hour
	}
	if opts.Rate == 0 {
		opts.Rate = max(1, float64(pop.Options().Accounts)/1000)
	}
	if opts.AttackRate == 0 {
		opts.AttackRate = 1
	}
	w := &Workload{
		opts:     opts,
		pop:      pop,
		end:      int64(opts.Duration),
		arrivals: rand.New(rand.NewPCG(opts.Seed, 0x61727269)),
		busy:     map[int]int64{},
	}
	tag := rand.New(rand.NewPCG(opts.Seed, 0x7461)).Uint32()
	w.idTag = fmt.Sprintf("evt-%08x-", tag)
	w.rates = make([]float64, len(registry))
	for i, s := range registry {
		f := s.Fraction
		if v, ok := opts.Mix[s.Name]; ok {
			f = v
		}
		if s.Attack {
			if opts.NoAttacks {
				f = 0
			}
			f *= opts.AttackRate
		}
		w.rates[i] = f * opts.Rate / s.perSession
		if w.rates[i] <= 0 {
			continue
		}
		// Every enabled scenario starts at least once early on, so that even
		// a short run has each (the quality report needs them all); long
		// attacks then have time to unfold. Later arrivals are Poisson.
		var first float64
		if s.Attack {
			first = (0.02 + 0.23*w.arrivals.Float64()) * opts.Duration.Seconds()
		} else {
			first = min(w.arrivals.ExpFloat64()/w.rates[i], 0.5*w.arrivals.Float64()*opts.Duration.Seconds())
		}
		w.pushArrival(i, int64(first*1e9))
	}
	return w, nil
}

// Population returns the world the stream acts in.
func (w *Workload) Population() *population.Population { return w.pop }

// Options returns the options in force, defaults filled in.
func (w *Workload) Options() Options { return w.opts }

// Start and End bound the stream's timestamps: Start <= t < End.
func (w *Workload) Start() time.Time { return w.opts.Start }

// End is Start + Duration.
func (w *Workload) End() time.Time { return w.opts.Start.Add(w.opts.Duration) }

// Emitted is the number of events Next has returned.
func (w *Workload) Emitted() uint64 { return w.emitted }

// Next returns the next event in time order and its label, or false when
// the stream has ended. The event is new and owned by the caller.
func (w *Workload) Next() (*riskv1.Event, Label, bool) {
	for w.h.Len() > 0 {
		it := heap.Pop(&w.h).(*item)
		if it.fn != nil {
			it.fn()
			continue
		}
		if it.ev == nil {
			w.arrive(it)
			continue
		}
		id := w.idTag + eventSeq(w.emitted)
		w.emitted++
		it.ev.EventId = id
		t := w.opts.Start.Add(time.Duration(it.at))
		it.ev.OccurredAt = timestamppb.New(t)
		it.label.EventID = id
		return it.ev, it.label, true
	}
	return nil, Label{}, false
}

func (w *Workload) pushArrival(scen int, at int64) {
	if at >= w.end {
		return
	}
	w.seq++
	heapPush(&w.h, &item{at: at, seq: w.seq, scen: scen})
}

// arrive starts a session of the arriving scenario and schedules the next.
func (w *Workload) arrive(it *item) {
	w.pruneBusy(it.at)
	w.sessions++
	s := &session{
		w:    w,
		r:    rand.New(rand.NewPCG(w.opts.Seed^0x5e55, w.sessions)),
		now:  it.at,
		info: registry[it.scen],
	}
	s.info.run(s)
	next := it.at + int64(w.arrivals.ExpFloat64()/w.rates[it.scen]*1e9)
	w.pushArrival(it.scen, max(next, it.at+1))
}

func (w *Workload) pruneBusy(now int64) {
	if now-w.lastPrune < int64(10*time.Minute) {
		return
	}
	w.lastPrune = now
	for a, until := range w.busy {
		if until <= now {
			delete(w.busy, a)
		}
	}
}

// item is a heap entry: an event to emit, a session's continuation (fn), or
// (neither) a scenario arrival.
type item struct {
	at    int64 // ns offset from Start
	seq   uint64
	ev    *riskv1.Event
	label Label
	fn    func()
	scen  int
}

type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return it
}

func heapPush(h *itemHeap, it *item) { heap.Push(h, it) }

// eventSeq is n zero-padded to nine digits (ids sort as the stream does up to
// a billion events; past that they stay unique, just longer).
func eventSeq(n uint64) string {
	if n < 1_000_000_000 {
		return strconv.FormatUint(1_000_000_000+n, 10)[1:]
	}
	return strconv.FormatUint(n, 10)
}
