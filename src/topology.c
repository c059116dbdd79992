/* SPDX-License-Identifier: BSD-3-Clause */
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

/* Pool i of t->cfg: its ring and its members' places. */
static int
topology_build_pool(struct topology *t, uint32_t i, char *err, size_t errlen)
{
    struct topology_pool *p = &t->pools[i];
    const struct config_pool *cp = &t->cfg->pools[i];

    p->cfg = cp;
    p->n = (uint32_t)cp->nmembers;
    p->idx = util_xcalloc(p->n ? p->n : 1, sizeof(*p->idx));
    p->be = util_xcalloc(p->n ? p->n : 1, sizeof(*p->be));
    p->ring = config_build_pool_ring(t->cfg, i, p->idx, err, errlen);
    if (p->ring == NULL) {
        return -1;
    }
    for (uint32_t j = 0; j < p->n; j++) {
        p->be[j] = t->backends[p->idx[j]];
    }
    p->replicas = cp->replicas < p->n ? cp->replicas : p->n;
    t->replicated = t->replicated || p->replicas > 1;
    t->spread = t->spread || (p->replicas > 1 && cp->hotkey_spread);
    t->rated = t->rated || cp->rate > 0;
    p->shadow = UINT32_MAX;
    if (cp->shadow != NULL) {
        p->shadow = (uint32_t)config_pool_index(t->cfg, cp->shadow);
        /* 2^64 * share, but 1 (which would not fit) is every key. */
        p->shadow_cut = cp->shadow_share >= 1.0
                            ? UINT64_MAX
                            : (uint64_t)(cp->shadow_share * 0x1p64);
        t->shadowed = true;
    }
    p->writes = cp->writes != NULL
                    ? (uint32_t)config_pool_index(t->cfg, cp->writes)
                    : i;
    if (p->writes >= t->cfg->npools) {
        p->writes = i; /* cannot happen: the config was checked */
    }
    if (cp->deletes != NULL) {
        int idx[CONFIG_POOLS_MAX];
        size_t n = config_pool_deletes(t->cfg, cp, idx, CONFIG_POOLS_MAX);

        p->deletes = util_xcalloc(n ? n : 1, sizeof(*p->deletes));
        t->fanout = t->fanout || n > 0;
        for (size_t k = 0; k < n; k++) {
            p->deletes[p->ndeletes++] = (uint32_t)idx[k];
        }
    }
    return 0;
}

/* Route r of t->cfg (NULL: keys to the default pool) into out. */
static void
topology_build_route(struct topology *t, const struct config_route *r,
                     struct topology_route *out)
{
    const struct config *cfg = t->cfg;

    *out = (struct topology_route){NULL, 0,
                                   (uint32_t)config_default_pool(cfg), NULL,
                                   0};
    if (r == NULL) {
        return;
    }
    out->prefix = r->prefix;
    out->len = strlen(r->prefix);
    out->pool = (uint32_t)config_route_pool(cfg, r);
    if (r->local_first) {
        out->remote = util_xcalloc(CONFIG_POOLS_MAX, sizeof(*out->remote));
        out->nremote = (uint32_t)config_route_remotes(cfg, r, out->remote);
        t->regional = true;
    }
}

/* The routes of t->cfg but "*", which is t->def. */
static void
topology_build_routes(struct topology *t)
{
    const struct config *cfg = t->cfg;

    topology_build_route(t, config_default_route(cfg), &t->def);
    t->routes = util_xcalloc(cfg->nroutes ? cfg->nroutes : 1,
                             sizeof(*t->routes));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (cfg->routes[i].prefix[0] != '\0') {
            topology_build_route(t, &cfg->routes[i],
                                 &t->routes[t->nroutes++]);
        }
    }
}

struct topology *
topology_create(uint64_t generation, struct config *cfg,
                struct backend **backends, char *err, size_t errlen)
{
    struct topology *t = util_xcalloc(1, sizeof(*t));

    atomic_init(&t->refs, 1);
    t->generation = generation;
    t->cfg = cfg;
    t->derived = cfg->big_value_split > 0;
    t->n = (uint32_t)cfg->nbackends;
    t->backends = util_xcalloc(t->n ? t->n : 1, sizeof(*t->backends));
    t->tainted = util_xcalloc(t->n ? t->n : 1, sizeof(*t->tainted));
    for (uint32_t i = 0; i < t->n; i++) {
        t->backends[i] = backends[i];
        if (backends[i]->id >= t->id_limit) {
            t->id_limit = backends[i]->id + 1;
        }
    }
    if (config_default_pool(cfg) < 0) {
        snprintf(err, errlen, "no pool for keys that match no route");
        topology_unref(t);
        return NULL;
    }
    t->npools = (uint32_t)cfg->npools;
    t->pools = util_xcalloc(t->npools, sizeof(*t->pools));
    for (uint32_t i = 0; i < t->npools; i++) {
        if (topology_build_pool(t, i, err, errlen) != 0) {
            topology_unref(t);
            return NULL;
        }
    }
    topology_build_routes(t);
    return t;
}

uint32_t
topology_pool_member(const struct topology_pool *p, uint32_t i)
{
    /* idx ascends: members and backends are both sorted by name. */
    uint32_t lo = 0, hi = p->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (p->idx[mid] == i) {
            return mid;
        }
        if (p->idx[mid] < i) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return UINT32_MAX;
}

uint32_t
topology_pool_down(const struct topology_pool *p)
{
    uint32_t n = 0;

    for (uint32_t j = 0; j < p->n; j++) {
        n += !backend_is_up(p->be[j]);
    }
    return n;
}

const struct topology_pool *
topology_first_pool(const struct topology *t, uint32_t i)
{
    for (uint32_t k = 0; k < t->npools; k++) {
        if (topology_pool_member(&t->pools[k], i) != UINT32_MAX) {
            return &t->pools[k];
        }
    }
    return NULL;
}

double
topology_share(const struct topology *t, uint32_t i)
{
    const struct topology_pool *p = topology_first_pool(t, i);

    return p != NULL
               ? ring_backend_arc_share(p->ring, topology_pool_member(p, i))
               : 0.0;
}

double
topology_moved_share(const struct topology *a, const struct topology *b)
{
    double most = 0.0;

    for (uint32_t i = 0; i < b->npools; i++) {
        const struct topology_pool *pa =
            topology_pool_named(a, topology_pool_name(&b->pools[i]));
        double m = pa != NULL ? ring_moved_share(pa->ring, b->pools[i].ring)
                              : 0.0;

        most = m > most ? m : most; /* NAN (another hash) is skipped */
    }
    return most;
}

const struct topology_pool *
topology_pool_named(const struct topology *t, const char *name)
{
    for (uint32_t i = 0; i < t->npools; i++) {
        if (strcmp(t->pools[i].cfg->name, name) == 0) {
            return &t->pools[i];
        }
    }
    return NULL;
}

const char *
topology_pool_name(const struct topology_pool *p)
{
    return p->cfg->name;
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
    for (uint32_t i = 0; t->pools != NULL && i < t->cfg->npools; i++) {
        ring_destroy(t->pools[i].ring);
        free(t->pools[i].idx);
        free(t->pools[i].be);
        free(t->pools[i].deletes);
    }
    free(t->pools);
    for (uint32_t i = 0; t->routes != NULL && i < t->nroutes; i++) {
        free(t->routes[i].remote);
    }
    free(t->routes);
    free(t->def.remote);
    config_destroy(t->cfg);
    free(t);
}

struct topology *
topology_without_origin(struct topology *t, char *err, size_t errlen)
{
    struct topology *c;

    if (t->origin[0] == NULL) {
        return topology_ref(t);
    }
    for (uint32_t i = 0; i < t->n; i++) {
        backend_ref(t->backends[i]);
    }
    c = topology_create(t->generation, config_clone(t->cfg), t->backends,
                        err, errlen);
    for (uint32_t i = 0; c != NULL && i < c->npools; i++) {
        c->pools[i].id = t->pools[i].id;
    }
    return c;
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
    size_t n = sizeof(*t) + t->n * sizeof(*t->backends);

    for (uint32_t i = 0; i < t->npools; i++) {
        n += sizeof(t->pools[i]) + ring_memory(t->pools[i].ring) +
             t->pools[i].n * (sizeof(uint32_t) + sizeof(struct backend *));
    }
    n += sizeof(*t->cfg) + t->cfg->nbackends * sizeof(*t->cfg->backends);
    for (size_t i = 0; i < t->cfg->nbackends; i++) {
        n += strlen(t->cfg->backends[i].name) + 1 +
             strlen(t->cfg->backends[i].host) + 1;
    }
    return n;
}
