/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rebalance: see rebalance.h.
 *
 * Samples live in a ring of REBALANCE_WINDOW_S / REBALANCE_SAMPLE_S + 1
 * slots, each the counters of every backend then (by stable id, summed
 * over the workers). A report compares the counters now with the oldest
 * sample of the window, so a backend's figures survive a topology change
 * as long as it keeps its object.
 */
#include "autoconf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backend.h"
#include "config.h"
#include "rebalance.h"
#include "stats.h"
#include "topology.h"
#include "util.h"

#define REBALANCE_SLOTS (REBALANCE_WINDOW_S / REBALANCE_SAMPLE_S + 1)
/* A weight changes by at most this factor in one rebalance. */
#define REBALANCE_MAX_FACTOR 2.0

struct rebalance_sample {
    uint64_t t_ns;                  /* 0: empty */
    uint32_t n;
    uint32_t *ids;
    uint64_t *requests;
    uint64_t *bytes;
};

struct rebalance {
    struct event *timer;
    struct topology *(*current)(void *arg);
    void *arg;
    struct rebalance_sample slots[REBALANCE_SLOTS];
    unsigned next;
};

static void
rebalance_take(struct rebalance *r, struct rebalance_sample *s)
{
    const struct topology *t = r->current(r->arg);

    s->t_ns = util_now_ns();
    s->n = t->n;
    s->ids = util_xrealloc(s->ids, t->n ? t->n : 1, sizeof(*s->ids));
    s->requests = util_xrealloc(s->requests, t->n ? t->n : 1,
                                sizeof(*s->requests));
    s->bytes = util_xrealloc(s->bytes, t->n ? t->n : 1, sizeof(*s->bytes));
    for (uint32_t i = 0; i < t->n; i++) {
        struct stats_backend sum;

        backend_stats_sum(t->backends[i], &sum);
        s->ids[i] = t->backends[i]->id;
        s->requests[i] = stats_get(&sum.requests);
        s->bytes[i] = stats_get(&sum.bytes_sent) +
                      stats_get(&sum.bytes_received);
    }
}

static void
rebalance_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rebalance *r = arg;

    (void)fd;
    (void)what;
    rebalance_take(r, &r->slots[r->next]);
    r->next = (r->next + 1) % REBALANCE_SLOTS;
}

struct rebalance *
rebalance_create(struct event_base *base,
                 struct topology *(*current)(void *arg), void *arg)
{
    struct rebalance *r = util_xcalloc(1, sizeof(*r));
    struct timeval tv = {REBALANCE_SAMPLE_S, 0};

    r->current = current;
    r->arg = arg;
    r->timer = event_new(base, -1, EV_PERSIST, rebalance_timer_cb, r);
    if (r->timer == NULL || event_add(r->timer, &tv) != 0) {
        rebalance_destroy(r);
        return NULL;
    }
    rebalance_take(r, &r->slots[r->next++]);
    return r;
}

void
rebalance_destroy(struct rebalance *r)
{
    if (r == NULL) {
        return;
    }
    if (r->timer != NULL) {
        event_free(r->timer);
    }
    for (unsigned i = 0; i < REBALANCE_SLOTS; i++) {
        free(r->slots[i].ids);
        free(r->slots[i].requests);
        free(r->slots[i].bytes);
    }
    free(r);
}

/* The oldest sample no older than the window. */
static const struct rebalance_sample *
rebalance_oldest(const struct rebalance *r, uint64_t now)
{
    const struct rebalance_sample *best = NULL;

    for (unsigned i = 0; i < REBALANCE_SLOTS; i++) {
        const struct rebalance_sample *s = &r->slots[i];

        if (s->t_ns != 0 &&
            now - s->t_ns <= (uint64_t)REBALANCE_WINDOW_S * 1000000000u &&
            (best == NULL || s->t_ns < best->t_ns)) {
            best = s;
        }
    }
    return best;
}

/* Counter of backend id in s, or UINT64_MAX when it is not there. */
static uint64_t
rebalance_value(const struct rebalance_sample *s, uint32_t id,
                const uint64_t *v)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->ids[i] == id) {
            return v[i];
        }
    }
    return UINT64_MAX;
}

json_t *
rebalance_report(struct rebalance *r, const struct config *target,
                 double max_move, struct config **out, int *ramp)
{
    const struct topology *t = r->current(r->arg);
    struct rebalance_sample now = {0};
    const struct rebalance_sample *old;
    size_t n = target->nbackends;
    double *req = util_xcalloc(n ? n : 1, sizeof(double));
    double *bytes = util_xcalloc(n ? n : 1, sizeof(double));
    double *prop = util_xcalloc(n ? n : 1, sizeof(double));
    double rsum = 0, bsum = 0, wsum = 0, psum = 0, moved = 0.0;
    const char *reason = NULL;
    struct config *cfg = NULL;
    bool changes = false;
    json_t *list = json_array(), *doc;
    int secs = 0;

    if (out != NULL) {
        *out = NULL;
    }
    rebalance_take(r, &now);
    old = rebalance_oldest(r, now.t_ns);
    for (size_t i = 0; i < n; i++) {
        const struct backend *be = topology_find(t, target->backends[i].name);
        uint64_t a, b;

        wsum += target->backends[i].weight;
        if (be == NULL || old == NULL) {
            continue;
        }
        a = rebalance_value(old, be->id, old->requests);
        b = rebalance_value(&now, be->id, now.requests);
        if (a != UINT64_MAX && b != UINT64_MAX && b >= a) {
            req[i] = (double)(b - a);
        }
        a = rebalance_value(old, be->id, old->bytes);
        b = rebalance_value(&now, be->id, now.bytes);
        if (a != UINT64_MAX && b != UINT64_MAX && b >= a) {
            bytes[i] = (double)(b - a);
        }
        rsum += req[i];
        bsum += bytes[i];
    }
    /* Requests per unit of weight evened out, each weight changing by at
     * most a factor of two, the sum kept. */
    for (size_t i = 0; i < n; i++) {
        double w = target->backends[i].weight;
        double ws = w / wsum, rs = rsum > 0 ? req[i] / rsum : 0;
        double p = rs > 0 ? w * ws / rs : w * REBALANCE_MAX_FACTOR;

        p = fmin(fmax(p, w / REBALANCE_MAX_FACTOR), w * REBALANCE_MAX_FACTOR);
        prop[i] = p;
        psum += p;
    }
    for (size_t i = 0; i < n; i++) {
        double p = round(prop[i] * wsum / psum * 1000.0) / 1000.0;

        prop[i] = fmin(fmax(p, REBALANCE_MIN_WEIGHT), CONFIG_WEIGHT_MAX);
        changes |= prop[i] != target->backends[i].weight;
    }
    if (rsum < REBALANCE_MIN_REQUESTS) {
        reason = "too few requests in the window to tell";
    } else if (!changes) {
        reason = "the weights already even out the requests";
    } else {
        cfg = config_clone(target);
        for (size_t i = 0; i < n; i++) {
            cfg->backends[i].weight = prop[i];
        }
        moved = config_moved_share(target, cfg);
        if (!isfinite(moved)) {
            reason = "the proposed ring cannot be built";
        } else {
            double s = ceil(3600.0 * moved / max_move);

            secs = s < 1 ? 1 : s > CONFIG_RAMP_MAX ? CONFIG_RAMP_MAX : (int)s;
        }
    }
    for (size_t i = 0; i < n; i++) {
        double w = target->backends[i].weight;

        json_array_append_new(
            list,
            json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f}", "name",
                      target->backends[i].name, "weight", w, "weight_share",
                      w / wsum, "request_share", rsum > 0 ? req[i] / rsum : 0.0,
                      "byte_share", bsum > 0 ? bytes[i] / bsum : 0.0, "load",
                      rsum > 0 ? req[i] / rsum / (w / wsum) : 0.0,
                      "proposed_weight", prop[i]));
    }
    doc = json_pack("{s:f, s:I, s:I, s:o, s:b, s:f, s:I, s:f}",
                    "window_seconds",
                    old != NULL ? (double)(now.t_ns - old->t_ns) / 1e9 : 0.0,
                    "requests", (json_int_t)rsum, "bytes", (json_int_t)bsum,
                    "backends", list, "proposal", reason == NULL,
                    "moved_share", isfinite(moved) ? moved : 0.0, "ramp",
                    (json_int_t)secs,
                    "max_move_per_hour", max_move);
    if (reason != NULL) {
        json_object_set_new(doc, "reason", json_string(reason));
    }
    if (out != NULL && reason == NULL) {
        *out = cfg;
        *ramp = secs;
    } else {
        config_destroy(cfg);
    }
    free(now.ids);
    free(now.requests);
    free(now.bytes);
    free(req);
    free(bytes);
    free(prop);
    return doc;
}
