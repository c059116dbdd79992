/*
 * config: the INI configuration file, read with inih.
 *
 * Sections [proxy], [health] and [backends]. Every key has a default (see
 * config_defaults() and mcring.ini(5)); every error is reported as
 * "FILE:LINE: message". A loaded config is immutable.
 */
#ifndef MCRING_CONFIG_H
#define MCRING_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ring.h"

#define CONFIG_NAME_MAX 64          /* backend name length */
#define CONFIG_LINE_MAX 199         /* libinih 55 splits longer lines */
#define CONFIG_WEIGHT_MAX 1000.0    /* backend weight is in (0, this] */

struct config_backend {
    char *name;                     /* [A-Za-z0-9_.:-], 1..64 bytes */
    char *host;                     /* as written, without IPv6 brackets */
    uint16_t port;
    double weight;                  /* > 0, default 1 */
    int line;                       /* where it was defined */
    struct sockaddr_storage addr;   /* filled by config_resolve() */
    socklen_t addrlen;
};

struct config {
    char *path;

    /* [proxy] */
    char *listen_host;              /* listen = HOST:PORT */
    uint16_t listen_port;
    unsigned threads;               /* 0 = online CPUs */
    enum ring_hash hash;
    unsigned vnodes;
    unsigned timeout_ms;
    unsigned connect_timeout_ms;
    unsigned backend_connections;
    unsigned max_connections;
    size_t max_value_size;
    unsigned max_keys;              /* keys in one retrieval command */
    size_t client_output_limit;     /* back-pressure high-water mark */

    /* [health] */
    unsigned health_interval_ms;
    unsigned health_timeout_ms;
    unsigned health_rise;
    unsigned health_fall;
    unsigned recovery_log;          /* keys remembered per DOWN backend */
    unsigned failover_ttl;          /* seconds; cap on fallback writes */

    /* [backends], sorted by name */
    struct config_backend *backends;
    size_t nbackends;
};

/*
 * Fills cfg with every default and no backends. Nothing to free: listen_host
 * points at a string literal, path is NULL.
 */
void config_defaults(struct config *cfg);

/*
 * Reads and validates path. Returns a config the caller owns
 * (config_destroy()), backends sorted by name, or NULL with
 * "FILE:LINE: message" in err ("FILE: cannot open: reason" when the file
 * cannot be opened). Host names are not resolved here; see config_resolve().
 */
struct config *config_load(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Resolves every backend address (getaddrinfo, first result) and checks that
 * no two backends resolve to the same address. Returns 0, or -1 with
 * "FILE:LINE: message" in err.
 */
int config_resolve(struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees a config returned by config_load(); NULL is ignored. */
void config_destroy(struct config *cfg);

/*
 * Splits "HOST:PORT", "[IPv6]:PORT" or "IPv6-free-host:PORT" into a host
 * (copied into host, at most hostlen bytes with the NUL) and a port 1..65535.
 * Returns 0, or -1 with a reason in err.
 */
int config_parse_hostport(const char *s, char *host, size_t hostlen,
                          uint16_t *port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Builds the ring described by cfg; see ring_create(). */
struct ring *config_build_ring(const struct config *cfg, char *err,
                               size_t errlen)
    __attribute__((warn_unused_result));

#endif
