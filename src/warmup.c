/*
 * warmup: see warmup.h.
 *
 *   write   FRAG_LINE / FRAG_META answered -> FRAG_PREV_DELETE on the
 *           previous owner -> the client's answer
 *   get     FRAG_RETRIEVAL(s) answered -> one FRAG_WARM (mg k v f t) per
 *           key that missed, on its previous owner -> VALUE blocks put in
 *           their place -> END; each hit also a FRAG_COPY (ms k S F T ME)
 *           in an orphaned request of its own to the new owner
 *   mg      FRAG_META answered EN (or nothing, with q) -> FRAG_WARM for the
 *           copy and FRAG_WARM_META (the client's line again) on the
 *           previous owner, whose reply the client gets
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "backend.h"
#include "bconn.h"
#include "client.h"
#include "mget.h"
#include "proto.h"
#include "request.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "warmup.h"
#include "worker.h"

void
warmup_note_write(struct request *req, const struct proto_str *route_key,
                  const struct proto_str *key, bool b64,
                  const struct backend *owner, const struct backend *target)
{
    struct topology_prev p[TOPOLOGY_ORIGINS];
    unsigned n = topology_prev_owners(req->wt->t, route_key->p, route_key->len,
                                      owner, p);

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

    /* The first previous owner: the one from before the move. */
    if (b == owner && b != NULL &&
        topology_prev_owners(req->wt->t, route_key->p, route_key->len, owner,
                             p) > 0) {
        po = p[0].be;
    }
    if (po != NULL && !backend_is_up(po)) {
        po = NULL;
    }
    req->key_prev[i] = po;
    req->nwarm += po != NULL;
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
        /* c always: the copy checks the source did not change. */
        evbuffer_add_printf(out, "mg %.*s%s v f t c\r\n",
                            (int)req->keys[i].len, req->keys[i].p,
                            req->prev_b64 ? " b" : "");
    }
    req->pending++;
    bconn_enqueue(bc, f);
    return true;
}

/* The warm-up round of a read: each key that missed, on its previous
 * owner. */
static bool
warmup_send_reads(struct request *req)
{
    uint32_t n = 0;

    req->warm_sent = true;
    if (req->cmd == PROTO_CMD_MG) {
        /* Missed: EN, or nothing before MN with q. */
        if (req->meta_seen || req->frags[0].failed) {
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
        n += req->key_prev[i] != NULL && warmup_missed(req, i);
    }
    if (n == 0) {
        return false;
    }
    /* Room for a second look at the new owner for each (see
     * warmup_frag_meta()): no fragment may move once one is queued. */
    request_reserve_frags(req, req->nfrags + 2 * n);
    for (uint32_t i = 0; i < req->nkeys; i++) {
        if (req->key_prev[i] != NULL && warmup_missed(req, i) &&
            !warmup_send_get(req, i, req->key_prev[i], FRAG_WARM, NULL, 0)) {
            stats_add(&req->worker->stats.warmup_misses, 1);
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

/*
 * Copies the hit (data: len bytes and "\r\n"), read on from, to the key's
 * new owner; once stored, from is asked whether the item is still the one
 * read, and the copy deleted again if not (see warmup.h).
 */
static void
warmup_copy(struct request *req, uint32_t i, const struct proto_meta_value *va,
            const char *data, struct backend *from)
{
    struct worker *w = req->worker;
    struct backend *to = req->frags[req->stream ? 0 : req->key_frag[i]].be;
    struct worker_backend *wb = worker_wb(w, to);
    int64_t ttl = warmup_copy_ttl(req, va);
    struct request *r;
    struct bconn *bc;
    struct evbuffer *out;
    struct frag *f;

    if (ttl < 0) {
        return;
    }
    if (w->warm_copies >= WARMUP_COPY_QUEUE ||
        w->warm_copy_bytes + va->len > WARMUP_COPY_BYTES || wb == NULL ||
        !backend_is_up(to) || (out = bconn_output(bc = route_pick(w, wb))) ==
                                  NULL) {
        stats_add(&w->stats.warmup_copies_dropped, 1);
        return;
    }
    r = request_get(w, NULL);
    r->cmd = PROTO_CMD_MS;
    r->noreply = true;
    r->counted = va->len;
    r->prev_b64 = req->prev_b64;
    r->copy_src = va->has_cas ? from : NULL;
    r->copy_cas = va->cas;
    request_keep_key(r, &req->keys[i]);
    /* The copy, its check and its undo: no fragment moves once queued. */
    request_reserve_frags(r, 3);
    f = request_frag_init(r, FRAG_COPY, to);
    r->pending = 1;
    w->warm_copies++;
    w->warm_copy_bytes += va->len;
    evbuffer_add_printf(out, "ms %.*s %u%s F%u T%lld ME\r\n",
                        (int)req->keys[i].len, req->keys[i].p, va->len,
                        req->prev_b64 ? " b" : "", va->flags, (long long)ttl);
    evbuffer_add(out, data, (size_t)va->len + 2);
    bconn_enqueue(bc, f);
}

/* A warm-up hit of key i: its VALUE block where the client expects it. */
static void
warmup_answer(struct request *req, uint32_t i, const struct proto_meta_value *va,
              const char *data)
{
    char line[PROTO_KEY_MAX + 96];
    int n;

    if (req->cmd == PROTO_CMD_MG) {
        return; /* FRAG_WARM_META answers */
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

/* Queues a one-line meta command about r's key on be as kind. */
static bool
warmup_copy_send(struct request *r, struct backend *be, enum frag_kind kind,
                 const char *cmd, const char *flags)
{
    struct worker *w = r->worker;
    struct worker_backend *wb = worker_wb(w, be);
    struct bconn *bc;
    struct evbuffer *out;

    if (wb == NULL || r->nfrags >= r->fragcap ||
        (out = bconn_output(bc = route_pick(w, wb))) == NULL) {
        return false;
    }
    evbuffer_add_printf(out, "%s %.*s%s%s\r\n", cmd, (int)r->keys[0].len,
                        r->keys[0].p, r->prev_b64 ? " b" : "", flags);
    r->pending++;
    bconn_enqueue(bc, request_frag_init(r, kind, be));
    return true;
}

/*
 * The copy is stored (HD) or not (NS: a value got there first, which is
 * right); stored, the source is checked: the item read is still there
 * (HD c<the cas read>), or the copy goes (md on the new owner), since a
 * delete or a write through a proxy may have come in between.
 */
static void
warmup_copy_reply(struct frag *f, const char *line, size_t total,
                  struct evbuffer *in)
{
    struct request *r = f->req;
    struct worker *w = r->worker;
    char head[64];
    size_t n = total < sizeof(head) - 1 ? total : sizeof(head) - 1;
    struct backend *to = r->frags[0].be;

    if (in != NULL) {
        evbuffer_copyout(in, head, n);
        evbuffer_drain(in, total);
    } else {
        memcpy(head, line, n);
    }
    head[n] = '\0';
    if (f->kind == FRAG_COPY) {
        bool stored = strncmp(head, "HD", 2) == 0;

        stats_add(stored ? &w->stats.warmup_copies
                         : &w->stats.warmup_copy_failures,
                  1);
        if (stored && r->copy_src != NULL &&
            !warmup_copy_send(r, r->copy_src, FRAG_COPY_CHECK, "mg", " c") &&
            !warmup_copy_send(r, to, FRAG_COPY_UNDO, "md", "")) {
            stats_add(&w->stats.warmup_copy_failures, 1);
        }
    } else if (f->kind == FRAG_COPY_CHECK) {
        char want[32];

        snprintf(want, sizeof(want), "HD c%llu",
                 (unsigned long long)r->copy_cas);
        /* Still the item read? Else a write or a delete came (or the
         * background copy moved it: a miss then, never a stale value). */
        if (strncmp(head, want, strlen(want)) != 0 ||
            (head[strlen(want)] != '\r' && head[strlen(want)] != ' ')) {
            stats_add(&w->stats.warmup_copies_undone, 1);
            warmup_copy_send(r, to, FRAG_COPY_UNDO, "md", "");
        }
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

    if (f->kind == FRAG_COPY || f->kind == FRAG_COPY_CHECK ||
        f->kind == FRAG_COPY_UNDO) {
        warmup_copy_reply(f, line, total, in);
        return;
    }
    if (in != NULL) {
        copy = util_xmalloc(total);
        evbuffer_remove(in, copy, total);
        line = copy;
    }
    nl = memchr(line, '\n', total);
    if (nl != NULL && proto_parse_meta_value(line, (size_t)(nl - line) -
                                               (nl > line && nl[-1] == '\r'),
                                      &va) == 0 &&
        (size_t)(nl + 1 - line) + va.len + 2 == total) {
        warmup_answer(req, f->key_start, &va, nl + 1);
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
        break;
    }
    case FRAG_WARM:
        stats_add(&w->stats.warmup_misses, 1);
        break;
    case FRAG_WARM_META:
        /* The client keeps the miss it had. */
        break;
    case FRAG_COPY:
        stats_add(&w->stats.warmup_copy_failures, 1);
        break;
    case FRAG_COPY_CHECK:
        /* Not known to be unchanged: the copy goes. */
        stats_add(&w->stats.warmup_copies_undone, 1);
        warmup_copy_send(req, req->frags[0].be, FRAG_COPY_UNDO, "md", "");
        break;
    case FRAG_COPY_UNDO:
        stats_add(&w->stats.warmup_copy_failures, 1);
        break;
    default:
        break;
    }
}

void
warmup_copy_done(struct frag *f)
{
    struct worker *w = f->req->worker;

    w->warm_copies--;
    w->warm_copy_bytes -= f->req->counted;
    f->req->counted = 0;
}
