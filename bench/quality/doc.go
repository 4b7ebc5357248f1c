// Package quality measures how well riskd's rules detect the labelled
// attacks of package bench: it sends a labelled stream through a running
// riskd (Evaluate for action events, Ingest for service logs and device
// reports, in time order) and reports per scenario the events, the detection
// rate over the events whose label expects an outcome, the false-positive
// rate over benign events, and per rule its hits and precision; Check
// compares a Report with the targets of issue 6.
//
// Detection counts an event caught when riskd's outcome is at least the
// label's Expect (CHALLENGE for takeover, stuffing and payment fraud, REVIEW
// for attendance cheating); attack events without Expect are reported but
// left out of the rate. A benign login, payment, registration or password
// reset is a false positive at CHALLENGE or above, a benign check-in at
// REVIEW or above.
//
// Run is not safe for concurrent use on one riskd: it relies on the stream's
// order. A Report is plain data.
package quality
