/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proxy: the root object. It owns the configuration, the ring, the shared
 * backend descriptors, the listener and the worker threads.
 *
 *   main thread:  listener, signals -> hands each accepted socket to a
 *                 worker, round robin, through the worker's notify pipe
 *   worker i:     its own event_base, clients and backend connections
 *
 * A worker reads nothing of it but its group (struct worker_group,
 * worker.h): what the workers share.
 */
#ifndef MCRING_PROXY_H
#define MCRING_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"
#include "config.h"
#include "ring.h"
#include "stats.h"
#include "topology.h"
#include "worker.h"

struct stats_worker;
struct stats_backend;

struct event_base;
struct evconnlistener;
struct event;
struct worker;
struct health;
struct spool;
struct admin_http;
struct migrate;
struct rebalance;
struct watch;

struct metrics_alerts;

struct proxy {
    struct worker_group group;      /* the workers, and what they share */
    struct topology *topo;          /* current; main thread only (workers
                                       have their own reference) */
    uint64_t generation;            /* of the last snapshot built */
    struct backend_set backends;    /* ids, shared hooks */
    char *config_path;              /* what a reload reads */
    struct event_base *base;        /* main thread */
    struct evconnlistener *listener;
    struct evconnlistener *tls_listener; /* [tls] listen, or NULL */
    struct event *ev_sigterm;
    struct event *ev_sigint;
    struct event *ev_sighup;
    struct event *ev_sigusr1;       /* reopens the log file */
    struct event *ev_stop_timer;
    struct event *ev_accept_timer;  /* accepting again, after a pause */
    uint64_t fd_limit;              /* RLIMIT_NOFILE, raised at start */
    struct health *health;          /* owned; main thread */
    struct spool *spool;            /* owned; main thread; NULL when
                                       [proxy] delete_spool is off */
    struct admin_http *admin;       /* owned; main thread; NULL when off */
    struct rebalance *rebalance;    /* owned; main thread */
    struct event *ev_hot_timer;     /* hot-key alerts, every window */
    struct event *ev_status_timer;  /* systemd's STATUS=, every second */
    char status[160];               /* ... as last sent */
    struct metrics_alerts *alerts;  /* owned; main thread */
    unsigned next_worker;
    uint64_t change_start_ns;       /* a reload in progress began then */
    _Atomic bool stopping;
    bool joined;
    char listen_addr[128];
    char *unix_path;                /* a unix socket listened on: removed
                                       at stop (owned) */
    /* Names of the pools seen since the start: a pool's counter slot is
     * its index (main thread only). */
    char *pool_names[STATS_POOLS - 1];
    uint32_t npool_names;
};

/*
 * Takes ownership of cfg (also on failure), binds the listener and starts
 * the workers. Returns 0, or -1 with a message in err.
 */
int proxy_start(struct proxy *p, struct config *cfg, char *err,
                size_t errlen) __attribute__((warn_unused_result));

/* Runs the main loop until SIGTERM/SIGINT and the drain that follows. */
void proxy_run(struct proxy *p);

/*
 * The client connections cfg allows: max_connections, or when it is 0 as
 * many as the open-files limit leaves once the backend, health, admin and
 * internal descriptors are kept aside. Returns 0 with err when an explicit
 * value is over that.
 */
unsigned proxy_max_connections(const struct proxy *p,
                               const struct config *cfg, char *err,
                               size_t errlen);

/* The counter slot (< STATS_POOLS) of the pool called name: the same for
 * a name all the process's life (main thread). */
uint32_t proxy_pool_id(struct proxy *p, const char *name);

/* Joins the workers and frees everything proxy_start() created. */
void proxy_stop(struct proxy *p);

/*
 * Main thread only: the topology changes. Each builds a new snapshot and
 * publishes it to every worker, or changes nothing and returns -1 with a
 * message in err.
 */

/* The snapshot in use (borrowed; valid until the next change). */
struct topology *proxy_topology(struct proxy *p);

/*
 * Makes cfg (taken, also on failure) the running configuration: backends
 * with the same name and address keep their object (connections, health,
 * recovery log, counters); added ones start NEW and get keys once their
 * first check succeeds; removed ones get no new requests and close once
 * their requests in flight are done. Keys that need a restart (listen,
 * threads, backend_connections) keep their running values, each logged.
 * why names the change in the log ("SIGHUP", "admin API").
 */
int proxy_apply(struct proxy *p, struct config *cfg, int ramp,
                const char *why, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Reads the config file again and applies it; a bad file is logged as
 * "FILE:LINE: message", counted in reload_failures and changes nothing.
 */
int proxy_reload(struct proxy *p, const char *why, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Takes the backend called name out of routing by hand (maint), or puts it
 * back through the stale-safe return (RECOVERING, then UP). Returns 0, or
 * -1 with err when there is no such backend.
 */
int proxy_set_maint(struct proxy *p, const char *name, bool maint,
                    char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
