/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * metrics: see metrics.h.
 *
 * Names: mcring_ and the stats table's name, _total for counters (a few
 * client counters get a clearer name, see metrics_client_names); per
 * backend mcring_backend_*{backend="NAME"}; per command
 * mcring_command_*{command="get"}; the latency histogram in seconds.
 */
#include "autoconf.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "admin.h"
#include "backend.h"
#include "config.h"
#include "copier.h"
#include "health.h"
#include "hotkeys.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "migrate.h"
#include "proto.h"
#include "recovery.h"
#include "ring.h"
#include "stats.h"
#include "topology.h"
#include "util.h"
#include "watch.h"
#include "worker.h"

/* Client counters whose table name says less than it should here. */
static const char *const metrics_client_names[][2] = {
    {"curr_connections", "client_connections"},
    {"total_connections", "client_connections_accepted"},
    {"bytes_read", "client_bytes_read"},
    {"bytes_written", "client_bytes_written"},
};

static void
metrics_head(struct evbuffer *out, const char *name, const char *type,
             const char *help)
{
    evbuffer_add_printf(out, "# HELP mcring_%s %s\n# TYPE mcring_%s %s\n",
                        name, help, name, type);
}

/* A label value of len bytes, escaped as the format asks (\\, \", \n);
 * a byte that is not printable ASCII is written \\xNN, so the value is
 * valid UTF-8 whatever the key. */
static void
metrics_label_n(struct evbuffer *out, const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];

        if (c == '\\' || c == '"') {
            evbuffer_add_printf(out, "\\%c", c);
        } else if (c == '\n') {
            evbuffer_add(out, "\\n", 2);
        } else if (c < 0x20 || c > 0x7e) {
            evbuffer_add_printf(out, "\\\\x%02x", c);
        } else {
            evbuffer_add(out, &v[i], 1);
        }
    }
}

static void
metrics_label(struct evbuffer *out, const char *v)
{
    metrics_label_n(out, v, strlen(v));
}

/* One sample: mcring_NAME{KEY="VALUE"} (no label when key is NULL). */
static void
metrics_sample(struct evbuffer *out, const char *name, const char *key,
               const char *value, double v)
{
    evbuffer_add_printf(out, "mcring_%s", name);
    if (key != NULL) {
        evbuffer_add_printf(out, "{%s=\"", key);
        metrics_label(out, value);
        evbuffer_add(out, "\"}", 2);
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        evbuffer_add_printf(out, " %.0f\n", v);
    } else {
        evbuffer_add_printf(out, " %.17g\n", v);
    }
}

/* A sample with a backend label and one more (key2 NULL: none). */
static void
metrics_sample2(struct evbuffer *out, const char *name, const char *backend,
                const char *key2, const char *value2, const char *v)
{
    evbuffer_add_printf(out, "mcring_%s{backend=\"", name);
    metrics_label(out, backend);
    if (key2 != NULL) {
        evbuffer_add_printf(out, "\",%s=\"", key2);
        metrics_label(out, value2);
    }
    evbuffer_add_printf(out, "\"} %s\n", v);
}

static void
metrics_one(struct evbuffer *out, const char *name, const char *type,
            const char *help, double v)
{
    metrics_head(out, name, type, help);
    metrics_sample(out, name, NULL, NULL, v);
}

static void
metrics_process(const struct metrics_view *v, struct evbuffer *out)
{
    struct rusage ru;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    DIR *d = opendir("/proc/self/fd");
    unsigned fds = 0;

    getrusage(RUSAGE_SELF, &ru);
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    if (d != NULL) {
        struct dirent *e;

        while ((e = readdir(d)) != NULL) {
            fds += e->d_name[0] != '.';
        }
        closedir(d);
        fds--; /* the directory's own */
    }
    metrics_head(out, "build_info", "gauge", "mcring's version (always 1)");
    metrics_sample(out, "build_info", "version", PROTO_VERSION_STRING, 1);
    metrics_one(out, "process_start_time_seconds", "gauge",
                "Start time of the process, seconds since the epoch",
                (double)v->group->start_time);
    metrics_one(out, "process_cpu_seconds_total", "counter",
                "User and system CPU time spent",
                (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    metrics_one(out, "process_resident_memory_bytes", "gauge",
                "Resident memory size",
                (double)rss * (double)sysconf(_SC_PAGESIZE));
    metrics_one(out, "process_open_fds", "gauge", "Open file descriptors",
                (double)fds);
}

/* The client counters, summed over the workers (sum). */
static void
metrics_clients(const struct metrics_view *v, const struct stats_worker *sum,
                struct evbuffer *out)
{
    static const struct {
        const char *command;
        size_t hits, misses;
    } hm[] = {
        {"get", offsetof(struct stats_worker, get_hits),
         offsetof(struct stats_worker, get_misses)},
        {"delete", offsetof(struct stats_worker, delete_hits),
         offsetof(struct stats_worker, delete_misses)},
        {"incr", offsetof(struct stats_worker, incr_hits),
         offsetof(struct stats_worker, incr_misses)},
        {"decr", offsetof(struct stats_worker, decr_hits),
         offsetof(struct stats_worker, decr_misses)},
        {"cas", offsetof(struct stats_worker, cas_hits),
         offsetof(struct stats_worker, cas_misses)},
        {"touch", offsetof(struct stats_worker, touch_hits),
         offsetof(struct stats_worker, touch_misses)},
    };

    for (size_t i = 0; i < stats_nclient_defs; i++) {
        const struct stats_def *d = &stats_client_defs[i];
        bool counter = d->type == STATS_COUNTER;
        char name[96];
        const char *base = d->name;

        for (size_t k = 0; k < UTIL_ARRAY_SIZE(metrics_client_names); k++) {
            if (strcmp(base, metrics_client_names[k][0]) == 0) {
                base = metrics_client_names[k][1];
            }
        }
        snprintf(name, sizeof(name), "%s%s", base, counter ? "_total" : "");
        metrics_one(out, name, counter ? "counter" : "gauge", d->help,
                    (double)stats_value(sum, d));
    }
    metrics_one(out, "client_connections_refused_total", "counter",
                "Client connections closed at once: max_connections reached",
                (double)atomic_load(&v->group->rejected));
    metrics_one(out, "max_connections", "gauge",
                "Client connections allowed at once",
                (double)atomic_load(&v->group->max_connections));
    metrics_one(out, "watchers", "gauge",
                "Request streams open now (watch, GET /watch)",
                (double)watch_count(v->group->watch));
    metrics_head(out, "command_requests_total", "counter",
                 "Client commands, by command (a multi-key get is one)");
    for (int c = 1; c < PROTO_CMD_COUNT; c++) {
        metrics_sample(out, "command_requests_total", "command",
                       proto_cmd_name((enum proto_cmd)c),
                       (double)stats_get(&sum->commands[c]));
    }
    metrics_head(out, "command_hits_total", "counter",
                 "Keys found, by command (get: every retrieval)");
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(hm); i++) {
        metrics_sample(
            out, "command_hits_total", "command", hm[i].command,
            (double)stats_get((const _Atomic uint64_t *)(const void *)(
                (const char *)sum + hm[i].hits)));
    }
    metrics_head(out, "command_misses_total", "counter",
                 "Keys not found, by command (get: every retrieval)");
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(hm); i++) {
        metrics_sample(
            out, "command_misses_total", "command", hm[i].command,
            (double)stats_get((const _Atomic uint64_t *)(const void *)(
                (const char *)sum + hm[i].misses)));
    }
}

/* A per-backend value that is not in the stats table. */
struct metrics_backend_value {
    const char *name, *type, *help;
    double (*get)(const struct topology *t, uint32_t b);
};

static double
metrics_transitions(const struct topology *t, uint32_t b)
{
    return (double)atomic_load(&t->backends[b]->transitions);
}

static double
metrics_checks(const struct topology *t, uint32_t b)
{
    return (double)atomic_load(&t->backends[b]->checks);
}

static double
metrics_check_failures(const struct topology *t, uint32_t b)
{
    return (double)atomic_load(&t->backends[b]->check_failures);
}

static double
metrics_weight(const struct topology *t, uint32_t b)
{
    return t->cfg->backends[b].weight;
}

static double
metrics_ring_share(const struct topology *t, uint32_t b)
{
    return topology_share(t, b);
}

static double
metrics_recovery_keys(const struct topology *t, uint32_t b)
{
    struct recovery *r = t->backends[b]->recovery;

    return r != NULL ? (double)recovery_size(r) : 0;
}

static const struct metrics_backend_value metrics_backend_values[] = {
    {"backend_transitions_total", "counter", "State changes of the backend",
     metrics_transitions},
    {"backend_checks_total", "counter",
     "Health checks of the backend answered or failed", metrics_checks},
    {"backend_check_failures_total", "counter",
     "Health checks of the backend that failed", metrics_check_failures},
    {"backend_weight", "gauge", "Weight on the ring", metrics_weight},
    {"backend_ring_share", "gauge",
     "Share of the ring (of the keys) the backend owns", metrics_ring_share},
    {"backend_recovery_log_keys", "gauge",
     "Keys written to fallbacks while the backend was DOWN, to delete "
     "before it serves again",
     metrics_recovery_keys},
};

/* Per backend: one family at a time, a sample per backend. */
static void
metrics_backends(const struct topology *t, struct evbuffer *out)
{
    struct stats_backend *sums = util_xcalloc(t->n ? t->n : 1, sizeof(*sums));
    static const struct {
        const char *reason;
        size_t off;                 /* in struct stats_backend */
    } reasons[] = {
        {"closed", offsetof(struct stats_backend, errors_closed)},
        {"protocol", offsetof(struct stats_backend, errors_protocol)},
        {"timeout", offsetof(struct stats_backend, errors_timeout)},
        {"unavailable", offsetof(struct stats_backend, errors_unavailable)},
        {"overloaded", offsetof(struct stats_backend, errors_overloaded)},
        {"server", offsetof(struct stats_backend, errors_server)},
    };
    static const int states[] = {BACKEND_UP, BACKEND_DOWN, BACKEND_RECOVERING,
                                 BACKEND_NEW, BACKEND_MAINT};

    for (uint32_t b = 0; b < t->n; b++) {
        backend_stats_sum(t->backends[b], &sums[b]);
    }
    for (size_t i = 0; i < stats_nbackend_defs; i++) {
        const struct stats_def *d = &stats_backend_defs[i];
        bool counter = d->type == STATS_COUNTER;
        char name[96];

        if (strncmp(d->name, "errors", 6) == 0) {
            continue; /* by reason, below */
        }
        snprintf(name, sizeof(name), "backend_%s%s", d->name,
                 counter ? "_total" : "");
        metrics_head(out, name, counter ? "counter" : "gauge", d->help);
        for (uint32_t b = 0; b < t->n; b++) {
            metrics_sample(out, name, "backend", t->backends[b]->name,
                           (double)stats_value(&sums[b], d));
        }
    }
    metrics_head(out, "backend_errors_total", "counter",
                 "Requests to the backend that failed, by reason");
    for (uint32_t b = 0; b < t->n; b++) {
        for (size_t r = 0; r < UTIL_ARRAY_SIZE(reasons); r++) {
            char v[24];

            snprintf(v, sizeof(v), "%" PRIu64,
                     stats_get((const _Atomic uint64_t *)(const void *)(
                         (const char *)&sums[b] + reasons[r].off)));
            metrics_sample2(out, "backend_errors_total", t->backends[b]->name,
                            "reason", reasons[r].reason, v);
        }
    }
    metrics_head(out, "backend_state", "gauge",
                 "1 for the state the backend is in, 0 for the others");
    for (uint32_t b = 0; b < t->n; b++) {
        int now = backend_state(t->backends[b]);

        for (size_t s = 0; s < UTIL_ARRAY_SIZE(states); s++) {
            metrics_sample2(out, "backend_state", t->backends[b]->name,
                            "state", backend_state_name(states[s]),
                            now == states[s] ? "1" : "0");
        }
    }
    for (size_t f = 0; f < UTIL_ARRAY_SIZE(metrics_backend_values); f++) {
        const struct metrics_backend_value *v = &metrics_backend_values[f];

        metrics_head(out, v->name, v->type, v->help);
        for (uint32_t b = 0; b < t->n; b++) {
            metrics_sample(out, v->name, "backend", t->backends[b]->name,
                           v->get(t, b));
        }
    }
    metrics_head(out, "backend_latency_seconds", "histogram",
                 "Time from a request queued to the backend to its reply "
                 "read");
    for (uint32_t b = 0; b < t->n; b++) {
        const struct stats_histo *h = &sums[b].latency;
        uint64_t cum = 0;

        for (unsigned i = 0; i <= STATS_HISTO_BUCKETS; i++) {
            char le[24], v[24];

            cum += stats_get(&h->bucket[i]);
            if (i < STATS_HISTO_BUCKETS) {
                snprintf(le, sizeof(le), "%g", stats_histo_bounds_us[i] / 1e6);
            } else {
                snprintf(le, sizeof(le), "+Inf");
            }
            snprintf(v, sizeof(v), "%" PRIu64, cum);
            metrics_sample2(out, "backend_latency_seconds_bucket",
                            t->backends[b]->name, "le", le, v);
        }
        metrics_sample(out, "backend_latency_seconds_sum", "backend",
                       t->backends[b]->name,
                       (double)stats_get(&h->sum_us) / 1e6);
        metrics_sample(out, "backend_latency_seconds_count", "backend",
                       t->backends[b]->name, (double)cum);
    }
    free(sums);
}

static void
metrics_topology(const struct metrics_view *v, struct evbuffer *out)
{
    const struct topology *t = v->t;
    const struct migrate_summary *ms = migrate_summary(v->group->migrate);
    const struct copier_progress *cp =
        migrate_copy_progress(v->group->migrate);
    static const enum migrate_state states[] = {
        MIGRATE_IDLE, MIGRATE_RUNNING, MIGRATE_PAUSED, MIGRATE_ROLLBACK,
        MIGRATE_WARMUP};
    int state = atomic_load(&ms->state);
    static const struct {
        const char *name;
        size_t off;
        const char *help;
    } copy[] = {
        {"migration_copy_scanned_total",
         offsetof(struct copier_progress, scanned),
         "Keys listed by the background copy's metadumps"},
        {"migration_copy_copied_total",
         offsetof(struct copier_progress, copied),
         "Keys the background copy moved to their owner"},
        {"migration_copy_skipped_total",
         offsetof(struct copier_progress, skipped),
         "Keys the background copy left (gone, newer on the owner, owner "
         "not UP)"},
        {"migration_copy_orphans_total",
         offsetof(struct copier_progress, orphans),
         "Keys held where they never belonged during a move: deleted"},
        {"migration_copy_failed_total",
         offsetof(struct copier_progress, failed),
         "Errors of the background copy"},
    };

    metrics_one(out, "backends", "gauge", "Backends configured",
                (double)t->n);
    metrics_one(out, "topology_generation", "gauge",
                "Generation of the topology in use", (double)t->generation);
    metrics_one(out, "reloads_total", "counter", "Topology changes applied",
                (double)atomic_load(&v->group->reloads));
    metrics_one(out, "reload_failures_total", "counter",
                "Reloads and changes refused",
                (double)atomic_load(&v->group->reload_failures));
    metrics_one(out, "last_reload_timestamp_seconds", "gauge",
                "Time of the last topology change (0: none)",
                (double)atomic_load(&v->group->last_reload));
    metrics_head(out, "migration_state", "gauge",
                 "1 for the state of the migration, 0 for the others");
    for (size_t s = 0; s < UTIL_ARRAY_SIZE(states); s++) {
        metrics_sample(out, "migration_state", "state",
                       migrate_state_name(states[s]), (int)states[s] == state);
    }
    metrics_one(out, "migrations_total", "counter", "Moves begun",
                (double)atomic_load(&ms->started));
    metrics_one(out, "migration_steps_done", "gauge",
                "Steps of the move in progress done",
                (double)atomic_load(&ms->steps_done));
    metrics_one(out, "migration_steps", "gauge",
                "Steps of the move in progress",
                (double)atomic_load(&ms->steps));
    metrics_one(out, "migration_moved_share", "gauge",
                "Share of the keys whose owner differs from before the move",
                (double)atomic_load(&ms->moved_ppm) / 1e6);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(copy); i++) {
        metrics_one(out, copy[i].name, "counter", copy[i].help,
                    (double)atomic_load((const _Atomic uint64_t *)(
                        const void *)((const char *)cp + copy[i].off)));
    }
}

/* The hot keys, as gauges labelled by key and owner. */
static void
metrics_hot(const struct metrics_view *v, struct evbuffer *out)
{
    const struct topology *t = v->t;
    struct hotkeys_merged m;
    uint32_t n;
    struct worker_hotkey *hk = worker_group_hotkeys(v->group, t, &m, &n);
    static const char *const fams[][2] = {
        {"hotkey_requests_per_second",
         "Estimated requests per second of a hot key (sampled)"},
        {"hotkey_backend_share",
         "A hot key's share of its backend's requests (sampled)"},
    };

    for (size_t f = 0; f < UTIL_ARRAY_SIZE(fams); f++) {
        metrics_head(out, fams[f][0], "gauge", fams[f][1]);
        for (uint32_t i = 0; i < n; i++) {
            evbuffer_add_printf(out, "mcring_%s{key=\"", fams[f][0]);
            metrics_label_n(out, hk[i].key, hk[i].len);
            evbuffer_add(out, "\",backend=\"", 11);
            metrics_label(out, hk[i].owner != NULL ? hk[i].owner->name : "");
            evbuffer_add_printf(out, "\"} %.6g\n",
                                f == 0 ? hk[i].rate : hk[i].share);
        }
    }
    free(hk);
    hotkeys_merged_free(&m);
}

/* A sample labelled pool (and backend when not NULL). */
static void
metrics_pool_sample(struct evbuffer *out, const char *name, const char *pool,
                    const char *backend, double v)
{
    evbuffer_add_printf(out, "mcring_%s{pool=\"", name);
    metrics_label(out, pool);
    if (backend != NULL) {
        evbuffer_add_printf(out, "\",backend=\"");
        metrics_label(out, backend);
    }
    evbuffer_add_printf(out, "\"} %.17g\n", v);
}

/* Per pool: its keys (of sum), backends, replicas and each member's
 * share. */
static void
metrics_pools(const struct stats_worker *sum, const struct topology *t,
              struct evbuffer *out)
{
    metrics_head(out, "pool_keys_total", "counter",
                 "Keys routed to the pool (by prefix, else the default)");
    for (uint32_t i = 0; i < t->npools; i++) {
        metrics_pool_sample(out, "pool_keys_total",
                            topology_pool_name(&t->pools[i]), NULL,
                            (double)stats_get(
                                &sum->pool_keys[t->pools[i].id]));
    }
    metrics_head(out, "pool_backends", "gauge", "Backends of the pool");
    for (uint32_t i = 0; i < t->npools; i++) {
        metrics_pool_sample(out, "pool_backends",
                            topology_pool_name(&t->pools[i]), NULL,
                            t->pools[i].n);
    }
    metrics_head(out, "pool_backends_up", "gauge",
                 "Backends of the pool that are UP");
    for (uint32_t i = 0; i < t->npools; i++) {
        unsigned up = 0;

        for (uint32_t j = 0; j < t->pools[i].n; j++) {
            up += backend_is_up(t->pools[i].be[j]);
        }
        metrics_pool_sample(out, "pool_backends_up",
                            topology_pool_name(&t->pools[i]), NULL, up);
    }
    metrics_head(out, "pool_replicas", "gauge",
                 "Copies of each key the pool keeps");
    for (uint32_t i = 0; i < t->npools; i++) {
        metrics_pool_sample(out, "pool_replicas",
                            topology_pool_name(&t->pools[i]), NULL,
                            t->pools[i].replicas);
    }
    metrics_head(out, "pool_ring_share", "gauge",
                 "Share of the pool's keys the backend owns");
    for (uint32_t i = 0; i < t->npools; i++) {
        const struct topology_pool *tp = &t->pools[i];

        for (uint32_t j = 0; j < tp->n; j++) {
            metrics_pool_sample(out, "pool_ring_share",
                                topology_pool_name(tp), tp->be[j]->name,
                                ring_backend_arc_share(tp->ring, j));
        }
    }
}

void
metrics_prometheus(const struct metrics_view *v, struct evbuffer *out)
{
    const struct topology *t = v->t;
    struct stats_worker *sum = util_xcalloc(1, sizeof(*sum));

    worker_group_sum_stats(v->group, sum);
    metrics_process(v, out);
    metrics_clients(v, sum, out);
    metrics_topology(v, out);
    metrics_backends(t, out);
    metrics_pools(sum, t, out);
    metrics_hot(v, out);
    free(sum);
}

/* A key for JSON: itself when printable ASCII, else its base64. */
static json_t *
metrics_key_json(const char *key, size_t len, bool *binary)
{
    char b64[PROTO_BASE64_LEN(HOTKEYS_KEY_MAX) + 1];

    *binary = false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] > 0x7e) {
            *binary = true;
        }
    }
    if (!*binary) {
        return json_stringn(key, len);
    }
    proto_base64_encode(key, len, b64);
    return json_string(b64);
}

json_t *
metrics_hotkeys_json(const struct metrics_view *v)
{
    const struct topology *t = v->t;
    struct hotkeys_merged m;
    uint32_t n;
    struct worker_hotkey *hk = worker_group_hotkeys(v->group, t, &m, &n);
    json_t *keys = json_array();

    for (uint32_t i = 0; i < n; i++) {
        bool binary;
        json_t *k = metrics_key_json(hk[i].key, hk[i].len, &binary);
        json_t *e = json_pack("{s:o, s:f, s:f, s:o}", "key", k, "rate",
                              hk[i].rate, "share", hk[i].share, "backend",
                              hk[i].owner != NULL
                                  ? json_string(hk[i].owner->name)
                                  : json_null());

        if (binary) {
            json_object_set_new(e, "binary", json_true());
        }
        json_array_append_new(keys, e);
    }
    free(hk);
    hotkeys_merged_free(&m);
    return json_pack("{s:i, s:i, s:f, s:o}", "hotkeys",
                     (json_int_t)t->cfg->hotkeys, "sample",
                     (json_int_t)t->cfg->hotkey_sample, "seconds", m.seconds,
                     "keys", keys);
}

/* A key logged as hot: when, so that it is logged again only after a
 * while. */
struct metrics_alert {
    uint64_t hash;
    time_t at;
    bool seen;                      /* above the threshold in this round */
};

struct metrics_alerts {
    struct metrics_alert *a;
    size_t n, cap;
};

#define METRICS_ALERT_AGAIN_S 300
/* Samples a key needs before its share is trusted. */
#define METRICS_ALERT_MIN_SAMPLES 20

struct metrics_alerts *
metrics_alerts_create(void)
{
    return util_xcalloc(1, sizeof(struct metrics_alerts));
}

void
metrics_alerts_destroy(struct metrics_alerts *a)
{
    if (a != NULL) {
        free(a->a);
        free(a);
    }
}

void
metrics_alert_hotkeys(const struct metrics_view *v, struct metrics_alerts *a)
{
    const struct topology *t = v->t;
    unsigned pct = t->cfg->hotkey_alert;
    struct hotkeys_merged m;
    uint32_t n;
    struct worker_hotkey *hk;
    time_t now = time(NULL);
    size_t keep = 0;

    if (pct == 0 || t->cfg->hotkeys == 0) {
        a->n = 0;
        return;
    }
    hk = worker_group_hotkeys(v->group, t, &m, &n);
    for (size_t j = 0; j < a->n; j++) {
        a->a[j].seen = false;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t j;

        if (hk[i].share * 100 < pct ||
            m.e[i].count - m.e[i].error < METRICS_ALERT_MIN_SAMPLES) {
            continue;
        }
        for (j = 0; j < a->n && a->a[j].hash != m.e[i].hash; j++) {
        }
        if (j < a->n && now - a->a[j].at < METRICS_ALERT_AGAIN_S) {
            a->a[j].seen = true;
            continue;
        }
        if (j == a->n) {
            if (a->n == a->cap) {
                a->cap = a->cap ? a->cap * 2 : 16;
                a->a = util_xrealloc(a->a, a->cap, sizeof(*a->a));
            }
            a->n++;
        }
        a->a[j] = (struct metrics_alert){m.e[i].hash, now, true};
        {
            bool binary;
            json_t *k = metrics_key_json(hk[i].key, hk[i].len, &binary);

            log_warn("hot key %s'%s': %.0f%% of the requests of backend %s "
                     "(%s), about %.0f per second (hotkey_alert = %u%%)",
                     binary ? "(base64) " : "", json_string_value(k),
                     hk[i].share * 100,
                 hk[i].owner != NULL ? hk[i].owner->name : "?",
                     hk[i].owner != NULL ? hk[i].owner->addr : "?",
                     hk[i].rate, pct);
            json_decref(k);
        }
    }
    /* Keys that fell below are logged again when they pass it again. */
    for (size_t j = 0; j < a->n; j++) {
        if (a->a[j].seen) {
            a->a[keep++] = a->a[j];
        }
    }
    a->n = keep;
    free(hk);
    hotkeys_merged_free(&m);
}

/* The "STAT NAME VALUE" lines of in into o (NAME split at its first ':'
 * into a backend's object when split is set). */
static void
metrics_stat_lines(struct evbuffer *in, json_t *o, bool split)
{
    char *l;
    size_t len;

    while ((l = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
        char *name = l + 5, *value, *colon, *end;
        json_t *into = o, *v;
        double d;

        if (len < 5 || strncmp(l, "STAT ", 5) != 0 ||
            (value = strchr(name, ' ')) == NULL) {
            mem_free(l);
            continue;
        }
        *value++ = '\0';
        if (split && (colon = strchr(name, ':')) != NULL) {
            *colon = '\0';
            into = json_object_get(o, name);
            if (into == NULL) {
                into = json_object();
                json_object_set_new(o, name, into);
            }
            name = colon + 1;
        }
        d = strtod(value, &end);
        if (*value != '\0' && *end == '\0' && isfinite(d)) {
            uint64_t u;

            v = util_parse_u64(value, strlen(value), &u) == 0 &&
                        u <= (uint64_t)INT64_MAX
                    ? json_integer((json_int_t)u)
                    : json_real(d);
        } else {
            v = json_string(value);
        }
        json_object_set_new(into, name, v);
        mem_free(l);
    }
}

json_t *
metrics_stats_json(const struct metrics_view *v)
{
    const struct topology *t = v->t;
    struct evbuffer *b = evbuffer_new();
    json_t *doc = json_object(), *st = json_object(), *bs = json_object();

    admin_stats_lines(v->group, t, false, b);
    metrics_stat_lines(b, st, false);
    evbuffer_drain(b, evbuffer_get_length(b));
    admin_stats_lines(v->group, t, true, b);
    metrics_stat_lines(b, bs, true);
    evbuffer_free(b);
    json_object_set_new(doc, "stats", st);
    json_object_set_new(doc, "backends", bs);
    return doc;
}

bool
metrics_health(const struct metrics_view *v, bool ready, char *why, size_t len)
{
    const struct topology *t = v->t;
    uint32_t up = 0;

    if (v->stopping) {
        snprintf(why, len, "shutting down");
        return false;
    }
    if (!v->listening) {
        snprintf(why, len, "not accepting clients yet");
        return false;
    }
    if (ready) {
        if (!health_round_done(v->health)) {
            snprintf(why, len, "the first health checks are not done yet");
            return false;
        }
        snprintf(why, len, "listening, every backend checked");
        return true;
    }
    for (uint32_t b = 0; b < t->n; b++) {
        up += backend_is_up(t->backends[b]);
    }
    if (up == 0) {
        snprintf(why, len, "no backend is UP (of %u)", t->n);
        return false;
    }
    snprintf(why, len, "%u of %u backends UP", up, t->n);
    return true;
}
