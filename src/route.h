/*
 * route: the owner of a key, the fallback walk, the connection to use, and
 * the failover write policy (see route.c).
 */
#ifndef MCRING_ROUTE_H
#define MCRING_ROUTE_H

#include <stddef.h>
#include <stdint.h>

struct backend;
struct bconn;
struct config;
struct proto_req;
struct request;
struct worker;
struct worker_backend;

/*
 * The backend for key in the request's topology: its owner when UP, else
 * the next distinct UP backend clockwise from the owner's point, or NULL
 * when none is. The owner is stored in *owner; a failover is counted on it.
 */
struct backend *route_key(struct request *req, const char *key, size_t len,
                          struct backend **owner);

/* The worker's connection to use next for wb (round robin). */
struct bconn *route_pick(struct worker *w, struct worker_backend *wb);

/*
 * Caps the exptime of a write that goes to a fallback at failover_ttl, so
 * that a copy made during an outage does not outlive it for long.
 */
int64_t route_cap_exptime(const struct config *cfg, int64_t exptime);

/*
 * Writes into buf (cap bytes) the command line to send to a fallback: with
 * the exptime capped (storage, touch) and without noreply. Returns its
 * length.
 */
size_t route_failover_line(const struct config *cfg,
                           const struct proto_req *pr, const char *line,
                           size_t len, char *buf, size_t cap);

/*
 * The backend a single-key write goes to (NULL: none is up), after the
 * failover write policy: when that is not the owner, req->failover_owner
 * is set and the key kept in req->keys[0]; *owner_conn is then the owner's
 * connection when the key must also be deleted there (owner RECOVERING),
 * else NULL.
 */
struct backend *route_write(struct request *req, const struct proto_req *pr,
                            struct bconn **owner_conn);

/* A write made on a DOWN backend's behalf is answered or failed: note the
 * key in the owner's recovery log now that it is on the fallback. */
void route_write_done(struct request *req, const struct backend *fallback);

/*
 * The delete on a RECOVERING owner failed: it may still hold an older value
 * of the key, so the key must keep it out of the ring until a recovery pass
 * deletes it. The client is told that its write may not have happened.
 */
void route_owner_delete_failed(struct request *req, struct backend *owner);

#endif
