/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests: the watchers' hub, rings and lines (watch.h), with the
 * workers' messages delivered by hand.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "watch.h"

#define NWORKERS 2

/* The workers' taps, fed as the inbox would (at once). */
struct fake {
    struct watch_tap tap[NWORKERS];
    unsigned sent_on, sent_off;
};

static int
fake_send(void *arg, unsigned worker, bool on, struct watch_slot *s)
{
    struct fake *f = arg;

    if (on) {
        f->sent_on++;
        watch_tap_add(&f->tap[worker], s);
    } else {
        f->sent_off++;
        watch_tap_remove(&f->tap[worker], s);
    }
    return 0;
}

/* A line of n bytes (with its "\n") starting "ts=1.000000 ". */
static size_t
make_line(char *buf, size_t n, unsigned i)
{
    int k = snprintf(buf, n, "ts=1.000000 i=%u ", i);

    memset(buf + k, 'x', n - (size_t)k - 1);
    buf[n - 1] = '\n';
    return n;
}

static char *
drain_text(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);

    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_parse_sample_bounds)
{
    uint32_t n = 0;
    char big[16];

    ck_assert_int_eq(watch_parse_sample("1", 1, &n), 0);
    ck_assert_uint_eq(n, 1);
    snprintf(big, sizeof(big), "%u", WATCH_SAMPLE_MAX);
    ck_assert_int_eq(watch_parse_sample(big, strlen(big), &n), 0);
    ck_assert_uint_eq(n, WATCH_SAMPLE_MAX);
    snprintf(big, sizeof(big), "%u", WATCH_SAMPLE_MAX + 1);
    ck_assert_int_eq(watch_parse_sample(big, strlen(big), &n), -1);
    ck_assert_int_eq(watch_parse_sample("0", 1, &n), -1);
    ck_assert_int_eq(watch_parse_sample("01", 2, &n), -1);
    ck_assert_int_eq(watch_parse_sample("", 0, &n), -1);
    ck_assert_int_eq(watch_parse_sample("5x", 2, &n), -1);
    ck_assert_int_eq(watch_parse_sample("-5", 2, &n), -1);
    ck_assert_int_eq(watch_parse_sample("99999999999", 11, &n), -1);
}
END_TEST

START_TEST(test_parse_args)
{
    uint32_t n = 0;

    ck_assert_int_eq(watch_parse_args("", 0, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(watch_parse_args("sample=7", 8, &n), 0);
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(watch_parse_args(" sample=9 ", 10, &n), 0);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(watch_parse_args("sample=", 7, &n), -1);
    ck_assert_int_eq(watch_parse_args("samples=2", 9, &n), -1);
    ck_assert_int_eq(watch_parse_args("proxyreqs", 9, &n), -1);
    ck_assert_int_eq(watch_parse_args("sample=2 sample=3", 17, &n), -1);
}
END_TEST

START_TEST(test_escape_key)
{
    char out[64];

    ck_assert_uint_eq(watch_escape_key("foo:1", 5, out, sizeof(out)), 5);
    ck_assert_str_eq(out, "foo:1");
    watch_escape_key("a\\b", 3, out, sizeof(out));
    ck_assert_str_eq(out, "a\\\\b");
    watch_escape_key("a\x01\tb\xff", 5, out, sizeof(out));
    ck_assert_str_eq(out, "a\\x01\\x09b\\xff");
    /* Never past cap. */
    ck_assert_uint_eq(watch_escape_key("\x01\x01\x01", 3, out, 9), 8);
    ck_assert_str_eq(out, "\\x01\\x01");
}
END_TEST

START_TEST(test_results)
{
    ck_assert_str_eq(watch_result("STORED\r\n", 8, false, "set"), "stored");
    ck_assert_str_eq(watch_result("NOT_STORED", 10, false, "add"),
                     "not_stored");
    ck_assert_str_eq(watch_result("VALUE k 0 1\r\n", 13, false, "get"),
                     "hit");
    ck_assert_str_eq(watch_result("END\r\n", 5, false, "get"), "miss");
    ck_assert_str_eq(watch_result("END\r\n", 5, false, "stats"), "ok");
    ck_assert_str_eq(watch_result("STAT pid 1\r\n", 12, false, "stats"),
                     "ok");
    ck_assert_str_eq(watch_result("42\r\n", 4, false, "incr"), "ok");
    ck_assert_str_eq(watch_result("SERVER_ERROR backend timeout", 28, false,
                                  "get"),
                     "server_error");
    ck_assert_str_eq(watch_result("ERROR: shutdown not enabled", 27, false,
                                  "shutdown"),
                     "error");
    ck_assert_str_eq(watch_result("HD\r\n", 4, true, "mg"), "hit");
    ck_assert_str_eq(watch_result("HD c1\r\n", 7, true, "ms"), "stored");
    ck_assert_str_eq(watch_result("HD\r\n", 4, true, "md"), "deleted");
    ck_assert_str_eq(watch_result("EN\r\n", 4, true, "mg"), "miss");
    ck_assert_str_eq(watch_result("NS\r\n", 4, true, "ms"), "not_stored");
    ck_assert_str_eq(watch_result("FOO\r\n", 5, false, "x"), "other");
    ck_assert_str_eq(watch_result("", 0, false, "quit"), "none");
}
END_TEST

START_TEST(test_cap_and_free)
{
    struct fake f;
    struct watch *h;
    struct watch_slot *s[WATCH_MAX];

    memset(&f, 0, sizeof(f));
    h = watch_create(NWORKERS, fake_send, &f);
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        s[i] = watch_open(h, 1);
        ck_assert_ptr_nonnull(s[i]);
    }
    ck_assert_uint_eq(watch_count(h), WATCH_MAX);
    /* One more is refused. */
    ck_assert_ptr_null(watch_open(h, 1));
    ck_assert_uint_eq(f.tap[0].mask, (1u << WATCH_MAX) - 1);
    /* Closed, it is free again (every worker let go at once here). */
    watch_close(s[3]);
    ck_assert_uint_eq(watch_count(h), WATCH_MAX - 1);
    ck_assert_uint_eq(f.tap[1].mask & (1u << 3), 0);
    s[3] = watch_open(h, 1);
    ck_assert_ptr_nonnull(s[3]);
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        watch_close(s[i]);
    }
    ck_assert_uint_eq(watch_count(h), 0);
    ck_assert_uint_eq(f.tap[0].mask, 0);
    ck_assert_uint_eq(f.sent_on, (WATCH_MAX + 1) * NWORKERS);
    ck_assert_uint_eq(f.sent_off, (WATCH_MAX + 1) * NWORKERS);
    watch_destroy(h);
}
END_TEST

START_TEST(test_quiesced_slots_go_with_the_hub)
{
    struct fake f;
    struct watch *h;
    struct watch_slot *s;

    memset(&f, 0, sizeof(f));
    h = watch_create(NWORKERS, fake_send, &f);
    s = watch_open(h, 1);
    ck_assert_ptr_nonnull(s);
    watch_quiesce(h);
    ck_assert_ptr_null(watch_open(h, 1));
    watch_close(s);
    /* No worker was told: its slot stays, freed by watch_destroy(). */
    ck_assert_uint_eq(f.sent_off, 0);
    ck_assert_uint_eq(watch_count(h), 1);
    watch_destroy(h);
}
END_TEST

START_TEST(test_sample_one_in_n)
{
    struct fake f;
    struct watch *h;
    struct watch_slot *a, *b;
    unsigned na = 0, nb = 0;

    memset(&f, 0, sizeof(f));
    h = watch_create(NWORKERS, fake_send, &f);
    a = watch_open(h, 1);
    b = watch_open(h, 10);
    for (unsigned i = 0; i < 100; i++) {
        uint32_t m = watch_tap_sample(&f.tap[0]);

        na += (m & 1u) != 0;
        nb += (m & 2u) != 0;
        if (i == 0) {
            /* The first request is sampled by both. */
            ck_assert_uint_eq(m, 3);
        }
    }
    ck_assert_uint_eq(na, 100);
    ck_assert_uint_eq(nb, 10);
    watch_close(a);
    watch_close(b);
    watch_destroy(h);
}
END_TEST

START_TEST(test_full_ring_drops_and_tells)
{
    struct fake f;
    struct watch *h;
    struct watch_slot *s;
    struct evbuffer *out = evbuffer_new();
    char line[200];
    uint64_t events = 0, dropped = 0;
    unsigned fit = WATCH_RING_BYTES / sizeof(line);
    char *text, *p;

    memset(&f, 0, sizeof(f));
    h = watch_create(NWORKERS, fake_send, &f);
    s = watch_open(h, 1);
    /* Twice what the ring holds: the rest is dropped, not waited for. */
    for (unsigned i = 0; i < 2 * fit; i++) {
        make_line(line, sizeof(line), i);
        watch_tap_emit(&f.tap[1], 1, 1u, line, sizeof(line), &events,
                       &dropped);
    }
    ck_assert_uint_eq(events, fit);
    ck_assert_uint_eq(dropped, fit);
    /* Read in pieces smaller than it holds: whole lines only. */
    ck_assert_uint_eq(watch_read(s, out, 450), 2 * sizeof(line));
    ck_assert_uint_eq(watch_read(s, out, WATCH_RING_BYTES),
                      (fit - 2) * sizeof(line));
    ck_assert_uint_eq(watch_read(s, out, WATCH_RING_BYTES), 0);
    /* The next line that fits is told of the drops first. */
    make_line(line, sizeof(line), 9999);
    watch_tap_emit(&f.tap[1], 1, 1u, line, sizeof(line), &events, &dropped);
    ck_assert_uint_eq(events, fit + 1);
    evbuffer_drain(out, evbuffer_get_length(out));
    watch_read(s, out, WATCH_RING_BYTES);
    text = drain_text(out);
    p = strchr(text, '\n');
    ck_assert_ptr_nonnull(p);
    *p = '\0';
    {
        char want[64];

        snprintf(want, sizeof(want), "ts=1.000000 dropped=%u", fit);
        ck_assert_str_eq(text, want);
    }
    ck_assert(strncmp(p + 1, "ts=1.000000 i=9999 ", 19) == 0);
    ck_assert_uint_eq(strlen(p + 1), sizeof(line));
    free(text);
    /* A line for a watcher that left goes nowhere. */
    watch_close(s);
    watch_tap_emit(&f.tap[1], 1, 1u, line, sizeof(line), &events, &dropped);
    ck_assert_uint_eq(events, fit + 1);
    evbuffer_free(out);
    watch_destroy(h);
}
END_TEST

START_TEST(test_ring_wraps)
{
    struct fake f;
    struct watch *h;
    struct watch_slot *s;
    struct evbuffer *out = evbuffer_new();
    char line[333];                 /* not a divisor of the ring */
    uint64_t events = 0, dropped = 0;

    memset(&f, 0, sizeof(f));
    h = watch_create(NWORKERS, fake_send, &f);
    s = watch_open(h, 1);
    for (unsigned i = 0; i < 10 * WATCH_RING_BYTES / sizeof(line); i++) {
        char got[sizeof(line)];

        make_line(line, sizeof(line), i);
        watch_tap_emit(&f.tap[0], 0, 1u, line, sizeof(line), &events,
                       &dropped);
        ck_assert_uint_eq(watch_read(s, out, WATCH_OUTPUT_MAX),
                          sizeof(line));
        evbuffer_remove(out, got, sizeof(got));
        ck_assert(memcmp(got, line, sizeof(line)) == 0);
    }
    ck_assert_uint_eq(dropped, 0);
    watch_close(s);
    evbuffer_free(out);
    watch_destroy(h);
}
END_TEST

static Suite *
watch_suite(void)
{
    Suite *s = suite_create("watch");
    TCase *args = tcase_create("arguments");
    TCase *lines = tcase_create("lines");
    TCase *hub = tcase_create("hub");

    tcase_add_test(args, test_parse_sample_bounds);
    tcase_add_test(args, test_parse_args);
    tcase_add_test(lines, test_escape_key);
    tcase_add_test(lines, test_results);
    tcase_add_test(hub, test_cap_and_free);
    tcase_add_test(hub, test_quiesced_slots_go_with_the_hub);
    tcase_add_test(hub, test_sample_one_in_n);
    tcase_add_test(hub, test_full_ring_drops_and_tells);
    tcase_add_test(hub, test_ring_wraps);
    suite_add_tcase(s, args);
    suite_add_tcase(s, lines);
    suite_add_tcase(s, hub);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(watch_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
