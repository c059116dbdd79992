/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log: formatted diagnostics to stderr or syslog.
 *
 * The level is the only process-wide mutable state in mcring; it is an
 * atomic so that any thread may read or change it without a lock. Each line
 * is formatted into one buffer and written with a single write() so lines
 * from different threads do not interleave.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

static atomic_int log_level = LOG_LEVEL_NOTICE;
static atomic_bool log_syslog = false;
/* Where lines go when not to syslog: stderr, or the -o file (which keeps
 * its descriptor number: a reopen dup2()s the new file onto it). */
static atomic_int log_fd = STDERR_FILENO;
static char *log_path;

static const char *const log_names[] = {
    "ERROR", "WARN", "NOTICE", "INFO", "DEBUG",
};

void
log_set_level(int level)
{
    if (level < LOG_LEVEL_ERROR) {
        level = LOG_LEVEL_ERROR;
    }
    if (level > LOG_LEVEL_DEBUG) {
        level = LOG_LEVEL_DEBUG;
    }
    atomic_store(&log_level, level);
}

int
log_get_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

void
log_use_syslog(bool on)
{
    if (on) {
        openlog("mcring", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
    atomic_store(&log_syslog, on);
}

int
log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0) {
        return -1;
    }
    free(log_path);
    log_path = strdup(path);
    if (log_path == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    atomic_store(&log_fd, fd);
    atomic_store(&log_syslog, false);
    return 0;
}

bool
log_has_file(void)
{
    return log_path != NULL;
}

int
log_reopen(void)
{
    int fd;

    if (log_path == NULL) {
        return 0;
    }
    fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -1;
    }
    if (dup3(fd, atomic_load(&log_fd), O_CLOEXEC) < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

void
log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
    struct timespec ts;
    long long now, start;
    char msg[900];
    va_list ap;
    unsigned held;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (long long)ts.tv_sec;
    start = atomic_load(&l->window);
    if (now - start >= LOG_LIMIT_WINDOW_S &&
        atomic_compare_exchange_strong(&l->window, &start, now)) {
        atomic_store(&l->lines, 0);
    }
    if (atomic_fetch_add(&l->lines, 1) >= LOG_LIMIT_BURST) {
        atomic_fetch_add(&l->held, 1);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    held = atomic_exchange(&l->held, 0);
    if (held > 0) {
        log_msg(level, "%s (and %u more like it held back before)", msg,
                held);
    } else {
        log_msg(level, "%s", msg);
    }
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    static const int prio[] = {
        LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG,
    };
    char buf[1024];
    size_t n = 0;
    va_list ap;

    if ((int)level > log_get_level()) {
        return;
    }
    if (!atomic_load(&log_syslog)) {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        n = strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ld %s ",
                              ts.tv_nsec / 1000000L, log_names[level]);
    }
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    n += (size_t)m;
    if (n > sizeof(buf) - 2) {
        n = sizeof(buf) - 2;
    }
    if (atomic_load(&log_syslog)) {
        buf[n] = '\0';
        syslog(prio[level], "%s", buf);
        return;
    }
    buf[n++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), buf, n);
    (void)w;
}

static void
log_libevent_cb(int severity, const char *msg)
{
    switch (severity) {
    case EVENT_LOG_DEBUG:
        log_debug("libevent: %s", msg);
        break;
    case EVENT_LOG_MSG:
        log_info("libevent: %s", msg);
        break;
    case EVENT_LOG_WARN:
        log_warn("libevent: %s", msg);
        break;
    default:
        log_error("libevent: %s", msg);
        break;
    }
}

void
log_hook_libevent(void)
{
    event_set_log_callback(log_libevent_cb);
}
