/*
 * stats: renders the `stats` and `stats backends` replies by summing the
 * per-worker counters (relaxed loads; a reply is a consistent-enough
 * snapshot, as memcached's own is).
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "health.h"
#include "proxy.h"
#include "stats.h"
#include "worker.h"

void
stats_render(struct proxy *p, struct evbuffer *out)
{
    struct stats_worker sum;
    uint64_t curr = 0;
    struct rusage ru;
    time_t now = time(NULL);

    memset(&sum, 0, sizeof(sum));
    for (unsigned i = 0; i < p->nworkers; i++) {
        struct stats_worker *s = &p->workers[i]->stats;

#define STATS_SUM(name) stats_add(&sum.name, stats_get(&s->name));
        STATS_CLIENT_FIELDS(STATS_SUM)
#undef STATS_SUM
        curr += stats_get(&s->curr_connections);
    }
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
                        p->cfg->max_connections);
    evbuffer_add_printf(out, "STAT curr_connections %" PRIu64 "\r\n", curr);
    evbuffer_add_printf(out, "STAT rejected_connections %" PRIu64 "\r\n",
                        (uint64_t)atomic_load(&p->rejected));
    evbuffer_add_printf(out, "STAT backends %u\r\n", p->nbackends);
#define STATS_PRINT(name)                                                    \
    evbuffer_add_printf(out, "STAT " #name " %" PRIu64 "\r\n",              \
                        stats_get(&sum.name));
    STATS_CLIENT_FIELDS(STATS_PRINT)
#undef STATS_PRINT
    evbuffer_add(out, "END\r\n", 5);
}

void
stats_render_backends(struct proxy *p, struct evbuffer *out)
{
    for (uint32_t b = 0; b < p->nbackends; b++) {
        const struct backend *be = &p->backends[b];
        struct stats_backend sum;

        memset(&sum, 0, sizeof(sum));
        for (unsigned i = 0; i < p->nworkers; i++) {
            struct stats_backend *s = &p->workers[i]->bstats[b];

#define STATS_SUM(name) stats_add(&sum.name, stats_get(&s->name));
            STATS_BACKEND_FIELDS(STATS_SUM)
            STATS_SUM(open_connections)
#undef STATS_SUM
        }
        evbuffer_add_printf(out, "STAT %s:address %s\r\n", be->cfg->name,
                            be->addr);
        evbuffer_add_printf(out, "STAT %s:weight %g\r\n", be->cfg->name,
                            be->cfg->weight);
        evbuffer_add_printf(out, "STAT %s:ring_share %.4f\r\n", be->cfg->name,
                            ring_backend_arc_share(p->ring, b));
        evbuffer_add_printf(out, "STAT %s:state %s\r\n", be->cfg->name,
                            health_state_name(atomic_load(&be->state)));
        evbuffer_add_printf(out, "STAT %s:since %lld\r\n", be->cfg->name,
                            (long long)atomic_load(&be->since));
        evbuffer_add_printf(out, "STAT %s:transitions %" PRIu64 "\r\n",
                            be->cfg->name,
                            (uint64_t)atomic_load(&be->transitions));
#define STATS_PRINT(field)                                                   \
    evbuffer_add_printf(out, "STAT %s:" #field " %" PRIu64 "\r\n",          \
                        be->cfg->name, stats_get(&sum.field));
        STATS_BACKEND_FIELDS(STATS_PRINT)
#undef STATS_PRINT
        evbuffer_add_printf(out, "STAT %s:connections %" PRIu64 "\r\n",
                            be->cfg->name, stats_get(&sum.open_connections));
    }
    evbuffer_add(out, "END\r\n", 5);
}
