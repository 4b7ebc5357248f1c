package cli

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// The client's share of ingest throughput: parsing one line into an event.

func BenchmarkAccessLogParse(b *testing.B) {
	a, err := newAccessLog("user", "")
	if err != nil {
		b.Fatal(err)
	}
	lines := make([][]byte, 1024)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `10.%d.%d.%d - user%d [28/Nov/2026:09:00:00 +0000] "GET /items/%d?q=x%d HTTP/1.1" 200 %d "-" "Mozilla/5.0 (Linux; Android 14)"`,
			i%200, i%97, i%251, i%5000, i, i%50, i%9000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := a.parse(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNDJSONParse(b *testing.B) {
	line := []byte(strings.ReplaceAll(`{"eventId":"e-1","type":"EVENT_TYPE_SERVICE_LOG","occurredAt":"2026-11-28T09:00:00Z",
	"accountId":"user-1","network":{"ip":"203.0.113.7","userAgent":"Mozilla/5.0"},
	"serviceLog":{"action":"view","resource":"/items/42","status":200}}`, "\n\t", ""))
	b.ReportAllocs()
	for b.Loop() {
		ev := &riskv1.Event{}
		if err := protojson.Unmarshal(line, ev); err != nil {
			b.Fatal(err)
		}
	}
}
