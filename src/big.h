/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * big: values larger than [proxy] big_value_split, stored as chunks under
 * derived keys on the key's backend plus an index item under the key
 * itself, and put together again on read: all chunks or a miss, never a
 * torn value. On the worker's request path.
 *
 *   set KEY (vlen > split) --big_split()--> chunk sets (a request of
 *       their own) to the key's write backend and its other replicas
 *       --all answered (request.c)--> "set KEY <flags> <exptime> <n>"
 *       (an ms: "ms KEY <n> <its flags>") of the index, which the
 *       ordinary write path sends (its reply is the client's), or the
 *       client's error when the write backend refused a chunk
 *   get ... --retrieval finishes--> big_expand(): for each index among
 *       the hits, a FRAG_BIG get of its chunks on the backend that served
 *       it (a warm-up read's: big_note_source()) --all answered-->
 *       big_assemble(): the index replaced by the value, or dropped (a
 *       miss) when a chunk is missing
 *   mg KEY v --> big_meta_take(), big_meta_expand(), big_meta_assemble()
 *
 * A chunk key is "KEY:mcbig:<token>:<i>" (token: 16 hex digits, new for
 * every write; i: 3 hex digits), so the chunks of two writes of a key
 * never mix and an index only ever names chunks written with it; the ring
 * and the routes place it as KEY (ring.h's derived keys), so a move's
 * copy and the replicas take the chunks where the index goes. An append
 * or prepend to an index (the backend's) leaves bytes around it, which
 * are the value's too.
 */
#ifndef MCRING_BIG_H
#define MCRING_BIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct backend;
struct evbuffer;
struct frag;
struct request;
struct worker;

/* Chunks of one value at most: a larger one is refused as too large. */
#define BIG_CHUNKS_MAX 1024

/* Whether pr (a storage command) is a write to split. */
bool big_wants(const struct worker *w, const struct proto_req *pr);

/*
 * Sends the chunks of the value of pr (line/len its command line; its data
 * block: the vlen + 2 bytes after skip in in, which are consumed with the
 * skip bytes) to the backend the key's writes go to and its other replicas
 * that take writes, and writes into out the command that stores the index
 * instead: a line, "\r\n", the index block; an ms keeps its flags. The
 * chunk writes are *chunks, a request of their own whose pending count
 * the caller drops (it finishes once all are answered; its nfailed: those
 * of the key's write backend that failed), or NULL when none could be
 * sent. Returns the length of the index's line, or -1 (nothing consumed)
 * when the value needs more than BIG_CHUNKS_MAX chunks or its key cannot
 * name them.
 */
int big_split(struct request *req, const struct proto_req *pr,
              const char *line, size_t len, struct evbuffer *in, size_t skip,
              struct evbuffer *out, struct request **chunks);

/*
 * A retrieval (get, gets, gat, gats) of req has its hits in req->rsp:
 * sends a FRAG_BIG for each index among them and returns true (the
 * request finishes again once they are answered, then big_assemble());
 * false when there is none.
 */
bool big_expand(struct request *req);
/* Replaces each index in req->rsp by its value, or drops it (a miss). */
void big_assemble(struct request *req);

/* Key i of a retrieval was answered by be, a warm-up read (warmup.c): its
 * chunks, if it is an index, are read there. */
void big_note_source(struct request *req, uint32_t i, struct backend *be);
/* An mg of key: kept, for the chunks' keys if it finds an index. */
void big_note_key(struct request *req, const struct proto_str *key);
/* Whether the value of len bytes at data holds an index. */
bool big_holds_index(const char *data, size_t len);

/* A FRAG_BIG's VALUE line names key: whether it is one of its chunks. */
bool big_frag_match(struct frag *f, const char *key, size_t keylen);
/* ... and its whole block, total bytes at p, or the first total of in
 * (consumed). */
void big_frag_value(struct frag *f, const char *p, size_t total,
                    struct evbuffer *in);
/* A FRAG_BIG's END: a chunk not answered makes it a miss. */
void big_frag_end(struct frag *f);

/*
 * A meta reply of the client's mg f (total bytes at line, or with line NULL
 * the first total of in): when it is a VA whose value holds a big value's
 * index, it is kept, not relayed (consumed from in), and true returned;
 * the request reads the value's chunks when it finishes
 * (big_meta_expand(), big_meta_assemble()).
 */
bool big_meta_take(struct frag *f, const char *line, size_t total,
                   struct evbuffer *in);
/* An mg that found an index: sends its chunks' get and returns true (the
 * request finishes again), or false when none could be sent. */
bool big_meta_expand(struct request *req);
/* ... then answers the value as VA (its size in s), or a miss as
 * memcached's EN (with k, b and O), once. */
void big_meta_assemble(struct request *req);

#endif
