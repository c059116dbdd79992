/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_mget: splitting a multi-key retrieval into per-backend fragments
 * and merging their answers back in the client's key order.
 *
 * A request is built by hand here (no worker, no backend): keys, the
 * fragment of each key, then VALUE blocks handed over as a backend
 * connection would, in each fragment's own order.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mget.h"
#include "proto.h"
#include "request.h"

#define MAXK 16

struct fixture {
    struct request req;
    struct frag frags[4];
    struct proto_str keys[MAXK];
    uint32_t key_frag[MAXK];
    uint32_t block_len[MAXK];
    uint32_t block_off[MAXK];
    uint32_t frag_keys[MAXK];
    char names[MAXK][16];
};

/* keys "k0".."k(n-1)", key i in fragment frag_of[i]; nfrags fragments. */
static struct fixture *
fixture_new(const uint32_t *frag_of, uint32_t n, uint32_t nfrags)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct request *req = &fx->req;

    ck_assert_ptr_nonnull(fx);
    req->rsp = evbuffer_new();
    req->keys = fx->keys;
    req->key_frag = fx->key_frag;
    req->block_len = fx->block_len;
    req->block_off = fx->block_off;
    req->frag_keys = fx->frag_keys;
    req->frags = fx->frags;
    req->nfrags = nfrags;
    req->fragcap = nfrags;
    req->stream = nfrags == 1;
    req->nkeys = n;
    req->keycap = n;
    for (uint32_t f = 0; f < nfrags; f++) {
        fx->frags[f].req = req;
        fx->frags[f].kind = FRAG_RETRIEVAL;
        fx->frags[f].buf = nfrags > 1 ? evbuffer_new() : NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        snprintf(fx->names[i], sizeof(fx->names[i]), "k%u", i);
        fx->keys[i] = (struct proto_str){fx->names[i], strlen(fx->names[i])};
        fx->key_frag[i] = frag_of[i];
        fx->frags[frag_of[i]].nkeys++;
    }
    mget_layout(req);
    return fx;
}

static void
fixture_free(struct fixture *fx)
{
    for (uint32_t f = 0; f < fx->req.nfrags; f++) {
        if (fx->frags[f].buf != NULL) {
            evbuffer_free(fx->frags[f].buf);
        }
    }
    free(fx->req.vals);
    evbuffer_free(fx->req.rsp);
    free(fx);
}

/* The VALUE block of key i with a value of vlen bytes of 'a' + i. */
static char *
block(uint32_t i, size_t vlen, size_t *len)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "VALUE k%u 0 %zu\r\n", i, vlen);
    char *b = malloc((size_t)n + vlen + 2);

    memcpy(b, head, (size_t)n);
    memset(b + n, 'a' + (int)i, vlen);
    memcpy(b + n + vlen, "\r\n", 2);
    *len = (size_t)n + vlen + 2;
    return b;
}

/* Hands over key i's block to its fragment, copied or moved. */
static void
deliver(struct fixture *fx, uint32_t i, size_t vlen, bool move)
{
    struct frag *f = &fx->frags[fx->key_frag[i]];
    size_t len;
    char *b = block(i, vlen, &len);

    ck_assert(mget_match(f, fx->keys[i].p, fx->keys[i].len, (uint32_t)len));
    if (move) {
        struct evbuffer *in = evbuffer_new();

        evbuffer_add(in, b, len);
        mget_value_move(f, in, len);
        ck_assert_uint_eq(evbuffer_get_length(in), 0);
        evbuffer_free(in);
    } else {
        mget_value(f, b, len);
    }
    free(b);
}

/* req->rsp as a string (caller frees). */
static char *
rsp_text(struct fixture *fx)
{
    size_t n = evbuffer_get_length(fx->req.rsp);
    char *s = malloc(n + 1);

    evbuffer_remove(fx->req.rsp, s, n);
    s[n] = '\0';
    return s;
}

/* The expected merge: blocks of keys in `order` (sizes in vlen[]). */
static char *
expected(const uint32_t *order, const size_t *vlen, size_t n)
{
    struct evbuffer *e = evbuffer_new();
    size_t len;
    char *s;

    for (size_t k = 0; k < n; k++) {
        char *b = block(order[k], vlen[k], &len);

        evbuffer_add(e, b, len);
        free(b);
    }
    len = evbuffer_get_length(e);
    s = malloc(len + 1);
    evbuffer_remove(e, s, len);
    s[len] = '\0';
    evbuffer_free(e);
    return s;
}

START_TEST(test_layout_groups_keys_by_fragment_in_client_order)
{
    static const uint32_t frag_of[] = {1, 0, 1, 2, 0};
    struct fixture *fx = fixture_new(frag_of, 5, 3);
    static const uint32_t want[] = {1, 4, 0, 2, 3};

    ck_assert_uint_eq(fx->frags[0].key_start, 0);
    ck_assert_uint_eq(fx->frags[0].nkeys, 2);
    ck_assert_uint_eq(fx->frags[1].key_start, 2);
    ck_assert_uint_eq(fx->frags[1].nkeys, 2);
    ck_assert_uint_eq(fx->frags[2].key_start, 4);
    ck_assert_uint_eq(fx->frags[2].nkeys, 1);
    for (int i = 0; i < 5; i++) {
        ck_assert_uint_eq(fx->frag_keys[i], want[i]);
    }
    fixture_free(fx);
}
END_TEST

START_TEST(test_merge_restores_client_order_and_skips_misses)
{
    /* k0 k1 k2 k3 k4 k5 over three backends; k2 and k5 miss. */
    static const uint32_t frag_of[] = {2, 0, 1, 0, 2, 1};
    struct fixture *fx = fixture_new(frag_of, 6, 3);
    static const uint32_t order[] = {0, 1, 3, 4};
    static const size_t vlen[] = {3, 10, 5000, 1};
    char *got, *want;

    /* Each fragment answers in its own key order; fragments interleave. */
    deliver(fx, 1, 10, false);
    deliver(fx, 0, 3, false);
    deliver(fx, 3, 5000, true);     /* large: stays in its fragment */
    deliver(fx, 4, 1, false);
    ck_assert_uint_eq(fx->req.hits, 4);
    mget_merge(&fx->req);
    got = rsp_text(fx);
    want = expected(order, vlen, 4);
    ck_assert_str_eq(got, want);
    free(got);
    free(want);
    fixture_free(fx);
}
END_TEST

/* A warm-up hit (mget_put) takes its key's place among the others. */
START_TEST(test_put_block_merges_in_its_place)
{
    /* k0 k1 k2 k3 over two backends; k1 and k3 missed, k1 found elsewhere. */
    static const uint32_t frag_of[] = {0, 1, 0, 1};
    struct fixture *fx = fixture_new(frag_of, 4, 2);
    static const uint32_t order[] = {0, 1, 2};
    static const size_t vlen[] = {3, 6000, 2};
    char head[64];
    char *data = malloc(6002), *got, *want;
    int n = snprintf(head, sizeof(head), "VALUE k1 0 6000\r\n");

    memset(data, 'b', 6000);
    memcpy(data + 6000, "\r\n", 2);
    deliver(fx, 0, 3, false);
    deliver(fx, 2, 2, true);
    mget_put(&fx->req, 1, head, (size_t)n, data, 6002);
    ck_assert_uint_eq(fx->req.hits, 3);
    mget_merge(&fx->req);
    got = rsp_text(fx);
    want = expected(order, vlen, 3);
    ck_assert_str_eq(got, want);
    free(data);
    free(got);
    free(want);
    fixture_free(fx);
}
END_TEST

START_TEST(test_match_refuses_a_key_not_asked_for)
{
    static const uint32_t frag_of[] = {0, 1, 0};
    struct fixture *fx = fixture_new(frag_of, 3, 2);

    /* k1 belongs to fragment 1, not 0. */
    ck_assert(!mget_match(&fx->frags[0], "k1", 2, 20));
    fixture_free(fx);
}
END_TEST

START_TEST(test_match_refuses_a_key_out_of_order)
{
    static const uint32_t frag_of[] = {0, 0, 0};
    struct fixture *fx = fixture_new(frag_of, 3, 2);

    /* Backends answer in request order: after k2, k0 cannot come. */
    ck_assert(mget_match(&fx->frags[0], "k2", 2, 20));
    mget_value(&fx->frags[0], "VALUE k2 0 1\r\nx\r\n", 17);
    ck_assert(!mget_match(&fx->frags[0], "k0", 2, 20));
    fixture_free(fx);
}
END_TEST

START_TEST(test_claim_takes_a_fragments_keys_in_order_each_once)
{
    static const uint32_t frag_of[] = {0, 1, 0, 0};
    struct fixture *fx = fixture_new(frag_of, 4, 2);
    struct frag *f = &fx->frags[0];

    /* Fragment 0 asked for k0 k2 k3 on a shared line: k2's VALUE means
     * k0 missed; k1 is not its key. */
    ck_assert(!mget_claim(f, "k1", 2));
    ck_assert(mget_claim(f, "k2", 2));
    ck_assert(mget_match(f, "k2", 2, 17));
    mget_value(f, "VALUE k2 0 1\r\nx\r\n", 17);
    ck_assert(!mget_claim(f, "k0", 2));
    ck_assert(!mget_claim(f, "k2", 2));
    ck_assert(mget_claim(f, "k3", 2));
    fixture_free(fx);
}
END_TEST

START_TEST(test_claim_in_stream_mode_moves_past_the_key)
{
    static const uint32_t frag_of[] = {0, 0};
    struct fixture *fx = fixture_new(frag_of, 2, 1);
    struct frag *f = &fx->frags[0];

    /* A key asked for twice (get k k) is claimed twice, then no more. */
    fx->keys[1] = fx->keys[0];
    ck_assert(mget_claim(f, "k0", 2));
    ck_assert(mget_claim(f, "k0", 2));
    ck_assert(!mget_claim(f, "k0", 2));
    ck_assert(!mget_claim(f, "k", 1));
    fixture_free(fx);
}
END_TEST

START_TEST(test_failed_fragment_keys_become_misses)
{
    static const uint32_t frag_of[] = {0, 1, 0, 1};
    struct fixture *fx = fixture_new(frag_of, 4, 2);
    static const uint32_t order[] = {0, 2};
    static const size_t vlen[] = {4, 6000};
    char *got, *want;

    deliver(fx, 1, 7, false);
    deliver(fx, 0, 4, false);
    deliver(fx, 3, 5000, true);
    deliver(fx, 2, 6000, true);
    mget_drop(&fx->frags[1]);
    ck_assert_uint_eq(fx->req.hits, 2);
    ck_assert_uint_eq(evbuffer_get_length(fx->frags[1].buf), 0);
    mget_merge(&fx->req);
    got = rsp_text(fx);
    want = expected(order, vlen, 2);
    ck_assert_str_eq(got, want);
    free(got);
    free(want);
    fixture_free(fx);
}
END_TEST

START_TEST(test_one_fragment_streams_straight_into_the_reply)
{
    static const uint32_t frag_of[] = {0, 0};
    struct fixture *fx = fixture_new(frag_of, 2, 1);
    static const uint32_t order[] = {0, 1};
    static const size_t vlen[] = {2, 9000};
    char *got, *want;

    deliver(fx, 0, 2, false);
    deliver(fx, 1, 9000, true);
    got = rsp_text(fx);
    want = expected(order, vlen, 2);
    ck_assert_str_eq(got, want);
    free(got);
    free(want);
    mget_drop(&fx->frags[0]);
    ck_assert_uint_eq(fx->req.hits, 0);
    fixture_free(fx);
}
END_TEST

START_TEST(test_many_small_values_merge_in_order)
{
    uint32_t frag_of[MAXK];
    uint32_t order[MAXK];
    size_t vlen[MAXK];
    struct fixture *fx;
    char *got, *want;

    for (uint32_t i = 0; i < MAXK; i++) {
        frag_of[i] = (i * 7 + 3) % 4;
        order[i] = i;
        vlen[i] = 100 + i * 300;    /* 100 .. 4600: both sides of 4096 */
    }
    fx = fixture_new(frag_of, MAXK, 4);
    for (uint32_t f = 0; f < 4; f++) {
        for (uint32_t i = 0; i < MAXK; i++) {
            if (frag_of[i] == f) {
                deliver(fx, i, vlen[i], vlen[i] > 4096);
            }
        }
    }
    mget_merge(&fx->req);
    got = rsp_text(fx);
    want = expected(order, vlen, MAXK);
    ck_assert_str_eq(got, want);
    free(got);
    free(want);
    fixture_free(fx);
}
END_TEST

START_TEST(test_write_sends_each_fragment_its_keys)
{
    static const uint32_t frag_of[] = {1, 0, 1, 0};
    struct fixture *fx = fixture_new(frag_of, 4, 2);
    struct proto_req pr;
    char buf[64];
    size_t n;

    memset(&pr, 0, sizeof(pr));
    pr.cmd = PROTO_CMD_GETS;
    pr.name = (struct proto_str){"gets", 4};
    mget_write(&fx->req, &fx->frags[1], &pr, 0, fx->req.rsp);
    n = evbuffer_remove(fx->req.rsp, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "gets k0 k2\r\n");

    pr.cmd = PROTO_CMD_GAT;
    pr.name = (struct proto_str){"gat", 3};
    mget_write(&fx->req, &fx->frags[0], &pr, 300, fx->req.rsp);
    n = evbuffer_remove(fx->req.rsp, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "gat 300 k1 k3\r\n");
    fixture_free(fx);
}
END_TEST

START_TEST(test_put_keys_writes_what_keys_len_counts)
{
    static const uint32_t frag_of[] = {0, 1, 0, 0};
    struct fixture *fx = fixture_new(frag_of, 4, 2);
    char buf[64];
    char *end;

    memset(buf, '#', sizeof(buf));
    ck_assert_uint_eq(mget_keys_len(&fx->req, &fx->frags[0]), 9);
    end = mget_put_keys(&fx->req, &fx->frags[0], buf);
    ck_assert_ptr_eq(end, buf + 9);
    ck_assert_int_eq(memcmp(buf, " k0 k2 k3#", 10), 0);
    ck_assert_uint_eq(mget_keys_len(&fx->req, &fx->frags[1]), 3);
    end = mget_put_keys(&fx->req, &fx->frags[1], buf);
    ck_assert_int_eq(memcmp(buf, " k1", 3), 0);
    ck_assert_ptr_eq(end, buf + 3);
    fixture_free(fx);
}
END_TEST

static Suite *
mget_suite(void)
{
    Suite *s = suite_create("mget");
    TCase *tc = tcase_create("split");

    tcase_add_test(tc, test_layout_groups_keys_by_fragment_in_client_order);
    tcase_add_test(tc, test_write_sends_each_fragment_its_keys);
    tcase_add_test(tc, test_put_keys_writes_what_keys_len_counts);
    suite_add_tcase(s, tc);
    tc = tcase_create("merge");
    tcase_add_test(tc, test_merge_restores_client_order_and_skips_misses);
    tcase_add_test(tc, test_match_refuses_a_key_not_asked_for);
    tcase_add_test(tc, test_put_block_merges_in_its_place);
    tcase_add_test(tc, test_match_refuses_a_key_out_of_order);
    tcase_add_test(tc, test_claim_takes_a_fragments_keys_in_order_each_once);
    tcase_add_test(tc, test_claim_in_stream_mode_moves_past_the_key);
    tcase_add_test(tc, test_failed_fragment_keys_become_misses);
    tcase_add_test(tc, test_one_fragment_streams_straight_into_the_reply);
    tcase_add_test(tc, test_many_small_values_merge_in_order);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(mget_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
