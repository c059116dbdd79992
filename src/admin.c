/*
 * admin: the commands mcring answers itself, on the worker that read them:
 * version, verbosity, quit, and stats with its subcommands, rendered from
 * the per-worker counters (summed with relaxed loads; a reply is a
 * consistent-enough snapshot, as memcached's own is) and the backends of
 * the worker's current topology.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "admin.h"
#include "backend.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "proxy.h"
#include "request.h"
#include "ring.h"
#include "stats.h"
#include "topology.h"
#include "worker.h"

/* Sums the workers' client counters into *sum. */
static void
admin_sum_clients(struct proxy *p, struct stats_worker *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < p->nworkers; i++) {
        stats_accumulate(sum, &p->workers[i]->stats, stats_client_defs,
                         stats_nclient_defs);
    }
}

static void
admin_stats_reset(struct proxy *p, const struct topology *t)
{
    pthread_mutex_lock(&p->stats_lock);
    admin_sum_clients(p, p->stats_base);
    for (uint32_t b = 0; b < t->n; b++) {
        backend_stats_sum(t->backends[b], &t->backends[b]->stats_base);
    }
    p->rejected_base = atomic_load(&p->rejected);
    pthread_mutex_unlock(&p->stats_lock);
}

static void
admin_stats(struct proxy *p, const struct topology *t, struct evbuffer *out)
{
    struct stats_worker sum;
    uint64_t rejected;
    struct rusage ru;
    time_t now = time(NULL);

    pthread_mutex_lock(&p->stats_lock);
    admin_sum_clients(p, &sum);
    stats_subtract(&sum, p->stats_base, stats_client_defs,
                   stats_nclient_defs);
    rejected = atomic_load(&p->rejected) - p->rejected_base;
    pthread_mutex_unlock(&p->stats_lock);
    getrusage(RUSAGE_SELF, &ru);
    evbuffer_add_printf(out, "STAT pid %ld\r\n", (long)getpid());
    evbuffer_add_printf(out, "STAT uptime %lld\r\n",
                        (long long)(now - p->start_time));
    evbuffer_add_printf(out, "STAT time %lld\r\n", (long long)now);
    evbuffer_add_printf(out, "STAT version %s\r\n", PROXY_VERSION_STRING);
    evbuffer_add_printf(out, "STAT pointer_size %d\r\n",
                        (int)(8 * sizeof(void *)));
    evbuffer_add_printf(out, "STAT rusage_user %ld.%06ld\r\n",
                        (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    evbuffer_add_printf(out, "STAT rusage_system %ld.%06ld\r\n",
                        (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    evbuffer_add_printf(out, "STAT threads %u\r\n", p->nworkers);
    evbuffer_add_printf(out, "STAT max_connections %u\r\n",
                        atomic_load(&p->max_connections));
    evbuffer_add_printf(out, "STAT rejected_connections %" PRIu64 "\r\n",
                        rejected);
    evbuffer_add_printf(out, "STAT backends %u\r\n", t->n);
    evbuffer_add_printf(out, "STAT topology_generation %" PRIu64 "\r\n",
                        t->generation);
    evbuffer_add_printf(out, "STAT reloads %" PRIu64 "\r\n",
                        (uint64_t)atomic_load(&p->reloads));
    evbuffer_add_printf(out, "STAT reload_failures %" PRIu64 "\r\n",
                        (uint64_t)atomic_load(&p->reload_failures));
    evbuffer_add_printf(out, "STAT last_reload %lld\r\n",
                        (long long)atomic_load(&p->last_reload));
    for (size_t i = 0; i < stats_nclient_defs; i++) {
        evbuffer_add_printf(out, "STAT %s %" PRIu64 "\r\n",
                            stats_client_defs[i].name,
                            stats_value(&sum, &stats_client_defs[i]));
    }
    evbuffer_add(out, "END\r\n", 5);
}

static void
admin_stats_backends(struct proxy *p, const struct topology *t,
                     struct evbuffer *out)
{
    for (uint32_t b = 0; b < t->n; b++) {
        const struct backend *be = t->backends[b];
        const char *name = be->name;
        struct stats_backend sum;

        pthread_mutex_lock(&p->stats_lock);
        backend_stats_sum(be, &sum);
        stats_subtract(&sum, &be->stats_base, stats_backend_defs,
                       stats_nbackend_defs);
        pthread_mutex_unlock(&p->stats_lock);
        evbuffer_add_printf(out, "STAT %s:address %s\r\n", name, be->addr);
        evbuffer_add_printf(out, "STAT %s:weight %g\r\n", name,
                            t->cfg->backends[b].weight);
        evbuffer_add_printf(out, "STAT %s:ring_share %.4f\r\n", name,
                            ring_backend_arc_share(t->ring, b));
        evbuffer_add_printf(out, "STAT %s:state %s\r\n", name,
                            backend_state_name(backend_state(be)));
        evbuffer_add_printf(out, "STAT %s:since %lld\r\n", name,
                            (long long)atomic_load(&be->since));
        evbuffer_add_printf(out, "STAT %s:transitions %" PRIu64 "\r\n", name,
                            (uint64_t)atomic_load(&be->transitions));
        for (size_t i = 0; i < stats_nbackend_defs; i++) {
            evbuffer_add_printf(out, "STAT %s:%s %" PRIu64 "\r\n", name,
                                stats_backend_defs[i].name,
                                stats_value(&sum, &stats_backend_defs[i]));
        }
    }
    evbuffer_add(out, "END\r\n", 5);
}

static void
admin_stats_settings(struct proxy *p, const struct topology *t,
                      struct evbuffer *out)
{
    const struct config *c = t->cfg;

    evbuffer_add_printf(out, "STAT config %s\r\n", c->path ? c->path : "");
    evbuffer_add_printf(out, "STAT listen %s\r\n", p->listen_addr);
    evbuffer_add_printf(out, "STAT threads %u\r\n", p->nworkers);
    evbuffer_add_printf(out, "STAT hash %s\r\n",
                        c->hash == RING_HASH_KETAMA ? "ketama" : "xxh3");
    evbuffer_add_printf(out, "STAT vnodes %u\r\n", c->vnodes);
    evbuffer_add_printf(out, "STAT timeout_ms %u\r\n", c->timeout_ms);
    evbuffer_add_printf(out, "STAT connect_timeout_ms %u\r\n",
                        c->connect_timeout_ms);
    evbuffer_add_printf(out, "STAT backend_connections %u\r\n",
                        c->backend_connections);
    evbuffer_add_printf(out, "STAT max_connections %u\r\n",
                        c->max_connections);
    evbuffer_add_printf(out, "STAT max_value_size %zu\r\n",
                        c->max_value_size);
    evbuffer_add_printf(out, "STAT max_keys %u\r\n", c->max_keys);
    evbuffer_add_printf(out, "STAT client_output_limit %zu\r\n",
                        c->client_output_limit);
    evbuffer_add_printf(out, "STAT health_interval_ms %u\r\n",
                        c->health_interval_ms);
    evbuffer_add_printf(out, "STAT health_timeout_ms %u\r\n",
                        c->health_timeout_ms);
    evbuffer_add_printf(out, "STAT health_rise %u\r\n", c->health_rise);
    evbuffer_add_printf(out, "STAT health_fall %u\r\n", c->health_fall);
    evbuffer_add_printf(out, "STAT recovery_log %u\r\n", c->recovery_log);
    evbuffer_add_printf(out, "STAT failover_ttl %u\r\n", c->failover_ttl);
    evbuffer_add(out, "END\r\n", 5);
}

void
admin_dispatch(struct request *req, const struct proto_req *pr)
{
    struct proxy *p = req->worker->proxy;
    const struct topology *t = req->wt->t;

    switch (pr->cmd) {
    case PROTO_CMD_VERSION:
        request_reply(req, "VERSION " PROXY_VERSION_STRING);
        return;
    case PROTO_CMD_VERBOSITY:
        /* 0: notices and worse (the default), 1: info, 2+: debug. */
        log_set_level(LOG_LEVEL_NOTICE + (int)(pr->level > 2 ? 2 : pr->level));
        request_reply(req, "OK");
        return;
    case PROTO_CMD_QUIT:
        req->closes = true;
        req->done = true;
        client_flush(req->client);
        return;
    case PROTO_CMD_STATS:
        if (pr->args.len == 0) {
            admin_stats(p, t, req->rsp);
        } else if (pr->args.len == 8 && memcmp(pr->args.p, "backends", 8) == 0) {
            admin_stats_backends(p, t, req->rsp);
        } else if (pr->args.len == 8 && memcmp(pr->args.p, "settings", 8) == 0) {
            admin_stats_settings(p, t, req->rsp);
        } else if (pr->args.len == 5 && memcmp(pr->args.p, "reset", 5) == 0) {
            admin_stats_reset(p, t);
            request_reply(req, "RESET");
            return;
        } else {
            request_reply(req, "ERROR");
            return;
        }
        req->done = true;
        client_flush(req->client);
        return;
    default:
        request_reply(req, "ERROR");
        return;
    }
}
