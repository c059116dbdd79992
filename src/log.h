/*
 * log: the one way mcring writes diagnostics.
 *
 * Lines go to stderr (or syslog once daemonised) as
 * "TIME LEVEL message". The level is process-wide and atomic, because the
 * `verbosity` command may change it from any worker thread.
 */
#ifndef MCRING_LOG_H
#define MCRING_LOG_H

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
/* Route libevent's own messages through log_msg(). */
void log_hook_libevent(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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
