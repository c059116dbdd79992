/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mget: splitting a multi-key retrieval over backends and merging the
 * answers back in the client's key order.
 *
 *   client keys k0 k1 k2 k3 ...       req->keys, key_frag[i] = fragment
 *   frag_keys: [f0's keys][f1's keys] grouped by fragment, each group in
 *                                      the client's order (mget_layout)
 *   VALUE blocks as they come:        one fragment (and no warm-up):
 *                                      straight into req->rsp (the backend
 *                                      keeps the order);
 *                                      several: small blocks appended to
 *                                      req->vals, large ones kept in the
 *                                      fragment's evbuffer (mget_value)
 *   END of the last fragment:         mget_merge writes the blocks into
 *                                      req->rsp in the client's order
 *
 * Nothing here knows about workers, connections or routing: it works on
 * the request's arrays only, and has its own Check suite.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "big.h"
#include "mget.h"
#include "proto.h"
#include "request.h"
#include "util.h"

/* VALUE blocks up to this size, of a retrieval split over several
 * backends, are collected in req->vals: cheaper than evbuffer chains for
 * the typical small value. Larger blocks stay in evbuffer chains. */
#define MGET_SMALL_BLOCK 4096

void
mget_layout(struct request *req)
{
    for (uint32_t fi = 0, start = 0; fi < req->nfrags; fi++) {
        struct frag *f = &req->frags[fi];

        f->key_start = start;
        start += f->nkeys;
        f->nkeys = 0;
    }
    for (uint32_t i = 0; i < req->nkeys; i++) {
        struct frag *f = &req->frags[req->key_frag[i]];

        req->frag_keys[f->key_start + f->nkeys++] = i;
    }
}

size_t
mget_keys_len(const struct request *req, const struct frag *f)
{
    size_t n = 0;

    for (uint32_t k = 0; k < f->nkeys; k++) {
        n += 1 + req->keys[req->frag_keys[f->key_start + k]].len;
    }
    return n;
}

char *
mget_put_keys(const struct request *req, const struct frag *f, char *p)
{
    for (uint32_t k = 0; k < f->nkeys; k++) {
        const struct proto_str *ks =
            &req->keys[req->frag_keys[f->key_start + k]];

        *p++ = ' ';
        memcpy(p, ks->p, ks->len);
        p += ks->len;
    }
    return p;
}

void
mget_write(const struct request *req, const struct frag *f,
           const struct proto_req *pr, int64_t exptime, struct evbuffer *out)
{
    char num[24];
    int numlen = 0;
    size_t size;
    struct evbuffer_iovec v;
    char *p;

    if (pr->cmd == PROTO_CMD_GAT || pr->cmd == PROTO_CMD_GATS) {
        numlen = snprintf(num, sizeof(num), " %lld", (long long)exptime);
    }
    size = pr->name.len + (size_t)numlen + mget_keys_len(req, f) + 2;
    if (evbuffer_reserve_space(out, (ev_ssize_t)size, &v, 1) != 1) {
        log_error("out of memory");
        abort();
    }
    p = v.iov_base;
    memcpy(p, pr->name.p, pr->name.len);
    p += pr->name.len;
    memcpy(p, num, (size_t)numlen);
    p += numlen;
    p = mget_put_keys(req, f, p);
    *p++ = '\r';
    *p++ = '\n';
    v.iov_len = size;
    evbuffer_commit_space(out, &v, 1);
}

bool
mget_match(struct frag *f, const char *key, size_t keylen, uint32_t blocklen)
{
    struct request *req = f->req;

    if (req->stream) {
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

bool
mget_claim(struct frag *f, const char *key, size_t keylen)
{
    struct request *req = f->req;

    for (uint32_t c = f->cursor; c < f->nkeys; c++) {
        const struct proto_str *k = &req->keys[req->frag_keys[f->key_start + c]];

        if (k->len == keylen && memcmp(k->p, key, keylen) == 0) {
            /* mget_match() takes it from here; in stream mode it does
             * not look at keys, so the cursor moves past it now. */
            f->cursor = req->stream ? c + 1 : c;
            return true;
        }
    }
    return false;
}

/* Room for len more bytes in req->vals (doubling). */
static void
mget_vals_reserve(struct request *req, size_t len)
{
    size_t cap;

    if (req->valslen + len <= req->valscap) {
        return;
    }
    cap = req->valscap == 0 ? 4096 : req->valscap * 2;
    while (cap < req->valslen + len) {
        cap *= 2;
    }
    req->vals = util_xrealloc(req->vals, cap, 1);
    req->valscap = cap;
}

void
mget_value(struct frag *f, const char *p, size_t len)
{
    struct request *req = f->req;

    if (f->kind == FRAG_BIG) {
        big_frag_value(f, p, len, NULL);
        return;
    }
    if (req->stream) {
        evbuffer_add(req->rsp, p, len);
        return;
    }
    if (len > MGET_SMALL_BLOCK) {
        evbuffer_add(f->buf, p, len);
        return;
    }
    mget_vals_reserve(req, len);
    memcpy(req->vals + req->valslen, p, len);
    req->block_off[f->matched] = (uint32_t)req->valslen;
    req->valslen += len;
}

void
mget_value_move(struct frag *f, struct evbuffer *in, size_t len)
{
    struct request *req = f->req;

    if (f->kind == FRAG_BIG) {
        big_frag_value(f, NULL, len, in);
        return;
    }
    evbuffer_remove_buffer(in, req->stream ? req->rsp : f->buf, len);
}

void
mget_drop(struct frag *f)
{
    struct request *req = f->req;

    if (!req->stream) {
        /* Its keys become misses; drop what it had collected. */
        for (uint32_t k = 0; k < f->nkeys; k++) {
            uint32_t idx = req->frag_keys[f->key_start + k];

            if (req->block_len[idx] > 0) {
                req->block_len[idx] = 0;
                req->hits--;
            }
        }
        if (f->buf != NULL) {
            evbuffer_drain(f->buf, evbuffer_get_length(f->buf));
        }
    } else {
        evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
        req->hits = 0;
    }
}

void
mget_put(struct request *req, uint32_t idx, const char *line, size_t linelen,
         const char *data, size_t datalen)
{
    size_t len = linelen + datalen;

    mget_vals_reserve(req, len);
    memcpy(req->vals + req->valslen, line, linelen);
    memcpy(req->vals + req->valslen + linelen, data, datalen);
    req->block_off[idx] = (uint32_t)req->valslen;
    req->block_len[idx] = (uint32_t)len;
    req->valslen += len;
    req->hits++;
}

/*
 * Writes the VALUE blocks of a multi-fragment retrieval into req->rsp in
 * the client's key order: runs of small blocks (in req->vals) are copied
 * into one reserved extent, large ones moved from their fragment's buffer.
 */
void
mget_merge(struct request *req)
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
