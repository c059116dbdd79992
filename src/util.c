/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * util: allocation wrappers for start-up code, strict number parsing,
 * clocks.
 */
#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

void *
util_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        fprintf(stderr, "mcring: out of memory\n");
        abort();
    }
    return p;
}

void *
util_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "mcring: out of memory\n");
        abort();
    }
    return p;
}

void *
util_xrealloc(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        fprintf(stderr, "mcring: out of memory\n");
        abort();
    }
    p = realloc(p, n * size != 0 ? n * size : 1);
    if (p == NULL) {
        fprintf(stderr, "mcring: out of memory\n");
        abort();
    }
    return p;
}

char *
util_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = util_xmalloc(n);

    memcpy(p, s, n);
    return p;
}

int
util_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (d > 9) {
            return -1;
        }
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int
util_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *out = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

int
util_parse_i64(const char *s, size_t len, int64_t *out)
{
    bool neg = false;
    uint64_t v;

    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (util_parse_u64(s, len, &v) != 0) {
        return -1;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return -1;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return -1;
        }
        *out = (int64_t)v;
    }
    return 0;
}

int
util_connect_nonblock(const struct sockaddr_storage *addr, unsigned addrlen)
{
    int one = 1;
    int fd = socket(addr->ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)addr, (socklen_t)addrlen) != 0 &&
        errno != EINPROGRESS) {
        int err = errno;

        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

uint64_t
util_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned
util_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : (unsigned)n;
}
