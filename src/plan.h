/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * plan: `mcring --plan OLD.ini NEW.ini`, what a change between two configs
 * would move, without running anything.
 */
#ifndef MCRING_PLAN_H
#define MCRING_PLAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct ring;

/*
 * The share of keys that moves from ring a to ring b (backends matched by
 * name): in all, per (from, to) pair and per backend (its share before and
 * after, what it gains and loses). Exact from the rings' arcs when both use
 * the same hash; also measured over nsample sample keys ("key:0" ..), which
 * is the only figure when the hash changes. A new reference, or NULL with
 * err.
 */
json_t *plan_json(const struct ring *a, const struct ring *b,
                  uint64_t nsample, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* plan_json() as aligned text, or as JSON with json. Returns 0 or -1. */
int plan_report(const struct ring *a, const struct ring *b, uint64_t nsample,
                bool json, FILE *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
