package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	exprparser "github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

// DefaultMaxNodes bounds the size of one rule's expression.
const DefaultMaxNodes = 400

// CompileOptions configure Compile. The zero value compiles against no
// features; the engine passes its catalog's Defs.
type CompileOptions struct {
	// Features is the catalog the rules are typed against, in Vector order.
	Features []features.Def
	// Version names the set; empty means "sha-" + a hash of the files.
	Version string
	// RuleVersions gives each rule id its version number (default 1).
	RuleVersions map[string]int32
	// MaxNodes bounds each `when` (default DefaultMaxNodes).
	MaxNodes uint
}

// Compile parses, checks and compiles files into a Set. On failure the error
// is CompileErrors (errors.Is ErrInvalid) listing every problem found.
func Compile(files []File, opts CompileOptions) (*Set, error) {
	if opts.MaxNodes == 0 {
		opts.MaxNodes = DefaultMaxNodes
	}
	c := newCompiler(opts)
	s := &Set{thresholds: DefaultThresholds, defs: opts.Features, kinds: c.kinds}
	var errs CompileErrors
	seen := map[string]string{}
	var thrFrom string
	names := map[string]bool{}
	for _, f := range files {
		if names[f.Name] {
			errs = append(errs, &CompileError{File: f.Name, Msg: "duplicate file name"})
			continue
		}
		names[f.Name] = true
		s.files = append(s.files, File{Name: f.Name, Data: append([]byte(nil), f.Data...)})
		fs, perrs := parseFile(f)
		errs = append(errs, perrs...)
		if fs == nil {
			continue
		}
		if fs.thresholds != nil {
			if thrFrom != "" && *fs.thresholds != s.thresholds {
				errs = append(errs, &CompileError{File: f.Name, Line: fs.thresholdsAt.line, Column: fs.thresholdsAt.col,
					Msg: fmt.Sprintf("thresholds differ from those set in %s; set them in one file", thrFrom)})
			}
			thrFrom = f.Name
			s.thresholds = *fs.thresholds
		}
		p := &parser{file: f.Name, lines: strings.Split(string(f.Data), "\n")}
		for _, rs := range fs.rules {
			if rs.ID != "" {
				if other, dup := seen[rs.ID]; dup {
					errs = append(errs, &CompileError{File: f.Name, RuleID: rs.ID, Line: rs.at.line, Column: rs.at.col, Msg: "duplicate rule id (also in " + other + ")"})
					continue
				}
				seen[rs.ID] = f.Name
			}
			r, rerrs := c.compileRule(p, rs)
			errs = append(errs, rerrs...)
			if r != nil && len(rerrs) == 0 {
				r.version = 1
				if v, ok := opts.RuleVersions[r.id]; ok {
					r.version = v
				}
				s.rules = append(s.rules, r)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	s.version = opts.Version
	if s.version == "" {
		s.version = ContentVersion(files)
	}
	s.index()
	return s, nil
}

// ContentVersion names files by content: "sha-" + 12 hex digits of SHA-256.
func ContentVersion(files []File) string {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%d:%s\n%d:", len(f.Name), f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return "sha-" + hex.EncodeToString(h.Sum(nil))[:12]
}

type compiler struct {
	opts     CompileOptions
	featIdx  map[string]int
	featList []string
	kinds    []features.Kind
	topNames []string
	exprOpts []expr.Option
	runOpts  []expr.Option
}

var accessorTypes = map[string]any{
	"__es": new(func(*evalState, int) string),
	"__eb": new(func(*evalState, int) bool),
	"__ei": new(func(*evalState, int) int),
	"__ef": new(func(*evalState, int) float64),
	"__el": new(func(*evalState, int) []string),
	"__em": new(func(*evalState, int) map[string]string),
	"__et": new(func(*evalState, int) time.Time),
}

func newCompiler(opts CompileOptions) *compiler {
	c := &compiler{opts: opts, featIdx: map[string]int{}}
	for i, d := range opts.Features {
		c.featIdx[d.Name] = i
		c.featList = append(c.featList, d.Name)
		c.kinds = append(c.kinds, d.Kind)
	}
	top := map[string]bool{"features": true}
	for g := range eventGroups {
		if !strings.Contains(g, ".") {
			top[g] = true
		}
	}
	for _, p := range eventPaths {
		if !strings.Contains(p, ".") {
			top[p] = true
		}
	}
	for f := range userFuncs {
		top[f] = true
	}
	for n := range top {
		c.topNames = append(c.topNames, n)
	}
	sort.Strings(c.topNames)

	field := func(params ...any) (any, error) { return params[0].(*evalState).field(params[1].(int)), nil }
	feat := func(params ...any) (any, error) { return params[0].(*evalState).feature(params[1].(int)), nil }
	o := []expr.Option{
		expr.Env(checkEnv{}),
		expr.AsBool(),
		expr.MaxNodes(opts.MaxNodes),
		// Rules must replay exactly: nothing may read the wall clock.
		expr.DisableBuiltin("now"),
		expr.Function("__fi", feat, new(func(*evalState, int) int)),
		expr.Function("__ff", feat, new(func(*evalState, int) float64)),
		expr.Function("__fb", feat, new(func(*evalState, int) bool)),
		expr.Function("__has", func(params ...any) (any, error) {
			return params[0].(*evalState).has(params[1].(int)), nil
		}, new(func(*evalState, int) bool)),
		expr.Function("__in_list", func(params ...any) (any, error) {
			s := params[0].(*evalState)
			return s.lists != nil && s.lists.Contains(params[1].(string), params[2].(string)), nil
		}, new(func(*evalState, string, string) bool)),
		expr.Function("__any_in_list", func(params ...any) (any, error) {
			s := params[0].(*evalState)
			return s.lists != nil && s.lists.AnyIn(params[1].(string), params[2].([]string)), nil
		}, new(func(*evalState, string, []string) bool)),
		expr.Function("cidr_contains", func(params ...any) (any, error) {
			return cidrContains(params[0].(string), params[1].(string)), nil
		}, new(func(string, string) bool)),
		expr.Function("distance_km", func(params ...any) (any, error) {
			return distanceKm(toFloat(params[0]), toFloat(params[1]), toFloat(params[2]), toFloat(params[3])), nil
		}, new(func(float64, float64, float64, float64) float64), new(func(int, int, int, int) float64)),
	}
	for name, typ := range accessorTypes {
		o = append(o, expr.Function(name, field, typ))
	}
	c.exprOpts = o
	c.runOpts = []expr.Option{
		expr.Env(runEnv{}),
		expr.AsBool(),
		expr.MaxNodes(opts.MaxNodes),
		expr.DisableBuiltin("now"),
		expr.Function("distance_km", func(params ...any) (any, error) {
			return distanceKm(toFloat(params[0]), toFloat(params[1]), toFloat(params[2]), toFloat(params[3])), nil
		}, new(func(float64, float64, float64, float64) float64), new(func(int, int, int, int) float64)),
	}
	return c
}

// compiled rule.
type rule struct {
	id          string
	version     int32
	description string
	mode        Mode
	action      string
	outcome     Outcome // for action rules
	score       int32
	types       uint32 // bit per event.Type; 0 = every type
	appliesTo   []string
	when        string
	prog        *vm.Program
	en, zh      template
	owner       string
	tags        []string
	tests       []compiledTest
	file        string
	line        int
	source      string
	stats       ruleCounters
	idx         int // position in its Set's rules (index)
}

func (c *compiler) compileRule(p *parser, rs *ruleSpec) (*rule, []*CompileError) {
	var errs []*CompileError
	add := func(line, col int, format string, args ...any) {
		errs = append(errs, &CompileError{File: rs.file, RuleID: rs.ID, Line: line, Column: col, Msg: fmt.Sprintf(format, args...), Snippet: snippet(p.lines, line, col)})
	}
	r := &rule{id: rs.ID, description: rs.Description, mode: rs.Mode, action: rs.Action, score: int32(rs.Score),
		appliesTo: rs.AppliesTo, when: rs.When, owner: rs.Owner, tags: rs.Tags, file: rs.file, line: rs.at.line, source: rs.source}
	if rs.Action != "" {
		r.outcome = actionOutcome[rs.Action]
	}
	var types []event.Type
	for _, name := range rs.AppliesTo {
		t, ok := event.ParseType(strings.ToUpper(name))
		if !ok {
			var names []string
			for _, t := range event.Types() {
				names = append(names, t.String())
			}
			add(rs.appliesAt.line, rs.appliesAt.col, "unknown event type %q%s", name, suggest(strings.ToUpper(name), names))
			continue
		}
		types = append(types, t)
		r.types |= 1 << t
	}
	if rs.whenNode != nil && rs.When != "" {
		prog, perrs := c.compileWhen(rs.When, types)
		for _, pe := range perrs {
			fp := p.exprPos(rs.whenNode, pe.line, pe.col)
			add(fp.line, fp.col, "%s", pe.msg)
		}
		r.prog = prog
	} else if rs.whenNode != nil {
		add(rs.whenNode.Line, rs.whenNode.Column, "`when` is empty")
	}
	var terr error
	if r.en, terr = c.parseTemplate(rs.ReasonEN); terr != nil {
		add(rs.reasonAt.line, rs.reasonAt.col, "reason.en: %v", terr)
	}
	if r.zh, terr = c.parseTemplate(rs.ReasonZH); terr != nil {
		add(rs.reasonAt.line, rs.reasonAt.col, "reason.zh: %v", terr)
	}
	for _, ts := range rs.Tests {
		ct, err := c.compileTest(rs, ts)
		if err != nil {
			line, col := ts.at.line, ts.at.col
			var pe *posError
			if errors.As(err, &pe) {
				line, col = pe.at.line, pe.at.col
				err = pe.err
			}
			add(line, col, "test %q: %v", ts.Name, err)
			continue
		}
		r.tests = append(r.tests, ct)
	}
	return r, errs
}

type exprErr struct {
	line, col int // 1-based line, 0-based column within the expression
	msg       string
}

func runePos(src string, from int) (line, col int) {
	line = 1
	i := 0
	for _, r := range src {
		if i == from {
			break
		}
		i++
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return line, col
}

// compileWhen checks and compiles one condition for events of types (nil:
// any type).
func (c *compiler) compileWhen(src string, types []event.Type) (*vm.Program, []exprErr) {
	if utf8.RuneCountInString(src) > 4000 {
		return nil, []exprErr{{1, 0, "`when` is longer than 4000 characters"}}
	}
	vars := map[string]bool{}
	if tree, err := exprparser.Parse(src); err == nil {
		ast.Walk(&tree.Node, collectVars(vars))
	}
	rw := &rewriter{c: c, src: src, vars: vars, types: types}
	opts := append(append([]expr.Option(nil), c.exprOpts...), expr.Patch(rw))
	_, err := expr.Compile(src, opts...)
	if len(rw.errs) > 0 {
		return nil, rw.errs
	}
	if err == nil {
		// Checked with typed accessors; now compile what runs, against the
		// allocation-free environment. Same tree shape, same semantics.
		rw := &rewriter{c: c, src: src, vars: vars, types: types, run: true}
		prog, err := expr.Compile(src, append(append([]expr.Option(nil), c.runOpts...), expr.Patch(rw))...)
		if err != nil || len(rw.errs) > 0 {
			return nil, []exprErr{{1, 0, fmt.Sprintf("internal: checked rule failed to compile for running: %v %v", err, rw.errs)}}
		}
		return prog, nil
	}
	var fe *file.Error
	if errors.As(err, &fe) {
		line, col := runePos(src, fe.From)
		return nil, []exprErr{{line, col, friendly(fe.Message)}}
	}
	return nil, []exprErr{{1, 0, friendly(err.Error())}}
}

func friendly(msg string) string {
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
		if name == "features" {
			return "`features` alone is not a value; use features.<name>"
		}
		if eventGroups[name] {
			return fmt.Sprintf("`%s` is a group of fields; use %s.<field>", name, name)
		}
	}
	if rest, ok := strings.CutPrefix(msg, "expected bool, but got "); ok {
		return "`when` must be a true/false condition, but this expression is " + rest
	}
	r := strings.NewReplacer("__any_in_list", "any_in_list", "__in_list", "in_list", "*rules.evalState, ", "")
	return strings.TrimSpace(r.Replace(msg))
}

type collectVars map[string]bool

func (v collectVars) Visit(n *ast.Node) {
	if d, ok := (*n).(*ast.VariableDeclaratorNode); ok {
		v[d.Name] = true
	}
}

// rewriter checks names and rewrites features.x, event fields and list
// functions into calls of internal accessors on the evaluation state.
type rewriter struct {
	c     *compiler
	src   string
	vars  map[string]bool
	types []event.Type
	errs  []exprErr
	run   bool // rewrite for runEnv instead of checkEnv
}

func (w *rewriter) fail(n ast.Node, format string, args ...any) {
	line, col := runePos(w.src, n.Location().From)
	w.errs = append(w.errs, exprErr{line, col, fmt.Sprintf(format, args...)})
}

func stateIdent() ast.Node { return &ast.IdentifierNode{Value: "s__"} }

var runAccessor = map[string]string{"__fi": "F__", "__ff": "F__", "__fb": "F__", "__has": "H__",
	"__es": "E__", "__eb": "E__", "__ei": "E__", "__ef": "E__", "__el": "E__", "__em": "E__", "__et": "E__"}

func (w *rewriter) accessor(name string, idx int) *ast.CallNode {
	if w.run {
		return &ast.CallNode{Callee: &ast.IdentifierNode{Value: runAccessor[name]}, Arguments: []ast.Node{&ast.IntegerNode{Value: idx}}}
	}
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: []ast.Node{stateIdent(), &ast.IntegerNode{Value: idx}}}
}

// featureIndex recognizes an accessor call made by this rewriter for a
// feature, in either mode.
func (w *rewriter) featureIndex(n ast.Node) (int, bool) {
	call, ok := n.(*ast.CallNode)
	if !ok {
		return 0, false
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || !(strings.HasPrefix(id.Value, "__f") || id.Value == "F__") {
		return 0, false
	}
	return call.Arguments[len(call.Arguments)-1].(*ast.IntegerNode).Value, true
}

var featAccessor = map[features.Kind]string{features.KindInt: "__fi", features.KindFloat: "__ff", features.KindBool: "__fb"}

func (w *rewriter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		name := n.Value
		switch {
		case w.vars[name]:
		case name == "now":
			w.fail(n, "now() is not available: a rule must give the same answer when a decision is replayed; use occurred_at")
		case isInternalName(name):
			w.fail(n, "%q is reserved", name)
		case eventGroups[name] || name == "features":
			// Resolved by the enclosing member access; alone it is an error,
			// reported by the final walk.
		case userFuncs[name] != "":
		default:
			if i, ok := eventFieldIdx[name]; ok {
				ast.Patch(node, w.accessor(kindAccessor[eventFields[i].kind], i))
				return
			}
			w.fail(n, "unknown name %q%s", name, suggest(name, w.c.topNames))
		}
	case *ast.MemberNode:
		root, ok1 := n.Node.(*ast.IdentifierNode)
		prop, ok2 := n.Property.(*ast.StringNode)
		if !ok1 || !ok2 || w.vars[root.Value] {
			return
		}
		if root.Value == "features" {
			i, ok := w.c.featIdx[prop.Value]
			if !ok {
				w.fail(root, "unknown feature %q%s", "features."+prop.Value, suggest(prop.Value, w.c.featList))
				return
			}
			if d := w.c.opts.Features[i]; len(d.AppliesTo) > 0 && len(w.types) > 0 {
				for _, t := range w.types {
					if !containsType(d.AppliesTo, t) {
						w.fail(root, "feature %q is never computed for %s events (it applies to %s)", d.Name, t, typeList(d.AppliesTo))
						return
					}
				}
			}
			ast.Patch(node, w.accessor(featAccessor[w.c.kinds[i]], i))
			return
		}
		if eventGroups[root.Value] {
			path := root.Value + "." + prop.Value
			if i, ok := eventFieldIdx[path]; ok {
				ast.Patch(node, w.accessor(kindAccessor[eventFields[i].kind], i))
				return
			}
			if eventGroups[path] {
				return
			}
			var cands []string
			for _, p := range eventPaths {
				if strings.HasPrefix(p, root.Value+".") {
					cands = append(cands, p)
				}
			}
			w.fail(root, "unknown field %q%s", path, suggest(path, cands))
		}
	case *ast.BinaryNode:
		if n.Operator == ".." {
			// A range can be made as long as memory allows; rules stay small.
			w.fail(n, "ranges (a..b) are not allowed in rules")
		}
	case *ast.BuiltinNode:
		if predicates[n.Name] {
			for i := range n.Arguments {
				if inner := findPredicate(n.Arguments[i]); inner != nil {
					// One predicate over a list of at most 1,000 items is
					// cheap; nested ones multiply.
					w.fail(inner, "%s() inside %s(): predicates over lists cannot be nested", inner.(*ast.BuiltinNode).Name, n.Name)
					return
				}
			}
		}
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		switch callee.Value {
		case "has":
			if len(n.Arguments) == 1 {
				if idx, ok := w.featureIndex(n.Arguments[0]); ok {
					ast.Patch(node, w.accessor("__has", idx))
					return
				}
			}
			w.fail(n, "has() takes one feature, as in has(features.km_from_last_location_account)")
		case "in_list", "any_in_list":
			if len(n.Arguments) != 2 {
				w.fail(n, "%s", userFuncs[callee.Value])
				return
			}
			if w.run {
				name := map[string]string{"in_list": "IL__", "any_in_list": "AL__"}[callee.Value]
				ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: n.Arguments})
				return
			}
			ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "__" + callee.Value}, Arguments: append([]ast.Node{stateIdent()}, n.Arguments...)})
		case "cidr_contains":
			if len(n.Arguments) != 2 {
				w.fail(n, "%s", userFuncs[callee.Value])
				return
			}
			if s, ok := n.Arguments[0].(*ast.StringNode); ok && !validCIDR(s.Value) {
				w.fail(n.Arguments[0], "%q is not a CIDR (like 10.0.0.0/8) or an IP address", s.Value)
			}
			if w.run {
				ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: "C__"}, Arguments: n.Arguments})
			}
		case "distance_km":
			if len(n.Arguments) != 4 {
				w.fail(n, "%s", userFuncs[callee.Value])
			}
		}
	}
}

func containsType(ts []event.Type, t event.Type) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func typeList(ts []event.Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

var predicates = map[string]bool{"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"count": true, "sum": true, "find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"groupBy": true, "sortBy": true, "reduce": true}

type predicateFinder struct{ found ast.Node }

func (f *predicateFinder) Visit(n *ast.Node) {
	if b, ok := (*n).(*ast.BuiltinNode); ok && predicates[b.Name] && f.found == nil {
		f.found = b
	}
}

func findPredicate(n ast.Node) ast.Node {
	f := &predicateFinder{}
	ast.Walk(&n, f)
	return f.found
}
