package features

import (
	"bytes"
	"testing"

	"github.com/riskd/riskd/event"
)

// TestHashedKeyFields: location.exact tells identical raw coordinates from
// ones the coarse location merges, and neither it nor network.user_agent
// puts the raw value in the key.
func TestHashedKeyFields(t *testing.T) {
	at := func(lat, lon float64, ua string) *event.Event {
		ev := &event.Event{}
		ev.Has.Location = true
		ev.Location.Latitude, ev.Location.Longitude = lat, lon
		ev.P.CoarseLat, ev.P.CoarseLon = 31.230, 121.470 // the same ~100 m cell for all
		ev.Network.UserAgent = ua
		return ev
	}
	key := func(field string, ev *event.Event) []byte {
		b, ok := keyFields[field].get(ev, nil)
		if !ok {
			t.Fatalf("%s: no key", field)
		}
		return b
	}
	a, same, near := at(31.230123, 121.470456, "okhttp/4.9.0"), at(31.230123, 121.470456, "okhttp/4.9.0"), at(31.230124, 121.470456, "RiskdDemo/8.1.0")
	tests := []struct {
		name, field string
		x, y        *event.Event
		equal       bool
	}{
		{"replayed fix", "location.exact", a, same, true},
		{"a fix 10 cm away", "location.exact", a, near, false},
		{"coarse location merges them", "location", a, near, true},
		{"same agent", "network.user_agent", a, same, true},
		{"other agent", "network.user_agent", a, near, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bytes.Equal(key(tc.field, tc.x), key(tc.field, tc.y)); got != tc.equal {
				t.Errorf("keys equal = %v, want %v", got, tc.equal)
			}
		})
	}
	if k := key("network.user_agent", a); bytes.Contains(k, []byte("okhttp")) {
		t.Errorf("user agent stored as text: %q", k)
	}
	if k := key("location.exact", a); bytes.Contains(k, []byte("31.23")) {
		t.Errorf("coordinates stored as text: %q", k)
	}
	if _, ok := keyFields["location.exact"].get(&event.Event{}, nil); ok {
		t.Error("location.exact without a location")
	}
	if _, ok := keyFields["network.user_agent"].get(&event.Event{}, nil); ok {
		t.Error("network.user_agent without an agent")
	}
}
