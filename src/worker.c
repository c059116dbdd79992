/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * worker: a thread running its own event_base.
 *
 * Other threads write struct worker_msg to the worker's inbox pipe; a
 * write of one message is atomic (it is far below PIPE_BUF), so no lock
 * is needed. Messages: an accepted client socket, a new topology (adopted
 * right away, i.e. within this loop turn), a backend that went DOWN, a
 * watcher to feed or to stop feeding (watch.h), STOP.
 * On STOP the worker stops reading from its clients, lets every request in
 * flight finish, closes each client once its replies are out, and leaves
 * its loop when no client is left or the drain timer fires.
 *
 * Topology adoption: every backend of the new snapshot gets its
 * worker_backend (new ones connect at once); those no longer in it retire:
 * their requests in flight finish, then ev_retire closes their
 * connections. The old snapshot is let go when its last request is done.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <xxhash.h>

#include "bconn.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "park.h"
#include "request.h"
#include "topology.h"
#include "util.h"
#include "iobatch.h"
#include "worker.h"

/* How long a stopping worker waits for requests in flight. */
#define WORKER_DRAIN_SECONDS 5
/* How often retired backends are checked for an empty queue. */
#define WORKER_RETIRE_MS 50

/*
 * Once a second: clients idle for longer than client_idle_timeout go, and
 * memory freed since (clients gone, big values sent) goes back to the
 * system: the worker's free lists when it has no client left (else what
 * they did not need in the last second), the heap's free memory when
 * there is much of it.
 */
static void
worker_idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t timeout = (uint64_t)w->cfg->client_idle_timeout * 1000000u;
    struct client *c, *next;
    uint64_t now;

    worker_tick(w);
    now = worker_now_us(w);
    if (!w->stopping) {
        /* Clients with nothing read for a second, and nothing owed, are
         * parked: their buffers and events go. */
        for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
            next = TAILQ_NEXT(c, link);
            if (timeout > 0) {
                client_close_if_idle(c, now, timeout);
            }
            if (c->touched) {
                c->touched = false;
            } else {
                (void)client_park(c);
            }
        }
        if (timeout > 0 && now > timeout) {
            struct park_slot gone[64];
            unsigned n;

            do {
                n = park_take_idle(&w->park, now - timeout, gone, 64);
                for (unsigned i = 0; i < n; i++) {
                    stats_add(&w->stats.idle_kicks, 1);
                    client_close_parked(w, &gone[i]);
                }
            } while (n == 64);
        }
    }
    if (TAILQ_EMPTY(&w->clients)) {
        mem_thread_release();
    } else {
        mem_thread_trim();
    }
    (void)mem_trim();
}

/* Parked sockets that became readable are clients again. */
static void
worker_park_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct park_slot ready[64];
    unsigned n;

    worker_tick(w);
    do {
        n = park_take_ready(&w->park, ready, 64);
        for (unsigned i = 0; i < n; i++) {
            client_revive(w, &ready[i]);
        }
    } while (n == 64);
}

/* Closes every parked socket (stopping). */
static void
worker_close_parked(struct worker *w)
{
    struct park_slot all[64];
    unsigned n;

    do {
        n = park_take_all(&w->park, all, 64);
        for (unsigned i = 0; i < n; i++) {
            client_close_parked(w, &all[i]);
        }
    } while (n == 64);
}

/* How often clients paused on max_memory look whether they may go on. */
#define WORKER_MEMORY_MS 10

/* The other workers' clients' share of client_memory, as read now. */
static void
worker_memory_look(struct worker *w)
{
    const struct worker_group *g = w->group;
    uint64_t sum = 0;

    for (unsigned i = 0; i < g->n; i++) {
        if (g->workers[i] != NULL && g->workers[i] != w) {
            sum += stats_get(&g->workers[i]->stats.client_memory);
        }
    }
    w->mem_others = sum;
}

bool
worker_memory_over(struct worker *w)
{
    size_t max = w->cfg->max_memory;
    uint64_t sum = w->mem_others + stats_get(&w->stats.client_memory);

    if (max == 0) {
        return false;
    }
    w->mem_over = sum > (w->mem_over ? max - max / 8 : max);
    return w->mem_over;
}

static void
worker_memory_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    worker_tick(w);
    worker_memory_look(w);
    if (!worker_memory_over(w)) {
        client_memory_resume(w);
    }
}

void
worker_memory_wait(struct worker *w, int delta)
{
    w->mem_waiters += (uint32_t)delta;
    if (w->mem_waiters == 0) {
        event_del(w->ev_mem);
    } else if (!event_pending(w->ev_mem, EV_TIMEOUT, NULL)) {
        event_add(w->ev_mem,
                  &(struct timeval){0, WORKER_MEMORY_MS * 1000});
    }
}

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

void
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

    /* Clients first, backends last: a backend's memcached, woken by the
     * write, may preempt this thread on a shared core, and should find the
     * turn's work done. A backend write may fail and reset a connection,
     * which may complete requests and queue clients again, so pop one at
     * a time and look at the clients once more. */
    if (w->iobatch != NULL) {
        /* The turn's writes in one system call; what a socket does not
         * take is left for the writes below. */
        TAILQ_FOREACH(c, &w->flush_clients, flush_link) {
            if (c->state != CLIENT_CLOSED) {
                iobatch_add(w->iobatch, &c->nc);
            }
        }
        TAILQ_FOREACH(bc, &w->flush_bconns, flush_link) {
            if (bc->state == BCONN_CONNECTED) {
                bconn_seal(bc);
                iobatch_add(w->iobatch, &bc->nc);
            }
        }
        iobatch_submit(w->iobatch);
    }
    do {
        while ((c = TAILQ_FIRST(&w->flush_clients)) != NULL) {
            worker_cancel_flush_client(w, c);
            client_write(c);
        }
        while ((bc = TAILQ_FIRST(&w->flush_bconns)) != NULL) {
            worker_cancel_flush_bconn(w, bc);
            bconn_flush(bc);
        }
    } while (!TAILQ_EMPTY(&w->flush_clients));
}

static void
worker_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    if (w->iobatch != NULL) {
        /* The turn's reads first; what they queue is written below (a
         * flush is still scheduled: this one). */
        iobatch_read_submit(w->iobatch);
    }
    w->flush_scheduled = false;
    worker_flush(w);
    /* The turn is over: the next one reads the clock again, and sees
     * what the other workers' clients are owed as of now. */
    worker_tick(w);
    if (w->cfg->max_memory > 0) {
        worker_memory_look(w);
    }
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
    worker_close_parked(w);
    for (c = TAILQ_FIRST(&w->clients); c != NULL; c = next) {
        next = TAILQ_NEXT(c, link);
        client_drain(c);
    }
    worker_check_drained(w);
}

static void
worker_backend_down(struct worker *w, struct backend *be)
{
    struct worker_backend *wb = be->id < w->nwb ? w->wb[be->id] : NULL;

    if (wb != NULL && wb->be == be) {
        for (unsigned i = 0; i < w->per_backend; i++) {
            bconn_fail(wb->conns[i], "SERVER_ERROR backend down");
        }
    }
    backend_unref(be);
}

static struct worker_backend *
worker_backend_create(struct worker *w, struct backend *be)
{
    struct worker_backend *wb = util_xcalloc(1, sizeof(*wb));

    wb->be = backend_ref(be);
    wb->stats = backend_stats(be, w->id);
    wb->frag_of[0] = wb->frag_of[1] = RING_NONE;
    wb->conns = util_xcalloc(w->per_backend, sizeof(*wb->conns));
    for (unsigned i = 0; i < w->per_backend; i++) {
        wb->conns[i] = bconn_create(w, wb);
        if (wb->conns[i] == NULL) {
            log_error("out of memory");
            abort();
        }
    }
    return wb;
}

static void
worker_backend_destroy(struct worker *w, struct worker_backend *wb)
{
    for (unsigned i = 0; i < w->per_backend; i++) {
        bconn_destroy(wb->conns[i]);
    }
    free(wb->conns);
    backend_unref(wb->be);
    free(wb);
}

static bool
worker_backend_idle(const struct worker *w, const struct worker_backend *wb)
{
    for (unsigned i = 0; i < w->per_backend; i++) {
        if (wb->conns[i]->nqueued > 0) {
            return false;
        }
    }
    return true;
}

/* Frees the retired backends with nothing in flight; re-arms itself while
 * some are left. */
static void
worker_retire(struct worker *w)
{
    struct timeval tv = {0, WORKER_RETIRE_MS * 1000};

    for (uint32_t id = 0; id < w->nwb && w->nretiring > 0; id++) {
        struct worker_backend *wb = w->wb[id];

        if (wb != NULL && wb->retiring && worker_backend_idle(w, wb)) {
            log_debug("worker %u: backend %s retired", w->id, wb->be->name);
            w->wb[id] = NULL;
            w->nretiring--;
            worker_backend_destroy(w, wb);
        }
    }
    if (w->nretiring > 0) {
        evtimer_add(w->ev_retire, &tv);
    }
}

static void
worker_retire_cb(evutil_socket_t fd, short what, void *arg)
{
    worker_retire(arg);
}

/* The sampled key of hash is hot (or not) in the hot-key window begun at
 * window: kept in (or dropped from) the spread set, which each window
 * starts afresh. */
static void
worker_spread_update(struct worker *w, uint64_t hash, uint64_t window,
                     bool hot)
{
    if (window != w->spread_window) {
        w->spread_window = window;
        w->nspread = 0;
    }
    for (uint32_t i = 0; i < w->nspread; i++) {
        if (w->spread[i] == hash) {
            if (!hot) {
                w->spread[i] = w->spread[--w->nspread];
            }
            return;
        }
    }
    if (!hot) {
        return;
    }
    if (w->nspread < WORKER_SPREAD_KEYS) {
        w->spread[w->nspread++] = hash;
    } else {
        w->spread[w->spread_next++ % WORKER_SPREAD_KEYS] = hash;
    }
}

void
worker_hot_sample(struct worker *w, const char *key, size_t len,
                  const struct backend *owner)
{
    unsigned every = w->cfg->hotkey_sample;
    uint64_t x = w->hot_rng;
    uint64_t hash, certain, samples, window;

    /* The next sample in 1 .. 2 * every - 1 keys: one in every, on
     * average, at no fixed stride. */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->hot_rng = x;
    if (w->hot.k == 0) {
        w->hot_countdown = UINT32_MAX; /* off: look again in a while */
        return;
    }
    w->hot_countdown = every <= 1 ? 1 : 1 + (uint32_t)(x % (2u * every - 1));
    hash = XXH3_64bits(key, len);
    pthread_mutex_lock(&w->hot_lock);
    certain = hotkeys_add(&w->hot, key, len, hash, owner->id,
                          worker_now_us(w) / 1000000u + 1);
    samples = w->hot.w[w->hot.cur].samples;
    window = w->hot.w[w->hot.cur].start_s;
    pthread_mutex_unlock(&w->hot_lock);
    worker_spread_update(w, hash, window,
                         certain >= WORKER_SPREAD_MIN &&
                             certain * 100 >= samples * WORKER_SPREAD_PCT);
}

uint64_t
worker_clock_us(struct worker *w)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    w->now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    return w->now_us;
}

void
worker_topo_free(struct worker_topo *wt)
{
    topology_unref(wt->t);
    free(wt);
}

/*
 * Makes t (whose reference is taken) the worker's current topology. New
 * backends get their connections, started now unless connect is false
 * (before the thread runs); missing ones retire.
 */
static void
worker_adopt(struct worker *w, struct topology *t, bool connect)
{
    struct worker_topo *old = w->topo;
    struct worker_topo *wt = util_xcalloc(1, sizeof(*wt));
    uint32_t nretiring = 0;

    wt->t = t;
    if (t->id_limit > w->nwb) {
        w->wb = realloc(w->wb, t->id_limit * sizeof(*w->wb));
        if (w->wb == NULL) {
            log_error("out of memory");
            abort();
        }
        memset(w->wb + w->nwb, 0, (t->id_limit - w->nwb) * sizeof(*w->wb));
        w->nwb = t->id_limit;
    }
    for (uint32_t id = 0; id < w->nwb; id++) {
        if (w->wb[id] != NULL) {
            w->wb[id]->retiring = true;
        }
    }
    for (uint32_t i = 0; i < t->n; i++) {
        struct backend *be = t->backends[i];
        struct worker_backend *wb = w->wb[be->id];

        if (wb == NULL) {
            wb = w->wb[be->id] = worker_backend_create(w, be);
            if (connect) {
                for (unsigned c = 0; c < w->per_backend; c++) {
                    bconn_connect(wb->conns[c]);
                }
            }
        }
        wb->retiring = false;
    }
    for (uint32_t id = 0; id < w->nwb; id++) {
        nretiring += w->wb[id] != NULL && w->wb[id]->retiring;
    }
    w->nretiring = nretiring;
    w->topo = wt;
    w->cfg = t->cfg;
    w->adopted = t->generation;
    /* Values read through the old topology may not be the new owners'. */
    l1_invalidate_all(&w->l1);
    w->l1.max_bytes = t->cfg->l1 / (w->group->n ? w->group->n
                                                       : 1);
    w->l1.ttl_us = (uint64_t)t->cfg->l1_ttl * 1000u;
    atomic_store_explicit(&w->stats.l1_bytes, 0, memory_order_relaxed);
    if (t->cfg->hotkeys != w->hot.k) {
        pthread_mutex_lock(&w->hot_lock);
        hotkeys_free(&w->hot);
        if (t->cfg->hotkeys > 0) {
            hotkeys_init(&w->hot, t->cfg->hotkeys,
                         worker_now_us(w) / 1000000u + 1);
        }
        pthread_mutex_unlock(&w->hot_lock);
        w->hot_countdown = 1;
    }
    if (old != NULL && old->users == 0) {
        worker_topo_free(old);
    }
    if (nretiring > 0) {
        worker_retire(w);
    }
    if (connect) {
        log_info("worker %u: topology %llu in use, %.0f us after it was "
                 "published", w->id, (unsigned long long)t->generation,
                 (double)(util_now_ns() -
                          atomic_load(&w->group->published_ns)) / 1000.0);
    }
}

static void
worker_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct worker_msg msgs[32];

    for (;;) {
        ssize_t n = read(fd, msgs, sizeof(msgs));

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
            struct worker_msg *m = &msgs[i];

            switch (m->type) {
            case WORKER_MSG_STOP:
                worker_begin_stop(w);
                break;
            case WORKER_MSG_TOPOLOGY:
                worker_adopt(w, m->ptr, !w->stopping);
                break;
            case WORKER_MSG_BACKEND_DOWN:
                worker_backend_down(w, m->ptr);
                break;
            case WORKER_MSG_WATCH:
                watch_tap_add(&w->watch, m->ptr);
                break;
            case WORKER_MSG_UNWATCH:
                watch_tap_remove(&w->watch, m->ptr);
                break;
            case WORKER_MSG_CLIENT:
            case WORKER_MSG_CLIENT_TLS:
                if (w->stopping) {
                    close(m->fd);
                    atomic_fetch_sub(&w->group->nclients, 1);
                } else {
                    client_accept(w, m->fd,
                                  m->type == WORKER_MSG_CLIENT_TLS);
                }
                break;
            }
        }
    }
}

void
worker_group_sum_stats(const struct worker_group *g, struct stats_worker *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < g->n; i++) {
        stats_accumulate(sum, &g->workers[i]->stats, stats_client_defs,
                         stats_nclient_defs);
        for (unsigned c = 0; c < STATS_COMMANDS; c++) {
            stats_add(&sum->commands[c],
                      stats_get(&g->workers[i]->stats.commands[c]));
        }
        for (unsigned c = 0; c < STATS_POOLS; c++) {
            stats_add(&sum->pool_keys[c],
                      stats_get(&g->workers[i]->stats.pool_keys[c]));
        }
    }
}

struct worker_hotkey *
worker_group_hotkeys(const struct worker_group *g, const struct topology *t,
                     struct hotkeys_merged *m, uint32_t *n)
{
    struct timespec ts;
    uint64_t now_s;
    struct worker_hotkey *out;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_s = (uint64_t)ts.tv_sec + 1; /* as worker_hot_sample() counts */
    memset(m, 0, sizeof(*m));
    for (unsigned i = 0; i < g->n; i++) {
        struct worker *w = g->workers[i];

        pthread_mutex_lock(&w->hot_lock);
        if (w->hot.k > 0) {
            hotkeys_merge(m, &w->hot, now_s);
        }
        pthread_mutex_unlock(&w->hot_lock);
    }
    hotkeys_top(m, t->cfg->hotkeys);
    out = util_xcalloc(m->n ? m->n : 1, sizeof(*out));
    for (uint32_t i = 0; i < m->n; i++) {
        const struct hotkeys_entry *e = &m->e[i];
        uint32_t idx = topology_index_of(t, e->backend);
        uint64_t of = e->backend < m->nbackends ? m->per_backend[e->backend]
                                                : 0;

        /* Samples it certainly had: a counter taken over from another key
         * carries that key's count as its error. */
        uint64_t sure = e->count - e->error;

        out[i].key = e->key;
        out[i].len = e->len;
        out[i].rate = (double)sure * t->cfg->hotkey_sample /
                      (m->seconds > 1 ? m->seconds : 1);
        out[i].share = of > 0 ? (double)sure / (double)of : 0;
        out[i].owner = idx == UINT32_MAX ? NULL : t->backends[idx];
    }
    *n = m->n;
    return out;
}

struct worker *
worker_create(struct worker_group *g, unsigned id, struct topology *t,
              char *err, size_t errlen)
{
    struct worker *w = util_xcalloc(1, sizeof(*w));
    struct event_config *ec = event_config_new();
    int fds[2];

    w->group = g;
    w->id = id;
    w->inbox_rd = w->inbox_wr = -1;
    w->park.epfd = -1;
    w->per_backend = g->per_backend;
    w->pool_tat = g->pool_tat;
    w->client_rates = g->client_rates;
    pthread_mutex_init(&w->hot_lock, NULL);
    w->hot_rng = 0x9e3779b97f4a7c15ull * (id + 1);
    w->hot_countdown = 1;
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
    w->inbox_rd = fds[0];
    w->inbox_wr = fds[1];
    /* Senders' writes must block rather than fail. */
    fcntl(w->inbox_wr, F_SETFL, 0);
    w->ev_inbox = event_new(w->base, w->inbox_rd, EV_READ | EV_PERSIST,
                            worker_inbox_cb, w);
    w->ev_retire = evtimer_new(w->base, worker_retire_cb, w);
    w->ev_idle = event_new(w->base, -1, EV_PERSIST, worker_idle_cb, w);
    w->ev_mem = event_new(w->base, -1, EV_PERSIST, worker_memory_cb, w);
    w->ev_reap = event_new(w->base, -1, 0, worker_reap_cb, w);
    w->ev_drain_timer = evtimer_new(w->base, worker_drain_timer_cb, w);
    w->ev_flush = event_new(w->base, -1, 0, worker_flush_cb, w);
    if (w->ev_inbox == NULL || w->ev_reap == NULL || w->ev_flush == NULL ||
        w->ev_drain_timer == NULL || w->ev_retire == NULL ||
        w->ev_idle == NULL || w->ev_mem == NULL ||
        park_init(&w->park, w->base, worker_park_cb, w) != 0 ||
        event_add(w->ev_inbox, NULL) != 0 ||
        event_add(w->ev_idle, &(struct timeval){1, 0}) != 0) {
        snprintf(err, errlen, "worker %u: cannot create events", id);
        goto fail;
    }

    l1_init(&w->l1, 0, 0);
    w->big_buf = evbuffer_new();
    if (w->big_buf == NULL) {
        snprintf(err, errlen, "worker %u: out of memory", id);
        goto fail;
    }
    worker_adopt(w, topology_ref(t), false);
    if (w->cfg->io_uring) {
        char why[128];

        w->iobatch = iobatch_new(why, sizeof(why));
        if (w->iobatch == NULL && id == 0) {
            log_info("io_uring unavailable (%s): reading and writing with "
                     "readv and writev", why);
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
    for (uint32_t id = 0; id < w->nwb; id++) {
        for (unsigned c = 0; w->wb[id] != NULL && c < w->per_backend; c++) {
            bconn_connect(w->wb[id]->conns[c]);
        }
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
worker_send(struct worker *w, int type, int fd, void *ptr)
{
    struct worker_msg m = {.type = type, .fd = fd, .ptr = ptr};
    ssize_t n;

    do {
        n = write(w->inbox_wr, &m, sizeof(m));
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof(m) ? 0 : -1;
}

int
worker_hand_off(struct worker *w, int fd, bool tls)
{
    return worker_send(w, tls ? WORKER_MSG_CLIENT_TLS : WORKER_MSG_CLIENT, fd,
                       NULL);
}

void
worker_request_stop(struct worker *w)
{
    if (worker_send(w, WORKER_MSG_STOP, -1, NULL) != 0) {
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
    worker_close_parked(w);
    /* Clients first (their requests become orphans), then the backend
     * connections, whose reset fails and frees those orphans. */
    while ((c = TAILQ_FIRST(&w->clients)) != NULL) {
        client_drain(c);
        if (TAILQ_FIRST(&w->clients) == c) {
            client_abort(c);
        }
    }
    worker_reap_cb(-1, 0, w);
    /* Messages still in the inbox carry references. */
    if (w->inbox_rd >= 0) {
        worker_inbox_cb(w->inbox_rd, EV_READ, w);
    }
    for (uint32_t id = 0; id < w->nwb; id++) {
        if (w->wb[id] != NULL) {
            worker_backend_destroy(w, w->wb[id]);
        }
    }
    free(w->wb);
    request_free_list(w);
    hotkeys_free(&w->hot);
    l1_clear(&w->l1);
    if (w->big_buf != NULL) {
        evbuffer_free(w->big_buf);
    }
    pthread_mutex_destroy(&w->hot_lock);
    if (w->topo != NULL) {
        topology_unref(w->topo->t);
        free(w->topo);
    }
    if (w->ev_retire != NULL) {
        event_free(w->ev_retire);
    }
    if (w->ev_idle != NULL) {
        event_free(w->ev_idle);
    }
    if (w->ev_mem != NULL) {
        event_free(w->ev_mem);
    }
    park_deinit(&w->park);
    if (w->ev_inbox != NULL) {
        event_free(w->ev_inbox);
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
    iobatch_free(w->iobatch);
    if (w->inbox_rd >= 0) {
        close(w->inbox_rd);
    }
    if (w->inbox_wr >= 0) {
        close(w->inbox_wr);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    free(w);
}
