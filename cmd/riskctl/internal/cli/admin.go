package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "admin",
		Summary: "data rights, retention and the access audit (admin)",
		Help:    "Administer what riskd keeps: a subject's data exported or erased, what each retention class holds, and who read or changed what.",
		Subs: []*command{
			{
				Name:    "retention",
				Args:    "[flags]",
				Summary: "show what each retention class holds and its oldest record",
				Role:    auth.RoleAdmin,
				Help: `Retention prints, per retention class, how long it keeps records, how many
it holds, their approximate size on disk and the oldest one's time.`,
				Setup: func(fs *flag.FlagSet) runFunc { return adminRetention },
			},
			{
				Name:    "audit",
				Args:    "[--since T] [--actor X] [--procedure P] [flags]",
				Summary: "query the access audit, newest first",
				Role:    auth.RoleAdmin,
				Help: `Audit prints the access audit newest first: when, role, actor, procedure,
what it named, from where and the result. --since takes an RFC 3339 time or
a duration back from now (24h); --actor a credential name (analyst, admin,
service) or subject:ACCOUNT_ID; --procedure a procedure, or a service
prefix ending in / (/risk.v1.DecisionService/).`,
				Setup: func(fs *flag.FlagSet) runFunc {
					var o auditOptions
					fs.StringVar(&o.since, "since", "", "only records at or after `T` (RFC 3339, or a duration back from now)")
					fs.StringVar(&o.actor, "actor", "", "only this `ACTOR`")
					fs.StringVar(&o.procedure, "procedure", "", "only this `PROCEDURE` (or prefix ending in /)")
					fs.IntVar(&o.limit, "limit", 0, "at most `N` records (default riskd's, 1000)")
					return o.run
				},
			},
			{
				Name:    "export",
				Args:    "ACCOUNT_ID",
				Summary: "print everything stored about an account, as JSON",
				Role:    auth.RoleAdmin,
				Setup: func(fs *flag.FlagSet) runFunc {
					return func(ctx context.Context, inv *invocation, args []string) error {
						if len(args) != 1 || args[0] == "" {
							return usagef("admin export takes one ACCOUNT_ID")
						}
						c, err := inv.adminClient()
						if err != nil {
							return err
						}
						cctx, cancel := inv.callContext(ctx)
						defer cancel()
						res, err := c.ExportSubjectData(cctx, connect.NewRequest(&riskv1.ExportSubjectDataRequest{AccountId: args[0]}))
						if err != nil {
							return inv.callError(err)
						}
						_, err = fmt.Fprintln(inv.stdout(), res.Msg.GetJson())
						return err
					}
				},
			},
			{
				Name:    "erase",
				Args:    "--yes ACCOUNT_ID",
				Summary: "erase an account's data (decisions are kept, redacted)",
				Role:    auth.RoleAdmin,
				Setup: func(fs *flag.FlagSet) runFunc {
					var yes bool
					var reason string
					fs.BoolVar(&yes, "yes", false, "confirm: the erasure cannot be undone")
					fs.StringVar(&reason, "reason", "", "why (a ticket or request `REF`), kept in the audit")
					return func(ctx context.Context, inv *invocation, args []string) error {
						if len(args) != 1 || args[0] == "" {
							return usagef("admin erase takes one ACCOUNT_ID")
						}
						if !yes {
							return usagef("admin erase cannot be undone: add --yes")
						}
						c, err := inv.adminClient()
						if err != nil {
							return err
						}
						cctx, cancel := inv.callContext(ctx)
						defer cancel()
						res, err := c.EraseSubject(cctx, connect.NewRequest(&riskv1.EraseSubjectRequest{AccountId: args[0], Reason: reason}))
						if err != nil {
							return inv.callError(err)
						}
						if inv.g.json {
							return writeJSON(inv.stdout(), res.Msg)
						}
						m := res.Msg
						_, err = fmt.Fprintf(inv.stdout(), "erased: %d events, %d feature keys, %d devices, %d appeals, %d labels, %d list entries; %d decisions redacted (erasure entry %d); chain verified: %v\n",
							m.GetEventsDeleted(), m.GetFeatureKeysDeleted(), m.GetDevicesForgotten(), m.GetAppealsErased(), m.GetLabelsDeleted(),
							m.GetListEntriesDeleted(), m.GetDecisionsRedacted(), m.GetErasureSeq(), m.GetChainVerified())
						return err
					}
				},
			},
		},
	})
}

func (inv *invocation) adminClient() (riskv1connect.AdminServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewAdminServiceClient(hc, base, opts...), nil
}

func adminRetention(ctx context.Context, inv *invocation, args []string) error {
	if len(args) != 0 {
		return usagef("admin retention takes no arguments")
	}
	c, err := inv.adminClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.GetRetention, &riskv1.GetRetentionRequest{})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tKEEPS\tRECORDS\tAPPROX BYTES\tOLDEST")
	for _, cl := range res.GetClasses() {
		keeps := "-"
		if cl.GetRetention() != nil {
			keeps = days(cl.GetRetention().AsDuration())
		}
		oldest := "-"
		if cl.GetOldest() != nil {
			oldest = cl.GetOldest().AsTime().UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", cl.GetName(), keeps, cl.GetRecords(), cl.GetApproxBytes(), oldest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if ls := res.GetLastSweep(); ls != nil {
		fmt.Fprintf(inv.stdout(), "last sweep: %s\n", ls.AsTime().UTC().Format(time.RFC3339))
	}
	return nil
}

// days prints a retention in days when it is whole days.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

type auditOptions struct {
	since, actor, procedure string
	limit                   int
}

func (o *auditOptions) run(ctx context.Context, inv *invocation, args []string) error {
	if len(args) != 0 {
		return usagef("admin audit takes no arguments")
	}
	req := &riskv1.QueryAuditRequest{Actor: o.actor, Procedure: o.procedure, Limit: int32(o.limit)}
	if o.since != "" {
		t, err := time.Parse(time.RFC3339, o.since)
		if err != nil {
			d, derr := time.ParseDuration(o.since)
			if derr != nil || d < 0 {
				return usagef("--since %q: want an RFC 3339 time or a duration such as 24h", o.since)
			}
			t = inv.env.Clock.Now().Add(-d)
		}
		req.Since = timestamppb.New(t)
	}
	c, err := inv.adminClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.QueryAudit, req)
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tROLE\tACTOR\tPROCEDURE\tTARGETS\tPEER\tRESULT")
	for _, r := range res.GetRecords() {
		targets := strings.Join(r.GetTargets(), ",")
		if targets == "" {
			targets = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetAt().AsTime().UTC().Format(time.RFC3339Nano), r.GetRole(), r.GetActor(),
			r.GetProcedure(), targets, r.GetPeer(), r.GetCode())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.GetTruncated() {
		inv.noticef("more records matched; narrow with --since, --actor or --procedure, or raise --limit")
	}
	return nil
}
