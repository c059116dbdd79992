/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stats: per-worker counters, summed when read, and the table that
 * describes them.
 *
 * Each counter has exactly one writer (its worker thread) and is read by
 * whichever thread answers `stats`. Counters are relaxed atomics: on the
 * writer's side an increment is a plain load and store, no locked
 * instruction, and readers never see torn values.
 */
#ifndef MCRING_STATS_H
#define MCRING_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The one table of what is counted: name, type and help text. memcached
 * `stats` lines, JSON and Prometheus metrics all render from it, so they
 * never disagree. Gauges go up and down and are not reset by `stats
 * reset`.
 */
#define STATS_CLIENT_FIELDS(X)                                               \
    X(curr_connections, GAUGE, "Client connections open now")              \
    X(total_connections, COUNTER, "Client connections accepted")           \
    X(parked_connections, GAUGE, "Of the open ones, idle connections "     \
                                 "kept without buffers (parked)")           \
    X(client_memory, GAUGE, "Bytes clients are owed now: replies not yet " \
                            "written, values collected or sent, requests " \
                            "in flight at the size of a reply on average") \
    X(memory_pauses, COUNTER, "Times reading from a client paused as all " \
                              "clients together were owed max_memory")    \
    X(cmd_get, COUNTER, "Keys asked for by get, gets, gat and gats")        \
    X(cmd_set, COUNTER, "Storage commands (set, add, replace, append, "    \
                        "prepend, cas)")                                    \
    X(cmd_touch, COUNTER, "Keys touched by touch, gat and gats")            \
    X(cmd_flush, COUNTER, "flush_all commands")                             \
    X(get_hits, COUNTER, "Keys found by retrievals")                        \
    X(get_misses, COUNTER, "Keys not found by retrievals")                  \
    X(get_errors, COUNTER, "Keys of retrievals that failed on a backend")   \
    X(delete_hits, COUNTER, "delete of a key that existed")                 \
    X(delete_misses, COUNTER, "delete of a key that did not exist")         \
    X(incr_hits, COUNTER, "incr of a key that existed")                     \
    X(incr_misses, COUNTER, "incr of a key that did not exist")             \
    X(decr_hits, COUNTER, "decr of a key that existed")                     \
    X(decr_misses, COUNTER, "decr of a key that did not exist")             \
    X(cas_hits, COUNTER, "cas that stored")                                 \
    X(cas_misses, COUNTER, "cas of a key that did not exist")               \
    X(cas_badval, COUNTER, "cas refused: the item changed since gets")      \
    X(touch_hits, COUNTER, "touch of a key that existed")                   \
    X(touch_misses, COUNTER, "touch of a key that did not exist")           \
    X(bytes_read, COUNTER, "Bytes read from clients")                       \
    X(bytes_written, COUNTER, "Bytes written to clients")                   \
    X(protocol_errors, COUNTER, "Client commands answered with ERROR or "  \
                                "CLIENT_ERROR")                             \
    X(server_errors, COUNTER, "Client commands answered with "             \
                              "SERVER_ERROR")                               \
    X(rate_limited, COUNTER, "Key commands refused: their pool was over "   \
                             "its rate")                                    \
    X(client_rate_limited, COUNTER, "Key commands refused: their client "   \
                                    "address was over client_rate")         \
    X(idle_kicks, COUNTER, "Client connections closed after "              \
                           "client_idle_timeout (memcached's name)")        \
    X(warmup_hits, COUNTER, "Keys that missed on their new owner during a " \
                            "move and were found on their previous owner")  \
    X(warmup_misses, COUNTER, "Keys that missed on their new owner and on " \
                              "their previous owner")                       \
    X(warmup_copies, COUNTER, "Warm-up hits copied to the new owner")       \
    X(warmup_copy_failures, COUNTER, "Warm-up copies that failed or found " \
                                     "a value already there")               \
    X(warmup_copies_dropped, COUNTER, "Warm-up copies dropped: the "         \
                                      "worker's copy queue was full")       \
    X(warmup_copies_undone, COUNTER, "Warm-up copies deleted again: their " \
                                     "source changed meanwhile")            \
    X(migrate_deletes, COUNTER, "Deletes sent to the previous owner of a "  \
                                "key written during a move")                \
    X(migrate_delete_failures, COUNTER, "Of those, deletes that failed or " \
                                        "could not be sent")                \
    X(replica_writes, COUNTER, "Writes sent to a key's other replicas "    \
                               "(replicated pools)")                        \
    X(replica_write_failures, COUNTER, "Of those, writes that failed or "   \
                                       "could not be sent")                 \
    X(region_writes, COUNTER, "Writes sent to other regions' pools "       \
                              "(local-first routes)")                      \
    X(region_write_failures, COUNTER, "Of those, writes that failed or "   \
                                      "could not be sent")                 \
    X(region_writes_dropped, COUNTER, "Writes to other regions not sent: " \
                                      "the worker's queue of them was "     \
                                      "full")                               \
    X(hotkey_spread_reads, COUNTER, "Reads of hot keys sent to one of "    \
                                    "their replicas in turn "               \
                                    "(hotkey_spread)")                      \
    X(pool_deletes, COUNTER, "Deletes sent to other pools of their key "  \
                             "(a pool's deletes =)")                        \
    X(pool_delete_failures, COUNTER, "Of those, deletes that failed or "   \
                                     "could not be sent (the key is "       \
                                     "deleted by a recovery pass)")         \
    X(big_sets, COUNTER, "Values over big_value_split stored as chunks "   \
                         "and an index")                                    \
    X(big_chunks, COUNTER, "Chunks of big values written")                  \
    X(big_chunk_failures, COUNTER, "Chunk writes that failed or could not " \
                                   "be sent (the value reads as a miss)")   \
    X(big_gets, COUNTER, "Big values read back whole from their chunks")    \
    X(big_misses, COUNTER, "Big values answered as misses: a chunk was "   \
                           "missing or their index unreadable")             \
    X(l1_hits, COUNTER, "Keys answered from the worker's cache of hot "   \
                        "keys (l1)")                                        \
    X(l1_fills, COUNTER, "Hot keys' values put in the l1 cache")            \
    X(l1_evictions, COUNTER, "Values evicted from the l1 cache to make "   \
                             "room")                                        \
    X(l1_invalidations, COUNTER, "Values dropped from the l1 cache by a "  \
                                 "write of their key through the same "     \
                                 "worker")                                  \
    X(l1_bytes, GAUGE, "Bytes the l1 cache holds now")                      \
    X(shadow_requests, COUNTER, "Keys of client commands copied to a "     \
                                "shadow pool")                              \
    X(shadow_hits, COUNTER, "Of those, found or written by the shadow "    \
                            "pool (VALUE, STORED, DELETED, HD ...)")        \
    X(shadow_misses, COUNTER, "Of those, not found or not written by the " \
                              "shadow pool (EN, NOT_FOUND, NOT_STORED, "    \
                              "EXISTS ...)")                                \
    X(shadow_errors, COUNTER, "Of those, answered with an error, failed "  \
                              "or not sent (no backend of the shadow pool " \
                              "could take them)")                           \
    X(shadow_latency_us, COUNTER, "Microseconds from sending to the reply, " \
                                  "summed over the shadow pool's replies "  \
                                  "(hits and misses)")                      \
    X(shadow_dropped, COUNTER, "Keys not copied to a shadow pool: the "    \
                               "worker's copies in flight were at their "   \
                               "bound")                                     \
    X(watch_events, COUNTER, "Request lines queued to watchers (watch, "  \
                             "GET /watch)")                                 \
    X(watch_dropped, COUNTER, "Request lines dropped: a watcher did not "  \
                              "keep up (each told dropped=N)")

#define STATS_BACKEND_FIELDS(X)                                              \
    X(requests, COUNTER, "Requests sent to the backend")                    \
    X(errors, COUNTER, "Requests to the backend that failed")               \
    X(errors_closed, COUNTER, "Of those, failed as the connection was "     \
                              "lost, closed or never made")                 \
    X(errors_protocol, COUNTER, "Of those, failed on a reply mcring "        \
                                "cannot parse")                             \
    X(errors_timeout, COUNTER, "Of those, failed as a request on the "      \
                               "connection timed out")                      \
    X(errors_unavailable, COUNTER, "Of those, not sent: no connection "     \
                                   "could take them")                       \
    X(errors_overloaded, COUNTER, "Of those, not sent: the connection's "   \
                                  "queue was at backend_queue_limit")       \
    X(errors_server, COUNTER, "Of those, answered with an error by the "    \
                              "backend")                                    \
    X(timeouts, COUNTER, "Requests to the backend that timed out")          \
    X(connects, COUNTER, "Connection attempts to the backend")              \
    X(connect_failures, COUNTER, "Connection attempts that failed")         \
    X(failovers, COUNTER, "Keys of the backend routed to a fallback")       \
    X(failovers_refused, COUNTER, "Keys of the backend answered with an "    \
                                  "error, not failed over: its pool was "   \
                                  "over failover_limit")                    \
    X(bytes_sent, COUNTER, "Bytes of requests written to the backend")      \
    X(bytes_received, COUNTER, "Bytes of replies read from the backend")    \
    X(connections, GAUGE, "Connections to the backend open now")          \
    X(in_flight, GAUGE, "Requests sent to the backend, not yet answered")

enum stats_type {
    STATS_COUNTER,
    STATS_GAUGE,
};

/*
 * A latency histogram: fixed buckets, log-spaced 1-2-5 from 50 us to 5 s
 * (upper bounds, inclusive), then +Inf. Single writer, as the counters;
 * merged when read.
 */
#define STATS_HISTO_BUCKETS 16
extern const uint32_t stats_histo_bounds_us[STATS_HISTO_BUCKETS];

struct stats_histo {
    _Atomic uint64_t bucket[STATS_HISTO_BUCKETS + 1]; /* not cumulative */
    _Atomic uint64_t sum_us;
};

/* Commands counted one by one, by enum proto_cmd (below this). */
#define STATS_COMMANDS 40

/* Pools counted apart over a process's life (by name; see
 * proxy_pool_id()): the last slot holds any beyond. */
#define STATS_POOLS 256

struct stats_worker {
#define STATS_DECL(name, type, help) _Atomic uint64_t name;
    STATS_CLIENT_FIELDS(STATS_DECL)
    _Atomic uint64_t commands[STATS_COMMANDS];  /* requests, by command */
    _Atomic uint64_t pool_keys[STATS_POOLS];    /* keys routed, by pool id */
};

/* One slot per worker: aligned so that two workers never share a line. */
struct stats_backend {
    _Alignas(64) STATS_BACKEND_FIELDS(STATS_DECL)
#undef STATS_DECL
    struct stats_histo latency;     /* request queued to reply read */
};

/* One entry of the table. */
struct stats_def {
    const char *name;
    enum stats_type type;
    const char *help;
    size_t offset;                  /* in struct stats_worker or
                                       stats_backend */
};

extern const struct stats_def stats_client_defs[];
extern const size_t stats_nclient_defs;
extern const struct stats_def stats_backend_defs[];
extern const size_t stats_nbackend_defs;

/* Single-writer increment: cheap, never a locked instruction. */
static inline void
stats_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(
        c, atomic_load_explicit(c, memory_order_relaxed) + n,
        memory_order_relaxed);
}

static inline void
stats_sub(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(
        c, atomic_load_explicit(c, memory_order_relaxed) - n,
        memory_order_relaxed);
}

static inline uint64_t
stats_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* The value of field d of a struct stats_worker or stats_backend. */
static inline uint64_t
stats_value(const void *stats, const struct stats_def *d)
{
    return stats_get(
        (const _Atomic uint64_t *)(const void *)((const char *)stats +
                                                 d->offset));
}

/* A request to a backend failed: counted in errors and in its reason's
 * errors_* counter (so errors is their sum). */
static inline void
stats_backend_error(struct stats_backend *s, _Atomic uint64_t *reason)
{
    stats_add(&s->errors, 1);
    stats_add(reason, 1);
}

/* Counts one observation of us microseconds in h. */
static inline void
stats_histo_add(struct stats_histo *h, uint64_t us)
{
    unsigned i = 0;

    while (i < STATS_HISTO_BUCKETS && us > stats_histo_bounds_us[i]) {
        i++;
    }
    stats_add(&h->bucket[i], 1);
    stats_add(&h->sum_us, us);
}

/* sum += h (sum has one writer: the caller). */
void stats_histo_merge(struct stats_histo *sum, const struct stats_histo *h);
/* sum -= base, bucket by bucket (`stats reset`). */
void stats_histo_subtract(struct stats_histo *sum,
                          const struct stats_histo *base);
/* Observations in h. */
uint64_t stats_histo_count(const struct stats_histo *h);
/*
 * The q-quantile (0 < q <= 1) of h in microseconds, interpolated linearly
 * within its bucket (from 0 for the first); one in +Inf is reported as
 * the last bound. -1 when h is empty.
 */
double stats_histo_quantile(const struct stats_histo *h, double q);

/*
 * sum += slot, field by field, for the n fields of defs (both structs of
 * the kind defs describes). sum must have one writer: the caller.
 */
void stats_accumulate(void *sum, const void *slot,
                      const struct stats_def *defs, size_t n);
/* Counters of sum minus those of base (gauges kept). */
void stats_subtract(void *sum, const void *base, const struct stats_def *defs,
                    size_t n);

#endif
