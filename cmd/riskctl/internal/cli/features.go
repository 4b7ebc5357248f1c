package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/features"
)

func init() {
	register(&command{
		Name:    "features",
		Summary: "check a feature catalog; show an entity's current features",
		Subs: []*command{
			{Name: "check", Args: "FILE", Summary: "check a feature catalog offline, as riskd would at start",
				Help: `Check gives the verdict riskd gives on a catalog file: ok, or each problem
with the feature's name and line. Exit 1 on a broken catalog. No riskd needed.`,
				Setup: func(fs *flag.FlagSet) runFunc { return featuresCheck }},
			{Name: "show", Args: "--account A | --device D | --ip IP", Summary: "print an entity's current feature values", Role: auth.RoleAnalyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					acct := fs.String("account", "", "account `ID`")
					dev := fs.String("device", "", "device `ID`")
					ip := fs.String("ip", "", "IP `ADDRESS`")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return featuresShow(ctx, inv, args, *acct, *dev, *ip)
					}
				}},
		},
	})
}

func featuresCheck(_ context.Context, inv *invocation, args []string) error {
	p, err := oneArg("features check", args, "a catalog FILE")
	if err != nil {
		return err
	}
	if err := features.CheckFile(p); err != nil {
		return &exitError{code: ExitTestsFailed, err: err}
	}
	_, err = fmt.Fprintf(inv.stdout(), "ok: %s\n", p)
	return err
}

func featuresShow(ctx context.Context, inv *invocation, args []string, acct, dev, ip string) error {
	if len(args) > 0 {
		return usagef("features show takes no arguments (use --account, --device or --ip)")
	}
	req := &riskv1.ShowFeaturesRequest{}
	n := 0
	for _, o := range []struct {
		v string
		k riskv1.EntityKind
	}{{acct, riskv1.EntityKind_ENTITY_KIND_ACCOUNT}, {dev, riskv1.EntityKind_ENTITY_KIND_DEVICE}, {ip, riskv1.EntityKind_ENTITY_KIND_IP}} {
		if o.v != "" {
			req.Kind, req.Value = o.k, o.v
			n++
		}
	}
	if n != 1 {
		return usagef("features show needs exactly one of --account, --device and --ip")
	}
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return err
	}
	c := riskv1connect.NewFeaturesServiceClient(hc, base, opts...)
	res, err := unary(ctx, inv, c.ShowFeatures, req)
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	if len(res.GetFeatures()) == 0 {
		return &exitError{code: ExitOK, err: errors.New("no features are kept by that key")}
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tVALUE\tAGG\tLAST SEEN")
	for _, f := range res.GetFeatures() {
		last := ""
		if f.GetLastAt() != nil {
			last = formatTime(f.GetLastAt())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.GetName(), formatValue(f.GetValue()), f.GetAggregation(), last)
	}
	return tw.Flush()
}
