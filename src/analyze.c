/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * analyze: the operator's ring tools behind `mcring --route`,
 * `mcring --analyze` and the summary of `mcring -t`.
 *
 * Everything here is computed from a ring built from a config, with the
 * ring's backend indices equal to the indices of cfg->backends. What-if
 * questions (a backend removed, a backend added) rebuild a ring through
 * ring_create() with the same hash and vnodes, exactly as a reload would,
 * and compare owners over the same sample keys; in xxh3 mode only the
 * affected backend's keys move, in ketama mode every server's point count
 * depends on the others, so more keys move than the backend's share.
 *
 * Sample keys are "key:0" .. "key:N-1": deterministic, so two runs over
 * one config print the same report. The report keeps each key's position
 * and owner (12 bytes per sample key) and one what-if ring at a time.
 *
 * JSON goes through Jansson: analyze_ring_json() builds the report as an
 * object (the admin API's GET /ring serves it), analyze_report() dumps it.
 */
#include "autoconf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze.h"
#include "util.h"

#define ANALYZE_NEW_NAME "new"
#define ANALYZE_NEW_PORT 11211

/* Per-backend figures of a report. */
struct analyze_row {
    uint64_t count; /* sample keys owned */
    double fair;    /* weight / sum(weight) */
    double sample;  /* count / nsample */
    double ratio;   /* sample / fair */
    double moved;   /* fraction of keys moved if removed */
};

/* The sample keys, hashed once; owner in the ring under analysis. */
struct analyze_sample {
    uint64_t n;
    uint64_t *pos;
    uint32_t *owner;
};

static const char *
analyze_hash_name(enum ring_hash hash)
{
    return hash == RING_HASH_KETAMA ? "ketama" : "xxh3";
}

static uint32_t
analyze_owner_at(const struct ring *ring, uint64_t pos)
{
    return ring_points(ring)[ring_point_at(ring, pos)].backend;
}

/*
 * cfg's backends as ring_create() wants them, without backend skip (or
 * SIZE_MAX for none), with extra appended when not NULL. Returns a heap
 * array the caller frees and its length in *n, or NULL.
 */
static struct ring_backend *
analyze_backends(const struct config *cfg, size_t skip,
                 const struct ring_backend *extra, size_t *n)
{
    struct ring_backend *be = malloc((cfg->nbackends + 1) * sizeof(*be));
    size_t k = 0;

    if (be == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->nbackends; i++) {
        if (i == skip) {
            continue;
        }
        be[k].name = cfg->backends[i].name;
        be[k].host = cfg->backends[i].host;
        be[k].port = cfg->backends[i].port;
        be[k].weight = cfg->backends[i].weight;
        k++;
    }
    if (extra != NULL) {
        be[k++] = *extra;
    }
    *n = k;
    return be;
}

/* Builds the what-if ring; NULL with err filled on failure. */
static struct ring *
analyze_whatif_ring(const struct config *cfg, const struct ring *ring,
                    size_t skip, const struct ring_backend *extra, char *err,
                    size_t errlen)
{
    struct ring_backend *be;
    struct ring *r;
    size_t n;

    be = analyze_backends(cfg, skip, extra, &n);
    if (be == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r = ring_create(ring_hash_kind(ring), cfg->vnodes, be, n, err, errlen);
    free(be);
    return r;
}

static int
analyze_sample_init(struct analyze_sample *s, const struct ring *ring,
                    uint64_t n, char *err, size_t errlen)
{
    char key[32];

    s->n = n;
    s->pos = NULL;
    s->owner = NULL;
    if (n == 0) {
        snprintf(err, errlen, "the sample needs at least one key");
        return -1;
    }
    if (n > SIZE_MAX / sizeof(*s->pos)) {
        snprintf(err, errlen, "%llu sample keys are too many",
                 (unsigned long long)n);
        return -1;
    }
    s->pos = malloc((size_t)n * sizeof(*s->pos));
    s->owner = malloc((size_t)n * sizeof(*s->owner));
    if (s->pos == NULL || s->owner == NULL) {
        free(s->pos);
        free(s->owner);
        snprintf(err, errlen, "out of memory for %llu sample keys",
                 (unsigned long long)n);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "key:%llu", (unsigned long long)i);

        s->pos[i] = ring_key_pos(ring, key, (size_t)len);
        s->owner[i] = analyze_owner_at(ring, s->pos[i]);
    }
    return 0;
}

static void
analyze_sample_deinit(struct analyze_sample *s)
{
    free(s->pos);
    free(s->owner);
}

/* Fraction of sample keys whose owner changes if backend r is removed. */
static int
analyze_moved_if_removed(const struct config *cfg, const struct ring *ring,
                         const struct analyze_sample *s, uint32_t r,
                         double *moved, char *err, size_t errlen)
{
    struct ring *without;
    uint64_t count = 0;

    if (cfg->nbackends == 1) {
        *moved = 1.0; /* its keys have nowhere left to go */
        return 0;
    }
    without = analyze_whatif_ring(cfg, ring, r, NULL, err, errlen);
    if (without == NULL) {
        return -1;
    }
    for (uint64_t i = 0; i < s->n; i++) {
        uint32_t b = analyze_owner_at(without, s->pos[i]);

        /* Indices after r shifted down by one in the smaller ring. */
        b = b >= r ? b + 1 : b;
        count += b != s->owner[i];
    }
    ring_destroy(without);
    *moved = (double)count / (double)s->n;
    return 0;
}

/* A name for the added backend that no configured backend has. */
static void
analyze_new_name(const struct config *cfg, char *name, size_t len)
{
    for (unsigned k = 1;; k++) {
        bool taken = false;

        if (k == 1) {
            snprintf(name, len, "%s", ANALYZE_NEW_NAME);
        } else {
            snprintf(name, len, "%s-%u", ANALYZE_NEW_NAME, k);
        }
        for (size_t i = 0; i < cfg->nbackends && !taken; i++) {
            taken = strcmp(cfg->backends[i].name, name) == 0;
        }
        if (!taken) {
            return;
        }
    }
}

static int
analyze_moved_if_added(const struct config *cfg, const struct ring *ring,
                       const struct analyze_sample *s, const char *name,
                       double *moved, char *err, size_t errlen)
{
    struct ring_backend extra = {
        .name = name,
        .host = name,
        .port = ANALYZE_NEW_PORT,
        .weight = 1.0,
    };
    struct ring *with;
    uint64_t count = 0;

    with = analyze_whatif_ring(cfg, ring, SIZE_MAX, &extra, err, errlen);
    if (with == NULL) {
        return -1;
    }
    for (uint64_t i = 0; i < s->n; i++) {
        count += analyze_owner_at(with, s->pos[i]) != s->owner[i];
    }
    ring_destroy(with);
    *moved = (double)count / (double)s->n;
    return 0;
}

/* Overall figures of a report. */
struct analyze_totals {
    double cv;      /* stddev / mean of the ratios */
    double max_min; /* max ratio / min ratio, inf if min is 0 */
    double moved_added;
    char new_name[CONFIG_NAME_MAX + 16];
    bool what_if;   /* moved_* were computed */
};

/* A JSON number, or null for what JSON cannot say (inf, nan). */
static json_t *
analyze_json_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/*
 * Sets o[key] = v (stolen); on failure (v NULL: out of memory) sets *bad so
 * that a whole object is built first and checked once.
 */
static void
analyze_json_set(json_t *o, const char *key, json_t *v, bool *bad)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0) {
        *bad = true;
    }
}

/* The report as a JSON object (new reference), or NULL out of memory. */
static json_t *
analyze_build_json(const struct config *cfg, const struct ring *ring,
                   const struct analyze_row *rows,
                   const struct analyze_totals *t, uint64_t nsample)
{
    uint32_t nb = ring_nbackends(ring);
    json_t *doc = json_object();
    json_t *list = json_array();
    bool bad = doc == NULL || list == NULL;

    if (bad) {
        json_decref(doc);
        json_decref(list);
        return NULL;
    }
    analyze_json_set(doc, "hash",
                     json_string(analyze_hash_name(ring_hash_kind(ring))),
                     &bad);
    if (ring_hash_kind(ring) == RING_HASH_XXH3) {
        analyze_json_set(doc, "vnodes", json_integer(cfg->vnodes), &bad);
    }
    analyze_json_set(doc, "backend_count", json_integer(nb), &bad);
    analyze_json_set(doc, "points", json_integer(ring_npoints(ring)), &bad);
    analyze_json_set(doc, "memory_bytes",
                     json_integer((json_int_t)ring_memory(ring)), &bad);
    analyze_json_set(doc, "sample_keys", json_integer((json_int_t)nsample),
                     &bad);
    for (uint32_t b = 0; b < nb && !bad; b++) {
        json_t *e = json_object();

        if (e == NULL || json_array_append_new(list, e) != 0) {
            bad = true;
            break;
        }
        analyze_json_set(e, "name", json_string(ring_backend_name(ring, b)),
                         &bad);
        analyze_json_set(e, "weight",
                         analyze_json_real(ring_backend_weight(ring, b)), &bad);
        analyze_json_set(e, "points",
                         json_integer(ring_backend_npoints(ring, b)), &bad);
        analyze_json_set(e, "arc_share",
                         analyze_json_real(ring_backend_arc_share(ring, b)),
                         &bad);
        analyze_json_set(e, "sample_share", analyze_json_real(rows[b].sample),
                         &bad);
        analyze_json_set(e, "fair_share", analyze_json_real(rows[b].fair),
                         &bad);
        analyze_json_set(e, "ratio", analyze_json_real(rows[b].ratio), &bad);
        if (t->what_if) {
            analyze_json_set(e, "moved_if_removed",
                             analyze_json_real(rows[b].moved), &bad);
        }
    }
    json_incref(list);
    analyze_json_set(doc, "backends", list, &bad);
    json_decref(list);
    analyze_json_set(doc, "ratio_cv", analyze_json_real(t->cv), &bad);
    analyze_json_set(doc, "ratio_max_min", analyze_json_real(t->max_min),
                     &bad);
    if (t->what_if) {
        analyze_json_set(doc, "added_backend", json_string(t->new_name),
                         &bad);
        analyze_json_set(doc, "moved_if_added",
                         analyze_json_real(t->moved_added), &bad);
    }
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void
analyze_print_text(const struct config *cfg, const struct ring *ring,
                   const struct analyze_row *rows,
                   const struct analyze_totals *t, uint64_t nsample, FILE *out)
{
    uint32_t nb = ring_nbackends(ring);
    int w = (int)strlen("backend");

    for (uint32_t b = 0; b < nb; b++) {
        int l = (int)strlen(ring_backend_name(ring, b));

        w = l > w ? l : w;
    }
    fprintf(out, "hash %s", analyze_hash_name(ring_hash_kind(ring)));
    if (ring_hash_kind(ring) == RING_HASH_XXH3) {
        fprintf(out, ", vnodes %u", cfg->vnodes);
    }
    fprintf(out,
            ", %u backends, %u points, %zu bytes\n"
            "sample: %llu keys \"key:0\" .. \"key:%llu\"\n\n",
            nb, ring_npoints(ring), ring_memory(ring),
            (unsigned long long)nsample, (unsigned long long)(nsample - 1));
    fprintf(out, "%-*s %10s %8s %9s %9s %9s %7s %9s\n", w, "backend", "weight",
            "points", "arc", "sample", "fair", "ratio", "removed");
    for (uint32_t b = 0; b < nb; b++) {
        fprintf(out,
                "%-*s %10.6g %8u %8.3f%% %8.3f%% %8.3f%% %7.3f "
                "%8.3f%%\n",
                w, ring_backend_name(ring, b), ring_backend_weight(ring, b),
                ring_backend_npoints(ring, b),
                100 * ring_backend_arc_share(ring, b), 100 * rows[b].sample,
                100 * rows[b].fair, rows[b].ratio, 100 * rows[b].moved);
    }
    fprintf(out,
            "\narc, sample, fair: share of the ring, of the sample keys, "
            "and by weight;\nratio: sample / fair; removed: keys that move "
            "if the backend is removed\n\n"
            "ratio: coefficient of variation %.4f, max/min %.4f\n"
            "keys moved if backend \"%s\" (weight 1) were added: %.3f%%\n",
            t->cv, t->max_min, t->new_name, 100 * t->moved_added);
}

void
analyze_route(const struct ring *ring, const char *pool, char *const *keys,
              size_t nkeys, FILE *out)
{
    uint32_t nb = ring_nbackends(ring);
    uint32_t *order = util_xmalloc(nb * sizeof(*order));

    for (size_t k = 0; k < nkeys; k++) {
        size_t len = strlen(keys[k]);
        uint32_t point = ring_point_at(ring, ring_key_pos(ring, keys[k], len));
        size_t n = ring_walk(ring, point, NULL, NULL, order, nb);

        fputs(keys[k], out);
        if (pool != NULL) {
            fprintf(out, " pool=%s", pool);
        }
        for (size_t i = 0; i < n; i++) {
            fputc(' ', out);
            fputs(ring_backend_name(ring, order[i]), out);
        }
        fputc('\n', out);
    }
    free(order);
}

/*
 * The figures of a report: rows[nb] (caller frees) and *t. Returns 0, or
 * -1 with err.
 */
static int
analyze_compute(const struct config *cfg, const struct ring *ring,
                uint64_t nsample, bool what_if, struct analyze_row **rowsp,
                struct analyze_totals *t, char *err, size_t errlen)
{
    uint32_t nb = ring_nbackends(ring);
    struct analyze_sample s;
    struct analyze_row *rows;
    double wsum = 0, mean = 0, var = 0, rmin = INFINITY, rmax = 0;
    int rc = -1;

    if (cfg->nbackends != nb) {
        snprintf(err, errlen, "the ring has %u backends, the config %zu", nb,
                 cfg->nbackends);
        return -1;
    }
    rows = calloc(nb, sizeof(*rows));
    if (rows == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (analyze_sample_init(&s, ring, nsample, err, errlen) != 0) {
        free(rows);
        return -1;
    }

    for (uint64_t i = 0; i < s.n; i++) {
        rows[s.owner[i]].count++;
    }
    for (uint32_t b = 0; b < nb; b++) {
        wsum += ring_backend_weight(ring, b);
    }
    for (uint32_t b = 0; b < nb; b++) {
        struct analyze_row *r = &rows[b];

        r->fair = ring_backend_weight(ring, b) / wsum;
        r->sample = (double)r->count / (double)s.n;
        r->ratio = r->sample / r->fair;
        mean += r->ratio / nb;
        rmin = r->ratio < rmin ? r->ratio : rmin;
        rmax = r->ratio > rmax ? r->ratio : rmax;
        if (what_if && analyze_moved_if_removed(cfg, ring, &s, b, &r->moved,
                                                err, errlen) != 0) {
            goto out;
        }
    }
    for (uint32_t b = 0; b < nb; b++) {
        var += (rows[b].ratio - mean) * (rows[b].ratio - mean) / nb;
    }
    t->cv = mean > 0 ? sqrt(var) / mean : INFINITY;
    t->max_min = rmin > 0 ? rmax / rmin : INFINITY;
    analyze_new_name(cfg, t->new_name, sizeof(t->new_name));
    t->what_if = what_if;
    if (what_if && analyze_moved_if_added(cfg, ring, &s, t->new_name,
                                          &t->moved_added, err, errlen) != 0) {
        goto out;
    }
    rc = 0;

out:
    analyze_sample_deinit(&s);
    if (rc == 0) {
        *rowsp = rows;
    } else {
        free(rows);
    }
    return rc;
}

json_t *
analyze_ring_json(const struct config *cfg, const struct ring *ring,
                  uint64_t nsample, bool what_if, char *err, size_t errlen)
{
    struct analyze_totals t;
    struct analyze_row *rows;
    json_t *doc;

    if (analyze_compute(cfg, ring, nsample, what_if, &rows, &t, err,
                        errlen) != 0) {
        return NULL;
    }
    doc = analyze_build_json(cfg, ring, rows, &t, nsample);
    free(rows);
    if (doc == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return doc;
}

int
analyze_report(const struct config *cfg, const struct ring *ring,
               uint64_t nsample, bool json, FILE *out, char *err, size_t errlen)
{
    struct analyze_totals t;
    struct analyze_row *rows;

    if (analyze_compute(cfg, ring, nsample, true, &rows, &t, err, errlen) !=
        0) {
        return -1;
    }
    if (json) {
        json_t *doc = analyze_build_json(cfg, ring, rows, &t, nsample);

        if (doc == NULL) {
            snprintf(err, errlen, "out of memory");
            free(rows);
            return -1;
        }
        if (json_dumpf(doc, out, ANALYZE_JSON_FLAGS) == 0) {
            fputc('\n', out);
        }
        json_decref(doc);
    } else {
        analyze_print_text(cfg, ring, rows, &t, nsample, out);
    }
    free(rows);
    if (ferror(out)) {
        snprintf(err, errlen, "write error");
        return -1;
    }
    return 0;
}

void
analyze_summary(const struct config *cfg, const struct ring *ring, FILE *out)
{
    uint32_t nb = ring_nbackends(ring);
    double wsum = 0, lo = INFINITY, hi = 0;
    uint32_t empty = 0;
    double kib = (double)ring_memory(ring) / 1024;

    for (uint32_t b = 0; b < nb; b++) {
        wsum += ring_backend_weight(ring, b);
    }
    for (uint32_t b = 0; b < nb; b++) {
        double r = ring_backend_arc_share(ring, b) /
                   (ring_backend_weight(ring, b) / wsum);

        lo = r < lo ? r : lo;
        hi = r > hi ? r : hi;
        empty += ring_backend_npoints(ring, b) == 0;
    }
    fprintf(out, "ring: hash %s", analyze_hash_name(ring_hash_kind(ring)));
    if (ring_hash_kind(ring) == RING_HASH_XXH3) {
        fprintf(out, " (vnodes %u)", cfg->vnodes);
    }
    fprintf(out, ", %u backends, %u points, ", nb, ring_npoints(ring));
    if (kib < 1024) {
        fprintf(out, "%.1f KiB", kib);
    } else {
        fprintf(out, "%.1f MiB", kib / 1024);
    }
    fprintf(out, ", arc share / weight share min %.3f max %.3f", lo, hi);
    if (empty > 0) {
        fprintf(out, ", %u backends own no point", empty);
    }
    fputc('\n', out);
}
