// Package ingest is riskd's edge for events: it validates a risk.v1.Event once,
// normalizes it, replaces every personal identifier by a keyed pseudonym and
// returns both the in-memory event.Event that features and rules read and the
// stored form that is written to disk. It also owns the event log
// (keys.EventRecord), ordered by event time.
//
// Normalization: strings are trimmed; MACs and BSSIDs become lowercase
// colon-separated hex; IPs take their canonical netip form (IPv4-mapped IPv6
// unmapped, zones dropped); IDFA, Android ID and OAID are lowercased, as are
// platform, provider and the method/kind/action words; currency must already
// be three capital letters.
//
// Pseudonyms are HMAC-SHA-256 under the configured key, domain-separated by
// kind (the Kind constants), truncated to 128 bits and base64url-encoded
// (PseudonymLen characters). The stored form carries, in place of the raw
// value: account_id, org_id, every device identifier, network.ip (plus
// network.ip_prefix, the pseudonym of its /24 or /64), wifi_bssid, wifi_ssid,
// payee_account_id, instrument_id and service_log.query (what a person
// typed). attendance.site_id (the organization's site) and location.accuracy_m
// (what the device reported) are kept as given, so that rules reading them
// replay exactly. Coordinates are rounded to CoordDecimals places (about
// 110 m). Attribute values whose key names an identifier (phone,
// mobile, email, ip, mac ...) are pseudonymized whole; other stored free text
// (attribute values, service_log.resource, login.failure_reason, user_agent)
// has embedded phone numbers and long digit runs, e-mail addresses, IPs and
// MACs replaced by tagged pseudonyms (see scrub). event_id is kept as sent:
// it is the caller's idempotency key, not a personal identifier.
//
// Invariants: nothing in the stored form carries a raw device identifier, IP,
// BSSID or phone number; the raw values live only in the event.Event, in
// memory. An event Normalize accepts normalizes again to the same stored
// form, and FromStored rebuilds an event.Event from the stored form alone
// (pseudonyms standing in for the raw values) with the same ev.P, so that
// backtests and replays key features exactly as live traffic did.
//
// A Normalizer is safe for concurrent use. Its only mutable state is a
// bounded cache of user agents that carry no identifier (cleanua.go), kept so
// that a repeated agent is not scanned again; an agent in which scrubbing
// would replace anything, or the free-text rules would see an IP, is never
// kept.
package ingest
