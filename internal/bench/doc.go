// Package bench is the end-to-end benchmark behind cmd/audittrail-bench
// (issue 3): the same realistic trail is loaded into each engine through its
// ingest path, the same queries are asked of each, and one table compares
// them. Same machine, same data, same run: the ratios are what we quote.
//
// The trail (gen*.go) is deterministic for a seed: one company, ten
// projects of which one holds 60 % of the events, 2,000 tenants (20 % of
// events with none, some with several), 200,000 users with skewed activity,
// ~60 Descope action names with a Zipf-like skew, the five devices, eight
// methods, ~50 countries, ~500,000 addresses, and data payloads shaped like
// Descope's (request_details with headers and user agents, Change maps,
// SCIM requests), about 730 bytes of JSON an event. Users, tenants and addresses
// are derived from their index by hashing, so generation streams: nothing
// but a few bitsets is kept, whatever --events is.
//
// Engines (engine*.go) sit behind the small Engine interface; a
// store.Store becomes one through StoreEngine. Registered: embedded
// (internal/store/embedded in process), postgres (internal/store/postgres),
// pgtable (the baseline: one hand-indexed table, see pgTableSchema for its
// indexes and how its free text matches query.Match exactly) and memory
// (storetest.MemStore, the reference, for small trails and tests).
//
// A run (run.go), per engine: load in batches (the rate counts time inside
// Append only; generation is excluded), VACUUM ANALYZE for PostgreSQL
// engines (reported apart), the query shapes (shapes.go; values drawn from a
// reservoir sample of the trail, so every value exists and busy users are
// asked about more often; before them, and again before a shape when 30 s
// have passed, the engine reads its data back into the page cache, --warm,
// since a kernel may evict file pages idle for a minute), single-event appends from concurrent clients, the
// visibility probe (append, then search until found), and for engines that
// keep their data in a directory the restart probe (restart.go: a child
// process appending is killed with SIGKILL, the reopen is timed and every
// acknowledged event must be found). Every engine's totals and first pages
// are compared with the first engine's; a difference is a bug and is
// printed as a warning, never hidden.
//
// --reuse-databases skips the load for the PostgreSQL engines: they query
// the databases a --keep run of the same trail left (same --events, --seed
// and --end, the loading run's; checked by their event count and newest
// Occurred), so a 10M comparison on a slow machine need not reload the
// hand-indexed table each time.
//
// Memory: the bench process's VmHWM is reset before each engine (Linux
// clear_refs) and read after, which is the engine's own peak when it runs
// in process; for PostgreSQL engines the server's processes' summed Pss is
// sampled instead.
package bench
