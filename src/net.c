/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * net: the connection core shared by client, backend and health
 * connections: struct net_conn (socket, buffers, events) with one write
 * routine that arms the write event only while the socket is full; one
 * read routine that fills an evbuffer without a copy; one line framer that
 * finds a line in place (memchr over the first chain) and pulls up only a
 * line that spans chains; and the address helpers (HOST:PORT text, socket
 * address comparison) that config, the admin API and ctl share.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "net.h"
#include "tls.h"
#include "util.h"

int
net_conn_init(struct net_conn *nc)
{
    memset(nc, 0, sizeof(*nc));
    nc->fd = -1;
    nc->in = evbuffer_new();
    nc->out = evbuffer_new();
    if (nc->in == NULL || nc->out == NULL) {
        net_conn_deinit(nc);
        return -1;
    }
    return 0;
}

void
net_conn_deinit(struct net_conn *nc)
{
    net_conn_close(nc);
    if (nc->in != NULL) {
        evbuffer_free(nc->in);
        nc->in = NULL;
    }
    if (nc->out != NULL) {
        evbuffer_free(nc->out);
        nc->out = NULL;
    }
}

int
net_conn_attach(struct net_conn *nc, struct event_base *base, int fd,
                event_callback_fn on_read, event_callback_fn on_write,
                void *arg)
{
    nc->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, on_read, arg);
    nc->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, arg);
    if (nc->ev_read == NULL || nc->ev_write == NULL) {
        if (nc->ev_read != NULL) {
            event_free(nc->ev_read);
        }
        if (nc->ev_write != NULL) {
            event_free(nc->ev_write);
        }
        nc->ev_read = nc->ev_write = NULL;
        return -1;
    }
    nc->fd = fd;
    return 0;
}

int
net_conn_detach(struct net_conn *nc)
{
    int fd = nc->fd;

    if (nc->read_queued != NULL) {
        /* Cancelled: the batch skips an empty slot. */
        *nc->read_queued = NULL;
        nc->read_queued = NULL;
    }
    if (nc->ev_read != NULL) {
        event_free(nc->ev_read);
        nc->ev_read = NULL;
    }
    if (nc->ev_write != NULL) {
        event_free(nc->ev_write);
        nc->ev_write = NULL;
    }
    nc->reading = nc->writing = false;
    nc->fd = -1;
    return fd;
}

void
net_conn_tls(struct net_conn *nc, struct ssl_st *ssl)
{
    nc->tls = ssl;
    nc->tls_want = 0;
    nc->tls_read_blocked = false;
}

void
net_conn_close(struct net_conn *nc)
{
    int fd;

    if (nc->tls != NULL) {
        tls_free(nc->tls);
        nc->tls = NULL;
    }
    fd = net_conn_detach(nc);
    if (fd >= 0) {
        close(fd);
    }
    if (nc->in != NULL) {
        evbuffer_drain(nc->in, evbuffer_get_length(nc->in));
    }
    if (nc->out != NULL) {
        evbuffer_drain(nc->out, evbuffer_get_length(nc->out));
    }
}

void
net_conn_reading(struct net_conn *nc, bool on)
{
    if (on && !nc->reading) {
        event_add(nc->ev_read, NULL);
    } else if (!on && nc->reading) {
        event_del(nc->ev_read);
    }
    nc->reading = on;
}

void
net_conn_writing(struct net_conn *nc, bool on)
{
    if (on && !nc->writing) {
        event_add(nc->ev_write, NULL);
    } else if (!on && nc->writing) {
        event_del(nc->ev_write);
    }
    nc->writing = on;
}

/*
 * TLS: writes what the session takes; a read that waited for writability
 * runs again (its owner's read event, from the loop); ev_write stays while
 * the session waits to write, and a write that waits for input is retried
 * by the next read.
 */
static int
net_conn_write_tls(struct net_conn *nc)
{
    int want = 0;
    size_t before = evbuffer_get_length(nc->out);

    if (tls_write(nc->tls, nc->out, &want) != 0) {
        return -1;
    }
    nc->sent += before - evbuffer_get_length(nc->out);
    nc->tls_want = (uint8_t)want;
    if (nc->tls_read_blocked && want != TLS_WANT_WRITE) {
        nc->tls_read_blocked = false;
        event_active(nc->ev_read, EV_READ, 0);
    }
    net_conn_writing(nc, want == TLS_WANT_WRITE || nc->tls_read_blocked ||
                             (evbuffer_get_length(nc->out) > 0 &&
                              want != TLS_WANT_READ));
    return 0;
}

int
net_conn_write(struct net_conn *nc)
{
    if (nc->tls != NULL) {
        return net_conn_write_tls(nc);
    }
    if (evbuffer_get_length(nc->out) > 0) {
        int n = evbuffer_write(nc->out, nc->fd);

        if (n > 0) {
            nc->sent += (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    net_conn_writing(nc, evbuffer_get_length(nc->out) > 0);
    return 0;
}

ssize_t
net_conn_read(struct net_conn *nc)
{
    ssize_t n;
    int want = 0;

    if (nc->tls == NULL) {
        return net_read(nc->fd, nc->in);
    }
    n = tls_read(nc->tls, nc->in, &want);
    if (n < 0 && errno == EAGAIN && want == TLS_WANT_WRITE) {
        /* (A handshake's or key update's write first.) */
        nc->tls_read_blocked = true;
        net_conn_writing(nc, true);
    }
    if (nc->tls_want == TLS_WANT_READ) {
        /* A write waited for this input: its owner writes again. */
        nc->tls_want = 0;
        event_active(nc->ev_write, EV_WRITE, 0);
    }
    if (n < 0 && errno == EAGAIN) {
        return -1;
    }
    return n;
}

void
net_log(const struct net_conn *nc, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (log_get_level() < level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg((enum log_level)level, "%s: %s", nc->name, msg);
}

void
net_log_held(struct log_limit *l, const struct net_conn *nc, int level,
             const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_limited(l, (enum log_level)level, "%s: %s", nc->name, msg);
}

ssize_t
net_read(int fd, struct evbuffer *buf)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(buf, 16384, v, 2);
    ssize_t n;
    size_t left;

    if (nv <= 0) {
        errno = ENOMEM;
        return -1;
    }
    do {
        n = readv(fd, (struct iovec *)v, nv);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        evbuffer_commit_space(buf, v, 0);
        return n;
    }
    left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        if (v[i].iov_len > left) {
            v[i].iov_len = left;
        }
        left -= v[i].iov_len;
        if (v[i].iov_len == 0) {
            nv = i;
            break;
        }
    }
    evbuffer_commit_space(buf, v, nv);
    return n;
}

const char *
net_head(struct evbuffer *buf, size_t *len)
{
    struct evbuffer_iovec v;

    if (evbuffer_peek(buf, -1, NULL, &v, 1) < 1) {
        *len = 0;
        return NULL;
    }
    *len = v.iov_len;
    return v.iov_base;
}

const char *
net_line(struct evbuffer *buf, size_t *len, size_t *eollen)
{
    size_t n;
    const char *p = net_head(buf, &n);
    const char *nl = n > 0 ? memchr(p, '\n', n) : NULL;
    struct evbuffer_ptr eol;

    if (nl != NULL) {
        net_eol(p, nl, len, eollen);
        return p;
    }
    if (n == evbuffer_get_length(buf)) {
        return NULL;
    }
    eol = evbuffer_search_eol(buf, NULL, eollen, EVBUFFER_EOL_CRLF);
    if (eol.pos < 0) {
        return NULL;
    }
    *len = (size_t)eol.pos;
    return (const char *)evbuffer_pullup(buf, (ev_ssize_t)(*len + *eollen));
}

bool
net_same_addr(const struct sockaddr_storage *a, socklen_t alen,
              const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->ss_family != b->ss_family) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a;
        const struct sockaddr_in *y = (const void *)b;

        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a;
        const struct sockaddr_in6 *y = (const void *)b;

        return x->sin6_port == y->sin6_port &&
               x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

const char *
net_addr_text(const struct sockaddr_storage *sa, socklen_t salen, char *buf,
              size_t len)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (sa->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)sa;

        snprintf(buf, len, "unix:%s", un->sun_path);
        return buf;
    }
    if (getnameinfo((const struct sockaddr *)sa, salen, host, sizeof(host),
                    serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) !=
        0) {
        snprintf(buf, len, "?");
    } else {
        snprintf(buf, len, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
                 serv);
    }
    return buf;
}

/* ---- addresses as text ---------------------------------------------------- */

int
net_parse_unix(const char *path, char *host, size_t hostlen, uint16_t *port,
               char *err, size_t errlen)
{
    size_t n = strlen(path);

    if (path[0] != '/') {
        snprintf(err, errlen, "a unix socket path must be absolute");
        return -1;
    }
    if (n >= sizeof(((struct sockaddr_un *)NULL)->sun_path) || n >= hostlen) {
        snprintf(err, errlen, "unix socket path too long (at most %zu "
                              "bytes)",
                 sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)path[i] <= ' ' || path[i] == ';') {
            snprintf(err, errlen, "bad character in unix socket path");
            return -1;
        }
    }
    memcpy(host, path, n + 1);
    *port = 0;
    return 0;
}

int
net_unix_addr(const char *path, struct sockaddr_storage *sa,
              socklen_t *salen)
{
    struct sockaddr_un *un = (void *)sa;
    size_t n = strlen(path);

    if (path[0] != '/' || n >= sizeof(un->sun_path)) {
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int
net_unix_listen(const char *path, unsigned mode, int backlog, char *err,
                size_t errlen)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    struct stat st;
    int fd;

    if (net_unix_addr(path, &sa, &salen) != 0) {
        snprintf(err, errlen, "listen %s: bad unix socket path", path);
        return -1;
    }
    /* A socket left by a process that is gone is removed; one that
     * answers is in use; anything else is not ours to remove. */
    if (lstat(path, &st) == 0) {
        int probe;

        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "listen %s: exists and is not a socket",
                     path);
            return -1;
        }
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 &&
            connect(probe, (const struct sockaddr *)&sa, salen) == 0) {
            close(probe);
            snprintf(err, errlen, "listen %s: in use by a running process",
                     path);
            return -1;
        }
        if (probe >= 0) {
            close(probe);
        }
        if (unlink(path) != 0) {
            snprintf(err, errlen, "listen %s: cannot remove the stale "
                                  "socket: %s",
                     path, strerror(errno));
            return -1;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen %s: socket: %s", path, strerror(errno));
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&sa, salen) != 0 ||
        chmod(path, (mode_t)mode) != 0 || listen(fd, backlog) != 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int
net_parse_port(const char *s, uint16_t *port, char *err, size_t errlen)
{
    uint64_t v;

    if (*s == '\0') {
        snprintf(err, errlen, "missing port");
        return -1;
    }
    if (util_parse_u64(s, strlen(s), &v) != 0) {
        snprintf(err, errlen, "bad port '%s' (expected 1..65535)", s);
        return -1;
    }
    if (v < 1 || v > 65535) {
        snprintf(err, errlen, "port %" PRIu64 " out of range 1..65535", v);
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

/* Zone (scope) of a link-local IPv6 address: "eth0", "2". */
static bool
net_zone_valid(const char *s, const char *end)
{
    if (s == end) {
        return false;
    }
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
            return false;
        }
    }
    return true;
}

int
net_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                      char *err, size_t errlen)
{
    const char *h;
    const char *colon;
    size_t n;

    if (strncmp(s, NET_UNIX_PREFIX, strlen(NET_UNIX_PREFIX)) == 0) {
        return net_parse_unix(s + strlen(NET_UNIX_PREFIX), host, hostlen,
                              port, err, errlen);
    }
    if (*s == '[') {
        char v6[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        const char *close = strchr(s, ']');
        const char *zone;
        size_t alen;

        h = s + 1;
        if (close == NULL) {
            snprintf(err, errlen, "missing ']' after IPv6 address");
            return -1;
        }
        n = (size_t)(close - h);
        if (n == 0) {
            snprintf(err, errlen, "empty host");
            return -1;
        }
        zone = memchr(h, '%', n);
        alen = zone != NULL ? (size_t)(zone - h) : n;
        if (alen >= sizeof(v6)) {
            snprintf(err, errlen, "bad IPv6 address in brackets");
            return -1;
        }
        memcpy(v6, h, alen);
        v6[alen] = '\0';
        if (inet_pton(AF_INET6, v6, &a6) != 1) {
            snprintf(err, errlen, "bad IPv6 address in brackets");
            return -1;
        }
        if (zone != NULL && !net_zone_valid(zone + 1, close)) {
            snprintf(err, errlen, "bad IPv6 zone");
            return -1;
        }
        if (close[1] == '\0') {
            snprintf(err, errlen, "missing port");
            return -1;
        }
        if (close[1] != ':') {
            snprintf(err, errlen, "expected ':' after ']'");
            return -1;
        }
        colon = close + 1;
    } else {
        h = s;
        colon = strrchr(s, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "missing port (HOST:PORT)");
            return -1;
        }
        n = (size_t)(colon - h);
        if (n == 0) {
            snprintf(err, errlen, "empty host");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)h[i];

            if (c == ':') {
                snprintf(err, errlen,
                         "IPv6 address must be in brackets, e.g. "
                         "[::1]:11211");
                return -1;
            }
            if (c == '[' || c == ']') {
                snprintf(err, errlen, "bad brackets");
                return -1;
            }
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
                snprintf(err, errlen, "bad character '%c' in host name", c);
                return -1;
            }
        }
    }
    if (net_parse_port(colon + 1, port, err, errlen) != 0) {
        return -1;
    }
    if (n >= hostlen) {
        snprintf(err, errlen, "host too long");
        return -1;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

/* "host:port", with IPv6 hosts in brackets; "unix:/path". */
int
net_format_hostport(const char *host, uint16_t port, char *buf,
                       size_t len)
{
    int n;

    if (host[0] == '/') {
        n = snprintf(buf, len, NET_UNIX_PREFIX "%s", host);
    } else if (strchr(host, ':') != NULL) {
        n = snprintf(buf, len, "[%s]:%u", host, (unsigned)port);
    } else {
        n = snprintf(buf, len, "%s:%u", host, (unsigned)port);
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
net_copy_out(struct evbuffer *from, size_t off, size_t len,
             struct evbuffer *to)
{
    struct evbuffer_ptr at;
    struct evbuffer_iovec v;

    if (evbuffer_ptr_set(from, &at, off, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_reserve_space(to, (ev_ssize_t)len, &v, 1) < 1 ||
        evbuffer_copyout_from(from, &at, v.iov_base, len) !=
            (ev_ssize_t)len) {
        return -1;
    }
    v.iov_len = len;
    return evbuffer_commit_space(to, &v, 1) == 0 ? 0 : -1;
}
