package server

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

// serviceLogEvent is a small valid SERVICE_LOG event.
func serviceLogEvent(id, account string, at time.Time) *riskv1.Event {
	return &riskv1.Event{
		EventId: id, Type: riskv1.EventType_EVENT_TYPE_SERVICE_LOG, OccurredAt: timestamppb.New(at),
		AccountId:  account,
		Network:    &riskv1.Network{Ip: "203.0.113.9", UserAgent: "Mozilla/5.0"},
		ServiceLog: &riskv1.ServiceLog{Action: "get", Resource: "/item/42", Query: "ref=home", Status: 200},
	}
}

// A disk whose syncs take 30 ms slows an Ingest sender down to what the
// disk takes, through the stream (HTTP/2 flow control), with no error; the
// events the server holds never exceed its bound, and its heap stays flat
// while several times that many events pass through.
func TestIngestBackpressureFromSlowDisk(t *testing.T) {
	const (
		limit    = 300 // engine.Options.MaxIngestEvents: one message at a time
		perMsg   = 250
		messages = 40
		stall    = 30 * time.Millisecond
	)
	fs := &stallFS{FS: vfs.Default}
	var eng atomic.Pointer[engine.Engine]
	s := startServer(t, serverSetup{hooks: Hooks{
		Engine: func(o *engine.Options) { o.FS = fs; o.MaxIngestEvents = limit },
		Opened: func(e *engine.Engine) { eng.Store(e) },
	}})
	fs.stall.Store(int64(stall))
	defer fs.stall.Store(0)

	// Watch the engine's held events and the heap while the stream runs.
	var peakHeld, peakHeap atomic.Uint64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if h := uint64(eng.Load().Stats().IngestHeld); h > peakHeld.Load() {
				peakHeld.Store(h)
			}
			if n++; n%20 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peakHeap.Load() {
					peakHeap.Store(ms.HeapAlloc)
				}
			}
		}
	}()

	padding := "q=" + strings.Repeat("x", 900)
	now := time.Now()
	stream := s.risk(protoGRPC, s.creds.Service).Ingest(context.Background())
	start := time.Now()
	for m := 0; m < messages; m++ {
		evs := make([]*riskv1.Event, perMsg)
		for i := range evs {
			n := m*perMsg + i
			evs[i] = serviceLogEvent(fmt.Sprintf("bp-%d", n), fmt.Sprintf("acct-bp-%d", n%97), now.Add(-time.Duration(n)*time.Millisecond))
			evs[i].ServiceLog.Query = padding // about 1 KB an event: far more than HTTP/2 buffers hold

		}
		if err := stream.Send(&riskv1.IngestRequest{Events: evs}); err != nil {
			t.Fatalf("send %d: %v", m, err)
		}
	}
	sending := time.Since(start)
	res, err := stream.CloseAndReceive()
	total := time.Since(start)
	close(stop)
	<-watched
	if err != nil {
		t.Fatalf("the sender saw an error, want backpressure only: %v", err)
	}
	if got := res.Msg.GetAccepted(); got != messages*perMsg || len(res.Msg.GetErrors()) > 0 {
		t.Fatalf("accepted %d of %d, errors %v", got, messages*perMsg, res.Msg.GetErrors())
	}
	// At most one message (limit < 2*perMsg) commits per sync, so the disk
	// alone needs `messages` syncs. Without backpressure the sender would
	// be done long before; with it, it is held until nearly the end (HTTP/2
	// buffers allow some messages ahead).
	minDisk := time.Duration(messages) * stall
	if sending < minDisk/2 {
		t.Errorf("sender finished in %v, the disk needed at least %v: it was not slowed", sending, minDisk)
	}
	if h := peakHeld.Load(); h > limit || h == 0 {
		t.Errorf("peak events held %d, bound %d", h, limit)
	}
	if grew := int64(peakHeap.Load()) - int64(baseHeap); grew > 64<<20 {
		t.Errorf("heap grew by %d MB during the stream", grew>>20)
	}
	t.Logf("sending took %v (disk floor %v), all acknowledged after %v; peak held %d; heap +%d MB",
		sending, minDisk, total, peakHeld.Load(), (int64(peakHeap.Load())-int64(baseHeap))>>20)
}

// A DEVICE_REPORT keeps the device's profile; a later check-in from that
// device that carries no flags and no package list is decided with the
// reported ones (bundled rule att.rooted_or_emulator; a test rule on the
// package list), also after a restart. Another device is not affected, nor
// is an event from before the report.
func TestDeviceProfileFillsLaterEvents(t *testing.T) {
	pkgRule := rules.File{Name: "pkgs.yaml", Data: []byte(`rules:
  - id: test.fakegps_installed
    description: a location-faking app is installed
    applies_to: [ATTENDANCE, LOGIN]
    when: '"com.example.fakegps" in device.installed_packages'
    score: 5
    reason: {en: "fake GPS app", zh: "虚拟定位应用"}
`)}
	set, err := rules.Compile(append(rules.BundledFiles(), pkgRule), rules.CompileOptions{Features: features.DefaultCatalog().Defs()})
	if err != nil {
		t.Fatal(err)
	}
	setup := serverSetup{hooks: Hooks{Engine: func(o *engine.Options) { o.Rules = set }}}
	s := startServer(t, setup)
	now := time.Now()
	report := &riskv1.Event{
		EventId: "report-1", Type: riskv1.EventType_EVENT_TYPE_DEVICE_REPORT, OccurredAt: timestamppb.New(now.Add(-time.Hour)),
		AccountId: "acct-dp",
		Device: &riskv1.Device{DeviceId: "dev-rooted", Platform: "android", Model: "Pixel 8", OsVersion: "15",
			Rooted: true, InstalledPackages: []string{"com.tencent.mm", "com.example.fakegps"}},
	}
	stream := s.risk(protoConnect, s.creds.Service).Ingest(context.Background())
	if err := stream.Send(&riskv1.IngestRequest{Events: []*riskv1.Event{report}}); err != nil {
		t.Fatal(err)
	}
	res, err := stream.CloseAndReceive()
	if err != nil || res.Msg.GetAccepted() != 1 {
		t.Fatalf("ingest report: %v %v", res, err)
	}
	fired := func(d *riskv1.Decision) []string {
		var ids []string
		for _, r := range d.GetReasons() {
			ids = append(ids, r.GetRuleId())
		}
		return ids
	}
	checkIn := func(id, device string, at time.Time) *riskv1.Decision {
		ev := attendanceEvent(id, "acct-dp", device, "site-1", at)
		ev.Device = &riskv1.Device{DeviceId: device} // no flags, no packages
		return s.evaluate(ev)
	}
	tests := []struct {
		id, device string
		at         time.Time
		want       bool
	}{
		{"att-same-device", "dev-rooted", now, true},
		{"att-other-device", "dev-stock", now, false},
		{"att-before-report", "dev-rooted", now.Add(-2 * time.Hour), false},
	}
	for _, tc := range tests {
		got := fired(checkIn(tc.id, tc.device, tc.at))
		for _, rule := range []string{"att.rooted_or_emulator", "test.fakegps_installed"} {
			if slices.Contains(got, rule) != tc.want {
				t.Errorf("%s: fired %v; want %s fired = %v", tc.id, got, rule, tc.want)
			}
		}
	}
	// The profile is on disk, and a report sent through Evaluate is kept too.
	s.evaluate(&riskv1.Event{
		EventId: "report-2", Type: riskv1.EventType_EVENT_TYPE_DEVICE_REPORT, OccurredAt: timestamppb.New(now.Add(-time.Minute)),
		AccountId: "acct-dp", Device: &riskv1.Device{DeviceId: "dev-emu", Emulator: true},
	})
	s.stop()
	s = startServer(t, serverSetup{dir: s.dir, hooks: setup.hooks})
	if got := fired(checkIn("att-after-restart", "dev-rooted", now.Add(time.Second))); !slices.Contains(got, "att.rooted_or_emulator") || !slices.Contains(got, "test.fakegps_installed") {
		t.Errorf("after restart: fired %v", got)
	}
	if got := fired(checkIn("att-emu", "dev-emu", now)); !slices.Contains(got, "att.rooted_or_emulator") {
		t.Errorf("report through Evaluate: fired %v", got)
	}
}
