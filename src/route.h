/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * route: the owner of a key, the fallback walk, the connection to use, and
 * the failover write policy (see route.c).
 */
#ifndef MCRING_ROUTE_H
#define MCRING_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ring.h"
#include "topology.h"
#include "worker.h"

struct backend;
struct bconn;
struct config;
struct proto_req;
struct topology;
struct worker;
struct worker_backend;

/* The next UP backend clockwise from owner's point for key in pool p
 * (owner not UP), or NULL; counts the failover. NULL too, counted as
 * refused, while more of the pool is down than [health] failover_limit. */
struct backend *route_fallback(struct worker *w,
                               const struct topology_pool *p,
                               const char *key, size_t len,
                               struct backend *owner);

/*
 * The backend for key in pool p: its owner when UP, else the next
 * distinct UP backend clockwise from the owner's point, or NULL when none
 * is. The owner is stored in *owner; a failover is counted on it. Inline:
 * it runs once per key.
 */
static inline struct backend *
route_key_in(struct worker *w, const struct topology_pool *p,
             const char *key, size_t len, struct backend **owner)
{
    struct backend *o = p->be[ring_lookup(p->ring, key, len)];

    stats_add(&w->stats.pool_keys[p->id], 1);
    *owner = o;
    if (__builtin_expect(--w->hot_countdown == 0, 0)) {
        worker_hot_sample(w, key, len, o);
    }
    return backend_is_up(o) ? o : route_fallback(w, p, key, len, o);
}

/* As route_key_in(), in the pool key goes to (reads). */
static inline struct backend *
route_key(struct worker *w, const struct topology *t, const char *key,
          size_t len, struct backend **owner)
{
    return route_key_in(w, topology_pool_of(t, key, len), key, len, owner);
}

/*
 * A read of key routed to b: when its pool has hotkey_spread and the key
 * is one of the worker's hot keys, the next of its UP replicas in turn
 * instead (counted); else b.
 */
struct backend *route_spread(struct worker *w, const struct topology *t,
                             const char *key, size_t len, struct backend *b);

/* The worker's connection to use next for wb (round robin). */
static inline struct bconn *
route_pick(struct worker *w, struct worker_backend *wb)
{
    unsigned slot = 0;

    if (w->per_backend > 1) {
        slot = wb->next_slot++ % w->per_backend;
    }
    return wb->conns[slot];
}

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

/* Where a single-key write goes, by the failover write policy. */
struct route_write {
    struct backend *target;         /* NULL: no backend is up */
    struct backend *owner;          /* set when target is a fallback
                                       writing on the owner's behalf */
    struct backend *ring_owner;     /* the key's owner, always */
    bool clean;                     /* the owner is RECOVERING: the key is
                                       deleted there too, on owner_conn */
    struct bconn *owner_conn;
};

/*
 * Routes the write pr in topology t. When rw->owner is set the caller keeps
 * the key and, once the write is answered or failed, calls
 * route_write_done(); with rw->clean it also sends a delete of the key on
 * rw->owner_conn.
 */
void route_write(struct worker *w, const struct topology *t,
                 const struct proto_req *pr, struct route_write *rw);

/* A write made on owner's behalf to fallback is answered or failed: note
 * the key in owner's recovery log now that it is on the fallback (clean:
 * the owner's copy was deleted too). */
void route_write_done(struct backend *owner, bool clean, const char *key,
                      size_t len, const struct backend *fallback);

/*
 * The delete on a RECOVERING owner failed: it may still hold an older value
 * of the key, so the key must keep it out of the ring until a recovery pass
 * deletes it (there and on fallback).
 */
void route_owner_delete_failed(struct backend *owner, const char *key,
                               size_t len, const struct backend *fallback);

#endif
