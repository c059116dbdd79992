/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * stats: the table of counters (see stats.h), built from the field lists
 * so that a counter is declared, described and rendered from one line.
 */
#include "autoconf.h"

#include "stats.h"
#include "util.h"

#define STATS_CLIENT_DEF(name, type, help)                                   \
    {#name, STATS_##type, help, offsetof(struct stats_worker, name)},
#define STATS_BACKEND_DEF(name, type, help)                                  \
    {#name, STATS_##type, help, offsetof(struct stats_backend, name)},

const struct stats_def stats_client_defs[] = {
    STATS_CLIENT_FIELDS(STATS_CLIENT_DEF)
};
const size_t stats_nclient_defs = UTIL_ARRAY_SIZE(stats_client_defs);

const struct stats_def stats_backend_defs[] = {
    STATS_BACKEND_FIELDS(STATS_BACKEND_DEF)
};
const size_t stats_nbackend_defs = UTIL_ARRAY_SIZE(stats_backend_defs);

static _Atomic uint64_t *
stats_slot(void *stats, const struct stats_def *d)
{
    return (_Atomic uint64_t *)(void *)((char *)stats + d->offset);
}

void
stats_accumulate(void *sum, const void *slot, const struct stats_def *defs,
                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        stats_add(stats_slot(sum, &defs[i]), stats_value(slot, &defs[i]));
    }
}

void
stats_subtract(void *sum, const void *base, const struct stats_def *defs,
               size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (defs[i].type == STATS_COUNTER) {
            stats_sub(stats_slot(sum, &defs[i]), stats_value(base, &defs[i]));
        }
    }
}

const uint32_t stats_histo_bounds_us[STATS_HISTO_BUCKETS] = {
    50,     100,    200,    500,     1000,    2000,    5000,    10000,
    20000,  50000,  100000, 200000,  500000,  1000000, 2000000, 5000000};

void
stats_histo_merge(struct stats_histo *sum, const struct stats_histo *h)
{
    for (unsigned i = 0; i <= STATS_HISTO_BUCKETS; i++) {
        stats_add(&sum->bucket[i], stats_get(&h->bucket[i]));
    }
    stats_add(&sum->sum_us, stats_get(&h->sum_us));
}

void
stats_histo_subtract(struct stats_histo *sum, const struct stats_histo *base)
{
    for (unsigned i = 0; i <= STATS_HISTO_BUCKETS; i++) {
        stats_sub(&sum->bucket[i], stats_get(&base->bucket[i]));
    }
    stats_sub(&sum->sum_us, stats_get(&base->sum_us));
}

uint64_t
stats_histo_count(const struct stats_histo *h)
{
    uint64_t n = 0;

    for (unsigned i = 0; i <= STATS_HISTO_BUCKETS; i++) {
        n += stats_get(&h->bucket[i]);
    }
    return n;
}

double
stats_histo_quantile(const struct stats_histo *h, double q)
{
    uint64_t n = stats_histo_count(h), seen = 0;
    double rank;

    if (n == 0) {
        return -1;
    }
    rank = q * (double)n;
    for (unsigned i = 0; i < STATS_HISTO_BUCKETS; i++) {
        uint64_t b = stats_get(&h->bucket[i]);

        if (b > 0 && (double)(seen + b) >= rank) {
            double lo = i == 0 ? 0 : stats_histo_bounds_us[i - 1];
            double hi = stats_histo_bounds_us[i];

            return lo + (hi - lo) * ((rank - (double)seen) / (double)b);
        }
        seen += b;
    }
    return stats_histo_bounds_us[STATS_HISTO_BUCKETS - 1];
}
