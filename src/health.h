/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * health: active health checks, the UP/DOWN state machine and stale-safe
 * recovery, all on the main thread.
 *
 *   UP --fall failures--> DOWN --rise successes--> RECOVERING --clean--> UP
 *    ^                      ^                           |
 *    |                      +-------- a failure --------+
 *    +-- workers may also take UP -> DOWN at once (refused connect)
 *
 *   NEW (added by a reload) --first good check--> RECOVERING
 *   MAINT (by hand) --activate--> RECOVERING
 *
 * A probe is "version" on a dedicated connection per backend; a reply within
 * [health] timeout_ms is a success. Data-path timeouts reported by workers
 * count as failures. While RECOVERING the backend is still routed around;
 * the keys written to its fallbacks during the outage are deleted on it and
 * on those fallbacks (or it is flushed if the log overflowed), and only then
 * is it UP again.
 */
#ifndef MCRING_HEALTH_H
#define MCRING_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct health;
struct backend;
struct topology;

/*
 * Creates the checker on base (the main thread's loop) for topology t and
 * arms its first probes. t must stay alive until the next health_apply()
 * (the proxy's reference). Returns NULL with err.
 */
struct health *health_create(struct event_base *base, const struct topology *t,
                             char *err, size_t errlen)
    __attribute__((warn_unused_result));
void health_destroy(struct health *h);

/*
 * A new topology t was published (borrowed until the next call): start
 * checking its new backends (a NEW one at once) and stop checking those it
 * left out (replies owed to their recovery passes are dropped).
 */
void health_apply(struct health *h, const struct topology *t);

/*
 * At start: waits up to ms for the first lookups of host names to finish
 * (running the main loop), then marks DOWN every backend whose name did
 * not resolve; it is looked up again until it does.
 */
void health_wait_names(struct health *h, unsigned ms);

/* Reads resolv.conf and /etc/hosts again (before a reload's lookups). */
void health_reload_names(struct health *h);

/* Whether every backend has had its first probe answered or failed (once
 * true, it stays true: backends added later do not count). */
bool health_round_done(struct health *h);

/* An operator put a MAINT backend back: it returns through RECOVERING. */
void health_activate(struct health *h, struct backend *be);

#endif
