package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/internal/keys"
)

// Device profiles.
//
// A DEVICE_REPORT event describes a device: its risk flags (rooted,
// emulator, mock_location_enabled, developer_mode, hook_frameworks), its
// installed or flagged packages, and its platform, model and OS version.
// Profiles keeps the latest report per device pseudonym (keys.DeviceProfile
// + pseudonym), written into the same batch as the report, so that a later
// event from the same device that does not repeat those fields is evaluated
// as if it had:
//
//   - installed_packages and flagged_packages, when the event carries
//     neither list;
//   - the five flags, when the event raises none of them (all false and no
//     hook framework): a later event cannot say "not rooted" apart from "did
//     not say", so a set flag in the event always wins;
//   - platform, model and os_version, each when empty.
//
// A profile fills an event only when it was reported at or before the
// event's time and at most Horizon (default 30 days) before it: a report
// from after the event is not history, and a month-old app list is no
// longer the device. Only the in-memory event is filled; the stored event
// stays what the caller sent.

// DefaultProfileHorizon is how old a device profile may be and still fill an event.
const DefaultProfileHorizon = 30 * 24 * time.Hour

// DefaultProfileCacheEntries bounds the profiles kept in memory.
const DefaultProfileCacheEntries = 1 << 16

// ProfileOptions configures Profiles. The zero value of every field but DB
// means its default.
type ProfileOptions struct {
	// DB is the store. Required.
	DB *pebble.DB
	// Horizon is how long after its report a profile fills events.
	// Default DefaultProfileHorizon.
	Horizon time.Duration
	// CacheEntries bounds the devices kept in memory (profiles and "no
	// profile" answers). Default DefaultProfileCacheEntries.
	CacheEntries int
}

// Filled says which parts of an event Fill took from the device profile.
type Filled uint8

// Parts of an event a profile fills.
const (
	FilledPackages Filled = 1 << iota // installed_packages, flagged_packages
	FilledFlags                       // rooted, emulator, mock_location_enabled, developer_mode, hook_frameworks
	FilledModel                       // platform, model, os_version (any of them)
)

// profile is one device's latest report. Its slices are shared with the
// events it fills and never modified.
type profile struct {
	at  time.Time
	dev event.Device // only the profile fields are set
}

// Profiles is the device profile store. It is safe for concurrent use.
type Profiles struct {
	db      *pebble.DB
	horizon time.Duration
	seed    maphash.Seed
	shards  [16]profileShard
}

type profileShard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, *profile] // nil value: the store has none; guarded by mu
}

// OpenProfiles returns the profile store on opts.DB.
func OpenProfiles(opts ProfileOptions) (*Profiles, error) {
	if opts.DB == nil {
		return nil, errors.New("features: ProfileOptions.DB is required")
	}
	if opts.Horizon <= 0 {
		opts.Horizon = DefaultProfileHorizon
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = DefaultProfileCacheEntries
	}
	p := &Profiles{db: opts.DB, horizon: opts.Horizon, seed: maphash.MakeSeed()}
	per := max(opts.CacheEntries/len(p.shards), 1)
	for i := range p.shards {
		l, err := simplelru.NewLRU[string, *profile](per, nil)
		if err != nil {
			return nil, fmt.Errorf("features: profile cache: %w", err)
		}
		p.shards[i].lru = l
	}
	return p, nil
}

// Horizon is how long after its report a profile fills events.
func (p *Profiles) Horizon() time.Duration { return p.horizon }

func (p *Profiles) shard(device string) *profileShard {
	return &p.shards[maphash.String(p.seed, device)%uint64(len(p.shards))]
}

func profileKey(device string) []byte {
	k := make([]byte, 0, 1+len(device))
	return append(append(k, keys.DeviceProfile), device...)
}

// Record keeps ev's device profile when ev is a DEVICE_REPORT with a device
// id and is newer than the profile kept: it writes the profile into b and
// makes it visible to Fill at once (as Apply does for feature state). If b
// does not commit, call Forget. Other events are ignored.
func (p *Profiles) Record(ev *event.Event, b *pebble.Batch) error {
	if ev.Type != event.DeviceReport || ev.P.Device == "" {
		return nil
	}
	sh := p.shard(ev.P.Device)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur, err := p.lookupLocked(sh, ev.P.Device)
	if err != nil {
		return err
	}
	if cur != nil && cur.at.After(ev.OccurredAt) {
		return nil // an out-of-order older report
	}
	d := &ev.Device
	pr := &profile{at: ev.OccurredAt, dev: event.Device{
		Platform: d.Platform, Model: d.Model, OSVersion: d.OSVersion,
		Rooted: d.Rooted, Emulator: d.Emulator, MockLocationEnabled: d.MockLocationEnabled,
		DeveloperMode: d.DeveloperMode, HookFrameworks: d.HookFrameworks,
		InstalledPackages: d.InstalledPackages, FlaggedPackages: d.FlaggedPackages,
	}}
	val, err := encodeProfile(pr)
	if err != nil {
		return err
	}
	if err := b.Set(profileKey(ev.P.Device), val, nil); err != nil {
		return fmt.Errorf("features: write device profile: %w", err)
	}
	sh.lru.Add(ev.P.Device, pr)
	return nil
}

// Forget drops what Record made visible for ev's device, after its batch
// failed to commit; the next Fill reads the store again.
func (p *Profiles) Forget(ev *event.Event) {
	if ev.Type != event.DeviceReport || ev.P.Device == "" {
		return
	}
	sh := p.shard(ev.P.Device)
	sh.mu.Lock()
	sh.lru.Remove(ev.P.Device)
	sh.mu.Unlock()
}

// Fill completes ev's device from its profile, as the package comment on
// profiles says, and reports what it filled. DEVICE_REPORT events and
// events without a device id are left alone. Fill must run before ev is
// shared with another goroutine.
func (p *Profiles) Fill(ev *event.Event) (Filled, error) {
	if ev.Type == event.DeviceReport || ev.P.Device == "" {
		return 0, nil
	}
	sh := p.shard(ev.P.Device)
	sh.mu.Lock()
	pr, err := p.lookupLocked(sh, ev.P.Device)
	sh.mu.Unlock()
	if err != nil || pr == nil {
		return 0, err
	}
	if pr.at.After(ev.OccurredAt) || ev.OccurredAt.Sub(pr.at) > p.horizon {
		return 0, nil
	}
	var f Filled
	d := &ev.Device
	if len(d.InstalledPackages) == 0 && len(d.FlaggedPackages) == 0 &&
		(len(pr.dev.InstalledPackages) > 0 || len(pr.dev.FlaggedPackages) > 0) {
		d.InstalledPackages, d.FlaggedPackages = pr.dev.InstalledPackages, pr.dev.FlaggedPackages
		f |= FilledPackages
	}
	if !d.Rooted && !d.Emulator && !d.MockLocationEnabled && !d.DeveloperMode && len(d.HookFrameworks) == 0 &&
		(pr.dev.Rooted || pr.dev.Emulator || pr.dev.MockLocationEnabled || pr.dev.DeveloperMode || len(pr.dev.HookFrameworks) > 0) {
		d.Rooted, d.Emulator, d.MockLocationEnabled = pr.dev.Rooted, pr.dev.Emulator, pr.dev.MockLocationEnabled
		d.DeveloperMode, d.HookFrameworks = pr.dev.DeveloperMode, pr.dev.HookFrameworks
		f |= FilledFlags
	}
	for _, fld := range [...]struct {
		dst *string
		src string
	}{
		{&d.Platform, pr.dev.Platform}, {&d.Model, pr.dev.Model}, {&d.OSVersion, pr.dev.OSVersion},
	} {
		if *fld.dst == "" && fld.src != "" {
			*fld.dst = fld.src
			f |= FilledModel
		}
	}
	return f, nil
}

// lookupLocked returns the device's profile (nil: none), from memory or the
// store. sh.mu must be held.
func (p *Profiles) lookupLocked(sh *profileShard, device string) (*profile, error) {
	if pr, ok := sh.lru.Get(device); ok {
		return pr, nil
	}
	v, closer, err := p.db.Get(profileKey(device))
	if errors.Is(err, pebble.ErrNotFound) {
		sh.lru.Add(device, nil)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("features: read device profile: %w", err)
	}
	pr, err := decodeProfile(v)
	_ = closer.Close()
	if err != nil {
		return nil, err
	}
	sh.lru.Add(device, pr)
	return pr, nil
}

// The stored form: the report's time (unix nanoseconds, 8 bytes big endian)
// and then a risk.v1.Device holding only the profile fields (no identifier).
func encodeProfile(pr *profile) ([]byte, error) {
	d := &pr.dev
	m := &riskv1.Device{
		Platform: d.Platform, Model: d.Model, OsVersion: d.OSVersion,
		Rooted: d.Rooted, Emulator: d.Emulator, MockLocationEnabled: d.MockLocationEnabled,
		DeveloperMode: d.DeveloperMode, HookFrameworks: d.HookFrameworks,
		InstalledPackages: d.InstalledPackages, FlaggedPackages: d.FlaggedPackages,
	}
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 8+proto.Size(m)), uint64(pr.at.UnixNano()))
	out, err := proto.MarshalOptions{}.MarshalAppend(out, m)
	if err != nil {
		return nil, fmt.Errorf("features: encode device profile: %w", err)
	}
	return out, nil
}

func decodeProfile(v []byte) (*profile, error) {
	if len(v) < 8 {
		return nil, fmt.Errorf("features: device profile of %d bytes", len(v))
	}
	var m riskv1.Device
	if err := proto.Unmarshal(v[8:], &m); err != nil {
		return nil, fmt.Errorf("features: decode device profile: %w", err)
	}
	return &profile{at: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))).UTC(), dev: event.Device{
		Platform: m.Platform, Model: m.Model, OSVersion: m.OsVersion,
		Rooted: m.Rooted, Emulator: m.Emulator, MockLocationEnabled: m.MockLocationEnabled,
		DeveloperMode: m.DeveloperMode, HookFrameworks: m.HookFrameworks,
		InstalledPackages: m.InstalledPackages, FlaggedPackages: m.FlaggedPackages,
	}}, nil
}
