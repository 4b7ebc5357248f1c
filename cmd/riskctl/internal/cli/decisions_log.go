package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
)

// This file adds the decision log's audit verbs to the "decisions" noun
// (registered in decisions.go, whose init runs first: files initialize in
// name order).
func init() {
	addVerbs("decisions",
		&command{
			Name:    "explain",
			Args:    "[flags] DECISION_ID",
			Summary: "explain a decision, in English and Chinese",
			Role:    auth.RoleAnalyst,
			Help: `Explain prints why a decision was made. With an analyst or admin token it
prints the whole record: the fired rules with versions and expressions,
shadow hits, the feature snapshot, the pseudonymized event, the rule-set
version, latency and the degraded flag. With a subject token
(--token "$(riskctl token subject ACCOUNT_ID)") it prints what the person
the decision is about may see: the outcome, the reasons in English and
Chinese, the categories of personal information used, whether it was fully
automated, and the appeal deadline. With --json it prints the
ExplainDecisionResponse.`,
			Setup: func(fs *flag.FlagSet) runFunc {
				return func(ctx context.Context, inv *invocation, args []string) error {
					return decisionsExplain(ctx, inv, args)
				}
			},
		},
		&command{
			Name:    "replay",
			Args:    "[flags] DECISION_ID",
			Summary: "re-run a decision's event and features through its rule set",
			Role:    auth.RoleAnalyst,
			Help: `Replay runs the stored event and feature snapshot of a decision through the
rule-set version that made it and checks that outcome, score and reasons come
out exactly as recorded; a mismatch is an error (exit 1) listing the
differences. With --ruleset VERSION it shows what another version would have
decided (a difference is then reported, not an error). With --json it prints
the ReplayDecisionResponse.`,
			Setup: func(fs *flag.FlagSet) runFunc {
				version := fs.String("ruleset", "", "replay with this rule-set `VERSION` instead of the recorded one")
				return func(ctx context.Context, inv *invocation, args []string) error {
					return decisionsReplay(ctx, inv, args, *version)
				}
			},
		},
		&command{
			Name:    "verify",
			Args:    "[--from DECISION_ID]",
			Summary: "verify the decision log's hash chain",
			Role:    auth.RoleAnalyst,
			Help: `Verify walks the decision log's hash chain from the first entry (or from
--from's entry, trusting what is before it) to the head, and names the first
record that does not verify: exit 0 when the chain is intact, 1 when it is
broken. With --json it prints the VerifyChainResponse.`,
			Setup: func(fs *flag.FlagSet) runFunc {
				from := fs.String("from", "", "start at this `DECISION_ID`'s entry")
				return func(ctx context.Context, inv *invocation, args []string) error {
					return decisionsVerify(ctx, inv, args, *from)
				}
			},
		},
		&command{
			Name:    "checkpoint",
			Args:    "[--out FILE]",
			Summary: "print or save the decision log's checkpoint (head hash and count)",
			Role:    auth.RoleAnalyst,
			Help: `Checkpoint prints the committed head of the decision log's hash chain: the
entry count and the head hash, for an auditor to anchor elsewhere. A later
verify proves the chain up to it is unchanged. --out writes it as JSON to
FILE (mode 0644).`,
			Setup: func(fs *flag.FlagSet) runFunc {
				out := fs.String("out", "", "write the checkpoint as JSON to `FILE`")
				return func(ctx context.Context, inv *invocation, args []string) error {
					return decisionsCheckpoint(ctx, inv, args, *out)
				}
			},
		},
		&command{
			Name:    "export",
			Args:    "[--account ACCOUNT_ID]",
			Summary: "export every decision and appeal about an account as JSON",
			Role:    auth.RoleAdmin,
			Help: `Export prints, as one JSON document, every decision riskd recorded about an
account and the appeals on them. An admin exports any account (--account);
a subject (--token "$(riskctl token subject ACCOUNT_ID)") exports their own,
in the subject's view.`,
			Setup: func(fs *flag.FlagSet) runFunc {
				account := fs.String("account", "", "the account `ID` (a subject's own by default)")
				return func(ctx context.Context, inv *invocation, args []string) error {
					return decisionsExport(ctx, inv, args, *account)
				}
			},
		},
	)
}

// addVerbs adds verbs to a noun registered elsewhere (or registers it).
func addVerbs(noun string, verbs ...*command) {
	if c := lookup(nouns, noun); c != nil {
		c.Subs = append(c.Subs, verbs...)
		return
	}
	register(&command{Name: noun, Subs: verbs})
}

func (inv *invocation) decisionLogClient() (riskv1connect.DecisionLogServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewDecisionLogServiceClient(hc, base, opts...), nil
}

func oneID(path string, args []string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usagef("%s takes one ID", path)
	}
	return args[0], nil
}

func decisionsExplain(ctx context.Context, inv *invocation, args []string) error {
	id, err := oneID(inv.path, args)
	if err != nil {
		return err
	}
	c, err := inv.decisionLogClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ExplainDecision, &riskv1.ExplainDecisionRequest{DecisionId: id})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	return writeExplanation(inv.stdout(), res.GetExplanation())
}

// writeExplanation prints an explanation for people, in English with the
// Chinese alongside.
func writeExplanation(w io.Writer, x *riskv1.Explanation) error {
	// Labels mix English and Chinese: align by display width, which
	// tabwriter (one column per rune) does not know.
	var rows [][2]string
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		rows = append(rows, [2]string{k, v})
	}
	row("decision / 决定", x.GetDecisionId())
	row("outcome / 结果", outcomeName(x.GetOutcome())+" ("+outcomeZH[x.GetOutcome()]+")")
	row("event / 事件", eventTypeName(x.GetEventType()))
	row("decided / 时间", formatTime(x.GetDecidedAt()))
	auto := "yes, no person took part / 是，全程自动，无人参与"
	if !x.GetFullyAutomated() {
		auto = "no, a person took part / 否，有人工参与"
	}
	row("fully automated / 完全自动", auto)
	cats := make([]string, 0, len(x.GetDataCategories()))
	for _, c := range x.GetDataCategories() {
		cats = append(cats, c+" ("+categoryZH[c]+")")
	}
	row("data used / 使用的个人信息", strings.Join(cats, ", "))
	deadline := formatTime(x.GetAppealDeadline())
	if x.GetAppealDeadline() != nil {
		if x.GetAppealable() {
			deadline += " (you may appeal until then / 此前可申诉)"
		} else {
			deadline += " (passed / 已过期)"
		}
	}
	row("appeal by / 申诉截止", deadline)
	if x.GetDegraded() {
		why := "yes: the service's safe default, not the rules' verdict / 是：系统安全默认结果，非规则判定"
		if r := x.GetDegradedReason(); r != "" {
			why += " (" + r + ")"
		}
		row("degraded / 降级", why)
	}
	if x.GetFull() {
		row("score", fmt.Sprint(x.GetScore()))
		row("ruleset", x.GetRulesetVersion())
		row("account", x.GetAccountId())
		row("event id", x.GetEventId())
		if x.GetLatency() != nil {
			row("latency", x.GetLatency().AsDuration().String())
		}
	}
	keyWidth := 0
	for _, r := range rows {
		keyWidth = max(keyWidth, displayWidth(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s%s  %s\n", r[0], strings.Repeat(" ", keyWidth-displayWidth(r[0])), r[1])
	}
	if len(x.GetReasons()) == 0 {
		fmt.Fprintln(w, "reasons / 原因: none, no rule fired / 无，未触发任何规则")
	} else if x.GetFull() {
		writeReasons(w, "reasons / 原因", x.GetReasons())
	} else {
		fmt.Fprintln(w, "reasons / 原因:")
		for _, r := range x.GetReasons() {
			fmt.Fprintf(w, "  - %s\n    %s\n", r.GetMessageEn(), r.GetMessageZh())
		}
	}
	writeReasons(w, "shadow (logged, not acted on)", x.GetShadowReasons())
	for _, a := range x.GetAppeals() {
		fmt.Fprintf(w, "appeal / 申诉: %s %s (due %s)", a.GetAppealId(), appealStatusName(a.GetStatus()), formatTime(a.GetDueAt()))
		if r := a.GetResolutionReason(); r != "" {
			fmt.Fprintf(w, ": %s", r)
		}
		fmt.Fprintln(w)
	}
	if x.GetFull() && len(x.GetFeatures()) > 0 {
		fmt.Fprintln(w, "features:")
		ftw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range x.GetFeatures() {
			fmt.Fprintf(ftw, "  %s\t%s\n", f.GetName(), formatValue(f.GetValue()))
		}
		if err := ftw.Flush(); err != nil {
			return err
		}
	}
	if ev := x.GetEvent(); x.GetFull() && ev != nil {
		fmt.Fprintln(w, "event (pseudonymized):")
		var b strings.Builder
		if err := writeJSON(&b, ev); err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	return nil
}

var outcomeZH = map[riskv1.Outcome]string{
	riskv1.Outcome_OUTCOME_UNSPECIFIED: "未知", riskv1.Outcome_OUTCOME_ALLOW: "通过", riskv1.Outcome_OUTCOME_CHALLENGE: "需要验证",
	riskv1.Outcome_OUTCOME_REVIEW: "人工审核", riskv1.Outcome_OUTCOME_DENY: "拒绝",
}

var categoryZH = map[string]string{
	"device": "设备信息", "network": "网络信息", "location": "位置信息", "behaviour": "行为信息", "payment": "支付信息",
}

func decisionsReplay(ctx context.Context, inv *invocation, args []string, version string) error {
	id, err := oneID(inv.path, args)
	if err != nil {
		return err
	}
	c, err := inv.decisionLogClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ReplayDecision, &riskv1.ReplayDecisionRequest{DecisionId: id, RulesetVersion: version})
	if err != nil {
		return err
	}
	r := res
	if inv.g.json {
		return writeJSON(inv.stdout(), r)
	}
	w := inv.stdout()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\trecorded\treplayed\n")
	fmt.Fprintf(tw, "ruleset\t%s\t%s\n", r.GetRecordedRulesetVersion(), r.GetRulesetVersion())
	fmt.Fprintf(tw, "outcome\t%s\t%s\n", outcomeName(r.GetRecordedOutcome()), outcomeName(r.GetOutcome()))
	fmt.Fprintf(tw, "score\t%d\t%d\n", r.GetRecordedScore(), r.GetScore())
	fmt.Fprintf(tw, "rules\t%s\t%s\n", ruleList(r.GetRecordedReasons()), ruleList(r.GetReasons()))
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.GetMatches() {
		_, err := fmt.Fprintln(w, "match: the replay reproduces the decision exactly")
		return err
	}
	fmt.Fprintln(w, "differs:")
	for _, d := range r.GetDifferences() {
		fmt.Fprintf(w, "  - %s\n", d)
	}
	return nil
}

func ruleList(rs []*riskv1.Reason) string {
	if len(rs) == 0 {
		return "-"
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = fmt.Sprintf("%s@v%d", r.GetRuleId(), r.GetRuleVersion())
	}
	return strings.Join(ids, ",")
}

func decisionsVerify(ctx context.Context, inv *invocation, args []string, from string) error {
	if len(args) > 0 {
		return usagef("decisions verify takes no arguments (use --from), got %q", args[0])
	}
	c, err := inv.decisionLogClient()
	if err != nil {
		return err
	}
	// Walking a long chain takes a while: give it more than one call's
	// usual timeout.
	cctx, cancel := context.WithTimeout(ctx, max(inv.g.timeout, 10*time.Minute))
	defer cancel()
	res, err := c.VerifyChain(cctx, connect.NewRequest(&riskv1.VerifyChainRequest{FromDecisionId: from}))
	if err != nil {
		return inv.callError(err)
	}
	r := res.Msg
	if inv.g.json {
		if err := writeJSON(inv.stdout(), r); err != nil {
			return err
		}
	} else {
		w := inv.stdout()
		if r.GetOk() {
			fmt.Fprintf(w, "ok: %d entries verified (seq %d..%d) in %s; head %d %s\n", r.GetChecked(), r.GetFirstSeq(), r.GetLastSeq(),
				r.GetElapsed().AsDuration().Round(time.Millisecond), r.GetHeadSeq(), r.GetHeadHash())
		} else {
			b := r.GetBroken()
			fmt.Fprintf(w, "BROKEN at entry %d", b.GetSeq())
			if b.GetKind() != "" {
				fmt.Fprintf(w, " (%s", b.GetKind())
				if b.GetDecisionId() != "" {
					fmt.Fprintf(w, " %s", b.GetDecisionId())
				}
				fmt.Fprint(w, ")")
			} else if b.GetDecisionId() != "" {
				fmt.Fprintf(w, " (decision %s)", b.GetDecisionId())
			}
			fmt.Fprintf(w, ": %s\n", b.GetReason())
			fmt.Fprintf(w, "%d entries verified before it (seq %d..%d); head %d %s\n", r.GetChecked(), r.GetFirstSeq(), r.GetLastSeq(), r.GetHeadSeq(), r.GetHeadHash())
		}
	}
	if !r.GetOk() {
		return &exitError{code: ExitServerError, err: errors.New("the decision log's hash chain is broken")}
	}
	return nil
}

func decisionsCheckpoint(ctx context.Context, inv *invocation, args []string, out string) error {
	if len(args) > 0 {
		return usagef("decisions checkpoint takes no arguments, got %q", args[0])
	}
	c, err := inv.decisionLogClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.GetCheckpoint, &riskv1.GetCheckpointRequest{})
	if err != nil {
		return err
	}
	cp := res.GetCheckpoint()
	if out != "" {
		var b strings.Builder
		if err := writeJSON(&b, cp); err != nil {
			return err
		}
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("--out: %w", err)}
		}
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	_, err = fmt.Fprintf(inv.stdout(), "entries %d\nhash    %s\nat      %s\n", cp.GetCount(), cp.GetHash(), formatTime(cp.GetAt()))
	return err
}

func decisionsExport(ctx context.Context, inv *invocation, args []string, account string) error {
	if len(args) > 0 {
		return usagef("decisions export takes no arguments (use --account), got %q", args[0])
	}
	if account == "" && inv.g.token == "" {
		return usagef("decisions export needs --account (or a subject's --token for their own)")
	}
	c, err := inv.decisionLogClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ExportSubject, &riskv1.ExportSubjectRequest{AccountId: account})
	if err != nil {
		return err
	}
	doc := res.GetJson()
	if !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	_, err = io.WriteString(inv.stdout(), doc)
	return err
}

// appealStatusName is "OPEN" for APPEAL_STATUS_OPEN.
func appealStatusName(s riskv1.AppealStatus) string {
	return strings.TrimPrefix(s.String(), "APPEAL_STATUS_")
}

// displayWidth is how many terminal columns s takes: East Asian wide and
// fullwidth characters take two.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF, r >= 0xAC00 && r <= 0xD7A3,
			r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6:
			n += 2
		default:
			n++
		}
	}
	return n
}
