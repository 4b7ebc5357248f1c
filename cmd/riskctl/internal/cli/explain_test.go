package cli

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// The texts people read: the subject's explanation and the analyst's.
func TestWriteExplanation(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)
	reason := &riskv1.Reason{RuleId: "att.mock_location", RuleVersion: 2, Action: "review",
		MessageEn: "Your phone reported a simulated (mock) location, so this check-in needs a manual review",
		MessageZh: "您的手机报告了模拟定位，本次打卡需要人工审核"}
	subject := &riskv1.Explanation{
		DecisionId: "01KB8Z0000000000000000000A", EventType: riskv1.EventType_EVENT_TYPE_ATTENDANCE,
		Outcome: riskv1.Outcome_OUTCOME_REVIEW, DecidedAt: timestamppb.New(at), Reasons: []*riskv1.Reason{reason},
		DataCategories: []string{"device", "location"}, FullyAutomated: true,
		AppealDeadline: timestamppb.New(at.Add(30 * 24 * time.Hour)), Appealable: true,
		Appeals: []*riskv1.Appeal{{AppealId: "01KB8Z0000000000000000000B", Status: riskv1.AppealStatus_APPEAL_STATUS_OVERTURNED,
			DueAt: timestamppb.New(at.Add(15 * 24 * time.Hour)), ResolutionReason: "The site confirmed you were there."}},
	}
	withExpr := proto.Clone(reason).(*riskv1.Reason)
	withExpr.Expression = "device.mock_location_enabled || location.mocked"
	analyst := &riskv1.Explanation{
		DecisionId: subject.DecisionId, EventType: subject.EventType, Outcome: subject.Outcome, DecidedAt: subject.DecidedAt,
		Reasons: []*riskv1.Reason{withExpr}, DataCategories: subject.DataCategories, FullyAutomated: true,
		AppealDeadline: subject.AppealDeadline, Degraded: true, DegradedReason: "budget exceeded", Full: true, Score: 0,
		RulesetVersion: "v3", AccountId: "acct-1", EventId: "ev-1", Latency: durationpb.New(1200 * time.Microsecond),
		ShadowReasons: []*riskv1.Reason{{RuleId: "att.implausible_accuracy", RuleVersion: 1, Action: "review", MessageEn: "accuracy", MessageZh: "精度"}},
		Features:      []*riskv1.FeatureValue{{Name: "cheat_packages_installed", Value: structpb.NewNumberValue(0)}, {Name: "km_from_last_location_account", Value: structpb.NewNullValue()}},
		Event:         &riskv1.Event{EventId: "ev-1", Type: riskv1.EventType_EVENT_TYPE_ATTENDANCE, AccountId: "Zx9pseudonym"},
	}
	for _, tc := range []struct {
		golden string
		x      *riskv1.Explanation
	}{{"explain-subject.golden", subject}, {"explain-analyst.golden", analyst}} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeExplanation(&b, tc.x); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b.String())
		})
	}
}
