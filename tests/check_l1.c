/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests: the worker's cache of hot keys' values (l1.h).
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "l1.h"

#define MS 1000u /* one millisecond in us */

static bool
put(struct l1 *c, const char *key, const char *block, uint64_t now)
{
    unsigned evicted;

    return l1_put(c, key, strlen(key), XXH3_64bits(key, strlen(key)), block,
                  strlen(block), now, &evicted);
}

static const char *
get(struct l1 *c, const char *key, uint64_t now)
{
    static char buf[4096];
    size_t len;
    const char *b =
        l1_get(c, key, strlen(key), XXH3_64bits(key, strlen(key)), now, &len);

    if (b == NULL) {
        return NULL;
    }
    ck_assert_uint_lt(len, sizeof(buf));
    memcpy(buf, b, len);
    buf[len] = '\0';
    return buf;
}

START_TEST(test_served_until_ttl)
{
    struct l1 c;

    l1_init(&c, 1 << 20, 100 * MS);
    ck_assert_ptr_null(get(&c, "k", 0));
    ck_assert(put(&c, "k", "VALUE k 0 1\r\na\r\n", 1000 * MS));
    ck_assert_str_eq(get(&c, "k", 1000 * MS), "VALUE k 0 1\r\na\r\n");
    ck_assert_str_eq(get(&c, "k", 1099 * MS), "VALUE k 0 1\r\na\r\n");
    /* A key with the same hash bucket but other bytes is not it. */
    ck_assert_ptr_null(get(&c, "kk", 1000 * MS));
    ck_assert_ptr_null(get(&c, "k", 1100 * MS));
    ck_assert_uint_eq(c.n, 0);
    ck_assert_uint_eq(c.bytes, 0);
    /* Replaced, not added twice. */
    ck_assert(put(&c, "k", "VALUE k 0 1\r\na\r\n", 0));
    ck_assert(put(&c, "k", "VALUE k 0 1\r\nb\r\n", 0));
    ck_assert_uint_eq(c.n, 1);
    ck_assert_str_eq(get(&c, "k", 1), "VALUE k 0 1\r\nb\r\n");
    l1_clear(&c);
}
END_TEST

START_TEST(test_bounded_oldest_evicted)
{
    struct l1 c;
    char key[32], block[200];
    unsigned evicted, total = 0;

    l1_init(&c, 4096, 1000 * MS);
    memset(block, 'x', sizeof(block) - 1);
    block[sizeof(block) - 1] = '\0';
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        ck_assert(l1_put(&c, key, strlen(key), XXH3_64bits(key, strlen(key)),
                         block, strlen(block), 0, &evicted));
        total += evicted;
        ck_assert_uint_le(c.bytes, 4096);
    }
    ck_assert_uint_gt(total, 50);
    ck_assert_uint_eq(total + c.n, 100);
    /* The newest stay, the oldest went. */
    ck_assert_ptr_nonnull(get(&c, "key-99", 1));
    ck_assert_ptr_null(get(&c, "key-0", 1));
    /* Over a quarter of the cache: not cached. */
    {
        char big[1100];

        memset(big, 'y', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        ck_assert(!put(&c, "big", big, 0));
        ck_assert_ptr_null(get(&c, "big", 1));
    }
    l1_clear(&c);
    ck_assert_uint_eq(c.bytes, 0);
}
END_TEST

START_TEST(test_invalidate_and_tickets)
{
    struct l1 c;
    uint64_t h = XXH3_64bits("k", 1);
    uint32_t g1, g2, g3, s1, s2, s3;

    l1_init(&c, 1 << 20, 1000 * MS);
    ck_assert(put(&c, "k", "VALUE k 0 1\r\na\r\n", 0));
    ck_assert(l1_invalidate(&c, "k", 1, h));
    ck_assert(!l1_invalidate(&c, "k", 1, h));
    ck_assert_ptr_null(get(&c, "k", 1));

    /* A ticket taken before a write is no good after it ... */
    s1 = l1_watch(&c, h, &g1);
    ck_assert_uint_gt(s1, 0);
    s2 = l1_watch(&c, h, &g2);
    ck_assert_uint_eq(s2, s1);
    ck_assert_uint_eq(g2, g1);
    (void)l1_invalidate(&c, "k", 1, h);
    /* ... one taken after it is. */
    s3 = l1_watch(&c, h, &g3);
    ck_assert_uint_eq(s3, s1);
    ck_assert(!l1_unwatch(&c, s1, g1));
    ck_assert(!l1_unwatch(&c, s2, g2));
    ck_assert(l1_unwatch(&c, s3, g3));
    ck_assert_uint_eq(c.nwatch, 0);
    /* Another key's write does not move it; flush_all does. */
    s1 = l1_watch(&c, h, &g1);
    (void)l1_invalidate(&c, "other", 5, XXH3_64bits("other", 5));
    ck_assert(l1_unwatch(&c, s1, g1));
    s1 = l1_watch(&c, h, &g1);
    l1_invalidate_all(&c);
    ck_assert(!l1_unwatch(&c, s1, g1));
    ck_assert(!l1_unwatch(&c, 0, 0));
    l1_clear(&c);
}
END_TEST

START_TEST(test_watch_slots_bounded)
{
    struct l1 c;
    uint32_t slot[L1_WATCH], gen[L1_WATCH], g;

    l1_init(&c, 1 << 20, 1000 * MS);
    for (uint64_t i = 0; i < L1_WATCH; i++) {
        slot[i] = l1_watch(&c, i + 1, &gen[i]);
        ck_assert_uint_gt(slot[i], 0);
    }
    ck_assert_uint_eq(l1_watch(&c, 1000, &g), 0);
    ck_assert(l1_unwatch(&c, slot[3], gen[3]));
    ck_assert_uint_gt(l1_watch(&c, 1000, &g), 0);
    l1_clear(&c);
}
END_TEST

static Suite *
l1_suite(void)
{
    Suite *s = suite_create("l1");
    TCase *tc = tcase_create("cache");

    tcase_add_test(tc, test_served_until_ttl);
    tcase_add_test(tc, test_bounded_oldest_evicted);
    tcase_add_test(tc, test_invalidate_and_tickets);
    tcase_add_test(tc, test_watch_slots_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(l1_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
