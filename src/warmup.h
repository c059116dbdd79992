/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * warmup: the data path's half of a move (see migrate.h), the pair of
 * rules that keeps it stale-safe. While a key's owner differs from its
 * owner in the topology's origin (its previous owner):
 *
 *   reads   get gets gat gats mg that miss on the new owner are sent to
 *           the previous owner (when it is UP); a hit is answered and
 *           copied to the new owner, keeping flags and remaining TTL;
 *           copies are bounded per worker (dropped and counted when the
 *           queue is full)
 *   writes  storage commands, delete, incr/decr, touch and meta writes are
 *           followed, once answered, by a delete of the key on its
 *           previous owner, before the client is answered (a delete or md
 *           goes to the previous owner first, then to the new one); a
 *           delete that fails or cannot be sent taints that backend: it
 *           serves no more warm-up reads in this move
 *   copies  (these, and the background copier's) are made so that a
 *           delete or write that comes in between always wins:
 *             1. mg k c N<ttl> on the new owner: a placeholder where it
 *                has nothing (W); a value or another mover's placeholder
 *                there, and the copy is not made
 *             2. ms k C<placeholder's cas>: fails once a delete removed
 *                the placeholder or a write replaced it
 *             3. mg k c on the source: the item read still there,
 *                unchanged, or the copy is deleted again (md C<its cas>)
 *           With deletes ordered as above, a delete answered to a client
 *           is never undone by a copy.
 *   placeholders are empty items that plain get would answer: so a hit on
 *           the new owner that is an empty value with flags 0 is checked
 *           with mg (Z: a placeholder, a miss), and a client's mg answered
 *           with Z gets a miss (then the previous owner's answer)
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

/* Replies of the warm-up reads and the copies' steps, all but
 * FRAG_WARM_META (as request_frag_meta()). */
void warmup_frag_meta(struct frag *f, const char *line, size_t total,
                      struct evbuffer *in);
/*
 * The reply (as request_frag_meta()) to the client's own mg of a key with a
 * previous owner: when it is a copy's placeholder (Z), puts what memcached
 * answers a miss into req->rsp, consumes the reply and returns true.
 */
bool warmup_meta_placeholder(struct request *req, const char *line,
                             size_t total, struct evbuffer *in);
/* FRAG_PREV_DELETE answered with line. */
void warmup_delete_answer(struct frag *f, const char *line, size_t len);
/* A fragment of a move (frag_kind_is_warmup()) failed. */
void warmup_frag_fail(struct frag *f);
/* r, a copy, no longer holds its value: its place in the worker's queue
 * is free (nothing when it holds none). */
void warmup_copy_done(struct request *r);

/* key_prev of a read's key whose copy elsewhere (another replica,
 * another region) is looked up only if the read misses. */
#define WARMUP_LATER ((struct backend *)&warmup_later)
extern const char warmup_later;

#endif
