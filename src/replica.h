/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * replica: where the copies of a key of a replicated pool (replicas = N)
 * live, on the worker's request path.
 *
 * A key's replicas are the first N distinct backends of its pool's
 * fallback walk, its owner first: every proxy with the same config agrees
 * on them. Writes go to the primary (the first replica that is UP, else
 * the ordinary fallback) and to every other replica that is UP or
 * RECOVERING; a replica that is neither has the key noted in its recovery
 * log, so it is deleted there before the backend serves again. Reads go
 * to the primary and, on a miss, to the next replica that is UP, whose
 * hit is copied back (warmup.c's read and copy, placeholder and all).
 */
#ifndef MCRING_REPLICA_H
#define MCRING_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "proto.h"

struct backend;
struct topology;
struct topology_pool;

/* The replicas of key in pool p, in walk order: at most
 * CONFIG_REPLICAS_MAX, p->replicas of them. */
unsigned replica_set(const struct topology_pool *p, const char *key,
                     size_t len, struct backend **out);

/* Whether be is one of key's replicas in p. */
bool replica_is(const struct topology_pool *p, const char *key, size_t len,
                const struct backend *be);

/*
 * The other replicas a write of key sent to primary must reach (out gets
 * at most CONFIG_REPLICAS_MAX - 1): those UP or RECOVERING. The key is
 * noted in the recovery log of each one that is not (unless it came back
 * meanwhile: then it is one of out); with note false (a key a recovery
 * pass cannot name) nothing is noted and *missed counts those. Returns how
 * many are in out.
 */
unsigned replica_write_targets(const struct topology_pool *p,
                               const char *key, size_t len,
                               const struct backend *primary, bool note,
                               unsigned *missed, struct backend **out);

/* The replica a read of key that missed on b tries next: the first UP
 * replica after b, or NULL. */
struct backend *replica_next_read(const struct topology_pool *p,
                                  const char *key, size_t len,
                                  const struct backend *b);

struct evbuffer;
struct frag;
struct proto_req;
struct request;

/*
 * Sends the single-key write pr of req (line/len its command line; key:
 * the key it is routed by, a meta command's base64 key decoded) to the
 * key's replicas other than primary: the line without noreply (a meta
 * command without the flags that only shape its reply: one reply line
 * each), a cas (or a meta write with C) as a delete instead, since its
 * cas unique is the primary's; for ms and the storage commands a copy of
 * the data block, the vlen + 2 bytes after skip in data, which are left in
 * place. Each goes out as a FRAG_REPLICA counted in req->pending, in room
 * the caller reserved for CONFIG_REPLICAS_MAX more fragments. Returns how
 * many were sent, or -1 (nothing sent) when a replica is out and the key
 * cannot be named by its recovery (not printable ASCII).
 */
int replica_send_writes(struct request *req, const struct proto_req *pr,
                        const struct proto_str *key, const char *line,
                        size_t len, struct evbuffer *data, size_t skip,
                        const struct backend *primary);

/* Writes to other regions not waited for, in flight per worker: at most
 * this many, of at most this many bytes in all; beyond, they are dropped
 * (and counted). */
#define REPLICA_REMOTE_QUEUE 4096
#define REPLICA_REMOTE_BYTES (16u << 20)

/*
 * The write pr of req (as replica_send_writes()) to the other regions'
 * pools of a local-first route: to each one's replicas that take writes.
 * A delete, a cas and md are waited for (FRAG_REPLICA fragments of req,
 * so that no region keeps a value the client deleted): returns how many
 * were sent, or -1 as replica_send_writes(). Other writes are sent in an
 * orphaned request of their own, not waited for, bounded by
 * REPLICA_REMOTE_QUEUE and REPLICA_REMOTE_BYTES: returns 0.
 */
int replica_send_remote(struct request *req, const struct proto_req *pr,
                        const struct proto_str *key, const char *line,
                        size_t len, struct evbuffer *data, size_t skip);

/* Room for the fragments a write of key needs besides its own two: its
 * replicas and, waited for, the other regions'. */
uint32_t replica_frags_needed(const struct topology *t,
                              const struct proto_str *key);

/* The copy a read of key that missed on b reads next in another region
 * (local-first routes): the first UP replica of the first other region's
 * pool that has one, or NULL. */
struct backend *replica_remote_read(const struct topology *t,
                                    const char *key, size_t len);

/* A FRAG_REPLICA was answered (ok: as a success, a DELETED, NOT_FOUND,
 * STORED, ... or a number) or failed; a replica that failed a write may
 * keep an older value, so the key is deleted there by its next recovery
 * pass. */
void replica_frag_done(struct frag *f, bool ok);

#endif
