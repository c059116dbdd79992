/*
 * topology: see topology.h. References are atomic because a snapshot is
 * dropped by whichever thread lets go of it last: the main thread when it
 * publishes the next one, a worker when its last request routed with it
 * finishes.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "ring.h"
#include "topology.h"
#include "util.h"

struct topology *
topology_create(uint64_t generation, struct config *cfg, struct ring *ring,
                struct backend **backends)
{
    struct topology *t = util_xcalloc(1, sizeof(*t));

    atomic_init(&t->refs, 1);
    t->generation = generation;
    t->cfg = cfg;
    t->ring = ring;
    t->n = (uint32_t)cfg->nbackends;
    t->backends = util_xcalloc(t->n ? t->n : 1, sizeof(*t->backends));
    t->tainted = util_xcalloc(t->n ? t->n : 1, sizeof(*t->tainted));
    for (uint32_t i = 0; i < t->n; i++) {
        t->backends[i] = backends[i];
        if (backends[i]->id >= t->id_limit) {
            t->id_limit = backends[i]->id + 1;
        }
    }
    return t;
}

struct topology *
topology_ref(struct topology *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void
topology_unref(struct topology *t)
{
    if (t == NULL ||
        atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        backend_unref(t->backends[i]);
    }
    free(t->backends);
    free(t->tainted);
    for (unsigned o = 0; o < TOPOLOGY_ORIGINS; o++) {
        free(t->prev[o]);
        topology_unref(t->origin[o]);
    }
    ring_destroy(t->ring);
    config_destroy(t->cfg);
    free(t);
}

struct topology *
topology_without_origin(struct topology *t, char *err, size_t errlen)
{
    struct config *cfg;
    struct ring *ring;

    if (t->origin[0] == NULL) {
        return topology_ref(t);
    }
    cfg = config_clone(t->cfg);
    ring = config_build_ring(cfg, err, errlen);
    if (ring == NULL) {
        config_destroy(cfg);
        return NULL;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        backend_ref(t->backends[i]);
    }
    return topology_create(t->generation, cfg, ring, t->backends);
}

void
topology_set_origin(struct topology *t, unsigned o, struct topology *origin)
{
    t->origin[o] = topology_ref(origin);
    t->prev[o] = util_xcalloc(origin->n ? origin->n : 1, sizeof(*t->prev[o]));
    for (uint32_t i = 0; i < origin->n; i++) {
        if (topology_index_of(t, origin->backends[i]->id) != UINT32_MAX) {
            t->prev[o][i] = origin->backends[i];
        }
    }
}

struct backend *
topology_find(const struct topology *t, const char *name)
{
    for (uint32_t i = 0; i < t->n; i++) {
        if (strcmp(t->backends[i]->name, name) == 0) {
            return t->backends[i];
        }
    }
    return NULL;
}

uint32_t
topology_index_of(const struct topology *t, uint32_t id)
{
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->backends[i]->id == id) {
            return i;
        }
    }
    return UINT32_MAX;
}

size_t
topology_memory(const struct topology *t)
{
    size_t n = sizeof(*t) + t->n * sizeof(*t->backends) + ring_memory(t->ring);

    n += sizeof(*t->cfg) + t->cfg->nbackends * sizeof(*t->cfg->backends);
    for (size_t i = 0; i < t->cfg->nbackends; i++) {
        n += strlen(t->cfg->backends[i].name) + 1 +
             strlen(t->cfg->backends[i].host) + 1;
    }
    return n;
}
