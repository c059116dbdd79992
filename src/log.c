/*
 * log: formatted diagnostics to stderr or syslog.
 *
 * The level is the only process-wide mutable state in mcring; it is an
 * atomic so that any thread may read or change it without a lock. Each line
 * is formatted into one buffer and written with a single write() so lines
 * from different threads do not interleave.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

static atomic_int log_level = LOG_LEVEL_NOTICE;
static atomic_bool log_syslog = false;

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
    ssize_t w = write(STDERR_FILENO, buf, n);
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
