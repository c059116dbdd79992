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
 *   - reading pauses while the output is over client_output_limit or
 *     CLIENT_MAX_INFLIGHT requests are queued, so a client that does not
 *     read its replies cannot make mcring grow without bound.
 *   - a client is never freed inside its own callbacks: client_close()
 *     releases the socket and leaves the struct to the worker's reaper.
 */
#include "autoconf.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "client.h"
#include "log.h"
#include "proto.h"
#include "proxy.h"
#include "request.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_drive(struct client *c);

struct client *
client_create(struct worker *w, int fd)
{
    struct client *c = calloc(1, sizeof(*c));
    int one = 1;
    size_t limit = w->proxy->cfg->client_output_limit;

    if (c == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    evutil_make_socket_nonblocking(fd);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }
    c->worker = w;
    c->id = ++w->next_client_id;
    c->state = CLIENT_ACTIVE;
    STAILQ_INIT(&c->queue);
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb,
                      client_event_cb, c);
    /* The write callback resumes a paused client once its output has
     * drained to half the limit. */
    bufferevent_setwatermark(c->bev, EV_WRITE, limit / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    stats_add(&w->stats.total_connections, 1);
    stats_add(&w->stats.curr_connections, 1);
    return c;
}

void
client_free(struct client *c)
{
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
    bufferevent_free(c->bev);
    c->bev = NULL;
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
    TAILQ_REMOVE(&w->clients, c, link);
    TAILQ_INSERT_TAIL(&w->closed, c, link);
    stats_sub(&w->stats.curr_connections, 1);
    atomic_fetch_sub(&w->proxy->nclients, 1);
    worker_schedule_reap(w);
    worker_check_drained(w);
}

/* Closes a DRAINING client once everything it was owed is written. */
static void
client_maybe_finish(struct client *c)
{
    if (c->state != CLIENT_DRAINING || !STAILQ_EMPTY(&c->queue) ||
        c->in_drive) {
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        client_abort(c);
    } else {
        /* Be told when the output is empty. */
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    }
}

void
client_drain(struct client *c)
{
    if (c->state != CLIENT_ACTIVE) {
        return;
    }
    c->state = CLIENT_DRAINING;
    bufferevent_disable(c->bev, EV_READ);
    client_maybe_finish(c);
}

static void
client_pause(struct client *c)
{
    if (!c->paused) {
        c->paused = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

static void
client_resume(struct client *c)
{
    if (c->paused && c->state == CLIENT_ACTIVE) {
        c->paused = false;
        bufferevent_enable(c->bev, EV_READ);
        /* Bytes already buffered will not raise a read event: run the
         * read callback from the loop, never from here. */
        bufferevent_trigger(c->bev, EV_READ,
                            BEV_TRIG_IGNORE_WATERMARKS |
                                BEV_TRIG_DEFER_CALLBACKS);
    }
}

static bool
client_over_limit(struct client *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) >
               c->worker->proxy->cfg->client_output_limit ||
           c->nqueued >= CLIENT_MAX_INFLIGHT;
}

void
client_flush(struct client *c)
{
    struct evbuffer *out;
    struct request *req;
    struct stats_worker *s = &c->worker->stats;

    if (c->state == CLIENT_CLOSED) {
        return;
    }
    out = bufferevent_get_output(c->bev);
    while ((req = STAILQ_FIRST(&c->queue)) != NULL && req->done) {
        size_t n = evbuffer_get_length(req->rsp);
        bool closes = req->closes;

        STAILQ_REMOVE_HEAD(&c->queue, link);
        c->nqueued--;
        if (n > 0) {
            stats_add(&s->bytes_written, n);
            evbuffer_add_buffer(out, req->rsp);
        }
        request_put(req);
        if (closes) {
            client_drain(c);
        }
    }
    if (c->paused && !client_over_limit(c)) {
        client_resume(c);
    }
    client_maybe_finish(c);
}

/* Answers a command that never reaches a backend with one line. */
static void
client_reply_line(struct client *c, const char *line, bool noreply)
{
    struct request *req = request_get(c->worker, c);

    STAILQ_INSERT_TAIL(&c->queue, req, link);
    c->nqueued++;
    req->noreply = noreply;
    request_reply(req, line);
}

static void
client_error(struct client *c, const char *reason, bool fatal)
{
    char line[160];

    stats_add(&c->worker->stats.protocol_errors, 1);
    snprintf(line, sizeof(line), "CLIENT_ERROR %s", reason);
    client_reply_line(c, line, false);
    if (fatal) {
        log_info("client %llu: %s, closing", (unsigned long long)c->id,
                 reason);
        client_drain(c);
    }
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
    size_t max = c->worker->proxy->cfg->max_value_size;
    size_t need = linelen + eollen + (size_t)pr->vlen + 2;
    char copy[PROTO_LINE_MAX + 1];
    char crlf[2];
    struct evbuffer_ptr at;
    struct proto_req moved;
    struct request *req;

    if (pr->vlen > max) {
        /* Like memcached: refuse, then skip the data block. */
        evbuffer_drain(in, linelen + eollen);
        c->swallow = (uint64_t)pr->vlen + 2;
        client_reply_line(c, "SERVER_ERROR object too large for cache",
                          pr->noreply);
        return true;
    }
    if (evbuffer_get_length(in) < need) {
        return false;
    }
    evbuffer_ptr_set(in, &at, linelen + eollen + pr->vlen, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(in, &at, crlf, 2);
    if (crlf[0] != '\r' || crlf[1] != '\n') {
        evbuffer_drain(in, need);
        client_error(c, "bad data chunk", false);
        return true;
    }
    /* The line must outlive draining it: the data block follows it. */
    memcpy(copy, line, linelen);
    moved = *pr;
    moved.key.p = copy + (pr->key.p - line);
    moved.name.p = copy + (pr->name.p - line);
    evbuffer_drain(in, linelen + eollen);
    req = request_get(c->worker, c);
    STAILQ_INSERT_TAIL(&c->queue, req, link);
    c->nqueued++;
    request_dispatch(req, &moved, copy, linelen, in);
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
    const struct config *cfg = w->proxy->cfg;
    struct evbuffer *in;

    if (c->state != CLIENT_ACTIVE || c->in_drive) {
        return;
    }
    c->in_drive = true;
    in = bufferevent_get_input(c->bev);
    while (c->state == CLIENT_ACTIVE) {
        size_t avail = evbuffer_get_length(in);
        size_t eollen = 0, linelen;
        struct evbuffer_ptr eol;
        struct proto_req pr;
        const char *line, *reason = NULL;
        enum proto_status st;

        if (avail == 0) {
            break;
        }
        if (c->swallow > 0) {
            size_t n = avail < c->swallow ? avail : (size_t)c->swallow;

            evbuffer_drain(in, n);
            c->swallow -= n;
            continue;
        }
        if (client_over_limit(c)) {
            client_pause(c);
            break;
        }
        eol = evbuffer_search_eol(in, NULL, &eollen, EVBUFFER_EOL_CRLF);
        if (eol.pos < 0) {
            size_t head = avail < 8 ? avail : 8;
            const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)head);

            if (avail > proto_line_limit(p, head, cfg->max_keys)) {
                evbuffer_drain(in, avail);
                client_error(c, "line too long", true);
            }
            break;
        }
        linelen = (size_t)eol.pos;
        if (linelen > proto_line_limit(
                          (const char *)evbuffer_pullup(
                              in, (ev_ssize_t)(linelen < 8 ? linelen : 8)),
                          linelen < 8 ? linelen : 8, cfg->max_keys)) {
            evbuffer_drain(in, avail);
            client_error(c, "line too long", true);
            break;
        }
        line = (const char *)evbuffer_pullup(in, (ev_ssize_t)(linelen + eollen));
        st = proto_parse_request(line, linelen, cfg->max_keys, &pr, &reason);
        if (st == PROTO_OK && proto_cmd_is_storage(pr.cmd)) {
            if (!client_storage(c, in, &pr, line, linelen, eollen)) {
                break;
            }
            continue;
        }
        if (st == PROTO_OK) {
            struct request *req = request_get(w, c);

            STAILQ_INSERT_TAIL(&c->queue, req, link);
            c->nqueued++;
            request_dispatch(req, &pr, line, linelen, NULL);
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
            client_reply_line(c, "ERROR", false);
            break;
        case PROTO_CLIENT_ERROR:
            if (proto_cmd_is_storage(pr.cmd)) {
                /* The length was readable: skip the data block. */
                c->swallow = (uint64_t)pr.vlen + 2;
            }
            client_error(c, reason, false);
            break;
        default:
            evbuffer_drain(in, evbuffer_get_length(in));
            client_error(c, reason, true);
            break;
        }
    }
    c->in_left = c->bev != NULL ? evbuffer_get_length(in) : 0;
    c->in_drive = false;
    client_maybe_finish(c);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    size_t len = evbuffer_get_length(bufferevent_get_input(bev));

    if (len > c->in_left) {
        stats_add(&c->worker->stats.bytes_read, len - c->in_left);
        c->in_left = len;
    }
    client_drive(c);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;

    if (c->paused && !client_over_limit(c)) {
        client_resume(c);
    }
    client_maybe_finish(c);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct client *c = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        client_abort(c);
    }
}
