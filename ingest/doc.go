// Package ingest is riskd's edge for events: it validates a risk.v1.Event once,
// normalizes it (trimmed strings, canonical IPs and MACs, lowercase platform),
// replaces every personal identifier by a keyed pseudonym (HMAC-SHA-256,
// domain-separated by kind) and returns both the in-memory event.Event that
// features and rules read and the stored form that is written to disk. It
// also owns the event log (keys.EventRecord), ordered by event time.
//
// Invariants: nothing Normalize returns as the stored form carries a raw
// device identifier, IP, BSSID or phone number; precise coordinates are
// stored coarsened to 3 decimal places (about 110 m of latitude); the raw
// values live only in the event.Event, in memory. An event that Normalize
// accepts re-validates when normalized again, and FromStored rebuilds an
// event.Event from the stored form alone (pseudonyms standing in for the raw
// values), so that backtests and replays key features exactly as live
// traffic did.
//
// A Normalizer is immutable after New and safe for concurrent use.
package ingest
