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
