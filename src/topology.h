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
#include <stddef.h>
#include <stdint.h>

struct config;
struct ring;
struct backend;

struct topology {
    _Atomic uint32_t refs;
    uint64_t generation;            /* 1 for the first, then +1 */
    struct config *cfg;             /* owned */
    struct ring *ring;              /* owned */
    struct backend **backends;      /* [n], a reference each */
    uint32_t n;
    uint32_t id_limit;              /* every backend id is below this */
};

/*
 * A snapshot of cfg and ring (both taken, also on failure: none) with
 * backends[0..cfg->nbackends), whose references are taken too. The caller
 * holds the one reference.
 */
struct topology *topology_create(uint64_t generation, struct config *cfg,
                                 struct ring *ring, struct backend **backends);
struct topology *topology_ref(struct topology *t);
void topology_unref(struct topology *t);

/* The backend called name, or NULL. */
struct backend *topology_find(const struct topology *t, const char *name);
/* Ring index of the backend with that id, or UINT32_MAX. */
uint32_t topology_index_of(const struct topology *t, uint32_t id);

/* Bytes of heap the snapshot holds (ring, table, config), not counting the
 * backend objects it shares with other snapshots. */
size_t topology_memory(const struct topology *t);

#endif
