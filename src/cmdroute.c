/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmdroute: see cmdroute.h.
 *
 * A delete for other pools goes where a read of the key in each of them
 * would go, so that no pool serves a value the client deleted: to its UP
 * replicas (the owner alone in a pool without replicas), to a RECOVERING
 * one (which may still hold an old value) and to the fallback that serves
 * its reads meanwhile, and for one that is DOWN to that fallback, the key
 * noted in the DOWN backend's recovery log (with the fallback, as for a
 * write on its behalf) so that the recovery pass deletes it there before
 * the backend serves again. A delete that fails is noted the same way, on
 * the backend that failed it: a recovery pass of an UP backend with notes
 * runs at its next health check (health.c).
 *
 * The client's answer is its own pool's (its writes pool's), once every
 * pool has answered.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "backend.h"
#include "bconn.h"
#include "cmdroute.h"
#include "config.h"
#include "recovery.h"
#include "replica.h"
#include "request.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "worker.h"

uint32_t
cmdroute_delete_frags(const struct topology *t, const struct proto_str *key)
{
    if (!t->fanout) {
        return 0; /* no pool has deletes =: no look-up per delete */
    }
    return topology_pool_of(t, key->p, key->len)->ndeletes * 2 *
           CONFIG_REPLICAS_MAX;
}

/* Adds b to the n backends of to unless it is there. */
static unsigned
cmdroute_add(struct backend **to, unsigned n, struct backend *b)
{
    for (unsigned i = 0; i < n; i++) {
        if (to[i] == b) {
            return n;
        }
    }
    to[n] = b;
    return n + 1;
}

/*
 * Where a delete of key in pool p goes (into to, at most 2 *
 * CONFIG_REPLICAS_MAX): see the head; a DOWN backend has the key noted
 * when it can be named (classic). With check, nothing is sent or noted:
 * -1 when a backend is DOWN.
 */
static int
cmdroute_targets(struct worker *w, const struct topology_pool *p,
                 const struct proto_str *key, bool check, bool classic,
                 struct backend **to)
{
    struct backend *set[CONFIG_REPLICAS_MAX];
    unsigned n = replica_set(p, key->p, key->len, set), k = 0;

    for (unsigned i = 0; i < n; i++) {
        struct backend *r = set[i], *fb;
        int state = backend_state(r);

        if (state == BACKEND_UP) {
            k = cmdroute_add(to, k, r);
            continue;
        }
        if (check) {
            if (state != BACKEND_RECOVERING) {
                return -1;
            }
            continue;
        }
        fb = route_fallback(w, p, key->p, key->len, r);
        if (state == BACKEND_RECOVERING) {
            k = cmdroute_add(to, k, r);
        } else if (classic) {
            recovery_note(r->recovery, key->p, key->len,
                          fb != NULL ? fb->id : r->id);
        }
        if (fb != NULL) {
            k = cmdroute_add(to, k, fb);
        }
    }
    return (int)k;
}

int
cmdroute_send_deletes(struct request *req, const struct proto_req *pr,
                      const struct proto_str *key)
{
    struct worker *w = req->worker;
    const struct topology *t = req->wt->t;
    const struct topology_pool *home = topology_pool_of(t, key->p, key->len);
    bool classic = proto_key_classic(key->p, key->len);
    struct backend *to[2 * CONFIG_REPLICAS_MAX];
    int sent = 0;

    if (home->ndeletes == 0) {
        return 0;
    }
    if (!classic) {
        /* Nothing is sent unless all of it can be. */
        for (uint32_t i = 0; i < home->ndeletes; i++) {
            if (cmdroute_targets(w, &t->pools[home->deletes[i]], key, true,
                                 false, to) < 0) {
                return -1;
            }
        }
    }
    /* Its recovery names it: the key itself. */
    request_keep_key(req, key);
    for (uint32_t i = 0; i < home->ndeletes; i++) {
        int n = cmdroute_targets(w, &t->pools[home->deletes[i]], key, false,
                                 classic, to);

        for (int k = 0; k < n; k++) {
            struct bconn *bc = route_pick(w, worker_wb(w, to[k]));
            struct evbuffer *out = bconn_output(bc);

            stats_add(&w->stats.pool_deletes, 1);
            if (out == NULL) {
                (void)bconn_refuse(bc);
                stats_add(&w->stats.pool_delete_failures, 1);
                if (classic) {
                    recovery_note(to[k]->recovery, key->p, key->len,
                                  to[k]->id);
                }
                continue;
            }
            if (pr->cmd == PROTO_CMD_MD) {
                evbuffer_add(out, "md ", 3);
                evbuffer_add(out, pr->key.p, pr->key.len);
                evbuffer_add(out, pr->meta_b64 ? " b\r\n" : "\r\n",
                             pr->meta_b64 ? 4 : 2);
            } else {
                evbuffer_add(out, "delete ", 7);
                evbuffer_add(out, key->p, key->len);
                evbuffer_add(out, "\r\n", 2);
            }
            req->pending++;
            bconn_enqueue(bc, request_frag_init(req, FRAG_POOL_DELETE, to[k]));
            sent++;
        }
    }
    return sent;
}

void
cmdroute_frag_done(struct frag *f, bool ok)
{
    struct request *req = f->req;

    if (!ok) {
        stats_add(&req->worker->stats.pool_delete_failures, 1);
        if (proto_key_classic(req->keys[0].p, req->keys[0].len)) {
            recovery_note(f->be->recovery, req->keys[0].p, req->keys[0].len,
                          f->be->id);
        }
    }
}
