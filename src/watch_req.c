/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * watch: the data path's side (see watch.h): sampling a request when it
 * starts, its lines when its reply is ready, and the text protocol's
 * watcher, a client that gets lines instead of replies.
 *
 * A line, one per key of a request (one without a key for a command that
 * has none):
 *
 *   ts=SECS.USECS client=W.ID cmd=CMD [key=KEY] [backend=NAME]
 *   result=RESULT latency_us=N
 *
 * backend is where the key was sent (its owner, or the fallback of a
 * DOWN owner); there is none for commands mcring answers itself or sends
 * to every backend, a get answered from the l1 cache, or when no backend
 * was available. latency_us runs
 * from when the command was read to when its reply is queued to the
 * client (in order: after the replies of the commands before it).
 *
 * Only sampled requests come here; nothing runs for the others but the
 * two branches on the worker's tap and the request's mask.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "backend.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "request.h"
#include "stats.h"
#include "util.h"
#include "watch.h"
#include "worker.h"

_Static_assert(WATCH_LINE_MAX >= 4 * PROTO_KEY_MAX + CONFIG_NAME_MAX + 200,
               "the longest line fits: a key escaped, a backend name, "
               "the other fields");

/* The bytes of the reply's first line looked at for its result. */
#define WATCH_HEAD 64
/* A request keeps a watched request's keys for the next one up to this
 * many bytes (a big multi-get's are let go once its lines are out). */
#define WATCH_KEEP_KEYS 16384
/* A VALUE line's bytes at most: "VALUE", a key, flags, bytes, cas. */
#define WATCH_VALUE_LINE (PROTO_KEY_MAX + 80)

/* Keeps n bytes of keys at p in req->watch_keys. */
static void
watch_keep_keys(struct request *req, const char *p, size_t n, uint32_t nkeys)
{
    if (n > req->watch_keyscap) {
        req->watch_keys = util_xrealloc(req->watch_keys, n, 1);
        req->watch_keyscap = n;
    }
    memcpy(req->watch_keys, p, n);
    req->watch_keyslen = n;
    req->watch_nkeys = nkeys;
}

void
watch_request_begin(struct request *req, const struct proto_req *pr)
{
    struct worker *w = req->worker;
    uint32_t mask = watch_tap_sample(&w->watch);

    if (mask == 0) {
        return;
    }
    req->watch_mask = mask;
    req->watch_cmd = pr->cmd;
    req->watch_start_us = worker_now_us(w);
    req->watch_nkeys = 0;
    req->watch_keyslen = 0;
    if (proto_cmd_is_retrieval(pr->cmd)) {
        if (pr->nkeys > 0) {
            watch_keep_keys(req, pr->keys.p, pr->keys.len, pr->nkeys);
        }
    } else if (proto_cmd_has_key(pr->cmd) && pr->key.len > 0) {
        watch_keep_keys(req, pr->key.p, pr->key.len, 1);
    }
    /* Its reply is made and looked at, then dropped (client_flush()). */
    req->watch_noreply = req->noreply;
    req->noreply = false;
}

/* The fragment that carries the client's command (not a replica's copy,
 * a delete on an owner...), or NULL. */
static const struct frag *
watch_primary(const struct request *req)
{
    for (uint32_t i = 0; i < req->nfrags; i++) {
        enum frag_kind k = req->frags[i].kind;

        if (k == FRAG_LINE || k == FRAG_RETRIEVAL || k == FRAG_META) {
            return &req->frags[i];
        }
    }
    return NULL;
}

/* One line to every watcher of mask. */
static void
watch_put(struct request *req, uint32_t mask, const char *ts,
          const struct proto_str *key, const struct frag *f,
          const char *result, uint64_t latency, uint64_t *events,
          uint64_t *dropped)
{
    struct worker *w = req->worker;
    const struct client *c = req->client;
    char line[WATCH_LINE_MAX];
    char esc[4 * PROTO_KEY_MAX + 1];    /* a key is at most that long */
    int n;

    if (key != NULL) {
        watch_escape_key(key->p, key->len, esc, sizeof(esc));
    }
    n = snprintf(line, sizeof(line),
                 "%s client=%u.%llu cmd=%s%s%s%s%s result=%s "
                 "latency_us=%llu\n",
                 ts, w->id, (unsigned long long)c->id,
                 proto_cmd_name(req->watch_cmd), key != NULL ? " key=" : "",
                 key != NULL ? esc : "", f != NULL ? " backend=" : "",
                 f != NULL ? f->be->name : "", result,
                 (unsigned long long)latency);
    if (n <= 0 || (size_t)n >= sizeof(line)) {
        return; /* cannot happen: the fields are bounded */
    }
    watch_tap_emit(&w->watch, w->id, mask, line, (size_t)n, events, dropped);
}

/* The next VALUE block of a retrieval's reply at *at: its key (in buf),
 * and *at moved past it. False at END, an error or the end. */
static bool
watch_next_value(struct evbuffer *rsp, struct evbuffer_ptr *at, char *buf,
                 size_t cap, struct proto_str *key)
{
    struct evbuffer_ptr eol;
    size_t eollen = 0, len;
    uint32_t flags, vlen;
    uint64_t cas;
    bool has_cas;

    if (at->pos < 0 || (size_t)at->pos >= evbuffer_get_length(rsp)) {
        return false;
    }
    eol = evbuffer_search_eol(rsp, at, &eollen, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
        return false;
    }
    len = (size_t)(eol.pos - at->pos);
    if (len >= cap || evbuffer_copyout_from(rsp, at, buf, len) !=
                          (ev_ssize_t)len) {
        return false;
    }
    if (proto_parse_value(buf, len, key, &flags, &vlen, &cas, &has_cas) !=
        0) {
        return false;
    }
    return evbuffer_ptr_set(rsp, at, len + eollen + (size_t)vlen + 2,
                            EVBUFFER_PTR_ADD) == 0;
}

/* A retrieval: a line per key, hit (a VALUE of it came), miss, or error
 * (its backend failed). */
static void
watch_retrieval(struct request *req, uint32_t mask, const char *ts,
                const struct frag *primary, uint64_t latency,
                uint64_t *events, uint64_t *dropped)
{
    const char *cur = req->watch_keys;
    const char *end = req->watch_keys + req->watch_keyslen;
    char vline[WATCH_VALUE_LINE];
    struct evbuffer_ptr at;
    struct proto_str key, vkey;
    bool have = false;
    bool per_frag = req->nfrags > 1 && req->nkeys == req->watch_nkeys;

    evbuffer_ptr_set(req->rsp, &at, 0, EVBUFFER_PTR_SET);
    have = watch_next_value(req->rsp, &at, vline, sizeof(vline), &vkey);
    for (uint32_t i = 0; proto_next_key(&cur, end, &key); i++) {
        const struct frag *f = primary;
        const char *result = "miss";

        if (per_frag && req->key_frag[i] < req->nfrags) {
            f = &req->frags[req->key_frag[i]];
        }
        if (have && vkey.len == key.len &&
            memcmp(vkey.p, key.p, key.len) == 0) {
            /* The reply keeps the client's key order. */
            result = "hit";
            have = watch_next_value(req->rsp, &at, vline, sizeof(vline),
                                    &vkey);
        } else if (f != NULL && f->failed) {
            result = "error";
        }
        watch_put(req, mask, ts, &key, f, result, latency, events, dropped);
    }
}

void
watch_request_end(struct request *req)
{
    struct worker *w = req->worker;
    uint32_t mask = req->watch_mask;
    uint64_t now = worker_now_us(w);
    uint64_t latency = now > req->watch_start_us
                           ? now - req->watch_start_us
                           : 0;
    const struct frag *primary = watch_primary(req);
    const char *cmd = proto_cmd_name(req->watch_cmd);
    char head[WATCH_HEAD];
    char ts[40];
    ev_ssize_t hlen = evbuffer_copyout(req->rsp, head, sizeof(head));
    const char *result;
    uint64_t events = 0, dropped = 0;

    req->watch_mask = 0;
    if (hlen < 0) {
        hlen = 0;
    }
    watch_ts(ts, sizeof(ts));
    result = hlen > 0 ? watch_result(head, (size_t)hlen,
                                     proto_cmd_is_meta(req->watch_cmd), cmd)
                      : req->meta_quiet ? "quiet" : "none";
    if (proto_cmd_is_retrieval(req->watch_cmd) && req->watch_nkeys > 0 &&
        (strcmp(result, "hit") == 0 || strcmp(result, "miss") == 0 ||
         (strcmp(result, "none") == 0 && req->split))) {
        watch_retrieval(req, mask, ts, primary, latency, &events, &dropped);
    } else {
        const char *cur = req->watch_keys;
        const char *end = cur + req->watch_keyslen;
        struct proto_str key;
        bool any = req->watch_nkeys > 0 && proto_next_key(&cur, end, &key);

        if (primary != NULL && primary->kind == FRAG_RETRIEVAL &&
            primary->failed && strcmp(result, "server_error") != 0) {
            result = "error";
        }
        watch_put(req, mask, ts, any ? &key : NULL, primary, result, latency,
                  &events, &dropped);
        /* The other keys of a failed retrieval. */
        while (any && proto_next_key(&cur, end, &key)) {
            watch_put(req, mask, ts, &key, primary, result, latency, &events,
                      &dropped);
        }
    }
    if (req->watch_noreply) {
        req->watch_noreply = false;
        req->noreply = true;
        evbuffer_drain(req->rsp, evbuffer_get_length(req->rsp));
    }
    if (req->watch_keyscap > WATCH_KEEP_KEYS) {
        free(req->watch_keys);
        req->watch_keys = NULL;
        req->watch_keyscap = 0;
        req->watch_keyslen = 0;
    }
    stats_add(&w->stats.watch_events, events);
    stats_add(&w->stats.watch_dropped, dropped);
}

/* ---- the text protocol's watcher ------------------------------------------ */

/* Every WATCH_FLUSH_MS: what the rings hold, up to WATCH_OUTPUT_MAX
 * pending, once the replies before the watch (its OK too) are out. */
static void
watch_client_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    struct worker *w = c->worker;
    size_t pending, n;

    worker_tick(w);
    if (c->state != CLIENT_ACTIVE || c->watch == NULL ||
        !STAILQ_EMPTY(&c->queue)) {
        return;
    }
    pending = evbuffer_get_length(c->nc.out);
    if (pending >= WATCH_OUTPUT_MAX) {
        return;
    }
    n = watch_read(c->watch, c->nc.out, WATCH_OUTPUT_MAX - pending);
    if (n > 0) {
        stats_add(&w->stats.bytes_written, n);
        worker_want_flush_client(w, c);
    }
}

void
watch_client_start(struct client *c, const struct proto_req *pr)
{
    struct worker *w = c->worker;
    uint32_t every;
    struct timeval tv = {0, WATCH_FLUSH_MS * 1000};

    stats_add(&w->stats.commands[PROTO_CMD_WATCH], 1);
    if (watch_parse_args(pr->args.p, pr->args.len, &every) != 0) {
        stats_add(&w->stats.protocol_errors, 1);
        client_reply_line(c, "CLIENT_ERROR bad command line format", false);
        return;
    }
    c->watch = watch_open(w->group->watch, every);
    if (c->watch == NULL) {
        stats_add(&w->stats.server_errors, 1);
        net_log_limited(&c->nc, LOG_LEVEL_INFO, "watch refused: %d "
                        "watchers already", WATCH_MAX);
        client_reply_line(c, "SERVER_ERROR too many watchers", false);
        return;
    }
    c->ev_watch = event_new(w->base, -1, EV_PERSIST, watch_client_cb, c);
    if (c->ev_watch == NULL || event_add(c->ev_watch, &tv) != 0) {
        log_error("out of memory");
        abort();
    }
    /* Keys show in the stream: who watches is worth a notice. */
    net_log(&c->nc, LOG_LEVEL_NOTICE, "watching 1 in %u requests", every);
    client_reply_line(c, "OK", false);
}

void
watch_client_stop(struct client *c)
{
    if (c->watch == NULL) {
        return;
    }
    event_free(c->ev_watch);
    c->ev_watch = NULL;
    watch_close(c->watch);
    c->watch = NULL;
    net_log(&c->nc, LOG_LEVEL_NOTICE, "watch ended");
}
