// Package decisions is riskd's decision log: every automated decision, appeal
// transition, overturn, caller label and erasure is an entry in one
// append-only, hash-chained log on Pebble, with indexes to find decisions by
// id, account and time, and the appeals workflow that lets a subject contest a
// decision.
//
// Invariants. Chain entries have consecutive sequence numbers starting at 1;
// entry n's hash is SHA-256 over a canonical encoding of (n, hash of n-1, kind,
// linked record id, SHA-256 of the record bytes as stored) (see entryHash), so
// an edited byte, a deleted record or two swapped records break the chain at
// the first affected entry, and Verify names it. Records are never edited:
// an overturn is a new entry linked to the decision. Erasure may later replace
// a decision record with a redacted one; the redacted record keeps the
// original digest and names the erasure entry that commits to both digests,
// so the chain still verifies.
//
// Concurrency. Append and the other Append* functions write into a caller's
// batch and must be called only from the single committer goroutine, in
// commit order (Rewind undoes the in-memory head when that commit fails).
// Everything else (queries, Verify, File/StartReview/Resolve, PutLabel) is
// safe for concurrent use; the appeal operations serialize per appeal and
// per decision and run their writes through Options.Commit.
package decisions
