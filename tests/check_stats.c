/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests: the latency histogram (stats.h) and the hot-key counters
 * (hotkeys.h).
 */
#include "autoconf.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "hotkeys.h"
#include "stats.h"

/* ---- histogram ----------------------------------------------------------- */

START_TEST(test_histo_buckets_are_upper_bounds)
{
    struct stats_histo h;

    memset(&h, 0, sizeof(h));
    stats_histo_add(&h, 0);
    stats_histo_add(&h, 50);        /* on a bound: that bucket */
    stats_histo_add(&h, 51);
    stats_histo_add(&h, 5000000);
    stats_histo_add(&h, 5000001);   /* beyond the last: +Inf */
    ck_assert_uint_eq(stats_get(&h.bucket[0]), 2);
    ck_assert_uint_eq(stats_get(&h.bucket[1]), 1);
    ck_assert_uint_eq(stats_get(&h.bucket[STATS_HISTO_BUCKETS - 1]), 1);
    ck_assert_uint_eq(stats_get(&h.bucket[STATS_HISTO_BUCKETS]), 1);
    ck_assert_uint_eq(stats_histo_count(&h), 5);
    ck_assert_uint_eq(stats_get(&h.sum_us), 50 + 51 + 5000000 + 5000001);
    /* Log-spaced, increasing, from 50 us to 5 s. */
    ck_assert_uint_eq(stats_histo_bounds_us[0], 50);
    ck_assert_uint_eq(stats_histo_bounds_us[STATS_HISTO_BUCKETS - 1], 5000000);
    for (unsigned i = 1; i < STATS_HISTO_BUCKETS; i++) {
        double r = (double)stats_histo_bounds_us[i] /
                   stats_histo_bounds_us[i - 1];

        ck_assert(r >= 2 && r <= 2.5);
    }
}
END_TEST

START_TEST(test_histo_quantiles_interpolate)
{
    struct stats_histo h, sum, base;

    memset(&h, 0, sizeof(h));
    ck_assert(stats_histo_quantile(&h, 0.5) < 0);
    /* 100 in (100, 200]: the median halfway, p99 near the top. */
    for (int i = 0; i < 100; i++) {
        stats_histo_add(&h, 150);
    }
    ck_assert(fabs(stats_histo_quantile(&h, 0.5) - 150) < 1e-9);
    ck_assert(fabs(stats_histo_quantile(&h, 0.99) - 199) < 1e-9);
    ck_assert(fabs(stats_histo_quantile(&h, 1.0) - 200) < 1e-9);
    /* 900 fast and 100 slow: p50 fast, p99 in the slow bucket. */
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < 900; i++) {
        stats_histo_add(&h, 40);
    }
    for (int i = 0; i < 100; i++) {
        stats_histo_add(&h, 40000);
    }
    ck_assert(stats_histo_quantile(&h, 0.5) <= 50);
    ck_assert(stats_histo_quantile(&h, 0.99) > 20000 &&
              stats_histo_quantile(&h, 0.99) <= 50000);
    /* +Inf reports the last bound. */
    memset(&h, 0, sizeof(h));
    stats_histo_add(&h, 99000000);
    ck_assert(stats_histo_quantile(&h, 0.5) == 5000000);
    /* Merge and subtract, as `stats` and `stats reset` do. */
    memset(&sum, 0, sizeof(sum));
    stats_histo_merge(&sum, &h);
    stats_histo_merge(&sum, &h);
    ck_assert_uint_eq(stats_histo_count(&sum), 2);
    base = h;
    stats_histo_subtract(&sum, &base);
    ck_assert_uint_eq(stats_histo_count(&sum), 1);
    ck_assert_uint_eq(stats_get(&sum.sum_us), 99000000);
}
END_TEST

/* ---- hot keys ------------------------------------------------------------ */

static void
add(struct hotkeys *h, const char *key, uint32_t backend, uint64_t now)
{
    hotkeys_add(h, key, strlen(key), XXH3_64bits(key, strlen(key)), backend,
                now);
}

static uint64_t
merged_count(const struct hotkeys_merged *m, const char *key)
{
    for (uint32_t i = 0; i < m->n; i++) {
        if (m->e[i].len == strlen(key) &&
            memcmp(m->e[i].key, key, m->e[i].len) == 0) {
            return m->e[i].count;
        }
    }
    return 0;
}

START_TEST(test_hotkeys_exact_below_k)
{
    struct hotkeys h;
    struct hotkeys_merged m;

    hotkeys_init(&h, 8, 1000);
    for (int i = 0; i < 30; i++) {
        add(&h, "a", 1, 1000);
    }
    for (int i = 0; i < 10; i++) {
        add(&h, "b", 2, 1001);
    }
    add(&h, "c", 2, 1002);
    memset(&m, 0, sizeof(m));
    hotkeys_merge(&m, &h, 1005);
    ck_assert_uint_eq(merged_count(&m, "a"), 30);
    ck_assert_uint_eq(merged_count(&m, "b"), 10);
    ck_assert_uint_eq(merged_count(&m, "c"), 1);
    ck_assert_uint_eq(m.samples, 41);
    ck_assert_uint_eq(m.per_backend[1], 30);
    ck_assert_uint_eq(m.per_backend[2], 11);
    ck_assert(m.seconds == 5);
    hotkeys_top(&m, 2);
    ck_assert_uint_eq(m.n, 2);
    ck_assert(m.e[0].count == 30 && m.e[1].count == 10);
    ck_assert_uint_eq(m.e[1].backend, 2);
    hotkeys_merged_free(&m);
    hotkeys_free(&h);
}
END_TEST

START_TEST(test_hotkeys_find_heavy_hitters)
{
    struct hotkeys h;
    struct hotkeys_merged m;
    const uint32_t k = 16;
    uint64_t n = 0, heavy[3] = {0, 0, 0};
    unsigned seed = 7;
    char key[32];

    /* Three keys take 20, 10 and 5 % of a stream over 5000 others. */
    hotkeys_init(&h, k, 1);
    for (int i = 0; i < 100000; i++) {
        unsigned r = (unsigned)rand_r(&seed) % 100;

        if (r < 20) {
            snprintf(key, sizeof(key), "hot-0");
            heavy[0]++;
        } else if (r < 30) {
            snprintf(key, sizeof(key), "hot-1");
            heavy[1]++;
        } else if (r < 35) {
            snprintf(key, sizeof(key), "hot-2");
            heavy[2]++;
        } else {
            snprintf(key, sizeof(key), "cold-%u",
                     (unsigned)rand_r(&seed) % 5000);
        }
        add(&h, key, 0, 1);
        n++;
    }
    memset(&m, 0, sizeof(m));
    hotkeys_merge(&m, &h, 2);
    hotkeys_top(&m, 3);
    ck_assert_uint_eq(m.n, 3);
    for (int i = 0; i < 3; i++) {
        char want[8];

        snprintf(want, sizeof(want), "hot-%d", i);
        ck_assert_int_eq(m.e[i].len, 5);
        ck_assert_int_eq(memcmp(m.e[i].key, want, 5), 0);
        /* Never under; over by at most samples / k. */
        ck_assert(m.e[i].count >= heavy[i]);
        ck_assert(m.e[i].count - heavy[i] <= n / k);
        ck_assert(m.e[i].count - m.e[i].error <= heavy[i]);
    }
    hotkeys_merged_free(&m);
    hotkeys_free(&h);
}
END_TEST

START_TEST(test_hotkeys_windows_and_merge)
{
    struct hotkeys a, b;
    struct hotkeys_merged m;

    hotkeys_init(&a, 4, 100);
    hotkeys_init(&b, 4, 100);
    add(&a, "x", 0, 100);
    add(&b, "x", 0, 101);
    add(&b, "y", 1, 101);
    /* Two tables: counts summed. */
    memset(&m, 0, sizeof(m));
    hotkeys_merge(&m, &a, 105);
    hotkeys_merge(&m, &b, 105);
    ck_assert_uint_eq(merged_count(&m, "x"), 2);
    ck_assert_uint_eq(merged_count(&m, "y"), 1);
    ck_assert_uint_eq(m.samples, 3);
    hotkeys_merged_free(&m);
    /* A window later: the first window is the last finished one, still
     * counted with the new one. */
    add(&a, "x", 0, 100 + HOTKEYS_WINDOW_S);
    memset(&m, 0, sizeof(m));
    hotkeys_merge(&m, &a, 100 + HOTKEYS_WINDOW_S + 1);
    ck_assert_uint_eq(merged_count(&m, "x"), 2);
    ck_assert(m.seconds == HOTKEYS_WINDOW_S + 1);
    hotkeys_merged_free(&m);
    /* Two windows later: the first is forgotten. */
    add(&a, "z", 0, 100 + 2 * HOTKEYS_WINDOW_S);
    memset(&m, 0, sizeof(m));
    hotkeys_merge(&m, &a, 100 + 2 * HOTKEYS_WINDOW_S);
    ck_assert_uint_eq(merged_count(&m, "x"), 1);
    ck_assert_uint_eq(merged_count(&m, "z"), 1);
    hotkeys_merged_free(&m);
    /* Long idle: everything is too old. */
    memset(&m, 0, sizeof(m));
    hotkeys_merge(&m, &a, 1000);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(m.samples, 0);
    hotkeys_merged_free(&m);
    /* A key longer than the bound is kept by its first bytes. */
    {
        char big[400];

        memset(big, 'k', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        add(&b, big, 0, 102);
        memset(&m, 0, sizeof(m));
        hotkeys_merge(&m, &b, 102);
        hotkeys_top(&m, 1);
        ck_assert_uint_eq(m.n, 1);
        hotkeys_merged_free(&m);
    }
    hotkeys_free(&a);
    hotkeys_free(&b);
}
END_TEST

START_TEST(test_hotkeys_add_returns_certain_samples)
{
    struct hotkeys h;

    hotkeys_init(&h, 1, 1);
    for (uint64_t i = 1; i <= 3; i++) {
        ck_assert_uint_eq(hotkeys_add(&h, "a", 1, 7, 0, 1), i);
    }
    /* k = 1: the newcomer takes a's counter, 3 of its 4 uncertain */
    ck_assert_uint_eq(hotkeys_add(&h, "b", 1, 8, 0, 1), 1);
    ck_assert_uint_eq(hotkeys_add(&h, "b", 1, 8, 0, 1), 2);
    /* a new window counts afresh */
    ck_assert_uint_eq(hotkeys_add(&h, "b", 1, 8, 0, 1 + HOTKEYS_WINDOW_S), 1);
    hotkeys_free(&h);
}
END_TEST

static Suite *
stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("histogram");

    tcase_add_test(tc, test_histo_buckets_are_upper_bounds);
    tcase_add_test(tc, test_histo_quantiles_interpolate);
    suite_add_tcase(s, tc);
    tc = tcase_create("hot keys");
    tcase_add_test(tc, test_hotkeys_exact_below_k);
    tcase_add_test(tc, test_hotkeys_add_returns_certain_samples);
    tcase_add_test(tc, test_hotkeys_find_heavy_hitters);
    tcase_add_test(tc, test_hotkeys_windows_and_merge);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(stats_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
