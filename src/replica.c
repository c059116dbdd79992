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
                      size_t len, const struct backend *primary, bool note,
                      unsigned *missed, struct backend **out)
{
    struct backend *set[CONFIG_REPLICAS_MAX];
    unsigned n = replica_set(p, key, len, set), k = 0;

    *missed = 0;
    for (unsigned i = 0; i < n; i++) {
        struct backend *be = set[i];
        int state = backend_state(be);

        if (be == primary) {
            continue;
        }
        if (state == BACKEND_UP || state == BACKEND_RECOVERING) {
            out[k++] = be;
        } else if (!note) {
            ++*missed;
        } else if (!recovery_note_unless(be->recovery, &be->state,
                                         BACKEND_UP, key, len, be->id)) {
            out[k++] = be; /* it came back meanwhile */
        } else {
            /* Nothing is sent to it: the note is complete now. */
            recovery_write_done(be->recovery, key, len, be->id);
        }
    }
    return k;
}

/* Whether meta flag token t (len bytes) only shapes the reply: left out
 * of a replica's line, so that it answers one line (no q, no value). */
static bool
replica_reply_flag(const char *t, size_t len)
{
    return len >= 1 && (t[0] == 'q' || t[0] == 'O' || t[0] == 'k' ||
                        t[0] == 'v' || t[0] == 'c' || t[0] == 't' ||
                        t[0] == 's' || t[0] == 'f' || t[0] == 'h' ||
                        t[0] == 'l');
}

/*
 * The command a replica gets for pr (line/len): written to out. A cas, or
 * a meta write that compares one (C), is a delete: the cas unique is the
 * primary's. Returns whether it is such a delete (no data block follows).
 */
static bool
replica_line(struct evbuffer *out, const struct proto_req *pr,
             const char *line, size_t len)
{
    bool meta = pr->cmd == PROTO_CMD_MS || pr->cmd == PROTO_CMD_MD ||
                pr->cmd == PROTO_CMD_MA;
    const char *p = line, *end = line + len;
    struct proto_str tok;
    bool cas = pr->cmd == PROTO_CMD_CAS;
    uint32_t idx = 0;

    if (!meta) {
        if (cas) {
            evbuffer_add_printf(out, "delete %.*s\r\n", (int)pr->key.len,
                                pr->key.p);
            return true;
        }
        evbuffer_add(out, line, proto_strip_noreply(line, len, pr->noreply));
        evbuffer_add(out, "\r\n", 2);
        return false;
    }
    while (proto_next_key(&p, end, &tok)) {
        cas = cas || (idx++ >= pr->meta_flags && tok.p[0] == 'C');
    }
    if (cas) {
        evbuffer_add_printf(out, "md %.*s%s\r\n", (int)pr->key.len,
                            pr->key.p, pr->meta_b64 ? " b" : "");
        return true;
    }
    p = line;
    idx = 0;
    while (proto_next_key(&p, end, &tok)) {
        if (idx++ >= pr->meta_flags && replica_reply_flag(tok.p, tok.len)) {
            continue;
        }
        evbuffer_add(out, idx > 1 ? " " : "", idx > 1);
        evbuffer_add(out, tok.p, tok.len);
    }
    evbuffer_add(out, "\r\n", 2);
    return false;
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

int
replica_send_writes(struct request *req, const struct proto_req *pr,
                    const struct proto_str *key, const char *line, size_t len,
                    struct evbuffer *data, size_t skip,
                    const struct backend *primary)
{
    struct worker *w = req->worker;
    const struct topology_pool *p =
        topology_pool_of(req->wt->t, key->p, key->len);
    struct backend *to[CONFIG_REPLICAS_MAX];
    bool storage = pr->cmd == PROTO_CMD_MS ||
                   (proto_cmd_is_storage(pr->cmd) && pr->cmd != PROTO_CMD_CAS);
    unsigned n, missed, sent = 0;

    if (p->replicas < 2) {
        return 0;
    }
    n = replica_write_targets(p, key->p, key->len, primary,
                              proto_key_classic(key->p, key->len), &missed,
                              to);
    if (missed > 0) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    /* Its recovery names it: the key itself. */
    request_keep_key(req, key);
    for (unsigned i = 0; i < n; i++) {
        struct worker_backend *wb = worker_wb(w, to[i]);
        struct bconn *bc = route_pick(w, wb);
        struct evbuffer *out = bconn_output(bc);
        bool del;

        stats_add(&w->stats.replica_writes, 1);
        if (out == NULL) {
            stats_backend_error(wb->stats, &wb->stats->errors_unavailable);
            stats_add(&w->stats.replica_write_failures, 1);
            if (proto_key_classic(key->p, key->len)) {
                recovery_note(to[i]->recovery, req->keys[0].p,
                              req->keys[0].len, to[i]->id);
            }
            continue;
        }
        del = replica_line(out, pr, line, len);
        if (storage && !del) {
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
    return (int)sent;
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
