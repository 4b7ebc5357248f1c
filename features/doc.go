// Package features computes behavioural features (velocity counts, sums,
// distinct counts, seen-before flags, time and distance since the previous
// event, list hits) from a declarative YAML catalog, incrementally, as
// mergeable window state on Pebble behind an in-memory LRU.
//
// # Catalog
//
// A catalog is a YAML mapping with one key, features, a list of definitions:
//
//	name:        [a-z][a-z0-9_]*, unique
//	description: free text
//	on:          event types (LOGIN, PAYMENT ...); absent = every type
//	where:       expr filter over event.Event: which events count (login.success ...)
//	key:         key fields (KeyFields): account_id, device.device_id,
//	             network.ip, network.ip_prefix (the /24 or /64), payment.payee_account_id,
//	             attendance.site_id, location (the stored coarse coordinates) ...
//	agg:         count | sum | distinct | seen_before | last | list_count
//	of:          sum: an integer expr; distinct: a key field;
//	             last: time | location; list_count: list-valued fields
//	window:      count, sum, distinct: 1m to 90d (Go duration or Nd)
//	horizon:     seen_before, last: 1m to 90d, default 90d
//	value:       last: seconds_since | km | kmh
//	list:        list_count: the list's name
//	categories:  extra personal-information categories (device, network,
//	             location, behaviour, payment); the key and of fields add theirs
//
// ParseCatalog refuses a catalog with an unknown field, a bad window, a
// duplicate name, a filter or expression that does not compile or an unknown
// aggregation, naming the feature and its line (*CatalogError).
//
// # Semantics
//
// Event time places an event. A window w is cut into granules of g = w/60;
// granule i is the right-closed interval ((i-1)g, ig]. An event at t lands in
// granule ceil(t/g). A read at t covers granules ceil(t/g)-59 .. ceil(t/g),
// i.e. the interval (G-w, G] with G = t rounded up to a multiple of g: exactly
// (t-w, t] when t is on a granule boundary, and otherwise sliding by whole
// granules (no coarser than 1/60 of the window). A read sees the events
// applied before it (also late ones, in their own granules), never the event
// being applied: Apply reads, then adds. seen_before is a count over the
// horizon with the same granules, true when positive. last keeps, per key and
// horizon-long period, the lastKeep (8) latest values by event time (ties:
// larger coordinates win); a read at t takes the latest kept value with time
// in (t-h, t] from the current and previous period; it is absent when there
// is none. speed divides by the time between the events, at least one second.
// distinct is exact while a key holds at most ExactDistinctLimit (1,024)
// distinct values per period (one window long); beyond that it is estimated
// with per-granule HyperLogLog sketches (axiomhq/hyperloglog, precision 14,
// standard error 0.81%; documented bound 2%). A Value says whether the
// feature applies to the event (its type is in on and the key fields are
// present; the where filter decides only whether the event is counted, so a
// successful login reads the failures before it) and whether
// a value exists: absent differs from zero.
//
// # Storage
//
// Key: keys.FeatureState | state id (uint16, a hash of the definition, so a
// changed definition starts fresh) | period (big-endian, biased) | entity key
// (length-prefixed pseudonyms of the key fields; never a raw identifier).
// A period is 60 granules (one window; for last one horizon), so a read
// touches at most two periods. Values are merge operands (per-granule
// counts, value hash -> granule mask, HyperLogLog sketches, latest values)
// combined by Merger, which is commutative and associative, so batches may
// commit in any order. Sweep range-deletes periods that no read within the
// lateness bound can reach, and the state of retired definitions.
//
// The DB must be opened with Merger() as its merge operator; ConfigureDB
// also sets bloom filters, which most lookups (of state that does not exist
// yet) need to stay fast. Options.Lateness must cover the oldest event
// ingest accepts; a Read of an older event may see swept state.
//
// # Memory
//
// The hot-state LRU holds at most Options.CacheEntries entries (plus the
// entries of in-flight events, which are pinned): one per (state, period,
// entity). Most entries are a few hundred bytes; a distinct state past the
// exact limit holds up to 60 sketches and is larger. Sizing: an event
// touches about 20 entries of the default catalog.
//
// # Benchmarks
//
//	go test -run XXX -bench . -benchtime 200000x ./features/
//	FEATURES_BENCH_POP=1000000 FEATURES_BENCH_CACHE=4000000 go test -run XXX -bench . -benchtime 200000x -timeout 40m ./features/
//
// # Concurrency
//
// A Store is safe for concurrent use. Apply takes striped per-entity locks in
// sorted order from read through in-memory update, so events on the same key
// serialize and each sees the others wholly or not at all. Entries written by
// an Apply are pinned until Done; Done(p, false) drops them (once no other
// in-flight event holds them) so the next read reloads from disk. Until then
// a read may include the failed event; it never misses a committed one. A
// Catalog is immutable and safe to share.
package features
