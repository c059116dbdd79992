/*
 * replica: see replica.h.
 *
 * A replica that misses writes while it is out is noted with itself as the
 * "fallback" of its recovery log entry: the recovery pass then deletes the
 * key on that backend only, not on the other replicas, which hold the
 * current value rightfully. A key noted in the log of a backend that is UP
 * starts a pass at its next health check (health.c), which is how a failed
 * write to a serving replica is undone.
 */
#include "autoconf.h"

#include <event2/buffer.h>

#include "backend.h"
#include "bconn.h"
#include "recovery.h"
#include "replica.h"
#include "request.h"
#include "ring.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "worker.h"

unsigned
replica_set(const struct topology_pool *p, const char *key, size_t len,
            struct backend **out)
{
    uint32_t order[CONFIG_REPLICAS_MAX];
    uint32_t point = ring_point_at(p->ring, ring_key_pos(p->ring, key, len));
    size_t n = ring_walk(p->ring, point, NULL, NULL, order,
                         p->replicas < CONFIG_REPLICAS_MAX
                             ? p->replicas
                             : CONFIG_REPLICAS_MAX);

    for (size_t i = 0; i < n; i++) {
        out[i] = p->be[order[i]];
    }
    return (unsigned)n;
}

bool
replica_is(const struct topology_pool *p, const char *key, size_t len,
           const struct backend *be)
{
    struct backend *set[CONFIG_REPLICAS_MAX];
    unsigned n = replica_set(p, key, len, set);

    for (unsigned i = 0; i < n; i++) {
        if (set[i] == be) {
            return true;
        }
    }
    return false;
}

unsigned
replica_write_targets(const struct topology_pool *p, const char *key,
                      size_t len, const struct backend *primary,
                      struct backend **out)
{
    struct backend *set[CONFIG_REPLICAS_MAX];
    unsigned n = replica_set(p, key, len, set), k = 0;

    for (unsigned i = 0; i < n; i++) {
        struct backend *be = set[i];
        int state = backend_state(be);

        if (be == primary) {
            continue;
        }
        if (state == BACKEND_UP || state == BACKEND_RECOVERING ||
            !recovery_note_unless(be->recovery, &be->state, BACKEND_UP, key,
                                  len, be->id)) {
            out[k++] = be;
            continue;
        }
        /* Nothing is sent to it: the note is complete now. */
        recovery_write_done(be->recovery, key, len, be->id);
    }
    return k;
}

struct backend *
replica_next_read(const struct topology_pool *p, const char *key, size_t len,
                  const struct backend *b)
{
    struct backend *set[CONFIG_REPLICAS_MAX];
    unsigned n = replica_set(p, key, len, set);
    bool after = false;

    for (unsigned i = 0; i < n; i++) {
        if (after && backend_is_up(set[i])) {
            return set[i];
        }
        after = after || set[i] == b;
    }
    return NULL;
}

unsigned
replica_send_writes(struct request *req, const struct proto_req *pr,
                    const char *line, size_t len, struct evbuffer *data,
                    size_t skip, const struct backend *primary)
{
    struct worker *w = req->worker;
    const struct topology_pool *p =
        topology_pool_of(req->wt->t, pr->key.p, pr->key.len);
    struct backend *to[CONFIG_REPLICAS_MAX];
    bool storage = proto_cmd_is_storage(pr->cmd) && pr->cmd != PROTO_CMD_CAS;
    unsigned n, sent = 0;

    if (p->replicas < 2) {
        return 0;
    }
    n = replica_write_targets(p, pr->key.p, pr->key.len, primary, to);
    if (n == 0) {
        return 0;
    }
    /* Room for their fragments is the caller's (none may move once
     * queued). */
    request_keep_key(req, &pr->key);
    for (unsigned i = 0; i < n; i++) {
        struct worker_backend *wb = worker_wb(w, to[i]);
        struct bconn *bc = route_pick(w, wb);
        struct evbuffer *out = bconn_output(bc);

        stats_add(&w->stats.replica_writes, 1);
        if (out == NULL) {
            stats_backend_error(wb->stats, &wb->stats->errors_unavailable);
            stats_add(&w->stats.replica_write_failures, 1);
            recovery_note(to[i]->recovery, req->keys[0].p, req->keys[0].len,
                          to[i]->id);
            continue;
        }
        if (pr->cmd == PROTO_CMD_CAS) {
            /* Its cas unique is the primary's: the others drop the key. */
            evbuffer_add_printf(out, "delete %.*s\r\n", (int)req->keys[0].len,
                                req->keys[0].p);
        } else {
            evbuffer_add(out, line,
                         proto_strip_noreply(line, len, pr->noreply));
            evbuffer_add(out, "\r\n", 2);
        }
        if (storage) {
            struct evbuffer_ptr at;
            struct evbuffer_iovec v;
            size_t block = (size_t)pr->vlen + 2;

            evbuffer_ptr_set(data, &at, skip, EVBUFFER_PTR_SET);
            if (evbuffer_reserve_space(out, (ev_ssize_t)block, &v, 1) < 1 ||
                evbuffer_copyout_from(data, &at, v.iov_base, block) !=
                    (ev_ssize_t)block) {
                continue; /* cannot happen: the block is all in data */
            }
            v.iov_len = block;
            evbuffer_commit_space(out, &v, 1);
        }
        req->pending++;
        bconn_enqueue(bc, request_frag_init(req, FRAG_REPLICA, to[i]));
        sent++;
    }
    return sent;
}

void
replica_frag_done(struct frag *f, bool ok)
{
    struct request *req = f->req;

    if (!ok) {
        stats_add(&req->worker->stats.replica_write_failures, 1);
        recovery_note(f->be->recovery, req->keys[0].p, req->keys[0].len,
                      f->be->id);
    }
}
