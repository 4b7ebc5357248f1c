package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/decisions"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/features/lists"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/internal/keys"
	"github.com/riskd/riskd/internal/tablefs"
	"github.com/riskd/riskd/rules"
)

// Sentinel errors callers branch on.
var (
	// ErrOverloaded: as many evaluations are under way as the admission
	// limit allows (at most Options.MaxInFlight; fewer while answers are
	// slow, see admission.go); the caller should back off and retry.
	ErrOverloaded = errors.New("engine: overloaded")
	// ErrIngested: the event id was recorded by Ingest, which decides
	// nothing, so there is no decision to return and evaluating it now
	// would count it twice.
	ErrIngested = errors.New("engine: event id already ingested without a decision")
)

// Engine evaluates and records events. Create it with Open.
type Engine struct {
	opts  Options
	clock clock.Clock
	log   *slog.Logger

	db       *pebble.DB
	norm     *ingest.Normalizer
	features *features.Store
	// defs is the catalog's definitions, copied once: Catalog.Defs copies
	// them on every call, which was a quarter of an evaluation's bytes.
	defs      []features.Def
	profiles  *features.Profiles
	decisions *decisions.Log
	committer *committer
	seen      *seenFilter // nil when Options.IdempotencyFilterKeys < 0

	// rules, when set, overrides the rules store's live set (Options.Rules,
	// SetRules); nil lets ruleStore's live set decide.
	rules     atomic.Pointer[rules.Set]
	ruleStore *rules.Store
	lst       *lists.Lists

	inflight inflight
	// slots bounds evaluations under way; a full channel sheds, and so
	// does admission's adaptive limit below it.
	slots     chan struct{}
	admission *admission
	// ingestSem bounds the events Ingest holds; a full one makes ingest wait.
	ingestSem   *weighted
	writeStalls atomic.Int64
	// overranLog and stalledLog write the per-request budget lines at most
	// once a second (throttle.go).
	overranLog, stalledLog *throttledLog

	priv privacy // retention sweeps and the access audit (retention.go, audit.go)

	stop   context.CancelFunc
	bg     sync.WaitGroup
	closed atomic.Bool
}

// Open opens (or creates) the store in opts.DataDir and starts the committer.
func Open(opts Options) (*Engine, error) {
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, clock: opts.Clock, log: opts.Logger, defs: opts.Catalog.Defs()}
	e.overranLog = newThrottledLog(opts.Logger, slog.LevelWarn, "evaluate overran its budget", time.Second)
	e.stalledLog = newThrottledLog(opts.Logger, slog.LevelError, "store stalled past the evaluate budget", time.Second)
	var err error
	e.norm, err = ingest.New(ingest.Options{PseudonymKey: opts.PseudonymKey, OldKeys: opts.OldPseudonymKeys, Clock: opts.Clock, MaxEventAge: opts.MaxEventAge})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if opts.Rules != nil {
		e.rules.Store(opts.Rules)
	}

	listener := pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			e.writeStalls.Add(1)
			opts.Logger.Warn("store is stalling writes", "reason", info.Reason)
			if opts.Observer != nil {
				opts.Observer.WriteStall(info.Reason)
			}
		},
	}
	if opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
		// To line slow answers up with the store's background work.
		listener.FlushBegin = func(info pebble.FlushInfo) { opts.Logger.Debug("store flush began", "job", info.JobID) }
		listener.FlushEnd = func(info pebble.FlushInfo) { opts.Logger.Debug("store flushed", "info", info.String()) }
		listener.CompactionBegin = func(info pebble.CompactionInfo) {
			opts.Logger.Debug("store compaction began", "job", info.JobID, "reason", info.Reason)
		}
		listener.CompactionEnd = func(info pebble.CompactionInfo) { opts.Logger.Debug("store compacted", "info", info.String()) }
	}
	popts := &pebble.Options{
		FS:            tablefs.New(opts.FS), // tables written in 256 KiB calls, not 4 KiB
		Merger:        features.Merger(),
		Logger:        pebbleLogger{opts.Logger},
		EventListener: &listener,
		// Ingest at volume: a block cache that holds the hot feature state
		// and larger memtables (fewer, larger flushes and L0 files) keep
		// point reads off the disk; see README "Performance".
		Cache:        pebble.NewCache(256 << 20),
		MemTableSize: 64 << 20,
	}
	defer popts.Cache.Unref()
	features.ConfigureDB(popts) // bloom filters: most state reads miss
	e.db, err = pebble.Open(opts.DataDir, popts)
	if err != nil {
		return nil, fmt.Errorf("engine: open store %s: %w", opts.DataDir, err)
	}
	fail := func(err error) (*Engine, error) {
		if e.decisions != nil {
			_ = e.decisions.Close()
		}
		if e.features != nil {
			_ = e.features.Close() // stops its flusher before the DB closes
		}
		_ = e.db.Close()
		return nil, err
	}
	// Lists pseudonymize identifier values with the ingest kinds
	// (ingest.KindAccount ...), so that they match what events carry.
	e.lst, err = lists.Open(lists.Options{DB: e.db, Pseudonymizer: e.norm, Clock: opts.Clock})
	if err != nil {
		return fail(fmt.Errorf("engine: lists: %w", err))
	}
	if err := e.lst.EnsureDefaults(); err != nil {
		return fail(fmt.Errorf("engine: default lists: %w", err))
	}
	e.features, err = features.Open(features.Options{
		DB: e.db, Catalog: opts.Catalog, Lists: e.lst, CacheEntries: opts.CacheEntries,
		Clock: opts.Clock, Lateness: opts.MaxEventAge,
		Aliases:       e.featureAliases(),
		FlushInterval: opts.FeatureFlushInterval,
		Logger:        opts.Logger,
	})
	if err != nil {
		return fail(fmt.Errorf("engine: features: %w", err))
	}
	// Published versions live in the store; the configured files only
	// bootstrap an empty one.
	e.ruleStore, err = rules.OpenStore(rules.StoreOptions{
		DB: e.db, Features: opts.Catalog.Defs(), Clock: opts.Clock, Bootstrap: opts.RuleFiles,
	})
	if err != nil {
		return fail(fmt.Errorf("engine: rules: %w", err))
	}
	e.profiles, err = features.OpenProfiles(features.ProfileOptions{DB: e.db, Horizon: opts.DeviceProfileHorizon})
	if err != nil {
		return fail(fmt.Errorf("engine: device profiles: %w", err))
	}
	e.decisions, err = decisions.Open(e.db, decisions.Options{
		Clock: opts.Clock, AppealWindow: opts.AppealWindow, Logger: opts.Logger,
		Commit: func(fn func(b *pebble.Batch) error) error { return e.Commit(context.Background(), fn) },
	})
	if err != nil {
		return fail(fmt.Errorf("engine: decisions: %w", err))
	}
	e.seen = newSeenFilter(e.db, opts.Logger, opts.IdempotencyFilterKeys, opts.seenFilterMin)
	e.committer = newCommitter(e.db, opts.MaxGroup, e.decisions, e.seen, opts.Observer, func(err error) {
		popts.Logger.Fatalf("engine: WAL sync failed: %v", err) // as Pebble's synced Commit would
	})
	e.slots = make(chan struct{}, opts.MaxInFlight)
	e.admission = newAdmission(opts.MinInFlight, opts.MaxInFlight, opts.AdmissionTarget)
	e.ingestSem = newWeighted(int64(opts.MaxIngestEvents))
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	e.bg.Add(1)
	go e.sweepLoop(ctx)
	return e, nil
}

// Close stops background work, commits what is queued and closes the store.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	e.stop()
	e.bg.Wait()
	e.committer.close()
	// After the committer: every Apply has settled, so the last flush
	// merges every delta.
	if err := e.features.Close(); err != nil {
		e.log.Error("flushing feature state", "err", err)
	}
	e.seen.close()
	if err := e.decisions.Close(); err != nil {
		e.log.Error("closing the decision log", "err", err)
	}
	return e.db.Close()
}

// Stats are the engine's own counters, for metrics.
type Stats struct {
	InFlight int
	// InFlightLimit is the adaptive admission limit now (admission.go).
	InFlightLimit int
	GroupCommits  int64
	Committed     int64
	WriteStalls   int64
	// IngestHeld is the events Ingest holds now (≤ Options.MaxIngestEvents).
	IngestHeld int64
}

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		InFlight:      len(e.slots),
		InFlightLimit: int(e.admission.limit.Load()),
		GroupCommits:  e.committer.groups.Load(),
		Committed:     e.committer.committed.Load(),
		WriteStalls:   e.writeStalls.Load(),
		IngestHeld:    e.ingestSem.held(),
	}
}

// Writes is what the store has written since it opened: its WAL, the
// tables its flushes wrote and its compactions' output. Their bytes per
// evaluation or ingested event are most of the background CPU.
type Writes struct {
	WAL, Flushed, Compacted uint64
}

// Writes returns the store's bytes written so far.
func (e *Engine) Writes() Writes {
	m := e.db.Metrics()
	w := Writes{WAL: m.WAL.BytesWritten}
	for _, l := range m.Levels {
		w.Flushed += l.TableBytesFlushed
		w.Compacted += l.TableBytesCompacted
	}
	return w
}

// DB exposes the store, for operators' tools and tests that walk it.
func (e *Engine) DB() *pebble.DB { return e.db }

// Decisions is the decision log.
func (e *Engine) Decisions() *decisions.Log { return e.decisions }

// Features is the feature store.
func (e *Engine) Features() *features.Store { return e.features }

// Normalizer is the edge's validator and pseudonymizer.
func (e *Engine) Normalizer() *ingest.Normalizer { return e.norm }

// Rules returns the rule set in force: the one SetRules or Options.Rules
// installed, else the rules store's live version.
func (e *Engine) Rules() *rules.Set {
	if s := e.rules.Load(); s != nil {
		return s
	}
	return e.ruleStore.Live()
}

// SetRules swaps the rule set in force atomically: an evaluation uses
// exactly one set, and none waits for the swap. A set given here overrides
// the rules store (tests inject sets this way); SetRules(nil) hands control
// back to the store's live version.
func (e *Engine) SetRules(s *rules.Set) { e.rules.Store(s) }

// RuleStore keeps the published rule-set versions, drafts and their
// history; publishing, rolling back or changing a mode there changes what
// Evaluate runs (unless SetRules overrides it).
func (e *Engine) RuleStore() *rules.Store { return e.ruleStore }

// Clock is the engine's clock (event-time "now"), for handlers that judge
// expiries the way the engine does.
func (e *Engine) Clock() clock.Clock { return e.clock }

// Lists is the named lists store rules and features consult.
func (e *Engine) Lists() *lists.Lists { return e.lst }

// lists is what rules consult for named lists. An untyped nil when there
// is no store, so that a nil check on the interface works.
func (e *Engine) lists() rules.Lists {
	if e.lst == nil {
		return nil
	}
	return e.lst
}

// Commit runs fn in the committer goroutine, in commit order, and commits
// what it writes with everything else waiting, synced. Appeals, labels and
// erasures use it so that their chain entries are ordered with decisions.
func (e *Engine) Commit(ctx context.Context, fn func(b *pebble.Batch) error) error {
	return e.committer.commit(ctx, nil, fn)
}

func (e *Engine) sweepLoop(ctx context.Context) {
	defer e.bg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Retention: expired events, decisions, appeals, audit and
			// device profiles, then unreachable feature state.
			if _, err := e.SweepRetention(e.clock.Now()); err != nil {
				e.log.Warn("retention sweep failed", "err", err)
			}
		}
	}
}

// seenKey is the idempotency key of an event id. The id is the caller's and
// may carry personal data, so it is keyed by its pseudonym.
func (e *Engine) seenKey(eventID string) []byte {
	p := e.norm.Pseudonym("event_id", eventID)
	k := make([]byte, 0, 1+len(p))
	return append(append(k, keys.EventSeen), p...)
}

// lookupSeen returns the decision stored for an event id, (nil, true) for an
// event ingested without a decision, and (nil, false) for a new event. key
// is seenKey(eventID); during a key rotation a miss tries the old keys. An
// id the idempotency filter has never seen is new without a read.
func (e *Engine) lookupSeen(key []byte, eventID string) (*riskv1.Decision, bool, error) {
	// The id's keys under a rotation's old keys (nil without one), computed
	// at most once and only when the current key does not settle it.
	var old [][]byte
	if !e.seen.mayContain(key) {
		if old = e.oldSeenKeys(eventID); !slices.ContainsFunc(old, e.seen.mayContain) {
			return nil, false, nil
		}
	}
	v, closer, err := e.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) && old == nil {
		old = e.oldSeenKeys(eventID)
	}
	for i := 0; errors.Is(err, pebble.ErrNotFound) && i < len(old); i++ {
		v, closer, err = e.db.Get(old[i])
	}
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("engine: idempotency lookup: %w", err)
	}
	id := string(v)
	_ = closer.Close()
	if id == "" {
		return nil, true, nil
	}
	d, err := e.decisions.Get(id)
	if err != nil {
		return nil, true, fmt.Errorf("engine: stored decision %s: %w", id, err)
	}
	return d, true, nil
}

// featureMap turns a feature vector into the Decision's map: every
// applicable feature, absent values as null. The values and their oneof
// wrappers come from one slice per kind, not an allocation each.
func featureMap(defs []features.Def, v features.Vector) map[string]*structpb.Value {
	var nulls, bools, nums int
	for i, d := range defs {
		switch {
		case i >= len(v) || !v[i].Applicable:
		case !v[i].Present:
			nulls++
		case d.Kind == features.KindBool:
			bools++
		default:
			nums++
		}
	}
	m := make(map[string]*structpb.Value, nulls+bools+nums)
	vals := make([]structpb.Value, nulls+bools+nums)
	nullK := make([]structpb.Value_NullValue, nulls)
	boolK := make([]structpb.Value_BoolValue, bools)
	numK := make([]structpb.Value_NumberValue, nums)
	for i, d := range defs {
		if i >= len(v) || !v[i].Applicable {
			continue
		}
		val, out := v[i], &vals[0]
		vals = vals[1:]
		switch {
		case !val.Present:
			out.Kind, nullK = &nullK[0], nullK[1:]
		case d.Kind == features.KindBool:
			boolK[0].BoolValue = val.Bool
			out.Kind, boolK = &boolK[0], boolK[1:]
		case d.Kind == features.KindFloat:
			numK[0].NumberValue = val.Float
			out.Kind, numK = &numK[0], numK[1:]
		default:
			numK[0].NumberValue = float64(val.Int)
			out.Kind, numK = &numK[0], numK[1:]
		}
		m[d.Name] = out
	}
	return m
}

// categories names the kinds of personal information a decision used: the
// categories of every applicable feature, and those of the parts of the
// event the caller sent.
func categories(ev *event.Event, defs []features.Def, v features.Vector) []string {
	var set [5]bool // device, network, location, behaviour, payment
	names := [5]string{"device", "network", "location", "behaviour", "payment"}
	mark := func(c string) {
		for i, n := range names {
			if n == c {
				set[i] = true
			}
		}
	}
	if ev.Has.Device {
		mark("device")
	}
	if ev.Has.Network {
		mark("network")
	}
	if ev.Has.Location {
		mark("location")
	}
	if ev.Has.Payment {
		mark("payment")
	}
	if ev.Has.Login || ev.Has.ServiceLog || ev.Has.Attendance {
		mark("behaviour")
	}
	for i, d := range defs {
		if i < len(v) && v[i].Applicable {
			for _, c := range d.Categories {
				mark(c)
			}
		}
	}
	out := make([]string, 0, 5)
	for i, ok := range set {
		if ok {
			out = append(out, names[i])
		}
	}
	return out
}

func reasonsPB(rs []rules.Reason) []*riskv1.Reason {
	if len(rs) == 0 {
		return nil
	}
	out := make([]*riskv1.Reason, len(rs))
	for i, r := range rs {
		out[i] = &riskv1.Reason{
			RuleId: r.RuleID, RuleVersion: r.RuleVersion, Action: r.Action, Score: r.Score,
			MessageEn: r.MessageEN, MessageZh: r.MessageZH, Expression: r.Expression,
		}
	}
	return out
}

// newDecision fills the fields every decision shares. The decision and its
// timestamps are one allocation.
func (e *Engine) newDecision(ev *event.Event, stored *riskv1.Event, now time.Time) *riskv1.Decision {
	a := &struct {
		d                 riskv1.Decision
		decided, deadline timestamppb.Timestamp
	}{}
	a.decided.Seconds, a.decided.Nanos = now.Unix(), int32(now.Nanosecond())
	due := now.Add(e.opts.AppealWindow)
	a.deadline.Seconds, a.deadline.Nanos = due.Unix(), int32(due.Nanosecond())
	d := &a.d
	d.DecisionId = decisions.NewID(now)
	d.EventId = ev.EventID
	d.AccountId = ev.AccountID
	d.DecidedAt = &a.decided
	d.AppealDeadline = &a.deadline
	d.FullyAutomated = true
	d.Event = stored
	d.EventType = riskv1.EventType(ev.Type)
	d.OccurredAt = stored.GetOccurredAt()
	return d
}

func (e *Engine) degrade(d *riskv1.Decision, t event.Type, why string) {
	d.Outcome = riskv1.Outcome(e.opts.FailModes[t])
	d.Degraded = true
	d.DegradedReason = why
	d.Score = 0
	d.Reasons = nil
	d.ShadowReasons = nil
}

func durationPB(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
