/*
 * worker: a thread running its own event_base.
 *
 * The main thread writes accepted sockets (or WORKER_MSG_STOP) as ints to
 * the worker's notify pipe; writes of sizeof(int) are atomic, so no lock is
 * needed. On STOP the worker stops reading from its clients, lets every
 * request in flight finish, closes each client once its replies are out,
 * and leaves its loop when no client is left or the drain timer fires.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "bconn.h"
#include "client.h"
#include "log.h"
#include "mem.h"
#include "proxy.h"
#include "request.h"
#include "util.h"
#include "worker.h"

/* How long a stopping worker waits for requests in flight. */
#define WORKER_DRAIN_SECONDS 5

static void
worker_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct client *c;

    while ((c = TAILQ_FIRST(&w->closed)) != NULL) {
        TAILQ_REMOVE(&w->closed, c, link);
        client_free(c);
    }
}

ssize_t
worker_read(int fd, struct evbuffer *buf)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(buf, 16384, v, 2);
    ssize_t n;
    size_t left;

    if (nv <= 0) {
        errno = ENOMEM;
        return -1;
    }
    do {
        n = readv(fd, (struct iovec *)v, nv);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        evbuffer_commit_space(buf, v, 0);
        return n;
    }
    left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        if (v[i].iov_len > left) {
            v[i].iov_len = left;
        }
        left -= v[i].iov_len;
        if (v[i].iov_len == 0) {
            nv = i;
            break;
        }
    }
    evbuffer_commit_space(buf, v, nv);
    return n;
}

const char *
worker_head(struct evbuffer *buf, size_t *len)
{
    struct evbuffer_iovec v;

    if (evbuffer_peek(buf, -1, NULL, &v, 1) < 1) {
        *len = 0;
        return NULL;
    }
    *len = v.iov_len;
    return v.iov_base;
}

const char *
worker_line(struct evbuffer *buf, size_t *len, size_t *eollen)
{
    size_t n;
    const char *p = worker_head(buf, &n);
    const char *nl = n > 0 ? memchr(p, '\n', n) : NULL;
    struct evbuffer_ptr eol;

    if (nl != NULL) {
        worker_eol(p, nl, len, eollen);
        return p;
    }
    if (n == evbuffer_get_length(buf)) {
        return NULL;
    }
    eol = evbuffer_search_eol(buf, NULL, eollen, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
        return NULL;
    }
    *len = (size_t)eol.pos;
    return (const char *)evbuffer_pullup(buf, (ev_ssize_t)(*len + *eollen));
}

static void
worker_schedule_flush(struct worker *w)
{
    if (!w->flush_scheduled) {
        w->flush_scheduled = true;
        /* Activated now, it runs after every event already active in this
         * turn: one write per socket per turn. */
        event_active(w->ev_flush, EV_TIMEOUT, 0);
    }
}

void
worker_want_flush_client(struct worker *w, struct client *c)
{
    if (!c->flush_pending) {
        c->flush_pending = true;
        TAILQ_INSERT_TAIL(&w->flush_clients, c, flush_link);
        worker_schedule_flush(w);
    }
}

void
worker_cancel_flush_client(struct worker *w, struct client *c)
{
    if (c->flush_pending) {
        c->flush_pending = false;
        TAILQ_REMOVE(&w->flush_clients, c, flush_link);
    }
}

void
worker_want_flush_bconn(struct worker *w, struct bconn *bc)
{
    if (!bc->flush_pending) {
        bc->flush_pending = true;
        TAILQ_INSERT_TAIL(&w->flush_bconns, bc, flush_link);
        worker_schedule_flush(w);
    }
}

void
worker_cancel_flush_bconn(struct worker *w, struct bconn *bc)
{
    if (bc->flush_pending) {
        bc->flush_pending = false;
        TAILQ_REMOVE(&w->flush_bconns, bc, flush_link);
    }
}

void
worker_flush(struct worker *w)
{
    struct bconn *bc;
    struct client *c;

    /* Backends first: their replies take longest. A write may fail and
     * reset a connection, which may complete requests and queue clients,
     * so pop one at a time. */
    while ((bc = TAILQ_FIRST(&w->flush_bconns)) != NULL) {
        worker_cancel_flush_bconn(w, bc);
        bconn_flush(bc);
    }
    while ((c = TAILQ_FIRST(&w->flush_clients)) != NULL) {
        worker_cancel_flush_client(w, c);
        client_write(c);
    }
}

static void
worker_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    w->flush_scheduled = false;
    worker_flush(w);
}

void
worker_schedule_reap(struct worker *w)
{
    event_active(w->ev_reap, EV_TIMEOUT, 0);
}

void
worker_check_drained(struct worker *w)
{
    if (w->stopping && TAILQ_EMPTY(&w->clients)) {
        event_base_loopexit(w->base, NULL);
    }
}

static void
worker_drain_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    log_warn("worker %u: drain timeout, closing remaining clients", w->id);
    event_base_loopexit(w->base, NULL);
}

static void
worker_begin_stop(struct worker *w)
{
    struct client *c, *next;
    struct timeval tv = {WORKER_DRAIN_SECONDS, 0};

    if (w->stopping) {
        return;
    }
    w->stopping = true;
    evtimer_add(w->ev_drain_timer, &tv);
    for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        client_drain(c);
    }
    worker_check_drained(w);
}

static void
worker_backend_down(struct worker *w, uint32_t b)
{
    if (b >= w->proxy->nbackends) {
        return;
    }
    for (unsigned i = 0; i < w->per_backend; i++) {
        bconn_fail(w->bconns[b * w->per_backend + i],
                   "SERVER_ERROR backend down");
    }
}

static void
worker_notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    int msgs[64];

    for (;;) {
        ssize_t n = read(fd, msgs, sizeof(msgs));

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(int); i++) {
            if (msgs[i] == WORKER_MSG_STOP) {
                worker_begin_stop(w);
            } else if (msgs[i] < 0) {
                worker_backend_down(w, (uint32_t)(-2 - msgs[i]));
            } else if (w->stopping) {
                close(msgs[i]);
                atomic_fetch_sub(&w->proxy->nclients, 1);
            } else if (client_create(w, msgs[i]) == NULL) {
                atomic_fetch_sub(&w->proxy->nclients, 1);
            }
        }
    }
}

struct worker *
worker_create(struct proxy *p, unsigned id, char *err, size_t errlen)
{
    struct worker *w = util_xcalloc(1, sizeof(*w));
    struct event_config *ec = event_config_new();
    int fds[2];

    w->proxy = p;
    w->id = id;
    w->notify_rd = w->notify_wr = -1;
    TAILQ_INIT(&w->clients);
    TAILQ_INIT(&w->closed);
    TAILQ_INIT(&w->flush_clients);
    TAILQ_INIT(&w->flush_bconns);
    /* Only this thread touches the base: no locking inside libevent. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL) {
        snprintf(err, errlen, "worker %u: cannot create event base", id);
        goto fail;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "worker %u: pipe: %s", id, strerror(errno));
        goto fail;
    }
    w->notify_rd = fds[0];
    w->notify_wr = fds[1];
    /* The main thread's writes must block rather than fail. */
    fcntl(w->notify_wr, F_SETFL, 0);
    w->ev_notify = event_new(w->base, w->notify_rd, EV_READ | EV_PERSIST,
                             worker_notify_cb, w);
    w->ev_reap = event_new(w->base, -1, 0, worker_reap_cb, w);
    w->ev_drain_timer = evtimer_new(w->base, worker_drain_timer_cb, w);
    w->ev_flush = event_new(w->base, -1, 0, worker_flush_cb, w);
    if (w->ev_notify == NULL || w->ev_reap == NULL || w->ev_flush == NULL ||
        w->ev_drain_timer == NULL || event_add(w->ev_notify, NULL) != 0) {
        snprintf(err, errlen, "worker %u: cannot create events", id);
        goto fail;
    }

    w->bstats = util_xcalloc(p->nbackends, sizeof(*w->bstats));
    w->next_slot = util_xcalloc(p->nbackends, sizeof(uint32_t));
    w->frag_of_backend = util_xcalloc(2 * (size_t)p->nbackends,
                                      sizeof(uint32_t));
    for (uint32_t b = 0; b < 2 * p->nbackends; b++) {
        w->frag_of_backend[b] = RING_NONE;
    }
    w->per_backend = p->cfg->backend_connections;
    w->bconns = util_xcalloc((size_t)p->nbackends * w->per_backend,
                             sizeof(*w->bconns));
    for (size_t i = 0; i < (size_t)p->nbackends * w->per_backend; i++) {
        w->bconns[i] = bconn_create(w, (uint32_t)(i / w->per_backend));
        if (w->bconns[i] == NULL) {
            snprintf(err, errlen, "worker %u: cannot create connections", id);
            goto fail;
        }
    }
    return w;

fail:
    worker_destroy(w);
    return NULL;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    /* Connect eagerly, so that the first requests do not wait. */
    for (size_t i = 0; i < (size_t)w->proxy->nbackends * w->per_backend;
         i++) {
        bconn_connect(w->bconns[i]);
    }
    event_base_dispatch(w->base);
    mem_thread_release();
    return NULL;
}

int
worker_start(struct worker *w, char *err, size_t errlen)
{
    sigset_t all, old;
    int rc;

    /* Signals belong to the main thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "worker %u: pthread_create: %s", w->id,
                 strerror(rc));
        return -1;
    }
    return 0;
}

int
worker_hand_off(struct worker *w, int fd)
{
    ssize_t n;

    do {
        n = write(w->notify_wr, &fd, sizeof(fd));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(fd) ? 0 : -1;
}

void
worker_request_stop(struct worker *w)
{
    if (worker_hand_off(w, WORKER_MSG_STOP) != 0) {
        log_error("worker %u: cannot signal stop", w->id);
    }
}

void
worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void
worker_destroy(struct worker *w)
{
    struct client *c;

    if (w == NULL) {
        return;
    }
    w->stopping = true;
    /* Clients first (their requests become orphans), then the backend
     * connections, whose reset fails and frees those orphans. */
    while ((c = TAILQ_FIRST(&w->clients)) != NULL) {
        client_drain(c);
        if (TAILQ_FIRST(&w->clients) == c) {
            client_abort(c);
        }
    }
    worker_reap_cb(-1, 0, w);
    if (w->bconns != NULL) {
        for (size_t i = 0; i < (size_t)w->proxy->nbackends * w->per_backend;
             i++) {
            bconn_destroy(w->bconns[i]);
        }
    }
    request_free_list(w);
    free(w->bconns);
    free(w->bstats);
    free(w->next_slot);
    free(w->frag_of_backend);
    if (w->ev_notify != NULL) {
        event_free(w->ev_notify);
    }
    if (w->ev_reap != NULL) {
        event_free(w->ev_reap);
    }
    if (w->ev_drain_timer != NULL) {
        event_free(w->ev_drain_timer);
    }
    if (w->ev_flush != NULL) {
        event_free(w->ev_flush);
    }
    if (w->notify_rd >= 0) {
        close(w->notify_rd);
    }
    if (w->notify_wr >= 0) {
        close(w->notify_wr);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    free(w);
}
