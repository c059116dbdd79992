/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * big: values larger than [proxy] big_value_split, stored as chunks under
 * derived keys on the key's backend plus an index item under the key
 * itself, and put together again on read: all chunks or a miss, never a
 * torn value. On the worker's request path.
 *
 *   set KEY (vlen > split) --big_split()--> chunk sets (an orphaned
 *       request) + "set KEY <flags> <exptime> <n>" of the index, which
 *       the ordinary write path sends (its reply is the client's)
 *   get ... --retrieval finishes--> big_expand(): for each index among
 *       the hits, a FRAG_BIG get of its chunks on the backend that served
 *       it --all answered--> big_assemble(): the index replaced by the
 *       value, or dropped (a miss) when a chunk is missing
 *
 * A chunk key is "mcring:big:<token>:<i>" (token: 16 hex digits, new for
 * every write), so the chunks of two writes of a key never mix and an
 * index only ever names chunks written with it.
 */
#ifndef MCRING_BIG_H
#define MCRING_BIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct evbuffer;
struct frag;
struct request;
struct worker;

/* Chunks of one value at most: a larger one is refused as too large. */
#define BIG_CHUNKS_MAX 1024

/* Whether pr (a storage command) is a write to split. */
bool big_wants(const struct worker *w, const struct proto_req *pr);

/*
 * Sends the chunks of the value of pr (its data block: the vlen + 2 bytes
 * after skip in in, which are consumed with the skip bytes) to the
 * backend the key's writes go to, and writes into out the command that
 * stores the index instead: a line, "\r\n", the index block. Returns the
 * length of that line, or -1 (nothing consumed) when the value needs more
 * than BIG_CHUNKS_MAX chunks.
 */
int big_split(struct request *req, const struct proto_req *pr,
              struct evbuffer *in, size_t skip, struct evbuffer *out);

/*
 * A retrieval (get, gets, gat, gats) of req has its hits in req->rsp:
 * sends a FRAG_BIG for each index among them and returns true (the
 * request finishes again once they are answered, then big_assemble());
 * false when there is none.
 */
bool big_expand(struct request *req);
/* Replaces each index in req->rsp by its value, or drops it (a miss). */
void big_assemble(struct request *req);

/* A FRAG_BIG's VALUE line names key: whether it is one of its chunks. */
bool big_frag_match(struct frag *f, const char *key, size_t keylen);
/* ... and its whole block, total bytes at p, or the first total of in
 * (consumed). */
void big_frag_value(struct frag *f, const char *p, size_t total,
                    struct evbuffer *in);
/* A FRAG_BIG's END: a chunk not answered makes it a miss. */
void big_frag_end(struct frag *f);

/* Whether a meta reply (total bytes at line, or with line NULL the first
 * total of in, left there) is a VA whose value is a big value's index. */
bool big_meta_is_index(const char *line, size_t total, struct evbuffer *in);
/* Such a reply of the client's mg f (as request_frag_meta() has it, in
 * consumed): kept, not relayed; the request reads the value's chunks when
 * it finishes (big_meta_expand(), big_meta_assemble()). */
void big_meta_index(struct frag *f, const char *line, size_t total,
                    struct evbuffer *in);
/* An mg that found an index: sends its chunks' get and returns true (the
 * request finishes again), or false when none could be sent. */
bool big_meta_expand(struct request *req);
/* ... then answers the value as VA (its size in s), or a miss as
 * memcached's EN (with k, b and O), once. */
void big_meta_assemble(struct request *req);

#endif
