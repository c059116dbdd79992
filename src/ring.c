/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring: the weighted virtual-node consistent-hash ring.
 *
 * Layout of a built ring:
 *
 *   points[]   every point, sorted by (pos, name rank of its backend)
 *   index[]    (1 << index_bits) + 1 entries: index[t] is the first point
 *              whose top index_bits bits of pos (within pos_bits) are >= t
 *   backends[] name, weight, point count and arc share of each backend,
 *              in the caller's order (the caller's indices)
 *
 * A lookup hashes the key, reads index[t] and index[t + 1] for the key's
 * top bits t and binary-searches that bucket only; a bucket holds about four
 * points, so a lookup costs at most two cache misses (the index, small
 * enough to stay cached, and one bucket) however large the ring is. When
 * every point of the bucket is below the key, the answer is index[t + 1],
 * the first point of a later bucket, or npoints, which wraps to 0.
 *
 * Invariants: the ring never changes after ring_create() returns, so any
 * number of threads may read it without locks; positions are < 2^pos_bits
 * (64 in xxh3 mode, 32 in ketama mode); points with equal positions are
 * ordered by backend name (names are unique), so the ring depends on the
 * configuration only, never on the order of the array given to
 * ring_create(). A backend of weight 0 (one a paced move is bringing in or
 * taking out), or a ketama backend of tiny weight, owns no point at all:
 * lookups and walks never return it.
 *
 * The sort is a counting sort on the index bits (which also fills index[])
 * followed by an insertion sort of each bucket, so building a ring of a
 * million points takes a few tens of milliseconds.
 */
#include "autoconf.h"

#include <assert.h>
#include <math.h>
#include <md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ring.h"

#define RING_INDEX_MAX_BITS 24
/*
 * About 2^RING_INDEX_SLACK points per index bucket: one byte of index per
 * point, so the index of a 1M-point ring (1 MiB) stays in L2 and a bucket
 * is one or two cache lines. Measured best of 1, 2, 4 and 8 points per
 * bucket (bench/README.md).
 */
#define RING_INDEX_SLACK 2
/* Buckets longer than this are sorted with qsort(), not insertion sort. */
#define RING_BUCKET_QSORT 32
/* libmemcached MEMCACHED_POINTS_PER_SERVER_KETAMA, twemproxy's alike. */
#define RING_KETAMA_POINTS 160
#define RING_KETAMA_PER_HASH 4
#define RING_KETAMA_DEFAULT_PORT 11211

/* One backend as the ring keeps it; owned by struct ring. */
struct ring_member {
    char *name;
    double weight;
    uint32_t npoints;
    uint32_t rank; /* position of name in the sorted names */
    double arc_share;
};

struct ring {
    enum ring_hash hash;
    uint32_t nbackends;
    uint32_t nlive; /* backends owning at least one point */
    uint32_t npoints;
    unsigned pos_bits;    /* 64 (xxh3) or 32 (ketama) */
    unsigned index_shift; /* pos >> index_shift = bucket */
    unsigned index_bits;
    struct ring_point *points; /* npoints, sorted */
    uint32_t *index;           /* (1 << index_bits) + 1 */
    struct ring_member *backends;
    char tag[2];               /* hash tag: open, close; tag[0] 0: none */
    bool derived;              /* derived keys placed as their base */
};

/* Sort entry for ranking backend names. */
struct ring_name_ref {
    const char *name;
    uint32_t idx;
};

static int
ring_name_ref_cmp(const void *a, const void *b)
{
    const struct ring_name_ref *x = a;
    const struct ring_name_ref *y = b;

    return strcmp(x->name, y->name);
}

/* Point order: position, then backend name rank. */
static inline bool
ring_point_less(const struct ring_point *a, const struct ring_point *b,
                const struct ring_member *m)
{
    if (a->pos != b->pos) {
        return a->pos < b->pos;
    }
    return m[a->backend].rank < m[b->backend].rank;
}

/*
 * qsort() has no context argument, so a long bucket (only ever seen with
 * colliding positions) is sorted as (pos, rank, backend) triples.
 */
struct ring_rank_point {
    uint64_t pos;
    uint32_t rank;
    uint32_t backend;
};

static int
ring_rank_point_cmp(const void *a, const void *b)
{
    const struct ring_rank_point *x = a;
    const struct ring_rank_point *y = b;

    if (x->pos != y->pos) {
        return x->pos < y->pos ? -1 : 1;
    }
    if (x->rank != y->rank) {
        return x->rank < y->rank ? -1 : 1;
    }
    return 0;
}

static int
ring_sort_bucket(struct ring_point *p, size_t n, const struct ring_member *m)
{
    if (n <= RING_BUCKET_QSORT) {
        for (size_t i = 1; i < n; i++) {
            struct ring_point v = p[i];
            size_t j = i;

            while (j > 0 && ring_point_less(&v, &p[j - 1], m)) {
                p[j] = p[j - 1];
                j--;
            }
            p[j] = v;
        }
        return 0;
    }

    struct ring_rank_point *tmp = malloc(n * sizeof(*tmp));

    if (tmp == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        tmp[i].pos = p[i].pos;
        tmp[i].rank = m[p[i].backend].rank;
        tmp[i].backend = p[i].backend;
    }
    qsort(tmp, n, sizeof(*tmp), ring_rank_point_cmp);
    for (size_t i = 0; i < n; i++) {
        p[i].pos = tmp[i].pos;
        p[i].backend = tmp[i].backend;
    }
    free(tmp);
    return 0;
}

/*
 * Points of a ketama server, computed in float exactly as libmemcached
 * (hosts.cc, weighted ketama) and twemproxy (nc_ketama.c) do it, so that
 * rounding matches theirs bit for bit.
 */
static uint32_t
ring_ketama_npoints(double weight, double total, uint32_t n)
{
    float pct = (float)weight / (float)total;
    float x = pct * (float)RING_KETAMA_POINTS;

    x = x / (float)RING_KETAMA_PER_HASH;
    x = x * (float)n;
    x = (float)((double)x + 0.0000000001);
    return (uint32_t)floorf(x) * RING_KETAMA_PER_HASH;
}

static uint32_t
ring_ketama_word(const uint8_t *d, unsigned k)
{
    return (uint32_t)d[3 + 4 * k] << 24 | (uint32_t)d[2 + 4 * k] << 16 |
           (uint32_t)d[1 + 4 * k] << 8 | (uint32_t)d[4 * k];
}

/*
 * The first little-endian word of MD5(s). A key of up to 55 bytes pads to
 * a single block, which is built here and given to libmd's MD5Transform:
 * the same digest as MD5Init/Update/Final (check_ring compares them for
 * every length), for about half the instructions.
 */
static uint32_t
ring_md5_pos(const void *s, size_t len)
{
    MD5_CTX ctx;
    uint8_t d[MD5_DIGEST_LENGTH];

    if (len <= MD5_BLOCK_LENGTH - 9) {
        uint32_t st[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
        uint8_t block[MD5_BLOCK_LENGTH] = {0};
        uint64_t bits = (uint64_t)len * 8;

        memcpy(block, s, len);
        block[len] = 0x80;
        for (unsigned i = 0; i < 8; i++) {
            block[MD5_BLOCK_LENGTH - 8 + i] = (uint8_t)(bits >> (8 * i));
        }
        MD5Transform(st, block);
        return st[0];
    }
    MD5Init(&ctx);
    MD5Update(&ctx, s, len);
    MD5Final(d, &ctx);
    return ring_ketama_word(d, 0);
}

/* Writes v in decimal at s (room for 10 digits); returns the length. */
static size_t
ring_utoa(uint32_t v, char *s)
{
    char d[10];
    size_t n = 0;

    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        s[i] = d[n - 1 - i];
    }
    return n;
}

/* Writes the points of backend b at out; returns how many. */
static uint32_t
ring_make_points(enum ring_hash hash, const struct ring_backend *be, uint32_t b,
                 uint32_t count, struct ring_point *out, char *buf,
                 size_t buflen)
{
    uint32_t k = 0;

    if (hash == RING_HASH_XXH3) {
        size_t base = strlen(be->name);

        /* "NAME-i"; snprintf() per point would dominate the build. */
        assert(base + 12 <= buflen);
        memcpy(buf, be->name, base);
        buf[base++] = '-';
        for (uint32_t i = 0; i < count; i++) {
            size_t len = base + ring_utoa(i, buf + base);

            out[k].pos = XXH3_64bits(buf, len);
            out[k].backend = b;
            k++;
        }
        return k;
    }

    for (uint32_t j = 0; j < count / RING_KETAMA_PER_HASH; j++) {
        MD5_CTX ctx;
        uint8_t d[MD5_DIGEST_LENGTH];
        int len;

        if (be->port == RING_KETAMA_DEFAULT_PORT) {
            len = snprintf(buf, buflen, "%s-%u", be->host, j);
        } else {
            len = snprintf(buf, buflen, "%s:%u-%u", be->host,
                           (unsigned)be->port, j);
        }
        assert(len > 0 && (size_t)len < buflen);
        MD5Init(&ctx);
        MD5Update(&ctx, (const uint8_t *)buf, (size_t)len);
        MD5Final(d, &ctx);
        for (unsigned x = 0; x < RING_KETAMA_PER_HASH; x++) {
            out[k].pos = ring_ketama_word(d, x);
            out[k].backend = b;
            k++;
        }
    }
    return k;
}

static int
ring_check_backends(enum ring_hash hash, unsigned vnodes,
                    const struct ring_backend *backends, size_t n, char *err,
                    size_t errlen)
{
    if (hash != RING_HASH_XXH3 && hash != RING_HASH_KETAMA) {
        snprintf(err, errlen, "unknown hash kind %d", (int)hash);
        return -1;
    }
    if (n == 0) {
        snprintf(err, errlen, "a ring needs at least one backend");
        return -1;
    }
    if (n > RING_MAX_BACKENDS) {
        snprintf(err, errlen, "%zu backends, at most %u are supported", n,
                 (unsigned)RING_MAX_BACKENDS);
        return -1;
    }
    if (hash == RING_HASH_XXH3 && vnodes == 0) {
        snprintf(err, errlen, "vnodes must be at least 1");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct ring_backend *be = &backends[i];

        if (be->name == NULL || be->name[0] == '\0') {
            snprintf(err, errlen, "backend %zu has no name", i);
            return -1;
        }
        if (!isfinite(be->weight) || be->weight < 0) {
            snprintf(err, errlen, "backend %s: weight must be >= 0", be->name);
            return -1;
        }
        if (hash == RING_HASH_KETAMA &&
            (be->host == NULL || be->host[0] == '\0')) {
            snprintf(err, errlen, "backend %s has no host", be->name);
            return -1;
        }
    }
    return 0;
}

/* Fills rank and checks names are unique. */
static int
ring_rank_names(struct ring *ring, char *err, size_t errlen)
{
    uint32_t n = ring->nbackends;
    struct ring_name_ref *refs = malloc(n * sizeof(*refs));

    if (refs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        refs[i].name = ring->backends[i].name;
        refs[i].idx = i;
    }
    qsort(refs, n, sizeof(*refs), ring_name_ref_cmp);
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(refs[i - 1].name, refs[i].name) == 0) {
            snprintf(err, errlen, "duplicate backend name %s", refs[i].name);
            free(refs);
            return -1;
        }
        ring->backends[refs[i].idx].rank = i;
    }
    free(refs);
    return 0;
}

/* Point counts of every backend; fails if the total is out of range. */
static int
ring_count_points(struct ring *ring, unsigned vnodes,
                  const struct ring_backend *backends, char *err, size_t errlen)
{
    uint64_t total = 0;
    double wsum = 0;

    for (uint32_t i = 0; i < ring->nbackends; i++) {
        wsum += backends[i].weight;
    }
    for (uint32_t i = 0; i < ring->nbackends; i++) {
        double c;

        if (ring->hash == RING_HASH_XXH3) {
            /* Weight 0 (a backend a paced move brings in or takes out)
             * owns no point; any other weight owns at least one. */
            c = round((double)vnodes * backends[i].weight);
            c = c < 1 && backends[i].weight > 0 ? 1 : c;
        } else {
            c = ring_ketama_npoints(backends[i].weight, wsum, ring->nbackends);
        }
        if (c > RING_MAX_POINTS) {
            snprintf(err, errlen, "backend %s: too many points",
                     backends[i].name);
            return -1;
        }
        ring->backends[i].npoints = (uint32_t)c;
        total += (uint64_t)c;
    }
    if (total == 0 || total > RING_MAX_POINTS) {
        snprintf(err, errlen, "%llu ring points, must be 1..%u",
                 (unsigned long long)total, (unsigned)RING_MAX_POINTS);
        return -1;
    }
    ring->npoints = (uint32_t)total;
    return 0;
}

/* Computes every point, sorts them and fills the index. */
static int
ring_build_points(struct ring *ring, const struct ring_backend *backends,
                  char *err, size_t errlen)
{
    uint32_t n = ring->nbackends;
    uint32_t np = ring->npoints;
    size_t nbuckets;
    size_t buflen = 0;
    uint32_t *byrank = NULL;
    uint32_t *cursor = NULL;
    struct ring_point *tmp = NULL;
    char *buf = NULL;
    uint32_t k = 0;
    int rc = -1;

    ring->index_bits = 1;
    while (ring->index_bits < RING_INDEX_MAX_BITS &&
           ((size_t)1 << ring->index_bits) < (np >> RING_INDEX_SLACK)) {
        ring->index_bits++;
    }
    ring->index_shift = ring->pos_bits - ring->index_bits;
    nbuckets = (size_t)1 << ring->index_bits;

    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(ring->hash == RING_HASH_XXH3 ? backends[i].name
                                                       : backends[i].host);

        buflen = l > buflen ? l : buflen;
    }
    buflen += 32; /* ":65535-4294967295" and the NUL */

    ring->points = malloc((size_t)np * sizeof(*ring->points));
    ring->index = calloc(nbuckets + 1, sizeof(*ring->index));
    tmp = malloc((size_t)np * sizeof(*tmp));
    cursor = malloc(nbuckets * sizeof(*cursor));
    byrank = malloc(n * sizeof(*byrank));
    buf = malloc(buflen);
    if (ring->points == NULL || ring->index == NULL || tmp == NULL ||
        cursor == NULL || byrank == NULL || buf == NULL) {
        snprintf(err, errlen, "out of memory for %u ring points", np);
        goto out;
    }

    /* Generated in name order, so the stable scatter keeps ties sorted. */
    for (uint32_t i = 0; i < n; i++) {
        byrank[ring->backends[i].rank] = i;
    }
    for (uint32_t r = 0; r < n; r++) {
        uint32_t b = byrank[r];

        k += ring_make_points(ring->hash, &backends[b], b,
                              ring->backends[b].npoints, tmp + k, buf, buflen);
    }
    assert(k == np);

    for (uint32_t i = 0; i < np; i++) {
        ring->index[(tmp[i].pos >> ring->index_shift) + 1]++;
    }
    for (size_t t = 0; t < nbuckets; t++) {
        ring->index[t + 1] += ring->index[t];
        cursor[t] = ring->index[t];
    }
    for (uint32_t i = 0; i < np; i++) {
        ring->points[cursor[tmp[i].pos >> ring->index_shift]++] = tmp[i];
    }
    for (size_t t = 0; t < nbuckets; t++) {
        uint32_t lo = ring->index[t];
        uint32_t hi = ring->index[t + 1];

        if (hi - lo > 1 &&
            ring_sort_bucket(ring->points + lo, hi - lo, ring->backends) != 0) {
            snprintf(err, errlen, "out of memory sorting the ring");
            goto out;
        }
    }
    rc = 0;

out:
    free(buf);
    free(byrank);
    free(cursor);
    free(tmp);
    return rc;
}

/*
 * Arc of a point: the positions (previous point, this point]. Arcs are
 * summed exactly per backend (a 64-bit sum plus its carries, since a whole
 * xxh3 circle is 2^64), so a lone backend's share is exactly 1.
 */
static int
ring_compute_arcs(struct ring *ring, char *err, size_t errlen)
{
    const struct ring_point *p = ring->points;
    uint32_t np = ring->npoints;
    uint64_t mask =
        ring->pos_bits == 64 ? UINT64_MAX : ((uint64_t)1 << ring->pos_bits) - 1;
    uint64_t *lo = calloc(ring->nbackends, sizeof(*lo));
    uint32_t *carry = calloc(ring->nbackends, sizeof(*carry));

    if (lo == NULL || carry == NULL) {
        free(lo);
        free(carry);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < np; i++) {
        uint32_t b = p[i].backend;
        uint64_t arc;

        if (i > 0) {
            arc = p[i].pos - p[i - 1].pos;
        } else {
            /* (last, top] plus [0, first], wrapping. */
            arc = (p[0].pos - p[np - 1].pos) & mask;
            if (arc == 0) {
                /* One position for all points: the whole circle. */
                if (ring->pos_bits == 64) {
                    carry[b]++;
                } else {
                    arc = mask + 1;
                }
            }
        }
        lo[b] += arc;
        carry[b] += lo[b] < arc;
    }
    for (uint32_t b = 0; b < ring->nbackends; b++) {
        ring->backends[b].arc_share =
            ldexp((double)carry[b], 64 - (int)ring->pos_bits) +
            ldexp((double)lo[b], -(int)ring->pos_bits);
        if (ring->backends[b].npoints > 0) {
            ring->nlive++;
        }
    }
    free(lo);
    free(carry);
    return 0;
}

struct ring *
ring_create(enum ring_hash hash, unsigned vnodes,
            const struct ring_backend *backends, size_t n, char *err,
            size_t errlen)
{
    struct ring *ring;

    if (ring_check_backends(hash, vnodes, backends, n, err, errlen) != 0) {
        return NULL;
    }
    ring = calloc(1, sizeof(*ring));
    if (ring == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ring->hash = hash;
    ring->nbackends = (uint32_t)n;
    ring->pos_bits = hash == RING_HASH_XXH3 ? 64 : 32;
    ring->backends = calloc(n, sizeof(*ring->backends));
    if (ring->backends == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        ring->backends[i].name = strdup(backends[i].name);
        ring->backends[i].weight = backends[i].weight;
        if (ring->backends[i].name == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (ring_rank_names(ring, err, errlen) != 0 ||
        ring_count_points(ring, vnodes, backends, err, errlen) != 0 ||
        ring_build_points(ring, backends, err, errlen) != 0 ||
        ring_compute_arcs(ring, err, errlen) != 0) {
        goto fail;
    }
    return ring;

fail:
    ring_destroy(ring);
    return NULL;
}

void
ring_destroy(struct ring *ring)
{
    if (ring == NULL) {
        return;
    }
    if (ring->backends != NULL) {
        for (uint32_t i = 0; i < ring->nbackends; i++) {
            free(ring->backends[i].name);
        }
    }
    free(ring->backends);
    free(ring->points);
    free(ring->index);
    free(ring);
}

enum ring_hash
ring_hash_kind(const struct ring *ring)
{
    return ring->hash;
}

uint32_t
ring_nbackends(const struct ring *ring)
{
    return ring->nbackends;
}

uint32_t
ring_npoints(const struct ring *ring)
{
    return ring->npoints;
}

const struct ring_point *
ring_points(const struct ring *ring)
{
    return ring->points;
}

uint32_t
ring_backend_npoints(const struct ring *ring, uint32_t b)
{
    assert(b < ring->nbackends);
    return ring->backends[b].npoints;
}

const char *
ring_backend_name(const struct ring *ring, uint32_t b)
{
    assert(b < ring->nbackends);
    return ring->backends[b].name;
}

double
ring_backend_weight(const struct ring *ring, uint32_t b)
{
    assert(b < ring->nbackends);
    return ring->backends[b].weight;
}

double
ring_backend_arc_share(const struct ring *ring, uint32_t b)
{
    assert(b < ring->nbackends);
    return ring->backends[b].arc_share;
}

size_t
ring_memory(const struct ring *ring)
{
    size_t bytes = sizeof(*ring);

    bytes += (size_t)ring->npoints * sizeof(*ring->points);
    bytes += (((size_t)1 << ring->index_bits) + 1) * sizeof(*ring->index);
    bytes += (size_t)ring->nbackends * sizeof(*ring->backends);
    for (uint32_t i = 0; i < ring->nbackends; i++) {
        bytes += strlen(ring->backends[i].name) + 1;
    }
    return bytes;
}

void
ring_set_hash_tag(struct ring *ring, char open, char close)
{
    ring->tag[0] = open;
    ring->tag[1] = close;
}

void
ring_set_derived(struct ring *ring, bool on)
{
    ring->derived = on;
}

void
ring_hashed_part(const struct ring *ring, const char **key, size_t *len)
{
    const char *a, *b;

    if (ring->derived) {
        *len = ring_base_len(*key, *len);
    }
    if (ring->tag[0] == '\0' ||
        (a = memchr(*key, ring->tag[0], *len)) == NULL ||
        (b = memchr(a + 1, ring->tag[1],
                    *len - (size_t)(a + 1 - *key))) == NULL ||
        b == a + 1) {
        return; /* no tag, or an empty one: the whole key */
    }
    *len = (size_t)(b - a - 1);
    *key = a + 1;
}

uint64_t
ring_key_pos(const struct ring *ring, const char *key, size_t len)
{
    ring_hashed_part(ring, &key, &len);
    if (ring->hash == RING_HASH_XXH3) {
        return XXH3_64bits(key, len);
    }
    return ring_md5_pos(key, len);
}

uint32_t
ring_point_at(const struct ring *ring, uint64_t pos)
{
    const struct ring_point *p = ring->points;
    uint64_t t = pos >> ring->index_shift;
    uint32_t lo, hi;

    if (t >= ((uint64_t)1 << ring->index_bits)) {
        /* Only a ketama caller passing a position above 2^32. */
        return 0;
    }
    lo = ring->index[t];
    hi = ring->index[t + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (p[mid].pos < pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo == ring->npoints ? 0 : lo;
}

uint32_t
ring_lookup(const struct ring *ring, const char *key, size_t len)
{
    return ring->points[ring_point_at(ring, ring_key_pos(ring, key, len))]
        .backend;
}

/*
 * The walk behind ring_walk() and ring_route(). A backend is offered to
 * pred once, at its first point after the start; skip (or RING_NONE) is
 * treated as already refused. The walk ends after max accepted backends,
 * after every backend on the ring was seen, or after one full turn. The
 * "seen" bitmap lives on the stack (RING_MAX_BACKENDS bits) and only the
 * words in use are cleared, so the walk never allocates.
 */
static size_t
ring_walk_from(const struct ring *ring, uint32_t point, uint32_t skip,
               ring_pred_fn pred, void *arg, uint32_t *out, size_t max)
{
    uint64_t seen[RING_MAX_BACKENDS / 64];
    uint32_t nseen = 0;
    size_t nout = 0;
    uint32_t i = point;

    if (max == 0 || point >= ring->npoints) {
        return 0;
    }
    memset(seen, 0, ((ring->nbackends + 63) / 64) * sizeof(seen[0]));
    if (skip != RING_NONE) {
        seen[skip / 64] |= (uint64_t)1 << (skip % 64);
        nseen++;
        if (nseen == ring->nlive) {
            return 0;
        }
    }
    for (uint32_t step = 0; step < ring->npoints; step++) {
        uint32_t b = ring->points[i].backend;
        uint64_t bit = (uint64_t)1 << (b % 64);

        if ((seen[b / 64] & bit) == 0) {
            seen[b / 64] |= bit;
            nseen++;
            if (pred == NULL || pred(b, arg)) {
                out[nout++] = b;
                if (nout == max) {
                    break;
                }
            }
            if (nseen == ring->nlive) {
                break;
            }
        }
        i = i + 1 == ring->npoints ? 0 : i + 1;
    }
    return nout;
}

size_t
ring_walk(const struct ring *ring, uint32_t point, ring_pred_fn pred, void *arg,
          uint32_t *out, size_t max)
{
    return ring_walk_from(ring, point, RING_NONE, pred, arg, out, max);
}

uint32_t
ring_route(const struct ring *ring, const char *key, size_t len,
           ring_pred_fn pred, void *arg)
{
    uint32_t point = ring_point_at(ring, ring_key_pos(ring, key, len));
    uint32_t b = ring->points[point].backend;

    if (pred == NULL || pred(b, arg)) {
        return b;
    }
    /* Slow path: walk on from the owner, which pred has refused already. */
    if (ring_walk_from(ring, point, b, pred, arg, &b, 1) == 1) {
        return b;
    }
    return RING_NONE;
}

/* The first point of ring at or after *i whose position is >= pos (it may
 * be npoints: wraps to 0); *i only moves forward. */
static uint32_t
ring_owner_from(const struct ring *ring, uint32_t *i, uint64_t pos)
{
    while (*i < ring->npoints && ring->points[*i].pos < pos) {
        (*i)++;
    }
    return ring->points[*i < ring->npoints ? *i : 0].backend;
}

int
ring_compare(const struct ring *a, const struct ring *b, ring_arc_fn fn,
             void *arg)
{
    uint32_t ia = 0, ib = 0;
    uint64_t prev = 0;
    double scale, first = 1.0;

    if (a->pos_bits != b->pos_bits) {
        return -1;
    }
    scale = ldexp(1.0, -(int)a->pos_bits);
    /*
     * The arcs end at the points of either ring, in order. The owner of
     * (prev, pos] is the first point at or after pos in each ring; the
     * arc before the first point and after the last is owned by point 0.
     */
    for (;;) {
        uint64_t pa = ia < a->npoints ? a->points[ia].pos : UINT64_MAX;
        uint64_t pb = ib < b->npoints ? b->points[ib].pos : UINT64_MAX;
        uint64_t pos = pa < pb ? pa : pb;
        uint32_t oa, ob;

        if (ia >= a->npoints && ib >= b->npoints) {
            break;
        }
        oa = ring_owner_from(a, &ia, pos);
        ob = ring_owner_from(b, &ib, pos);
        /* The first arc, [0, pos], holds pos + 1 positions. */
        fn(oa, ob, ((double)(pos - prev) + first) * scale, arg);
        first = 0.0;
        prev = pos;
        /* Past every point at pos, in both rings. */
        while (ia < a->npoints && a->points[ia].pos == pos) {
            ia++;
        }
        while (ib < b->npoints && b->points[ib].pos == pos) {
            ib++;
        }
    }
    /* After the last point: wraps to the first one of each ring. */
    if (a->pos_bits == 64) {
        fn(a->points[0].backend, b->points[0].backend,
           (double)(UINT64_MAX - prev) * scale, arg);
    } else {
        fn(a->points[0].backend, b->points[0].backend,
           (double)((((uint64_t)1 << a->pos_bits) - 1) - prev) * scale, arg);
    }
    return 0;
}

struct ring_moved {
    const struct ring *a, *b;
    double share;
};

static void
ring_moved_arc(uint32_t ia, uint32_t ib, double share, void *arg)
{
    struct ring_moved *m = arg;

    if (strcmp(m->a->backends[ia].name, m->b->backends[ib].name) != 0) {
        m->share += share;
    }
}

double
ring_moved_share(const struct ring *a, const struct ring *b)
{
    struct ring_moved m = {a, b, 0.0};

    return ring_compare(a, b, ring_moved_arc, &m) == 0 ? m.share : NAN;
}
