/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_mem: the per-thread free lists behind libevent's allocations.
 */
#include "autoconf.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

START_TEST(test_freed_block_is_reused_for_its_class)
{
    void *a = mem_malloc(4096);
    void *b;

    ck_assert_ptr_nonnull(a);
    memset(a, 1, 4096);
    mem_free(a);
    /* Any request of the same class gets it back. */
    b = mem_malloc(3000);
    ck_assert_ptr_eq(a, b);
    ck_assert_uint_ge(malloc_usable_size(b), 4096);
    mem_free(b);
    mem_thread_release();
}
END_TEST

START_TEST(test_blocks_have_room_for_what_was_asked)
{
    /* Every size around the class limits: a block from a list always
     * holds the request. */
    for (size_t n = 500; n < 70000; n += 97) {
        void *p = mem_malloc(n);

        ck_assert_ptr_nonnull(p);
        ck_assert_uint_ge(malloc_usable_size(p), n);
        memset(p, 0xa5, n);
        mem_free(p);
    }
    for (size_t n = 500; n < 70000; n += 89) {
        void *p = mem_malloc(n);

        ck_assert_uint_ge(malloc_usable_size(p), n);
        memset(p, 0x5a, n);
        mem_free(p);
    }
    mem_thread_release();
}
END_TEST

START_TEST(test_small_and_huge_blocks_are_not_kept)
{
    void *s = mem_malloc(100);
    void *h = mem_malloc(1 << 20);

    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(h);
    mem_free(s);
    mem_free(h);
    mem_free(NULL);
    /* Nothing to release: the lists hold neither. */
    mem_thread_release();
}
END_TEST

START_TEST(test_lists_are_bounded)
{
    enum { N = 4 * MEM_CACHE_BYTES / 1024 };
    void **p = calloc(N, sizeof(*p));

    mem_thread_release();
    ck_assert_uint_eq(mem_thread_kept(), 0);
    for (size_t i = 0; i < N; i++) {
        p[i] = mem_malloc(1024);
        ck_assert_ptr_nonnull(p[i]);
    }
    for (size_t i = 0; i < N; i++) {
        mem_free(p[i]);
    }
    /* The lists are full, the rest went back to malloc. */
    ck_assert_uint_eq(mem_thread_kept(), MEM_CACHE_BYTES);
    /* Taken from the list, a block may also go to plain free(). */
    free(mem_malloc(1024));
    ck_assert_uint_eq(mem_thread_kept(), MEM_CACHE_BYTES - 1024);
    /* A 64 KiB block no longer fits: it goes back to malloc. */
    p[0] = mem_malloc(65536);
    mem_free(p[0]);
    ck_assert_uint_eq(mem_thread_kept(), MEM_CACHE_BYTES - 1024);
    /* Room is made by taking blocks out. */
    for (int i = 0; i < 64; i++) {
        p[i] = mem_malloc(1024);
    }
    p[64] = mem_malloc(65536);
    mem_free(p[64]);
    ck_assert_uint_eq(mem_thread_kept(), MEM_CACHE_BYTES - 1024);
    for (int i = 0; i < 64; i++) {
        mem_free(p[i]);
    }
    ck_assert_uint_eq(mem_thread_kept(), MEM_CACHE_BYTES);
    mem_thread_release();
    ck_assert_uint_eq(mem_thread_kept(), 0);
    free(p);
}
END_TEST

/* What the lists did not need between two trims is freed by the second. */
START_TEST(test_trim_frees_what_was_not_needed)
{
    void *p[16];

    mem_thread_release();
    for (int i = 0; i < 16; i++) {
        p[i] = mem_malloc(4096);
    }
    for (int i = 0; i < 16; i++) {
        mem_free(p[i]);
    }
    ck_assert_uint_eq(mem_thread_kept(), 16 * 4096);
    mem_thread_trim();              /* the low mark was 0: nothing goes */
    ck_assert_uint_eq(mem_thread_kept(), 16 * 4096);
    /* Four taken and given back: twelve were never needed. */
    for (int i = 0; i < 4; i++) {
        p[i] = mem_malloc(4096);
    }
    for (int i = 0; i < 4; i++) {
        mem_free(p[i]);
    }
    mem_thread_trim();
    ck_assert_uint_eq(mem_thread_kept(), 4 * 4096);
    /* Untouched for a period: all of it goes. */
    mem_thread_trim();
    ck_assert_uint_eq(mem_thread_kept(), 0);
    mem_thread_release();
}
END_TEST

static void *
other_thread(void *arg)
{
    /* Frees a block the main thread allocated, into its own list. */
    mem_free(arg);
    mem_thread_release();
    return NULL;
}

START_TEST(test_block_freed_by_another_thread)
{
    pthread_t t;
    void *p = mem_malloc(8192);

    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, p), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    mem_thread_release();
}
END_TEST

START_TEST(test_realloc_keeps_contents)
{
    char *p = mem_malloc(2000);

    memset(p, 'x', 2000);
    p = mem_realloc(p, 50000);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < 2000; i++) {
        ck_assert_int_eq(p[i], 'x');
    }
    mem_free(p);
    mem_thread_release();
}
END_TEST

static Suite *
mem_suite(void)
{
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("free lists");

    tcase_add_test(tc, test_freed_block_is_reused_for_its_class);
    tcase_add_test(tc, test_blocks_have_room_for_what_was_asked);
    tcase_add_test(tc, test_small_and_huge_blocks_are_not_kept);
    tcase_add_test(tc, test_lists_are_bounded);
    tcase_add_test(tc, test_trim_frees_what_was_not_needed);
    tcase_add_test(tc, test_block_freed_by_another_thread);
    tcase_add_test(tc, test_realloc_keeps_contents);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(mem_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
