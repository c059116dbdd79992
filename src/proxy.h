/*
 * proxy: the root object. It owns the configuration, the ring, the shared
 * backend descriptors, the listener and the worker threads.
 *
 *   main thread:  listener, signals -> hands each accepted socket to a
 *                 worker, round robin, through the worker's notify pipe
 *   worker i:     its own event_base, clients and backend connections
 *
 * Everything a worker reads from here is immutable once proxy_start() has
 * run, or atomic.
 */
#ifndef MCRING_PROXY_H
#define MCRING_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "ring.h"

struct stats_worker;
struct stats_backend;

/*
 * What `version` and `stats` report: the memcached protocol level mcring
 * speaks, then mcring's own version. Clients such as libmemcached parse
 * the leading numbers (and refuse a major version of 0).
 */
#define PROXY_VERSION_STRING "1.6.0-mcring-" PACKAGE_VERSION

struct event_base;
struct evconnlistener;
struct event;
struct worker;
struct health;
struct recovery;

enum backend_state {
    BACKEND_UP = 0,
    BACKEND_DOWN,                   /* its keys go to ring successors */
    BACKEND_RECOVERING,             /* passed rise; cleaning up, still DOWN
                                       for routing */
};

/*
 * A configured backend as every thread sees it. The health fields are
 * written by the health checker (main thread) and, for a passive failure,
 * by any worker; everyone else only reads them.
 */
struct backend {
    uint32_t index;                 /* in cfg->backends and the ring */
    const struct config_backend *cfg;
    char addr[96];                  /* "host:port" for logs and stats */
    _Atomic int state;              /* enum backend_state */
    _Atomic int64_t since;          /* wall-clock time of the last change */
    _Atomic uint64_t transitions;
    _Atomic uint64_t soft_failures; /* data-path timeouts not yet counted */
    struct recovery *recovery;      /* keys written to fallbacks */
};

static inline bool
backend_is_up(const struct backend *be)
{
    return atomic_load_explicit(&be->state, memory_order_relaxed) ==
           BACKEND_UP;
}

struct proxy {
    struct config *cfg;             /* owned */
    struct ring *ring;              /* owned */
    struct backend *backends;       /* owned, cfg->nbackends entries */
    uint32_t nbackends;
    unsigned nworkers;
    struct worker **workers;        /* owned */
    struct event_base *base;        /* main thread */
    struct evconnlistener *listener;
    struct event *ev_sigterm;
    struct event *ev_sigint;
    struct event *ev_sighup;
    struct event *ev_stop_timer;
    struct health *health;          /* owned; main thread */
    unsigned next_worker;
    time_t start_time;
    _Atomic uint32_t nclients;      /* for max_connections */
    _Atomic uint64_t rejected;      /* connections over the limit */
    /* `stats reset`: the counters' totals at the last reset, subtracted
     * when they are shown (workers' counters have one writer each). */
    pthread_mutex_t stats_lock;
    struct stats_worker *stats_base;        /* one */
    struct stats_backend *bstats_base;      /* one per backend */
    uint64_t rejected_base;
    _Atomic bool stopping;
    bool joined;
    char listen_addr[96];
};

/*
 * Takes ownership of cfg and ring (also on failure), binds the listener and
 * starts the workers. Returns 0, or -1 with a message in err.
 */
int proxy_start(struct proxy *p, struct config *cfg, struct ring *ring,
                char *err, size_t errlen) __attribute__((warn_unused_result));

/* Runs the main loop until SIGTERM/SIGINT and the drain that follows. */
void proxy_run(struct proxy *p);

/* Joins the workers and frees everything proxy_start() created. */
void proxy_stop(struct proxy *p);

#endif
