/*
 * health: active health checks, the UP/DOWN state machine and stale-safe
 * recovery, all on the main thread.
 *
 *   UP --fall failures--> DOWN --rise successes--> RECOVERING --clean--> UP
 *    ^                      ^                           |
 *    |                      +-------- a failure --------+
 *    +-- workers may also take UP -> DOWN at once (refused connect)
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

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct health;

/* Creates the checker and arms its first probes. Returns NULL with err. */
struct health *health_create(struct proxy *p, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void health_destroy(struct health *h);

/*
 * A worker saw backend b fail hard (refused or failed connect): mark it
 * DOWN now. Thread-safe.
 */
void health_backend_failed(struct proxy *p, uint32_t b, const char *reason);

/* A worker's request to backend b timed out. Thread-safe. */
void health_backend_timeout(struct proxy *p, uint32_t b);

const char *health_state_name(int state);

#endif
