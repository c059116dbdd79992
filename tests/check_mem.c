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

/* Small blocks come from the slot region, and a freed slot is reused. */
START_TEST(test_small_blocks_are_slots)
{
    char *a, *b, *big;

    mem_init();
    a = mem_malloc(20);
    ck_assert(mem_is_slot(a));
    memset(a, 'a', MEM_SLOT);
    big = mem_malloc(MEM_SLOT + 1);
    ck_assert(!mem_is_slot(big));
    ck_assert_uint_ge(malloc_usable_size(big), MEM_SLOT + 1);
    mem_free(big);
    mem_free(a);
    b = mem_malloc(MEM_SLOT);
    ck_assert_ptr_eq(a, b);
    /* Slots are distinct and far enough apart. */
    a = mem_malloc(1);
    ck_assert(mem_is_slot(a));
    ck_assert_uint_ge((uintptr_t)(a > b ? a - b : b - a), MEM_SLOT);
    memset(a, 1, MEM_SLOT);
    memset(b, 2, MEM_SLOT);
    ck_assert_int_eq(a[MEM_SLOT - 1], 1);
    mem_free(a);
    mem_free(b);
    mem_thread_release();
}
END_TEST

/* A slot grown by realloc keeps its bytes and moves to the heap; a
 * heap block stays a heap block. */
START_TEST(test_slot_realloc)
{
    char *p, *q;

    mem_init();
    p = mem_malloc(10);
    ck_assert(mem_is_slot(p));
    memcpy(p, "0123456789", 10);
    q = mem_realloc(p, 16);
    ck_assert_ptr_eq(p, q);             /* still fits its slot */
    q = mem_realloc(p, 4000);
    ck_assert(!mem_is_slot(q));
    ck_assert_mem_eq(q, "0123456789", 10);
    ck_assert_ptr_eq(mem_malloc(8), p);  /* the slot was freed */
    mem_free(p);
    p = mem_realloc(NULL, 8);
    ck_assert(!mem_is_slot(p));
    p = mem_realloc(p, 4);
    ck_assert(!mem_is_slot(p));
    mem_free(p);
    mem_free(q);
    mem_thread_release();
}
END_TEST

static void *
slot_thread(void *arg)
{
    void **slots = arg;

    /* Frees slots another thread took, then ends: they are not lost. */
    for (int i = 0; i < 16; i++) {
        mem_free(slots[i]);
    }
    mem_thread_release();
    return NULL;
}

START_TEST(test_slots_of_an_ended_thread_are_reused)
{
    void *slots[16], *got[16];
    void **held = NULL;
    size_t nheld = 0, used;
    pthread_t t;

    mem_init();
    /* Free slots left by earlier tests are taken first, until a new one
     * had to be cut from the region: no list has any then. */
    for (;;) {
        used = mem_slots_used();
        held = realloc(held, (nheld + 1) * sizeof(*held));
        held[nheld++] = mem_malloc(24);
        if (mem_slots_used() > used) {
            break;
        }
    }
    for (int i = 0; i < 16; i++) {
        slots[i] = mem_malloc(24);
        ck_assert(mem_is_slot(slots[i]));
    }
    used = mem_slots_used();
    ck_assert_int_eq(pthread_create(&t, NULL, slot_thread, slots), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    /* This thread's list is empty: the 16 come from the ended thread's. */
    for (int i = 0; i < 16; i++) {
        void *p = mem_malloc(24);
        int found = -1;

        for (int j = 0; j < 16; j++) {
            found = p == slots[j] ? j : found;
        }
        ck_assert_int_ge(found, 0);
        slots[found] = NULL;            /* each comes back once */
        got[i] = p;
    }
    ck_assert_uint_eq(mem_slots_used(), used);
    for (int i = 0; i < 16; i++) {
        ck_assert_ptr_null(slots[i]);
        mem_free(got[i]);
    }
    for (size_t i = 0; i < nheld; i++) {
        mem_free(held[i]);
    }
    free(held);
    mem_thread_release();
}
END_TEST

/* Past the end of the region small blocks come from malloc. */
START_TEST(test_slot_region_used_up)
{
    enum { N = MEM_SLOT_REGION / MEM_SLOT };
    void **p = calloc(N + 16, sizeof(*p));
    size_t nslots = 0;

    mem_init();
    mem_thread_release();
    for (size_t i = 0; i < N + 16; i++) {
        p[i] = mem_malloc(MEM_SLOT);
        ck_assert_ptr_nonnull(p[i]);
        nslots += mem_is_slot(p[i]);
    }
    ck_assert_uint_eq(mem_slots_used(), N);
    ck_assert_uint_le(nslots, N);
    ck_assert(!mem_is_slot(p[N + 15]));
    ck_assert_uint_ge(malloc_usable_size(p[N + 15]), MEM_SLOT);
    for (size_t i = 0; i < N + 16; i++) {
        mem_free(p[i]);
    }
    /* Freed slots serve again. */
    ck_assert(mem_is_slot(p[0] = mem_malloc(3)));
    mem_free(p[0]);
    mem_thread_release();
    free(p);
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
    tc = tcase_create("slots");
    tcase_add_test(tc, test_small_blocks_are_slots);
    tcase_add_test(tc, test_slot_realloc);
    tcase_add_test(tc, test_slots_of_an_ended_thread_are_reused);
    tcase_add_test(tc, test_slot_region_used_up);
    tcase_set_timeout(tc, 60);
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
