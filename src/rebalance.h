/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rebalance: load-aware weights (main thread).
 *
 * The ring balances keys, not traffic. Every REBALANCE_SAMPLE_S seconds the
 * backends' request and byte counters are sampled; over the last
 * REBALANCE_WINDOW_S seconds each backend's share of requests and of bytes
 * is compared with its share of the weights, and the weights that would
 * even out requests per unit of weight are proposed:
 *
 *   w'(b) = w(b) * weight_share(b) / request_share(b), scaled so that the
 *   weights keep their sum, each in [REBALANCE_MIN_WEIGHT, 1000]
 *
 * Applying them is a paced reweight (migrate.h), its ramp chosen so that
 * no more than [proxy] rebalance_max_move of the keys move per hour.
 */
#ifndef MCRING_REBALANCE_H
#define MCRING_REBALANCE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct config;
struct event_base;
struct topology;

#define REBALANCE_SAMPLE_S 10
#define REBALANCE_WINDOW_S 300
#define REBALANCE_MIN_REQUESTS 1000     /* in the window, to propose */
#define REBALANCE_MIN_WEIGHT 0.01

struct rebalance;

/* Samples the backends of current(arg) on base's loop. */
struct rebalance *rebalance_create(struct event_base *base,
                                   struct topology *(*current)(void *arg),
                                   void *arg);
void rebalance_destroy(struct rebalance *r);

/*
 * The report for target (the config changes are made to): window, per
 * backend weight, weight_share, request_share, byte_share, load (request
 * share over weight share) and proposed_weight, the share of keys the
 * proposal moves, and the ramp that keeps it under max_move an hour. With
 * out non-NULL, also the proposed config (the caller owns it) and *ramp,
 * or NULL in *out when there is nothing to propose (too little traffic,
 * nothing to change) with the reason in the report. A new reference.
 */
json_t *rebalance_report(struct rebalance *r, const struct config *target,
                         double max_move, struct config **out, int *ramp);

#endif
