package rules

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on.
var (
	// ErrInvalid: a rule file or rule set does not compile; the error is a
	// CompileErrors listing every problem.
	ErrInvalid = errors.New("rules: invalid rule set")
	// ErrNotFound: no such version, draft or rule.
	ErrNotFound = errors.New("rules: not found")
	// ErrRuntime: a rule failed while running (the engine degrades).
	ErrRuntime = errors.New("rules: rule failed at run time")
)

// CompileError is one problem an analyst must fix, placed in the file.
type CompileError struct {
	File    string
	RuleID  string
	Line    int // 1-based; 0 when unknown
	Column  int // 1-based; 0 when unknown
	Msg     string
	Snippet string // the offending source line with a caret, when known
}

func (e *CompileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.RuleID != "" {
		fmt.Fprintf(&b, "rule %s: ", e.RuleID)
	}
	b.WriteString(e.Msg)
	if e.Snippet != "" {
		b.WriteString("\n")
		b.WriteString(e.Snippet)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *CompileError) Unwrap() error { return ErrInvalid }

// CompileErrors is every problem found in a rule set, in file order.
type CompileErrors []*CompileError

func (es CompileErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (es CompileErrors) Unwrap() error { return ErrInvalid }

// RuntimeError is a rule that failed while running on an event.
type RuntimeError struct {
	RuleID string
	Err    error
}

func (e *RuntimeError) Error() string { return fmt.Sprintf("rules: rule %s: %v", e.RuleID, e.Err) }

// Unwrap returns the cause; errors.Is(err, ErrRuntime) is also true.
func (e *RuntimeError) Unwrap() []error { return []error{ErrRuntime, e.Err} }

// snippet renders line (1-based) of src with a caret under col (1-based).
func snippet(lines []string, line, col int) string {
	if line < 1 || line > len(lines) {
		return ""
	}
	s := strings.ReplaceAll(lines[line-1], "\t", " ")
	if col < 1 {
		return " | " + s
	}
	return " | " + s + "\n | " + strings.Repeat(".", col-1) + "^"
}

// suggest returns ` (did you mean "x"?)` for the closest candidate, or "".
func suggest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2 + len(name)/8
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
