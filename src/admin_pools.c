/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin_pools: see admin_pools.h.
 *
 * A pool's settings arrive as JSON values and are handed to
 * config_pool_set() as the text a config file would hold (numbers as
 * integers, booleans as yes/no), so the API accepts exactly what the file
 * does and says so in the same words.
 */
#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "admin_pools.h"
#include "config.h"

/* The settings of a pool the API knows, as config_pool_set() names them. */
static const char *const admin_pools_settings[] = {
    "hash",        "vnodes",     "replicas", "region", "hotkey_spread",
    "interval_ms", "timeout_ms", "rise",     "fall",   "rate",
    "burst",       "shadow",     "shadow_share", "writes", "deletes",
};

static bool
admin_pools_is_setting(const char *key)
{
    for (size_t i = 0; i < sizeof(admin_pools_settings) /
                               sizeof(admin_pools_settings[0]);
         i++) {
        if (strcmp(key, admin_pools_settings[i]) == 0) {
            return true;
        }
    }
    return false;
}

json_t *
admin_pools_json(const struct config *cfg)
{
    json_t *list = json_array();

    for (size_t i = 0; list != NULL && i < cfg->npools; i++) {
        const struct config_pool *p = &cfg->pools[i];
        json_t *members = json_array();
        json_t *o;

        for (size_t m = 0; members != NULL && m < p->nmembers; m++) {
            json_array_append_new(members, json_string(p->members[m]));
        }
        o = json_pack("{s:s, s:o, s:i, s:s, s:i, s:b, s:o}", "name", p->name,
                      "backends", members, "replicas", (int)p->replicas,
                      "hash",
                      config_pool_hash(cfg, p) == RING_HASH_KETAMA ? "ketama"
                                                                   : "xxh3",
                      "vnodes", (int)config_pool_vnodes(cfg, p),
                      "hotkey_spread", p->hotkey_spread, "region",
                      p->region != NULL ? json_string(p->region)
                                        : json_null());
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
        if (p->health_interval_ms > 0) {
            json_object_set_new(o, "interval_ms",
                                json_integer(p->health_interval_ms));
        }
        if (p->health_timeout_ms > 0) {
            json_object_set_new(o, "timeout_ms",
                                json_integer(p->health_timeout_ms));
        }
        if (p->health_rise > 0) {
            json_object_set_new(o, "rise", json_integer(p->health_rise));
        }
        if (p->health_fall > 0) {
            json_object_set_new(o, "fall", json_integer(p->health_fall));
        }
        if (p->rate > 0) {
            json_object_set_new(o, "rate", json_integer(p->rate));
        }
        if (p->burst > 0) {
            json_object_set_new(o, "burst", json_integer(p->burst));
        }
        if (p->writes != NULL) {
            json_object_set_new(o, "writes", json_string(p->writes));
        }
        if (p->deletes != NULL) {
            json_object_set_new(o, "deletes", json_string(p->deletes));
        }
        if (p->shadow != NULL) {
            json_object_set_new(o, "shadow", json_string(p->shadow));
            json_object_set_new(o, "shadow_share",
                                json_real(p->shadow_share));
        }
    }
    return list;
}

json_t *
admin_routes_json(const struct config *cfg)
{
    json_t *o = json_object();
    int d = config_default_pool(cfg);

    for (size_t i = 0; o != NULL && i < cfg->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];

        if (r->prefix[0] != '\0') {
            json_object_set_new(o, r->prefix, json_string(r->pool));
        }
    }
    if (o != NULL && d >= 0) {
        json_object_set_new(o, "*", json_string(cfg->pools[d].name));
    }
    return o;
}

/* The config-file text of a JSON setting value, or -1. */
static int
admin_pools_value_text(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) {
        return (size_t)snprintf(buf, len, "%s", json_string_value(v)) < len
                   ? 0
                   : -1;
    }
    if (json_is_boolean(v)) {
        snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    if (json_is_real(v)) {
        /* A share: what the file would say, or what it refuses. */
        return config_format_decimal(json_real_value(v), buf, len) == 0
                   ? 0
                   : -1;
    }
    return -1;
}

/* The settings of body (other keys: skip them when allowed) set on pool
 * index i. */
static int
admin_pools_set(struct config *cfg, size_t i, json_t *body,
                const char *const *allowed, char *err, size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        char text[256];
        bool skip = false;

        for (size_t k = 0; allowed != NULL && allowed[k] != NULL; k++) {
            skip = skip || strcmp(key, allowed[k]) == 0;
        }
        if (skip) {
            continue;
        }
        if (!admin_pools_is_setting(key)) {
            snprintf(err, errlen,
                     "unknown field '%s' (expected hash, vnodes, replicas, "
                     "region, hotkey_spread, interval_ms, timeout_ms, rise, "
                     "fall, rate, burst, shadow, shadow_share, writes, "
                     "deletes%s)",
                     key, allowed != NULL ? ", name, backends" : "");
            return 400;
        }
        if (json_is_null(v)) {
            /* Leaves the setting out, as a file without its line. */
            if (config_pool_unset(&cfg->pools[i], key) != 1) {
                snprintf(err, errlen, "%s: cannot be null (only shadow, "
                                      "writes and deletes can)",
                         key);
                return 400;
            }
            continue;
        }
        if (admin_pools_value_text(v, text, sizeof(text)) != 0) {
            snprintf(err, errlen, "%s: expected a string, a whole number, "
                                  "a share or a boolean",
                     key);
            return 400;
        }
        if (config_pool_set(cfg, &cfg->pools[i], key, text, err, errlen) !=
            1) {
            return 400;
        }
    }
    return 0;
}

/* One entry of "backends": a name (a backend mcring has) or {name,
 * address, weight}. */
static int
admin_pools_member(struct config *cfg, const char *pool, json_t *m, char *err,
                   size_t errlen)
{
    const char *name, *addr;
    json_t *jw;
    int b, rc;

    if (json_is_string(m)) {
        name = json_string_value(m);
        b = config_backend_index(cfg, name);
        if (b < 0) {
            snprintf(err, errlen,
                     "no backend '%s' (give {\"name\", \"address\"} for a "
                     "new one)",
                     name);
            return 400;
        }
        return config_pool_add_member(&cfg->pools[config_pool_index(cfg,
                                                                    pool)],
                                      name, err, errlen) == 0
                   ? 0
                   : 400;
    }
    jw = json_object_get(m, "weight");
    if (!json_is_object(m) || !json_is_string(json_object_get(m, "name")) ||
        !json_is_string(json_object_get(m, "address")) ||
        (jw != NULL && !json_is_number(jw)) ||
        json_object_size(m) != 2u + (jw != NULL)) {
        snprintf(err, errlen, "backends: expected names or {\"name\": string, "
                              "\"address\": \"HOST:PORT\", \"weight\": "
                              "number (optional)}");
        return 400;
    }
    name = json_string_value(json_object_get(m, "name"));
    addr = json_string_value(json_object_get(m, "address"));
    rc = config_add_backend_str(cfg, pool, name, addr,
                                jw != NULL ? json_number_value(jw) : NAN, err,
                                errlen);
    return rc == 0 ? 0 : rc == CONFIG_ECONFLICT ? 409 : 400;
}

int
admin_pools_post(struct config *cfg, json_t *body, char *err, size_t errlen)
{
    static const char *const members_keys[] = {"name", "backends", NULL};
    json_t *jname = json_object_get(body, "name");
    json_t *jmembers = json_object_get(body, "backends");
    const char *name;
    size_t i;
    json_t *m;
    int line, rc;

    if (!json_is_string(jname) || !json_is_array(jmembers) ||
        json_array_size(jmembers) == 0) {
        snprintf(err, errlen, "expected {\"name\": string, \"backends\": "
                              "[...], and settings (optional)}");
        return 400;
    }
    name = json_string_value(jname);
    if (config_pool_index(cfg, name) >= 0) {
        snprintf(err, errlen, "duplicate pool '%s'", name);
        return 409;
    }
    if (config_add_pool(cfg, name, 0, err, errlen) == NULL) {
        return 400;
    }
    rc = admin_pools_set(cfg, cfg->npools - 1, body, members_keys, err,
                         errlen);
    if (rc != 0) {
        return rc;
    }
    json_array_foreach(jmembers, i, m) {
        rc = admin_pools_member(cfg, name, m, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    return config_check_pools(cfg, &line, err, errlen) == 0 ? 0 : 400;
}

int
admin_pools_patch(struct config *cfg, const char *name, json_t *body,
                  char *err, size_t errlen)
{
    int i = config_pool_index(cfg, name);

    if (i < 0) {
        snprintf(err, errlen, "no pool '%s'", name);
        return 404;
    }
    if (json_object_size(body) == 0) {
        snprintf(err, errlen, "expected settings to change");
        return 400;
    }
    return admin_pools_set(cfg, (size_t)i, body, NULL, err, errlen);
}

int
admin_pools_delete(struct config *cfg, const char *name, char *err,
                   size_t errlen)
{
    if (config_pool_index(cfg, name) < 0) {
        snprintf(err, errlen, "no pool '%s'", name);
        return 404;
    }
    if (config_remove_pool(cfg, name, err, errlen) != 0) {
        return 409;
    }
    /* Backends in no pool any more go with it. */
    for (size_t b = cfg->nbackends; b-- > 0;) {
        bool used = false;
        char why[128];

        for (size_t p = 0; p < cfg->npools && !used; p++) {
            used = config_pool_has(&cfg->pools[p], cfg->backends[b].name);
        }
        if (!used) {
            char bname[CONFIG_NAME_MAX + 1];

            snprintf(bname, sizeof(bname), "%s", cfg->backends[b].name);
            if (config_remove_backend(cfg, NULL, bname, why, sizeof(why)) !=
                0) {
                snprintf(err, errlen, "%s", why);
                return 409;
            }
        }
    }
    return 0;
}

int
admin_routes_put(struct config *cfg, json_t *body, char *err, size_t errlen)
{
    const char *prefix;
    json_t *v;
    int line;

    config_clear_routes(cfg);
    json_object_foreach(body, prefix, v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "route '%s': expected a pool name", prefix);
            return 400;
        }
        if (config_add_route(cfg, prefix, json_string_value(v), 0, err,
                             errlen) != 0) {
            return 400;
        }
    }
    return config_check_pools(cfg, &line, err, errlen) == 0 ? 0 : 400;
}
