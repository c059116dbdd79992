/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backend: see backend.h.
 *
 * Invariants:
 *   - set->used[id] is set exactly while a backend object with that id
 *     exists; ids are taken lowest first, so they stay dense and every
 *     per-worker table keyed by id stays small.
 *   - the last backend_unref() frees the object wherever it runs (main
 *     thread or a worker); by then the health checker has let go of it
 *     (it holds a reference while be->health is set).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "net.h"
#include "config.h"
#include "log.h"
#include "recovery.h"
#include "util.h"

void
backend_set_init(struct backend_set *s, unsigned nworkers,
                 backend_down_fn on_down, void *arg)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->nworkers = nworkers;
    s->on_down = on_down;
    s->on_down_arg = arg;
}

void
backend_set_deinit(struct backend_set *s)
{
    if (s->live != 0) {
        log_warn("%u backend objects still referenced at exit", s->live);
    }
    free(s->used);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof(*s));
}

static int
backend_take_id(struct backend_set *s, uint32_t *id)
{
    uint32_t i;

    pthread_mutex_lock(&s->lock);
    for (i = 0; i < s->cap && s->used[i]; i++) {
    }
    if (i == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;

        if (cap > RING_MAX_BACKENDS * 2) {
            pthread_mutex_unlock(&s->lock);
            return -1;
        }
        s->used = realloc(s->used, cap);
        if (s->used == NULL) {
            log_error("out of memory");
            abort();
        }
        memset(s->used + s->cap, 0, cap - s->cap);
        s->cap = cap;
    }
    s->used[i] = 1;
    s->live++;
    pthread_mutex_unlock(&s->lock);
    *id = i;
    return 0;
}

struct backend *
backend_create(struct backend_set *s, const struct config_backend *cb,
               enum backend_state state, size_t recovery_log, char *err,
               size_t errlen)
{
    struct backend *be;
    size_t ssize = sizeof(struct stats_backend) * (s->nworkers ? s->nworkers
                                                               : 1);
    uint32_t id;

    if (backend_take_id(s, &id) != 0) {
        snprintf(err, errlen, "too many backends");
        return NULL;
    }
    be = aligned_alloc(_Alignof(struct backend),
                       (sizeof(*be) + _Alignof(struct backend) - 1) /
                           _Alignof(struct backend) *
                           _Alignof(struct backend));
    if (be == NULL) {
        log_error("out of memory");
        abort();
    }
    memset(be, 0, sizeof(*be));
    be->stats = aligned_alloc(_Alignof(struct stats_backend), ssize);
    if (be->stats == NULL) {
        log_error("out of memory");
        abort();
    }
    memset(be->stats, 0, ssize);
    be->id = id;
    atomic_init(&be->refs, 1);
    be->set = s;
    be->name = util_xstrdup(cb->name);
    be->host = util_xstrdup(cb->host);
    be->port = cb->port;
    be->tls = cb->tls;
    (void)net_format_hostport(cb->host, cb->port, be->addr, sizeof(be->addr));
    pthread_mutex_init(&be->addr_lock, NULL);
    memcpy(&be->sa, &cb->addr, sizeof(be->sa));
    be->salen = cb->addrlen;
    be->named = cb->addrlen == 0;
    atomic_init(&be->state, (int)state);
    atomic_init(&be->since, (int64_t)time(NULL));
    be->recovery = recovery_create(recovery_log);
    if (be->recovery == NULL) {
        log_error("out of memory");
        abort();
    }
    return be;
}

struct backend *
backend_ref(struct backend *be)
{
    atomic_fetch_add_explicit(&be->refs, 1, memory_order_relaxed);
    return be;
}

void
backend_unref(struct backend *be)
{
    struct backend_set *s;

    if (be == NULL ||
        atomic_fetch_sub_explicit(&be->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    s = be->set;
    log_debug("backend %s (%s): freed (id %u)", be->name, be->addr, be->id);
    recovery_destroy(be->recovery);
    pthread_mutex_destroy(&be->addr_lock);
    free(be->stats);
    free(be->name);
    free(be->host);
    pthread_mutex_lock(&s->lock);
    s->used[be->id] = 0;
    s->live--;
    pthread_mutex_unlock(&s->lock);
    free(be);
}

const char *
backend_state_name(int state)
{
    switch (state) {
    case BACKEND_UP:
        return "UP";
    case BACKEND_DOWN:
        return "DOWN";
    case BACKEND_RECOVERING:
        return "RECOVERING";
    case BACKEND_NEW:
        return "NEW";
    case BACKEND_MAINT:
        return "MAINT";
    default:
        return "?";
    }
}

void
backend_changed(struct backend *be, int from, int to, const char *reason)
{
    atomic_store(&be->since, (int64_t)time(NULL));
    atomic_fetch_add(&be->transitions, 1);
    log_notice("backend %s (%s): %s -> %s: %s", be->name, be->addr,
               backend_state_name(from), backend_state_name(to), reason);
    /* Whatever is queued on it now would only wait for a timeout. */
    if ((from == BACKEND_UP || from == BACKEND_RECOVERING) &&
        (to == BACKEND_DOWN || to == BACKEND_MAINT) &&
        be->set->on_down != NULL) {
        be->set->on_down(be, be->set->on_down_arg);
    }
}

bool
backend_set_state(struct backend *be, int from, int to, const char *reason)
{
    if (!atomic_compare_exchange_strong(&be->state, &from, to)) {
        return false;
    }
    backend_changed(be, from, to, reason);
    return true;
}

void
backend_failed(struct backend *be, const char *reason)
{
    if (!backend_set_state(be, BACKEND_UP, BACKEND_DOWN, reason)) {
        backend_set_state(be, BACKEND_RECOVERING, BACKEND_DOWN, reason);
    }
}

void
backend_timeout(struct backend *be)
{
    atomic_fetch_add(&be->soft_failures, 1);
}

bool
backend_address(struct backend *be, struct sockaddr_storage *sa,
                 socklen_t *salen)
{
    pthread_mutex_lock(&be->addr_lock);
    *sa = be->sa;
    *salen = be->salen;
    pthread_mutex_unlock(&be->addr_lock);
    return *salen > 0;
}

bool
backend_set_address(struct backend *be, const struct sockaddr_storage *sa,
                    socklen_t salen)
{
    bool changed;

    pthread_mutex_lock(&be->addr_lock);
    changed = salen != be->salen || memcmp(sa, &be->sa, salen) != 0;
    if (changed) {
        memset(&be->sa, 0, sizeof(be->sa));
        memcpy(&be->sa, sa, salen);
        be->salen = salen;
    }
    pthread_mutex_unlock(&be->addr_lock);
    return changed;
}

void
backend_stats_sum(const struct backend *be, struct stats_backend *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < (be->set->nworkers ? be->set->nworkers : 1);
         i++) {
        stats_accumulate(sum, &be->stats[i], stats_backend_defs,
                         stats_nbackend_defs);
        stats_histo_merge(&sum->latency, &be->stats[i].latency);
    }
}
