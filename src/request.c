/*
 * request: routing, splitting and merging of client commands.
 *
 *   single-key command  -> one FRAG_LINE to the key's backend; its reply
 *                          line is the client's reply (plus, for a write
 *                          whose owner is RECOVERING, a FRAG_OWNER_DELETE
 *                          of the key on the owner)
 *   retrieval           -> keys grouped per backend, one FRAG_RETRIEVAL
 *                          each; with one fragment the VALUE blocks stream
 *                          straight into req->rsp (the backend keeps the
 *                          client's key order), with several each fragment
 *                          collects its blocks and request_finish() merges
 *                          them in the client's key order under one END
 *   flush_all           -> one FRAG_FLUSH per backend, OK only if all are
 *   version, stats, ... -> answered here
 *
 * noreply is never forwarded: the backend always answers, and the answer is
 * dropped, so a backend stream can never be misaligned by a reply that did
 * or did not come.
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
#include "config.h"
#include "log.h"
#include "proxy.h"
#include "recovery.h"
#include "request.h"
#include "ring.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "worker.h"

/* Requests kept on a worker's free list; more are freed. */
#define REQUEST_FREE_MAX 4096
/* Arrays of a recycled request larger than this are released. */
#define REQUEST_KEEP_KEYS 4096
#define REQUEST_KEEP_VALS 16384
/* VALUE blocks up to this size, of a retrieval split over several
 * backends, are collected in req->vals: cheaper than evbuffer chains for
 * the typical small value. Larger blocks stay in evbuffer chains. */
#define REQUEST_SMALL_BLOCK 4096

struct request *
request_get(struct worker *w, struct client *c)
{
    struct request *req = w->free_requests;

    if (req != NULL) {
        w->free_requests = req->next_free;
        w->nfree_requests--;
    } else {
        req = util_xcalloc(1, sizeof(*req));
        req->rsp = evbuffer_new();
        if (req->rsp == NULL) {
            log_error("out of memory");
            abort();
        }
    }
    req->client = c;
    req->worker = w;
    req->wt = w->topo;
    w->topo->users++;
    req->cmd = PROTO_CMD_NONE;
    req->noreply = false;
    req->done = false;
    req->closes = false;
    req->pending = 0;
    req->nkeys = 0;
    req->nfrags = 0;
    req->nfailed = 0;
    req->hits = 0;
    req->failover_owner = NULL;
    req->failover_clean = false;
    req->counted = 0;
    req->valslen = 0;
    req->errline[0] = '\0';
    return req;
}

static void
request_release(struct request *req)
{
    for (uint32_t i = 0; i < req->fragcap; i++) {
        if (req->frags[i].buf != NULL) {
            evbuffer_free(req->frags[i].buf);
        }
    }
    free(req->frags);
    free(req->line);
    free(req->keys);
    free(req->key_frag);
    free(req->block_len);
    free(req->block_off);
    free(req->frag_keys);
    free(req->vals);
    evbuffer_free(req->rsp);
    free(req);
}

void
request_put(struct request *req)
{
    struct worker *w = req->worker;
    size_t left = evbuffer_get_length(req->rsp);

    if (left > 0) {
        evbuffer_drain(req->rsp, left);
    }
    for (uint32_t i = 0; i < req->nfrags; i++) {
        struct evbuffer *b = req->frags[i].buf;

        if (b != NULL && evbuffer_get_length(b) > 0) {
            evbuffer_drain(b, evbuffer_get_length(b));
        }
    }
    worker_topo_release(w, req->wt);
    req->wt = NULL;
    if (req->valscap > REQUEST_KEEP_VALS) {
        free(req->vals);
        req->vals = NULL;
        req->valscap = 0;
    }
    if (w->nfree_requests >= REQUEST_FREE_MAX ||
        req->keycap > REQUEST_KEEP_KEYS || w->stopping) {
        request_release(req);
        return;
    }
    req->client = NULL;
    req->next_free = w->free_requests;
    w->free_requests = req;
    w->nfree_requests++;
}

void
request_free_list(struct worker *w)
{
    while (w->free_requests != NULL) {
        struct request *req = w->free_requests;

        w->free_requests = req->next_free;
        request_release(req);
    }
    w->nfree_requests = 0;
}

static void
request_reserve_frags(struct request *req, uint32_t n)
{
    if (n <= req->fragcap) {
        return;
    }
    req->frags = realloc(req->frags, n * sizeof(*req->frags));
    if (req->frags == NULL) {
        log_error("out of memory");
        abort();
    }
    memset(req->frags + req->fragcap, 0,
           (n - req->fragcap) * sizeof(*req->frags));
    req->fragcap = n;
}

static void *
request_grow(void *p, size_t n, size_t size)
{
    p = realloc(p, n * size);
    if (p == NULL) {
        log_error("out of memory");
        abort();
    }
    return p;
}

static void
request_reserve_keys(struct request *req, uint32_t n, size_t linelen)
{
    if (n > req->keycap) {
        req->keys = request_grow(req->keys, n, sizeof(*req->keys));
        req->key_frag = request_grow(req->key_frag, n, sizeof(uint32_t));
        req->block_len = request_grow(req->block_len, n, sizeof(uint32_t));
        req->block_off = request_grow(req->block_off, n, sizeof(uint32_t));
        req->frag_keys = request_grow(req->frag_keys, n, sizeof(uint32_t));
        req->keycap = n;
    }
    if (linelen > req->linecap) {
        req->line = request_grow(req->line, linelen, 1);
        req->linecap = linelen;
    }
}

static struct frag *
request_frag_init(struct request *req, enum frag_kind kind,
                  struct backend *be)
{
    struct frag *f = &req->frags[req->nfrags++];

    f->req = req;
    f->kind = kind;
    f->be = be;
    f->wb = be != NULL ? worker_wb(req->worker, be) : NULL;
    f->key_start = 0;
    f->nkeys = 0;
    f->cursor = 0;
    f->failed = false;
    f->fallback = false;
    return f;
}

static struct bconn *
request_pick(struct worker *w, struct worker_backend *wb)
{
    unsigned slot = 0;

    if (w->per_backend > 1) {
        slot = wb->next_slot++ % w->per_backend;
    }
    return wb->conns[slot];
}

static size_t request_strip_noreply(const char *line, size_t len,
                                    bool noreply);
static void request_failover_done(struct request *req,
                                  const struct backend *fallback);
static void request_owner_delete_failed(struct request *req,
                                        struct backend *owner);

static bool
request_backend_up(uint32_t b, void *arg)
{
    const struct topology *t = arg;

    return backend_is_up(t->backends[b]);
}

/*
 * The backend for key in the request's topology: its owner when UP, else
 * the next distinct UP backend clockwise from the owner's point, or NULL
 * when none is. The owner is stored in *owner.
 */
static struct backend *
request_route(struct request *req, const char *key, size_t len,
              struct backend **owner)
{
    const struct topology *t = req->wt->t;
    struct backend *o = t->backends[ring_lookup(t->ring, key, len)];
    uint32_t b;

    *owner = o;
    if (backend_is_up(o)) {
        return o;
    }
    stats_add(&worker_wb(req->worker, o)->stats->failovers, 1);
    b = ring_route(t->ring, key, len, request_backend_up, (void *)t);
    return b == RING_NONE ? NULL : t->backends[b];
}

/*
 * Caps the exptime of a write that goes to a fallback at failover_ttl, so
 * that a copy made during an outage does not outlive it for long.
 */
static int64_t
request_cap_exptime(const struct config *cfg, int64_t exptime)
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
static size_t
request_failover_line(const struct config *cfg, const struct proto_req *pr,
                      const char *line, size_t len, char *buf, size_t cap)
{
    int n;
    int64_t e = request_cap_exptime(cfg, pr->exptime);

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
        size_t m = request_strip_noreply(line, len, pr->noreply);

        n = (int)(m < cap ? m : cap - 1);
        memcpy(buf, line, (size_t)n);
    }
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

static void
request_set_error(struct request *req, const char *line)
{
    if (req->errline[0] == '\0') {
        snprintf(req->errline, sizeof(req->errline), "%s", line);
    }
}

/* Length of line without a trailing "noreply" token and spaces. */
static size_t
request_strip_noreply(const char *line, size_t len, bool noreply)
{
    while (len > 0 && line[len - 1] == ' ') {
        len--;
    }
    if (noreply && len >= 7) {
        len -= 7;
        while (len > 0 && line[len - 1] == ' ') {
            len--;
        }
    }
    return len;
}

static void request_finish(struct request *req);

void
request_reply(struct request *req, const char *line)
{
    if (!req->noreply) {
        evbuffer_add(req->rsp, line, strlen(line));
        evbuffer_add(req->rsp, "\r\n", 2);
    }
    req->done = true;
    if (req->client != NULL) {
        client_flush(req->client);
    } else {
        request_put(req);
    }
}

static void
request_dispatch_single(struct request *req, const struct proto_req *pr,
                        const char *line, size_t len, struct evbuffer *data,
                        size_t skip)
{
    struct worker *w = req->worker;
    struct backend *owner;
    struct backend *b = request_route(req, pr->key.p, pr->key.len, &owner);
    bool storage = proto_cmd_is_storage(pr->cmd);
    struct backend *ob = owner;
    struct bconn *bc, *obc = NULL;
    struct evbuffer *out;
    struct frag *f;

    /*
     * Every command routed here writes. On behalf of a backend that is not
     * UP, remember it so it can be undone before the owner is routed to
     * again; if the owner came back meanwhile, write to it instead. While
     * the owner is RECOVERING (reads still go to the fallback) the write
     * also deletes the key on the owner and is answered once both are
     * done: the owner then holds no older value, so the write need not
     * keep it out of the ring, and a steady stream of writes cannot hold
     * off its return.
     */
    if (b != owner && b != NULL) {
        if (backend_state(ob) == BACKEND_RECOVERING &&
            bconn_output(obc = request_pick(w, worker_wb(w, owner))) !=
                NULL) {
            req->failover_clean = true;
        } else if (recovery_note_unless(ob->recovery, &ob->state, BACKEND_UP,
                                        pr->key.p, pr->key.len, b->id)) {
            obc = NULL;
        } else {
            b = owner;
            obc = NULL;
        }
        if (b != owner) {
            /* Keep the key: it is noted once the write is done. */
            request_reserve_keys(req, 1, pr->key.len);
            memcpy(req->line, pr->key.p, pr->key.len);
            req->keys[0] = (struct proto_str){req->line, pr->key.len};
            req->failover_owner = owner;
        }
    }

    if (b == NULL) {
        if (storage) {
            evbuffer_drain(data, skip + (size_t)pr->vlen + 2);
        }
        stats_add(&w->stats.server_errors, 1);
        request_reply(req, "SERVER_ERROR no backend available");
        return;
    }
    bc = request_pick(w, worker_wb(w, b));
    out = bconn_output(bc);
    if (out == NULL) {
        if (storage) {
            evbuffer_drain(data, skip + (size_t)pr->vlen + 2);
        }
        stats_add(&worker_wb(w, b)->stats->errors, 1);
        stats_add(&w->stats.server_errors, 1);
        request_failover_done(req, b);
        request_reply(req, "SERVER_ERROR backend unavailable");
        return;
    }
    request_reserve_frags(req, 2);
    f = request_frag_init(req, FRAG_LINE, b);
    req->pending = 1;
    if (b != owner) {
        char fl[PROTO_LINE_MAX + 64];

        evbuffer_add(out, fl,
                     request_failover_line(w->cfg, pr, line, len, fl,
                                           sizeof(fl)));
    } else {
        evbuffer_add(out, line,
                     request_strip_noreply(line, len, pr->noreply));
    }
    evbuffer_add(out, "\r\n", 2);
    if (storage) {
        /* line and pr point into data's head: used up by now. */
        evbuffer_drain(data, skip);
        evbuffer_remove_buffer(data, out, (size_t)pr->vlen + 2);
    }
    bconn_enqueue(bc, f);
    if (obc == NULL) {
        return;
    }
    out = bconn_output(obc);
    if (out == NULL) {
        /* Cannot happen (it was usable above), but if it did the owner
         * could keep an older value: treat it as a failed delete. */
        request_owner_delete_failed(req, owner);
        return;
    }
    f = request_frag_init(req, FRAG_OWNER_DELETE, owner);
    req->pending++;
    evbuffer_add_printf(out, "delete %.*s\r\n", (int)req->keys[0].len,
                        req->keys[0].p);
    bconn_enqueue(obc, f);
}

static bool
request_touches(enum proto_cmd cmd)
{
    return cmd == PROTO_CMD_GAT || cmd == PROTO_CMD_GATS;
}

/* The exptime of a gat/gats for fragment f: capped on a fallback. */
static int64_t
request_gat_exptime(const struct request *req, const struct frag *f,
                    const struct proto_req *pr)
{
    return f->fallback ? request_cap_exptime(req->wt->t->cfg,
                                             pr->exptime)
                       : pr->exptime;
}

/* Writes the retrieval command for fragment f's keys, in one piece. */
static void
request_add_retrieval(const struct request *req, const struct frag *f,
                      const struct proto_req *pr, struct evbuffer *out)
{
    char num[24];
    int numlen = 0;
    size_t size;
    struct evbuffer_iovec v;
    char *p;

    if (request_touches(pr->cmd)) {
        numlen = snprintf(num, sizeof(num), " %lld",
                          (long long)request_gat_exptime(req, f, pr));
    }
    size = pr->name.len + (size_t)numlen + 2;
    for (uint32_t k = 0; k < f->nkeys; k++) {
        size += 1 + req->keys[req->frag_keys[f->key_start + k]].len;
    }
    if (evbuffer_reserve_space(out, (ev_ssize_t)size, &v, 1) != 1) {
        log_error("out of memory");
        abort();
    }
    p = v.iov_base;
    memcpy(p, pr->name.p, pr->name.len);
    p += pr->name.len;
    memcpy(p, num, (size_t)numlen);
    p += numlen;
    for (uint32_t k = 0; k < f->nkeys; k++) {
        const struct proto_str *ks =
            &req->keys[req->frag_keys[f->key_start + k]];

        *p++ = ' ';
        memcpy(p, ks->p, ks->len);
        p += ks->len;
    }
    *p++ = '\r';
    *p++ = '\n';
    v.iov_len = size;
    evbuffer_commit_space(out, &v, 1);
}

static void
request_dispatch_retrieval(struct request *req, const struct proto_req *pr,
                           const char *line, size_t len)
{
    struct worker *w = req->worker;
    const char *cur, *end;
    struct proto_str key;
    uint32_t i, nkeys = pr->nkeys;
    bool touches = request_touches(pr->cmd);

    stats_add(&w->stats.cmd_get, nkeys);
    if (touches) {
        stats_add(&w->stats.cmd_touch, nkeys);
    }
    req->nkeys = nkeys;

    if (nkeys == 1) {
        struct backend *owner;
        struct backend *b = request_route(req, pr->key.p, pr->key.len,
                                          &owner);
        struct bconn *bc;
        struct evbuffer *out;
        struct frag *f;

        request_reserve_frags(req, 1);
        f = request_frag_init(req, FRAG_RETRIEVAL, b);
        f->nkeys = 1;
        f->fallback = b != owner && touches;
        req->pending = 1;
        if (b == NULL) {
            request_frag_fail(f, "SERVER_ERROR no backend available");
            return;
        }
        bc = request_pick(w, f->wb);
        out = bconn_output(bc);
        if (out == NULL) {
            stats_add(&f->wb->stats->errors, 1);
            request_frag_fail(f, "SERVER_ERROR backend unavailable");
            return;
        }
        if (f->fallback) {
            evbuffer_add_printf(out, "%.*s %lld %.*s\r\n", (int)pr->name.len,
                                pr->name.p,
                                (long long)request_gat_exptime(req, f, pr),
                                (int)pr->key.len, pr->key.p);
        } else {
            evbuffer_add(out, line, request_strip_noreply(line, len, false));
            evbuffer_add(out, "\r\n", 2);
        }
        bconn_enqueue(bc, f);
        return;
    }

    /* Copy the keys: replies are matched against them later. */
    request_reserve_keys(req, nkeys, pr->keys.len);
    memcpy(req->line, pr->keys.p, pr->keys.len);
    cur = req->line;
    end = req->line + pr->keys.len;
    for (i = 0; proto_next_key(&cur, end, &key); i++) {
        struct backend *owner;
        struct backend *b = request_route(req, key.p, key.len, &owner);
        struct worker_backend *wb;
        uint32_t *slot;

        if (b == NULL) {
            /* No backend is up (they all went down together). */
            for (uint32_t fi = 0; fi < req->nfrags; fi++) {
                req->frags[fi].wb->frag_of[req->frags[fi].fallback] =
                    RING_NONE;
            }
            req->nfrags = 0;
            stats_add(&w->stats.server_errors, 1);
            request_reply(req, "SERVER_ERROR no backend available");
            return;
        }
        req->keys[i] = key;
        req->block_len[i] = 0;
        /* A gat/gats for a DOWN owner's keys goes in a fragment of its
         * own, whose exptime is capped. */
        wb = worker_wb(w, b);
        slot = &wb->frag_of[b != owner && touches];
        if (*slot == RING_NONE) {
            *slot = req->nfrags;
            request_reserve_frags(req, req->nfrags + 1);
            request_frag_init(req, FRAG_RETRIEVAL, b)->fallback =
                slot != &wb->frag_of[0];
        }
        req->key_frag[i] = *slot;
        req->frags[*slot].nkeys++;
    }
    /* Lay the keys out grouped by fragment, in the client's order. */
    for (uint32_t fi = 0, start = 0; fi < req->nfrags; fi++) {
        struct frag *f = &req->frags[fi];

        f->wb->frag_of[f->fallback] = RING_NONE;
        f->key_start = start;
        start += f->nkeys;
        f->nkeys = 0;
    }
    for (i = 0; i < nkeys; i++) {
        struct frag *f = &req->frags[req->key_frag[i]];

        req->frag_keys[f->key_start + f->nkeys++] = i;
    }

    /* One extra reference while sending, so that fragments failing at once
     * cannot finish (and recycle) the request under this loop. */
    req->pending = req->nfrags + 1;
    for (uint32_t fi = 0; fi < req->nfrags; fi++) {
        struct frag *f = &req->frags[fi];
        struct bconn *bc = request_pick(w, f->wb);
        struct evbuffer *out = bconn_output(bc);

        f->cursor = 0;
        if (req->nfrags > 1 && f->buf == NULL) {
            f->buf = evbuffer_new();
        }
        if (out == NULL) {
            stats_add(&f->wb->stats->errors, 1);
            request_frag_fail(f, "SERVER_ERROR backend unavailable");
            continue;
        }
        if (req->nfrags == 1 && !f->fallback) {
            evbuffer_add(out, line, request_strip_noreply(line, len, false));
            evbuffer_add(out, "\r\n", 2);
        } else {
            request_add_retrieval(req, f, pr, out);
        }
        bconn_enqueue(bc, f);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

static void
request_dispatch_flush(struct request *req, const struct proto_req *pr)
{
    struct worker *w = req->worker;
    const struct topology *t = req->wt->t;
    uint32_t n = t->n;
    char cmd[48];
    int cmdlen;

    stats_add(&w->stats.cmd_flush, 1);
    if (pr->has_delay) {
        cmdlen = snprintf(cmd, sizeof(cmd), "flush_all %lld\r\n",
                          (long long)pr->exptime);
    } else {
        cmdlen = snprintf(cmd, sizeof(cmd), "flush_all\r\n");
    }
    request_reserve_frags(req, n);
    req->pending = n + 1;
    for (uint32_t b = 0; b < n; b++) {
        struct frag *f;
        struct bconn *bc;
        struct evbuffer *out;

        if (!backend_is_up(t->backends[b])) {
            /* It misses this flush: it is flushed before it comes back. */
            recovery_note_flush(t->backends[b]->recovery);
            req->pending--;
            continue;
        }
        f = request_frag_init(req, FRAG_FLUSH, t->backends[b]);
        bc = request_pick(w, f->wb);
        out = bconn_output(bc);
        if (out == NULL) {
            request_frag_fail(f, "SERVER_ERROR backend unavailable");
            continue;
        }
        evbuffer_add(out, cmd, (size_t)cmdlen);
        bconn_enqueue(bc, f);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

static void
request_dispatch_local(struct request *req, const struct proto_req *pr)
{
    struct proxy *p = req->worker->proxy;
    const struct topology *t = req->wt->t;

    switch (pr->cmd) {
    case PROTO_CMD_VERSION:
        request_reply(req, "VERSION " PROXY_VERSION_STRING);
        return;
    case PROTO_CMD_VERBOSITY:
        /* 0: notices and worse (the default), 1: info, 2+: debug. */
        log_set_level(LOG_LEVEL_NOTICE + (int)(pr->level > 2 ? 2 : pr->level));
        request_reply(req, "OK");
        return;
    case PROTO_CMD_QUIT:
        req->closes = true;
        req->done = true;
        client_flush(req->client);
        return;
    case PROTO_CMD_STATS:
        if (pr->args.len == 0) {
            stats_render(p, t, req->rsp);
        } else if (pr->args.len == 8 && memcmp(pr->args.p, "backends", 8) == 0) {
            stats_render_backends(p, t, req->rsp);
        } else if (pr->args.len == 8 && memcmp(pr->args.p, "settings", 8) == 0) {
            stats_render_settings(p, t, req->rsp);
        } else if (pr->args.len == 5 && memcmp(pr->args.p, "reset", 5) == 0) {
            stats_reset(p, t);
            request_reply(req, "RESET");
            return;
        } else {
            request_reply(req, "ERROR");
            return;
        }
        req->done = true;
        client_flush(req->client);
        return;
    default:
        request_reply(req, "ERROR");
        return;
    }
}

void
request_dispatch(struct request *req, const struct proto_req *pr,
                 const char *line, size_t len, struct evbuffer *in,
                 size_t skip)
{
    struct worker *w = req->worker;

    req->cmd = pr->cmd;
    req->noreply = pr->noreply;
    switch (pr->cmd) {
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
    case PROTO_CMD_GAT:
    case PROTO_CMD_GATS:
        request_dispatch_retrieval(req, pr, line, len);
        return;
    case PROTO_CMD_SET:
    case PROTO_CMD_ADD:
    case PROTO_CMD_REPLACE:
    case PROTO_CMD_APPEND:
    case PROTO_CMD_PREPEND:
    case PROTO_CMD_CAS:
        stats_add(&w->stats.cmd_set, 1);
        request_dispatch_single(req, pr, line, len, in, skip);
        return;
    case PROTO_CMD_TOUCH:
        stats_add(&w->stats.cmd_touch, 1);
        request_dispatch_single(req, pr, line, len, in, skip);
        return;
    case PROTO_CMD_DELETE:
    case PROTO_CMD_INCR:
    case PROTO_CMD_DECR:
        request_dispatch_single(req, pr, line, len, in, skip);
        return;
    case PROTO_CMD_FLUSH_ALL:
        request_dispatch_flush(req, pr);
        return;
    default:
        request_dispatch_local(req, pr);
        return;
    }
}

static void
request_count_line(struct request *req, enum proto_rsp kind)
{
    struct stats_worker *s = &req->worker->stats;

    switch (req->cmd) {
    case PROTO_CMD_DELETE:
        stats_add(kind == PROTO_RSP_DELETED ? &s->delete_hits
                                            : &s->delete_misses, 1);
        break;
    case PROTO_CMD_INCR:
        stats_add(kind == PROTO_RSP_NUMBER ? &s->incr_hits : &s->incr_misses,
                  1);
        break;
    case PROTO_CMD_DECR:
        stats_add(kind == PROTO_RSP_NUMBER ? &s->decr_hits : &s->decr_misses,
                  1);
        break;
    case PROTO_CMD_TOUCH:
        stats_add(kind == PROTO_RSP_TOUCHED ? &s->touch_hits
                                            : &s->touch_misses, 1);
        break;
    case PROTO_CMD_CAS:
        if (kind == PROTO_RSP_STORED) {
            stats_add(&s->cas_hits, 1);
        } else if (kind == PROTO_RSP_EXISTS) {
            stats_add(&s->cas_badval, 1);
        } else if (kind == PROTO_RSP_NOT_FOUND) {
            stats_add(&s->cas_misses, 1);
        }
        break;
    default:
        break;
    }
}

/* A write made on a DOWN backend's behalf is answered or failed. */
static void
request_failover_done(struct request *req, const struct backend *fallback)
{
    struct recovery *r;

    if (req->failover_owner == NULL) {
        return;
    }
    r = req->failover_owner->recovery;
    if (req->failover_clean) {
        recovery_note_clean(r, req->keys[0].p, req->keys[0].len,
                            fallback->id);
    } else {
        recovery_write_done(r, req->keys[0].p, req->keys[0].len,
                            fallback->id);
    }
    req->failover_owner = NULL;
}

/*
 * The delete on a RECOVERING owner failed: it may still hold an older value
 * of the key, so the key must keep it out of the ring until a recovery pass
 * deletes it. The client is told that its write may not have happened.
 */
static void
request_owner_delete_failed(struct request *req, struct backend *owner)
{
    recovery_note(owner->recovery, req->keys[0].p, req->keys[0].len,
                  req->frags[0].be->id);
    req->nfailed++;
    request_set_error(req, "SERVER_ERROR backend unavailable");
}

void
request_frag_line(struct frag *f, const char *line, size_t len,
                  enum proto_rsp kind)
{
    struct request *req = f->req;

    if (f->kind == FRAG_OWNER_DELETE) {
        if (kind != PROTO_RSP_DELETED && kind != PROTO_RSP_NOT_FOUND) {
            request_owner_delete_failed(req, f->be);
        }
        if (--req->pending == 0) {
            request_finish(req);
        }
        return;
    }
    request_failover_done(req, f->be);

    if (f->kind == FRAG_FLUSH) {
        if (kind != PROTO_RSP_OK) {
            int n = (int)(len < 100 ? len : 100);

            while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n')) {
                n--;
            }
            log_warn("flush_all on backend %s: %.*s",
                     f->be->name, n,
                     line);
            f->failed = true;
            req->nfailed++;
        }
    } else {
        request_count_line(req, kind);
        if (!req->noreply && req->client != NULL) {
            evbuffer_add(req->rsp, line, len);
        }
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

bool
request_frag_match(struct frag *f, const char *key, size_t keylen,
                   uint32_t blocklen)
{
    struct request *req = f->req;

    if (req->client != NULL) {
        /* Values waiting for their turn count against the client's output
         * limit, so a client that does not read stops being read. */
        req->client->pending_bytes += blocklen;
        req->counted += blocklen;
    }
    if (req->nfrags == 1) {
        /* One fragment: the backend answers in the client's order. */
        req->hits++;
        return true;
    }
    while (f->cursor < f->nkeys) {
        uint32_t idx = req->frag_keys[f->key_start + f->cursor++];
        const struct proto_str *k = &req->keys[idx];

        if (k->len == keylen && memcmp(k->p, key, keylen) == 0) {
            req->block_len[idx] = blocklen;
            req->block_off[idx] = REQUEST_IN_FRAG;
            f->matched = idx;
            req->hits++;
            return true;
        }
    }
    return false;
}

void
request_frag_value(struct frag *f, const char *p, size_t len)
{
    struct request *req = f->req;

    if (req->nfrags == 1) {
        evbuffer_add(req->rsp, p, len);
        return;
    }
    if (len > REQUEST_SMALL_BLOCK) {
        evbuffer_add(f->buf, p, len);
        return;
    }
    if (req->valslen + len > req->valscap) {
        size_t cap = req->valscap == 0 ? 4096 : req->valscap * 2;

        while (cap < req->valslen + len) {
            cap *= 2;
        }
        req->vals = request_grow(req->vals, cap, 1);
        req->valscap = cap;
    }
    memcpy(req->vals + req->valslen, p, len);
    req->block_off[f->matched] = (uint32_t)req->valslen;
    req->valslen += len;
}

void
request_frag_value_move(struct frag *f, struct evbuffer *in, size_t len)
{
    struct request *req = f->req;

    evbuffer_remove_buffer(in, req->nfrags == 1 ? req->rsp : f->buf, len);
}

void
request_frag_end(struct frag *f)
{
    struct request *req = f->req;

    if (--req->pending == 0) {
        request_finish(req);
    }
}

void
request_frag_fail(struct frag *f, const char *reason)
{
    struct request *req = f->req;

    if (f->kind == FRAG_OWNER_DELETE) {
        request_owner_delete_failed(req, f->be);
        if (--req->pending == 0) {
            request_finish(req);
        }
        return;
    }
    request_failover_done(req, f->be);
    f->failed = true;
    req->nfailed++;
    request_set_error(req, reason);
    if (f->kind == FRAG_RETRIEVAL) {
        if (req->nfrags > 1) {
            /* Its keys become misses; drop what it had collected. */
            for (uint32_t k = 0; k < f->nkeys; k++) {
                uint32_t idx = req->frag_keys[f->key_start + k];

                if (req->block_len[idx] > 0) {
                    req->block_len[idx] = 0;
                    req->hits--;
                }
            }
            evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
        } else {
            evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
            req->hits = 0;
        }
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/*
 * Writes the VALUE blocks of a multi-fragment retrieval into req->rsp in
 * the client's key order: runs of small blocks (in req->vals) are copied
 * into one reserved extent, large ones moved from their fragment's buffer.
 */
static void
request_merge(struct request *req)
{
    uint32_t i = 0;

    while (i < req->nkeys) {
        struct evbuffer_iovec v;
        uint32_t j;
        size_t run = 0;
        char *p;

        if (req->block_len[i] > 0 && req->block_off[i] == REQUEST_IN_FRAG) {
            evbuffer_remove_buffer(req->frags[req->key_frag[i]].buf,
                                   req->rsp, req->block_len[i]);
            i++;
            continue;
        }
        for (j = i; j < req->nkeys && (req->block_len[j] == 0 ||
                                       req->block_off[j] != REQUEST_IN_FRAG);
             j++) {
            run += req->block_len[j];
        }
        if (run > 0) {
            if (evbuffer_reserve_space(req->rsp, (ev_ssize_t)run, &v, 1) !=
                1) {
                log_error("out of memory");
                abort();
            }
            p = v.iov_base;
            for (uint32_t k = i; k < j; k++) {
                if (req->block_len[k] > 0) {
                    memcpy(p, req->vals + req->block_off[k],
                           req->block_len[k]);
                    p += req->block_len[k];
                }
            }
            v.iov_len = run;
            evbuffer_commit_space(req->rsp, &v, 1);
        }
        i = j;
    }
}

static void
request_finish_retrieval(struct request *req)
{
    struct stats_worker *s = &req->worker->stats;

    if (req->nfailed == req->nfrags) {
        stats_add(&s->get_errors, req->nkeys);
        stats_add(&s->server_errors, 1);
        evbuffer_add(req->rsp, req->errline, strlen(req->errline));
        evbuffer_add(req->rsp, "\r\n", 2);
        return;
    }
    if (req->nfrags > 1) {
        request_merge(req);
        for (uint32_t fi = 0; fi < req->nfrags; fi++) {
            if (req->frags[fi].failed) {
                stats_add(&s->get_errors, req->frags[fi].nkeys);
            }
        }
    }
    stats_add(&s->get_hits, req->hits);
    stats_add(&s->get_misses, req->nkeys - req->hits);
    evbuffer_add(req->rsp, "END\r\n", 5);
}

static void
request_finish(struct request *req)
{
    if (req->client == NULL) {
        request_put(req);
        return;
    }
    switch (req->cmd) {
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
    case PROTO_CMD_GAT:
    case PROTO_CMD_GATS:
        request_finish_retrieval(req);
        break;
    case PROTO_CMD_FLUSH_ALL:
        if (!req->noreply) {
            if (req->nfailed == 0) {
                evbuffer_add(req->rsp, "OK\r\n", 4);
            } else {
                evbuffer_add_printf(req->rsp,
                                    "SERVER_ERROR flush_all failed on %u of "
                                    "%u backends\r\n",
                                    req->nfailed, req->nfrags);
            }
        }
        break;
    default:
        if (req->nfailed > 0) {
            stats_add(&req->worker->stats.server_errors, 1);
            /* The fallback's answer, if any, is not the whole story. */
            evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
            if (!req->noreply) {
                evbuffer_add(req->rsp, req->errline, strlen(req->errline));
                evbuffer_add(req->rsp, "\r\n", 2);
            }
        }
        break;
    }
    req->done = true;
    client_flush(req->client);
}
