/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * util: small helpers shared by several modules.
 */
#ifndef MCRING_UTIL_H
#define MCRING_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal. */
#define UTIL_STR_(x) #x
#define UTIL_STR(x) UTIL_STR_(x)

/* malloc/calloc/strdup that abort on failure. */
void *util_xmalloc(size_t n);
void *util_xcalloc(size_t nmemb, size_t size);
/* realloc of n elements of size bytes that aborts on failure. */
void *util_xrealloc(void *p, size_t n, size_t size);
char *util_xstrdup(const char *s);

/*
 * Strict decimal parsers: the whole of s[0..len) must be the number, no
 * sign unless stated, no spaces. Return 0 and set *out, or -1.
 */
int util_parse_u64(const char *s, size_t len, uint64_t *out);
int util_parse_i64(const char *s, size_t len, int64_t *out);   /* sign ok */
/* yes/no, true/false, on/off, 1/0 (as a config value). Returns 0 and sets
 * *out, or -1. */
int util_parse_bool(const char *s, bool *out);

struct sockaddr_storage;

/*
 * Starts a non-blocking TCP connect (TCP_NODELAY, close-on-exec) to addr.
 * Returns the socket, connected or still connecting (writability tells),
 * or -1 with errno set; the caller owns the socket.
 */
int util_connect_nonblock(const struct sockaddr_storage *addr,
                          unsigned addrlen);

/* Monotonic clock in nanoseconds. */
uint64_t util_now_ns(void);

/* Number of online CPUs, at least 1. */
unsigned util_online_cpus(void);

#endif
