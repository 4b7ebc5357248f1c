// Package bench generates riskd's labelled workload: a time-ordered stream of
// risk.v1 events from a synthetic population (package bench/population),
// benign traffic mixed with the attacks riskd must catch, each event labelled
// with the scenario it belongs to. The load tool, the quality report and
// cmd/riskgen all consume it, in process through Workload.Next or as NDJSON
// files (WriteNDJSON).
//
// Invariants: the stream is a pure function of Options. The same options give
// byte-identical output; the start time only shifts timestamps. Events come
// out in non-decreasing occurred_at order, every one passes ingest
// validation, and every one has exactly one Label. Memory is bounded by the
// sessions in flight, not by the population or the stream's length.
//
// Label semantics: Attack is true for events the attacker caused. Expect is
// the least outcome a detector must return for the event to count as caught
// (CHALLENGE for takeover, stuffing and payment fraud, REVIEW for attendance
// cheating). An attack event with an empty Expect is part of an attack but
// cannot be told apart on its own (the failed guesses before a takeover, the
// first replay of a recorded location); quality reports leave those out of
// detection rates. Benign events have Attack false and Expect empty: any
// outcome above ALLOW on them is a false positive. Preparatory benign events
// inside an attack session (the victim's own login before a takeover) carry
// benign scenario names.
//
// A Workload is not safe for concurrent use; Options and Population are.
package bench
