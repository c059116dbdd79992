/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ctl: `mcring ctl`, the operator's client of the admin API (admin_http.c).
 *
 *   argv --ctl_build()--> one request (method, path, JSON body)
 *        --ctl_send_tcp() (evhttp_connection) or ctl_send_unix()-->
 *        status + body --ctl_print_*()--> aligned text, or the JSON as is
 *
 * One request per run. Over TCP it goes through libevent's
 * evhttp_connection with a timeout. Over a unix socket libevent 2.1's
 * client cannot be used (evhttp_connection_base_bufferevent_new() closes a
 * connected socket and reconnects by host name before the first request),
 * so the request is written as HTTP/1.0 on a blocking socket with send and
 * receive timeouts and the answer read until the server closes; the server
 * answers HTTP/1.0 with Content-Length and closes, so nothing more of HTTP
 * is needed. Answers are parsed with Jansson.
 *
 * Exit status: 0 done, 1 the API refused (its message on stderr), 2 usage
 * error or the API could not be reached.
 */
#include "autoconf.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "net.h"
#include "ctl.h"
#include "util.h"

#define CTL_TIMEOUT_S 10             /* whole request, either transport */
#define CTL_MAX_ANSWER (64u << 20)   /* bytes of an answer we accept */
#define CTL_EXIT_OK 0
#define CTL_EXIT_REFUSED 1
#define CTL_EXIT_UNREACHABLE 2

struct ctl_args {
    const char *addr;
    const char *token;
    bool json;
    int ramp;                        /* --ramp S, or -1 */
    char **cmd;                      /* command and its arguments */
    int ncmd;
};

struct ctl_request {
    enum evhttp_cmd_type method;
    const char *method_name;
    char *path;                      /* owned, URI-encoded */
    char *body;                      /* owned JSON text, or NULL */
};

struct ctl_answer {
    int status;                      /* 0 = no answer */
    char *body;                      /* owned, NUL-terminated */
    size_t len;
    bool json;                       /* Content-Type application/json */
    char err[256];                   /* why there is no answer */
    struct event_base *base;
};

static void
ctl_usage(FILE *out)
{
    fprintf(out,
            "Usage: mcring ctl [-a ADDR] [-T TOKEN] [--json] COMMAND [ARG]...\n"
            "Talks to the admin API of a running mcring ([admin] listen).\n"
            "\n"
            "  -a, --addr ADDR      HOST:PORT or a unix socket path "
            "(default %s)\n"
            "  -T, --token TOKEN    bearer token (default: $MCRING_TOKEN)\n"
            "      --json           print the API's JSON answer as is\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Commands:\n"
            "  backends                     backends, state, share, "
            "counters\n"
            "  route KEY...                 pool, owner, fallbacks and target "
            "of each KEY\n"
            "  ring [POOL]                  how evenly the (pool's) ring "
            "spreads keys\n"
            "  pools                        the pools: replicas, backends\n"
            "  routes                       which key prefixes go to which "
            "pool\n"
            "  add NAME HOST:PORT [weight=W] [pool=P] [tls=yes] [--ramp S]\n"
            "                               add a backend (to pool P; over S "
            "seconds)\n"
            "  remove NAME [pool=P] [--ramp S]\n"
            "                               remove a backend (from pool P "
            "only)\n"
            "  weight NAME W [--ramp S]     change a backend's weight\n"
            "  migration [pause|resume|rollback|finish]\n"
            "                               the move in progress, or steer "
            "it\n"
            "  rebalance [apply]            requests per backend against its "
            "weight,\n"
            "                               and the weights that even them "
            "out\n"
            "  maint NAME                   take a backend out of routing\n"
            "  activate NAME                put it back (after recovery)\n"
            "  reload                       re-read the config file\n"
            "  config                       print the running topology as "
            "INI\n"
            "\n"
            "Exit status: 0 done, 1 refused by the API, 2 usage error or "
            "cannot connect.\nSee mcring(8).\n",
            CTL_DEFAULT_ADDR);
}

/* ---- building the request ------------------------------------------------ */

static char *
ctl_encode(const char *s)
{
    char *e = evhttp_uriencode(s, -1, 0);

    if (e == NULL) {
        fprintf(stderr, "mcring ctl: out of memory\n");
        exit(CTL_EXIT_UNREACHABLE);
    }
    return e;
}

/* "/backends/NAME", NAME encoded. */
static char *
ctl_backend_path(const char *name)
{
    char *e = ctl_encode(name);
    size_t n = strlen("/backends/") + strlen(e) + 1;
    char *path = util_xmalloc(n);

    snprintf(path, n, "/backends/%s", e);
    free(e);
    return path;
}

static char *
ctl_dump(json_t *doc)
{
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (s == NULL) {
        fprintf(stderr, "mcring ctl: out of memory\n");
        exit(CTL_EXIT_UNREACHABLE);
    }
    return s;
}

/* A weight as given on the command line: a finite decimal number. */
static int
ctl_parse_weight(const char *s, double *w)
{
    char *end;

    errno = 0;
    *w = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(*w)) {
        fprintf(stderr, "mcring ctl: bad weight '%s' (expected a number)\n",
                s);
        return -1;
    }
    return 0;
}

static int
ctl_nargs(const struct ctl_args *a, int min, int max)
{
    int n = a->ncmd - 1;

    if (n < min || (max >= 0 && n > max)) {
        fprintf(stderr, "mcring ctl: %s: wrong number of arguments (see "
                        "mcring ctl -h)\n",
                a->cmd[0]);
        return -1;
    }
    return 0;
}

static void
ctl_set(struct ctl_request *r, enum evhttp_cmd_type m, const char *name,
        char *path)
{
    r->method = m;
    r->method_name = name;
    r->path = path;
}

/* o with "ramp": ramp when ramp >= 0. */
static json_t *
ctl_with_ramp(json_t *o, int ramp)
{
    if (ramp >= 0) {
        json_object_set_new(o, "ramp", json_integer(ramp));
    }
    return o;
}

/* Fills r for the command in a. Returns 0, or -1 after a usage message. */
static int
ctl_build(const struct ctl_args *a, struct ctl_request *r)
{
    const char *cmd = a->cmd[0];
    char **arg = a->cmd + 1;
    double w = 1.0;

    memset(r, 0, sizeof(*r));
    if (strcmp(cmd, "backends") == 0 || strcmp(cmd, "config") == 0 ||
        strcmp(cmd, "pools") == 0 || strcmp(cmd, "routes") == 0) {
        char path[16];

        if (ctl_nargs(a, 0, 0) != 0) {
            return -1;
        }
        snprintf(path, sizeof(path), "/%s", cmd);
        ctl_set(r, EVHTTP_REQ_GET, "GET", util_xstrdup(path));
    } else if (strcmp(cmd, "ring") == 0) {
        char *path;

        if (ctl_nargs(a, 0, 1) != 0) {
            return -1;
        }
        if (a->ncmd == 1) {
            path = util_xstrdup("/ring");
        } else {
            char *e = ctl_encode(arg[0]);

            path = util_xmalloc(strlen(e) + 12);
            sprintf(path, "/ring?pool=%s", e);
            free(e);
        }
        ctl_set(r, EVHTTP_REQ_GET, "GET", path);
    } else if (strcmp(cmd, "route") == 0) {
        struct evbuffer *b = evbuffer_new();
        size_t n;

        if (ctl_nargs(a, 1, -1) != 0 || b == NULL) {
            evbuffer_free(b);
            return -1;
        }
        for (int i = 0; i < a->ncmd - 1; i++) {
            char *e = ctl_encode(arg[i]);

            evbuffer_add_printf(b, "%s%s", i == 0 ? "/route?key=" : "&key=",
                                e);
            free(e);
        }
        n = evbuffer_get_length(b);
        ctl_set(r, EVHTTP_REQ_GET, "GET", util_xmalloc(n + 1));
        evbuffer_remove(b, r->path, n);
        r->path[n] = '\0';
        evbuffer_free(b);
    } else if (strcmp(cmd, "add") == 0) {
        const char *pool = NULL;
        bool tls = false;
        json_t *o;

        if (ctl_nargs(a, 2, 5) != 0) {
            return -1;
        }
        for (int i = 2; i < a->ncmd - 1; i++) {
            if (strncmp(arg[i], "pool=", 5) == 0 && pool == NULL) {
                pool = arg[i] + 5;
            } else if (strcmp(arg[i], "tls=yes") == 0) {
                tls = true;
            } else if (strncmp(arg[i], "weight=", 7) != 0) {
                fprintf(stderr, "mcring ctl: add: expected weight=W, "
                                "pool=P or tls=yes, got '%s'\n",
                        arg[i]);
                return -1;
            } else if (ctl_parse_weight(arg[i] + 7, &w) != 0) {
                return -1;
            }
        }
        ctl_set(r, EVHTTP_REQ_POST, "POST", util_xstrdup("/backends"));
        o = json_pack("{s:s, s:s, s:f}", "name", arg[0], "address", arg[1],
                      "weight", w);
        if (o != NULL && pool != NULL) {
            json_object_set_new(o, "pool", json_string(pool));
        }
        if (o != NULL && tls) {
            json_object_set_new(o, "tls", json_true());
        }
        r->body = ctl_dump(ctl_with_ramp(o, a->ramp));
    } else if (strcmp(cmd, "remove") == 0) {
        char *path, *pool = NULL;

        if (ctl_nargs(a, 1, 2) != 0) {
            return -1;
        }
        if (a->ncmd == 3) {
            if (strncmp(arg[1], "pool=", 5) != 0) {
                fprintf(stderr, "mcring ctl: remove: expected pool=P, got "
                                "'%s'\n",
                        arg[1]);
                return -1;
            }
            pool = ctl_encode(arg[1] + 5);
        }
        path = ctl_backend_path(arg[0]);
        if (a->ramp >= 0 || pool != NULL) {
            char *p = util_xmalloc(strlen(path) + 40 +
                                   (pool != NULL ? strlen(pool) : 0));

            if (a->ramp >= 0) {
                sprintf(p, "%s?ramp=%d%s%s", path, a->ramp,
                        pool != NULL ? "&pool=" : "",
                        pool != NULL ? pool : "");
            } else {
                sprintf(p, "%s?pool=%s", path, pool);
            }
            free(path);
            path = p;
        }
        free(pool);
        ctl_set(r, EVHTTP_REQ_DELETE, "DELETE", path);
    } else if (strcmp(cmd, "weight") == 0) {
        if (ctl_nargs(a, 2, 2) != 0 || ctl_parse_weight(arg[1], &w) != 0) {
            return -1;
        }
        ctl_set(r, EVHTTP_REQ_PATCH, "PATCH", ctl_backend_path(arg[0]));
        r->body = ctl_dump(
            ctl_with_ramp(json_pack("{s:f}", "weight", w), a->ramp));
    } else if (strcmp(cmd, "rebalance") == 0) {
        if (ctl_nargs(a, 0, 1) != 0) {
            return -1;
        }
        if (a->ncmd == 2 && strcmp(arg[0], "apply") != 0) {
            fprintf(stderr, "mcring ctl: rebalance: expected apply, got "
                            "'%s'\n",
                    arg[0]);
            return -1;
        }
        ctl_set(r, a->ncmd == 2 ? EVHTTP_REQ_POST : EVHTTP_REQ_GET,
                a->ncmd == 2 ? "POST" : "GET", util_xstrdup("/rebalance"));
    } else if (strcmp(cmd, "migration") == 0) {
        char path[40];

        if (ctl_nargs(a, 0, 1) != 0) {
            return -1;
        }
        if (a->ncmd == 1) {
            ctl_set(r, EVHTTP_REQ_GET, "GET", util_xstrdup("/migration"));
            return 0;
        }
        if (strcmp(arg[0], "pause") != 0 && strcmp(arg[0], "resume") != 0 &&
            strcmp(arg[0], "rollback") != 0 && strcmp(arg[0], "finish") != 0) {
            fprintf(stderr, "mcring ctl: migration: expected pause, resume, "
                            "rollback or finish, got '%s'\n",
                    arg[0]);
            return -1;
        }
        snprintf(path, sizeof(path), "/migration/%s", arg[0]);
        ctl_set(r, EVHTTP_REQ_POST, "POST", util_xstrdup(path));
    } else if (strcmp(cmd, "maint") == 0 || strcmp(cmd, "activate") == 0) {
        if (ctl_nargs(a, 1, 1) != 0) {
            return -1;
        }
        ctl_set(r, EVHTTP_REQ_PATCH, "PATCH", ctl_backend_path(arg[0]));
        r->body = ctl_dump(json_pack(
            "{s:s}", "state", strcmp(cmd, "maint") == 0 ? "maint" : "active"));
    } else if (strcmp(cmd, "reload") == 0) {
        if (ctl_nargs(a, 0, 0) != 0) {
            return -1;
        }
        ctl_set(r, EVHTTP_REQ_POST, "POST", util_xstrdup("/reload"));
    } else {
        fprintf(stderr, "mcring ctl: unknown command '%s' (see mcring ctl "
                        "-h)\n",
                cmd);
        return -1;
    }
    return 0;
}

/* ---- sending it ---------------------------------------------------------- */

static bool
ctl_is_json_type(const char *type)
{
    return type != NULL &&
           strncasecmp(type, "application/json", strlen("application/json")) ==
               0;
}

static void
ctl_http_error(enum evhttp_request_error e, void *arg)
{
    struct ctl_answer *ans = arg;

    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        snprintf(ans->err, sizeof(ans->err), "timed out after %d s",
                 CTL_TIMEOUT_S);
        break;
    case EVREQ_HTTP_EOF:
        snprintf(ans->err, sizeof(ans->err),
                 "connection refused or closed before an answer");
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        snprintf(ans->err, sizeof(ans->err), "answer too long");
        break;
    default:
        snprintf(ans->err, sizeof(ans->err), "HTTP error %d", (int)e);
        break;
    }
}

static void
ctl_http_done(struct evhttp_request *req, void *arg)
{
    struct ctl_answer *ans = arg;

    if (req != NULL && evhttp_request_get_response_code(req) != 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);

        ans->status = evhttp_request_get_response_code(req);
        ans->json = ctl_is_json_type(evhttp_find_header(
            evhttp_request_get_input_headers(req), "Content-Type"));
        ans->body = util_xmalloc(n + 1);
        evbuffer_remove(in, ans->body, n);
        ans->body[n] = '\0';
        ans->len = n;
    } else if (ans->err[0] == '\0') {
        snprintf(ans->err, sizeof(ans->err),
                 "connection refused, or closed before an answer");
    }
    event_base_loopexit(ans->base, NULL);
}

/* The request headers both transports send. */
struct ctl_headers {
    const char *key[6];
    const char *value[6];
    size_t n;
    char auth[CONFIG_TOKEN_MAX + 16];
    char length[24];
};

/*
 * Content-Length always: libevent 2.1 adds it by itself only to POST and
 * PUT, and a PATCH body without it would be lost.
 */
static void
ctl_headers_init(struct ctl_headers *h, const char *host, const char *token,
                 const char *body)
{
    h->n = 0;
    h->key[h->n] = "Host";
    h->value[h->n++] = host;
    h->key[h->n] = "Connection";
    h->value[h->n++] = "close";
    h->key[h->n] = "Accept";
    h->value[h->n++] = "application/json";
    if (body != NULL) {
        h->key[h->n] = "Content-Type";
        h->value[h->n++] = "application/json";
    }
    snprintf(h->length, sizeof(h->length), "%zu",
             body != NULL ? strlen(body) : 0);
    h->key[h->n] = "Content-Length";
    h->value[h->n++] = h->length;
    if (token != NULL) {
        snprintf(h->auth, sizeof(h->auth), "Bearer %s", token);
        h->key[h->n] = "Authorization";
        h->value[h->n++] = h->auth;
    }
}

static int
ctl_send_tcp(const char *addr, const char *token, const struct ctl_request *r,
             struct ctl_answer *ans)
{
    char host[CONFIG_LINE_MAX + 1];
    char hosthdr[CONFIG_LINE_MAX + 16];
    char reason[128];
    uint16_t port;
    struct evhttp_connection *evcon = NULL;
    struct evhttp_request *req;
    struct ctl_headers hdr;
    int bad = 0;
    int rc = -1;

    if (net_parse_hostport(addr, host, sizeof(host), &port, reason,
                              sizeof(reason)) != 0) {
        snprintf(ans->err, sizeof(ans->err),
                 "bad address '%s': %s (expected HOST:PORT or a unix socket "
                 "path)",
                 addr, reason);
        return -1;
    }
    snprintf(hosthdr, sizeof(hosthdr),
             strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
             (unsigned)port);
    ans->base = event_base_new();
    if (ans->base != NULL) {
        evcon = evhttp_connection_base_new(ans->base, NULL, host, port);
    }
    if (evcon == NULL) {
        snprintf(ans->err, sizeof(ans->err), "out of memory");
        goto out;
    }
    evhttp_connection_set_timeout(evcon, CTL_TIMEOUT_S);
    evhttp_connection_set_max_body_size(evcon, CTL_MAX_ANSWER);
    req = evhttp_request_new(ctl_http_done, ans);
    if (req == NULL) {
        snprintf(ans->err, sizeof(ans->err), "out of memory");
        goto out;
    }
    evhttp_request_set_error_cb(req, ctl_http_error);
    ctl_headers_init(&hdr, hosthdr, token, r->body);
    for (size_t i = 0; i < hdr.n && bad == 0; i++) {
        bad = evhttp_add_header(evhttp_request_get_output_headers(req),
                                hdr.key[i], hdr.value[i]);
    }
    if (bad != 0 ||
        (r->body != NULL &&
         evbuffer_add(evhttp_request_get_output_buffer(req), r->body,
                      strlen(r->body)) != 0)) {
        evhttp_request_free(req);
        snprintf(ans->err, sizeof(ans->err), "out of memory");
        goto out;
    }
    /* On failure evhttp_make_request() frees req itself. */
    if (evhttp_make_request(evcon, req, r->method, r->path) != 0) {
        snprintf(ans->err, sizeof(ans->err), "cannot start the request");
        goto out;
    }
    event_base_dispatch(ans->base);
    rc = ans->status != 0 ? 0 : -1;

out:
    if (evcon != NULL) {
        evhttp_connection_free(evcon);
    }
    if (ans->base != NULL) {
        event_base_free(ans->base);
        ans->base = NULL;
    }
    return rc;
}

static int
ctl_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Splits a raw HTTP/1.x answer in buf[0..len) (NUL-terminated) into
 * status, Content-Type and body. Returns 0, or -1 if it is not one.
 */
static int
ctl_parse_raw(char *buf, size_t len, struct ctl_answer *ans)
{
    char *hdr_end = strstr(buf, "\r\n\r\n");
    char *line;
    char *save = NULL;
    int status;

    if (hdr_end == NULL || strncmp(buf, "HTTP/1.", 7) != 0 ||
        sscanf(buf + 7, "%*c %3d", &status) != 1 || status < 100) {
        return -1;
    }
    *hdr_end = '\0';
    line = strtok_r(buf, "\r\n", &save);
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        if (strncasecmp(line, "Content-Type:", 13) == 0) {
            char *v = line + 13;

            v += strspn(v, " \t");
            ans->json = ctl_is_json_type(v);
        }
    }
    ans->status = status;
    ans->len = len - (size_t)(hdr_end + 4 - buf);
    ans->body = util_xmalloc(ans->len + 1);
    memcpy(ans->body, hdr_end + 4, ans->len);
    ans->body[ans->len] = '\0';
    return 0;
}

static int
ctl_send_unix(const char *path, const char *token,
              const struct ctl_request *r, struct ctl_answer *ans)
{
    struct sockaddr_un sun;
    struct timeval tv = {.tv_sec = CTL_TIMEOUT_S, .tv_usec = 0};
    struct ctl_headers hdr;
    struct evbuffer *out = evbuffer_new();
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = -1;
    int rc = -1;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(ans->err, sizeof(ans->err), "unix socket path too long");
        goto out;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || out == NULL ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) != 0) {
        snprintf(ans->err, sizeof(ans->err), "%s", strerror(errno));
        goto out;
    }
    ctl_headers_init(&hdr, "localhost", token, r->body);
    evbuffer_add_printf(out, "%s %s HTTP/1.0\r\n", r->method_name, r->path);
    for (size_t i = 0; i < hdr.n; i++) {
        evbuffer_add_printf(out, "%s: %s\r\n", hdr.key[i], hdr.value[i]);
    }
    evbuffer_add_printf(out, "\r\n%s", r->body != NULL ? r->body : "");
    if (ctl_write_all(fd, (const char *)evbuffer_pullup(out, -1),
                      evbuffer_get_length(out)) != 0) {
        snprintf(ans->err, sizeof(ans->err), "write: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n;

        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap + 1);
            if (buf == NULL) {
                snprintf(ans->err, sizeof(ans->err), "out of memory");
                goto out;
            }
        }
        n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(ans->err, sizeof(ans->err), "%s",
                     errno == EAGAIN || errno == EWOULDBLOCK ? "timed out"
                                                             : strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > CTL_MAX_ANSWER) {
            snprintf(ans->err, sizeof(ans->err), "answer too long");
            goto out;
        }
    }
    buf[len] = '\0';
    if (ctl_parse_raw(buf, len, ans) != 0) {
        snprintf(ans->err, sizeof(ans->err),
                 len == 0 ? "closed without an answer" : "not an HTTP answer");
        goto out;
    }
    rc = 0;

out:
    if (out != NULL) {
        evbuffer_free(out);
    }
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* ---- printing the answer ------------------------------------------------- */

static const char *
ctl_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? s : "-";
}

static double
ctl_num(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static int
ctl_width(json_t *arr, const char *key, const char *title)
{
    size_t w = strlen(title);
    size_t i;
    json_t *e;

    json_array_foreach(arr, i, e) {
        size_t n = strlen(ctl_str(e, key));

        w = n > w ? n : w;
    }
    return (int)w;
}

static void
ctl_print_backend_line(json_t *e, int wn, int wa)
{
    printf("%-*s %-*s %8g %-10s %6.2f%% %12.0f %8.0f\n", wn, ctl_str(e, "name"),
           wa, ctl_str(e, "address"), ctl_num(e, "weight"),
           ctl_str(e, "state"), 100 * ctl_num(e, "share"),
           ctl_num(e, "requests"), ctl_num(e, "errors"));
}

static void
ctl_print_backends(json_t *doc)
{
    int wn = ctl_width(doc, "name", "NAME");
    int wa = ctl_width(doc, "address", "ADDRESS");
    size_t i;
    json_t *e;

    printf("%-*s %-*s %8s %-10s %7s %12s %8s\n", wn, "NAME", wa, "ADDRESS",
           "WEIGHT", "STATE", "SHARE", "REQUESTS", "ERRORS");
    json_array_foreach(doc, i, e) {
        ctl_print_backend_line(e, wn, wa);
    }
}

static void
ctl_print_route(json_t *doc)
{
    int wk = ctl_width(doc, "key", "KEY");
    int wo = ctl_width(doc, "owner", "OWNER");
    int wt = ctl_width(doc, "target", "TARGET");
    bool pools = false;
    size_t i, j;
    json_t *e, *f;

    /* A POOL column once a key is in a pool other than default. */
    json_array_foreach(doc, i, e) {
        const char *p = json_string_value(json_object_get(e, "pool"));

        pools = pools || (p != NULL && strcmp(p, "default") != 0);
    }
    printf("%-*s %-*s %-*s %s%s\n", wk, "KEY", wo, "OWNER", wt, "TARGET",
           "FALLBACKS", pools ? " POOL" : "");
    json_array_foreach(doc, i, e) {
        printf("%-*s %-*s %-*s", wk, ctl_str(e, "key"), wo,
               ctl_str(e, "owner"), wt, ctl_str(e, "target"));
        json_array_foreach(json_object_get(e, "fallbacks"), j, f) {
            printf("%s%s", j == 0 ? " " : ",", json_string_value(f));
        }
        if (pools) {
            printf(" %s", ctl_str(e, "pool"));
        }
        putchar('\n');
    }
}

static void
ctl_print_ring(json_t *doc)
{
    json_t *list = json_object_get(doc, "backends");
    int wn = ctl_width(list, "name", "NAME");
    size_t i;
    json_t *e;

    printf("pool %s: hash %s", ctl_str(doc, "pool"), ctl_str(doc, "hash"));
    if (json_object_get(doc, "vnodes") != NULL) {
        printf(", vnodes %.0f", ctl_num(doc, "vnodes"));
    }
    printf(", %.0f backends, %.0f points, %.0f sample keys\n",
           ctl_num(doc, "backend_count"), ctl_num(doc, "points"),
           ctl_num(doc, "sample_keys"));
    printf("%-*s %8s %8s %8s %8s %8s\n", wn, "NAME", "WEIGHT", "POINTS",
           "ARC", "SAMPLE", "FAIR");
    json_array_foreach(list, i, e) {
        printf("%-*s %8g %8.0f %7.3f%% %7.3f%% %7.3f%%\n", wn,
               ctl_str(e, "name"), ctl_num(e, "weight"), ctl_num(e, "points"),
               100 * ctl_num(e, "arc_share"), 100 * ctl_num(e, "sample_share"),
               100 * ctl_num(e, "fair_share"));
    }
    printf("ratio sample/fair: coefficient of variation %.4f, max/min %.4f\n",
           ctl_num(doc, "ratio_cv"), ctl_num(doc, "ratio_max_min"));
}

static void
ctl_print_migration(json_t *doc)
{
    json_t *moves = json_object_get(doc, "moves");
    json_t *warm = json_object_get(doc, "warmup");
    json_t *del = json_object_get(doc, "deletes");
    json_t *e;
    size_t i;

    printf("state %s", ctl_str(doc, "state"));
    if (json_is_string(json_object_get(doc, "why"))) {
        printf(" (%s)", ctl_str(doc, "why"));
    }
    if (json_is_number(json_object_get(doc, "moved_share"))) {
        printf(", %.4f of the keys moved", ctl_num(doc, "moved_share"));
    }
    if (json_is_integer(json_object_get(doc, "expected_end"))) {
        printf(", steps end at %lld",
               (long long)json_integer_value(
                   json_object_get(doc, "expected_end")));
    }
    if (json_is_integer(json_object_get(doc, "warmup_until"))) {
        printf(", warm-up until %lld",
               (long long)json_integer_value(
                   json_object_get(doc, "warmup_until")));
    }
    printf("\n");
    json_array_foreach(moves, i, e) {
        printf("  %s weight %g -> %g, now %g, step %g of %g, ramp %g s%s\n",
               ctl_str(e, "backend"), ctl_num(e, "from_weight"),
               ctl_num(e, "to_weight"), ctl_num(e, "weight"),
               ctl_num(e, "step"), ctl_num(e, "steps"), ctl_num(e, "ramp"),
               json_is_true(json_object_get(e, "waiting"))
                   ? " (waiting: its backend is not up)"
                   : "");
    }
    printf("warm-up: %g hits, %g misses, %g copies, %g copy failures, %g "
           "dropped; previous-owner deletes: %g sent, %g failed\n",
           ctl_num(warm, "hits"), ctl_num(warm, "misses"),
           ctl_num(warm, "copies"), ctl_num(warm, "copy_failures"),
           ctl_num(warm, "copies_dropped"), ctl_num(del, "sent"),
           ctl_num(del, "failed"));
}

static void
ctl_print_rebalance(json_t *doc)
{
    json_t *list = json_object_get(doc, "backends");
    json_t *e;
    size_t i;
    int wn = ctl_width(list, "name", "backend");

    printf("%-*s %8s %8s %8s %8s %8s\n", wn, "backend", "weight",
           "requests", "bytes", "load", "proposed");
    json_array_foreach(list, i, e) {
        printf("%-*s %8g %8.4f %8.4f %8.3f %8g\n", wn, ctl_str(e, "name"),
               ctl_num(e, "weight"), ctl_num(e, "request_share"),
               ctl_num(e, "byte_share"), ctl_num(e, "load"),
               ctl_num(e, "proposed_weight"));
    }
    printf("window %.0f s, %g requests; ", ctl_num(doc, "window_seconds"),
           ctl_num(doc, "requests"));
    if (json_is_true(json_object_get(doc, "proposal"))) {
        printf("the proposal moves %.4f of the keys, over %g s\n",
               ctl_num(doc, "moved_share"), ctl_num(doc, "ramp"));
    } else {
        printf("no proposal: %s\n", ctl_str(doc, "reason"));
    }
}

static void
ctl_print_pools(json_t *doc)
{
    int wn = ctl_width(doc, "name", "POOL");
    size_t i, j;
    json_t *e, *b;

    printf("%-*s %8s %-6s %s\n", wn, "POOL", "REPLICAS", "HASH", "BACKENDS");
    json_array_foreach(doc, i, e) {
        printf("%-*s %8.0f %-6s", wn, ctl_str(e, "name"),
               ctl_num(e, "replicas"), ctl_str(e, "hash"));
        json_array_foreach(json_object_get(e, "backends"), j, b) {
            printf("%s%s", j == 0 ? " " : ",", json_string_value(b));
        }
        putchar('\n');
    }
}

static void
ctl_print_routes(json_t *doc)
{
    const char *prefix;
    json_t *v;

    json_object_foreach(doc, prefix, v) {
        printf("%s = %s\n", prefix, json_string_value(v));
    }
}

static void
ctl_print(const char *cmd, json_t *doc)
{
    if (strcmp(cmd, "rebalance") == 0) {
        ctl_print_rebalance(doc);
    } else if (strcmp(cmd, "migration") == 0) {
        ctl_print_migration(doc);
    } else if (strcmp(cmd, "backends") == 0) {
        ctl_print_backends(doc);
    } else if (strcmp(cmd, "route") == 0) {
        ctl_print_route(doc);
    } else if (strcmp(cmd, "ring") == 0) {
        ctl_print_ring(doc);
    } else if (strcmp(cmd, "pools") == 0) {
        ctl_print_pools(doc);
    } else if (strcmp(cmd, "routes") == 0) {
        ctl_print_routes(doc);
    } else if (strcmp(cmd, "remove") == 0) {
        printf("removed %s\n", ctl_str(doc, "removed"));
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reload applied\n");
    } else {
        /* add, weight, maint, activate: the backend as it is now. */
        printf("%s %s weight %g state %s\n", ctl_str(doc, "name"),
               ctl_str(doc, "address"), ctl_num(doc, "weight"),
               ctl_str(doc, "state"));
    }
}

/* ---- main ---------------------------------------------------------------- */

static int
ctl_parse_args(int argc, char **argv, struct ctl_args *a)
{
    static const struct option longopts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(a, 0, sizeof(*a));
    a->addr = CTL_DEFAULT_ADDR;
    a->ramp = -1;
    a->token = getenv("MCRING_TOKEN");
    if (a->token != NULL && a->token[0] == '\0') {
        a->token = NULL;
    }
    optind = 1;
    /* '+': options end at the command, so "route -k" is a key. */
    while ((ch = getopt_long(argc, argv, "+a:T:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            a->addr = optarg;
            break;
        case 'T':
            a->token = optarg;
            break;
        case 'j':
            a->json = true;
            break;
        case 'h':
            ctl_usage(stdout);
            exit(CTL_EXIT_OK);
        default:
            ctl_usage(stderr);
            return -1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "mcring ctl: missing COMMAND (see mcring ctl -h)\n");
        return -1;
    }
    if (a->token != NULL && strpbrk(a->token, "\r\n") != NULL) {
        fprintf(stderr, "mcring ctl: bad token\n");
        return -1;
    }
    a->cmd = argv + optind;
    a->ncmd = argc - optind;
    /* --json may also follow the command ("ctl backends --json"); after
     * "--" everything is an argument (a key may be "--json"). */
    for (int i = 1, j = 1; i <= a->ncmd; i++) {
        if (i == a->ncmd) {
            a->ncmd = j;
        } else if (strcmp(a->cmd[i], "--") == 0) {
            memmove(&a->cmd[j], &a->cmd[i + 1],
                    (size_t)(a->ncmd - i - 1) * sizeof(*a->cmd));
            a->ncmd = j + a->ncmd - i - 1;
            break;
        } else if (strcmp(a->cmd[i], "--json") == 0) {
            a->json = true;
        } else if (strcmp(a->cmd[i], "--ramp") == 0 ||
                   strncmp(a->cmd[i], "--ramp=", 7) == 0) {
            const char *v = a->cmd[i][6] == '=' ? a->cmd[i] + 7
                            : i + 1 < a->ncmd   ? a->cmd[++i]
                                                : "";
            uint64_t u;

            if (util_parse_u64(v, strlen(v), &u) != 0 ||
                u > CONFIG_RAMP_MAX) {
                fprintf(stderr, "mcring ctl: bad --ramp '%s' (whole seconds "
                                "0..%d)\n",
                        v, CONFIG_RAMP_MAX);
                return -1;
            }
            a->ramp = (int)u;
        } else {
            a->cmd[j++] = a->cmd[i];
        }
    }
    return 0;
}

/* Prints an error answer: its "error" member, else its body. */
static void
ctl_print_refusal(const struct ctl_answer *ans, json_t *doc)
{
    const char *msg = json_string_value(json_object_get(doc, "error"));

    if (msg != NULL) {
        fprintf(stderr, "mcring ctl: %s (HTTP %d)\n", msg, ans->status);
    } else {
        fprintf(stderr, "mcring ctl: HTTP %d: %.*s\n", ans->status,
                (int)(ans->len > 400 ? 400 : ans->len), ans->body);
    }
}

int
ctl_main(int argc, char **argv)
{
    struct ctl_args a;
    struct ctl_request r;
    struct ctl_answer ans;
    json_t *doc = NULL;
    json_error_t jerr;
    int rc;
    int exitcode = CTL_EXIT_REFUSED;

    if (ctl_parse_args(argc, argv, &a) != 0 || ctl_build(&a, &r) != 0) {
        return CTL_EXIT_UNREACHABLE;
    }
    memset(&ans, 0, sizeof(ans));
    if (a.addr[0] == '/') {
        rc = ctl_send_unix(a.addr, a.token, &r, &ans);
    } else {
        rc = ctl_send_tcp(a.addr, a.token, &r, &ans);
    }
    if (rc != 0) {
        fprintf(stderr,
                "mcring ctl: cannot talk to the admin API at %s: %s (is "
                "mcring running with [admin] listen = %s?)\n",
                a.addr, ans.err, a.addr);
        exitcode = CTL_EXIT_UNREACHABLE;
        goto out;
    }
    if (ans.json) {
        doc = json_loadb(ans.body, ans.len, 0, &jerr);
    }
    if (ans.status < 200 || ans.status > 299) {
        ctl_print_refusal(&ans, doc);
        goto out;
    }
    if (strcmp(a.cmd[0], "config") == 0 || (a.json && doc != NULL)) {
        fwrite(ans.body, 1, ans.len, stdout);
        if (ans.len > 0 && ans.body[ans.len - 1] != '\n') {
            putchar('\n');
        }
    } else if (doc == NULL) {
        fprintf(stderr, "mcring ctl: the answer is not JSON: %s\n",
                ans.json ? jerr.text : "wrong Content-Type");
        goto out;
    } else {
        ctl_print(a.cmd[0], doc);
    }
    exitcode = fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;

out:
    json_decref(doc);
    free(ans.body);
    free(r.path);
    free(r.body);
    return exitcode;
}
