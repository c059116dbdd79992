/* SPDX-License-Identifier: BSD-3-Clause */
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
#define CONFIG_ENOENT (-3)          /* config_remove_backend(): not there */
#define CONFIG_POOLS_MAX 64         /* [pool NAME] sections */
#define CONFIG_ROUTES_MAX 1024      /* [routes] lines */
#define CONFIG_REPLICAS_MAX 8       /* replicas = N in a pool */
#define CONFIG_PREFIX_MAX 250       /* a route's key prefix: a key's length */
#define CONFIG_DEFAULT_POOL "default" /* the pool of [backends] */

struct config_backend {
    char *name;                     /* [A-Za-z0-9_.:-], 1..64 bytes */
    char *host;                     /* as written, without IPv6 brackets */
    uint16_t port;
    bool tls;                       /* tls=yes */
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

/*
 * A pool: a ring over some of the backends, with settings of its own.
 * [backends] is the pool "default". A backend may be in several pools: it
 * is one backend (one address, one weight, one health state) wherever it
 * is listed.
 */
struct config_pool {
    char *name;                     /* as a backend name */
    int line;                       /* its section header; 0 = the API */
    int hash;                       /* enum ring_hash, -1: [proxy] hash */
    unsigned vnodes;                /* 0: [proxy] vnodes */
    unsigned replicas;              /* copies of each key, >= 1 */
    char *region;                   /* NULL: none */
    bool hotkey_spread;             /* hot keys read from any replica */
    unsigned rate;                  /* keys a second, all threads; 0: any */
    unsigned burst;                 /* 0: as rate */
    char *shadow;                   /* a pool that also gets a copy of a
                                       share of its key commands, or NULL */
    double shadow_share;            /* that share of its keys, [0, 1] */
    char *writes;                   /* the pool its writes go to, or NULL:
                                       itself */
    char *deletes;                  /* "all", or the names of other pools
                                       its deletes go to too; NULL: none */
    /* Health settings for its backends, 0: [health]'s. A backend in
     * several pools takes them from the first of those pools. */
    unsigned health_interval_ms;
    unsigned health_timeout_ms;
    unsigned health_rise;
    unsigned health_fall;
    char **members;                 /* backend names, sorted, owned */
    size_t nmembers;
};

/* "PREFIX = POOL" in [routes]; "*" is the prefix "". POOL may also be
 * "local-first [POOL...]": the pool of the proxy's region, with the
 * others listed (or every pool with a region) as remote regions. */
struct config_route {
    char *prefix;
    char *pool;                     /* the value, as written */
    bool local_first;
    int line;
};

#define CONFIG_LOCAL_FIRST "local-first"

/* Health settings that apply to one backend. */
struct config_health {
    unsigned interval_ms;
    unsigned timeout_ms;
    unsigned rise;
    unsigned fall;
};

struct config {
    char *path;

    /* [proxy] */
    char *listen_host;              /* listen = HOST:PORT, or a unix
                                       socket's path (port 0) */
    uint16_t listen_port;
    unsigned listen_mode;           /* of that unix socket */
    bool io_uring;                  /* batch each turn's I/O (iobatch.h) */
    unsigned client_rate;           /* key commands a second per client
                                       address, all threads; 0: any */
    unsigned client_burst;          /* 0: as client_rate */
    unsigned threads;               /* 0 = online CPUs */
    enum ring_hash hash;
    unsigned vnodes;
    unsigned timeout_ms;
    unsigned connect_timeout_ms;
    unsigned backend_connections;
    unsigned backend_queue_limit;   /* requests queued per backend
                                       connection */
    unsigned client_idle_timeout;   /* seconds; 0 = never */
    unsigned max_connections;
    size_t max_value_size;
    unsigned max_keys;              /* keys in one retrieval command */
    size_t client_output_limit;     /* back-pressure high-water mark */
    size_t max_memory;              /* what all clients together may be
                                       owed (0 = no bound) */
    unsigned ramp;                  /* seconds: default pace of an added
                                       backend */
    unsigned warmup;                /* seconds of warm-up after a move
                                       (at least its ramp); 0 = off */
    unsigned migrate_rate;          /* keys per second the background copy
                                       moves; 0 = no copy */
    unsigned rebalance_max_move;    /* percent of the keys POST /rebalance
                                       may move per hour */
    char hash_tag[3];               /* two characters, or "" (off) */
    char region[CONFIG_NAME_MAX + 1]; /* the proxy's region, or "" */
    unsigned hotkeys;               /* keys tracked per worker; 0 = off */
    unsigned hotkey_sample;         /* one request in this many */
    unsigned hotkey_alert;          /* percent of its backend's requests
                                       that logs a hot key; 0 = off */
    size_t big_value_split;         /* values over this are chunked
                                       (big.h); 0 = off */
    size_t l1;                      /* bytes of hot keys' values cached,
                                       all workers (l1.h); 0 = off */
    unsigned l1_ttl;                /* ms a cached value is served */
    char *delete_spool;             /* absolute path of the delete spool
                                       (spool.h); NULL = off */
    unsigned delete_spool_max;      /* keys the spool holds, all backends */

    /* [health] */
    unsigned health_interval_ms;
    unsigned health_timeout_ms;
    unsigned health_rise;
    unsigned health_fall;
    unsigned recovery_log;          /* keys remembered per DOWN backend */
    unsigned failover_ttl;          /* seconds; cap on fallback writes */
    double failover_limit;          /* share of a pool's backends that may
                                       be DOWN with their keys failing over;
                                       beyond it they get errors (1: off) */

    /* [admin] */
    char *admin_listen;             /* HOST:PORT or /unix/path, as written;
                                       NULL = the admin API is off */
    char *admin_token;              /* NULL = no token required */
    bool admin_metrics_open;        /* metrics_without_token: /metrics,
                                       /health and /ready need none */

    /* [tls]: files as written; NULL = not set */
    char *tls_cert;                 /* PEM chain shown to TLS clients (and
                                       to backends that ask for one) */
    char *tls_key;
    char *tls_ca;                   /* verifies backends (and clients);
                                       NULL: the system's CAs */
    char *tls_listen;               /* the TLS client listener, HOST:PORT;
                                       NULL = none */
    bool tls_verify_clients;        /* clients must show a certificate */
    bool tls_verify_backends;       /* backends' certificates checked
                                       (default yes) */

    /* Every backend of every pool, once, sorted by name. (During a paced
     * move a backend may also be in none: it lingers at weight 0.) */
    struct config_backend *backends;
    size_t nbackends;

    /* [backends] ("default") and [pool NAME], in the order of the file */
    struct config_pool *pools;
    size_t npools;
    /* [routes], longest prefix first; without "*" keys matching no prefix
     * go to "default", or to the only pool */
    struct config_route *routes;
    size_t nroutes;
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
 * Adds backend name at hostport ("HOST:PORT", "[IPv6]:PORT") with weight
 * (NAN: not given, 1) to pool (NULL: the default pool, made in a config
 * that has no pool yet), checked exactly as
 * a backend line is (name, address syntax, weight, duplicate name,
 * duplicate address as written), keeping cfg->backends sorted by name;
 * its line is 0 and its address is not resolved. A backend of another
 * pool joins this one when the address (and weight, if given) are its
 * own. Returns 0, or with a message (no FILE:LINE) in err and cfg
 * unchanged CONFIG_ECONFLICT when the name or the address is taken, -1
 * for anything else.
 */
int config_add_backend_str(struct config *cfg, const char *pool,
                           const char *name, const char *hostport,
                           double weight, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Inserts a copy of src (name, address, resolved address, weight, ramp),
 * keeping cfg->backends sorted by name. Nothing is checked: for building
 * the step configs of a paced move from backends already checked.
 */
void config_copy_backend(struct config *cfg, const struct config_backend *src);

/*
 * Removes backend name from pool (NULL: from every pool); a backend left
 * in no pool is removed. Returns 0, or with a message in err and cfg
 * unchanged CONFIG_ENOENT when there is no such backend (in that pool), -1
 * when it is the last one of a pool.
 */
int config_remove_backend(struct config *cfg, const char *pool,
                          const char *name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Sets the weight of backend name, checked as weight=W on a [backends]
 * line (and it must be writable back as a decimal of at most 15 digits).
 * Returns 0, or -1 with a message in err and cfg unchanged.
 */
int config_set_weight(struct config *cfg, const char *name, double weight,
                      char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether name is a valid backend (and pool) name: 1..CONFIG_NAME_MAX
 * bytes of A-Z a-z 0-9 _ . : - */
bool config_name_valid(const char *name);

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

/*
 * A strict decimal: digits with an optional fraction ("2", "0.5", ".5"),
 * at most 15 digits, no sign, exponent or locale. Returns 0 and fills
 * *out, or -1.
 */
int config_parse_decimal(const char *s, double *out)
    __attribute__((warn_unused_result));
/* As config_format_weight(), for any w in [0, CONFIG_WEIGHT_MAX] (shares
 * too). */
int config_format_decimal(double w, char *buf, size_t len)
    __attribute__((warn_unused_result));


/*
 * Builds the ring of pool `pool` (an index in cfg->pools); see
 * ring_create(). When map is not NULL it gets, for each ring index j, the
 * index in cfg->backends of that backend (map holds the pool's nmembers
 * entries). Returns NULL with err when the ring cannot be built.
 */
struct ring *config_build_pool_ring(const struct config *cfg, size_t pool,
                                    uint32_t *map, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Builds every pool's ring and frees them: 0, or -1 with "pool 'P': ..."
 * in err when one cannot be built. */
int config_check_rings(const struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The ring of the pool that keys matching no route go to (see
 * config_default_pool()). */
struct ring *config_build_ring(const struct config *cfg, char *err,
                               size_t errlen)
    __attribute__((warn_unused_result));

/* Pools and routes: config_pool.c. */

/* Index in cfg->pools of the pool called name, or -1. */
int config_pool_index(const struct config *cfg, const char *name);

/* A pool's deletes = value: every other pool. */
#define CONFIG_ALL_POOLS "all"
/* Whether value is a deletes = value ("all", or names): how many names,
 * or -1. */
int config_pool_names_valid(const char *value);
/* The indices (in cfg) of the pools p's deletes go to besides its own
 * writes pool: at most cap of them into out; how many. */
size_t config_pool_deletes(const struct config *cfg,
                           const struct config_pool *p, int *out,
                           size_t cap);
/* The pool of keys that match no route: "*", else "default", else the
 * only pool; -1 when there is none (config_check_pools() refuses that). */
int config_default_pool(const struct config *cfg);
/* The pool route r sends keys to (a local-first route: the pool of the
 * proxy's region), or -1. */
int config_route_pool(const struct config *cfg, const struct config_route *r);
/* The remote regions' pools of a local-first route r (out: at most
 * CONFIG_POOLS_MAX): the listed pools, or every pool with a region, but
 * the local one. Returns how many (0 for another route). */
size_t config_route_remotes(const struct config *cfg,
                            const struct config_route *r, uint32_t *out);
/* The route of keys that match no prefix ("*"), or NULL. */
const struct config_route *config_default_route(const struct config *cfg);
/* The pool that key goes to: the longest matching route's, else the
 * default. Never -1 for a config that config_check_pools() accepts. */
int config_route_key(const struct config *cfg, const char *key, size_t len);
/* Whether pool p lists backend name. */
bool config_pool_has(const struct config_pool *p, const char *name);
/* ring hash and vnodes of pool p, its own or [proxy]'s. */
enum ring_hash config_pool_hash(const struct config *cfg,
                                const struct config_pool *p);
unsigned config_pool_vnodes(const struct config *cfg,
                            const struct config_pool *p);

/*
 * A new empty pool called name (checked as a backend name, not taken).
 * Returns it (cfg->pools may move: pointers into it are stale), or NULL
 * with err; CONFIG_POOLS_MAX bounds them.
 */
struct config_pool *config_add_pool(struct config *cfg, const char *name,
                                    int line, char *err, size_t errlen);
/*
 * Sets key = value of a [pool NAME] section when key is a pool setting
 * (hash, vnodes, replicas, region, hotkey_spread, interval_ms, timeout_ms,
 * rise, fall, rate, burst, shadow, shadow_share, writes, deletes).
 * Returns 1 when set, 0 when key is no pool setting (a
 * backend line, then), -1 with err for a bad value.
 */
int config_pool_set(struct config *cfg, struct config_pool *p,
                    const char *key, const char *value, char *err,
                    size_t errlen) __attribute__((warn_unused_result));
/* Removes pool p's setting key when it is one that can be left out
 * (shadow, with its shadow_share; writes; deletes): 1, else 0. */
int config_pool_unset(struct config_pool *p, const char *key);
/* Adds backend name to pool p; 0, or -1 with err when it is there. */
int config_pool_add_member(struct config_pool *p, const char *name,
                           char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Removes backend name from pool p, if there. */
void config_pool_remove_member(struct config_pool *p, const char *name);
/* Removes pool name and its routes; 0, or -1 with err (no such pool, the
 * last pool, or a pool the default route needs). */
int config_remove_pool(struct config *cfg, const char *name, char *err,
                       size_t errlen) __attribute__((warn_unused_result));
/* Adds "prefix = pool" ("*": the default); 0, or -1 with err (bad or
 * duplicate prefix, too many routes). The pool is checked by
 * config_check_pools(). */
int config_add_route(struct config *cfg, const char *prefix,
                     const char *pool, int line, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Removes every route. */
void config_clear_routes(struct config *cfg);
/* The checks of a whole config's pools and routes: every pool has a
 * backend, every route names a pool, there is a default. 0, or -1 with a
 * message in err and the line it is about in *line (0: none). */
int config_check_pools(const struct config *cfg, int *line, char *err,
                       size_t errlen) __attribute__((warn_unused_result));
/* The health settings of backend name: of its first pool, else
 * [health]'s. */
void config_backend_health(const struct config *cfg, const char *name,
                           struct config_health *out);
/* Whether a and b place keys on their pools the same way (the same pools,
 * members, hashes, vnodes and routes); weights are compared apart. */
bool config_pools_same_placement(const struct config *a,
                                 const struct config *b);
/*
 * A copy of cfg reduced to pool `pool` (an index): its members are the
 * backends, it is the only pool (under its own name), its hash and vnodes
 * are the [proxy] ones, and there are no routes. For what looks at one
 * ring with backend index = ring index (the analysis, rebalancing). The
 * caller owns it.
 */
struct config *config_pool_view(const struct config *cfg, size_t pool)
    __attribute__((warn_unused_result));
/* The largest share of a pool's keys whose owner differs between a and
 * b, over the pools (by name) both have: 0 when none, NAN when a ring
 * cannot be built or the hashes differ. */
double config_moved_share(const struct config *a, const struct config *b);
/* Pools and routes of src copied into dst (which has none). */
void config_pools_copy(struct config *dst, const struct config *src);
/* Frees cfg's pools and routes. */
void config_pools_free(struct config *cfg);
/* Copies the memberships that backend name has in from into cfg, for the
 * pools cfg has too. */
void config_copy_memberships(struct config *cfg, const struct config *from,
                             const char *name);
/* Writes the [pool NAME] sections (and [backends] when its pool has
 * settings of its own) and [routes]; line(b) writes one backend line. */
typedef void (*config_backend_line_fn)(FILE *out,
                                       const struct config_backend *b);
void config_pools_render(const struct config *cfg, FILE *out,
                         config_backend_line_fn line);

#endif
