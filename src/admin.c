/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin: the commands mcring answers itself, on the worker that read them:
 * version, verbosity, quit, and stats with its subcommands, rendered from
 * the per-worker counters (summed with relaxed loads; a reply is a
 * consistent-enough snapshot, as memcached's own is) and the backends of
 * the worker's current topology.
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
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
#include "config.h"
#include "copier.h"
#include "log.h"
#include "migrate.h"
#include "proto.h"
#include "ring.h"
#include "stats.h"
#include "request.h"
#include "topology.h"
#include "util.h"
#include "watch.h"
#include "worker.h"

static void
admin_stats_reset(struct worker_group *g, const struct topology *t)
{
    pthread_mutex_lock(&g->stats_lock);
    worker_group_sum_stats(g, g->stats_base);
    for (uint32_t b = 0; b < t->n; b++) {
        backend_stats_sum(t->backends[b], &t->backends[b]->stats_base);
    }
    g->rejected_base = atomic_load(&g->rejected);
    pthread_mutex_unlock(&g->stats_lock);
}

/* The migration's lines of `stats` (see migrate.h). */
static void
admin_stats_migration(const struct migrate_summary *ms,
                      const struct copier_progress *cp, struct evbuffer *out)
{
    evbuffer_add_printf(
        out,
        "STAT migrate_copy_running %d\r\n"
        "STAT migrate_copy_passes %" PRIu64 "\r\n"
        "STAT migrate_copy_scanned %" PRIu64 "\r\n"
        "STAT migrate_copy_copied %" PRIu64 "\r\n"
        "STAT migrate_copy_skipped %" PRIu64 "\r\n"
        "STAT migrate_copy_orphans %" PRIu64 "\r\n"
        "STAT migrate_copy_failed %" PRIu64 "\r\n",
        (int)atomic_load(&cp->running), (uint64_t)atomic_load(&cp->passes),
        (uint64_t)atomic_load(&cp->scanned),
        (uint64_t)atomic_load(&cp->copied),
        (uint64_t)atomic_load(&cp->skipped),
        (uint64_t)atomic_load(&cp->orphans),
        (uint64_t)atomic_load(&cp->failed));
    evbuffer_add_printf(
        out,
        "STAT migration_state %s\r\n"
        "STAT migrations %" PRIu64 "\r\n"
        "STAT migration_moves %u\r\n"
        "STAT migration_steps_done %u\r\n"
        "STAT migration_steps %u\r\n"
        "STAT migration_moved_share %.4f\r\n"
        "STAT migration_expected_end %lld\r\n",
        migrate_state_name((enum migrate_state)atomic_load_explicit(
            &ms->state, memory_order_relaxed)),
        (uint64_t)atomic_load_explicit(&ms->started, memory_order_relaxed),
        atomic_load_explicit(&ms->moves, memory_order_relaxed),
        atomic_load_explicit(&ms->steps_done, memory_order_relaxed),
        atomic_load_explicit(&ms->steps, memory_order_relaxed),
        (double)atomic_load_explicit(&ms->moved_ppm, memory_order_relaxed) /
            1e6,
        (long long)atomic_load_explicit(&ms->expected_end,
                                        memory_order_relaxed));
}

static void
admin_stats(struct worker_group *g, const struct topology *t,
            struct evbuffer *out)
{
    struct stats_worker sum;
    uint64_t rejected;
    struct rusage ru;
    time_t now = time(NULL);

    pthread_mutex_lock(&g->stats_lock);
    worker_group_sum_stats(g, &sum);
    stats_subtract(&sum, g->stats_base, stats_client_defs,
                   stats_nclient_defs);
    rejected = atomic_load(&g->rejected) - g->rejected_base;
    pthread_mutex_unlock(&g->stats_lock);
    getrusage(RUSAGE_SELF, &ru);
    evbuffer_add_printf(out, "STAT pid %ld\r\n", (long)getpid());
    evbuffer_add_printf(out, "STAT uptime %lld\r\n",
                        (long long)(now - g->start_time));
    evbuffer_add_printf(out, "STAT time %lld\r\n", (long long)now);
    evbuffer_add_printf(out, "STAT version %s\r\n", PROTO_VERSION_STRING);
    evbuffer_add_printf(out, "STAT pointer_size %d\r\n",
                        (int)(8 * sizeof(void *)));
    evbuffer_add_printf(out, "STAT rusage_user %ld.%06ld\r\n",
                        (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    evbuffer_add_printf(out, "STAT rusage_system %ld.%06ld\r\n",
                        (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    evbuffer_add_printf(out, "STAT threads %u\r\n", g->n);
    evbuffer_add_printf(out, "STAT max_connections %u\r\n",
                        atomic_load(&g->max_connections));
    evbuffer_add_printf(out, "STAT rejected_connections %" PRIu64 "\r\n",
                        rejected);
    evbuffer_add_printf(out, "STAT watchers %u\r\n", watch_count(g->watch));
    evbuffer_add_printf(out, "STAT backends %u\r\n", t->n);
    evbuffer_add_printf(out, "STAT topology_generation %" PRIu64 "\r\n",
                        t->generation);
    evbuffer_add_printf(out, "STAT reloads %" PRIu64 "\r\n",
                        (uint64_t)atomic_load(&g->reloads));
    evbuffer_add_printf(out, "STAT reload_failures %" PRIu64 "\r\n",
                        (uint64_t)atomic_load(&g->reload_failures));
    evbuffer_add_printf(out, "STAT last_reload %lld\r\n",
                        (long long)atomic_load(&g->last_reload));
    admin_stats_migration(migrate_summary(g->migrate),
                          migrate_copy_progress(g->migrate), out);
    for (size_t i = 0; i < stats_nclient_defs; i++) {
        evbuffer_add_printf(out, "STAT %s %" PRIu64 "\r\n",
                            stats_client_defs[i].name,
                            stats_value(&sum, &stats_client_defs[i]));
    }
    evbuffer_add(out, "END\r\n", 5);
}

static void
admin_stats_backends(struct worker_group *g, const struct topology *t,
                     struct evbuffer *out)
{
    for (uint32_t b = 0; b < t->n; b++) {
        const struct backend *be = t->backends[b];
        const char *name = be->name;
        struct stats_backend sum;

        pthread_mutex_lock(&g->stats_lock);
        backend_stats_sum(be, &sum);
        stats_subtract(&sum, &be->stats_base, stats_backend_defs,
                       stats_nbackend_defs);
        stats_histo_subtract(&sum.latency, &be->stats_base.latency);
        pthread_mutex_unlock(&g->stats_lock);
        evbuffer_add_printf(out, "STAT %s:address %s\r\n", name, be->addr);
        evbuffer_add_printf(out, "STAT %s:weight %g\r\n", name,
                            t->cfg->backends[b].weight);
        evbuffer_add_printf(out, "STAT %s:ring_share %.4f\r\n", name,
                            topology_share(t, b));
        if (t->npools > 1) {
            /* Its pools; ring_share is its share of the first one. */
            const char *sep = "";

            evbuffer_add_printf(out, "STAT %s:pools ", name);
            for (uint32_t k = 0; k < t->npools; k++) {
                if (topology_pool_member(&t->pools[k], b) != UINT32_MAX) {
                    evbuffer_add_printf(out, "%s%s", sep,
                                        topology_pool_name(&t->pools[k]));
                    sep = ",";
                }
            }
            evbuffer_add(out, "\r\n", 2);
        }
        evbuffer_add_printf(out, "STAT %s:state %s\r\n", name,
                            backend_state_name(backend_state(be)));
        evbuffer_add_printf(out, "STAT %s:since %lld\r\n", name,
                            (long long)atomic_load(&be->since));
        evbuffer_add_printf(out, "STAT %s:transitions %" PRIu64 "\r\n", name,
                            (uint64_t)atomic_load(&be->transitions));
        evbuffer_add_printf(out, "STAT %s:checks %" PRIu64 "\r\n", name,
                            (uint64_t)atomic_load(&be->checks));
        evbuffer_add_printf(out, "STAT %s:check_failures %" PRIu64 "\r\n",
                            name, (uint64_t)atomic_load(&be->check_failures));
        for (size_t i = 0; i < stats_nbackend_defs; i++) {
            evbuffer_add_printf(out, "STAT %s:%s %" PRIu64 "\r\n", name,
                                stats_backend_defs[i].name,
                                stats_value(&sum, &stats_backend_defs[i]));
        }
        /* Latency quantiles in microseconds (0: nothing measured yet). */
        evbuffer_add_printf(
            out, "STAT %s:latency_p50_us %.0f\r\n", name,
            fmax(0, stats_histo_quantile(&sum.latency, 0.5)));
        evbuffer_add_printf(
            out, "STAT %s:latency_p99_us %.0f\r\n", name,
            fmax(0, stats_histo_quantile(&sum.latency, 0.99)));
    }
    evbuffer_add(out, "END\r\n", 5);
}

/* `stats hotkeys`: per rank, the key (base64 when it is binary), its
 * estimated requests per second, its share of its backend's requests and
 * that backend. */
static void
admin_stats_hotkeys(struct worker_group *g, const struct topology *t,
                    struct evbuffer *out)
{
    struct hotkeys_merged m;
    uint32_t n;
    struct worker_hotkey *hk = worker_group_hotkeys(g, t, &m, &n);

    for (uint32_t i = 0; i < n; i++) {
        char b64[PROTO_BASE64_LEN(HOTKEYS_KEY_MAX) + 1];
        bool binary = !proto_key_classic(hk[i].key, hk[i].len);

        if (binary) {
            proto_base64_encode(hk[i].key, hk[i].len, b64);
            evbuffer_add_printf(out, "STAT hotkey:%u:key %s\r\n", i + 1, b64);
            evbuffer_add_printf(out, "STAT hotkey:%u:binary 1\r\n", i + 1);
        } else {
            evbuffer_add_printf(out, "STAT hotkey:%u:key %.*s\r\n", i + 1,
                                (int)hk[i].len, hk[i].key);
        }
        evbuffer_add_printf(out, "STAT hotkey:%u:rate %.1f\r\n", i + 1,
                            hk[i].rate);
        evbuffer_add_printf(out, "STAT hotkey:%u:share %.4f\r\n", i + 1,
                            hk[i].share);
        evbuffer_add_printf(out, "STAT hotkey:%u:backend %s\r\n", i + 1,
                            hk[i].owner != NULL ? hk[i].owner->name : "");
    }
    free(hk);
    hotkeys_merged_free(&m);
    evbuffer_add(out, "END\r\n", 5);
}

/*
 * `stats settings`, from the config key table: [proxy] keys by their name,
 * other sections' keys as SECTION_NAME; threads is the running count.
 */
static void
admin_stats_settings(struct worker_group *g, const struct topology *t,
                     struct evbuffer *out)
{
    const struct config *c = t->cfg;

    evbuffer_add_printf(out, "STAT config %s\r\n", c->path ? c->path : "");
    for (size_t i = 0; i < config_nkeys(); i++) {
        const char *section, *name;
        char value[256];

        if (config_key_format(c, i, &section, &name, value, sizeof(value)) !=
            0) {
            continue;
        }
        if (strcmp(section, "proxy") != 0) {
            evbuffer_add_printf(out, "STAT %s_%s %s\r\n", section, name,
                                value);
        } else if (strcmp(name, "threads") == 0) {
            evbuffer_add_printf(out, "STAT threads %u\r\n", g->n);
        } else {
            evbuffer_add_printf(out, "STAT %s %s\r\n", name, value);
        }
    }
    evbuffer_add(out, "END\r\n", 5);
}

static bool
admin_is(const struct proto_str *arg, const char *word)
{
    return arg->len == strlen(word) && memcmp(arg->p, word, arg->len) == 0;
}

bool
admin_owns_stats(const struct proto_str *args)
{
    return args->len == 0 || admin_is(args, "backends") ||
           admin_is(args, "settings") || admin_is(args, "reset") ||
           admin_is(args, "hotkeys");
}

/*
 * lru_crawler metadump and mgdump, as memcached reads them: the word and
 * one more. Their answer streams until the crawl ends, on a connection
 * memcached then reads nothing else from.
 */
static const char *
admin_dump_refusal(const struct proto_req *pr)
{
    const char *p = pr->args.p, *end = p + pr->args.len;
    const char *sp = memchr(p, ' ', pr->args.len);
    struct proto_str word;

    if (pr->cmd != PROTO_CMD_LRU_CRAWLER || sp == NULL) {
        return NULL;
    }
    word = (struct proto_str){p, (size_t)(sp - p)};
    while (sp < end && *sp == ' ') {
        sp++;
    }
    if (sp == end || memchr(sp, ' ', (size_t)(end - sp)) != NULL) {
        return NULL; /* not two words: memcached's ERROR */
    }
    if (admin_is(&word, "metadump")) {
        return "ERROR metadump not allowed\r\n";
    }
    if (admin_is(&word, "mgdump")) {
        return "ERROR key dump not allowed\r\n";
    }
    return NULL;
}

bool
admin_owns_tuning(const struct proto_req *pr)
{
    return admin_dump_refusal(pr) != NULL;
}

/* One STAT name of a merge: its total, or its first value. */
struct admin_stat {
    const char *name;               /* into a frag's buffer */
    size_t namelen;
    const char *value;
    size_t valuelen;
    bool number;
    bool real;
    double sum;
    uint64_t isum;
};

/* A decimal integer (u64) or a plain decimal fraction. */
static bool
admin_number(const char *p, size_t len, bool *real, uint64_t *u, double *d)
{
    char buf[64];
    char *end;

    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (strspn(buf, "0123456789") == len) {
        errno = 0;
        *u = strtoull(buf, &end, 10);
        *real = false;
        return errno == 0;
    }
    if (strspn(buf, "0123456789.") == len && strchr(buf, '.') ==
                                                 strrchr(buf, '.')) {
        *d = strtod(buf, &end);
        *real = true;
        return *end == '\0';
    }
    return false;
}

/* An answer that is none (a noreply) or OK. */
static bool
admin_plain(struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);

    return len == 0 ||
           (len == 4 && memcmp(evbuffer_pullup(b, 4), "OK\r\n", 4) == 0);
}

/* Of the frags' answers (the failed ones' only, if failed), the first that
 * is not plain, else the first; NULL if there is none. */
static struct evbuffer *
admin_pick(const struct frag *frags, uint32_t n, bool failed)
{
    struct evbuffer *pick = NULL;

    for (uint32_t fi = 0; fi < n; fi++) {
        struct evbuffer *b = frags[fi].buf;

        if (b != NULL && (!failed || frags[fi].failed) &&
            (pick == NULL || (admin_plain(pick) && !admin_plain(b)))) {
            pick = b;
        }
    }
    return pick;
}

void
admin_merge_answers(const struct frag *frags, uint32_t n,
                    struct evbuffer *out)
{
    struct evbuffer *pick = admin_pick(frags, n, false);

    if (pick == NULL) {
        evbuffer_add_printf(out, "SERVER_ERROR no backend available\r\n");
    } else {
        evbuffer_add_buffer(out, pick);
    }
}

void
admin_merge_stats(const struct frag *frags, uint32_t n, struct evbuffer *out)
{
    struct admin_stat *st = NULL;
    size_t nst = 0, cap = 0;
    struct evbuffer *other = evbuffer_new();
    bool any = false;

    for (uint32_t fi = 0; fi < n; fi++) {
        const struct frag *f = &frags[fi];
        size_t len = f->buf != NULL ? evbuffer_get_length(f->buf) : 0;
        const char *p = len > 0 ? (const char *)evbuffer_pullup(
                                      f->buf, (ev_ssize_t)len)
                                : NULL;
        const char *end = p + len;

        if (f->failed) {
            continue; /* a one-line answer: see below */
        }
        any = true;
        while (p != NULL && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ll = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
            size_t body = ll;
            const char *name, *sp, *value;
            bool real = false;
            uint64_t u = 0;
            double d = 0;
            size_t i;

            while (body > 0 && (p[body - 1] == '\n' || p[body - 1] == '\r')) {
                body--;
            }
            if (body < 5 || memcmp(p, "STAT ", 5) != 0 ||
                (sp = memchr(p + 5, ' ', body - 5)) == NULL) {
                evbuffer_add(other, p, ll);
                p += ll;
                continue;
            }
            name = p + 5;
            value = sp + 1;
            for (i = 0; i < nst; i++) {
                if (st[i].namelen == (size_t)(sp - name) &&
                    memcmp(st[i].name, name, st[i].namelen) == 0) {
                    break;
                }
            }
            if (i == nst) {
                if (nst == cap) {
                    cap = cap ? cap * 2 : 64;
                    st = util_xrealloc(st, cap, sizeof(*st));
                }
                memset(&st[nst], 0, sizeof(st[nst]));
                st[nst].name = name;
                st[nst].namelen = (size_t)(sp - name);
                st[nst].value = value;
                st[nst].valuelen = (size_t)(p + body - value);
                st[nst].number = admin_number(value, st[nst].valuelen,
                                              &st[nst].real, &st[nst].isum,
                                              &st[nst].sum);
                nst++;
            } else if (st[i].number &&
                       admin_number(value, (size_t)(p + body - value), &real,
                                    &u, &d) &&
                       real == st[i].real) {
                st[i].isum += u;
                st[i].sum += d;
            }
            p += ll;
        }
    }
    if (!any) {
        /* The first one-line answer, an OK only if all said OK. */
        struct evbuffer *error = admin_pick(frags, n, true);

        if (error != NULL && evbuffer_get_length(error) > 0) {
            evbuffer_add_buffer(out, error);
        } else {
            evbuffer_add_printf(out, "SERVER_ERROR no backend available\r\n");
        }
    } else {
        for (size_t i = 0; i < nst; i++) {
            const struct admin_stat *a = &st[i];

            if (a->number && a->real) {
                evbuffer_add_printf(out, "STAT %.*s %.6f\r\n",
                                    (int)a->namelen, a->name, a->sum);
            } else if (a->number) {
                evbuffer_add_printf(out, "STAT %.*s %" PRIu64 "\r\n",
                                    (int)a->namelen, a->name, a->isum);
            } else {
                evbuffer_add_printf(out, "STAT %.*s %.*s\r\n",
                                    (int)a->namelen, a->name,
                                    (int)a->valuelen, a->value);
            }
        }
        evbuffer_add_buffer(out, other);
        evbuffer_add(out, "END\r\n", 5);
    }
    evbuffer_free(other);
    free(st);
}

void
admin_stats_lines(struct worker_group *g, const struct topology *t,
                  bool backends, struct evbuffer *out)
{
    if (backends) {
        admin_stats_backends(g, t, out);
    } else {
        admin_stats(g, t, out);
    }
}

bool
admin_answer(struct worker_group *g, const struct topology *t,
             const struct proto_req *pr, struct evbuffer *out)
{
    switch (pr->cmd) {
    case PROTO_CMD_VERSION:
        evbuffer_add_printf(out, "VERSION %s\r\n", PROTO_VERSION_STRING);
        return false;
    case PROTO_CMD_QUIT:
        return true;
    case PROTO_CMD_MN:
        evbuffer_add(out, "MN\r\n", 4);
        return false;
    case PROTO_CMD_SHUTDOWN:
        /* What memcached says when started without -A. */
        evbuffer_add(out, "ERROR: shutdown not enabled\r\n", 29);
        return false;
    case PROTO_CMD_STATS:
        if (pr->args.len == 0) {
            admin_stats(g, t, out);
        } else if (admin_is(&pr->args, "backends")) {
            admin_stats_backends(g, t, out);
        } else if (admin_is(&pr->args, "settings")) {
            admin_stats_settings(g, t, out);
        } else if (admin_is(&pr->args, "hotkeys")) {
            admin_stats_hotkeys(g, t, out);
        } else if (admin_is(&pr->args, "reset")) {
            admin_stats_reset(g, t);
            evbuffer_add(out, "RESET\r\n", 7);
        }
        return false;
    default: {
        const char *refusal = admin_dump_refusal(pr);

        evbuffer_add_printf(out, "%s", refusal != NULL ? refusal : "ERROR\r\n");
        return false;
    }
    }
}
