/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config: reads and validates the INI configuration file.
 *
 *   file --config_reader()--> one line at a time --> inih (sections,
 *   comments, syntax) --config_handler()--> key table / backend list
 *
 * inih (the Debian 12 system library, release 55) is fed through
 * ini_parse_stream() with our own reader, because the library has two traps
 * that would otherwise silently change the meaning of a file:
 *
 *   - a line longer than 199 bytes is split in two and the tail parsed as a
 *     line of its own: the reader refuses any line over CONFIG_LINE_MAX;
 *   - an indented line after a key is appended to that key as a multi-line
 *     value: the reader refuses every indented line that is not blank or a
 *     comment.
 *
 * The reader also sees section headers (inih does not report them) so that
 * an empty unknown section is an error and "no backends" can point at the
 * [backends] line. Line numbers are counted by the reader, which hands inih
 * exactly one line per call, so they agree with the line numbers inih
 * returns for its own syntax errors.
 *
 * The handler re-splits the current line at its first '=' instead of using
 * inih's name: inih also splits at ':', which backend names may contain.
 *
 * [admin] has two string keys of its own (listen, token) outside the key
 * table, so that `stats settings`, which renders from the table, never shows
 * the token. A non-loopback TCP listen needs a token; that is checked once
 * the whole file is read, at the listen line.
 *
 * After loading, the admin API edits copies (config_clone()) through
 * config_add_backend_str(), config_remove_backend() and config_set_weight(),
 * which share the [backends] line's checks (config_check_name(),
 * config_check_addr(), config_check_weight()) so that the API accepts
 * exactly what the file does, and config_render() writes any config back as
 * a file that loads equal.
 *
 * Invariants: the first error wins; once it is recorded the reader ends the
 * stream and the handler ignores everything. A config returned by
 * config_load() has every backend name and address unique (textually; see
 * config_resolve() for resolved addresses) and its backends sorted by name.
 * Adding a [proxy] or [health] key takes one line in config_keys[] and a
 * field in struct config.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "net.h"
#include "util.h"

#define CONFIG_DEFAULT_LISTEN_HOST "127.0.0.1"
#define CONFIG_DEFAULT_LISTEN_PORT 11311

enum config_type {
    CONFIG_TYPE_UINT,   /* unsigned, decimal, [min, max] */
    CONFIG_TYPE_SIZE,   /* size_t, decimal bytes, [min, max] */
    CONFIG_TYPE_HASH,   /* enum ring_hash: xxh3 | ketama */
    CONFIG_TYPE_LISTEN, /* listen_host + listen_port: HOST:PORT */
    CONFIG_TYPE_TAG,    /* char[3]: two characters, or empty */
    CONFIG_TYPE_NAME,   /* char[CONFIG_NAME_MAX + 1]: a name, or empty */
    CONFIG_TYPE_MODE,   /* unsigned, octal file mode, [min, max] */
    CONFIG_TYPE_BOOL,   /* bool: yes | no (also on/off, true/false, 1/0) */
    CONFIG_TYPE_SHARE,  /* double, a decimal in [0, 1]; def in millionths */
    CONFIG_TYPE_PATH,   /* char *: an absolute file name, or NULL (empty) */
};

/* One [proxy] or [health] key: where it lives in struct config. */
struct config_key {
    const char *section;
    const char *name;
    enum config_type type;
    size_t offset; /* of the field in struct config */
    uint64_t def;  /* default (numbers and enums) */
    uint64_t min;
    uint64_t max;
};

#define CONFIG_OFF(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
    {"proxy", "listen", CONFIG_TYPE_LISTEN, 0, 0, 0, 0},
    {"proxy", "listen_mode", CONFIG_TYPE_MODE, CONFIG_OFF(listen_mode), 0660,
     0, 0777},
    {"proxy", "threads", CONFIG_TYPE_UINT, CONFIG_OFF(threads), 0, 0, 256},
    {"proxy", "io_uring", CONFIG_TYPE_BOOL, CONFIG_OFF(io_uring), 1, 0, 1},
    {"proxy", "hash", CONFIG_TYPE_HASH, CONFIG_OFF(hash), RING_HASH_XXH3, 0, 0},
    {"proxy", "hash_tag", CONFIG_TYPE_TAG, CONFIG_OFF(hash_tag), 0, 0, 0},
    {"proxy", "region", CONFIG_TYPE_NAME, CONFIG_OFF(region), 0, 0, 0},
    {"proxy", "vnodes", CONFIG_TYPE_UINT, CONFIG_OFF(vnodes),
     RING_DEFAULT_VNODES, 1, 10000},
    {"proxy", "timeout_ms", CONFIG_TYPE_UINT, CONFIG_OFF(timeout_ms), 1000, 1,
     600000},
    {"proxy", "connect_timeout_ms", CONFIG_TYPE_UINT,
     CONFIG_OFF(connect_timeout_ms), 500, 1, 60000},
    {"proxy", "backend_connections", CONFIG_TYPE_UINT,
     CONFIG_OFF(backend_connections), 1, 1, 64},
    {"proxy", "max_connections", CONFIG_TYPE_UINT, CONFIG_OFF(max_connections),
     0, 0, 1000000},
    {"proxy", "backend_queue_limit", CONFIG_TYPE_UINT,
     CONFIG_OFF(backend_queue_limit), 8192, 1, 1000000},
    {"proxy", "client_idle_timeout", CONFIG_TYPE_UINT,
     CONFIG_OFF(client_idle_timeout), 0, 0, 2592000},
    {"proxy", "max_value_size", CONFIG_TYPE_SIZE, CONFIG_OFF(max_value_size),
     1048576, 1, 1073741824},
    {"proxy", "max_keys", CONFIG_TYPE_UINT, CONFIG_OFF(max_keys), 1024, 1,
     100000},
    {"proxy", "client_output_limit", CONFIG_TYPE_SIZE,
     CONFIG_OFF(client_output_limit), 4194304, 4096, 1073741824},
    {"proxy", "max_memory", CONFIG_TYPE_SIZE, CONFIG_OFF(max_memory),
     1073741824, 0, 1099511627776ULL},
    {"proxy", "ramp", CONFIG_TYPE_UINT, CONFIG_OFF(ramp), 0, 0,
     CONFIG_RAMP_MAX},
    {"proxy", "warmup", CONFIG_TYPE_UINT, CONFIG_OFF(warmup), 60, 0,
     CONFIG_RAMP_MAX},
    {"proxy", "migrate_rate", CONFIG_TYPE_UINT, CONFIG_OFF(migrate_rate), 5000,
     0, 1000000},
    {"proxy", "rebalance_max_move", CONFIG_TYPE_UINT,
     CONFIG_OFF(rebalance_max_move), 10, 1, 100},
    {"proxy", "hotkeys", CONFIG_TYPE_UINT, CONFIG_OFF(hotkeys), 32, 0, 1000},
    {"proxy", "hotkey_sample", CONFIG_TYPE_UINT, CONFIG_OFF(hotkey_sample), 100,
     1, 1000000},
    {"proxy", "hotkey_alert", CONFIG_TYPE_UINT, CONFIG_OFF(hotkey_alert), 0, 0,
     100},
    {"proxy", "big_value_split", CONFIG_TYPE_SIZE,
     CONFIG_OFF(big_value_split), 0, 0, 1073741824},
    {"proxy", "l1", CONFIG_TYPE_SIZE, CONFIG_OFF(l1), 0, 0, 1073741824},
    {"proxy", "l1_ttl", CONFIG_TYPE_UINT, CONFIG_OFF(l1_ttl), 100, 1, 60000},
    {"proxy", "client_rate", CONFIG_TYPE_UINT, CONFIG_OFF(client_rate), 0, 0,
     100000000},
    {"proxy", "client_burst", CONFIG_TYPE_UINT, CONFIG_OFF(client_burst), 0,
     0, 100000000},
    {"proxy", "delete_spool", CONFIG_TYPE_PATH, CONFIG_OFF(delete_spool), 0, 0,
     0},
    {"proxy", "delete_spool_max", CONFIG_TYPE_UINT,
     CONFIG_OFF(delete_spool_max), 100000, 1, 10000000},
    {"health", "interval_ms", CONFIG_TYPE_UINT, CONFIG_OFF(health_interval_ms),
     200, 10, 60000},
    {"health", "timeout_ms", CONFIG_TYPE_UINT, CONFIG_OFF(health_timeout_ms),
     300, 1, 60000},
    {"health", "rise", CONFIG_TYPE_UINT, CONFIG_OFF(health_rise), 3, 1, 100},
    {"health", "fall", CONFIG_TYPE_UINT, CONFIG_OFF(health_fall), 2, 1, 100},
    {"health", "recovery_log", CONFIG_TYPE_UINT, CONFIG_OFF(recovery_log),
     100000, 0, 10000000},
    {"health", "failover_ttl", CONFIG_TYPE_UINT, CONFIG_OFF(failover_ttl), 300,
     0, 2592000},
    {"health", "failover_limit", CONFIG_TYPE_SHARE, CONFIG_OFF(failover_limit),
     1000000, 0, 1000000},
};

#define CONFIG_NKEYS UTIL_ARRAY_SIZE(config_keys)


static const char *const config_hash_names[] = {
    [RING_HASH_XXH3] = "xxh3",
    [RING_HASH_KETAMA] = "ketama",
};

/* State of one config_load(); the reader's and the handler's user data. */
struct config_parser {
    const char *path;
    FILE *fp;
    struct config *cfg; /* being filled; owned by config_load() */
    int line;           /* lines handed to inih so far */
    bool eof;
    char raw[CONFIG_LINE_MAX + 2]; /* current line, no EOL, no BOM */
    int err_line;                  /* first error's line; 0 = none yet */
    bool failed;                   /* an error is in err */
    char *err;
    size_t errlen;
    int key_line[CONFIG_NKEYS]; /* where each key was set; 0 = not yet */
    int backends_line;          /* first [backends] header */
    int admin_listen_line;      /* where [admin] listen was set */
    int admin_token_line;
    int admin_metrics_line;
    int tls_line[6];            /* where each [tls] key was set */
    size_t backends_cap;
};

static bool
config_isspace(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

static char *
config_lskip(char *s)
{
    while (*s != '\0' && config_isspace((unsigned char)*s)) {
        s++;
    }
    return s;
}

static void
config_rstrip(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && config_isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
}

/*
 * The first char of s in chars, or the start of an inline comment (';'
 * after whitespace), or the terminating NUL: inih's own rule, so that we
 * split a line exactly where inih does.
 */
static char *
config_find_chars_or_comment(char *s, const char *chars)
{
    bool was_space = false;

    while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
           !(was_space && *s == ';')) {
        was_space = config_isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Records the first error, "FILE:LINE: message". */
static void config_fail(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_fail(struct config_parser *p, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->failed) {
        return;
    }
    p->failed = true;
    p->err_line = line;
    n = snprintf(p->err, p->errlen, "%s:%d: ", p->path, line);
    if (n < 0 || (size_t)n >= p->errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static const char *
config_section_known(const char *name)
{
    static const char *const sections[] = {"proxy", "health", "admin",
                                           "tls", "backends", "routes"};

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sections); i++) {
        if (strcmp(name, sections[i]) == 0) {
            return sections[i];
        }
    }
    return NULL;
}

/* Checks a "[section]" line (raw, unindented) before inih sees it. */
static void
config_check_section(struct config_parser *p, char *line)
{
    char *end = config_find_chars_or_comment(line + 1, "]");
    char *rest;

    if (*end != ']') {
        return; /* inih reports the missing ']' as a syntax error */
    }
    *end = '\0';
    rest = config_lskip(end + 1);
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        config_fail(p, p->line, "unexpected text after [%s]", line + 1);
    } else if (strncmp(line + 1, "pool", 4) == 0 &&
               config_isspace((unsigned char)line[5])) {
        /* Created here, so that an empty one is seen (and refused). */
        char reason[256];
        char *name = config_lskip(line + 6);

        config_rstrip(name);
        if (strcmp(name, CONFIG_DEFAULT_POOL) == 0 && p->backends_line > 0) {
            config_fail(p, p->line,
                        "[pool default] is [backends] (line %d): use one of "
                        "them",
                        p->backends_line);
        } else if (config_add_pool(p->cfg, name, p->line, reason,
                                   sizeof(reason)) == NULL) {
            config_fail(p, p->line, "%s", reason);
        }
    } else if (config_section_known(line + 1) == NULL) {
        config_fail(p, p->line,
                    "unknown section [%s] (expected [proxy], [health], "
                    "[admin], [backends], [pool NAME] or [routes])",
                    line + 1);
    } else if (strcmp(line + 1, "backends") == 0 && p->backends_line == 0) {
        char reason[256];

        p->backends_line = p->line;
        if (config_add_pool(p->cfg, CONFIG_DEFAULT_POOL, p->line, reason,
                            sizeof(reason)) == NULL) {
            config_fail(p, p->line, "%s (it is [pool default])", reason);
        }
    }
    *end = ']';
}

/*
 * The ini_reader: hands inih one line per call (without its end of line, so
 * that a line of CONFIG_LINE_MAX bytes fits inih's 200-byte buffer), or
 * NULL at the end of the file or once an error is recorded.
 */
static char *
config_reader(char *str, int num, void *stream)
{
    struct config_parser *p = stream;
    size_t max = CONFIG_LINE_MAX;
    size_t len = 0;
    bool nul = false;
    bool toolong = false;
    int c = EOF;

    if (p->failed || p->eof) {
        return NULL;
    }
    if (num > 0 && (size_t)num - 1 < max) {
        max = (size_t)num - 1;
    }
    /* Keep one byte more than max for a '\r' before the '\n'. */
    while ((c = getc(p->fp)) != EOF && c != '\n') {
        if (len > max) {
            toolong = true;
            break;
        }
        if (c == '\0') {
            nul = true;
        }
        p->raw[len++] = (char)c;
    }
    if (c == EOF) {
        p->eof = true;
        if (ferror(p->fp)) {
            config_fail(p, p->line + 1, "read error: %s", strerror(errno));
            return NULL;
        }
        if (len == 0) {
            return NULL;
        }
    }
    p->line++;
    if (!toolong && len > 0 && p->raw[len - 1] == '\r') {
        len--;
    }
    if (toolong || len > max) {
        config_fail(p, p->line, "line too long (max %zu bytes)", max);
        return NULL;
    }
    if (nul) {
        config_fail(p, p->line, "NUL byte in line");
        return NULL;
    }
    p->raw[len] = '\0';
    if (p->line == 1 && len >= 3 && memcmp(p->raw, "\xEF\xBB\xBF", 3) == 0) {
        memmove(p->raw, p->raw + 3, len - 2);
        len -= 3;
        if (len >= 3 && memcmp(p->raw, "\xEF\xBB\xBF", 3) == 0) {
            /* inih would strip this one too, and read a line this reader
             * did not check. */
            config_fail(p, p->line, "a second byte-order mark");
            return NULL;
        }
    }
    if (config_isspace((unsigned char)p->raw[0])) {
        char *s = config_lskip(p->raw);

        if (*s != '\0' && *s != ';' && *s != '#') {
            config_fail(p, p->line,
                        "indented line (inih would append it to the "
                        "previous value; remove the leading whitespace)");
            return NULL;
        }
    } else if (p->raw[0] == '[') {
        config_check_section(p, p->raw);
        if (p->failed) {
            return NULL;
        }
    }
    memcpy(str, p->raw, len + 1);
    return str;
}

static int
config_set_number(struct config_parser *p, const struct config_key *k,
                  const char *value)
{
    char *field = (char *)p->cfg + k->offset;
    uint64_t v;

    if (util_parse_u64(value, strlen(value), &v) != 0) {
        config_fail(p, p->line,
                    "%s: bad number '%s' (expected an integer in "
                    "%" PRIu64 "..%" PRIu64 ")",
                    k->name, value, k->min, k->max);
        return -1;
    }
    if (v < k->min || v > k->max) {
        config_fail(p, p->line,
                    "%s: %" PRIu64 " out of range %" PRIu64 "..%" PRIu64,
                    k->name, v, k->min, k->max);
        return -1;
    }
    if (k->type == CONFIG_TYPE_SIZE) {
        *(size_t *)(void *)field = (size_t)v;
    } else {
        *(unsigned *)(void *)field = (unsigned)v;
    }
    return 0;
}

static int
config_set_key(struct config_parser *p, const struct config_key *k,
               const char *value)
{
    struct config *cfg = p->cfg;
    char host[CONFIG_LINE_MAX + 1];
    char reason[128];
    uint16_t port;

    switch (k->type) {
    case CONFIG_TYPE_UINT:
    case CONFIG_TYPE_SIZE:
        return config_set_number(p, k, value);
    case CONFIG_TYPE_SHARE: {
        double v;

        if (config_parse_decimal(value, &v) != 0 || v > 1.0) {
            config_fail(p, p->line,
                        "%s: bad share '%s' (expected a decimal from 0 to 1, "
                        "such as 0.5)",
                        k->name, value);
            return -1;
        }
        *(double *)(void *)(((char *)cfg) + k->offset) = v;
        return 0;
    }
    case CONFIG_TYPE_BOOL:
        if (util_parse_bool(value, (bool *)(void *)(((char *)cfg) +
                                                     k->offset)) != 0) {
            config_fail(p, p->line, "%s: expected yes or no, got '%s'",
                        k->name, value);
            return -1;
        }
        return 0;
    case CONFIG_TYPE_MODE: {
        unsigned long v = 0;
        size_t n = strlen(value);

        for (size_t i = 0; i < n && n <= 4; i++) {
            v = v * 8 + (unsigned long)(value[i] - '0');
        }
        if (n == 0 || n > 4 || strspn(value, "01234567") != n ||
            v > k->max) {
            config_fail(p, p->line, "%s: bad mode '%s' (expected octal, "
                                    "such as 0660)",
                        k->name, value);
            return -1;
        }
        *(unsigned *)(void *)(((char *)cfg) + k->offset) = (unsigned)v;
        return 0;
    }
    case CONFIG_TYPE_HASH:
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(config_hash_names); i++) {
            if (strcmp(value, config_hash_names[i]) == 0) {
                cfg->hash = (enum ring_hash)i;
                return 0;
            }
        }
        config_fail(p, p->line, "%s: bad value '%s' (expected xxh3 or ketama)",
                    k->name, value);
        return -1;
    case CONFIG_TYPE_LISTEN:
        if ((value[0] == '/'
                 ? net_parse_unix(value, host, sizeof(host), &port, reason,
                                  sizeof(reason))
                 : net_parse_hostport(value, host, sizeof(host), &port, reason,
                                      sizeof(reason))) != 0) {
            config_fail(p, p->line, "%s: bad address '%s': %s", k->name, value,
                        reason);
            return -1;
        }
        free(cfg->listen_host);
        cfg->listen_host = util_xstrdup(host);
        cfg->listen_port = port;
        return 0;
    case CONFIG_TYPE_TAG:
        if (value[0] != '\0' &&
            (strlen(value) != 2 || (unsigned char)value[0] <= ' ' ||
             (unsigned char)value[1] <= ' ' || (unsigned char)value[0] > '~' ||
             (unsigned char)value[1] > '~')) {
            config_fail(p, p->line,
                        "%s: bad value '%s' (expected two printable "
                        "characters, such as {})",
                        k->name, value);
            return -1;
        }
        snprintf(cfg->hash_tag, sizeof(cfg->hash_tag), "%s", value);
        return 0;
    case CONFIG_TYPE_NAME:
        if (value[0] != '\0' && !config_name_valid(value)) {
            config_fail(p, p->line,
                        "%s: bad name '%s' (1..%d bytes of A-Z a-z 0-9 _ . "
                        ": -)",
                        k->name, value, CONFIG_NAME_MAX);
            return -1;
        }
        snprintf(cfg->region, sizeof(cfg->region), "%s", value);
        return 0;
    case CONFIG_TYPE_PATH: {
        char **path = (char **)(void *)(((char *)cfg) + k->offset);

        if (value[0] != '\0' && value[0] != '/') {
            config_fail(p, p->line,
                        "%s: expected an absolute file name (a daemon runs "
                        "in /), got '%s'",
                        k->name, value);
            return -1;
        }
        free(*path);
        *path = value[0] != '\0' ? util_xstrdup(value) : NULL;
        return 0;
    }
    }
    return -1;
}

static struct config_backend *
config_find_backend(const struct config *cfg, const char *name,
                    const char *host, uint16_t port)
{
    for (size_t i = 0; i < cfg->nbackends; i++) {
        const struct config_backend *b = &cfg->backends[i];

        if ((name != NULL && strcmp(b->name, name) == 0) ||
            (host != NULL && b->port == port &&
             strcasecmp(b->host, host) == 0)) {
            return &cfg->backends[i];
        }
    }
    return NULL;
}

/*
 * The checks of a backend's name: valid and not taken in cfg. Return 0, or
 * -1 (bad) or CONFIG_ECONFLICT (taken) with a message in err.
 */
static int
config_check_name(const struct config *cfg, const char *name, char *err,
                  size_t errlen)
{
    const struct config_backend *dup;

    if (!config_name_valid(name)) {
        snprintf(err, errlen,
                 "bad backend name '%s' (1..%d bytes of A-Z a-z 0-9 _ . : -)",
                 name, CONFIG_NAME_MAX);
        return -1;
    }
    dup = config_find_backend(cfg, name, NULL, 0);
    if (dup != NULL) {
        if (dup->line > 0) {
            snprintf(err, errlen,
                     "duplicate backend name '%s' (first defined at line %d)",
                     name, dup->line);
        } else {
            snprintf(err, errlen, "duplicate backend name '%s'", name);
        }
        return CONFIG_ECONFLICT;
    }
    return 0;
}

/* Parses backend name's address addr into host and port, or fills err. */
static int
config_parse_addr(const char *name, const char *addr, char *host,
                  size_t hostlen, uint16_t *port, char *err, size_t errlen)
{
    char reason[128];

    if (net_parse_hostport(addr, host, hostlen, port, reason,
                              sizeof(reason)) != 0) {
        snprintf(err, errlen, "backend '%s': bad address '%s': %s", name,
                 addr, reason);
        return -1;
    }
    return 0;
}

/*
 * No backend of cfg may have host:port already (as written, any case):
 * CONFIG_ECONFLICT with err if one has.
 */
static int
config_check_addr(const struct config *cfg, const char *name,
                  const char *addr, const char *host, uint16_t port,
                  char *err, size_t errlen)
{
    const struct config_backend *dup;

    dup = config_find_backend(cfg, NULL, host, port);
    if (dup != NULL) {
        if (dup->line > 0) {
            snprintf(err, errlen,
                     "backend '%s': duplicate address %s (same as backend "
                     "'%s' at line %d)",
                     name, addr, dup->name, dup->line);
        } else {
            snprintf(err, errlen,
                     "backend '%s': duplicate address %s (same as backend "
                     "'%s')",
                     name, addr, dup->name);
        }
        return CONFIG_ECONFLICT;
    }
    return 0;
}

/* weight (as text: how it was given) must be in (0, CONFIG_WEIGHT_MAX]. */
static int
config_check_weight(const char *name, double weight, const char *text,
                    char *err, size_t errlen)
{
    if (!(weight > 0.0 && weight <= CONFIG_WEIGHT_MAX)) {
        snprintf(err, errlen,
                 "backend '%s': bad weight '%s' (expected a decimal number "
                 "greater than 0 and at most %g)",
                 name, text, CONFIG_WEIGHT_MAX);
        return -1;
    }
    return 0;
}

/*
 * Makes room for one more backend at index at (cfg->backends grows by
 * doubling; *cap is its capacity) and fills it. Strings are copied.
 */
static struct config_backend *
config_insert_backend(struct config *cfg, size_t *cap, size_t at,
                      const char *name, const char *host, uint16_t port,
                      double weight, int line)
{
    struct config_backend *b;

    if (cfg->nbackends == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct config_backend *nb = util_xcalloc(ncap, sizeof(*nb));

        if (cfg->nbackends > 0) {
            memcpy(nb, cfg->backends, cfg->nbackends * sizeof(*nb));
        }
        free(cfg->backends);
        cfg->backends = nb;
        *cap = ncap;
    }
    memmove(&cfg->backends[at + 1], &cfg->backends[at],
            (cfg->nbackends - at) * sizeof(*b));
    cfg->nbackends++;
    b = &cfg->backends[at];
    memset(b, 0, sizeof(*b));
    b->name = util_xstrdup(name);
    b->host = util_xstrdup(host);
    b->port = port;
    b->weight = weight;
    b->ramp = -1;
    b->line = line;
    return b;
}

/* ramp=S of a [backends] line: whole seconds, at most CONFIG_RAMP_MAX. */
static int
config_parse_ramp(const char *name, const char *s, int *out, char *err,
                  size_t errlen)
{
    uint64_t v;

    if (util_parse_u64(s, strlen(s), &v) != 0 || v > CONFIG_RAMP_MAX) {
        snprintf(err, errlen,
                 "backend '%s': bad ramp '%s' (expected whole seconds "
                 "0..%d)",
                 name, s, CONFIG_RAMP_MAX);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/*
 * A backend line naming a backend defined before (in another pool): the
 * same address, and weight= and ramp= the same or left out. Returns 0, or
 * -1 with err.
 */
static int
config_check_same_backend(const struct config_backend *b, const char *host,
                          uint16_t port, bool have_weight, double weight,
                          int ramp, char *err, size_t errlen)
{
    if (b->port != port || strcasecmp(b->host, host) != 0 ||
        (have_weight && weight != b->weight) ||
        (ramp >= 0 && ramp != b->ramp)) {
        snprintf(err, errlen,
                 "backend '%s' is defined at line %d with another %s (a "
                 "backend in several pools is one backend: give the same "
                 "address, weight= and ramp=)",
                 b->name, b->line,
                 b->port != port || strcasecmp(b->host, host) != 0
                     ? "address"
                 : ramp >= 0 && ramp != b->ramp ? "ramp"
                                                : "weight");
        return -1;
    }
    return 0;
}

/* "NAME = HOST:PORT [weight=W] [ramp=S]" in [backends] or [pool NAME]. */
static int
config_add_backend(struct config_parser *p, struct config_pool *pool,
                   const char *name, char *value)
{
    struct config *cfg = p->cfg;
    char host[CONFIG_LINE_MAX + 1];
    char reason[256];
    char *addr;
    char *tok;
    char *save = NULL;
    uint16_t port;
    double weight = 1.0;
    bool have_weight = false;
    int ramp = -1;
    int tls = -1;
    bool tls_yes = false;
    struct config_backend *b;
    struct config_backend *known = config_find_backend(cfg, name, NULL, 0);

    if (known != NULL && config_pool_has(pool, name)) {
        known = NULL; /* twice in one pool: a duplicate name */
    }
    if (known == NULL &&
        config_check_name(cfg, name, reason, sizeof(reason)) != 0) {
        config_fail(p, p->line, "%s", reason);
        return -1;
    }
    addr = strtok_r(value, " \t", &save);
    if (addr == NULL) {
        config_fail(p, p->line, "backend '%s': missing HOST:PORT", name);
        return -1;
    }
    if (config_parse_addr(name, addr, host, sizeof(host), &port, reason,
                          sizeof(reason)) != 0) {
        config_fail(p, p->line, "%s", reason);
        return -1;
    }
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        if (strncmp(tok, "tls=", 4) == 0) {
            if (tls >= 0) {
                config_fail(p, p->line, "backend '%s': tls given twice",
                            name);
                return -1;
            }
            if (util_parse_bool(tok + 4, &tls_yes) != 0) {
                config_fail(p, p->line, "backend '%s': tls=%s: expected yes "
                                        "or no",
                            name, tok + 4);
                return -1;
            }
            tls = tls_yes;
            continue;
        }
        if (strncmp(tok, "ramp=", 5) == 0) {
            if (ramp >= 0) {
                config_fail(p, p->line, "backend '%s': ramp given twice",
                            name);
                return -1;
            }
            if (config_parse_ramp(name, tok + 5, &ramp, reason,
                                  sizeof(reason)) != 0) {
                config_fail(p, p->line, "%s", reason);
                return -1;
            }
            continue;
        }
        if (strncmp(tok, "weight=", 7) != 0) {
            config_fail(p, p->line,
                        "backend '%s': unknown option '%s' (expected "
                        "weight=W, ramp=S or tls=yes)",
                        name, tok);
            return -1;
        }
        if (have_weight) {
            config_fail(p, p->line, "backend '%s': weight given twice", name);
            return -1;
        }
        have_weight = true;
        if (config_parse_decimal(tok + 7, &weight) != 0) {
            weight = 0.0; /* reported as bad below */
        }
        if (config_check_weight(name, weight, tok + 7, reason,
                                sizeof(reason)) != 0) {
            config_fail(p, p->line, "%s", reason);
            return -1;
        }
    }
    if (known != NULL) {
        if (tls >= 0 && (tls == 1) != known->tls) {
            config_fail(p, p->line, "backend '%s' is defined at line %d with "
                                    "another tls= (a backend in several "
                                    "pools is one backend)",
                        name, known->line);
            return -1;
        }
        if (config_check_same_backend(known, host, port, have_weight, weight,
                                      ramp, reason, sizeof(reason)) != 0 ||
            config_pool_add_member(pool, name, reason, sizeof(reason)) != 0) {
            config_fail(p, p->line, "%s", reason);
            return -1;
        }
        return 0;
    }
    if (config_check_addr(cfg, name, addr, host, port, reason,
                          sizeof(reason)) != 0 ||
        config_pool_add_member(pool, name, reason, sizeof(reason)) != 0) {
        config_fail(p, p->line, "%s", reason);
        return -1;
    }
    /* Appended; config_load() sorts once the file is read. */
    b = config_insert_backend(cfg, &p->backends_cap, cfg->nbackends, name,
                              host, port, weight, p->line);
    b->ramp = ramp;
    b->tls = tls == 1;
    return 0;
}

/* Whether HOST of a TCP listen is a loopback address or "localhost". */
static bool
config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0) {
        return true;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

/*
 * Checks an [admin] listen value: an absolute unix socket path, or
 * HOST:PORT. *loopback tells whether it needs no token.
 */
static int
config_check_admin_listen(const char *value, bool *loopback, char *err,
                          size_t errlen)
{
    char host[CONFIG_LINE_MAX + 1];
    char reason[128];
    uint16_t port;

    if (value[0] == '/') {
        size_t n = strlen(value);

        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)value[i];

            if (c <= ' ' || c >= 0x7f) {
                snprintf(err, errlen,
                         "listen: bad unix socket path '%s' (printable ASCII "
                         "without spaces)",
                         value);
                return -1;
            }
        }
        if (n > CONFIG_UNIX_PATH_MAX) {
            snprintf(err, errlen,
                     "listen: unix socket path too long (max %d bytes)",
                     CONFIG_UNIX_PATH_MAX);
            return -1;
        }
        *loopback = true; /* file permissions guard it */
        return 0;
    }
    if (net_parse_hostport(value, host, sizeof(host), &port, reason,
                              sizeof(reason)) != 0) {
        snprintf(err, errlen,
                 "listen: bad address '%s': %s (expected HOST:PORT or an "
                 "absolute unix socket path)",
                 value, reason);
        return -1;
    }
    *loopback = config_host_is_loopback(host);
    return 0;
}

/* A token: 1..CONFIG_TOKEN_MAX printable ASCII bytes, no spaces. */
static bool
config_token_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CONFIG_TOKEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* "listen = ..." and "token = ..." in [admin]. */
static int
config_set_admin(struct config_parser *p, const char *name, const char *value)
{
    struct config *cfg = p->cfg;
    char reason[256];
    int *line;
    char **field;
    bool loopback;

    if (strcmp(name, "metrics_without_token") == 0) {
        bool yes = false;

        if (p->admin_metrics_line != 0) {
            config_fail(p, p->line,
                        "duplicate key '%s' in [admin] (first set at line "
                        "%d)",
                        name, p->admin_metrics_line);
            return -1;
        }
        if (util_parse_bool(value, &yes) != 0) {
            config_fail(p, p->line,
                        "metrics_without_token: expected yes or no, got "
                        "'%s'",
                        value);
            return -1;
        }
        p->admin_metrics_line = p->line;
        cfg->admin_metrics_open = yes;
        return 0;
    }
    if (strcmp(name, "listen") == 0) {
        line = &p->admin_listen_line;
        field = &cfg->admin_listen;
    } else if (strcmp(name, "token") == 0) {
        line = &p->admin_token_line;
        field = &cfg->admin_token;
    } else {
        config_fail(p, p->line, "unknown key '%s' in [admin]", name);
        return -1;
    }
    if (*line != 0) {
        config_fail(p, p->line,
                    "duplicate key '%s' in [admin] (first set at line %d)",
                    name, *line);
        return -1;
    }
    *line = p->line;
    if (field == &cfg->admin_listen) {
        if (config_check_admin_listen(value, &loopback, reason,
                                      sizeof(reason)) != 0) {
            config_fail(p, p->line, "%s", reason);
            return -1;
        }
    } else if (!config_token_valid(value)) {
        config_fail(p, p->line,
                    "token: expected 1..%d printable ASCII bytes without "
                    "spaces",
                    CONFIG_TOKEN_MAX);
        return -1;
    }
    *field = util_xstrdup(value);
    return 0;
}

/* One [tls] key: cert, key, ca (files), listen (HOST:PORT), verify_clients
 * and verify_backends (yes or no). */
static int
config_set_tls(struct config_parser *p, const char *name, const char *value)
{
    static const char *const keys[] = {"cert", "key", "ca", "listen",
                                       "verify_clients", "verify_backends"};
    struct config *cfg = p->cfg;
    char *const *files[] = {&cfg->tls_cert, &cfg->tls_key, &cfg->tls_ca,
                            &cfg->tls_listen};
    size_t k = 0;

    while (k < UTIL_ARRAY_SIZE(keys) && strcmp(keys[k], name) != 0) {
        k++;
    }
    if (k == UTIL_ARRAY_SIZE(keys)) {
        config_fail(p, p->line, "unknown key '%s' in [tls]", name);
        return -1;
    }
    if (p->tls_line[k] != 0) {
        config_fail(p, p->line,
                    "duplicate key '%s' in [tls] (first set at line %d)",
                    name, p->tls_line[k]);
        return -1;
    }
    p->tls_line[k] = p->line;
    if (k >= 4) {
        bool yes = false;

        if (util_parse_bool(value, &yes) != 0) {
            config_fail(p, p->line, "%s: expected yes or no, got '%s'", name,
                        value);
            return -1;
        }
        *(k == 4 ? &cfg->tls_verify_clients : &cfg->tls_verify_backends) =
            yes;
        return 0;
    }
    if (k == 3) {
        char host[CONFIG_LINE_MAX + 1];
        char reason[128];
        uint16_t port;

        if (net_parse_hostport(value, host, sizeof(host), &port, reason,
                               sizeof(reason)) != 0 ||
            port == 0) {
            config_fail(p, p->line, "listen: bad address '%s': %s", value,
                        port == 0 ? "expected HOST:PORT" : reason);
            return -1;
        }
    } else if (value[0] == '\0') {
        config_fail(p, p->line, "%s: expected a file name", name);
        return -1;
    }
    *(char **)files[k] = util_xstrdup(value);
    return 0;
}

/*
 * The ini_handler. inih's name is not used: the current raw line is split
 * again at its first '=' (see the head comment); the value gets inih's
 * inline-comment and whitespace treatment.
 */
static int
config_handler(void *user, const char *section, const char *iname,
               const char *ivalue)
{
    struct config_parser *p = user;
    char buf[sizeof(p->raw)];
    char *name;
    char *value;
    char *end;

    if (p->failed) {
        return 0;
    }
    memcpy(buf, p->raw, sizeof(buf));
    name = buf;
    end = strchr(buf, '=');
    if (end == NULL) {
        config_fail(p, p->line, "expected NAME = VALUE");
        return 0;
    }
    *end = '\0';
    config_rstrip(name);
    value = end + 1;
    end = config_find_chars_or_comment(value, NULL);
    *end = '\0';
    value = config_lskip(value);
    config_rstrip(value);

    if (*section == '\0') {
        config_fail(p, p->line,
                    "key '%s' outside a section (start with [proxy], "
                    "[health], [admin] or [backends])",
                    name);
        return 0;
    }
    if (strcmp(section, "backends") == 0) {
        int d = config_pool_index(p->cfg, CONFIG_DEFAULT_POOL);

        if (d < 0) {
            /* Cannot happen: its header made it (config_check_section()). */
            config_fail(p, p->line, "[backends] without its header");
            return 0;
        }
        return config_add_backend(p, &p->cfg->pools[d], name, value) == 0;
    }
    if (strcmp(section, "routes") == 0) {
        char reason[256];

        if (config_add_route(p->cfg, name, value, p->line, reason,
                             sizeof(reason)) != 0) {
            config_fail(p, p->line, "%s", reason);
            return 0;
        }
        return 1;
    }
    if (strncmp(section, "pool", 4) == 0 &&
        config_isspace((unsigned char)section[4])) {
        /* Trimmed as config_check_section() did. */
        char reason[256];
        char pname[CONFIG_LINE_MAX + 1];
        int i;
        int rc;

        snprintf(pname, sizeof(pname), "%s", section + 5);
        config_rstrip(pname);
        i = config_pool_index(p->cfg, config_lskip(pname));

        if (i < 0) {
            /* Cannot happen: its header made it (config_check_section()). */
            config_fail(p, p->line, "[%s] without its header", section);
            return 0;
        }
        rc = config_pool_set(p->cfg, &p->cfg->pools[i], name, value, reason,
                             sizeof(reason));
        if (rc < 0) {
            config_fail(p, p->line, "%s", reason);
            return 0;
        }
        return rc == 1 ||
               config_add_backend(p, &p->cfg->pools[i], name, value) == 0;
    }
    if (strcmp(section, "admin") == 0) {
        return config_set_admin(p, name, value) == 0;
    }
    if (strcmp(section, "tls") == 0) {
        return config_set_tls(p, name, value) == 0;
    }
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const struct config_key *k = &config_keys[i];

        if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0) {
            continue;
        }
        if (p->key_line[i] != 0) {
            config_fail(p, p->line,
                        "duplicate key '%s' in [%s] (first set at line %d)",
                        name, section, p->key_line[i]);
            return 0;
        }
        p->key_line[i] = p->line;
        return config_set_key(p, k, value) == 0;
    }
    config_fail(p, p->line, "unknown key '%s' in [%s]", name, section);
    return 0;
}

static int
config_backend_cmp(const void *a, const void *b)
{
    const struct config_backend *x = a;
    const struct config_backend *y = b;

    return strcmp(x->name, y->name);
}

void
config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        char *field = (char *)cfg + k->offset;

        switch (k->type) {
        case CONFIG_TYPE_UINT:
        case CONFIG_TYPE_MODE:
            *(unsigned *)(void *)field = (unsigned)k->def;
            break;
        case CONFIG_TYPE_SIZE:
            *(size_t *)(void *)field = (size_t)k->def;
            break;
        case CONFIG_TYPE_BOOL:
            *(bool *)(void *)field = k->def != 0;
            break;
        case CONFIG_TYPE_SHARE:
            *(double *)(void *)field = (double)k->def / 1e6;
            break;
        case CONFIG_TYPE_HASH:
            *(enum ring_hash *)(void *)field = (enum ring_hash)k->def;
            break;
        case CONFIG_TYPE_LISTEN:
            /* A literal: config_defaults() leaves nothing to free. */
            cfg->listen_host = (char *)CONFIG_DEFAULT_LISTEN_HOST;
            cfg->listen_port = CONFIG_DEFAULT_LISTEN_PORT;
            break;
        case CONFIG_TYPE_TAG:
        case CONFIG_TYPE_NAME:
            field[0] = '\0';
            break;
        case CONFIG_TYPE_PATH:
            *(char **)(void *)field = NULL;
            break;
        }
    }
    cfg->tls_verify_backends = true;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
    struct config_parser p;
    struct config *cfg;
    int rc;

    memset(&p, 0, sizeof(p));
    p.path = path;
    p.err = err;
    p.errlen = errlen;
    p.fp = fopen(path, "r");
    if (p.fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    cfg = util_xcalloc(1, sizeof(*cfg));
    config_defaults(cfg);
    cfg->listen_host = util_xstrdup(cfg->listen_host);
    cfg->path = util_xstrdup(path);
    p.cfg = cfg;

    rc = ini_parse_stream(config_reader, &p, config_handler, &p);
    fclose(p.fp);
    if (rc > 0 && (!p.failed || rc < p.err_line)) {
        p.failed = false;
        config_fail(&p, rc,
                    "syntax error (expected [section], NAME = VALUE or a "
                    "comment)");
    } else if (rc < 0 && !p.failed) {
        snprintf(err, errlen, "%s: inih error %d", path, rc);
        p.failed = true;
    }
    if (!p.failed) {
        char reason[256];
        int line = 0;

        if (config_check_pools(cfg, &line, reason, sizeof(reason)) != 0) {
            /* Else point at [backends], else at the end of the file. */
            if (line == 0) {
                line = p.backends_line != 0 ? p.backends_line : p.line;
            }
            config_fail(&p, line > 0 ? line : 1, "%s", reason);
        }
    }
    if (!p.failed && (cfg->tls_cert != NULL) != (cfg->tls_key != NULL)) {
        config_fail(&p, p.tls_line[cfg->tls_cert != NULL ? 0 : 1],
                    "[tls] needs both cert and key");
    }
    if (!p.failed && cfg->tls_listen != NULL && cfg->tls_cert == NULL) {
        config_fail(&p, p.tls_line[3],
                    "[tls] listen needs cert and key");
    }
    if (!p.failed && cfg->tls_verify_clients && cfg->tls_listen == NULL) {
        config_fail(&p, p.tls_line[4],
                    "[tls] verify_clients needs listen");
    }
    if (!p.failed && cfg->admin_listen != NULL && cfg->admin_token == NULL) {
        bool loopback = false;
        char reason[256];

        if (config_check_admin_listen(cfg->admin_listen, &loopback, reason,
                                      sizeof(reason)) == 0 &&
            !loopback) {
            config_fail(&p, p.admin_listen_line,
                        "listen: %s is not a loopback address: a token is "
                        "needed (set token = ... in [admin]), or listen on "
                        "127.0.0.1, [::1] or a unix socket",
                        cfg->admin_listen);
        }
    }
    if (p.failed) {
        config_destroy(cfg);
        return NULL;
    }
    qsort(cfg->backends, cfg->nbackends, sizeof(*cfg->backends),
          config_backend_cmp);
    return cfg;
}

int
config_resolve(struct config *cfg, FILE *warn, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nbackends; i++) {
        struct config_backend *b = &cfg->backends[i];
        struct addrinfo hints;
        struct addrinfo *res = NULL;
        char port[8];
        int rc;

        if (b->host[0] == '/') {
            /* A unix socket: nothing to resolve. */
            if (net_unix_addr(b->host, &b->addr, &b->addrlen) != 0) {
                b->addrlen = 0;
            }
            continue;
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        snprintf(port, sizeof(port), "%u", (unsigned)b->port);
        rc = getaddrinfo(b->host, port, &hints, &res);
        b->addrlen = 0;
        if (rc != 0 || res == NULL) {
            snprintf(err, errlen,
                     "%s:%d: backend '%s': cannot resolve '%s': %s", cfg->path,
                     b->line, b->name, b->host,
                     rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
            if (res != NULL) {
                freeaddrinfo(res);
            }
            if (warn == NULL) {
                return -1;
            }
            fprintf(warn, "warning: %s (mcring starts it DOWN and retries)\n",
                    err);
            continue;
        }
        memset(&b->addr, 0, sizeof(b->addr));
        memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
        b->addrlen = res->ai_addrlen;
        freeaddrinfo(res);
    }
    for (size_t i = 0; i < cfg->nbackends; i++) {
        for (size_t j = 0; j < i; j++) {
            const struct config_backend *a = &cfg->backends[i];
            const struct config_backend *b = &cfg->backends[j];
            char host[NI_MAXHOST];

            if (a->addrlen == 0 || b->addrlen == 0 ||
                !net_same_addr(&a->addr, a->addrlen, &b->addr, b->addrlen)) {
                continue;
            }
            if (a->line < b->line) {
                const struct config_backend *t = a;

                a = b;
                b = t;
            }
            if (getnameinfo((const struct sockaddr *)&a->addr, a->addrlen, host,
                            sizeof(host), NULL, 0, NI_NUMERICHOST) != 0) {
                snprintf(host, sizeof(host), "?");
            }
            snprintf(err, errlen,
                     "%s:%d: backend '%s' resolves to the same address (%s "
                     "port %u) as backend '%s' (line %d)",
                     cfg->path, a->line, a->name, host, (unsigned)a->port,
                     b->name, b->line);
            return -1;
        }
    }
    return 0;
}

void
config_destroy(struct config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->nbackends; i++) {
        free(cfg->backends[i].name);
        free(cfg->backends[i].host);
    }
    free(cfg->backends);
    config_pools_free(cfg);
    free(cfg->listen_host);
    free(cfg->path);
    free(cfg->admin_listen);
    free(cfg->admin_token);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_ca);
    free(cfg->tls_listen);
    free(cfg->delete_spool);
    free(cfg);
}

/*
 * A weight given as a number (the admin API): in range, and one that
 * config_render() writes back exactly, as it does into wtext (wlen bytes).
 * Returns 0, or -1 with err.
 */
static int
config_check_number_weight(const char *name, double weight, char *wtext,
                           size_t wlen, char *err, size_t errlen)
{
    snprintf(wtext, wlen, "%g", weight);
    if (config_check_weight(name, weight, wtext, err, errlen) != 0) {
        return -1;
    }
    if (config_format_weight(weight, wtext, wlen) != 0) {
        snprintf(err, errlen,
                 "backend '%s': bad weight %.17g (at most 15 significant "
                 "decimal digits)",
                 name, weight);
        return -1;
    }
    return 0;
}

struct ring *
config_build_pool_ring(const struct config *cfg, size_t pool, uint32_t *map,
                       char *err, size_t errlen)
{
    const struct config_pool *p = &cfg->pools[pool];
    struct ring_backend *rb;
    struct ring *ring;

    if (p->nmembers == 0) {
        snprintf(err, errlen, "pool '%s' has no backends", p->name);
        return NULL;
    }
    rb = util_xcalloc(p->nmembers, sizeof(*rb));
    for (size_t i = 0; i < p->nmembers; i++) {
        int b = config_backend_index(cfg, p->members[i]);

        if (b < 0) {
            snprintf(err, errlen, "pool '%s': no backend '%s'", p->name,
                     p->members[i]);
            free(rb);
            return NULL;
        }
        rb[i].name = cfg->backends[b].name;
        rb[i].host = cfg->backends[b].host;
        rb[i].port = cfg->backends[b].port;
        rb[i].weight = cfg->backends[b].weight;
        if (map != NULL) {
            map[i] = (uint32_t)b;
        }
    }
    ring = ring_create(config_pool_hash(cfg, p), config_pool_vnodes(cfg, p),
                       rb, p->nmembers, err, errlen);
    free(rb);
    if (ring != NULL && cfg->hash_tag[0] != '\0') {
        ring_set_hash_tag(ring, cfg->hash_tag[0], cfg->hash_tag[1]);
    }
    if (ring != NULL && cfg->big_value_split > 0) {
        ring_set_derived(ring, true); /* big values' chunks */
    }
    return ring;
}

int
config_check_rings(const struct config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->npools; i++) {
        char why[256];
        struct ring *r = config_build_pool_ring(cfg, i, NULL, why,
                                                sizeof(why));

        if (r == NULL) {
            if (cfg->npools == 1) {
                snprintf(err, errlen, "%s", why);
            } else {
                snprintf(err, errlen, "pool '%s': %s", cfg->pools[i].name,
                         why);
            }
            return -1;
        }
        ring_destroy(r);
    }
    if (cfg->npools == 0) {
        snprintf(err, errlen, "no backends");
        return -1;
    }
    return 0;
}

struct ring *
config_build_ring(const struct config *cfg, char *err, size_t errlen)
{
    int d = config_default_pool(cfg);

    if (d < 0) {
        snprintf(err, errlen, "no backends");
        return NULL;
    }
    return config_build_pool_ring(cfg, (size_t)d, NULL, err, errlen);
}

static char *
config_xstrdup_or_null(const char *s)
{
    return s != NULL ? util_xstrdup(s) : NULL;
}

struct config *
config_clone(const struct config *cfg)
{
    struct config *c = util_xcalloc(1, sizeof(*c));

    *c = *cfg;
    c->path = config_xstrdup_or_null(cfg->path);
    c->listen_host = config_xstrdup_or_null(cfg->listen_host);
    c->admin_listen = config_xstrdup_or_null(cfg->admin_listen);
    c->admin_token = config_xstrdup_or_null(cfg->admin_token);
    c->tls_cert = config_xstrdup_or_null(cfg->tls_cert);
    c->tls_key = config_xstrdup_or_null(cfg->tls_key);
    c->tls_ca = config_xstrdup_or_null(cfg->tls_ca);
    c->tls_listen = config_xstrdup_or_null(cfg->tls_listen);
    c->delete_spool = config_xstrdup_or_null(cfg->delete_spool);
    c->backends = NULL;
    if (cfg->nbackends > 0) {
        c->backends = util_xcalloc(cfg->nbackends, sizeof(*c->backends));
        for (size_t i = 0; i < cfg->nbackends; i++) {
            c->backends[i] = cfg->backends[i];
            c->backends[i].name = util_xstrdup(cfg->backends[i].name);
            c->backends[i].host = util_xstrdup(cfg->backends[i].host);
        }
    }
    config_pools_copy(c, cfg);
    return c;
}

int
config_format_weight(double w, char *buf, size_t len)
{
    return w > 0.0 ? config_format_decimal(w, buf, len) : -1;
}

/* The pool called name, or the default one for NULL; NULL with err. */
static struct config_pool *
config_pool_named(struct config *cfg, const char *name, char *err,
                  size_t errlen)
{
    int i = name != NULL ? config_pool_index(cfg, name)
                         : config_default_pool(cfg);

    if (i < 0 && name == NULL && cfg->npools == 0) {
        /* A config built from config_defaults(): its first backend. */
        return config_add_pool(cfg, CONFIG_DEFAULT_POOL, 0, err, errlen);
    }
    if (i < 0) {
        snprintf(err, errlen, "no pool '%s'",
                 name != NULL ? name : CONFIG_DEFAULT_POOL);
        return NULL;
    }
    return &cfg->pools[i];
}

int
config_add_backend_str(struct config *cfg, const char *pool,
                       const char *name, const char *hostport, double weight,
                       char *err, size_t errlen)
{
    char host[CONFIG_LINE_MAX + 1];
    char wtext[64];
    uint16_t port;
    size_t cap = cfg->nbackends;
    size_t at = 0;
    int rc;
    struct config_pool *p = config_pool_named(cfg, pool, err, errlen);
    struct config_backend *known = config_find_backend(cfg, name, NULL, 0);

    if (p == NULL) {
        return -1;
    }
    if (known != NULL && !config_pool_has(p, name)) {
        /* Another pool's backend joins this one too. */
        if (config_parse_addr(name, hostport, host, sizeof(host), &port, err,
                              errlen) != 0) {
            return -1;
        }
        if (config_check_same_backend(known, host, port, !isnan(weight),
                                      weight, -1, err, errlen) != 0) {
            return CONFIG_ECONFLICT;
        }
        return config_pool_add_member(p, name, err, errlen);
    }
    rc = config_check_name(cfg, name, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (config_parse_addr(name, hostport, host, sizeof(host), &port, err,
                          errlen) != 0) {
        return -1;
    }
    if (isnan(weight)) {
        weight = 1.0;
    }
    if (config_check_number_weight(name, weight, wtext, sizeof(wtext), err,
                                   errlen) != 0) {
        return -1;
    }
    rc = config_check_addr(cfg, name, hostport, host, port, err, errlen);
    if (rc != 0) {
        return rc;
    }
    /* config_render() must be able to write it as one line. */
    if (strlen(name) + strlen(host) + strlen(wtext) + 36 > CONFIG_LINE_MAX) {
        snprintf(err, errlen,
                 "backend '%s': address too long for a config line (max "
                 "%d bytes)",
                 name, CONFIG_LINE_MAX);
        return -1;
    }
    while (at < cfg->nbackends && strcmp(cfg->backends[at].name, name) < 0) {
        at++;
    }
    if (config_pool_add_member(p, name, err, errlen) != 0) {
        return -1; /* cannot happen: the name was free */
    }
    config_insert_backend(cfg, &cap, at, name, host, port, weight, 0);
    return 0;
}

void
config_copy_backend(struct config *cfg, const struct config_backend *src)
{
    size_t cap = cfg->nbackends;
    size_t at = 0;
    struct config_backend *b;

    while (at < cfg->nbackends && strcmp(cfg->backends[at].name, src->name) < 0) {
        at++;
    }
    b = config_insert_backend(cfg, &cap, at, src->name, src->host, src->port,
                              src->weight, src->line);
    b->ramp = src->ramp;
    b->addr = src->addr;
    b->addrlen = src->addrlen;
}

int
config_remove_backend(struct config *cfg, const char *pool, const char *name,
                      char *err, size_t errlen)
{
    int i = config_backend_index(cfg, name);
    struct config_backend *b;
    bool left = false;

    if (i < 0) {
        snprintf(err, errlen, "no backend '%s'", name);
        return CONFIG_ENOENT;
    }
    if (pool != NULL && (config_pool_index(cfg, pool) < 0 ||
                         !config_pool_has(&cfg->pools[config_pool_index(
                                              cfg, pool)],
                                          name))) {
        snprintf(err, errlen, "backend '%s' is not in pool '%s'", name, pool);
        return CONFIG_ENOENT;
    }
    for (size_t k = 0; k < cfg->npools; k++) {
        struct config_pool *p = &cfg->pools[k];
        bool out = pool == NULL || strcmp(p->name, pool) == 0;

        if (out && config_pool_has(p, name) && p->nmembers == 1) {
            snprintf(err, errlen,
                     cfg->npools == 1 ? "cannot remove the last backend"
                                      : "cannot remove the last backend of "
                                        "pool '%s' (remove the pool)",
                     p->name);
            return -1;
        }
    }
    for (size_t k = 0; k < cfg->npools; k++) {
        if (pool == NULL || strcmp(cfg->pools[k].name, pool) == 0) {
            config_pool_remove_member(&cfg->pools[k], name);
        }
        left = left || config_pool_has(&cfg->pools[k], name);
    }
    if (left) {
        return 0; /* still in another pool */
    }
    b = &cfg->backends[i];
    free(b->name);
    free(b->host);
    memmove(b, b + 1, (cfg->nbackends - (size_t)i - 1) * sizeof(*b));
    cfg->nbackends--;
    return 0;
}

int
config_set_weight(struct config *cfg, const char *name, double weight,
                  char *err, size_t errlen)
{
    int i = config_backend_index(cfg, name);
    char wtext[64];

    if (i < 0) {
        snprintf(err, errlen, "no backend '%s'", name);
        return -1;
    }
    if (config_check_number_weight(name, weight, wtext, sizeof(wtext), err,
                                   errlen) != 0) {
        return -1;
    }
    cfg->backends[i].weight = weight;
    return 0;
}

size_t
config_nkeys(void)
{
    return CONFIG_NKEYS;
}

int
config_key_format(const struct config *cfg, size_t i, const char **section,
                  const char **name, char *value, size_t valuelen)
{
    const struct config_key *k;
    const char *field;
    int n = 0;

    if (i >= CONFIG_NKEYS) {
        return -1;
    }
    k = &config_keys[i];
    field = (const char *)cfg + k->offset;
    *section = k->section;
    *name = k->name;
    switch (k->type) {
    case CONFIG_TYPE_UINT:
        n = snprintf(value, valuelen, "%u",
                     *(const unsigned *)(const void *)field);
        break;
    case CONFIG_TYPE_SIZE:
        n = snprintf(value, valuelen, "%zu",
                     *(const size_t *)(const void *)field);
        break;
    case CONFIG_TYPE_HASH:
        n = snprintf(value, valuelen, "%s",
                     (size_t)cfg->hash < UTIL_ARRAY_SIZE(config_hash_names)
                         ? config_hash_names[cfg->hash]
                         : "?");
        break;
    case CONFIG_TYPE_LISTEN:
        return net_format_hostport(cfg->listen_host, cfg->listen_port,
                                      value, valuelen);
    case CONFIG_TYPE_MODE:
        n = snprintf(value, valuelen, "%04o",
                     *(const unsigned *)(const void *)field);
        break;
    case CONFIG_TYPE_SHARE:
        n = config_format_decimal(*(const double *)(const void *)field,
                                  value, valuelen) == 0
                ? (int)strlen(value)
                : -1;
        break;
    case CONFIG_TYPE_BOOL:
        n = snprintf(value, valuelen, "%s",
                     *(const bool *)(const void *)field ? "yes" : "no");
        break;
    case CONFIG_TYPE_TAG:
    case CONFIG_TYPE_NAME:
        n = snprintf(value, valuelen, "%s", field);
        break;
    case CONFIG_TYPE_PATH: {
        const char *path = *(char *const *)(const void *)field;

        n = snprintf(value, valuelen, "%s", path != NULL ? path : "");
        break;
    }
    }
    return n < 0 || (size_t)n >= valuelen ? -1 : 0;
}

/*
 * "name = value", or "name =value" when value starts with ';' (after a
 * space it would be an inline comment).
 */
static void
config_render_key(FILE *out, const char *name, const char *value)
{
    fprintf(out, "%s =%s%s\n", name, value[0] == ';' ? "" : " ", value);
}

/* One backend line: "NAME = HOST:PORT [weight=W] [ramp=S]". */
static void
config_render_backend(FILE *out, const struct config_backend *b)
{
    char addr[CONFIG_LINE_MAX + 8];
    char w[64];
    char line[2 * CONFIG_LINE_MAX];
    char ramp[32] = "";

    if (net_format_hostport(b->host, b->port, addr, sizeof(addr)) != 0) {
        return; /* cannot happen: it was parsed from a line */
    }
    if (b->ramp >= 0) {
        snprintf(ramp, sizeof(ramp), " ramp=%d", b->ramp);
    }
    if (b->tls) {
        strncat(ramp, " tls=yes", sizeof(ramp) - strlen(ramp) - 1);
    }
    if (b->weight == 1.0 ||
        config_format_weight(b->weight, w, sizeof(w)) != 0) {
        snprintf(line, sizeof(line), "%s = %s%s", b->name, addr, ramp);
    } else {
        snprintf(line, sizeof(line), "%s = %s weight=%s%s", b->name, addr, w,
                 ramp);
    }
    if (strlen(line) > CONFIG_LINE_MAX) {
        /* Without the spaces around '=' it was at most that long. */
        char *eq = strchr(line, '=');

        memmove(eq - 1, eq, strlen(eq) + 1);
        memmove(eq, eq + 1, strlen(eq + 1) + 1);
    }
    fprintf(out, "%s\n", line);
}

void
config_render(const struct config *cfg, FILE *out)
{
    const char *section = NULL;
    char value[CONFIG_LINE_MAX + 1];

    fprintf(out, "# mcring configuration: the running topology");
    if (cfg->path != NULL) {
        fprintf(out, " (loaded from %s, then changed by the admin API if "
                     "at all)",
                cfg->path);
    }
    fprintf(out, ".\n# See mcring.ini(5).\n");
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const char *sec;
        const char *name;

        if (config_key_format(cfg, i, &sec, &name, value, sizeof(value)) !=
            0) {
            continue; /* cannot happen: values are short */
        }
        if (section == NULL || strcmp(section, sec) != 0) {
            fprintf(out, "\n[%s]\n", sec);
            section = sec;
        }
        config_render_key(out, name, value);
    }
    if (cfg->admin_listen != NULL || cfg->admin_token != NULL) {
        fprintf(out, "\n[admin]\n");
        if (cfg->admin_listen != NULL) {
            config_render_key(out, "listen", cfg->admin_listen);
        }
        if (cfg->admin_token != NULL) {
            config_render_key(out, "token", cfg->admin_token);
        }
        if (cfg->admin_metrics_open) {
            config_render_key(out, "metrics_without_token", "yes");
        }
    }
    if (cfg->tls_cert != NULL || cfg->tls_listen != NULL ||
        cfg->tls_ca != NULL || !cfg->tls_verify_backends) {
        fprintf(out, "\n[tls]\n");
        if (cfg->tls_cert != NULL) {
            config_render_key(out, "cert", cfg->tls_cert);
            config_render_key(out, "key", cfg->tls_key);
        }
        if (cfg->tls_ca != NULL) {
            config_render_key(out, "ca", cfg->tls_ca);
        }
        if (cfg->tls_listen != NULL) {
            config_render_key(out, "listen", cfg->tls_listen);
        }
        if (cfg->tls_verify_clients) {
            config_render_key(out, "verify_clients", "yes");
        }
        if (!cfg->tls_verify_backends) {
            config_render_key(out, "verify_backends", "no");
        }
    }
    config_pools_render(cfg, out, config_render_backend);
}

double
config_moved_share(const struct config *a, const struct config *b)
{
    double most = 0.0;

    for (size_t i = 0; i < b->npools; i++) {
        int k = config_pool_index(a, b->pools[i].name);
        char err[256];
        struct ring *ra, *rb;
        double m;

        if (k < 0) {
            continue;
        }
        ra = config_build_pool_ring(a, (size_t)k, NULL, err, sizeof(err));
        rb = ra != NULL ? config_build_pool_ring(b, i, NULL, err, sizeof(err))
                        : NULL;
        m = rb != NULL ? ring_moved_share(ra, rb) : NAN;
        ring_destroy(rb);
        ring_destroy(ra);
        if (isnan(m)) {
            return NAN;
        }
        most = m > most ? m : most;
    }
    return most;
}

struct config *
config_pool_view(const struct config *cfg, size_t pool)
{
    struct config *v = config_clone(cfg);
    const struct config_pool *p = &cfg->pools[pool];
    size_t n = 0;

    for (size_t i = 0; i < v->nbackends; i++) {
        if (config_pool_has(p, v->backends[i].name)) {
            v->backends[n++] = v->backends[i];
        } else {
            free(v->backends[i].name);
            free(v->backends[i].host);
        }
    }
    v->nbackends = n;
    v->hash = config_pool_hash(cfg, p);
    v->vnodes = config_pool_vnodes(cfg, p);
    config_pools_free(v);
    v->npools = 1;
    v->pools = util_xcalloc(1, sizeof(*v->pools));
    v->pools[0] = (struct config_pool){
        .name = util_xstrdup(p->name), .line = p->line, .hash = -1,
        .replicas = p->replicas,
        .region = p->region != NULL ? util_xstrdup(p->region) : NULL,
        .hotkey_spread = p->hotkey_spread, .rate = p->rate,
        .burst = p->burst,
        .health_interval_ms = p->health_interval_ms,
        .health_timeout_ms = p->health_timeout_ms,
        .health_rise = p->health_rise, .health_fall = p->health_fall};
    for (size_t i = 0; i < v->nbackends; i++) {
        char err[128];

        if (config_pool_add_member(&v->pools[0], v->backends[i].name, err,
                                   sizeof(err)) != 0) {
            continue; /* cannot happen: backend names are unique */
        }
    }
    return v;
}
