/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_config: unit tests of the config module.
 *
 * Each test writes its INI text to a mkstemp() file under /tmp, loads it
 * and removes the file. Error tests check the exact "FILE:LINE: " prefix and
 * a distinctive part of the message. The sample configs are read from
 * $SRCDIR/etc (make check exports SRCDIR), else from ./etc.
 */
#include "autoconf.h"

#include <check.h>
#include <math.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "net.h"
#include "ring.h"
#include "util.h"

#define ERRLEN 512

struct loaded {
    char path[64];
    char err[ERRLEN];
    struct config *cfg;
};

static void
write_temp(char *path, size_t pathlen, const char *text, size_t len)
{
    int fd;

    snprintf(path, pathlen, "/tmp/check_config.XXXXXX");
    fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
    while (len > 0) {
        ssize_t n = write(fd, text, len);

        ck_assert_msg(n > 0, "write: %s", strerror(errno));
        text += n;
        len -= (size_t)n;
    }
    ck_assert_int_eq(close(fd), 0);
}

/* Loads len bytes of INI text; l->cfg is NULL and l->err set on error. */
static void
load_bytes(struct loaded *l, const char *text, size_t len)
{
    write_temp(l->path, sizeof(l->path), text, len);
    l->err[0] = '\0';
    l->cfg = config_load(l->path, l->err, sizeof(l->err));
    unlink(l->path);
}

static struct config *
load_ok(const char *text)
{
    struct loaded l;

    load_bytes(&l, text, strlen(text));
    ck_assert_msg(l.cfg != NULL, "unexpected error: %s", l.err);
    return l.cfg;
}

static void
expect_error_bytes(const char *text, size_t len, int line, const char *needle)
{
    struct loaded l;
    char prefix[128];
    size_t n;

    load_bytes(&l, text, len);
    ck_assert_msg(l.cfg == NULL, "loaded, expected '%s' at line %d", needle,
                  line);
    n = (size_t)snprintf(prefix, sizeof(prefix), "%s:%d: ", l.path, line);
    ck_assert_msg(strncmp(l.err, prefix, n) == 0, "got '%s', want '%s...'",
                  l.err, prefix);
    ck_assert_msg(strstr(l.err + n, needle) != NULL,
                  "got '%s', want it to contain '%s'", l.err, needle);
}

static void
expect_error(const char *text, int line, const char *needle)
{
    expect_error_bytes(text, strlen(text), line, needle);
}

#define BACKEND "[backends]\nmc1 = 127.0.0.1:11211\n"

static const char *
srcdir(void)
{
    const char *s = getenv("SRCDIR");

    return s != NULL && *s != '\0' ? s : ".";
}

/* ---- defaults ------------------------------------------------------------ */

static void
assert_defaults(const struct config *cfg)
{
    ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg->listen_port, 11311);
    ck_assert_uint_eq(cfg->threads, 0);
    ck_assert(cfg->io_uring);
    ck_assert_int_eq(cfg->hash, RING_HASH_XXH3);
    ck_assert_uint_eq(cfg->vnodes, RING_DEFAULT_VNODES);
    ck_assert_uint_eq(cfg->timeout_ms, 1000);
    ck_assert_uint_eq(cfg->connect_timeout_ms, 500);
    ck_assert_uint_eq(cfg->backend_connections, 1);
    ck_assert_uint_eq(cfg->max_connections, 0);
    ck_assert_uint_eq(cfg->max_value_size, 1048576);
    ck_assert_uint_eq(cfg->max_keys, 1024);
    ck_assert_uint_eq(cfg->client_output_limit, 4194304);
    ck_assert_uint_eq(cfg->health_interval_ms, 200);
    ck_assert_uint_eq(cfg->health_timeout_ms, 300);
    ck_assert_uint_eq(cfg->health_rise, 3);
    ck_assert_uint_eq(cfg->health_fall, 2);
    ck_assert_uint_eq(cfg->recovery_log, 100000);
    ck_assert_uint_eq(cfg->failover_ttl, 300);
    ck_assert_ptr_null(cfg->delete_spool);
    ck_assert_uint_eq(cfg->delete_spool_max, 100000);
}

START_TEST(test_defaults_filled)
{
    struct config cfg;

    memset(&cfg, 0xa5, sizeof(cfg));
    config_defaults(&cfg);
    assert_defaults(&cfg);
    ck_assert_ptr_null(cfg.backends);
    ck_assert_uint_eq(cfg.nbackends, 0);
    ck_assert_ptr_null(cfg.path);
}
END_TEST

START_TEST(test_defaults_when_keys_absent)
{
    struct config *cfg = load_ok("[proxy]\n[health]\n" BACKEND);

    assert_defaults(cfg);
    ck_assert_uint_eq(cfg->nbackends, 1);
    ck_assert_str_eq(cfg->backends[0].name, "mc1");
    ck_assert_str_eq(cfg->backends[0].host, "127.0.0.1");
    ck_assert_uint_eq(cfg->backends[0].port, 11211);
    ck_assert(cfg->backends[0].weight == 1.0);
    ck_assert_int_eq(cfg->backends[0].line, 4);
    config_destroy(cfg);
}
END_TEST

/* ---- every key ----------------------------------------------------------- */

START_TEST(test_every_key_parsed)
{
    struct config *cfg = load_ok("[proxy]\n"
                                 "listen = 0.0.0.0:22122\n"
                                 "threads = 8\n"
                                 "io_uring = no\n"
                                 "hash = ketama\n"
                                 "vnodes = 100\n"
                                 "timeout_ms = 250\n"
                                 "connect_timeout_ms = 50\n"
                                 "backend_connections = 4\n"
                                 "max_connections = 100000\n"
                                 "max_value_size = 2097152\n"
                                 "max_keys = 64\n"
                                 "client_output_limit = 65536\n"
                                 "ramp = 30\n"
                                 "warmup = 90\n"
                                 "migrate_rate = 100\n"
                                 "[health]\n"
                                 "interval_ms = 1000\n"
                                 "timeout_ms = 150\n"
                                 "rise = 5\n"
                                 "fall = 7\n" BACKEND);

    ck_assert_str_eq(cfg->listen_host, "0.0.0.0");
    ck_assert_uint_eq(cfg->listen_port, 22122);
    ck_assert_uint_eq(cfg->threads, 8);
    ck_assert(!cfg->io_uring);
    ck_assert_int_eq(cfg->hash, RING_HASH_KETAMA);
    ck_assert_uint_eq(cfg->vnodes, 100);
    ck_assert_uint_eq(cfg->timeout_ms, 250);
    ck_assert_uint_eq(cfg->connect_timeout_ms, 50);
    ck_assert_uint_eq(cfg->backend_connections, 4);
    ck_assert_uint_eq(cfg->max_connections, 100000);
    ck_assert_uint_eq(cfg->max_value_size, 2097152);
    ck_assert_uint_eq(cfg->max_keys, 64);
    ck_assert_uint_eq(cfg->client_output_limit, 65536);
    ck_assert_uint_eq(cfg->ramp, 30);
    ck_assert_uint_eq(cfg->warmup, 90);
    ck_assert_uint_eq(cfg->migrate_rate, 100);
    ck_assert_uint_eq(cfg->health_interval_ms, 1000);
    ck_assert_uint_eq(cfg->health_timeout_ms, 150);
    ck_assert_uint_eq(cfg->health_rise, 5);
    ck_assert_uint_eq(cfg->health_fall, 7);
    ck_assert_msg(strncmp(cfg->path, "/tmp/check_config.", 18) == 0, "%s",
                  cfg->path);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_hash_xxh3_explicit)
{
    struct config *cfg = load_ok("[proxy]\nhash = xxh3\n" BACKEND);

    ck_assert_int_eq(cfg->hash, RING_HASH_XXH3);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_hash_tag)
{
    struct config *cfg = load_ok("[proxy]\nhash_tag = {}\n" BACKEND);
    struct config *back;
    struct ring *ring;
    char err[256];
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    ck_assert_str_eq(cfg->hash_tag, "{}");
    /* Rendered and loaded back equal; its ring places by the tag. */
    config_render(cfg, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "hash_tag = {}\n"));
    back = load_ok(text);
    ck_assert_str_eq(back->hash_tag, "{}");
    ring = config_build_ring(back, err, sizeof(err));
    ck_assert_ptr_nonnull(ring);
    ck_assert_uint_eq(ring_lookup(ring, "{x}:1", 5), ring_lookup(ring, "x", 1));
    ring_destroy(ring);
    config_destroy(back);
    config_destroy(cfg);
    free(text);
    cfg = load_ok("[proxy]\nhash_tag =\n" BACKEND);
    ck_assert_str_eq(cfg->hash_tag, "");
    config_destroy(cfg);
    expect_error("[proxy]\nhash_tag = {\n" BACKEND, 2,
                 "hash_tag: bad value '{' (expected two printable "
                 "characters, such as {})");
    expect_error("[proxy]\nhash_tag = {}}\n" BACKEND, 2, "hash_tag: bad");
}
END_TEST

START_TEST(test_listen_forms)
{
    struct config *cfg = load_ok("[proxy]\nlisten = [::1]:11311\n" BACKEND);

    ck_assert_str_eq(cfg->listen_host, "::1");
    ck_assert_uint_eq(cfg->listen_port, 11311);
    config_destroy(cfg);
    cfg = load_ok("[proxy]\nlisten = localhost:1\n" BACKEND);
    ck_assert_str_eq(cfg->listen_host, "localhost");
    ck_assert_uint_eq(cfg->listen_port, 1);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_bounds_accepted)
{
    struct config *cfg = load_ok("[proxy]\n"
                                 "threads = 256\n"
                                 "vnodes = 10000\n"
                                 "timeout_ms = 600000\n"
                                 "max_value_size = 1073741824\n"
                                 "client_output_limit = 4096\n"
                                 "[health]\n"
                                 "interval_ms = 10\n"
                                 "rise = 100\n"
                                 "fall = 1\n" BACKEND);

    ck_assert_uint_eq(cfg->threads, 256);
    ck_assert_uint_eq(cfg->vnodes, 10000);
    ck_assert_uint_eq(cfg->timeout_ms, 600000);
    ck_assert_uint_eq(cfg->max_value_size, 1073741824);
    ck_assert_uint_eq(cfg->client_output_limit, 4096);
    ck_assert_uint_eq(cfg->health_interval_ms, 10);
    ck_assert_uint_eq(cfg->health_rise, 100);
    ck_assert_uint_eq(cfg->health_fall, 1);
    config_destroy(cfg);
}
END_TEST

/* ---- numbers out of range or malformed (loop test) ----------------------- */

static const struct {
    const char *section;
    const char *key;
    const char *min;
    const char *max;
    const char *below; /* NULL when min is 0 */
    const char *above;
} number_keys[] = {
    {"proxy", "threads", "0", "256", NULL, "257"},
    {"proxy", "vnodes", "1", "10000", "0", "10001"},
    {"proxy", "timeout_ms", "1", "600000", "0", "600001"},
    {"proxy", "connect_timeout_ms", "1", "60000", "0", "60001"},
    {"proxy", "backend_connections", "1", "64", "0", "65"},
    {"proxy", "max_connections", "0", "1000000", NULL, "1000001"},
    {"proxy", "backend_queue_limit", "1", "1000000", "0", "1000001"},
    {"proxy", "client_idle_timeout", "0", "2592000", NULL, "2592001"},
    {"proxy", "max_value_size", "1", "1073741824", "0", "1073741825"},
    {"proxy", "max_keys", "1", "100000", "0", "100001"},
    {"proxy", "client_output_limit", "4096", "1073741824", "4095",
     "1073741825"},
    {"health", "interval_ms", "10", "60000", "9", "60001"},
    {"health", "timeout_ms", "1", "60000", "0", "60001"},
    {"health", "rise", "1", "100", "0", "101"},
    {"health", "fall", "1", "100", "0", "101"},
    {"health", "recovery_log", "0", "10000000", NULL, "10000001"},
    {"health", "failover_ttl", "0", "2592000", NULL, "2592001"},
};

static void
expect_number_error(int i, const char *value, const char *needle)
{
    char text[512];
    char want[256];

    snprintf(text, sizeof(text), "# comment\n[%s]\n%s = %s\n" BACKEND,
             number_keys[i].section, number_keys[i].key, value);
    snprintf(want, sizeof(want), "%s: %s", number_keys[i].key, needle);
    expect_error(text, 3, want);
}

START_TEST(test_number_out_of_range)
{
    char range[128];

    snprintf(range, sizeof(range), "out of range %s..%s", number_keys[_i].min,
             number_keys[_i].max);
    if (number_keys[_i].below != NULL) {
        char want[160];

        snprintf(want, sizeof(want), "%s %s", number_keys[_i].below, range);
        expect_number_error(_i, number_keys[_i].below, want);
    }
    {
        char want[160];

        snprintf(want, sizeof(want), "%s %s", number_keys[_i].above, range);
        expect_number_error(_i, number_keys[_i].above, want);
    }
    expect_number_error(_i, "99999999999999999999999", "bad number");
}
END_TEST

START_TEST(test_number_malformed)
{
    static const char *const bad[] = {"",     "abc", "-1",  "+1",  "1k",
                                      "0x10", "1.5", "1 2", "1e3", "12a"};

    for (size_t j = 0; j < UTIL_ARRAY_SIZE(bad); j++) {
        char want[128];

        snprintf(want, sizeof(want),
                 "bad number '%s' (expected an integer in %s..%s)", bad[j],
                 number_keys[_i].min, number_keys[_i].max);
        expect_number_error(_i, bad[j], want);
    }
}
END_TEST

START_TEST(test_number_bounds_inclusive)
{
    char text[512];
    struct config *cfg;

    snprintf(text, sizeof(text), "[%s]\n%s = %s\n" BACKEND,
             number_keys[_i].section, number_keys[_i].key, number_keys[_i].min);
    cfg = load_ok(text);
    config_destroy(cfg);
    snprintf(text, sizeof(text), "[%s]\n%s = %s\n" BACKEND,
             number_keys[_i].section, number_keys[_i].key, number_keys[_i].max);
    cfg = load_ok(text);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_bad_hash_and_listen)
{
    expect_error("[proxy]\nhash = md5\n" BACKEND, 2,
                 "hash: bad value 'md5' (expected xxh3 or ketama)");
    expect_error("[proxy]\nhash =\n" BACKEND, 2, "hash: bad value");
    expect_error("[proxy]\nlisten = 127.0.0.1\n" BACKEND, 2,
                 "listen: bad address '127.0.0.1': missing port");
    expect_error("[proxy]\nlisten = 127.0.0.1:0\n" BACKEND, 2,
                 "listen: bad address '127.0.0.1:0': port 0 out of range");
}
END_TEST

/* ---- structure errors ---------------------------------------------------- */

START_TEST(test_unknown_section)
{
    expect_error("[proxy]\n\n[frontend]\nlisten = 1.2.3.4:5\n" BACKEND, 3,
                 "unknown section [frontend]");
    /* An empty unknown section is an error too. */
    expect_error(BACKEND "; c\n[prox]\n", 4, "unknown section [prox]");
    expect_error(BACKEND "[ proxy ]\n", 3, "unknown section [ proxy ]");
    expect_error(BACKEND "[Proxy]\n", 3, "unknown section [Proxy]");
}
END_TEST

START_TEST(test_text_after_section)
{
    struct config *cfg;

    expect_error("[proxy] threads = 2\n" BACKEND, 1,
                 "unexpected text after [proxy]");
    cfg = load_ok("[proxy] ; comment\n[health]  # comment\n" BACKEND);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_unknown_key)
{
    expect_error("[proxy]\nthreads = 2\nthread = 2\n" BACKEND, 3,
                 "unknown key 'thread' in [proxy]");
    expect_error("[health]\nlisten = 127.0.0.1:1\n" BACKEND, 2,
                 "unknown key 'listen' in [health]");
    expect_error("[proxy]\nThreads = 2\n" BACKEND, 2,
                 "unknown key 'Threads' in [proxy]");
}
END_TEST

START_TEST(test_bool_key)
{
    struct config *cfg = load_ok("[proxy]\nio_uring = off\n" BACKEND);

    ck_assert(!cfg->io_uring);
    config_destroy(cfg);
    cfg = load_ok("[proxy]\nio_uring = yes\n" BACKEND);
    ck_assert(cfg->io_uring);
    config_destroy(cfg);
    expect_error("[proxy]\nio_uring = maybe\n" BACKEND, 2,
                 "io_uring: expected yes or no, got 'maybe'");
    expect_error("[proxy]\nio_uring =\n" BACKEND, 2,
                 "io_uring: expected yes or no, got ''");
}
END_TEST

START_TEST(test_share_key)
{
    struct config *cfg = load_ok(BACKEND);

    ck_assert(cfg->failover_limit == 1.0);
    config_destroy(cfg);
    cfg = load_ok("[health]\nfailover_limit = 0.5\n" BACKEND);
    ck_assert(cfg->failover_limit == 0.5);
    config_destroy(cfg);
    cfg = load_ok("[health]\nfailover_limit = .25\n" BACKEND);
    ck_assert(cfg->failover_limit == 0.25);
    config_destroy(cfg);
    cfg = load_ok("[health]\nfailover_limit = 0\n" BACKEND);
    ck_assert(cfg->failover_limit == 0.0);
    config_destroy(cfg);
    expect_error("[health]\nfailover_limit = 1.5\n" BACKEND, 2,
                 "failover_limit: bad share '1.5'");
    expect_error("[health]\nfailover_limit = -0.5\n" BACKEND, 2,
                 "failover_limit: bad share '-0.5'");
    expect_error("[health]\nfailover_limit = 50%\n" BACKEND, 2,
                 "failover_limit: bad share '50%'");
    expect_error("[health]\nfailover_limit = 1e-1\n" BACKEND, 2,
                 "failover_limit: bad share '1e-1'");
}
END_TEST

START_TEST(test_key_outside_section)
{
    expect_error("# header\n\nthreads = 2\n" BACKEND, 3,
                 "key 'threads' outside a section");
}
END_TEST

START_TEST(test_duplicate_key)
{
    expect_error("[proxy]\nthreads = 2\nvnodes = 5\nthreads = 3\n" BACKEND, 4,
                 "duplicate key 'threads' in [proxy] (first set at line 2)");
    /* A section may be repeated, its keys may not. */
    expect_error("[health]\nrise = 2\n[proxy]\n[health]\nrise = 2\n" BACKEND, 5,
                 "duplicate key 'rise' in [health] (first set at line 2)");
    /* Same key name in two sections is fine. */
    config_destroy(
        load_ok("[proxy]\ntimeout_ms = 5\n[health]\ntimeout_ms = 5\n" BACKEND));
}
END_TEST

START_TEST(test_inih_syntax_error)
{
    expect_error("[proxy]\nthreads 2\n" BACKEND, 2, "syntax error");
    expect_error("[proxy\nthreads = 2\n" BACKEND, 1, "syntax error");
    /* The first error wins, whoever finds it. */
    expect_error("[proxy]\nthreads 2\nbogus = 1\n" BACKEND, 2, "syntax error");
    expect_error("[proxy]\nbogus = 1\nthreads 2\n" BACKEND, 2, "unknown key");
    /* ':' is not a separator for mcring. */
    expect_error("[proxy]\nthreads: 2\n" BACKEND, 2, "expected NAME = VALUE");
}
END_TEST

START_TEST(test_missing_file)
{
    char err[ERRLEN];
    char want[ERRLEN];

    ck_assert_ptr_null(
        config_load("/nonexistent/mcring.ini", err, sizeof(err)));
    snprintf(want, sizeof(want), "/nonexistent/mcring.ini: cannot open: %s",
             strerror(ENOENT));
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_directory_is_read_error)
{
    char err[ERRLEN];

    ck_assert_ptr_null(config_load("/tmp", err, sizeof(err)));
    ck_assert_msg(strncmp(err, "/tmp:", 5) == 0, "%s", err);
}
END_TEST

/* ---- backends ------------------------------------------------------------ */

START_TEST(test_backend_address_forms)
{
    struct config *cfg = load_ok("[backends]\n"
                                 "a = 10.0.0.1:11211\n"
                                 "b = [::1]:11211\n"
                                 "c = localhost:11212\n"
                                 "d = cache-1.example.com:1\n"
                                 "e = [fe80::1%eth0]:65535\n");

    ck_assert_uint_eq(cfg->nbackends, 5);
    ck_assert_str_eq(cfg->backends[0].host, "10.0.0.1");
    ck_assert_uint_eq(cfg->backends[0].port, 11211);
    ck_assert_str_eq(cfg->backends[1].host, "::1");
    ck_assert_uint_eq(cfg->backends[1].port, 11211);
    ck_assert_str_eq(cfg->backends[2].host, "localhost");
    ck_assert_uint_eq(cfg->backends[2].port, 11212);
    ck_assert_str_eq(cfg->backends[3].host, "cache-1.example.com");
    ck_assert_uint_eq(cfg->backends[3].port, 1);
    ck_assert_str_eq(cfg->backends[4].host, "fe80::1%eth0");
    ck_assert_uint_eq(cfg->backends[4].port, 65535);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_backend_weights)
{
    struct config *cfg = load_ok("[backends]\n"
                                 "a = 127.0.0.1:1\n"
                                 "b = 127.0.0.1:2 weight=2\n"
                                 "c = 127.0.0.1:3 weight=0.5\n"
                                 "d = 127.0.0.1:4\tweight=1.25\n"
                                 "e = 127.0.0.1:5   weight=.1  \n"
                                 "f = 127.0.0.1:6 weight=1000\n"
                                 "g = 127.0.0.1:7 weight=0.001\n"
                                 "h = 127.0.0.1:8 weight=007.50 ; comment\n");

    ck_assert_uint_eq(cfg->nbackends, 8);
    ck_assert(cfg->backends[0].weight == 1.0);
    ck_assert(cfg->backends[1].weight == 2.0);
    ck_assert(cfg->backends[2].weight == 0.5);
    ck_assert(cfg->backends[3].weight == 1.25);
    ck_assert(cfg->backends[4].weight == 0.1);
    ck_assert(cfg->backends[5].weight == 1000.0);
    ck_assert(cfg->backends[6].weight == 0.001);
    ck_assert(cfg->backends[7].weight == 7.5);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_backend_bad_weight)
{
    static const char *const bad[] = {
        "0",        "0.0",
        "-1",       "abc",
        "inf",      "nan",
        "1e3",      "0x10",
        "",         "1.",
        ".",        "1,5",
        "+1",       "1001",
        "1000.001", "0.0000000000000001", /* more than 15 digits */
    };

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
        char text[256];
        char want[128];

        snprintf(text, sizeof(text),
                 "[backends]\na = 127.0.0.1:1\nb = 127.0.0.1:2 weight=%s\n",
                 bad[i]);
        snprintf(want, sizeof(want), "backend 'b': bad weight '%s'", bad[i]);
        expect_error(text, 3, want);
    }
    expect_error("[backends]\nb = 127.0.0.1:2 weight=1 weight=2\n", 2,
                 "weight given twice");
}
END_TEST

START_TEST(test_backend_unknown_option)
{
    expect_error("[backends]\na = 127.0.0.1:1 weigth=2\n", 2,
                 "backend 'a': unknown option 'weigth=2'");
    expect_error("[backends]\na = 127.0.0.1:1 weight = 2\n", 2,
                 "unknown option 'weight'");
    expect_error("[backends]\na = 127.0.0.1:1 127.0.0.1:2\n", 2,
                 "unknown option '127.0.0.1:2'");
    /* '#' is no inline comment. */
    expect_error("[backends]\na = 127.0.0.1:1 # main\n", 2,
                 "unknown option '#'");
}
END_TEST

/* ramp=S on a [backends] line: whole seconds, once; rendered back. */
START_TEST(test_backend_ramp)
{
    static const char *const bad[] = {"-1", "abc", "1.5", "", "604801",
                                      "99999999999999999999"};
    struct config *cfg = load_ok("[backends]\n"
                                 "a = 127.0.0.1:1 ramp=20 weight=2\n"
                                 "b = 127.0.0.1:2\n"
                                 "c = 127.0.0.1:3 ramp=0\n");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    ck_assert_int_eq(cfg->backends[0].ramp, 20);
    ck_assert(cfg->backends[0].weight == 2.0);
    ck_assert_int_eq(cfg->backends[1].ramp, -1);
    ck_assert_int_eq(cfg->backends[2].ramp, 0);
    config_render(cfg, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "a = 127.0.0.1:1 weight=2 ramp=20\n"));
    ck_assert_ptr_nonnull(strstr(text, "b = 127.0.0.1:2\n"));
    ck_assert_ptr_nonnull(strstr(text, "c = 127.0.0.1:3 ramp=0\n"));
    free(text);
    config_destroy(cfg);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
        char line[128];
        char want[128];

        snprintf(line, sizeof(line), "[backends]\na = 127.0.0.1:1 ramp=%s\n",
                 bad[i]);
        snprintf(want, sizeof(want), "backend 'a': bad ramp '%s'", bad[i]);
        expect_error(line, 2, want);
    }
    expect_error("[backends]\na = 127.0.0.1:1 ramp=1 ramp=2\n", 2,
                 "ramp given twice");
}
END_TEST

START_TEST(test_backend_names)
{
    char text[256];
    char name[CONFIG_NAME_MAX + 2];
    struct config *cfg = load_ok("[backends]\n"
                                 "mc:1 = 127.0.0.1:1\n"
                                 "a.b-c_D9 = 127.0.0.1:2\n");

    ck_assert_str_eq(cfg->backends[0].name, "a.b-c_D9");
    ck_assert_str_eq(cfg->backends[1].name, "mc:1");
    ck_assert_str_eq(cfg->backends[1].host, "127.0.0.1");
    ck_assert_uint_eq(cfg->backends[1].port, 1);
    config_destroy(cfg);

    memset(name, 'n', CONFIG_NAME_MAX);
    name[CONFIG_NAME_MAX] = '\0';
    snprintf(text, sizeof(text), "[backends]\n%s = 127.0.0.1:1\n", name);
    cfg = load_ok(text);
    ck_assert_uint_eq(strlen(cfg->backends[0].name), CONFIG_NAME_MAX);
    config_destroy(cfg);

    name[CONFIG_NAME_MAX] = 'n';
    name[CONFIG_NAME_MAX + 1] = '\0';
    snprintf(text, sizeof(text), "[backends]\n%s = 127.0.0.1:1\n", name);
    expect_error(text, 2, "bad backend name");
    expect_error("[backends]\nmc 1 = 127.0.0.1:1\n", 2,
                 "bad backend name 'mc 1'");
    expect_error("[backends]\nmc/1 = 127.0.0.1:1\n", 2, "bad backend name");
    expect_error("[backends]\n= 127.0.0.1:1\n", 2, "bad backend name ''");
}
END_TEST

START_TEST(test_backend_duplicate_name)
{
    expect_error("[backends]\n"
                 "a = 127.0.0.1:1\n"
                 "b = 127.0.0.1:2\n"
                 "\n"
                 "a = 127.0.0.1:3\n",
                 5, "duplicate backend name 'a' (first defined at line 2)");
}
END_TEST

START_TEST(test_backend_duplicate_address)
{
    struct config *cfg;

    expect_error("[backends]\n"
                 "a = 127.0.0.1:11211\n"
                 "b = 127.0.0.1:11211 weight=2\n",
                 3,
                 "backend 'b': duplicate address 127.0.0.1:11211 (same as "
                 "backend 'a' at line 2)");
    expect_error("[backends]\n"
                 "a = cache1:11211\n"
                 "b = 127.0.0.1:11211\n"
                 "c = CACHE1:11211\n",
                 4, "duplicate address CACHE1:11211 (same as backend 'a'");
    expect_error("[backends]\na = [::1]:1\nb = [::1]:1\n", 3,
                 "duplicate address");
    /* Same host, other port: fine. */
    cfg = load_ok("[backends]\na = 127.0.0.1:1\nb = 127.0.0.1:2\n");
    config_destroy(cfg);
}
END_TEST

START_TEST(test_backend_malformed_address)
{
    static const struct {
        const char *addr;
        const char *reason;
    } bad[] = {
        {"127.0.0.1", "missing port"},
        {"127.0.0.1:", "missing port"},
        {"127.0.0.1:0", "port 0 out of range 1..65535"},
        {"127.0.0.1:65536", "port 65536 out of range 1..65535"},
        {"127.0.0.1:99999999999999999999999", "bad port"},
        {"127.0.0.1:http", "bad port 'http'"},
        {"127.0.0.1:-1", "bad port"},
        {":11211", "empty host"},
        {"[]:11211", "empty host"},
        {"[::1:11211", "missing ']'"},
        {"[::1]11211", "expected ':' after ']'"},
        {"[::1]", "missing port"},
        {"[127.0.0.1]:1", "bad IPv6 address in brackets"},
        {"[::1%]:1", "bad IPv6 zone"},
        {"::1:11211", "IPv6 address must be in brackets"},
        {"::1", "IPv6 address must be in brackets"},
        {"host]:1", "bad brackets"},
        {"a[b:1", "bad brackets"},
        {"ho$t:1", "bad character"},
    };

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
        char text[256];
        char want[256];

        snprintf(text, sizeof(text), "[backends]\nok = 127.0.0.1:1\nx = %s\n",
                 bad[i].addr);
        snprintf(want, sizeof(want), "backend 'x': bad address '%s': %s",
                 bad[i].addr, bad[i].reason);
        expect_error(text, 3, want);
    }
    expect_error("[backends]\nx =\n", 2, "backend 'x': missing HOST:PORT");
}
END_TEST

START_TEST(test_no_backends)
{
    struct loaded l;

    expect_error("[proxy]\nthreads = 1\n\n[backends]\n; none yet\n\n", 4,
                 "no backends");
    expect_error("[proxy]\nthreads = 1\n\n# end\n", 4, "no backends");
    expect_error("[proxy]\nthreads = 1", 2, "no backends");
    expect_error("", 1, "no backends");
    /* The first [backends] header is the one reported. */
    expect_error("[backends]\n[proxy]\n[backends]\n", 1, "no backends");
    load_bytes(&l, "\n", 1);
    ck_assert_ptr_null(l.cfg);
}
END_TEST

START_TEST(test_backends_sorted_by_name)
{
    struct config *cfg = load_ok("[backends]\n"
                                 "zeta = 127.0.0.1:1\n"
                                 "alpha = 127.0.0.1:2\n"
                                 "[proxy]\n"
                                 "threads = 1\n"
                                 "[backends]\n"
                                 "Mid = 127.0.0.1:3\n"
                                 "beta = 127.0.0.1:4\n"
                                 "alpha2 = 127.0.0.1:5\n");
    static const char *const want[] = {"Mid", "alpha", "alpha2", "beta",
                                       "zeta"};
    static const int lines[] = {7, 3, 9, 8, 2};

    ck_assert_uint_eq(cfg->nbackends, 5);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(want); i++) {
        ck_assert_str_eq(cfg->backends[i].name, want[i]);
        ck_assert_int_eq(cfg->backends[i].line, lines[i]);
    }
    ck_assert_uint_eq(cfg->backends[1].port, 2);
    config_destroy(cfg);
}
END_TEST

/* ---- [admin] ------------------------------------------------------------- */

START_TEST(test_admin_off_by_default)
{
    struct config *cfg = load_ok(BACKEND);

    ck_assert_ptr_null(cfg->admin_listen);
    ck_assert_ptr_null(cfg->admin_token);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_admin_keys_parsed)
{
    static const char *const ok[] = {
        "127.0.0.1:11312", "127.1.2.3:1",       "localhost:8080",
        "LocalHost:8080",  "[::1]:11312",       "/run/mcring/admin.sock",
    };
    struct config *cfg;
    char text[512];

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(ok); i++) {
        snprintf(text, sizeof(text), "[admin]\nlisten = %s\n" BACKEND, ok[i]);
        cfg = load_ok(text);
        ck_assert_str_eq(cfg->admin_listen, ok[i]);
        ck_assert_ptr_null(cfg->admin_token);
        config_destroy(cfg);
    }
    cfg = load_ok("[admin]\nlisten = 0.0.0.0:11312\ntoken = s3cr;t!\n" BACKEND);
    ck_assert_str_eq(cfg->admin_listen, "0.0.0.0:11312");
    ck_assert_str_eq(cfg->admin_token, "s3cr;t!");
    config_destroy(cfg);
    /* The token may come after the listen line, or before it. */
    cfg = load_ok("[admin]\ntoken = abc\n[proxy]\nthreads = 1\n[admin]\n"
                  "listen = [2001:db8::1]:11312\n" BACKEND);
    ck_assert_str_eq(cfg->admin_listen, "[2001:db8::1]:11312");
    ck_assert_str_eq(cfg->admin_token, "abc");
    config_destroy(cfg);
}
END_TEST

START_TEST(test_admin_non_loopback_needs_token)
{
    expect_error("[admin]\nlisten = 0.0.0.0:11312\n" BACKEND, 2,
                 "a token is needed");
    expect_error("[proxy]\nthreads = 1\n[admin]\n\nlisten = 10.0.0.1:1\n"
                 BACKEND,
                 5, "10.0.0.1:1 is not a loopback address");
    expect_error("[admin]\nlisten = [2001:db8::1]:80\n" BACKEND, 2,
                 "a token is needed");
    expect_error("[admin]\nlisten = example.com:80\n" BACKEND, 2,
                 "a token is needed");
    expect_error("[admin]\nlisten = 128.0.0.1:80\n" BACKEND, 2,
                 "a token is needed");
}
END_TEST

START_TEST(test_admin_errors)
{
    char longtoken[CONFIG_TOKEN_MAX + 2];
    char longpath[CONFIG_UNIX_PATH_MAX + 2];
    char text[512];

    expect_error("[admin]\nport = 1\n" BACKEND, 2,
                 "unknown key 'port' in [admin]");
    expect_error("[admin]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n"
                 BACKEND,
                 3, "duplicate key 'listen' in [admin] (first set at line 2)");
    expect_error("[admin]\ntoken = a\ntoken = b\n" BACKEND, 3,
                 "duplicate key 'token' in [admin]");
    expect_error("[admin]\nlisten = 127.0.0.1\n" BACKEND, 2,
                 "listen: bad address '127.0.0.1'");
    expect_error("[admin]\nlisten = relative.sock\n" BACKEND, 2,
                 "absolute unix socket path");
    expect_error("[admin]\nlisten =\n" BACKEND, 2, "listen: bad address");
    expect_error("[admin]\nlisten = /tmp/a b\n" BACKEND, 2,
                 "bad unix socket path");
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    snprintf(text, sizeof(text), "[admin]\nlisten = %s\n" BACKEND, longpath);
    expect_error(text, 2, "unix socket path too long (max 107 bytes)");
    expect_error("[admin]\ntoken =\n" BACKEND, 2, "token: expected 1..128");
    expect_error("[admin]\ntoken = a b\n" BACKEND, 2, "token: expected");
    expect_error("[admin]\ntoken = a\x01" "b\n" BACKEND, 2, "token: expected");
    memset(longtoken, 't', sizeof(longtoken) - 1);
    longtoken[sizeof(longtoken) - 1] = '\0';
    snprintf(text, sizeof(text), "[admin]\ntoken = %s\n" BACKEND, longtoken);
    expect_error(text, 2, "token: expected 1..128");
    longtoken[CONFIG_TOKEN_MAX] = '\0';
    snprintf(text, sizeof(text), "[admin]\ntoken = %s\n" BACKEND, longtoken);
    config_destroy(load_ok(text));
    expect_error(BACKEND "[admn]\n", 3, "[admin]");
}
END_TEST

/* ---- clone, edit, render ------------------------------------------------- */

static void
assert_config_equal(const struct config *a, const struct config *b)
{
    for (size_t i = 0; i < config_nkeys(); i++) {
        const char *sa, *sb, *na, *nb;
        char va[256], vb[256];

        ck_assert_int_eq(config_key_format(a, i, &sa, &na, va, sizeof(va)), 0);
        ck_assert_int_eq(config_key_format(b, i, &sb, &nb, vb, sizeof(vb)), 0);
        ck_assert_str_eq(sa, sb);
        ck_assert_str_eq(na, nb);
        ck_assert_msg(strcmp(va, vb) == 0, "[%s] %s: '%s' != '%s'", sa, na, va,
                      vb);
    }
    ck_assert_str_eq(a->listen_host, b->listen_host);
    ck_assert_uint_eq(a->listen_port, b->listen_port);
    ck_assert_pstr_eq(a->admin_listen, b->admin_listen);
    ck_assert_pstr_eq(a->admin_token, b->admin_token);
    ck_assert_uint_eq(a->nbackends, b->nbackends);
    for (size_t i = 0; i < a->nbackends; i++) {
        ck_assert_str_eq(a->backends[i].name, b->backends[i].name);
        ck_assert_str_eq(a->backends[i].host, b->backends[i].host);
        ck_assert_uint_eq(a->backends[i].port, b->backends[i].port);
        ck_assert_msg(a->backends[i].weight == b->backends[i].weight,
                      "%s: weight %.17g != %.17g", a->backends[i].name,
                      a->backends[i].weight, b->backends[i].weight);
    }
}

/* Renders cfg, loads the text back; the caller destroys both. */
static struct config *
render_and_load(const struct config *cfg, char **textp)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    struct config *back;

    ck_assert_ptr_nonnull(fp);
    config_render(cfg, fp);
    ck_assert_int_eq(fclose(fp), 0);
    back = load_ok(text);
    if (textp != NULL) {
        *textp = text;
    } else {
        free(text);
    }
    return back;
}

START_TEST(test_delete_spool)
{
    struct config *cfg =
        load_ok("[proxy]\ndelete_spool = /var/lib/mcring/spool\n"
                "delete_spool_max = 1\n" BACKEND);
    struct config *back;
    char *text;

    ck_assert_str_eq(cfg->delete_spool, "/var/lib/mcring/spool");
    ck_assert_uint_eq(cfg->delete_spool_max, 1);
    back = render_and_load(cfg, &text);
    ck_assert_ptr_nonnull(strstr(text, "delete_spool = /var/lib/mcring/spool\n"
                                       "delete_spool_max = 1\n"));
    ck_assert_str_eq(back->delete_spool, "/var/lib/mcring/spool");
    config_destroy(back);
    back = config_clone(cfg);
    ck_assert_str_eq(back->delete_spool, "/var/lib/mcring/spool");
    ck_assert_ptr_ne(back->delete_spool, cfg->delete_spool);
    config_destroy(back);
    config_destroy(cfg);
    free(text);
    /* Empty: off, and so rendered. */
    cfg = load_ok("[proxy]\ndelete_spool =\n" BACKEND);
    ck_assert_ptr_null(cfg->delete_spool);
    back = render_and_load(cfg, &text);
    ck_assert_ptr_nonnull(strstr(text, "delete_spool = \n"));
    ck_assert_ptr_null(back->delete_spool);
    config_destroy(back);
    config_destroy(cfg);
    free(text);
    expect_error("[proxy]\ndelete_spool = spool\n" BACKEND, 2,
                 "delete_spool: expected an absolute file name");
    expect_error("[proxy]\ndelete_spool = /a\ndelete_spool = /b\n" BACKEND,
                 3, "duplicate key 'delete_spool'");
    /* The bound: 1..10000000. */
    expect_error("[proxy]\ndelete_spool_max = 0\n" BACKEND, 2,
                 "delete_spool_max: 0 out of range 1..10000000");
    expect_error("[proxy]\ndelete_spool_max = 10000001\n" BACKEND, 2,
                 "delete_spool_max: 10000001 out of range");
    cfg = load_ok("[proxy]\ndelete_spool_max = 10000000\n" BACKEND);
    ck_assert_uint_eq(cfg->delete_spool_max, 10000000);
    config_destroy(cfg);
}
END_TEST

static const char *const round_trip_configs[] = {
    BACKEND,
    "[health]\nfailover_limit = 0.0000001\n" BACKEND,
    "[proxy]\nclient_rate = 1000\nclient_burst = 50\n"
    "[pool p]\nrate = 300\nburst = 20\nb = 127.0.0.1:1\n",
    "[proxy]\nlisten = [::1]:22122\nthreads = 3\nhash = ketama\n"
    "vnodes = 7\ntimeout_ms = 9\nconnect_timeout_ms = 8\n"
    "backend_connections = 2\nmax_connections = 77\nmax_value_size = 5\n"
    "max_keys = 6\nclient_output_limit = 4096\n"
    "[health]\ninterval_ms = 11\ntimeout_ms = 12\nrise = 13\nfall = 14\n"
    "recovery_log = 0\nfailover_ttl = 2592000\n"
    "[admin]\nlisten = 0.0.0.0:11312\ntoken =;x=y\n"
    "[backends]\n"
    "v6 = [::1]:11211 weight=0.5\n"
    "zone = [fe80::1%lo]:11212 weight=2.25\n"
    "named = localhost:11213 weight=1000\n"
    "tiny = 127.0.0.1:11214 weight=.000000000000015\n"
    "small = 127.0.0.1:11215 weight=0.00001\n"
    "long = 127.0.0.1:11216 weight=123.456789012345\n"
    "one = 127.0.0.1:11217 weight=1.0\n",
    "[admin]\nlisten = /tmp/mcring-admin.sock\n"
    "[backends]\nb = example.com:1 weight=0.1\na = 10.0.0.1:65535\n",
};

START_TEST(test_render_round_trip)
{
    struct config *cfg = load_ok(round_trip_configs[_i]);
    struct config *back = render_and_load(cfg, NULL);
    struct config *again = render_and_load(back, NULL);

    assert_config_equal(cfg, back);
    assert_config_equal(cfg, again);
    config_destroy(again);
    config_destroy(back);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_render_text)
{
    struct config *cfg = load_ok("[backends]\nb = [::1]:2 weight=0.5\n"
                                 "a = 127.0.0.1:1\n");
    char *text;
    struct config *back = render_and_load(cfg, &text);

    ck_assert_ptr_nonnull(strstr(text, "\n[proxy]\nlisten = 127.0.0.1:11311\n"
                                       "listen_mode = 0660\n"
                                       "threads = 0\nio_uring = yes\n"
                                       "hash = xxh3\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n[health]\ninterval_ms = 200\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n[backends]\na = 127.0.0.1:1\n"
                                       "b = [::1]:2 weight=0.5\n"));
    ck_assert_ptr_null(strstr(text, "[admin]"));
    config_destroy(back);
    config_destroy(cfg);
    free(text);
}
END_TEST

START_TEST(test_key_format)
{
    struct config cfg;
    const char *section, *name;
    char value[64];
    size_t n = config_nkeys();
    bool seen_hash = false;

    config_defaults(&cfg);
    ck_assert_uint_eq(n, 39);
    ck_assert_int_eq(config_key_format(&cfg, 0, &section, &name, value,
                                       sizeof(value)),
                     0);
    ck_assert_str_eq(section, "proxy");
    ck_assert_str_eq(name, "listen");
    ck_assert_str_eq(value, "127.0.0.1:11311");
    cfg.hash = RING_HASH_KETAMA;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(config_key_format(&cfg, i, &section, &name, value,
                                           sizeof(value)),
                         0);
        if (strcmp(name, "hash") == 0) {
            ck_assert_str_eq(value, "ketama");
            seen_hash = true;
        }
    }
    ck_assert(seen_hash);
    ck_assert_int_eq(config_key_format(&cfg, n, &section, &name, value,
                                       sizeof(value)),
                     -1);
    ck_assert_int_eq(config_key_format(&cfg, 0, &section, &name, value, 4),
                     -1);
}
END_TEST

START_TEST(test_format_weight)
{
    static const struct {
        double w;
        const char *text;
    } ok[] = {
        {1, "1"},          {0.5, "0.5"},       {2.25, "2.25"},
        {1000, "1000"},    {0.1, "0.1"},       {123.456, "123.456"},
        {1e-5, "0.00001"}, {1.5e-14, ".000000000000015"},
    };
    char buf[64];

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(ok); i++) {
        ck_assert_int_eq(config_format_weight(ok[i].w, buf, sizeof(buf)), 0);
        ck_assert_str_eq(buf, ok[i].text);
    }
    ck_assert_int_eq(config_format_weight(1.0 / 3, buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_format_weight(0, buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_format_weight(1000.5, buf, sizeof(buf)), -1);
    ck_assert_int_eq(config_format_weight(2.25, buf, 3), -1);
}
END_TEST

START_TEST(test_clone_is_deep)
{
    struct config *cfg = load_ok("[admin]\nlisten = 127.0.0.1:1\ntoken = t\n"
                                 BACKEND "mc2 = 127.0.0.1:2 weight=3\n");
    struct config *c = config_clone(cfg);
    char err[256];

    ck_assert_ptr_ne(c->backends, cfg->backends);
    ck_assert_ptr_ne(c->backends[0].name, cfg->backends[0].name);
    ck_assert_ptr_ne(c->admin_token, cfg->admin_token);
    ck_assert_ptr_ne(c->path, cfg->path);
    assert_config_equal(cfg, c);
    ck_assert_int_eq(config_set_weight(c, "mc2", 0.5, err, sizeof(err)), 0);
    ck_assert(cfg->backends[1].weight == 3.0);
    config_destroy(cfg);
    /* The clone outlives its original. */
    ck_assert_str_eq(c->backends[1].name, "mc2");
    ck_assert(c->backends[1].weight == 0.5);
    config_destroy(c);
}
END_TEST

START_TEST(test_add_backend_sorted)
{
    struct config *cfg = load_ok("[backends]\nm = 127.0.0.1:1\n"
                                 "c = 127.0.0.1:2\n");
    static const char *const want[] = {"a", "b", "c", "m", "z"};
    struct config *back;
    char err[256];

    ck_assert_int_eq(config_add_backend_str(cfg, NULL, "z", "127.0.0.1:3", 1, err,
                                            sizeof(err)),
                     0);
    ck_assert_int_eq(config_add_backend_str(cfg, NULL, "a", "[::1]:4", 0.5, err,
                                            sizeof(err)),
                     0);
    ck_assert_int_eq(config_add_backend_str(cfg, NULL, "b", "localhost:5", 2.25,
                                            err, sizeof(err)),
                     0);
    ck_assert_uint_eq(cfg->nbackends, UTIL_ARRAY_SIZE(want));
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(want); i++) {
        ck_assert_str_eq(cfg->backends[i].name, want[i]);
    }
    ck_assert_str_eq(cfg->backends[0].host, "::1");
    ck_assert_uint_eq(cfg->backends[0].port, 4);
    ck_assert(cfg->backends[0].weight == 0.5);
    ck_assert_int_eq(cfg->backends[0].line, 0);
    ck_assert_int_eq(cfg->backends[3].line, 2);
    back = render_and_load(cfg, NULL);
    assert_config_equal(cfg, back);
    config_destroy(back);
    config_destroy(cfg);
}
END_TEST

static void
expect_add_error(struct config *cfg, const char *name, const char *addr,
                 double weight, const char *needle)
{
    char err[256] = "";
    size_t n = cfg->nbackends;
    int want = strstr(needle, "duplicate") != NULL ? CONFIG_ECONFLICT : -1;

    ck_assert_int_eq(config_add_backend_str(cfg, NULL, name, addr, weight, err,
                                            sizeof(err)),
                     want);
    ck_assert_msg(strstr(err, needle) != NULL, "got '%s', want '%s'", err,
                  needle);
    ck_assert_msg(strchr(err, '/') == NULL, "FILE in '%s'", err);
    ck_assert_uint_eq(cfg->nbackends, n);
}

START_TEST(test_add_backend_errors)
{
    struct config *cfg = load_ok(BACKEND "mc2 = [::1]:11212\n");
    char longname[CONFIG_NAME_MAX + 2];
    char err[256];

    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_add_error(cfg, "bad name", "127.0.0.1:1", 1, "bad backend name");
    expect_add_error(cfg, "", "127.0.0.1:1", 1, "bad backend name");
    expect_add_error(cfg, longname, "127.0.0.1:1", 1, "bad backend name");
    expect_add_error(cfg, "mc1", "127.0.0.1:1", 1,
                     "duplicate backend name 'mc1' (first defined at line 2)");
    expect_add_error(cfg, "x", "127.0.0.1:11211", 1,
                     "duplicate address 127.0.0.1:11211 (same as backend "
                     "'mc1' at line 2)");
    expect_add_error(cfg, "x", "[::1]:11212", 1, "duplicate address");
    expect_add_error(cfg, "x", "127.0.0.1", 1, "bad address '127.0.0.1'");
    expect_add_error(cfg, "x", "::1:5", 1, "IPv6 address must be in brackets");
    expect_add_error(cfg, "x", "127.0.0.1:0", 1, "out of range");
    expect_add_error(cfg, "x", "127.0.0.1:1", 0, "bad weight");
    expect_add_error(cfg, "x", "127.0.0.1:1", -1, "bad weight");
    expect_add_error(cfg, "x", "127.0.0.1:1", 1000.5, "bad weight");
    expect_add_error(cfg, "x", "127.0.0.1:1", 1.0 / 3, "15 significant");
    /* Added backends count as duplicates too, without a line. */
    ck_assert_int_eq(config_add_backend_str(cfg, NULL, "x", "127.0.0.1:1", 1, err,
                                            sizeof(err)),
                     0);
    expect_add_error(cfg, "x", "127.0.0.1:2", 1, "duplicate backend name 'x'");
    expect_add_error(cfg, "y", "127.0.0.1:1", 1,
                     "duplicate address 127.0.0.1:1 (same as backend 'x')");
    config_destroy(cfg);
}
END_TEST

START_TEST(test_remove_and_weight)
{
    struct config *cfg = load_ok(BACKEND "mc2 = 127.0.0.1:2\n"
                                         "mc3 = 127.0.0.1:3\n");
    char err[256];

    ck_assert_int_eq(config_remove_backend(cfg, NULL, "mc2", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg->nbackends, 2);
    ck_assert_str_eq(cfg->backends[0].name, "mc1");
    ck_assert_str_eq(cfg->backends[1].name, "mc3");
    ck_assert_int_eq(config_backend_index(cfg, "mc3"), 1);
    ck_assert_int_eq(config_backend_index(cfg, "mc2"), -1);
    ck_assert_int_eq(config_remove_backend(cfg, NULL, "mc2", err, sizeof(err)), CONFIG_ENOENT);
    ck_assert_str_eq(err, "no backend 'mc2'");
    ck_assert_int_eq(config_remove_backend(cfg, NULL, "mc1", err, sizeof(err)), 0);
    ck_assert_int_eq(config_remove_backend(cfg, NULL, "mc3", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "cannot remove the last backend");
    ck_assert_uint_eq(cfg->nbackends, 1);

    ck_assert_int_eq(config_set_weight(cfg, "mc3", 2.5, err, sizeof(err)), 0);
    ck_assert(cfg->backends[0].weight == 2.5);
    ck_assert_int_eq(config_set_weight(cfg, "nope", 2, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "no backend 'nope'");
    ck_assert_int_eq(config_set_weight(cfg, "mc3", 0, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "bad weight"));
    ck_assert_int_eq(config_set_weight(cfg, "mc3", 1001, err, sizeof(err)),
                     -1);
    ck_assert_int_eq(config_set_weight(cfg, "mc3", 0.1 + 0.2, err,
                                       sizeof(err)),
                     -1);
    ck_assert(cfg->backends[0].weight == 2.5);
    config_destroy(cfg);
}
END_TEST

/* ---- inih traps ---------------------------------------------------------- */

/* "a = 127.0.0.1:11211" padded with trailing spaces to len bytes. */
static void
padded_backend_line(char *buf, size_t len)
{
    const char *s = "a = 127.0.0.1:11211";

    memset(buf, ' ', len);
    memcpy(buf, s, strlen(s));
    buf[len] = '\0';
}

START_TEST(test_line_too_long)
{
    char line[5001];
    char text[6000];

    padded_backend_line(line, 200);
    snprintf(text, sizeof(text), "[backends]\n\n%s\nb = 127.0.0.1:2\n", line);
    expect_error(text, 3, "line too long (max 199 bytes)");

    /* A long comment is caught too, and so is a last line with no EOL. */
    memset(line, '#', 5000);
    line[5000] = '\0';
    snprintf(text, sizeof(text), BACKEND "%s\n", line);
    expect_error(text, 3, "line too long (max 199 bytes)");
    snprintf(text, sizeof(text), BACKEND "%.250s", line);
    expect_error(text, 3, "line too long (max 199 bytes)");
    /* 200 bytes are too long with a CRLF end too. */
    padded_backend_line(line, 200);
    snprintf(text, sizeof(text), "[backends]\n%s\r\n", line);
    expect_error(text, 2, "line too long");
}
END_TEST

START_TEST(test_line_at_limit_accepted)
{
    char line[CONFIG_LINE_MAX + 1];
    char text[1024];
    struct config *cfg;

    padded_backend_line(line, CONFIG_LINE_MAX);
    snprintf(text, sizeof(text), "[backends]\n%s\nb = 127.0.0.1:2\n", line);
    cfg = load_ok(text);
    ck_assert_uint_eq(cfg->nbackends, 2);
    ck_assert_int_eq(cfg->backends[1].line, 3);
    config_destroy(cfg);
    /* CRLF line ends do not count towards the limit. */
    snprintf(text, sizeof(text), "[backends]\r\n%s\r\nb = 127.0.0.1:2\r\n",
             line);
    cfg = load_ok(text);
    ck_assert_uint_eq(cfg->nbackends, 2);
    ck_assert_str_eq(cfg->backends[1].name, "b");
    config_destroy(cfg);
    /* A 199-byte value survives whole (inih would have split it). */
    memset(line, '#', CONFIG_LINE_MAX);
    line[CONFIG_LINE_MAX] = '\0';
    snprintf(text, sizeof(text), "%s\n" BACKEND, line);
    cfg = load_ok(text);
    ck_assert_int_eq(cfg->backends[0].line, 3);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_indented_line_rejected)
{
    expect_error("[proxy]\nthreads = 2\n  vnodes = 5\n" BACKEND, 3,
                 "indented line");
    expect_error("[backends]\na = 127.0.0.1:1\n\tweight=2\n", 3,
                 "indented line");
    expect_error(BACKEND "  [proxy]\n", 3, "indented line");
    expect_error("[backends]\n a = 127.0.0.1:1\n", 2, "indented line");
}
END_TEST

START_TEST(test_blank_and_comment_lines)
{
    struct config *cfg = load_ok("\xEF\xBB\xBF# BOM, then a comment\n"
                                 "; semicolon comment\n"
                                 "   \n"
                                 "\t\n"
                                 "  ; indented comment\n"
                                 "\t# indented comment\n"
                                 "[proxy]\n"
                                 "threads = 3 ; inline comment\n"
                                 "hash=ketama\n"
                                 "[backends]\n"
                                 "a=127.0.0.1:1 weight=2 ;x\n");

    ck_assert_uint_eq(cfg->threads, 3);
    ck_assert_int_eq(cfg->hash, RING_HASH_KETAMA);
    ck_assert(cfg->backends[0].weight == 2.0);
    ck_assert_int_eq(cfg->backends[0].line, 11);
    config_destroy(cfg);
    /* ';' without a space before it is part of the value. */
    expect_error("[proxy]\nthreads = 3;x\n" BACKEND, 2, "bad number '3;x'");
    /* '#' is not an inline comment. */
    expect_error("[proxy]\nthreads = 3 # x\n" BACKEND, 2, "bad number '3 # x'");
}
END_TEST

START_TEST(test_nul_byte_rejected)
{
    static const char text[] = "[proxy]\nthreads = 1\0 2\n" BACKEND;

    expect_error_bytes(text, sizeof(text) - 1, 2, "NUL byte");
}
END_TEST

/* ---- sample configs ------------------------------------------------------ */

START_TEST(test_sample_configs_load)
{
    static const char *const files[] = {"etc/mcring.ini.in",
                                        "etc/mcring-minimal.ini"};

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(files); i++) {
        char path[4096];
        char err[ERRLEN];
        struct config *cfg;

        snprintf(path, sizeof(path), "%s/%s", srcdir(), files[i]);
        cfg = config_load(path, err, sizeof(err));
        ck_assert_msg(cfg != NULL, "%s", err);
        assert_defaults(cfg);
        ck_assert_uint_ge(cfg->nbackends, 1);
        ck_assert_str_eq(cfg->backends[0].name, "mc1");
        ck_assert_str_eq(cfg->backends[0].host, "127.0.0.1");
        ck_assert_uint_eq(cfg->backends[0].port, 11211);
        if (i == 0) {
            ck_assert_uint_eq(cfg->nbackends, 3);
            ck_assert_uint_eq(cfg->backends[2].port, 11213);
        }
        config_destroy(cfg);
    }
}
END_TEST

/*
 * Every key is in the sample as "; key = default": uncommenting those lines
 * must give a valid config equal to the defaults, with all 17 keys set.
 */
START_TEST(test_sample_documents_defaults)
{
    char path[4096];
    char line[512];
    char *text = util_xcalloc(1, 65536);
    size_t len = 0;
    unsigned nkeys = 0;
    FILE *fp;
    struct config *cfg;

    snprintf(path, sizeof(path), "%s/etc/mcring.ini.in", srcdir());
    fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), fp) != NULL) {
        const char *s = line;

        if (strncmp(line, "; ", 2) == 0 && line[2] >= 'a' && line[2] <= 'z' &&
            strstr(line, " = ") != NULL) {
            s = line + 2;
            nkeys++;
        }
        ck_assert_uint_lt(len + strlen(s), 65536);
        memcpy(text + len, s, strlen(s));
        len += strlen(s);
    }
    fclose(fp);
    /* All but hash_tag, region and delete_spool, which are off by default
     * (no value to show). */
    ck_assert_uint_eq(nkeys, config_nkeys() - 3);
    cfg = load_ok(text);
    assert_defaults(cfg);
    config_destroy(cfg);
    free(text);
}
END_TEST

/* ---- hostport parser ----------------------------------------------------- */

START_TEST(test_parse_hostport)
{
    char host[16];
    char err[128];
    uint16_t port = 0;

    ck_assert_int_eq(net_parse_hostport("1.2.3.4:5", host, sizeof(host),
                                           &port, err, sizeof(err)),
                     0);
    ck_assert_str_eq(host, "1.2.3.4");
    ck_assert_uint_eq(port, 5);
    ck_assert_int_eq(net_parse_hostport("[::]:65535", host, sizeof(host),
                                           &port, err, sizeof(err)),
                     0);
    ck_assert_str_eq(host, "::");
    ck_assert_uint_eq(port, 65535);
    /* 15 bytes fit in 16 with the NUL; 16 do not. */
    ck_assert_int_eq(net_parse_hostport("abcdefghijklmno:1", host,
                                           sizeof(host), &port, err,
                                           sizeof(err)),
                     0);
    ck_assert_int_eq(net_parse_hostport("abcdefghijklmnop:1", host,
                                           sizeof(host), &port, err,
                                           sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "host too long");
    ck_assert_int_eq(
        net_parse_hostport("", host, sizeof(host), &port, err, sizeof(err)),
        -1);
}
END_TEST

/* ---- resolve ------------------------------------------------------------- */

static unsigned
sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        return ntohs(
            ((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

START_TEST(test_resolve_numeric_and_localhost)
{
    char err[ERRLEN];
    struct config *cfg = load_ok("[backends]\n"
                                 "a = 127.0.0.1:11211\n"
                                 "b = [::1]:11212\n"
                                 "c = localhost:11213\n");
    const struct sockaddr_in *sin;
    const struct sockaddr_in6 *sin6;

    ck_assert_msg(config_resolve(cfg, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(cfg->backends[0].addr.ss_family, AF_INET);
    ck_assert_uint_eq(cfg->backends[0].addrlen, sizeof(*sin));
    sin = (const void *)&cfg->backends[0].addr;
    ck_assert_uint_eq(ntohs(sin->sin_port), 11211);
    ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_int_eq(cfg->backends[1].addr.ss_family, AF_INET6);
    sin6 = (const void *)&cfg->backends[1].addr;
    ck_assert_uint_eq(ntohs(sin6->sin6_port), 11212);
    ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
    ck_assert(cfg->backends[2].addr.ss_family == AF_INET ||
              cfg->backends[2].addr.ss_family == AF_INET6);
    ck_assert_uint_gt(cfg->backends[2].addrlen, 0);
    ck_assert_uint_eq(sockaddr_port(&cfg->backends[2].addr), 11213);
    config_destroy(cfg);
}
END_TEST

/* Unix sockets: [proxy] listen as /path or unix:/path, listen_mode in
 * octal, backends at unix:/path (resolved to a sockaddr_un, duplicates
 * found), and the bad ones. */
START_TEST(test_unix_sockets)
{
    char err[ERRLEN];
    char longpath[200];
    char text[400];
    struct config *cfg;

    cfg = load_ok("[proxy]\nlisten = /run/mcring/mcring.sock\n"
                  "listen_mode = 0600\n[backends]\n"
                  "a = unix:/run/memcached/a.sock\nb = 127.0.0.1:11211\n");
    ck_assert_str_eq(cfg->listen_host, "/run/mcring/mcring.sock");
    ck_assert_uint_eq(cfg->listen_port, 0);
    ck_assert_uint_eq(cfg->listen_mode, 0600);
    ck_assert_str_eq(cfg->backends[0].host, "/run/memcached/a.sock");
    ck_assert_uint_eq(cfg->backends[0].port, 0);
    ck_assert_msg(config_resolve(cfg, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(cfg->backends[0].addr.ss_family, AF_UNIX);
    config_destroy(cfg);

    cfg = load_ok("[proxy]\nlisten = unix:/tmp/m.sock\n[backends]\n"
                  "a = 127.0.0.1:11211\n");
    ck_assert_str_eq(cfg->listen_host, "/tmp/m.sock");
    ck_assert_uint_eq(cfg->listen_mode, 0660);
    config_destroy(cfg);

    expect_error("[backends]\na = unix:/tmp/x.sock\nb = unix:/tmp/x.sock\n", 3,
                 "duplicate address unix:/tmp/x.sock");

    expect_error("[backends]\na = unix:relative.sock\n", 2,
                 "a unix socket path must be absolute");
    expect_error("[proxy]\nlisten_mode = 0888\n[backends]\n"
                 "a = 127.0.0.1:1\n", 2, "listen_mode: bad mode '0888'");
    expect_error("[proxy]\nlisten_mode = 01777\n[backends]\n"
                 "a = 127.0.0.1:1\n", 2, "listen_mode: bad mode");
    memset(longpath, 'p', sizeof(longpath));
    longpath[0] = '/';
    longpath[108] = '\0';
    snprintf(text, sizeof(text), "[proxy]\nlisten = %s\n[backends]\n"
             "a = 127.0.0.1:1\n", longpath);
    expect_error(text, 2, "unix socket path too long (at most 107 bytes)");
    longpath[107] = '\0';
    snprintf(text, sizeof(text), "[proxy]\nlisten = %s\n[backends]\n"
             "a = 127.0.0.1:1\n", longpath);
    config_destroy(load_ok(text));
}
END_TEST

START_TEST(test_resolve_duplicate_address)
{
    char err[ERRLEN];
    char want[ERRLEN];
    char text[NI_MAXHOST + 64];
    char host[NI_MAXHOST];
    struct config *cfg;

    /* 127.1 is 127.0.0.1 to getaddrinfo(): different text, same address. */
    cfg = load_ok("[backends]\n"
                  "x = 127.0.0.1:11211\n"
                  "y = 127.0.0.1:11212\n"
                  "a = 127.1:11211\n");
    ck_assert_int_eq(config_resolve(cfg, NULL, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s:4: backend 'a' resolves to the same address (127.0.0.1 port "
             "11211) as backend 'x' (line 2)",
             cfg->path);
    ck_assert_str_eq(err, want);
    config_destroy(cfg);

    /* localhost and whatever it resolves to first, IPv4 or IPv6. */
    cfg = load_ok("[backends]\nl = localhost:11211\n");
    ck_assert_msg(config_resolve(cfg, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(
        getnameinfo((const struct sockaddr *)&cfg->backends[0].addr,
                    cfg->backends[0].addrlen, host, sizeof(host), NULL, 0,
                    NI_NUMERICHOST),
        0);
    config_destroy(cfg);
    snprintf(text, sizeof(text),
             "[backends]\nl = localhost:11211\nn = %s%s%s:11211\n",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "");
    cfg = load_ok(text);
    ck_assert_int_eq(config_resolve(cfg, NULL, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, ":3: backend 'n' resolves to the same address") !=
                      NULL,
                  "%s", err);
    config_destroy(cfg);
}
END_TEST

/* ---- ring ---------------------------------------------------------------- */

START_TEST(test_build_ring_same_indices)
{
    char err[ERRLEN];
    struct config *cfg = load_ok("[proxy]\nvnodes = 10\n[backends]\n"
                                 "c = 127.0.0.1:3\n"
                                 "a = 127.0.0.1:1 weight=2\n"
                                 "b = 127.0.0.1:2\n");
    struct ring *ring = config_build_ring(cfg, err, sizeof(err));

    ck_assert_msg(ring != NULL, "%s", err);
    ck_assert_int_eq(ring_hash_kind(ring), RING_HASH_XXH3);
    ck_assert_uint_eq(ring_nbackends(ring), 3);
    for (uint32_t i = 0; i < 3; i++) {
        ck_assert_str_eq(ring_backend_name(ring, i), cfg->backends[i].name);
        ck_assert(ring_backend_weight(ring, i) == cfg->backends[i].weight);
    }
    ck_assert_uint_eq(ring_backend_npoints(ring, 0), 20);
    ck_assert_uint_eq(ring_backend_npoints(ring, 1), 10);
    ring_destroy(ring);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_build_ring_ketama)
{
    char err[ERRLEN];
    struct config *cfg = load_ok("[proxy]\nhash = ketama\n" BACKEND);
    struct ring *ring = config_build_ring(cfg, err, sizeof(err));

    ck_assert_msg(ring != NULL, "%s", err);
    ck_assert_int_eq(ring_hash_kind(ring), RING_HASH_KETAMA);
    ck_assert_uint_eq(ring_nbackends(ring), 1);
    ring_destroy(ring);
    config_destroy(cfg);
}
END_TEST

/* ---- pools and routes ---------------------------------------------------- */

#define POOLS                                                                \
    "[backends]\na = 127.0.0.1:1\nb = 127.0.0.1:2 weight=2\n"                \
    "[pool sess]\nreplicas = 2\nhash = ketama\nvnodes = 50\n"                \
    "interval_ms = 50\nfall = 7\nregion = eu\nhotkey_spread = yes\n"        \
    "c = 127.0.0.1:3\nb = 127.0.0.1:2\n"                                    \
    "[routes]\nsession: = sess\ns: = sess\nsession:x: = default\n"

START_TEST(test_pools_parsed)
{
    struct config *cfg = load_ok(POOLS);
    const struct config_pool *sess;
    struct config_health h;

    ck_assert_uint_eq(cfg->nbackends, 3);
    ck_assert_uint_eq(cfg->npools, 2);
    ck_assert_str_eq(cfg->pools[0].name, "default");
    ck_assert_uint_eq(cfg->pools[0].nmembers, 2);
    sess = &cfg->pools[1];
    ck_assert_str_eq(sess->name, "sess");
    ck_assert_uint_eq(sess->replicas, 2);
    ck_assert_int_eq(sess->hash, RING_HASH_KETAMA);
    ck_assert_uint_eq(config_pool_vnodes(cfg, sess), 50);
    ck_assert_uint_eq(config_pool_vnodes(cfg, &cfg->pools[0]),
                      RING_DEFAULT_VNODES);
    ck_assert_str_eq(sess->region, "eu");
    ck_assert(sess->hotkey_spread);
    /* members sorted; b is one backend in two pools */
    ck_assert_str_eq(sess->members[0], "b");
    ck_assert_str_eq(sess->members[1], "c");
    ck_assert(cfg->backends[config_backend_index(cfg, "b")].weight == 2.0);
    /* health: of the first pool that has the backend */
    config_backend_health(cfg, "c", &h);
    ck_assert_uint_eq(h.interval_ms, 50);
    ck_assert_uint_eq(h.fall, 7);
    ck_assert_uint_eq(h.rise, cfg->health_rise);
    config_backend_health(cfg, "b", &h);
    ck_assert_uint_eq(h.interval_ms, cfg->health_interval_ms);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_routes_longest_prefix)
{
    struct config *cfg = load_ok(POOLS);
    static const struct {
        const char *key;
        const char *pool;
    } cases[] = {
        {"session:1", "sess"}, {"s:1", "sess"},     {"session:x:1", "default"},
        {"session:x", "sess"}, {"s", "default"},    {"x", "default"},
        {"", "default"},       {"sess", "sess"} /* "s" no, "s:" no: */,
    };

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(cases); i++) {
        int p = config_route_key(cfg, cases[i].key, strlen(cases[i].key));
        const char *want = strcmp(cases[i].key, "sess") == 0
                               ? "default"
                               : cases[i].pool;

        ck_assert_msg(strcmp(cfg->pools[p].name, want) == 0, "%s: %s, want %s",
                      cases[i].key, cfg->pools[p].name, want);
    }
    config_destroy(cfg);
}
END_TEST

START_TEST(test_pools_render_back_equal)
{
    struct config *cfg = load_ok(POOLS);
    struct config *back;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    config_render(cfg, out);
    fclose(out);
    back = load_ok(text);
    ck_assert(config_pools_same_placement(cfg, back));
    ck_assert_uint_eq(back->pools[1].replicas, 2);
    ck_assert_str_eq(back->pools[1].region, "eu");
    ck_assert_uint_eq(back->pools[1].health_fall, 7);
    ck_assert_ptr_nonnull(strstr(text, "[backends]\n"));
    ck_assert_ptr_nonnull(strstr(text, "[pool sess]\n"));
    ck_assert_ptr_nonnull(strstr(text, "session:x: = default\n"));
    config_destroy(back);
    free(text);
    /* A default pool with settings renders as [pool default]. */
    config_destroy(cfg);
    cfg = load_ok("[pool default]\nreplicas = 3\na = 127.0.0.1:1\n");
    text = NULL;
    out = open_memstream(&text, &len);
    config_render(cfg, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(text, "[pool default]\nreplicas = 3\n"));
    back = load_ok(text);
    ck_assert_uint_eq(back->pools[0].replicas, 3);
    config_destroy(back);
    config_destroy(cfg);
    free(text);
}
END_TEST

/* shadow and shadow_share: parsed, copied, rendered back. */
START_TEST(test_pool_shadow)
{
    struct config *cfg = load_ok(
        BACKEND "[pool live]\nshadow = trial\nshadow_share = 0.015\n"
        "l = 127.0.0.1:5\n[pool trial]\nt = 127.0.0.1:6\n"
        "[pool all]\nshadow = trial\nm = 127.0.0.1:7\n");
    struct config *copy = config_clone(cfg), *back;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    ck_assert_str_eq(cfg->pools[1].shadow, "trial");
    ck_assert(cfg->pools[1].shadow_share == 0.015);
    ck_assert_ptr_null(cfg->pools[2].shadow);
    ck_assert(cfg->pools[2].shadow_share == 1.0);
    ck_assert(cfg->pools[3].shadow_share == 1.0);
    ck_assert_str_eq(copy->pools[1].shadow, "trial");
    ck_assert_ptr_ne(copy->pools[1].shadow, cfg->pools[1].shadow);
    config_render(copy, out);
    fclose(out);
    ck_assert_ptr_nonnull(
        strstr(text, "[pool live]\nshadow = trial\nshadow_share = 0.015\n"));
    ck_assert_ptr_nonnull(strstr(text, "[pool all]\nshadow = trial\nm = "));
    back = load_ok(text);
    ck_assert_str_eq(back->pools[1].shadow, "trial");
    ck_assert(back->pools[1].shadow_share == 0.015);
    config_destroy(back);
    config_destroy(copy);
    config_destroy(cfg);
    free(text);
}
END_TEST

/* writes and deletes: parsed, resolved to pools, rendered back. */
START_TEST(test_pool_commands)
{
    struct config *cfg = load_ok(
        BACKEND "[pool a]\nwrites = c\ndeletes = all\nl = 127.0.0.1:5\n"
        "[pool b]\ndeletes = a  c\nt = 127.0.0.1:6\n"
        "[pool c]\nm = 127.0.0.1:7\n");
    struct config *back;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int idx[CONFIG_POOLS_MAX];
    size_t n;

    ck_assert_str_eq(cfg->pools[1].writes, "c");
    /* all: every pool but the one a's writes go to (c), a itself too */
    n = config_pool_deletes(cfg, &cfg->pools[1], idx, CONFIG_POOLS_MAX);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(idx[0], 0);
    ck_assert_int_eq(idx[1], 1);
    ck_assert_int_eq(idx[2], 2);
    n = config_pool_deletes(cfg, &cfg->pools[2], idx, CONFIG_POOLS_MAX);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 3);
    ck_assert_uint_eq(
        config_pool_deletes(cfg, &cfg->pools[3], idx, CONFIG_POOLS_MAX), 0);
    config_render(cfg, out);
    fclose(out);
    ck_assert_ptr_nonnull(
        strstr(text, "[pool a]\nwrites = c\ndeletes = all\n"));
    back = load_ok(text);
    ck_assert_str_eq(back->pools[2].deletes, "a  c");
    ck_assert_ptr_null(back->pools[3].writes);
    config_destroy(back);
    config_destroy(cfg);
    free(text);
}
END_TEST

START_TEST(test_pool_rings_and_views)
{
    struct config *cfg = load_ok(POOLS);
    uint32_t map[2];
    char err[256];
    struct ring *r = config_build_pool_ring(cfg, 1, map, err, sizeof(err));
    struct config *view;

    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_int_eq(ring_hash_kind(r), RING_HASH_KETAMA);
    ck_assert_uint_eq(ring_nbackends(r), 2);
    ck_assert_str_eq(cfg->backends[map[0]].name, "b");
    ck_assert_str_eq(cfg->backends[map[1]].name, "c");
    ck_assert_str_eq(ring_backend_name(r, 0), "b");
    ring_destroy(r);
    view = config_pool_view(cfg, 1);
    ck_assert_uint_eq(view->nbackends, 2);
    ck_assert_uint_eq(view->npools, 1);
    ck_assert_int_eq(view->hash, RING_HASH_KETAMA);
    ck_assert_uint_eq(view->vnodes, 50);
    ck_assert_uint_eq(view->nroutes, 0);
    config_destroy(view);
    ck_assert_int_eq(config_check_rings(cfg, err, sizeof(err)), 0);
    config_destroy(cfg);
}
END_TEST

START_TEST(test_pool_edits)
{
    struct config *cfg = load_ok(POOLS);
    char err[256];
    int line;

    /* c leaves sess only when another member stays; b is in two pools */
    ck_assert_int_eq(config_remove_backend(cfg, "sess", "b", err, sizeof(err)),
                     0);
    ck_assert_int_ge(config_backend_index(cfg, "b"), 0);
    ck_assert_int_eq(config_remove_backend(cfg, "sess", "c", err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "last backend of pool 'sess'"));
    ck_assert_int_eq(config_remove_backend(cfg, "sess", "a", err, sizeof(err)),
                     CONFIG_ENOENT);
    /* join: same address; another address is a conflict */
    ck_assert_int_eq(config_add_backend_str(cfg, "sess", "a", "127.0.0.1:1",
                                            NAN, err, sizeof(err)),
                     0);
    ck_assert(config_pool_has(&cfg->pools[1], "a"));
    ck_assert_int_eq(config_add_backend_str(cfg, "sess", "b", "127.0.0.1:9",
                                            NAN, err, sizeof(err)),
                     CONFIG_ECONFLICT);
    ck_assert_int_eq(config_add_backend_str(cfg, "nope", "z", "127.0.0.1:9",
                                            NAN, err, sizeof(err)),
                     -1);
    /* a backend out of every pool is gone */
    ck_assert_int_eq(config_remove_backend(cfg, NULL, "a", err, sizeof(err)),
                     0);
    ck_assert_int_lt(config_backend_index(cfg, "a"), 0);
    /* the default pool cannot go; another one takes its routes along */
    ck_assert_int_eq(config_remove_pool(cfg, "default", err, sizeof(err)), -1);
    ck_assert_int_eq(config_remove_pool(cfg, "sess", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg->nroutes, 1);
    ck_assert_int_eq(config_check_pools(cfg, &line, err, sizeof(err)), 0);
    ck_assert_int_eq(config_add_route(cfg, "bad key", "default", 0, err,
                                      sizeof(err)),
                     -1);
    ck_assert_int_eq(config_add_route(cfg, "x=", "default", 0, err,
                                      sizeof(err)),
                     -1);
    ck_assert_int_eq(config_add_route(cfg, "*", "gone", 0, err, sizeof(err)),
                     0);
    ck_assert_int_eq(config_check_pools(cfg, &line, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "route '*': no pool 'gone'"));
    config_destroy(cfg);
}
END_TEST

START_TEST(test_pool_errors)
{
    expect_error("[backends]\na = 127.0.0.1:1\n[routes]\nx: = nope\n", 4,
                 "route 'x:': no pool 'nope'");
    expect_error("[backends]\na = 127.0.0.1:1\n[pool e]\n", 3,
                 "pool 'e' has no backends");
    expect_error("[pool e]\n[pool f]\n", 1, "pool 'e' has no backends");
    expect_error(BACKEND "[pool p]\nmc1 = 127.0.0.1:2\n", 4,
                 "another address");
    expect_error(BACKEND "[pool p]\nmc1 = 127.0.0.1:11211 ramp=5\n", 4,
                 "another ramp");
    expect_error(BACKEND "[pool p]\nx = 127.0.0.1:11211\n", 4,
                 "duplicate address");
    expect_error("[pool default]\na = 127.0.0.1:1\n[backends]\n", 3,
                 "duplicate pool 'default'");
    expect_error(BACKEND "[pool default]\n", 3, "[pool default] is [backends]");
    expect_error("[pool p]\na = 127.0.0.1:1\n[pool q]\nb = 127.0.0.1:2\n", 4,
                 "no route for keys that match no prefix");
    expect_error(BACKEND "[pool b@d]\n", 3, "bad pool name 'b@d'");
    expect_error(BACKEND "[pool p]\nvnodes = 0\n", 4, "vnodes: bad value");
    expect_error(BACKEND "[pool p]\nhash = md5\n", 4, "hash: bad value 'md5'");
    expect_error(BACKEND "[pool p]\nhotkey_spread = maybe\n", 4,
                 "hotkey_spread: expected yes or no");
    expect_error(BACKEND "[pool p]\nregion = a b\n", 4, "region: bad name");
    expect_error(BACKEND "[pool p]\nshadow = q\nb = 127.0.0.1:2\n", 3,
                 "pool 'p': shadow: no pool 'q'");
    expect_error(BACKEND "[pool p]\nshadow = p\nb = 127.0.0.1:2\n", 3,
                 "pool 'p': shadow: a pool cannot shadow itself");
    expect_error(BACKEND "[pool p]\nshadow = b@d\n", 4,
                 "shadow: bad pool name 'b@d'");
    expect_error(BACKEND "[pool p]\nwrites = q\nb = 127.0.0.1:2\n", 3,
                 "pool 'p': writes: no pool 'q'");
    expect_error(BACKEND "[pool p]\ndeletes = default p\nb = 127.0.0.1:2\n",
                 3, "pool 'p': deletes: 'p' takes its deletes anyway");
    expect_error(BACKEND "[pool p]\ndeletes =\n", 4,
                 "deletes: bad value ''");
    expect_error(BACKEND "[pool p]\ndeletes = a,b\n", 4,
                 "deletes: bad value 'a,b'");
    expect_error(BACKEND "[pool p]\nshadow_share = 2\n", 4,
                 "shadow_share: bad share '2'");
    expect_error(BACKEND "[pool p]\nshadow_share = -0.5\n", 4,
                 "shadow_share: bad share '-0.5'");
    expect_error(BACKEND "[routes]\n;x = default\n= default\n", 5,
                 "bad route prefix");
}
END_TEST

START_TEST(test_two_byte_order_marks)
{
    /* Found by tests/fuzz/fuzz_config.c: inih strips a second BOM, so the
     * [backends] header it sees was never checked (a crash). */
    expect_error("\xEF\xBB\xBF\xEF\xBB\xBF[backends]\na = 127.0.0.1:1\n", 1,
                 "a second byte-order mark");
    config_destroy(load_ok("\xEF\xBB\xBF[backends]\na = 127.0.0.1:1\n"));
}
END_TEST

START_TEST(test_local_first_routes)
{
    struct config *cfg = load_ok(
        "[proxy]\nregion = eu\n[pool a]\nregion = us\nx = 127.0.0.1:1\n"
        "[pool b]\nregion = eu\ny = 127.0.0.1:2\n[pool c]\nregion = ap\n"
        "z = 127.0.0.1:3\n[pool d]\nw = 127.0.0.1:4\n[routes]\n"
        "* = local-first\nab: = local-first a b\nd: = d\n");
    uint32_t remote[CONFIG_POOLS_MAX];
    const struct config_route *r = config_default_route(cfg);

    ck_assert_str_eq(cfg->region, "eu");
    ck_assert(r != NULL && r->local_first);
    /* all pools with a region: b is the local one */
    ck_assert_str_eq(cfg->pools[config_route_pool(cfg, r)].name, "b");
    ck_assert_uint_eq(config_route_remotes(cfg, r, remote), 2);
    ck_assert_str_eq(cfg->pools[remote[0]].name, "a");
    ck_assert_str_eq(cfg->pools[remote[1]].name, "c");
    ck_assert_str_eq(cfg->pools[config_route_key(cfg, "ab:1", 4)].name, "b");
    ck_assert_str_eq(cfg->pools[config_route_key(cfg, "d:1", 3)].name, "d");
    r = &cfg->routes[0]; /* "ab:", longest first */
    ck_assert_str_eq(r->prefix, "ab:");
    ck_assert_uint_eq(config_route_remotes(cfg, r, remote), 1);
    ck_assert_uint_eq(config_route_remotes(cfg, &cfg->routes[1], remote), 0);
    config_destroy(cfg);
    expect_error("[proxy]\nregion = eu\n[pool a]\nregion = us\n"
                 "x = 127.0.0.1:1\n[pool b]\nregion = us\ny = 127.0.0.1:2\n"
                 "[pool c]\nregion = eu\nz = 127.0.0.1:3\n[routes]\n"
                 "* = local-first\n",
                 13, "pools 'a' and 'b' are both of region 'us'");
}
END_TEST

START_TEST(test_pools_bounded)
{
    char *text = util_xcalloc(1, 64 * 1024);
    size_t n = 0;

    for (int i = 0; i <= CONFIG_POOLS_MAX; i++) {
        n += (size_t)snprintf(text + n, 64 * 1024 - n,
                              "[pool p%d]\nb%d = 127.0.0.1:%d\n", i, i,
                              i + 1);
    }
    n += (size_t)snprintf(text + n, 64 * 1024 - n, "[routes]\n* = p0\n");
    expect_error(text, 2 * CONFIG_POOLS_MAX + 1, "too many pools (at most 64)");
    free(text);
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("pools and routes");
    tcase_add_test(tc, test_pools_parsed);
    tcase_add_test(tc, test_routes_longest_prefix);
    tcase_add_test(tc, test_pools_render_back_equal);
    tcase_add_test(tc, test_pool_shadow);
    tcase_add_test(tc, test_pool_commands);
    tcase_add_test(tc, test_pool_rings_and_views);
    tcase_add_test(tc, test_pool_edits);
    tcase_add_test(tc, test_pool_errors);
    tcase_add_test(tc, test_pools_bounded);
    tcase_add_test(tc, test_local_first_routes);
    tcase_add_test(tc, test_two_byte_order_marks);
    suite_add_tcase(s, tc);

    tc = tcase_create("defaults");
    tcase_add_test(tc, test_defaults_filled);
    tcase_add_test(tc, test_defaults_when_keys_absent);
    suite_add_tcase(s, tc);

    tc = tcase_create("every key is parsed");
    tcase_add_test(tc, test_every_key_parsed);
    tcase_add_test(tc, test_hash_xxh3_explicit);
    tcase_add_test(tc, test_hash_tag);
    tcase_add_test(tc, test_delete_spool);
    tcase_add_test(tc, test_listen_forms);
    tcase_add_test(tc, test_bounds_accepted);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad numbers are reported with their range");
    tcase_add_loop_test(tc, test_number_out_of_range, 0,
                        (int)UTIL_ARRAY_SIZE(number_keys));
    tcase_add_loop_test(tc, test_number_malformed, 0,
                        (int)UTIL_ARRAY_SIZE(number_keys));
    tcase_add_loop_test(tc, test_number_bounds_inclusive, 0,
                        (int)UTIL_ARRAY_SIZE(number_keys));
    tcase_add_test(tc, test_bad_hash_and_listen);
    suite_add_tcase(s, tc);

    tc = tcase_create("structure errors carry their line");
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_text_after_section);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_bool_key);
    tcase_add_test(tc, test_share_key);
    tcase_add_test(tc, test_key_outside_section);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_inih_syntax_error);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_directory_is_read_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend lines");
    tcase_add_test(tc, test_backend_address_forms);
    tcase_add_test(tc, test_backend_weights);
    tcase_add_test(tc, test_backend_bad_weight);
    tcase_add_test(tc, test_backend_unknown_option);
    tcase_add_test(tc, test_backend_ramp);
    tcase_add_test(tc, test_backend_names);
    tcase_add_test(tc, test_backend_duplicate_name);
    tcase_add_test(tc, test_backend_duplicate_address);
    tcase_add_test(tc, test_backend_malformed_address);
    tcase_add_test(tc, test_no_backends);
    tcase_add_test(tc, test_backends_sorted_by_name);
    tcase_add_test(tc, test_parse_hostport);
    suite_add_tcase(s, tc);

    tc = tcase_create("[admin] listen and token");
    tcase_add_test(tc, test_admin_off_by_default);
    tcase_add_test(tc, test_admin_keys_parsed);
    tcase_add_test(tc, test_admin_non_loopback_needs_token);
    tcase_add_test(tc, test_admin_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("edited copies render back equal");
    tcase_add_loop_test(tc, test_render_round_trip, 0,
                        (int)UTIL_ARRAY_SIZE(round_trip_configs));
    tcase_add_test(tc, test_render_text);
    tcase_add_test(tc, test_key_format);
    tcase_add_test(tc, test_format_weight);
    tcase_add_test(tc, test_clone_is_deep);
    tcase_add_test(tc, test_add_backend_sorted);
    tcase_add_test(tc, test_add_backend_errors);
    tcase_add_test(tc, test_remove_and_weight);
    suite_add_tcase(s, tc);

    tc = tcase_create("inih traps are errors");
    tcase_add_test(tc, test_line_too_long);
    tcase_add_test(tc, test_line_at_limit_accepted);
    tcase_add_test(tc, test_indented_line_rejected);
    tcase_add_test(tc, test_blank_and_comment_lines);
    tcase_add_test(tc, test_nul_byte_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("sample configs load");
    tcase_add_test(tc, test_sample_configs_load);
    tcase_add_test(tc, test_sample_documents_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("addresses resolve without duplicates");
    tcase_add_test(tc, test_resolve_numeric_and_localhost);
    tcase_add_test(tc, test_resolve_duplicate_address);
    tcase_add_test(tc, test_unix_sockets);
    suite_add_tcase(s, tc);

    tc = tcase_create("ring built from config");
    tcase_add_test(tc, test_build_ring_same_indices);
    tcase_add_test(tc, test_build_ring_ketama);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
