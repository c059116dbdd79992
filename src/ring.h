/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ring: the weighted virtual-node consistent-hash ring.
 *
 * A ring is built once from the configured backends and never changes
 * afterwards; it is shared read-only by every thread. Two point schemes:
 *
 *   RING_HASH_XXH3    native: backend NAME gets max(1, round(vnodes * w))
 *                     points XXH3_64bits("NAME-i"); key position is
 *                     XXH3_64bits(key).
 *   RING_HASH_KETAMA  libmemcached weighted ketama (twemproxy hash: md5):
 *                     floor(w / sum(w) * 40 * n + 1e-10) * 4 points, four
 *                     per MD5 digest of "host-N" (port 11211) or
 *                     "host:port-N"; key position is the first four bytes
 *                     of MD5(key), little-endian.
 *
 * Backends are identified by their index in the array given to
 * ring_create(). Points are sorted by position, ties by backend name, so the
 * ring does not depend on the order of that array beyond the indices.
 */
#ifndef MCRING_RING_H
#define MCRING_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_NONE UINT32_MAX
/*
 * Default points per unit of weight in xxh3 mode: the smallest value that
 * kept 10 equal backends within a coefficient of variation of 0.05 and a
 * max/mean share of 1.10 for every one of 2000 naming schemes tried (1000
 * failed 0.6% of them). Costs 20 KiB of points per backend; see
 * bench/README.md.
 */
#define RING_DEFAULT_VNODES 1280
/*
 * Limits enforced by ring_create(). RING_MAX_BACKENDS sizes the "already
 * seen" bitmap that the fallback walk keeps on the stack (2 KiB).
 */
#define RING_MAX_BACKENDS 16384
#define RING_MAX_POINTS (1u << 24)

enum ring_hash {
    RING_HASH_XXH3,
    RING_HASH_KETAMA,
};

/* What the ring needs to know of a backend; strings are copied. */
struct ring_backend {
    const char *name;   /* point strings in xxh3 mode */
    const char *host;   /* as configured, for ketama point strings */
    uint16_t port;
    double weight;      /* >= 0; 0 owns no point (a paced move) */
};

struct ring_point {
    uint64_t pos;
    uint32_t backend;
};

struct ring;

/* Returns 1 to accept backend b in a fallback walk, 0 to skip it. */
typedef bool (*ring_pred_fn)(uint32_t b, void *arg);

/*
 * Builds a ring over n >= 1 backends. vnodes is used in xxh3 mode only.
 * Returns the ring (caller owns it, ring_destroy() frees it), or NULL with a
 * message in err.
 */
struct ring *ring_create(enum ring_hash hash, unsigned vnodes,
                         const struct ring_backend *backends, size_t n,
                         char *err, size_t errlen)
    __attribute__((warn_unused_result));
void ring_destroy(struct ring *ring);

enum ring_hash ring_hash_kind(const struct ring *ring);
uint32_t ring_nbackends(const struct ring *ring);
uint32_t ring_npoints(const struct ring *ring);
const struct ring_point *ring_points(const struct ring *ring);
/* Points owned by backend b. */
uint32_t ring_backend_npoints(const struct ring *ring, uint32_t b);
const char *ring_backend_name(const struct ring *ring, uint32_t b);
double ring_backend_weight(const struct ring *ring, uint32_t b);
/* Share of the ring's circumference owned by backend b, in [0, 1]. */
double ring_backend_arc_share(const struct ring *ring, uint32_t b);
/* Bytes of heap the ring holds (points, lookup index, backend table). */
size_t ring_memory(const struct ring *ring);

/*
 * Hash tags (twemproxy's hash_tag): with open and close set (two
 * characters), a key holding open, then close after it with at least one
 * byte between, is placed by those bytes only, so that "{user1}:a" and
 * "{user1}:b" share an owner. open '\0' turns it off (the default).
 */
void ring_set_hash_tag(struct ring *ring, char open, char close);
void ring_set_derived(struct ring *ring, bool on);
/*
 * Derived keys (on with ring_set_derived(), off by default): a key that
 * ends in the RING_DERIVED_LEN bytes RING_DERIVED_TAG, 16 hex digits, ':'
 * and 3 hex digits (a chunk of a big value, big.h) is placed as the key
 * before them, so that it lives wherever that key lives, in every
 * topology.
 */
#define RING_DERIVED_TAG ":mcbig:"
#define RING_DERIVED_LEN 27
/* The length of the key that key (len bytes) was derived from, or len. */
static inline size_t
ring_base_len(const char *key, size_t len)
{
    return len > RING_DERIVED_LEN && key[len - 4] == ':' &&
                   __builtin_memcmp(key + len - RING_DERIVED_LEN,
                                    RING_DERIVED_TAG,
                                    sizeof(RING_DERIVED_TAG) - 1) == 0
               ? len - RING_DERIVED_LEN
               : len;
}
/* The part of key that places it: *key and *len narrowed to the key a
 * derived key was derived from, then to a tag's content, or left alone. */
void ring_hashed_part(const struct ring *ring, const char **key, size_t *len);

/* Key position on the ring (xxh3: 64-bit; ketama: 32-bit), hash tag
 * applied. */
uint64_t ring_key_pos(const struct ring *ring, const char *key, size_t len);
/* Index of the first point at or after pos, wrapping. */
uint32_t ring_point_at(const struct ring *ring, uint64_t pos);
/* Owner of a key: never RING_NONE. */
uint32_t ring_lookup(const struct ring *ring, const char *key, size_t len);

/*
 * Fallback walk: starting at point index `point` (a key's owner point),
 * visit the points clockwise and report each distinct backend, in order,
 * for which pred(b, arg) returns true (pred NULL accepts all). The owner
 * itself is reported first if accepted. Writes at most max backends to out;
 * returns how many it wrote.
 */
size_t ring_walk(const struct ring *ring, uint32_t point, ring_pred_fn pred,
                 void *arg, uint32_t *out, size_t max);

/*
 * Compares the owners of the key space in rings a and b (the same hash:
 * else -1): calls fn(ia, ib, share, arg) for each arc, ia and ib being its
 * owner in a and in b (their indices) and share its part of the key space,
 * so that the shares sum to 1. Exact, from the points: what a change from
 * a to b moves is the sum of the shares where the owners differ.
 */
typedef void (*ring_arc_fn)(uint32_t ia, uint32_t ib, double share,
                            void *arg);
int ring_compare(const struct ring *a, const struct ring *b, ring_arc_fn fn,
                 void *arg);

/* The share of keys whose owner's name differs between a and b (the sum
 * of ring_compare()'s moved arcs), or NAN when their hashes differ. */
double ring_moved_share(const struct ring *a, const struct ring *b);

/*
 * The first backend accepted by pred in the fallback walk of key, or
 * RING_NONE when none is. Allocation-free, for the request path.
 */
uint32_t ring_route(const struct ring *ring, const char *key, size_t len,
                    ring_pred_fn pred, void *arg);

#endif
