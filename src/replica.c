/* SPDX-License-Identifier: BSD-3-Clause */
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
#include "net.h"
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

/*
 * Sends pr to pool p's replicas of key that take writes, but primary
 * (NULL: none), as FRAG_REPLICA fragments of into (regional: counted as
 * a remote region's). Returns how many were sent, or -1 (nothing sent)
 * when one is out and the key cannot be noted.
 */
static int
replica_send_pool(struct request *into, const struct topology_pool *p,
                  const struct proto_req *pr, const struct proto_str *key,
                  const char *line, size_t len, struct evbuffer *data,
                  size_t skip, const struct backend *primary, bool regional)
{
    struct worker *w = into->worker;
    struct backend *to[CONFIG_REPLICAS_MAX];
    bool storage = pr->cmd == PROTO_CMD_MS ||
                   (proto_cmd_is_storage(pr->cmd) && pr->cmd != PROTO_CMD_CAS);
    bool classic = proto_key_classic(key->p, key->len);
    _Atomic uint64_t *sent_c =
        regional ? &w->stats.region_writes : &w->stats.replica_writes;
    _Atomic uint64_t *fail_c = regional ? &w->stats.region_write_failures
                                        : &w->stats.replica_write_failures;
    unsigned n, missed, sent = 0;

    n = replica_write_targets(p, key->p, key->len, primary, classic, &missed,
                              to);
    if (missed > 0) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    /* Its recovery names it: the key itself. */
    request_keep_key(into, key);
    for (unsigned i = 0; i < n; i++) {
        struct worker_backend *wb = worker_wb(w, to[i]);
        struct bconn *bc = route_pick(w, wb);
        struct evbuffer *out = classic
                                   ? bconn_output_key(bc, key->p, key->len)
                                   : bconn_output(bc);
        struct frag *f;
        bool del;

        stats_add(sent_c, 1);
        if (out == NULL) {
            (void)bconn_refuse(bc);
            stats_add(fail_c, 1);
            if (classic) {
                recovery_note(to[i]->recovery, key->p, key->len, to[i]->id);
            }
            continue;
        }
        del = replica_line(out, pr, line, len);
        if (storage && !del &&
            net_copy_out(data, skip, (size_t)pr->vlen + 2, out) != 0) {
            continue; /* cannot happen: the block is all in data */
        }
        into->pending++;
        f = request_frag_init(into, FRAG_REPLICA, to[i]);
        f->fallback = regional;
        bconn_enqueue(bc, f);
        sent++;
    }
    return (int)sent;
}

int
replica_send_writes(struct request *req, const struct proto_req *pr,
                    const struct proto_str *key, const char *line, size_t len,
                    struct evbuffer *data, size_t skip,
                    const struct backend *primary)
{
    const struct topology_pool *p =
        topology_write_pool_of(req->wt->t, key->p, key->len);

    return p->replicas < 2 ? 0
                           : replica_send_pool(req, p, pr, key, line, len,
                                               data, skip, primary, false);
}

int
replica_send_remote(struct request *req, const struct proto_req *pr,
                    const struct proto_str *key, const char *line, size_t len,
                    struct evbuffer *data, size_t skip)
{
    struct worker *w = req->worker;
    const struct topology *t = req->wt->t;
    const struct topology_route *rt = topology_route_of(t, key->p, key->len);
    bool wait = pr->cmd == PROTO_CMD_DELETE || pr->cmd == PROTO_CMD_MD ||
                pr->cmd == PROTO_CMD_CAS;
    size_t bytes = proto_cmd_is_storage(pr->cmd) || pr->cmd == PROTO_CMD_MS
                       ? (size_t)pr->vlen + len
                       : len;
    struct request *into = req;
    int total = 0;

    if (rt->nremote == 0) {
        return 0;
    }
    if (!wait) {
        /* Not waited for: an orphaned request of its own, bounded. */
        if (w->region_writes >= REPLICA_REMOTE_QUEUE ||
            w->region_write_bytes + bytes > REPLICA_REMOTE_BYTES) {
            stats_add(&w->stats.region_writes_dropped, 1);
            return 0;
        }
        into = request_get(w, NULL);
        into->cmd = pr->cmd;
        into->noreply = true;
        into->remote_bytes = bytes;
        w->region_writes++;
        w->region_write_bytes += bytes;
        into->pending = 1; /* held while sending */
        request_reserve_frags(into, rt->nremote * CONFIG_REPLICAS_MAX);
    }
    for (uint32_t i = 0; i < rt->nremote; i++) {
        int n = replica_send_pool(into, &t->pools[rt->remote[i]], pr, key,
                                  line, len, data, skip, NULL, true);

        if (n < 0 && wait) {
            return -1;
        }
        total += n > 0 ? n : 0;
    }
    if (into != req && --into->pending == 0) {
        request_put(into);
    }
    return wait ? total : 0;
}

uint32_t
replica_frags_needed(const struct topology *t, const struct proto_str *key)
{
    uint32_t remote = 0;

    if (!t->replicated && !t->regional) {
        return 0;
    }
    if (t->regional) {
        remote = topology_route_of(t, key->p, key->len)->nremote;
    }
    return CONFIG_REPLICAS_MAX * (1 + remote);
}

struct backend *
replica_remote_read(const struct topology *t, const char *key, size_t len)
{
    const struct topology_route *rt = topology_route_of(t, key, len);

    for (uint32_t i = 0; i < rt->nremote; i++) {
        struct backend *set[CONFIG_REPLICAS_MAX];
        const struct topology_pool *p = &t->pools[rt->remote[i]];
        unsigned n = replica_set(p, key, len, set);

        for (unsigned k = 0; k < n; k++) {
            if (backend_is_up(set[k])) {
                return set[k];
            }
        }
    }
    return NULL;
}

void
replica_frag_done(struct frag *f, bool ok)
{
    struct request *req = f->req;
    struct stats_worker *s = &req->worker->stats;

    if (!ok) {
        stats_add(f->fallback ? &s->region_write_failures
                              : &s->replica_write_failures,
                  1);
        if (proto_key_classic(req->keys[0].p, req->keys[0].len)) {
            recovery_note(f->be->recovery, req->keys[0].p, req->keys[0].len,
                          f->be->id);
        }
    }
}
