/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * route: where a request goes, in the topology it was routed with.
 *
 *   route_key()    owner from the ring; when it is not UP, the next UP
 *                  backend clockwise (the deterministic fallback walk)
 *   route_pick()   which of the worker's connections to that backend
 *   route_write()  the failover write policy: a write for a key whose
 *                  owner is not UP goes to the fallback and is remembered
 *                  in the owner's recovery log (its exptime capped at
 *                  failover_ttl), or, while the owner is RECOVERING, also
 *                  deletes the key on the owner; if the owner came back
 *                  meanwhile the write goes to it instead
 *
 * Everything here runs on the worker, lock-free but for the recovery
 * log's mutex on the failover path (never in the steady state).
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <xxhash.h>

#include "backend.h"
#include "bconn.h"
#include "config.h"
#include "recovery.h"
#include "replica.h"
#include "ring.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "worker.h"


static bool
route_backend_up(uint32_t b, void *arg)
{
    const struct topology_pool *p = arg;

    return backend_is_up(p->be[b]);
}

struct backend *
route_fallback(struct worker *w, const struct topology_pool *p,
               const char *key, size_t len, struct backend *owner)
{
    struct stats_backend *s = worker_wb(w, owner)->stats;
    uint32_t b;

    if (w->cfg->failover_limit < 1.0 &&
        topology_pool_over_limit(p, topology_pool_down(p),
                                 w->cfg->failover_limit)) {
        /* Too many down at once: their load would sink the rest. */
        stats_add(&s->failovers_refused, 1);
        return NULL;
    }
    stats_add(&s->failovers, 1);
    b = ring_route(p->ring, key, len, route_backend_up, (void *)p);
    return b == RING_NONE ? NULL : p->be[b];
}

struct backend *
route_spread(struct worker *w, const struct topology *t, const char *key,
             size_t len, struct backend *b)
{
    const struct topology_pool *p = topology_pool_of(t, key, len);
    struct backend *set[CONFIG_REPLICAS_MAX];
    struct backend *up[CONFIG_REPLICAS_MAX];
    unsigned n, k = 0;

    if (b == NULL || !p->cfg->hotkey_spread || p->replicas < 2 ||
        !worker_hot_spread(w, XXH3_64bits(key, len))) {
        return b;
    }
    n = replica_set(p, key, len, set);
    for (unsigned i = 0; i < n; i++) {
        if (backend_is_up(set[i])) {
            up[k++] = set[i];
        }
    }
    if (k < 2) {
        return b;
    }
    stats_add(&w->stats.hotkey_spread_reads, 1);
    return up[w->spread_rr++ % k];
}

/*
 * Caps the exptime of a write that goes to a fallback at failover_ttl, so
 * that a copy made during an outage does not outlive it for long.
 */
int64_t
route_cap_exptime(const struct config *cfg, int64_t exptime)
{
    int64_t ttl = cfg->failover_ttl;

    if (ttl == 0 || exptime < 0) {
        return exptime;
    }
    if (exptime == 0) {
        return ttl;
    }
    if (exptime <= 2592000) {
        return exptime < ttl ? exptime : ttl;
    }
    /* An absolute Unix time. */
    return exptime - (int64_t)time(NULL) < ttl ? exptime : ttl;
}

/*
 * Writes the command line to send to a fallback: with the exptime capped
 * (storage, touch) and without noreply. Returns its length.
 */
size_t
route_failover_line(const struct config *cfg, const struct proto_req *pr,
                      const char *line, size_t len, char *buf, size_t cap)
{
    int n;
    int64_t e = route_cap_exptime(cfg, pr->exptime);

    if (proto_cmd_is_storage(pr->cmd)) {
        n = snprintf(buf, cap, "%.*s %.*s %u %lld %u", (int)pr->name.len,
                     pr->name.p, (int)pr->key.len, pr->key.p, pr->flags,
                     (long long)e, pr->vlen);
        if (pr->cmd == PROTO_CMD_CAS && n > 0 && (size_t)n < cap) {
            n += snprintf(buf + n, cap - (size_t)n, " %llu",
                          (unsigned long long)pr->cas);
        }
    } else if (pr->cmd == PROTO_CMD_TOUCH) {
        n = snprintf(buf, cap, "touch %.*s %lld", (int)pr->key.len,
                     pr->key.p, (long long)e);
    } else {
        size_t m = proto_strip_noreply(line, len, pr->noreply);

        n = (int)(m < cap ? m : cap - 1);
        memcpy(buf, line, (size_t)n);
    }
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

void
route_write(struct worker *w, const struct topology *t,
            const struct proto_req *pr, struct route_write *rw)
{
    const struct topology_pool *p =
        topology_write_pool_of(t, pr->key.p, pr->key.len);
    struct backend *owner;
    struct backend *b = route_key_in(w, p, pr->key.p, pr->key.len, &owner);
    struct bconn *obc;

    memset(rw, 0, sizeof(*rw));
    rw->target = b;
    rw->ring_owner = owner;
    if (b == owner || b == NULL) {
        return;
    }
    if (t->replicated && replica_is(p, pr->key.p, pr->key.len, b)) {
        /* Another replica of the key, no stand-in: the owner has the key
         * noted as a replica that missed the write (replica.c). */
        return;
    }
    /*
     * On behalf of a backend that is not UP, remember the write so it can
     * be undone before the owner is routed to again; if the owner came
     * back meanwhile, write to it instead. While the owner is RECOVERING
     * (reads still go to the fallback) the write also deletes the key on
     * the owner and is answered once both are done: the owner then holds
     * no older value, so the write need not keep it out of the ring, and
     * a steady stream of writes cannot hold off its return.
     */
    if (backend_state(owner) == BACKEND_RECOVERING &&
        bconn_output(obc = route_pick(w, worker_wb(w, owner))) != NULL) {
        rw->clean = true;
        rw->owner_conn = obc;
    } else if (!recovery_note_unless(owner->recovery, &owner->state,
                                     BACKEND_UP, pr->key.p, pr->key.len,
                                     b->id)) {
        rw->target = owner;
        return;
    }
    rw->owner = owner;
}

void
route_write_done(struct backend *owner, bool clean, const char *key,
                 size_t len, const struct backend *fallback)
{
    if (clean) {
        recovery_note_clean(owner->recovery, key, len, fallback->id);
    } else {
        recovery_write_done(owner->recovery, key, len, fallback->id);
    }
}

void
route_owner_delete_failed(struct backend *owner, const char *key, size_t len,
                          const struct backend *fallback)
{
    recovery_note(owner->recovery, key, len, fallback->id);
}
