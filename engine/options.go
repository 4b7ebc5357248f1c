package engine

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
	"github.com/riskd/riskd/rules"
)

// Options configures an Engine. The zero value of every field but DataDir
// and PseudonymKey means its documented default.
type Options struct {
	// DataDir holds the Pebble store. Required.
	DataDir string
	// FS is the filesystem under the store; default the OS's. Tests inject
	// faults through it.
	FS vfs.FS
	// PseudonymKey keys the HMAC that replaces identifiers. Required, ≥ 16 bytes.
	PseudonymKey []byte
	// OldPseudonymKeys are the keys that were current before a rotation,
	// newest first: new data uses PseudonymKey, lookups also try these (see
	// README "Key rotation").
	OldPseudonymKeys [][]byte
	// Retention is how long each class of stored record is kept; zero
	// fields mean the defaults (see Retention).
	Retention Retention
	// Catalog is the feature catalog; default features.DefaultCatalog().
	Catalog *features.Catalog
	// Rules, when set, is the rule set in force, overriding the rules
	// store's live version (tests inject compiled sets this way). Default
	// nil: the store's live version runs.
	Rules *rules.Set
	// RuleFiles bootstrap the rules store: published as version v1 when
	// the store has no version yet. Default rules.BundledFiles().
	RuleFiles []rules.File
	// MaxEventAge is the lateness bound: older events are rejected. Default 24h.
	MaxEventAge time.Duration
	// Budget bounds Evaluate from arrival to answer. Default 50ms.
	Budget time.Duration
	// FailModes is the outcome given per event type when Evaluate overruns
	// its budget or meets an internal fault. Types not listed use
	// DefaultFailModes.
	FailModes map[event.Type]rules.Outcome
	// AppealWindow is how long after a decision its subject may appeal.
	// Default 30 days.
	AppealWindow time.Duration
	// CacheEntries bounds the hot feature state kept in memory (entries).
	// Default: the features package's default.
	CacheEntries int
	// BacktestMaxStates is BacktestOptions.MaxStates when a backtest does
	// not set it. Default DefaultBacktestMaxStates.
	BacktestMaxStates int
	// FeatureFlushInterval is how often the feature store merges the
	// deltas of committed events into its state keys (features.Options
	// FlushInterval; they are durable before, in the events' batches).
	// Default 1s.
	FeatureFlushInterval time.Duration
	// MaxGroup bounds how many evaluations one group commit carries.
	// Default 512.
	MaxGroup int
	// MaxInFlight bounds the evaluations under way at once; past it Evaluate
	// sheds at once with ErrOverloaded instead of queueing without bound.
	// Default 256. Below it the limit adapts (admission.go): while the
	// smoothed time from arrival to answer exceeds AdmissionTarget, fewer
	// are admitted at once, down to MinInFlight.
	MaxInFlight int
	// MinInFlight is the adaptive limit's floor. Default 16 (at most
	// MaxInFlight); MaxInFlight turns adaptation off.
	MinInFlight int
	// AdmissionTarget is the smoothed time from arrival to answer above
	// which the admission limit shrinks. Default half the budget.
	AdmissionTarget time.Duration
	// MaxIngestEvents bounds the events Ingest holds in memory at once,
	// across all streams, from decoding to their synced commit. Past it
	// Ingest waits for room: senders see backpressure (their streams stop
	// being read), not errors. Default 32768: a few tens of MB.
	MaxIngestEvents int
	// IdempotencyFilterKeys bounds the idempotency keys (event ids within
	// Retention.Events) that the in-memory filter of recorded event ids
	// covers; it spares most new ids a point read (see seen.go). The
	// filter takes 2 bytes a key for twice the keys found when it was
	// built (at least 2 MiB; up to 4 bytes a key covered, twice that while
	// it is rebuilt). A store with more keys has no filter and reads for
	// every id. Default DefaultIdempotencyFilterKeys (at most 32 MiB);
	// negative: no filter.
	IdempotencyFilterKeys int
	// DeviceProfileHorizon is how long a device's DEVICE_REPORT profile
	// fills later events from that device (see features.Profiles). Default
	// features.DefaultProfileHorizon (30 days).
	DeviceProfileHorizon time.Duration
	// Observer is told about group commits (for metrics); may be nil.
	Observer Observer
	// Clock tells event-time "now"; default the system clock.
	Clock clock.Clock
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger

	seenFilterMin int // the idempotency filter's smallest capacity (tests)
}

// DefaultFailModes are the fail modes of issue "riskd scores an event end to
// end": let a login or a page view through, hold money and check-ins for review.
var DefaultFailModes = map[event.Type]rules.Outcome{
	event.Login:         rules.Allow,
	event.Register:      rules.Allow,
	event.PasswordReset: rules.Review,
	event.Payment:       rules.Review,
	event.Attendance:    rules.Review,
	event.DeviceReport:  rules.Allow,
	event.ServiceLog:    rules.Allow,
}

// Default values.
const (
	DefaultMaxEventAge     = 24 * time.Hour
	DefaultBudget          = 50 * time.Millisecond
	DefaultAppealWindow    = 30 * 24 * time.Hour
	DefaultMaxGroup        = 512
	DefaultMaxInFlight     = 256
	DefaultMinInFlight     = 16
	DefaultMaxIngestEvents = 32768
	// DefaultIdempotencyFilterKeys: 30 days of idempotency keys at about 3
	// events a second.
	DefaultIdempotencyFilterKeys = 8 << 20
)

// Observer receives the engine's operational events. Implementations must be
// cheap and safe for concurrent use.
type Observer interface {
	// GroupCommitted reports one synced group commit: how many callers it
	// served and how long the commit took.
	GroupCommitted(size int, took time.Duration)
	// WriteStall reports that Pebble began stalling writes.
	WriteStall(reason string)
}

func (o *Options) ensureDefaults() error {
	if o.DataDir == "" {
		return fmt.Errorf("engine: Options.DataDir is required")
	}
	if len(o.PseudonymKey) < 16 {
		return fmt.Errorf("engine: Options.PseudonymKey must be at least 16 bytes")
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Catalog == nil {
		o.Catalog = features.DefaultCatalog()
	}
	if o.FeatureFlushInterval <= 0 {
		o.FeatureFlushInterval = time.Second
	}
	if o.MaxEventAge <= 0 {
		o.MaxEventAge = DefaultMaxEventAge
	}
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.AppealWindow <= 0 {
		o.AppealWindow = DefaultAppealWindow
	}
	if o.MaxGroup <= 0 {
		o.MaxGroup = DefaultMaxGroup
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MinInFlight <= 0 {
		o.MinInFlight = DefaultMinInFlight
	}
	o.MinInFlight = min(o.MinInFlight, o.MaxInFlight)
	if o.AdmissionTarget <= 0 {
		o.AdmissionTarget = o.Budget / 2
	}
	if o.MaxIngestEvents <= 0 {
		o.MaxIngestEvents = DefaultMaxIngestEvents
	}
	if o.IdempotencyFilterKeys == 0 {
		o.IdempotencyFilterKeys = DefaultIdempotencyFilterKeys
	}
	if err := o.Retention.ensureDefaults(o.MaxEventAge); err != nil {
		return err
	}
	o.Clock = clock.Or(o.Clock)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	modes := make(map[event.Type]rules.Outcome, len(DefaultFailModes))
	for t, m := range DefaultFailModes {
		modes[t] = m
	}
	for t, m := range o.FailModes {
		if m < rules.Allow || m > rules.Deny {
			return fmt.Errorf("engine: fail mode for %s: outcome %d out of range", t, m)
		}
		modes[t] = m
	}
	o.FailModes = modes
	return nil
}
