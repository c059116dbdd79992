/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * migrate: paced moves of keys between backends (main thread).
 *
 * A topology change that moves keys (a backend added, removed or
 * reweighted) is a move: a sequence of snapshots whose weights step from
 * the old value to the new one in equal steps over the backend's ramp, all
 * of them with the snapshot from before the move as their origin (see
 * topology.h): while a key's owner differs from its owner there, reads that
 * miss are retried on the previous owner and writes are followed by a
 * delete there (warmup.c). After the last step the origin stays for the
 * warm-up window, then a plain snapshot ends the move.
 *
 *   IDLE --change--> RUNNING --last step--> WARMUP --window over--> IDLE
 *                    |  ^  \--rollback--> (steps back) --> IDLE
 *                  pause resume                 finish: jump to the end
 *
 * A move's backend that gains weight and is not UP holds that move (it
 * waits) until it is UP again. One move at a time: a change that moves
 * keys while one runs is refused (finish or roll it back first); a change
 * during a warm-up window ends the window.
 *
 * The module changes nothing itself: it builds configs and has the proxy
 * publish them through struct migrate_ops, so it needs nothing above it.
 */
#ifndef MCRING_MIGRATE_H
#define MCRING_MIGRATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "topology.h"

struct config;
struct copier_progress;
struct event_base;
struct topology;

/* Steps of a move: one per second of ramp, at most this many. */
#define MIGRATE_MAX_STEPS 100
/* migrate_change(): a move is in progress. */
#define MIGRATE_EBUSY (-2)

enum migrate_state {
    MIGRATE_IDLE,
    MIGRATE_RUNNING,
    MIGRATE_PAUSED,
    MIGRATE_ROLLBACK,       /* stepping back to where it started */
    MIGRATE_WARMUP,         /* steps done; the origin serves warm-up reads */
};

struct migrate_ops {
    /* The snapshot in use. */
    struct topology *(*current)(void *arg);
    /* Builds a snapshot of cfg (taken, also on failure) with these
     * origins (NULL: none) and publishes it. Returns 0 or -1 with err. */
    int (*publish)(void *arg, struct config *cfg,
                   struct topology *const origin[TOPOLOGY_ORIGINS], char *err,
                   size_t errlen);
    void *arg;
};

/* What any thread may read (the `stats` command): relaxed atomics. */
struct migrate_summary {
    _Atomic int state;              /* enum migrate_state */
    _Atomic uint32_t moves;
    _Atomic uint32_t steps_done;    /* over all moves */
    _Atomic uint32_t steps;
    _Atomic uint64_t moved_ppm;     /* share of keys whose owner differs
                                       from the origin, in millionths */
    _Atomic int64_t expected_end;   /* wall clock, 0 = none */
    _Atomic uint64_t started;       /* moves begun since start */
};

struct migrate;

struct migrate *migrate_create(struct event_base *base,
                               const struct migrate_ops *ops);
void migrate_destroy(struct migrate *m);

/*
 * The running topology changes to target (taken, also on failure; its
 * restart-only keys already kept, its ring known to build). ramp >= 0 paces
 * every move of the change over that many seconds; -1: each backend's own
 * ramp= ([proxy] ramp for an added one; removals and reweights without
 * ramp= go at once). Returns 0, MIGRATE_EBUSY with err while a move is in
 * progress, or -1 with err.
 */
int migrate_change(struct migrate *m, struct config *target, int ramp,
                   const char *why, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * "pause", "resume", "rollback" or "finish". Returns 0, MIGRATE_EBUSY with
 * err when the verb does not apply in the current state, or -1 with err
 * for an unknown verb.
 */
int migrate_control(struct migrate *m, const char *verb, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* The config the running one is heading for: the move's target while it
 * runs, else the running config (borrowed). */
const struct config *migrate_target(struct migrate *m);

/* The state as GET /migration shows it (without the data path's counters,
 * which the caller adds). A new reference. */
json_t *migrate_json(struct migrate *m);

const struct migrate_summary *migrate_summary(const struct migrate *m);
/* The background copy's counters (copier.h). */
const struct copier_progress *migrate_copy_progress(const struct migrate *m);

const char *migrate_state_name(enum migrate_state s);

#endif
