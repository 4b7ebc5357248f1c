package quality

import (
	"slices"
	"testing"
)

// TestSiteArea: the cells LoadSites registers are the ones the rule
// att.outside_site_area spells for a fix on the site (its inline tests use
// "s1@6250,24300" for a site at 31.2504, 121.4998), and a fix 3 km away
// falls outside them.
func TestSiteArea(t *testing.T) {
	area := SiteArea("s1", 31.2504, 121.4998)
	if len(area) != 9 || !slices.Contains(area, "s1@6250,24300") {
		t.Fatalf("area %v", area)
	}
	tests := []struct {
		name     string
		lat, lon float64
		in       bool
	}{
		{"centre", 31.2504, 121.4998, true},
		{"500 m north", 31.2549, 121.4998, true},
		{"500 m south-west", 31.2472, 121.4961, true},
		{"3 km east", 31.2504, 121.5313, false},
		{"3 km south", 31.2234, 121.4998, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cell := SiteArea("s1", tc.lat, tc.lon)[4] // the centre cell
			if got := slices.Contains(area, cell); got != tc.in {
				t.Errorf("%s in area = %v, want %v", cell, got, tc.in)
			}
		})
	}
}
