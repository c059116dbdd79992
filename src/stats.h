/*
 * stats: per-worker counters, summed when read.
 *
 * Each counter has exactly one writer (its worker thread) and is read by
 * whichever thread answers `stats`. Counters are relaxed atomics: on the
 * writer's side an increment is a plain load and store, no locked
 * instruction, and readers never see torn values.
 */
#ifndef MCRING_STATS_H
#define MCRING_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define STATS_CLIENT_FIELDS(X)                                               \
    X(total_connections)                                                     \
    X(cmd_get)                                                               \
    X(cmd_set)                                                               \
    X(cmd_touch)                                                             \
    X(cmd_flush)                                                             \
    X(get_hits)                                                              \
    X(get_misses)                                                            \
    X(get_errors)                                                            \
    X(delete_hits)                                                           \
    X(delete_misses)                                                         \
    X(incr_hits)                                                             \
    X(incr_misses)                                                           \
    X(decr_hits)                                                             \
    X(decr_misses)                                                           \
    X(cas_hits)                                                              \
    X(cas_misses)                                                            \
    X(cas_badval)                                                            \
    X(touch_hits)                                                            \
    X(touch_misses)                                                          \
    X(bytes_read)                                                            \
    X(bytes_written)                                                         \
    X(protocol_errors)                                                       \
    X(server_errors)

#define STATS_BACKEND_FIELDS(X)                                              \
    X(requests)                                                              \
    X(errors)                                                                \
    X(timeouts)                                                              \
    X(connects)                                                              \
    X(connect_failures)                                                      \
    X(failovers)

struct stats_worker {
#define STATS_DECL(name) _Atomic uint64_t name;
    STATS_CLIENT_FIELDS(STATS_DECL)
    _Atomic uint64_t curr_connections;
};

/* One slot per worker: aligned so that two workers never share a line. */
struct stats_backend {
    _Alignas(64) STATS_BACKEND_FIELDS(STATS_DECL)
    _Atomic uint64_t open_connections;
#undef STATS_DECL
};

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

#endif
