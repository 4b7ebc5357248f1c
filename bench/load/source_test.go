package load

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

func TestRandomSource(t *testing.T) {
	a := NewRandomSource(RandomOptions{Seed: 42, Accounts: 50, Devices: 40})
	b := NewRandomSource(RandomOptions{Seed: 42, Accounts: 50, Devices: 40})
	types := map[riskv1.EventType]int{}
	for range 500 {
		ea, _ := a.Next()
		eb, _ := b.Next()
		ea.OccurredAt, eb.OccurredAt = nil, nil
		if !proto.Equal(ea, eb) {
			t.Fatalf("same seed, different events:\n%v\n%v", ea, eb)
		}
		types[ea.GetType()]++
		ok := false
		switch ea.GetType() {
		case riskv1.EventType_EVENT_TYPE_LOGIN:
			ok = ea.GetLogin() != nil
		case riskv1.EventType_EVENT_TYPE_PAYMENT:
			ok = ea.GetPayment().GetAmountMinor() > 0 && ea.GetPayment().GetCurrency() == "CNY"
		case riskv1.EventType_EVENT_TYPE_ATTENDANCE:
			ok = ea.GetAttendance().GetSiteId() != ""
		}
		if !ok || ea.GetAccountId() == "" || ea.GetDevice().GetDeviceId() == "" || ea.GetNetwork().GetIp() == "" {
			t.Fatalf("incomplete event %v", ea)
		}
	}
	for _, typ := range []riskv1.EventType{riskv1.EventType_EVENT_TYPE_LOGIN, riskv1.EventType_EVENT_TYPE_PAYMENT, riskv1.EventType_EVENT_TYPE_ATTENDANCE} {
		if types[typ] < 50 {
			t.Errorf("only %d %v events in 500", types[typ], typ)
		}
	}
}

type labelledFake struct{ n int }

func (l *labelledFake) Next() (*riskv1.Event, string, bool) {
	if l.n == 0 {
		return nil, "", false
	}
	l.n--
	return &riskv1.Event{AccountId: "a"}, "benign", true
}

func TestUnlabel(t *testing.T) {
	src := Unlabel(&labelledFake{n: 2})
	for i := range 3 {
		ev, ok := src.Next()
		if ok != (i < 2) || ok && ev.GetAccountId() != "a" {
			t.Fatalf("call %d: %v %v", i, ev, ok)
		}
	}
}

func TestReplay(t *testing.T) {
	r, err := NewReplay(&limited{NewRandomSource(RandomOptions{Seed: 5}), 3}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 3 {
		t.Fatalf("len %d, want the 3 the source had", r.Len())
	}
	first, _ := r.Next()
	want := proto.Clone(first)
	stamp(first, "x", 1, time.Now())
	for range 2 {
		r.Next()
	}
	again, _ := r.Next()
	if again == first || !proto.Equal(again, want) {
		t.Fatalf("replay changed by a stamp on an earlier copy:\n%v\nwant %v", again, want)
	}
	if again.GetDevice() == first.GetDevice() {
		t.Error("sub-messages shared between copies, want each Next's own")
	}
	if _, err := NewReplay(&limited{NewRandomSource(RandomOptions{}), 0}, 10); err == nil {
		t.Error("empty source: no error")
	}
}

// A replayed pool smaller than the concurrency sends the same recorded
// events from many goroutines at once; -race proves the copies are their own.
func TestReplayUnderConcurrentLoad(t *testing.T) {
	f := startFloor(t, nil)
	for _, json := range []bool{false, true} {
		c := newClient(t, ClientOptions{BaseURL: f.URL, Token: "t0ken", JSON: json})
		r, err := NewReplay(NewRandomSource(RandomOptions{}), 3)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(t.Context(), c, Options{Source: r, Clients: 8, Duration: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests.OK == 0 || rep.Requests.Errors != 0 {
			t.Fatalf("json %v: %+v %v", json, rep.Requests, rep.Errors)
		}
	}
}
