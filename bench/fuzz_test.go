package bench

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzParseMix(f *testing.F) {
	for _, s := range []string{"", "card_testing=0.01", "benign_flight=0, money_mule=2", "x=1", "card_testing=", "=,=", "card_testing=1e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMix(s)
		if err != nil {
			return
		}
		// What parses is a valid mix.
		if err := (Options{Mix: m}).Validate(); err != nil {
			t.Fatalf("ParseMix(%q) = %v, which Validate refuses: %v", s, m, err)
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	f.Add([]byte(`{"event_id":"e1","scenario":"card_testing","attack":true,"expect":"CHALLENGE"}` + "\n"))
	f.Add([]byte("\n\n{\"event_id\":\"\"}\n"))
	f.Add([]byte(`{"event_id":"e1"}{"event_id":"e2"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadLabels(bytes.NewReader(b))
		if err != nil {
			return
		}
		for id, l := range m {
			if id == "" || l.EventID != id {
				t.Fatalf("label keyed %q: %+v", id, l)
			}
			if _, err := json.Marshal(l); err != nil {
				t.Fatal(err)
			}
		}
	})
}
