/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config_pool: the pools and routes of a config (see config.h), and the
 * name checks and look-ups they share with config.c, which builds on this
 * file (never the other way round).
 *
 *   [backends] / [pool NAME] --config.c--> config_add_pool(),
 *       config_pool_set() (settings), config_pool_add_member() (backends)
 *   [routes] --config.c--> config_add_route()
 *   whole file --> config_check_pools()
 *
 * A pool names its members; the backends themselves (address, weight,
 * ramp) live once in cfg->backends, so that a backend listed in several
 * pools is one backend. Members are kept sorted, so that a pool's ring
 * index order is the order of cfg->backends restricted to the pool, and a
 * config with one pool over every backend has ring index = backend index.
 *
 * Routes are kept longest prefix first (then by bytes), so the first
 * route whose prefix a key starts with is the longest match; "*" is the
 * empty prefix, last, matching every key.
 *
 * Invariants: pool names are unique and valid backend names; members of a
 * pool are unique and sorted; route prefixes are unique. Whether members
 * and route pools exist is checked once the whole file is read
 * (config_check_pools()), since a [routes] line may come before its pool.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

/*
 * See config.h. A strict decimal: digits with an optional fraction ("2", "0.5",
 * ".5"), at most 15 digits so that mantissa / 10^k is exact on both sides
 * and the quotient correctly rounded (what strtod() gives, without its
 * locale, hex, exponent, inf and nan forms).
 */
int
config_parse_decimal(const char *s, double *out)
{
    uint64_t mant = 0;
    unsigned digits = 0;
    unsigned frac = 0;
    bool dot = false;
    double scale = 1.0;

    for (; *s != '\0'; s++) {
        if (*s == '.' && !dot) {
            dot = true;
        } else if (*s >= '0' && *s <= '9') {
            if (++digits > 15) {
                return -1;
            }
            mant = mant * 10 + (uint64_t)(*s - '0');
            frac += dot;
        } else {
            return -1;
        }
    }
    if (digits == 0 || (dot && frac == 0)) {
        return -1;
    }
    while (frac-- > 0) {
        scale *= 10.0;
    }
    *out = (double)mant / scale;
    return 0;
}

int
config_format_decimal(double w, char *buf, size_t len)
{
    char tmp[64];

    if (!(w >= 0.0 && w <= CONFIG_WEIGHT_MAX)) {
        return -1;
    }
    /*
     * The fewest decimals that read back as w; a leading "0" counts as a
     * digit for config_parse_decimal(), so try without it too.
     */
    for (int decimals = 0; decimals <= 15; decimals++) {
        double v;
        char *s = tmp;
        size_t n;

        snprintf(tmp, sizeof(tmp), "%.*f", decimals, w);
        if (config_parse_decimal(s, &v) != 0 && s[0] == '0' && s[1] == '.') {
            s++;
        }
        if (config_parse_decimal(s, &v) != 0 || v != w) {
            continue;
        }
        n = strlen(s);
        if (n >= len) {
            return -1;
        }
        memcpy(buf, s, n + 1);
        return 0;
    }
    return -1;
}

bool
config_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > CONFIG_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

int
config_backend_index(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nbackends; i++) {
        if (strcmp(cfg->backends[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int
config_pool_index(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->npools; i++) {
        if (strcmp(cfg->pools[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Calls fn on each pool name a local-first route's value lists (after
 * "local-first"); returns how many. */
static size_t
config_route_names(const char *value, void (*fn)(const char *, size_t, void *),
                   void *arg)
{
    const char *p = value + strlen(CONFIG_LOCAL_FIRST);
    size_t n = 0;

    while (*p != '\0') {
        size_t len;

        while (*p == ' ' || *p == '\t') {
            p++;
        }
        len = strcspn(p, " \t");
        if (len > 0) {
            fn(p, len, arg);
            n++;
        }
        p += len;
    }
    return n;
}

struct config_route_scan {
    const struct config *cfg;
    int local;                      /* the proxy's region's pool */
    uint32_t *remote;
    size_t nremote;
    bool bad;                       /* a name that is no pool */
};

static void
config_route_scan_one(const char *name, size_t len, void *arg)
{
    struct config_route_scan *sc = arg;
    char buf[CONFIG_NAME_MAX + 1];
    int i;

    snprintf(buf, sizeof(buf), "%.*s", (int)len, name);
    i = len <= CONFIG_NAME_MAX ? config_pool_index(sc->cfg, buf) : -1;
    if (i < 0) {
        sc->bad = true;
        return;
    }
    if (sc->cfg->pools[i].region != NULL && sc->cfg->region[0] != '\0' &&
        strcmp(sc->cfg->pools[i].region, sc->cfg->region) == 0) {
        sc->local = sc->local < 0 ? i : sc->local;
    } else if (sc->remote != NULL) {
        sc->remote[sc->nremote++] = (uint32_t)i;
    } else {
        sc->nremote++;
    }
}

/* The pools of local-first route r, sorted into sc. */
static void
config_route_scan(const struct config *cfg, const struct config_route *r,
                  struct config_route_scan *sc)
{
    *sc = (struct config_route_scan){cfg, -1, sc->remote, 0, false};
    if (config_route_names(r->pool, config_route_scan_one, sc) > 0) {
        return;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        if (cfg->pools[i].region != NULL) {
            config_route_scan_one(cfg->pools[i].name,
                                  strlen(cfg->pools[i].name), sc);
        }
    }
}

int
config_route_pool(const struct config *cfg, const struct config_route *r)
{
    struct config_route_scan sc = {.remote = NULL};

    if (!r->local_first) {
        return config_pool_index(cfg, r->pool);
    }
    config_route_scan(cfg, r, &sc);
    return sc.local;
}

size_t
config_route_remotes(const struct config *cfg, const struct config_route *r,
                     uint32_t *out)
{
    struct config_route_scan sc = {.remote = out};

    if (!r->local_first) {
        return 0;
    }
    config_route_scan(cfg, r, &sc);
    return sc.nremote;
}

const struct config_route *
config_default_route(const struct config *cfg)
{
    if (cfg->nroutes > 0 && cfg->routes[cfg->nroutes - 1].prefix[0] == '\0') {
        return &cfg->routes[cfg->nroutes - 1];
    }
    return NULL;
}

int
config_default_pool(const struct config *cfg)
{
    if (config_default_route(cfg) != NULL) {
        return config_route_pool(cfg, config_default_route(cfg));
    }
    int d = config_pool_index(cfg, CONFIG_DEFAULT_POOL);

    if (d >= 0) {
        return d;
    }
    return cfg->npools == 1 ? 0 : -1;
}

int
config_route_key(const struct config *cfg, const char *key, size_t len)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        size_t n = strlen(r->prefix);

        if (n <= len && memcmp(key, r->prefix, n) == 0) {
            return config_route_pool(cfg, r);
        }
    }
    return config_default_pool(cfg);
}

static int
config_member_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool
config_pool_has(const struct config_pool *p, const char *name)
{
    return p->nmembers > 0 &&
           bsearch(&name, p->members, p->nmembers, sizeof(*p->members),
                   config_member_cmp) != NULL;
}

enum ring_hash
config_pool_hash(const struct config *cfg, const struct config_pool *p)
{
    return p->hash >= 0 ? (enum ring_hash)p->hash : cfg->hash;
}

unsigned
config_pool_vnodes(const struct config *cfg, const struct config_pool *p)
{
    return p->vnodes > 0 ? p->vnodes : cfg->vnodes;
}

struct config_pool *
config_add_pool(struct config *cfg, const char *name, int line, char *err,
                size_t errlen)
{
    struct config_pool *p;
    int dup = config_pool_index(cfg, name);

    if (!config_name_valid(name)) {
        snprintf(err, errlen,
                 "bad pool name '%s' (1..%d bytes of A-Z a-z 0-9 _ . : -)",
                 name, CONFIG_NAME_MAX);
        return NULL;
    }
    if (dup >= 0) {
        if (cfg->pools[dup].line > 0) {
            snprintf(err, errlen, "duplicate pool '%s' (first at line %d)",
                     name, cfg->pools[dup].line);
        } else {
            snprintf(err, errlen, "duplicate pool '%s'", name);
        }
        return NULL;
    }
    if (cfg->npools >= CONFIG_POOLS_MAX) {
        snprintf(err, errlen, "too many pools (at most %d)",
                 CONFIG_POOLS_MAX);
        return NULL;
    }
    cfg->pools =
        util_xrealloc(cfg->pools, cfg->npools + 1, sizeof(*cfg->pools));
    p = &cfg->pools[cfg->npools++];
    memset(p, 0, sizeof(*p));
    p->name = util_xstrdup(name);
    p->line = line;
    p->hash = -1;
    p->replicas = 1;
    p->shadow_share = 1.0;
    return p;
}

static int
config_pool_uint(const char *key, const char *value, uint64_t min,
                 uint64_t max, unsigned *out, char *err, size_t errlen)
{
    uint64_t v;

    if (util_parse_u64(value, strlen(value), &v) != 0 || v < min ||
        v > max) {
        snprintf(err, errlen,
                 "%s: bad value '%s' (expected an integer in %" PRIu64
                 "..%" PRIu64 ")",
                 key, value, min, max);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int
config_pool_set(struct config *cfg, struct config_pool *p, const char *key,
                const char *value, char *err, size_t errlen)
{
    /* The ranges of the [proxy] and [health] keys of the same name. */
    static const struct {
        const char *key;
        size_t offset;
        uint64_t min, max;
    } nums[] = {
        {"vnodes", offsetof(struct config_pool, vnodes), 1, 10000},
        {"replicas", offsetof(struct config_pool, replicas), 1,
         CONFIG_REPLICAS_MAX},
        {"interval_ms", offsetof(struct config_pool, health_interval_ms), 10,
         60000},
        {"timeout_ms", offsetof(struct config_pool, health_timeout_ms), 1,
         60000},
        {"rise", offsetof(struct config_pool, health_rise), 1, 100},
        {"fall", offsetof(struct config_pool, health_fall), 1, 100},
        {"rate", offsetof(struct config_pool, rate), 0, 100000000},
        {"burst", offsetof(struct config_pool, burst), 0, 100000000},
    };

    (void)cfg;
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(nums); i++) {
        if (strcmp(key, nums[i].key) == 0) {
            return config_pool_uint(key, value, nums[i].min, nums[i].max,
                                    (unsigned *)(void *)((char *)p +
                                                         nums[i].offset),
                                    err, errlen) == 0
                       ? 1
                       : -1;
        }
    }
    if (strcmp(key, "hash") == 0) {
        if (strcmp(value, "xxh3") == 0) {
            p->hash = RING_HASH_XXH3;
        } else if (strcmp(value, "ketama") == 0) {
            p->hash = RING_HASH_KETAMA;
        } else {
            snprintf(err, errlen,
                     "hash: bad value '%s' (expected xxh3 or ketama)", value);
            return -1;
        }
        return 1;
    }
    if (strcmp(key, "region") == 0) {
        if (!config_name_valid(value)) {
            snprintf(err, errlen,
                     "region: bad name '%s' (1..%d bytes of A-Z a-z 0-9 _ . "
                     ": -)",
                     value, CONFIG_NAME_MAX);
            return -1;
        }
        free(p->region);
        p->region = util_xstrdup(value);
        return 1;
    }
    if (strcmp(key, "shadow") == 0) {
        if (!config_name_valid(value)) {
            snprintf(err, errlen,
                     "shadow: bad pool name '%s' (1..%d bytes of A-Z a-z 0-9 "
                     "_ . : -)",
                     value, CONFIG_NAME_MAX);
            return -1;
        }
        free(p->shadow);
        p->shadow = util_xstrdup(value);
        return 1;
    }
    if (strcmp(key, "writes") == 0) {
        if (!config_name_valid(value)) {
            snprintf(err, errlen,
                     "writes: bad pool name '%s' (1..%d bytes of A-Z a-z 0-9 "
                     "_ . : -)",
                     value, CONFIG_NAME_MAX);
            return -1;
        }
        free(p->writes);
        p->writes = util_xstrdup(value);
        return 1;
    }
    if (strcmp(key, "deletes") == 0) {
        if (config_pool_names_valid(value) <= 0) {
            snprintf(err, errlen,
                     "deletes: bad value '%s' (expected all, or pool names "
                     "separated by spaces)",
                     value);
            return -1;
        }
        free(p->deletes);
        p->deletes = util_xstrdup(value);
        return 1;
    }
    if (strcmp(key, "shadow_share") == 0) {
        if (config_parse_decimal(value, &p->shadow_share) != 0 ||
            p->shadow_share > 1.0) {
            p->shadow_share = 1.0;
            snprintf(err, errlen,
                     "shadow_share: bad share '%s' (expected a decimal from 0 "
                     "to 1, such as 0.01)",
                     value);
            return -1;
        }
        return 1;
    }
    if (strcmp(key, "hotkey_spread") == 0) {
        if (util_parse_bool(value, &p->hotkey_spread) != 0) {
            snprintf(err, errlen, "hotkey_spread: expected yes or no, got "
                                  "'%s'",
                     value);
            return -1;
        }
        return 1;
    }
    return 0;
}

int
config_pool_unset(struct config_pool *p, const char *key)
{
    char **field = strcmp(key, "shadow") == 0    ? &p->shadow
                   : strcmp(key, "writes") == 0  ? &p->writes
                   : strcmp(key, "deletes") == 0 ? &p->deletes
                                                 : NULL;

    if (field == NULL) {
        return 0;
    }
    free(*field);
    *field = NULL;
    if (field == &p->shadow) {
        p->shadow_share = 1.0;
    }
    return 1;
}

int
config_pool_add_member(struct config_pool *p, const char *name, char *err,
                       size_t errlen)
{
    size_t at = 0;

    if (config_pool_has(p, name)) {
        snprintf(err, errlen, "backend '%s' is already in pool '%s'", name,
                 p->name);
        return -1;
    }
    while (at < p->nmembers && strcmp(p->members[at], name) < 0) {
        at++;
    }
    p->members =
        util_xrealloc(p->members, p->nmembers + 1, sizeof(*p->members));
    memmove(&p->members[at + 1], &p->members[at],
            (p->nmembers - at) * sizeof(*p->members));
    p->members[at] = util_xstrdup(name);
    p->nmembers++;
    return 0;
}

void
config_pool_remove_member(struct config_pool *p, const char *name)
{
    for (size_t i = 0; i < p->nmembers; i++) {
        if (strcmp(p->members[i], name) == 0) {
            free(p->members[i]);
            memmove(&p->members[i], &p->members[i + 1],
                    (p->nmembers - i - 1) * sizeof(*p->members));
            p->nmembers--;
            return;
        }
    }
}

static void
config_pool_free(struct config_pool *p)
{
    for (size_t i = 0; i < p->nmembers; i++) {
        free(p->members[i]);
    }
    free(p->members);
    free(p->name);
    free(p->region);
    free(p->shadow);
    free(p->writes);
    free(p->deletes);
}

static void
config_route_remove(struct config *cfg, size_t i)
{
    free(cfg->routes[i].prefix);
    free(cfg->routes[i].pool);
    memmove(&cfg->routes[i], &cfg->routes[i + 1],
            (cfg->nroutes - i - 1) * sizeof(*cfg->routes));
    cfg->nroutes--;
}

int
config_remove_pool(struct config *cfg, const char *name, char *err,
                   size_t errlen)
{
    int i = config_pool_index(cfg, name);

    if (i < 0) {
        snprintf(err, errlen, "no pool '%s'", name);
        return -1;
    }
    if (cfg->npools == 1) {
        snprintf(err, errlen, "cannot remove the last pool");
        return -1;
    }
    if (config_default_pool(cfg) == i) {
        snprintf(err, errlen,
                 "pool '%s' takes the keys that match no route: route '*' "
                 "elsewhere first",
                 name);
        return -1;
    }
    for (size_t r = cfg->nroutes; r-- > 0;) {
        if (!cfg->routes[r].local_first &&
            strcmp(cfg->routes[r].pool, name) == 0) {
            config_route_remove(cfg, r);
        }
    }
    config_pool_free(&cfg->pools[i]);
    memmove(&cfg->pools[i], &cfg->pools[i + 1],
            (cfg->npools - (size_t)i - 1) * sizeof(*cfg->pools));
    cfg->npools--;
    return 0;
}

/* Longest first, then by bytes; "" (the default) last. */
static int
config_route_cmp(const struct config_route *a, const struct config_route *b)
{
    size_t la = strlen(a->prefix), lb = strlen(b->prefix);

    if (la != lb) {
        return la > lb ? -1 : 1;
    }
    return strcmp(a->prefix, b->prefix);
}

int
config_add_route(struct config *cfg, const char *prefix, const char *pool,
                 int line, char *err, size_t errlen)
{
    struct config_route r = {.prefix = (char *)prefix, .pool = (char *)pool,
                             .line = line};
    size_t at = 0;
    size_t n;

    if (strcmp(prefix, "*") == 0) {
        r.prefix = (char *)"";
    }
    n = strlen(r.prefix);
    if (strcmp(prefix, "*") != 0) {
        bool ok = n > 0 && n <= CONFIG_PREFIX_MAX;

        /* What a key may hold, and what a config line can carry back:
         * no '=', and no start that reads as a comment or a section. */
        ok = ok && prefix[0] != ';' && prefix[0] != '#' && prefix[0] != '[';
        for (size_t i = 0; ok && i < n; i++) {
            unsigned char c = (unsigned char)prefix[i];

            ok = c > ' ' && c != 0x7f && c != '=';
        }
        if (!ok) {
            snprintf(err, errlen,
                     "bad route prefix '%s' (1..%d bytes a key may hold, or "
                     "*)",
                     prefix, CONFIG_PREFIX_MAX);
            return -1;
        }
    }
    r.local_first = strncmp(pool, CONFIG_LOCAL_FIRST,
                            strlen(CONFIG_LOCAL_FIRST)) == 0 &&
                    (pool[strlen(CONFIG_LOCAL_FIRST)] == '\0' ||
                     pool[strlen(CONFIG_LOCAL_FIRST)] == ' ' ||
                     pool[strlen(CONFIG_LOCAL_FIRST)] == '\t');
    if (!r.local_first && !config_name_valid(pool)) {
        snprintf(err, errlen,
                 "route '%s': bad pool name '%s' (expected POOL or "
                 "local-first [POOL...])",
                 prefix, pool);
        return -1;
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (strcmp(cfg->routes[i].prefix, r.prefix) == 0) {
            if (cfg->routes[i].line > 0) {
                snprintf(err, errlen,
                         "duplicate route '%s' (first at line %d)", prefix,
                         cfg->routes[i].line);
            } else {
                snprintf(err, errlen, "duplicate route '%s'", prefix);
            }
            return -1;
        }
    }
    if (cfg->nroutes >= CONFIG_ROUTES_MAX) {
        snprintf(err, errlen, "too many routes (at most %d)",
                 CONFIG_ROUTES_MAX);
        return -1;
    }
    while (at < cfg->nroutes && config_route_cmp(&cfg->routes[at], &r) < 0) {
        at++;
    }
    cfg->routes =
        util_xrealloc(cfg->routes, cfg->nroutes + 1, sizeof(*cfg->routes));
    memmove(&cfg->routes[at + 1], &cfg->routes[at],
            (cfg->nroutes - at) * sizeof(*cfg->routes));
    cfg->routes[at] = (struct config_route){util_xstrdup(r.prefix),
                                            util_xstrdup(pool), r.local_first,
                                            line};
    cfg->nroutes++;
    return 0;
}

void
config_clear_routes(struct config *cfg)
{
    while (cfg->nroutes > 0) {
        config_route_remove(cfg, cfg->nroutes - 1);
    }
}

/* A local-first route: its pools exist, each has a region of its own,
 * and one is the proxy's. */
static int
config_check_local_first(const struct config *cfg,
                         const struct config_route *r, const char *what,
                         char *err, size_t errlen)
{
    uint32_t remote[CONFIG_POOLS_MAX];
    struct config_route_scan sc = {.remote = remote};

    config_route_scan(cfg, r, &sc);
    if (sc.bad) {
        snprintf(err, errlen, "route '%s': %s names a pool that does not "
                              "exist",
                 what, r->pool);
        return -1;
    }
    if (cfg->region[0] == '\0') {
        snprintf(err, errlen,
                 "route '%s': local-first needs [proxy] region", what);
        return -1;
    }
    if (sc.local < 0) {
        snprintf(err, errlen,
                 "route '%s': no pool of region '%s' (set region = %s in "
                 "one of its pools)",
                 what, cfg->region, cfg->region);
        return -1;
    }
    for (size_t i = 0; i < sc.nremote; i++) {
        const struct config_pool *p = &cfg->pools[remote[i]];

        if (p->region == NULL) {
            snprintf(err, errlen, "route '%s': pool '%s' has no region", what,
                     p->name);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->pools[remote[j]].region, p->region) == 0) {
                snprintf(err, errlen,
                         "route '%s': pools '%s' and '%s' are both of region "
                         "'%s'",
                         what, cfg->pools[remote[j]].name, p->name,
                         p->region);
                return -1;
            }
        }
    }
    return 0;
}

/* The index of the pool p's writes go to (p's own without writes =), or
 * -1 when there is no such pool. */
static int
config_pool_writes_index(const struct config *cfg,
                         const struct config_pool *p)
{
    return config_pool_index(cfg, p->writes != NULL ? p->writes : p->name);
}

/*
 * The pools a deletes = value names: "all" (every pool of cfg but self's
 * writes pool) or names. Without cfg, only the names are checked. Returns
 * how many (at most cap of them into out), or -1 with err when a name is
 * bad, not a pool, self's writes pool, or named twice.
 */
static int
config_pool_names(const char *value, const struct config *cfg,
                  const struct config_pool *self, int *out, size_t cap,
                  char *err, size_t errlen)
{
    const char *p = value;
    int skip = cfg != NULL ? config_pool_writes_index(cfg, self) : -1;
    int n = 0;

    if (strcmp(value, CONFIG_ALL_POOLS) == 0) {
        for (size_t i = 0; cfg != NULL && i < cfg->npools && n < (int)cap;
             i++) {
            if ((int)i != skip) {
                out[n++] = (int)i;
            }
        }
        return cfg != NULL ? n : 1;
    }
    while (*p != '\0') {
        char name[CONFIG_NAME_MAX + 1];
        size_t len;

        while (*p == ' ' || *p == '\t') {
            p++;
        }
        len = strcspn(p, " \t");
        if (len == 0) {
            break;
        }
        if (len > CONFIG_NAME_MAX) {
            return -1;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
        if (!config_name_valid(name)) {
            return -1;
        }
        if (cfg != NULL) {
            int j = config_pool_index(cfg, name);

            if (j < 0 || j == skip) {
                snprintf(err, errlen,
                         j < 0 ? "pool '%s': deletes: no pool '%s'"
                               : "pool '%s': deletes: '%s' takes its "
                                 "deletes anyway (its writes go there)",
                         self->name, name);
                return -1;
            }
            for (int k = 0; k < n; k++) {
                if (out[k] == j) {
                    snprintf(err, errlen,
                             "pool '%s': deletes: '%s' named twice",
                             self->name, name);
                    return -1;
                }
            }
            if (n < (int)cap) {
                out[n] = j;
            }
        }
        n++;
    }
    return n;
}

int
config_pool_names_valid(const char *value)
{
    return config_pool_names(value, NULL, NULL, NULL, 0, NULL, 0);
}

size_t
config_pool_deletes(const struct config *cfg, const struct config_pool *p,
                    int *out, size_t cap)
{
    char err[16];
    int n = p->deletes != NULL ? config_pool_names(p->deletes, cfg, p, out,
                                                   cap, err, sizeof(err))
                               : 0;

    return n > 0 ? (size_t)n : 0;
}

/* Pool p's writes and deletes name pools of cfg. */
static int
config_check_commands(const struct config *cfg, const struct config_pool *p,
                      char *err, size_t errlen)
{
    int idx[CONFIG_POOLS_MAX];

    if (p->writes != NULL && config_pool_index(cfg, p->writes) < 0) {
        snprintf(err, errlen, "pool '%s': writes: no pool '%s'", p->name,
                 p->writes);
        return -1;
    }
    if (p->deletes != NULL &&
        config_pool_names(p->deletes, cfg, p, idx, CONFIG_POOLS_MAX, err,
                          errlen) < 0) {
        return -1;
    }
    return 0;
}

int
config_check_pools(const struct config *cfg, int *line, char *err,
                   size_t errlen)
{
    *line = 0;

    if (cfg->npools == 0) {
        snprintf(err, errlen,
                 "no backends (add NAME = HOST:PORT lines to [backends])");
        return -1;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct config_pool *p = &cfg->pools[i];

        *line = p->line;
        if (p->nmembers == 0) {
            snprintf(err, errlen, "pool '%s' has no backends", p->name);
            return -1;
        }
        for (size_t m = 0; m < p->nmembers; m++) {
            if (config_backend_index(cfg, p->members[m]) < 0) {
                snprintf(err, errlen, "pool '%s': no backend '%s'", p->name,
                         p->members[m]);
                return -1;
            }
        }
        if (p->shadow != NULL && config_pool_index(cfg, p->shadow) < 0) {
            snprintf(err, errlen, "pool '%s': shadow: no pool '%s'", p->name,
                     p->shadow);
            return -1;
        }
        if (config_check_commands(cfg, p, err, errlen) != 0) {
            return -1;
        }
        if (p->shadow != NULL && strcmp(p->shadow, p->name) == 0) {
            snprintf(err, errlen, "pool '%s': shadow: a pool cannot shadow "
                     "itself", p->name);
            return -1;
        }
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        const char *what = r->prefix[0] != '\0' ? r->prefix : "*";

        *line = r->line;
        if (!r->local_first && config_pool_index(cfg, r->pool) < 0) {
            snprintf(err, errlen, "route '%s': no pool '%s'", what, r->pool);
            return -1;
        }
        if (r->local_first &&
            config_check_local_first(cfg, r, what, err, errlen) != 0) {
            return -1;
        }
    }
    *line = 0;
    if (config_default_pool(cfg) < 0) {
        snprintf(err, errlen,
                 "no route for keys that match no prefix: add '* = POOL' to "
                 "[routes] (or a pool named default)");
        return -1;
    }
    return 0;
}

void
config_backend_health(const struct config *cfg, const char *name,
                      struct config_health *out)
{
    *out = (struct config_health){cfg->health_interval_ms,
                                  cfg->health_timeout_ms, cfg->health_rise,
                                  cfg->health_fall};
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct config_pool *p = &cfg->pools[i];

        if (!config_pool_has(p, name)) {
            continue;
        }
        if (p->health_interval_ms > 0) {
            out->interval_ms = p->health_interval_ms;
        }
        if (p->health_timeout_ms > 0) {
            out->timeout_ms = p->health_timeout_ms;
        }
        if (p->health_rise > 0) {
            out->rise = p->health_rise;
        }
        if (p->health_fall > 0) {
            out->fall = p->health_fall;
        }
        return;
    }
}

bool
config_pools_same_placement(const struct config *a, const struct config *b)
{
    if (a->npools != b->npools || a->nroutes != b->nroutes ||
        strcmp(a->hash_tag, b->hash_tag) != 0 ||
        strcmp(a->region, b->region) != 0) {
        return false;
    }
    for (size_t i = 0; i < a->npools; i++) {
        const struct config_pool *pa = &a->pools[i];
        int j = config_pool_index(b, pa->name);
        const struct config_pool *pb;

        if (j < 0) {
            return false;
        }
        pb = &b->pools[j];
        if (config_pool_hash(a, pa) != config_pool_hash(b, pb) ||
            config_pool_vnodes(a, pa) != config_pool_vnodes(b, pb) ||
            pa->nmembers != pb->nmembers ||
            (pa->region == NULL) != (pb->region == NULL) ||
            (pa->region != NULL && strcmp(pa->region, pb->region) != 0)) {
            return false;
        }
        for (size_t m = 0; m < pa->nmembers; m++) {
            if (strcmp(pa->members[m], pb->members[m]) != 0) {
                return false;
            }
        }
    }
    for (size_t i = 0; i < a->nroutes; i++) {
        if (strcmp(a->routes[i].prefix, b->routes[i].prefix) != 0 ||
            strcmp(a->routes[i].pool, b->routes[i].pool) != 0) {
            return false;
        }
    }
    return config_default_pool(a) >= 0 && config_default_pool(b) >= 0 &&
           strcmp(a->pools[config_default_pool(a)].name,
                  b->pools[config_default_pool(b)].name) == 0;
}

void
config_pools_copy(struct config *dst, const struct config *src)
{
    dst->pools = NULL;
    dst->npools = src->npools;
    dst->routes = NULL;
    dst->nroutes = src->nroutes;
    if (src->npools > 0) {
        dst->pools = util_xcalloc(src->npools, sizeof(*dst->pools));
    }
    for (size_t i = 0; i < src->npools; i++) {
        struct config_pool *d = &dst->pools[i];
        const struct config_pool *s = &src->pools[i];

        *d = *s;
        d->name = util_xstrdup(s->name);
        d->region = s->region != NULL ? util_xstrdup(s->region) : NULL;
        d->shadow = s->shadow != NULL ? util_xstrdup(s->shadow) : NULL;
        d->writes = s->writes != NULL ? util_xstrdup(s->writes) : NULL;
        d->deletes = s->deletes != NULL ? util_xstrdup(s->deletes) : NULL;
        d->members = NULL;
        if (s->nmembers > 0) {
            d->members = util_xcalloc(s->nmembers, sizeof(*d->members));
        }
        for (size_t m = 0; m < s->nmembers; m++) {
            d->members[m] = util_xstrdup(s->members[m]);
        }
    }
    if (src->nroutes > 0) {
        dst->routes = util_xcalloc(src->nroutes, sizeof(*dst->routes));
    }
    for (size_t i = 0; i < src->nroutes; i++) {
        dst->routes[i] = src->routes[i];
        dst->routes[i].prefix = util_xstrdup(src->routes[i].prefix);
        dst->routes[i].pool = util_xstrdup(src->routes[i].pool);
    }
}

void
config_pools_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->npools; i++) {
        config_pool_free(&cfg->pools[i]);
    }
    free(cfg->pools);
    cfg->pools = NULL;
    cfg->npools = 0;
    config_clear_routes(cfg);
    free(cfg->routes);
    cfg->routes = NULL;
}

void
config_copy_memberships(struct config *cfg, const struct config *from,
                        const char *name)
{
    for (size_t i = 0; i < from->npools; i++) {
        int j;
        char err[128];

        if (!config_pool_has(&from->pools[i], name)) {
            continue;
        }
        j = config_pool_index(cfg, from->pools[i].name);
        if (j >= 0 && !config_pool_has(&cfg->pools[j], name) &&
            config_pool_add_member(&cfg->pools[j], name, err, sizeof(err)) !=
                0) {
            continue; /* cannot happen: checked just above */
        }
    }
}

/* Whether pool p has any setting of its own (else [backends] is enough). */
static bool
config_pool_has_settings(const struct config_pool *p)
{
    return p->hash >= 0 || p->vnodes > 0 || p->replicas != 1 ||
           p->region != NULL || p->hotkey_spread ||
           p->health_interval_ms > 0 || p->health_timeout_ms > 0 ||
           p->health_rise > 0 || p->health_fall > 0 || p->rate > 0 ||
           p->burst > 0 || p->shadow != NULL || p->writes != NULL ||
           p->deletes != NULL;
}

static void
config_pool_render(const struct config *cfg, const struct config_pool *p,
                   FILE *out, config_backend_line_fn line)
{
    if (strcmp(p->name, CONFIG_DEFAULT_POOL) == 0 &&
        !config_pool_has_settings(p)) {
        fprintf(out, "\n[backends]\n");
    } else {
        fprintf(out, "\n[pool %s]\n", p->name);
    }
    if (p->hash >= 0) {
        fprintf(out, "hash = %s\n",
                p->hash == RING_HASH_KETAMA ? "ketama" : "xxh3");
    }
    if (p->vnodes > 0) {
        fprintf(out, "vnodes = %u\n", p->vnodes);
    }
    if (p->replicas != 1) {
        fprintf(out, "replicas = %u\n", p->replicas);
    }
    if (p->region != NULL) {
        fprintf(out, "region = %s\n", p->region);
    }
    if (p->hotkey_spread) {
        fprintf(out, "hotkey_spread = yes\n");
    }
    if (p->health_interval_ms > 0) {
        fprintf(out, "interval_ms = %u\n", p->health_interval_ms);
    }
    if (p->health_timeout_ms > 0) {
        fprintf(out, "timeout_ms = %u\n", p->health_timeout_ms);
    }
    if (p->health_rise > 0) {
        fprintf(out, "rise = %u\n", p->health_rise);
    }
    if (p->health_fall > 0) {
        fprintf(out, "fall = %u\n", p->health_fall);
    }
    if (p->rate > 0) {
        fprintf(out, "rate = %u\n", p->rate);
    }
    if (p->burst > 0) {
        fprintf(out, "burst = %u\n", p->burst);
    }
    if (p->writes != NULL) {
        fprintf(out, "writes = %s\n", p->writes);
    }
    if (p->deletes != NULL) {
        fprintf(out, "deletes = %s\n", p->deletes);
    }
    if (p->shadow != NULL) {
        char share[64];

        fprintf(out, "shadow = %s\n", p->shadow);
        if (p->shadow_share < 1.0 &&
            config_format_decimal(p->shadow_share, share, sizeof(share)) == 0) {
            fprintf(out, "shadow_share = %s\n", share);
        }
    }
    for (size_t m = 0; m < p->nmembers; m++) {
        int b = config_backend_index(cfg, p->members[m]);

        if (b >= 0) {
            line(out, &cfg->backends[b]);
        }
    }
}

void
config_pools_render(const struct config *cfg, FILE *out,
                    config_backend_line_fn line)
{
    for (size_t i = 0; i < cfg->npools; i++) {
        config_pool_render(cfg, &cfg->pools[i], out, line);
    }
    if (cfg->nroutes == 0) {
        return;
    }
    fprintf(out, "\n[routes]\n");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];

        fprintf(out, "%s = %s\n", r->prefix[0] != '\0' ? r->prefix : "*",
                r->pool);
    }
}
