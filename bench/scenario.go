package bench

import (
	"slices"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
)

// Scenario names what an event is part of; labels carry it.
type Scenario string

// Benign scenarios: everyday traffic, some of it looking risky on purpose.
const (
	BenignLogin        Scenario = "benign_login"
	BenignPayment      Scenario = "benign_payment"
	BenignCheckin      Scenario = "benign_checkin"
	BenignBrowse       Scenario = "benign_browse"
	BenignFlight       Scenario = "benign_flight"        // fast but plausible travel between logins
	BenignNewPhone     Scenario = "benign_new_phone"     // an account moves to a phone it never used
	BenignOfficeNAT    Scenario = "benign_office_nat"    // many employees behind one office IP
	BenignPayroll      Scenario = "benign_payroll"       // salaries paid out, then a spending spike
	BenignFamilyTablet Scenario = "benign_family_tablet" // a tablet shared for chat and payments
)

// Attack scenarios.
const (
	ATOImpossibleTravel           Scenario = "ato_impossible_travel"
	ATOFailedBurst                Scenario = "ato_failed_burst"
	StuffingSingleIP              Scenario = "stuffing_single_ip"
	StuffingIPPool                Scenario = "stuffing_ip_pool"
	StuffingSlow                  Scenario = "stuffing_slow"
	PaymentAfterTakeover          Scenario = "payment_after_takeover"
	RedPacketFarming              Scenario = "red_packet_farming"
	MoneyMule                     Scenario = "money_mule"
	CardTesting                   Scenario = "card_testing"
	AttendanceFakeGPSApp          Scenario = "attendance_fake_gps_app"
	AttendanceClonerHook          Scenario = "attendance_cloner_hook"
	AttendanceMockLocation        Scenario = "attendance_mock_location"
	AttendanceRootedEmulator      Scenario = "attendance_rooted_emulator"
	AttendanceFarFromSite         Scenario = "attendance_far_from_site"
	AttendanceImplausibleAccuracy Scenario = "attendance_implausible_accuracy"
	AttendanceRepeatedCoords      Scenario = "attendance_repeated_coordinates"
	AttendanceImpossibleTravel    Scenario = "attendance_impossible_travel"
	AttendanceBuddyPunching       Scenario = "attendance_buddy_punching"
)

// Expected outcomes in labels.
const (
	ExpectChallenge = "CHALLENGE"
	ExpectReview    = "REVIEW"
)

// ScenarioInfo describes a scenario.
type ScenarioInfo struct {
	Name   Scenario
	Attack bool
	// Expect is the least outcome that counts as caught for the scenario's
	// detectable events ("" for benign scenarios).
	Expect string
	// Fraction is the default share of Rate that the scenario's events take.
	Fraction float64
	// perSession is about how many events one session emits; it turns the
	// fraction into a session arrival rate.
	perSession float64
	run        func(*session)
}

// registry lists every scenario in a fixed order; the order is part of the
// stream's determinism.
var registry = []ScenarioInfo{
	{Name: BenignLogin, Fraction: 0.36, perSession: 1.6, run: runBenignLogin},
	{Name: BenignPayment, Fraction: 0.20, perSession: 1.4, run: runBenignPayment},
	{Name: BenignCheckin, Fraction: 0.14, perSession: 1, run: runBenignCheckin},
	{Name: BenignBrowse, Fraction: 0.14, perSession: 3, run: runBenignBrowse},
	{Name: BenignFlight, Fraction: 0.01, perSession: 2.5, run: runBenignFlight},
	{Name: BenignNewPhone, Fraction: 0.02, perSession: 3, run: runBenignNewPhone},
	{Name: BenignOfficeNAT, Fraction: 0.06, perSession: 55, run: runBenignOfficeNAT},
	{Name: BenignPayroll, Fraction: 0.04, perSession: 60, run: runBenignPayroll},
	{Name: BenignFamilyTablet, Fraction: 0.03, perSession: 6, run: runBenignFamilyTablet},

	{Name: ATOImpossibleTravel, Attack: true, Expect: ExpectChallenge, Fraction: 0.004, perSession: 4, run: runATOImpossibleTravel},
	{Name: ATOFailedBurst, Attack: true, Expect: ExpectChallenge, Fraction: 0.006, perSession: 12, run: runATOFailedBurst},
	{Name: StuffingSingleIP, Attack: true, Expect: ExpectChallenge, Fraction: 0.012, perSession: 700, run: runStuffingSingleIP},
	{Name: StuffingIPPool, Attack: true, Expect: ExpectChallenge, Fraction: 0.012, perSession: 900, run: runStuffingIPPool},
	{Name: StuffingSlow, Attack: true, Expect: ExpectChallenge, Fraction: 0.006, perSession: 450, run: runStuffingSlow},
	{Name: PaymentAfterTakeover, Attack: true, Expect: ExpectChallenge, Fraction: 0.004, perSession: 4, run: runPaymentAfterTakeover},
	{Name: RedPacketFarming, Attack: true, Expect: ExpectChallenge, Fraction: 0.008, perSession: 110, run: runRedPacketFarming},
	{Name: MoneyMule, Attack: true, Expect: ExpectChallenge, Fraction: 0.006, perSession: 110, run: runMoneyMule},
	{Name: CardTesting, Attack: true, Expect: ExpectChallenge, Fraction: 0.005, perSession: 35, run: runCardTesting},
	{Name: AttendanceFakeGPSApp, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 1.5, run: runAttFakeGPS},
	{Name: AttendanceClonerHook, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 1.5, run: runAttClonerHook},
	{Name: AttendanceMockLocation, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 1.5, run: runAttMockLocation},
	{Name: AttendanceRootedEmulator, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 1.5, run: runAttRootedEmulator},
	{Name: AttendanceFarFromSite, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 1.5, run: runAttFarFromSite},
	{Name: AttendanceImplausibleAccuracy, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 1.5, run: runAttImplausibleAccuracy},
	{Name: AttendanceRepeatedCoords, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 4, run: runAttRepeatedCoords},
	{Name: AttendanceImpossibleTravel, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 2, run: runAttImpossibleTravel},
	{Name: AttendanceBuddyPunching, Attack: true, Expect: ExpectReview, Fraction: 0.0015, perSession: 3.5, run: runAttBuddyPunching},
}

// Scenarios returns every scenario the workload knows, benign first, in a
// fixed order.
func Scenarios() []ScenarioInfo { return slices.Clone(registry) }

// Lookup returns the scenario named s.
func Lookup(s Scenario) (ScenarioInfo, bool) {
	for _, i := range registry {
		if i.Name == s {
			return i, true
		}
	}
	return ScenarioInfo{}, false
}

// Label says what one event is. See the package doc for the semantics of
// Attack and Expect.
type Label struct {
	EventID  string   `json:"event_id"`
	Scenario Scenario `json:"scenario"`
	Attack   bool     `json:"attack"`
	Expect   string   `json:"expect"`
}

// ExpectOutcome returns Expect as an outcome (UNSPECIFIED when empty).
func (l Label) ExpectOutcome() riskv1.Outcome {
	switch l.Expect {
	case ExpectChallenge:
		return riskv1.Outcome_OUTCOME_CHALLENGE
	case ExpectReview:
		return riskv1.Outcome_OUTCOME_REVIEW
	}
	return riskv1.Outcome_OUTCOME_UNSPECIFIED
}

// Caught reports whether outcome o counts as detecting the event: at least
// Expect. It is false for events with no expectation.
func (l Label) Caught(o riskv1.Outcome) bool {
	e := l.ExpectOutcome()
	return e != riskv1.Outcome_OUTCOME_UNSPECIFIED && o >= e
}
