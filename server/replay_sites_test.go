package server

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// Rules that read the organization's site lists and the fix's accuracy
// replay exactly: what they read is what the record keeps.
func TestReplayAttendanceWithSiteRegistry(t *testing.T) {
	s := startServer(t, serverSetup{})
	ctx := context.Background()
	lc := s.listsClient(s.creds.Analyst)
	for _, l := range []struct {
		name, ik string
		kind     riskv1.ListKind
		values   []string
	}{
		{"org_sites", "", riskv1.ListKind_LIST_KIND_PLAIN, []string{"site-hq"}},
		{"org_site_wifi", "bssid", riskv1.ListKind_LIST_KIND_IDENTIFIER, []string{"aa:bb:cc:dd:ee:ff"}},
		{"org_site_area", "", riskv1.ListKind_LIST_KIND_PLAIN, []string{"site-hq@7981,23281"}},
	} {
		if _, err := lc.CreateList(ctx, connect.NewRequest(&riskv1.CreateListRequest{Name: l.name, Kind: l.kind, IdentifierKind: l.ik})); err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			t.Fatal(err)
		}
		if _, err := lc.AddEntries(ctx, connect.NewRequest(&riskv1.AddEntriesRequest{Name: l.name, Values: l.values})); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	cases := []struct {
		name     string
		mod      func(*riskv1.Event)
		wantRule string
	}{
		{"unknown Wi-Fi and a too-precise fix", func(e *riskv1.Event) {
			e.Network.WifiBssid = "de:ad:be:ef:00:01"
			e.Location.AccuracyM = 3
		}, "att.unknown_wifi_at_site"},
		{"outside the site's area", func(e *riskv1.Event) {
			e.Location.Latitude, e.Location.Longitude = 39.95, 116.5
		}, "att.outside_site_area"},
		{"on site", func(*riskv1.Event) {}, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := attendanceEvent("site-"+string(rune('a'+i)), "emp-"+string(rune('a'+i)), "phone-"+string(rune('a'+i)), "site-hq", now)
			ev.Network.WifiBssid = "aa:bb:cc:dd:ee:ff"
			tc.mod(ev)
			d := s.evaluate(ev)
			fired := map[string]bool{}
			for _, r := range d.GetReasons() {
				fired[r.GetRuleId()] = true
			}
			if tc.wantRule != "" && !fired[tc.wantRule] {
				t.Fatalf("%s did not fire: %v", tc.wantRule, d.GetReasons())
			}
			if tc.wantRule == "" && len(d.GetReasons()) != 0 {
				t.Fatalf("on-site check-in fired %v", d.GetReasons())
			}
			res, err := s.decisionLog(protoConnect, s.creds.Analyst).ReplayDecision(ctx, connect.NewRequest(&riskv1.ReplayDecisionRequest{DecisionId: d.GetDecisionId()}))
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if !res.Msg.GetMatches() || res.Msg.GetOutcome() != d.GetOutcome() || len(res.Msg.GetReasons()) != len(d.GetReasons()) {
				t.Fatalf("replay %v %v, recorded %v %v", res.Msg.GetOutcome(), res.Msg.GetReasons(), d.GetOutcome(), d.GetReasons())
			}
		})
	}
}
