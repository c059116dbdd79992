/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * worker: one thread, one event_base, its clients and its own connections
 * to every backend. Nothing a worker touches on the request path is shared
 * with another thread except read-only configuration and relaxed atomic
 * counters.
 */
#ifndef MCRING_WORKER_H
#define MCRING_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <time.h>

#include "backend.h"
#include "hotkeys.h"
#include "l1.h"
#include "park.h"
#include "stats.h"
#include "watch.h"

/* Hot keys read from every replica in turn, per worker: at most this many,
 * each with at least WORKER_SPREAD_MIN certain samples and
 * WORKER_SPREAD_PCT percent of the worker's samples in the window. */
#define WORKER_SPREAD_KEYS 8
#define WORKER_SPREAD_MIN 8
#define WORKER_SPREAD_PCT 2

struct client;
struct request;
struct bconn;
struct event;
struct event_base;
struct evbuffer;
struct backend;
struct topology;
struct config;
struct migrate;
struct ratelimit_table;
struct watch;

TAILQ_HEAD(client_list, client);
TAILQ_HEAD(bconn_list, bconn);

/*
 * What a worker keeps of one backend: its connections, its counter slot,
 * scratch for splitting requests. Keyed by the backend's id in w->wb, so
 * that a new topology never renumbers it. A backend left out of the
 * current topology is `retiring`: it gets no new requests, and is freed
 * once nothing is queued on its connections any more.
 */
struct worker_backend {
    struct backend *be;             /* a reference */
    struct stats_backend *stats;    /* be's counter slot of this worker */
    struct bconn **conns;           /* [worker->per_backend], owned */
    uint32_t next_slot;             /* round robin over conns */
    uint32_t frag_of[2];            /* scratch for splitting, RING_NONE:
                                       its fragment of own keys, and of
                                       keys of a gat/gats it serves for a
                                       DOWN owner */
    bool retiring;
};

/*
 * A topology snapshot as one worker holds it: requests routed with it
 * count themselves in `users` (no atomics: only this worker touches it).
 * It is let go once it is not the current one and has no users.
 */
struct worker_topo {
    struct topology *t;             /* a reference */
    uint32_t users;
};

/*
 * What the workers share with each other and with the threads that report
 * on them: the root object (proxy.h) holds one and each worker points at
 * it. Immutable once the workers start, atomic, or under stats_lock; the
 * main thread alone writes what is not atomic.
 */
struct worker_group {
    unsigned n;                     /* workers */
    struct worker **workers;        /* [n]; owned by the root */
    unsigned per_backend;           /* backend_connections, fixed */
    /* Rate limits (ratelimit.h): each pool's by its counters' slot, and
     * each client address's. */
    _Atomic uint64_t pool_tat[STATS_POOLS];
    struct ratelimit_table *client_rates;
    struct watch *watch;            /* the watchers' hub (watch.h) */
    struct migrate *migrate;        /* owned by the root; its summary:
                                       any thread */
    time_t start_time;
    _Atomic unsigned max_connections;
    _Atomic uint32_t nclients;      /* for max_connections */
    _Atomic uint64_t rejected;      /* connections over the limit */
    _Atomic uint64_t reloads;       /* topology changes applied */
    _Atomic uint64_t reload_failures;
    _Atomic int64_t last_reload;    /* wall-clock time, 0 = never */
    _Atomic uint64_t published_ns;  /* monotonic time of the last publish */
    /* `stats reset`: the counters' totals at the last reset, subtracted
     * when they are shown (workers' counters have one writer each). */
    pthread_mutex_t stats_lock;
    struct stats_worker *stats_base;        /* one */
    uint64_t rejected_base;
};

/* Sums every worker's client counters into *sum (any thread). */
void worker_group_sum_stats(const struct worker_group *g,
                            struct stats_worker *sum);

/* A hot key as it is shown: its estimated requests per second, its share
 * of its owner's requests, and that owner (NULL: no longer in t). */
struct worker_hotkey {
    const char *key;                /* into the merged table */
    size_t len;
    double rate;
    double share;
    const struct backend *owner;
};

/*
 * The hottest keys now (at most [proxy] hotkeys), merged over the
 * workers' tables, largest first: *n of them in a new array (free()), m
 * holding their names (hotkeys_merged_free()). None when hot keys are off.
 */
struct worker_hotkey *worker_group_hotkeys(const struct worker_group *g,
                                           const struct topology *t,
                                           struct hotkeys_merged *m,
                                           uint32_t *n);

struct worker {
    struct worker_group *group;
    unsigned id;
    uint64_t now_us;                /* see worker_tick() */
    pthread_t thread;
    struct event_base *base;
    int inbox_rd;                   /* the typed inbox: struct worker_msg */
    int inbox_wr;
    struct event *ev_inbox;
    struct event *ev_reap;          /* frees closed clients, deferred */
    struct event *ev_drain_timer;   /* bounds the shutdown drain */
    struct event *ev_flush;         /* end of the loop turn: write out */
    struct event *ev_retire;        /* closes retired backends' conns */
    struct event *ev_idle;          /* every second: client_idle_timeout */
    struct event *ev_mem;           /* while clients wait on max_memory */
    struct park park;               /* idle client sockets (park.h) */
    uint32_t mem_waiters;           /* clients paused for max_memory */
    bool mem_over;                  /* all clients are owed max_memory */
    uint64_t mem_others;            /* the other workers' clients' share,
                                       as read at the end of a loop turn */
    bool flush_scheduled;
    _Atomic uint64_t *pool_tat;     /* the proxy's rate limits: by pool */
    struct ratelimit_table *client_rates; /* ... and by client address */
    struct iobatch *iobatch;        /* the turn's reads and writes, or
                                       NULL: readv and writev */
    struct client_list flush_clients;
    struct bconn_list flush_bconns;
    struct client_list clients;
    struct client_list closed;      /* waiting for ev_reap */
    struct worker_topo *topo;       /* current; owned */
    const struct config *cfg;       /* topo->t->cfg */
    struct worker_backend **wb;     /* [nwb], by backend id, or NULL */
    uint32_t nwb;
    uint32_t nretiring;
    unsigned per_backend;
    struct request *free_requests;  /* free list, linked by next_free */
    unsigned nfree_requests;
    bool stopping;
    _Atomic bool started;           /* its thread runs (or is about to) */
    uint64_t next_client_id;
    uint64_t adopted;               /* generation of topo */
    uint32_t warm_copies;           /* warm-up copies in flight */
    size_t warm_copy_bytes;         /* ... and their values' bytes */
    uint32_t avg_reply;             /* bytes of a reply to a client, on
                                       average (client.c) */
    uint32_t region_writes;         /* writes to other regions in flight,
                                       not waited for (replica.c) */
    size_t region_write_bytes;      /* ... and their bytes */
    uint32_t shadow_inflight;       /* copies to shadow pools in flight
                                       (shadow.c) */
    size_t shadow_bytes;            /* ... and their bytes */
    /* Hot keys: keys routed until the next sample, and the table (under
     * hot_lock: sampled requests and readers only). */
    uint32_t hot_countdown;
    uint64_t hot_rng;
    pthread_mutex_t hot_lock;
    struct hotkeys hot;
    /* The hashes of the keys hot enough to be read from each of their
     * replicas in turn (pools with hotkey_spread), this window's. */
    uint64_t spread[WORKER_SPREAD_KEYS];
    uint32_t nspread;
    uint32_t spread_next;           /* slot replaced next */
    uint32_t spread_rr;             /* their reads' round robin */
    uint64_t spread_window;         /* the hot-key window they are of */
    struct l1 l1;                   /* hot keys' values ([proxy] l1) */
    uint64_t big_rng;               /* big values' tokens (big.c) */
    struct evbuffer *big_buf;       /* big.c's scratch, empty between
                                       calls */
    struct watch_tap watch;         /* the watchers it feeds (watch.h) */
    struct stats_worker stats;
};

/* The inbox: fixed-size messages, each written whole (< PIPE_BUF). */
enum worker_msg_type {
    WORKER_MSG_CLIENT,              /* fd: an accepted socket, now ours */
    WORKER_MSG_CLIENT_TLS,          /* ... of the TLS listener */
    WORKER_MSG_STOP,                /* drain and leave the loop */
    WORKER_MSG_TOPOLOGY,            /* ptr: a topology reference, ours */
    WORKER_MSG_BACKEND_DOWN,        /* ptr: a backend reference, ours:
                                       fail what is queued on it now */
    WORKER_MSG_WATCH,               /* ptr: a watch slot to feed, with
                                       this worker's reference */
    WORKER_MSG_UNWATCH,             /* ptr: ... to stop feeding; the
                                       reference is let go */
};

struct worker_msg {
    int type;                       /* enum worker_msg_type */
    int fd;
    void *ptr;
};

/*
 * Creates worker id of group g (its base, inbox, backend connections) on
 * topology t (a reference is taken). Returns NULL with a message in err.
 */
struct worker *worker_create(struct worker_group *g, unsigned id,
                             struct topology *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Starts the thread. Returns 0 or -1 with err. */
int worker_start(struct worker *w, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Puts a message in the worker's inbox (any thread). Returns 0 or -1;
 * on success the worker owns what the message carries. */
int worker_send(struct worker *w, int type, int fd, void *ptr);
/* Hands an accepted socket to the worker; the worker owns fd afterwards. */
int worker_hand_off(struct worker *w, int fd, bool tls);
/* Asks the worker to finish in-flight requests and exit its loop. */
void worker_request_stop(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/*
 * Output is batched per loop turn: a client or backend connection with new
 * output is put on a list, and the lists are written out once, at the end
 * of the turn (or by worker_flush()).
 */
void worker_want_flush_client(struct worker *w, struct client *c);
void worker_cancel_flush_client(struct worker *w, struct client *c);
void worker_want_flush_bconn(struct worker *w, struct bconn *bc);
void worker_cancel_flush_bconn(struct worker *w, struct bconn *bc);
void worker_flush(struct worker *w);
/* Has the end of this loop turn flush (worker_flush()). */
void worker_schedule_flush(struct worker *w);

/* Called by a client once its last request is done and it was closed. */
void worker_schedule_reap(struct worker *w);
/* Called when a client is gone during shutdown, to end the loop early. */
void worker_check_drained(struct worker *w);

/* The worker's state for backend be: never NULL for a backend of any
 * topology the worker holds. */
static inline struct worker_backend *
worker_wb(const struct worker *w, const struct backend *be)
{
    return w->wb[be->id];
}

/* The monotonic clock in microseconds, read at most once per callback
 * that sends or completes requests (client read and write, backend read:
 * each calls worker_tick() first): what backend latencies are measured
 * with. */
uint64_t worker_clock_us(struct worker *w);
static inline void
worker_tick(struct worker *w)
{
    w->now_us = 0;
}
static inline uint64_t
worker_now_us(struct worker *w)
{
    return w->now_us != 0 ? w->now_us : worker_clock_us(w);
}

/*
 * Whether all workers' clients together are owed more than max_memory
 * (the other workers' as of the end of the last loop turn; once over,
 * until they are owed 7/8 of it).
 */
bool worker_memory_over(struct worker *w);
/* One more (delta 1) or one fewer (-1) client waits for all clients to be
 * owed less: while any waits, the worker looks every 10 ms. */
void worker_memory_wait(struct worker *w, int delta);

/* The key routed now (owned by owner) is a hot-key sample (see
 * route_key()). */
void worker_hot_sample(struct worker *w, const char *key, size_t len,
                       const struct backend *owner);

/* Whether the key of hash is one of the worker's spread hot keys. */
static inline bool
worker_hot_spread(const struct worker *w, uint64_t hash)
{
    for (uint32_t i = 0; i < w->nspread; i++) {
        if (w->spread[i] == hash) {
            return true;
        }
    }
    return false;
}

/* Frees wt, a snapshot no longer current and with no request left. */
void worker_topo_free(struct worker_topo *wt);

/* A request routed with wt finished: let wt go if it is no longer current
 * and this was its last request. */
static inline void
worker_topo_release(struct worker *w, struct worker_topo *wt)
{
    if (--wt->users == 0 && wt != w->topo) {
        worker_topo_free(wt);
    }
}

#endif
