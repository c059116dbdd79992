/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * request: the life of a client command, from dispatch to its reply.
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
 *   flush_all,          -> one FRAG_ALL per UP backend, OK only if all are
 *   cache_memlimit,
 *   verbosity
 *   version, stats, ... -> answered by admin.c
 *
 * Where a key goes is route.c's (owner, fallback, failover write policy);
 * how a multi-key retrieval is split and merged is mget.c's.
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
#include <xxhash.h>

#include "admin.h"
#include "backend.h"
#include "bconn.h"
#include "big.h"
#include "client.h"
#include "cmdroute.h"
#include "config.h"
#include "l1.h"
#include "log.h"
#include "mget.h"
#include "proto.h"
#include "ratelimit.h"
#include "recovery.h"
#include "replica.h"
#include "request.h"
#include "ring.h"
#include "route.h"
#include "shadow.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "warmup.h"
#include "watch.h"
#include "worker.h"

/* Requests kept on a worker's free list; more are freed. */
#define REQUEST_FREE_MAX 4096
/* Arrays of a recycled request larger than this are released. */
#define REQUEST_KEEP_KEYS 4096
#define REQUEST_KEEP_VALS 16384

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
    req->spool_delete = false;
    req->refused = NULL;
    req->more = false;
    req->split = false;
    req->meta_quiet = false;
    req->counted = 0;
    req->valslen = 0;
    req->errline[0] = '\0';
    req->stream = true;
    req->nprev = 0;
    req->prev_b64 = false;
    req->nwarm = 0;
    req->warm_sent = false;
    req->meta_seen = false;
    req->warm_touch = false;
    req->copy.src = NULL;
    req->copy.held = false;
    req->deferred_be = NULL;
    req->l1_slot = 0;
    req->big_phase = false;
    req->big_meta = false;
    req->big_src_set = false;
    req->big_keylen = 0;
    req->big_parent = NULL;
    req->watch_mask = 0;
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
    free(req->key_prev);
    free(req->big_head);
    free(req->big_src);
    free(req->big_key);
    if (req->big_data != NULL) {
        evbuffer_free(req->big_data);
    }
    free(req->vals);
    free(req->watch_keys);
    evbuffer_free(req->rsp);
    free(req);
}

void
request_put(struct request *req)
{
    struct worker *w = req->worker;
    size_t left = evbuffer_get_length(req->rsp);

    if (req->copy.held) {
        warmup_copy_done(req);
    }
    if (req->remote_bytes > 0) {
        w->region_writes--;
        w->region_write_bytes -= req->remote_bytes;
        req->remote_bytes = 0;
    }
    if (req->l1_slot > 0) {
        (void)l1_unwatch(&w->l1, req->l1_slot, req->l1_gen);
        req->l1_slot = 0;
    }
    if (req->shadow_bytes > 0) {
        w->shadow_inflight--;
        w->shadow_bytes -= req->shadow_bytes;
        req->shadow_bytes = 0;
    }
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

void
request_reserve_frags(struct request *req, uint32_t n)
{
    if (n <= req->fragcap) {
        return;
    }
    req->frags = util_xrealloc(req->frags, n, sizeof(*req->frags));
    memset(req->frags + req->fragcap, 0,
           (n - req->fragcap) * sizeof(*req->frags));
    req->fragcap = n;
}

void
request_reserve_keys(struct request *req, uint32_t n, size_t linelen)
{
    if (n > req->keycap) {
        req->keys = util_xrealloc(req->keys, n, sizeof(*req->keys));
        req->key_frag = util_xrealloc(req->key_frag, n, sizeof(uint32_t));
        req->block_len = util_xrealloc(req->block_len, n, sizeof(uint32_t));
        req->block_off = util_xrealloc(req->block_off, n, sizeof(uint32_t));
        req->frag_keys = util_xrealloc(req->frag_keys, n, sizeof(uint32_t));
        req->key_prev = util_xrealloc(req->key_prev, n,
                                      sizeof(*req->key_prev));
        req->keycap = n;
    }
    if (linelen > req->linecap) {
        req->line = util_xrealloc(req->line, linelen, 1);
        req->linecap = linelen;
    }
}

struct frag *
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
    f->joined = false;
    f->rescue_left = 0;
    f->rescue_of = 0;
    return f;
}

void
request_set_error(struct request *req, const char *line)
{
    if (req->errline[0] == '\0') {
        snprintf(req->errline, sizeof(req->errline), "%s", line);
    }
}

void
request_keep_delete(struct request *req, const struct proto_str *key)
{
    if (req->wt->t->cfg->delete_spool != NULL &&
        proto_key_classic(key->p, key->len)) {
        request_keep_key(req, key);
        req->spool_delete = true;
    }
}

void
request_delete_failed(struct request *req, struct backend *be)
{
    if (req->spool_delete && be != NULL) {
        recovery_note(be->recovery, req->keys[0].p, req->keys[0].len, be->id);
    }
}

/* A write made on a DOWN backend's behalf is answered or failed. */
static void
request_failover_done(struct request *req, const struct backend *fallback)
{
    if (req->failover_owner != NULL) {
        route_write_done(req->failover_owner, req->failover_clean,
                         req->keys[0].p, req->keys[0].len, fallback);
        req->failover_owner = NULL;
    }
}

static void request_finish(struct request *req);

/*
 * A write that a replica out of reach could not have noted for its
 * recovery (the key cannot be named): refused rather than leave that
 * replica an older value nobody cleans up; its data block (block bytes
 * of data) skipped. Copies sent before are answered first.
 */
static void
request_refuse_unnamed(struct request *req, struct backend *b,
                       struct evbuffer *data, size_t block)
{
    if (block > 0) {
        evbuffer_drain(data, block);
    }
    if (req->pending > 1) {
        /* the reply waits for them */
        req->nfailed++;
        request_set_error(req, "SERVER_ERROR backend unavailable");
        if (--req->pending == 0) {
            request_finish(req);
        }
        return;
    }
    req->pending = 0;
    stats_add(&req->worker->stats.server_errors, 1);
    request_failover_done(req, b);
    request_reply(req, "SERVER_ERROR backend unavailable");
}

/*
 * The delete on a RECOVERING owner failed: see route_owner_delete_failed().
 * The client is told that its write may not have happened.
 */
static void
request_owner_delete_failed(struct request *req, struct backend *owner)
{
    route_owner_delete_failed(owner, req->keys[0].p, req->keys[0].len,
                              req->frags[0].be);
    req->nfailed++;
    request_set_error(req, "SERVER_ERROR backend unavailable");
}

void
request_reply(struct request *req, const char *line)
{
    if (req->refused != NULL) {
        /* The delete that goes with it could not be sent. */
        line = req->refused;
    }
    if (req->split) {
        /* A piece of a split retrieval (no backend up): misses. */
        line = req->more ? NULL : "END";
    }
    if (!req->noreply && line != NULL) {
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

/*
 * The backend a write goes to (NULL: none is up), and its connection's
 * output (NULL: the backend cannot take requests now). Neither: the write
 * is answered here, its data block (block bytes after skip) skipped. key:
 * the write's only key, as the backend names the item (a meta command's
 * decoded), or NULL.
 */
static struct evbuffer *
request_write_output(struct request *req, struct backend *b,
                     const struct proto_str *key, struct evbuffer *data,
                     size_t skip, size_t block, struct bconn **bc)
{
    struct worker *w = req->worker;
    struct evbuffer *out = NULL;

    if (b != NULL) {
        *bc = route_pick(w, worker_wb(w, b));
        out = key != NULL ? bconn_output_key(*bc, key->p, key->len)
                          : bconn_output(*bc);
    }
    if (out != NULL) {
        return out;
    }
    if (data != NULL && block > 0) {
        evbuffer_drain(data, skip + block);
    }
    stats_add(&w->stats.server_errors, 1);
    if (b == NULL) {
        request_reply(req, "SERVER_ERROR no backend available");
    } else {
        const char *why = bconn_refuse(*bc);

        request_failover_done(req, b);
        request_delete_failed(req, b);
        request_reply(req, why);
    }
    return NULL;
}

void
request_keep_key(struct request *req, const struct proto_str *key)
{
    request_reserve_keys(req, 1, key->len);
    memmove(req->line, key->p, key->len);
    req->keys[0] = (struct proto_str){req->line, key->len};
}

/* Keeps the key of a write made on owner's behalf (noted once done). */
static void
request_keep_failover(struct request *req, const struct proto_str *key,
                      struct backend *owner, bool clean)
{
    request_keep_key(req, key);
    req->failover_owner = owner;
    req->failover_clean = clean;
}

/* The delete of a write's key on its RECOVERING owner, on obc. */
static void
request_owner_delete(struct request *req, struct bconn *obc)
{
    struct evbuffer *out = bconn_output(obc);
    struct frag *f;

    if (out == NULL) {
        /* Cannot happen (it was usable when routed), but if it did the
         * owner could keep an older value: treat it as a failed delete. */
        request_owner_delete_failed(req, req->failover_owner);
        return;
    }
    f = request_frag_init(req, FRAG_OWNER_DELETE, req->failover_owner);
    req->pending++;
    evbuffer_add_printf(out, "delete %.*s\r\n", (int)req->keys[0].len,
                        req->keys[0].p);
    bconn_enqueue(obc, f);
}

/*
 * Keeps a delete's bytes (n, then "\r\n" and with quiet an "mn") to send
 * to b as kind once the previous owners' deletes are answered, and sends
 * those: a warm-up copy that races the delete then finds its source gone
 * and is deleted again (see warmup.h).
 */
static void
request_defer(struct request *req, struct backend *b, enum frag_kind kind,
              const char *bytes, size_t n, bool quiet)
{
    size_t len = n + 2 + (quiet ? 4 : 0);

    if (len > req->valscap) {
        req->vals = util_xrealloc(req->vals, len, 1);
        req->valscap = len;
    }
    memcpy(req->vals, bytes, n);
    memcpy(req->vals + n, "\r\nmn\r\n", len - n);
    req->valslen = len;
    req->deferred_be = b;
    req->deferred_kind = kind;
    if (req->client != NULL) {
        /* A read pipelined after it must not overtake it. */
        req->client->barrier = req;
    }
    if (req->pending == 0) {
        request_finish(req);
    }
}

bool
request_send_deferred(struct request *req)
{
    struct worker *w = req->worker;
    struct backend *b = req->deferred_be;
    struct worker_backend *wb = worker_wb(w, b);
    struct bconn *bc = NULL;
    struct evbuffer *out = NULL;

    req->deferred_be = NULL;
    if (req->client != NULL && req->client->barrier == req) {
        client_barrier_done(req->client);
    }
    if (wb != NULL) {
        bc = route_pick(w, wb);
        out = bconn_output(bc);
    }
    if (out == NULL) {
        request_delete_failed(req, b);
        req->nfailed++;
        request_set_error(req, wb != NULL
                                   ? bconn_refuse(bc)
                                   : "SERVER_ERROR backend unavailable");
        return false;
    }
    request_reserve_frags(req, req->nfrags + 1);
    evbuffer_add(out, req->vals, req->valslen);
    req->valslen = 0;
    req->pending++;
    bconn_enqueue(bc, request_frag_init(req, req->deferred_kind, b));
    return true;
}

static void
request_dispatch_single(struct request *req, const struct proto_req *pr,
                        const char *line, size_t len, struct evbuffer *data,
                        size_t skip)
{
    struct worker *w = req->worker;
    bool storage = proto_cmd_is_storage(pr->cmd);
    struct bconn *bc, *obc;
    struct route_write rw;
    struct backend *b, *owner;
    struct evbuffer *out;
    struct frag *f;
    uint32_t others;
    int nreplicas;

    /* Every command routed here writes: the failover write policy. */
    route_write(w, req->wt->t, pr, &rw);
    b = rw.target;
    owner = rw.owner;
    obc = rw.owner_conn;
    if (owner != NULL) {
        request_keep_failover(req, &pr->key, owner, rw.clean);
    }
    if (pr->cmd == PROTO_CMD_DELETE) {
        request_keep_delete(req, &pr->key);
        if (b == NULL) {
            /* No backend to take it: its owner keeps it. */
            request_delete_failed(req, rw.ring_owner);
        }
    }
    if (req->wt->t->origin[0] != NULL && b != NULL) {
        warmup_note_write(req, &pr->key, &pr->key, false,
                          owner != NULL ? owner : b, b);
    }
    out = request_write_output(req, b, &pr->key, data, skip,
                               storage ? (size_t)pr->vlen + 2 : 0, &bc);
    if (out == NULL) {
        return;
    }
    /* Held while sending: a fragment may fail at once. Room for every
     * fragment first: queued ones must not move. */
    req->pending = 1;
    others = pr->cmd == PROTO_CMD_DELETE
                 ? cmdroute_delete_frags(req->wt->t, &pr->key)
                 : 0;
    request_reserve_frags(req, 2 + others +
                                   replica_frags_needed(req->wt->t, &pr->key));
    if (others > 0 && cmdroute_send_deletes(req, pr, &pr->key) < 0) {
        /* Another pool's backend is out and its recovery could not name
         * the key. */
        req->pending = 0;
        stats_add(&w->stats.server_errors, 1);
        request_failover_done(req, b);
        request_reply(req, "SERVER_ERROR backend unavailable");
        return;
    }
    nreplicas = req->wt->t->replicated
                    ? replica_send_writes(req, pr, &pr->key, line, len, data,
                                          skip, b)
                    : 0;
    if (nreplicas >= 0 && req->wt->t->regional) {
        int r = replica_send_remote(req, pr, &pr->key, line, len, data, skip);

        nreplicas = r < 0 ? r : nreplicas + r;
    }
    if (nreplicas < 0) {
        request_refuse_unnamed(req, b, data,
                               storage ? skip + (size_t)pr->vlen + 2 : 0);
        return;
    }
    if ((req->nprev > 0 || nreplicas > 0) && pr->cmd == PROTO_CMD_DELETE &&
        obc == NULL) {
        /* A moved or replicated key's delete: its previous owners and
         * other replicas first, so that no copy can bring it back. */
        char fl[PROTO_LINE_BUF + 64];
        size_t n = owner != NULL ? route_failover_line(w->cfg, pr, line, len,
                                                       fl, sizeof(fl))
                                 : proto_strip_noreply(line, len, pr->noreply);

        req->pending--;
        request_defer(req, b, FRAG_LINE, owner != NULL ? fl : line, n, false);
        return;
    }
    f = request_frag_init(req, FRAG_LINE, b);
    req->pending++;
    if (owner != NULL) {
        char fl[PROTO_LINE_BUF + 64];

        evbuffer_add(out, fl,
                     route_failover_line(w->cfg, pr, line, len, fl,
                                         sizeof(fl)));
    } else {
        evbuffer_add(out, line, proto_strip_noreply(line, len, pr->noreply));
    }
    evbuffer_add(out, "\r\n", 2);
    if (storage) {
        /* line and pr point into data's head: used up by now. */
        evbuffer_drain(data, skip);
        evbuffer_remove_buffer(data, out, (size_t)pr->vlen + 2);
    }
    bconn_enqueue(bc, f);
    if (obc != NULL) {
        request_owner_delete(req, obc);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/*
 * A get whose every key is in the worker's l1 cache: answered from it, and
 * true returned. Else nothing changes.
 */
static bool
request_l1_serve(struct request *req, const struct proto_req *pr)
{
    struct worker *w = req->worker;
    const char *cur = pr->keys.p, *end = pr->keys.p + pr->keys.len;
    uint64_t now = worker_now_us(w);
    struct proto_str key;
    uint32_t n = 0;

    if (w->l1.n == 0) {
        return false;
    }
    /* One look-up a key; a miss takes back what the hits added. */
    while (proto_next_key(&cur, end, &key)) {
        size_t blen;
        const char *b = l1_get(&w->l1, key.p, key.len,
                               XXH3_64bits(key.p, key.len), now, &blen);

        if (b == NULL) {
            if (n > 0) {
                evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
            }
            return false;
        }
        evbuffer_add(req->rsp, b, blen);
        n++;
    }
    stats_add(&w->stats.l1_hits, n);
    stats_add(&w->stats.get_hits, n);
    request_reply(req, "END");
    return true;
}

/* The single-key get pr may fill the l1 cache: a hot key, ticket taken. */
static void
request_l1_watch(struct request *req, const struct proto_req *pr)
{
    struct worker *w = req->worker;
    uint64_t h = XXH3_64bits(pr->key.p, pr->key.len);

    if (!worker_hot_spread(w, h)) {
        return;
    }
    req->l1_slot = l1_watch(&w->l1, h, &req->l1_gen);
}

/* A get that may fill (req->l1_slot) is answered: its value cached when
 * it was a hit and no write of the key came meanwhile. */
static void
request_l1_fill(struct request *req)
{
    struct worker *w = req->worker;
    uint32_t slot = req->l1_slot;
    size_t len = evbuffer_get_length(req->rsp);
    unsigned evicted;

    req->l1_slot = 0;
    if (!l1_unwatch(&w->l1, slot, req->l1_gen) || req->hits != 1 ||
        req->nfailed > 0 || !req->stream || req->nwarm > 0 || req->split ||
        len == 0) {
        return;
    }
    if (l1_put(&w->l1, req->keys[0].p, req->keys[0].len,
               XXH3_64bits(req->keys[0].p, req->keys[0].len),
               (const char *)evbuffer_pullup(req->rsp, -1), len,
               worker_now_us(w), &evicted)) {
        stats_add(&w->stats.l1_fills, 1);
    }
    stats_add(&w->stats.l1_evictions, evicted);
    atomic_store_explicit(&w->stats.l1_bytes, w->l1.bytes,
                          memory_order_relaxed);
}

/* Whether cmd changes a key's value (flush_all: every key's). */
static bool
request_l1_changes(enum proto_cmd cmd)
{
    return (proto_cmd_has_key(cmd) && !proto_cmd_is_retrieval(cmd) &&
            cmd != PROTO_CMD_MG && cmd != PROTO_CMD_ME) ||
           cmd == PROTO_CMD_FLUSH_ALL;
}

/* A command that changes pr's key (flush_all: every key): out of the l1
 * cache, and no get in flight fills it. */
static void
request_l1_forget(struct worker *w, const struct proto_req *pr)
{
    struct proto_str key = pr->key;
    char keybuf[PROTO_KEY_MAX];

    if (pr->cmd == PROTO_CMD_FLUSH_ALL) {
        l1_invalidate_all(&w->l1);
    } else {
        if (pr->meta_b64) {
            key.len = proto_base64_decode(pr->key.p, pr->key.len, keybuf,
                                          sizeof(keybuf));
            key.p = keybuf;
        }
        if (l1_invalidate(&w->l1, key.p, key.len,
                          XXH3_64bits(key.p, key.len))) {
            stats_add(&w->stats.l1_invalidations, 1);
        }
    }
    atomic_store_explicit(&w->stats.l1_bytes, w->l1.bytes,
                          memory_order_relaxed);
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
    return f->fallback ? route_cap_exptime(req->wt->t->cfg,
                                             pr->exptime)
                       : pr->exptime;
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
        req->warm_touch = true;
        req->warm_exptime = pr->exptime;
    }
    req->nkeys = nkeys;
    if (nkeys == 0) {
        /* gat/gats with an exptime and no key: memcached says END. */
        request_reply(req, "END");
        return;
    }
    if (w->l1.max_bytes > 0 && pr->cmd == PROTO_CMD_GET) {
        if (request_l1_serve(req, pr)) {
            return;
        }
        if (nkeys == 1 && req->client != NULL) {
            request_l1_watch(req, pr);
            if (req->l1_slot > 0) {
                /* Its key, to fill with. */
                request_keep_key(req, &pr->key);
            }
        }
    }

    if (nkeys == 1) {
        struct backend *owner;
        struct backend *b = route_key(w, req->wt->t, pr->key.p, pr->key.len,
                                      &owner);
        struct bconn *bc;

        if (req->wt->t->spread && w->nspread > 0 && !touches) {
            b = route_spread(w, req->wt->t, pr->key.p, pr->key.len, b);
        }
        struct evbuffer *out;
        struct frag *f;

        request_reserve_frags(req, 1);
        f = request_frag_init(req, FRAG_RETRIEVAL, b);
        f->nkeys = 1;
        f->fallback = b != owner && touches;
        req->pending = 1;
        if (topology_reads_fall_through(req->wt->t) &&
            b != NULL) {
            /* Its key, for a warm-up read if it misses. */
            req->nkeys = 0;
            request_keep_key(req, &pr->key);
            req->nkeys = 1;
            req->key_frag[0] = 0;
            req->block_len[0] = 0;
            warmup_note_read(req, 0, &req->keys[0], owner, b);
        }
        if (b == NULL) {
            request_frag_fail(f, "SERVER_ERROR no backend available");
            return;
        }
        bc = route_pick(w, f->wb);
        if (!f->fallback && (pr->cmd == PROTO_CMD_GET ||
                             pr->cmd == PROTO_CMD_GETS)) {
            /* Its key tells its reply from those of the gets it shares
             * a line with. */
            request_keep_key(req, &pr->key);
            req->frag_keys[0] = 0;
            if (!bconn_send_get(bc, f, pr)) {
                request_frag_fail(f, bconn_refuse(bc));
            }
            return;
        }
        out = bconn_output(bc);
        if (out == NULL) {
            request_frag_fail(f, bconn_refuse(bc));
            return;
        }
        if (f->fallback) {
            evbuffer_add_printf(out, "%.*s %lld %.*s\r\n", (int)pr->name.len,
                                pr->name.p,
                                (long long)request_gat_exptime(req, f, pr),
                                (int)pr->key.len, pr->key.p);
        } else {
            evbuffer_add(out, line, proto_strip_noreply(line, len, false));
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
        struct backend *b = route_key(w, req->wt->t, key.p, key.len, &owner);
        struct worker_backend *wb;
        uint32_t *slot;

        if (req->wt->t->spread && w->nspread > 0 && !touches) {
            b = route_spread(w, req->wt->t, key.p, key.len, b);
        }

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
        if (topology_reads_fall_through(req->wt->t)) {
            warmup_note_read(req, i, &key, owner, b);
        }
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
    for (uint32_t fi = 0; fi < req->nfrags; fi++) {
        req->frags[fi].wb->frag_of[req->frags[fi].fallback] = RING_NONE;
    }
    mget_layout(req);
    /* Keys to warm up are answered in the client's order: collected. */
    req->stream = req->nfrags == 1 && req->nwarm == 0;

    /* One extra reference while sending, so that fragments failing at once
     * cannot finish (and recycle) the request under this loop. */
    req->pending = req->nfrags + 1;
    for (uint32_t fi = 0; fi < req->nfrags; fi++) {
        struct frag *f = &req->frags[fi];
        struct bconn *bc = route_pick(w, f->wb);
        struct evbuffer *out;

        f->cursor = 0;
        if (!req->stream && f->buf == NULL) {
            f->buf = evbuffer_new();
        }
        if (!f->fallback && (pr->cmd == PROTO_CMD_GET ||
                             pr->cmd == PROTO_CMD_GETS)) {
            if (!bconn_send_get(bc, f, pr)) {
                request_frag_fail(f, bconn_refuse(bc));
            }
            continue;
        }
        out = bconn_output(bc);
        if (out == NULL) {
            request_frag_fail(f, bconn_refuse(bc));
            continue;
        }
        if (req->nfrags == 1 && !f->fallback) {
            evbuffer_add(out, line, proto_strip_noreply(line, len, false));
            evbuffer_add(out, "\r\n", 2);
        } else {
            mget_write(req, f, pr, request_gat_exptime(req, f, pr), out);
        }
        bconn_enqueue(bc, f);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/*
 * flush_all and cache_memlimit: one FRAG_ALL to every UP backend; the
 * client gets OK only if every one of them answered OK.
 */
static void
request_dispatch_all(struct request *req, const struct proto_req *pr)
{
    struct worker *w = req->worker;
    const struct topology *t = req->wt->t;
    bool flush = pr->cmd == PROTO_CMD_FLUSH_ALL;
    uint32_t n = t->n;
    char cmd[48];
    int cmdlen;

    if (pr->cmd == PROTO_CMD_VERBOSITY) {
        /* mcring's own log level too: 0 notices, 1 info, 2+ debug. */
        log_set_level(LOG_LEVEL_NOTICE +
                      (int)(pr->level > 2 ? 2 : pr->level));
        cmdlen = snprintf(cmd, sizeof(cmd), "verbosity %u\r\n",
                          (unsigned)pr->level);
    } else if (!flush) {
        /* memcached's own checks, the same on every backend. */
        if (pr->level < 8) {
            request_reply(req, "MEMLIMIT_TOO_SMALL cannot set maxbytes to "
                               "less than 8m");
            return;
        }
        if (pr->level > 1000000000) {
            request_reply(req, "MEMLIMIT_ADJUST_FAILED input value is "
                               "megabytes not bytes");
            return;
        }
        cmdlen = snprintf(cmd, sizeof(cmd), "cache_memlimit %u\r\n",
                          (unsigned)pr->level);
    } else if (pr->has_delay) {
        stats_add(&w->stats.cmd_flush, 1);
        cmdlen = snprintf(cmd, sizeof(cmd), "flush_all %lld\r\n",
                          (long long)pr->exptime);
    } else {
        stats_add(&w->stats.cmd_flush, 1);
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
            if (flush) {
                recovery_note_flush(t->backends[b]->recovery);
            }
            req->pending--;
            continue;
        }
        f = request_frag_init(req, FRAG_ALL, t->backends[b]);
        bc = route_pick(w, f->wb);
        out = bconn_output(bc);
        if (out == NULL) {
            request_frag_fail(f, bconn_refuse(bc));
            continue;
        }
        evbuffer_add(out, cmd, (size_t)cmdlen);
        bconn_enqueue(bc, f);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/*
 * stats ARGS that are not mcring's own (FRAG_STATS), and slabs, lru,
 * lru_crawler and extstore (FRAG_ADMIN): one fragment to every UP
 * backend, the answers merged by admin_merge_stats() or
 * admin_merge_answers() when all are in.
 * The tuning commands' line goes as the client sent it, then an mn: the
 * backend's MN ends its answer, which is none when it took a noreply.
 */
static void
request_dispatch_every(struct request *req, const struct proto_req *pr,
                       const char *line, size_t len)
{
    struct worker *w = req->worker;
    const struct topology *t = req->wt->t;
    bool stats = pr->cmd == PROTO_CMD_STATS;

    request_reserve_frags(req, t->n);
    req->pending = t->n + 1;
    for (uint32_t b = 0; b < t->n; b++) {
        struct frag *f;
        struct bconn *bc;
        struct evbuffer *out;

        if (!backend_is_up(t->backends[b])) {
            req->pending--;
            continue;
        }
        f = request_frag_init(req, stats ? FRAG_STATS : FRAG_ADMIN,
                              t->backends[b]);
        if (f->buf == NULL) {
            f->buf = evbuffer_new();
        }
        bc = route_pick(w, f->wb);
        out = bconn_output(bc);
        if (out == NULL) {
            request_frag_fail(f, bconn_refuse(bc));
            continue;
        }
        if (stats) {
            evbuffer_add(out, "stats ", 6);
            evbuffer_add(out, pr->args.p, pr->args.len);
            evbuffer_add(out, "\r\n", 2);
        } else {
            evbuffer_add(out, line, len);
            evbuffer_add(out, "\r\nmn\r\n", 6);
        }
        bconn_enqueue(bc, f);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

int
request_frag_stats_line(struct frag *f, const char *line, size_t len)
{
    if (evbuffer_get_length(f->buf) + len > REQUEST_STATS_MAX) {
        return -1;
    }
    evbuffer_add(f->buf, line, len);
    return 0;
}

void
request_frag_stats_end(struct frag *f, const char *line, size_t len,
                       enum proto_rsp kind)
{
    struct request *req = f->req;

    if (f->kind == FRAG_STATS && kind != PROTO_RSP_END) {
        /* A one-line answer (OK to stats detail on, ERROR for an
         * unknown subcommand...). */
        evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
        evbuffer_add(f->buf, line, len);
        f->failed = true;
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/* A command mcring answers itself (admin.c). */
static void
request_dispatch_local(struct request *req, const struct proto_req *pr)
{
    req->closes = admin_answer(req->worker->group, req->wt->t, pr, req->rsp);
    if (req->noreply) {
        evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
    }
    req->done = true;
    client_flush(req->client);
}

/*
 * A meta command's line as it goes to a backend: as the client sent it,
 * but on a fallback with a ttl flag capped at failover_ttl (ms without T
 * gets one). Returns its length in buf.
 */
static size_t
request_meta_line(const struct request *req, const struct proto_req *pr,
                  const char *line, size_t len, bool fallback, char *buf,
                  size_t cap)
{
    const char *p = line, *end = line + len;
    const struct config *cfg = req->wt->t->cfg;
    struct proto_str tok;
    bool have_ttl = false;
    size_t n = 0;
    uint32_t idx = 0;

    while (proto_next_key(&p, end, &tok)) {
        const char *t = tok.p;
        size_t tl = tok.len;

        if (n + tl + 32 > cap) {
            break;
        }
        if (n > 0) {
            buf[n++] = ' ';
        }
        if (fallback && idx >= pr->meta_flags && tl > 1 &&
            (t[0] == 'T' || (t[0] == 'N' && pr->cmd == PROTO_CMD_MA))) {
            struct proto_str num = {t + 1, tl - 1};
            char tmp[24];
            int64_t e = 0;
            uint64_t u;

            if (t[0] == 'T') {
                have_ttl = true;
            }
            if (util_parse_i64(num.p, num.len, &e) == 0 ||
                util_parse_u64(num.p, num.len, &u) == 0) {
                int m = snprintf(tmp, sizeof(tmp), "%c%lld", t[0],
                                 (long long)route_cap_exptime(cfg, e));

                memcpy(buf + n, tmp, (size_t)m);
                n += (size_t)m;
                idx++;
                continue;
            }
        }
        memcpy(buf + n, t, tl);
        n += tl;
        idx++;
    }
    if (fallback && pr->cmd == PROTO_CMD_MS && !have_ttl &&
        cfg->failover_ttl > 0) {
        n += (size_t)snprintf(buf + n, cap - n, " T%u", cfg->failover_ttl);
    }
    return n;
}

/*
 * mg ms md ma me: routed by key (a base64 key decoded to route), the line
 * forwarded (see request_meta_line()), the reply relayed. ms, md, ma write:
 * the failover write policy applies as to classic writes.
 */
static void
request_dispatch_meta(struct request *req, const struct proto_req *pr,
                      const char *line, size_t len, struct evbuffer *data,
                      size_t skip)
{
    struct worker *w = req->worker;
    bool write = pr->cmd == PROTO_CMD_MS || pr->cmd == PROTO_CMD_MD ||
                 pr->cmd == PROTO_CMD_MA;
    char keybuf[PROTO_KEY_MAX];
    struct proto_req rp = *pr;
    struct backend *b, *owner = NULL;
    struct bconn *bc, *obc = NULL;
    struct evbuffer *out;
    struct frag *f;
    uint32_t others;
    int nreplicas;
    char fl[PROTO_LINE_BUF + 64];
    size_t n;

    req->meta_quiet = pr->meta_quiet;
    if (pr->meta_b64) {
        size_t k = proto_base64_decode(pr->key.p, pr->key.len, keybuf,
                                       sizeof(keybuf));

        if (k > 0) {
            rp.key = (struct proto_str){keybuf, k};
        }
    }
    if (__builtin_expect(w->cfg->big_value_split > 0, 0) &&
        pr->cmd == PROTO_CMD_MG) {
        big_note_key(req, &rp.key); /* a big value's chunks are named so */
    }
    if (write) {
        struct route_write rw;

        route_write(w, req->wt->t, &rp, &rw);
        b = rw.target;
        owner = rw.owner;
        obc = rw.owner_conn;
        if (owner != NULL) {
            if (!proto_key_classic(rp.key.p, rp.key.len)) {
                /* Its recovery could not name the key: refuse rather than
                 * leave a copy nobody can clean up. */
                if (pr->cmd == PROTO_CMD_MS) {
                    evbuffer_drain(data, skip + (size_t)pr->vlen + 2);
                }
                route_write_done(owner, rw.clean, rp.key.p, rp.key.len, b);
                request_reply(req, "SERVER_ERROR backend unavailable");
                return;
            }
            request_keep_failover(req, &rp.key, owner, rw.clean);
        }
        if (pr->cmd == PROTO_CMD_MD) {
            request_keep_delete(req, &rp.key);
            if (b == NULL) {
                request_delete_failed(req, rw.ring_owner);
            }
        }
        if (req->wt->t->origin[0] != NULL && b != NULL) {
            /* The delete that follows names the key as failover does
             * when it can, else in base64. */
            bool classic = proto_key_classic(rp.key.p, rp.key.len);

            warmup_note_write(req, &rp.key, classic ? &rp.key : &pr->key,
                              !classic, owner != NULL ? owner : b, b);
        }
    } else {
        b = route_key(w, req->wt->t, rp.key.p, rp.key.len, &owner);
        if (topology_reads_fall_through(req->wt->t) &&
            pr->cmd == PROTO_CMD_MG && b != NULL) {
            /* Its line, sent again to the previous owner if it misses. */
            request_reserve_keys(req, 1, len);
            memcpy(req->line, line, len);
            req->warm_linelen = (uint32_t)len;
            req->keys[0] = (struct proto_str){req->line + (pr->key.p - line),
                                              pr->key.len};
            req->prev_b64 = pr->meta_b64;
            warmup_note_read(req, 0, &rp.key, owner, b);
        }
        owner = b != owner ? owner : NULL;
    }
    out = request_write_output(req, b,
                               proto_key_classic(rp.key.p, rp.key.len)
                                   ? &rp.key
                                   : NULL,
                               data, skip,
                               pr->cmd == PROTO_CMD_MS
                                   ? (size_t)pr->vlen + 2
                                   : 0,
                               &bc);
    if (out == NULL) {
        return;
    }
    n = request_meta_line(req, pr, line, len, owner != NULL, fl, sizeof(fl));
    /* Held while sending; room for every fragment first (see
     * request_dispatch_single()). */
    req->pending = 1;
    others = pr->cmd == PROTO_CMD_MD
                 ? cmdroute_delete_frags(req->wt->t, &rp.key)
                 : 0;
    request_reserve_frags(req, 2 + others +
                                   replica_frags_needed(req->wt->t, &rp.key));
    /* Other pools' deletes first: nothing is sent when it fails. */
    nreplicas = others > 0 && cmdroute_send_deletes(req, pr, &rp.key) < 0
                    ? -1
                    : 0;
    if (nreplicas == 0 && write && req->wt->t->replicated) {
        nreplicas = replica_send_writes(req, pr, &rp.key, line, len, data,
                                        skip, b);
    }
    if (nreplicas >= 0 && write && req->wt->t->regional) {
        int r = replica_send_remote(req, pr, &rp.key, line, len, data, skip);

        nreplicas = r < 0 ? r : nreplicas + r;
    }
    if (nreplicas < 0) {
        request_refuse_unnamed(req, b, data,
                               pr->cmd == PROTO_CMD_MS
                                   ? skip + (size_t)pr->vlen + 2
                                   : 0);
        return;
    }
    if ((req->nprev > 0 || nreplicas > 0) && pr->cmd == PROTO_CMD_MD &&
        obc == NULL) {
        /* A moved or replicated key's delete: its previous owners and
         * other replicas first. */
        req->pending--;
        request_defer(req, b, FRAG_META, fl, n, pr->meta_quiet);
        return;
    }
    f = request_frag_init(req, FRAG_META, b);
    req->pending++;
    evbuffer_add(out, fl, n);
    evbuffer_add(out, "\r\n", 2);
    if (pr->cmd == PROTO_CMD_MS) {
        evbuffer_drain(data, skip);
        evbuffer_remove_buffer(data, out, (size_t)pr->vlen + 2);
    }
    if (pr->meta_quiet) {
        /* The backend decides what q hides; its MN tells us it is done
         * (and is not passed on). */
        evbuffer_add(out, "mn\r\n", 4);
    }
    bconn_enqueue(bc, f);
    if (obc != NULL) {
        request_owner_delete(req, obc);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/* Whether a meta reply is EN (a miss). */
static bool
request_meta_is_miss(const char *line, size_t total, struct evbuffer *in)
{
    char head[3];

    if (in != NULL) {
        if (total < 3 || evbuffer_copyout(in, head, 3) != 3) {
            return false;
        }
        line = head;
    }
    return total >= 3 && line[0] == 'E' && line[1] == 'N' &&
           (line[2] == '\r' || line[2] == '\n' || line[2] == ' ');
}

void
request_frag_meta(struct frag *f, const char *line, size_t total,
                  struct evbuffer *in)
{
    struct request *req = f->req;

    if (f->kind == FRAG_SHADOW_META) {
        shadow_frag_meta(f, line, total, in);
        return;
    }
    if (__builtin_expect(req->worker->cfg->big_value_split > 0, 0) &&
        (f->kind == FRAG_META || f->kind == FRAG_WARM_META) &&
        req->cmd == PROTO_CMD_MG && big_meta_take(f, line, total, in)) {
        if (f->kind == FRAG_WARM_META) {
            /* The previous owner's index replaces the new owner's miss. */
            evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
        }
        return;
    }
    if (frag_kind_is_warmup(f->kind) && f->kind != FRAG_WARM_META) {
        warmup_frag_meta(f, line, total, in);
        return;
    }
    if (f->kind == FRAG_WARM_META) {
        /* The previous owner's answer replaces the new owner's miss. */
        evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
    } else if (req->nwarm > 0 && warmup_meta_placeholder(req, line, total,
                                                         in)) {
        /* A warm-up copy's placeholder: a miss (its EN is in rsp). */
        return;
    } else if (req->nwarm > 0 && !request_meta_is_miss(line, total, in)) {
        req->meta_seen = true;
    }
    if (in == NULL) {
        if (req->client != NULL) {
            evbuffer_add(req->rsp, line, total);
        }
    } else if (req->client == NULL) {
        evbuffer_drain(in, total);
    } else {
        evbuffer_remove_buffer(in, req->rsp, total);
    }
}

void
request_frag_meta_end(struct frag *f)
{
    struct request *req = f->req;

    if (f->kind == FRAG_META) {
        request_failover_done(req, f->be);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

void
request_dispatch_refused(struct request *req, const struct proto_req *pr,
                         const char *reply)
{
    struct proto_req del;
    char line[PROTO_KEY_MAX + 16];
    int n;

    char keybuf[PROTO_KEY_MAX];
    struct proto_str key = pr->key;

    req->refused = reply;
    req->noreply = pr->noreply;
    if (req->worker->l1.max_bytes > 0) {
        request_l1_forget(req->worker, pr);
    }
    if (__builtin_expect(req->worker->watch.mask != 0, 0) &&
        req->client != NULL) {
        watch_request_begin(req, pr);
    }
    if (pr->cmd == PROTO_CMD_MS && pr->meta_b64) {
        size_t k = proto_base64_decode(pr->key.p, pr->key.len, keybuf,
                                       sizeof(keybuf));

        key = (struct proto_str){keybuf, k};
    }
    if ((pr->cmd != PROTO_CMD_SET && pr->cmd != PROTO_CMD_MS) ||
        !proto_key_classic(key.p, key.len)) {
        request_reply(req, reply);
        return;
    }
    /* memcached drops the old value of a set (or any ms) it cannot store:
     * so do we, on the key's owner (or, for a DOWN owner, the way any
     * write goes). */
    n = snprintf(line, sizeof(line), "delete %.*s", (int)key.len, key.p);
    memset(&del, 0, sizeof(del));
    del.cmd = PROTO_CMD_DELETE;
    del.name = (struct proto_str){"delete", 6};
    del.key = (struct proto_str){line + 7, key.len};
    req->cmd = PROTO_CMD_DELETE;
    request_dispatch_single(req, &del, line, (size_t)n, NULL, 0);
}

/*
 * The index of a big value whose chunks are written (req->big_data: its
 * command, from big_split()): sent by the ordinary path, whose answer is
 * the client's. When a chunk could not be stored on the key's backend the
 * index is not written: the client is answered as memcached answers a
 * value it cannot store.
 */
static void
request_store_index(struct request *req, bool chunks_ok)
{
    struct evbuffer *idx = req->big_data;
    size_t n = evbuffer_get_length(idx);
    struct proto_req ip;
    const char *reason;
    char *il, *nl;

    req->pending = 0;
    if (req->client != NULL && req->client->barrier == req) {
        /* The commands after it go on (from the loop, after this). */
        client_barrier_done(req->client);
    }
    il = (char *)evbuffer_pullup(idx, -1);
    nl = il != NULL ? memchr(il, '\r', n) : NULL;
    if (nl == NULL ||
        proto_parse_request(il, (size_t)(nl - il), 0, &ip, &reason) !=
            PROTO_OK) {
        /* Cannot happen: big_split() wrote a storage command. */
        evbuffer_drain(idx, n);
        request_reply(req, REQUEST_NO_MEMORY);
        return;
    }
    n = (size_t)(nl - il);
    if (chunks_ok && req->wt->t->shadowed && req->client != NULL) {
        /* The shadow pool gets the index, not the chunks: its reads of
         * the key are hits, without the chunks' bytes. */
        shadow_send(req, &ip, il, n, idx, n + 2);
    }
    if (!chunks_ok) {
        /* As memcached answers a value it cannot store (a set's old
         * value dropped): the index is not written. */
        stats_add(&req->worker->stats.server_errors, 1);
        request_dispatch_refused(req, &ip, REQUEST_NO_MEMORY);
        evbuffer_drain(idx, evbuffer_get_length(idx));
        return;
    }
    if (ip.cmd == PROTO_CMD_MS) {
        request_dispatch_meta(req, &ip, il, n, idx, n + 2);
    } else {
        request_dispatch_single(req, &ip, il, n, idx, n + 2);
    }
}

static void
request_big_chunks_done(struct request *chunks)
{
    struct request *req = chunks->big_parent;
    bool ok = chunks->nfailed == 0;

    chunks->big_parent = NULL;
    request_put(chunks);
    request_store_index(req, ok);
}

/*
 * A storage command whose value is over big_value_split: its chunks sent
 * (big.c), then, once they are stored, the index written in its place by
 * the ordinary path. A value of too many chunks is refused as too large,
 * as memcached refuses one over its item size.
 */
static void
request_dispatch_big(struct request *req, const struct proto_req *pr,
                     const char *line, size_t len, struct evbuffer *in,
                     size_t skip)
{
    struct request *chunks;
    int n;

    if (req->big_data == NULL &&
        (req->big_data = evbuffer_new()) == NULL) {
        evbuffer_drain(in, skip + (size_t)pr->vlen + 2);
        request_reply(req, REQUEST_NO_MEMORY);
        return;
    }
    n = big_split(req, pr, line, len, in, skip, req->big_data, &chunks);
    if (n < 0) {
        /* pr points into in: refused first, then the block skipped. */
        request_dispatch_too_large(req, pr);
        evbuffer_drain(in, skip + (size_t)pr->vlen + 2);
        return;
    }
    if (chunks == NULL) {
        /* No backend took them: the index's write says why. */
        request_store_index(req, true);
        return;
    }
    req->pending = 1; /* answered once the chunks are */
    chunks->big_parent = req;
    if (req->client != NULL) {
        /* A command pipelined after it must not overtake its index. */
        req->client->barrier = req;
    }
    if (--chunks->pending == 0) {
        request_big_chunks_done(chunks);
    }
}

_Static_assert(PROTO_CMD_COUNT <= STATS_COMMANDS,
               "every command has its counter");

/* Takes one request for each key's pool from the pools' rate limits;
 * false when one of them refuses. */
static bool
request_pools_allow(struct request *req, const struct proto_req *pr,
                    uint64_t now_ns)
{
    struct worker *w = req->worker;
    const struct topology *t = req->wt->t;
    struct proto_str key = pr->key;
    char keybuf[PROTO_KEY_MAX];
    const char *cur = pr->keys.p;
    const char *end = pr->keys.p + pr->keys.len;
    bool many = proto_cmd_is_retrieval(pr->cmd);

    if (pr->meta_b64) {
        size_t k = proto_base64_decode(pr->key.p, pr->key.len, keybuf,
                                       sizeof(keybuf));

        if (k > 0) {
            key = (struct proto_str){keybuf, k};
        }
    }
    while (!many || proto_next_key(&cur, end, &key)) {
        const struct topology_pool *p = topology_pool_of(t, key.p, key.len);

        if (p->cfg->rate > 0) {
            struct ratelimit r;

            ratelimit_init(&r, p->cfg->rate, p->cfg->burst);
            if (!ratelimit_take(&w->pool_tat[p->id], &r, now_ns, 1)) {
                return false;
            }
        }
        if (!many) {
            break;
        }
    }
    return true;
}

/*
 * Whether a client's key command is over its address's client_rate or a
 * pool's rate: then it is answered SERVER_ERROR rate limited (its data
 * block skipped), counted, and true returned.
 */
static bool
request_rate_limited(struct request *req, const struct proto_req *pr,
                     struct evbuffer *in, size_t skip)
{
    struct worker *w = req->worker;
    const struct config *cfg = w->cfg;
    uint64_t now_ns;
    bool client_over = false;

    if (req->client == NULL || (!req->wt->t->rated && cfg->client_rate == 0) ||
        !proto_cmd_has_key(pr->cmd)) {
        return false;
    }
    now_ns = worker_now_us(w) * 1000u;
    if (cfg->client_rate > 0 && req->client->addr_key != 0) {
        struct ratelimit r;

        ratelimit_init(&r, cfg->client_rate, cfg->client_burst);
        client_over = !ratelimit_table_take(
            w->client_rates, &r, req->client->addr_key, now_ns,
            proto_cmd_is_retrieval(pr->cmd) ? pr->nkeys : 1);
    }
    if (!client_over && (!req->wt->t->rated ||
                         request_pools_allow(req, pr, now_ns))) {
        return false;
    }
    stats_add(client_over ? &w->stats.client_rate_limited
                          : &w->stats.rate_limited,
              1);
    stats_add(&w->stats.server_errors, 1);
    if (in != NULL &&
        (proto_cmd_is_storage(pr->cmd) || pr->cmd == PROTO_CMD_MS)) {
        evbuffer_drain(in, skip + (size_t)pr->vlen + 2);
    }
    request_reply(req, "SERVER_ERROR rate limited");
    return true;
}

void
request_dispatch(struct request *req, const struct proto_req *pr,
                 const char *line, size_t len, struct evbuffer *in,
                 size_t skip)
{
    struct worker *w = req->worker;

    req->cmd = pr->cmd;
    req->noreply = pr->noreply;
    if (__builtin_expect(w->watch.mask != 0, 0) && req->client != NULL) {
        watch_request_begin(req, pr);
    }
    stats_add(&w->stats.commands[pr->cmd], 1);
    if (request_rate_limited(req, pr, in, skip)) {
        return;
    }
    if (w->l1.max_bytes > 0 && request_l1_changes(pr->cmd)) {
        request_l1_forget(w, pr);
    }
    if (__builtin_expect(req->wt->t->shadowed, 0) && req->client != NULL &&
        !(w->cfg->big_value_split > 0 && big_wants(w, pr))) {
        /* (a big value's: its index, request_store_index()) */
        shadow_send(req, pr, line, len, in, skip);
    }
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
        if (__builtin_expect(w->cfg->big_value_split > 0, 0) &&
            big_wants(w, pr)) {
            request_dispatch_big(req, pr, line, len, in, skip);
            return;
        }
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
    case PROTO_CMD_CACHE_MEMLIMIT:
    case PROTO_CMD_VERBOSITY:
        request_dispatch_all(req, pr);
        return;
    case PROTO_CMD_MG:
    case PROTO_CMD_MS:
    case PROTO_CMD_MD:
    case PROTO_CMD_MA:
    case PROTO_CMD_ME:
        if (__builtin_expect(w->cfg->big_value_split > 0, 0) &&
            pr->cmd == PROTO_CMD_MS && big_wants(w, pr)) {
            request_dispatch_big(req, pr, line, len, in, skip);
            return;
        }
        request_dispatch_meta(req, pr, line, len, in, skip);
        return;
    case PROTO_CMD_STATS:
        if (!admin_owns_stats(&pr->args)) {
            request_dispatch_every(req, pr, line, len);
            return;
        }
        request_dispatch_local(req, pr);
        return;
    case PROTO_CMD_SLABS:
    case PROTO_CMD_LRU:
    case PROTO_CMD_LRU_CRAWLER:
    case PROTO_CMD_EXTSTORE:
        if (!admin_owns_tuning(pr)) {
            request_dispatch_every(req, pr, line, len);
            return;
        }
        request_dispatch_local(req, pr);
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

void
request_frag_line(struct frag *f, const char *line, size_t len,
                  enum proto_rsp kind)
{
    struct request *req = f->req;

    if (f->kind == FRAG_OWNER_DELETE || f->kind == FRAG_PREV_DELETE ||
        f->kind == FRAG_REPLICA || f->kind == FRAG_SHADOW ||
        f->kind == FRAG_POOL_DELETE || f->kind == FRAG_BIG_CHUNK) {
        if (f->kind == FRAG_BIG_CHUNK) {
            if (kind != PROTO_RSP_STORED) {
                stats_add(&req->worker->stats.big_chunk_failures, 1);
                req->nfailed += !f->fallback;
            }
        } else if (f->kind == FRAG_SHADOW) {
            shadow_frag_line(f, kind);
        } else if (f->kind == FRAG_POOL_DELETE) {
            cmdroute_frag_done(f, kind != PROTO_RSP_ERROR &&
                                      kind != PROTO_RSP_CLIENT_ERROR &&
                                      kind != PROTO_RSP_SERVER_ERROR);
        } else if (f->kind == FRAG_PREV_DELETE) {
            warmup_delete_answer(f, line, len);
        } else if (f->kind == FRAG_REPLICA) {
            replica_frag_done(f, kind != PROTO_RSP_ERROR &&
                                     kind != PROTO_RSP_CLIENT_ERROR &&
                                     kind != PROTO_RSP_SERVER_ERROR);
        } else if (kind != PROTO_RSP_DELETED && kind != PROTO_RSP_NOT_FOUND) {
            request_owner_delete_failed(req, f->be);
        }
        if (--req->pending == 0) {
            request_finish(req);
        }
        return;
    }
    request_failover_done(req, f->be);

    if (f->kind == FRAG_ALL) {
        if (kind != PROTO_RSP_OK) {
            int n = (int)(len < 100 ? len : 100);

            while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n')) {
                n--;
            }
            log_limited_at(LOG_LEVEL_WARN, "%s on backend %s (%s): %.*s",
                           proto_cmd_name(req->cmd), f->be->name,
                           f->be->addr, n, line);
            f->failed = true;
            req->nfailed++;
        }
    } else if (req->refused == NULL) {
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

    if (f->kind == FRAG_BIG) {
        return big_frag_match(f, key, keylen);
    }
    if (req->client != NULL) {
        /* Values waiting for their turn count against the client's output
         * limit, so a client that does not read stops being read. */
        req->client->pending_bytes += blocklen;
        req->counted += blocklen;
    }
    return mget_match(f, key, keylen, blocklen);
}

void
request_frag_end(struct frag *f)
{
    struct request *req = f->req;

    if (f->kind == FRAG_BIG) {
        big_frag_end(f);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

void
request_frag_fail(struct frag *f, const char *reason)
{
    struct request *req = f->req;

    if (f->kind == FRAG_OWNER_DELETE || f->kind == FRAG_REPLICA ||
        f->kind == FRAG_SHADOW || f->kind == FRAG_SHADOW_META ||
        f->kind == FRAG_POOL_DELETE || f->kind == FRAG_BIG ||
        f->kind == FRAG_BIG_CHUNK || frag_kind_is_warmup(f->kind)) {
        if (f->kind == FRAG_BIG) {
            f->failed = true; /* its value is a miss */
        } else if (f->kind == FRAG_BIG_CHUNK) {
            stats_add(&req->worker->stats.big_chunk_failures, 1);
            req->nfailed += !f->fallback;
        } else if (f->kind == FRAG_SHADOW || f->kind == FRAG_SHADOW_META) {
            shadow_frag_fail(f);
        } else if (f->kind == FRAG_POOL_DELETE) {
            cmdroute_frag_done(f, false);
        } else if (f->kind == FRAG_OWNER_DELETE) {
            request_owner_delete_failed(req, f->be);
        } else if (f->kind == FRAG_REPLICA) {
            replica_frag_done(f, false);
        } else {
            warmup_frag_fail(f);
        }
        if (--req->pending == 0) {
            request_finish(req);
        }
        return;
    }
    request_failover_done(req, f->be);
    if (f->kind == FRAG_LINE || f->kind == FRAG_META) {
        /* A delete that did not reach its backend (lost connection,
         * timeout): the backend may still hold the key. */
        request_delete_failed(req, f->be);
    }
    f->failed = true;
    req->nfailed++;
    request_set_error(req, reason);
    if (f->kind == FRAG_RETRIEVAL) {
        mget_drop(f);
    } else if (f->kind == FRAG_STATS || f->kind == FRAG_ADMIN) {
        /* What it had said is not the whole answer: its error instead. */
        evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
        evbuffer_add_printf(f->buf, "%s\r\n", reason);
    }
    if (--req->pending == 0) {
        request_finish(req);
    }
}

/* Returns false while the reply waits for a big value's chunks. */
static bool
request_finish_retrieval(struct request *req)
{
    struct stats_worker *s = &req->worker->stats;

    if (req->big_phase) {
        /* The chunks of its big values are in. */
        big_assemble(req);
        goto done;
    }
    if (req->nfailed == req->nfrags && !req->split) {
        stats_add(&s->get_errors, req->nkeys);
        stats_add(&s->server_errors, 1);
        evbuffer_add(req->rsp, req->errline, strlen(req->errline));
        evbuffer_add(req->rsp, "\r\n", 2);
        return true;
    }
    if (req->nfailed == req->nfrags) {
        /* A piece of a split retrieval: an error line in the middle of
         * the one reply cannot be; its keys are misses, as they are for
         * a failed backend of a multi-get. */
        stats_add(&s->get_errors, req->nkeys);
        if (!req->more) {
            evbuffer_add(req->rsp, "END\r\n", 5);
        }
        return true;
    }
    if (!req->stream) {
        mget_merge(req);
        for (uint32_t fi = 0; fi < req->nfrags; fi++) {
            if (req->frags[fi].failed) {
                stats_add(&s->get_errors, req->frags[fi].nkeys);
            }
        }
    }
    stats_add(&s->get_hits, req->hits);
    stats_add(&s->get_misses, req->nkeys - req->hits);
    if (__builtin_expect(req->worker->cfg->big_value_split > 0, 0) &&
        req->hits > 0) {
        if (big_expand(req)) {
            return false;
        }
        if (req->big_phase) {
            big_assemble(req); /* none could be read */
        }
    }
done:
    if (req->l1_slot > 0) {
        request_l1_fill(req);
    }
    if (!req->more) {
        evbuffer_add(req->rsp, "END\r\n", 5);
    }
    return true;
}

static void
request_finish(struct request *req)
{
    if (__builtin_expect(req->big_parent != NULL, 0)) {
        request_big_chunks_done(req); /* a big value's chunks */
        return;
    }
    if (warmup_continue(req)) {
        return; /* what a move asks for first */
    }
    if (req->client == NULL) {
        request_put(req);
        return;
    }
    if (__builtin_expect(req->big_meta, 0)) {
        if (big_meta_expand(req)) {
            return; /* finished again once the chunks are in */
        }
        big_meta_assemble(req);
    }
    switch (req->cmd) {
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
    case PROTO_CMD_GAT:
    case PROTO_CMD_GATS:
        if (!request_finish_retrieval(req)) {
            return; /* finished again once big values' chunks are in */
        }
        break;
    case PROTO_CMD_STATS:
        admin_merge_stats(req->frags, req->nfrags, req->rsp);
        break;
    case PROTO_CMD_SLABS:
    case PROTO_CMD_LRU:
    case PROTO_CMD_LRU_CRAWLER:
    case PROTO_CMD_EXTSTORE:
        admin_merge_answers(req->frags, req->nfrags, req->rsp);
        break;
    case PROTO_CMD_FLUSH_ALL:
    case PROTO_CMD_CACHE_MEMLIMIT:
    case PROTO_CMD_VERBOSITY:
        if (!req->noreply) {
            if (req->nfailed == 0) {
                evbuffer_add(req->rsp, "OK\r\n", 4);
            } else {
                evbuffer_add_printf(req->rsp,
                                    "SERVER_ERROR %s failed on %u of "
                                    "%u backends\r\n",
                                    proto_cmd_name(req->cmd), req->nfailed,
                                    req->nfrags);
            }
        }
        break;
    default:
        if (req->refused != NULL) {
            /* What memcached says, whatever the delete found. */
            evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
            if (!req->noreply) {
                evbuffer_add(req->rsp, req->refused, strlen(req->refused));
                evbuffer_add(req->rsp, "\r\n", 2);
            }
        } else if (req->nfailed > 0) {
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
