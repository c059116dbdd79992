/*
 * config: the INI configuration file, read with inih.
 *
 * Sections [proxy], [health], [admin] and [backends]. Every key has a
 * default (see config_defaults() and mcring.ini(5)); every error is reported
 * as "FILE:LINE: message". A loaded config is not changed once a topology
 * uses it: the admin API edits a config_clone() of it (config_add_backend_str()
 * and friends) and applies the copy.
 */
#ifndef MCRING_CONFIG_H
#define MCRING_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "ring.h"

#define CONFIG_NAME_MAX 64          /* backend name length */
#define CONFIG_LINE_MAX 199         /* libinih 55 splits longer lines */
#define CONFIG_WEIGHT_MAX 1000.0    /* backend weight is in (0, this] */
#define CONFIG_TOKEN_MAX 128        /* [admin] token length */
#define CONFIG_UNIX_PATH_MAX 107    /* [admin] listen = /path, sun_path */
#define CONFIG_RAMP_MAX 604800      /* ramp and warmup: seconds (7 days) */
#define CONFIG_ECONFLICT (-2)       /* config_add_backend_str(): name or
                                       address taken */

struct config_backend {
    char *name;                     /* [A-Za-z0-9_.:-], 1..64 bytes */
    char *host;                     /* as written, without IPv6 brackets */
    uint16_t port;
    double weight;                  /* > 0, default 1; 0 only in the
                                       configs of a paced move's steps */
    int ramp;                       /* ramp=S: seconds a change of this
                                       backend is paced over; -1 = not
                                       given ([proxy] ramp for an added
                                       one, else at once) */
    int line;                       /* where it was defined; 0 = not in
                                       the file (added through the API) */
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
    unsigned ramp;                  /* seconds: default pace of an added
                                       backend */
    unsigned warmup;                /* seconds of warm-up after a move
                                       (at least its ramp); 0 = off */
    unsigned migrate_rate;          /* keys per second the background copy
                                       moves; 0 = no copy */
    unsigned rebalance_max_move;    /* percent of the keys POST /rebalance
                                       may move per hour */
    char hash_tag[3];               /* two characters, or "" (off) */
    unsigned hotkeys;               /* keys tracked per worker; 0 = off */
    unsigned hotkey_sample;         /* one request in this many */
    unsigned hotkey_alert;          /* percent of its backend's requests
                                       that logs a hot key; 0 = off */

    /* [health] */
    unsigned health_interval_ms;
    unsigned health_timeout_ms;
    unsigned health_rise;
    unsigned health_fall;
    unsigned recovery_log;          /* keys remembered per DOWN backend */
    unsigned failover_ttl;          /* seconds; cap on fallback writes */

    /* [admin] */
    char *admin_listen;             /* HOST:PORT or /unix/path, as written;
                                       NULL = the admin API is off */
    char *admin_token;              /* NULL = no token required */
    bool admin_metrics_open;        /* metrics_without_token: /metrics,
                                       /health and /ready need none */

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
 * Resolves every backend address (getaddrinfo, first result; blocking: for
 * `mcring -t`, not the daemon) and checks that no two backends resolve to
 * the same address. A name that does not resolve is an error, or, with
 * warn, a warning written there (its addrlen stays 0). Returns 0, or -1
 * with "FILE:LINE: message" in err.
 */
int config_resolve(struct config *cfg, FILE *warn, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees a config returned by config_load(); NULL is ignored. */
void config_destroy(struct config *cfg);

/*
 * A deep copy of cfg (resolved addresses included) that the caller owns
 * (config_destroy()). Aborts when out of memory, like util_xcalloc().
 */
struct config *config_clone(const struct config *cfg)
    __attribute__((warn_unused_result));

/*
 * Adds backend name at hostport ("HOST:PORT", "[IPv6]:PORT") with weight,
 * checked exactly as a [backends] line is (name, address syntax, weight,
 * duplicate name, duplicate address as written), keeping cfg->backends
 * sorted by name; its line is 0 and its address is not resolved. Returns
 * 0, or with a message (no FILE:LINE) in err and cfg unchanged
 * CONFIG_ECONFLICT when the name or the address is taken, -1 for anything
 * else.
 */
int config_add_backend_str(struct config *cfg, const char *name,
                           const char *hostport, double weight, char *err,
                           size_t errlen) __attribute__((warn_unused_result));

/*
 * Inserts a copy of src (name, address, resolved address, weight, ramp),
 * keeping cfg->backends sorted by name. Nothing is checked: for building
 * the step configs of a paced move from backends already checked.
 */
void config_copy_backend(struct config *cfg, const struct config_backend *src);

/*
 * Removes backend name. Returns 0, or -1 with a message in err and cfg
 * unchanged when there is no such backend or it is the last one.
 */
int config_remove_backend(struct config *cfg, const char *name, char *err,
                          size_t errlen) __attribute__((warn_unused_result));

/*
 * Sets the weight of backend name, checked as weight=W on a [backends]
 * line (and it must be writable back as a decimal of at most 15 digits).
 * Returns 0, or -1 with a message in err and cfg unchanged.
 */
int config_set_weight(struct config *cfg, const char *name, double weight,
                      char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Looks a backend up by name: its index in cfg->backends, or -1. */
int config_backend_index(const struct config *cfg, const char *name);

/*
 * Writes cfg as an INI file that config_load() reads back equal: every
 * [proxy] and [health] key with its value, [admin] when set, [backends].
 */
void config_render(const struct config *cfg, FILE *out);

/* Number of [proxy] and [health] keys (the key table). */
size_t config_nkeys(void);

/*
 * Key i of the table (i < config_nkeys()): its section and name (static
 * strings) and its value in cfg as config_load() reads it, written into
 * value (at most valuelen bytes with the NUL). Returns 0, or -1 when i is
 * out of range or value is too small.
 */
int config_key_format(const struct config *cfg, size_t i,
                      const char **section, const char **name, char *value,
                      size_t valuelen) __attribute__((warn_unused_result));

/*
 * Writes weight w as the decimal that weight=W reads back as exactly w
 * ("1", "0.5", "2.25"). Returns 0, or -1 when there is none of at most 15
 * digits or w is out of (0, CONFIG_WEIGHT_MAX].
 */
int config_format_weight(double w, char *buf, size_t len)
    __attribute__((warn_unused_result));


/* Builds the ring described by cfg; see ring_create(). */
struct ring *config_build_ring(const struct config *cfg, char *err,
                               size_t errlen)
    __attribute__((warn_unused_result));

#endif
