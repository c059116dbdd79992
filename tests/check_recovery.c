/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_recovery: the bounded, de-duplicated log of keys written to
 * fallbacks while a backend is DOWN.
 */
#include "autoconf.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recovery.h"

static bool
batch_has(const struct recovery_batch *b, const char *key, uint32_t fb)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->entries[i].fallback == fb &&
            b->entries[i].len == strlen(key) &&
            memcmp(recovery_key(b, i), key, strlen(key)) == 0) {
            return true;
        }
    }
    return false;
}

START_TEST(test_empty_has_nothing_pending)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch b = {0};

    ck_assert(!recovery_pending(r));
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 0);
    ck_assert(!b.flush);
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_duplicates_are_stored_once)
{
    struct recovery *r = recovery_create(100);
    struct recovery_batch b = {0};

    for (int i = 0; i < 1000; i++) {
        recovery_note(r, "hot", 3, 2);
    }
    recovery_note(r, "hot", 3, 1); /* another fallback: another entry */
    recovery_note(r, "cold", 4, 2);
    ck_assert(recovery_pending(r));
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 3);
    ck_assert(batch_has(&b, "hot", 2));
    ck_assert(batch_has(&b, "hot", 1));
    ck_assert(batch_has(&b, "cold", 2));
    ck_assert(!b.flush);
    ck_assert(!recovery_pending(r));
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_many_keys_all_kept_under_the_limit)
{
    struct recovery *r = recovery_create(5000);
    struct recovery_batch b = {0};
    char key[32];

    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        recovery_note(r, key, strlen(key), (uint32_t)(i % 7));
    }
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 5000);
    ck_assert(!b.flush);
    for (int i = 0; i < 5000; i += 499) {
        snprintf(key, sizeof(key), "key:%d", i);
        ck_assert(batch_has(&b, key, (uint32_t)(i % 7)));
    }
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_crossing_the_limit_asks_for_a_flush)
{
    struct recovery *r = recovery_create(3);
    struct recovery_batch b = {0};

    recovery_note(r, "a", 1, 0);
    recovery_note(r, "b", 1, 0);
    recovery_note(r, "c", 1, 0);
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 3);
    ck_assert(!b.flush);
    recovery_batch_release(&b);

    for (int i = 0; i < 4; i++) {
        char k[2] = {(char)('a' + i), 0};

        recovery_note(r, k, 1, 0);
    }
    recovery_take(r, &b);
    ck_assert(b.flush);
    ck_assert_uint_eq(b.n, 0);
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_zero_limit_always_flushes)
{
    struct recovery *r = recovery_create(0);
    struct recovery_batch b = {0};

    recovery_note(r, "a", 1, 0);
    ck_assert(recovery_pending(r));
    recovery_take(r, &b);
    ck_assert(b.flush);
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_failed_pass_puts_keys_back)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch b = {0};

    recovery_note(r, "a", 1, 1);
    recovery_note(r, "b", 1, 1);
    recovery_take(r, &b);
    recovery_note(r, "b", 1, 1); /* written again during the pass */
    recovery_note(r, "c", 1, 2);
    recovery_put_back(r, &b);
    ck_assert_uint_eq(b.n, 0);
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 3);
    ck_assert(batch_has(&b, "a", 1));
    ck_assert(batch_has(&b, "b", 1));
    ck_assert(batch_has(&b, "c", 2));
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_flush_request_survives_put_back)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch b = {0};

    recovery_note_flush(r);
    recovery_take(r, &b);
    ck_assert(b.flush);
    recovery_put_back(r, &b);
    recovery_take(r, &b);
    ck_assert(b.flush);
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_close_waits_for_log_and_writes_in_flight)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch b = {0};
    _Atomic int state = 2; /* RECOVERING */

    ck_assert(recovery_note_unless(r, &state, 0, "k", 1, 1));
    /* Logged and in flight: the backend may not return. */
    ck_assert(!recovery_close(r, &state, 2, 0));
    recovery_take(r, &b);
    recovery_batch_release(&b);
    ck_assert(!recovery_close(r, &state, 2, 0));
    /* The write is answered: noted again, for the next pass. */
    recovery_write_done(r, "k", 1, 1);
    ck_assert(!recovery_close(r, &state, 2, 0));
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 1);
    ck_assert(batch_has(&b, "k", 1));
    recovery_batch_release(&b);
    ck_assert(recovery_close(r, &state, 2, 0));
    ck_assert_int_eq(state, 0);
    /* Back UP: nothing is noted, the caller writes to the owner. */
    ck_assert(!recovery_note_unless(r, &state, 0, "k", 1, 1));
    ck_assert(!recovery_pending(r));
    recovery_destroy(r);
}
END_TEST

static bool
batch_dirty(const struct recovery_batch *b, const char *key, uint32_t fb)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->entries[i].fallback == fb &&
            b->entries[i].len == strlen(key) &&
            memcmp(recovery_key(b, i), key, strlen(key)) == 0) {
            return b->entries[i].dirty;
        }
    }
    ck_abort_msg("no entry %s/%u", key, fb);
    return false;
}

START_TEST(test_clean_keys_do_not_hold_the_backend_out)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch b = {0};
    _Atomic int state = 2; /* RECOVERING */

    /* Writes during RECOVERING that also deleted the key on the owner. */
    recovery_note_clean(r, "c1", 2, 1);
    recovery_note_clean(r, "c2", 2, 1);
    ck_assert(recovery_pending(r));
    ck_assert(recovery_close(r, &state, 2, 0));
    ck_assert_int_eq(state, 0);
    /* Their fallback copies are still to be removed. */
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 2);
    ck_assert_uint_eq(b.ndirty, 0);
    ck_assert(!batch_dirty(&b, "c1", 1));
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_dirty_note_wins_over_clean)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch b = {0};
    _Atomic int state = 2;

    recovery_note_clean(r, "k", 1, 1);
    recovery_note(r, "k", 1, 1);        /* the owner may be stale again */
    recovery_note_clean(r, "k", 1, 1);  /* does not make it clean */
    recovery_note_clean(r, "j", 1, 1);
    ck_assert(!recovery_close(r, &state, 2, 0));
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 2);
    ck_assert_uint_eq(b.ndirty, 1);
    ck_assert(batch_dirty(&b, "k", 1));
    ck_assert(!batch_dirty(&b, "j", 1));
    /* A failed pass puts both back as they were. */
    recovery_put_back(r, &b);
    ck_assert(!recovery_close(r, &state, 2, 0));
    recovery_take(r, &b);
    ck_assert_uint_eq(b.ndirty, 1);
    ck_assert(batch_dirty(&b, "k", 1));
    ck_assert(!batch_dirty(&b, "j", 1));
    recovery_batch_release(&b);
    ck_assert(recovery_close(r, &state, 2, 0));
    recovery_destroy(r);
}
END_TEST

START_TEST(test_close_only_from_the_expected_state)
{
    struct recovery *r = recovery_create(10);
    _Atomic int state = 1; /* DOWN */

    ck_assert(!recovery_close(r, &state, 2, 0));
    ck_assert_int_eq(state, 1);
    recovery_destroy(r);
}
END_TEST

struct writer {
    struct recovery *r;
    int id;
};

static void *
writer_main(void *arg)
{
    struct writer *w = arg;
    char key[32];

    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "t%d:%d", w->id, i);
        recovery_note(w->r, key, strlen(key), (uint32_t)w->id);
    }
    return NULL;
}

START_TEST(test_concurrent_writers_lose_nothing)
{
    struct recovery *r = recovery_create(100000);
    struct recovery_batch b = {0};
    pthread_t t[4];
    struct writer w[4];

    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){r, i};
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    recovery_take(r, &b);
    ck_assert_uint_eq(b.n, 8000);
    recovery_batch_release(&b);
    recovery_destroy(r);
}
END_TEST

/* ---- the delete spool's journal ------------------------------------------ */

START_TEST(test_journal_off_records_nothing)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch j = {0};

    recovery_note(r, "k", 1, 1);
    ck_assert(recovery_journal_take(r, &j));
    ck_assert_uint_eq(j.n, 0);
    ck_assert(!j.flush);
    recovery_batch_release(&j);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_journal_records_each_change_once)
{
    struct recovery *r = recovery_create(10);
    struct recovery_batch j = {0}, b = {0};

    recovery_journal_start(r);
    recovery_note_clean(r, "a", 1, 2);
    recovery_note(r, "a", 1, 2);    /* turned dirty: a change */
    recovery_note(r, "a", 1, 2);    /* none */
    recovery_note(r, "b", 1, 3);
    ck_assert(recovery_journal_take(r, &j));
    ck_assert_uint_eq(j.n, 2);
    ck_assert(batch_has(&j, "a", 2));
    ck_assert(j.entries[0].dirty);
    ck_assert(batch_has(&j, "b", 3));
    recovery_batch_release(&j);
    /* Taken: the journal is empty; a pass taking the log leaves it. */
    ck_assert(recovery_journal_take(r, &j));
    ck_assert_uint_eq(j.n, 0);
    recovery_note(r, "c", 1, 3);
    recovery_take(r, &b);
    ck_assert(recovery_journal_take(r, &j));
    ck_assert_uint_eq(j.n, 1);
    recovery_batch_release(&j);
    /* A failed pass's keys are in the spool already: not journaled. */
    recovery_put_back(r, &b);
    ck_assert(recovery_journal_take(r, &j));
    ck_assert_uint_eq(j.n, 0);
    ck_assert_uint_eq(recovery_size(r), 3);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_journal_overflow_asks_for_a_rewrite)
{
    struct recovery *r = recovery_create(4);
    struct recovery_batch j = {0}, b = {0}, d;

    recovery_journal_start(r);
    /* Four keys, taken by a pass, four more: the journal holds eight
     * changes, more than the log's limit. */
    recovery_note(r, "k1", 2, 1);
    recovery_note(r, "k2", 2, 1);
    recovery_note(r, "k3", 2, 1);
    recovery_note(r, "k4", 2, 1);
    recovery_take(r, &b);
    recovery_note(r, "k5", 2, 1);
    ck_assert(!recovery_journal_take(r, &j));
    ck_assert_ptr_null(j.entries);
    /* The dump has the log and the pass's batch, and clears the journal. */
    recovery_dump(r, &d);
    ck_assert_uint_eq(d.n, 5);
    ck_assert(!d.flush);
    ck_assert(batch_has(&d, "k1", 1));
    ck_assert(batch_has(&d, "k5", 1));
    recovery_batch_release(&d);
    ck_assert(recovery_journal_take(r, &j));
    ck_assert_uint_eq(j.n, 0);
    ck_assert(!recovery_finished(r));
    recovery_done(r, &b);
    ck_assert(recovery_finished(r));
    recovery_dump(r, &d);
    ck_assert_uint_eq(d.n, 1);
    ck_assert(!recovery_finished(r));
    recovery_batch_release(&d);
    recovery_destroy(r);
}
END_TEST

START_TEST(test_journal_and_dump_of_a_flush)
{
    struct recovery *r = recovery_create(2);
    struct recovery_batch j = {0}, b = {0}, d;

    recovery_journal_start(r);
    recovery_note(r, "k1", 2, 1);
    recovery_note(r, "k2", 2, 1);
    recovery_note(r, "k3", 2, 1); /* over the limit: a flush */
    ck_assert(recovery_journal_take(r, &j));
    ck_assert(j.flush);
    ck_assert_uint_eq(j.n, 0);
    recovery_batch_release(&j);
    /* A flush lent to a pass is still owed: the dump says so, no keys. */
    recovery_take(r, &b);
    recovery_dump(r, &d);
    ck_assert(d.flush);
    ck_assert_uint_eq(d.n, 0);
    recovery_batch_release(&d);
    /* Put back, it is not journaled again. */
    recovery_put_back(r, &b);
    ck_assert(recovery_pending(r));
    ck_assert(recovery_journal_take(r, &j));
    ck_assert(!j.flush);
    recovery_take(r, &b);
    recovery_done(r, &b);
    recovery_dump(r, &d);
    ck_assert(!d.flush);
    recovery_batch_release(&d);
    ck_assert(!recovery_pending(r));
    recovery_destroy(r);
}
END_TEST

static Suite *
recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("remembering keys");

    tcase_add_test(tc, test_empty_has_nothing_pending);
    tcase_add_test(tc, test_duplicates_are_stored_once);
    tcase_add_test(tc, test_many_keys_all_kept_under_the_limit);
    tcase_add_test(tc, test_concurrent_writers_lose_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("overflow becomes a flush");
    tcase_add_test(tc, test_crossing_the_limit_asks_for_a_flush);
    tcase_add_test(tc, test_zero_limit_always_flushes);
    suite_add_tcase(s, tc);
    tc = tcase_create("the backend returns only when clean");
    tcase_add_test(tc, test_close_waits_for_log_and_writes_in_flight);
    tcase_add_test(tc, test_close_only_from_the_expected_state);
    tcase_add_test(tc, test_clean_keys_do_not_hold_the_backend_out);
    tcase_add_test(tc, test_dirty_note_wins_over_clean);
    suite_add_tcase(s, tc);
    tc = tcase_create("a failed pass keeps its keys");
    tcase_add_test(tc, test_failed_pass_puts_keys_back);
    tcase_add_test(tc, test_flush_request_survives_put_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("the delete spool's journal");
    tcase_add_test(tc, test_journal_off_records_nothing);
    tcase_add_test(tc, test_journal_records_each_change_once);
    tcase_add_test(tc, test_journal_overflow_asks_for_a_rewrite);
    tcase_add_test(tc, test_journal_and_dump_of_a_flush);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(recovery_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
