package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"github.com/riskd/riskd/auth"
)

func init() {
	register(&command{
		Name:    "evaluate",
		Args:    "[flags] [FILE|-]",
		Summary: "evaluate one event and print the decision",
		Role:    auth.RoleService,
		Help: `Evaluate sends one event to riskd's RiskService.Evaluate and prints the
decision: outcome, score, the fired rules' reasons in English and Chinese,
whether the answer is degraded (the event type's fail mode), and the
decision id.

The event is read from FILE, or from standard input when FILE is "-" or
missing, in the contract's JSON form: lowerCamelCase or proto field names,
enum names such as "EVENT_TYPE_LOGIN", timestamps in RFC 3339. An
EvaluateRequest ({"event": {...}}) is accepted too, so a curl body works as is.

Example:
  echo '{"eventId":"e1","type":"EVENT_TYPE_LOGIN","accountId":"a1",
         "login":{"success":true}}' | riskctl evaluate --now -

With --json the decision is printed as an EvaluateResponse in JSON.
With --fail-on, riskctl exits 4 when the outcome is at least the given one,
so that a script can gate on it.`,
		Setup: func(fs *flag.FlagSet) runFunc {
			var o evaluateOptions
			fs.BoolVar(&o.now, "now", false, "set occurredAt to the current time")
			fs.StringVar(&o.eventID, "event-id", "", "set eventId to `ID`")
			fs.StringVar(&o.failOn, "fail-on", "", "exit 4 when the outcome is at least `OUTCOME`: challenge, review or deny")
			fs.BoolVar(&o.features, "features", false, "also print every computed feature")
			return o.run
		},
	})
}

type evaluateOptions struct {
	now      bool
	eventID  string
	failOn   string
	features bool
}

// maxEventBytes bounds what riskctl reads as one event; riskd's own bound is
// smaller, so a larger input is surely a mistake.
const maxEventBytes = 8 << 20

func (o *evaluateOptions) run(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 1 {
		return usagef("evaluate takes one FILE (or -), got %d arguments", len(args))
	}
	threshold, err := parseFailOn(o.failOn)
	if err != nil {
		return err
	}
	src := "-"
	if len(args) == 1 {
		src = args[0]
	}
	data, err := readInput(inv.env.Stdin, src)
	if err != nil {
		return err
	}
	ev, err := parseEvent(data)
	if err != nil {
		return usagef("%s: %v", displayName(src), err)
	}
	if o.now {
		ev.OccurredAt = timestamppb.New(inv.env.Clock.Now())
	}
	if o.eventID != "" {
		ev.EventId = o.eventID
	}

	client, err := inv.riskClient()
	if err != nil {
		return err
	}
	resp, err := unary(ctx, inv, client.Evaluate, &riskv1.EvaluateRequest{Event: ev})
	if err != nil {
		return err
	}
	d := resp.GetDecision()
	if inv.g.json {
		err = writeJSON(inv.stdout(), resp)
	} else {
		err = writeDecision(inv.stdout(), d, decisionView{features: o.features})
	}
	if err != nil {
		return err
	}
	if threshold != riskv1.Outcome_OUTCOME_UNSPECIFIED && d.GetOutcome() >= threshold {
		return &exitError{code: ExitThreshold}
	}
	return nil
}

func parseFailOn(s string) (riskv1.Outcome, error) {
	switch strings.ToLower(s) {
	case "":
		return riskv1.Outcome_OUTCOME_UNSPECIFIED, nil
	case "challenge":
		return riskv1.Outcome_OUTCOME_CHALLENGE, nil
	case "review":
		return riskv1.Outcome_OUTCOME_REVIEW, nil
	case "deny":
		return riskv1.Outcome_OUTCOME_DENY, nil
	}
	return 0, usagef("--fail-on %q: want challenge, review or deny", s)
}

func displayName(src string) string {
	if src == "-" {
		return "standard input"
	}
	return src
}

// readInput reads FILE, or stdin for "-", up to maxEventBytes.
func readInput(stdin io.Reader, src string) ([]byte, error) {
	var r io.Reader = stdin
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, usagef("%v", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxEventBytes+1))
	if err != nil {
		return nil, usagef("read %s: %v", displayName(src), err)
	}
	if len(data) > maxEventBytes {
		return nil, usagef("%s: larger than %d bytes", displayName(src), maxEventBytes)
	}
	return data, nil
}

// errNotObject is returned for input that is not one JSON object.
var errNotObject = errors.New("want one JSON object (an Event, or an EvaluateRequest {\"event\": ...})")

// parseEvent reads an Event, or an EvaluateRequest wrapping one, from its
// JSON form. Unknown fields are errors, so that a misspelt field is caught
// here rather than silently dropped.
func parseEvent(data []byte) (*riskv1.Event, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty input: " + errNotObject.Error())
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotObject, err)
	}
	if probe == nil {
		return nil, errNotObject
	}
	if inner, ok := probe["event"]; ok && len(probe) == 1 {
		data = inner
	}
	ev := &riskv1.Event{}
	if err := protojson.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("not an Event: %v", err)
	}
	return ev, nil
}
