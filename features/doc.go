// Package features computes behavioural features (velocity counts, sums,
// distinct counts, seen-before flags, time since the first event, time and
// distance since the previous event, list hits) from a declarative YAML
// catalog, incrementally, as mergeable window state on Pebble behind an
// in-memory cache of hot state (a CLOCK, an approximation of an LRU).
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
//	agg:         count | sum | distinct | seen_before | first_seen | last |
//	             list_count
//	of:          sum: an integer expr; distinct: a key field;
//	             last: time | location; list_count: list-valued fields
//	window:      count, sum, distinct: 1m to 90d (Go duration or Nd)
//	horizon:     seen_before, first_seen, last: 1m to 90d, default 90d
//	value:       last: seconds_since | km | kmh; first_seen: seconds_since
//	             (its only value, the default)
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
// horizon with the same granules, true when positive. first_seen keeps,
// per granule of the horizon, the earliest event time applied to it (merge:
// the per-granule minimum, commutative and associative, so operands commit
// in any order); a read at t takes the minimum m over the same granules as
// seen_before, in the current and previous period, and gives max(t-m, 0) in
// seconds: the time since the earliest event applied before this one whose
// granule is in the read's window. A late event earlier than those applied
// before it becomes the first for later reads (a minimum, not the first
// arrival); one that finds only later events in its own granule reads 0,
// never a negative time. It is absent when there is none. last keeps, per
// key and horizon-long period, the lastKeep (8) latest values by event time
// (ties: larger coordinates win); a read at t takes the latest kept value
// with time in (t-h, t] from the current and previous period; it is absent
// when there is none. speed divides by the time between the events, at least one second.
// distinct is exact for every read whose window holds at most
// ExactDistinctLimit (1,024) distinct values, however many the key saw
// before or after that window; a read whose window holds more is exact or
// estimated with HyperLogLog sketches (axiomhq/hyperloglog, precision 14,
// standard error 0.81%; documented bound 2%). A key's state per period (one
// window long) keeps every value exactly until it holds more than 1,024;
// then it keeps exact the latest granules that together hold at most 1,024
// values and the earliest that do (at most 2,048 values), and the granules
// between go into per-granule sketches. A window meets a period in its
// latest granules (the previous period) or its earliest (the current one),
// so one that reaches a sketched granule holds more than 1,024 values; it is
// estimated from the sketches and the exact values in its granules. Merging
// states and operands in any order gives the same state (bigSet in
// state.go). A Value says whether the
// feature applies to the event (its type is in on and the key fields are
// present; the where filter decides only whether the event is counted, so a
// successful login reads the failures before it) and whether
// a value exists: absent differs from zero.
//
// # Storage
//
// Key: keys.FeatureState | entity key (length-prefixed pseudonyms of the key
// fields; never a raw identifier) | state id (uint16, a hash of the
// definition, so a changed definition starts fresh) | period (big-endian,
// biased); see statekey.go. The entity comes first so that an entity's
// states sit together: a cold read of an event's two dozen keys, sorted,
// touches a few blocks. A period is 60 granules (one window; for last one
// horizon), so a read touches at most two periods. Values are merge
// operands (per-granule counts, per-granule earliest times, value hash ->
// granule mask and the sketches of dropped granules, latest values)
// combined by Merger, which is commutative and associative, so batches may
// commit in any order. Sweep deletes periods that no read within the
// lateness bound can reach, and the state of retired definitions, by a
// scan that goes on from call to call (sweep.go). Open moves state written
// in the older feature-first layout (keys.FeatureStateV1) to these keys
// (migrate.go).
//
// Writes are write-back (writeback.go): Apply puts one delta record per
// event (keys.FeatureDelta | sequence: the event's state keys and operands)
// into the caller's batch, so the event and its feature updates commit
// together, and keeps each period's deltas in memory; a flush (every
// Options.FlushInterval, or early past Options.MaxDirty waiting deltas)
// merges each period's deltas as one operand and range-deletes the records
// it covers, in one batch, once every event of its epoch has committed.
// Open merges the records a crash left. Each delta is merged exactly once.
//
// The DB must be opened with Merger() as its merge operator; ConfigureDB
// also sets bloom filters, which most lookups (of state that does not exist
// yet) need to stay fast. Options.Lateness must cover the oldest event
// ingest accepts; a Read of an older event may see swept state.
//
// # Memory
//
// The hot-state cache holds at most Options.CacheEntries entries (plus the
// entries holding deltas no flush has merged yet, which are pinned, about
// Options.MaxDirty at most between flushes): one per (state, entity),
// holding the periods loaded for it (at most three once no in-flight
// event needs more; a read needs two), so that one lookup serves both
// periods a read touches. Most entries are a few hundred bytes; a distinct
// state past the exact limit holds up to 2,048 exact values and the sketches
// of its dropped granules, and is larger.
// Sizing: an event touches 13-16 entries of the default catalog (29
// features, 27 states). With 1M accounts and 1M devices of state on disk
// and the default 262,144 entries, the heap stayed at 131-226 MiB after
// cold Applies over the whole population (BenchmarkApplyCold, measured
// with the 28 features before first_seen).
//
// A scratch store (Options.Scratch, OpenScratch; scratch.go) keeps
// everything in memory with no DB, for replays such as backtests: state
// nobody wrote reads as empty, Apply writes no operands, and nothing is
// evicted, so memory grows with the (state, entity) pairs the replay writes
// (about 300 bytes each in a replay of the default catalog) up to
// CacheEntries, past which Apply fails with ErrScratchFull. Its events must
// come in time order (ErrScratchOrder). TestScratchMatchesPebble checks it
// against a store on Pebble, value for value.
//
// # Performance
//
// Add (Ingest's path) does Apply's work but the reading: it loads only
// the current period of the states the event counts in.
//
// Apply costs one cache lookup per applicable state (the hash that picks
// the stripe lock also picks the cache slot), a Pebble point read per
// period not in memory (done before the stripe locks, see Concurrency),
// and, for the 9-14 states an event counts in, an in-memory add to the
// state and to its write-back delta, unless the add changes nothing that
// can be read and the period's memory is what the disk holds (a repeated
// value of an exact distinct set, an earlier first-seen, a seen-before
// granule that counts an event already: most events repeat their
// account's device and address), which then writes nothing; the event's
// operands go to disk as one delta record in its batch, and a flush merges
// each period's deltas as one operand. A cache hit on a recently used entry
// writes nothing (see cache). Merger combines counts, first-seen times and
// exact sets in flat, pooled arrays, so compactions allocate nothing for
// them. ConfigureDB sets Pebble's write path for a stream of small
// operands.
//
// Measured on the 2-core development VM (AMD EPYC, Go 1.26) on 2026-11-28;
// CPU is the process's user+sys per operation, Pebble's background work and
// the flusher included. Population 1M accounts + 1M devices (3M events,
// 196 MB on disk), the engine's DB options, warm set 10,000 entities:
//
//	FEATURES_BENCH_POP=1000000 FEATURES_BENCH_DIR=/tmp/fbench1m go test -run XXX -bench 'Read$|Apply$|Ingest$' -benchtime 100000x -timeout 60m ./features/
//
//	Read (warm)     p50 10.4 µs, p99 26.5 µs, 12.0 CPU µs, 6 allocs (load 1)
//	Apply (warm)    42-45 CPU µs (load 4-5; 43 at load 1); before write-back,
//	                alternating runs: 44-49
//	Ingest (warm)   10,000-24,800 events/s wall, 67-88 CPU µs (load 1-5);
//	                before: 12,100-12,300, 71-74 (load 5)
//
// Session 4 (2026-11-29, load 1.3-1.9, alternating runs on copies of the
// same store), after no-op updates stopped writing deltas and preload
// stopped looking entries up twice:
//
//	Read (warm)     p50 10.7 µs, p99 26.7-29.2 µs, 12.2-12.5 CPU µs
//	Apply (warm)    20.4 CPU µs, 9 allocs (the code before: 34.5-34.8)
//	Ingest (warm)   35,129 events/s wall, 41.8 CPU µs (before: 28,971-
//	                31,331 events/s, 51.9-54.4); through Add, as the
//	                engine's Ingest now runs (no reads): 41,833-42,574
//	                events/s, 32.8-33.5 CPU µs, 9 allocs (alternating
//	                with Apply: 26,249-35,445, 39-54); sustained over
//	                1,000,000 events (-benchtime 1000000x, load 1.4-1.8):
//	                60,384-62,209 events/s, 23.3-24.6 CPU µs, 6 allocs
//	Apply, 1,000,000x  22.9-29.2 CPU µs (load 1.4-1.8)
//	Add, 1,000,000x    20.3-23.3 CPU µs, 6 allocs: the update alone
//	                (BenchmarkAdd), Pebble's flushes and compactions and
//	                the write-back flusher included
//
// After preload looked entries up once (load 1.0-1.4): Add 13.3-15.3 CPU µs
// over 300,000 events (16.2-16.4 before, alternating), 16.0-17.2 over a
// million; ingest through features over a million events 74,622-75,505
// events/s at 20.1-20.2 CPU µs.
//
// At the end of session 4 (entity keys inside their entries), three runs of
// a million events each, load 1.1-1.8:
//
//	FEATURES_BENCH_POP=1000000 FEATURES_BENCH_DIR=/tmp/fbench1m go test -run XXX -bench 'Read$|Add$|Ingest$' -benchtime 1000000x -timeout 60m ./features/
//
//	Read (warm)     p50 9.5-9.6 µs, p99 23.9-25.2 µs, 11.0-11.1 CPU µs
//	Add (update)    14.4-14.9 CPU µs, 6 allocs, Pebble's background work
//	                and the write-back flusher included
//	Ingest          73,733-78,410 events/s, 19.2-20.9 CPU µs
//
// With 10,000 hot entities most periods get one or two events between
// flushes, so write-back saves little there: the CPU goes to compacting
// the 1M population's LSM (a third of the profile), loading periods from
// Pebble, and garbage collection. It pays where traffic is skewed, as
// attacks are (one IP, one device, one payee): warm set 200 at the default
// 20,000 population, load 5, alternating with the code before it:
//
//	FEATURES_BENCH_HOT=200 go test -run XXX -bench 'Apply$|Ingest$' -benchtime 100000x ./features/
//
//	Apply           9.1-9.9 CPU µs (before: 24-26), 8 allocs
//	Ingest          53,200-82,300 events/s, 11.6-13.5 CPU µs (before:
//	                22,300-24,800 events/s, 29-33 CPU µs)
//
// Cold state (session 8, 2026-11-29, load 0.7-1.1, three runs alternating
// with the code before on copies of one 200,000-account store): a preload
// serves its reads from one Pebble iterator (SeekPrefixGE a key) instead of
// a Get each, which built the iterator stack over the memtables and every
// level anew:
//
//	FEATURES_BENCH_POP=200000 FEATURES_BENCH_DIR=/tmp/fpop go test -run XXX -bench 'ApplyCold$' -benchtime 30000x ./features/
//
//	ApplyCold       132-137 CPU µs, 73 allocs, 24.4 loads (before:
//	                157-175, 127 allocs)
//
// Session 9 (2026-11-29, load 2.3-2.4, three runs alternating with the code
// before, each on a copy of a 200,000-account store written by that code):
// state keys entity first, and preload's reads sorted by key, so that an
// entity's keys share blocks and each seek steps on from the last:
//
//	FEATURES_BENCH_POP=200000 FEATURES_BENCH_DIR=/tmp/fpop go test -run XXX -bench 'ApplyCold$' -benchtime 30000x ./features/
//
//	ApplyCold       58.9-60.9 CPU µs, 71 allocs, 24.4 loads (before:
//	                118.9-120.7, 68 allocs)
//	Sweep           100-144 ns a state key (BenchmarkSweep, 3.3M keys)
//
// The targets (Read p50 ≤ 15 µs and p99 ≤ 100 µs, update ≤ 15 µs,
// ingest ≥ 50,000 events/s) are met for reads, and for updates and ingest
// on skewed traffic; over the 1M population with a 10,000-entity warm set,
// the three targets are met over a million events at the end of session 4:
// read p50 9.5 µs and p99 25 µs, an update 14.4-14.9 CPU µs, ingest
// 73,733-78,410 events/s. Reading and updating in one Apply (the
// engine's Evaluate) costs about their sum, 22-24 CPU µs.
//
// Exact distinct windows past the limit (2026-11-28, load 1.9-3.5, five
// or six alternating runs of the command above): Read 9.8-14.7 CPU µs,
// Apply 30.2-41.0, against 10.6-14.6 and 32.6-46.6 before: within the
// noise. For a key past the limit (BenchmarkDistinctHot, in memory): an
// add 12-15 ns (27-31 before); a read of 1,100 values in granules kept
// exact 28-31 µs (81-115 µs before, then an estimate); a read of 6,000,
// estimated, 264-266 µs (184-200 before: it now also hashes the exact
// values in the window, up to 2,048 a period; most of either is the
// sketch library's Estimate over 16,384 registers).
//
// The default run (go test -bench . ./features/, as make bench runs it)
// uses a 20,000 population; bench_test.go documents the variables.
//
// Session 7 (2026-11-29, load 2.2-2.5), the hot-state cache a CLOCK instead
// of golang-lru's list, two runs alternating with the code before:
//
//	go test -run XXX -bench 'Read$|Apply$' -benchtime 100000x ./features/
//
//	Read            10.7-11.9 CPU µs (10.7-11.5 before)
//	Apply           24.2-25.4 CPU µs (28.7-30.2 before)
//	ScratchApply    254 bytes a state (270 before)
//
// # Concurrency
//
// A Store is safe for concurrent use. Apply takes striped per-entity locks in
// sorted order from read through in-memory update, so events on the same key
// serialize and each sees the others wholly or not at all. The state of
// entities not in memory is read from Pebble before the locks are taken
// (preload), so that an Apply does not hold a dozen stripes, and every
// evaluation waiting for one, while it reads; under the locks that read is
// used only if the entity has not come into memory meanwhile and no write of
// state keys (a flush, an erasure, a sweep, a rebuild) has landed since.
// Waits for stripe locks fell about tenfold in the engine's benchmark (the
// block profile of BenchmarkEvaluate, 50,000 events replayed). A read never
// misses a committed event. After a failed commit (Done(p, false)) a read may
// include the failed event, Apply fails with ErrRebuilding, and the next
// Flush forgets memory and rebuilds from the disk's state and records. Close
// stops the flusher and flushes. A Catalog is immutable and safe to share.
package features
