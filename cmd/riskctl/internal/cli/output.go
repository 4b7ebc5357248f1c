package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// writeJSON prints m in the contract's JSON form (protojson, lowerCamelCase)
// with stable two-space indentation. protojson deliberately varies its
// whitespace between builds, so its output is re-indented here to keep
// riskctl's output byte-stable for scripts and golden files.
func writeJSON(w io.Writer, m proto.Message) error {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return err
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// outcomeName is "DENY" for OUTCOME_DENY.
func outcomeName(o riskv1.Outcome) string {
	return strings.TrimPrefix(o.String(), "OUTCOME_")
}

// eventTypeName is "LOGIN" for EVENT_TYPE_LOGIN.
func eventTypeName(t riskv1.EventType) string {
	return strings.TrimPrefix(t.String(), "EVENT_TYPE_")
}

// formatTime prints a timestamp in UTC to the millisecond: decisions are
// milliseconds apart, and nanoseconds only widen tables.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format("2006-01-02T15:04:05.000Z")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// decisionView chooses what writeDecision prints besides the essentials.
type decisionView struct {
	features bool // every computed feature
}

// writeDecision prints a decision for people: outcome first, then why.
func writeDecision(w io.Writer, d *riskv1.Decision, view decisionView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	row("outcome", outcomeName(d.GetOutcome()))
	row("score", fmt.Sprint(d.GetScore()))
	degraded := yesNo(d.GetDegraded())
	if d.GetDegraded() && d.GetDegradedReason() != "" {
		degraded += " (" + d.GetDegradedReason() + ")"
	}
	row("degraded", degraded)
	row("decision", d.GetDecisionId())
	row("event", d.GetEventId())
	if t := d.GetEventType(); t != riskv1.EventType_EVENT_TYPE_UNSPECIFIED {
		row("type", eventTypeName(t))
	} else if ev := d.GetEvent(); ev != nil {
		row("type", eventTypeName(ev.GetType()))
	}
	row("account", d.GetAccountId())
	if d.GetOccurredAt() != nil {
		row("occurred", formatTime(d.GetOccurredAt()))
	}
	row("decided", formatTime(d.GetDecidedAt()))
	if d.GetLatency() != nil {
		row("latency", d.GetLatency().AsDuration().String())
	}
	row("appeal by", formatTime(d.GetAppealDeadline()))
	row("ruleset", d.GetRulesetVersion())
	if len(d.GetDataCategories()) > 0 {
		row("data used", strings.Join(d.GetDataCategories(), ", "))
	}
	if len(d.GetReasons()) == 0 {
		row("reasons", "none")
	}
	if view.features && len(d.GetFeatures()) == 0 {
		row("features", "none")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeReasons(w, "reasons", d.GetReasons())
	writeReasons(w, "shadow (logged, not acted on)", d.GetShadowReasons())
	if view.features {
		writeFeatures(w, d.GetFeatures())
	}
	return nil
}

func writeReasons(w io.Writer, title string, rs []*riskv1.Reason) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, r := range rs {
		what := r.GetAction()
		if what == "" || what == "score" {
			what = fmt.Sprintf("score %+d", r.GetScore())
		}
		fmt.Fprintf(w, "  - %s v%d [%s]\n", r.GetRuleId(), r.GetRuleVersion(), what)
		if m := r.GetMessageEn(); m != "" {
			fmt.Fprintf(w, "      en: %s\n", m)
		}
		if m := r.GetMessageZh(); m != "" {
			fmt.Fprintf(w, "      zh: %s\n", m)
		}
		if e := r.GetExpression(); e != "" {
			fmt.Fprintf(w, "      when: %s\n", e)
		}
	}
}

func writeFeatures(w io.Writer, fs map[string]*structpb.Value) {
	if len(fs) == 0 {
		return
	}
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "features:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", n, formatValue(fs[n]))
	}
	tw.Flush()
}

// formatValue prints a feature value; absent (null) is "-", not zero.
func formatValue(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return "-"
	case *structpb.Value_NumberValue:
		return fmt.Sprint(k.NumberValue)
	case *structpb.Value_BoolValue:
		return fmt.Sprint(k.BoolValue)
	case *structpb.Value_StringValue:
		return k.StringValue
	default:
		b, err := protojson.Marshal(v)
		if err != nil {
			return "?"
		}
		var c bytes.Buffer
		if json.Compact(&c, b) != nil {
			return string(b)
		}
		return c.String()
	}
}

// writeDecisionTable prints one line per decision, newest first as riskd
// returns them.
func writeDecisionTable(w io.Writer, ds []*riskv1.Decision) error {
	if len(ds) == 0 {
		_, err := fmt.Fprintln(w, "no decisions")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DECISION\tDECIDED\tTYPE\tOUTCOME\tSCORE\tDEGRADED\tREASON")
	for _, d := range ds {
		typ := eventTypeName(d.GetEventType())
		if d.GetEventType() == riskv1.EventType_EVENT_TYPE_UNSPECIFIED {
			typ = "-"
			if ev := d.GetEvent(); ev != nil {
				typ = eventTypeName(ev.GetType())
			}
		}
		reason := "-"
		if rs := d.GetReasons(); len(rs) > 0 {
			reason = rs[0].GetRuleId()
			if len(rs) > 1 {
				reason += fmt.Sprintf(" (+%d)", len(rs)-1)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.GetDecisionId(), formatTime(d.GetDecidedAt()),
			typ, outcomeName(d.GetOutcome()), d.GetScore(), yesNo(d.GetDegraded()), reason)
	}
	return tw.Flush()
}
