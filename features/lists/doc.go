// Package lists keeps the named sets analysts manage (cheat_apps,
// blocked_devices, blocked_ip_cidrs, allowed_accounts ...) on Pebble and
// answers membership questions for rules (in_list, any_in_list) and
// features (list counts).
//
// Each value list has an in-memory bloom filter in front of the exact set
// on Pebble: a miss (the common case) costs no disk read, and every bloom
// hit is confirmed with an exact point read, so a false positive never
// reaches a decision. Entries may carry an expiry (read from the injected
// clock); an expired entry is not a member. Identifier lists store only
// pseudonyms (through the consumer's Pseudonymizer), never raw values. CIDR
// lists hold prefixes matched by containment, kept in memory.
//
// Export serializes a plain list's bloom filter in bits-and-blooms' own
// binary format, versioned, for on-device matching; the device reports only
// what it matched and riskd confirms each exactly.
//
// *Lists is safe for concurrent use: lookups take a per-list read lock;
// changes are serialized per store and committed synced.
package lists
