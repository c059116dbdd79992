/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cmdroute: per-command routes of a pool, on the worker's request path.
 *
 * [pool NAME] writes = POOL sends the writes of NAME's keys (storage
 * commands, incr, decr, touch, delete; ms, ma, md) to POOL instead: the
 * topology's write pool (topology_write_pool_of()), which route_write(),
 * the replicas and a move's previous owners follow. [pool NAME] deletes =
 * all | POOL... sends its keys' deletes (delete, md) to those pools as
 * well, waited for: this module.
 */
#ifndef MCRING_CMDROUTE_H
#define MCRING_CMDROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct frag;
struct request;
struct topology;

/* Room for the fragments a delete of key needs for its other pools (0
 * when its pool has no deletes =). */
uint32_t cmdroute_delete_frags(const struct topology *t,
                               const struct proto_str *key);

/*
 * Sends the delete pr of req (key: the key it is routed by, a meta
 * command's base64 key decoded) to key's other pools (its pool's deletes
 * =, but the pool its writes go to, which the caller sends it to): in
 * each, to the key's replicas that are UP (its owner, in a pool without
 * replicas) and, for one that is not, to the backend its reads go to
 * meanwhile, the key noted in its recovery log so that it is deleted
 * there before it serves again. Each is a FRAG_POOL_DELETE counted in
 * req->pending, in room the caller reserved (cmdroute_delete_frags()).
 * Returns how many were sent, or -1 (nothing sent) when a backend is out
 * and its recovery cannot name the key (not printable ASCII).
 */
int cmdroute_send_deletes(struct request *req, const struct proto_req *pr,
                          const struct proto_str *key);

/* A FRAG_POOL_DELETE was answered (ok: DELETED, NOT_FOUND, HD, NF) or
 * failed: a backend that failed it has the key noted for its next
 * recovery pass. */
void cmdroute_frag_done(struct frag *f, bool ok);

#endif
