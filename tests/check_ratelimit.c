/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests: rate limits with a burst (ratelimit.h).
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>

#include "ratelimit.h"

#define S 1000000000ull /* one second in ns */

START_TEST(test_burst_then_rate)
{
    struct ratelimit r;
    _Atomic uint64_t tat = 0;
    uint64_t now = 100 * S;

    ratelimit_init(&r, 10, 3);
    /* The burst at once. */
    for (int i = 0; i < 3; i++) {
        ck_assert(ratelimit_take(&tat, &r, now, 1));
    }
    ck_assert(!ratelimit_take(&tat, &r, now, 1));
    /* A refusal moves nothing: still refused at the same time. */
    ck_assert(!ratelimit_take(&tat, &r, now, 1));
    /* One more each tenth of a second. */
    ck_assert(ratelimit_take(&tat, &r, now + S / 10, 1));
    ck_assert(!ratelimit_take(&tat, &r, now + S / 10, 1));
    ck_assert(ratelimit_take(&tat, &r, now + 2 * S / 10, 1));
    /* After a pause, a whole burst again, not more. */
    now += 60 * S;
    for (int i = 0; i < 3; i++) {
        ck_assert(ratelimit_take(&tat, &r, now, 1));
    }
    ck_assert(!ratelimit_take(&tat, &r, now, 1));
}
END_TEST

START_TEST(test_n_at_once_and_defaults)
{
    struct ratelimit r;
    _Atomic uint64_t tat = 0;
    uint64_t now = 5 * S;
    int n = 0;

    /* Burst 0: as the rate. */
    ratelimit_init(&r, 100, 0);
    ck_assert(!ratelimit_take(&tat, &r, now, 101));
    ck_assert(ratelimit_take(&tat, &r, now, 60));
    ck_assert(!ratelimit_take(&tat, &r, now, 41));
    ck_assert(ratelimit_take(&tat, &r, now, 40));
    /* Over one second, at most the rate. */
    for (uint64_t t = now; t < now + S; t += S / 1000) {
        n += ratelimit_take(&tat, &r, t, 1);
    }
    ck_assert_int_ge(n, 99);
    ck_assert_int_le(n, 101);
    /* Rate 0: no limit. */
    ratelimit_init(&r, 0, 0);
    for (int i = 0; i < 100000; i++) {
        ck_assert(ratelimit_take(&tat, &r, now, 1000));
    }
}
END_TEST

START_TEST(test_table_one_limit_per_address)
{
    struct ratelimit_table *t = ratelimit_table_new();
    struct ratelimit r;
    uint64_t now = 7 * S;

    ck_assert_ptr_nonnull(t);
    ratelimit_init(&r, 1, 2);
    ck_assert(ratelimit_table_take(t, &r, 11, now, 2));
    ck_assert(!ratelimit_table_take(t, &r, 11, now, 1));
    /* Another address has its own. */
    ck_assert(ratelimit_table_take(t, &r, 12, now, 2));
    ck_assert(!ratelimit_table_take(t, &r, 12, now, 1));
    ck_assert(!ratelimit_table_take(t, &r, 11, now, 1));
    ratelimit_table_free(t);
}
END_TEST

START_TEST(test_table_is_bounded)
{
    struct ratelimit_table *t = ratelimit_table_new();
    struct ratelimit r;
    uint64_t now = 9 * S;
    unsigned refused = 0;

    ratelimit_init(&r, 1, 1);
    /* Ten times more addresses than slots: each newcomer takes a slot
     * (the stalest of its two), starting with a whole burst. */
    for (uint64_t k = 1; k <= 10 * RATELIMIT_SLOTS; k++) {
        ck_assert(ratelimit_table_take(t, &r, k, now, 1));
    }
    /* The last ones are still tracked: refused at once. */
    for (uint64_t k = 10 * RATELIMIT_SLOTS - 99; k <= 10 * RATELIMIT_SLOTS;
         k++) {
        refused += !ratelimit_table_take(t, &r, k, now, 1);
    }
    ck_assert_uint_ge(refused, 50);
    ratelimit_table_free(t);
}
END_TEST

static Suite *
ratelimit_suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("limits");

    tcase_add_test(tc, test_burst_then_rate);
    tcase_add_test(tc, test_n_at_once_and_defaults);
    tcase_add_test(tc, test_table_one_limit_per_address);
    tcase_add_test(tc, test_table_is_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ratelimit_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
