package quality

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/riskd/riskd/bench"
)

// Targets are the detection-quality goals a Report is checked against.
type Targets struct {
	// Detection is the least detection rate of every attack scenario but
	// slow stuffing. Default 0.95.
	Detection float64
	// SlowStuffing is the least detection rate of stuffing_slow. Default 0.80.
	SlowStuffing float64
	// AccountFP is the most false-positive rate of benign logins, payments,
	// registrations and password resets. Default 0.01.
	AccountFP float64
	// CheckinFP is the most false-positive rate of benign check-ins.
	// Default 0.005.
	CheckinFP float64
	// MinDetectable: scenarios with fewer detectable events are reported but
	// not checked (a 95% target means nothing on ten events). Default 0:
	// check every scenario.
	MinDetectable int
}

// DefaultTargets are issue 6's.
func DefaultTargets() Targets {
	return Targets{Detection: 0.95, SlowStuffing: 0.80, AccountFP: 0.01, CheckinFP: 0.005}
}

// Target returns the detection goal of scenario s.
func (t Targets) Target(s string) float64 {
	if s == string(bench.StuffingSlow) {
		return t.SlowStuffing
	}
	return t.Detection
}

// Check returns one line per missed target; none means every target holds.
// Events riskd refused count as a miss: the report would not be whole.
func (r *Report) Check(t Targets) []string {
	var miss []string
	for _, s := range r.Scenarios {
		if !s.Attack || s.Detection.Total == 0 || s.Detection.Total < t.MinDetectable {
			continue
		}
		if want := t.Target(s.Scenario); s.Detection.Rate < want {
			miss = append(miss, fmt.Sprintf("%s: detection %.1f%% (%d/%d), target %.0f%%",
				s.Scenario, 100*s.Detection.Rate, s.Detection.Count, s.Detection.Total, 100*want))
		}
	}
	if r.AccountFP.Rate > t.AccountFP {
		miss = append(miss, fmt.Sprintf("benign logins and payments: false positives %.2f%% (%d/%d), target at most %.1f%%",
			100*r.AccountFP.Rate, r.AccountFP.Count, r.AccountFP.Total, 100*t.AccountFP))
	}
	if r.CheckinFP.Rate > t.CheckinFP {
		miss = append(miss, fmt.Sprintf("benign check-ins: false positives %.2f%% (%d/%d), target at most %.1f%%",
			100*r.CheckinFP.Rate, r.CheckinFP.Count, r.CheckinFP.Total, 100*t.CheckinFP))
	}
	if r.Errors > 0 {
		miss = append(miss, fmt.Sprintf("%d events refused by riskd (first: %s)", r.Errors, r.FirstError))
	}
	return miss
}

func pct(r Rate) string {
	if r.Total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*r.Rate)
}

// WriteText prints the report as tables.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "events %d (evaluated %d, ingested %d, refused %d, degraded %d)", r.Events, r.Evaluated, r.Ingested, r.Errors, r.Degraded)
	if r.Shift != 0 {
		fmt.Fprintf(tw, ", timestamps shifted by %s", r.Shift.Round(1e9))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SCENARIO\tEVENTS\tEVALUATED\tDETECTED\tDETECTION\tFALSE POS\tFP RATE")
	for _, s := range r.Scenarios {
		det, fp := "-", "-"
		if s.Detection.Total > 0 {
			det = fmt.Sprintf("%d/%d", s.Detection.Count, s.Detection.Total)
		}
		if s.FalsePositives.Total > 0 {
			fp = fmt.Sprintf("%d/%d", s.FalsePositives.Count, s.FalsePositives.Total)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Scenario, s.Events, s.Evaluated, det, pct(s.Detection), fp, pct(s.FalsePositives))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "benign logins and payments: %d/%d false positives (%s, CHALLENGE or above)\n", r.AccountFP.Count, r.AccountFP.Total, pct(r.AccountFP))
	fmt.Fprintf(tw, "benign check-ins: %d/%d false positives (%s, REVIEW or above)\n", r.CheckinFP.Count, r.CheckinFP.Total, pct(r.CheckinFP))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "RULE\tHITS\tON ATTACKS\tPRECISION")
	for _, ru := range r.Rules {
		id := ru.RuleID
		if ru.Shadow {
			id += " (shadow)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\n", id, ru.Hits, ru.AttackHits, 100*ru.Precision)
	}
	return tw.Flush()
}

// WriteMisses prints Check's lines, or that every target holds.
func WriteMisses(w io.Writer, miss []string) {
	if len(miss) == 0 {
		fmt.Fprintln(w, "all targets met")
		return
	}
	fmt.Fprintf(w, "%d target(s) missed:\n  %s\n", len(miss), strings.Join(miss, "\n  "))
}
