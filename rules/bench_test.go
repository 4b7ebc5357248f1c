package rules

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/cputime"
)

// manyRules writes n rules shaped like real ones: feature thresholds, event
// fields, list lookups, CIDR tests, none of which fire on benchEvent.
func manyRules(n int) []File {
	var b strings.Builder
	b.WriteString("rules:\n")
	shapes := []string{
		`login.success && features.login_failures_account_10m >= %d && !features.account_device_seen_before`,
		`features.device_distinct_accounts_24h > %d || (network.vpn && features.account_distinct_devices_30d > 9)`,
		`has(features.km_from_last_location_account) && features.speed_kmh_from_last_location_account > %d.5`,
		`in_list("blocked_devices", device.device_id) && %d > 0`,
		`cidr_contains("10.0.%d.0/24", network.ip)`,
		`device.rooted && len(device.installed_packages) > %d`,
		`features.ip_distinct_accounts_login_1h >= %d && features.login_failures_ip_1h > 30`,
		`login.method == "sms%d" && device.platform == "android"`,
	}
	for i := range n {
		fmt.Fprintf(&b, "  - id: r%04d\n    applies_to: [LOGIN]\n    when: '%s'\n    score: %d\n    reason: {en: \"rule %d fired\", zh: \"规则 %d\"}\n",
			i, fmt.Sprintf(shapes[i%len(shapes)], 50+i%200), 1+i%100, i, i)
	}
	return []File{{Name: "many.yaml", Data: []byte(b.String())}}
}

type noLists struct{}

func (noLists) Contains(string, string) bool { return false }
func (noLists) AnyIn(string, []string) bool  { return false }

func benchEvent() (*event.Event, features.Vector, []features.Def) {
	defs := features.DefaultCatalog().Defs()
	ev := &event.Event{Type: event.Login, TypeName: "LOGIN", AccountID: "a1",
		Device:  event.Device{DeviceID: "d1", Platform: "android", InstalledPackages: []string{"com.tencent.mm"}},
		Network: event.Network{IP: "192.0.2.10", VPN: true},
		Login:   event.LoginDetail{Success: true, Method: "password"}}
	fv := vec(defs, map[string]features.Value{
		"login_failures_account_10m":           features.IntValue(1),
		"account_device_seen_before":           features.BoolValue(true),
		"device_distinct_accounts_24h":         features.IntValue(1),
		"account_distinct_devices_30d":         features.IntValue(2),
		"km_from_last_location_account":        features.FloatValue(3.2),
		"speed_kmh_from_last_location_account": features.FloatValue(12.5),
		"ip_distinct_accounts_login_1h":        features.IntValue(3),
		"login_failures_ip_1h":                 features.IntValue(0),
	})
	return ev, fv, defs
}

// BenchmarkEvaluate200 runs 200 active rules on one event and reports the
// median latency (target: <= 40 µs).
func BenchmarkEvaluate200(b *testing.B) {
	ev, fv, defs := benchEvent()
	s, err := Compile(manyRules(200), CompileOptions{Features: defs})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		res, err := s.Evaluate(ev, fv, noLists{})
		lat = append(lat, time.Since(t))
		if err != nil || len(res.Reasons) != 0 {
			b.Fatalf("%v %+v", err, res)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "median-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
}

// BenchmarkCompile1000 compiles a 1,000-rule set (target: <= 1 s).
func BenchmarkCompile1000(b *testing.B) {
	files := manyRules(1000)
	defs := features.DefaultCatalog().Defs()
	b.ReportAllocs()
	// CPU time too: on a shared, loaded machine wall time mostly measures
	// the neighbours.
	cpu0 := cputime.Process()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(files, CompileOptions{Features: defs}); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cputime.Process() - cpu0
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}
