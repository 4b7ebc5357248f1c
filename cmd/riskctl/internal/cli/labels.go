package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "labels",
		Summary: "record what really happened after a decision",
		Help: `Outcome labels (confirmed fraud, chargeback, false positive) on decisions or
on ingested events feed backtests and rule statistics.`,
		Subs: []*command{
			{
				Name:    "put",
				Args:    "(--decision ID | --event ID) --kind KIND",
				Summary: "label a decision or an event",
				Role:    auth.RoleAnalyst,
				Help: `Put labels a decision (--decision) or an event that has no decision
(--event) with --kind confirmed_fraud, chargeback or false_positive. The
latest label wins; the decision log keeps every one. Back ends label with
their service token (--token). With --json it prints the PutLabelResponse.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					decision := fs.String("decision", "", "the decision `ID` to label")
					eventID := fs.String("event", "", "the event `ID` to label")
					kind := fs.String("kind", "", "confirmed_fraud, chargeback or false_positive (required)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return labelsPut(ctx, inv, args, *decision, *eventID, *kind)
					}
				},
			},
			{
				Name:    "list",
				Args:    "[--kind KIND] [--limit N]",
				Summary: "list the current labels",
				Role:    auth.RoleAnalyst,
				Help:    `List prints the current labels: decision labels, then event labels.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					kind := fs.String("kind", "", "only labels of this kind")
					limit := fs.Int("limit", 0, "at most `N` labels, 1..10000 (default 1000)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return labelsList(ctx, inv, args, *kind, *limit)
					}
				},
			},
		},
	})
}

func (inv *invocation) labelsClient() (riskv1connect.LabelsServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewLabelsServiceClient(hc, base, opts...), nil
}

func parseLabelKind(s string) (riskv1.LabelKind, bool) {
	v, ok := riskv1.LabelKind_value["LABEL_KIND_"+strings.ToUpper(strings.ReplaceAll(s, "-", "_"))]
	return riskv1.LabelKind(v), ok && v != 0
}

func labelKindName(k riskv1.LabelKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "LABEL_KIND_"))
}

func labelsPut(ctx context.Context, inv *invocation, args []string, decision, eventID, kind string) error {
	if len(args) > 0 {
		return usagef("labels put takes no arguments (use --decision or --event), got %q", args[0])
	}
	if (decision == "") == (eventID == "") {
		return usagef("labels put needs exactly one of --decision and --event")
	}
	k, ok := parseLabelKind(kind)
	if !ok {
		return usagef("--kind %q: want confirmed_fraud, chargeback or false_positive", kind)
	}
	c, err := inv.labelsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.PutLabel, &riskv1.PutLabelRequest{DecisionId: decision, EventId: eventID, Kind: k})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	l := res.GetLabel()
	target := "decision " + l.GetDecisionId()
	if l.GetDecisionId() == "" {
		target = "event " + l.GetEventId()
	}
	_, err = fmt.Fprintf(inv.stdout(), "labelled %s %s\n", target, labelKindName(l.GetKind()))
	return err
}

func labelsList(ctx context.Context, inv *invocation, args []string, kind string, limit int) error {
	if len(args) > 0 {
		return usagef("labels list takes no arguments, got %q", args[0])
	}
	var k riskv1.LabelKind
	if kind != "" {
		var ok bool
		if k, ok = parseLabelKind(kind); !ok {
			return usagef("--kind %q: want confirmed_fraud, chargeback or false_positive", kind)
		}
	}
	if limit < 0 || limit > 10000 {
		return usagef("--limit %d: want 1..10000", limit)
	}
	c, err := inv.labelsClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ListLabels, &riskv1.ListLabelsRequest{Kind: k, Limit: int32(limit)})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	w := inv.stdout()
	if len(res.GetLabels()) == 0 {
		_, err := fmt.Fprintln(w, "no labels")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tDECISION\tEVENT\tSOURCE\tLABELLED")
	for _, l := range res.GetLabels() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", labelKindName(l.GetKind()), dash(l.GetDecisionId()), dash(l.GetEventId()), l.GetSource(), formatTime(l.GetLabeledAt()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.GetTruncated() {
		inv.noticef("more labels than --limit; raise it")
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
