/*
 * warmup: the data path's half of a move (see migrate.h), the pair of
 * rules that keeps it stale-safe. While a key's owner differs from its
 * owner in the topology's origin (its previous owner):
 *
 *   reads   get gets gat gats mg that miss on the new owner are sent to
 *           the previous owner (when it is UP); a hit is answered and
 *           copied to the new owner with add semantics (ms ... ME: never
 *           over a value written meanwhile), keeping flags and remaining
 *           TTL; copies are bounded per worker (dropped and counted when
 *           the queue is full)
 *   writes  storage commands, delete, incr/decr, touch and meta writes are
 *           followed, once answered, by a delete of the key on its
 *           previous owner, before the client is answered (a delete or md
 *           goes to the previous owner first, then to the new one); a
 *           delete that fails or cannot be sent taints that backend: it
 *           serves no more warm-up reads in this move
 *   copies  once stored, a copy checks its source (mg c): the item read
 *           still there, unchanged, or the copy is deleted again (a delete
 *           or write came in between: with deletes ordered as above, a
 *           deleted key does not come back)
 *
 * request.c notes each key at dispatch and calls warmup_continue() before
 * a request completes.
 */
#ifndef MCRING_WARMUP_H
#define MCRING_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend;
struct evbuffer;
struct frag;
struct proto_str;
struct request;

/* Warm-up copies in flight per worker, and their bytes. */
#define WARMUP_COPY_QUEUE 1024
#define WARMUP_COPY_BYTES (16u << 20)

/*
 * A write of the key routed as route_key, named key on the wire (base64
 * with b64), whose owner is owner, goes to target: when the key has a
 * previous owner other than target, remembers it (and keeps key in
 * req->keys[0]) for the delete that follows the write.
 */
void warmup_note_write(struct request *req, const struct proto_str *route_key,
                       const struct proto_str *key, bool b64,
                       const struct backend *owner,
                       const struct backend *target);

/*
 * Key i of a read (routed as route_key; req->keys[i] is its name on the
 * wire) goes to b, its owner being owner: notes its previous owner in
 * req->key_prev[i] when it has one that is UP and b is the owner itself.
 */
void warmup_note_read(struct request *req, uint32_t i,
                      const struct proto_str *route_key,
                      const struct backend *owner, const struct backend *b);

/*
 * The request's fragments are all answered: sends what the move asks for
 * before it completes (the delete after a write, the warm-up reads of the
 * keys that missed). Returns true when it did: the request waits for those
 * fragments.
 */
bool warmup_continue(struct request *req);

/* Replies of FRAG_WARM and FRAG_COPY (as request_frag_meta()). */
void warmup_frag_meta(struct frag *f, const char *line, size_t total,
                      struct evbuffer *in);
/* FRAG_PREV_DELETE answered with line. */
void warmup_delete_answer(struct frag *f, const char *line, size_t len);
/* A FRAG_PREV_DELETE, FRAG_WARM, FRAG_WARM_META or FRAG_COPY failed. */
void warmup_frag_fail(struct frag *f);
/* A FRAG_COPY is answered or failed: its place in the queue is free. */
void warmup_copy_done(struct frag *f);

#endif
