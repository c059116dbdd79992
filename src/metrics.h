/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * metrics: what an operator's monitoring reads, for the admin API (main
 * thread): the Prometheus text exposition of every counter (GET
 * /metrics), `stats` and `stats backends` as JSON (GET /stats), and
 * whether mcring can serve (GET /health) and has started (GET /ready).
 *
 * Everything renders from the stats table (stats.h), the backends'
 * per-worker slots and latency histograms (summed here, without locks on
 * the request path) and the proxy's own counters. Prometheus counters are
 * never reset: `stats reset` changes what `stats` shows, not /metrics.
 */
#ifndef MCRING_METRICS_H
#define MCRING_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct evbuffer;
struct health;
struct topology;
struct worker_group;

/* What the metrics read of the process, as the root object (proxy.h) sees
 * it at the call (main thread). */
struct metrics_view {
    struct worker_group *group;
    const struct topology *t;       /* the snapshot in use */
    struct health *health;
    bool stopping;                  /* shutting down */
    bool listening;                 /* accepting clients */
};

/* The exposition (text format 0.0.4), appended to out. */
void metrics_prometheus(const struct metrics_view *v, struct evbuffer *out);

/* {"stats": {NAME: value}, "backends": {BACKEND: {NAME: value}}}: each
 * line of `stats` and `stats backends`, numbers as numbers. */
json_t *metrics_stats_json(const struct metrics_view *v);

/*
 * ready false: whether mcring can serve now (accepting clients, a backend
 * UP); ready true: whether it has started (listening, and every backend
 * probed once). Returns true, or false with the reason in why.
 */
bool metrics_health(const struct metrics_view *v, bool ready, char *why,
                    size_t len);

/* GET /hotkeys: {"sample": N, "seconds": S, "keys": [{key, rate, share,
 * backend}]} (key as a string, or base64 with "binary": true). */
json_t *metrics_hotkeys_json(const struct metrics_view *v);

/* What metrics_alert_hotkeys() logged last, per key. */
struct metrics_alerts *metrics_alerts_create(void);
void metrics_alerts_destroy(struct metrics_alerts *a);
/* Logs (a warning) each hot key whose share of its backend's requests is
 * at least [proxy] hotkey_alert percent, once until it falls below or five
 * minutes pass. Main thread. */
void metrics_alert_hotkeys(const struct metrics_view *v,
                           struct metrics_alerts *a);

#endif
