/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * shadow: copies of a share of a pool's key commands sent to its shadow
 * pool ([pool NAME] shadow = POOL, shadow_share = SHARE), their replies
 * counted and discarded, on the worker's request path. For trying a new
 * cluster under real traffic: no client waits for a copy.
 */
#ifndef MCRING_SHADOW_H
#define MCRING_SHADOW_H

#include <stddef.h>

#include "proto.h"

struct evbuffer;
struct frag;
struct request;

/* Copies to shadow pools in flight per worker: at most this many client
 * commands, of at most this many bytes in all; beyond, copies are dropped
 * (and counted). */
#define SHADOW_QUEUE 4096
#define SHADOW_BYTES (16u << 20)
/* Keys of one multi-key read copied at most (the rest are dropped). */
#define SHADOW_KEYS_MAX 64

/*
 * Sends the key command pr of req (line/len its command line) to the
 * shadow pool of each key's pool that shadows it, as one orphaned request
 * of FRAG_SHADOW and FRAG_SHADOW_META fragments, one per key. For a
 * storage command or ms the data block is the vlen + 2 bytes after skip
 * in data, copied and left in place. Changes nothing of req. Call before
 * req is dispatched, only when req->wt->t->shadowed.
 */
void shadow_send(struct request *req, const struct proto_req *pr,
                 const char *line, size_t len, struct evbuffer *data,
                 size_t skip);

/* The reply of a FRAG_SHADOW: counted. */
void shadow_frag_line(struct frag *f, enum proto_rsp kind);
/* The reply of a FRAG_SHADOW_META, total bytes at line, or (line NULL)
 * the first total bytes of in, which are drained: counted. */
void shadow_frag_meta(struct frag *f, const char *line, size_t total,
                      struct evbuffer *in);
/* A FRAG_SHADOW or FRAG_SHADOW_META failed: counted. */
void shadow_frag_fail(struct frag *f);

#endif
