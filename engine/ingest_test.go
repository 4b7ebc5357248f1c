package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/clock"
)

// TestIngestForgetsAReportWhoseCommitFails: Ingest makes a DEVICE_REPORT's
// profile visible before its batch commits, so that a later event of the
// batch sees it. When the commit fails, the profile must be forgotten:
// nothing of the batch is on disk, and a later event of that device must
// not be filled from it. The commit is made to fail by closing the
// committer first; the same ingest on an open engine is the control.
// Mutation-checked: it fails without the Forget in Ingest's release, and
// without the report keeping its event object from the next event.
func TestIngestForgetsAReportWhoseCommitFails(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	report := &riskv1.Event{
		EventId: "report-1", Type: riskv1.EventType_EVENT_TYPE_DEVICE_REPORT, OccurredAt: timestamppb.New(now.Add(-time.Minute)),
		AccountId: "acct-report",
		Device:    &riskv1.Device{DeviceId: "dev-report", Platform: "android", InstalledPackages: []string{"com.lexa.fakegps"}},
	}
	login := &riskv1.Event{
		EventId: "login-1", Type: riskv1.EventType_EVENT_TYPE_LOGIN, OccurredAt: timestamppb.New(now),
		AccountId: "acct-report", Device: &riskv1.Device{DeviceId: "dev-report"},
		Login: &riskv1.Login{Success: true, Method: "password"},
	}
	for _, failCommit := range []bool{false, true} {
		e := openTestEngine(t, clock.NewFake(now))
		if failCommit {
			e.committer.close()
		}
		// The view after the report reuses Ingest's event object unless the
		// report kept it: Forget must get the report, not the view.
		view := &riskv1.Event{
			EventId: "view-1", Type: riskv1.EventType_EVENT_TYPE_SERVICE_LOG, OccurredAt: timestamppb.New(now.Add(-30 * time.Second)),
			AccountId: "acct-report", ServiceLog: &riskv1.ServiceLog{Action: "view", Resource: "/home"},
		}
		_, err := e.Ingest(context.Background(), []*riskv1.Event{report, view})
		if failCommit != errors.Is(err, ErrClosed) {
			t.Fatalf("failCommit=%v: Ingest returned %v", failCommit, err)
		}
		var ev event.Event
		if _, err := e.norm.NormalizeInto(&ev, login); err != nil {
			t.Fatal(err)
		}
		filled, err := e.profiles.Fill(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := filled&features.FilledPackages != 0, !failCommit; got != want {
			t.Errorf("failCommit=%v: the login's packages filled from the report: %v, want %v (packages %v)", failCommit, got, want, ev.Device.InstalledPackages)
		}
	}
}
