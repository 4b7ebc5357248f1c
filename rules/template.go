package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// template is a reason message with {{name}} placeholders, checked at compile
// time and filled only when the rule fires.
type template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	feat  int // feature index, or -1
	field int // event field index, or -1
}

func (c *compiler) parseTemplate(s string) (template, error) {
	var t template
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if s != "" {
				t.parts = append(t.parts, tmplPart{lit: s, feat: -1, field: -1})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: s[:i], feat: -1, field: -1})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return t, fmt.Errorf("unclosed {{ in %q", s)
		}
		name := strings.TrimSpace(s[i+2 : i+j])
		s = s[i+j+2:]
		if fn, ok := strings.CutPrefix(name, "features."); ok {
			idx, ok := c.featIdx[fn]
			if !ok {
				return t, fmt.Errorf("unknown placeholder {{%s}}%s", name, suggest(fn, c.featList))
			}
			t.parts = append(t.parts, tmplPart{feat: idx, field: -1})
			continue
		}
		idx, ok := eventFieldIdx[name]
		if !ok {
			return t, fmt.Errorf("unknown placeholder {{%s}}%s", name, suggest(name, eventPaths))
		}
		t.parts = append(t.parts, tmplPart{feat: -1, field: idx})
	}
}

func (t template) render(s *evalState, unknown string) string {
	if len(t.parts) == 1 && t.parts[0].feat < 0 && t.parts[0].field < 0 {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.feat >= 0:
			if !s.has(p.feat) {
				b.WriteString(unknown)
				continue
			}
			b.WriteString(formatValue(s.feature(p.feat)))
		case p.field >= 0:
			b.WriteString(formatValue(s.field(p.field)))
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		// Analysts read "1234.6 km", not 17 digits.
		return strings.TrimSuffix(strconv.FormatFloat(x, 'f', 1, 64), ".0")
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	case []string:
		return strings.Join(x, ", ")
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}
