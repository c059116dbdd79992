/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * health: see health.h.
 *
 * Invariants:
 *   - each backend has one hconn; its expectation queue lists, in order,
 *     the replies owed on that connection (probes, and the deletes and
 *     flushes of recovery passes, possibly for another backend), so reply
 *     i always belongs to expectation i.
 *   - at most one probe per backend is outstanding; its deadline is
 *     ev_timeout, and a missed deadline resets the connection (a late reply
 *     must never be taken for the next probe's).
 *   - a recovery pass owns the batch it took from the backend's log until
 *     every operation it sent is answered; if any failed, the batch goes
 *     back into the log and the backend stays out of the ring.
 */
#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "backend.h"
#include "config.h"
#include "dns.h"
#include "health.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "recovery.h"
#include "topology.h"
#include "tls.h"
#include "util.h"

enum hexpect_kind {
    HEXPECT_PROBE,
    HEXPECT_DELETE,
    HEXPECT_FLUSH,
};

struct hexpect {
    uint8_t kind;
    uint32_t owner;                 /* id of the backend whose recovery
                                       sent it ... */
    uint64_t serial;                /* ... and its hconn's serial, so that
                                       a reply for a backend removed since
                                       is ignored */
};

/* A DOWN backend's failed probes: one summary line this often. */
#define HEALTH_SUMMARY_NS (60ull * 1000000000u)

struct hconn {
    struct health *h;
    struct backend *be;             /* a reference; be->health is this */
    uint64_t serial;                /* unique per hconn */
    TAILQ_ENTRY(hconn) link;
    bool keep;                      /* scratch of health_apply() */
    struct dns_req *lookup;         /* of its host name, in flight */
    uint64_t next_lookup_ns;
    char lookup_err[128];           /* last failure, logged once */
    struct net_conn nc;             /* the check connection */
    bool connected;
    struct event *ev_tick;          /* next probe */
    struct event *ev_pass;          /* next recovery pass */
    struct event *ev_timeout;       /* outstanding probe's deadline */
    struct hexpect *q;              /* ring buffer of expected replies */
    size_t qhead, qlen, qcap;
    bool probe_out;
    bool probed;                    /* a first probe came back (or its name
                                       did not resolve) */
    /* While DOWN: failed probes since the last summary line, and when
     * that was (one a minute, not one a probe). */
    unsigned down_fails;
    uint64_t summary_ns;
    char last_reason[96];
    unsigned ok_run;
    unsigned fail_run;
    int seen_state;
    unsigned seed;
    /* Recovery of this backend. */
    bool pass_running;
    bool pass_failed;
    size_t pass_pending;
    unsigned passes;
    struct recovery_batch batch;
};

TAILQ_HEAD(hconn_list, hconn);

struct health {
    struct event_base *base;        /* the main thread's */
    const struct topology *topo;    /* current (the proxy's reference) */
    struct dns *dns;                /* owned */
    struct hconn_list all;
    struct hconn **by_id;           /* [nids], by backend id, or NULL */
    uint32_t nids;
    uint64_t next_serial;
    bool round_done;                /* every backend was probed once */
    bool *pool_over;                /* [npool_over], by pool index: over
                                       failover_limit when last looked */
    uint32_t npool_over;
};

static const struct config *
health_cfg(const struct health *h)
{
    return h->topo->cfg;
}

/* The health settings of hc's backend: its first pool's, else
 * [health]'s. */
static struct config_health
health_settings(const struct hconn *hc)
{
    struct config_health hs;

    config_backend_health(health_cfg(hc->h), hc->be->name, &hs);
    return hs;
}

static struct hconn *
health_by_id(const struct health *h, uint32_t id)
{
    return id < h->nids ? h->by_id[id] : NULL;
}

static void health_start_pass(struct hconn *hc);

/* Pause before another pass when the last one found nothing to delete. */
#define HEALTH_PASS_WAIT_US 1000

static void
health_pass_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *hc = arg;
    struct backend *be = hc->be;
    int state = atomic_load(&be->state);

    if (state == BACKEND_RECOVERING ||
        (state == BACKEND_UP && recovery_pending(be->recovery))) {
        health_start_pass(hc);
    }
}
static void health_probe_result(struct hconn *hc, bool ok,
                                const char *reason);

/* Says when one of the pools goes over [health] failover_limit, or back
 * within it (routes look at the states per key; this only tells). Called
 * after every change of a backend's state and every probe. */
static void
health_note_limits(struct health *h)
{
    const struct topology *t = h->topo;
    double limit = t->cfg->failover_limit;

    if (limit >= 1.0) {
        /* Off (the default): nothing to count on every probe. */
        if (h->npool_over > 0) {
            memset(h->pool_over, 0, h->npool_over * sizeof(*h->pool_over));
        }
        return;
    }
    if (h->npool_over < t->npools) {
        h->pool_over = util_xrealloc(h->pool_over, t->npools,
                                     sizeof(*h->pool_over));
        memset(h->pool_over + h->npool_over, 0,
               (t->npools - h->npool_over) * sizeof(*h->pool_over));
        h->npool_over = t->npools;
    }
    for (uint32_t i = 0; i < t->npools; i++) {
        const struct topology_pool *p = &t->pools[i];
        uint32_t down = topology_pool_down(p);
        bool over = topology_pool_over_limit(p, down, limit);

        if (over && !h->pool_over[i]) {
            log_warn("pool %s: %u of %u backends down, over failover_limit "
                     "%g: keys of down backends get errors instead of "
                     "failing over",
                     p->cfg->name, down, p->n, limit);
        } else if (!over && h->pool_over[i]) {
            log_notice("pool %s: %u of %u backends down, within "
                       "failover_limit %g: failing over again",
                       p->cfg->name, down, p->n, limit);
        }
        h->pool_over[i] = over;
    }
}

/* Moves hc's backend from `from` to `to`; false if it was not in `from`. */
static bool
health_transition(struct hconn *hc, int from, int to, const char *reason)
{
    if (!backend_set_state(hc->be, from, to, reason)) {
        return false;
    }
    health_note_limits(hc->h);
    return true;
}

/* ---- host names ---------------------------------------------------------- */

/* A name is looked up at most this often (unless forced). */
#define HEALTH_LOOKUP_EVERY_NS 1000000000u

static void health_tick_now(struct hconn *hc);
static void health_reset(struct hconn *hc, const char *reason);

/* Another backend with that address, or NULL. */
static struct hconn *
health_same_address(const struct hconn *hc, const struct sockaddr_storage *sa,
                    socklen_t salen)
{
    struct hconn *o;

    TAILQ_FOREACH(o, &hc->h->all, link) {
        struct sockaddr_storage osa;
        socklen_t olen;

        if (o != hc && backend_address(o->be, &osa, &olen) &&
            net_same_addr(sa, salen, &osa, olen)) {
            return o;
        }
    }
    return NULL;
}

static void
health_lookup_cb(int err, const char *reason,
                 const struct sockaddr_storage *sa, socklen_t salen, void *arg)
{
    struct hconn *hc = arg;
    struct backend *be = hc->be;
    struct hconn *dup = NULL;
    char why[128], text[96];

    hc->lookup = NULL;
    if (err == 0 && (dup = health_same_address(hc, sa, salen)) == NULL) {
        if (backend_set_address(be, sa, salen)) {
            log_notice("backend %s: %s resolves to %s", be->name, be->host,
                       net_addr_text(sa, salen, text, sizeof(text)));
            if (hc->nc.fd >= 0) {
                /* Probe the new address, without counting a failure. */
                hc->probe_out = false;
                health_reset(hc, "address changed");
                health_tick_now(hc);
            }
        }
        hc->lookup_err[0] = '\0';
        return;
    }
    if (dup != NULL) {
        snprintf(why, sizeof(why), "it resolves to the address of backend %s",
                 dup->be->name);
        reason = why;
    }
    if (strcmp(hc->lookup_err, reason) != 0) {
        struct sockaddr_storage old;
        socklen_t oldlen;

        snprintf(hc->lookup_err, sizeof(hc->lookup_err), "%s", reason);
        log_warn("backend %s (%s): cannot resolve '%s': %s; %s", be->name,
                 be->addr, be->host, reason,
                 backend_address(be, &old, &oldlen)
                     ? "keeping its last address"
                     : "routed around until it does");
    }
}

/* Looks the backend's host name up again (not more than once a second
 * unless forced); numeric hosts never. */
static void
health_lookup(struct hconn *hc, bool force)
{
    uint64_t now = util_now_ns();

    if (!hc->be->named || hc->lookup != NULL || hc->h->dns == NULL ||
        (!force && now < hc->next_lookup_ns)) {
        return;
    }
    hc->next_lookup_ns = now + HEALTH_LOOKUP_EVERY_NS;
    hc->lookup = dns_resolve(hc->h->dns, hc->be->host, hc->be->port,
                             health_lookup_cb, hc);
}

/* ---- the probe connection ------------------------------------------------ */

static void
health_expect(struct hconn *hc, enum hexpect_kind kind,
              const struct hconn *owner)
{
    if (hc->qlen == hc->qcap) {
        size_t ncap = hc->qcap ? hc->qcap * 2 : 16;
        struct hexpect *nq = util_xcalloc(ncap, sizeof(*nq));

        for (size_t i = 0; i < hc->qlen; i++) {
            nq[i] = hc->q[(hc->qhead + i) % hc->qcap];
        }
        free(hc->q);
        hc->q = nq;
        hc->qhead = 0;
        hc->qcap = ncap;
    }
    hc->q[(hc->qhead + hc->qlen) % hc->qcap] = (struct hexpect){
        .kind = (uint8_t)kind, .owner = owner->be->id,
        .serial = owner->serial};
    hc->qlen++;
}

static struct hexpect
health_pop(struct hconn *hc)
{
    struct hexpect e = hc->q[hc->qhead];

    hc->qhead = (hc->qhead + 1) % hc->qcap;
    hc->qlen--;
    return e;
}

/* One recovery operation of oc's backend is answered (or lost). */
static void
health_op_done(struct hconn *oc, bool ok)
{
    if (!ok) {
        oc->pass_failed = true;
    }
    if (oc->pass_pending > 0 && --oc->pass_pending == 0) {
        struct backend *be = oc->be;
        bool failed = oc->pass_failed;

        oc->pass_running = false;
        oc->pass_failed = false;
        if (failed) {
            log_warn("backend %s (%s): recovery pass failed, will retry",
                     be->name, be->addr);
            recovery_put_back(be->recovery, &oc->batch);
            return;
        }
        bool idle = oc->batch.n == 0 && !oc->batch.flush;

        log_info("backend %s (%s): recovery pass done (%zu keys%s)",
                 be->name, be->addr, oc->batch.n,
                 oc->batch.flush ? ", flushed" : "");
        recovery_done(be->recovery, &oc->batch);
        if (atomic_load(&be->state) == BACKEND_RECOVERING) {
            /* Writes may have kept going to the fallbacks during the pass:
             * the backend returns only once a pass leaves nothing behind,
             * checked under the log's lock so that none slips through. */
            if (recovery_close(be->recovery, &be->state, BACKEND_RECOVERING,
                               BACKEND_UP)) {
                struct timeval now = {0, 0};

                oc->passes = 0;
                backend_changed(be, BACKEND_RECOVERING, BACKEND_UP,
                                "recovered; stale keys removed");
                health_note_limits(oc->h);
                /* Fallback copies of writes made during RECOVERING (their
                 * owner copy is already gone): remove them now, not at
                 * the next probe, so that a new outage right after this
                 * one cannot serve them. */
                if (recovery_pending(be->recovery)) {
                    evtimer_add(oc->ev_pass, &now);
                }
            } else {
                /* From the loop, never from here (no recursion); after a
                 * pause if this pass had nothing to do and only writes in
                 * flight are waited for. */
                struct timeval tv = {0, idle ? HEALTH_PASS_WAIT_US : 0};

                if (++oc->passes >= 64 &&
                    (oc->passes & (oc->passes - 1)) == 0) {
                    log_warn("backend %s (%s): still cleaning up after %u "
                             "passes: writes keep coming", be->name,
                             be->addr, oc->passes);
                }
                evtimer_add(oc->ev_pass, &tv);
            }
        }
    }
}

/* A reply to a recovery operation, for its pass if that still exists. */
static void
health_expect_done(struct health *h, const struct hexpect *e, bool ok)
{
    struct hconn *oc = health_by_id(h, e->owner);

    if (oc != NULL && oc->serial == e->serial) {
        health_op_done(oc, ok);
    }
}

static void
health_reset(struct hconn *hc, const char *reason)
{
    bool probe = hc->probe_out;

    net_conn_close(&hc->nc);
    hc->connected = false;
    evtimer_del(hc->ev_timeout);
    hc->probe_out = false;
    while (hc->qlen > 0) {
        struct hexpect e = health_pop(hc);

        if (e.kind != HEXPECT_PROBE) {
            health_expect_done(hc->h, &e, false);
        }
    }
    if (probe) {
        health_probe_result(hc, false, reason);
    }
}

static void
health_write(struct hconn *hc)
{
    if (hc->connected && net_conn_write(&hc->nc) != 0) {
        health_reset(hc, errno == EPROTO ? tls_last_error() : strerror(errno));
    }
}

static void
health_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *hc = arg;
    ssize_t n = net_conn_read(&hc->nc);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        health_reset(hc, n == 0          ? "connection closed"
                         : errno == EPROTO ? tls_last_error()
                                           : strerror(errno));
        return;
    }
    for (;;) {
        size_t eollen = 0, len;
        struct evbuffer_ptr eol =
            evbuffer_search_eol(hc->nc.in, NULL, &eollen, EVBUFFER_EOL_CRLF);
        const char *line;
        struct hexpect e;
        enum proto_rsp kind;

        if (eol.pos < 0) {
            if (evbuffer_get_length(hc->nc.in) > 4096) {
                health_reset(hc, "reply line too long");
            }
            return;
        }
        if (hc->qlen == 0) {
            health_reset(hc, "reply nobody asked for");
            return;
        }
        len = (size_t)eol.pos;
        line = (const char *)evbuffer_pullup(hc->nc.in,
                                             (ev_ssize_t)(len + eollen));
        kind = proto_classify_response(line, len);
        evbuffer_drain(hc->nc.in, len + eollen);
        e = health_pop(hc);
        switch (e.kind) {
        case HEXPECT_PROBE:
            hc->probe_out = false;
            evtimer_del(hc->ev_timeout);
            health_probe_result(hc, kind == PROTO_RSP_VERSION,
                                "bad reply to version");
            break;
        case HEXPECT_DELETE:
            health_expect_done(hc->h, &e,
                               kind == PROTO_RSP_DELETED ||
                                   kind == PROTO_RSP_NOT_FOUND);
            break;
        case HEXPECT_FLUSH:
            health_expect_done(hc->h, &e, kind == PROTO_RSP_OK);
            break;
        }
        if (hc->nc.fd < 0) {
            return;
        }
    }
}

static void
health_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *hc = arg;

    if (!hc->connected) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            health_reset(hc, strerror(err));
            return;
        }
        if (hc->be->tls) {
            struct ssl_st *ssl = tls_client_new(fd, hc->be->host);

            if (ssl == NULL) {
                health_reset(hc, "cannot start TLS");
                return;
            }
            net_conn_tls(&hc->nc, ssl);
        }
        hc->connected = true;
        net_conn_reading(&hc->nc, true);
    }
    health_write(hc);
}

static int
health_connect(struct hconn *hc)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    int fd;

    if (!backend_address(hc->be, &sa, &salen)) {
        errno = EDESTADDRREQ;
        return -1;
    }
    fd = util_connect_nonblock(&sa, salen);
    if (fd < 0) {
        return -1;
    }
    if (net_conn_attach(&hc->nc, hc->h->base, fd, health_read_cb,
                        health_write_cb, hc) != 0) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    /* Completion (or failure) shows as writability. */
    net_conn_writing(&hc->nc, true);
    return 0;
}

/* ---- probes and the state machine ---------------------------------------- */

static void
health_probe_result(struct hconn *hc, bool ok, const char *reason)
{
    struct backend *be = hc->be;
    const struct config_health hs = health_settings(hc);
    int state = atomic_load(&be->state);
    uint64_t soft = atomic_exchange(&be->soft_failures, 0);
    char why[160];

    hc->probed = true;
    /* Changes made elsewhere (maintenance, a connection lost) too. */
    health_note_limits(hc->h);
    atomic_fetch_add(&be->checks, 1);
    if (!ok) {
        atomic_fetch_add(&be->check_failures, 1);
    }
    if (state != BACKEND_DOWN) {
        hc->summary_ns = util_now_ns();
        hc->down_fails = 0;
    } else if (util_now_ns() - hc->summary_ns >= HEALTH_SUMMARY_NS) {
        if (hc->down_fails > 0) {
            log_notice("backend %s (%s): still DOWN: %u failed checks in "
                       "the last minute, last: %s",
                       be->name, be->addr, hc->down_fails, hc->last_reason);
        }
        hc->summary_ns = util_now_ns();
        hc->down_fails = 0;
    }

    if (state != hc->seen_state) {
        /* A worker moved it: count afresh from here. */
        hc->ok_run = 0;
        hc->fail_run = 0;
        hc->seen_state = state;
    }
    if (ok && soft == 0) {
        hc->ok_run++;
        hc->fail_run = 0;
    } else {
        hc->ok_run = 0;
        hc->fail_run += (ok ? 0u : 1u) + (unsigned)soft;
        if (ok) {
            reason = "requests timed out";
        }
        if (state == BACKEND_DOWN) {
            hc->down_fails++;
            snprintf(hc->last_reason, sizeof(hc->last_reason), "%s", reason);
        } else {
            log_debug("backend %s (%s): probe failed (%s), %u in a row",
                      be->name, be->addr, reason, hc->fail_run);
        }
        /* Its connections fail: maybe its name points elsewhere now. */
        health_lookup(hc, false);
    }
    switch (state) {
    case BACKEND_UP:
        if (hc->fail_run >= hs.fall) {
            snprintf(why, sizeof(why), "%u failed checks, last: %s",
                     hc->fail_run, reason);
            health_transition(hc, BACKEND_UP, BACKEND_DOWN, why);
        } else if (ok && !hc->pass_running &&
                   recovery_pending(be->recovery)) {
            /* Keys written to fallbacks by requests that were routed just
             * before the backend came back. */
            health_start_pass(hc);
        }
        break;
    case BACKEND_DOWN:
        if (hc->ok_run >= hs.rise &&
            health_transition(hc, BACKEND_DOWN, BACKEND_RECOVERING,
                              "passed health checks")) {
            hc->passes = 0;
            health_start_pass(hc);
        }
        break;
    case BACKEND_NEW:
        /* Added while running: one good check is enough to start (its
         * keys are still served where they were until then). */
        if (ok && soft == 0 &&
            health_transition(hc, BACKEND_NEW, BACKEND_RECOVERING,
                              "added; first check passed")) {
            hc->passes = 0;
            health_start_pass(hc);
        } else if (hc->fail_run >= hs.fall) {
            snprintf(why, sizeof(why), "added; %u failed checks, last: %s",
                     hc->fail_run, reason);
            health_transition(hc, BACKEND_NEW, BACKEND_DOWN, why);
        }
        break;
    case BACKEND_MAINT:
        /* Out by hand: checks go on, they change nothing. */
        break;
    case BACKEND_RECOVERING:
        if (!ok || soft > 0) {
            health_transition(hc, BACKEND_RECOVERING, BACKEND_DOWN, reason);
        } else if (!hc->pass_running) {
            health_start_pass(hc);
        }
        break;
    }
    hc->seen_state = atomic_load(&be->state);
}

static void
health_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *hc = arg;
    struct timeval now = {0, 0};

    health_reset(hc, "check timed out");
    /* Confirm a failure at once rather than an interval later, so a hung
     * backend is routed around after about fall * timeout_ms. */
    if (hc->fail_run > 0 && backend_is_up(hc->be)) {
        evtimer_add(hc->ev_tick, &now);
    }
}

static void
health_arm_tick(struct hconn *hc)
{
    unsigned ms = health_settings(hc).interval_ms;
    /* +-10% jitter, so that probes of many proxies do not align. */
    unsigned jitter = ms / 5 ? (unsigned)rand_r(&hc->seed) % (ms / 5) : 0;
    uint64_t us = (uint64_t)(ms - ms / 10 + jitter) * 1000u;
    struct timeval tv = {(time_t)(us / 1000000u),
                         (suseconds_t)(us % 1000000u)};

    evtimer_add(hc->ev_tick, &tv);
}

/* The next probe now rather than an interval from now. */
static void
health_tick_now(struct hconn *hc)
{
    struct timeval now = {0, 0};

    evtimer_add(hc->ev_tick, &now);
}

static void
health_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *hc = arg;
    unsigned ms = health_settings(hc).timeout_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

    health_arm_tick(hc);
    if (hc->probe_out) {
        return;
    }
    if (hc->nc.fd < 0 && health_connect(hc) != 0) {
        int err = errno;
        const char *why = err == EDESTADDRREQ ? "host name not resolved"
                                              : strerror(err);

        health_reset(hc, why);
        health_probe_result(hc, false, why);
        return;
    }
    evbuffer_add(hc->nc.out, "version\r\n", 9);
    health_expect(hc, HEXPECT_PROBE, hc);
    hc->probe_out = true;
    evtimer_add(hc->ev_timeout, &tv);
    health_write(hc);
}

/* ---- recovery ------------------------------------------------------------ */

static void
health_send_op(struct hconn *on, enum hexpect_kind kind, struct hconn *owner,
               const char *key, size_t len)
{
    if (kind == HEXPECT_FLUSH) {
        evbuffer_add(on->nc.out, "flush_all\r\n", 11);
    } else {
        evbuffer_add(on->nc.out, "delete ", 7);
        evbuffer_add(on->nc.out, key, len);
        evbuffer_add(on->nc.out, "\r\n", 2);
    }
    health_expect(on, kind, owner);
    owner->pass_pending++;
}

/*
 * Takes the backend's log and sends its deletes (or a flush) to the
 * backend and the deletes to the fallbacks that served those keys.
 */
static void
health_start_pass(struct hconn *hc)
{
    struct health *h = hc->h;
    struct backend *be = hc->be;
    struct recovery_batch *b = &hc->batch;
    struct hconn *c;

    if (hc->pass_running) {
        return;
    }
    recovery_take(be->recovery, b);
    hc->pass_running = true;
    hc->pass_failed = false;
    hc->pass_pending = 1; /* held while sending */
    if (b->flush) {
        health_send_op(hc, HEXPECT_FLUSH, hc, NULL, 0);
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct recovery_entry *e = &b->entries[i];
        struct hconn *fc = health_by_id(h, e->fallback);

        if (!b->flush && e->dirty) {
            health_send_op(hc, HEXPECT_DELETE, hc, recovery_key(b, i),
                           e->len);
        }
        if (fc == NULL) {
            /* The fallback was removed: out of the ring, nothing of it
             * can be read any more. */
            continue;
        }
        if (fc->connected && backend_is_up(fc->be)) {
            health_send_op(fc, HEXPECT_DELETE, hc, recovery_key(b, i),
                           e->len);
        } else if (fc != hc) {
            /* The fallback is down itself: hand the key to its own
             * recovery, which deletes it there before it serves again. */
            recovery_note(fc->be->recovery, recovery_key(b, i), e->len,
                          e->fallback);
        }
    }
    TAILQ_FOREACH(c, &h->all, link) {
        health_write(c);
    }
    health_op_done(hc, hc->nc.fd >= 0);
}

/* ---- life cycle ---------------------------------------------------------- */

static void
health_hconn_destroy(struct hconn *hc)
{
    struct health *h = hc->h;

    /* Its queued replies are owed to passes (possibly its own): fail
     * them first, while it is still findable. */
    hc->probe_out = false;
    if (hc->ev_timeout != NULL) {
        health_reset(hc, "removed");
    }
    if (hc->lookup != NULL) {
        dns_cancel(hc->lookup);
        hc->lookup = NULL;
    }
    h->by_id[hc->be->id] = NULL;
    TAILQ_REMOVE(&h->all, hc, link);
    if (hc->ev_tick != NULL) {
        event_free(hc->ev_tick);
    }
    if (hc->ev_timeout != NULL) {
        event_free(hc->ev_timeout);
    }
    if (hc->ev_pass != NULL) {
        event_free(hc->ev_pass);
    }
    net_conn_deinit(&hc->nc);
    free(hc->q);
    /* Whatever its pass had not deleted yet goes back to the log: moot if
     * the backend is gone, kept by the delete spool if mcring stops. */
    recovery_put_back(hc->be->recovery, &hc->batch);
    hc->be->health = NULL;
    backend_unref(hc->be);
    free(hc);
}

static struct hconn *
health_hconn_create(struct health *h, struct backend *be)
{
    struct hconn *hc = util_xcalloc(1, sizeof(*hc));

    hc->h = h;
    hc->be = backend_ref(be);
    hc->serial = ++h->next_serial;
    if (net_conn_init(&hc->nc) != 0) {
        log_error("out of memory");
        abort();
    }
    snprintf(hc->nc.name, sizeof(hc->nc.name), "backend %.64s (%.43s): check",
             be->name, be->addr);
    hc->seen_state = backend_state(be);
    hc->seed = (unsigned)(be->id * 2654435761u) ^ (unsigned)getpid() ^
               (unsigned)hc->serial;
    hc->ev_tick = evtimer_new(h->base, health_tick_cb, hc);
    hc->ev_timeout = evtimer_new(h->base, health_timeout_cb, hc);
    hc->ev_pass = evtimer_new(h->base, health_pass_cb, hc);
    if (be->id >= h->nids) {
        uint32_t n = be->id + 16;

        h->by_id = realloc(h->by_id, n * sizeof(*h->by_id));
        if (h->by_id == NULL) {
            log_error("out of memory");
            abort();
        }
        memset(h->by_id + h->nids, 0, (n - h->nids) * sizeof(*h->by_id));
        h->nids = n;
    }
    h->by_id[be->id] = hc;
    be->health = hc;
    TAILQ_INSERT_TAIL(&h->all, hc, link);
    if (hc->ev_tick == NULL || hc->ev_timeout == NULL || hc->ev_pass == NULL) {
        health_hconn_destroy(hc);
        return NULL;
    }
    return hc;
}

void
health_apply(struct health *h, const struct topology *t)
{
    struct hconn *hc, *next;

    h->topo = t;
    TAILQ_FOREACH(hc, &h->all, link) {
        hc->keep = false;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        struct backend *be = t->backends[i];

        if (be->health != NULL) {
            hc = be->health;
            hc->keep = true;
            /* A reload looks every name up again. */
            health_lookup(hc, true);
            continue;
        }
        hc = health_hconn_create(h, be);
        if (hc == NULL) {
            log_error("health: out of memory");
            abort();
        }
        hc->keep = true;
        health_lookup(hc, true);
        if (backend_state(be) == BACKEND_NEW ||
            backend_state(be) == BACKEND_RECOVERING) {
            /* Check it now: it gets keys once that check passes (and,
             * RECOVERING at start with keys of the delete spool, once
             * they are deleted). */
            health_tick_now(hc);
        } else {
            health_arm_tick(hc);
        }
    }
    for (hc = TAILQ_FIRST(&h->all); hc != NULL; hc = next) {
        next = TAILQ_NEXT(hc, link);
        if (!hc->keep) {
            health_hconn_destroy(hc);
        }
    }
}

void
health_activate(struct health *h, struct backend *be)
{
    struct hconn *hc = be->health;

    if (hc != NULL && backend_set_state(be, BACKEND_MAINT,
                                        BACKEND_RECOVERING,
                                        "activated by the operator")) {
        hc->passes = 0;
        hc->ok_run = 0;
        hc->fail_run = 0;
        hc->seen_state = BACKEND_RECOVERING;
        health_start_pass(hc);
    }
}

struct health *
health_create(struct event_base *base, const struct topology *t, char *err,
              size_t errlen)
{
    struct health *h = util_xcalloc(1, sizeof(*h));

    h->base = base;
    TAILQ_INIT(&h->all);
    h->dns = dns_create(base, err, errlen);
    if (h->dns == NULL) {
        free(h);
        return NULL;
    }
    health_apply(h, t);
    return h;
}

void
health_reload_names(struct health *h)
{
    dns_reload(h->dns);
}

void
health_wait_names(struct health *h, unsigned ms)
{
    uint64_t deadline = util_now_ns() + (uint64_t)ms * 1000000u;
    struct hconn *hc;

    for (;;) {
        bool pending = false;

        TAILQ_FOREACH(hc, &h->all, link) {
            pending |= hc->lookup != NULL;
        }
        if (!pending || util_now_ns() >= deadline) {
            break;
        }
        event_base_loop(h->base, EVLOOP_ONCE);
    }
    TAILQ_FOREACH(hc, &h->all, link) {
        struct sockaddr_storage sa;
        socklen_t salen;
        char why[200];

        if (backend_address(hc->be, &sa, &salen)) {
            continue;
        }
        snprintf(why, sizeof(why), "'%s' does not resolve%s%s; retrying",
                 hc->be->host, hc->lookup_err[0] ? ": " : " yet",
                 hc->lookup_err);
        backend_set_state(hc->be, backend_state(hc->be), BACKEND_DOWN, why);
        hc->probed = true;
    }
}

bool
health_round_done(struct health *h)
{
    struct hconn *hc;

    if (!h->round_done) {
        TAILQ_FOREACH(hc, &h->all, link) {
            if (!hc->probed && backend_state(hc->be) != BACKEND_MAINT) {
                return false;
            }
        }
        h->round_done = true;
    }
    return true;
}

void
health_destroy(struct health *h)
{
    struct hconn *hc;

    if (h == NULL) {
        return;
    }
    while ((hc = TAILQ_FIRST(&h->all)) != NULL) {
        health_hconn_destroy(hc);
    }
    dns_destroy(h->dns);
    free(h->by_id);
    free(h->pool_over);
    free(h);
}
