/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin_watch: GET /watch[?sample=N] of the admin API, the live request
 * stream (watch.h) as a chunked text/plain answer, on the main thread.
 *
 * A stream lasts until its client goes away (admin_http tells through
 * admin_watch_conn_gone(), from the connection's close callback), or
 * takes nothing for ADMIN_HTTP_TIMEOUT_S while lines wait.
 */
#ifndef MCRING_ADMIN_WATCH_H
#define MCRING_ADMIN_WATCH_H

#include <stddef.h>

struct admin_watch;
struct event_base;
struct evhttp_connection;
struct evhttp_request;
struct watch;

/* The streams of an admin API on base, fed by hub. */
struct admin_watch *admin_watch_create(struct event_base *base,
                                       struct watch *hub);
/* Ends every stream and frees aw (after evhttp_free()). */
void admin_watch_destroy(struct admin_watch *aw);

/*
 * Starts a stream answering req (query: its query string, or NULL).
 * Returns 0 when it streams, else an HTTP status (400 bad query, 503 too
 * many watchers) with a message in err for the caller to answer.
 */
int admin_watch_start(struct admin_watch *aw, struct evhttp_request *req,
                      const char *query, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* evcon closes: its stream, if any, ends. */
void admin_watch_conn_gone(struct admin_watch *aw,
                           struct evhttp_connection *evcon);

#endif
