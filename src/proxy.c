/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proxy: start-up, the listener, signals, topology changes and shutdown.
 *
 * The main thread accepts every connection and hands it to the next worker
 * in turn, so clients spread evenly over the workers. max_connections is
 * enforced here with an atomic count that workers decrement when a client
 * goes away. SIGTERM/SIGINT close the listener and ask each worker to drain.
 *
 * A topology change (SIGHUP, the admin API) is built completely here, on
 * the main thread: the file is parsed and checked, addresses resolved, the
 * ring built, backend objects matched by name and address (kept) or
 * created (NEW). Only then is the snapshot published: p->topo is swapped,
 * each worker gets a reference through its inbox, the health checker
 * starts and stops probes. A change that fails anywhere before that
 * changes nothing.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "admin_http.h"
#include "backend.h"
#include "dns.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "notify.h"
#include "migrate.h"
#include "proxy.h"
#include "ratelimit.h"
#include "rebalance.h"
#include "stats.h"
#include "recovery.h"
#include "spool.h"
#include "tls.h"
#include "topology.h"
#include "util.h"
#include "watch.h"
#include "worker.h"

#define PROXY_BACKLOG 1024
/* Descriptors kept aside from clients: listeners, the event loops and
 * their signal pipes, the workers' inboxes, logs, DNS, the admin API's
 * connections. */
#define PROXY_FD_RESERVE 64
#define PROXY_FD_PER_WORKER 4
/* With every connection in use, a refusal pauses accepting this long (the
 * rest wait in the listen backlog): at most one refusal per pause, not a
 * tight loop of accepting and refusing. */
#define PROXY_ACCEPT_PAUSE_MS 10
/* How long start-up waits for the first lookups of backend host names. */
#define PROXY_NAME_WAIT_MS 2000

/* Accepting stops for a moment: clients wait in the listen backlog. */
static void
proxy_accept_pause(struct proxy *p, unsigned ms)
{
    struct timeval tv = {0, (suseconds_t)ms * 1000};

    if (p->ev_accept_timer != NULL && !atomic_load(&p->stopping)) {
        evconnlistener_disable(p->listener);
        if (p->tls_listener != NULL) {
            evconnlistener_disable(p->tls_listener);
        }
        evtimer_add(p->ev_accept_timer, &tv);
    }
}

static void
proxy_accept_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;

    if (atomic_load(&p->stopping)) {
        return;
    }
    /* Still full: the next one is refused, and accepting pauses again. */
    evconnlistener_enable(p->listener);
    if (p->tls_listener != NULL) {
        evconnlistener_enable(p->tls_listener);
    }
}

/* Raises the soft open-files limit to the hard one; returns the limit. */
static uint64_t
proxy_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 1024;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};

        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            rl = want;
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1048576 : (uint64_t)rl.rlim_cur;
}

unsigned
proxy_max_connections(const struct proxy *p, const struct config *cfg,
                      char *err, size_t errlen)
{
    uint64_t keep = PROXY_FD_RESERVE +
                    (uint64_t)p->group.n * PROXY_FD_PER_WORKER +
                    (uint64_t)cfg->nbackends *
                        (1 + (uint64_t)p->group.n * p->group.per_backend);
    uint64_t room = p->fd_limit > keep ? p->fd_limit - keep : 0;

    if (room > 1000000) {
        room = 1000000;
    }
    if (cfg->max_connections == 0) {
        return room > 0 ? (unsigned)room : 1;
    }
    if (cfg->max_connections > room) {
        snprintf(err, errlen,
                 "max_connections %u: the open-files limit (%llu) allows "
                 "%llu once %llu descriptors are kept for backends and "
                 "the proxy itself (raise the limit: ulimit -n, "
                 "LimitNOFILE=; or leave max_connections out)",
                 cfg->max_connections, (unsigned long long)p->fd_limit,
                 (unsigned long long)room, (unsigned long long)keep);
        return 0;
    }
    return cfg->max_connections;
}

static void
proxy_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                struct sockaddr *sa, int salen, void *arg)
{
    struct proxy *p = arg;
    struct worker *w;

    unsigned max = atomic_load(&p->group.max_connections);

    if (atomic_load(&p->group.nclients) >= max) {
        static const char msg[] = "SERVER_ERROR too many open connections\r\n";
        ssize_t n = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);

        char text[96];

        (void)n;
        log_limited_at(LOG_LEVEL_INFO,
                       "client (%s): connection refused: max_connections "
                       "(%u) reached",
                       sa != NULL && sa->sa_family != AF_UNIX
                           ? net_addr_text((struct sockaddr_storage *)sa,
                                           (socklen_t)salen, text,
                                           sizeof(text))
                           : "local",
                       max);
        atomic_fetch_add(&p->group.rejected, 1);
        evutil_closesocket(fd);
        /* Not a tight loop of accepting and refusing: the others wait. */
        proxy_accept_pause(p, PROXY_ACCEPT_PAUSE_MS);
        return;
    }
    atomic_fetch_add(&p->group.nclients, 1);
    w = p->group.workers[p->next_worker++ % p->group.n];
    if (worker_hand_off(w, fd, l == p->tls_listener) != 0) {
        atomic_fetch_sub(&p->group.nclients, 1);
        evutil_closesocket(fd);
    }
}

static void
proxy_accept_error_cb(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();

    /* EMFILE and friends: keep serving; accept again in a moment rather
     * than fail in a loop. */
    log_limited_at(LOG_LEVEL_WARN, "accept: %s",
                   evutil_socket_error_to_string(e));
    proxy_accept_pause(arg, 100);
}

/* What the metrics read of p now (main thread). */
static struct metrics_view
proxy_view(struct proxy *p)
{
    return (struct metrics_view){
        .group = &p->group,
        .t = p->topo,
        .health = p->health,
        .stopping = atomic_load(&p->stopping),
        .listening = p->listener != NULL,
    };
}

/*
 * Tells systemd state (see notify.h) with the status line: how many
 * backends are UP, or why mcring is not serving. The status is sent again
 * whenever it changes (proxy_status_timer_cb).
 */
static void
proxy_notify(struct proxy *p, const char *state)
{
    char why[160];
    struct metrics_view v;

    if (!notify_enabled()) {
        return;
    }
    v = proxy_view(p);
    (void)metrics_health(&v, false, why, sizeof(why));
    if (*state != '\0' || strcmp(why, p->status) != 0) {
        snprintf(p->status, sizeof(p->status), "%s", why);
        notify_send(state, why);
    }
}

static void
proxy_status_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    proxy_notify(arg, "");
}

static void
proxy_begin_stop(struct proxy *p, const char *why)
{
    struct timeval tv = {0, 100 * 1000};

    if (atomic_exchange(&p->stopping, true)) {
        return;
    }
    log_notice("%s: stopping (finishing requests in flight)", why);
    if (p->tls_listener != NULL) {
        evconnlistener_free(p->tls_listener);
        p->tls_listener = NULL;
    }
    notify_send("STOPPING=1", "stopping: finishing requests in flight");
    if (p->listener != NULL) {
        evconnlistener_free(p->listener);
        p->listener = NULL;
    }
    for (unsigned i = 0; i < p->group.n; i++) {
        worker_request_stop(p->group.workers[i]);
    }
    /* The main loop only has to notice that; the workers drain. */
    evtimer_add(p->ev_stop_timer, &tv);
}

static void
proxy_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy *p = arg;

    if (sig == SIGHUP) {
        char err[512];

        if (proxy_reload(p, "SIGHUP", err, sizeof(err)) != 0) {
            /* Logged and counted by proxy_reload(). */
        }
        return;
    }
    if (sig == SIGUSR1) {
        if (log_reopen() != 0) {
            log_error("SIGUSR1: cannot reopen the log file: %s; still "
                      "writing to the old one",
                      strerror(errno));
        } else {
            log_notice("SIGUSR1: log file reopened");
        }
        return;
    }
    proxy_begin_stop(p, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
proxy_stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;

    event_base_loopexit(p->base, NULL);
}

/* A listener on host:port (what names it in errors), accepting into
 * proxy_accept_cb. Returns it, or NULL with a message in err. */
static struct evconnlistener *
proxy_bind_tcp(struct proxy *p, const char *host, uint16_t portnum,
               const char *what, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    struct evconnlistener *l;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", portnum);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", what, gai_strerror(rc));
        return NULL;
    }
    l = evconnlistener_new_bind(
        p->base, proxy_accept_cb, p,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        PROXY_BACKLOG, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (l == NULL) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, proxy_accept_error_cb);
    return l;
}

/* [tls] listen: the TLS client listener, beside the plain one. */
static int
proxy_listen_tls(struct proxy *p, char *err, size_t errlen)
{
    const struct config *cfg = p->topo->cfg;
    char host[CONFIG_LINE_MAX + 1];
    char what[CONFIG_LINE_MAX + 32];
    uint16_t port;

    if (cfg->tls_listen == NULL) {
        return 0;
    }
    snprintf(what, sizeof(what), "[tls] listen %s", cfg->tls_listen);
    if (net_parse_hostport(cfg->tls_listen, host, sizeof(host), &port, err,
                           errlen) != 0) {
        char reason[256];

        snprintf(reason, sizeof(reason), "%s", err);
        snprintf(err, errlen, "%s: %s", what, reason);
        return -1;
    }
    p->tls_listener = proxy_bind_tcp(p, host, port, what, err, errlen);
    if (p->tls_listener == NULL) {
        return -1;
    }
    log_notice("TLS clients on %s", cfg->tls_listen);
    return 0;
}

static int
proxy_listen(struct proxy *p, char *err, size_t errlen)
{
    const struct config *cfg = p->topo->cfg;
    char what[160];

    if (cfg->listen_host[0] == '/') {
        int fd = net_unix_listen(cfg->listen_host, cfg->listen_mode,
                                 PROXY_BACKLOG, err, errlen);

        if (fd < 0) {
            return -1;
        }
        p->listener = evconnlistener_new(
            p->base, proxy_accept_cb, p,
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
        if (p->listener == NULL) {
            close(fd);
            snprintf(err, errlen, "listen %s: %s", cfg->listen_host,
                     strerror(errno));
            return -1;
        }
        p->unix_path = util_xstrdup(cfg->listen_host);
        evconnlistener_set_error_cb(p->listener, proxy_accept_error_cb);
    } else {
        snprintf(what, sizeof(what), "listen %s", p->listen_addr);
        p->listener = proxy_bind_tcp(p, cfg->listen_host, cfg->listen_port,
                                     what, err, errlen);
        if (p->listener == NULL) {
            return -1;
        }
    }
    return proxy_listen_tls(p, err, errlen);
}

/* A backend stopped serving: its queued requests fail now, in every
 * worker, instead of at their timeout. Any thread. */
static void
proxy_backend_down(struct backend *be, void *arg)
{
    struct proxy *p = arg;

    for (unsigned i = 0; i < p->group.n; i++) {
        struct worker *w =
            p->group.workers != NULL ? p->group.workers[i] : NULL;

        if (w != NULL && atomic_load(&w->started) &&
            worker_send(w, WORKER_MSG_BACKEND_DOWN, -1, backend_ref(be)) !=
                0) {
            backend_unref(be);
        }
    }
}

/* Makes t (whose reference is taken) current and sends it to everyone. */
static void
proxy_publish(struct proxy *p, struct topology *t)
{
    struct topology *old = p->topo;

    p->topo = t;
    {
        char err[512];
        unsigned max = proxy_max_connections(p, t->cfg, err, sizeof(err));

        if (max == 0) {
            /* More backends than the limit left room for: keep what can
             * be served. */
            log_warn("%s", err);
            t->cfg->max_connections = 0;
            max = proxy_max_connections(p, t->cfg, err, sizeof(err));
        }
        atomic_store(&p->group.max_connections, max);
    }
    atomic_store(&p->group.published_ns, util_now_ns());
    if (p->spool != NULL) {
        /* Before any worker can note a key for a backend it adds. */
        spool_apply(p->spool, t);
    }
    for (unsigned i = 0; i < p->group.n; i++) {
        struct worker *w = p->group.workers[i];

        if (worker_send(w, WORKER_MSG_TOPOLOGY, -1, topology_ref(t)) != 0) {
            /* Cannot happen short of a closed pipe; it keeps the old one. */
            log_error("worker %u: cannot send the new topology", w->id);
            topology_unref(t);
        }
    }
    if (p->health != NULL) {
        health_apply(p->health, t);
    }
    topology_unref(old);
}

/*
 * The backend objects of cfg's backends, in cfg's order: the running one
 * where name and address are unchanged, else a new one in state `fresh`.
 * Fills out (cfg->nbackends entries, a reference each).
 */
static int
proxy_match_backends(struct proxy *p, struct config *cfg,
                     enum backend_state fresh, struct backend **out,
                     char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct config_backend *cb = &cfg->backends[i];
        struct backend *old =
            p->topo != NULL ? topology_find(p->topo, cb->name) : NULL;

        if (old != NULL && old->port == cb->port &&
            strcmp(old->host, cb->host) == 0 && old->tls == cb->tls) {
            out[i] = backend_ref(old);
            continue;
        }
        /* A numeric address now; a name is looked up by the health
         * checker, on the loop. */
        if (dns_numeric(cb->host, cb->port, &cb->addr, &cb->addrlen) != 0) {
            cb->addrlen = 0;
        }
        out[i] = backend_create(&p->backends, cb, fresh, cfg->recovery_log,
                                err, errlen);
        if (out[i] == NULL) {
            while (i-- > 0) {
                backend_unref(out[i]);
            }
            return -1;
        }
        if (fresh == BACKEND_NEW) {
            /* Whatever a server added while running holds may be older
             * than what the ring served meanwhile (it may have been in
             * the ring before): it is flushed before it gets keys. */
            recovery_note_flush(out[i]->recovery);
        }
    }
    return 0;
}

uint32_t
proxy_pool_id(struct proxy *p, const char *name)
{
    for (uint32_t i = 0; i < p->npool_names; i++) {
        if (strcmp(p->pool_names[i], name) == 0) {
            return i;
        }
    }
    if (p->npool_names == STATS_POOLS - 1) {
        log_warn("pool %s: more than %d pools since the start; its keys are "
                 "counted with the others'",
                 name, STATS_POOLS - 1);
        return STATS_POOLS - 1;
    }
    p->pool_names[p->npool_names] = util_xstrdup(name);
    return p->npool_names++;
}

/*
 * The next topology: cfg and cfg's backends matched as
 * proxy_match_backends() does. On failure cfg is freed and NULL is
 * returned.
 */
static struct topology *
proxy_build_topology(struct proxy *p, struct config *cfg,
                     enum backend_state fresh, char *err, size_t errlen)
{
    struct backend **bes =
        util_xcalloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*bes));
    struct topology *t = NULL;

    if (proxy_match_backends(p, cfg, fresh, bes, err, errlen) == 0) {
        t = topology_create(++p->generation, cfg, bes, err, errlen);
        for (uint32_t i = 0; t != NULL && i < t->npools; i++) {
            t->pools[i].id = proxy_pool_id(p, topology_pool_name(&t->pools[i]));
        }
    } else {
        config_destroy(cfg);
    }
    free(bes);
    return t;
}

/* Keeps the running value of every key that needs a restart. */
/* One [tls] file name or address: kept as running, with a warning. */
static void
proxy_keep_str(char **now, const char *cur, const char *key, const char *why)
{
    if ((*now == NULL) != (cur == NULL) ||
        (cur != NULL && strcmp(*now, cur) != 0)) {
        log_warn("%s: [tls] %s needs a restart; keeping %s", why, key,
                 cur != NULL ? cur : "none");
        free(*now);
        *now = cur != NULL ? util_xstrdup(cur) : NULL;
    }
}

/* [tls] is read at start only: the contexts are made once (tls.h). */
static void
proxy_keep_tls(struct config *cfg, const struct config *cur, const char *why)
{
    proxy_keep_str(&cfg->tls_cert, cur->tls_cert, "cert", why);
    proxy_keep_str(&cfg->tls_key, cur->tls_key, "key", why);
    proxy_keep_str(&cfg->tls_ca, cur->tls_ca, "ca", why);
    proxy_keep_str(&cfg->tls_listen, cur->tls_listen, "listen", why);
    if (cfg->tls_verify_clients != cur->tls_verify_clients ||
        cfg->tls_verify_backends != cur->tls_verify_backends) {
        log_warn("%s: [tls] verify_clients and verify_backends need a "
                 "restart; keeping them",
                 why);
        cfg->tls_verify_clients = cur->tls_verify_clients;
        cfg->tls_verify_backends = cur->tls_verify_backends;
    }
}

static void
proxy_keep_restart_keys(struct proxy *p, struct config *cfg, const char *why)
{
    const struct config *cur = p->topo->cfg;

    if (strcmp(cfg->listen_host, cur->listen_host) != 0 ||
        cfg->listen_port != cur->listen_port) {
        log_warn("%s: [proxy] listen needs a restart; still listening on %s",
                 why, p->listen_addr);
        free(cfg->listen_host);
        cfg->listen_host = util_xstrdup(cur->listen_host);
        cfg->listen_port = cur->listen_port;
    }
    if (cfg->threads != cur->threads) {
        log_warn("%s: [proxy] threads needs a restart; keeping %u", why,
                 cur->threads);
        cfg->threads = cur->threads;
    }
    if ((cfg->admin_listen == NULL) != (cur->admin_listen == NULL) ||
        (cfg->admin_listen != NULL &&
         strcmp(cfg->admin_listen, cur->admin_listen) != 0)) {
        log_warn("%s: [admin] listen needs a restart; keeping %s", why,
                 cur->admin_listen != NULL ? cur->admin_listen : "none");
        free(cfg->admin_listen);
        cfg->admin_listen = cur->admin_listen != NULL
                                ? util_xstrdup(cur->admin_listen)
                                : NULL;
    }
    if (cfg->backend_connections != cur->backend_connections) {
        log_warn("%s: [proxy] backend_connections needs a restart; keeping "
                 "%u", why, cur->backend_connections);
        cfg->backend_connections = cur->backend_connections;
    }
    if (strcmp(cfg->hash_tag, cur->hash_tag) != 0) {
        /* It moves nearly every key at once: a restart says so. */
        log_warn("%s: [proxy] hash_tag needs a restart; keeping '%s'", why,
                 cur->hash_tag);
        memcpy(cfg->hash_tag, cur->hash_tag, sizeof(cfg->hash_tag));
    }
    if (cfg->io_uring != cur->io_uring) {
        log_warn("%s: [proxy] io_uring needs a restart; keeping %s", why,
                 cur->io_uring ? "yes" : "no");
        cfg->io_uring = cur->io_uring;
    }
    if (cfg->listen_mode != cur->listen_mode) {
        log_warn("%s: [proxy] listen_mode needs a restart; keeping %04o", why,
                 cur->listen_mode);
        cfg->listen_mode = cur->listen_mode;
    }
    if ((cfg->delete_spool == NULL) != (cur->delete_spool == NULL) ||
        (cfg->delete_spool != NULL &&
         strcmp(cfg->delete_spool, cur->delete_spool) != 0)) {
        log_warn("%s: [proxy] delete_spool needs a restart; keeping %s", why,
                 cur->delete_spool != NULL ? cur->delete_spool : "none");
        free(cfg->delete_spool);
        cfg->delete_spool = cur->delete_spool != NULL
                                ? util_xstrdup(cur->delete_spool)
                                : NULL;
    }
    proxy_keep_tls(cfg, cur, why);
}

struct topology *
proxy_topology(struct proxy *p)
{
    return p->topo;
}

/* Builds a snapshot of cfg (taken) with origins (each may be NULL) and
 * publishes it: every topology change ends here (struct migrate_ops). */
static int
proxy_publish_config(void *arg, struct config *cfg,
                     struct topology *const origin[TOPOLOGY_ORIGINS],
                     char *err, size_t errlen)
{
    struct proxy *p = arg;
    struct topology *t;

    t = proxy_build_topology(p, cfg, BACKEND_NEW, err, errlen);
    if (t == NULL) {
        return -1;
    }
    for (unsigned o = 0; o < TOPOLOGY_ORIGINS && origin[o] != NULL; o++) {
        topology_set_origin(t, o, origin[o]);
    }
    proxy_publish(p, t);
    log_info("topology %llu published: %u backends%s",
             (unsigned long long)t->generation, t->n,
             t->origin[0] != NULL ? ", with the origin of a move" : "");
    return 0;
}

static struct topology *
proxy_ops_topology(void *arg)
{
    return proxy_topology(arg);
}

int
proxy_apply(struct proxy *p, struct config *cfg, int ramp, const char *why,
            char *err, size_t errlen)
{
    const struct config *cur = p->topo->cfg;
    unsigned added = 0, removed = 0, kept = 0;
    /* From the start of the reload, file parsing included. */
    uint64_t t0 = p->change_start_ns ? p->change_start_ns : util_now_ns();
    int rc;

    proxy_keep_restart_keys(p, cfg, why);
    /* A config whose rings cannot be built changes nothing. */
    if (config_check_rings(cfg, err, errlen) != 0) {
        config_destroy(cfg);
        return -1;
    }
    for (size_t i = 0; i < cfg->nbackends; i++) {
        if (cfg->backends[i].tls && !tls_have_client()) {
            snprintf(err, errlen, "backend '%s': tls=yes needs TLS set up at "
                                  "start: restart mcring with [tls] in the "
                                  "file",
                     cfg->backends[i].name);
            config_destroy(cfg);
            return -1;
        }
        if (config_backend_index(cur, cfg->backends[i].name) < 0) {
            added++;
        } else {
            kept++;
        }
    }
    removed = (unsigned)cur->nbackends - kept;
    rc = migrate_change(p->group.migrate, cfg, ramp, why, err, errlen);
    if (rc != 0) {
        return rc;
    }
    atomic_fetch_add(&p->group.reloads, 1);
    atomic_store(&p->group.last_reload, (int64_t)time(NULL));
    log_notice("%s: topology %llu applied: %u backends (%u added, %u "
               "removed, %u kept), built in %.2f ms", why,
               (unsigned long long)p->topo->generation, p->topo->n, added,
               removed, kept,
               (double)(atomic_load(&p->group.published_ns) - t0) / 1e6);
    return 0;
}

int
proxy_reload(struct proxy *p, const char *why, char *err, size_t errlen)
{
    struct config *cfg;

    int rc = -1;

    log_notice("%s: reloading %s", why, p->config_path);
    notify_send("RELOADING=1", NULL);
    p->change_start_ns = util_now_ns();
    health_reload_names(p->health);
    cfg = config_load(p->config_path, err, errlen);
    if (cfg != NULL) {
        rc = proxy_apply(p, cfg, -1, why, err, errlen);
    }
    p->change_start_ns = 0;
    if (rc != 0) {
        atomic_fetch_add(&p->group.reload_failures, 1);
        log_error("%s: reload failed, running configuration unchanged: %s",
                  why, err);
    }
    proxy_notify(p, "READY=1");
    return rc;
}

int
proxy_set_maint(struct proxy *p, const char *name, bool maint, char *err,
                size_t errlen)
{
    struct backend *be = topology_find(p->topo, name);

    if (be == NULL) {
        snprintf(err, errlen, "no backend '%s'", name);
        return -1;
    }
    if (!maint) {
        health_activate(p->health, be);
        return 0;
    }
    for (;;) {
        int state = backend_state(be);

        if (state == BACKEND_MAINT ||
            backend_set_state(be, state, BACKEND_MAINT,
                              "maintenance, by the operator")) {
            return 0;
        }
    }
}

/* Every window: hot keys over [proxy] hotkey_alert are logged. */
static void
proxy_hot_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct proxy *p = arg;
    struct metrics_view v = proxy_view(p);

    (void)fd;
    (void)what;
    metrics_alert_hotkeys(&v, p->alerts);
}

/* The admin API's view of the proxy (struct admin_http_ops). */
static int
proxy_ops_apply(void *arg, struct config *cfg, int ramp, const char *why,
                char *err, size_t errlen)
{
    return proxy_apply(arg, cfg, ramp, why, err, errlen);
}

static const struct config *
proxy_ops_target(void *arg)
{
    struct proxy *p = arg;

    return migrate_target(p->group.migrate);
}

static json_t *
proxy_ops_migration(void *arg)
{
    struct proxy *p = arg;
    json_t *o = migrate_json(p->group.migrate);
    struct stats_worker sum;

    worker_group_sum_stats(&p->group, &sum);
    json_object_set_new(
        o, "warmup",
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "hits",
                  (json_int_t)stats_get(&sum.warmup_hits), "misses",
                  (json_int_t)stats_get(&sum.warmup_misses), "copies",
                  (json_int_t)stats_get(&sum.warmup_copies), "copy_failures",
                  (json_int_t)stats_get(&sum.warmup_copy_failures),
                  "copies_dropped",
                  (json_int_t)stats_get(&sum.warmup_copies_dropped)));
    json_object_set_new(
        o, "deletes",
        json_pack("{s:I, s:I}", "sent",
                  (json_int_t)stats_get(&sum.migrate_deletes), "failed",
                  (json_int_t)stats_get(&sum.migrate_delete_failures)));
    return o;
}

static void
proxy_ops_metrics(void *arg, struct evbuffer *out)
{
    struct metrics_view v = proxy_view(arg);

    metrics_prometheus(&v, out);
}

static json_t *
proxy_ops_stats(void *arg)
{
    struct metrics_view v = proxy_view(arg);

    return metrics_stats_json(&v);
}

static json_t *
proxy_ops_hotkeys(void *arg)
{
    struct metrics_view v = proxy_view(arg);

    return metrics_hotkeys_json(&v);
}

static bool
proxy_ops_health(void *arg, bool ready, char *why, size_t len)
{
    struct metrics_view v = proxy_view(arg);

    return metrics_health(&v, ready, why, len);
}

/* GET /rebalance (apply false) or POST: the report, and with apply the
 * proposed weights applied as a paced reweight. */
static json_t *
proxy_ops_rebalance(void *arg, bool apply, int *status, char *err,
                    size_t errlen)
{
    struct proxy *p = arg;
    const struct config *target = migrate_target(p->group.migrate);
    struct config *cfg = NULL;
    int ramp = -1;
    json_t *doc = rebalance_report(p->rebalance, target,
                                   target->rebalance_max_move / 100.0,
                                   apply ? &cfg : NULL, &ramp);

    *status = 200;
    if (!apply) {
        return doc;
    }
    if (cfg == NULL) {
        *status = 409;
        snprintf(err, errlen, "%s",
                 json_string_value(json_object_get(doc, "reason")));
        json_decref(doc);
        return NULL;
    }
    if (proxy_apply(p, cfg, ramp, "rebalance", err, errlen) != 0) {
        *status = 409;
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "migration", migrate_json(p->group.migrate));
    return doc;
}

static int
proxy_ops_migrate(void *arg, const char *verb, char *err, size_t errlen)
{
    struct proxy *p = arg;

    return migrate_control(p->group.migrate, verb, err, errlen);
}

static int
proxy_ops_reload(void *arg, const char *why, char *err, size_t errlen)
{
    return proxy_reload(arg, why, err, errlen);
}

static int
proxy_ops_set_maint(void *arg, const char *name, bool maint, char *err,
                    size_t errlen)
{
    return proxy_set_maint(arg, name, maint, err, errlen);
}

/* Tells worker i of a watcher (watch_send_fn). */
static int
proxy_watch_send(void *arg, unsigned i, bool on, struct watch_slot *s)
{
    struct proxy *p = arg;

    return worker_send(p->group.workers[i],
                       on ? WORKER_MSG_WATCH : WORKER_MSG_UNWATCH, -1, s);
}

int
proxy_start(struct proxy *p, struct config *cfg, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->group.start_time = time(NULL);
    /* Absolute: a daemon runs in / and reloads from there. */
    p->config_path = cfg->path != NULL ? realpath(cfg->path, NULL) : NULL;
    if (p->config_path == NULL) {
        p->config_path = util_xstrdup(cfg->path != NULL ? cfg->path : "");
    }
    p->group.n = cfg->threads ? cfg->threads : util_online_cpus();
    p->group.per_backend = cfg->backend_connections;
    p->fd_limit = proxy_raise_fd_limit();
    pthread_mutex_init(&p->group.stats_lock, NULL);
    p->group.stats_base = util_xcalloc(1, sizeof(*p->group.stats_base));
    p->group.client_rates = ratelimit_table_new();
    if (p->group.client_rates == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    (void)net_format_hostport(cfg->listen_host, cfg->listen_port,
                              p->listen_addr, sizeof(p->listen_addr));
    backend_set_init(&p->backends, p->group.n, proxy_backend_down, p);
    atomic_store(&p->group.max_connections,
                 proxy_max_connections(p, cfg, err, errlen));
    if (atomic_load(&p->group.max_connections) == 0) {
        config_destroy(cfg);
        return -1;
    }
    p->topo = proxy_build_topology(p, cfg, BACKEND_UP, err, errlen);
    if (p->topo == NULL) {
        return -1;
    }

    signal(SIGPIPE, SIG_IGN);
    log_hook_libevent();
    p->base = event_base_new();
    if (p->base == NULL) {
        snprintf(err, errlen, "cannot create event base");
        return -1;
    }
    p->ev_sigterm = evsignal_new(p->base, SIGTERM, proxy_signal_cb, p);
    p->ev_sigint = evsignal_new(p->base, SIGINT, proxy_signal_cb, p);
    p->ev_sighup = evsignal_new(p->base, SIGHUP, proxy_signal_cb, p);
    p->ev_sigusr1 = evsignal_new(p->base, SIGUSR1, proxy_signal_cb, p);
    p->ev_stop_timer = evtimer_new(p->base, proxy_stop_timer_cb, p);
    p->ev_accept_timer = evtimer_new(p->base, proxy_accept_timer_cb, p);
    p->ev_hot_timer = event_new(p->base, -1, EV_PERSIST, proxy_hot_timer_cb,
                                p);
    p->alerts = metrics_alerts_create();
    if (p->ev_sigterm == NULL || p->ev_sigint == NULL ||
        p->ev_sighup == NULL || p->ev_stop_timer == NULL ||
        p->ev_accept_timer == NULL ||
        p->ev_hot_timer == NULL || p->ev_sigusr1 == NULL ||
        evsignal_add(p->ev_sigusr1, NULL) != 0 ||
        event_add(p->ev_hot_timer,
                  &(struct timeval){HOTKEYS_WINDOW_S, 0}) != 0 ||
        evsignal_add(p->ev_sigterm, NULL) != 0 ||
        evsignal_add(p->ev_sigint, NULL) != 0 ||
        evsignal_add(p->ev_sighup, NULL) != 0) {
        snprintf(err, errlen, "cannot install signal handlers");
        return -1;
    }
    /* Before health and the workers: backends with spooled keys start
     * RECOVERING. */
    if (p->topo->cfg->delete_spool != NULL) {
        p->spool = spool_create(p->base, p->topo->cfg->delete_spool, p->topo,
                                err, errlen);
        if (p->spool == NULL) {
            return -1;
        }
    }

    {
        struct migrate_ops mops = {
            .current = proxy_ops_topology,
            .publish = proxy_publish_config,
            .arg = p,
        };

        p->group.migrate = migrate_create(p->base, &mops);
        p->rebalance = rebalance_create(p->base, proxy_ops_topology, p);
        if (p->group.migrate == NULL || p->rebalance == NULL) {
            snprintf(err, errlen, "cannot create the migration timers");
            return -1;
        }
    }
    p->group.workers = util_xcalloc(p->group.n, sizeof(*p->group.workers));
    p->group.watch = watch_create(p->group.n, proxy_watch_send, p);
    for (unsigned i = 0; i < p->group.n; i++) {
        p->group.workers[i] =
            worker_create(&p->group, i, p->topo, err, errlen);
        if (p->group.workers[i] == NULL) {
            return -1;
        }
    }
    /* The admin API first: once clients are accepted, it answers too. */
    if (p->topo->cfg->admin_listen != NULL) {
        struct admin_http_ops ops = {
            .topology = proxy_ops_topology,
            .apply = proxy_ops_apply,
            .target = proxy_ops_target,
            .migration = proxy_ops_migration,
            .migrate = proxy_ops_migrate,
            .rebalance = proxy_ops_rebalance,
            .reload = proxy_ops_reload,
            .set_maint = proxy_ops_set_maint,
            .metrics = proxy_ops_metrics,
            .stats = proxy_ops_stats,
            .hotkeys = proxy_ops_hotkeys,
            .health = proxy_ops_health,
            .stats_lock = &p->group.stats_lock,
            .watch = p->group.watch,
            .arg = p,
        };

        p->admin = admin_http_create(p->base, p->topo->cfg->admin_listen,
                                     &ops, err, errlen);
        if (p->admin == NULL) {
            return -1;
        }
    }
    if (tls_init(p->topo->cfg, err, errlen) != 0 ||
        proxy_listen(p, err, errlen) != 0) {
        return -1;
    }
    /* Probes and lookups run on the main loop; before the workers start,
     * wait a moment for host names, so that those that resolve at once
     * start UP. */
    p->health = health_create(p->base, p->topo, err, errlen);
    if (p->health == NULL) {
        return -1;
    }
    health_wait_names(p->health, PROXY_NAME_WAIT_MS);
    for (unsigned i = 0; i < p->group.n; i++) {
        atomic_store(&p->group.workers[i]->started, true);
        if (worker_start(p->group.workers[i], err, errlen) != 0) {
            atomic_store(&p->group.workers[i]->started, false);
            return -1;
        }
    }
    log_notice("mcring %s listening on %s: %u backends, %u threads, "
               "max_connections %u%s (open-files limit %llu)",
               PACKAGE_VERSION, p->listen_addr, p->topo->n, p->group.n,
               atomic_load(&p->group.max_connections),
               p->topo->cfg->max_connections == 0 ? " (from the limit)" : "",
               (unsigned long long)p->fd_limit);
    if (notify_enabled()) {
        p->ev_status_timer = event_new(p->base, -1, EV_PERSIST,
                                       proxy_status_timer_cb, p);
        if (p->ev_status_timer != NULL) {
            event_add(p->ev_status_timer, &(struct timeval){1, 0});
        }
        proxy_notify(p, "READY=1");
    }
    return 0;
}

void
proxy_run(struct proxy *p)
{
    event_base_dispatch(p->base);
    for (unsigned i = 0; i < p->group.n; i++) {
        struct worker *w = p->group.workers[i];

        if (w != NULL && atomic_load(&w->started)) {
            worker_join(w);
        }
    }
    p->joined = true;
    log_notice("stopped");
}

void
proxy_stop(struct proxy *p)
{
    if (p->listener != NULL) {
        evconnlistener_free(p->listener);
    }
    if (p->tls_listener != NULL) {
        evconnlistener_free(p->tls_listener);
        p->tls_listener = NULL;
    }
    if (p->unix_path != NULL) {
        unlink(p->unix_path);
        free(p->unix_path);
        p->unix_path = NULL;
    }
    admin_http_destroy(p->admin);
    p->admin = NULL;
    health_destroy(p->health);
    p->health = NULL;
    migrate_destroy(p->group.migrate);
    p->group.migrate = NULL;
    rebalance_destroy(p->rebalance);
    p->rebalance = NULL;
    /* Watchers that end from now on tell no worker: their slots go with
     * the hub, once no worker is left to write to them. */
    watch_quiesce(p->group.watch);
    if (p->group.workers != NULL) {
        for (unsigned i = 0; i < p->group.n; i++) {
            struct worker *w = p->group.workers[i];

            if (w != NULL && atomic_load(&w->started) && !p->joined) {
                worker_request_stop(w);
                worker_join(w);
            }
            worker_destroy(w);
        }
        free(p->group.workers);
    }
    /* The workers' last notes are in the journals now. */
    spool_destroy(p->spool);
    p->spool = NULL;
    watch_destroy(p->group.watch);
    p->group.watch = NULL;
    if (p->ev_sigterm != NULL) {
        event_free(p->ev_sigterm);
    }
    if (p->ev_sigint != NULL) {
        event_free(p->ev_sigint);
    }
    if (p->ev_sighup != NULL) {
        event_free(p->ev_sighup);
    }
    if (p->ev_stop_timer != NULL) {
        event_free(p->ev_stop_timer);
    }
    if (p->ev_accept_timer != NULL) {
        event_free(p->ev_accept_timer);
    }
    if (p->ev_status_timer != NULL) {
        event_free(p->ev_status_timer);
    }
    if (p->ev_hot_timer != NULL) {
        event_free(p->ev_hot_timer);
    }
    if (p->ev_sigusr1 != NULL) {
        event_free(p->ev_sigusr1);
    }
    metrics_alerts_destroy(p->alerts);
    if (p->base != NULL) {
        event_base_free(p->base);
    }
    if (p->config_path != NULL) {
        topology_unref(p->topo);
        backend_set_deinit(&p->backends);
        pthread_mutex_destroy(&p->group.stats_lock);
    }
    free(p->group.stats_base);
    ratelimit_table_free(p->group.client_rates);
    for (uint32_t i = 0; i < p->npool_names; i++) {
        free(p->pool_names[i]);
    }
    free(p->config_path);
    tls_shutdown();
    memset(p, 0, sizeof(*p));
}
