/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_spool: the delete spool's file format (records parsed and written
 * back, malformed lines refused) and its reader (header, a line cut short,
 * malformed lines, a file that is not a spool, a missing file).
 */
#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

static const struct {
    const char *line;
    enum spool_kind kind;
    const char *owner, *key, *fallback;
} good[] = {
    {"delete b1 user:42", SPOOL_DELETE, "b1", "user:42", ""},
    {"delete b1 user:42 b2", SPOOL_DELETE, "b1", "user:42", "b2"},
    {"copy mc-1.eu:x k mc_2", SPOOL_COPY, "mc-1.eu:x", "k", "mc_2"},
    {"flush b3", SPOOL_FLUSH, "b3", "", ""},
    /* Any classic key: tabs and a '\r' inside are bytes like others. */
    {"delete b1 a\tb\rc", SPOOL_DELETE, "b1", "a\tb\rc", ""},
};

static bool
view_is(struct proto_str v, const char *s)
{
    return v.len == strlen(s) && (v.len == 0 || memcmp(v.p, s, v.len) == 0);
}

START_TEST(test_good_records_round_trip)
{
    struct spool_record rec;
    char buf[SPOOL_RECORD_MAX];
    const char *line = good[_i].line;
    size_t n;

    ck_assert_int_eq(spool_parse_line(line, strlen(line), &rec), 0);
    ck_assert_int_eq(rec.kind, good[_i].kind);
    ck_assert(view_is(rec.owner, good[_i].owner));
    ck_assert(view_is(rec.key, good[_i].key));
    ck_assert(view_is(rec.fallback, good[_i].fallback));
    n = spool_format(buf, sizeof(buf), &rec);
    ck_assert_uint_eq(n, strlen(line) + 1);
    ck_assert(memcmp(buf, line, strlen(line)) == 0);
    ck_assert_int_eq(buf[n - 1], '\n');
}
END_TEST

static const char *const bad[] = {
    "",
    "delete",
    "delete b1",
    "delete b1 ",
    "delete  b1 k",
    "delete b1 k ",
    "delete b1 k b2 extra",
    "delete b1 k b 2",
    "delete b/1 k",
    "delete b1 k b/2",
    "copy b1 k",
    "flush",
    "flush b1 k",
    "flush b1 ",
    "remove b1 k",
    "DELETE b1 k",
    "delete b1 k\r",
    "mcring-delete-spool 1",
};

START_TEST(test_malformed_lines_refused)
{
    struct spool_record rec;

    ck_assert_msg(spool_parse_line(bad[_i], strlen(bad[_i]), &rec) != 0,
                  "'%s' parsed", bad[_i]);
}
END_TEST

START_TEST(test_name_and_key_bounds)
{
    char line[1024], name[CONFIG_NAME_MAX + 2], key[PROTO_KEY_MAX + 2];
    char buf[SPOOL_RECORD_MAX];
    struct spool_record rec;

    memset(name, 'n', sizeof(name));
    memset(key, 'k', sizeof(key));
    /* The longest name and key fit, and the longest record fits its
     * bound. */
    snprintf(line, sizeof(line), "delete %.*s %.*s %.*s", CONFIG_NAME_MAX,
             name, PROTO_KEY_MAX, key, CONFIG_NAME_MAX, name);
    ck_assert_int_eq(spool_parse_line(line, strlen(line), &rec), 0);
    ck_assert_uint_eq(spool_format(buf, sizeof(buf), &rec), strlen(line) + 1);
    /* One byte more of either: refused. */
    snprintf(line, sizeof(line), "delete %.*s k", CONFIG_NAME_MAX + 1, name);
    ck_assert_int_ne(spool_parse_line(line, strlen(line), &rec), 0);
    snprintf(line, sizeof(line), "delete b1 %.*s", PROTO_KEY_MAX + 1, key);
    ck_assert_int_ne(spool_parse_line(line, strlen(line), &rec), 0);
    /* A buffer too small: nothing written. */
    ck_assert_int_eq(spool_parse_line("flush b1", 8, &rec), 0);
    ck_assert_uint_eq(spool_format(buf, 9, &rec), 0);
    ck_assert_uint_eq(spool_format(buf, 10, &rec), 9);
}
END_TEST

START_TEST(test_format_refuses_bad_records)
{
    char buf[SPOOL_RECORD_MAX];
    struct spool_record rec = {
        .kind = SPOOL_DELETE, .owner = {"b1", 2}, .key = {"a b", 3}};

    ck_assert_uint_eq(spool_format(buf, sizeof(buf), &rec), 0);
    rec.key = (struct proto_str){"k", 1};
    rec.kind = SPOOL_COPY;
    ck_assert_uint_eq(spool_format(buf, sizeof(buf), &rec), 0);
    rec.owner = (struct proto_str){"b 1", 3};
    rec.kind = SPOOL_FLUSH;
    ck_assert_uint_eq(spool_format(buf, sizeof(buf), &rec), 0);
}
END_TEST

/* ---- reading files ------------------------------------------------------- */

static char tmpdir[256];

static void
tmp_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_spool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
tmp_teardown(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *
write_file(const char *name, const char *text)
{
    static char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    ck_assert_int_eq(fclose(fp), 0);
    return path;
}

struct seen {
    unsigned n;
    char keys[8][32];
};

static void
collect(const struct spool_record *rec, void *arg)
{
    struct seen *s = arg;

    if (s->n < 8) {
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%.*s:%.*s",
                 (int)rec->owner.len, rec->owner.p, (int)rec->key.len,
                 rec->key.p);
    }
    s->n++;
}

START_TEST(test_read_good_file)
{
    struct spool_read_stats st;
    struct seen s = {0};
    char err[256];
    const char *path =
        write_file("spool", SPOOL_HEADER "\ndelete b1 k1\nflush b2\n"
                            "copy b1 k2 b3\n");

    ck_assert_int_eq(spool_read(path, collect, &s, &st, err, sizeof(err)), 0);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_uint_eq(st.records, 3);
    ck_assert_str_eq(s.keys[0], "b1:k1");
    ck_assert_str_eq(s.keys[1], "b2:");
    ck_assert_str_eq(s.keys[2], "b1:k2");
    ck_assert(!st.truncated);
    ck_assert_uint_eq(st.malformed, 0);
}
END_TEST

START_TEST(test_read_cut_and_malformed)
{
    struct spool_read_stats st;
    struct seen s = {0};
    char err[256];
    const char *path =
        write_file("spool", SPOOL_HEADER "\ndelete b1 k1\nnonsense\n\n"
                            "delete b1 k2\ndelete b1 k3");

    ck_assert_int_eq(spool_read(path, collect, &s, &st, err, sizeof(err)), 0);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_str_eq(s.keys[1], "b1:k2");
    ck_assert(st.truncated);
    ck_assert_uint_eq(st.malformed, 2);
    ck_assert_uint_eq(st.first_malformed, 3);
}
END_TEST

START_TEST(test_read_missing_empty_and_cut_header)
{
    struct spool_read_stats st;
    struct seen s = {0};
    char err[256], path[512];

    snprintf(path, sizeof(path), "%s/none", tmpdir);
    ck_assert_int_eq(spool_read(path, collect, &s, &st, err, sizeof(err)), 0);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(spool_read(write_file("empty", ""), collect, &s, &st,
                                err, sizeof(err)),
                     0);
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(spool_read(write_file("cut", "mcring-delete"), collect,
                                &s, &st, err, sizeof(err)),
                     0);
    ck_assert(st.truncated);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(test_read_refuses_other_files)
{
    struct spool_read_stats st;
    char err[256];

    ck_assert_int_eq(spool_read(write_file("ini", "[proxy]\nlisten = x\n"),
                                NULL, NULL, &st, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "not a delete spool"));
    ck_assert_int_eq(spool_read(write_file("v2", "mcring-delete-spool 2\n"),
                                NULL, NULL, &st, err, sizeof(err)),
                     -1);
}
END_TEST

START_TEST(test_check_paths)
{
    char err[256], path[512];

    snprintf(path, sizeof(path), "%s/spool", tmpdir);
    ck_assert_int_eq(spool_check(path, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/no/spool", tmpdir);
    ck_assert_int_eq(spool_check(path, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
    snprintf(path, sizeof(path), "%s", tmpdir);
    ck_assert_int_eq(spool_check(path, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    snprintf(path, sizeof(path), "%s/x/spool",
             write_file("x", "a file, not a directory\n"));
    ck_assert_int_eq(spool_check(path, err, sizeof(err)), -1);
}
END_TEST

static Suite *
spool_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("records");

    tcase_add_loop_test(tc, test_good_records_round_trip, 0,
                        (int)(sizeof(good) / sizeof(good[0])));
    tcase_add_loop_test(tc, test_malformed_lines_refused, 0,
                        (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, test_name_and_key_bounds);
    tcase_add_test(tc, test_format_refuses_bad_records);
    suite_add_tcase(s, tc);
    tc = tcase_create("reading a spool file");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_read_good_file);
    tcase_add_test(tc, test_read_cut_and_malformed);
    tcase_add_test(tc, test_read_missing_empty_and_cut_header);
    tcase_add_test(tc, test_read_refuses_other_files);
    tcase_add_test(tc, test_check_paths);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(spool_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
