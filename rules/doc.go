// Package rules compiles analysts' YAML rule files into an immutable, versioned
// rule Set and evaluates it on one event and its feature vector.
//
// A rule's `when` is an expr boolean checked at compile time against a typed
// environment: event fields by their proto names (login.success,
// payment.amount_minor ...), features.<name> typed by the feature catalog,
// and the functions in_list, any_in_list, cidr_contains, distance_km and
// has. Unknown names, wrong types and non-boolean conditions are rejected
// with file, rule id, line and column. A rule that reads an absent feature
// (outside has()) does not fire, so a missing history never looks like zero.
//
// Precedence: the outcome is the highest of the fired actions and the
// outcome of the summed score under the set's thresholds, except that a fired
// allow rule returns ALLOW. Shadow rules run and are reported, never acted on;
// disabled rules do not run.
//
// The rule language, by example (everything else is expr's own syntax and
// builtins: and/or/not, in, contains, startsWith, len, any/all/count over a
// list, let, ternaries):
//
//	login.success && features.login_failures_account_10m >= 5
//	in_list("blocked_devices", device.device_id)          // value on a list
//	any_in_list("cheat_apps", device.flagged_packages)    // any value on a list
//	cidr_contains("203.0.113.0/24", network.ip)           // IP inside a CIDR
//	distance_km(location.latitude, location.longitude, 31.23, 121.47) > 5
//	!has(features.km_from_last_location_account)          // no previous location
//	attributes["channel"] == "h5"                          // caller's extras
//
// Bounds: at most DefaultMaxNodes nodes per condition, no ranges (a..b), no
// predicate nested in another (so work is linear in the event's lists, which
// ingest caps), no wall clock (now() is refused: replays must agree), and
// nothing outside the event, its features and the lists.
//
// Performance: each condition is type-checked against typed accessors, then
// compiled against an environment of closures over a pooled evaluation
// state; values are boxed at most once per event, so the per-rule cost is
// the VM's alone.
//
// A compiled Set is immutable and safe for concurrent use; its only mutable
// parts are statistics counters (atomics). Store keeps every published
// version on Pebble forever and swaps the live set atomically: an Evaluate
// sees one whole set and never waits for a publish.
//
// Versions: a Set compiled by Compile is named by a content hash
// ("sha-" + 12 hex digits of SHA-256 over its files); a Set published by
// Store is named "v<N>", N counting publications from 1.
package rules
