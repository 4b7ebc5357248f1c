// Package engine is riskd's evaluation pipeline and decision policy. It owns
// the Pebble store's lifecycle and wires the stages of one event:
//
//	ingest (validate, pseudonymize) -> features (read as of event time, then
//	add) -> rules (active and shadow) -> policy (precedence, thresholds, fail
//	modes) -> one synced, group-committed batch (feature merges, the stored
//	event, the idempotency key, the decision and its chain link)
//
// Invariants:
//
//   - An evaluation touches the disk once, with one batch, committed by the
//     single committer goroutine together with whatever else is waiting, so
//     that the decision log's hash chain follows commit order and one fsync
//     serves many callers.
//   - A decision the caller received is on disk, with one documented
//     exception: when the store itself stalls past the budget, the answer is
//     the event type's fail mode marked degraded with the reason "not
//     recorded", and whatever the pipeline had submitted lands when the store
//     recovers (a retry then returns the stored decision).
//   - The same event id again returns the stored decision and changes no
//     feature; concurrent duplicates wait for the first.
//   - Evaluate answers within its budget: on overrun or internal fault it
//     answers with the fail mode, marked degraded, and records that.
//
// Engine is safe for concurrent use; Close waits for the committer to drain.
package engine
