/* SPDX-License-Identifier: BSD-3-Clause */
/* tls: see tls.h. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "tls.h"

/* Bytes read from a session at once, and written in one record (a TLS
 * record holds at most 16 KB). */
#define TLS_READ_CHUNK 16384
#define TLS_WRITE_CHUNK 16384

static SSL_CTX *tls_server_ctx;
static SSL_CTX *tls_client_ctx;
/* Why the calling thread's last TLS call failed (tls_last_error()). */
static _Thread_local char tls_why[320];

const char *
tls_last_error(void)
{
    return tls_why[0] != '\0' ? tls_why : "TLS error";
}

/* OpenSSL's reasons, oldest first, as one line. */
static void
tls_errors(char *buf, size_t len)
{
    unsigned long e;
    size_t n = 0;

    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0 && n + 2 < len) {
        char one[256];

        ERR_error_string_n(e, one, sizeof(one));
        n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 0 ? "; " : "",
                              one);
    }
    if (buf[0] == '\0') {
        snprintf(buf, len, "no reason given");
    }
}

static int
tls_fail(const char *what, const char *file, char *err, size_t errlen)
{
    char why[512];

    tls_errors(why, sizeof(why));
    snprintf(err, errlen, "[tls] %s%s%s: %s", what, file != NULL ? " " : "",
             file != NULL ? file : "", why);
    return -1;
}

/* TLS 1.2 and later only, no renegotiation, no compression. */
static SSL_CTX *
tls_ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);

    if (ctx != NULL) {
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
                                     SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
        /* A peer that closes without close_notify (most memcached
         * clients) just closes. */
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
        /* Writes from an evbuffer chain: partial writes, and a retry may
         * come from a buffer that moved. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    }
    return ctx;
}

static int
tls_load_pair(SSL_CTX *ctx, const struct config *cfg, char *err,
              size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        return tls_fail("cert", cfg->tls_cert, err, errlen);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) !=
        1) {
        return tls_fail("key", cfg->tls_key, err, errlen);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return tls_fail("key does not match cert", NULL, err, errlen);
    }
    return 0;
}

static int
tls_load_ca(SSL_CTX *ctx, const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->tls_ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != 1) {
            return tls_fail("ca", cfg->tls_ca, err, errlen);
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return tls_fail("the system's CA certificates", NULL, err, errlen);
    }
    return 0;
}

int
tls_init(const struct config *cfg, char *err, size_t errlen)
{
    bool client = false;

    for (size_t i = 0; i < cfg->nbackends; i++) {
        client = client || cfg->backends[i].tls;
    }
    tls_shutdown();
    if (cfg->tls_listen != NULL) {
        tls_server_ctx = tls_ctx_new(TLS_server_method());
        if (tls_server_ctx == NULL) {
            return tls_fail("server context", NULL, err, errlen);
        }
        if (tls_load_pair(tls_server_ctx, cfg, err, errlen) != 0) {
            tls_shutdown();
            return -1;
        }
        if (cfg->tls_verify_clients) {
            if (tls_load_ca(tls_server_ctx, cfg, err, errlen) != 0) {
                tls_shutdown();
                return -1;
            }
            SSL_CTX_set_verify(tls_server_ctx,
                               SSL_VERIFY_PEER |
                                   SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               NULL);
        }
    }
    /* The client context is made when [tls] is there, even with no
     * tls=yes backend yet, so that a reload may add one (a failure only
     * matters if one has it); not at all without: loading the system's
     * CAs costs megabytes. */
    if (!client && cfg->tls_cert == NULL && cfg->tls_ca == NULL &&
        cfg->tls_listen == NULL && cfg->tls_verify_backends) {
        return 0;
    }
    tls_client_ctx = tls_ctx_new(TLS_client_method());
    if (tls_client_ctx == NULL) {
        tls_fail("client context", NULL, err, errlen);
    } else if ((cfg->tls_cert != NULL &&
                tls_load_pair(tls_client_ctx, cfg, err, errlen) != 0) ||
               (cfg->tls_verify_backends &&
                tls_load_ca(tls_client_ctx, cfg, err, errlen) != 0)) {
        /* (A client certificate for backends that ask for one.) */
        SSL_CTX_free(tls_client_ctx);
        tls_client_ctx = NULL;
    } else if (cfg->tls_verify_backends) {
        SSL_CTX_set_verify(tls_client_ctx, SSL_VERIFY_PEER, NULL);
    }
    if (tls_client_ctx == NULL) {
        if (client) {
            tls_shutdown();
            return -1;
        }
        log_warn("%s: backends with tls=yes cannot be added", err);
    }
    return 0;
}

void
tls_shutdown(void)
{
    SSL_CTX_free(tls_server_ctx);
    SSL_CTX_free(tls_client_ctx);
    tls_server_ctx = tls_client_ctx = NULL;
}

bool
tls_have_client(void)
{
    return tls_client_ctx != NULL;
}

static SSL *
tls_new(SSL_CTX *ctx, int fd)
{
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        char why[512];

        tls_errors(why, sizeof(why));
        log_limited_at(LOG_LEVEL_WARN, "TLS: cannot start a session: %s",
                       ctx == NULL ? "no TLS configured" : why);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

SSL *
tls_server_new(int fd)
{
    SSL *ssl = tls_new(tls_server_ctx, fd);

    if (ssl != NULL) {
        SSL_set_accept_state(ssl);
    }
    return ssl;
}

SSL *
tls_client_new(int fd, const char *host)
{
    SSL *ssl = tls_new(tls_client_ctx, fd);
    unsigned char ip[16];

    if (ssl == NULL) {
        return NULL;
    }
    SSL_set_connect_state(ssl);
    if (host != NULL && host[0] != '/') {
        bool numeric = inet_pton(AF_INET, host, ip) == 1 ||
                       inet_pton(AF_INET6, host, ip) == 1;

        /* The certificate must name the host (an IP address SAN for an
         * address); a name also goes out as SNI. */
        if (numeric) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
        } else {
            SSL_set_tlsext_host_name(ssl, host);
            SSL_set1_host(ssl, host);
        }
    }
    return ssl;
}

void
tls_free(SSL *ssl)
{
    if (ssl != NULL) {
        /* One close_notify, not waited for. */
        if (SSL_is_init_finished(ssl)) {
            (void)SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        ERR_clear_error();
    }
}

/* What an SSL_ call's result means: 0 (go on: want set), or -1. */
static int
tls_result(SSL *ssl, int rc, int *want, const char *what)
{
    int e = SSL_get_error(ssl, rc);
    char why[512];

    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = TLS_WANT_READ;
        errno = EAGAIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *want = TLS_WANT_WRITE;
        errno = EAGAIN;
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EINTR) {
            *want = TLS_WANT_READ;
            errno = EAGAIN;
            return 0;
        }
        tls_errors(why, sizeof(why));
        log_debug("TLS %s: %s (%s)", what, errno != 0 ? strerror(errno)
                                                       : "connection closed",
                  why);
        if (errno == 0) {
            errno = ECONNRESET;
        }
        return -1;
    default:
        tls_errors(why, sizeof(why));
        snprintf(tls_why, sizeof(tls_why), "TLS %s: %.200s%s%.80s", what, why,
                 SSL_get_verify_result(ssl) != X509_V_OK ? "; certificate: "
                                                         : "",
                 SSL_get_verify_result(ssl) != X509_V_OK
                     ? X509_verify_cert_error_string(
                           SSL_get_verify_result(ssl))
                     : "");
        log_limited_at(LOG_LEVEL_INFO, "%s", tls_why);
        errno = EPROTO;
        return -1;
    }
}

ssize_t
tls_read(SSL *ssl, struct evbuffer *in, int *want)
{
    ssize_t total = 0;

    *want = 0;
    for (;;) {
        struct evbuffer_iovec v;
        size_t got = 0;
        int rc;

        if (evbuffer_reserve_space(in, TLS_READ_CHUNK, &v, 1) < 1) {
            errno = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        rc = SSL_read_ex(ssl, v.iov_base, v.iov_len, &got);
        v.iov_len = rc == 1 ? got : 0;
        evbuffer_commit_space(in, &v, 1);
        if (rc == 1) {
            total += (ssize_t)got;
            continue;
        }
        if (SSL_get_error(ssl, rc) == SSL_ERROR_ZERO_RETURN) {
            /* close_notify: the end, after what came before it. */
            return total;
        }
        if (tls_result(ssl, rc, want, "read") != 0) {
            return total > 0 ? total : -1;
        }
        if (total > 0) {
            return total;
        }
        errno = EAGAIN;
        return -1;
    }
}

int
tls_write(SSL *ssl, struct evbuffer *out, int *want)
{
    *want = 0;
    while (evbuffer_get_length(out) > 0) {
        /* Up to one full record at a time: replies are many small chains,
         * and a record each would cost a header, a MAC and a write() each.
         * (A retry after WANT_WRITE asks for at least as much as before:
         * out only grows until a write goes through.) */
        size_t len = evbuffer_get_length(out);
        size_t n = len < TLS_WRITE_CHUNK ? len : TLS_WRITE_CHUNK;
        const unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)n);
        size_t sent = 0;
        int rc;

        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        ERR_clear_error();
        rc = SSL_write_ex(ssl, p, n, &sent);
        if (rc == 1) {
            evbuffer_drain(out, sent);
            continue;
        }
        return tls_result(ssl, rc, want, "write");
    }
    if (!SSL_is_init_finished(ssl)) {
        /* Nothing to send yet: the handshake still goes on. */
        int rc;

        ERR_clear_error();
        rc = SSL_do_handshake(ssl);
        if (rc != 1) {
            return tls_result(ssl, rc, want, "handshake");
        }
    }
    return 0;
}
