/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mget: split and merge of multi-key retrievals (see mget.c). Works on a
 * request's key and fragment arrays only.
 */
#ifndef MCRING_MGET_H
#define MCRING_MGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct frag;
struct proto_req;
struct request;

/*
 * Once every key i has its fragment in req->key_frag[i] and each fragment
 * its key count in nkeys: lays the keys out in req->frag_keys grouped by
 * fragment, each group in the client's order, and sets each fragment's
 * key_start.
 */
void mget_layout(struct request *req);

/* The bytes of fragment f's keys on a command line: " key" for each. */
size_t mget_keys_len(const struct request *req, const struct frag *f);
/* Writes them at p (mget_keys_len() bytes); returns the end. */
char *mget_put_keys(const struct request *req, const struct frag *f,
                    char *p);

/*
 * Appends to out the retrieval command for fragment f's keys, in one
 * piece: pr's command name, exptime for gat/gats, the keys.
 */
void mget_write(const struct request *req, const struct frag *f,
                const struct proto_req *pr, int64_t exptime,
                struct evbuffer *out);

/*
 * A VALUE line for fragment f, a get on a line it shares with other
 * fragments (bconn_send_get()): true if key is one of f's keys not yet
 * answered (in order: the keys before it missed).
 */
bool mget_claim(struct frag *f, const char *key, size_t keylen);

/*
 * A VALUE line of fragment f names key, its whole block (line, data,
 * "\r\n") being blocklen bytes: false if the key was not asked for (in
 * order). Then exactly one of mget_value() and mget_value_move() hands
 * over the block.
 */
bool mget_match(struct frag *f, const char *key, size_t keylen,
                uint32_t blocklen);
/* The block, contiguous at p (copied). */
void mget_value(struct frag *f, const char *p, size_t len);
/* The block, the first len bytes of in (moved out of in). */
void mget_value_move(struct frag *f, struct evbuffer *in, size_t len);

/* Key idx's block, a VALUE line and its data, from elsewhere (a warm-up
 * read): copied into req->vals and counted as a hit. */
void mget_put(struct request *req, uint32_t idx, const char *line,
              size_t linelen, const char *data, size_t datalen);

/* Fragment f failed: its keys become misses, what it collected is gone. */
void mget_drop(struct frag *f);

/*
 * Writes the VALUE blocks of a multi-fragment retrieval into req->rsp in
 * the client's key order: runs of small blocks (in req->vals) are copied
 * into one reserved extent, large ones moved from their fragment's buffer.
 */
void mget_merge(struct request *req);

#endif
