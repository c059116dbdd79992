/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * analyze: the operator's ring tools behind `mcring --route` and
 * `mcring --analyze`.
 */
#ifndef MCRING_ANALYZE_H
#define MCRING_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "config.h"
#include "ring.h"

/*
 * Writes one line per key: the key, then "pool=NAME" when pool is not
 * NULL, its owner's name, then every other backend in fallback-walk order
 * (the first `replicas` of owner and fallbacks hold a replicated pool's
 * copies), separated by single spaces.
 */
void analyze_route(const struct ring *ring, const char *pool,
                   char *const *keys, size_t nkeys, FILE *out);

/*
 * Writes the distribution report for ring (built from cfg) measured over
 * nsample deterministic sample keys: per backend weight, points, arc share,
 * sampled share, ratio to the fair (weight) share, fraction of keys moved if
 * it were removed from the config; overall coefficient of variation,
 * max/min ratio, and the fraction moved if one backend of weight 1 were
 * added. Aligned text, or JSON when json is set. Returns 0, or -1 with a
 * message in err.
 */
int analyze_report(const struct config *cfg, const struct ring *ring,
                   uint64_t nsample, bool json, FILE *out, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/*
 * json_dumpf() flags of the report: two-space indentation, numbers to six
 * significant digits as the text report shows them.
 */
#define ANALYZE_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(6))

/*
 * The report of analyze_report() as a JSON object: hash, vnodes (xxh3),
 * backend_count, points, memory_bytes, sample_keys, backends (name, weight,
 * points, arc_share, sample_share, fair_share, ratio, moved_if_removed),
 * ratio_cv, ratio_max_min, added_backend, moved_if_added; numbers that are
 * not finite are null. Without what_if the moved_* and added_backend
 * fields are left out and no what-if ring is built (cheap enough for a
 * running proxy's main loop). Returns a new reference the caller owns
 * (json_decref()), or NULL with a message in err.
 */
json_t *analyze_ring_json(const struct config *cfg, const struct ring *ring,
                          uint64_t nsample, bool what_if, char *err,
                          size_t errlen)
    __attribute__((warn_unused_result));

/* One line summary of ring for `mcring -t`, e.g. points and spread. */
void analyze_summary(const struct config *cfg, const struct ring *ring,
                     FILE *out);

#endif
