/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin_watch: GET /watch streams (see admin_watch.h).
 *
 * Each stream is one watch slot and a timer: every WATCH_FLUSH_MS the
 * slot's rings are read into one chunk, as long as the connection's
 * output holds less than WATCH_OUTPUT_MAX; a client that does not read
 * only makes lines drop (and be counted, and announced). The
 * connection's read timeout is off for a stream (a watcher sends
 * nothing), its write timeout kept: a client that takes nothing for
 * ADMIN_HTTP_TIMEOUT_S while lines wait is closed.
 *
 * When the connection goes, evhttp (2.1) calls its close callback; the
 * request is then either still the connection's (it frees it) or, after
 * a network error, handed back to us (evhttp_request_get_connection()
 * is NULL) and freed with evhttp_send_reply_end().
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin_http.h"
#include "admin_watch.h"
#include "log.h"
#include "util.h"
#include "watch.h"

_Static_assert(WATCH_MAX < ADMIN_HTTP_MAX_CONNS,
               "watchers never take every admin connection");

struct admin_watch_stream {
    struct admin_watch *aw;
    struct evhttp_request *req;     /* NULL: the slot is free */
    struct evhttp_connection *evcon;
    struct watch_slot *slot;        /* owned */
    struct event *ev;               /* owned */
    struct evbuffer *chunk;         /* owned */
};

/* Owned by admin_http. */
struct admin_watch {
    struct event_base *base;
    struct watch *hub;
    struct admin_watch_stream s[WATCH_MAX];
};

struct admin_watch *
admin_watch_create(struct event_base *base, struct watch *hub)
{
    struct admin_watch *aw = util_xcalloc(1, sizeof(*aw));

    aw->base = base;
    aw->hub = hub;
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        aw->s[i].aw = aw;
    }
    return aw;
}

/* Ends st; its request is freed here when evhttp handed it back. */
static void
admin_watch_end(struct admin_watch_stream *st)
{
    struct evhttp_request *req = st->req;

    event_free(st->ev);
    evbuffer_free(st->chunk);
    watch_close(st->slot);
    st->ev = NULL;
    st->chunk = NULL;
    st->slot = NULL;
    st->req = NULL;
    st->evcon = NULL;
    log_notice("admin API: watch ended");
    if (evhttp_request_get_connection(req) == NULL) {
        evhttp_send_reply_end(req);
    }
}

void
admin_watch_destroy(struct admin_watch *aw)
{
    if (aw == NULL) {
        return;
    }
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        if (aw->s[i].req != NULL) {
            admin_watch_end(&aw->s[i]);
        }
    }
    free(aw);
}

void
admin_watch_conn_gone(struct admin_watch *aw, struct evhttp_connection *evcon)
{
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        if (aw->s[i].req != NULL && aw->s[i].evcon == evcon) {
            admin_watch_end(&aw->s[i]);
        }
    }
}

static void
admin_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_watch_stream *st = arg;
    struct bufferevent *bev;
    size_t pending;

    if (evhttp_request_get_connection(st->req) == NULL) {
        return; /* gone: its close callback ends it */
    }
    bev = evhttp_connection_get_bufferevent(st->evcon);
    pending = evbuffer_get_length(bufferevent_get_output(bev));
    if (pending >= WATCH_OUTPUT_MAX) {
        return;
    }
    if (watch_read(st->slot, st->chunk, WATCH_OUTPUT_MAX - pending) > 0) {
        evhttp_send_reply_chunk(st->req, st->chunk);
    }
}

int
admin_watch_start(struct admin_watch *aw, struct evhttp_request *req,
                  const char *query, char *err, size_t errlen)
{
    struct evkeyvalq params;
    struct evkeyval *kv;
    struct admin_watch_stream *st = NULL;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct timeval tv = {0, WATCH_FLUSH_MS * 1000};
    struct timeval wtv = {ADMIN_HTTP_TIMEOUT_S, 0};
    uint32_t every = 1;

    TAILQ_INIT(&params);
    if (query != NULL && evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        snprintf(err, errlen, "expected ?sample=N");
        return 400;
    }
    TAILQ_FOREACH(kv, &params, next) {
        if (strcmp(kv->key, "sample") != 0 ||
            watch_parse_sample(kv->value, strlen(kv->value), &every) != 0) {
            snprintf(err, errlen, "bad parameter '%s' (expected sample=N, "
                                  "N 1..%u)",
                     kv->key, WATCH_SAMPLE_MAX);
            evhttp_clear_headers(&params);
            return 400;
        }
    }
    evhttp_clear_headers(&params);
    for (unsigned i = 0; i < WATCH_MAX && st == NULL; i++) {
        if (aw->s[i].req == NULL) {
            st = &aw->s[i];
        }
    }
    if (st == NULL || (st->slot = watch_open(aw->hub, every)) == NULL) {
        log_limited_at(LOG_LEVEL_INFO, "admin API: watch refused: %d "
                       "watchers already", WATCH_MAX);
        snprintf(err, errlen, "too many watchers (%d)", WATCH_MAX);
        return 503;
    }
    st->req = req;
    st->evcon = evhttp_request_get_connection(req);
    st->chunk = evbuffer_new();
    st->ev = event_new(aw->base, -1, EV_PERSIST, admin_watch_cb, st);
    if (st->chunk == NULL || st->ev == NULL || st->evcon == NULL ||
        event_add(st->ev, &tv) != 0) {
        log_error("out of memory");
        abort();
    }
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply_start(req, 200, "OK");
    /* A watcher sends nothing: no read timeout; a write one stays. */
    bufferevent_set_timeouts(evhttp_connection_get_bufferevent(st->evcon),
                             NULL, &wtv);
    {
        char *peer = NULL;
        ev_uint16_t port = 0;

        /* Keys show in the stream: who watches is worth a notice. */
        evhttp_connection_get_peer(st->evcon, &peer, &port);
        log_notice("admin API: watching 1 in %u requests (from %s:%u)", every,
                   peer != NULL && peer[0] != '\0' ? peer : "unix",
                   (unsigned)port);
    }
    return 0;
}
