/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * plan: see plan.h.
 *
 * Backends of the two rings are matched by name into one sorted list (u
 * indices). Every arc of ring_compare() adds its share to its owners'
 * before and after shares and, when the owners differ, to its (from, to)
 * pair; every sample key does the same with a count. Pairs are kept in a
 * growing array, sorted and merged at the end: at most one per arc, so a
 * thousand backends cost a few megabytes, never a backend-by-backend
 * matrix.
 */
#include "autoconf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "ring.h"
#include "util.h"

struct plan_pair {
    uint32_t from, to;      /* u indices */
    double share;
    uint64_t count;
};

struct plan_name {
    const char *name;
    uint32_t ring;          /* 0: a, 1: b */
    uint32_t idx;
};

struct plan {
    const struct ring *a, *b;
    uint32_t *ua, *ub;      /* ring index -> u index */
    const char **names;     /* [nu] */
    uint32_t nu;
    double *before, *after; /* exact shares, [nu] */
    uint64_t *cbefore, *cafter;
    struct plan_pair *pairs;
    size_t npairs, cap;
    double moved;
    uint64_t cmoved;
};

static int
plan_name_cmp(const void *x, const void *y)
{
    return strcmp(((const struct plan_name *)x)->name,
                  ((const struct plan_name *)y)->name);
}

/* The union of both rings' names, and each index's place in it. */
static void
plan_names(struct plan *p)
{
    uint32_t na = ring_nbackends(p->a), nb = ring_nbackends(p->b);
    struct plan_name *all = util_xcalloc(na + nb, sizeof(*all));

    for (uint32_t i = 0; i < na; i++) {
        all[i] = (struct plan_name){ring_backend_name(p->a, i), 0, i};
    }
    for (uint32_t i = 0; i < nb; i++) {
        all[na + i] = (struct plan_name){ring_backend_name(p->b, i), 1, i};
    }
    qsort(all, na + nb, sizeof(*all), plan_name_cmp);
    p->ua = util_xcalloc(na, sizeof(*p->ua));
    p->ub = util_xcalloc(nb, sizeof(*p->ub));
    p->names = util_xcalloc(na + nb, sizeof(*p->names));
    for (uint32_t i = 0; i < na + nb; i++) {
        if (p->nu == 0 || strcmp(p->names[p->nu - 1], all[i].name) != 0) {
            p->names[p->nu++] = all[i].name;
        }
        (all[i].ring == 0 ? p->ua : p->ub)[all[i].idx] = p->nu - 1;
    }
    free(all);
    p->before = util_xcalloc(p->nu, sizeof(double));
    p->after = util_xcalloc(p->nu, sizeof(double));
    p->cbefore = util_xcalloc(p->nu, sizeof(uint64_t));
    p->cafter = util_xcalloc(p->nu, sizeof(uint64_t));
}

static void
plan_add_pair(struct plan *p, uint32_t from, uint32_t to, double share,
              uint64_t count)
{
    if (p->npairs == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->pairs = util_xrealloc(p->pairs, p->cap, sizeof(*p->pairs));
    }
    p->pairs[p->npairs++] = (struct plan_pair){from, to, share, count};
}

static void
plan_arc(uint32_t ia, uint32_t ib, double share, void *arg)
{
    struct plan *p = arg;
    uint32_t from = p->ua[ia], to = p->ub[ib];

    p->before[from] += share;
    p->after[to] += share;
    if (from != to) {
        p->moved += share;
        plan_add_pair(p, from, to, share, 0);
    }
}

static int
plan_pair_cmp(const void *x, const void *y)
{
    const struct plan_pair *a = x, *b = y;

    if (a->from != b->from) {
        return a->from < b->from ? -1 : 1;
    }
    return a->to < b->to ? -1 : a->to > b->to;
}

/* Sorts the pairs and merges equal ones. */
static void
plan_merge(struct plan *p)
{
    size_t n = 0;

    if (p->npairs == 0) {
        return;
    }
    qsort(p->pairs, p->npairs, sizeof(*p->pairs), plan_pair_cmp);
    for (size_t i = 0; i < p->npairs; i++) {
        if (n > 0 && p->pairs[n - 1].from == p->pairs[i].from &&
            p->pairs[n - 1].to == p->pairs[i].to) {
            p->pairs[n - 1].share += p->pairs[i].share;
            p->pairs[n - 1].count += p->pairs[i].count;
        } else {
            p->pairs[n++] = p->pairs[i];
        }
    }
    p->npairs = n;
}

static void
plan_free(struct plan *p)
{
    free(p->ua);
    free(p->ub);
    free(p->names);
    free(p->before);
    free(p->after);
    free(p->cbefore);
    free(p->cafter);
    free(p->pairs);
}

static json_t *
plan_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *
plan_json(const struct ring *a, const struct ring *b, uint64_t nsample,
          char *err, size_t errlen)
{
    struct plan p = {.a = a, .b = b};
    json_t *doc, *pairs, *backends;
    bool exact;
    double n = (double)nsample;

    if (nsample == 0) {
        snprintf(err, errlen, "the sample needs at least one key");
        return NULL;
    }
    plan_names(&p);
    exact = ring_compare(a, b, plan_arc, &p) == 0;
    for (uint64_t i = 0; i < nsample; i++) {
        char key[32];
        int len = snprintf(key, sizeof(key), "key:%llu", (unsigned long long)i);
        uint32_t from = p.ua[ring_lookup(a, key, (size_t)len)];
        uint32_t to = p.ub[ring_lookup(b, key, (size_t)len)];

        p.cbefore[from]++;
        p.cafter[to]++;
        if (from != to) {
            p.cmoved++;
            plan_add_pair(&p, from, to, 0.0, 1);
        }
    }
    plan_merge(&p);
    pairs = json_array();
    for (size_t i = 0; i < p.npairs; i++) {
        const struct plan_pair *e = &p.pairs[i];

        json_array_append_new(
            pairs, json_pack("{s:s, s:s, s:o, s:f}", "from", p.names[e->from],
                             "to", p.names[e->to], "share",
                             exact ? plan_real(e->share) : json_null(),
                             "sample_share", (double)e->count / n));
    }
    backends = json_array();
    for (uint32_t u = 0; u < p.nu; u++) {
        double gains = 0, loses = 0;
        uint64_t cg = 0, cl = 0;

        for (size_t i = 0; i < p.npairs; i++) {
            if (p.pairs[i].to == u) {
                gains += p.pairs[i].share;
                cg += p.pairs[i].count;
            }
            if (p.pairs[i].from == u) {
                loses += p.pairs[i].share;
                cl += p.pairs[i].count;
            }
        }
        json_array_append_new(
            backends,
            json_pack("{s:s, s:o, s:o, s:o, s:o, s:f, s:f, s:f, s:f}", "name",
                      p.names[u], "old_share",
                      exact ? plan_real(p.before[u]) : json_null(),
                      "new_share", exact ? plan_real(p.after[u]) : json_null(),
                      "gains", exact ? plan_real(gains) : json_null(), "loses",
                      exact ? plan_real(loses) : json_null(),
                      "sample_old_share", (double)p.cbefore[u] / n,
                      "sample_new_share", (double)p.cafter[u] / n,
                      "sample_gains", (double)cg / n, "sample_loses",
                      (double)cl / n));
    }
    doc = json_pack("{s:b, s:o, s:I, s:f, s:o, s:o}", "exact", exact,
                    "moved_share", exact ? plan_real(p.moved) : json_null(),
                    "sample_keys", (json_int_t)nsample, "sample_moved_share",
                    (double)p.cmoved / n, "moves", pairs, "backends",
                    backends);
    plan_free(&p);
    if (doc == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return doc;
}

/* A share as text: the exact figure, or "-" when there is none. */
static const char *
plan_fmt(json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v)) {
        return "-";
    }
    snprintf(buf, len, "%.6f", json_number_value(v));
    return buf;
}

int
plan_report(const struct ring *a, const struct ring *b, uint64_t nsample,
            bool json, FILE *out, char *err, size_t errlen)
{
    json_t *doc = plan_json(a, b, nsample, err, errlen);
    json_t *e;
    size_t i;
    int w = 7;
    char b1[32], b2[32], b3[32], b4[32];

    if (doc == NULL) {
        return -1;
    }
    if (json) {
        json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
        fputc('\n', out);
        json_decref(doc);
        return 0;
    }
    json_array_foreach(json_object_get(doc, "backends"), i, e) {
        int l = (int)strlen(json_string_value(json_object_get(e, "name")));

        w = l > w ? l : w;
    }
    fprintf(out, "keys moved: %s of all keys%s; %.6f of %llu sample keys\n",
            plan_fmt(json_object_get(doc, "moved_share"), b1, sizeof(b1)),
            json_is_true(json_object_get(doc, "exact"))
                ? " (exact, from the rings' arcs)"
                : " (the hash changes: sample only)",
            json_number_value(json_object_get(doc, "sample_moved_share")),
            (unsigned long long)nsample);
    fprintf(out, "\n%-*s %-*s %9s %9s\n", w, "from", w, "to", "share",
            "sample");
    json_array_foreach(json_object_get(doc, "moves"), i, e) {
        fprintf(out, "%-*s %-*s %9s %9.6f\n", w,
                json_string_value(json_object_get(e, "from")), w,
                json_string_value(json_object_get(e, "to")),
                plan_fmt(json_object_get(e, "share"), b1, sizeof(b1)),
                json_number_value(json_object_get(e, "sample_share")));
    }
    fprintf(out, "\n%-*s %9s %9s %9s %9s\n", w, "backend", "old", "new",
            "gains", "loses");
    json_array_foreach(json_object_get(doc, "backends"), i, e) {
        fprintf(out, "%-*s %9s %9s %9s %9s\n", w,
                json_string_value(json_object_get(e, "name")),
                plan_fmt(json_object_get(e, "old_share"), b1, sizeof(b1)),
                plan_fmt(json_object_get(e, "new_share"), b2, sizeof(b2)),
                plan_fmt(json_object_get(e, "gains"), b3, sizeof(b3)),
                plan_fmt(json_object_get(e, "loses"), b4, sizeof(b4)));
    }
    json_decref(doc);
    return 0;
}
