package quality

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/bench/population"
)

// The lists through which an organization registers its attendance sites:
// the site ids whose registry is loaded, the BSSIDs of their Wi-Fi access
// points (an identifier list: only pseudonyms are stored) and the coarse
// cells around each site. Rules consult the others only for sites on the
// first, so a deployment without a registry sees no difference.
const (
	SitesList     = "org_sites"
	SiteWiFiList  = "org_site_wifi"
	SiteAreaList  = "org_site_area"
	sitesPerBatch = 1000
)

// SiteCellsPerDegree sizes the cells of SiteAreaList: 1/200 degree, about
// 550 m. A site's area is the 3x3 cells around its centre, so it covers at
// least 550 m around the site in every direction and nothing beyond 1.7 km.
const SiteCellsPerDegree = 200

// SiteArea returns the SiteAreaList entries of a site: "SITE@LAT,LON" with
// LAT and LON the cell indexes round(coordinate*200), as the rule
// att.outside_site_area spells them.
func SiteArea(siteID string, lat, lon float64) []string {
	la, lo := int(math.Round(lat*SiteCellsPerDegree)), int(math.Round(lon*SiteCellsPerDegree))
	var out []string
	for i := -1; i <= 1; i++ {
		for j := -1; j <= 1; j++ {
			out = append(out, fmt.Sprintf("%s@%d,%d", siteID, la+i, lo+j))
		}
	}
	return out
}

// LoadSites registers the sites of a sites file (riskgen --sites: one
// population.SiteRecord a line) in riskd's lists, creating them when needed.
// It returns the number of sites read.
func LoadSites(ctx context.Context, lists riskv1connect.ListsServiceClient, r io.Reader) (int, error) {
	var ids, bssids, area []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var s population.SiteRecord
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return 0, fmt.Errorf("quality: sites line %d: %w", line, err)
		}
		ids = append(ids, s.SiteID)
		bssids = append(bssids, s.BSSIDs...)
		area = append(area, SiteArea(s.SiteID, s.Latitude, s.Longitude)...)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("quality: read sites: %w", err)
	}
	for _, l := range []struct {
		name, ik, desc string
		kind           riskv1.ListKind
		values         []string
	}{
		{SitesList, "", "attendance sites whose Wi-Fi access points are registered in " + SiteWiFiList, riskv1.ListKind_LIST_KIND_PLAIN, ids},
		{SiteWiFiList, "bssid", "Wi-Fi access points (BSSIDs) of the sites in " + SitesList, riskv1.ListKind_LIST_KIND_IDENTIFIER, bssids},
		{SiteAreaList, "", "SITE@LAT,LON cells (1/200 degree) around the sites in " + SitesList, riskv1.ListKind_LIST_KIND_PLAIN, area},
	} {
		_, err := lists.CreateList(ctx, connect.NewRequest(&riskv1.CreateListRequest{Name: l.name, Kind: l.kind, IdentifierKind: l.ik, Description: l.desc}))
		if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			return 0, fmt.Errorf("quality: create list %s: %w", l.name, err)
		}
		for i := 0; i < len(l.values); i += sitesPerBatch {
			j := min(i+sitesPerBatch, len(l.values))
			if _, err := lists.AddEntries(ctx, connect.NewRequest(&riskv1.AddEntriesRequest{Name: l.name, Values: l.values[i:j]})); err != nil {
				return 0, fmt.Errorf("quality: add to list %s: %w", l.name, err)
			}
		}
	}
	return len(ids), nil
}
