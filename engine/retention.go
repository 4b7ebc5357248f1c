package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/ingest"
	"github.com/riskd/riskd/internal/keys"
)

// Retention is how long each class of stored record is kept. Every key in
// the store belongs to one class (RetentionClasses names them all); the
// engine's sweeper deletes what has expired, once a minute, with range
// deletions over time-ordered keys.
type Retention struct {
	// Events: stored events and their idempotency keys. Default 30 days;
	// at least the lateness bound (an event id must be remembered as long as
	// the event may still arrive).
	Events time.Duration
	// Decisions: decision records, their chain entries, indexes and labels.
	// Default 3 years.
	Decisions time.Duration
	// Appeals: appeal records and their indexes, from filing. Default 3 years.
	Appeals time.Duration
	// Audit: the access audit. Default 3 years.
	Audit time.Duration
	// DeviceProfiles: the latest DEVICE_REPORT per device. Default 30 days
	// (the profile horizon: an older profile no longer fills events).
	DeviceProfiles time.Duration
}

// Default retention periods.
const (
	DefaultRetainEvents         = 30 * 24 * time.Hour
	DefaultRetainDecisions      = 3 * 365 * 24 * time.Hour
	DefaultRetainAppeals        = 3 * 365 * 24 * time.Hour
	DefaultRetainAudit          = 3 * 365 * 24 * time.Hour
	DefaultRetainDeviceProfiles = 30 * 24 * time.Hour
)

func (r *Retention) ensureDefaults(maxEventAge time.Duration) error {
	for _, f := range []struct {
		d   *time.Duration
		def time.Duration
	}{{&r.Events, DefaultRetainEvents}, {&r.Decisions, DefaultRetainDecisions}, {&r.Appeals, DefaultRetainAppeals},
		{&r.Audit, DefaultRetainAudit}, {&r.DeviceProfiles, DefaultRetainDeviceProfiles}} {
		if *f.d <= 0 {
			*f.d = f.def
		}
	}
	if r.Events < maxEventAge {
		return fmt.Errorf("engine: event retention %s is shorter than the lateness bound %s: a late event would be counted twice", r.Events, maxEventAge)
	}
	return nil
}

// SweepReport says what one retention sweep deleted (range deletions are
// not counted; the numbers are of records read on the way).
type SweepReport struct {
	At              time.Time
	IdempotencyKeys int
	Decisions       int
	ChainEntries    int
	EventLabels     int
	DeviceProfiles  int
}

// privacy is the engine's state for retention and the access audit.
type privacy struct {
	mu          sync.Mutex
	last        time.Time // guarded by mu: when the sweeper last ran
	lastProfile time.Time // guarded by mu: when device profiles were last swept

	auditSeq atomic.Uint64 // makes audit keys of the same instant unique
}

func (e *Engine) sweepState() *privacy { return &e.priv }

// SweepRetention deletes every record whose retention has passed as of
// now. The sweeper calls it once a minute; tests call it with a fake clock.
func (e *Engine) SweepRetention(now time.Time) (SweepReport, error) {
	st := e.sweepState()
	st.mu.Lock()
	defer st.mu.Unlock()
	r := e.opts.Retention
	rep := SweepReport{At: now}
	b := e.db.NewBatch()
	defer b.Close()

	// Events: the idempotency keys of expiring events are keyed by the
	// event id's pseudonym, so they are read from the expiring events
	// themselves (work proportional to what expires), then the events go in
	// one range deletion.
	cut := now.Add(-r.Events)
	err := ingest.ScanEvents(e.db, time.Time{}, cut, func(ev *riskv1.Event) error {
		for _, p := range e.norm.Pseudonyms("event_id", ev.GetEventId()) {
			if err := b.Delete(append([]byte{keys.EventSeen}, p...), nil); err != nil {
				return err
			}
		}
		rep.IdempotencyKeys++
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("engine: retention: %w", err)
	}
	if err := ingest.DeleteEventsBefore(b, cut); err != nil {
		return rep, fmt.Errorf("engine: retention: %w", err)
	}

	exp, err := e.decisions.ExpireBefore(b, now.Add(-r.Decisions), now.Add(-r.Appeals))
	if err != nil {
		return rep, fmt.Errorf("engine: retention: %w", err)
	}
	rep.Decisions, rep.ChainEntries = exp.Decisions, exp.Entries

	if err := b.DeleteRange([]byte{keys.Audit}, auditTimeKey(now.Add(-r.Audit)), nil); err != nil {
		return rep, fmt.Errorf("engine: retention: %w", err)
	}

	// Device profiles are keyed by device (a lookup is one point read) and
	// event labels by event id, not by time, so they are swept by a scan, at
	// most once a day.
	if now.Sub(st.lastProfile) >= 24*time.Hour {
		n, err := e.sweepProfiles(b, now.Add(-r.DeviceProfiles))
		if err != nil {
			return rep, err
		}
		rep.DeviceProfiles = n
		if rep.EventLabels, err = e.decisions.ExpireEventLabels(b, now.Add(-r.Decisions)); err != nil {
			return rep, fmt.Errorf("engine: retention: %w", err)
		}
		st.lastProfile = now
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return rep, fmt.Errorf("engine: retention: %w", err)
	}
	if err := e.features.Sweep(now); err != nil {
		return rep, fmt.Errorf("engine: retention: %w", err)
	}
	st.last = now
	return rep, nil
}

func (e *Engine) sweepProfiles(b *pebble.Batch, before time.Time) (int, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{keys.DeviceProfile}, UpperBound: []byte{keys.DeviceProfile + 1}})
	if err != nil {
		return 0, fmt.Errorf("engine: retention: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) >= 8 && int64(binary.BigEndian.Uint64(v[:8])) < before.UnixNano() {
			if err := b.Delete(append([]byte(nil), it.Key()...), nil); err != nil {
				_ = it.Close()
				return n, fmt.Errorf("engine: retention: %w", err)
			}
			n++
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return n, fmt.Errorf("engine: retention: %w", err)
	}
	return n, nil
}

// RetentionClass is what one class of records holds now.
type RetentionClass struct {
	Name        string
	Description string
	Retention   time.Duration // 0: kept until changed, or per record (features)
	Records     int64
	ApproxBytes int64
	Oldest      time.Time // zero when unknown or empty
}

// RetentionReport describes every retention class and when the sweeper
// last ran.
func (e *Engine) RetentionReport() ([]RetentionClass, time.Time, error) {
	r := e.opts.Retention
	type span struct{ lo, hi []byte }
	pre := func(p byte) span { return span{[]byte{p}, []byte{p + 1}} }
	classes := []struct {
		c      RetentionClass
		spans  []span
		oldest func() (time.Time, error)
	}{
		{RetentionClass{Name: "events", Description: "stored events (pseudonymized), by event time", Retention: r.Events},
			[]span{pre(keys.EventRecord)}, func() (time.Time, error) { return e.firstTime(keys.EventRecord, 1) }},
		{RetentionClass{Name: "idempotency", Description: "event id pseudonyms -> decision, expire with their events", Retention: r.Events},
			[]span{pre(keys.EventSeen)}, nil},
		{RetentionClass{Name: "features", Description: "windowed feature state; each kept for its window (or horizon) past the lateness bound; recent events' deltas until merged (seconds)"},
			[]span{pre(keys.FeatureState), pre(keys.FeatureDelta), pre(keys.FeatureFlush)}, nil},
		{RetentionClass{Name: "device_profiles", Description: "latest DEVICE_REPORT per device", Retention: r.DeviceProfiles},
			[]span{pre(keys.DeviceProfile)}, nil},
		{RetentionClass{Name: "decisions", Description: "decision records, chain entries, indexes and labels", Retention: r.Decisions},
			[]span{pre(keys.DecisionRecord), pre(keys.DecisionChain), pre(keys.DecisionByAccount), pre(keys.ChainHead), pre(keys.Label), pre(keys.DecisionByTime)},
			func() (time.Time, error) { return e.firstULIDTime(keys.DecisionRecord) }},
		{RetentionClass{Name: "appeals", Description: "appeals (statements, contacts, resolutions) and their indexes, from filing", Retention: r.Appeals},
			[]span{pre(keys.Appeal), pre(keys.AppealByDue), pre(keys.AppealByDecision)},
			func() (time.Time, error) { return e.firstULIDTime(keys.Appeal) }},
		{RetentionClass{Name: "audit", Description: "the access audit", Retention: r.Audit},
			[]span{pre(keys.Audit)}, func() (time.Time, error) { return e.firstTime(keys.Audit, 1) }},
		{RetentionClass{Name: "lists", Description: "named lists; entries kept until removed or their own expiry"},
			[]span{pre(keys.ListMeta), pre(keys.ListEntry)}, nil},
		{RetentionClass{Name: "rules", Description: "rule sets, drafts and history (configuration; kept)"},
			[]span{pre(keys.RuleSet), pre(keys.RuleSetLive), pre(keys.RuleDraft), pre(keys.RuleHistory), pre(keys.Meta)}, nil},
	}
	out := make([]RetentionClass, 0, len(classes))
	for _, cl := range classes {
		c := cl.c
		for _, s := range cl.spans {
			n, err := e.countKeys(s.lo, s.hi)
			if err != nil {
				return nil, time.Time{}, err
			}
			c.Records += n
			sz, err := e.db.EstimateDiskUsage(s.lo, s.hi)
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("engine: retention report: %w", err)
			}
			c.ApproxBytes += int64(sz)
		}
		if cl.oldest != nil && c.Records > 0 {
			t, err := cl.oldest()
			if err != nil {
				return nil, time.Time{}, err
			}
			c.Oldest = t
		}
		out = append(out, c)
	}
	st := e.sweepState()
	st.mu.Lock()
	last := st.last
	st.mu.Unlock()
	return out, last, nil
}

func (e *Engine) countKeys(lo, hi []byte) (int64, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi, KeyTypes: pebble.IterKeyTypePointsOnly})
	if err != nil {
		return 0, fmt.Errorf("engine: retention report: %w", err)
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, errors.Join(it.Error(), it.Close())
}

// firstTime reads the time right after the prefix (at offset off) of the
// first key under prefix p.
func (e *Engine) firstTime(p byte, off int) (time.Time, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if it.First() && len(it.Key()) >= off+8 {
		t = time.Unix(0, keys.Time(it.Key()[off:])).UTC()
	}
	return t, errors.Join(it.Error(), it.Close())
}

func (e *Engine) firstULIDTime(p byte) (time.Time, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if it.First() && len(it.Key()) >= 17 {
		var id ulid.ULID
		copy(id[:], it.Key()[1:17])
		t = ulid.Time(id.Time()).UTC()
	}
	return t, errors.Join(it.Error(), it.Close())
}

// marshalDet marshals deterministically (stored records).
func marshalDet(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}
