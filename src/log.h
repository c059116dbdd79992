/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * log: the one way mcring writes diagnostics.
 *
 * Lines go to stderr, a file (-o; SIGUSR1 reopens it) or syslog once
 * daemonised without one, as "TIME LEVEL message". The level is
 * process-wide and atomic, because the `verbosity` command may change it
 * from any worker thread.
 */
#ifndef MCRING_LOG_H
#define MCRING_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

void log_set_level(int level);
int log_get_level(void);
/* Send further lines to syslog (daemon facility) instead of stderr. */
void log_use_syslog(bool on);
/* Send further lines to the file at path (appended to, created 0640).
 * Returns 0, or -1 with errno. */
int log_open_file(const char *path);
/* Whether lines go to a file (log_open_file()). */
bool log_has_file(void);
/* Opens the file again, by its path (after logrotate moved it): lines
 * written meanwhile go to the old one or the new one, never elsewhere.
 * Returns 0 (also when there is no file), or -1 with errno: the old one is
 * kept. */
int log_reopen(void);
/* Route libevent's own messages through log_msg(). */
void log_hook_libevent(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A message that can repeat (once per request, per probe): at most
 * LOG_LIMIT_BURST lines per LOG_LIMIT_WINDOW_S seconds from its call site;
 * the next line after a window with lines held back says how many.
 */
#define LOG_LIMIT_BURST 10
#define LOG_LIMIT_WINDOW_S 60
struct log_limit {
    _Atomic long long window;       /* its start, seconds (monotonic) */
    _Atomic unsigned lines;         /* in that window */
    _Atomic unsigned held;          /* held back */
};
void log_limited(struct log_limit *l, enum log_level level, const char *fmt,
                 ...) __attribute__((format(printf, 3, 4)));
#define log_limited_at(level, ...)                                           \
    do {                                                                     \
        static struct log_limit log_limit_;                                  \
        if (log_get_level() >= (int)(level)) {                               \
            log_limited(&log_limit_, (level), __VA_ARGS__);                  \
        }                                                                    \
    } while (0)

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                       \
    do {                                                                     \
        if (log_get_level() >= LOG_LEVEL_DEBUG) {                            \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                           \
        }                                                                    \
    } while (0)

#endif
