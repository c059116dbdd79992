/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * warmup: see warmup.h.
 *
 *   write   FRAG_LINE / FRAG_META answered -> FRAG_PREV_DELETE on the
 *           previous owner -> the client's answer
 *   get     FRAG_RETRIEVAL(s) answered -> one FRAG_WARM (mg k v f t c)
 *           per key that missed, on its previous owner (one FRAG_WARM_VERIFY
 *           on the new owner first for a hit that may be a placeholder) ->
 *           VALUE blocks put in their place -> END; each hit also a copy:
 *           FRAG_COPY_CLAIM -> FRAG_COPY -> FRAG_COPY_CHECK (-> FRAG_COPY_UNDO)
 *           in an orphaned request of its own
 *   mg      FRAG_META answered EN (or nothing, with q, or a placeholder) ->
 *           FRAG_WARM for the copy and FRAG_WARM_META (the client's line
 *           again) on the previous owner, whose reply the client gets
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "backend.h"
#include "big.h"
#include "bconn.h"
#include "client.h"
#include "mget.h"
#include "proto.h"
#include "recovery.h"
#include "replica.h"
#include "request.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "warmup.h"
#include "worker.h"

const char warmup_later;

void
warmup_note_write(struct request *req, const struct proto_str *route_key,
                  const struct proto_str *key, bool b64,
                  const struct backend *owner, const struct backend *target)
{
    struct topology_prev p[TOPOLOGY_ORIGINS];
    unsigned n = topology_prev_owners(req->wt->t, route_key->p, route_key->len,
                                      owner, true, p);

    req->nprev = 0;
    for (unsigned i = 0; i < n; i++) {
        if (p[i].be != target) {
            req->prev[req->nprev++] = p[i];
        }
    }
    if (req->nprev == 0) {
        return;
    }
    request_keep_key(req, key);
    req->prev_b64 = b64;
}

void
warmup_note_read(struct request *req, uint32_t i,
                 const struct proto_str *route_key,
                 const struct backend *owner, const struct backend *b)
{
    struct topology_prev p[TOPOLOGY_ORIGINS];
    struct backend *po = NULL;

    /* The first previous owner: the one from before the move (UP or not:
     * a copy's placeholder may be on the new owner either way). */
    if (b == owner && b != NULL &&
        topology_prev_owners(req->wt->t, route_key->p, route_key->len, owner,
                             false, p) > 0) {
        po = p[0].be;
    }
    if (po == NULL && b != NULL &&
        ((req->wt->t->replicated &&
          topology_pool_of(req->wt->t, route_key->p, route_key->len)
                  ->replicas > 1) ||
         (req->wt->t->regional &&
          topology_route_of(req->wt->t, route_key->p, route_key->len)
                  ->nremote > 0))) {
        /* Another replica, or another region: which one is looked up if
         * the read misses (warmup_prev()), not for every hit. */
        po = WARMUP_LATER;
    }
    req->key_prev[i] = po;
    req->nwarm += po != NULL;
}

/*
 * Where key i of a read that missed on b is read next: its previous
 * owner, or for WARMUP_LATER the next replica after b (read repair), else
 * another region's copy; NULL when there is none.
 */
static struct backend *
warmup_prev(struct request *req, uint32_t i, const struct backend *b)
{
    const struct topology *t = req->wt->t;
    const struct proto_str *k = &req->keys[i];
    struct backend *po = req->key_prev[i];

    if (po != WARMUP_LATER) {
        return po;
    }
    po = NULL;
    if (t->replicated) {
        const struct topology_pool *pool = topology_pool_of(t, k->p, k->len);

        if (pool->replicas > 1) {
            po = replica_next_read(pool, k->p, k->len, b);
        }
    }
    if (po == NULL && t->regional) {
        po = replica_remote_read(t, k->p, k->len);
    }
    req->key_prev[i] = po;
    return po;
}

/*
 * The delete of a written key on its previous owner be failed or could not
 * be sent: with the delete spool on, be keeps the key in its recovery log,
 * deleted by its next pass (or before it serves again), as a client's
 * failed delete is (request_delete_failed()).
 */
static void
warmup_delete_lost(struct request *req, struct backend *be)
{
    if (req->wt->t->cfg->delete_spool != NULL && !req->prev_b64 &&
        proto_key_classic(req->keys[0].p, req->keys[0].len)) {
        recovery_note(be->recovery, req->keys[0].p, req->keys[0].len, be->id);
    }
}

/* The delete after a write, on its key's previous owner p. */
static bool
warmup_send_delete(struct request *req, const struct topology_prev *p)
{
    struct worker *w = req->worker;
    struct worker_backend *wb = worker_wb(w, p->be);
    struct evbuffer *out = NULL;
    struct bconn *bc = NULL;
    struct frag *f;

    stats_add(&w->stats.migrate_deletes, 1);
    if (wb != NULL && backend_is_up(p->be)) {
        bc = route_pick(w, wb);
        out = bconn_output(bc);
    }
    if (out == NULL) {
        /* It keeps what it had: no warm-up read may trust it now. */
        topology_taint(req->wt->t, p);
        warmup_delete_lost(req, p->be);
        stats_add(&w->stats.migrate_delete_failures, 1);
        return false;
    }
    f = request_frag_init(req, FRAG_PREV_DELETE, p->be);
    f->key_start = p->idx;
    f->matched = p->origin;
    if (req->prev_b64) {
        evbuffer_add_printf(out, "md %.*s b\r\n", (int)req->keys[0].len,
                            req->keys[0].p);
    } else {
        evbuffer_add_printf(out, "delete %.*s\r\n", (int)req->keys[0].len,
                            req->keys[0].p);
    }
    req->pending++;
    bconn_enqueue(bc, f);
    return true;
}

static bool
warmup_is_retrieval(enum proto_cmd cmd)
{
    return cmd == PROTO_CMD_GET || cmd == PROTO_CMD_GETS ||
           cmd == PROTO_CMD_GAT || cmd == PROTO_CMD_GATS;
}

/* Key i missed on its owner, and its fragment did not fail. */
static bool
warmup_missed(const struct request *req, uint32_t i)
{
    if (req->stream) {
        return req->hits == 0 && !req->frags[0].failed;
    }
    return req->block_len[i] == 0 && !req->frags[req->key_frag[i]].failed;
}

/* Queues "mg KEY [b] v f t [c]" for key i on po as a FRAG_WARM. */
static bool
warmup_send_get(struct request *req, uint32_t i, struct backend *po,
                enum frag_kind kind, const char *line, size_t len)
{
    struct worker *w = req->worker;
    struct worker_backend *wb = worker_wb(w, po);
    struct bconn *bc;
    struct evbuffer *out;
    struct frag *f;

    if (wb == NULL || (out = bconn_output(bc = route_pick(w, wb))) == NULL) {
        return false;
    }
    f = request_frag_init(req, kind, po);
    f->key_start = i;
    f->fallback = false;
    if (kind == FRAG_WARM_META) {
        evbuffer_add(out, line, len);
        evbuffer_add(out, req->meta_quiet ? "\r\nmn\r\n" : "\r\n",
                     req->meta_quiet ? 6 : 2);
    } else {
        /* c always: the copy checks the source did not change. A gat's
         * reads touch as the gat did, wherever the item is: so a copy by
         * another mover, read from the previous owner later, keeps the
         * new exptime too (touching changes no cas). */
        evbuffer_add_printf(out, "mg %.*s%s v f t c",
                            (int)req->keys[i].len, req->keys[i].p,
                            req->prev_b64 ? " b" : "");
        if (req->warm_touch) {
            evbuffer_add_printf(out, " T%lld", (long long)req->warm_exptime);
        }
        evbuffer_add(out, "\r\n", 2);
    }
    req->pending++;
    bconn_enqueue(bc, f);
    return true;
}

/* Key i's VALUE block (from its new owner) is an empty value with flags 0:
 * what a copy's placeholder looks like to get and gets. */
static bool
warmup_block_empty(const struct request *req, uint32_t i)
{
    char buf[PROTO_KEY_MAX + 64];
    const char *b;
    size_t len, klen = req->keys[i].len, at = 6 + klen;

    if (req->stream) {
        len = evbuffer_get_length(req->rsp);
        if (req->hits != 1 || len > sizeof(buf)) {
            return false;
        }
        evbuffer_copyout(req->rsp, buf, len);
        b = buf;
    } else {
        len = req->block_len[i];
        if (len == 0 || req->block_off[i] == REQUEST_IN_FRAG) {
            return false;
        }
        b = req->vals + req->block_off[i];
    }
    /* VALUE <key> 0 0[ <cas>]\r\n\r\n */
    if (len < at + 8 || memcmp(b + at, " 0 0", 4) != 0 ||
        memcmp(b + len - 4, "\r\n\r\n", 4) != 0) {
        return false;
    }
    for (size_t k = at + 4; k < len - 4; k++) {
        if (!(k == at + 4 ? b[k] == ' ' : b[k] >= '0' && b[k] <= '9')) {
            return false;
        }
    }
    return true;
}

/* Key i's block from its new owner was a placeholder: now a miss. */
static void
warmup_drop_block(struct request *req, uint32_t i)
{
    if (req->stream) {
        evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
        req->hits = 0;
    } else if (req->block_len[i] > 0) {
        req->block_len[i] = 0;
        req->hits--;
    }
}

/* The warm-up round of a read: each key that missed, on its previous
 * owner; each whose value looks like a placeholder, on its new owner. */
static bool
warmup_send_reads(struct request *req)
{
    struct worker *w = req->worker;
    uint32_t n = 0;

    req->warm_sent = true;
    if (req->cmd == PROTO_CMD_MG) {
        /* Missed: EN, or nothing before MN with q. */
        if (req->meta_seen || req->frags[0].failed ||
            warmup_prev(req, 0, req->frags[0].be) == NULL ||
            !backend_is_up(req->key_prev[0])) {
            return false;
        }
        request_reserve_frags(req, req->nfrags + 2);
        /* The copy's read, then the client's own line. */
        warmup_send_get(req, 0, req->key_prev[0], FRAG_WARM, NULL, 0);
        warmup_send_get(req, 0, req->key_prev[0], FRAG_WARM_META, req->line,
                        req->warm_linelen);
        return req->pending > 0;
    }
    for (uint32_t i = 0; i < req->nkeys; i++) {
        n += req->key_prev[i] != NULL;
    }
    if (n == 0) {
        return false;
    }
    /* Room for a check, a read and a second look at the new owner for
     * each (see warmup_frag_meta()): no fragment may move once one is
     * queued. */
    request_reserve_frags(req, req->nfrags + 3 * n);
    for (uint32_t fi = 0; fi < req->nfrags; fi++) {
        req->frags[fi].rescue_left = req->frags[fi].nkeys;
    }
    for (uint32_t i = 0; i < req->nkeys; i++) {
        struct backend *po = req->key_prev[i];
        uint32_t fi = req->stream ? 0 : req->key_frag[i];

        if (po != NULL && (req->frags[fi].failed || warmup_missed(req, i))) {
            po = warmup_prev(req, i, req->frags[fi].be);
        }
        if (po != NULL && req->frags[fi].failed &&
            req->frags[fi].kind == FRAG_RETRIEVAL && backend_is_up(po) &&
            warmup_send_get(req, i, po, FRAG_WARM, NULL, 0)) {
            /* Its backend failed: read where its copy is instead. */
            req->frags[req->nfrags - 1].rescue_of = fi + 1;
            continue;
        }
        if (po == NULL || req->frags[fi].failed) {
            continue;
        }
        if (warmup_missed(req, i)) {
            if (!backend_is_up(po) ||
                !warmup_send_get(req, i, po, FRAG_WARM, NULL, 0)) {
                stats_add(&w->stats.warmup_misses, 1);
            }
        } else if (warmup_block_empty(req, i) &&
                   !warmup_send_get(req, i, req->frags[fi].be,
                                    FRAG_WARM_VERIFY, NULL, 0)) {
            /* Not known to be a value: a miss. */
            warmup_drop_block(req, i);
        }
    }
    return req->pending > 0;
}

bool
warmup_continue(struct request *req)
{
    if (req->nprev > 0) {
        uint32_t n = req->nprev;
        bool sent = false;

        req->nprev = 0;
        request_reserve_frags(req, req->nfrags + n);
        for (uint32_t i = 0; i < n; i++) {
            sent |= warmup_send_delete(req, &req->prev[i]);
        }
        if (sent) {
            return true;
        }
    }
    if (req->deferred_be != NULL) {
        /* A delete whose previous owners' deletes are answered. */
        return request_send_deferred(req);
    }
    if (req->nwarm > 0 && !req->warm_sent && req->client != NULL &&
        (warmup_is_retrieval(req->cmd) || req->cmd == PROTO_CMD_MG)) {
        return warmup_send_reads(req);
    }
    return false;
}

/* The exptime a copy gets (ms T): -1 when it must not be copied. */
static int64_t
warmup_copy_ttl(const struct request *req, const struct proto_meta_value *va)
{
    if (req->warm_touch) {
        return req->warm_exptime < 0 ? -1 : req->warm_exptime;
    }
    return proto_copy_exptime(va->ttl, (int64_t)time(NULL));
}

/* Queues "CMD KEY [b] FLAGS" about r's key on be as kind. */
static bool
warmup_copy_send(struct request *r, struct backend *be, enum frag_kind kind,
                 const char *cmd, const char *flags)
{
    struct worker *w = r->worker;
    struct worker_backend *wb = worker_wb(w, be);
    struct bconn *bc;
    struct evbuffer *out;

    if (wb == NULL || r->nfrags >= r->fragcap || !backend_is_up(be) ||
        (out = bconn_output(bc = route_pick(w, wb))) == NULL) {
        return false;
    }
    evbuffer_add_printf(out, "%s %.*s%s%s\r\n", cmd, (int)r->keys[0].len,
                        r->keys[0].p, r->prev_b64 ? " b" : "", flags);
    r->pending++;
    bconn_enqueue(bc, request_frag_init(r, kind, be));
    return true;
}

/* md of what r put on the key's new owner (placeholder or copy), if it is
 * still what r put there. */
static bool
warmup_copy_undo(struct request *r)
{
    char flags[32];

    snprintf(flags, sizeof(flags), " C%llu", (unsigned long long)r->copy.cas);
    return warmup_copy_send(r, r->frags[0].be, FRAG_COPY_UNDO, "md", flags);
}

/*
 * Copies the hit (data: len bytes and "\r\n"), read on from, to the key's
 * new owner, in an orphaned request of its own (see warmup.h): a
 * placeholder first, then the value over it, then the check of from.
 */
static void
warmup_copy(struct request *req, uint32_t i, const struct proto_meta_value *va,
            const char *data, struct backend *from)
{
    struct worker *w = req->worker;
    struct backend *to = req->frags[req->stream ? 0 : req->key_frag[i]].be;
    int64_t ttl = warmup_copy_ttl(req, va);
    struct request *r;

    if (ttl < 0 || (__builtin_expect(w->cfg->big_value_split > 0, 0) &&
                    big_holds_index(data, va->len))) {
        /* A big value's index is not copied without its chunks: reads
         * find it where it is (big_note_source()). */
        return;
    }
    if (w->warm_copies >= WARMUP_COPY_QUEUE ||
        w->warm_copy_bytes + va->len > WARMUP_COPY_BYTES ||
        !backend_is_up(to)) {
        stats_add(&w->stats.warmup_copies_dropped, 1);
        return;
    }
    r = request_get(w, NULL);
    r->cmd = PROTO_CMD_MS;
    r->noreply = true;
    r->prev_b64 = req->prev_b64;
    r->copy.src = va->has_cas ? from : NULL;
    r->copy.src_cas = va->cas;
    r->copy.flags = va->flags;
    r->copy.exptime = ttl;
    r->copy.held = true;
    r->counted = va->len;
    w->warm_copies++;
    w->warm_copy_bytes += va->len;
    evbuffer_add(r->rsp, data, (size_t)va->len + 2);
    request_keep_key(r, &req->keys[i]);
    /* Placeholder, copy, check and undo: no fragment moves once queued. */
    request_reserve_frags(r, 4);
    /* The first fragment names the new owner (warmup_copy_undo()). */
    if (!warmup_copy_send(r, to, FRAG_COPY_CLAIM, "mg",
                          " c N" UTIL_STR(PROTO_CLAIM_TTL))) {
        stats_add(&w->stats.warmup_copies_dropped, 1);
        request_put(r);
    }
}

/* A warm-up hit of key i: its VALUE block where the client expects it. */
static void
warmup_answer(struct request *req, uint32_t i, const struct proto_meta_value *va,
              const char *data, struct backend *from)
{
    char line[PROTO_KEY_MAX + 96];
    int n;

    if (req->cmd == PROTO_CMD_MG) {
        return; /* FRAG_WARM_META answers */
    }
    if (__builtin_expect(req->worker->cfg->big_value_split > 0, 0)) {
        big_note_source(req, i, from); /* its chunks are there */
    }
    n = snprintf(line, sizeof(line), "VALUE %.*s %u %u", (int)req->keys[i].len,
                 req->keys[i].p, va->flags, va->len);
    if (req->cmd == PROTO_CMD_GETS || req->cmd == PROTO_CMD_GATS) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %llu",
                      (unsigned long long)va->cas);
    }
    line[n++] = '\r';
    line[n++] = '\n';
    if (req->client != NULL) {
        /* Counted against the client's output limit, as any value. */
        req->client->pending_bytes += (size_t)n + va->len + 2;
        req->counted += (size_t)n + va->len + 2;
    }
    if (req->stream) {
        evbuffer_add(req->rsp, line, (size_t)n);
        evbuffer_add(req->rsp, data, (size_t)va->len + 2);
        req->hits++;
    } else {
        mget_put(req, i, line, (size_t)n, data, (size_t)va->len + 2);
    }
}

/*
 * Key i missed on its new owner, then on its previous owner: the copy may
 * have moved it in between (added on the new owner, then deleted on the
 * old one), so the new owner is asked once more. Room for the fragment
 * was reserved with the round.
 */
static bool
warmup_look_again(struct request *req, uint32_t i)
{
    struct backend *to = req->frags[req->stream ? 0 : req->key_frag[i]].be;
    struct frag *f;

    if (req->nfrags >= req->fragcap ||
        !warmup_send_get(req, i, to, FRAG_WARM, NULL, 0)) {
        return false;
    }
    f = &req->frags[req->nfrags - 1];
    f->fallback = true;
    return true;
}

/* The reply line of a copy's fragment, parsed as a meta hit (mv) or not
 * (-1); the reply is consumed. */
static int
warmup_copy_line(const char *line, size_t total, struct evbuffer *in,
                 struct proto_meta_value *mv)
{
    char head[128];
    size_t n = total < sizeof(head) ? total : sizeof(head);

    if (in != NULL) {
        evbuffer_copyout(in, head, n);
        evbuffer_drain(in, total);
        line = head;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    return proto_parse_meta_hit(line, n, mv);
}

/*
 * The steps of a copy (see warmup.h):
 *   claim  HD c<cas> W: the placeholder is ours; else the new owner has a
 *          value, or another mover is filling it: nothing to do
 *   copy   HD c<cas>: the value is over the placeholder; else a write or
 *          a delete replaced or removed the placeholder: nothing to do
 *   check  HD c<the cas read>: the source is unchanged; else a delete or
 *          write came in between, and the copy goes
 */
static void
warmup_copy_reply(struct frag *f, const char *line, size_t total,
                  struct evbuffer *in)
{
    struct request *r = f->req;
    struct worker *w = r->worker;
    struct proto_meta_value mv;
    bool hd = warmup_copy_line(line, total, in, &mv) == 0 && mv.len == 0 &&
              mv.has_cas;

    switch (f->kind) {
    case FRAG_COPY_CLAIM: {
        struct worker_backend *wb = worker_wb(w, f->be);
        struct bconn *bc;
        struct evbuffer *out;

        if (!hd || !mv.won || mv.stale) {
            stats_add(&w->stats.warmup_copy_failures, 1);
            warmup_copy_done(r);
            break;
        }
        r->copy.cas = mv.cas;
        if (wb == NULL || !backend_is_up(f->be) ||
            (out = bconn_output(bc = route_pick(w, wb))) == NULL) {
            stats_add(&w->stats.warmup_copy_failures, 1);
            warmup_copy_done(r);
            warmup_copy_undo(r);
            break;
        }
        evbuffer_add_printf(out, "ms %.*s %u%s C%llu F%u T%lld c\r\n",
                            (int)r->keys[0].len, r->keys[0].p,
                            (unsigned)r->counted, r->prev_b64 ? " b" : "",
                            (unsigned long long)mv.cas, r->copy.flags,
                            (long long)r->copy.exptime);
        evbuffer_add_buffer(out, r->rsp);
        r->pending++;
        bconn_enqueue(bc, request_frag_init(r, FRAG_COPY, f->be));
        break;
    }
    case FRAG_COPY:
        warmup_copy_done(r);
        if (!hd) {
            stats_add(&w->stats.warmup_copy_failures, 1);
            break;
        }
        stats_add(&w->stats.warmup_copies, 1);
        r->copy.cas = mv.cas;
        if (r->copy.src != NULL &&
            !warmup_copy_send(r, r->copy.src, FRAG_COPY_CHECK, "mg", " c") &&
            !warmup_copy_undo(r)) {
            stats_add(&w->stats.warmup_copy_failures, 1);
        }
        break;
    case FRAG_COPY_CHECK:
        /* Still the item read? Else a write or a delete came (or the
         * background copy moved it: a miss then, never a stale value). */
        if (!hd || mv.cas != r->copy.src_cas) {
            stats_add(&w->stats.warmup_copies_undone, 1);
            warmup_copy_undo(r);
        }
        break;
    default:
        break;
    }
}

/* The answer to FRAG_WARM_VERIFY: a value a client may see (va, data:
 * it replaces the empty one, which may have been a placeholder the copy
 * has filled since), or not (a miss: to the previous owner, as any). */
static void
warmup_verified(struct request *req, uint32_t i,
                const struct proto_meta_value *va, const char *data)
{
    struct backend *po = warmup_prev(req, i,
                                     req->frags[req->stream ? 0
                                                            : req->key_frag[i]]
                                         .be);

    warmup_drop_block(req, i);
    if (va != NULL) {
        warmup_answer(req, i, va, data,
                      req->frags[req->stream ? 0 : req->key_frag[i]].be);
    } else if (po == NULL || !backend_is_up(po) ||
               !warmup_send_get(req, i, po, FRAG_WARM, NULL, 0)) {
        stats_add(&req->worker->stats.warmup_misses, 1);
    }
}

void
warmup_frag_meta(struct frag *f, const char *line, size_t total,
                 struct evbuffer *in)
{
    struct request *req = f->req;
    struct worker *w = req->worker;
    char *copy = NULL;
    const char *nl;
    struct proto_meta_value va;
    bool hit;

    if (f->kind >= FRAG_COPY_CLAIM) {
        warmup_copy_reply(f, line, total, in);
        return;
    }
    if (in != NULL) {
        copy = util_xmalloc(total);
        evbuffer_remove(in, copy, total);
        line = copy;
    }
    nl = memchr(line, '\n', total);
    /* A placeholder, or a value marked stale, is no hit. */
    hit = nl != NULL &&
          proto_parse_meta_value(line, (size_t)(nl - line) -
                                           (nl > line && nl[-1] == '\r'),
                                 &va) == 0 &&
          (size_t)(nl + 1 - line) + va.len + 2 == total &&
          !proto_meta_unsettled(&va);
    if (f->rescue_of > 0) {
        /* A key of a fragment that failed, answered after all. */
        struct frag *g = &req->frags[f->rescue_of - 1];

        if (hit) {
            warmup_answer(req, f->key_start, &va, nl + 1, f->be);
        }
        stats_add(hit ? &w->stats.warmup_hits : &w->stats.warmup_misses, 1);
        if (--g->rescue_left == 0) {
            g->failed = false;
            req->nfailed--;
        }
    } else if (f->kind == FRAG_WARM_VERIFY) {
        warmup_verified(req, f->key_start, hit ? &va : NULL, nl + 1);
    } else if (hit) {
        warmup_answer(req, f->key_start, &va, nl + 1, f->be);
        if (!f->fallback) {
            stats_add(&w->stats.warmup_hits, 1);
            warmup_copy(req, f->key_start, &va, nl + 1, f->be);
        }
    } else if (!f->fallback && req->cmd != PROTO_CMD_MG &&
               warmup_look_again(req, f->key_start)) {
        /* The background copy may have moved it meanwhile: asked again. */
    } else {
        stats_add(&w->stats.warmup_misses, 1);
    }
    free(copy);
}

bool
warmup_meta_placeholder(struct request *req, const char *line, size_t total,
                        struct evbuffer *in)
{
    char head[512];
    size_t n = total < sizeof(head) ? total : sizeof(head);
    const char *nl, *p, *end;
    struct proto_meta_value mv;
    struct proto_str tok;

    if (req->key_prev[0] == NULL) {
        return false;
    }
    if (in != NULL) {
        evbuffer_copyout(in, head, n);
        line = head;
    }
    if ((nl = memchr(line, '\n', n)) == NULL) {
        return false;
    }
    end = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
    if (proto_parse_meta_hit(line, (size_t)(end - line), &mv) != 0 ||
        !mv.claimed) {
        return false;
    }
    /* What memcached answers a miss: EN with the O, k and b flags the hit
     * carried, or nothing with q. */
    if (!req->meta_quiet && req->client != NULL) {
        p = line + 2;
        evbuffer_add(req->rsp, "EN", 2);
        while (proto_next_key(&p, end, &tok)) {
            if (tok.p[0] == 'O' || tok.p[0] == 'k' ||
                (tok.p[0] == 'b' && tok.len == 1)) {
                evbuffer_add(req->rsp, " ", 1);
                evbuffer_add(req->rsp, tok.p, tok.len);
            }
        }
        evbuffer_add(req->rsp, "\r\n", 2);
    }
    if (in != NULL) {
        evbuffer_drain(in, total);
    }
    return true;
}

void
warmup_delete_answer(struct frag *f, const char *line, size_t len)
{
    struct request *req = f->req;

    if (!(len >= 2 && (memcmp(line, "HD", 2) == 0 ||
                       memcmp(line, "NF", 2) == 0)) &&
        !(len >= 7 && memcmp(line, "DELETED", 7) == 0) &&
        !(len >= 9 && memcmp(line, "NOT_FOUND", 9) == 0)) {
        struct topology_prev p = {f->be, f->matched, f->key_start};

        topology_taint(req->wt->t, &p);
        stats_add(&req->worker->stats.migrate_delete_failures, 1);
        warmup_delete_lost(req, f->be);
    }
}

void
warmup_frag_fail(struct frag *f)
{
    struct request *req = f->req;
    struct worker *w = req->worker;

    switch (f->kind) {
    case FRAG_PREV_DELETE: {
        struct topology_prev p = {f->be, f->matched, f->key_start};

        topology_taint(req->wt->t, &p);
        stats_add(&w->stats.migrate_delete_failures, 1);
        warmup_delete_lost(req, f->be);
        break;
    }
    case FRAG_WARM:
        stats_add(&w->stats.warmup_misses, 1);
        break;
    case FRAG_WARM_VERIFY:
        /* Not known to be a value: a miss. */
        warmup_drop_block(req, f->key_start);
        stats_add(&w->stats.warmup_misses, 1);
        break;
    case FRAG_WARM_META:
        /* The client keeps the miss it had. */
        break;
    case FRAG_COPY_CLAIM:
    case FRAG_COPY:
        warmup_copy_done(req);
        stats_add(&w->stats.warmup_copy_failures, 1);
        break;
    case FRAG_COPY_CHECK:
        /* Not known to be unchanged: the copy goes. */
        stats_add(&w->stats.warmup_copies_undone, 1);
        warmup_copy_undo(req);
        break;
    case FRAG_COPY_UNDO:
        stats_add(&w->stats.warmup_copy_failures, 1);
        break;
    default:
        break;
    }
}

void
warmup_copy_done(struct request *r)
{
    struct worker *w = r->worker;

    if (!r->copy.held) {
        return;
    }
    r->copy.held = false;
    w->warm_copies--;
    w->warm_copy_bytes -= r->counted;
    r->counted = 0;
    evbuffer_drain(r->rsp, evbuffer_get_length(r->rsp));
}
