/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin_http: the admin API on libevent's evhttp, main thread only.
 *
 *   request --admin_http_handle()--> token check (401) --> path and method
 *   (404, 405) --> one admin_http_<endpoint>() --> JSON answer
 *
 * Every answer is JSON built with Jansson (GET /config is the INI text,
 * GET /metrics Prometheus text, GET /watch a text stream: admin_watch.c),
 * every error {"error": "..."}: 400 bad JSON or field, 401 missing or wrong
 * token, 404 unknown path or backend, 405 wrong method (with Allow), 409
 * conflict (name or address taken, the last backend).
 *
 * Reads go to the current snapshot, admin_http_topology(a), looked up once per
 * request: it cannot change while a handler runs, because changes are made
 * on this thread too. Changes edit a config_clone() of the snapshot's
 * config and hand it to ops.apply (proxy_apply()), so a change through the
 * API is checked and applied exactly like a reload of an edited file; the file
 * itself is never written (GET /config renders what runs).
 *
 * The token is read from the snapshot's config on every request, so a
 * reload can set or change it; it is compared in constant time.
 */
#include "autoconf.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin_http.h"
#include "admin_pools.h"
#include "admin_watch.h"
#include "analyze.h"
#include "backend.h"
#include "config.h"
#include "net.h"
#include "log.h"
#include "mem.h"
#include "ring.h"
#include "stats.h"
#include "topology.h"
#include "util.h"

#define ADMIN_HTTP_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))
#define ADMIN_HTTP_WHY "admin API"

/* Owned by the proxy (p->admin). */
struct admin_http {
    struct admin_http_ops ops;      /* what it may do, and to what */
    struct evhttp *http;            /* owned; frees its sockets */
    struct evhttp_connection *conns[ADMIN_HTTP_MAX_CONNS]; /* open, each
                                       since its first request */
    unsigned nconns;
    struct admin_watch *watch;      /* GET /watch streams; owned */
    char *unix_path;                /* owned; unlinked on destroy */
};

static struct topology *
admin_http_topology(struct admin_http *a)
{
    return a->ops.topology(a->ops.arg);
}

/* ---- answers ------------------------------------------------------------- */

static const char *
admin_http_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

static void
admin_http_send(struct evhttp_request *req, int code, const char *type,
                const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evbuffer_new();

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (out == NULL || evbuffer_add(out, body, len) != 0) {
        evhttp_send_error(req, 500, NULL);
    } else {
        evhttp_send_reply(req, code, admin_http_reason(code), out);
    }
    if (out != NULL) {
        evbuffer_free(out);
    }
}

/* Answers doc (stolen; NULL means out of memory: 500). */
static void
admin_http_json(struct evhttp_request *req, int code, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, ADMIN_HTTP_JSON_FLAGS) : NULL;

    json_decref(doc);
    if (text == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    admin_http_send(req, code, "application/json", text, strlen(text));
    free(text);
}

static void admin_http_error(struct evhttp_request *req, int code,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
admin_http_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    admin_http_json(req, code, json_pack("{s:s}", "error", msg));
}

static void
admin_http_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    admin_http_error(req, 405, "method not allowed (allowed: %s)", allow);
}

/* ---- requests ------------------------------------------------------------ */

static const char *
admin_http_method(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "other";
    }
}

/* "Bearer TOKEN" against want, in time independent of where they differ. */
static bool
admin_http_token_ok(const char *want, const char *header)
{
    size_t wl = strlen(want);
    size_t gl;
    unsigned char diff = 0;

    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0) {
        return false;
    }
    header += 7;
    gl = strlen(header);
    diff = (unsigned char)(wl != gl);
    for (size_t i = 0; i < wl; i++) {
        diff |= (unsigned char)(want[i] ^ (i < gl ? header[i] : 0));
    }
    return diff == 0;
}

/*
 * The request body as a JSON object (new reference), or NULL after a 400
 * answer.
 */
static json_t *
admin_http_body(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_error_t jerr;
    json_t *doc;

    if (len == 0) {
        admin_http_error(req, 400, "bad JSON: empty body (expected an "
                                   "object)");
        return NULL;
    }
    doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        admin_http_error(req, 400, "bad JSON: %s (line %d column %d)",
                         jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        admin_http_error(req, 400, "bad JSON: expected an object");
        return NULL;
    }
    return doc;
}

/* Logs a change with the peer that asked for it. */
static void
admin_http_log(struct evhttp_request *req, const char *what, const char *name)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *peer = NULL;
    ev_uint16_t port = 0;

    if (evcon != NULL) {
        evhttp_connection_get_peer(evcon, &peer, &port);
    }
    log_notice("admin API: %s %s (from %s:%u)", what, name != NULL ? name : "",
               peer != NULL && peer[0] != '\0' ? peer : "unix",
               (unsigned)port);
}

/* ---- endpoints ----------------------------------------------------------- */

static void
admin_http_set(json_t *o, const char *key, json_t *v, bool *bad)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0) {
        *bad = true;
    }
}

/* Backend i of t as GET /backends lists it (new reference, or NULL):
 * its counters since the last `stats reset`, as `stats backends`. */
static json_t *
admin_http_backend_json(struct admin_http *a, const struct topology *t,
                        uint32_t i)
{
    const struct backend *be = t->backends[i];
    struct stats_backend sum;
    json_t *o = json_object();
    bool bad = o == NULL;

    if (bad) {
        return NULL;
    }
    pthread_mutex_lock(a->ops.stats_lock);
    backend_stats_sum(be, &sum);
    stats_subtract(&sum, &be->stats_base, stats_backend_defs,
                   stats_nbackend_defs);
    pthread_mutex_unlock(a->ops.stats_lock);
    admin_http_set(o, "name", json_string(be->name), &bad);
    admin_http_set(o, "address", json_string(be->addr), &bad);
    admin_http_set(o, "tls", json_boolean(be->tls), &bad);
    admin_http_set(o, "weight", json_real(t->cfg->backends[i].weight), &bad);
    admin_http_set(o, "state", json_string(backend_state_name(
                                   backend_state(be))),
                   &bad);
    admin_http_set(o, "share", json_real(topology_share(t, i)),
                   &bad);
    {
        json_t *pools = json_array();

        for (uint32_t k = 0; pools != NULL && k < t->npools; k++) {
            if (topology_pool_member(&t->pools[k], i) != UINT32_MAX) {
                json_array_append_new(
                    pools, json_string(topology_pool_name(&t->pools[k])));
            }
        }
        admin_http_set(o, "pools", pools, &bad);
    }
    admin_http_set(o, "since",
                   json_integer((json_int_t)atomic_load(&be->since)), &bad);
    admin_http_set(o, "transitions",
                   json_integer((json_int_t)atomic_load(&be->transitions)),
                   &bad);
    for (size_t k = 0; k < stats_nbackend_defs; k++) {
        admin_http_set(o, stats_backend_defs[k].name,
                       json_integer((json_int_t)stats_value(
                           &sum, &stats_backend_defs[k])),
                       &bad);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The backend called name in the current snapshot, as JSON. */
static void
admin_http_answer_backend(struct evhttp_request *req, struct admin_http *a,
                          int code, const char *name)
{
    struct topology *t = admin_http_topology(a);
    int i = config_backend_index(t->cfg, name);

    if (i < 0) {
        admin_http_error(req, 404, "no backend '%s'", name);
        return;
    }
    admin_http_json(req, code, admin_http_backend_json(a, t, (uint32_t)i));
}

static void
admin_http_get_backends(struct evhttp_request *req, struct admin_http *a)
{
    struct topology *t = admin_http_topology(a);
    json_t *list = json_array();

    for (uint32_t i = 0; i < t->n && list != NULL; i++) {
        if (json_array_append_new(list, admin_http_backend_json(a, t, i)) !=
            0) {
            json_decref(list);
            list = NULL;
        }
    }
    admin_http_json(req, 200, list);
}

/* A key as memcached takes it: 1..250 bytes, no space or control byte. */
static bool
admin_http_key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > ADMIN_HTTP_KEY_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)k[i] <= ' ' || (unsigned char)k[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* The route of one key: pool, owner, fallbacks in walk order, replicas,
 * target now. */
static json_t *
admin_http_route_json(const struct topology *t, const char *key,
                      uint32_t *order)
{
    const struct topology_pool *p = topology_pool_of(t, key, strlen(key));
    const struct ring *ring = p->ring;
    uint32_t point = ring_point_at(ring, ring_key_pos(ring, key, strlen(key)));
    size_t n = ring_walk(ring, point, NULL, NULL, order, p->n);
    json_t *o = json_object();
    json_t *fallbacks = json_array();
    json_t *replicas = json_array();
    json_t *target = NULL;
    bool bad = o == NULL || fallbacks == NULL || replicas == NULL || n == 0;

    for (size_t i = 0; i < n && !bad; i++) {
        const struct backend *be = p->be[order[i]];

        if (i > 0 && json_array_append_new(fallbacks,
                                           json_string(be->name)) != 0) {
            bad = true;
        }
        if (i < p->replicas &&
            json_array_append_new(replicas, json_string(be->name)) != 0) {
            bad = true;
        }
        if (target == NULL && backend_is_up(be)) {
            target = json_string(be->name);
        }
    }
    if (bad) {
        json_decref(o);
        json_decref(fallbacks);
        json_decref(replicas);
        json_decref(target);
        return NULL;
    }
    admin_http_set(o, "key", json_string(key), &bad);
    admin_http_set(o, "pool", json_string(topology_pool_name(p)), &bad);
    admin_http_set(o, "owner", json_string(p->be[order[0]]->name), &bad);
    admin_http_set(o, "fallbacks", fallbacks, &bad);
    admin_http_set(o, "replicas", replicas, &bad);
    if (t->regional) {
        const struct topology_route *rt =
            topology_route_of(t, key, strlen(key));
        json_t *remote = json_array();

        for (uint32_t i = 0; remote != NULL && i < rt->nremote; i++) {
            json_array_append_new(
                remote, json_string(topology_pool_name(
                            &t->pools[rt->remote[i]])));
        }
        admin_http_set(o, "remote_pools", remote, &bad);
    }
    admin_http_set(o, "target", target != NULL ? target : json_null(), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void
admin_http_get_route(struct evhttp_request *req, struct admin_http *a,
                     const char *query)
{
    struct topology *t = admin_http_topology(a);
    struct evkeyvalq params;
    struct evkeyval *kv;
    uint32_t *order;
    json_t *list;
    size_t nkeys = 0;

    TAILQ_INIT(&params);
    if (query == NULL || evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        admin_http_error(req, 400, "expected ?key=K (repeatable)");
        return;
    }
    TAILQ_FOREACH(kv, &params, next) {
        if (strcmp(kv->key, "key") != 0) {
            admin_http_error(req, 400, "unknown parameter '%s' (expected "
                                       "key)",
                             kv->key);
            evhttp_clear_headers(&params);
            return;
        }
        if (!admin_http_key_valid(kv->value)) {
            admin_http_error(req, 400, "bad key (1..%d bytes, no spaces or "
                                       "control characters)",
                             ADMIN_HTTP_KEY_MAX);
            evhttp_clear_headers(&params);
            return;
        }
        nkeys++;
    }
    if (nkeys == 0 || nkeys > ADMIN_HTTP_MAX_ROUTE_KEYS) {
        admin_http_error(req, 400, "expected 1..%d key parameters, got %zu",
                         ADMIN_HTTP_MAX_ROUTE_KEYS, nkeys);
        evhttp_clear_headers(&params);
        return;
    }
    order = util_xcalloc(t->n, sizeof(*order));
    list = json_array();
    TAILQ_FOREACH(kv, &params, next) {
        if (list != NULL &&
            json_array_append_new(
                list, admin_http_route_json(t, kv->value, order)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(order);
    evhttp_clear_headers(&params);
    admin_http_json(req, 200, list);
}

/* GET /ring[?pool=NAME]: the analysis of one pool's ring (the default
 * pool's without a name). */
static void
admin_http_get_ring(struct evhttp_request *req, struct admin_http *a,
                    const char *query)
{
    struct topology *t = admin_http_topology(a);
    const struct topology_pool *p = &t->pools[t->def.pool];
    struct evkeyvalq params;
    struct evkeyval *kv;
    struct config *view;
    char err[256];
    json_t *doc, *names;

    TAILQ_INIT(&params);
    if (query != NULL && evhttp_parse_query_str(query, &params) != 0) {
        evhttp_clear_headers(&params);
        admin_http_error(req, 400, "expected ?pool=NAME");
        return;
    }
    TAILQ_FOREACH(kv, &params, next) {
        if (strcmp(kv->key, "pool") != 0) {
            admin_http_error(req, 400, "unknown parameter '%s' (expected "
                                       "pool)",
                             kv->key);
            evhttp_clear_headers(&params);
            return;
        }
        p = topology_pool_named(t, kv->value);
        if (p == NULL) {
            admin_http_error(req, 404, "no pool '%s'", kv->value);
            evhttp_clear_headers(&params);
            return;
        }
    }
    evhttp_clear_headers(&params);
    /* No what-if rings: at 1000 backends they would hold the main loop
     * (health checks, reloads) for a minute. */
    view = config_pool_view(t->cfg, (size_t)(p - t->pools));
    doc = analyze_ring_json(view, p->ring, ADMIN_HTTP_RING_SAMPLE, false, err,
                            sizeof(err));
    config_destroy(view);
    if (doc == NULL) {
        admin_http_error(req, 500, "%s", err);
        return;
    }
    names = json_array();
    for (uint32_t i = 0; i < t->npools; i++) {
        json_array_append_new(names,
                              json_string(topology_pool_name(&t->pools[i])));
    }
    json_object_set_new(doc, "pool", json_string(topology_pool_name(p)));
    json_object_set_new(doc, "pools", names);
    admin_http_json(req, 200, doc);
}

/* The config that changes are made to: where a move is heading. */
static const struct config *
admin_http_target(struct admin_http *a)
{
    return a->ops.target(a->ops.arg);
}

static void
admin_http_get_config(struct evhttp_request *req, struct admin_http *a)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);

    if (fp == NULL) {
        admin_http_error(req, 500, "out of memory");
        return;
    }
    config_render(admin_http_target(a), fp);
    if (fclose(fp) != 0 || text == NULL) {
        free(text);
        admin_http_error(req, 500, "out of memory");
        return;
    }
    admin_http_send(req, 200, "text/plain; charset=utf-8", text, len);
    free(text);
}

/*
 * Applies cfg (taken) and answers an error if it was refused (400).
 * Returns 0 when applied.
 */
static int
admin_http_apply(struct evhttp_request *req, struct admin_http *a,
                 struct config *cfg, int ramp)
{
    char err[512];
    int rc = a->ops.apply(a->ops.arg, cfg, ramp, ADMIN_HTTP_WHY, err,
                          sizeof(err));

    if (rc != 0) {
        /* -2: a migration is in progress. */
        admin_http_error(req, rc == -2 ? 409 : 400, "%s", err);
        return -1;
    }
    return 0;
}

/*
 * A ramp in seconds from JSON (v NULL: none, -1). Returns 0, or -1 after
 * answering 400.
 */
static int
admin_http_ramp_json(struct evhttp_request *req, json_t *v, int *ramp)
{
    *ramp = -1;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > CONFIG_RAMP_MAX) {
        admin_http_error(req, 400, "bad ramp (expected whole seconds 0..%d)",
                         CONFIG_RAMP_MAX);
        return -1;
    }
    *ramp = (int)json_integer_value(v);
    return 0;
}

/*
 * ?ramp=S of a request (none: -1; no other parameter is known). Returns 0,
 * or -1 after answering 400.
 */
static int
admin_http_ramp_query(struct evhttp_request *req, int *ramp, char *pool,
                      size_t poollen)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    struct evkeyval *kv;
    int rc = 0;

    *ramp = -1;
    if (pool != NULL) {
        pool[0] = '\0';
    }
    if (query == NULL || query[0] == '\0') {
        return 0;
    }
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(query, &params) != 0) {
        rc = -1;
    }
    TAILQ_FOREACH(kv, &params, next) {
        uint64_t v;

        if (rc == 0 && pool != NULL && strcmp(kv->key, "pool") == 0 &&
            strlen(kv->value) < poollen) {
            snprintf(pool, poollen, "%s", kv->value);
            continue;
        }
        if (rc != 0 || strcmp(kv->key, "ramp") != 0 ||
            util_parse_u64(kv->value, strlen(kv->value), &v) != 0 ||
            v > CONFIG_RAMP_MAX) {
            rc = -1;
            break;
        }
        *ramp = (int)v;
    }
    evhttp_clear_headers(&params);
    if (rc != 0) {
        admin_http_error(req, 400,
                         "expected ?ramp=SECONDS (0..%d)%s", CONFIG_RAMP_MAX,
                         pool != NULL ? " and ?pool=NAME" : "");
    }
    return rc;
}

/*
 * GET, POST /pools; PATCH, DELETE /pools/NAME; GET, PUT /routes: edits of
 * a copy of the target config (admin_pools.c), applied as any change.
 */
static void
admin_http_pools(struct evhttp_request *req, struct admin_http *a,
                 enum evhttp_cmd_type m, const char *path)
{
    bool routes = strcmp(path, "/routes") == 0;
    char *name = strncmp(path, "/pools/", 7) == 0
                     ? evhttp_uridecode(path + 7, 0, NULL)
                     : NULL;
    json_t *body = NULL;
    struct config *cfg;
    char err[512];
    int status;

    if (m == EVHTTP_REQ_GET && name == NULL) {
        admin_http_json(req, 200,
                        routes ? admin_routes_json(admin_http_target(a))
                               : admin_pools_json(admin_http_target(a)));
        return;
    }
    if ((routes && m != EVHTTP_REQ_PUT) ||
        (!routes && name == NULL && m != EVHTTP_REQ_POST) ||
        (name != NULL && m != EVHTTP_REQ_PATCH && m != EVHTTP_REQ_DELETE)) {
        admin_http_not_allowed(req, routes          ? "GET, PUT"
                                    : name == NULL ? "GET, POST"
                                                   : "PATCH, DELETE");
        mem_free(name);
        return;
    }
    if (m != EVHTTP_REQ_DELETE && (body = admin_http_body(req)) == NULL) {
        mem_free(name);
        return;
    }
    cfg = config_clone(admin_http_target(a));
    status = routes                  ? admin_routes_put(cfg, body, err,
                                                        sizeof(err))
             : name == NULL          ? admin_pools_post(cfg, body, err,
                                                        sizeof(err))
             : m == EVHTTP_REQ_PATCH ? admin_pools_patch(cfg, name, body, err,
                                                         sizeof(err))
                                     : admin_pools_delete(cfg, name, err,
                                                          sizeof(err));
    json_decref(body);
    if (status != 0) {
        config_destroy(cfg);
        admin_http_error(req, status, "%s", err);
    } else if (admin_http_apply(req, a, cfg, -1) == 0) {
        admin_http_log(req,
                       routes                   ? "replaced the routes"
                       : name == NULL          ? "added a pool"
                       : m == EVHTTP_REQ_PATCH ? "changed pool"
                                               : "removed pool",
                       name);
        admin_http_json(req, name == NULL && !routes ? 201 : 200,
                        routes ? admin_routes_json(admin_http_target(a))
                               : admin_pools_json(admin_http_target(a)));
    }
    mem_free(name);
}

static void
admin_http_post_backend(struct evhttp_request *req, struct admin_http *a)
{
    json_t *body = admin_http_body(req);
    json_t *jname, *jaddr, *jweight;
    const char *key;
    json_t *v;
    struct config *cfg;
    double weight = NAN;
    char err[512];
    char *name;
    int rc, ramp;
    json_t *jpool, *jtls;
    int known;

    if (body == NULL) {
        return;
    }
    json_object_foreach(body, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "address") != 0 &&
            strcmp(key, "weight") != 0 && strcmp(key, "ramp") != 0 &&
            strcmp(key, "pool") != 0 && strcmp(key, "tls") != 0) {
            admin_http_error(req, 400, "unknown field '%s' (expected name, "
                                       "address, weight, ramp, pool, tls)",
                             key);
            json_decref(body);
            return;
        }
    }
    jname = json_object_get(body, "name");
    jaddr = json_object_get(body, "address");
    jweight = json_object_get(body, "weight");
    jpool = json_object_get(body, "pool");
    jtls = json_object_get(body, "tls");
    if (!json_is_string(jname) || !json_is_string(jaddr) ||
        (jweight != NULL && !json_is_number(jweight)) ||
        (jpool != NULL && !json_is_string(jpool)) ||
        (jtls != NULL && !json_is_boolean(jtls))) {
        admin_http_error(req, 400, "expected {\"name\": string, \"address\": "
                                   "\"HOST:PORT\", \"weight\": number "
                                   "(optional), \"pool\": string "
                                   "(optional), \"tls\": boolean "
                                   "(optional)}");
        json_decref(body);
        return;
    }
    if (admin_http_ramp_json(req, json_object_get(body, "ramp"), &ramp) !=
        0) {
        json_decref(body);
        return;
    }
    if (jweight != NULL) {
        weight = json_number_value(jweight);
    }
    cfg = config_clone(admin_http_target(a));
    known = config_backend_index(cfg, json_string_value(jname));
    rc = config_add_backend_str(cfg, json_string_value(jpool),
                                json_string_value(jname),
                                json_string_value(jaddr), weight, err,
                                sizeof(err));
    if (rc == 0 && jtls != NULL) {
        struct config_backend *b =
            &cfg->backends[config_backend_index(cfg,
                                                json_string_value(jname))];

        if (known < 0) {
            b->tls = json_is_true(jtls);
        } else if (b->tls != json_is_true(jtls)) {
            snprintf(err, sizeof(err), "backend '%s' is defined with "
                                       "another tls (a backend in several "
                                       "pools is one backend)",
                     b->name);
            rc = CONFIG_ECONFLICT;
        }
    }
    if (rc != 0) {
        config_destroy(cfg);
        json_decref(body);
        admin_http_error(req, rc == CONFIG_ECONFLICT ? 409 : 400, "%s", err);
        return;
    }
    name = util_xstrdup(json_string_value(jname));
    json_decref(body);
    if (admin_http_apply(req, a, cfg, ramp) == 0) {
        char location[CONFIG_NAME_MAX + 16];

        admin_http_log(req, "added backend", name);
        snprintf(location, sizeof(location), "/backends/%s", name);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
                          location);
        admin_http_answer_backend(req, a, 201, name);
    }
    free(name);
}

static void
admin_http_delete_backend(struct evhttp_request *req, struct admin_http *a,
                          const char *name)
{
    struct config *cfg;
    char err[512];
    char pool[CONFIG_NAME_MAX + 1];
    int ramp, rc;

    if (config_backend_index(admin_http_target(a), name) < 0) {
        admin_http_error(req, 404, "no backend '%s'", name);
        return;
    }
    if (admin_http_ramp_query(req, &ramp, pool, sizeof(pool)) != 0) {
        return;
    }
    cfg = config_clone(admin_http_target(a));
    rc = config_remove_backend(cfg, pool[0] != '\0' ? pool : NULL, name, err,
                               sizeof(err));
    if (rc != 0) {
        config_destroy(cfg);
        /* not in that pool, or the last backend of one */
        admin_http_error(req, rc == CONFIG_ENOENT ? 404 : 409, "%s", err);
        return;
    }
    if (admin_http_apply(req, a, cfg, ramp) == 0) {
        admin_http_log(req, "removed backend", name);
        admin_http_json(req, 200, json_pack("{s:s}", "removed", name));
    }
}

static void
admin_http_patch_backend(struct evhttp_request *req, struct admin_http *a,
                         const char *name)
{
    json_t *body;
    json_t *jweight, *jstate, *jramp;
    char err[512];
    int ramp;

    if (config_backend_index(admin_http_target(a), name) < 0) {
        admin_http_error(req, 404, "no backend '%s'", name);
        return;
    }
    body = admin_http_body(req);
    if (body == NULL) {
        return;
    }
    jweight = json_object_get(body, "weight");
    jstate = json_object_get(body, "state");
    jramp = json_object_get(body, "ramp");
    if (json_object_size(body) != (jramp != NULL && jweight != NULL ? 2u : 1u) ||
        (jweight != NULL && !json_is_number(jweight)) ||
        (jstate != NULL && !json_is_string(jstate)) ||
        (jweight == NULL && jstate == NULL)) {
        json_decref(body);
        admin_http_error(req, 400, "expected {\"weight\": number, "
                                   "\"ramp\": seconds (optional)} or "
                                   "{\"state\": \"maint\" | \"active\"}");
        return;
    }
    if (admin_http_ramp_json(req, jramp, &ramp) != 0) {
        json_decref(body);
        return;
    }
    if (jweight != NULL) {
        struct config *cfg = config_clone(admin_http_target(a));

        if (config_set_weight(cfg, name, json_number_value(jweight), err,
                              sizeof(err)) != 0) {
            config_destroy(cfg);
            json_decref(body);
            admin_http_error(req, 400, "%s", err);
            return;
        }
        json_decref(body);
        if (admin_http_apply(req, a, cfg, ramp) != 0) {
            return;
        }
        admin_http_log(req, "changed the weight of", name);
    } else {
        const char *state = json_string_value(jstate);
        bool maint = strcmp(state, "maint") == 0;

        if (!maint && strcmp(state, "active") != 0) {
            admin_http_error(req, 400, "bad state '%s' (expected maint or "
                                       "active)",
                             state);
            json_decref(body);
            return;
        }
        json_decref(body);
        if (a->ops.set_maint(a->ops.arg, name, maint, err, sizeof(err)) != 0) {
            admin_http_error(req, 404, "%s", err);
            return;
        }
        admin_http_log(req, maint ? "maint" : "activate", name);
    }
    admin_http_answer_backend(req, a, 200, name);
}

static void
admin_http_post_reload(struct evhttp_request *req, struct admin_http *a)
{
    char err[512];

    admin_http_log(req, "reload", NULL);
    if (a->ops.reload(a->ops.arg, ADMIN_HTTP_WHY, err, sizeof(err)) != 0) {
        admin_http_json(req, 400, json_pack("{s:b, s:s}", "applied", 0,
                                            "error", err));
        return;
    }
    admin_http_json(req, 200, json_pack("{s:b}", "applied", 1));
}

static void
admin_http_get_migration(struct evhttp_request *req, struct admin_http *a)
{
    admin_http_json(req, 200, a->ops.migration(a->ops.arg));
}

/* POST /migration/VERB: pause, resume, rollback, finish. */
static void
admin_http_post_migration(struct evhttp_request *req, struct admin_http *a,
                          const char *verb)
{
    char err[512];
    int rc = a->ops.migrate(a->ops.arg, verb, err, sizeof(err));

    if (rc != 0) {
        admin_http_error(req, rc == -2 ? 409 : 404, "%s", err);
        return;
    }
    admin_http_log(req, "migration", verb);
    admin_http_json(req, 200, a->ops.migration(a->ops.arg));
}

static void
admin_http_rebalance(struct evhttp_request *req, struct admin_http *a,
                     bool apply)
{
    char err[512];
    int status;
    json_t *doc = a->ops.rebalance(a->ops.arg, apply, &status, err,
                                   sizeof(err));

    if (doc == NULL) {
        admin_http_error(req, status, "%s", err);
        return;
    }
    if (apply) {
        admin_http_log(req, "rebalance", NULL);
    }
    admin_http_json(req, status, doc);
}

/* GET /metrics: Prometheus' text format. */
static void
admin_http_get_metrics(struct evhttp_request *req, struct admin_http *a)
{
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    if (out == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    a->ops.metrics(a->ops.arg, out);
    evhttp_add_header(h, "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

/* GET /health and GET /ready: 200 or 503, and why. */
static void
admin_http_get_health(struct evhttp_request *req, struct admin_http *a,
                      bool ready)
{
    char why[160] = "";
    bool ok = a->ops.health(a->ops.arg, ready, why, sizeof(why));

    admin_http_json(req, ok ? 200 : 503,
                    json_pack("{s:s, s:s}", "status",
                              ok ? "ok" : "unavailable", "reason", why));
}

/* GET /watch: a stream until the client goes (admin_watch.c). */
static void
admin_http_get_watch(struct evhttp_request *req, struct admin_http *a,
                     const char *query)
{
    char err[160];
    int code = admin_watch_start(a->watch, req, query, err, sizeof(err));

    if (code != 0) {
        admin_http_error(req, code, "%s", err);
    }
}

/* ---- dispatch ------------------------------------------------------------ */

/* ---- connections ------------------------------------------------------- */

/*
 * evhttp (libevent 2.1) has no bound on its connections, and tells of one
 * only once it has sent a request: each is counted from its first request
 * until it closes. A connection's first request past ADMIN_HTTP_MAX_CONNS
 * gets 503 and the connection is closed. One that has not sent a whole
 * request yet holds at most ADMIN_HTTP_MAX_HEADERS and goes after
 * ADMIN_HTTP_TIMEOUT_S of silence.
 */
static void
admin_http_conn_gone(struct evhttp_connection *evcon, void *arg)
{
    struct admin_http *a = arg;

    admin_watch_conn_gone(a->watch, evcon);
    for (unsigned i = 0; i < a->nconns; i++) {
        if (a->conns[i] == evcon) {
            a->conns[i] = a->conns[--a->nconns];
            return;
        }
    }
}

/* Counts req's connection if it is new: false if there is no room. */
static bool
admin_http_conn_admit(struct admin_http *a, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    if (evcon == NULL) {
        return true;
    }
    for (unsigned i = 0; i < a->nconns; i++) {
        if (a->conns[i] == evcon) {
            return true;
        }
    }
    if (a->nconns == ADMIN_HTTP_MAX_CONNS) {
        return false;
    }
    a->conns[a->nconns++] = evcon;
    evhttp_connection_set_closecb(evcon, admin_http_conn_gone, a);
    return true;
}

static void
admin_http_handle(struct evhttp_request *req, void *arg)
{
    struct admin_http *a = arg;
    const char *token = admin_http_topology(a)->cfg->admin_token;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;

    if (!admin_http_conn_admit(a, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Connection", "close");
        log_limited_at(LOG_LEVEL_INFO, "admin API: %u connections open, "
                       "refusing another", ADMIN_HTTP_MAX_CONNS);
        admin_http_error(req, 503, "too many admin connections (%u)",
                         ADMIN_HTTP_MAX_CONNS);
        return;
    }
    if (token != NULL &&
        !(admin_http_topology(a)->cfg->admin_metrics_open && path != NULL &&
          (strcmp(path, "/metrics") == 0 || strcmp(path, "/health") == 0 ||
           strcmp(path, "/ready") == 0)) &&
        !admin_http_token_ok(token,
                             evhttp_find_header(
                                 evhttp_request_get_input_headers(req),
                                 "Authorization"))) {
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "WWW-Authenticate", "Bearer");
        admin_http_error(req, 401, "missing or wrong token (send "
                                   "Authorization: Bearer TOKEN)");
        return;
    }
    log_debug("admin API: %s %s", admin_http_method(m),
              path != NULL ? path : "?");
    if (path == NULL) {
        admin_http_error(req, 400, "bad request URI");
    } else if (strcmp(path, "/backends") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_backends(req, a);
        } else if (m == EVHTTP_REQ_POST) {
            admin_http_post_backend(req, a);
        } else {
            admin_http_not_allowed(req, "GET, POST");
        }
    } else if (strncmp(path, "/backends/", 10) == 0 && path[10] != '\0') {
        char *name = evhttp_uridecode(path + 10, 0, NULL);

        if (name == NULL) {
            admin_http_error(req, 500, "out of memory");
        } else if (m == EVHTTP_REQ_GET) {
            admin_http_answer_backend(req, a, 200, name);
        } else if (m == EVHTTP_REQ_PATCH) {
            admin_http_patch_backend(req, a, name);
        } else if (m == EVHTTP_REQ_DELETE) {
            admin_http_delete_backend(req, a, name);
        } else {
            admin_http_not_allowed(req, "GET, PATCH, DELETE");
        }
        mem_free(name);
    } else if (strcmp(path, "/route") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_route(req, a, query);
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/ring") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_ring(req, a, query);
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/config") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_config(req, a);
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/pools") == 0 || strcmp(path, "/routes") == 0 ||
               (strncmp(path, "/pools/", 7) == 0 && path[7] != '\0')) {
        admin_http_pools(req, a, m, path);
    } else if (strcmp(path, "/migration") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_migration(req, a);
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strncmp(path, "/migration/", 11) == 0) {
        if (m == EVHTTP_REQ_POST) {
            admin_http_post_migration(req, a, path + 11);
        } else {
            admin_http_not_allowed(req, "POST");
        }
    } else if (strcmp(path, "/rebalance") == 0) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_POST) {
            admin_http_rebalance(req, a, m == EVHTTP_REQ_POST);
        } else {
            admin_http_not_allowed(req, "GET, POST");
        }
    } else if (strcmp(path, "/metrics") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_metrics(req, a);
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/hotkeys") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_json(req, 200, a->ops.hotkeys(a->ops.arg));
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/watch") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_watch(req, a, query);
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/stats") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_json(req, 200, a->ops.stats(a->ops.arg));
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0) {
        if (m == EVHTTP_REQ_GET) {
            admin_http_get_health(req, a, path[1] == 'r');
        } else {
            admin_http_not_allowed(req, "GET");
        }
    } else if (strcmp(path, "/reload") == 0) {
        if (m == EVHTTP_REQ_POST) {
            admin_http_post_reload(req, a);
        } else {
            admin_http_not_allowed(req, "POST");
        }
    } else {
        admin_http_error(req, 404, "no such endpoint '%s' (see mcring(8), "
                                   "ADMIN API)",
                         path);
    }
}

/* ---- life cycle ---------------------------------------------------------- */

struct admin_http *
admin_http_create(struct event_base *base, const char *listen,
                  const struct admin_http_ops *ops, char *err, size_t errlen)
{
    struct admin_http *a = util_xcalloc(1, sizeof(*a));

    a->ops = *ops;
    a->watch = admin_watch_create(base, ops->watch);
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        snprintf(err, errlen, "admin listen %s: out of memory", listen);
        admin_watch_destroy(a->watch);
        free(a);
        return NULL;
    }
    evhttp_set_max_body_size(a->http, ADMIN_HTTP_MAX_BODY);
    evhttp_set_max_headers_size(a->http, ADMIN_HTTP_MAX_HEADERS);
    evhttp_set_timeout(a->http, ADMIN_HTTP_TIMEOUT_S);
    /* PATCH is not among evhttp's defaults; other methods get our 405. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(a->http, admin_http_handle, a);

    if (listen[0] == '/') {
        /* Only its owner may talk to it (the token aside). */
        int fd = net_unix_listen(listen, 0600, 64, err, errlen);

        if (fd < 0) {
            admin_http_destroy(a);
            return NULL;
        }
        a->unix_path = util_xstrdup(listen);
        if (evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
            close(fd);
            snprintf(err, errlen, "admin listen %s: cannot accept",
                     listen);
            admin_http_destroy(a);
            return NULL;
        }
    } else {
        char host[CONFIG_LINE_MAX + 1];
        char reason[128];
        uint16_t port;

        if (net_parse_hostport(listen, host, sizeof(host), &port, reason,
                                  sizeof(reason)) != 0) {
            snprintf(err, errlen, "admin listen %s: %s", listen, reason);
            admin_http_destroy(a);
            return NULL;
        }
        errno = 0;
        if (evhttp_bind_socket_with_handle(a->http, host, port) == NULL) {
            snprintf(err, errlen, "admin listen %s: cannot bind: %s", listen,
                     errno != 0 ? strerror(errno) : "failed");
            admin_http_destroy(a);
            return NULL;
        }
    }
    log_notice("admin API on %s%s", listen,
               admin_http_topology(a)->cfg->admin_token != NULL
                   ? " (token required)"
                   : "");
    return a;
}

void
admin_http_destroy(struct admin_http *a)
{
    if (a == NULL) {
        return;
    }
    if (a->http != NULL) {
        evhttp_free(a->http);
    }
    admin_watch_destroy(a->watch);
    if (a->unix_path != NULL) {
        unlink(a->unix_path);
        free(a->unix_path);
    }
    free(a);
}
