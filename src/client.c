/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * client: reads commands from one client socket, frames and parses them in
 * place, dispatches them as requests, and writes the replies back in the
 * order the commands came.
 *
 * Invariants:
 *   - queue holds every request of this client not yet written, oldest
 *     first; client_flush() writes the done prefix of it.
 *   - the input buffer never holds more than one incomplete line (bounded
 *     by proto_line_limit()) or one incomplete storage command (bounded by
 *     max_value_size): past those the client gets an error.
 *   - reading pauses while the output owed is over client_output_limit
 *     or CLIENT_MAX_INFLIGHT requests are queued (fewer before its first
 *     replies), so a client that does not read its replies cannot make
 *     mcring grow without bound. What is owed counts the values of its
 *     storage commands in flight, and its requests in flight at the size
 *     of the replies that the client (or, before its first, the worker)
 *     gets on average, so that pipelined gets of big values stop at the
 *     limit too.
 *   - what every client is owed is summed in its worker's client_memory;
 *     while all workers' sum is over max_memory, a client that is owed
 *     anything pauses too (one that is owed nothing may still send one
 *     command, so no client waits forever on others that do not read).
 *   - a client is never freed inside its own callbacks: client_abort()
 *     releases the socket and leaves the struct to the worker's reaper.
 *   - replies are written at the end of the worker's loop turn
 *     (worker_flush()); ev_write is only added while the socket is full.
 *   - after `watch` (watch_req.c) a client gets request lines instead of
 *     replies: what it sends is ignored, its end of file closes it, it
 *     is never parked nor closed as idle.
 */
#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <xxhash.h>

#include "client.h"
#include "config.h"
#include "iobatch.h"
#include "log.h"
#include "net.h"
#include "park.h"
#include "proto.h"
#include "request.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "watch.h"
#include "worker.h"

static void client_read_cb(evutil_socket_t fd, short what, void *arg);
static void client_write_cb(evutil_socket_t fd, short what, void *arg);
static void client_drive(struct client *c);
static void client_release(struct client *c);

/* What client_rate counts by: the peer's IP address (not its port),
 * hashed; 0 for a unix socket. */
static uint64_t
client_addr_key(const struct sockaddr_storage *peer, socklen_t len)
{
    uint64_t k = 0;

    if (len > 0 && peer->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)peer;

        k = XXH3_64bits(&a->sin_addr, sizeof(a->sin_addr));
    } else if (len > 0 && peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)peer;

        k = XXH3_64bits(&a->sin6_addr, sizeof(a->sin6_addr));
    } else {
        return 0;
    }
    return k == 0 ? 1 : k;
}

/* A client for socket fd with that id: everything but the counting. */
static struct client *
client_new(struct worker *w, int fd, bool tls, uint64_t id)
{
    struct client *c = calloc(1, sizeof(*c));
    struct sockaddr_storage peer;
    socklen_t peerlen = sizeof(peer);
    char text[96];
    int one = 1;

    if (c == NULL || net_conn_init(&c->nc) != 0) {
        free(c);
        evutil_closesocket(fd);
        return NULL;
    }
    evutil_make_socket_nonblocking(fd);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->worker = w;
    if (net_conn_attach(&c->nc, w->base, fd, client_read_cb, client_write_cb,
                        c) != 0) {
        evutil_closesocket(fd);
        client_release(c);
        free(c);
        return NULL;
    }
    if (tls) {
        struct ssl_st *ssl = tls_server_new(fd);

        if (ssl == NULL) {
            client_release(c);
            free(c);
            return NULL;
        }
        net_conn_tls(&c->nc, ssl);
    }
    net_conn_reading(&c->nc, true);
    c->id = id;
    if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) != 0) {
        peerlen = 0;
    }
    c->addr_key = client_addr_key(&peer, peerlen);
    snprintf(c->nc.name, sizeof(c->nc.name), "client %u.%llu (%s)", w->id,
             (unsigned long long)c->id,
             peerlen > 0 && peer.ss_family != AF_UNIX
                 ? net_addr_text(&peer, peerlen, text, sizeof(text))
                 : "local");
    c->state = CLIENT_ACTIVE;
    c->last_us = worker_now_us(w);
    STAILQ_INIT(&c->queue);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    return c;
}

struct client *
client_create(struct worker *w, int fd, bool tls)
{
    struct client *c = client_new(w, fd, tls, ++w->next_client_id);

    if (c != NULL) {
        stats_add(&w->stats.total_connections, 1);
        stats_add(&w->stats.curr_connections, 1);
    }
    return c;
}

void
client_accept(struct worker *w, int fd, bool tls)
{
    struct park_slot slot = {.fd = fd};
    int one = 1;

    if (!tls) {
        /* Parked until it sends something. */
        evutil_make_socket_nonblocking(fd);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        slot.id = ++w->next_client_id;
        slot.since_us = worker_now_us(w);
        if (park_add(&w->park, &slot) == 0) {
            stats_add(&w->stats.total_connections, 1);
            stats_add(&w->stats.curr_connections, 1);
            stats_add(&w->stats.parked_connections, 1);
            return;
        }
    }
    if (client_create(w, fd, tls) == NULL) {
        atomic_fetch_sub(&w->group->nclients, 1);
    }
}

/* Whether c has nothing going on: nothing read or owed, no state. */
static bool
client_parkable(const struct client *c)
{
    return c->state == CLIENT_ACTIVE && c->watch == NULL && !c->paused &&
           !c->eof && !c->in_drive && !c->flush_pending && c->nqueued == 0 &&
           STAILQ_EMPTY(&c->queue) && c->barrier == NULL && c->swallow == 0 &&
           c->nc.tls == NULL && evbuffer_get_length(c->nc.in) == 0 &&
           evbuffer_get_length(c->nc.out) == 0 && c->held == 0;
}

bool
client_park(struct client *c)
{
    struct worker *w = c->worker;
    struct park_slot slot = {
        .fd = c->nc.fd,
        .flags = c->started ? CLIENT_PARKED_STARTED : 0,
        .id = c->id,
        .since_us = c->last_us,
    };

    if (!client_parkable(c) || park_add(&w->park, &slot) != 0) {
        return false;
    }
    (void)net_conn_detach(&c->nc);
    TAILQ_REMOVE(&w->clients, c, link);
    client_release(c);
    free(c);
    stats_add(&w->stats.parked_connections, 1);
    return true;
}

void
client_revive(struct worker *w, const struct park_slot *slot)
{
    struct client *c;

    stats_sub(&w->stats.parked_connections, 1);
    c = client_new(w, slot->fd, false, slot->id);
    if (c == NULL) {
        /* (client_new() closed it.) */
        stats_sub(&w->stats.curr_connections, 1);
        atomic_fetch_sub(&w->group->nclients, 1);
        return;
    }
    c->started = (slot->flags & CLIENT_PARKED_STARTED) != 0;
    /* What it sent is read by the read event, which fires next. */
}

void
client_close_parked(struct worker *w, const struct park_slot *slot)
{
    close(slot->fd);
    stats_sub(&w->stats.parked_connections, 1);
    stats_sub(&w->stats.curr_connections, 1);
    atomic_fetch_sub(&w->group->nclients, 1);
}

/* Frees the socket, events and buffers (not the struct). */
static void
client_release(struct client *c)
{
    net_conn_deinit(&c->nc);
}

void
client_free(struct client *c)
{
    client_release(c);
    free(c);
}

void
client_abort(struct client *c)
{
    struct worker *w = c->worker;
    struct request *req;

    if (c->state == CLIENT_CLOSED) {
        return;
    }
    c->state = CLIENT_CLOSED;
    watch_client_stop(c);
    worker_cancel_flush_client(w, c);
    client_release(c);
    /* Requests still waiting for a backend finish on their own and are
     * freed by their last fragment. */
    while ((req = STAILQ_FIRST(&c->queue)) != NULL) {
        STAILQ_REMOVE_HEAD(&c->queue, link);
        req->client = NULL;
        if (req->done) {
            request_put(req);
        }
    }
    c->nqueued = 0;
    stats_sub(&w->stats.client_memory, c->held);
    c->held = 0;
    if (c->mem_paused) {
        c->mem_paused = false;
        worker_memory_wait(w, -1);
    }
    TAILQ_REMOVE(&w->clients, c, link);
    TAILQ_INSERT_TAIL(&w->closed, c, link);
    stats_sub(&w->stats.curr_connections, 1);
    atomic_fetch_sub(&w->group->nclients, 1);
    worker_schedule_reap(w);
    worker_check_drained(w);
}

/* Closes a DRAINING client once everything it was owed is written. */
static void
client_maybe_finish(struct client *c)
{
    if (c->state == CLIENT_DRAINING && STAILQ_EMPTY(&c->queue) &&
        !c->in_drive && evbuffer_get_length(c->nc.out) == 0) {
        client_abort(c);
    }
}

static void
client_stop_reading(struct client *c)
{
    net_conn_reading(&c->nc, false);
}

void
client_drain(struct client *c)
{
    if (c->state != CLIENT_ACTIVE) {
        return;
    }
    watch_client_stop(c);
    c->state = CLIENT_DRAINING;
    client_stop_reading(c);
    client_maybe_finish(c);
}

static void
client_pause(struct client *c)
{
    if (!c->paused) {
        c->paused = true;
        client_stop_reading(c);
    }
}

/* Paused for max_memory: the worker's timer resumes it (worker.c). */
static void
client_memory_pause(struct client *c)
{
    if (!c->mem_paused) {
        c->mem_paused = true;
        stats_add(&c->worker->stats.memory_pauses, 1);
        worker_memory_wait(c->worker, 1);
    }
    client_pause(c);
}

static void
client_resume(struct client *c)
{
    if (c->mem_paused) {
        c->mem_paused = false;
        worker_memory_wait(c->worker, -1);
    }
    if (c->paused && c->state == CLIENT_ACTIVE) {
        c->paused = false;
        if (!c->eof) {
            net_conn_reading(&c->nc, true);
        }
        /* Commands already buffered raise no read event: have the loop
         * run the read callback, never from here. */
        if (evbuffer_get_length(c->nc.in) > 0 || c->eof) {
            event_active(c->nc.ev_read, EV_READ, 0);
        }
    }
}

/* What c is owed: its output, the values collected for it, and its
 * requests in flight at the size of a reply on average. */
static size_t
client_owed(const struct client *c)
{
    size_t avg = c->avg_reply > 0 ? c->avg_reply : c->worker->avg_reply;

    return evbuffer_get_length(c->nc.out) + c->pending_bytes +
           (size_t)c->nqueued * avg;
}

/* What c is owed now, counted in its worker's client_memory. */
static size_t
client_account(struct client *c)
{
    size_t owed = client_owed(c);
    _Atomic uint64_t *sum = &c->worker->stats.client_memory;

    if (owed > c->held) {
        stats_add(sum, owed - c->held);
    } else if (owed < c->held) {
        stats_sub(sum, c->held - owed);
    }
    c->held = owed;
    return owed;
}

/* How many requests c may have in flight: slow start, then the most. */
static uint32_t
client_inflight_cap(const struct client *c)
{
    return c->nreplies >= CLIENT_START_REPLIES
               ? CLIENT_MAX_INFLIGHT
               : (uint32_t)CLIENT_START_INFLIGHT << c->nreplies;
}

static bool
client_over_limit(struct client *c)
{
    return client_account(c) > c->worker->cfg->client_output_limit ||
           c->nqueued >= client_inflight_cap(c);
}

/* max_memory: all clients together are over it, and c is owed something. */
static bool
client_over_memory(struct client *c)
{
    return c->held > 0 && worker_memory_over(c->worker);
}

void
client_memory_resume(struct worker *w)
{
    struct client *c;

    TAILQ_FOREACH(c, &w->clients, link) {
        if (c->mem_paused) {
            client_resume(c);
        }
    }
}

void
client_close_if_idle(struct client *c, uint64_t now_us, uint64_t timeout_us)
{
    if (c->state == CLIENT_ACTIVE && c->nqueued == 0 && c->watch == NULL &&
        evbuffer_get_length(c->nc.out) == 0 &&
        now_us - c->last_us >= timeout_us) {
        net_log(&c->nc, LOG_LEVEL_DEBUG, "idle for %llu s: closing",
                (unsigned long long)(timeout_us / 1000000u));
        stats_add(&c->worker->stats.idle_kicks, 1);
        client_drain(c);
    }
}

void
client_barrier_done(struct client *c)
{
    c->barrier = NULL;
    if (!client_over_limit(c) && !client_over_memory(c)) {
        client_resume(c);
    }
}

void
client_write(struct client *c)
{
    size_t owed;

    if (c->state == CLIENT_CLOSED) {
        return;
    }
    if (net_conn_write(&c->nc) != 0) {
        net_log(&c->nc, LOG_LEVEL_DEBUG, "write: %s", strerror(errno));
        client_abort(c);
        return;
    }
    /* Resume below half the limit, so a slow reader is not woken for
     * every few bytes. */
    owed = client_account(c);
    if (c->paused && owed <= c->worker->cfg->client_output_limit / 2 &&
        c->nqueued < client_inflight_cap(c) && !client_over_memory(c)) {
        client_resume(c);
    }
    client_maybe_finish(c);
}

static uint32_t
client_average(uint32_t avg, size_t n)
{
    uint32_t v = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;

    return avg == 0 ? v : avg - avg / 8 + v / 8;
}

void
client_flush(struct client *c)
{
    struct request *req;
    struct stats_worker *s = &c->worker->stats;
    bool any = false;

    if (c->state == CLIENT_CLOSED) {
        return;
    }
    while ((req = STAILQ_FIRST(&c->queue)) != NULL && req->done) {
        size_t n;
        bool closes = req->closes;

        if (__builtin_expect(req->watch_mask != 0, 0)) {
            watch_request_end(req);
        }
        n = evbuffer_get_length(req->rsp);

        STAILQ_REMOVE_HEAD(&c->queue, link);
        c->nqueued--;
        c->pending_bytes -= req->counted;
        /* Reply sizes on average (1/8 the newest; the first as it is),
         * the client's and its worker's: what a request in flight will
         * likely be owed. */
        c->avg_reply = client_average(c->avg_reply, n);
        c->worker->avg_reply = client_average(c->worker->avg_reply, n);
        if (c->nreplies < CLIENT_START_REPLIES) {
            c->nreplies++;
        }
        if (n > 0) {
            stats_add(&s->bytes_written, n);
            evbuffer_add_buffer(c->nc.out, req->rsp);
            any = true;
        }
        request_put(req);
        if (closes) {
            client_drain(c);
        }
    }
    if (any || c->state == CLIENT_DRAINING ||
        (c->paused && !client_over_limit(c) && !client_over_memory(c))) {
        worker_want_flush_client(c->worker, c);
    }
}

void
client_reply_line(struct client *c, const char *line, bool noreply)
{
    struct request *req = request_get(c->worker, c);

    STAILQ_INSERT_TAIL(&c->queue, req, link);
    c->nqueued++;
    req->noreply = noreply;
    request_reply(req, line);
}

/*
 * Answers a malformed command. Like memcached, a command that ends in
 * noreply gets no error line either: its client is not reading one.
 */
static void
client_error(struct client *c, const char *reason, bool fatal, bool noreply)
{
    char line[160];

    stats_add(&c->worker->stats.protocol_errors, 1);
    snprintf(line, sizeof(line), "CLIENT_ERROR %s", reason);
    client_reply_line(c, line, noreply && !fatal);
    if (fatal) {
        net_log_limited(&c->nc, LOG_LEVEL_INFO, "%s, closing", reason);
        client_drain(c);
    }
}

/* The command part of a line: memcached reads it as a C string, so a NUL
 * ends it; what follows is not forwarded either. */
static size_t
client_cmdlen(const char *line, size_t len)
{
    const char *nul = memchr(line, '\0', len);

    return nul != NULL ? (size_t)(nul - line) : len;
}

/*
 * How many keys of the longest kind a retrieval line may hold: what fills
 * client_output_limit (a line is never longer), so that memory is bounded
 * by the output limit, not by a key count.
 */
static unsigned
client_keys_limit(const struct config *cfg)
{
    size_t n = cfg->client_output_limit / (PROTO_KEY_MAX + 1);

    return n < cfg->max_keys ? cfg->max_keys : (unsigned)n;
}

/*
 * A retrieval with more keys than max_keys: dispatched as consecutive
 * requests of at most max_keys keys each, whose replies follow each other
 * in the client's order; only the last one ends with END, so the client
 * sees the one reply memcached would give.
 */
static void
client_split_retrieval(struct client *c, const struct proto_req *pr)
{
    const struct config *cfg = c->worker->cfg;
    const char *cur = pr->keys.p, *end = pr->keys.p + pr->keys.len;
    size_t cap = 64 + (size_t)cfg->max_keys * (PROTO_KEY_MAX + 1);
    char *buf = util_xmalloc(cap);
    uint32_t left = pr->nkeys;

    while (left > 0) {
        uint32_t n = left < cfg->max_keys ? left : cfg->max_keys;
        struct proto_str key;
        struct proto_req sub;
        struct request *req;
        const char *reason = NULL;
        size_t len;
        int head;

        if (pr->cmd == PROTO_CMD_GAT || pr->cmd == PROTO_CMD_GATS) {
            head = snprintf(buf, cap, "%.*s %lld", (int)pr->name.len,
                            pr->name.p, (long long)pr->exptime);
        } else {
            head = snprintf(buf, cap, "%.*s", (int)pr->name.len, pr->name.p);
        }
        len = (size_t)head;
        for (uint32_t i = 0; i < n && proto_next_key(&cur, end, &key); i++) {
            buf[len++] = ' ';
            memcpy(buf + len, key.p, key.len);
            len += key.len;
        }
        left -= n;
        if (proto_parse_request(buf, len, 0, &sub, &reason) != PROTO_OK) {
            /* Cannot happen: the keys were read from a good line. */
            break;
        }
        req = request_get(c->worker, c);
        req->split = true;
        req->more = left > 0;
        STAILQ_INSERT_TAIL(&c->queue, req, link);
        c->nqueued++;
        request_dispatch(req, &sub, buf, len, NULL, 0);
    }
    free(buf);
}

/* A line longer than memcached would read: close, as it does. */
static void
client_line_too_long(struct client *c, struct evbuffer *in)
{
    stats_add(&c->worker->stats.protocol_errors, 1);
    net_log_limited(&c->nc, LOG_LEVEL_INFO, "line too long, closing");
    evbuffer_drain(in, evbuffer_get_length(in));
    client_drain(c);
}

/*
 * Handles one storage command whose line is [0, linelen + eollen) of in.
 * Returns false if more input is needed.
 */
static bool
client_storage(struct client *c, struct evbuffer *in,
               const struct proto_req *pr, const char *line, size_t linelen,
               size_t eollen)
{
    size_t max = c->worker->cfg->max_value_size;
    size_t need = linelen + eollen + (size_t)pr->vlen + 2;
    char crlf[2];
    struct evbuffer_ptr at;
    struct request *req;

    if (pr->vlen > max) {
        /* Like memcached: refuse (deleting the key of a set), then skip
         * the data block. */
        req = request_get(c->worker, c);
        STAILQ_INSERT_TAIL(&c->queue, req, link);
        c->nqueued++;
        request_dispatch_too_large(req, pr);
        evbuffer_drain(in, linelen + eollen);
        c->swallow = (uint64_t)pr->vlen + 2;
        return true;
    }
    if (evbuffer_get_length(in) < need) {
        return false;
    }
    evbuffer_ptr_set(in, &at, linelen + eollen + pr->vlen, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(in, &at, crlf, 2);
    if ((crlf[0] != '\r' || crlf[1] != '\n') && pr->cmd != PROTO_CMD_MS) {
        /* (ms: memcached checks its flags first; the backend sees the
         * same bytes and answers whichever comes first.) */
        /* Like memcached: silent with noreply. */
        evbuffer_drain(in, need);
        client_error(c, "bad data chunk", false, pr->noreply);
        return true;
    }
    req = request_get(c->worker, c);
    STAILQ_INSERT_TAIL(&c->queue, req, link);
    c->nqueued++;
    /* Its value is held (in a backend's queue) until it is answered. */
    req->counted = pr->vlen;
    c->pending_bytes += pr->vlen;
    /* Consumes the line and the data block. */
    request_dispatch(req, pr, line, client_cmdlen(line, linelen), in,
                     linelen + eollen);
    return true;
}

/*
 * Parses and dispatches every complete command in the input buffer, until
 * the buffer is empty, a command is incomplete, or the client must pause.
 */
static void
client_drive(struct client *c)
{
    struct worker *w = c->worker;
    const struct config *cfg = w->cfg;
    struct evbuffer *in;

    if (c->state != CLIENT_ACTIVE || c->in_drive) {
        return;
    }
    c->in_drive = true;
    in = c->nc.in;
    while (c->state == CLIENT_ACTIVE) {
        size_t avail = evbuffer_get_length(in);
        size_t eollen = 0, linelen = 0;
        struct proto_req pr;
        const char *line, *reason = NULL;
        enum proto_status st;

        if (avail == 0) {
            break;
        }
        if (c->watch != NULL) {
            /* A watcher sends nothing that counts. */
            evbuffer_drain(in, avail);
            break;
        }
        if (!c->started) {
            unsigned char first;

            c->started = true;
            evbuffer_copyout(in, &first, 1);
            if (first == PROTO_BINARY_MAGIC) {
                /* The binary protocol: fail fast rather than time out. */
                net_log_limited(&c->nc, LOG_LEVEL_INFO,
                        "binary protocol request, closing");
                stats_add(&w->stats.protocol_errors, 1);
                evbuffer_drain(in, avail);
                client_drain(c);
                break;
            }
        }
        if (c->swallow > 0) {
            size_t n = avail < c->swallow ? avail : (size_t)c->swallow;

            evbuffer_drain(in, n);
            c->swallow -= n;
            continue;
        }
        if (client_over_limit(c) || c->barrier != NULL) {
            client_pause(c);
            break;
        }
        if (client_over_memory(c)) {
            client_memory_pause(c);
            break;
        }
        line = net_line(in, &linelen, &eollen);
        if (line == NULL) {
            size_t head = avail < 8 ? avail : 8;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)head);

            if (avail > proto_line_limit(p, head, client_keys_limit(cfg))) {
                /* memcached hangs up on that many bytes with no newline
                 * (but a multi-get): so do we, once the replies owed are
                 * out. */
                client_line_too_long(c, in);
            }
            break;
        }
        if (linelen > PROTO_LINE_BUF &&
            linelen > proto_line_limit(line, linelen,
                                       client_keys_limit(cfg))) {
            client_line_too_long(c, in);
            break;
        }
        st = proto_parse_request(line, linelen, 0, &pr, &reason);
        if (st == PROTO_OK && proto_cmd_is_retrieval(pr.cmd) &&
            pr.nkeys > cfg->max_keys) {
            client_split_retrieval(c, &pr);
            evbuffer_drain(in, linelen + eollen);
            continue;
        }
        if (st == PROTO_OK && pr.cmd == PROTO_CMD_WATCH) {
            /* Answered in order; the rest of the input is ignored. */
            watch_client_start(c, &pr);
            evbuffer_drain(in, linelen + eollen);
            continue;
        }
        if (st == PROTO_OK &&
            (proto_cmd_is_storage(pr.cmd) || pr.cmd == PROTO_CMD_MS)) {
            if (!client_storage(c, in, &pr, line, linelen, eollen)) {
                break;
            }
            continue;
        }
        if (st == PROTO_OK) {
            struct request *req = request_get(w, c);

            STAILQ_INSERT_TAIL(&c->queue, req, link);
            c->nqueued++;
            request_dispatch(req, &pr, line, client_cmdlen(line, linelen),
                             NULL, 0);
            evbuffer_drain(in, linelen + eollen);
            if (pr.cmd == PROTO_CMD_QUIT) {
                client_drain(c);
            }
            continue;
        }
        evbuffer_drain(in, linelen + eollen);
        switch (st) {
        case PROTO_ERROR:
            stats_add(&w->stats.protocol_errors, 1);
            /* noreply is only set for an ERROR memcached says after
             * reading it (cache_memlimit with a bad number). */
            client_reply_line(c, "ERROR", pr.noreply);
            break;
        case PROTO_CLIENT_ERROR:
            /* As memcached: a refused storage line's data block, if the
             * client sent one, is read as the next command. */
            client_error(c, reason, false, pr.noreply);
            break;
        default:
            /* An HTTP request: memcached hangs up without a word. */
            stats_add(&w->stats.protocol_errors, 1);
            evbuffer_drain(in, evbuffer_get_length(in));
            net_log_limited(&c->nc, LOG_LEVEL_INFO, "HTTP request line, closing");
            client_drain(c);
            break;
        }
    }
    c->in_drive = false;
    if (c->eof && c->state == CLIENT_ACTIVE && !c->paused) {
        /* All it sent is in (a partial command is dropped). */
        client_drain(c);
    }
    if (c->state == CLIENT_DRAINING) {
        worker_want_flush_client(w, c);
    }
}

/* What a read got (n, errno err), from the read callback or the turn's
 * read batch. */
static void
client_read_done(void *arg, ssize_t n, int err)
{
    struct client *c = arg;

    if (n < 0 && err != EAGAIN && err != EINTR) {
        client_abort(c);
        return;
    }
    if (n == 0 && c->watch != NULL) {
        /* A watcher that hangs up is gone: nothing it is owed matters. */
        client_abort(c);
        return;
    }
    if (n == 0 && !c->eof) {
        /* The client shut down its side: answer what it sent (commands
         * held back by a pause too), then close (a reset instead shows
         * as a failed write). */
        c->eof = true;
        client_stop_reading(c);
    }
    worker_tick(c->worker);
    if (n > 0) {
        stats_add(&c->worker->stats.bytes_read, (uint64_t)n);
        c->touched = true;
        if (c->worker->cfg->client_idle_timeout > 0) {
            c->last_us = worker_now_us(c->worker);
        }
    }
    client_drive(c);
}

static void
client_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    struct worker *w = c->worker;
    ssize_t n;

    if (!c->eof && w->iobatch != NULL &&
        iobatch_read(w->iobatch, &c->nc, client_read_done, c) == 0) {
        worker_schedule_flush(w);
        return;
    }
    n = c->eof ? 0 : net_conn_read(&c->nc);
    client_read_done(c, n, n < 0 ? errno : 0);
}

static void
client_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;

    worker_tick(c->worker);
    client_write(c);
}
