package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "appeals",
		Summary: "file, follow and resolve appeals",
		Help: `A subject appeals an automated decision about them; reviewers answer each
appeal within its due time (15 days after filing by default).`,
		Subs: []*command{
			{
				Name:    "list",
				Args:    "[--status S] [--overdue] [--account A]",
				Summary: "list appeals, oldest due first, overdue ones flagged",
				Role:    auth.RoleAnalyst,
				Help: `List prints the review queue: appeals oldest due first, with overdue ones
flagged. --status filters by open, in_review, upheld or overturned;
--overdue shows only unresolved appeals past their due time. With a subject
token it lists the subject's own appeals. --all follows page tokens to the
end. With --json it prints the ListAppealsResponse.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					var o appealListOptions
					fs.StringVar(&o.status, "status", "", "only appeals in this `STATUS`: open, in_review, upheld, overturned")
					fs.BoolVar(&o.overdue, "overdue", false, "only unresolved appeals past their due time")
					fs.StringVar(&o.account, "account", "", "only this account's appeals")
					fs.IntVar(&o.pageSize, "page-size", 0, "`N` appeals per page, 1..500 (default: riskd's, 50)")
					fs.StringVar(&o.pageToken, "page-token", "", "continue from this `TOKEN`")
					fs.BoolVar(&o.all, "all", false, "follow page tokens until the last page")
					return o.run
				},
			},
			{
				Name:    "get",
				Args:    "[flags] APPEAL_ID",
				Summary: "show one appeal with its history",
				Role:    auth.RoleAnalyst,
				Help: `Get prints one appeal: status, statement, due time, resolution and every
status change with who, when and why (a subject sees roles, not reviewers'
names). With --json it prints the GetAppealResponse.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					return func(ctx context.Context, inv *invocation, args []string) error {
						return appealsGet(ctx, inv, args)
					}
				},
			},
			{
				Name:    "file",
				Args:    "DECISION_ID --statement TEXT [--contact C] --token SUBJECT_TOKEN",
				Summary: "appeal a decision (as its subject)",
				Help: `File appeals a decision as the person it is about. It needs that person's
subject token:
  riskctl appeals file DECISION_ID --statement "I was at work" \
    --token "$(riskctl token subject ACCOUNT_ID)"
The statement is required (up to 4,000 characters); --contact is optional.
Only one appeal per decision may be open, and only before the decision's
appeal deadline. With --json it prints the FileAppealResponse.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					statement := fs.String("statement", "", "why the decision is wrong, in your words (required)")
					contact := fs.String("contact", "", "how reviewers may reach you (optional)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return appealsFile(ctx, inv, args, *statement, *contact)
					}
				},
			},
			{
				Name:    "review",
				Args:    "[flags] APPEAL_ID",
				Summary: "start reviewing an open appeal",
				Role:    auth.RoleAnalyst,
				Help:    `Review moves an open appeal to in_review, recording who took it.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					return func(ctx context.Context, inv *invocation, args []string) error {
						return appealsReview(ctx, inv, args)
					}
				},
			},
			{
				Name:    "resolve",
				Args:    "APPEAL_ID --uphold|--overturn --reason TEXT [--remedy-days N]",
				Summary: "uphold or overturn an appeal, with a written reason",
				Role:    auth.RoleAnalyst,
				Help: `Resolve answers an appeal: --uphold keeps the decision, --overturn reverses
it. --reason is required: the subject reads it. An overturn never edits the
decision; it appends a linked overturn record and labels the decision a
false positive. --remedy-days N (overturn only) puts the account on the
allowed list for N days, so the same rules do not hit it again meanwhile.
A reviewer who authored or last changed a rule that fired in the decision
may not resolve it (an admin may).`,
				Setup: func(fs *flag.FlagSet) runFunc {
					var o resolveOptions
					fs.BoolVar(&o.uphold, "uphold", false, "keep the decision")
					fs.BoolVar(&o.overturn, "overturn", false, "reverse the decision")
					fs.StringVar(&o.reason, "reason", "", "why, for the subject (required)")
					fs.IntVar(&o.remedyDays, "remedy-days", 0, "with --overturn: allow-list the account for `N` days (0..365)")
					return o.run
				},
			},
		},
	})
}

func (inv *invocation) appealClient() (riskv1connect.AppealServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewAppealServiceClient(hc, base, opts...), nil
}

func parseAppealStatus(s string) (riskv1.AppealStatus, bool) {
	if s == "" {
		return riskv1.AppealStatus_APPEAL_STATUS_UNSPECIFIED, true
	}
	v, ok := riskv1.AppealStatus_value["APPEAL_STATUS_"+strings.ToUpper(strings.ReplaceAll(s, "-", "_"))]
	return riskv1.AppealStatus(v), ok && v != 0
}

type appealListOptions struct {
	status    string
	overdue   bool
	account   string
	pageSize  int
	pageToken string
	all       bool
}

func (o *appealListOptions) run(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 0 {
		return usagef("appeals list takes no arguments, got %q", args[0])
	}
	st, ok := parseAppealStatus(o.status)
	if !ok {
		return usagef("--status %q: want open, in_review, upheld or overturned", o.status)
	}
	if o.pageSize < 0 || o.pageSize > 500 {
		return usagef("--page-size %d: want 1..500", o.pageSize)
	}
	c, err := inv.appealClient()
	if err != nil {
		return err
	}
	out := &riskv1.ListAppealsResponse{}
	token := o.pageToken
	for page := 0; ; page++ {
		cctx, cancel := inv.callContext(ctx)
		res, err := c.ListAppeals(cctx, connect.NewRequest(&riskv1.ListAppealsRequest{
			Status: st, OverdueOnly: o.overdue, AccountId: o.account, PageSize: int32(o.pageSize), PageToken: token}))
		cancel()
		if err != nil {
			return inv.callError(err)
		}
		out.Appeals = append(out.Appeals, res.Msg.GetAppeals()...)
		out.NextPageToken = res.Msg.GetNextPageToken()
		if !o.all || out.NextPageToken == "" || out.NextPageToken == token || page >= maxPages {
			break
		}
		token = out.NextPageToken
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), out)
	}
	if err := writeAppealTable(inv.stdout(), out.GetAppeals()); err != nil {
		return err
	}
	if out.NextPageToken != "" && !o.all {
		inv.noticef("more: riskctl appeals list --page-token %s", out.NextPageToken)
	}
	return nil
}

func writeAppealTable(w io.Writer, as []*riskv1.Appeal) error {
	if len(as) == 0 {
		_, err := fmt.Fprintln(w, "no appeals")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APPEAL\tDECISION\tACCOUNT\tSTATUS\tFILED\tDUE\tOVERDUE")
	for _, a := range as {
		over := "-"
		if a.GetOverdue() {
			over = "OVERDUE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetAppealId(), a.GetDecisionId(), a.GetAccountId(),
			appealStatusName(a.GetStatus()), formatTime(a.GetFiledAt()), formatTime(a.GetDueAt()), over)
	}
	return tw.Flush()
}

func writeAppeal(w io.Writer, a *riskv1.Appeal) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	status := appealStatusName(a.GetStatus())
	if a.GetOverdue() {
		status += " (OVERDUE)"
	}
	row("appeal", a.GetAppealId())
	row("status", status)
	row("decision", a.GetDecisionId())
	row("account", a.GetAccountId())
	row("filed", formatTime(a.GetFiledAt()))
	row("due", formatTime(a.GetDueAt()))
	row("statement", a.GetStatement())
	row("contact", a.GetContact())
	if a.GetResolvedAt() != nil {
		row("resolved", formatTime(a.GetResolvedAt()))
		row("resolved by", a.GetResolvedBy())
		row("reason", a.GetResolutionReason())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(a.GetHistory()) > 0 {
		fmt.Fprintln(w, "history:")
		htw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, h := range a.GetHistory() {
			who := h.GetRole()
			if h.GetActor() != "" && h.GetActor() != h.GetRole() {
				who = h.GetActor() + " (" + h.GetRole() + ")"
			}
			fmt.Fprintf(htw, "  %s\t%s -> %s\t%s\t%s\n", formatTime(h.GetAt()), appealStatusName(h.GetFrom()), appealStatusName(h.GetTo()), who, h.GetReason())
		}
		return htw.Flush()
	}
	return nil
}

func appealsGet(ctx context.Context, inv *invocation, args []string) error {
	id, err := oneID(inv.path, args)
	if err != nil {
		return err
	}
	c, err := inv.appealClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.GetAppeal, &riskv1.GetAppealRequest{AppealId: id})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	return writeAppeal(inv.stdout(), res.GetAppeal())
}

func appealsFile(ctx context.Context, inv *invocation, args []string, statement, contact string) error {
	id, err := oneID(inv.path, args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(statement) == "" {
		return usagef("appeals file needs --statement")
	}
	if inv.g.token == "" {
		return usagef("appeals file needs the subject's token: --token \"$(riskctl token subject ACCOUNT_ID)\"")
	}
	c, err := inv.appealClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.FileAppeal, &riskv1.FileAppealRequest{DecisionId: id, Statement: statement, Contact: contact})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	a := res.GetAppeal()
	_, err = fmt.Fprintf(inv.stdout(), "filed appeal %s on decision %s; an answer is due by %s\n已提交申诉 %s，将于 %s 前答复\n",
		a.GetAppealId(), a.GetDecisionId(), formatTime(a.GetDueAt()), a.GetAppealId(), formatTime(a.GetDueAt()))
	return err
}

func appealsReview(ctx context.Context, inv *invocation, args []string) error {
	id, err := oneID(inv.path, args)
	if err != nil {
		return err
	}
	c, err := inv.appealClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.StartReview, &riskv1.StartReviewRequest{AppealId: id})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	return writeAppeal(inv.stdout(), res.GetAppeal())
}

type resolveOptions struct {
	uphold, overturn bool
	reason           string
	remedyDays       int
}

func (o *resolveOptions) run(ctx context.Context, inv *invocation, args []string) error {
	id, err := oneID(inv.path, args)
	if err != nil {
		return err
	}
	var res riskv1.AppealStatus
	switch {
	case o.uphold == o.overturn:
		return usagef("appeals resolve needs exactly one of --uphold and --overturn")
	case o.uphold:
		res = riskv1.AppealStatus_APPEAL_STATUS_UPHELD
	default:
		res = riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED
	}
	if strings.TrimSpace(o.reason) == "" {
		return usagef("appeals resolve needs --reason: the subject reads it")
	}
	if o.remedyDays < 0 || o.remedyDays > 365 {
		return usagef("--remedy-days %d: want 0..365", o.remedyDays)
	}
	if o.remedyDays > 0 && !o.overturn {
		return usagef("--remedy-days goes with --overturn")
	}
	c, err := inv.appealClient()
	if err != nil {
		return err
	}
	r, err := unary(ctx, inv, c.ResolveAppeal, &riskv1.ResolveAppealRequest{AppealId: id, Resolution: res, Reason: o.reason, RemedyDays: int64(o.remedyDays)})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), r)
	}
	return writeAppeal(inv.stdout(), r.GetAppeal())
}
