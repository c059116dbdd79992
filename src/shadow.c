/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shadow: see shadow.h.
 *
 *   client command --request_dispatch()--> shadow_send(): one orphaned
 *       request, one fragment per shadowed key, on the key's owner in
 *       the shadow pool (or its fallback there)
 *   replies --bconn--> shadow_frag_*(): counted, discarded; the last one
 *       frees the request
 *
 * Which keys: XXH3 of the key with a seed of its own, below the pool's
 * share, so a key is always or never shadowed, by every proxy with the
 * same config. The seed keeps the choice apart from ring positions (XXH3
 * without a seed): else the shadowed keys would be one arc of the ring,
 * owned by a few backends of the shadow pool.
 *
 * What is sent: writes as the client sent them, without noreply (a cas
 * too, whose unique is the real pool's: the shadow says EXISTS or
 * NOT_FOUND, a miss); a classic read as one mg per key (v; c for gets
 * and gats; T for gat and gats), so that each key's reply stands alone;
 * meta commands without q, so that each gets one reply. Each copy counts
 * once in shadow_requests, then once in shadow_hits, shadow_misses or
 * shadow_errors.
 *
 * Never delays the client: no client waits for the copy, which goes out
 * before the command itself on connections of other backends; at most
 * SHADOW_QUEUE copies of commands and SHADOW_BYTES per worker are in
 * flight (request_put() gives their share back), beyond which keys are
 * dropped and counted. Shadow pools get no failover write policy, no
 * recovery log and no warm-up: what they hold is never read by a client.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <xxhash.h>

#include "backend.h"
#include "bconn.h"
#include "proto.h"
#include "net.h"
#include "request.h"
#include "ring.h"
#include "route.h"
#include "shadow.h"
#include "stats.h"
#include "topology.h"
#include "worker.h"

/* The key choice's own hash seed (see the head). */
#define SHADOW_SEED UINT64_C(0x736861646f77)

/* The shadow pool of key's pool in t when it shadows key, or NULL. */
static const struct topology_pool *
shadow_pool_of(const struct topology *t, const char *key, size_t len)
{
    const struct topology_pool *p = topology_pool_of(t, key, len);

    if (p->shadow == UINT32_MAX ||
        (p->shadow_cut != UINT64_MAX &&
         XXH3_64bits_withSeed(key, len, SHADOW_SEED) >= p->shadow_cut)) {
        return NULL;
    }
    return &t->pools[p->shadow];
}

/* What one copy is being built in. */
struct shadow_send {
    struct request *from;           /* the client's */
    struct request *into;           /* the copy, NULL until a key needs it */
    size_t bytes;                   /* its share of SHADOW_BYTES */
    uint32_t room;                  /* fragments it has room for */
    bool refused;                   /* over the bound: keys dropped */
};

/*
 * The connection output for a copy of key in shadow pool sp (its owner
 * there, or its fallback), with the fragment of kind made ready in *f; or
 * NULL (counted) when there is no copy to write.
 */
static struct evbuffer *
shadow_output(struct shadow_send *s, const struct topology_pool *sp,
              const char *key, size_t len, enum frag_kind kind,
              struct bconn **bc, struct frag **f)
{
    struct worker *w = s->from->worker;
    struct backend *o, *b;
    struct evbuffer *out;

    if (s->into == NULL && !s->refused) {
        if (w->shadow_inflight >= SHADOW_QUEUE ||
            w->shadow_bytes + s->bytes > SHADOW_BYTES) {
            s->refused = true;
        } else {
            s->into = request_get(w, NULL);
            s->into->cmd = s->from->cmd;
            s->into->noreply = true;
            s->into->shadow_bytes = s->bytes;
            w->shadow_inflight++;
            w->shadow_bytes += s->bytes;
            s->into->pending = 1; /* held while sending */
            request_reserve_frags(s->into, s->room);
        }
    }
    if (s->into == NULL || s->into->nfrags >= s->room) {
        stats_add(&w->stats.shadow_dropped, 1);
        return NULL;
    }
    stats_add(&w->stats.shadow_requests, 1);
    o = sp->be[ring_lookup(sp->ring, key, len)];
    b = backend_is_up(o) ? o : route_fallback(w, sp, key, len, o);
    if (b == NULL) {
        stats_add(&w->stats.shadow_errors, 1);
        return NULL;
    }
    *bc = route_pick(w, worker_wb(w, b));
    out = bconn_output(*bc);
    if (out == NULL) {
        (void)bconn_refuse(*bc);
        stats_add(&w->stats.shadow_errors, 1);
        return NULL;
    }
    *f = request_frag_init(s->into, kind, b);
    return out;
}

static void
shadow_queue(struct shadow_send *s, struct bconn *bc, struct frag *f)
{
    s->into->pending++;
    bconn_enqueue(bc, f);
}

/* A classic read: one mg per shadowed key. */
static void
shadow_send_reads(struct shadow_send *s, const struct topology *t,
                  const struct proto_req *pr)
{
    const char *cur = pr->keys.p, *end = pr->keys.p + pr->keys.len;
    bool cas = pr->cmd == PROTO_CMD_GETS || pr->cmd == PROTO_CMD_GATS;
    bool touch = pr->cmd == PROTO_CMD_GAT || pr->cmd == PROTO_CMD_GATS;
    struct proto_str key;

    while (proto_next_key(&cur, end, &key)) {
        const struct topology_pool *sp = shadow_pool_of(t, key.p, key.len);
        struct evbuffer *out;
        struct bconn *bc;
        struct frag *f;

        if (sp == NULL ||
            (out = shadow_output(s, sp, key.p, key.len, FRAG_SHADOW_META, &bc,
                                 &f)) == NULL) {
            continue;
        }
        evbuffer_add(out, "mg ", 3);
        evbuffer_add(out, key.p, key.len);
        evbuffer_add(out, cas ? " v c" : " v", cas ? 4 : 2);
        if (touch) {
            evbuffer_add_printf(out, " T%lld", (long long)pr->exptime);
        }
        evbuffer_add(out, "\r\n", 2);
        shadow_queue(s, bc, f);
    }
}

/* A meta command's line without q (one reply, whatever it says). */
static void
shadow_meta_line(struct evbuffer *out, const struct proto_req *pr,
                 const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    struct proto_str tok;
    uint32_t idx = 0;

    while (proto_next_key(&p, end, &tok)) {
        if (idx >= pr->meta_flags && tok.p[0] == 'q') {
            idx++;
            continue;
        }
        if (idx++ > 0) {
            evbuffer_add(out, " ", 1);
        }
        evbuffer_add(out, tok.p, tok.len);
    }
    evbuffer_add(out, "\r\n", 2);
}

void
shadow_send(struct request *req, const struct proto_req *pr,
            const char *line, size_t len, struct evbuffer *data, size_t skip)
{
    const struct topology *t = req->wt->t;
    bool meta = proto_cmd_is_meta(pr->cmd);
    bool block = proto_cmd_is_storage(pr->cmd) || pr->cmd == PROTO_CMD_MS;
    struct shadow_send s = {.from = req, .room = 1};
    struct proto_str key = pr->key;
    char keybuf[PROTO_KEY_MAX];
    const struct topology_pool *sp;
    struct evbuffer *out;
    struct bconn *bc;
    struct frag *f;

    if (!proto_cmd_has_key(pr->cmd) || pr->cmd == PROTO_CMD_ME) {
        return;
    }
    s.bytes = len + 2 + (block ? (size_t)pr->vlen + 2 : 0);
    if (proto_cmd_is_retrieval(pr->cmd)) {
        s.room = pr->nkeys < SHADOW_KEYS_MAX ? pr->nkeys : SHADOW_KEYS_MAX;
        s.bytes += 16 * (size_t)s.room;
        shadow_send_reads(&s, t, pr);
    } else {
        if (meta && pr->meta_b64) {
            /* Routed by the key it stands for, as the command itself. */
            key.len = proto_base64_decode(pr->key.p, pr->key.len, keybuf,
                                          sizeof(keybuf));
            key.p = keybuf;
        }
        sp = key.len > 0 ? shadow_pool_of(t, key.p, key.len) : NULL;
        if (sp == NULL ||
            (out = shadow_output(&s, sp, key.p, key.len,
                                 meta ? FRAG_SHADOW_META : FRAG_SHADOW, &bc,
                                 &f)) == NULL) {
            goto done;
        }
        if (meta) {
            shadow_meta_line(out, pr, line, len);
        } else {
            evbuffer_add(out, line,
                         proto_strip_noreply(line, len, pr->noreply));
            evbuffer_add(out, "\r\n", 2);
        }
        if (block) {
            /* The block is all in data: the caller read it whole. */
            (void)net_copy_out(data, skip, (size_t)pr->vlen + 2, out);
        }
        shadow_queue(&s, bc, f);
    }
done:
    if (s.into != NULL && --s.into->pending == 0) {
        request_put(s.into);
    }
}

/* One reply counted: a hit or a miss (with its latency), or an error. */
static void
shadow_count(struct frag *f, int outcome)
{
    struct worker *w = f->req->worker;
    struct stats_worker *st = &w->stats;
    uint64_t now = worker_now_us(w);

    if (outcome < 0) {
        stats_add(&st->shadow_errors, 1);
        return;
    }
    stats_add(outcome > 0 ? &st->shadow_hits : &st->shadow_misses, 1);
    stats_add(&st->shadow_latency_us, now > f->sent_us ? now - f->sent_us : 0);
}

void
shadow_frag_line(struct frag *f, enum proto_rsp kind)
{
    switch (kind) {
    case PROTO_RSP_STORED:
    case PROTO_RSP_DELETED:
    case PROTO_RSP_TOUCHED:
    case PROTO_RSP_NUMBER:
    case PROTO_RSP_OK:
        shadow_count(f, 1);
        break;
    case PROTO_RSP_NOT_STORED:
    case PROTO_RSP_EXISTS:
    case PROTO_RSP_NOT_FOUND:
        shadow_count(f, 0);
        break;
    default:
        shadow_count(f, -1);
        break;
    }
}

void
shadow_frag_meta(struct frag *f, const char *line, size_t total,
                 struct evbuffer *in)
{
    char head[2] = {0, 0};

    if (line != NULL) {
        memcpy(head, line, total < 2 ? total : 2);
    } else {
        (void)evbuffer_copyout(in, head, total < 2 ? total : 2);
        evbuffer_drain(in, total);
    }
    if (memcmp(head, "VA", 2) == 0 || memcmp(head, "HD", 2) == 0) {
        shadow_count(f, 1);
    } else if (memcmp(head, "EN", 2) == 0 || memcmp(head, "NF", 2) == 0 ||
               memcmp(head, "NS", 2) == 0 || memcmp(head, "EX", 2) == 0) {
        shadow_count(f, 0);
    } else {
        shadow_count(f, -1);
    }
}

void
shadow_frag_fail(struct frag *f)
{
    shadow_count(f, -1);
}
