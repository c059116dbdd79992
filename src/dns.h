/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dns: host names resolved on the main thread's event loop with libevent's
 * evdns, never blocking it. Numeric addresses and names in /etc/hosts are
 * answered at once.
 */
#ifndef MCRING_DNS_H
#define MCRING_DNS_H

#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_req;

/*
 * Result of a lookup: err 0 and the address (a name's first IPv4 address
 * when it has one, else its first IPv6 address), or err != 0 and reason.
 */
typedef void (*dns_cb)(int err, const char *reason,
                       const struct sockaddr_storage *sa, socklen_t salen,
                       void *arg);

/* A resolver on base (reads /etc/resolv.conf and /etc/hosts). Returns NULL
 * with err. */
struct dns *dns_create(struct event_base *base, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Cancels every lookup in flight (their callbacks are not called). */
void dns_destroy(struct dns *d);

/* Reads /etc/resolv.conf and /etc/hosts again (on reload). */
void dns_reload(struct dns *d);

/*
 * Looks up host, port. cb is called exactly once, maybe before this
 * returns (then NULL is returned), unless the lookup is cancelled.
 * Returns the lookup in flight, owned by the resolver.
 */
struct dns_req *dns_resolve(struct dns *d, const char *host, uint16_t port,
                            dns_cb cb, void *arg);
/* Cancels a lookup in flight: cb is not called. */
void dns_cancel(struct dns_req *r);

/*
 * Parses host, port as a numeric address (no lookup). Returns 0 and fills
 * sa and *salen, or -1 when host is a name.
 */
int dns_numeric(const char *host, uint16_t port, struct sockaddr_storage *sa,
                socklen_t *salen);

#endif
