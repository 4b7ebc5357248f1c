package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/bench"
	"github.com/riskd/riskd/bench/quality"
)

func init() {
	register(&command{
		Name:    "quality",
		Args:    "[flags] EVENTS LABELS",
		Summary: "measure detection on a labelled stream (riskgen output) sent through riskd",
		Role:    auth.RoleService,
		Help: `Quality sends a labelled stream, as riskgen writes it (EVENTS: NDJSON events,
LABELS: NDJSON labels), through riskd in time order: Evaluate for logins,
payments, check-ins, password resets and registrations, Ingest for service
logs and device reports. It prints per scenario the events, the detection
rate (outcome at least CHALLENGE for takeover, stuffing and payment fraud,
at least REVIEW for attendance cheating, over the events whose label expects
one) and the false-positive rate of benign events (CHALLENGE or above for
logins and payments, REVIEW or above for check-ins), and per rule its hits
and precision (the share of its hits on attack events). --json prints the
same as JSON.

riskd refuses events older than its --max-event-age (default 24h) or in the
future, so by default (--restamp auto) a stream outside that span is shifted
to end now. Send each stream to a fresh riskd: features remember what they
saw, and event ids are idempotency keys.

With --targets (the default) the exit code is 6 when a target is missed:
detection of at least 95% for every attack scenario but stuffing_slow (80%),
false positives at most 1% of benign logins and payments and 0.5% of benign
check-ins.

--sites FILE registers the organizations' attendance sites (riskgen --sites
writes them) in the lists org_sites, org_site_wifi (their access points'
BSSIDs) and org_site_area (the cells around each site) before the run, as an
organization would: the rules att.unknown_wifi_at_site and
att.outside_site_area need them.

Example:
  riskgen --seed 7 --accounts 3000 --duration 90m --end-now \
    --out events.ndjson --labels labels.ndjson --sites sites.ndjson
  riskctl quality --sites sites.ndjson events.ndjson labels.ndjson`,
		Setup: func(fs *flag.FlagSet) runFunc {
			o := &qualityOptions{}
			fs.BoolVar(&o.targets, "targets", true, "exit 6 when a detection or false-positive target is missed")
			fs.StringVar(&o.restamp, "restamp", "auto", "`MODE`: auto (shift the stream to end now when riskd would refuse it), always or never")
			fs.DurationVar(&o.maxAge, "max-event-age", 24*time.Hour, "riskd's --max-event-age, for --restamp auto")
			fs.StringVar(&o.sites, "sites", "", "register the attendance sites of `FILE` (riskgen --sites) in the org_sites, org_site_wifi and org_site_area lists first (needs the analyst token)")
			return o.run
		},
	})
}

type qualityOptions struct {
	targets bool
	restamp string
	maxAge  time.Duration
	sites   string
}

func (o *qualityOptions) run(ctx context.Context, inv *invocation, args []string) error {
	if len(args) != 2 {
		return usagef("quality needs EVENTS and LABELS files")
	}
	var rs quality.Restamp
	switch o.restamp {
	case "auto":
		rs = quality.RestampAuto
	case "always":
		rs = quality.RestampAlways
	case "never":
		rs = quality.RestampNever
	default:
		return usagef("--restamp %q: want auto, always or never", o.restamp)
	}
	lf, err := os.Open(args[1])
	if err != nil {
		return usagef("labels: %v", err)
	}
	labels, err := bench.ReadLabels(lf)
	lf.Close()
	if err != nil {
		return usagef("%v", err)
	}
	ef, err := os.Open(args[0])
	if err != nil {
		return usagef("events: %v", err)
	}
	items, err := quality.ReadNDJSON(ef, labels)
	ef.Close()
	if err != nil {
		return usagef("%v", err)
	}
	rc, err := inv.riskClient()
	if err != nil {
		return err
	}
	if o.sites != "" {
		f, err := os.Open(o.sites)
		if err != nil {
			return usagef("sites: %v", err)
		}
		defer f.Close()
		analyst := *inv
		analyst.role = auth.RoleAnalyst
		lc, err := analyst.listsClient()
		if err != nil {
			return err
		}
		n, err := quality.LoadSites(ctx, lc, f)
		if err != nil {
			return analyst.callError(err)
		}
		fmt.Fprintf(inv.env.Stderr, "quality: registered %d sites in lists %s, %s and %s\n", n, quality.SitesList, quality.SiteWiFiList, quality.SiteAreaList)
	}
	start := time.Now()
	rep, err := quality.Run(ctx, items, quality.Options{
		Risk: rc, Now: inv.env.Clock.Now, Restamp: rs, MaxAge: o.maxAge,
		Progress: func(done, total int) {
			if done%20000 == 0 {
				fmt.Fprintf(inv.env.Stderr, "quality: %d/%d events, %s\n", done, total, time.Since(start).Round(time.Second))
			}
		},
	})
	if err != nil {
		return inv.callError(err)
	}
	miss := rep.Check(quality.DefaultTargets())
	if inv.g.json {
		out := struct {
			*quality.Report
			Missed []string `json:"missed_targets"`
		}{rep, miss}
		if out.Missed == nil {
			out.Missed = []string{}
		}
		enc := json.NewEncoder(inv.stdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		if err := rep.WriteText(inv.stdout()); err != nil {
			return err
		}
		fmt.Fprintln(inv.stdout())
		quality.WriteMisses(inv.stdout(), miss)
	}
	if o.targets && len(miss) > 0 {
		return &exitError{code: ExitMissed}
	}
	return nil
}
