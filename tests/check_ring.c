/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * check_ring: unit tests of the ring and of the analyze tools.
 *
 * The ketama golden vectors are a loop test over the rows of
 * $TESTDATA/ketama-libmemcached.tsv (libmemcached's own fixture); main()
 * counts the rows, each iteration reads its row again. The other cases
 * build rings directly with ring_create() and check properties over many
 * deterministic keys ("k%u"): determinism under reordering, weights,
 * minimal movement, the fallback walk. Statistical bounds are stated next
 * to each assertion; with fixed names and keys they are deterministic.
 */
#include "autoconf.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "analyze.h"
#include "config.h"
#include "ring.h"
#include "util.h"

#define GOLDEN_FILE "ketama-libmemcached.tsv"
#define NKEYS 200000
#define NAME_LEN 48

/* A set of backends named PREFIX<number>SUFFIX, for ring_create(). */
struct bset {
    size_t n;
    char (*names)[NAME_LEN];
    struct ring_backend *be;
};

static void
bset_init(struct bset *s, const char *fmt, size_t n, unsigned first)
{
    /* fmt is "PREFIX%uSUFFIX", split here: formats must be literals. */
    const char *hole = strstr(fmt, "%u");
    int plen = (int)(hole - fmt);

    s->n = n;
    s->names = util_xcalloc(n, sizeof(*s->names));
    s->be = util_xcalloc(n, sizeof(*s->be));
    for (size_t i = 0; i < n; i++) {
        snprintf(s->names[i], NAME_LEN, "%.*s%u%s", plen, fmt,
                 (unsigned)i + first, hole + 2);
        s->be[i].name = s->names[i];
        s->be[i].host = s->names[i];
        s->be[i].port = 11211;
        s->be[i].weight = 1;
    }
}

static void
bset_deinit(struct bset *s)
{
    free(s->names);
    free(s->be);
}

static struct ring *
mkring(enum ring_hash hash, unsigned vnodes, const struct ring_backend *be,
       size_t n)
{
    char err[256] = "";
    struct ring *r = ring_create(hash, vnodes, be, n, err, sizeof(err));

    ck_assert_msg(r != NULL, "ring_create: %s", err);
    return r;
}

static size_t
keyname(char *buf, size_t len, unsigned i)
{
    return (size_t)snprintf(buf, len, "k%u", i);
}

static uint32_t
lookup_i(const struct ring *r, unsigned i)
{
    char k[32];
    size_t len = keyname(k, sizeof(k), i);

    return ring_lookup(r, k, len);
}

static uint32_t
find_backend(const struct ring *r, const char *name)
{
    for (uint32_t b = 0; b < ring_nbackends(r); b++) {
        if (strcmp(ring_backend_name(r, b), name) == 0) {
            return b;
        }
    }
    ck_abort_msg("no backend %s", name);
    return RING_NONE;
}

/* Deterministic Fisher-Yates with an LCG. */
static void
shuffle(struct ring_backend *be, size_t n, uint64_t seed)
{
    for (size_t i = n - 1; i > 0; i--) {
        size_t j;
        struct ring_backend t;

        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        j = (size_t)((seed >> 33) % (i + 1));
        t = be[i];
        be[i] = be[j];
        be[j] = t;
    }
}

/* Predicate refusing the backends whose bit is set. */
struct excl {
    uint64_t mask[4]; /* up to 256 backends */
};

static bool
excl_pred(uint32_t b, void *arg)
{
    const struct excl *e = arg;

    return (e->mask[b / 64] >> (b % 64) & 1) == 0;
}

static void
excl_add(struct excl *e, uint32_t b)
{
    e->mask[b / 64] |= (uint64_t)1 << (b % 64);
}

static bool
refuse_all(uint32_t b, void *arg)
{
    return false;
}

/* ---- ketama golden vectors --------------------------------------------- */

static const char *const golden_hosts[] = {
    "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4",
    "10.0.1.5", "10.0.1.6", "10.0.1.7", "10.0.1.8",
};
static const double golden_weights[] = {600,  300, 200, 350,
                                        1000, 800, 950, 100};

static FILE *
golden_open(void)
{
    const char *dir = getenv("TESTDATA");
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "tests/data",
             GOLDEN_FILE);
    return fopen(path, "r");
}

/* Reads data row i (0-based) into its four tab-separated fields. */
static bool
golden_row(int i, char *line, size_t len, char **f)
{
    FILE *fp = golden_open();
    int row = -1;

    if (fp == NULL) {
        return false;
    }
    while (fgets(line, (int)len, fp) != NULL) {
        if (line[0] == '#' || line[0] == '\n') {
            continue;
        }
        if (++row == i) {
            char *save = NULL;

            line[strcspn(line, "\r\n")] = '\0';
            for (int k = 0; k < 4; k++) {
                f[k] = strtok_r(k == 0 ? line : NULL, "\t", &save);
            }
            fclose(fp);
            return f[3] != NULL;
        }
    }
    fclose(fp);
    return false;
}

static int
golden_count(void)
{
    char line[512];
    char *f[4];
    int n = 0;

    while (golden_row(n, line, sizeof(line), f)) {
        n++;
    }
    return n;
}

static struct ring *
golden_ring(void)
{
    struct ring_backend be[8];

    for (size_t i = 0; i < 8; i++) {
        be[i].name = golden_hosts[i];
        be[i].host = golden_hosts[i];
        be[i].port = 11211;
        be[i].weight = golden_weights[i];
    }
    return mkring(RING_HASH_KETAMA, 0, be, 8);
}

START_TEST(test_hash_tag_places_by_the_tag)
{
    struct bset s;
    struct ring *r;
    static const struct {
        const char *key, *placed_as;
    } cases[] = {
        {"{user1}:a", "user1"},   {"x{user1}y", "user1"},
        {"{user1}", "user1"},     {"a{b}c{d}e", "b"},
        {"{}x", "{}x"},           /* empty tag: the whole key */
        {"{open", "{open"},       /* no close: the whole key */
        {"close}", "close}"},     {"plain", "plain"},
    };

    bset_init(&s, "b%u", 8, 1);
    for (int hash = 0; hash < 2; hash++) {
        r = mkring(hash ? RING_HASH_KETAMA : RING_HASH_XXH3, 160, s.be, s.n);
        /* Off by default: the whole key is hashed. */
        ck_assert(ring_key_pos(r, "{u}:a", 5) != ring_key_pos(r, "u", 1));
        ring_set_hash_tag(r, '{', '}');
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            const char *k = cases[i].key, *w = cases[i].placed_as;

            ck_assert_msg(ring_key_pos(r, k, strlen(k)) ==
                              ring_key_pos(r, w, strlen(w)) ||
                          strcmp(k, w) == 0,
                          "%s", k);
            ck_assert_msg(ring_lookup(r, k, strlen(k)) ==
                              ring_lookup(r, w, strlen(w)),
                          "%s", k);
        }
        /* Keys of one tag share an owner, whatever else they hold. */
        for (unsigned i = 0; i < 200; i++) {
            char k[32];
            int n = snprintf(k, sizeof(k), "{t%u}:%u", i % 10, i);

            ck_assert_uint_eq(ring_lookup(r, k, (size_t)n),
                              ring_lookup(r, k + 1, k[3] == '}' ? 2 : 3));
        }
        /* The same character twice: ":a:" places by a. */
        ring_set_hash_tag(r, ':', ':');
        ck_assert(ring_key_pos(r, "x:a:y", 5) == ring_key_pos(r, "a", 1));
        ring_set_hash_tag(r, '\0', '\0');
        ck_assert(ring_key_pos(r, "x:a:y", 5) != ring_key_pos(r, "a", 1));
        ring_destroy(r);
    }
    bset_deinit(&s);
}
END_TEST

START_TEST(test_derived_key_placed_as_its_base)
{
    struct bset s;
    struct ring *r;
    static const struct {
        const char *key, *placed_as;
    } cases[] = {
        {"user:1:mcbig:0123456789abcdef:000", "user:1"},
        {"u:mcbig:fedcba9876543210:3ff", "u"},
        {"{t}x:mcbig:0123456789abcdef:001", "t"}, /* then its tag */
        /* not the shape: the whole key */
        {":mcbig:0123456789abcdef:000", ":mcbig:0123456789abcdef:000"},
        {"u:mcbig:0123456789abcdef-000", "u:mcbig:0123456789abcdef-000"},
        {"u:mcbog:0123456789abcdef:000", "u:mcbog:0123456789abcdef:000"},
    };

    ck_assert_uint_eq(strlen(cases[0].key) - strlen(cases[0].placed_as),
                      RING_DERIVED_LEN);
    bset_init(&s, "b%u", 8, 1);
    for (int hash = 0; hash < 2; hash++) {
        r = mkring(hash ? RING_HASH_KETAMA : RING_HASH_XXH3, 160, s.be, s.n);
        /* Off by default: the whole key is hashed. */
        ck_assert(ring_key_pos(r, cases[0].key, strlen(cases[0].key)) !=
                  ring_key_pos(r, cases[0].placed_as,
                               strlen(cases[0].placed_as)));
        ring_set_derived(r, true);
        ring_set_hash_tag(r, '{', '}');
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            const char *k = cases[i].key, *w = cases[i].placed_as;
            const char *hk = k;
            size_t hl = strlen(k);

            ring_hashed_part(r, &hk, &hl);
            ck_assert_msg(ring_key_pos(r, k, strlen(k)) ==
                              ring_key_pos(r, w, strlen(w)),
                          "%s", k);
            ck_assert_msg(strcmp(k, w) != 0 || hl == strlen(k), "%s", k);
        }
        /* Every chunk of a key lives with it, whatever the token. */
        for (unsigned i = 0; i < 300; i++) {
            char base[32], k[64];
            int b = snprintf(base, sizeof(base), "key-%u", i);
            int n = snprintf(k, sizeof(k), "%s:mcbig:%016x:%03x", base,
                             i * 2654435761u, i % 1024);

            ck_assert_uint_eq(ring_lookup(r, k, (size_t)n),
                              ring_lookup(r, base, (size_t)b));
            ck_assert_uint_eq(ring_base_len(k, (size_t)n), (size_t)b);
        }
        ring_destroy(r);
    }
    bset_deinit(&s);
}
END_TEST

START_TEST(test_ketama_golden_vector)
{
    char line[512];
    char *f[4];
    struct ring *r;
    uint64_t pos;
    uint32_t p;

    ck_assert_msg(golden_row(_i, line, sizeof(line), f),
                  "cannot read row %d of " GOLDEN_FILE, _i);
    r = golden_ring();
    pos = ring_key_pos(r, f[0], strlen(f[0]));
    ck_assert_msg(pos == strtoull(f[1], NULL, 10), "%s: key hash %llu", f[0],
                  (unsigned long long)pos);
    p = ring_point_at(r, pos);
    ck_assert_msg(ring_points(r)[p].pos == strtoull(f[2], NULL, 10),
                  "%s: point %llu", f[0],
                  (unsigned long long)ring_points(r)[p].pos);
    ck_assert_str_eq(ring_backend_name(r, ring_lookup(r, f[0], strlen(f[0]))),
                     f[3]);
    ring_destroy(r);
}
END_TEST

START_TEST(test_ketama_golden_file_is_complete)
{
    /* The fixture has 99 keys; fewer means the loop test ran short. */
    ck_assert_int_eq(golden_count(), 99);
}
END_TEST

START_TEST(test_ketama_point_counts)
{
    /* floor(w / 4300 * 40 * 8 + 1e-10) * 4, e.g. 600: floor(44.65) * 4. */
    static const uint32_t want[] = {176, 88, 56, 104, 296, 236, 280, 28};
    struct ring *r = golden_ring();
    uint32_t total = 0;

    for (uint32_t b = 0; b < 8; b++) {
        ck_assert_uint_eq(ring_backend_npoints(r, b), want[b]);
        total += want[b];
    }
    ck_assert_uint_eq(ring_npoints(r), total);
    ring_destroy(r);
}
END_TEST

/* Little-endian word k of an MD5 digest. */
static uint32_t
md5_word(const uint8_t *d, unsigned k)
{
    return (uint32_t)d[3 + 4 * k] << 24 | (uint32_t)d[2 + 4 * k] << 16 |
           (uint32_t)d[1 + 4 * k] << 8 | d[4 * k];
}

/* ketama's key position is the first little-endian word of MD5(key), for
 * every key length: on both sides of the one-block fast path (55 bytes). */
START_TEST(test_ketama_key_pos_is_md5_for_every_length)
{
    struct bset s;
    struct ring *r;
    uint8_t key[300];

    bset_init(&s, "mc%u", 3, 1);
    r = mkring(RING_HASH_KETAMA, 0, s.be, s.n);
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(33 + (i * 7) % 90);
    }
    for (size_t len = 0; len <= sizeof(key); len++) {
        MD5_CTX ctx;
        uint8_t d[MD5_DIGEST_LENGTH];
        uint32_t want;

        MD5Init(&ctx);
        MD5Update(&ctx, key, len);
        MD5Final(d, &ctx);
        want = md5_word(d, 0);
        ck_assert_msg(ring_key_pos(r, (const char *)key, len) == want,
                      "length %zu", len);
    }
    ring_destroy(r);
    bset_deinit(&s);
}
END_TEST

/* Does r hold the 4 points of MD5(s)? */
static bool
has_md5_points(const struct ring *r, const char *s)
{
    MD5_CTX ctx;
    uint8_t d[MD5_DIGEST_LENGTH];
    int found = 0;

    MD5Init(&ctx);
    MD5Update(&ctx, (const uint8_t *)s, strlen(s));
    MD5Final(d, &ctx);
    for (unsigned k = 0; k < 4; k++) {
        uint32_t v = md5_word(d, k);

        for (uint32_t i = 0; i < ring_npoints(r); i++) {
            if (ring_points(r)[i].pos == v) {
                found++;
                break;
            }
        }
    }
    return found == 4;
}

START_TEST(test_ketama_point_strings)
{
    struct ring_backend be = {"a", "cache.example", 11211, 1};
    struct ring *r = mkring(RING_HASH_KETAMA, 0, &be, 1);

    ck_assert_uint_eq(ring_npoints(r), 160);
    ck_assert(has_md5_points(r, "cache.example-0"));
    ck_assert(has_md5_points(r, "cache.example-39"));
    ck_assert(!has_md5_points(r, "cache.example-40"));
    ring_destroy(r);

    be.port = 11212;
    r = mkring(RING_HASH_KETAMA, 0, &be, 1);
    ck_assert(has_md5_points(r, "cache.example:11212-0"));
    ck_assert(has_md5_points(r, "cache.example:11212-39"));
    ck_assert(!has_md5_points(r, "cache.example-0"));
    ring_destroy(r);
}
END_TEST

/* ---- xxh3 points -------------------------------------------------------- */

START_TEST(test_xxh3_point_strings)
{
    struct ring_backend be = {"mc1", "h", 11211, 1};
    struct ring *r = mkring(RING_HASH_XXH3, 3, &be, 1);
    uint64_t want[3];

    want[0] = XXH3_64bits("mc1-0", 5);
    want[1] = XXH3_64bits("mc1-1", 5);
    want[2] = XXH3_64bits("mc1-2", 5);
    ck_assert_uint_eq(ring_npoints(r), 3);
    for (int i = 0; i < 3; i++) {
        bool found = false;

        for (int j = 0; j < 3; j++) {
            found = found || ring_points(r)[j].pos == want[i];
        }
        ck_assert_msg(found, "point mc1-%d missing", i);
    }
    ck_assert(ring_key_pos(r, "hello", 5) == XXH3_64bits("hello", 5));
    ring_destroy(r);
}
END_TEST

START_TEST(test_xxh3_point_counts_round_weights)
{
    struct ring_backend be[3] = {
        {"a", "a", 1, 1.0},
        {"b", "b", 1, 0.5},
        {"c", "c", 1, 1e-9},
    };
    struct ring *r = mkring(RING_HASH_XXH3, 101, be, 3);

    ck_assert_uint_eq(ring_backend_npoints(r, 0), 101);
    ck_assert_uint_eq(ring_backend_npoints(r, 1), 51); /* round(50.5) */
    ck_assert_uint_eq(ring_backend_npoints(r, 2), 1);  /* at least one */
    ring_destroy(r);
}
END_TEST

/* ---- sorted points, lookup semantics, arcs ----------------------------- */

static void
check_sorted(const struct ring *r)
{
    const struct ring_point *p = ring_points(r);

    for (uint32_t i = 1; i < ring_npoints(r); i++) {
        ck_assert(p[i - 1].pos <= p[i].pos);
        if (p[i - 1].pos == p[i].pos) {
            ck_assert(strcmp(ring_backend_name(r, p[i - 1].backend),
                             ring_backend_name(r, p[i].backend)) <= 0);
        }
    }
}

static void
check_lookup_semantics(const struct ring *r)
{
    const struct ring_point *p = ring_points(r);
    uint32_t n = ring_npoints(r);

    for (uint32_t i = 0; i < n; i += 1 + n / 500) {
        /* A position equal to a point belongs to that point... */
        uint32_t at = ring_point_at(r, p[i].pos);

        ck_assert(p[at].pos == p[i].pos && at <= i);
        /* ...one above it to the next distinct point, wrapping. */
        at = ring_point_at(r, p[i].pos + 1);
        if (p[n - 1].pos == p[i].pos) {
            ck_assert_uint_eq(at, 0);
        } else {
            ck_assert(p[at].pos > p[i].pos);
            ck_assert(at == 0 || p[at - 1].pos <= p[i].pos);
        }
    }
    ck_assert_uint_eq(ring_point_at(r, 0), 0);
}

static void
check_arcs(const struct ring *r)
{
    double sum = 0;

    for (uint32_t b = 0; b < ring_nbackends(r); b++) {
        double a = ring_backend_arc_share(r, b);

        ck_assert(a >= 0 && a <= 1);
        sum += a;
    }
    ck_assert_msg(fabs(sum - 1) < 1e-9, "arc shares sum to %.12f", sum);
}

START_TEST(test_points_sorted_and_lookup_exact)
{
    struct bset s;
    struct ring *r;

    bset_init(&s, "mc%u", 10, 1);
    r = mkring(RING_HASH_XXH3, 50, s.be, s.n);
    check_sorted(r);
    check_lookup_semantics(r);
    check_arcs(r);
    ring_destroy(r);
    r = mkring(RING_HASH_KETAMA, 0, s.be, s.n);
    check_sorted(r);
    check_lookup_semantics(r);
    check_arcs(r);
    /* A ketama position has 32 bits; the last point wraps to the first. */
    ck_assert_uint_eq(ring_point_at(r, UINT32_MAX), 0);
    ring_destroy(r);
    bset_deinit(&s);
}
END_TEST

START_TEST(test_ties_ordered_by_name)
{
    /* Same host:port, so every ketama point of "b" collides with "a". */
    struct ring_backend be[2] = {
        {"b", "10.0.0.1", 11211, 1},
        {"a", "10.0.0.1", 11211, 1},
    };
    uint32_t out[2];

    for (int order = 0; order < 2; order++) {
        struct ring *r = mkring(RING_HASH_KETAMA, 0, be, 2);
        uint32_t a = find_backend(r, "a");

        check_sorted(r);
        ck_assert(ring_backend_arc_share(r, a) == 1.0);
        for (unsigned i = 0; i < 1000; i++) {
            ck_assert_uint_eq(lookup_i(r, i), a);
        }
        ck_assert_uint_eq(ring_walk(r, 0, NULL, NULL, out, 2), 2);
        ck_assert_str_eq(ring_backend_name(r, out[0]), "a");
        ck_assert_str_eq(ring_backend_name(r, out[1]), "b");
        ring_destroy(r);
        be[0].name = "a";
        be[1].name = "b";
    }
}
END_TEST

/* ---- determinism ------------------------------------------------------- */

static void
check_order_independent(enum ring_hash hash, const char *fmt)
{
    struct bset s;
    struct ring *r0;

    bset_init(&s, fmt, 12, 1);
    for (size_t i = 0; i < s.n; i++) {
        s.be[i].weight = 1 + (double)(i % 3);
    }
    r0 = mkring(hash, 100, s.be, s.n);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct ring *r;

        shuffle(s.be, s.n, seed);
        r = mkring(hash, 100, s.be, s.n);
        ck_assert_uint_eq(ring_npoints(r), ring_npoints(r0));
        for (uint32_t i = 0; i < ring_npoints(r); i++) {
            const struct ring_point *p = &ring_points(r)[i];
            const struct ring_point *q = &ring_points(r0)[i];

            ck_assert(p->pos == q->pos);
            ck_assert_str_eq(ring_backend_name(r, p->backend),
                             ring_backend_name(r0, q->backend));
        }
        for (unsigned k = 0; k < 20000; k++) {
            ck_assert_str_eq(ring_backend_name(r, lookup_i(r, k)),
                             ring_backend_name(r0, lookup_i(r0, k)));
        }
        ring_destroy(r);
    }
    ring_destroy(r0);
    bset_deinit(&s);
}

START_TEST(test_shuffled_input_same_owners_xxh3)
{
    check_order_independent(RING_HASH_XXH3, "mc%u");
}
END_TEST

START_TEST(test_shuffled_input_same_owners_ketama)
{
    check_order_independent(RING_HASH_KETAMA, "10.0.0.%u");
}
END_TEST

/* ---- weights ----------------------------------------------------------- */

/* Share of the weight-2 backend over the mean share of the weight-1 ones. */
static double
heavy_ratio(enum ring_hash hash, const char *fmt)
{
    struct bset s;
    struct ring *r;
    uint64_t cnt[6] = {0};
    double light = 0;

    bset_init(&s, fmt, 6, 1);
    s.be[0].weight = 2;
    r = mkring(hash, RING_DEFAULT_VNODES, s.be, s.n);
    for (unsigned k = 0; k < NKEYS; k++) {
        cnt[lookup_i(r, k)]++;
    }
    for (size_t b = 1; b < 6; b++) {
        light += (double)cnt[b] / 5;
    }
    if (hash == RING_HASH_XXH3) {
        ck_assert_uint_eq(ring_backend_npoints(r, 0),
                          2 * ring_backend_npoints(r, 1));
    } else {
        /* floor(2/7 * 40 * 6) * 4 = 272 and floor(1/7 * 240) * 4 = 136. */
        ck_assert_uint_eq(ring_backend_npoints(r, 0), 272);
        ck_assert_uint_eq(ring_backend_npoints(r, 1), 136);
    }
    ring_destroy(r);
    bset_deinit(&s);
    return (double)cnt[0] / light;
}

START_TEST(test_weight_two_gets_twice_xxh3)
{
    /* 2x within 10%: at 1280 points per unit, shares vary by ~3%. */
    static const char *const fmts[] = {"mc%u", "backend-%u", "10.1.1.%u"};

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(fmts); i++) {
        double q = heavy_ratio(RING_HASH_XXH3, fmts[i]);

        ck_assert_msg(q > 1.8 && q < 2.2, "%s: ratio %.3f", fmts[i], q);
    }
}
END_TEST

START_TEST(test_weight_two_gets_twice_ketama)
{
    /* 2x within 25%: 136 points per unit of weight vary by ~9%. */
    static const char *const fmts[] = {"mc%u", "backend-%u", "10.1.1.%u"};

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(fmts); i++) {
        double q = heavy_ratio(RING_HASH_KETAMA, fmts[i]);

        ck_assert_msg(q > 1.5 && q < 2.5, "%s: ratio %.3f", fmts[i], q);
    }
}
END_TEST

START_TEST(test_default_vnodes_spread)
{
    /*
     * The promise behind RING_DEFAULT_VNODES: 10 equal backends, sampled
     * over the keys, coefficient of variation <= 0.05, max/mean <= 1.10.
     */
    static const char *const fmts[] = {"mc%u", "backend-%u", "cache-%u",
                                       "10.0.0.%u"};

    for (size_t f = 0; f < UTIL_ARRAY_SIZE(fmts); f++) {
        struct bset s;
        struct ring *r;
        uint64_t cnt[10] = {0};
        double mean = NKEYS / 10.0, var = 0, max = 0;

        bset_init(&s, fmts[f], 10, f == 1 ? 0 : 1);
        r = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, s.n);
        for (unsigned k = 0; k < NKEYS; k++) {
            cnt[lookup_i(r, k)]++;
        }
        for (size_t b = 0; b < 10; b++) {
            var += ((double)cnt[b] - mean) * ((double)cnt[b] - mean) / 10;
            max = (double)cnt[b] > max ? (double)cnt[b] : max;
        }
        ck_assert_msg(sqrt(var) / mean <= 0.05, "%s: cv %.4f", fmts[f],
                      sqrt(var) / mean);
        ck_assert_msg(max / mean <= 1.10, "%s: max/mean %.4f", fmts[f],
                      max / mean);
        ring_destroy(r);
        bset_deinit(&s);
    }
}
END_TEST

/* ---- minimal movement (xxh3) -------------------------------------------- */

START_TEST(test_removal_moves_only_its_keys)
{
    struct bset s;
    struct ring *full, *less;
    uint32_t gone;
    unsigned moved = 0;
    double share, frac;

    bset_init(&s, "mc%u", 10, 1);
    full = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, s.n);
    gone = find_backend(full, "mc4");
    share = ring_backend_arc_share(full, gone);
    s.be[gone] = s.be[s.n - 1]; /* drop mc4 */
    less = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, s.n - 1);
    for (unsigned k = 0; k < NKEYS; k++) {
        const char *was = ring_backend_name(full, lookup_i(full, k));
        const char *now = ring_backend_name(less, lookup_i(less, k));

        if (strcmp(was, "mc4") != 0) {
            ck_assert_str_eq(now, was);
        } else {
            moved++;
        }
    }
    frac = (double)moved / NKEYS;
    ck_assert_msg(fabs(frac - share) <= 0.1 * share,
                  "moved %.4f, arc share %.4f", frac, share);
    ring_destroy(less);
    ring_destroy(full);
    bset_deinit(&s);
}
END_TEST

START_TEST(test_addition_moves_keys_only_to_newcomer)
{
    struct bset s;
    struct ring *before, *after;
    unsigned moved = 0;
    double share, frac;

    bset_init(&s, "mc%u", 11, 1);
    before = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, 10);
    after = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, 11);
    share = ring_backend_arc_share(after, find_backend(after, "mc11"));
    for (unsigned k = 0; k < NKEYS; k++) {
        const char *was = ring_backend_name(before, lookup_i(before, k));
        const char *now = ring_backend_name(after, lookup_i(after, k));

        if (strcmp(now, was) != 0) {
            ck_assert_str_eq(now, "mc11");
            moved++;
        }
    }
    frac = (double)moved / NKEYS;
    ck_assert_msg(fabs(frac - share) <= 0.1 * share,
                  "moved %.4f, arc share %.4f", frac, share);
    ring_destroy(after);
    ring_destroy(before);
    bset_deinit(&s);
}
END_TEST

/*
 * A paced move: the newcomer's weight steps 0, 0.1, ..., 1. Weight 0 owns
 * no point; each step only moves keys to the newcomer (its points of the
 * step before are kept), and the last step is the ring with weight 1.
 */
START_TEST(test_weight_steps_move_keys_only_to_newcomer)
{
    struct bset s;
    struct ring *prev = NULL, *r;
    uint32_t *owner = util_xcalloc(NKEYS, sizeof(*owner));

    bset_init(&s, "mc%u", 11, 1);
    for (unsigned step = 0; step <= 10; step++) {
        uint32_t nb;

        s.be[10].weight = step / 10.0;
        r = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, 11);
        nb = find_backend(r, "mc11");
        ck_assert_uint_eq(ring_backend_npoints(r, nb),
                          (uint32_t)round(RING_DEFAULT_VNODES * step / 10.0));
        for (unsigned k = 0; k < NKEYS; k++) {
            uint32_t o = lookup_i(r, k);

            if (step == 0) {
                ck_assert_uint_ne(o, nb);
            } else if (o != owner[k]) {
                ck_assert_uint_eq(o, nb);
                ck_assert_uint_ne(owner[k], nb);
            }
            owner[k] = o;
        }
        if (prev != NULL) {
            ring_destroy(prev);
        }
        prev = r;
    }
    ring_destroy(prev);
    free(owner);
    bset_deinit(&s);
}
END_TEST

struct compare_sum {
    const struct ring *a, *b;
    double total, moved;
    double to_new;          /* moved to backend "mc11" of b */
};

static void
compare_arc(uint32_t ia, uint32_t ib, double share, void *arg)
{
    struct compare_sum *s = arg;
    const char *na = ring_backend_name(s->a, ia);
    const char *nb = ring_backend_name(s->b, ib);

    s->total += share;
    if (strcmp(na, nb) != 0) {
        s->moved += share;
        if (strcmp(nb, "mc11") == 0) {
            s->to_new += share;
        }
    }
}

/* ring_compare() of 10 and 11 backends: the arcs sum to 1, what moves is
 * exactly the newcomer's arc share, and sampled keys agree. */
START_TEST(test_compare_exact_moved_share)
{
    static const enum ring_hash hashes[] = {RING_HASH_XXH3, RING_HASH_KETAMA};

    for (size_t h = 0; h < UTIL_ARRAY_SIZE(hashes); h++) {
        struct bset s;
        struct ring *before, *after;
        struct compare_sum sum = {0};
        unsigned moved = 0;

        bset_init(&s, "mc%u", 11, 1);
        before = mkring(hashes[h], RING_DEFAULT_VNODES, s.be, 10);
        after = mkring(hashes[h], RING_DEFAULT_VNODES, s.be, 11);
        sum.a = before;
        sum.b = after;
        ck_assert_int_eq(ring_compare(before, after, compare_arc, &sum), 0);
        ck_assert_msg(fabs(sum.total - 1.0) < 1e-9, "total %.12f", sum.total);
        ck_assert(fabs(ring_moved_share(before, after) - sum.moved) < 1e-12);
        if (hashes[h] == RING_HASH_XXH3) {
            double share =
                ring_backend_arc_share(after, find_backend(after, "mc11"));

            ck_assert_msg(fabs(sum.moved - share) < 1e-9,
                          "moved %.9f, arc share %.9f", sum.moved, share);
            ck_assert_msg(fabs(sum.to_new - share) < 1e-9, "to new %.9f",
                          sum.to_new);
        }
        for (unsigned k = 0; k < NKEYS; k++) {
            if (strcmp(ring_backend_name(before, lookup_i(before, k)),
                       ring_backend_name(after, lookup_i(after, k))) != 0) {
                moved++;
            }
        }
        ck_assert_msg(fabs((double)moved / NKEYS - sum.moved) <
                          0.1 * sum.moved + 0.002,
                      "sampled %.4f, exact %.4f", (double)moved / NKEYS,
                      sum.moved);
        ring_destroy(after);
        ring_destroy(before);
        bset_deinit(&s);
    }
}
END_TEST

/* A ring compared with itself: nothing moves. */
START_TEST(test_compare_same_ring_moves_nothing)
{
    struct bset s;
    struct ring *r, *k;
    struct compare_sum sum = {0};

    bset_init(&s, "mc%u", 5, 1);
    r = mkring(RING_HASH_XXH3, 40, s.be, 5);
    k = mkring(RING_HASH_KETAMA, 0, s.be, 5);
    sum.a = sum.b = r;
    ck_assert_int_eq(ring_compare(r, r, compare_arc, &sum), 0);
    ck_assert(sum.moved == 0.0);
    ck_assert_msg(fabs(sum.total - 1.0) < 1e-9, "total %.12f", sum.total);
    ck_assert_int_eq(ring_compare(r, k, compare_arc, &sum), -1);
    ck_assert(ring_moved_share(r, r) == 0.0);
    ck_assert(isnan(ring_moved_share(r, k)));
    ring_destroy(k);
    ring_destroy(r);
    bset_deinit(&s);
}
END_TEST

/* ---- fallback walk ------------------------------------------------------ */

START_TEST(test_fallback_never_returns_excluded)
{
    for (int m = 0; m < 2; m++) {
        enum ring_hash hash = m == 0 ? RING_HASH_XXH3 : RING_HASH_KETAMA;
        struct bset s;
        struct ring *r;
        struct excl e = {{0}};

        bset_init(&s, "mc%u", 10, 1);
        r = mkring(hash, 100, s.be, s.n);
        excl_add(&e, 2);
        excl_add(&e, 3);
        excl_add(&e, 7);
        for (unsigned k = 0; k < 20000; k++) {
            char key[32];
            size_t len = keyname(key, sizeof(key), k);
            uint32_t b = ring_route(r, key, len, excl_pred, &e);
            uint32_t out[10];
            size_t n;

            ck_assert(b != RING_NONE && b != 2 && b != 3 && b != 7);
            n = ring_walk(r, ring_point_at(r, ring_key_pos(r, key, len)),
                          excl_pred, &e, out, 10);
            ck_assert_uint_eq(n, 7);
            for (size_t i = 0; i < n; i++) {
                ck_assert(out[i] != 2 && out[i] != 3 && out[i] != 7);
                for (size_t j = 0; j < i; j++) {
                    ck_assert(out[i] != out[j]);
                }
            }
        }
        ring_destroy(r);
        bset_deinit(&s);
    }
}
END_TEST

START_TEST(test_fallback_spreads_over_successors)
{
    struct bset s;
    struct ring *r;
    struct excl e = {{0}};
    uint64_t got[10] = {0};
    uint64_t total = 0;
    uint32_t gone;
    int receivers = 0;

    bset_init(&s, "mc%u", 10, 1);
    r = mkring(RING_HASH_XXH3, RING_DEFAULT_VNODES, s.be, s.n);
    gone = find_backend(r, "mc4");
    excl_add(&e, gone);
    for (unsigned k = 0; k < NKEYS; k++) {
        char key[32];
        size_t len = keyname(key, sizeof(key), k);

        if (ring_lookup(r, key, len) == gone) {
            got[ring_route(r, key, len, excl_pred, &e)]++;
            total++;
        }
    }
    ck_assert_uint_eq(got[gone], 0);
    /* Every survivor takes some; none more than twice its 1/9. */
    for (size_t b = 0; b < 10; b++) {
        if (b == gone) {
            continue;
        }
        receivers += got[b] > 0;
        ck_assert_msg((double)got[b] / (double)total < 2.0 / 9,
                      "%s takes %.3f of the down backend's keys",
                      ring_backend_name(r, (uint32_t)b),
                      (double)got[b] / (double)total);
        ck_assert_msg((double)got[b] / (double)total > 0.5 / 9,
                      "%s takes only %.3f of the down backend's keys",
                      ring_backend_name(r, (uint32_t)b),
                      (double)got[b] / (double)total);
    }
    ck_assert_int_eq(receivers, 9);
    ring_destroy(r);
    bset_deinit(&s);
}
END_TEST

START_TEST(test_fallback_equals_ring_without_backend)
{
    /* xxh3: a down backend's keys go where removing it would send them. */
    struct bset s;
    struct ring *r, *less;
    struct excl e = {{0}};
    uint32_t gone;

    bset_init(&s, "mc%u", 10, 1);
    r = mkring(RING_HASH_XXH3, 200, s.be, s.n);
    gone = find_backend(r, "mc7");
    excl_add(&e, gone);
    s.be[gone] = s.be[s.n - 1];
    less = mkring(RING_HASH_XXH3, 200, s.be, s.n - 1);
    for (unsigned k = 0; k < 50000; k++) {
        char key[32];
        size_t len = keyname(key, sizeof(key), k);
        uint32_t b = ring_route(r, key, len, excl_pred, &e);

        ck_assert_str_eq(ring_backend_name(r, b),
                         ring_backend_name(less, ring_lookup(less, key, len)));
    }
    ring_destroy(less);
    ring_destroy(r);
    bset_deinit(&s);
}
END_TEST

START_TEST(test_route_equals_first_of_walk)
{
    uint64_t seed = 7;

    for (int m = 0; m < 2; m++) {
        enum ring_hash hash = m == 0 ? RING_HASH_XXH3 : RING_HASH_KETAMA;
        struct bset s;
        struct ring *r;

        bset_init(&s, "node%u", 40, 1);
        r = mkring(hash, 64, s.be, s.n);
        for (int trial = 0; trial < 50; trial++) {
            struct excl e = {{0}};

            /* Refuse each backend with probability trial/50. */
            for (uint32_t b = 0; b < 40; b++) {
                seed = seed * 6364136223846793005ull + 1;
                if ((seed >> 33) % 50 < (uint64_t)trial) {
                    excl_add(&e, b);
                }
            }
            for (unsigned k = 0; k < 500; k++) {
                char key[32];
                size_t len = keyname(key, sizeof(key), k);
                uint32_t point = ring_point_at(r, ring_key_pos(r, key, len));
                uint32_t first;
                size_t n = ring_walk(r, point, excl_pred, &e, &first, 1);

                ck_assert_uint_eq(ring_route(r, key, len, excl_pred, &e),
                                  n == 1 ? first : RING_NONE);
            }
        }
        ring_destroy(r);
        bset_deinit(&s);
    }
}
END_TEST

START_TEST(test_walk_visits_every_backend_once)
{
    struct bset s;
    struct ring *r;
    uint32_t out[25];

    bset_init(&s, "mc%u", 25, 1);
    r = mkring(RING_HASH_XXH3, 30, s.be, s.n);
    for (unsigned k = 0; k < 2000; k++) {
        char key[32];
        size_t len = keyname(key, sizeof(key), k);
        uint32_t point = ring_point_at(r, ring_key_pos(r, key, len));
        bool seen[25] = {false};

        ck_assert_uint_eq(ring_walk(r, point, NULL, NULL, out, 25), 25);
        ck_assert_uint_eq(out[0], ring_lookup(r, key, len));
        for (size_t i = 0; i < 25; i++) {
            ck_assert(!seen[out[i]]);
            seen[out[i]] = true;
        }
        /* max bounds the output; the prefix is the same walk. */
        ck_assert_uint_eq(ring_walk(r, point, NULL, NULL, out, 3), 3);
        ck_assert_uint_eq(out[0], ring_lookup(r, key, len));
    }
    ck_assert_uint_eq(ring_walk(r, 0, NULL, NULL, out, 0), 0);
    ck_assert_uint_eq(ring_walk(r, ring_npoints(r), NULL, NULL, out, 25), 0);
    ck_assert_uint_eq(ring_route(r, "x", 1, refuse_all, NULL), RING_NONE);
    ring_destroy(r);
    bset_deinit(&s);
}
END_TEST

/* ---- sizes --------------------------------------------------------------- */

START_TEST(test_single_backend)
{
    for (int m = 0; m < 2; m++) {
        enum ring_hash hash = m == 0 ? RING_HASH_XXH3 : RING_HASH_KETAMA;
        struct ring_backend be = {"only", "10.0.0.9", 11211, 3.5};
        struct ring *r = mkring(hash, RING_DEFAULT_VNODES, &be, 1);
        uint32_t out[4];

        ck_assert_uint_eq(ring_nbackends(r), 1);
        ck_assert_uint_eq(ring_npoints(r),
                          m == 0 ? (uint32_t)lround(3.5 * RING_DEFAULT_VNODES)
                                 : 160);
        ck_assert(ring_backend_arc_share(r, 0) == 1.0);
        ck_assert(ring_backend_weight(r, 0) == 3.5);
        ck_assert_str_eq(ring_backend_name(r, 0), "only");
        for (unsigned k = 0; k < 1000; k++) {
            ck_assert_uint_eq(lookup_i(r, k), 0);
        }
        ck_assert_uint_eq(ring_walk(r, 5, NULL, NULL, out, 4), 1);
        ck_assert_uint_eq(out[0], 0);
        ck_assert_uint_eq(ring_route(r, "k", 1, refuse_all, NULL), RING_NONE);
        ring_destroy(r);
    }
}
END_TEST

START_TEST(test_one_point_ring)
{
    struct ring_backend be = {"p", "p", 1, 1};
    struct ring *r = mkring(RING_HASH_XXH3, 1, &be, 1);

    ck_assert_uint_eq(ring_npoints(r), 1);
    ck_assert(ring_backend_arc_share(r, 0) == 1.0);
    ck_assert_uint_eq(ring_point_at(r, 0), 0);
    ck_assert_uint_eq(ring_point_at(r, UINT64_MAX), 0);
    ring_destroy(r);
}
END_TEST

START_TEST(test_thousand_backends)
{
    for (int m = 0; m < 2; m++) {
        enum ring_hash hash = m == 0 ? RING_HASH_XXH3 : RING_HASH_KETAMA;
        struct bset s;
        struct ring *r;
        uint64_t t0;
        uint64_t total = 0;

        bset_init(&s, "memcached-%u.example.net", 1000, 1);
        t0 = util_now_ns();
        r = mkring(hash, RING_DEFAULT_VNODES, s.be, s.n);
        /* Generous: the bench measures ~50 ms optimised. */
        ck_assert_msg(util_now_ns() - t0 < 5000000000ull, "build too slow");
        for (uint32_t b = 0; b < 1000; b++) {
            total += ring_backend_npoints(r, b);
            ck_assert_uint_eq(ring_backend_npoints(r, b),
                              m == 0 ? RING_DEFAULT_VNODES : 160);
        }
        ck_assert_uint_eq(total, ring_npoints(r));
        check_sorted(r);
        check_lookup_semantics(r);
        check_arcs(r);
        for (unsigned k = 0; k < 10000; k++) {
            ck_assert_uint_lt(lookup_i(r, k), 1000);
        }
        ck_assert(ring_memory(r) >= (size_t)ring_npoints(r) * 16);
        ring_destroy(r);
        bset_deinit(&s);
    }
}
END_TEST

/* ---- bad input ------------------------------------------------------------
 */

static void
expect_fail(enum ring_hash hash, unsigned vnodes, const struct ring_backend *be,
            size_t n, const char *what)
{
    char err[256] = "";
    struct ring *r = ring_create(hash, vnodes, be, n, err, sizeof(err));

    ck_assert_msg(r == NULL, "%s: accepted", what);
    ck_assert_msg(err[0] != '\0', "%s: no message", what);
}

START_TEST(test_bad_input_rejected)
{
    struct ring_backend be[2] = {
        {"a", "h1", 11211, 1},
        {"b", "h2", 11211, 1},
    };
    struct ring_backend *many;

    expect_fail(RING_HASH_XXH3, 10, be, 0, "no backends");
    expect_fail(RING_HASH_XXH3, 0, be, 2, "vnodes 0");
    be[1].name = "a";
    expect_fail(RING_HASH_XXH3, 10, be, 2, "duplicate name");
    expect_fail(RING_HASH_KETAMA, 0, be, 2, "duplicate name, ketama");
    be[1].name = NULL;
    expect_fail(RING_HASH_XXH3, 10, be, 2, "no name");
    be[1].name = "";
    expect_fail(RING_HASH_XXH3, 10, be, 2, "empty name");
    be[1].name = "b";
    be[0].weight = 0;
    be[1].weight = 0;
    expect_fail(RING_HASH_XXH3, 10, be, 2, "every weight 0: no point");
    be[0].weight = 1;
    be[1].weight = -1;
    expect_fail(RING_HASH_KETAMA, 0, be, 2, "negative weight");
    be[1].weight = NAN;
    expect_fail(RING_HASH_XXH3, 10, be, 2, "weight nan");
    be[1].weight = 1;
    be[1].host = NULL;
    expect_fail(RING_HASH_KETAMA, 0, be, 2, "ketama without host");
    be[1].weight = 1e9;
    be[1].host = "h2";
    expect_fail(RING_HASH_XXH3, 1000, be, 2, "too many points");
    expect_fail((enum ring_hash)42, 10, be, 2, "unknown hash");
    many = util_xcalloc(RING_MAX_BACKENDS + 1, sizeof(*many));
    expect_fail(RING_HASH_XXH3, 1, many, RING_MAX_BACKENDS + 1,
                "too many backends");
    free(many);
}
END_TEST

/* ---- analyze ----------------------------------------------------------- */

/* A config with n backends "mc1".. and a ring built from it. */
struct cfg_fixture {
    struct config cfg;
    struct config_backend be[8];
    char names[8][24];
    struct ring *ring;
};

static void
cfg_fixture_init(struct cfg_fixture *f, enum ring_hash hash, size_t n)
{
    struct ring_backend rb[8];

    memset(f, 0, sizeof(*f));
    f->cfg.hash = hash;
    f->cfg.vnodes = 200;
    f->cfg.backends = f->be;
    f->cfg.nbackends = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(f->names[i], sizeof(f->names[i]), "mc%zu", i + 1);
        f->be[i].name = f->names[i];
        f->be[i].host = f->names[i];
        f->be[i].port = 11211;
        f->be[i].weight = i == 0 ? 2 : 1;
        rb[i].name = f->be[i].name;
        rb[i].host = f->be[i].host;
        rb[i].port = f->be[i].port;
        rb[i].weight = f->be[i].weight;
    }
    f->ring = mkring(hash, f->cfg.vnodes, rb, n);
}

static char *
capture_report(struct cfg_fixture *f, uint64_t nsample, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    char err[256] = "";

    ck_assert(out != NULL);
    ck_assert_msg(analyze_report(&f->cfg, f->ring, nsample, json, out, err,
                                 sizeof(err)) == 0,
                  "analyze_report: %s", err);
    fclose(out);
    return buf;
}

START_TEST(test_analyze_route_lists_all_backends)
{
    struct cfg_fixture f;
    char *keys[] = {"alpha", "beta"};
    char *buf = NULL;
    size_t len = 0;
    FILE *out;
    char *line, *save = NULL;
    int nlines = 0;

    cfg_fixture_init(&f, RING_HASH_XXH3, 5);
    out = open_memstream(&buf, &len);
    analyze_route(f.ring, NULL, keys, 2, out);
    fclose(out);
    for (line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), nlines++) {
        char *tok, *save2 = NULL;
        int ntok = 0;
        bool seen[5] = {false};

        for (tok = strtok_r(line, " ", &save2); tok != NULL;
             tok = strtok_r(NULL, " ", &save2), ntok++) {
            if (ntok == 0) {
                ck_assert_str_eq(tok, keys[nlines]);
            } else {
                uint32_t b = find_backend(f.ring, tok);

                ck_assert(!seen[b]);
                seen[b] = true;
                if (ntok == 1) {
                    ck_assert_uint_eq(b, ring_lookup(f.ring, keys[nlines],
                                                     strlen(keys[nlines])));
                }
            }
        }
        ck_assert_int_eq(ntok, 6);
    }
    ck_assert_int_eq(nlines, 2);
    free(buf);
    ring_destroy(f.ring);
}
END_TEST

START_TEST(test_analyze_report_text_and_json)
{
    for (int m = 0; m < 2; m++) {
        struct cfg_fixture f;
        char *text, *json;

        cfg_fixture_init(&f, m == 0 ? RING_HASH_XXH3 : RING_HASH_KETAMA, 4);
        text = capture_report(&f, 20000, false);
        json = capture_report(&f, 20000, true);
        for (size_t i = 0; i < 4; i++) {
            ck_assert_ptr_nonnull(strstr(text, f.names[i]));
        }
        ck_assert_ptr_nonnull(strstr(text, "coefficient of variation"));
        ck_assert_ptr_nonnull(strstr(text, "\"new\""));
        ck_assert(json[0] == '{');
        ck_assert_ptr_nonnull(strstr(json, "\"moved_if_added\": "));
        ck_assert_ptr_nonnull(strstr(json, "\"name\": \"mc4\""));
        free(text);
        free(json);
        ring_destroy(f.ring);
    }
}
END_TEST

START_TEST(test_analyze_json_escapes_names)
{
    struct cfg_fixture f;
    struct ring_backend rb = {"a\"b\\c", "h", 11211, 1};
    json_error_t jerr;
    json_t *doc, *e;
    char *json;

    cfg_fixture_init(&f, RING_HASH_XXH3, 1);
    ring_destroy(f.ring);
    f.be[0].name = (char *)rb.name;
    f.ring = mkring(RING_HASH_XXH3, f.cfg.vnodes, &rb, 1);
    json = capture_report(&f, 100, true);
    ck_assert_ptr_nonnull(strstr(json, "\"a\\\"b\\\\c\""));
    doc = json_loads(json, 0, &jerr);
    ck_assert_msg(doc != NULL, "%s: %s", jerr.text, json);
    e = json_array_get(json_object_get(doc, "backends"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "name")), rb.name);
    /* The only backend removed: every key loses its home. */
    ck_assert(json_number_value(json_object_get(e, "moved_if_removed")) ==
              1.0);
    json_decref(doc);
    free(json);
    ring_destroy(f.ring);
}
END_TEST

START_TEST(test_analyze_report_rejects_no_samples)
{
    struct cfg_fixture f;
    char err[256] = "";
    FILE *out = fopen("/dev/null", "w");

    cfg_fixture_init(&f, RING_HASH_XXH3, 2);
    ck_assert_int_eq(
        analyze_report(&f.cfg, f.ring, 0, false, out, err, sizeof(err)), -1);
    ck_assert(err[0] != '\0');
    f.cfg.nbackends = 1; /* not the config the ring was built from */
    ck_assert_int_eq(
        analyze_report(&f.cfg, f.ring, 10, false, out, err, sizeof(err)), -1);
    fclose(out);
    ring_destroy(f.ring);
}
END_TEST

START_TEST(test_analyze_summary_one_line)
{
    struct cfg_fixture f;
    char *buf = NULL;
    size_t len = 0;
    FILE *out;

    cfg_fixture_init(&f, RING_HASH_XXH3, 3);
    out = open_memstream(&buf, &len);
    analyze_summary(&f.cfg, f.ring, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(buf, "xxh3"));
    ck_assert_ptr_nonnull(strstr(buf, "3 backends, 800 points"));
    ck_assert_ptr_nonnull(strchr(buf, '\n'));
    ck_assert(strchr(buf, '\n')[1] == '\0');
    free(buf);
    ring_destroy(f.ring);
}
END_TEST

static Suite *
ring_suite(int ngolden)
{
    Suite *s = suite_create("ring");
    TCase *tc;

    tc = tcase_create("ketama_matches_libmemcached");
    tcase_add_loop_test(tc, test_ketama_golden_vector, 0, ngolden);
    tcase_add_test(tc, test_ketama_golden_file_is_complete);
    tcase_add_test(tc, test_ketama_point_counts);
    tcase_add_test(tc, test_ketama_point_strings);
    suite_add_tcase(s, tc);

    tc = tcase_create("xxh3_points_hash_names");
    tcase_add_test(tc, test_xxh3_point_strings);
    tcase_add_test(tc, test_xxh3_point_counts_round_weights);
    suite_add_tcase(s, tc);

    tc = tcase_create("lookup_is_first_point_at_or_after");
    tcase_add_test(tc, test_points_sorted_and_lookup_exact);
    tcase_add_test(tc, test_ties_ordered_by_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("ring_independent_of_input_order");
    tcase_add_test(tc, test_shuffled_input_same_owners_xxh3);
    tcase_add_test(tc, test_shuffled_input_same_owners_ketama);
    suite_add_tcase(s, tc);

    tc = tcase_create("weights_honoured");
    tcase_add_test(tc, test_weight_two_gets_twice_xxh3);
    tcase_add_test(tc, test_weight_two_gets_twice_ketama);
    tcase_add_test(tc, test_default_vnodes_spread);
    suite_add_tcase(s, tc);

    tc = tcase_create("minimal_movement");
    tcase_add_test(tc, test_removal_moves_only_its_keys);
    tcase_add_test(tc, test_addition_moves_keys_only_to_newcomer);
    tcase_add_test(tc, test_weight_steps_move_keys_only_to_newcomer);
    tcase_add_test(tc, test_compare_exact_moved_share);
    tcase_add_test(tc, test_compare_same_ring_moves_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("fallback_walk");
    tcase_add_test(tc, test_fallback_never_returns_excluded);
    tcase_add_test(tc, test_fallback_spreads_over_successors);
    tcase_add_test(tc, test_fallback_equals_ring_without_backend);
    tcase_add_test(tc, test_route_equals_first_of_walk);
    tcase_add_test(tc, test_walk_visits_every_backend_once);
    /* Many lookups: under the sanitizers on a loaded machine one took
     * more than Check's default 4 s. */
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("sizes");
    tcase_add_test(tc, test_single_backend);
    tcase_add_test(tc, test_one_point_ring);
    tcase_add_test(tc, test_thousand_backends);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input_rejected");
    tcase_add_test(tc, test_bad_input_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("analyze_tools");
    tcase_add_test(tc, test_analyze_route_lists_all_backends);
    tcase_add_test(tc, test_analyze_report_text_and_json);
    tcase_add_test(tc, test_analyze_json_escapes_names);
    tcase_add_test(tc, test_analyze_report_rejects_no_samples);
    tcase_add_test(tc, test_analyze_summary_one_line);
    tcase_add_test(tc, test_ketama_key_pos_is_md5_for_every_length);
    tcase_add_test(tc, test_hash_tag_places_by_the_tag);
    tcase_add_test(tc, test_derived_key_placed_as_its_base);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    int ngolden = golden_count();
    SRunner *sr;
    int failed;

    if (ngolden == 0) {
        fprintf(stderr,
                "check_ring: no rows in %s/" GOLDEN_FILE " (set TESTDATA)\n",
                getenv("TESTDATA") != NULL ? getenv("TESTDATA") : "tests/data");
    }
    sr = srunner_create(ring_suite(ngolden));
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
