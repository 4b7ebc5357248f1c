package load

import (
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// The driver's own per-request work must stay small next to a request's
// tens of microseconds, or it measures itself.

func BenchmarkRecord(b *testing.B) {
	rec := newRecorder(time.Now())
	resp := &riskv1.EvaluateResponse{Decision: FloorDecision(&riskv1.Event{EventId: "x", Type: riskv1.EventType_EVENT_TYPE_LOGIN}, time.Now())}
	sched := rec.start
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec.record(sched, sched.Add(time.Duration(100+i%5000)*time.Microsecond), resp, nil)
	}
}

func BenchmarkRecordError(b *testing.B) {
	rec := newRecorder(time.Now())
	err := connect.NewError(connect.CodeResourceExhausted, errors.New("busy"))
	b.ReportAllocs()
	for b.Loop() {
		rec.record(rec.start, rec.start.Add(time.Millisecond), nil, err)
	}
}

func BenchmarkReplayNextAndStamp(b *testing.B) {
	r, err := NewReplay(NewRandomSource(RandomOptions{Seed: 1}), 1000)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev, _ := r.Next()
		stamp(ev, "rb1128T1640-68f5fbab2906", int64(i), now)
	}
}

func BenchmarkFloorDecision(b *testing.B) {
	ev, _ := NewRandomSource(RandomOptions{Seed: 1}).Next()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		FloorDecision(ev, now)
	}
}
