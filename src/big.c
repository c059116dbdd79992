/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * big: see big.h.
 *
 * The index is a short value: BIG_MAGIC, the token in hex, the chunks and
 * the value's length ("\0mcring-big 1 <token> <n> <bytes>"), with the
 * client's flags and exptime. Chunks get flags 0 and the same exptime (at
 * most failover_ttl on a fallback, as the index). A read checks that
 * every chunk came, in order, and that their bytes add up: anything else
 * is a miss. An index that cannot be read (an append to it, say) is a
 * miss too.
 *
 * What is not done: chunks of a value that was overwritten or deleted
 * stay until they expire or memcached evicts them; a chunk write that
 * fails leaves an index whose value reads as a miss (counted); ms,
 * append and prepend do not know big values.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>

#include "backend.h"
#include "bconn.h"
#include "big.h"
#include "client.h"
#include "config.h"
#include "proto.h"
#include "request.h"
#include "ring.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "worker.h"

#define BIG_MAGIC "\0mcring-big 1 "
#define BIG_MAGIC_LEN (sizeof(BIG_MAGIC) - 1)
#define BIG_PREFIX "mcring:big:"
#define BIG_INDEX_MAX 64            /* bytes of an index value at most */
#define BIG_HEAD_MAX 512            /* a VALUE line, terminator included */

bool
big_wants(const struct worker *w, const struct proto_req *pr)
{
    size_t split = w->cfg->big_value_split;

    return split > 0 && pr->vlen > split &&
           (pr->cmd == PROTO_CMD_SET || pr->cmd == PROTO_CMD_ADD ||
            pr->cmd == PROTO_CMD_REPLACE || pr->cmd == PROTO_CMD_CAS);
}

/* A token no other write of any proxy is likely to have. */
static uint64_t
big_token(struct worker *w)
{
    uint64_t x = w->big_rng;

    if (x == 0 && getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x)) {
        x = worker_now_us(w) ^ ((uint64_t)w->id << 56) ^ (uint64_t)(size_t)w;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->big_rng = x != 0 ? x : 1;
    return x;
}

int
big_split(struct request *req, const struct proto_req *pr,
          struct evbuffer *in, size_t skip, struct evbuffer *out)
{
    struct worker *w = req->worker;
    const struct config *cfg = w->cfg;
    size_t split = cfg->big_value_split;
    uint32_t n = (uint32_t)(((size_t)pr->vlen + split - 1) / split);
    const struct topology_pool *p;
    struct backend *owner, *b;
    struct request *creq = NULL;
    struct bconn *bc = NULL;
    char index[BIG_INDEX_MAX];
    int64_t exptime = pr->exptime;
    uint64_t token;
    size_t ilen;
    int llen;

    if (n > BIG_CHUNKS_MAX) {
        return -1;
    }
    token = big_token(w);
    /* Where the index goes (route_write() decides the same), uncounted. */
    p = topology_write_pool_of(req->wt->t, pr->key.p, pr->key.len);
    owner = p->be[ring_lookup(p->ring, pr->key.p, pr->key.len)];
    b = backend_is_up(owner)
            ? owner
            : route_fallback(w, p, pr->key.p, pr->key.len, owner);
    if (b != owner) {
        exptime = route_cap_exptime(cfg, exptime);
    }
    /* The index's command first: pr points into in's skip bytes. */
    memcpy(index, BIG_MAGIC, BIG_MAGIC_LEN);
    ilen = BIG_MAGIC_LEN +
           (size_t)snprintf(index + BIG_MAGIC_LEN,
                            sizeof(index) - BIG_MAGIC_LEN,
                            "%016" PRIx64 " %" PRIu32 " %" PRIu32, token, n,
                            pr->vlen);
    llen = evbuffer_add_printf(out, "%.*s %.*s %" PRIu32 " %lld %zu",
                               (int)pr->name.len, pr->name.p,
                               (int)pr->key.len, pr->key.p, pr->flags,
                               (long long)pr->exptime, ilen);
    if (pr->cmd == PROTO_CMD_CAS) {
        llen += evbuffer_add_printf(out, " %" PRIu64, pr->cas);
    }
    if (pr->noreply) {
        llen += evbuffer_add_printf(out, " noreply");
    }
    evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, index, ilen);
    evbuffer_add(out, "\r\n", 2);
    if (b != NULL) {
        bc = route_pick(w, worker_wb(w, b));
        creq = request_get(w, NULL);
        creq->cmd = PROTO_CMD_SET;
        creq->noreply = true;
        creq->pending = 1; /* held while sending */
        request_reserve_frags(creq, n);
    }
    evbuffer_drain(in, skip);
    for (uint32_t i = 0; i < n; i++) {
        size_t clen = (size_t)pr->vlen - (size_t)i * split;
        struct evbuffer *o = creq != NULL ? bconn_output(bc) : NULL;

        clen = clen < split ? clen : split;
        if (o == NULL) {
            evbuffer_drain(in, clen);
            stats_add(&w->stats.big_chunk_failures, 1);
            continue;
        }
        evbuffer_add_printf(o, "set " BIG_PREFIX "%016" PRIx64 ":%" PRIu32
                               " 0 %lld %zu\r\n",
                            token, i, (long long)exptime, clen);
        evbuffer_remove_buffer(in, o, clen);
        evbuffer_add(o, "\r\n", 2);
        creq->pending++;
        bconn_enqueue(bc, request_frag_init(creq, FRAG_BIG_CHUNK, b));
        stats_add(&w->stats.big_chunks, 1);
    }
    evbuffer_drain(in, 2);
    if (creq != NULL && --creq->pending == 0) {
        request_put(creq);
    }
    stats_add(&w->stats.big_sets, 1);
    return llen;
}

/* The index value v (len bytes): 1 with its token, chunks and bytes; 0
 * when it is no index; -1 when it is one that cannot be read. */
static int
big_parse_index(const char *v, size_t len, uint64_t *token, uint32_t *n,
                uint32_t *bytes)
{
    char text[BIG_INDEX_MAX + 1];
    int end = 0;

    if (len < BIG_MAGIC_LEN || memcmp(v, BIG_MAGIC, BIG_MAGIC_LEN) != 0) {
        return 0;
    }
    if (len > BIG_INDEX_MAX) {
        return -1;
    }
    memcpy(text, v + BIG_MAGIC_LEN, len - BIG_MAGIC_LEN);
    text[len - BIG_MAGIC_LEN] = '\0';
    if (sscanf(text, "%16" SCNx64 " %" SCNu32 " %" SCNu32 "%n", token, n,
               bytes, &end) != 3 ||
        (size_t)end != len - BIG_MAGIC_LEN || *n == 0 ||
        *n > BIG_CHUNKS_MAX) {
        return -1;
    }
    return 1;
}

/* The line at the head of the got bytes at line: its bytes with
 * terminator (*headlen) and without (*len); false when it does not end
 * there. */
static bool
big_head(const char *line, ev_ssize_t got, size_t *headlen, size_t *len)
{
    const char *nl = got > 0 ? memchr(line, '\n', (size_t)got) : NULL;

    if (nl == NULL) {
        return false;
    }
    *headlen = (size_t)(nl - line) + 1;
    *len = *headlen - 1 - (nl > line && nl[-1] == '\r');
    return true;
}

/* One block of rsp, from offset off: its length, key, and what it says. */
struct big_block {
    size_t len;
    struct proto_str key;
    uint32_t flags, vlen;
    uint64_t cas;
    bool has_cas;
    int index;                      /* big_parse_index() */
    uint64_t token;
    uint32_t n, bytes;
};

static bool
big_block_at(struct evbuffer *rsp, size_t off, char *line,
             struct big_block *bb)
{
    struct evbuffer_ptr at;
    char v[BIG_INDEX_MAX];
    ev_ssize_t got;
    size_t headlen, len;

    if (evbuffer_ptr_set(rsp, &at, off, EVBUFFER_PTR_SET) != 0) {
        return false;
    }
    got = evbuffer_copyout_from(rsp, &at, line, BIG_HEAD_MAX);
    if (!big_head(line, got, &headlen, &len)) {
        return false;
    }
    if (proto_parse_value(line, len, &bb->key, &bb->flags, &bb->vlen,
                          &bb->cas, &bb->has_cas) != 0) {
        return false;
    }
    bb->len = headlen + bb->vlen + 2;
    bb->index = 0;
    if (bb->vlen >= BIG_MAGIC_LEN && bb->vlen <= BIG_INDEX_MAX) {
        evbuffer_ptr_set(rsp, &at, off + headlen, EVBUFFER_PTR_SET);
        if (evbuffer_copyout_from(rsp, &at, v, bb->vlen) ==
            (ev_ssize_t)bb->vlen) {
            bb->index = big_parse_index(v, bb->vlen, &bb->token, &bb->n,
                                        &bb->bytes);
        }
    } else if (bb->vlen > BIG_INDEX_MAX && bb->vlen >= BIG_MAGIC_LEN) {
        evbuffer_ptr_set(rsp, &at, off + headlen, EVBUFFER_PTR_SET);
        if (evbuffer_copyout_from(rsp, &at, v, BIG_MAGIC_LEN) ==
                (ev_ssize_t)BIG_MAGIC_LEN &&
            memcmp(v, BIG_MAGIC, BIG_MAGIC_LEN) == 0) {
            bb->index = -1; /* an index something was appended to */
        }
    }
    return true;
}

/* The backend that answered the k-th hit, whose key is key (the request's
 * keys in order, from *next on). */
static struct backend *
big_served_by(struct request *req, const struct proto_str *key,
              uint32_t *next)
{
    if (req->nfrags == 1 || req->stream) {
        return req->frags[0].be;
    }
    while (*next < req->nkeys) {
        const struct proto_str *k = &req->keys[(*next)++];

        if (k->len == key->len && memcmp(k->p, key->p, key->len) == 0) {
            return req->frags[req->key_frag[*next - 1]].be;
        }
    }
    return NULL;
}

bool
big_expand(struct request *req)
{
    struct worker *w = req->worker;
    size_t total = evbuffer_get_length(req->rsp), off = 0;
    char line[BIG_HEAD_MAX];
    struct big_block bb;
    uint32_t count = 0, k = 0, next = 0;

    while (off < total && big_block_at(req->rsp, off, line, &bb)) {
        count += bb.index != 0;
        off += bb.len;
    }
    if (count == 0) {
        return false;
    }
    request_reserve_frags(req, req->nfrags + count);
    req->big_phase = true;
    req->pending = 1; /* held while sending */
    for (off = 0; off < total && big_block_at(req->rsp, off, line, &bb);
         off += bb.len, k++) {
        struct backend *be;
        struct frag *f;
        struct bconn *bc;
        struct evbuffer *out;

        if (bb.index == 0) {
            (void)big_served_by(req, &bb.key, &next);
            continue;
        }
        be = big_served_by(req, &bb.key, &next);
        f = request_frag_init(req, FRAG_BIG, be);
        f->matched = k;
        f->nkeys = bb.n;
        f->big_token = bb.token;
        f->big_bytes = bb.bytes;
        if (f->buf == NULL) {
            f->buf = evbuffer_new();
        }
        if (bb.index < 0 || be == NULL || f->buf == NULL) {
            f->failed = true;
            continue;
        }
        bc = route_pick(w, f->wb);
        out = bconn_output(bc);
        if (out == NULL) {
            (void)bconn_refuse(bc);
            f->failed = true;
            continue;
        }
        if (req->warm_touch) {
            /* gat, gats: the chunks are touched with the index. */
            evbuffer_add_printf(out, "gat %lld", (long long)req->warm_exptime);
        } else {
            evbuffer_add(out, "get", 3);
        }
        for (uint32_t i = 0; i < bb.n; i++) {
            evbuffer_add_printf(out, " " BIG_PREFIX "%016" PRIx64 ":%" PRIu32,
                                bb.token, i);
        }
        evbuffer_add(out, "\r\n", 2);
        req->pending++;
        bconn_enqueue(bc, f);
    }
    /* In flight: the last FRAG_BIG finishes the request again. None:
     * the caller puts it together now. */
    return --req->pending > 0;
}

/* The FRAG_BIG of the k-th block of req, or NULL. */
static struct frag *
big_frag_of(struct request *req, uint32_t k)
{
    for (uint32_t i = 0; i < req->nfrags; i++) {
        if (req->frags[i].kind == FRAG_BIG && req->frags[i].matched == k) {
            return &req->frags[i];
        }
    }
    return NULL;
}

void
big_assemble(struct request *req)
{
    struct worker *w = req->worker;
    struct evbuffer *rsp = req->rsp, *tmp = w->big_buf;
    char line[BIG_HEAD_MAX];
    struct big_block bb;

    for (uint32_t k = 0; evbuffer_get_length(rsp) > 0 &&
                         big_block_at(rsp, 0, line, &bb);
         k++) {
        struct frag *f = bb.index != 0 ? big_frag_of(req, k) : NULL;

        if (f == NULL) {
            evbuffer_remove_buffer(rsp, tmp, bb.len);
            continue;
        }
        evbuffer_drain(rsp, bb.len);
        if (!f->failed && f->cursor == f->nkeys &&
            evbuffer_get_length(f->buf) == f->big_bytes) {
            evbuffer_add_printf(tmp, "VALUE %.*s %" PRIu32 " %" PRIu32,
                                (int)bb.key.len, bb.key.p, bb.flags,
                                bb.bytes);
            if (bb.has_cas) {
                evbuffer_add_printf(tmp, " %" PRIu64, bb.cas);
            }
            evbuffer_add(tmp, "\r\n", 2);
            evbuffer_remove_buffer(f->buf, tmp, f->big_bytes);
            evbuffer_add(tmp, "\r\n", 2);
            stats_add(&w->stats.big_gets, 1);
            continue;
        }
        /* Not all there: a miss. */
        evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
        stats_add(&w->stats.big_misses, 1);
        stats_sub(&w->stats.get_hits, 1);
        stats_add(&w->stats.get_misses, 1);
        req->hits--;
    }
    evbuffer_add_buffer(rsp, tmp);
}

bool
big_frag_match(struct frag *f, const char *key, size_t keylen)
{
    char want[64];
    int n = snprintf(want, sizeof(want), BIG_PREFIX "%016" PRIx64 ":",
                     f->big_token);
    uint32_t i = 0;
    size_t at = (size_t)n;

    if (keylen <= at || memcmp(key, want, at) != 0) {
        return false;
    }
    for (; at < keylen; at++) {
        if (key[at] < '0' || key[at] > '9' || i > BIG_CHUNKS_MAX) {
            return false;
        }
        i = i * 10 + (uint32_t)(key[at] - '0');
    }
    if (i < f->cursor || i >= f->nkeys) {
        return false;
    }
    if (i != f->cursor) {
        f->failed = true; /* a chunk before it is missing */
    }
    f->cursor = i + 1;
    return true;
}

void
big_frag_value(struct frag *f, const char *p, size_t total,
               struct evbuffer *in)
{
    char line[BIG_HEAD_MAX];
    size_t headlen, len, data;

    if (p != NULL) {
        const char *nl = memchr(p, '\n', total);

        headlen = nl != NULL ? (size_t)(nl - p) + 1 : total;
    } else if (!big_head(line, evbuffer_copyout(in, line, BIG_HEAD_MAX),
                         &headlen, &len)) {
        headlen = total;
    }
    data = total >= headlen + 2 ? total - headlen - 2 : 0;
    if (f->failed || evbuffer_get_length(f->buf) + data > f->big_bytes) {
        f->failed = true;
        if (in != NULL) {
            evbuffer_drain(in, total);
        }
        return;
    }
    if (f->req->client != NULL) {
        /* Owed to the client from now on, as any value (client.c's
         * bounds). */
        f->req->client->pending_bytes += data;
        f->req->counted += data;
    }
    if (p != NULL) {
        evbuffer_add(f->buf, p + headlen, data);
    } else {
        evbuffer_drain(in, headlen);
        evbuffer_remove_buffer(in, f->buf, data);
        evbuffer_drain(in, total - headlen - data);
    }
}

bool
big_meta_is_index(const char *line, size_t total, struct evbuffer *in)
{
    char head[BIG_HEAD_MAX + BIG_MAGIC_LEN];
    size_t n = total < sizeof(head) ? total : sizeof(head);
    const char *nl;

    if (line == NULL) {
        if (evbuffer_copyout(in, head, n) != (ev_ssize_t)n) {
            return false;
        }
        line = head;
    }
    if (n < 3 || memcmp(line, "VA ", 3) != 0 ||
        (nl = memchr(line, '\n', n)) == NULL) {
        return false;
    }
    return (size_t)(line + n - (nl + 1)) >= BIG_MAGIC_LEN &&
           memcmp(nl + 1, BIG_MAGIC, BIG_MAGIC_LEN) == 0;
}

void
big_meta_index(struct frag *f, const char *line, size_t total,
               struct evbuffer *in)
{
    struct request *req = f->req;
    char head[BIG_HEAD_MAX + BIG_INDEX_MAX];
    size_t n = total < sizeof(head) ? total : sizeof(head);
    const char *nl;
    size_t hlen, vlen;

    if (line == NULL) {
        (void)evbuffer_copyout(in, head, n);
        line = head;
    }
    nl = memchr(line, '\n', n);
    hlen = nl != NULL ? (size_t)(nl - line) + 1 : n;
    vlen = total >= hlen + 2 ? total - hlen - 2 : 0;
    req->big_meta = true;
    req->big_be = f->be;
    req->big_n = 0;
    if (vlen > n - hlen ||
        big_parse_index(line + hlen, vlen, &req->big_token, &req->big_n,
                        &req->big_bytes) != 1) {
        req->big_n = 0; /* unreadable: a miss */
    }
    /* Its flags, for the answer: the header without its terminator. */
    hlen -= hlen >= 2 && line[hlen - 2] == '\r' ? 2 : 1;
    if (req->big_head == NULL) {
        req->big_head = util_xmalloc(BIG_HEAD_MAX);
    }
    if (hlen > BIG_HEAD_MAX) {
        hlen = 0;
        req->big_n = 0;
    }
    memcpy(req->big_head, line, hlen);
    req->big_headlen = (uint32_t)hlen;
    if (in != NULL) {
        evbuffer_drain(in, total);
    }
}

bool
big_meta_expand(struct request *req)
{
    struct worker *w = req->worker;
    struct frag *f;
    struct bconn *bc;
    struct evbuffer *out;

    if (req->big_phase) {
        return false;
    }
    req->big_phase = true;
    if (req->big_n == 0 || req->big_be == NULL) {
        return false;
    }
    request_reserve_frags(req, req->nfrags + 1);
    f = request_frag_init(req, FRAG_BIG, req->big_be);
    f->matched = 0;
    f->nkeys = req->big_n;
    f->big_token = req->big_token;
    f->big_bytes = req->big_bytes;
    if (f->buf == NULL && (f->buf = evbuffer_new()) == NULL) {
        f->failed = true;
        return false;
    }
    bc = route_pick(w, f->wb);
    out = bconn_output(bc);
    if (out == NULL) {
        (void)bconn_refuse(bc);
        f->failed = true;
        return false;
    }
    evbuffer_add(out, "get", 3);
    for (uint32_t i = 0; i < req->big_n; i++) {
        evbuffer_add_printf(out, " " BIG_PREFIX "%016" PRIx64 ":%" PRIu32,
                            req->big_token, i);
    }
    evbuffer_add(out, "\r\n", 2);
    req->pending++;
    bconn_enqueue(bc, f);
    return true;
}

void
big_meta_assemble(struct request *req)
{
    struct worker *w = req->worker;
    struct frag *f = req->nfrags > 0 && req->frags[req->nfrags - 1].kind ==
                                            FRAG_BIG
                         ? &req->frags[req->nfrags - 1]
                         : NULL;
    bool whole = f != NULL && !f->failed && f->cursor == f->nkeys &&
                 evbuffer_get_length(f->buf) == f->big_bytes;
    const char *p = req->big_head, *end = req->big_head + req->big_headlen;
    struct proto_str tok;
    uint32_t idx = 0;

    req->big_meta = false;
    if (req->client == NULL) {
        return;
    }
    if (!whole && req->meta_quiet) {
        /* A quiet miss says nothing. */
        stats_add(&w->stats.big_misses, 1);
        return;
    }
    evbuffer_add_printf(req->rsp, whole ? "VA %" PRIu32 : "EN",
                        req->big_bytes);
    /* The reply's flags after "VA <n>": s is the value's size now; a miss
     * keeps k, b and O, as memcached's EN does. */
    while (proto_next_key(&p, end, &tok)) {
        if (idx++ < 2) {
            continue;
        }
        if (whole && tok.p[0] == 's') {
            evbuffer_add_printf(req->rsp, " s%" PRIu32, req->big_bytes);
        } else if (whole || tok.p[0] == 'k' || tok.p[0] == 'O' ||
                   (tok.len == 1 && tok.p[0] == 'b')) {
            evbuffer_add(req->rsp, " ", 1);
            evbuffer_add(req->rsp, tok.p, tok.len);
        }
    }
    evbuffer_add(req->rsp, "\r\n", 2);
    if (whole) {
        evbuffer_remove_buffer(f->buf, req->rsp, f->big_bytes);
        evbuffer_add(req->rsp, "\r\n", 2);
        stats_add(&w->stats.big_gets, 1);
    } else {
        stats_add(&w->stats.big_misses, 1);
        if (f != NULL) {
            evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
        }
    }
}

void
big_frag_end(struct frag *f)
{
    if (f->cursor != f->nkeys) {
        f->failed = true;
    }
}
