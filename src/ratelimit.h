/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ratelimit: requests per second with a burst, shared by threads without
 * a lock (the generic cell rate algorithm: one atomic "theoretical arrival
 * time" per limit).
 *
 * A limit of rate r and burst b lets b requests through at once after a
 * pause, then r a second: each request moves the limit's time 1/r ahead
 * (from now, if it lags behind), and one that would move it more than b/r
 * past now is refused and moves nothing.
 */
#ifndef MCRING_RATELIMIT_H
#define MCRING_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
    uint64_t interval_ns;           /* 1 s / rate; 0: no limit */
    uint64_t window_ns;             /* burst * interval_ns */
};

/* rate 0: no limit; burst 0: as rate (at least 1). */
void ratelimit_init(struct ratelimit *r, unsigned rate, unsigned burst);
/* Takes n requests at now_ns from the limit whose state is *tat: true if
 * they may go (and *tat moved), false if refused (*tat unchanged). */
bool ratelimit_take(_Atomic uint64_t *tat, const struct ratelimit *r,
                    uint64_t now_ns, uint32_t n);

/*
 * One limit per client address, for many addresses: a fixed table of
 * RATELIMIT_SLOTS slots (two candidates per address, the staler one
 * given to a newcomer, which starts with a whole burst), so memory stays
 * bounded however many addresses come. Locks are striped.
 */
#define RATELIMIT_SLOTS 8192
#define RATELIMIT_LOCKS 64

struct ratelimit_table;

struct ratelimit_table *ratelimit_table_new(void);
void ratelimit_table_free(struct ratelimit_table *t);
/* As ratelimit_take(), for the address whose hash is key (not 0). */
bool ratelimit_table_take(struct ratelimit_table *t, const struct ratelimit *r,
                          uint64_t key, uint64_t now_ns, uint32_t n);

#endif
