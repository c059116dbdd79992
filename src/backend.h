/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backend: one memcached server as every thread sees it.
 *
 * A backend object lives as long as something refers to it: each topology
 * snapshot that lists it, the health checker while it probes it, and each
 * worker while it still has connections to it. Its id is stable for that
 * whole life and is what per-worker state (connections, counters, scratch)
 * is keyed by, so a topology change never renumbers anything. An id is
 * handed out again only after the object that had it is freed.
 *
 * Immutable after backend_create(): id, name, host, port. The resolved
 * address may change (a host name resolved again), under addr_lock, which
 * is taken only to connect, never per request. Health state is atomic and
 * changes only through backend_set_state(). Counters are one slot per
 * worker thread, each slot written by that worker alone.
 *
 *   NEW --first check--> RECOVERING --clean--> UP --fall--> DOWN
 *                             ^                             |
 *                             +---------- rise -------------+
 *   any --admin maint--> MAINT --admin activate--> RECOVERING
 *
 * Everything but UP is routed around; leaving any of them goes through
 * RECOVERING, where the keys written to fallbacks on its behalf are
 * deleted on it before it serves again (stale-safe return).
 */
#ifndef MCRING_BACKEND_H
#define MCRING_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "stats.h"

struct config_backend;
struct recovery;
struct backend;

enum backend_state {
    BACKEND_UP = 0,
    BACKEND_DOWN,                   /* its keys go to ring successors */
    BACKEND_RECOVERING,             /* passed rise; cleaning up, still DOWN
                                       for routing */
    BACKEND_NEW,                    /* added while running; probed before
                                       it gets keys */
    BACKEND_MAINT,                  /* taken out by an operator */
};

/* Called (from any thread) after a backend stopped being UP. */
typedef void (*backend_down_fn)(struct backend *be, void *arg);

/*
 * The registry: hands out ids and holds what every backend shares. One per
 * process, owned by the proxy.
 */
struct backend_set {
    pthread_mutex_t lock;           /* ids */
    uint8_t *used;                  /* used[id] */
    uint32_t cap;
    uint32_t live;                  /* backends not yet freed */
    unsigned nworkers;              /* counter slots per backend */
    backend_down_fn on_down;
    void *on_down_arg;
};

struct backend {
    uint32_t id;                    /* stable; see the head comment */
    _Atomic uint32_t refs;
    struct backend_set *set;
    char *name;
    char *host;                     /* as configured, no IPv6 brackets */
    uint16_t port;
    char addr[128];                 /* "host:port" or "unix:/path", for
                                       logs and stats */
    bool named;                     /* host is a name, not an address */
    bool tls;                       /* tls=yes: spoken to over TLS */
    pthread_mutex_t addr_lock;      /* sa, salen */
    struct sockaddr_storage sa;     /* resolved; salen 0: not yet */
    socklen_t salen;
    _Atomic int state;              /* enum backend_state */
    _Atomic int64_t since;          /* wall-clock time of the last change */
    _Atomic uint64_t transitions;
    _Atomic uint64_t checks;        /* health probes answered or failed */
    _Atomic uint64_t check_failures;
    _Atomic uint64_t soft_failures; /* data-path timeouts not yet counted */
    struct recovery *recovery;      /* keys written to fallbacks */
    struct stats_backend *stats;    /* [set->nworkers], 64-byte aligned */
    struct stats_backend stats_base;/* at the last `stats reset`, under the
                                       proxy's stats lock */
    void *health;                   /* the health checker's, main thread */
};

void backend_set_init(struct backend_set *s, unsigned nworkers,
                      backend_down_fn on_down, void *arg);
/* All backends must be freed by then. */
void backend_set_deinit(struct backend_set *s);

/*
 * A backend for cb in the given state, with a recovery log of recovery_log
 * keys. Its address is cb's when cb->addrlen > 0 (a numeric host), else
 * the host is a name still to be resolved (backend_set_address()). The
 * caller holds the one reference. Returns NULL with err (out of ids).
 */
struct backend *backend_create(struct backend_set *s,
                               const struct config_backend *cb,
                               enum backend_state state, size_t recovery_log,
                               char *err, size_t errlen)
    __attribute__((warn_unused_result));
struct backend *backend_ref(struct backend *be);
/* Drops a reference; the last one frees the object and its id. */
void backend_unref(struct backend *be);

static inline int
backend_state(const struct backend *be)
{
    return atomic_load_explicit(&be->state, memory_order_relaxed);
}

static inline bool
backend_is_up(const struct backend *be)
{
    return backend_state(be) == BACKEND_UP;
}

/*
 * Moves be from `from` to `to` (compare and swap): false, changing nothing,
 * if it was not in `from`. On a change: its time and transition count,
 * a log line with reason, and the set's on_down hook when it left UP or
 * RECOVERING for a state that is routed around. Thread-safe.
 */
bool backend_set_state(struct backend *be, int from, int to,
                       const char *reason);
/*
 * The bookkeeping of backend_set_state() for a change that was made
 * atomically by someone else (recovery_close()).
 */
void backend_changed(struct backend *be, int from, int to, const char *reason);

/* A worker saw be fail hard (refused connect): DOWN now. Thread-safe. */
void backend_failed(struct backend *be, const char *reason);
/* A worker's request to be timed out (counts towards fall). */
void backend_timeout(struct backend *be);

/* Copies the address to connect to; false when it is not resolved yet. */
bool backend_address(struct backend *be, struct sockaddr_storage *sa,
                     socklen_t *salen);
/* Sets the address (a name resolved); true if it changed. */
bool backend_set_address(struct backend *be, const struct sockaddr_storage *sa,
                         socklen_t salen);

/* Counters of be summed over the workers. */
void backend_stats_sum(const struct backend *be, struct stats_backend *sum);

const char *backend_state_name(int state);

/* The worker's own counter slot. */
static inline struct stats_backend *
backend_stats(struct backend *be, unsigned worker)
{
    return &be->stats[worker];
}

#endif
