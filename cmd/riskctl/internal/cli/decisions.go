package cli

import (
	"context"
	"flag"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "decisions",
		Summary: "read the decision log",
		Help:    "Read the decisions riskd recorded: one by id, or an account's, newest first.",
		Subs: []*command{
			{
				Name:    "get",
				Args:    "[flags] DECISION_ID",
				Summary: "show one decision and why it was made",
				Role:    auth.RoleAnalyst,
				Help: `Get prints one decision: outcome, score, the fired rules with their messages
in English and Chinese, shadow hits, and with --features every computed
feature. With --json it prints the GetDecisionResponse in JSON.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					var features bool
					fs.BoolVar(&features, "features", false, "also print every computed feature")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return decisionsGet(ctx, inv, args, features)
					}
				},
			},
			{
				Name:    "list",
				Args:    "--account ACCOUNT_ID [flags]",
				Summary: "list an account's decisions, newest first",
				Role:    auth.RoleAnalyst,
				Help: `List prints an account's decisions, newest first, one line each. riskd
returns them a page at a time: the next page's token is printed on standard
error (or in nextPageToken with --json); --all follows the tokens to the end.
With --json it prints a ListDecisionsResponse in JSON (with --all, one
response holding every decision).`,
				Setup: func(fs *flag.FlagSet) runFunc {
					var o listOptions
					fs.StringVar(&o.account, "account", "", "the account `ID` (required)")
					fs.IntVar(&o.pageSize, "page-size", 0, "`N` decisions per page, 1..500 (default: riskd's, 50)")
					fs.StringVar(&o.pageToken, "page-token", "", "continue from this `TOKEN` (from a previous page)")
					fs.BoolVar(&o.all, "all", false, "follow page tokens until the last page")
					return o.run
				},
			},
		},
	})
}

func decisionsGet(ctx context.Context, inv *invocation, args []string, features bool) error {
	if len(args) != 1 || args[0] == "" {
		return usagef("decisions get takes one DECISION_ID")
	}
	client, err := inv.decisionClient()
	if err != nil {
		return err
	}
	resp, err := unary(ctx, inv, client.GetDecision, &riskv1.GetDecisionRequest{DecisionId: args[0]})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), resp)
	}
	return writeDecision(inv.stdout(), resp.GetDecision(), decisionView{features: features})
}

type listOptions struct {
	account   string
	pageSize  int
	pageToken string
	all       bool
}

// maxPages stops --all against a server that never stops paging.
const maxPages = 100000

func (o *listOptions) run(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 0 {
		return usagef("decisions list takes no arguments (use --account), got %q", args[0])
	}
	if o.account == "" {
		return usagef("decisions list needs --account")
	}
	if o.pageSize < 0 || o.pageSize > 500 {
		return usagef("--page-size %d: want 1..500", o.pageSize)
	}
	client, err := inv.decisionClient()
	if err != nil {
		return err
	}
	out := &riskv1.ListDecisionsResponse{}
	token := o.pageToken
	for page := 0; ; page++ {
		req := &riskv1.ListDecisionsRequest{AccountId: o.account, PageSize: int32(o.pageSize), PageToken: token}
		cctx, cancel := inv.callContext(ctx)
		resp, err := client.ListDecisions(cctx, connect.NewRequest(req))
		cancel()
		if err != nil {
			return inv.callError(err)
		}
		out.Decisions = append(out.Decisions, resp.Msg.GetDecisions()...)
		out.NextPageToken = resp.Msg.GetNextPageToken()
		if !o.all || out.NextPageToken == "" || out.NextPageToken == token || page >= maxPages {
			break
		}
		token = out.NextPageToken
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), out)
	}
	if err := writeDecisionTable(inv.stdout(), out.GetDecisions()); err != nil {
		return err
	}
	if out.NextPageToken != "" && !o.all {
		inv.noticef("more: riskctl decisions list --account %s --page-token %s", o.account, out.NextPageToken)
	}
	return nil
}
