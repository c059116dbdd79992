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

#define TOPOLOGY_ORIGINS 2

struct topology {
    _Atomic uint32_t refs;
    uint64_t generation;            /* 1 for the first, then +1 */
    struct config *cfg;             /* owned */
    struct ring *ring;              /* owned */
    struct backend **backends;      /* [n], a reference each */
    uint32_t n;
    uint32_t id_limit;              /* every backend id is below this */
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
 * each origin of t, the backend that owned the key there when that is
 * another backend that is still in t and not tainted (see struct
 * topology), each once. Returns how many (0 when t has no origin; inline:
 * one branch per key when nothing moves).
 */
static inline unsigned
topology_prev_owners(const struct topology *t, const char *key, size_t len,
                     const struct backend *owner,
                     struct topology_prev out[TOPOLOGY_ORIGINS])
{
    unsigned n = 0;

    for (unsigned o = 0; o < TOPOLOGY_ORIGINS && t->origin[o] != NULL; o++) {
        uint32_t i = ring_lookup(t->origin[o]->ring, key, len);
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
