/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * l1: a worker's cache of hot keys' values ([proxy] l1 = SIZE, l1_ttl =
 * MS), so that the hottest keys are answered without a trip to their
 * backend.
 *
 * Each entry holds a key and its whole VALUE block as a backend sent it
 * ("VALUE <key> <flags> <bytes>\r\n<data>\r\n"), and when it stops being
 * served (at most ttl after it was read). Entries are found by a hash of
 * the key, chained in a fixed table, and evicted least recently filled
 * first once the bytes would pass the cache's size.
 *
 * A fill can race a write: a get read before a write was sent but
 * answered after it would cache the older value. So a get that may fill
 * first takes a ticket (l1_watch()); every invalidation of that key moves
 * the key's ticket on; a fill with a ticket that moved is refused. Up to
 * L1_WATCH keys are watched at once; beyond, gets do not fill.
 *
 * Pure: no threads, no clock (callers pass the time), no allocation but
 * one per fill.
 */
#ifndef MCRING_L1_H
#define MCRING_L1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#define L1_BUCKETS 256
#define L1_WATCH 64

struct l1_entry {
    struct l1_entry *next;          /* in its bucket */
    TAILQ_ENTRY(l1_entry) lru;      /* oldest fill first */
    uint64_t hash;
    uint64_t expires_us;
    uint32_t keylen;
    uint32_t blocklen;
    char data[];                    /* key, then the VALUE block */
};

TAILQ_HEAD(l1_lru, l1_entry);

/* A key that gets in flight may fill: its ticket, moved by writes. */
struct l1_watch {
    uint64_t hash;
    uint32_t gen;
    uint32_t refs;                  /* 0: a free slot */
};

struct l1 {
    size_t max_bytes;               /* 0: off */
    size_t bytes;                   /* entries' blocks and keys */
    uint64_t ttl_us;
    uint32_t n;                     /* entries */
    struct l1_entry *bucket[L1_BUCKETS];
    struct l1_lru lru;
    struct l1_watch watch[L1_WATCH];
    uint32_t nwatch;                /* slots in use */
    uint32_t gen;                   /* tickets handed out */
};

/* An empty cache of at most max_bytes (0: off), entries kept ttl_us. */
void l1_init(struct l1 *c, size_t max_bytes, uint64_t ttl_us);
/* Frees every entry (the cache stays usable, empty). */
void l1_clear(struct l1 *c);

/* The VALUE block of key (hash: XXH3 of it) if cached and not expired at
 * now_us, with its length in *len; NULL otherwise (an expired entry is
 * freed). The block is valid until the next call that changes c. */
const char *l1_get(struct l1 *c, const char *key, size_t len, uint64_t hash,
                   uint64_t now_us, size_t *blocklen);

/* A ticket for a get of key that may fill: the watch slot plus one (0:
 * none free, the get must not fill), its ticket in *gen. */
uint32_t l1_watch(struct l1 *c, uint64_t hash, uint32_t *gen);
/* Gives back watch slot (as l1_watch() returned it, 0: nothing). Returns
 * whether the ticket gen is still good: no write of the key since. */
bool l1_unwatch(struct l1 *c, uint32_t slot, uint32_t gen);

/*
 * Caches the VALUE block (blocklen bytes) of key from now_us, replacing
 * what it had, evicting the oldest entries to stay within max_bytes (how
 * many in *evicted); an entry larger than a quarter of max_bytes is not
 * cached. Returns whether it was.
 */
bool l1_put(struct l1 *c, const char *key, size_t len, uint64_t hash,
            const char *block, size_t blocklen, uint64_t now_us,
            unsigned *evicted);

/* A write of key: its entry goes, its ticket moves. Returns whether an
 * entry was there. */
bool l1_invalidate(struct l1 *c, const char *key, size_t len, uint64_t hash);
/* Every entry goes and every ticket moves (flush_all, a new topology). */
void l1_invalidate_all(struct l1 *c);

#endif
