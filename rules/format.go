package rules

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is one rule file as the analyst wrote it. Data is kept byte for byte so
// that a pull/push round trip is lossless.
type File struct {
	Name string
	Data []byte
}

// Mode says whether a rule acts, is only observed, or does not run.
type Mode string

// Modes.
const (
	ModeActive   Mode = "active"
	ModeShadow   Mode = "shadow"
	ModeDisabled Mode = "disabled"
)

// Thresholds map a summed score to an outcome: score >= Deny is DENY, and so on.
type Thresholds struct {
	Challenge int32 `json:"challenge"`
	Review    int32 `json:"review"`
	Deny      int32 `json:"deny"`
}

// DefaultThresholds are used when no file sets thresholds.
var DefaultThresholds = Thresholds{Challenge: 30, Review: 60, Deny: 80}

// pos is a place in a file, 1-based line and column.
type pos struct{ line, col int }

// ruleSpec is one parsed, not yet compiled, rule.
type ruleSpec struct {
	file        string
	at          pos
	ID          string
	Description string
	AppliesTo   []string
	appliesAt   pos
	When        string
	whenNode    *yaml.Node
	Action      string
	actionAt    pos
	Score       int
	hasScore    bool
	scoreAt     pos
	ReasonEN    string
	ReasonZH    string
	reasonAt    pos
	Mode        Mode
	modeAt      pos
	Owner       string
	Tags        []string
	Tests       []testSpec
	source      string // the rule's YAML text, for diffs and content versions
}

type testSpec struct {
	at       pos
	Name     string
	Event    *yaml.Node
	Features *yaml.Node
	Lists    map[string][]string
	Expect   struct {
		Fired   *bool
		Outcome string
		Score   *int
		at      pos
	}
}

type fileSpec struct {
	name         string
	rules        []*ruleSpec
	thresholds   *Thresholds
	thresholdsAt pos
}

func at(n *yaml.Node) pos { return pos{n.Line, n.Column} }

func (p *parser) errAt(p0 pos, ruleID, format string, args ...any) {
	p.errs = append(p.errs, &CompileError{File: p.file, RuleID: ruleID, Line: p0.line, Column: p0.col, Msg: fmt.Sprintf(format, args...)})
}

type parser struct {
	file  string
	lines []string
	errs  []*CompileError
}

// parseFile parses one rule file; every problem becomes a CompileError.
func parseFile(f File) (*fileSpec, []*CompileError) {
	p := &parser{file: f.Name, lines: strings.Split(string(f.Data), "\n")}
	fs := &fileSpec{name: f.Name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	if err := dec.Decode(&doc); err != nil {
		line := 0
		msg := err.Error()
		// yaml.v3 says "yaml: line N: ..."; keep the line for the analyst.
		if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
			if i := strings.IndexByte(rest, ':'); i > 0 {
				line, _ = strconv.Atoi(rest[:i])
				msg = strings.TrimSpace(rest[i+1:])
			}
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		if err.Error() == "EOF" {
			msg = "empty file"
		}
		p.errs = append(p.errs, &CompileError{File: f.Name, Line: line, Msg: "invalid YAML: " + msg})
		return nil, p.errs
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.errAt(at(root), "", "a rule file is a mapping with a `rules:` list")
		return nil, p.errs
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "rules":
			if v.Kind != yaml.SequenceNode {
				p.errAt(at(v), "", "`rules` must be a list")
				continue
			}
			for _, rn := range v.Content {
				if r := p.parseRule(rn); r != nil {
					fs.rules = append(fs.rules, r)
				}
			}
		case "thresholds":
			t := DefaultThresholds
			fs.thresholdsAt = at(k)
			if v.Kind != yaml.MappingNode {
				p.errAt(at(v), "", "`thresholds` must be a mapping {challenge, review, deny}")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				tk, tv := v.Content[j], v.Content[j+1]
				n, err := strconv.Atoi(tv.Value)
				if err != nil || tv.Kind != yaml.ScalarNode || n < 1 || n > 1000 {
					p.errAt(at(tv), "", "threshold %s must be a whole number from 1 to 1000", tk.Value)
					continue
				}
				switch tk.Value {
				case "challenge":
					t.Challenge = int32(n)
				case "review":
					t.Review = int32(n)
				case "deny":
					t.Deny = int32(n)
				default:
					p.errAt(at(tk), "", "unknown threshold %q (want challenge, review or deny)", tk.Value)
				}
			}
			if !(t.Challenge <= t.Review && t.Review <= t.Deny) {
				p.errAt(at(v), "", "thresholds must satisfy challenge <= review <= deny (got %d, %d, %d)", t.Challenge, t.Review, t.Deny)
			}
			fs.thresholds = &t
		default:
			p.errAt(at(k), "", "unknown key %q at the top of a rule file (want rules, thresholds)", k.Value)
		}
	}
	return fs, p.errs
}

var ruleKeys = []string{"id", "description", "applies_to", "when", "action", "score", "reason", "mode", "owner", "tags", "tests"}

func (p *parser) parseRule(n *yaml.Node) *ruleSpec {
	if n.Kind != yaml.MappingNode {
		p.errAt(at(n), "", "each rule must be a mapping")
		return nil
	}
	r := &ruleSpec{file: p.file, at: at(n), Mode: ModeActive}
	// The id first, so every later error names its rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" {
			r.ID = n.Content[i+1].Value
			if !validID(r.ID) {
				p.errAt(at(n.Content[i+1]), r.ID, "rule id %q must be 1-100 characters of a-z, 0-9, '.', '_' or '-'", r.ID)
			}
		}
	}
	if r.ID == "" {
		p.errAt(at(n), "", "rule has no id")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		str := func() string {
			if v.Kind != yaml.ScalarNode {
				p.errAt(at(v), r.ID, "`%s` must be a string", k.Value)
				return ""
			}
			return v.Value
		}
		strs := func() []string {
			var out []string
			if v.Kind != yaml.SequenceNode {
				p.errAt(at(v), r.ID, "`%s` must be a list", k.Value)
				return nil
			}
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					p.errAt(at(c), r.ID, "`%s` entries must be strings", k.Value)
					continue
				}
				out = append(out, c.Value)
			}
			return out
		}
		switch k.Value {
		case "id":
		case "description":
			r.Description = str()
		case "applies_to":
			r.appliesAt = at(v)
			r.AppliesTo = strs()
		case "when":
			r.When = str()
			r.whenNode = v
		case "action":
			r.Action = str()
			r.actionAt = at(v)
		case "score":
			r.scoreAt = at(v)
			r.hasScore = true
			s, err := strconv.Atoi(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode || s < 1 || s > 100 {
				p.errAt(at(v), r.ID, "score must be a whole number from 1 to 100, got %q", v.Value)
			}
			r.Score = s
		case "reason":
			r.reasonAt = at(k)
			if v.Kind != yaml.MappingNode {
				p.errAt(at(v), r.ID, "`reason` must be a mapping {en, zh}")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				switch v.Content[j].Value {
				case "en":
					r.ReasonEN = v.Content[j+1].Value
				case "zh":
					r.ReasonZH = v.Content[j+1].Value
				default:
					p.errAt(at(v.Content[j]), r.ID, "unknown reason language %q (want en, zh)", v.Content[j].Value)
				}
			}
		case "mode":
			r.modeAt = at(v)
			r.Mode = Mode(str())
			if r.Mode != ModeActive && r.Mode != ModeShadow && r.Mode != ModeDisabled {
				p.errAt(at(v), r.ID, "mode must be active, shadow or disabled, got %q", v.Value)
			}
		case "owner":
			r.Owner = str()
		case "tags":
			r.Tags = strs()
		case "tests":
			if v.Kind != yaml.SequenceNode {
				p.errAt(at(v), r.ID, "`tests` must be a list")
				continue
			}
			for _, tn := range v.Content {
				if t := p.parseTest(r.ID, tn); t != nil {
					r.Tests = append(r.Tests, *t)
				}
			}
		default:
			p.errAt(at(k), r.ID, "unknown rule key %q%s", k.Value, suggest(k.Value, ruleKeys))
		}
	}
	if r.When == "" && r.whenNode == nil {
		p.errAt(r.at, r.ID, "rule has no `when`")
	}
	switch {
	case r.Action != "" && r.hasScore:
		p.errAt(r.actionAt, r.ID, "a rule has either `action` or `score`, not both")
	case r.Action == "" && !r.hasScore:
		p.errAt(r.at, r.ID, "rule has neither `action` (allow, challenge, review, deny) nor `score` (1..100)")
	case r.Action != "":
		if _, ok := actionOutcome[r.Action]; !ok {
			p.errAt(r.actionAt, r.ID, "action must be allow, challenge, review or deny, got %q", r.Action)
		}
	}
	if r.ReasonEN == "" || r.ReasonZH == "" {
		p.errAt(r.at, r.ID, "rule needs a reason in both English and Chinese (reason: {en: ..., zh: ...})")
	}
	if r.Mode == "" {
		r.Mode = ModeActive
	}
	r.source = p.slice(n)
	return r
}

// slice returns the source lines a node spans (up to the next sibling's
// start is unknown, so: from its line to the line before the next rule).
func (p *parser) slice(n *yaml.Node) string {
	end := lastLine(n)
	if n.Line-1 < 0 || end > len(p.lines) {
		return ""
	}
	return strings.Join(p.lines[n.Line-1:end], "\n")
}

func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		if e := lastLine(c); e > l {
			l = e
		}
	}
	if n.Kind == yaml.ScalarNode && (n.Style == yaml.LiteralStyle || n.Style == yaml.FoldedStyle) {
		l += strings.Count(strings.TrimRight(n.Value, "\n"), "\n") + 1
	}
	return l
}

func (p *parser) parseTest(ruleID string, n *yaml.Node) *testSpec {
	if n.Kind != yaml.MappingNode {
		p.errAt(at(n), ruleID, "each test must be a mapping")
		return nil
	}
	t := &testSpec{at: at(n)}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			t.Name = v.Value
		case "event":
			t.Event = v
		case "features":
			t.Features = v
		case "lists":
			if err := v.Decode(&t.Lists); err != nil {
				p.errAt(at(v), ruleID, "test lists must map a list name to a list of values")
			}
		case "expect":
			t.Expect.at = at(v)
			if v.Kind != yaml.MappingNode {
				p.errAt(at(v), ruleID, "test `expect` must be a mapping {fired, outcome, score}")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				ek, evn := v.Content[j], v.Content[j+1]
				switch ek.Value {
				case "fired":
					b, err := strconv.ParseBool(evn.Value)
					if err != nil {
						p.errAt(at(evn), ruleID, "expect.fired must be true or false")
					}
					t.Expect.Fired = &b
				case "outcome":
					t.Expect.Outcome = strings.ToUpper(evn.Value)
					if _, ok := ParseOutcome(t.Expect.Outcome); !ok {
						p.errAt(at(evn), ruleID, "expect.outcome must be ALLOW, CHALLENGE, REVIEW or DENY, got %q", evn.Value)
					}
				case "score":
					s, err := strconv.Atoi(evn.Value)
					if err != nil {
						p.errAt(at(evn), ruleID, "expect.score must be a whole number")
					}
					t.Expect.Score = &s
				default:
					p.errAt(at(ek), ruleID, "unknown expect key %q (want fired, outcome, score)", ek.Value)
				}
			}
		default:
			p.errAt(at(k), ruleID, "unknown test key %q (want name, event, features, lists, expect)", k.Value)
		}
	}
	if t.Name == "" {
		p.errAt(t.at, ruleID, "test has no name")
	}
	if t.Expect.Fired == nil && t.Expect.Outcome == "" && t.Expect.Score == nil {
		p.errAt(t.at, ruleID, "test %q expects nothing (set expect.fired and/or expect.outcome)", t.Name)
	}
	return t
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 100 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// exprPos maps a (1-based line, 0-based column) inside a `when` expression to
// the file. Literal blocks map exactly; folded and quoted forms map to the
// first line, shifted by the opening quote.
func (p *parser) exprPos(n *yaml.Node, line, col int) pos {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		fl := n.Line + line // content starts on the line after the indicator
		if n.Style == yaml.FoldedStyle {
			fl = n.Line + 1
		}
		indent := 0
		if fl-1 < len(p.lines) {
			s := p.lines[fl-1]
			indent = len(s) - len(strings.TrimLeft(s, " "))
		}
		return pos{fl, indent + col + 1}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		return pos{n.Line, n.Column + 1 + col}
	}
	if line > 1 {
		return pos{n.Line + line - 1, col + 1}
	}
	return pos{n.Line, n.Column + col}
}
