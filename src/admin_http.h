/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin_http: the admin API, HTTP/1.1 and JSON on the main thread's loop.
 *
 * Endpoints (see mcring(8), "ADMIN API"): GET /backends, GET /route?key=K,
 * GET /ring[?pool=P], POST /backends, PATCH and DELETE /backends/NAME,
 * GET and POST /pools, PATCH and DELETE /pools/NAME, GET and PUT /routes,
 * POST /reload,
 * GET /config, GET /migration, POST /migration/{pause,resume,rollback,
 * finish}, GET /rebalance, POST /rebalance, GET /metrics, GET /stats,
 * GET /hotkeys, GET /watch (admin_watch.h),
 * GET /health, GET /ready ([admin] metrics_without_token: the last three
 * without the token). Every change goes through proxy_apply(), proxy_reload() or
 * proxy_set_maint(), exactly like a reload of the file.
 */
#ifndef MCRING_ADMIN_HTTP_H
#define MCRING_ADMIN_HTTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define ADMIN_HTTP_MAX_BODY (64 * 1024)     /* request body bytes */
#define ADMIN_HTTP_MAX_HEADERS (16 * 1024)  /* request header bytes */
#define ADMIN_HTTP_MAX_ROUTE_KEYS 1000      /* keys in one GET /route */
#define ADMIN_HTTP_KEY_MAX 250              /* bytes of one key */
#define ADMIN_HTTP_RING_SAMPLE 100000       /* sample keys of GET /ring */
#define ADMIN_HTTP_TIMEOUT_S 30             /* idle connection */
#define ADMIN_HTTP_MAX_CONNS 16             /* connections at once (past
                                               it: 503) */

struct admin_http;
struct config;
struct evbuffer;
struct event_base;
struct topology;
struct watch;

/*
 * What the API may read and change: the proxy's (proxy_topology(),
 * proxy_apply(), proxy_reload(), proxy_set_maint(), with arg the proxy),
 * handed down so that this module needs nothing above it.
 */
struct admin_http_ops {
    struct topology *(*topology)(void *arg);
    /* Returns 0, -1, or -2 when a migration is in progress. */
    int (*apply)(void *arg, struct config *cfg, int ramp, const char *why,
                 char *err, size_t errlen);
    /* The config changes are made to (a move's target while it runs). */
    const struct config *(*target)(void *arg);
    /* GET /migration's document (a new reference). */
    json_t *(*migration)(void *arg);
    /* pause, resume, rollback, finish: 0, -1 (unknown verb) or -2. */
    int (*migrate)(void *arg, const char *verb, char *err, size_t errlen);
    /* GET (apply false) or POST /rebalance: the report, or NULL with an
     * HTTP status and err. */
    json_t *(*rebalance)(void *arg, bool apply, int *status, char *err,
                         size_t errlen);
    int (*reload)(void *arg, const char *why, char *err, size_t errlen);
    int (*set_maint)(void *arg, const char *name, bool maint, char *err,
                     size_t errlen);
    /* GET /metrics: the Prometheus text, appended to out. */
    void (*metrics)(void *arg, struct evbuffer *out);
    /* GET /stats: the document (a new reference). */
    json_t *(*stats)(void *arg);
    /* GET /hotkeys: the document (a new reference). */
    json_t *(*hotkeys)(void *arg);
    /* GET /health (ready false), GET /ready: true, or false; why says. */
    bool (*health)(void *arg, bool ready, char *why, size_t len);
    pthread_mutex_t *stats_lock;    /* guards the backends' stats_base */
    struct watch *watch;            /* GET /watch's hub (watch.h) */
    void *arg;
};

/*
 * Serves the admin API on listen ("HOST:PORT", or an absolute unix socket
 * path, which is created, replacing a stale one) on base. The token in
 * effect is read from the current topology's config on every request.
 * Returns the server (admin_http_destroy()), or NULL with a message in
 * err.
 */
struct admin_http *admin_http_create(struct event_base *base,
                                     const char *listen,
                                     const struct admin_http_ops *ops,
                                     char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Stops serving, closes every connection, unlinks the unix socket. */
void admin_http_destroy(struct admin_http *a);

#endif
