/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * big: see big.h.
 *
 * The index is a short value: BIG_MAGIC, the token in hex, the chunks and
 * the value's length, and a NUL ("\0mcring-big 1 <token> <n> <bytes>\0"),
 * with the client's flags and exptime. Chunks get flags 0 and the same
 * exptime (at most failover_ttl on a fallback, as the index). A value
 * holding BIG_MAGIC anywhere is read as one: bytes before and after the
 * index (an append or prepend) go before and after the chunks. A read
 * checks that every chunk came, in order, and that their bytes add up:
 * anything else is a miss, as is an index that cannot be read.
 *
 * What is not done: chunks of a value that was overwritten or deleted
 * stay until they expire or memcached evicts them; a binary key's value
 * is not split.
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
#include "net.h"
#include "proto.h"
#include "replica.h"
#include "request.h"
#include "ring.h"
#include "route.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "worker.h"

#define BIG_MAGIC "\0mcring-big 1 "
#define BIG_MAGIC_LEN (sizeof(BIG_MAGIC) - 1)
/* Chunk i of a value: its key, RING_DERIVED_TAG, the write's token, ':'
 * and i, in that many bytes (ring.h: it lives where its key lives). */
#define BIG_CHUNK_KEY "%.*s" RING_DERIVED_TAG "%016" PRIx64 ":%03" PRIx32
#define BIG_KEY_MAX (PROTO_KEY_MAX - RING_DERIVED_LEN)
_Static_assert(BIG_CHUNKS_MAX <= 0x1000, "a chunk's number is 3 hex digits");
#define BIG_INDEX_MAX 64            /* bytes of an index value at most */
#define BIG_HEAD_MAX 512            /* a VALUE line, terminator included */

bool
big_wants(const struct worker *w, const struct proto_req *pr)
{
    size_t split = w->cfg->big_value_split;

    if (split == 0 || pr->vlen <= split) {
        return false;
    }
    if (pr->cmd == PROTO_CMD_MS) {
        /* set, add and replace (an append is the backend's: big.h) */
        return pr->meta_mode == 0 || pr->meta_mode == 'S' ||
               pr->meta_mode == 'E' || pr->meta_mode == 'R';
    }
    return pr->cmd == PROTO_CMD_SET || pr->cmd == PROTO_CMD_ADD ||
           pr->cmd == PROTO_CMD_REPLACE || pr->cmd == PROTO_CMD_CAS;
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

/* The index value of a write: BIG_MAGIC, then its fields and a NUL. */
static size_t
big_format_index(char *index, uint64_t token, uint32_t n, uint32_t bytes)
{
    int m;

    memcpy(index, BIG_MAGIC, BIG_MAGIC_LEN);
    m = snprintf(index + BIG_MAGIC_LEN, BIG_INDEX_MAX - BIG_MAGIC_LEN,
                 "%016" PRIx64 " %" PRIu32 " %" PRIu32, token, n, bytes);
    /* snprintf's NUL is the index's last byte */
    return BIG_MAGIC_LEN + (size_t)m + 1;
}

/*
 * The command that stores the index instead of pr's value, into out: its
 * line (returned: its length), "\r\n", the index. An ms keeps its flags as
 * the client sent them (its key too: base64 stays base64); only the data
 * length is the index's. *exptime: the chunks' (an ms's T, else 0).
 */
static int
big_index_command(const struct proto_req *pr, const char *line, size_t len,
                  const char *index, size_t ilen, int64_t *exptime,
                  struct evbuffer *out)
{
    int llen;

    if (pr->cmd == PROTO_CMD_MS) {
        /* the flags: the line after the data length token */
        const char *p = pr->key.p + pr->key.len, *end = line + len;
        struct proto_str tok;
        int64_t t;

        while (p < end && *p == ' ') {
            p++;
        }
        while (p < end && *p != ' ') {
            p++;
        }
        llen = evbuffer_add_printf(out, "ms %.*s %zu%.*s", (int)pr->key.len,
                                   pr->key.p, ilen, (int)(end - p), p);
        *exptime = 0;
        while (proto_next_key(&p, end, &tok)) {
            if (tok.p[0] == 'T' &&
                util_parse_i64(tok.p + 1, tok.len - 1, &t) == 0) {
                *exptime = t;
            }
        }
    } else {
        *exptime = pr->exptime;
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
    }
    evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, index, ilen);
    evbuffer_add(out, "\r\n", 2);
    return llen;
}

/* Where the chunks of key go: the backend its writes go to (as
 * route_write() decides, uncounted) and its other replicas that take
 * writes; how many are in out, and in exp the exptime of each (a
 * fallback keeps what it holds for its owner briefly). */
static unsigned
big_targets(struct request *req, const struct proto_str *key,
            int64_t exptime, struct backend **out, int64_t *exp)
{
    struct worker *w = req->worker;
    const struct topology_pool *p =
        topology_write_pool_of(req->wt->t, key->p, key->len);
    struct backend *owner = p->be[ring_lookup(p->ring, key->p, key->len)];
    struct backend *b = backend_is_up(owner)
                            ? owner
                            : route_fallback(w, p, key->p, key->len, owner);
    unsigned missed = 0, n = 1;

    if (b == NULL) {
        return 0;
    }
    out[0] = b;
    if (p->replicas > 1) {
        /* A replica out of reach has the index noted by its write. */
        n += replica_write_targets(p, key->p, key->len, b, false, &missed,
                                   out + 1);
    }
    for (unsigned t = 0; t < n; t++) {
        exp[t] = out[t] != owner && !replica_is(p, key->p, key->len, out[t])
                     ? route_cap_exptime(w->cfg, exptime)
                     : exptime;
    }
    return n;
}

/*
 * Chunk i (clen bytes, the first of in) to the other regions' pools of a
 * local-first route, as replica_send_remote() sends any write there: not
 * waited for, bounded (beyond, dropped: the value is a miss there).
 */
static void
big_send_remote(struct request *req, const struct proto_str *key,
                uint64_t token, uint32_t i, int64_t exptime,
                struct evbuffer *in, size_t clen)
{
    struct evbuffer *tmp = req->worker->big_buf;
    char line[PROTO_KEY_MAX + 64];
    struct proto_req cp;
    int n = snprintf(line, sizeof(line), "set " BIG_CHUNK_KEY " 0 %lld %zu",
                     (int)key->len, key->p, token, i, (long long)exptime,
                     clen);

    memset(&cp, 0, sizeof(cp));
    cp.cmd = PROTO_CMD_SET;
    cp.name = (struct proto_str){line, 3};
    cp.key = (struct proto_str){line + 4, key->len + RING_DERIVED_LEN};
    cp.exptime = exptime;
    cp.vlen = (uint32_t)clen;
    /* The chunk is all in in: the caller read it whole. */
    if (net_copy_out(in, 0, clen, tmp) == 0) {
        evbuffer_add(tmp, "\r\n", 2);
        (void)replica_send_remote(req, &cp, &cp.key, line, (size_t)n, tmp, 0);
    }
    evbuffer_drain(tmp, evbuffer_get_length(tmp));
}

int
big_split(struct request *req, const struct proto_req *pr, const char *line,
          size_t len, struct evbuffer *in, size_t skip, struct evbuffer *out,
          struct request **chunks)
{
    struct worker *w = req->worker;
    const struct config *cfg = w->cfg;
    size_t split = cfg->big_value_split;
    uint32_t n = (uint32_t)(((size_t)pr->vlen + split - 1) / split);
    struct backend *be[CONFIG_REPLICAS_MAX];
    struct bconn *bc[CONFIG_REPLICAS_MAX];
    struct request *creq = NULL;
    char index[BIG_INDEX_MAX], keybuf[PROTO_KEY_MAX];
    struct proto_str key = pr->key;
    int64_t exptime, exp[CONFIG_REPLICAS_MAX];
    uint64_t token;
    struct frag *f;
    unsigned nt;
    size_t ilen;
    int llen;
    bool remote;

    if (pr->meta_b64) {
        size_t k = proto_base64_decode(pr->key.p, pr->key.len, keybuf,
                                       sizeof(keybuf));

        if (k > 0) {
            key = (struct proto_str){keybuf, k};
        }
    }
    *chunks = NULL;
    if (n > BIG_CHUNKS_MAX || key.len > BIG_KEY_MAX ||
        !proto_key_classic(key.p, key.len)) {
        /* Its chunks could not be named. */
        return -1;
    }
    if (key.p != keybuf) {
        /* pr points into in's skip bytes, drained before the chunks */
        memcpy(keybuf, key.p, key.len);
        key.p = keybuf;
    }
    token = big_token(w);
    remote = req->wt->t->regional &&
             topology_route_of(req->wt->t, key.p, key.len)->nremote > 0;
    /* The index's command first: pr points into in's skip bytes. */
    ilen = big_format_index(index, token, n, pr->vlen);
    llen = big_index_command(pr, line, len, index, ilen, &exptime, out);
    nt = big_targets(req, &key, exptime, be, exp);
    if (nt > 0) {
        creq = request_get(w, NULL);
        creq->cmd = PROTO_CMD_SET;
        creq->noreply = true;
        creq->pending = 1; /* held while sending */
        request_reserve_frags(creq, n * nt);
        for (unsigned t = 0; t < nt; t++) {
            bc[t] = route_pick(w, worker_wb(w, be[t]));
        }
    }
    evbuffer_drain(in, skip);
    for (uint32_t i = 0; i < n; i++) {
        size_t clen = (size_t)pr->vlen - (size_t)i * split;
        bool moved = false;

        clen = clen < split ? clen : split;
        if (remote) {
            big_send_remote(req, &key, token, i, exptime, in, clen);
        }
        for (unsigned t = 0; t < nt; t++) {
            struct evbuffer *o = bconn_output(bc[t]);

            if (o == NULL) {
                stats_add(&w->stats.big_chunk_failures, 1);
                creq->nfailed += t == 0;
                continue;
            }
            evbuffer_add_printf(o, "set " BIG_CHUNK_KEY " 0 %lld %zu\r\n",
                                (int)key.len, key.p, token, i,
                                (long long)exp[t], clen);
            if (t + 1 < nt) {
                /* The chunk is all in in: the caller read it whole. */
                (void)net_copy_out(in, 0, clen, o);
            } else {
                evbuffer_remove_buffer(in, o, clen);
                moved = true;
            }
            evbuffer_add(o, "\r\n", 2);
            creq->pending++;
            f = request_frag_init(creq, FRAG_BIG_CHUNK, be[t]);
            /* Another replica's: its failure is not the write's. */
            f->fallback = t > 0;
            bconn_enqueue(bc[t], f);
        }
        if (!moved) {
            evbuffer_drain(in, clen);
        }
        if (nt == 0) {
            stats_add(&w->stats.big_chunk_failures, 1);
        }
        stats_add(&w->stats.big_chunks, 1);
    }
    evbuffer_drain(in, 2);
    *chunks = creq;
    stats_add(&w->stats.big_sets, 1);
    return llen;
}

/* A lower-case hex digit's value, or 16 and more. */
static unsigned
big_digit(char c)
{
    return c >= '0' && c <= '9'   ? (unsigned)(c - '0')
           : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a') + 10
                                  : 99;
}

/*
 * The index at v (len bytes from there on, at most BIG_INDEX_MAX are
 * looked at): its length, its NUL included, with its token, chunks and
 * bytes; 0 when v is no index; -1 when it is one that cannot be read.
 */
static int
big_parse_index(const char *v, size_t len, uint64_t *token, uint32_t *n,
                uint32_t *bytes)
{
    uint64_t x[3] = {0, 0, 0};
    const char *p = v + BIG_MAGIC_LEN, *end;

    if (len < BIG_MAGIC_LEN || memcmp(v, BIG_MAGIC, BIG_MAGIC_LEN) != 0) {
        return 0;
    }
    len = len < BIG_INDEX_MAX ? len : BIG_INDEX_MAX;
    if ((end = memchr(p, '\0', len - BIG_MAGIC_LEN)) == NULL) {
        return -1;
    }
    /* 16 hex digits, then the chunks and the bytes in decimal */
    for (int i = 0; i < 3; i++) {
        unsigned base = i == 0 ? 16 : 10;
        const char *start;

        if (i > 0 && (p == end || *p++ != ' ')) {
            return -1;
        }
        for (start = p; p < end && *p != ' '; p++) {
            unsigned d = big_digit(*p);

            if (d >= base || p - start >= (i == 0 ? 16 : 10)) {
                return -1;
            }
            x[i] = x[i] * base + d;
        }
        if (p == start) {
            return -1;
        }
    }
    if (p != end || x[1] == 0 || x[1] > BIG_CHUNKS_MAX || x[2] > UINT32_MAX) {
        return -1;
    }
    *token = x[0];
    *n = (uint32_t)x[1];
    *bytes = (uint32_t)x[2];
    return (int)(end + 1 - v);
}

/*
 * Where an index starts in a value of len bytes, at p or (p NULL) at off in
 * buf: an append or prepend to a big value (the backend's own) leaves it
 * with bytes before or after it, which are the value's too. -1: none.
 */
static ssize_t
big_find(const char *p, struct evbuffer *buf, size_t off, size_t len)
{
    struct evbuffer_ptr from, to, at;

    if (len < BIG_MAGIC_LEN) {
        return -1;
    }
    if (p != NULL) {
        const char *m = memmem(p + off, len, BIG_MAGIC, BIG_MAGIC_LEN);

        return m != NULL ? m - (p + off) : -1;
    }
    if (evbuffer_ptr_set(buf, &from, off, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_ptr_set(buf, &to, off + len, EVBUFFER_PTR_SET) != 0) {
        return -1;
    }
    at = evbuffer_search_range(buf, BIG_MAGIC, BIG_MAGIC_LEN, &from, &to);
    return at.pos < 0 ? -1 : (ssize_t)((size_t)at.pos - off);
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
    int index;                      /* 1, 0 or -1 (big_parse_index()) */
    uint64_t token;
    uint32_t n, bytes;
    size_t pre, ilen;               /* the value: pre bytes, the index
                                       (ilen bytes), the rest */
};

/* What the value of len bytes at off in buf (p NULL) or at p says. */
static void
big_value_index(const char *p, struct evbuffer *buf, size_t off, size_t len,
                struct big_block *bb)
{
    char v[BIG_INDEX_MAX];
    ssize_t at = big_find(p, buf, off, len);
    size_t got;
    int r;

    bb->index = 0;
    if (at < 0) {
        return;
    }
    got = len - (size_t)at < sizeof(v) ? len - (size_t)at : sizeof(v);
    if (p != NULL) {
        memcpy(v, p + off + (size_t)at, got);
    } else {
        struct evbuffer_ptr from;

        if (evbuffer_ptr_set(buf, &from, off + (size_t)at,
                             EVBUFFER_PTR_SET) != 0 ||
            evbuffer_copyout_from(buf, &from, v, got) != (ev_ssize_t)got) {
            return;
        }
    }
    r = big_parse_index(v, got, &bb->token, &bb->n, &bb->bytes);
    bb->index = r > 0 ? 1 : -1;
    bb->pre = (size_t)at;
    bb->ilen = r > 0 ? (size_t)r : 0;
}

static bool
big_block_at(struct evbuffer *rsp, size_t off, char *line,
             struct big_block *bb)
{
    struct evbuffer_ptr at;
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
    big_value_index(NULL, rsp, off + headlen, bb->vlen, bb);
    return true;
}

void
big_note_source(struct request *req, uint32_t i, struct backend *be)
{
    if (req->big_srccap < req->nkeys) {
        req->big_src = util_xrealloc(req->big_src, req->nkeys,
                                     sizeof(*req->big_src));
        req->big_srccap = req->nkeys;
        req->big_src_set = false;
    }
    if (!req->big_src_set) {
        memset(req->big_src, 0, req->big_srccap * sizeof(*req->big_src));
        req->big_src_set = true;
    }
    if (i < req->big_srccap) {
        req->big_src[i] = be;
    }
}

void
big_note_key(struct request *req, const struct proto_str *key)
{
    if (key->len > BIG_KEY_MAX) {
        req->big_keylen = 0; /* no big value has it */
        return;
    }
    if (req->big_key == NULL) {
        req->big_key = util_xmalloc(PROTO_KEY_MAX);
    }
    memcpy(req->big_key, key->p, key->len);
    req->big_keylen = (uint32_t)key->len;
}

bool
big_holds_index(const char *data, size_t len)
{
    return big_find(data, NULL, 0, len) >= 0;
}

/* The backend that answered the k-th hit, whose key is key (the request's
 * keys in order, from *next on): the key's fragment's, or the warm-up
 * read's that found it. */
static struct backend *
big_served_by(struct request *req, const struct proto_str *key,
              uint32_t *next)
{
    if ((req->nfrags == 1 || req->stream) && !req->big_src_set) {
        return req->frags[0].be;
    }
    while (*next < req->nkeys) {
        uint32_t i = (*next)++;
        const struct proto_str *k = &req->keys[i];

        if (k->len == key->len && memcmp(k->p, key->p, key->len) == 0) {
            if (req->big_src_set && i < req->big_srccap &&
                req->big_src[i] != NULL) {
                return req->big_src[i];
            }
            return req->frags[req->stream ? 0 : req->key_frag[i]].be;
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
            evbuffer_add_printf(out, " " BIG_CHUNK_KEY, (int)bb.key.len,
                                bb.key.p, bb.token, i);
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
        if (!f->failed && f->cursor == f->nkeys &&
            evbuffer_get_length(f->buf) == f->big_bytes) {
            /* What was prepended, the chunks, what was appended. */
            size_t post = bb.vlen - bb.pre - bb.ilen;

            evbuffer_add_printf(tmp, "VALUE %.*s %" PRIu32 " %zu",
                                (int)bb.key.len, bb.key.p, bb.flags,
                                bb.pre + bb.bytes + post);
            if (bb.has_cas) {
                evbuffer_add_printf(tmp, " %" PRIu64, bb.cas);
            }
            evbuffer_add(tmp, "\r\n", 2);
            evbuffer_drain(rsp, bb.len - bb.vlen - 2);
            evbuffer_remove_buffer(rsp, tmp, bb.pre);
            evbuffer_drain(rsp, bb.ilen);
            evbuffer_remove_buffer(f->buf, tmp, f->big_bytes);
            evbuffer_remove_buffer(rsp, tmp, post + 2);
            stats_add(&w->stats.big_gets, 1);
            continue;
        }
        /* Not all there: a miss. */
        evbuffer_drain(rsp, bb.len);
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
    char want[RING_DERIVED_LEN + 1];
    const char *tail = key + keylen - RING_DERIVED_LEN;
    uint32_t i = 0;

    if (keylen <= RING_DERIVED_LEN) {
        return false;
    }
    /* The key's own part is the request's: the token is checked. */
    (void)snprintf(want, sizeof(want), RING_DERIVED_TAG "%016" PRIx64 ":",
                   f->big_token);
    if (memcmp(tail, want, RING_DERIVED_LEN - 3) != 0) {
        return false;
    }
    for (const char *p = tail + RING_DERIVED_LEN - 3; p < key + keylen; p++) {
        unsigned d = big_digit(*p);

        if (d >= 16) {
            return false;
        }
        i = i * 16 + d;
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
big_meta_take(struct frag *f, const char *line, size_t total,
              struct evbuffer *in)
{
    struct request *req = f->req;
    char head[BIG_HEAD_MAX];
    size_t n = total < sizeof(head) ? total : sizeof(head);
    const char *h = line, *nl;
    struct big_block bb;
    size_t hlen, vlen, post;

    if (h == NULL) {
        if (evbuffer_copyout(in, head, n) != (ev_ssize_t)n) {
            return false;
        }
        h = head;
    }
    if (n < 3 || memcmp(h, "VA ", 3) != 0 ||
        (nl = memchr(h, '\n', n)) == NULL) {
        return false;
    }
    hlen = (size_t)(nl - h) + 1;
    vlen = total >= hlen + 2 ? total - hlen - 2 : 0;
    big_value_index(line, in, hlen, vlen, &bb);
    if (bb.index == 0) {
        return false;
    }
    /* Not the index bytes, as if they were the value: the value, once
     * its chunks are read (big_meta_expand()). */
    req->big_meta = true;
    req->big_be = f->be;
    /* unreadable, or a key no chunk can have: a miss */
    req->big_n = bb.index > 0 && req->big_keylen > 0 ? bb.n : 0;
    req->big_token = bb.token;
    req->big_bytes = bb.bytes;
    req->big_pre = (uint32_t)bb.pre;
    post = bb.index > 0 ? vlen - bb.pre - bb.ilen : 0;
    if (req->big_data == NULL) {
        req->big_data = evbuffer_new();
    }
    if (req->big_data == NULL) {
        req->big_n = 0;
    } else if (bb.index > 0) {
        /* What was prepended and appended to it, kept for the answer. */
        if (line != NULL) {
            evbuffer_add(req->big_data, line + hlen, bb.pre);
            evbuffer_add(req->big_data, line + hlen + bb.pre + bb.ilen, post);
        } else if (net_copy_out(in, hlen, bb.pre, req->big_data) != 0 ||
                   net_copy_out(in, hlen + bb.pre + bb.ilen, post,
                                req->big_data) != 0) {
            req->big_n = 0;
        }
    }
    /* Its flags, for the answer: the header without its terminator. */
    hlen -= hlen >= 2 && h[hlen - 2] == '\r' ? 2 : 1;
    if (req->big_head == NULL) {
        req->big_head = util_xmalloc(BIG_HEAD_MAX);
    }
    memcpy(req->big_head, h, hlen);
    req->big_headlen = (uint32_t)hlen;
    if (in != NULL) {
        evbuffer_drain(in, total);
    }
    return true;
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
        evbuffer_add_printf(out, " " BIG_CHUNK_KEY, (int)req->big_keylen,
                            req->big_key, req->big_token, i);
    }
    evbuffer_add(out, "\r\n", 2);
    req->pending++;
    bconn_enqueue(bc, f);
    return true;
}

/* Nothing of an mg's big value is kept past its answer. */
static void
big_meta_done(struct request *req, struct frag *f)
{
    if (req->big_data != NULL) {
        evbuffer_drain(req->big_data, evbuffer_get_length(req->big_data));
    }
    if (f != NULL && f->buf != NULL) {
        evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
    }
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
    /* what was prepended and appended: big_meta_take() */
    size_t extra = req->big_data != NULL ? evbuffer_get_length(req->big_data)
                                         : 0;
    size_t size = extra + req->big_bytes;
    struct proto_str tok;
    uint32_t idx = 0;

    req->big_meta = false;
    if (req->client == NULL || (!whole && req->meta_quiet)) {
        /* A quiet miss says nothing. */
        stats_add(&w->stats.big_misses, !whole);
        big_meta_done(req, f);
        return;
    }
    evbuffer_add_printf(req->rsp, whole ? "VA %zu" : "EN", size);
    /* The reply's flags after "VA <n>": s is the value's size now; a miss
     * keeps k, b and O, as memcached's EN does. */
    while (proto_next_key(&p, end, &tok)) {
        if (idx++ < 2) {
            continue;
        }
        if (whole && tok.p[0] == 's') {
            evbuffer_add_printf(req->rsp, " s%zu", size);
        } else if (whole || tok.p[0] == 'k' || tok.p[0] == 'O' ||
                   (tok.len == 1 && tok.p[0] == 'b')) {
            evbuffer_add(req->rsp, " ", 1);
            evbuffer_add(req->rsp, tok.p, tok.len);
        }
    }
    evbuffer_add(req->rsp, "\r\n", 2);
    if (whole) {
        evbuffer_remove_buffer(req->big_data, req->rsp, req->big_pre);
        evbuffer_remove_buffer(f->buf, req->rsp, f->big_bytes);
        evbuffer_remove_buffer(req->big_data, req->rsp, extra - req->big_pre);
        evbuffer_add(req->rsp, "\r\n", 2);
        stats_add(&w->stats.big_gets, 1);
    } else {
        stats_add(&w->stats.big_misses, 1);
    }
    big_meta_done(req, f);
}

void
big_frag_end(struct frag *f)
{
    if (f->cursor != f->nkeys) {
        f->failed = true;
    }
}
