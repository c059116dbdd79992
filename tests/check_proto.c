/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_proto: unit tests of the proto module.
 *
 * Most cases are tables run as loop tests: one table of valid request lines
 * with every field they must produce, one of malformed lines with the
 * status, reason and data-block contract they must produce, and tables of
 * backend response lines. Limits (key length, control bytes, max_keys,
 * line limit) are crossed by tests that build their lines at run time.
 * Lines are passed with an explicit length, never relying on a NUL.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

#define MAX_KEYS 100

/* A reason pointer no parser returns, to see that it was left alone. */
static const char untouched[] = "untouched";

static enum proto_status
parse(const char *line, unsigned max_keys, struct proto_req *req,
      const char **reason)
{
    *reason = untouched;
    return proto_parse_request(line, strlen(line), max_keys, req, reason);
}

static void
check_view(const struct proto_str *v, const char *exp, const char *what,
           const char *line)
{
    size_t n = exp != NULL ? strlen(exp) : 0;

    ck_assert_msg(v->len == n && (n == 0 || memcmp(v->p, exp, n) == 0),
                  "%s: %s is \"%.*s\", want \"%s\"", line, what, (int)v->len,
                  v->p != NULL ? v->p : "", exp != NULL ? exp : "");
}

/* ---- valid request lines ------------------------------------------------ */

struct ok_vec {
    const char *line;
    enum proto_cmd cmd;
    const char *key;  /* NULL: no key */
    const char *keys; /* retrieval: the keys view */
    uint32_t nkeys;
    uint32_t flags;
    int64_t exptime;
    uint32_t vlen;
    uint64_t cas;
    uint64_t delta;
    unsigned level;
    bool has_delay;
    bool noreply;
    const char *args; /* stats, watch */
};

/* clang-format off */
static const struct ok_vec ok_vecs[] = {
    /* retrieval */
    {.line = "get foo", .cmd = PROTO_CMD_GET, .key = "foo", .keys = "foo",
     .nkeys = 1},
    {.line = "get a b c", .cmd = PROTO_CMD_GET, .key = "a", .keys = "a b c",
     .nkeys = 3},
    {.line = "  get   a  bb   ", .cmd = PROTO_CMD_GET, .key = "a",
     .keys = "a  bb", .nkeys = 2},
    {.line = "gets foo bar", .cmd = PROTO_CMD_GETS, .key = "foo",
     .keys = "foo bar", .nkeys = 2},
    {.line = "get noreply", .cmd = PROTO_CMD_GET, .key = "noreply",
     .keys = "noreply", .nkeys = 1},
    {.line = "get caf\xc3\xa9 \x80\xff", .cmd = PROTO_CMD_GET,
     .key = "caf\xc3\xa9", .keys = "caf\xc3\xa9 \x80\xff", .nkeys = 2},
    {.line = "gat 100 foo bar", .cmd = PROTO_CMD_GAT, .key = "foo",
     .keys = "foo bar", .nkeys = 2, .exptime = 100},
    {.line = "gats -1 foo", .cmd = PROTO_CMD_GATS, .key = "foo",
     .keys = "foo", .nkeys = 1, .exptime = -1},
    {.line = "gat 2147483647 k", .cmd = PROTO_CMD_GAT, .key = "k",
     .keys = "k", .nkeys = 1, .exptime = 2147483647},
    {.line = "gat -2147483648 k", .cmd = PROTO_CMD_GAT, .key = "k",
     .keys = "k", .nkeys = 1, .exptime = -2147483647 - 1},
    {.line = "gat   0   k  ", .cmd = PROTO_CMD_GAT, .key = "k", .keys = "k",
     .nkeys = 1},
    /* storage */
    {.line = "set k 0 0 5", .cmd = PROTO_CMD_SET, .key = "k", .vlen = 5},
    {.line = "set k 4294967295 -1 0 noreply", .cmd = PROTO_CMD_SET,
     .key = "k", .flags = 4294967295u, .exptime = -1, .noreply = true},
    {.line = "set k 1 2147483647 2147483645", .cmd = PROTO_CMD_SET,
     .key = "k", .flags = 1, .exptime = 2147483647, .vlen = 2147483645},
    {.line = "set k 0 -2147483648 1", .cmd = PROTO_CMD_SET, .key = "k",
     .exptime = -2147483647 - 1, .vlen = 1},
    {.line = " set  k  7  8  9  noreply ", .cmd = PROTO_CMD_SET, .key = "k",
     .flags = 7, .exptime = 8, .vlen = 9, .noreply = true},
    {.line = "set noreply 0 0 1", .cmd = PROTO_CMD_SET, .key = "noreply",
     .vlen = 1},
    {.line = "add k 1 2 3", .cmd = PROTO_CMD_ADD, .key = "k", .flags = 1,
     .exptime = 2, .vlen = 3},
    {.line = "replace k 1 2 3 noreply", .cmd = PROTO_CMD_REPLACE,
     .key = "k", .flags = 1, .exptime = 2, .vlen = 3, .noreply = true},
    {.line = "append k 0 0 10", .cmd = PROTO_CMD_APPEND, .key = "k",
     .vlen = 10},
    {.line = "prepend k 0 0 10 noreply", .cmd = PROTO_CMD_PREPEND,
     .key = "k", .vlen = 10, .noreply = true},
    {.line = "cas k 1 2 3 18446744073709551615", .cmd = PROTO_CMD_CAS,
     .key = "k", .flags = 1, .exptime = 2, .vlen = 3,
     .cas = UINT64_MAX},
    {.line = "cas k 0 0 0 0 noreply", .cmd = PROTO_CMD_CAS, .key = "k",
     .noreply = true},
    /* delete */
    {.line = "delete k", .cmd = PROTO_CMD_DELETE, .key = "k"},
    {.line = "delete k 0", .cmd = PROTO_CMD_DELETE, .key = "k"},
    {.line = "delete k noreply", .cmd = PROTO_CMD_DELETE, .key = "k",
     .noreply = true},
    {.line = "delete k 0 noreply", .cmd = PROTO_CMD_DELETE, .key = "k",
     .noreply = true},
    {.line = "delete k noreply   ", .cmd = PROTO_CMD_DELETE, .key = "k",
     .noreply = true},
    /* incr/decr */
    {.line = "incr k 1", .cmd = PROTO_CMD_INCR, .key = "k", .delta = 1},
    {.line = "incr k 18446744073709551615 noreply", .cmd = PROTO_CMD_INCR,
     .key = "k", .delta = UINT64_MAX, .noreply = true},
    {.line = "decr k 0", .cmd = PROTO_CMD_DECR, .key = "k"},
    {.line = "decr k 42 noreply", .cmd = PROTO_CMD_DECR, .key = "k",
     .delta = 42, .noreply = true},
    /* touch */
    {.line = "touch k 10", .cmd = PROTO_CMD_TOUCH, .key = "k",
     .exptime = 10},
    {.line = "touch k -1 noreply", .cmd = PROTO_CMD_TOUCH, .key = "k",
     .exptime = -1, .noreply = true},
    /* flush_all */
    {.line = "flush_all", .cmd = PROTO_CMD_FLUSH_ALL},
    {.line = "flush_all 0", .cmd = PROTO_CMD_FLUSH_ALL, .has_delay = true},
    {.line = "flush_all 60 noreply", .cmd = PROTO_CMD_FLUSH_ALL,
     .exptime = 60, .has_delay = true, .noreply = true},
    {.line = "flush_all noreply", .cmd = PROTO_CMD_FLUSH_ALL,
     .noreply = true},
    {.line = "flush_all -1", .cmd = PROTO_CMD_FLUSH_ALL, .exptime = -1,
     .has_delay = true},
    /* verbosity */
    {.line = "verbosity 1", .cmd = PROTO_CMD_VERBOSITY, .level = 1},
    {.line = "verbosity 0", .cmd = PROTO_CMD_VERBOSITY},
    {.line = "verbosity 4294967295 noreply", .cmd = PROTO_CMD_VERBOSITY,
     .level = 4294967295u, .noreply = true},
    /* version, quit, stats */
    {.line = "version", .cmd = PROTO_CMD_VERSION},
    {.line = " version  ", .cmd = PROTO_CMD_VERSION},
    {.line = "quit", .cmd = PROTO_CMD_QUIT},
    {.line = "stats", .cmd = PROTO_CMD_STATS, .args = ""},
    {.line = "stats   ", .cmd = PROTO_CMD_STATS, .args = ""},
    {.line = "stats  items ", .cmd = PROTO_CMD_STATS, .args = "items"},
    {.line = "stats slabs  detail", .cmd = PROTO_CMD_STATS,
     .args = "slabs  detail"},
    {.line = "stats cachedump 1 2", .cmd = PROTO_CMD_STATS,
     .args = "cachedump 1 2"},
    /* memcached's tuning commands: the line goes to the backends */
    {.line = "slabs automove 1", .cmd = PROTO_CMD_SLABS,
     .args = "automove 1"},
    {.line = "slabs", .cmd = PROTO_CMD_SLABS, .args = ""},
    {.line = "lru tune 10 20 0.1 2.0 noreply", .cmd = PROTO_CMD_LRU,
     .args = "tune 10 20 0.1 2.0 noreply"},
    {.line = "lru_crawler metadump all", .cmd = PROTO_CMD_LRU_CRAWLER,
     .args = "metadump all"},
    {.line = "extstore item_age 5", .cmd = PROTO_CMD_EXTSTORE,
     .args = "item_age 5"},
    /* watch: its arguments are watch.c's */
    {.line = "watch", .cmd = PROTO_CMD_WATCH, .args = ""},
    {.line = "watch sample=10 ", .cmd = PROTO_CMD_WATCH,
     .args = "sample=10"},
};
/* clang-format on */

START_TEST(valid_request_fields)
{
    const struct ok_vec *v = &ok_vecs[_i];
    struct proto_req r;
    const char *reason;
    enum proto_status st = parse(v->line, MAX_KEYS, &r, &reason);

    ck_assert_msg(st == PROTO_OK, "%s: status %d (%s)", v->line, (int)st,
                  reason);
    ck_assert_msg(reason == untouched, "%s: reason set on success", v->line);
    ck_assert_msg(r.cmd == v->cmd, "%s: cmd %d want %d", v->line, (int)r.cmd,
                  (int)v->cmd);
    check_view(&r.name, proto_cmd_name(v->cmd), "name", v->line);
    check_view(&r.key, v->key, "key", v->line);
    if (proto_cmd_is_retrieval(v->cmd)) {
        check_view(&r.keys, v->keys, "keys", v->line);
    } else {
        ck_assert_uint_eq(r.keys.len, 0);
    }
    ck_assert_msg(r.nkeys == v->nkeys, "%s: nkeys %u", v->line, r.nkeys);
    ck_assert_msg(r.flags == v->flags, "%s: flags %u", v->line, r.flags);
    ck_assert_msg(r.exptime == v->exptime, "%s: exptime %lld", v->line,
                  (long long)r.exptime);
    ck_assert_msg(r.vlen == v->vlen, "%s: vlen %u", v->line, r.vlen);
    ck_assert_msg(r.cas == v->cas, "%s: cas %llu", v->line,
                  (unsigned long long)r.cas);
    ck_assert_msg(r.delta == v->delta, "%s: delta %llu", v->line,
                  (unsigned long long)r.delta);
    ck_assert_msg(r.level == v->level, "%s: level %u", v->line, r.level);
    ck_assert_msg(r.has_delay == v->has_delay, "%s: has_delay", v->line);
    ck_assert_msg(r.noreply == v->noreply, "%s: noreply", v->line);
    check_view(&r.args, v->args, "args", v->line);
}
END_TEST

START_TEST(cmd_names_round_trip)
{
    for (int c = PROTO_CMD_GET; c <= PROTO_CMD_STATS; c++) {
        const char *name = proto_cmd_name((enum proto_cmd)c);
        char line[64];
        struct proto_req r;
        const char *reason;

        ck_assert_uint_gt(strlen(name), 0);
        snprintf(line, sizeof(line), "%s", name);
        (void)parse(line, MAX_KEYS, &r, &reason);
        ck_assert_msg(r.cmd == (enum proto_cmd)c, "%s not recognised", name);
    }
    ck_assert_str_eq(proto_cmd_name(PROTO_CMD_NONE), "");
    ck_assert(proto_cmd_is_retrieval(PROTO_CMD_GATS));
    ck_assert(!proto_cmd_is_retrieval(PROTO_CMD_SET));
    ck_assert(proto_cmd_is_storage(PROTO_CMD_SET));
    ck_assert(proto_cmd_is_storage(PROTO_CMD_CAS));
    ck_assert(!proto_cmd_is_storage(PROTO_CMD_GATS));
    ck_assert(!proto_cmd_is_storage(PROTO_CMD_DELETE));
}
END_TEST

/* ---- malformed request lines -------------------------------------------- */

#define FMT PROTO_REASON_FORMAT
#define DEL PROTO_REASON_DELETE_FORMAT
#define DELTA PROTO_REASON_DELTA
#define EXPT PROTO_REASON_EXPTIME

struct bad_vec {
    const char *line;
    enum proto_status st;
    enum proto_cmd cmd;
    const char *reason; /* NULL unless PROTO_CLIENT_ERROR */
    bool noreply; /* the last token is "noreply" */
};

/* clang-format off */
static const struct bad_vec bad_vecs[] = {
    /* Each line as memcached 1.6.18 reads it (checked against it: the
     * differential test keeps that true). Lines memcached accepts are
     * here too, next to the near misses they are easily confused with. */
    {"", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"    ", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"foo", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"foo bar baz", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"GET foo", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"Set k 0 0 1", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"gett foo", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"ge foo", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"g", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"get\tfoo", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"flush_al", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"verbosit 1", PROTO_ERROR, PROTO_CMD_NONE, NULL, false},
    {"mg foo v", PROTO_OK, PROTO_CMD_MG, NULL, false},
    {"bget foo", PROTO_OK, PROTO_CMD_GET, NULL, false},
    {"get", PROTO_ERROR, PROTO_CMD_GET, NULL, false},
    {"get    ", PROTO_ERROR, PROTO_CMD_GET, NULL, false},
    {"gets", PROTO_ERROR, PROTO_CMD_GETS, NULL, false},
    {"gat", PROTO_ERROR, PROTO_CMD_GAT, NULL, false},
    {"gat 10", PROTO_OK, PROTO_CMD_GAT, NULL, false},
    {"gats 10   ", PROTO_OK, PROTO_CMD_GATS, NULL, false},
    {"gat abc k", PROTO_CLIENT_ERROR, PROTO_CMD_GAT, EXPT, false},
    {"gat 1.5 k", PROTO_CLIENT_ERROR, PROTO_CMD_GAT, EXPT, false},
    {"gat 2147483648 k", PROTO_OK, PROTO_CMD_GAT, NULL, false},
    {"gats -2147483649 k", PROTO_OK, PROTO_CMD_GATS, NULL, false},
    {"gat 99999999999999999999 k", PROTO_CLIENT_ERROR, PROTO_CMD_GAT, EXPT, false},
    {"get a\tb", PROTO_OK, PROTO_CMD_GET, NULL, false},
    {"get ok bad\x7f", PROTO_OK, PROTO_CMD_GET, NULL, false},
    {"get ok \x01", PROTO_OK, PROTO_CMD_GET, NULL, false},
    {"set", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"set k", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"set k 0 0", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 abc", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k 0 0 -1", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k 0 0 +5", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 5x", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k 0 0 2147483648", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k 0 0 4294967296", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 99999999999999999999999", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"add k 0 5", PROTO_ERROR, PROTO_CMD_ADD, NULL, false},
    {"replace", PROTO_ERROR, PROTO_CMD_REPLACE, NULL, false},
    {"append k 0 0", PROTO_ERROR, PROTO_CMD_APPEND, NULL, false},
    {"prepend k 0 0 x", PROTO_CLIENT_ERROR, PROTO_CMD_PREPEND, FMT, false},
    {"cas k 0 0 -5 1", PROTO_CLIENT_ERROR, PROTO_CMD_CAS, FMT, false},
    {"set k 0 0 5 noreply extra", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 5 a b c d", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"cas k 0 0 5", PROTO_ERROR, PROTO_CMD_CAS, NULL, false},
    {"set k 0 0 5 no k ly", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 5 a b c d e noreply", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"cas k 0 0 5 1 noreply x", PROTO_ERROR, PROTO_CMD_CAS, NULL, false},
    {"set k 4294967296 0 5", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k -1 0 5", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k x 0 5", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k 0 2147483648 5", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k 0 -2147483649 5", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k 0 abc 5", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, false},
    {"set k 0 0 5 norepl", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 5 NOREPLY", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set k 0 0 5 noreplyx", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"set a\tb 0 0 5", PROTO_OK, PROTO_CMD_SET, NULL, false},
    {"add k 0 0 7 0", PROTO_OK, PROTO_CMD_ADD, NULL, false},
    {"replace k 0 0 2147483647 x", PROTO_CLIENT_ERROR, PROTO_CMD_REPLACE, FMT, false},
    {"append k 1.0 0 3", PROTO_CLIENT_ERROR, PROTO_CMD_APPEND, FMT, false},
    {"prepend k 0 0x10 3", PROTO_CLIENT_ERROR, PROTO_CMD_PREPEND, FMT, false},
    {"cas k 0 0 5 18446744073709551616", PROTO_CLIENT_ERROR, PROTO_CMD_CAS, FMT, false},
    {"cas k 0 0 5 abc", PROTO_CLIENT_ERROR, PROTO_CMD_CAS, FMT, false},
    {"cas k 0 0 5 -1", PROTO_CLIENT_ERROR, PROTO_CMD_CAS, FMT, false},
    {"cas k 0 0 5 noreply", PROTO_CLIENT_ERROR, PROTO_CMD_CAS, FMT, true},
    {"cas k 0 0 5 1 foo", PROTO_OK, PROTO_CMD_CAS, NULL, false},
    {"cas k 0 0 0 1 foo", PROTO_OK, PROTO_CMD_CAS, NULL, false},
    {"delete", PROTO_ERROR, PROTO_CMD_DELETE, NULL, false},
    {"delete k 1", PROTO_CLIENT_ERROR, PROTO_CMD_DELETE, DEL, false},
    {"delete k 00", PROTO_CLIENT_ERROR, PROTO_CMD_DELETE, DEL, false},
    {"delete k noreply 0", PROTO_CLIENT_ERROR, PROTO_CMD_DELETE, DEL, false},
    {"delete k 0 0", PROTO_CLIENT_ERROR, PROTO_CMD_DELETE, DEL, false},
    {"delete k 0 noreply x", PROTO_ERROR, PROTO_CMD_DELETE, NULL, false},
    {"delete a\x01z", PROTO_OK, PROTO_CMD_DELETE, NULL, false},
    {"incr", PROTO_ERROR, PROTO_CMD_INCR, NULL, false},
    {"incr k", PROTO_ERROR, PROTO_CMD_INCR, NULL, false},
    {"incr k 1 2", PROTO_OK, PROTO_CMD_INCR, NULL, false},
    {"incr k noreply 5", PROTO_CLIENT_ERROR, PROTO_CMD_INCR, DELTA, false},
    {"incr k 1 noreply x", PROTO_ERROR, PROTO_CMD_INCR, NULL, false},
    {"incr k abc", PROTO_CLIENT_ERROR, PROTO_CMD_INCR, DELTA, false},
    {"incr k -1", PROTO_CLIENT_ERROR, PROTO_CMD_INCR, DELTA, false},
    {"incr k noreply", PROTO_CLIENT_ERROR, PROTO_CMD_INCR, DELTA, true},
    {"incr k 18446744073709551616", PROTO_CLIENT_ERROR, PROTO_CMD_INCR, DELTA, false},
    {"decr k 1.0", PROTO_CLIENT_ERROR, PROTO_CMD_DECR, DELTA, false},
    {"decr k", PROTO_ERROR, PROTO_CMD_DECR, NULL, false},
    {"touch", PROTO_ERROR, PROTO_CMD_TOUCH, NULL, false},
    {"touch k", PROTO_ERROR, PROTO_CMD_TOUCH, NULL, false},
    {"touch k 1 x", PROTO_OK, PROTO_CMD_TOUCH, NULL, false},
    {"touch k noreply 1", PROTO_CLIENT_ERROR, PROTO_CMD_TOUCH, EXPT, false},
    {"touch k abc", PROTO_CLIENT_ERROR, PROTO_CMD_TOUCH, EXPT, false},
    {"touch k 2147483648", PROTO_OK, PROTO_CMD_TOUCH, NULL, false},
    {"touch k -2147483649 noreply", PROTO_OK, PROTO_CMD_TOUCH, NULL, true},
    {"flush_all abc", PROTO_CLIENT_ERROR, PROTO_CMD_FLUSH_ALL, EXPT, false},
    {"flush_all 2147483648", PROTO_OK, PROTO_CMD_FLUSH_ALL, NULL, false},
    {"flush_all x noreply", PROTO_CLIENT_ERROR, PROTO_CMD_FLUSH_ALL, EXPT, true},
    {"flush_all 1 2", PROTO_OK, PROTO_CMD_FLUSH_ALL, NULL, false},
    {"flush_all noreply 1", PROTO_CLIENT_ERROR, PROTO_CMD_FLUSH_ALL, EXPT, false},
    {"flush_all 1 noreply x", PROTO_ERROR, PROTO_CMD_FLUSH_ALL, NULL, false},
    {"verbosity", PROTO_ERROR, PROTO_CMD_VERBOSITY, NULL, false},
    {"verbosity noreply", PROTO_CLIENT_ERROR, PROTO_CMD_VERBOSITY, FMT, true},
    {"verbosity x", PROTO_CLIENT_ERROR, PROTO_CMD_VERBOSITY, FMT, false},
    {"verbosity -1", PROTO_CLIENT_ERROR, PROTO_CMD_VERBOSITY, FMT, false},
    {"verbosity 4294967296", PROTO_OK, PROTO_CMD_VERBOSITY, NULL, false},
    {"verbosity 1 2", PROTO_OK, PROTO_CMD_VERBOSITY, NULL, false},
    {"verbosity 1 noreply x", PROTO_ERROR, PROTO_CMD_VERBOSITY, NULL, false},
    {"set k 0 0 5 x noreply", PROTO_ERROR, PROTO_CMD_SET, NULL, false},
    {"set k x 0 5 noreply  ", PROTO_CLIENT_ERROR, PROTO_CMD_SET, FMT, true},
    {"cas k 0 0 5 x noreply", PROTO_CLIENT_ERROR, PROTO_CMD_CAS, FMT, true},
    {"touch k x noreply", PROTO_CLIENT_ERROR, PROTO_CMD_TOUCH, EXPT, true},
    {"delete k 1 noreply", PROTO_CLIENT_ERROR, PROTO_CMD_DELETE, DEL, true},
    {"delete k\x01 noreply", PROTO_OK, PROTO_CMD_DELETE, NULL, true},
    {"incr k x noreply", PROTO_CLIENT_ERROR, PROTO_CMD_INCR, DELTA, true},
    {"version noreply", PROTO_OK, PROTO_CMD_VERSION, NULL, false},
    {"incr k 1 xnoreply", PROTO_OK, PROTO_CMD_INCR, NULL, false},
    {"version x", PROTO_OK, PROTO_CMD_VERSION, NULL, false},
    {"quit now", PROTO_OK, PROTO_CMD_QUIT, NULL, false},
};
/* clang-format on */

START_TEST(malformed_request_status)
{
    const struct bad_vec *v = &bad_vecs[_i];
    struct proto_req r;
    const char *reason;
    enum proto_status st = parse(v->line, MAX_KEYS, &r, &reason);

    ck_assert_msg(st == v->st, "\"%s\": status %d want %d", v->line, (int)st,
                  (int)v->st);
    ck_assert_msg(r.cmd == v->cmd, "\"%s\": cmd %d want %d", v->line,
                  (int)r.cmd, (int)v->cmd);
    if (v->reason == NULL) {
        ck_assert_msg(reason == untouched, "\"%s\": reason set", v->line);
    } else {
        ck_assert_msg(reason != untouched && strcmp(reason, v->reason) == 0,
                      "\"%s\": reason \"%s\" want \"%s\"", v->line, reason,
                      v->reason);
    }
    ck_assert_msg(r.noreply == v->noreply, "\"%s\": noreply %d", v->line,
                  (int)r.noreply);
}
END_TEST


/* ---- key limits ---------------------------------------------------------- */

/*
 * Line templates with one '@' standing for the key; storage ones have
 * bytes = 1. first: the '@' key is req->key.
 */
/* clang-format off */
static const struct key_form {
    const char *fmt;
    bool first;
} key_forms[] = {
    {"get @", true},
    {"gets @", true},
    {"gat 0 @", true},
    {"gats 0 a @", false},
    {"get a @ b", false},
    {"set @ 0 0 1", true},
    {"add @ 0 0 1 noreply", true},
    {"cas @ 0 0 1 1", true},
    {"delete @", true},
    {"delete @ 0", true},
    {"incr @ 1", true},
    {"decr @ 1", true},
    {"touch @ 1", true},
};
/* clang-format on */

/* Expands a template: '@' becomes key[0..klen). Returns the length. */
static size_t
build_line(char *out, size_t cap, const char *tmpl, const char *key,
           size_t klen)
{
    const char *at = strchr(tmpl, '@');
    size_t pre = (size_t)(at - tmpl), post = strlen(at + 1);

    ck_assert_uint_le(pre + klen + post, cap);
    memcpy(out, tmpl, pre);
    memcpy(out + pre, key, klen);
    memcpy(out + pre + klen, at + 1, post);
    return pre + klen + post;
}

START_TEST(key_250_ok_251_rejected)
{
    const struct key_form *kf = &key_forms[_i];
    char key[PROTO_KEY_MAX + 1];
    char line[PROTO_KEY_MAX + 64];
    struct proto_req r;
    const char *reason = untouched;
    enum proto_status st;
    size_t n;

    memset(key, 'k', sizeof(key));
    n = build_line(line, sizeof(line), kf->fmt, key, PROTO_KEY_MAX);
    st = proto_parse_request(line, n, MAX_KEYS, &r, &reason);
    ck_assert_msg(st == PROTO_OK, "%s: 250-byte key refused (%s)", kf->fmt,
                  reason);
    if (kf->first) {
        ck_assert_uint_eq(r.key.len, PROTO_KEY_MAX);
    }

    n = build_line(line, sizeof(line), kf->fmt, key, PROTO_KEY_MAX + 1);
    st = proto_parse_request(line, n, MAX_KEYS, &r, &reason);
    ck_assert_msg(st == PROTO_CLIENT_ERROR, "%s: 251-byte key: status %d",
                  kf->fmt, (int)st);
    ck_assert_str_eq(reason, PROTO_REASON_FORMAT);
}
END_TEST

/* Every byte below 0x21 but the separator, and 0x7f, inside a key. */
/*
 * memcached splits on spaces only: every other byte, control bytes
 * included, may be part of a key (a NUL ends the line, a newline ends it
 * before the parser sees it).
 */
START_TEST(key_control_bytes_accepted)
{
    for (size_t f = 0; f < UTIL_ARRAY_SIZE(key_forms); f++) {
        for (unsigned b = 1; b < 0x100; b++) {
            char key[3] = {'a', (char)b, 'b'};
            char line[64];
            size_t n;
            struct proto_req r;
            const char *reason = untouched;
            enum proto_status st;

            if (b == ' ' || b == '\n') {
                continue;
            }
            n = build_line(line, sizeof(line), key_forms[f].fmt, key,
                           sizeof(key));
            st = proto_parse_request(line, n, MAX_KEYS, &r, &reason);
            ck_assert_msg(st == PROTO_OK, "%s with 0x%02x: status %d",
                          key_forms[f].fmt, b, (int)st);
            if (key_forms[f].first) {
                ck_assert_uint_eq(r.key.len, 3);
                ck_assert_int_eq(memcmp(r.key.p, key, 3), 0);
            }
        }
    }
}
END_TEST

/* A NUL ends the line, as memcached reads it as a C string. */
START_TEST(nul_ends_the_line)
{
    static const char line[] = "get a\0b c";
    struct proto_req r;
    const char *reason = untouched;

    ck_assert_int_eq(proto_parse_request(line, sizeof(line) - 1, MAX_KEYS, &r,
                                         &reason),
                     PROTO_OK);
    ck_assert_uint_eq(r.nkeys, 1);
    ck_assert_uint_eq(r.key.len, 1);
}
END_TEST

START_TEST(key_high_bytes_accepted)
{
    static const char key[] = "\x80\xc3\xa9\xff!~";

    for (size_t f = 0; f < UTIL_ARRAY_SIZE(key_forms); f++) {
        char line[64];
        size_t n = build_line(line, sizeof(line), key_forms[f].fmt, key,
                              sizeof(key) - 1);
        struct proto_req r;
        const char *reason = untouched;

        ck_assert_msg(proto_parse_request(line, n, MAX_KEYS, &r, &reason) ==
                          PROTO_OK,
                      "%s", key_forms[f].fmt);
        check_view(&r.key, key_forms[f].first ? key : "a", "key",
                   key_forms[f].fmt);
    }
}
END_TEST

/* ---- max_keys ------------------------------------------------------------ */

START_TEST(too_many_keys)
{
    struct proto_req r;
    const char *reason;

    ck_assert_int_eq(parse("get a b c", 3, &r, &reason), PROTO_OK);
    ck_assert_uint_eq(r.nkeys, 3);
    ck_assert_int_eq(parse("get a b c d", 3, &r, &reason), PROTO_CLIENT_ERROR);
    ck_assert_str_eq(reason, PROTO_REASON_TOO_MANY_KEYS);
    ck_assert_int_eq(r.cmd, PROTO_CMD_GET);
    ck_assert_int_eq(parse("gats 1 a b c d", 3, &r, &reason),
                     PROTO_CLIENT_ERROR);
    ck_assert_str_eq(reason, PROTO_REASON_TOO_MANY_KEYS);
    ck_assert_int_eq(parse("gets a", 1, &r, &reason), PROTO_OK);
    ck_assert_int_eq(parse("gets a b", 1, &r, &reason), PROTO_CLIENT_ERROR);
    ck_assert_str_eq(reason, PROTO_REASON_TOO_MANY_KEYS);
    /* Trailing spaces are not keys. */
    ck_assert_int_eq(parse("get a b c     ", 3, &r, &reason), PROTO_OK);
}
END_TEST

START_TEST(many_keys_counted)
{
    enum { N = 1000 };
    static char line[8 + N * 6];
    size_t len = 0;
    struct proto_req r;
    const char *reason = untouched;
    const char *cur, *end;
    struct proto_str key;
    unsigned i;

    len += (size_t)sprintf(line + len, "get");
    for (i = 0; i < N; i++) {
        len += (size_t)sprintf(line + len, " k%u", i);
    }
    ck_assert_int_eq(proto_parse_request(line, len, N, &r, &reason), PROTO_OK);
    ck_assert_uint_eq(r.nkeys, N);
    cur = r.keys.p;
    end = r.keys.p + r.keys.len;
    for (i = 0; proto_next_key(&cur, end, &key); i++) {
        char exp[16];

        snprintf(exp, sizeof(exp), "k%u", i);
        check_view(&key, exp, "key", "many keys");
    }
    ck_assert_uint_eq(i, N);
    ck_assert_int_eq(proto_parse_request(line, len, N - 1, &r, &reason),
                     PROTO_CLIENT_ERROR);
}
END_TEST

/* ---- proto_next_key ------------------------------------------------------ */

START_TEST(next_key_skips_space_runs)
{
    static const char *const want[] = {"a", "bb", "ccc", "d"};
    struct proto_req r;
    const char *reason;
    const char *cur, *end;
    struct proto_str key;
    size_t i;

    ck_assert_int_eq(parse("gat 5   a  bb     ccc d   ", MAX_KEYS, &r, &reason),
                     PROTO_OK);
    ck_assert_uint_eq(r.nkeys, 4);
    check_view(&r.keys, "a  bb     ccc d", "keys", "next_key");
    cur = r.keys.p;
    end = r.keys.p + r.keys.len;
    for (i = 0; proto_next_key(&cur, end, &key); i++) {
        ck_assert_uint_lt(i, UTIL_ARRAY_SIZE(want));
        check_view(&key, want[i], "key", "next_key");
    }
    ck_assert_uint_eq(i, UTIL_ARRAY_SIZE(want));
    ck_assert_ptr_eq(cur, end);
    /* Exhausted stays exhausted. */
    ck_assert(!proto_next_key(&cur, end, &key));

    /* Directly, with leading and trailing spaces and an empty range. */
    {
        const char *s = "   x  y ";

        cur = s;
        end = s + strlen(s);
        ck_assert(proto_next_key(&cur, end, &key));
        check_view(&key, "x", "key", s);
        ck_assert(proto_next_key(&cur, end, &key));
        check_view(&key, "y", "key", s);
        ck_assert(!proto_next_key(&cur, end, &key));
        cur = s;
        ck_assert(!proto_next_key(&cur, s, &key));
    }
}
END_TEST

/* ---- proto_line_limit ---------------------------------------------------- */

struct limit_vec {
    const char *p;
    size_t avail; /* 0: strlen(p) */
    unsigned max_keys;
    size_t want;
};

#define BIG(n) (32 + (size_t)(n) * (PROTO_KEY_MAX + 1))

/* clang-format off */
static const struct limit_vec limit_vecs[] = {
    {"get a b", 0, 100, BIG(100)},
    {"gets a", 0, 100, BIG(100)},
    {"gat 10 a", 0, 100, BIG(100)},
    {"gats 10 a", 0, 100, BIG(100)},
    {"  get a", 0, 100, BIG(100)},
    /* too short to tell: a prefix of a retrieval word */
    {"", 0, 100, BIG(100)},
    {"g", 0, 100, BIG(100)},
    {"ge", 0, 100, BIG(100)},
    {"get", 0, 100, BIG(100)},
    {"gets", 0, 100, BIG(100)},
    {"ga", 0, 100, BIG(100)},
    {"gat", 0, 100, BIG(100)},
    {"gats", 0, 100, BIG(100)},
    {"get a b", 2, 100, BIG(100)},
    /* not a retrieval */
    {"set k 0 0 1", 0, 100, PROTO_LINE_MAX},
    {"s", 0, 100, PROTO_LINE_MAX},
    {"getx a", 0, 100, PROTO_LINE_MAX},
    {"get\ta", 0, 100, PROTO_LINE_MAX},
    {"gex", 0, 100, PROTO_LINE_MAX},
    {"gatsby", 0, 100, PROTO_LINE_MAX},
    {"stats", 0, 100, PROTO_LINE_MAX},
    {"GET a", 0, 100, PROTO_LINE_MAX},
    {"set a b", 2, 100, PROTO_LINE_MAX},
    /* never below PROTO_LINE_MAX */
    {"get a", 0, 1, PROTO_LINE_MAX},
    {"get a", 0, 0, PROTO_LINE_MAX},
    {"get a", 0, 8, PROTO_LINE_MAX},
    {"get a", 0, 9, BIG(9)},
    {"get a", 0, 10000, BIG(10000)},
};
/* clang-format on */

START_TEST(line_limit_by_command)
{
    const struct limit_vec *v = &limit_vecs[_i];
    size_t avail = v->avail != 0 ? v->avail : strlen(v->p);
    size_t got = proto_line_limit(v->p, avail, v->max_keys);

    ck_assert_msg(got == v->want, "\"%.*s\" max_keys %u: %zu want %zu",
                  (int)avail, v->p, v->max_keys, got, v->want);
}
END_TEST

/* ---- input bounded by len, not by a NUL ---------------------------------- */

START_TEST(parse_stops_at_len)
{
    struct proto_req r;
    const char *reason = untouched;
    const char *s;

    s = "incr k 12345";
    ck_assert_int_eq(proto_parse_request(s, 9, MAX_KEYS, &r, &reason),
                     PROTO_OK);
    ck_assert_uint_eq(r.delta, 12);

    s = "get foo bar";
    ck_assert_int_eq(proto_parse_request(s, 7, MAX_KEYS, &r, &reason),
                     PROTO_OK);
    ck_assert_uint_eq(r.nkeys, 1);
    check_view(&r.keys, "foo", "keys", s);

    s = "set k 0 0 12 noreply";
    ck_assert_int_eq(proto_parse_request(s, 11, MAX_KEYS, &r, &reason),
                     PROTO_OK);
    ck_assert_uint_eq(r.vlen, 1);
    ck_assert(!r.noreply);

    s = "delete k noreply";
    ck_assert_int_eq(proto_parse_request(s, 15, MAX_KEYS, &r, &reason),
                     PROTO_CLIENT_ERROR);

    s = "stats items";
    ck_assert_int_eq(proto_parse_request(s, 9, MAX_KEYS, &r, &reason),
                     PROTO_OK);
    check_view(&r.args, "ite", "args", s);

    s = "versionx";
    ck_assert_int_eq(proto_parse_request(s, 7, MAX_KEYS, &r, &reason),
                     PROTO_OK);
    ck_assert_int_eq(r.cmd, PROTO_CMD_VERSION);

    ck_assert_int_eq(proto_parse_request(s, 0, MAX_KEYS, &r, &reason),
                     PROTO_ERROR);
}
END_TEST

/* A NUL ends the line, as in memcached: what follows is not read. */
START_TEST(embedded_nul)
{
    static const char get[] = "get a\0b";
    static const char cmd[] = "get\0 a";
    struct proto_req r;
    const char *reason = untouched;

    ck_assert_int_eq(
        proto_parse_request(get, sizeof(get) - 1, MAX_KEYS, &r, &reason),
        PROTO_OK);
    ck_assert_uint_eq(r.key.len, 1);
    ck_assert_int_eq(
        proto_parse_request(cmd, sizeof(cmd) - 1, MAX_KEYS, &r, &reason),
        PROTO_ERROR);
}
END_TEST

/* ---- backend responses --------------------------------------------------- */

struct rsp_vec {
    const char *line;
    enum proto_rsp want;
};

/* clang-format off */
static const struct rsp_vec rsp_vecs[] = {
    {"VALUE k 0 1", PROTO_RSP_VALUE},
    {"VALUE k 0 1 99", PROTO_RSP_VALUE},
    {"VALUE", PROTO_RSP_UNKNOWN},
    {"VALUE ", PROTO_RSP_UNKNOWN},
    {"VALUES k", PROTO_RSP_UNKNOWN},
    {"END", PROTO_RSP_END},
    {"END ", PROTO_RSP_UNKNOWN},
    {"ENDX", PROTO_RSP_UNKNOWN},
    {"EN", PROTO_RSP_UNKNOWN},
    {"STORED", PROTO_RSP_STORED},
    {"NOT_STORED", PROTO_RSP_NOT_STORED},
    {"EXISTS", PROTO_RSP_EXISTS},
    {"NOT_FOUND", PROTO_RSP_NOT_FOUND},
    {"NOT_FOUNDX", PROTO_RSP_UNKNOWN},
    {"DELETED", PROTO_RSP_DELETED},
    {"TOUCHED", PROTO_RSP_TOUCHED},
    {"OK", PROTO_RSP_OK},
    {"OKAY", PROTO_RSP_UNKNOWN},
    {"0", PROTO_RSP_NUMBER},
    {"42", PROTO_RSP_NUMBER},
    {"18446744073709551615", PROTO_RSP_NUMBER},
    {"18446744073709551616", PROTO_RSP_UNKNOWN},
    {"12a", PROTO_RSP_UNKNOWN},
    {"1 ", PROTO_RSP_UNKNOWN},
    {"-1", PROTO_RSP_UNKNOWN},
    {"VERSION 1.6.21", PROTO_RSP_VERSION},
    {"VERSION", PROTO_RSP_VERSION},
    {"VERSIONX", PROTO_RSP_UNKNOWN},
    {"ERROR", PROTO_RSP_ERROR},
    {"ERROR unknown command", PROTO_RSP_ERROR},
    {"ERRORS", PROTO_RSP_UNKNOWN},
    {"CLIENT_ERROR bad data chunk", PROTO_RSP_CLIENT_ERROR},
    {"CLIENT_ERROR", PROTO_RSP_CLIENT_ERROR},
    {"CLIENT_ERRORX", PROTO_RSP_UNKNOWN},
    {"SERVER_ERROR out of memory storing object", PROTO_RSP_SERVER_ERROR},
    {"SERVER_ERROR", PROTO_RSP_SERVER_ERROR},
    {"SERVER_ERRORS", PROTO_RSP_UNKNOWN},
    {"", PROTO_RSP_UNKNOWN},
    {"stored", PROTO_RSP_UNKNOWN},
    {" STORED", PROTO_RSP_UNKNOWN},
    {"STAT pid 1", PROTO_RSP_UNKNOWN},
    {"RESET", PROTO_RSP_UNKNOWN},
    {"HD", PROTO_RSP_UNKNOWN},
};
/* clang-format on */

START_TEST(response_classified)
{
    const struct rsp_vec *v = &rsp_vecs[_i];
    enum proto_rsp got = proto_classify_response(v->line, strlen(v->line));

    ck_assert_msg(got == v->want, "\"%s\": %d want %d", v->line, (int)got,
                  (int)v->want);
}
END_TEST

START_TEST(response_classify_stops_at_len)
{
    ck_assert_int_eq(proto_classify_response("ENDING", 3), PROTO_RSP_END);
    ck_assert_int_eq(proto_classify_response("1234x", 4), PROTO_RSP_NUMBER);
    ck_assert_int_eq(proto_classify_response("STORED", 5), PROTO_RSP_UNKNOWN);
    ck_assert_int_eq(proto_classify_response("VALUE k", 6), PROTO_RSP_UNKNOWN);
}
END_TEST

struct value_vec {
    const char *line;
    int rc;
    const char *key;
    uint32_t flags;
    uint32_t vlen;
    bool has_cas;
    uint64_t cas;
};

/* clang-format off */
static const struct value_vec value_vecs[] = {
    {"VALUE k 0 5", 0, "k", 0, 5, false, 0},
    {"VALUE foo:bar 4294967295 0 18446744073709551615", 0, "foo:bar",
     4294967295u, 0, true, UINT64_MAX},
    {"VALUE k 1 2147483647 0", 0, "k", 1, 2147483647, true, 0},
    {"VALUE caf\xc3\xa9 7 3", 0, "caf\xc3\xa9", 7, 3, false, 0},
    {"VALUE k 0", -1, NULL, 0, 0, false, 0},
    {"VALUE k", -1, NULL, 0, 0, false, 0},
    {"VALUE", -1, NULL, 0, 0, false, 0},
    {"VALUE ", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 5 1 2", -1, NULL, 0, 0, false, 0},
    {"VALUE  k 0 5", -1, NULL, 0, 0, false, 0},
    {"VALUE k  0 5", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 5 ", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 5 1 ", -1, NULL, 0, 0, false, 0},
    {"VALUE k 4294967296 5", -1, NULL, 0, 0, false, 0},
    {"VALUE k -1 5", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 2147483648", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 -1", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 x", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 5 x", -1, NULL, 0, 0, false, 0},
    {"VALUE k 0 5 18446744073709551616", -1, NULL, 0, 0, false, 0},
    {"VALUE k\t 0 5", 0, "k\t", 0, 5, false, 0},
    {"VALUEk 0 5", -1, NULL, 0, 0, false, 0},
    {"value k 0 5", -1, NULL, 0, 0, false, 0},
    {"END", -1, NULL, 0, 0, false, 0},
    {"", -1, NULL, 0, 0, false, 0},
};
/* clang-format on */

START_TEST(value_line_parsed)
{
    const struct value_vec *v = &value_vecs[_i];
    struct proto_str key = {NULL, 0};
    uint32_t flags = 99, vlen = 99;
    uint64_t cas = 99;
    bool has_cas = true;
    int rc = proto_parse_value(v->line, strlen(v->line), &key, &flags, &vlen,
                               &cas, &has_cas);

    ck_assert_msg(rc == v->rc, "\"%s\": rc %d want %d", v->line, rc, v->rc);
    if (rc != 0) {
        return;
    }
    check_view(&key, v->key, "key", v->line);
    ck_assert_uint_eq(flags, v->flags);
    ck_assert_uint_eq(vlen, v->vlen);
    ck_assert(has_cas == v->has_cas);
    ck_assert_uint_eq(cas, v->cas);
}
END_TEST

START_TEST(value_line_key_limits)
{
    char line[PROTO_KEY_MAX + 32];
    struct proto_str key;
    uint32_t flags, vlen;
    uint64_t cas;
    bool has_cas;
    int n;

    memcpy(line, "VALUE ", 6);
    memset(line + 6, 'k', PROTO_KEY_MAX);
    n = 6 + PROTO_KEY_MAX;
    n += sprintf(line + n, " 0 1");
    ck_assert_int_eq(
        proto_parse_value(line, (size_t)n, &key, &flags, &vlen, &cas, &has_cas),
        0);
    ck_assert_uint_eq(key.len, PROTO_KEY_MAX);

    memset(line + 6, 'k', PROTO_KEY_MAX + 1);
    n = 6 + PROTO_KEY_MAX + 1;
    n += sprintf(line + n, " 0 1");
    ck_assert_int_eq(
        proto_parse_value(line, (size_t)n, &key, &flags, &vlen, &cas, &has_cas),
        -1);

    /* Bounded by len: the cas beyond it is not seen. */
    ck_assert_int_eq(proto_parse_value("VALUE k 0 5 77", 11, &key, &flags,
                                       &vlen, &cas, &has_cas),
                     0);
    ck_assert(!has_cas);
    ck_assert_uint_eq(vlen, 5);
}
END_TEST

/* ---- meta commands ------------------------------------------------------ */

START_TEST(meta_lines_read_for_routing)
{
    struct proto_req r;
    const char *reason = untouched;

    ck_assert_int_eq(parse("mg k v q Oab", MAX_KEYS, &r, &reason), PROTO_OK);
    ck_assert_int_eq(r.cmd, PROTO_CMD_MG);
    check_view(&r.key, "k", "key", "mg");
    ck_assert(r.meta_quiet);
    ck_assert(!r.meta_b64);
    ck_assert_int_eq(parse("ms a2V5 5 b T10", MAX_KEYS, &r, &reason),
                     PROTO_OK);
    ck_assert_int_eq(r.cmd, PROTO_CMD_MS);
    ck_assert_uint_eq(r.vlen, 5);
    ck_assert(r.meta_b64);
    ck_assert_uint_eq(r.meta_flags, 3);
    /* what memcached checks before the flags */
    ck_assert_int_eq(parse("mg", MAX_KEYS, &r, &reason), PROTO_ERROR);
    ck_assert_int_eq(parse("ms k", MAX_KEYS, &r, &reason),
                     PROTO_CLIENT_ERROR);
    ck_assert_str_eq(reason, PROTO_REASON_FORMAT);
    ck_assert_int_eq(parse("ms k -1", MAX_KEYS, &r, &reason),
                     PROTO_CLIENT_ERROR);
    ck_assert_int_eq(parse("mg k 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
                           MAX_KEYS, &r, &reason),
                     PROTO_CLIENT_ERROR);
    ck_assert_str_eq(reason, PROTO_REASON_MG_LONG);
    ck_assert_int_eq(parse("me k b", MAX_KEYS, &r, &reason), PROTO_OK);
    ck_assert(r.meta_b64);
}
END_TEST

START_TEST(base64_decoded_as_memcached)
{
    char out[16];

    ck_assert_uint_eq(proto_base64_decode("a2V5", 4, out, sizeof(out)), 3);
    ck_assert_int_eq(memcmp(out, "key", 3), 0);
    ck_assert_uint_eq(proto_base64_decode("aw==", 4, out, sizeof(out)), 1);
    ck_assert_int_eq(out[0], 'k');
    ck_assert_uint_eq(proto_base64_decode("a2V", 3, out, sizeof(out)), 0);
    ck_assert_uint_eq(proto_base64_decode("a=V5", 4, out, sizeof(out)), 0);
    ck_assert_uint_eq(proto_base64_decode("a2V*", 4, out, sizeof(out)), 0);
    ck_assert_uint_eq(proto_base64_decode("a2V5a2V5", 8, out, 3), 0);
}
END_TEST

START_TEST(base64_encoded_and_back)
{
    /* RFC 4648's vectors, then every length and byte back through the
     * decoder. */
    static const char *const vec[][2] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
        {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"}};
    char out[PROTO_BASE64_LEN(256) + 1], back[256], src[256];

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(vec); i++) {
        ck_assert_uint_eq(proto_base64_encode(vec[i][0], strlen(vec[i][0]),
                                              out),
                          strlen(vec[i][1]));
        ck_assert_str_eq(out, vec[i][1]);
    }
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (char)(255 - i);
    }
    for (size_t n = 1; n <= sizeof(src); n++) {
        size_t m = proto_base64_encode(src, n, out);

        ck_assert_uint_eq(m, PROTO_BASE64_LEN(n));
        ck_assert_uint_eq(proto_base64_decode(out, m, back, sizeof(back)), n);
        ck_assert_int_eq(memcmp(back, src, n), 0);
    }
}
END_TEST

/* ---- meta hits, copy exptimes, classic keys ----------------------------- */

START_TEST(meta_value_parsed)
{
    struct proto_meta_value mv;
    static const char *const bad[] = {"VA", "VA ", "VA x f1", "EN", "HD c1",
                                      "VA 3 fx", "VA 3 f4294967296",
                                      "VA 3 t", "VA 3 c-1", "VA 4294967296"};

    ck_assert_int_eq(proto_parse_meta_value("VA 5 f7 t-1 c42", 15, &mv), 0);
    ck_assert_uint_eq(mv.len, 5);
    ck_assert_uint_eq(mv.flags, 7);
    ck_assert_int_eq(mv.ttl, -1);
    ck_assert(mv.has_cas && mv.cas == 42);
    ck_assert(!proto_meta_unsettled(&mv));
    /* Flags in any order, unknown ones (k) ignored; absent ones default;
     * memcached's own W and X (and Z) noted. */
    ck_assert_int_eq(proto_parse_meta_value("VA 0 W t300 X kfoo", 18, &mv),
                     0);
    ck_assert_uint_eq(mv.len, 0);
    ck_assert_uint_eq(mv.flags, 0);
    ck_assert_int_eq(mv.ttl, 300);
    ck_assert(!mv.has_cas);
    ck_assert(mv.won && mv.stale && !mv.claimed);
    ck_assert(proto_meta_unsettled(&mv));
    /* A vivified placeholder, as another client sees it. */
    ck_assert_int_eq(proto_parse_meta_value("VA 0 c9 f0 t5 Z", 15, &mv), 0);
    ck_assert(mv.claimed && !mv.won && mv.cas == 9);
    /* A one-letter flag only: "Zx" is not Z. */
    ck_assert_int_eq(proto_parse_meta_value("VA 0 Zx Wy", 10, &mv), 0);
    ck_assert(!proto_meta_unsettled(&mv));
    /* HD lines through proto_parse_meta_hit. */
    ck_assert_int_eq(proto_parse_meta_hit("HD c12 W", 8, &mv), 0);
    ck_assert(mv.won && mv.has_cas && mv.cas == 12 && mv.len == 0);
    ck_assert_int_eq(proto_parse_meta_hit("HD", 2, &mv), 0);
    ck_assert(!mv.has_cas && !proto_meta_unsettled(&mv));
    ck_assert_int_eq(proto_parse_meta_hit("VA 2 c3", 7, &mv), 0);
    ck_assert(mv.len == 2 && mv.cas == 3);
    ck_assert_int_eq(proto_parse_meta_hit("HDc1", 4, &mv), -1);
    ck_assert_int_eq(proto_parse_meta_hit("EN", 2, &mv), -1);
    ck_assert_int_eq(proto_parse_meta_hit("HD cx", 5, &mv), -1);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(bad); i++) {
        ck_assert_msg(proto_parse_meta_value(bad[i], strlen(bad[i]), &mv) ==
                          -1,
                      "%s", bad[i]);
    }
}
END_TEST

START_TEST(copy_exptime_follows_memcached)
{
    ck_assert_int_eq(proto_copy_exptime(-1, 1000), 0);
    ck_assert_int_eq(proto_copy_exptime(0, 1000), -1);
    ck_assert_int_eq(proto_copy_exptime(1, 1000), 1);
    ck_assert_int_eq(proto_copy_exptime(2592000, 1000), 2592000);
    ck_assert_int_eq(proto_copy_exptime(2592001, 1000), 2593001);
}
END_TEST

START_TEST(classic_keys)
{
    char big[PROTO_KEY_MAX + 1];

    memset(big, 'k', sizeof(big));
    ck_assert(proto_key_classic("k", 1));
    ck_assert(proto_key_classic("a\tb", 3));
    ck_assert(proto_key_classic(big, PROTO_KEY_MAX));
    ck_assert(!proto_key_classic(big, PROTO_KEY_MAX + 1));
    ck_assert(!proto_key_classic("", 0));
    ck_assert(!proto_key_classic("a b", 3));
    ck_assert(!proto_key_classic("a\nb", 3));
    ck_assert(!proto_key_classic("a\0b", 3));
    ck_assert(!proto_key_classic("ab\r", 3));
}
END_TEST

static Suite *
proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc;

    tc = tcase_create("valid_requests");
    tcase_add_loop_test(tc, valid_request_fields, 0,
                        (int)UTIL_ARRAY_SIZE(ok_vecs));
    tcase_add_test(tc, cmd_names_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed_requests");
    tcase_add_loop_test(tc, malformed_request_status, 0,
                        (int)UTIL_ARRAY_SIZE(bad_vecs));
    suite_add_tcase(s, tc);

    tc = tcase_create("storage_close_vs_swallow");
    suite_add_tcase(s, tc);

    tc = tcase_create("key_limits");
    tcase_add_loop_test(tc, key_250_ok_251_rejected, 0,
                        (int)UTIL_ARRAY_SIZE(key_forms));
    tcase_add_test(tc, key_control_bytes_accepted);
    tcase_add_test(tc, nul_ends_the_line);
    tcase_add_test(tc, key_high_bytes_accepted);
    suite_add_tcase(s, tc);

    tc = tcase_create("meta commands");
    tcase_add_test(tc, meta_lines_read_for_routing);
    tcase_add_test(tc, base64_decoded_as_memcached);
    tcase_add_test(tc, base64_encoded_and_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("max_keys");
    tcase_add_test(tc, too_many_keys);
    tcase_add_test(tc, many_keys_counted);
    suite_add_tcase(s, tc);

    tc = tcase_create("next_key");
    tcase_add_test(tc, next_key_skips_space_runs);
    suite_add_tcase(s, tc);

    tc = tcase_create("line_limit");
    tcase_add_loop_test(tc, line_limit_by_command, 0,
                        (int)UTIL_ARRAY_SIZE(limit_vecs));
    suite_add_tcase(s, tc);

    tc = tcase_create("bounded_input");
    tcase_add_test(tc, parse_stops_at_len);
    tcase_add_test(tc, embedded_nul);
    tcase_add_test(tc, response_classify_stops_at_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("response_classify");
    tcase_add_loop_test(tc, response_classified, 0,
                        (int)UTIL_ARRAY_SIZE(rsp_vecs));
    suite_add_tcase(s, tc);

    tc = tcase_create("value_line");
    tcase_add_loop_test(tc, value_line_parsed, 0,
                        (int)UTIL_ARRAY_SIZE(value_vecs));
    tcase_add_test(tc, value_line_key_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("meta_value");
    tcase_add_test(tc, meta_value_parsed);
    tcase_add_test(tc, copy_exptime_follows_memcached);
    tcase_add_test(tc, classic_keys);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
