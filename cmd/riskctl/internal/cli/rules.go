package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
	"github.com/riskd/riskd/auth"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

// ExitTestsFailed: rules test found a failing inline test (as go test does,
// a non-zero exit). It shares 1 with server errors: both mean "not ok".
const ExitTestsFailed = 1

func init() {
	analyst := auth.RoleAnalyst
	register(&command{
		Name:    "rules",
		Summary: "write, check, test, backtest, publish and roll back rule sets",
		Help: `Rule sets are YAML files (see riskd's README). The loop: validate, draft put,
test, diff, backtest, publish (rules with mode: shadow run without acting),
mode to promote a rule, rollback in one step. Every change records who and
when (rules history). pull and push keep a directory of rule files in step
with riskd, byte for byte, for git.`,
		Subs: []*command{
			{Name: "validate", Args: "FILE|DIR", Summary: "compile rule files and report every error", Role: analyst,
				Help: `Validate compiles the files against riskd's feature catalog (or, with
--offline, the catalog embedded in riskctl or --catalog FILE) and prints each
error with its file, line, column, rule and a suggestion. Exit 1 when a file
does not compile.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					offline := fs.Bool("offline", false, "compile locally instead of asking riskd")
					catalog := fs.String("catalog", "", "feature catalog `FILE` for --offline (default: the embedded one)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesValidate(ctx, inv, args, *offline, *catalog)
					}
				}},
			{Name: "draft", Summary: "store, list, show and delete drafts", Subs: []*command{
				{Name: "put", Args: "NAME DIR|FILE", Summary: "store rule files as a draft (they must compile)", Role: analyst,
					Setup: func(fs *flag.FlagSet) runFunc { return rulesDraftPut }},
				{Name: "list", Summary: "list drafts", Role: analyst,
					Setup: func(fs *flag.FlagSet) runFunc { return rulesDraftList }},
				{Name: "get", Args: "NAME [--out DIR]", Summary: "print a draft's files, or write them to DIR", Role: analyst,
					Setup: func(fs *flag.FlagSet) runFunc {
						out := fs.String("out", "", "write the files into `DIR`")
						return func(ctx context.Context, inv *invocation, args []string) error {
							return rulesDraftGet(ctx, inv, args, *out)
						}
					}},
				{Name: "rm", Args: "NAME", Summary: "delete a draft", Role: analyst,
					Setup: func(fs *flag.FlagSet) runFunc { return rulesDraftRm }},
			}},
			{Name: "test", Args: "[DIR|FILE | --draft NAME]", Summary: "run inline rule tests", Role: analyst,
				Help: `Test runs every inline test. Given a DIR or FILE it runs offline, like go
test (no riskd needed; --catalog FILE types the rules, default the embedded
catalog); with --draft it runs the draft's tests on riskd; with neither, the
live set's. Exit 1 when a test fails.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					draft := fs.String("draft", "", "test the draft `NAME` on riskd")
					catalog := fs.String("catalog", "", "feature catalog `FILE` for offline tests")
					verbose := fs.Bool("v", false, "list passing tests too")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesTest(ctx, inv, args, *draft, *catalog, *verbose)
					}
				}},
			{Name: "diff", Args: "NAME", Summary: "compare a draft with the live set", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc { return rulesDiff }},
			{Name: "publish", Args: "NAME [--note TEXT]", Summary: "make a draft the live set, as a new version", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					note := fs.String("note", "", "why, kept in the history")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesPublish(ctx, inv, args, *note)
					}
				}},
			{Name: "versions", Summary: "list published versions", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc { return rulesVersions }},
			{Name: "rollback", Args: "VERSION [--note TEXT]", Summary: "make a published version live again", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					note := fs.String("note", "", "why, kept in the history")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesRollback(ctx, inv, args, *note)
					}
				}},
			{Name: "mode", Args: "RULE_ID active|shadow|disabled [--note TEXT]", Summary: "change one rule's mode (publishes a version)", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					note := fs.String("note", "", "why, kept in the history")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesMode(ctx, inv, args, *note)
					}
				}},
			{Name: "history", Args: "[--limit N]", Summary: "who changed what, when", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					limit := fs.Int("limit", 0, "at most `N` changes (default 100)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesHistory(ctx, inv, args, *limit)
					}
				}},
			{Name: "pull", Args: "DIR [--version V]", Summary: "write a version's rule files into DIR, byte for byte", Role: analyst,
				Help: `Pull writes the files of a version (default: the live one) into DIR and
removes other *.yaml/*.yml files there, so that DIR mirrors the version.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					version := fs.String("version", "", "the version to pull (default: live)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesPull(ctx, inv, args, *version)
					}
				}},
			{Name: "push", Args: "DIR [--draft NAME] [--publish] [--note TEXT]", Summary: "store DIR's rule files as a draft, and publish it", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					draft := fs.String("draft", "", "draft `NAME` (default: DIR's base name)")
					publish := fs.Bool("publish", false, "publish the draft once stored")
					note := fs.String("note", "", "why, kept in the history")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesPush(ctx, inv, args, *draft, *publish, *note)
					}
				}},
			{Name: "backtest", Args: "--from T1 --to T2 [--candidate DIR|--draft NAME]", Summary: "replay recorded events through the live set and a candidate", Role: analyst,
				Help: `Backtest replays the recorded events with T1 <= event time < T2 (RFC 3339,
or a duration before now such as 24h), recomputing features as of each
event, through the live set and the candidate, and reports per rule hits,
outcomes changed and hits on fraud or overturned decisions, the outcome mix
before and after, and a sample of changed decisions.`,
				Setup: func(fs *flag.FlagSet) runFunc {
					o := &backtestFlags{}
					fs.StringVar(&o.from, "from", "", "start `T1` (RFC 3339, or a duration ago)")
					fs.StringVar(&o.to, "to", "", "end `T2` (RFC 3339, or a duration ago; default now)")
					fs.StringVar(&o.candidate, "candidate", "", "candidate rule files `DIR` (or FILE)")
					fs.StringVar(&o.draft, "draft", "", "candidate draft `NAME`")
					fs.IntVar(&o.samples, "samples", 0, "changed decisions to show (default 20)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesBacktest(ctx, inv, args, o)
					}
				}},
			{Name: "stats", Args: "[--threshold R] [--min-hits N]", Summary: "per-rule hits, cost and appeal overturn rates", Role: analyst,
				Setup: func(fs *flag.FlagSet) runFunc {
					th := fs.Float64("threshold", 0, "flag overturn rates above `R` (default: riskd's)")
					minHits := fs.Int64("min-hits", 0, "only flag rules with at least `N` hits (default: riskd's)")
					return func(ctx context.Context, inv *invocation, args []string) error {
						return rulesStats(ctx, inv, args, *th, *minHits)
					}
				}},
		},
	})
}

func (inv *invocation) rulesClient() (riskv1connect.RulesServiceClient, error) {
	hc, base, opts, err := inv.connectConfig()
	if err != nil {
		return nil, err
	}
	return riskv1connect.NewRulesServiceClient(hc, base, opts...), nil
}

// readRuleFiles reads a FILE, or every *.yaml/*.yml file directly in a DIR,
// by name, byte for byte.
func readRuleFiles(p string) ([]rules.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if !st.IsDir() {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		return []rules.File{{Name: filepath.Base(p), Data: data}}, nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []rules.File
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !isRuleFile(n) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(p, n))
		if err != nil {
			return nil, err
		}
		out = append(out, rules.File{Name: n, Data: data})
	}
	if len(out) == 0 {
		return nil, usagef("no *.yaml rule files in %s", p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isRuleFile(n string) bool { return strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") }

func ruleFilesPB(fs []rules.File) []*riskv1.RuleFile {
	out := make([]*riskv1.RuleFile, len(fs))
	for i, f := range fs {
		out[i] = &riskv1.RuleFile{Name: f.Name, Content: string(f.Data)}
	}
	return out
}

func oneArg(verb string, args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usagef("%s takes %s", verb, what)
	}
	return args[0], nil
}

// writeCompileErrors prints compile errors as a compiler does.
func writeCompileErrors(w io.Writer, es []*riskv1.CompileError) {
	for _, e := range es {
		pos := e.GetFile()
		if e.GetLine() > 0 {
			pos += fmt.Sprintf(":%d", e.GetLine())
			if e.GetColumn() > 0 {
				pos += fmt.Sprintf(":%d", e.GetColumn())
			}
		}
		rule := ""
		if e.GetRuleId() != "" {
			rule = "rule " + e.GetRuleId() + ": "
		}
		fmt.Fprintf(w, "%s: %s%s\n", pos, rule, e.GetMessage())
		if e.GetSnippet() != "" {
			fmt.Fprintln(w, e.GetSnippet())
		}
	}
}

// rulesCallError prints the compile errors a rejected call carries, then
// reports the call's error.
func (inv *invocation) rulesCallError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() == connect.CodeInvalidArgument {
		for _, d := range ce.Details() {
			m, derr := d.Value()
			if v, ok := m.(*riskv1.ValidateRulesResponse); ok && derr == nil {
				writeCompileErrors(inv.env.Stderr, v.GetErrors())
			}
		}
	}
	return inv.callError(err)
}

func compileErrorsPB(err error) []*riskv1.CompileError {
	var es rules.CompileErrors
	if !errors.As(err, &es) {
		return []*riskv1.CompileError{{Message: err.Error()}}
	}
	out := make([]*riskv1.CompileError, len(es))
	for i, e := range es {
		out[i] = &riskv1.CompileError{File: e.File, RuleId: e.RuleID, Line: int32(e.Line), Column: int32(e.Column), Message: e.Msg, Snippet: e.Snippet}
	}
	return out
}

func localCatalog(path string) (*features.Catalog, error) {
	if path == "" {
		return features.DefaultCatalog(), nil
	}
	return features.LoadCatalog(path)
}

func rulesValidate(ctx context.Context, inv *invocation, args []string, offline bool, catalog string) error {
	p, err := oneArg("rules validate", args, "one FILE or DIR")
	if err != nil {
		return err
	}
	files, err := readRuleFiles(p)
	if err != nil {
		return err
	}
	var res *riskv1.ValidateRulesResponse
	if offline {
		cat, err := localCatalog(catalog)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		res = &riskv1.ValidateRulesResponse{Valid: true}
		if set, err := rules.Compile(files, rules.CompileOptions{Features: cat.Defs()}); err != nil {
			res = &riskv1.ValidateRulesResponse{Errors: compileErrorsPB(err)}
		} else {
			res.ContentVersion = set.Version()
			for _, r := range set.Rules() {
				res.Rules = append(res.Rules, &riskv1.RuleSummary{Id: r.ID})
			}
		}
	} else {
		c, err := inv.rulesClient()
		if err != nil {
			return err
		}
		cctx, cancel := inv.callContext(ctx)
		defer cancel()
		r, err := c.ValidateRules(cctx, connect.NewRequest(&riskv1.ValidateRulesRequest{Files: ruleFilesPB(files)}))
		if err != nil {
			return inv.callError(err)
		}
		res = r.Msg
	}
	if inv.g.json {
		if err := writeJSON(inv.stdout(), res); err != nil {
			return err
		}
	} else if res.GetValid() {
		fmt.Fprintf(inv.stdout(), "ok: %d rules in %d files (%s)\n", len(res.GetRules()), len(files), res.GetContentVersion())
	} else {
		writeCompileErrors(inv.stdout(), res.GetErrors())
	}
	if !res.GetValid() {
		return &exitError{code: ExitTestsFailed, err: fmt.Errorf("%d errors", len(res.GetErrors()))}
	}
	return nil
}

func rulesDraftPut(ctx context.Context, inv *invocation, args []string) error {
	if len(args) != 2 {
		return usagef("rules draft put takes NAME and a DIR or FILE")
	}
	files, err := readRuleFiles(args[1])
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unaryWith(ctx, inv, c.PutDraft, &riskv1.PutDraftRequest{Name: args[0], Files: ruleFilesPB(files)}, inv.rulesCallError)
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	_, err = fmt.Fprintf(inv.stdout(), "draft %s stored: %d rules in %d files\n", res.GetDraft().GetName(), len(res.GetRules()), len(files))
	return err
}

func rulesDraftList(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 0 {
		return usagef("rules draft list takes no arguments")
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ListDrafts, &riskv1.ListDraftsRequest{})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	if len(res.GetDrafts()) == 0 {
		_, err := fmt.Fprintln(inv.stdout(), "no drafts")
		return err
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DRAFT\tAUTHOR\tUPDATED")
	for _, d := range res.GetDrafts() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.GetName(), actorName(d.GetAuthor()), formatTime(d.GetUpdatedAt()))
	}
	return tw.Flush()
}

func actorName(a *riskv1.Actor) string {
	if a == nil || (a.GetRole() == "" && a.GetToken() == "") {
		return "-"
	}
	return a.GetToken() + " (" + a.GetRole() + ")"
}

// writeRuleDir makes dir hold exactly files (other rule files are removed).
func writeRuleDir(dir string, files []*riskv1.RuleFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, f := range files {
		n := f.GetName()
		if n != filepath.Base(n) || !isRuleFile(n) {
			return fmt.Errorf("riskd sent an unsafe file name %q", n)
		}
		keep[n] = true
		if err := os.WriteFile(filepath.Join(dir, n), []byte(f.GetContent()), 0o644); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() && isRuleFile(e.Name()) && !keep[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func rulesDraftGet(ctx context.Context, inv *invocation, args []string, out string) error {
	name, err := oneArg("rules draft get", args, "a draft NAME")
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.GetDraft, &riskv1.GetDraftRequest{Name: name})
	if err != nil {
		return err
	}
	if out != "" {
		return writeRuleDir(out, res.GetDraft().GetFiles())
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	for _, f := range res.GetDraft().GetFiles() {
		fmt.Fprintf(inv.stdout(), "# %s\n%s", f.GetName(), f.GetContent())
		if !strings.HasSuffix(f.GetContent(), "\n") {
			fmt.Fprintln(inv.stdout())
		}
	}
	return nil
}

func rulesDraftRm(ctx context.Context, inv *invocation, args []string) error {
	name, err := oneArg("rules draft rm", args, "a draft NAME")
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	cctx, cancel := inv.callContext(ctx)
	defer cancel()
	if _, err := c.DeleteDraft(cctx, connect.NewRequest(&riskv1.DeleteDraftRequest{Name: name})); err != nil {
		return inv.callError(err)
	}
	_, err = fmt.Fprintf(inv.stdout(), "draft %s deleted\n", name)
	return err
}

func rulesTest(ctx context.Context, inv *invocation, args []string, draft, catalog string, verbose bool) error {
	if len(args) > 1 || (len(args) == 1 && draft != "") {
		return usagef("rules test takes one DIR or FILE, or --draft NAME")
	}
	var res *riskv1.TestRulesResponse
	if len(args) == 1 {
		files, err := readRuleFiles(args[0])
		if err != nil {
			return err
		}
		cat, err := localCatalog(catalog)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		set, err := rules.Compile(files, rules.CompileOptions{Features: cat.Defs()})
		if err != nil {
			writeCompileErrors(inv.env.Stderr, compileErrorsPB(err))
			return &exitError{code: ExitTestsFailed, err: errors.New("rules do not compile")}
		}
		res = &riskv1.TestRulesResponse{Version: set.Version()}
		for _, r := range rules.RunTests(set) {
			res.Results = append(res.Results, &riskv1.RuleTestResult{RuleId: r.RuleID, Name: r.Name, File: r.File, Line: int32(r.Line),
				Passed: r.Passed, Fired: r.Fired, Outcome: riskv1.Outcome(r.Outcome), Score: r.Score, Message: r.Message})
			if r.Passed {
				res.Passed++
			} else {
				res.Failed++
			}
		}
	} else {
		c, err := inv.rulesClient()
		if err != nil {
			return err
		}
		cctx, cancel := inv.callContext(ctx)
		defer cancel()
		r, err := c.TestRules(cctx, connect.NewRequest(&riskv1.TestRulesRequest{Draft: draft}))
		if err != nil {
			return inv.rulesCallError(err)
		}
		res = r.Msg
	}
	if inv.g.json {
		if err := writeJSON(inv.stdout(), res); err != nil {
			return err
		}
	} else {
		w := inv.stdout()
		for _, r := range res.GetResults() {
			switch {
			case !r.GetPassed():
				fmt.Fprintf(w, "--- FAIL: %s / %s (%s:%d)\n    %s\n", r.GetRuleId(), r.GetName(), r.GetFile(), r.GetLine(), r.GetMessage())
			case verbose:
				fmt.Fprintf(w, "--- PASS: %s / %s\n", r.GetRuleId(), r.GetName())
			}
		}
		status := "ok"
		if res.GetFailed() > 0 {
			status = "FAIL"
		}
		fmt.Fprintf(w, "%s\t%s\t%d passed, %d failed\n", status, res.GetVersion(), res.GetPassed(), res.GetFailed())
	}
	if res.GetFailed() > 0 {
		return &exitError{code: ExitTestsFailed}
	}
	if len(res.GetResults()) == 0 {
		inv.noticef("no inline tests")
	}
	return nil
}

func rulesDiff(ctx context.Context, inv *invocation, args []string) error {
	name, err := oneArg("rules diff", args, "a draft NAME")
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unaryWith(ctx, inv, c.DiffDraft, &riskv1.DiffDraftRequest{Draft: name}, inv.rulesCallError)
	if err != nil {
		return err
	}
	m := res
	if inv.g.json {
		return writeJSON(inv.stdout(), m)
	}
	w := inv.stdout()
	fmt.Fprintf(w, "draft %s against live %s\n", name, m.GetLiveVersion())
	if len(m.GetAdded())+len(m.GetRemoved())+len(m.GetChanged()) == 0 && !m.GetThresholdsChanged() {
		_, err := fmt.Fprintln(w, "no differences")
		return err
	}
	for _, id := range m.GetAdded() {
		fmt.Fprintf(w, "\n+ added %s\n%s", id, prefixLines(m.GetAddedText()[id], "+ "))
	}
	for _, id := range m.GetRemoved() {
		fmt.Fprintf(w, "\n- removed %s\n%s", id, prefixLines(m.GetRemovedText()[id], "- "))
	}
	for _, ch := range m.GetChanged() {
		fmt.Fprintf(w, "\n~ changed %s (%s)\n%s%s", ch.GetRuleId(), strings.Join(ch.GetFields(), ", "),
			prefixLines(ch.GetBefore(), "- "), prefixLines(ch.GetAfter(), "+ "))
	}
	if m.GetThresholdsChanged() {
		b, a := m.GetThresholdsBefore(), m.GetThresholdsAfter()
		fmt.Fprintf(w, "\n~ thresholds challenge/review/deny %d/%d/%d -> %d/%d/%d\n", b.GetChallenge(), b.GetReview(), b.GetDeny(), a.GetChallenge(), a.GetReview(), a.GetDeny())
	}
	return nil
}

func prefixLines(s, p string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n") {
		b.WriteString(p)
		b.WriteString(strings.TrimSuffix(l, "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

func writeVersion(inv *invocation, verb string, v *riskv1.RuleSetVersion) error {
	_, err := fmt.Fprintf(inv.stdout(), "%s: %s is live (%d rules) by %s at %s\n", verb, v.GetVersion(), len(v.GetRuleIds()), actorName(v.GetAuthor()), formatTime(v.GetPublishedAt()))
	return err
}

func rulesPublish(ctx context.Context, inv *invocation, args []string, note string) error {
	name, err := oneArg("rules publish", args, "a draft NAME")
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unaryWith(ctx, inv, c.Publish, &riskv1.PublishRequest{Draft: name, Note: note}, inv.rulesCallError)
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	return writeVersion(inv, "published", res.GetVersion())
}

func rulesVersions(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 0 {
		return usagef("rules versions takes no arguments")
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.ListVersions, &riskv1.ListVersionsRequest{})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tLIVE\tKIND\tRULES\tBY\tAT\tNOTE")
	for _, v := range res.GetVersions() {
		live := ""
		if v.GetLive() {
			live = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.GetVersion(), live, v.GetKind(), len(v.GetRuleIds()), actorName(v.GetAuthor()), formatTime(v.GetPublishedAt()), v.GetNote())
	}
	return tw.Flush()
}

func rulesRollback(ctx context.Context, inv *invocation, args []string, note string) error {
	v, err := oneArg("rules rollback", args, "a VERSION")
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.Rollback, &riskv1.RollbackRequest{Version: v, Note: note})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	return writeVersion(inv, "rolled back", res.GetVersion())
}

func rulesMode(ctx context.Context, inv *invocation, args []string, note string) error {
	if len(args) != 2 {
		return usagef("rules mode takes RULE_ID and active, shadow or disabled")
	}
	mode, ok := riskv1.RuleMode_value["RULE_MODE_"+strings.ToUpper(args[1])]
	if !ok || mode == 0 {
		return usagef("mode %q: want active, shadow or disabled", args[1])
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.SetRuleMode, &riskv1.SetRuleModeRequest{RuleId: args[0], Mode: riskv1.RuleMode(mode), Note: note})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	return writeVersion(inv, args[0]+" "+args[1], res.GetVersion())
}

func modeName(m riskv1.RuleMode) string {
	if m == riskv1.RuleMode_RULE_MODE_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "RULE_MODE_"))
}

func rulesHistory(ctx context.Context, inv *invocation, args []string, limit int) error {
	if len(args) > 0 {
		return usagef("rules history takes no arguments")
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.History, &riskv1.HistoryRequest{Limit: int32(limit)})
	if err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res)
	}
	tw := tabwriter.NewWriter(inv.stdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tBY\tACTION\tVERSION\tDRAFT\tRULE\tMODE\tNOTE")
	for _, ch := range res.GetChanges() {
		mode := "-"
		if ch.GetMode() != riskv1.RuleMode_RULE_MODE_UNSPECIFIED {
			mode = modeName(ch.GetMode())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(ch.GetAt()), actorName(ch.GetAuthor()), ch.GetAction(),
			dash(ch.GetVersion()), dash(ch.GetDraft()), dash(ch.GetRuleId()), mode, ch.GetNote())
	}
	return tw.Flush()
}

func rulesPull(ctx context.Context, inv *invocation, args []string, version string) error {
	dir, err := oneArg("rules pull", args, "a DIR")
	if err != nil {
		return err
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.GetVersion, &riskv1.GetVersionRequest{Version: version})
	if err != nil {
		return err
	}
	if err := writeRuleDir(dir, res.GetFiles()); err != nil {
		return err
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res.GetVersion())
	}
	_, err = fmt.Fprintf(inv.stdout(), "pulled %s: %d files into %s\n", res.GetVersion().GetVersion(), len(res.GetFiles()), dir)
	return err
}

func rulesPush(ctx context.Context, inv *invocation, args []string, draft string, publish bool, note string) error {
	dir, err := oneArg("rules push", args, "a DIR")
	if err != nil {
		return err
	}
	files, err := readRuleFiles(dir)
	if err != nil {
		return err
	}
	if draft == "" {
		abs, _ := filepath.Abs(dir)
		draft = strings.ToLower(filepath.Base(abs))
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	cctx, cancel := inv.callContext(ctx)
	defer cancel()
	if _, err := c.PutDraft(cctx, connect.NewRequest(&riskv1.PutDraftRequest{Name: draft, Files: ruleFilesPB(files)})); err != nil {
		return inv.rulesCallError(err)
	}
	if !publish {
		_, err := fmt.Fprintf(inv.stdout(), "pushed %d files as draft %s\n", len(files), draft)
		return err
	}
	res, err := c.Publish(cctx, connect.NewRequest(&riskv1.PublishRequest{Draft: draft, Note: note}))
	if err != nil {
		return inv.rulesCallError(err)
	}
	if inv.g.json {
		return writeJSON(inv.stdout(), res.Msg)
	}
	return writeVersion(inv, "pushed and published", res.Msg.GetVersion())
}

type backtestFlags struct {
	from, to, candidate, draft string
	samples                    int
}

// parseWhen reads RFC 3339 or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration ago", s)
	}
	return now.Add(-d), nil
}

func rulesBacktest(ctx context.Context, inv *invocation, args []string, o *backtestFlags) error {
	if len(args) > 0 {
		return usagef("rules backtest takes no arguments (use --candidate DIR)")
	}
	if o.from == "" {
		return usagef("rules backtest needs --from")
	}
	if o.candidate != "" && o.draft != "" {
		return usagef("give --candidate or --draft, not both")
	}
	now := inv.env.Clock.Now()
	from, err := parseWhen(o.from, now)
	if err != nil {
		return usagef("--from: %v", err)
	}
	to := now
	if o.to != "" {
		if to, err = parseWhen(o.to, now); err != nil {
			return usagef("--to: %v", err)
		}
	}
	req := &riskv1.BacktestRequest{From: timestamppb.New(from), To: timestamppb.New(to), CandidateDraft: o.draft, Samples: int32(o.samples)}
	if o.candidate != "" {
		files, err := readRuleFiles(o.candidate)
		if err != nil {
			return err
		}
		req.CandidateFiles = ruleFilesPB(files)
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	// A backtest of a long window takes a while: at least a minute.
	cctx, cancel := context.WithTimeout(ctx, max(inv.g.timeout, 5*time.Minute))
	defer cancel()
	res, err := c.Backtest(cctx, connect.NewRequest(req))
	if err != nil {
		return inv.rulesCallError(err)
	}
	m := res.Msg
	if inv.g.json {
		return writeJSON(inv.stdout(), m)
	}
	w := inv.stdout()
	cand := m.GetCandidateVersion()
	if cand == "" {
		cand = "(none)"
	}
	fmt.Fprintf(w, "backtest %s .. %s: %d events in %.2fs (%.0f events/s)\nlive %s, candidate %s: %d outcomes changed\n\n",
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), m.GetEvents(), m.GetElapsedSeconds(), m.GetEventsPerSecond(), m.GetLiveVersion(), cand, m.GetChanged())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tBEFORE\tAFTER")
	mix := func(cs []*riskv1.OutcomeCount, o riskv1.Outcome) int64 {
		for _, c := range cs {
			if c.GetOutcome() == o {
				return c.GetCount()
			}
		}
		return 0
	}
	for o := riskv1.Outcome_OUTCOME_ALLOW; o <= riskv1.Outcome_OUTCOME_DENY; o++ {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", outcomeName(o), mix(m.GetBefore(), o), mix(m.GetAfter(), o))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMODE\tHITS\tCAND MODE\tCAND HITS\tCHANGED\tFRAUD\tOVERTURNED\tCAND FRAUD\tCAND OVERTURNED")
	for _, r := range m.GetRules() {
		if r.GetLiveHits() == 0 && r.GetCandidateHits() == 0 && r.GetLiveMode() == r.GetCandidateMode() {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.GetRuleId(), modeName(r.GetLiveMode()), r.GetLiveHits(),
			modeName(r.GetCandidateMode()), r.GetCandidateHits(), r.GetOutcomesChanged(), r.GetLiveFraud(), r.GetLiveOverturned(),
			r.GetCandidateFraud(), r.GetCandidateOverturned())
	}
	tw.Flush()
	if len(m.GetSamples()) > 0 {
		fmt.Fprintln(w, "\nchanged decisions (sample):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT\tAT\tBEFORE\tAFTER\tRULES BEFORE\tRULES AFTER")
		for _, s := range m.GetSamples() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.GetEventId(), formatTime(s.GetOccurredAt()), outcomeName(s.GetBefore()), outcomeName(s.GetAfter()),
				dash(strings.Join(s.GetBeforeRules(), ",")), dash(strings.Join(s.GetAfterRules(), ",")))
		}
		tw.Flush()
	}
	return nil
}

func rulesStats(ctx context.Context, inv *invocation, args []string, th float64, minHits int64) error {
	if len(args) > 0 {
		return usagef("rules stats takes no arguments")
	}
	c, err := inv.rulesClient()
	if err != nil {
		return err
	}
	res, err := unary(ctx, inv, c.RuleStats, &riskv1.RuleStatsRequest{OverturnThreshold: th, MinHits: minHits})
	if err != nil {
		return err
	}
	m := res
	if inv.g.json {
		return writeJSON(inv.stdout(), m)
	}
	w := inv.stdout()
	fmt.Fprintf(w, "live %s; overturn rates flagged above %.0f%% with at least %d hits\n\n", m.GetLiveVersion(), m.GetOverturnThreshold()*100, m.GetMinHits())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMODE\tEVALUATIONS\tHITS\tHIT RATE\tCOST\tOVERTURNS\tOVERTURN RATE\t")
	var flagged []string
	for _, r := range m.GetRules() {
		flag := ""
		if r.GetFlagged() {
			flag = "HIGH OVERTURN RATE"
			flagged = append(flagged, r.GetRuleId())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f%%\t%.0fns\t%d\t%.1f%%\t%s\n", r.GetRuleId(), modeName(r.GetMode()), r.GetEvaluations(), r.GetHits(),
			r.GetHitRate()*100, r.GetCostNs(), r.GetOverturns(), r.GetOverturnRate()*100, flag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(flagged) > 0 {
		inv.noticef("rules with high appeal overturn rates: %s", strings.Join(flagged, ", "))
	}
	return nil
}
