/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * topology: one immutable snapshot of what mcring routes to.
 *
 * A snapshot holds the parsed configuration, the backend table
 * (backends[i] is the backend object of cfg->backends[i]), and per pool
 * the ring built from it; the routes, longest prefix first, say which pool
 * a key goes to. A pool's ring index j is its backend be[j], which is
 * backends[idx[j]]. The main thread builds a new snapshot for every
 * change and publishes it to the workers, each of which adopts it at the
 * start of its next loop turn; nothing in a snapshot changes after
 * topology_create(). A snapshot is freed with its last reference; it holds
 * a reference to each of its backends.
 */
#ifndef MCRING_TOPOLOGY_H
#define MCRING_TOPOLOGY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

struct config;
struct config_pool;
struct backend;

#define TOPOLOGY_ORIGINS 2

struct topology_pool {
    const struct config_pool *cfg;  /* in the snapshot's config */
    struct ring *ring;              /* owned */
    uint32_t *idx;                  /* [members]: index in backends */
    struct backend **be;            /* [members]: backends[idx[j]] */
    uint32_t n;                     /* members */
    uint32_t replicas;              /* at most n */
    uint32_t id;                    /* its counters' slot, < STATS_POOLS:
                                       set by the proxy, kept by name */
    uint32_t shadow;                /* index of its shadow pool, or
                                       UINT32_MAX (shadow.h) */
    uint64_t shadow_cut;            /* keys whose shadow hash is below are
                                       shadowed; UINT64_MAX: every key */
    uint32_t writes;                /* index of the pool its keys' writes
                                       go to: its own, or [pool] writes */
    uint32_t *deletes;              /* [ndeletes]: indices of the pools
                                       its keys' deletes go to as well
                                       ([pool] deletes), owned */
    uint32_t ndeletes;
};

struct topology_route {
    const char *prefix;             /* in the snapshot's config */
    size_t len;                     /* > 0, but the default's */
    uint32_t pool;                  /* local-first: the proxy region's */
    uint32_t *remote;               /* local-first: the other regions'
                                       pools, owned; else NULL */
    uint32_t nremote;
};

struct topology {
    _Atomic uint32_t refs;
    uint64_t generation;            /* 1 for the first, then +1 */
    struct config *cfg;             /* owned */
    struct backend **backends;      /* [n], a reference each */
    uint32_t n;
    uint32_t id_limit;              /* every backend id is below this */
    struct topology_pool *pools;    /* [npools], as cfg->pools */
    uint32_t npools;
    struct topology_route *routes;  /* [nroutes], longest first, without
                                       the default ("*") */
    uint32_t nroutes;
    struct topology_route def;      /* keys that match no route */
    bool regional;                  /* a route is local-first */
    bool replicated;                /* a pool has replicas > 1 */
    bool spread;                    /* ... and hotkey_spread */
    bool rated;                     /* a pool has a rate */
    bool shadowed;                  /* a pool has a shadow */
    bool derived;                   /* derived keys (ring.h) are routed
                                       as their base: big_value_split */
    bool fanout;                    /* a pool has deletes = */
    /*
     * During a move and its window: origin[0] is the snapshot from before
     * the move began, origin[1] the one where a rollback began (or NULL);
     * references, without origins of their own. A key's owner in an
     * origin, when it differs from its owner here, is a previous owner.
     * prev[o][i] is backend i of origin[o] when it is in this snapshot too
     * (it can serve warm-up reads and take deletes), else NULL. All NULL
     * when nothing moves.
     */
    struct topology *origin[TOPOLOGY_ORIGINS];
    struct backend **prev[TOPOLOGY_ORIGINS];
    /* As an origin: tainted[i] is set once a delete that backend i had to
     * take failed or could not be sent, so it may hold a value older than
     * one written since; it serves no more warm-up reads. [n] */
    _Atomic bool *tainted;
};

/*
 * A snapshot of cfg (taken, also on failure) with backends[0..
 * cfg->nbackends), whose references are taken too (also on failure), and
 * a ring per pool. The caller holds the one reference; NULL with err when
 * a ring cannot be built.
 */
struct topology *topology_create(uint64_t generation, struct config *cfg,
                                 struct backend **backends, char *err,
                                 size_t errlen);

/* The route of key: the longest whose prefix it starts with, else the
 * default. Inline: one branch per key without routes. */
static inline const struct topology_route *
topology_route_of(const struct topology *t, const char *key, size_t len)
{
    if (t->nroutes > 0 && t->derived) {
        len = ring_base_len(key, len); /* a derived key: its base's route */
    }
    for (uint32_t i = 0; i < t->nroutes; i++) {
        const struct topology_route *r = &t->routes[i];

        if (r->len <= len && __builtin_memcmp(key, r->prefix, r->len) == 0) {
            return r;
        }
    }
    return &t->def;
}

/* Whether a read that misses may find the key elsewhere: during a move
 * (its previous owner), in a replicated pool (the next replica), on a
 * local-first route (another region). */
static inline bool
topology_reads_fall_through(const struct topology *t)
{
    return t->origin[0] != NULL || t->replicated || t->regional;
}

/* The pool key goes to (its route's; local-first: the local one). */
static inline const struct topology_pool *
topology_pool_of(const struct topology *t, const char *key, size_t len)
{
    return &t->pools[topology_route_of(t, key, len)->pool];
}

/* The pool a write (storage, incr, decr, touch, delete; ms, ma, md) of key
 * goes to: its pool's, or the one that pool's writes = names. */
static inline const struct topology_pool *
topology_write_pool_of(const struct topology *t, const char *key, size_t len)
{
    return &t->pools[topology_pool_of(t, key, len)->writes];
}

/* The index in t->backends of key's owner (in the pool it goes to; for a
 * write, the pool its writes go to). */
static inline uint32_t
topology_owner_index_of(const struct topology *t, const char *key,
                        size_t len, bool write)
{
    const struct topology_pool *p = write ? topology_write_pool_of(t, key, len)
                                          : topology_pool_of(t, key, len);

    return p->idx[ring_lookup(p->ring, key, len)];
}

static inline uint32_t
topology_owner_index(const struct topology *t, const char *key, size_t len)
{
    return topology_owner_index_of(t, key, len, false);
}

/* Ring index in pool p of backend i (an index in t->backends), or
 * UINT32_MAX when p does not have it. */
uint32_t topology_pool_member(const struct topology_pool *p, uint32_t i);
/* Members of pool p that are not UP now. */
uint32_t topology_pool_down(const struct topology_pool *p);
/* Whether more than share `limit` of pool p's members would be down with
 * `down` of them not UP ([health] failover_limit; 1 or more: never). */
static inline bool
topology_pool_over_limit(const struct topology_pool *p, uint32_t down,
                         double limit)
{
    return limit < 1.0 && (double)down > limit * (double)p->n;
}
/* The first pool (in config order) that has backend i, or NULL. */
const struct topology_pool *topology_first_pool(const struct topology *t,
                                                uint32_t i);
/* Share of the key space of backend i's first pool that it owns (0 in
 * none). */
double topology_share(const struct topology *t, uint32_t i);

/* The largest share of a pool's keys whose owner differs between a and
 * b, over the pools (by name) both have; 0 when none. */
double topology_moved_share(const struct topology *a,
                            const struct topology *b);

/* The pool called name, or NULL. */
const struct topology_pool *topology_pool_named(const struct topology *t,
                                                const char *name);
/* The name of pool p. */
const char *topology_pool_name(const struct topology_pool *p);
struct topology *topology_ref(struct topology *t);

/*
 * t itself when it has no origin, else a copy of it without one (its
 * config cloned, its ring rebuilt, the same backends): a snapshot that can
 * be an origin. A new reference, or NULL with err.
 */
struct topology *topology_without_origin(struct topology *t, char *err,
                                         size_t errlen);

/*
 * Makes origin (a reference is taken; it must have no origin itself)
 * t->origin[o], before t is published.
 */
void topology_set_origin(struct topology *t, unsigned o,
                         struct topology *origin);

/* A previous owner of a key: which origin, the backend's index there. */
struct topology_prev {
    struct backend *be;
    uint32_t origin;
    uint32_t idx;
};

/*
 * The previous owners of key during a move, given its current owner: for
 * each origin of t, the backend that owned the key there (for a write: in
 * the pool writes went to there) when that is another backend that is
 * still in t and not tainted (see struct topology), each once. Returns how
 * many (0 when t has no origin; inline: one branch per key when nothing
 * moves).
 */
static inline unsigned
topology_prev_owners(const struct topology *t, const char *key, size_t len,
                     const struct backend *owner, bool write,
                     struct topology_prev out[TOPOLOGY_ORIGINS])
{
    unsigned n = 0;

    for (unsigned o = 0; o < TOPOLOGY_ORIGINS && t->origin[o] != NULL; o++) {
        uint32_t i = topology_owner_index_of(t->origin[o], key, len, write);
        struct backend *p = t->prev[o][i];

        if (p == owner || p == NULL || (n > 0 && out[0].be == p) ||
            atomic_load_explicit(&t->origin[o]->tainted[i],
                                 memory_order_relaxed)) {
            continue;
        }
        out[n++] = (struct topology_prev){p, o, i};
    }
    return n;
}

/* The previous owner p of t may hold stale values: see tainted. */
static inline void
topology_taint(const struct topology *t, const struct topology_prev *p)
{
    atomic_store_explicit(&t->origin[p->origin]->tainted[p->idx], true,
                          memory_order_relaxed);
}
void topology_unref(struct topology *t);

/* The backend called name, or NULL. */
struct backend *topology_find(const struct topology *t, const char *name);
/* Ring index of the backend with that id, or UINT32_MAX. */
uint32_t topology_index_of(const struct topology *t, uint32_t id);

/* Bytes of heap the snapshot holds (ring, table, config), not counting the
 * backend objects it shares with other snapshots. */
size_t topology_memory(const struct topology *t);

#endif
