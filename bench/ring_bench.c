/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring_bench: lookup and build cost of the ring at 10, 100 and 1000
 * backends, in xxh3 mode (default vnodes) and ketama mode.
 *
 * Usage: ring-bench [VNODES]
 *
 * One line per ring: mode, backends, points, heap bytes, build time
 * (median of 3 builds) and ns per lookup. A lookup is ring_lookup() on a
 * precomputed key ("user:%08x" of a pseudo-random number, 1M distinct
 * keys, visited in order), so the figure includes hashing the key and the
 * cache misses of a ring larger than the caches. Consecutive lookups are
 * independent, so the CPU may overlap some of those misses; "chained"
 * makes each key depend on the previous answer, which measures the latency
 * of one lookup instead. The hash-only line gives the key hashing part.
 *
 * Build optimised for real figures; see bench/README.md.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ring.h"
#include "util.h"

#define BENCH_NKEYS (1u << 20)
#define BENCH_KEYLEN 16
#define BENCH_LOOKUPS (8u << 20)
#define BENCH_BUILDS 3

struct bench_keys {
    char *buf; /* BENCH_NKEYS keys, BENCH_KEYLEN bytes apart */
    uint8_t *len;
};

static void
bench_keys_init(struct bench_keys *k)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;

    k->buf = util_xmalloc((size_t)BENCH_NKEYS * BENCH_KEYLEN);
    k->len = util_xmalloc(BENCH_NKEYS);
    for (uint32_t i = 0; i < BENCH_NKEYS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        k->len[i] =
            (uint8_t)snprintf(k->buf + (size_t)i * BENCH_KEYLEN, BENCH_KEYLEN,
                              "user:%08x", (unsigned)(x >> 32));
    }
}

static int
bench_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Builds a ring BENCH_BUILDS times; returns the last, sets the median. */
static struct ring *
bench_build(enum ring_hash hash, unsigned vnodes, const struct ring_backend *be,
            size_t n, double *build_ms)
{
    uint64_t t[BENCH_BUILDS];
    struct ring *ring = NULL;
    char err[256];

    for (int r = 0; r < BENCH_BUILDS; r++) {
        uint64_t t0 = util_now_ns();

        ring_destroy(ring);
        ring = ring_create(hash, vnodes, be, n, err, sizeof(err));
        t[r] = util_now_ns() - t0;
        if (ring == NULL) {
            fprintf(stderr, "ring-bench: %s\n", err);
            exit(1);
        }
    }
    qsort(t, BENCH_BUILDS, sizeof(t[0]), bench_u64_cmp);
    *build_ms = (double)t[BENCH_BUILDS / 2] / 1e6;
    return ring;
}

static double
bench_lookup_ns(const struct ring *ring, const struct bench_keys *k,
                uint64_t *sink)
{
    uint64_t acc = 0;
    uint64_t t0 = util_now_ns();

    for (uint32_t i = 0; i < BENCH_LOOKUPS; i++) {
        uint32_t j = i & (BENCH_NKEYS - 1);

        acc += ring_lookup(ring, k->buf + (size_t)j * BENCH_KEYLEN, k->len[j]);
    }
    *sink += acc;
    return (double)(util_now_ns() - t0) / BENCH_LOOKUPS;
}

/*
 * The same, but which key comes next depends on the previous answer, so no
 * two lookups overlap: the latency of one lookup.
 */
static double
bench_chain_ns(const struct ring *ring, const struct bench_keys *k,
               uint64_t *sink)
{
    uint32_t b = 0;
    uint64_t t0 = util_now_ns();

    for (uint32_t i = 0; i < BENCH_LOOKUPS / 4; i++) {
        uint32_t j = (i + (b & 1)) & (BENCH_NKEYS - 1);

        b = ring_lookup(ring, k->buf + (size_t)j * BENCH_KEYLEN, k->len[j]);
    }
    *sink += b;
    return (double)(util_now_ns() - t0) / (BENCH_LOOKUPS / 4);
}

static double
bench_hash_ns(const struct bench_keys *k, uint64_t *sink)
{
    uint64_t acc = 0;
    uint64_t t0 = util_now_ns();

    for (uint32_t i = 0; i < BENCH_LOOKUPS; i++) {
        uint32_t j = i & (BENCH_NKEYS - 1);

        acc += XXH3_64bits(k->buf + (size_t)j * BENCH_KEYLEN, k->len[j]);
    }
    *sink += acc;
    return (double)(util_now_ns() - t0) / BENCH_LOOKUPS;
}

int
main(int argc, char **argv)
{
    static const size_t sizes[] = {10, 100, 1000};
    static const enum ring_hash modes[] = {RING_HASH_XXH3, RING_HASH_KETAMA};
    unsigned vnodes = RING_DEFAULT_VNODES;
    struct bench_keys keys;
    uint64_t sink = 0;

    if (argc > 1) {
        uint64_t v;

        if (util_parse_u64(argv[1], strlen(argv[1]), &v) != 0 || v == 0 ||
            v > 100000) {
            fprintf(stderr, "usage: ring-bench [VNODES]\n");
            return 2;
        }
        vnodes = (unsigned)v;
    }
    bench_keys_init(&keys);
    printf("xxh3 hash only: %.1f ns per key\n", bench_hash_ns(&keys, &sink));

    for (size_t m = 0; m < UTIL_ARRAY_SIZE(modes); m++) {
        for (size_t s = 0; s < UTIL_ARRAY_SIZE(sizes); s++) {
            size_t n = sizes[s];
            struct ring_backend *be = util_xcalloc(n, sizeof(*be));
            char(*names)[32] = util_xcalloc(n, sizeof(*names));
            struct ring *ring;
            double build_ms, ns, chain_ns;

            for (size_t i = 0; i < n; i++) {
                snprintf(names[i], sizeof(names[i]), "10.0.%zu.%zu", i / 250,
                         i % 250 + 1);
                be[i].name = names[i];
                be[i].host = names[i];
                be[i].port = 11211;
                be[i].weight = 1;
            }
            ring = bench_build(modes[m], vnodes, be, n, &build_ms);
            ns = bench_lookup_ns(ring, &keys, &sink);
            chain_ns = bench_chain_ns(ring, &keys, &sink);
            printf("%-6s vnodes %-5u backends %4zu points %8u "
                   "memory %9zu B build %7.2f ms lookup %6.1f ns "
                   "(chained %6.1f ns)\n",
                   modes[m] == RING_HASH_XXH3 ? "xxh3" : "ketama",
                   modes[m] == RING_HASH_XXH3 ? vnodes : 160, n,
                   ring_npoints(ring), ring_memory(ring), build_ms, ns,
                   chain_ns);
            ring_destroy(ring);
            free(names);
            free(be);
        }
    }
    free(keys.buf);
    free(keys.len);
    /* Keeps the lookups from being optimised away. */
    return sink == 42 ? 3 : 0;
}
