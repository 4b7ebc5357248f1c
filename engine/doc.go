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
//   - An evaluation touches the disk once, with one batch, gathered by the
//     committer goroutine together with whatever else is waiting and
//     applied in commit order, so that the decision log's hash chain follows
//     commit order; its callers are answered once the WAL sync covering it
//     ends, and one fsync serves many callers (often several groups, which
//     the committer goes on applying while a sync runs).
//   - A decision the caller received is on disk, with one documented
//     exception: when the store itself stalls past the budget, the answer is
//     the event type's fail mode marked degraded with the reason "not
//     recorded", and whatever the pipeline had submitted lands when the store
//     recovers (a retry then returns the stored decision).
//   - The same event id again returns the stored decision and changes no
//     feature; concurrent duplicates wait for the first. The idempotency
//     filter (seen.go) holds every idempotency key in the store, so that an
//     id it has never seen is new without a point read.
//   - Evaluate answers within its budget: on overrun or internal fault it
//     answers with the fail mode, marked degraded, and records that.
//
// Engine is safe for concurrent use; Close waits for the committer to drain.
//
// # Performance
//
// BenchmarkEvaluate (bench_test.go) is the whole in-process evaluation from
// 64 goroutines, decisions synced; measured 2026-11-28 on the 2-core VM at
// load average 2.0-2.6 (CPU = the process's user+sys per evaluation,
// Pebble's flushes and compactions included), three runs each:
//
//	ENGINE_BENCH_EVENTS=20000 go test -run '^$' -bench 'Evaluate$' -benchtime 80000x ./engine/
//
// 422-485 CPU µs, 3,375-3,844 evaluations/s, 162-169 allocations, 18 KB
// (before the changes of this round: 494-562 µs, 2,869-3,286/s, 251-254
// allocations, 27.5 KB). With ENGINE_BENCH_EVENTS=15000 the state the
// replayed events touch fits the feature store's hot-state cache (262,144
// entries): 189-205 µs, 7,816-8,531/s, 58 allocations, 11.4 KB (before:
// 244-288 µs, 5,635-6,620/s, 143 allocations, 21 KB). At 20,000 it does
// not: the replay cycles through more entries than the cache holds, so
// nearly every state is read back from Pebble (features' loadAll, half the
// CPU). What the engine itself spends on an evaluation is now small beside
// that: the decision's record is encoded by hand around the stored event's
// bytes, which the event log gets too (decisions.PrepareParts), the feature
// values come from a few slices, commit requests and timers are recycled,
// and the idempotency filter spares the read that proved each new id new
// (about a tenth of the CPU with the state in memory).
package engine
