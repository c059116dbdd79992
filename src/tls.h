/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tls: TLS on mcring's sockets, with OpenSSL: one server context (the
 * [tls] certificate and key, for the TLS client listener) and one client
 * context (for backends with tls=yes, verifying their certificates against
 * [tls] ca, else the system's CAs), made once at start and read-only after,
 * so that every worker makes its connections from them.
 *
 * A connection's reads and writes go through tls_read() and tls_write()
 * (net.c), which never block: each says what the TLS layer waits for
 * (TLS_WANT_READ, TLS_WANT_WRITE) when it cannot go on, whatever the call
 * was (a handshake, a renegotiation or a key update may need either).
 */
#ifndef MCRING_TLS_H
#define MCRING_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;
struct evbuffer;
struct ssl_st;

enum {
    TLS_WANT_READ = 1,
    TLS_WANT_WRITE = 2,
};

/*
 * Makes the contexts: the server one when [tls] listen is set, the client
 * one when [tls] has a key or a backend has tls=yes (then a reload may add
 * more such backends; it can fail only if a backend has tls=yes now). Returns 0, or -1 with a message in err
 * (a file that cannot be read, a key that does not match). [tls] is read
 * at start only.
 */
int tls_init(const struct config *cfg, char *err, size_t errlen);
/* Frees the contexts (after the last connection). */
void tls_shutdown(void);
/* Whether the client context exists (a backend with tls=yes is allowed). */
bool tls_have_client(void);

/* A TLS session on fd: the server side of a client connection, or the
 * client side towards a backend (host: what its certificate must name, an
 * address or a host name; NULL: a unix socket, no name checked). NULL on
 * failure (logged). */
struct ssl_st *tls_server_new(int fd);
struct ssl_st *tls_client_new(int fd, const char *host);
void tls_free(struct ssl_st *ssl);
/* Why the calling thread's last TLS read or write failed with EPROTO. */
const char *tls_last_error(void);

/*
 * Decrypts what has come into in. Returns the bytes added (> 0), 0 at the
 * peer's end (a close_notify or a plain close), or -1: errno EAGAIN with
 * *want set, else an error (errno EPROTO, logged at debug level with
 * OpenSSL's reason).
 */
ssize_t tls_read(struct ssl_st *ssl, struct evbuffer *in, int *want);
/* Encrypts and sends what it can of out (drained by what went). Returns
 * 0 (*want set when it stopped early), or -1 on an error. */
int tls_write(struct ssl_st *ssl, struct evbuffer *out, int *want);

#endif
