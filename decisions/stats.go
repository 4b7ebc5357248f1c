package decisions

import "sort"

// RuleOverturns is one rule's appeal record against its hits.
type RuleOverturns struct {
	RuleID    string  `json:"rule_id"`
	Hits      int64   `json:"hits"`
	Overturns int     `json:"overturns"`
	Rate      float64 `json:"rate"` // overturns / hits
	Flagged   bool    `json:"flagged"`
}

// OverturnRates joins the overturn counts with per-rule hit counts (the
// rules package keeps those) and flags rules whose overturn rate exceeds
// threshold once they have at least minHits hits; each flagged rule is
// logged. Sorted by rate, highest first, then rule id.
func (l *Log) OverturnRates(hits map[string]int64, threshold float64, minHits int64) []RuleOverturns {
	ov := l.OverturnsByRule()
	ids := map[string]bool{}
	for id := range hits {
		ids[id] = true
	}
	for id := range ov {
		ids[id] = true
	}
	out := make([]RuleOverturns, 0, len(ids))
	for id := range ids {
		r := RuleOverturns{RuleID: id, Hits: hits[id], Overturns: ov[id]}
		if r.Hits > 0 {
			r.Rate = float64(r.Overturns) / float64(r.Hits)
		}
		r.Flagged = r.Hits >= minHits && r.Hits > 0 && r.Rate > threshold
		if r.Flagged {
			l.opts.Logger.Warn("decisions: rule overturn rate above threshold", "rule", id, "rate", r.Rate, "overturns", r.Overturns, "hits", r.Hits, "threshold", threshold)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rate != out[j].Rate {
			return out[i].Rate > out[j].Rate
		}
		return out[i].RuleID < out[j].RuleID
	})
	return out
}
