/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * net: the connection I/O core shared by every connection type (client,
 * backend, health): a socket with its buffers and events, one write
 * routine, reading into an evbuffer, framing lines in place, log lines
 * named after the connection; and addresses: HOST:PORT parsed and
 * printed, socket addresses compared and printed.
 */
#ifndef MCRING_NET_H
#define MCRING_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/event.h>

#include "log.h"

struct evbuffer;

/*
 * One socket with its buffers and events: what client, backend and health
 * connections share. ev_write is added only while `out` holds bytes the
 * socket did not take (or, by its owner, while a connect is in progress).
 * Log lines about it start with its name.
 */
struct net_conn {
    int fd;                         /* -1: no socket */
    struct evbuffer *in;            /* owned */
    struct evbuffer *out;           /* owned */
    struct event *ev_read;          /* NULL without a socket */
    struct event *ev_write;
    bool reading;                   /* ev_read is added */
    bool writing;                   /* ev_write is added */
    uint8_t tls_want;               /* what the TLS session waits for to
                                       go on writing (TLS_WANT_*) */
    bool tls_read_blocked;          /* a read waits for writability */
    size_t sent;                    /* bytes written, for the owner to
                                       count and reset */
    struct net_conn **read_queued;  /* its slot in a read batch
                                       (iobatch.h), or NULL */
    struct ssl_st *tls;             /* TLS session (owned), or NULL:
                                       plain */
    char name[128];                 /* "backend NAME (ADDR)", "client 7
                                       (PEER)" */
};

/* Buffers, no socket. Returns 0, or -1 (out of memory). */
int net_conn_init(struct net_conn *nc) __attribute__((warn_unused_result));
/* Closes the socket and frees the buffers. */
void net_conn_deinit(struct net_conn *nc);
/*
 * Takes socket fd, with its read and write events on base (not added; the
 * callbacks get arg). Returns 0, or -1 (out of memory: fd is not taken).
 */
int net_conn_attach(struct net_conn *nc, struct event_base *base, int fd,
                    event_callback_fn on_read, event_callback_fn on_write,
                    void *arg) __attribute__((warn_unused_result));
/* Frees the events and gives the socket back, open (not TLS). */
int net_conn_detach(struct net_conn *nc);
/* Speak TLS on the attached socket from now on (the session is taken:
 * tls_server_new() or tls_client_new()). */
void net_conn_tls(struct net_conn *nc, struct ssl_st *ssl);
/* Closes the socket, frees its events, forgets every byte either way. */
void net_conn_close(struct net_conn *nc);
/* Adds or deletes the read event. */
void net_conn_reading(struct net_conn *nc, bool on);
void net_conn_writing(struct net_conn *nc, bool on);
/*
 * Writes what the socket takes of `out` and arms ev_write for the rest (or
 * disarms it). Returns 0, or -1 with errno on an error that ends the
 * connection.
 */
int net_conn_write(struct net_conn *nc) __attribute__((warn_unused_result));
/* Reads what the socket has into `in`: see net_read(). */
ssize_t net_conn_read(struct net_conn *nc);
/* A log line "NAME: message" at level (enum log_level). */
void net_log(const struct net_conn *nc, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* net_log() for a line that can repeat (a connection that keeps failing, a
 * flood of bad clients): at most LOG_LIMIT_BURST a minute per call site
 * (see log_limited()). */
void net_log_held(struct log_limit *l, const struct net_conn *nc, int level,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define net_log_limited(nc, level, ...)                                      \
    do {                                                                     \
        static struct log_limit net_limit_;                                  \
        if (log_get_level() >= (int)(level)) {                               \
            net_log_held(&net_limit_, (nc), (level), __VA_ARGS__);           \
        }                                                                    \
    } while (0)

/*
 * Reads what the socket has (up to 64 KiB) into buf without an extra copy.
 * Returns bytes read, 0 at EOF, -1 with errno.
 */
ssize_t net_read(int fd, struct evbuffer *buf);

/*
 * The first chain of buf: *len bytes at the returned address (NULL and 0
 * when buf is empty). Valid until buf is changed.
 */
const char *net_head(struct evbuffer *buf, size_t *len);

/* Appends a copy of the len bytes at offset off of from to to (from is
 * left as it is). Returns 0, or -1 when from has fewer. */
int net_copy_out(struct evbuffer *from, size_t off, size_t len,
                 struct evbuffer *to);

/*
 * The first line of buf, made contiguous: returns its start, its length
 * without the terminator in *len and the terminator's ("\n" or "\r\n") in
 * *eollen; NULL if buf holds no complete line. Found in the first chain
 * with memchr in the common case; only a line that spans chains is pulled
 * up. Valid until buf is changed.
 */
const char *net_line(struct evbuffer *buf, size_t *len, size_t *eollen);

/*
 * The line from p to the '\n' at nl: its length without the terminator in
 * *len, the terminator's ("\n" or "\r\n") in *eollen.
 */
static inline void
net_eol(const char *p, const char *nl, size_t *len, size_t *eollen)
{
    *len = (size_t)(nl - p);
    *eollen = 1;
    if (*len > 0 && p[*len - 1] == '\r') {
        (*len)--;
        *eollen = 2;
    }
}

/* Whether a and b are the same address and port (IPv4, IPv6 with its
 * scope, else byte for byte). */
bool net_same_addr(const struct sockaddr_storage *a, socklen_t alen,
                   const struct sockaddr_storage *b, socklen_t blen);

/* "IP:PORT" ("[IPv6]:PORT") of sa in buf; returns buf. */
const char *net_addr_text(const struct sockaddr_storage *sa, socklen_t salen,
                          char *buf, size_t len);

/* A unix socket address as text: "unix:/path". As a host, the path alone
 * (it starts with '/'), with port 0. */
#define NET_UNIX_PREFIX "unix:"

/*
 * Splits "HOST:PORT", "[IPv6]:PORT" or "IPv6-free-host:PORT" into a host
 * (copied into host, at most hostlen bytes with the NUL) and a port 1..65535;
 * "unix:/path" into the path and port 0.
 * Returns 0, or -1 with a reason in err.
 */
int net_parse_hostport(const char *s, char *host, size_t hostlen,
                       uint16_t *port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* An absolute unix socket path that fits a sockaddr_un, copied into host
 * (port 0). Returns 0, or -1 with a reason in err. */
int net_parse_unix(const char *path, char *host, size_t hostlen,
                   uint16_t *port, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The sockaddr_un of path. Returns 0, or -1 if it is not one. */
int net_unix_addr(const char *path, struct sockaddr_storage *sa,
                  socklen_t *salen);
/*
 * A listening unix socket at path (nonblocking, close-on-exec) with that
 * mode: a stale socket there is replaced, a live one or another file is an
 * error. Returns the fd, or -1 with a message in err.
 */
int net_unix_listen(const char *path, unsigned mode, int backlog, char *err,
                    size_t errlen);

/* "host:port" into buf (len bytes), an IPv6 host in brackets, a unix
 * path as "unix:/path". Returns 0, or -1 when it does not fit. */
int net_format_hostport(const char *host, uint16_t port, char *buf,
                        size_t len);

#endif
