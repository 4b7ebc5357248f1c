package quality

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/bench/population"
)

// The lists through which an organization registers its attendance sites:
// the site ids whose registry is loaded, and the BSSIDs of their Wi-Fi
// access points (an identifier list: only pseudonyms are stored). Rules
// consult the second only for sites on the first, so a deployment without a
// registry sees no difference.
const (
	SitesList     = "org_sites"
	SiteWiFiList  = "org_site_wifi"
	sitesPerBatch = 1000
)

// LoadSites registers the sites of a sites file (riskgen --sites: one
// population.SiteRecord a line) in riskd's lists, creating them when needed.
// It returns the number of sites read.
func LoadSites(ctx context.Context, lists riskv1connect.ListsServiceClient, r io.Reader) (int, error) {
	var ids, bssids []string
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
