/*
 * proxy: start-up, the listener, signals and shutdown.
 *
 * The main thread accepts every connection and hands it to the next worker
 * in turn, so clients spread evenly over the workers. max_connections is
 * enforced here with an atomic count that workers decrement when a client
 * goes away. SIGTERM/SIGINT close the listener and ask each worker to drain.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include "health.h"
#include "log.h"
#include "proxy.h"
#include "recovery.h"
#include "util.h"
#include "worker.h"

#define PROXY_BACKLOG 1024

static void
proxy_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                struct sockaddr *sa, int salen, void *arg)
{
    struct proxy *p = arg;
    struct worker *w;

    if (atomic_load(&p->nclients) >= p->cfg->max_connections) {
        static const char msg[] = "SERVER_ERROR too many open connections\r\n";
        ssize_t n = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);

        (void)n;
        log_info("connection refused: max_connections (%u) reached",
                 p->cfg->max_connections);
        atomic_fetch_add(&p->rejected, 1);
        evutil_closesocket(fd);
        return;
    }
    atomic_fetch_add(&p->nclients, 1);
    w = p->workers[p->next_worker++ % p->nworkers];
    if (worker_hand_off(w, fd) != 0) {
        atomic_fetch_sub(&p->nclients, 1);
        evutil_closesocket(fd);
    }
}

static void
proxy_accept_error_cb(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();

    /* EMFILE and friends: keep serving; the listener retries. */
    log_warn("accept: %s", evutil_socket_error_to_string(e));
}

static void
proxy_begin_stop(struct proxy *p, const char *why)
{
    struct timeval tv = {0, 100 * 1000};

    if (atomic_exchange(&p->stopping, true)) {
        return;
    }
    log_notice("%s: stopping (finishing requests in flight)", why);
    if (p->listener != NULL) {
        evconnlistener_free(p->listener);
        p->listener = NULL;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        worker_request_stop(p->workers[i]);
    }
    /* The main loop only has to notice that; the workers drain. */
    evtimer_add(p->ev_stop_timer, &tv);
}

static void
proxy_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct proxy *p = arg;

    if (sig == SIGHUP) {
        log_warn("SIGHUP: configuration reload is not implemented yet; "
                 "running configuration unchanged");
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

static int
proxy_listen(struct proxy *p, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", p->cfg->listen_port);
    rc = getaddrinfo(p->cfg->listen_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s: %s", p->cfg->listen_host,
                 gai_strerror(rc));
        return -1;
    }
    p->listener = evconnlistener_new_bind(
        p->base, proxy_accept_cb, p,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        PROXY_BACKLOG, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (p->listener == NULL) {
        snprintf(err, errlen, "listen %s: %s", p->listen_addr,
                 strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(p->listener, proxy_accept_error_cb);
    return 0;
}

int
proxy_start(struct proxy *p, struct config *cfg, struct ring *ring,
            char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->ring = ring;
    p->start_time = time(NULL);
    p->nbackends = (uint32_t)cfg->nbackends;
    pthread_mutex_init(&p->stats_lock, NULL);
    p->stats_base = util_xcalloc(1, sizeof(*p->stats_base));
    p->bstats_base = util_xcalloc(p->nbackends, sizeof(*p->bstats_base));
    snprintf(p->listen_addr, sizeof(p->listen_addr),
             strchr(cfg->listen_host, ':') ? "[%s]:%u" : "%s:%u",
             cfg->listen_host, cfg->listen_port);
    p->backends = util_xcalloc(p->nbackends, sizeof(*p->backends));
    for (uint32_t b = 0; b < p->nbackends; b++) {
        const struct config_backend *cb = &cfg->backends[b];

        p->backends[b].index = b;
        p->backends[b].cfg = cb;
        atomic_store(&p->backends[b].since, (int64_t)p->start_time);
        p->backends[b].recovery = recovery_create(cfg->recovery_log);
        if (p->backends[b].recovery == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        snprintf(p->backends[b].addr, sizeof(p->backends[b].addr),
                 strchr(cb->host, ':') ? "[%s]:%u" : "%s:%u", cb->host,
                 cb->port);
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
    p->ev_stop_timer = evtimer_new(p->base, proxy_stop_timer_cb, p);
    if (p->ev_sigterm == NULL || p->ev_sigint == NULL ||
        p->ev_sighup == NULL || p->ev_stop_timer == NULL ||
        evsignal_add(p->ev_sigterm, NULL) != 0 ||
        evsignal_add(p->ev_sigint, NULL) != 0 ||
        evsignal_add(p->ev_sighup, NULL) != 0) {
        snprintf(err, errlen, "cannot install signal handlers");
        return -1;
    }

    p->nworkers = cfg->threads ? cfg->threads : util_online_cpus();
    p->workers = util_xcalloc(p->nworkers, sizeof(*p->workers));
    for (unsigned i = 0; i < p->nworkers; i++) {
        p->workers[i] = worker_create(p, i, err, errlen);
        if (p->workers[i] == NULL) {
            return -1;
        }
    }
    if (proxy_listen(p, err, errlen) != 0) {
        return -1;
    }
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (worker_start(p->workers[i], err, errlen) != 0) {
            return -1;
        }
        p->workers[i]->started = true;
    }
    p->health = health_create(p, err, errlen);
    if (p->health == NULL) {
        return -1;
    }
    log_notice("mcring %s listening on %s: %u backends, %u threads",
               PACKAGE_VERSION, p->listen_addr, p->nbackends, p->nworkers);
    return 0;
}

void
proxy_run(struct proxy *p)
{
    event_base_dispatch(p->base);
    for (unsigned i = 0; i < p->nworkers; i++) {
        if (p->workers[i] != NULL && p->workers[i]->started) {
            worker_join(p->workers[i]);
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
    health_destroy(p->health);
    p->health = NULL;
    if (p->workers != NULL) {
        for (unsigned i = 0; i < p->nworkers; i++) {
            struct worker *w = p->workers[i];

            if (w != NULL && w->started && !p->joined) {
                worker_request_stop(w);
                worker_join(w);
            }
            worker_destroy(w);
        }
        free(p->workers);
    }
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
    if (p->base != NULL) {
        event_base_free(p->base);
    }
    for (uint32_t b = 0; p->backends != NULL && b < p->nbackends; b++) {
        recovery_destroy(p->backends[b].recovery);
    }
    free(p->backends);
    free(p->stats_base);
    free(p->bstats_base);
    if (p->cfg != NULL) {
        pthread_mutex_destroy(&p->stats_lock);
    }
    ring_destroy(p->ring);
    config_destroy(p->cfg);
    memset(p, 0, sizeof(*p));
}
