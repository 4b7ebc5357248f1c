package rules

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/event"
	"github.com/riskd/riskd/features"
)

type compiledTest struct {
	name    string
	line    int
	ev      *event.Event
	fv      features.Vector
	lists   testLists
	fired   *bool
	outcome Outcome
	score   *int
}

// testLists is the lists a test declares inline.
type testLists map[string]map[string]bool

func (l testLists) Contains(list, value string) bool { return l[list][value] }
func (l testLists) AnyIn(list string, values []string) bool {
	for _, v := range values {
		if l[list][v] {
			return true
		}
	}
	return false
}

type posError struct {
	at  pos
	err error
}

func (e *posError) Error() string { return e.err.Error() }

func errAtNode(n *yaml.Node, format string, args ...any) error {
	return &posError{at: at(n), err: fmt.Errorf(format, args...)}
}

func (c *compiler) compileTest(rs *ruleSpec, ts testSpec) (compiledTest, error) {
	ct := compiledTest{name: ts.Name, line: ts.at.line, fired: ts.Expect.Fired, score: ts.Expect.Score, ev: &event.Event{}}
	if ts.Expect.Outcome != "" {
		ct.outcome, _ = ParseOutcome(ts.Expect.Outcome)
	}
	if ts.Event != nil {
		if err := buildEvent(ct.ev, ts.Event); err != nil {
			return ct, err
		}
	}
	if ct.ev.Type == event.TypeUnspecified && len(rs.AppliesTo) > 0 {
		// Default the type to the rule's first, so short tests stay short.
		if t, ok := event.ParseType(strings.ToUpper(rs.AppliesTo[0])); ok {
			ct.ev.Type, ct.ev.TypeName = t, t.String()
		}
	}
	ct.fv = make(features.Vector, len(c.kinds))
	for i, d := range c.opts.Features {
		// Unlisted features are absent (applicable, no value yet).
		ct.fv[i] = features.Absent(d.Kind)
		ct.fv[i].Applicable = len(d.AppliesTo) == 0 || containsType(d.AppliesTo, ct.ev.Type)
	}
	if ts.Features != nil {
		if ts.Features.Kind != yaml.MappingNode {
			return ct, errAtNode(ts.Features, "features must be a mapping of feature name to value")
		}
		for i := 0; i+1 < len(ts.Features.Content); i += 2 {
			k, v := ts.Features.Content[i], ts.Features.Content[i+1]
			idx, ok := c.featIdx[k.Value]
			if !ok {
				return ct, errAtNode(k, "unknown feature %q%s", k.Value, suggest(k.Value, c.featList))
			}
			if v.Tag == "!!null" {
				continue // explicitly absent
			}
			var err error
			switch c.kinds[idx] {
			case features.KindInt:
				var n int64
				n, err = strconv.ParseInt(v.Value, 10, 64)
				ct.fv[idx] = features.IntValue(n)
			case features.KindFloat:
				var f float64
				f, err = strconv.ParseFloat(v.Value, 64)
				ct.fv[idx] = features.FloatValue(f)
			case features.KindBool:
				var b bool
				b, err = strconv.ParseBool(v.Value)
				ct.fv[idx] = features.BoolValue(b)
			}
			if err != nil {
				return ct, errAtNode(v, "feature %s: %q is not a valid %s", k.Value, v.Value, kindName(c.kinds[idx]))
			}
		}
	}
	if len(ts.Lists) > 0 {
		ct.lists = testLists{}
		for name, vals := range ts.Lists {
			m := map[string]bool{}
			for _, v := range vals {
				m[v] = true
			}
			ct.lists[name] = m
		}
	}
	return ct, nil
}

func kindName(k features.Kind) string {
	switch k {
	case features.KindInt:
		return "whole number"
	case features.KindFloat:
		return "number"
	case features.KindBool:
		return "true/false"
	}
	return "value"
}

// buildEvent fills ev from a YAML mapping that uses the proto field names.
func buildEvent(ev *event.Event, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errAtNode(n, "event must be a mapping of field to value")
	}
	root := reflect.ValueOf(ev).Elem()
	has := root.FieldByName("Has")
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "type" {
			t, ok := event.ParseType(strings.ToUpper(v.Value))
			if !ok {
				return errAtNode(v, "unknown event type %q", v.Value)
			}
			ev.Type, ev.TypeName = t, t.String()
			continue
		}
		if eventGroups[k.Value] && k.Value != "has" {
			if v.Kind != yaml.MappingNode {
				return errAtNode(v, "%s must be a mapping", k.Value)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				if err := setField(root, k.Value+"."+v.Content[j].Value, v.Content[j], v.Content[j+1]); err != nil {
					return err
				}
			}
			if f, ok := fieldByTag(has.Type(), k.Value); ok {
				has.FieldByIndex(f).SetBool(true)
			}
			continue
		}
		if err := setField(root, k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, tag string) ([]int, bool) {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("expr") == tag {
			return []int{i}, true
		}
	}
	return nil, false
}

func setField(root reflect.Value, path string, k, v *yaml.Node) error {
	idx, ok := eventFieldIdx[path]
	if !ok {
		return errAtNode(k, "unknown event field %q%s", path, suggest(path, eventPaths))
	}
	f := eventFields[idx]
	fv := root.FieldByIndex(f.index)
	bad := func() error { return errAtNode(v, "event field %s: %q is not a valid value", path, v.Value) }
	switch f.kind {
	case fString:
		fv.SetString(v.Value)
	case fBool:
		b, err := strconv.ParseBool(v.Value)
		if err != nil {
			return bad()
		}
		fv.SetBool(b)
	case fInt:
		x, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return bad()
		}
		if fv.CanInt() {
			fv.SetInt(x)
		} else {
			fv.SetUint(uint64(x))
		}
	case fFloat:
		x, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			return bad()
		}
		fv.SetFloat(x)
	case fStrings:
		var l []string
		if err := v.Decode(&l); err != nil {
			return bad()
		}
		fv.Set(reflect.ValueOf(l))
	case fMap:
		var m map[string]string
		if err := v.Decode(&m); err != nil {
			return bad()
		}
		fv.Set(reflect.ValueOf(m))
	case fTime:
		t, err := time.Parse(time.RFC3339Nano, v.Value)
		if err != nil {
			return bad()
		}
		fv.Set(reflect.ValueOf(t))
	}
	return nil
}

// TestResult is the outcome of one inline rule test.
type TestResult struct {
	RuleID  string
	Name    string
	File    string
	Line    int
	Passed  bool
	Fired   bool
	Outcome Outcome // this rule alone under the set's thresholds
	Score   int32
	Message string // why it failed; empty when it passed
}

// RunTests runs every inline test of every rule (whatever its mode). A test
// runs its rule alone: Outcome is the rule's action, or its score mapped by
// the set's thresholds, when it fires, and ALLOW when it does not.
func RunTests(s *Set) []TestResult {
	var out []TestResult
	for _, r := range s.rules {
		for _, t := range r.tests {
			out = append(out, s.runTest(r, t))
		}
	}
	return out
}

func (s *Set) runTest(r *rule, t compiledTest) TestResult {
	tr := TestResult{RuleID: r.id, Name: t.name, File: r.file, Line: t.line, Outcome: Allow}
	if r.types == 0 || r.types&(1<<(int(t.ev.Type)&31)) != 0 {
		st := statePool.Get().(*evalState)
		st.reset(t.ev, t.fv, s.kinds, t.lists)
		out, err := st.vm.Run(r.prog, st.env)
		b, _ := out.(bool)
		tr.Fired = err == nil && b && !st.absent
		st.release()
		if err != nil {
			tr.Message = "run-time error: " + err.Error()
			return tr
		}
	}
	if tr.Fired {
		if r.action != "" {
			tr.Outcome = r.outcome
		} else {
			tr.Score = r.score
			tr.Outcome = s.thresholds.outcome(r.score)
		}
	}
	var fails []string
	if t.fired != nil && *t.fired != tr.Fired {
		fails = append(fails, fmt.Sprintf("fired = %v, want %v", tr.Fired, *t.fired))
	}
	if t.outcome != 0 && t.outcome != tr.Outcome {
		fails = append(fails, fmt.Sprintf("outcome = %s, want %s", tr.Outcome, t.outcome))
	}
	if t.score != nil && int32(*t.score) != tr.Score {
		fails = append(fails, fmt.Sprintf("score = %d, want %d", tr.Score, *t.score))
	}
	tr.Passed = len(fails) == 0
	tr.Message = strings.Join(fails, "; ")
	return tr
}
