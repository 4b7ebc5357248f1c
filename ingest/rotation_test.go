package ingest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// TestOldPseudonymsMatchTheOldKey: what OldPseudonyms computes under an old
// key equals what a Normalizer with that key as its current key computes.
func TestOldPseudonymsMatchTheOldKey(t *testing.T) {
	keyA, keyB := []byte("key-A-0123456789abcdef"), []byte("key-B-0123456789abcdef")
	pb := &riskv1.Event{
		EventId: "e1", Type: riskv1.EventType_EVENT_TYPE_PAYMENT, OccurredAt: timestamppb.New(time.Now()),
		AccountId: "acct", OrgId: "org",
		Device:   &riskv1.Device{DeviceId: "dev", Imei: "356938035643809", Idfa: "6D92078A-8246-4BA4-AE5B-76104861E7DC", Mac: "3C:22:FB:11:22:33"},
		Network:  &riskv1.Network{Ip: "::ffff:203.0.113.7", WifiBssid: "00-11-22-33-44-55"},
		Location: &riskv1.Location{Latitude: 31.2304, Longitude: 121.4737},
		Payment:  &riskv1.Payment{AmountMinor: 100, Currency: "CNY", PayeeAccountId: "payee", InstrumentId: "card"},
	}
	old, err := New(Options{PseudonymKey: keyA})
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := old.Normalize(pb)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := New(Options{PseudonymKey: keyB, OldKeys: [][]byte{keyA}})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := rotated.Normalize(pb)
	if err != nil {
		t.Fatal(err)
	}
	got := rotated.OldPseudonyms(ev)
	if len(got) != 1 || got[0] != want.P {
		t.Errorf("OldPseudonyms = %+v\nwant %+v", got, want.P)
	}
	if ev.P == want.P {
		t.Error("the current key gives the same pseudonyms as the old one")
	}
	if old.OldPseudonyms(want) != nil {
		t.Error("OldPseudonyms without a rotation is not nil")
	}
}
