/*
 * topology: one immutable snapshot of what mcring routes to.
 *
 * A snapshot holds the parsed configuration, the ring built from it and the
 * backend table: backends[i] is the backend object of ring index i (that
 * is, of cfg->backends[i]). The main thread builds a new snapshot for every
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
struct backend;

struct topology {
    _Atomic uint32_t refs;
    uint64_t generation;            /* 1 for the first, then +1 */
    struct config *cfg;             /* owned */
    struct ring *ring;              /* owned */
    struct backend **backends;      /* [n], a reference each */
    uint32_t n;
    uint32_t id_limit;              /* every backend id is below this */
    /*
     * During a move and its warm-up window: the snapshot from before the
     * move began (a reference; it has no origin of its own), whose owner
     * of a key is that key's previous owner. prev[i] is origin backend i
     * when it is in this snapshot too (it can serve warm-up reads and take
     * deletes), else NULL. NULL both when there is no move.
     */
    struct topology *origin;
    struct backend **prev;          /* [origin->n] */
    /* As an origin: tainted[i] is set once a delete that backend i had to
     * take failed or could not be sent, so it may hold a value older than
     * one written since; it serves no more warm-up reads. [n] */
    _Atomic bool *tainted;
};

/*
 * A snapshot of cfg and ring (both taken, also on failure: none) with
 * backends[0..cfg->nbackends), whose references are taken too. The caller
 * holds the one reference.
 */
struct topology *topology_create(uint64_t generation, struct config *cfg,
                                 struct ring *ring, struct backend **backends);
struct topology *topology_ref(struct topology *t);

/*
 * t itself when it has no origin, else a copy of it without one (its
 * config cloned, its ring rebuilt, the same backends): a snapshot that can
 * be an origin. A new reference, or NULL with err.
 */
struct topology *topology_without_origin(struct topology *t, char *err,
                                         size_t errlen);

/*
 * Makes origin (a reference is taken; it must have no origin itself) the
 * snapshot t's keys had their previous owners in, before t is published.
 */
void topology_set_origin(struct topology *t, struct topology *origin);

/*
 * The previous owner of key during a move, given its current owner: the
 * backend that owned it in t's origin, when that is another backend that
 * is still in t and not tainted (see struct topology). NULL otherwise, and
 * always when t has no origin. *idx is its index in the origin. Inline:
 * one branch per key when nothing moves.
 */
static inline struct backend *
topology_prev_owner(const struct topology *t, const char *key, size_t len,
                    const struct backend *owner, uint32_t *idx)
{
    struct backend *p;
    uint32_t i;

    if (t->origin == NULL) {
        return NULL;
    }
    i = ring_lookup(t->origin->ring, key, len);
    p = t->prev[i];
    if (p == owner || p == NULL ||
        atomic_load_explicit(&t->origin->tainted[i], memory_order_relaxed)) {
        return NULL;
    }
    *idx = i;
    return p;
}

/* Backend idx of t's origin may hold stale values: see tainted. */
static inline void
topology_taint(const struct topology *t, uint32_t idx)
{
    atomic_store_explicit(&t->origin->tainted[idx], true,
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
