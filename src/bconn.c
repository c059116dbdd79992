/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bconn: a pipelined connection from one worker to one backend.
 *
 * Invariants:
 *   - queue holds, in write order, every fragment whose request bytes were
 *     written to nc.out (or the socket) and whose reply has not been read;
 *     the head is the one being answered. The open get line's fragments
 *     wait in line_frags, its bytes in line, until it is sealed (at the
 *     turn's end at the latest): then both go behind what is there.
 *     Only one-key writes of keys not on it go ahead of it.
 *   - timer is armed whenever the queue is non-empty in CONNECTED state, or
 *     while CONNECTING; it fires at the head's deadline at the latest, and
 *     a firing that finds the head not yet due re-arms it, so a steady
 *     stream of replies costs no timer operations.
 *   - a fragment leaves the queue before its request is told about it, so
 *     a callback may enqueue new fragments safely.
 *   - requests are written at the end of the worker's loop turn
 *     (worker_flush()), so requests from many clients leave in one write;
 *     ev_write is only added while the socket is full.
 */
#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "backend.h"
#include "bconn.h"
#include "config.h"
#include "iobatch.h"
#include "log.h"
#include "mget.h"
#include "net.h"
#include "request.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

/* Longest reply line a backend may send (a VALUE line is ~300 bytes). */
#define BCONN_LINE_MAX 4096
#define BCONN_BACKOFF_MIN_MS 50
#define BCONN_BACKOFF_MAX_MS 1000

static void bconn_read_cb(evutil_socket_t fd, short what, void *arg);
static void bconn_write_cb(evutil_socket_t fd, short what, void *arg);
static void bconn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void bconn_queue(struct bconn *bc, struct frag *f);

static uint64_t
bconn_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct backend *
bconn_backend(const struct bconn *bc)
{
    return bc->wb->be;
}

static void
bconn_arm(struct bconn *bc, uint64_t ns)
{
    struct timeval tv = {
        .tv_sec = (time_t)(ns / 1000000000u),
        .tv_usec = (suseconds_t)(ns % 1000000000u / 1000u),
    };

    evtimer_add(bc->timer, &tv);
    bc->timer_armed = true;
}

static void
bconn_disarm(struct bconn *bc)
{
    if (bc->timer_armed) {
        evtimer_del(bc->timer);
        bc->timer_armed = false;
    }
}

struct bconn *
bconn_create(struct worker *w, struct worker_backend *wb)
{
    struct bconn *bc = util_xcalloc(1, sizeof(*bc));

    bc->worker = w;
    bc->wb = wb;
    bc->state = BCONN_IDLE;
    TAILQ_INIT(&bc->queue);
    TAILQ_INIT(&bc->line_frags);
    if (net_conn_init(&bc->nc) != 0) {
        free(bc);
        return NULL;
    }
    /* (A long unix path is cut short in logs.) */
    snprintf(bc->nc.name, sizeof(bc->nc.name), "backend %.64s (%.50s)",
             wb->be->name, wb->be->addr);
    bc->timer = evtimer_new(w->base, bconn_timer_cb, bc);
    if (bc->timer == NULL) {
        bconn_destroy(bc);
        return NULL;
    }
    return bc;
}

/* Closes the socket and forgets every byte in either direction. */
static void
bconn_close(struct bconn *bc)
{
    if (bc->join_open) {
        /* The open line's fragments fail with the queue; its bytes go. */
        bc->join_open = false;
        TAILQ_CONCAT(&bc->queue, &bc->line_frags, link);
    }
    net_conn_close(&bc->nc);
    if (bc->flush_pending) {
        worker_cancel_flush_bconn(bc->worker, bc);
    }
}

/* Why a connection is reset: which errors_* its failed requests count. */
enum bconn_why {
    BCONN_CLOSED,
    BCONN_TIMEOUT,
    BCONN_PROTOCOL,
};

/*
 * Drops the socket and fails every queued fragment with reason (counted
 * as why). With backoff, the backend is not tried again before a growing
 * delay.
 */

static void
bconn_reset(struct bconn *bc, const char *reason, bool backoff,
            enum bconn_why why)
{
    struct frag_queue failed;
    struct frag *f;
    struct stats_backend *bs = bc->wb->stats;

    if (bc->state == BCONN_CONNECTED) {
        stats_sub(&bs->connections, 1);
    }
    bconn_close(bc);
    bconn_disarm(bc);
    if (backoff) {
        bc->backoff_ms = bc->backoff_ms == 0
                             ? BCONN_BACKOFF_MIN_MS
                             : bc->backoff_ms * 2;
        if (bc->backoff_ms > BCONN_BACKOFF_MAX_MS) {
            bc->backoff_ms = BCONN_BACKOFF_MAX_MS;
        }
        bc->retry_ns = bconn_now() + (uint64_t)bc->backoff_ms * 1000000u;
        bc->backoff_epoch = atomic_load(&bconn_backend(bc)->transitions);
        bc->state = BCONN_BACKOFF;
    } else {
        bc->state = BCONN_IDLE;
    }

    TAILQ_INIT(&failed);
    TAILQ_CONCAT(&failed, &bc->queue, link);
    stats_sub(&bs->in_flight, bc->nqueued);
    bc->nqueued = 0;
    if (!TAILQ_EMPTY(&failed)) {
        net_log_limited(&bc->nc, LOG_LEVEL_INFO, "%s, failing queued requests", reason);
    }
    while ((f = TAILQ_FIRST(&failed)) != NULL) {
        TAILQ_REMOVE(&failed, f, link);
        stats_backend_error(bs, why == BCONN_TIMEOUT    ? &bs->errors_timeout
                                : why == BCONN_PROTOCOL ? &bs->errors_protocol
                                                        : &bs->errors_closed);
        request_frag_fail(f, reason);
    }
}

void
bconn_fail(struct bconn *bc, const char *reason)
{
    if (bc->state == BCONN_CONNECTING || bc->state == BCONN_CONNECTED) {
        bconn_reset(bc, reason, false, BCONN_CLOSED);
    }
}

void
bconn_destroy(struct bconn *bc)
{
    if (bc == NULL) {
        return;
    }
    bconn_reset(bc, "SERVER_ERROR proxy shutting down", false, BCONN_CLOSED);
    if (bc->timer != NULL) {
        event_free(bc->timer);
    }
    net_conn_deinit(&bc->nc);
    free(bc);
}

static void
bconn_connect_failed(struct bconn *bc, int err)
{
    char why[128];

    stats_add(&bc->wb->stats->connect_failures, 1);
    snprintf(why, sizeof(why), "connect failed on the data path: %s",
             evutil_socket_error_to_string(err));
    net_log_limited(&bc->nc, LOG_LEVEL_INFO, "%s", why);
    /* A refused connect is as clear as a failure gets: route around the
     * backend now rather than after the health checker's next probes. */
    backend_failed(bconn_backend(bc), why);
    bconn_reset(bc, "SERVER_ERROR backend unavailable", true, BCONN_CLOSED);
}

void
bconn_connect(struct bconn *bc)
{
    struct backend *be = bconn_backend(bc);
    const struct config *cfg = bc->worker->cfg;
    struct sockaddr_storage sa;
    socklen_t salen;
    int fd;

    if (bc->state != BCONN_IDLE) {
        return;
    }
    if (!backend_address(be, &sa, &salen)) {
        /* A host name not resolved yet: the backend is not UP, so only
         * eager connects and a RECOVERING owner's deletes get here. */
        bconn_reset(bc, "SERVER_ERROR backend unavailable", true, BCONN_CLOSED);
        return;
    }
    stats_add(&bc->wb->stats->connects, 1);
    fd = util_connect_nonblock(&sa, salen);
    if (fd < 0) {
        bconn_connect_failed(bc, errno);
        return;
    }
    if (net_conn_attach(&bc->nc, bc->worker->base, fd, bconn_read_cb,
                        bconn_write_cb, bc) != 0) {
        evutil_closesocket(fd);
        bconn_connect_failed(bc, ENOMEM);
        return;
    }
    /* Completion (or failure) shows as writability. */
    bc->state = BCONN_CONNECTING;
    net_conn_writing(&bc->nc, true);
    bconn_arm(bc, (uint64_t)cfg->connect_timeout_ms * 1000000u);
}

void
bconn_enqueue(struct bconn *bc, struct frag *f)
{
    /* Its bytes are at the end of nc.out, ahead of any open get line. */
    bconn_queue(bc, f);
    TAILQ_INSERT_TAIL(&bc->queue, f, link);
}

void
bconn_seal(struct bconn *bc)
{
    if (bc->join_open) {
        bc->join_open = false;
        memcpy(bc->line + bc->join_len, "\r\n", 2);
        evbuffer_add(bc->nc.out, bc->line, bc->join_len + 2);
        TAILQ_CONCAT(&bc->queue, &bc->line_frags, link);
    }
}

/* Whether the open get line asks for key. */
static bool
bconn_line_has(const struct bconn *bc, const char *key, size_t keylen)
{
    const struct frag *f;

    TAILQ_FOREACH(f, &bc->line_frags, link) {
        const struct request *req = f->req;

        for (uint32_t k = 0; k < f->nkeys; k++) {
            const struct proto_str *ks =
                &req->keys[req->frag_keys[f->key_start + k]];

            if (ks->len == keylen && memcmp(ks->p, key, keylen) == 0) {
                return true;
            }
        }
    }
    return false;
}

/* bconn_output() but for the open get line, left as it is. */
static struct evbuffer *
bconn_ready(struct bconn *bc)
{
    bc->overloaded = bc->nqueued >= bc->worker->cfg->backend_queue_limit;
    if (bc->overloaded) {
        /* A slow backend's queue does not grow without bound. */
        return NULL;
    }
    if (bc->state == BCONN_BACKOFF) {
        /* A health transition since (the backend came back) ends the
         * backoff: its keys are routed here again right now. */
        if (bconn_now() < bc->retry_ns &&
            atomic_load_explicit(&bconn_backend(bc)->transitions,
                                 memory_order_relaxed) == bc->backoff_epoch) {
            return NULL;
        }
        bc->state = BCONN_IDLE;
    }
    if (bc->state == BCONN_IDLE) {
        bconn_connect(bc);
        if (bc->state != BCONN_CONNECTING) {
            return NULL;
        }
    }
    return bc->nc.out;
}

struct evbuffer *
bconn_output(struct bconn *bc)
{
    struct evbuffer *out = bconn_ready(bc);

    if (out != NULL) {
        bconn_seal(bc);
    }
    return out;
}

struct evbuffer *
bconn_output_key(struct bconn *bc, const char *key, size_t keylen)
{
    struct evbuffer *out = bconn_ready(bc);

    if (out != NULL && bc->join_open && bconn_line_has(bc, key, keylen)) {
        /* The gets asked before it are answered before it. */
        bconn_seal(bc);
    }
    return out;
}

bool
bconn_send_get(struct bconn *bc, struct frag *f, const struct proto_req *pr)
{
    const struct request *req = f->req;
    struct evbuffer *out = bconn_ready(bc);
    bool gets = pr->cmd == PROTO_CMD_GETS;
    uint32_t cmdlen = gets ? 4 : 3, bytes;
    char *p;

    if (out == NULL) {
        return false;
    }
    bytes = (uint32_t)mget_keys_len(req, f);
    f->joined = bc->join_open && bc->join_gets == gets &&
                bc->join_keys + f->nkeys <= BCONN_JOIN_KEYS &&
                bc->join_len + bytes <= BCONN_JOIN_LINE;
    if (!f->joined) {
        bconn_seal(bc);
        if (f->nkeys > BCONN_JOIN_KEYS || cmdlen + bytes > BCONN_JOIN_LINE) {
            /* A long one: on a line of its own, that nothing joins. */
            mget_write(req, f, pr, 0, out);
            bconn_enqueue(bc, f);
            return true;
        }
        bc->join_open = true;
        bc->join_gets = gets;
        bc->join_keys = 0;
        memcpy(bc->line, gets ? "gets" : "get", cmdlen);
        bc->join_len = cmdlen;
    }
    p = mget_put_keys(req, f, bc->line + bc->join_len);
    bc->join_len = (uint32_t)(p - bc->line);
    bc->join_keys += f->nkeys;
    bconn_queue(bc, f);
    TAILQ_INSERT_TAIL(&bc->line_frags, f, link);
    return true;
}

const char *
bconn_refuse(struct bconn *bc)
{
    struct stats_backend *s = bc->wb->stats;

    if (bc->overloaded) {
        stats_backend_error(s, &s->errors_overloaded);
        return "SERVER_ERROR backend overloaded";
    }
    stats_backend_error(s, &s->errors_unavailable);
    return "SERVER_ERROR backend unavailable";
}

/* Counts f as sent and sees that it is written (the caller puts it in
 * queue or line_frags, where its bytes are). */
static void
bconn_queue(struct bconn *bc, struct frag *f)
{
    unsigned timeout_ms = bc->worker->cfg->timeout_ms;

    f->deadline_ns = bconn_now() + (uint64_t)timeout_ms * 1000000u;
    f->sent_us = worker_now_us(bc->worker);
    bc->nqueued++;
    stats_add(&bc->wb->stats->requests, 1);
    stats_add(&bc->wb->stats->in_flight, 1);
    if (bc->state == BCONN_CONNECTED) {
        if (!bc->timer_armed) {
            bconn_arm(bc, (uint64_t)timeout_ms * 1000000u);
        }
        if (!bc->flush_pending && !bc->nc.writing) {
            worker_want_flush_bconn(bc->worker, bc);
        }
    }
}

void
bconn_flush(struct bconn *bc)
{
    bconn_seal(bc);
    if (bc->state == BCONN_CONNECTED &&
        (evbuffer_get_length(bc->nc.out) > 0 || bc->nc.tls != NULL) &&
        net_conn_write(&bc->nc) != 0) {
        net_log_limited(&bc->nc, LOG_LEVEL_INFO, "write: %s", strerror(errno));
        bconn_reset(bc, "SERVER_ERROR backend connection lost", false,
                    BCONN_CLOSED);
        return;
    }
    /* What this write and the turn's batch (iobatch.h) sent. */
    stats_add(&bc->wb->stats->bytes_sent, bc->nc.sent);
    bc->nc.sent = 0;
}

static void
bconn_connected(struct bconn *bc)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(bc->nc.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        bconn_connect_failed(bc, err);
        return;
    }
    if (bconn_backend(bc)->tls) {
        /* The handshake goes with the first writes (bconn_flush()). */
        struct ssl_st *ssl = tls_client_new(bc->nc.fd,
                                            bconn_backend(bc)->host);

        if (ssl == NULL) {
            bconn_connect_failed(bc, EPROTO);
            return;
        }
        net_conn_tls(&bc->nc, ssl);
    }
    bc->state = BCONN_CONNECTED;
    bc->backoff_ms = 0;
    stats_add(&bc->wb->stats->connections, 1);
    bconn_disarm(bc);
    net_conn_writing(&bc->nc, false);
    net_conn_reading(&bc->nc, true);
    bconn_seal(bc);
    if (!TAILQ_EMPTY(&bc->queue)) {
        uint64_t now = bconn_now();
        uint64_t due = TAILQ_FIRST(&bc->queue)->deadline_ns;

        bconn_arm(bc, due > now ? due - now : 0);
    }
    net_log(&bc->nc, LOG_LEVEL_DEBUG, "connected");
    bconn_flush(bc);
}

static void
bconn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *bc = arg;

    if (bc->state == BCONN_CONNECTING) {
        bconn_connected(bc);
    } else {
        bconn_flush(bc);
    }
}

static void
bconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *bc = arg;
    struct frag *head;
    uint64_t now;

    bc->timer_armed = false;
    if (bc->state == BCONN_CONNECTING) {
        stats_add(&bc->wb->stats->connect_failures, 1);
        net_log_limited(&bc->nc, LOG_LEVEL_INFO, "connect timeout");
        backend_timeout(bconn_backend(bc));
        bconn_reset(bc, "SERVER_ERROR backend connect timeout", true,
                    BCONN_TIMEOUT);
        return;
    }
    head = TAILQ_FIRST(&bc->queue);
    if (head == NULL) {
        head = TAILQ_FIRST(&bc->line_frags);    /* sent at the turn's end */
    }
    if (bc->state != BCONN_CONNECTED || head == NULL) {
        return;
    }
    now = bconn_now();
    if (now < head->deadline_ns) {
        bconn_arm(bc, head->deadline_ns - now);
        return;
    }
    stats_add(&bc->wb->stats->timeouts, 1);
    net_log_limited(&bc->nc, LOG_LEVEL_INFO, "request timeout, resetting connection");
    backend_timeout(bconn_backend(bc));
    bconn_reset(bc, "SERVER_ERROR backend timeout", false, BCONN_TIMEOUT);
}

static void
bconn_protocol_error(struct bconn *bc, const char *what)
{
    log_limited_at(LOG_LEVEL_WARN, "%s: protocol error: %s", bc->nc.name,
                   what);
    bconn_reset(bc, "SERVER_ERROR backend protocol error", false,
                BCONN_PROTOCOL);
}

/* The head's reply is read: off the queue, its latency counted. */
static struct frag *
bconn_pop(struct bconn *bc)
{
    struct frag *f = TAILQ_FIRST(&bc->queue);
    struct stats_backend *bs = bc->wb->stats;
    uint64_t now = worker_now_us(bc->worker);

    TAILQ_REMOVE(&bc->queue, f, link);
    bc->nqueued--;
    stats_sub(&bs->in_flight, 1);
    stats_histo_add(&bs->latency, now > f->sent_us ? now - f->sent_us : 0);
    return f;
}

/* The fragment after f if it shares f's get line, or NULL. */
static struct frag *
bconn_joined_next(struct frag *f)
{
    struct frag *next = TAILQ_NEXT(f, link);

    return next != NULL && next->joined ? next : NULL;
}

/*
 * Reads every complete reply in the input buffer. Returns after a reset
 * (the socket is closed then) or when more bytes are needed.
 *
 * Replies are parsed where they lie in the buffer's first chain; what was
 * used is drained once, when the chain is used up or parsing stops. Only a
 * reply that spans chains takes the slow path: its line is pulled up, its
 * data block moved out of the buffer. A callback never touches this
 * connection's input, so the chain stays valid across them.
 */
static void
bconn_parse(struct bconn *bc)
{
    struct evbuffer *in = bc->nc.in;
    const char *p = NULL;       /* the first chain, n bytes */
    size_t n = 0, off = 0;      /* off: bytes of it used (not yet drained) */
    struct frag *f;

    while ((f = TAILQ_FIRST(&bc->queue)) != NULL) {
        const char *line = NULL, *nl;
        size_t len, eollen, unit;
        enum proto_rsp kind;

        nl = off < n ? memchr(p + off, '\n', n - off) : NULL;
        if (nl != NULL) {
            line = p + off;
            net_eol(line, nl, &len, &eollen);
        } else {
            /* Used up, or the line goes on in the next chain. */
            evbuffer_drain(in, off);
            off = 0;
            line = net_line(in, &len, &eollen);
            if (line == NULL) {
                if (evbuffer_get_length(in) > BCONN_LINE_MAX) {
                    bconn_protocol_error(bc, "reply line too long");
                }
                return;
            }
            p = net_head(in, &n);
        }
        kind = proto_classify_response(line, len);
        unit = len + eollen;

        if (frag_kind_is_meta(f->kind)) {
            size_t total = unit;
            /* Only the client's own mg (and its warm-up copy) may be
             * quiet. */
            bool quiet = f->req->meta_quiet && (f->kind == FRAG_META ||
                                                f->kind == FRAG_WARM_META);

            if (quiet && len == 2 && line[0] == 'M' && line[1] == 'N') {
                /* The mn sent after a quiet command: it is done. */
                off += unit;
                bconn_pop(bc);
                request_frag_meta_end(f);
                continue;
            }
            if (len > 3 && memcmp(line, "VA ", 3) == 0) {
                uint64_t v = 0;
                size_t i = 3;

                while (i < len && line[i] >= '0' && line[i] <= '9' &&
                       v <= INT32_MAX) {
                    v = v * 10 + (uint64_t)(line[i++] - '0');
                }
                if (i == 3 || v > INT32_MAX || (i < len && line[i] != ' ')) {
                    evbuffer_drain(in, off);
                    bconn_protocol_error(bc, "malformed VA line");
                    return;
                }
                total = unit + (size_t)v + 2;
            }
            if (off + total <= n) {
                request_frag_meta(f, line, total, NULL);
                off += total;
            } else if (evbuffer_get_length(in) - off < total) {
                evbuffer_drain(in, off);
                return;
            } else {
                evbuffer_drain(in, off);
                request_frag_meta(f, NULL, total, in);
                p = net_head(in, &n);
                off = 0;
            }
            if (!quiet) {
                bconn_pop(bc);
                request_frag_meta_end(f);
            }
            continue;
        }
        if (f->kind == FRAG_STATS || f->kind == FRAG_ADMIN) {
            /* stats: lines until END; a one-line answer (OK to stats
             * detail on, ERROR...) ends it too. A tuning command: lines
             * until the MN of the mn sent after it. */
            off += unit;
            if (f->kind == FRAG_ADMIN
                    ? len == 2 && line[0] == 'M' && line[1] == 'N'
                    : kind == PROTO_RSP_END || kind == PROTO_RSP_OK ||
                          kind == PROTO_RSP_ERROR ||
                          kind == PROTO_RSP_CLIENT_ERROR ||
                          kind == PROTO_RSP_SERVER_ERROR) {
                bconn_pop(bc);
                request_frag_stats_end(f, line, unit, kind);
            } else if (request_frag_stats_line(f, line, unit) != 0) {
                evbuffer_drain(in, off);
                bconn_protocol_error(bc, "stats reply too long");
                return;
            }
            continue;
        }
        if (f->kind != FRAG_RETRIEVAL && f->kind != FRAG_BIG) {
            bconn_pop(bc);
            off += unit;
            request_frag_line(f, line, unit, kind);
            continue;
        }
        if (kind == PROTO_RSP_VALUE) {
            struct proto_str key;
            uint32_t flags, vlen;
            uint64_t cas;
            bool has_cas;
            size_t total;

            if (proto_parse_value(line, len, &key, &flags, &vlen, &cas,
                                  &has_cas) != 0) {
                evbuffer_drain(in, off);
                bconn_protocol_error(bc, "malformed VALUE line");
                return;
            }
            total = unit + vlen + 2;
            if (off + total > n &&
                evbuffer_get_length(in) - off < total) {
                evbuffer_drain(in, off);
                return;
            }
            if (f->joined || bconn_joined_next(f)) {
                /* A get line shared by several fragments: the value is
                 * the first one's whose key it is; those before it
                 * missed. */
                while (!mget_claim(f, key.p, key.len)) {
                    struct frag *next = bconn_joined_next(f);

                    if (next == NULL) {
                        evbuffer_drain(in, off);
                        bconn_protocol_error(bc,
                                             "VALUE for a key not asked for");
                        return;
                    }
                    bconn_pop(bc);
                    request_frag_end(f);
                    if ((f = TAILQ_FIRST(&bc->queue)) != next) {
                        return; /* reset meanwhile */
                    }
                }
            }
            if (!request_frag_match(f, key.p, key.len, (uint32_t)total)) {
                evbuffer_drain(in, off);
                bconn_protocol_error(bc, "VALUE for a key not asked for");
                return;
            }
            if (off + total <= n) {
                mget_value(f, p + off, total);
                off += total;
            } else {
                evbuffer_drain(in, off);
                mget_value_move(f, in, total);
                p = net_head(in, &n);
                off = 0;
            }
            if (f->cursor == f->nkeys && bconn_joined_next(f) != NULL) {
                /* It has all it asked for: done now, not when the next
                 * value (it may be large) is in; the line's last waits
                 * for the END. */
                bconn_pop(bc);
                request_frag_end(f);
            }
            continue;
        }
        if (kind == PROTO_RSP_END) {
            off += unit;
            bconn_pop(bc);
            request_frag_end(f);
            /* It ends the fragments that shared its line too. */
            while ((f = TAILQ_FIRST(&bc->queue)) != NULL && f->joined) {
                bconn_pop(bc);
                request_frag_end(f);
            }
            continue;
        }
        if (kind == PROTO_RSP_ERROR || kind == PROTO_RSP_CLIENT_ERROR ||
            kind == PROTO_RSP_SERVER_ERROR) {
            char reason[128];
            size_t m = len < sizeof(reason) - 1 ? len : sizeof(reason) - 1;

            memcpy(reason, line, m);
            reason[m] = '\0';
            off += unit;
            do {
                bconn_pop(bc);
                stats_backend_error(bc->wb->stats,
                                    &bc->wb->stats->errors_server);
                request_frag_fail(f, reason);
            } while ((f = TAILQ_FIRST(&bc->queue)) != NULL && f->joined);
            continue;
        }
        evbuffer_drain(in, off);
        bconn_protocol_error(bc, "unexpected reply to a retrieval");
        return;
    }
    evbuffer_drain(in, off);
    if (evbuffer_get_length(in) > 0) {
        bconn_protocol_error(bc, "reply with no request");
    }
}

/* What a read got (n, errno err), from the read callback or the turn's
 * read batch. */
static void
bconn_read_done(void *arg, ssize_t n, int err)
{
    struct bconn *bc = arg;

    if (n == 0 || (n < 0 && err != EAGAIN && err != EINTR)) {
        net_log_limited(&bc->nc, LOG_LEVEL_INFO, "connection %s",
                n == 0 ? "closed" : strerror(err));
        bconn_reset(bc, "SERVER_ERROR backend connection lost", false,
                    BCONN_CLOSED);
    } else if (n > 0) {
        stats_add(&bc->wb->stats->bytes_received, (uint64_t)n);
        worker_tick(bc->worker);
        /* Replies go out with everything else at the end of the turn. */
        bconn_parse(bc);
    }
}

static void
bconn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *bc = arg;
    struct worker *w = bc->worker;
    ssize_t n;

    if (w->iobatch != NULL &&
        iobatch_read(w->iobatch, &bc->nc, bconn_read_done, bc) == 0) {
        worker_schedule_flush(w);
        return;
    }
    n = net_conn_read(&bc->nc);
    bconn_read_done(bc, n, n < 0 ? errno : 0);
}
