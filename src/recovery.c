/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * recovery: see recovery.h. A batch is an append-only arena of key bytes,
 * an entry array and an open-addressing index for de-duplication, so that a
 * hot key written a thousand times during an outage costs one entry.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "log.h"
#include "recovery.h"

struct recovery {
    pthread_mutex_t lock;
    size_t limit;
    size_t inflight;                /* noted writes not yet answered */
    struct recovery_batch cur;
};

static void *
recovery_realloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        log_error("out of memory");
        abort();
    }
    return p;
}

struct recovery *
recovery_create(size_t limit)
{
    struct recovery *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->limit = limit;
    return r;
}

void
recovery_batch_release(struct recovery_batch *b)
{
    free(b->arena);
    free(b->entries);
    free(b->slots);
    memset(b, 0, sizeof(*b));
}

void
recovery_destroy(struct recovery *r)
{
    if (r == NULL) {
        return;
    }
    recovery_batch_release(&r->cur);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static uint64_t
recovery_hash(const char *key, size_t len, uint32_t fallback)
{
    return XXH3_64bits_withSeed(key, len, fallback);
}

const char *
recovery_key(const struct recovery_batch *b, size_t i)
{
    return b->arena + b->entries[i].off;
}

static void
recovery_rehash(struct recovery_batch *b, size_t nslots)
{
    free(b->slots);
    b->slots = recovery_realloc(NULL, nslots * sizeof(uint32_t));
    memset(b->slots, 0, nslots * sizeof(uint32_t));
    b->nslots = nslots;
    for (size_t i = 0; i < b->n; i++) {
        size_t s = b->entries[i].hash & (nslots - 1);

        while (b->slots[s] != 0) {
            s = (s + 1) & (nslots - 1);
        }
        b->slots[s] = (uint32_t)i + 1;
    }
}

/* Adds (key, fallback) unless present; a dirty note makes a present
 * entry dirty. Returns false past limit. */
static bool
recovery_add(struct recovery_batch *b, size_t limit, const char *key,
             size_t len, uint32_t fallback, bool dirty)
{
    uint64_t h = recovery_hash(key, len, fallback);
    struct recovery_entry *e;
    size_t s;

    if (b->nslots > 0) {
        for (s = h & (b->nslots - 1); b->slots[s] != 0;
             s = (s + 1) & (b->nslots - 1)) {
            e = &b->entries[b->slots[s] - 1];
            if (e->hash == h && e->len == len && e->fallback == fallback &&
                memcmp(b->arena + e->off, key, len) == 0) {
                if (dirty && !e->dirty) {
                    e->dirty = true;
                    b->ndirty++;
                }
                return true;
            }
        }
    }
    if (b->n >= limit) {
        return false;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->entries = recovery_realloc(b->entries, b->cap * sizeof(*e));
    }
    if (b->arena_len + len + 1 > b->arena_cap) {
        b->arena_cap = (b->arena_cap + len + 1) * 2;
        b->arena = recovery_realloc(b->arena, b->arena_cap);
    }
    e = &b->entries[b->n++];
    e->hash = h;
    e->off = (uint32_t)b->arena_len;
    e->len = (uint16_t)len;
    e->dirty = dirty;
    b->ndirty += dirty;
    e->fallback = fallback;
    memcpy(b->arena + b->arena_len, key, len);
    b->arena[b->arena_len + len] = '\0';
    b->arena_len += len + 1;
    if (b->n * 2 > b->nslots) {
        recovery_rehash(b, b->nslots ? b->nslots * 2 : 128);
    } else {
        for (s = h & (b->nslots - 1); b->slots[s] != 0;
             s = (s + 1) & (b->nslots - 1)) {
        }
        b->slots[s] = (uint32_t)b->n;
    }
    return true;
}

static void
recovery_overflow(struct recovery *r, const char *why)
{
    struct recovery_batch *b = &r->cur;

    if (!b->flush && why != NULL) {
        log_warn("%s: the backend will be flushed when it recovers", why);
    }
    /* The keys no longer matter: the flush covers the backend, and the
     * fallbacks' copies expire within failover_ttl. */
    free(b->arena);
    free(b->entries);
    free(b->slots);
    memset(b, 0, sizeof(*b));
    b->flush = true;
}

static void
recovery_note_locked(struct recovery *r, const char *key, size_t len,
                     uint32_t fallback, bool dirty)
{
    if (!r->cur.flush &&
        !recovery_add(&r->cur, r->limit, key, len, fallback, dirty)) {
        recovery_overflow(r, "recovery log full");
    }
}

void
recovery_note(struct recovery *r, const char *key, size_t len,
              uint32_t fallback)
{
    pthread_mutex_lock(&r->lock);
    recovery_note_locked(r, key, len, fallback, true);
    pthread_mutex_unlock(&r->lock);
}

void
recovery_note_clean(struct recovery *r, const char *key, size_t len,
                    uint32_t fallback)
{
    pthread_mutex_lock(&r->lock);
    recovery_note_locked(r, key, len, fallback, false);
    pthread_mutex_unlock(&r->lock);
}

bool
recovery_note_unless(struct recovery *r, _Atomic int *state, int up,
                      const char *key, size_t len, uint32_t fallback)
{
    bool noted = false;

    pthread_mutex_lock(&r->lock);
    if (atomic_load(state) != up) {
        recovery_note_locked(r, key, len, fallback, true);
        r->inflight++;
        noted = true;
    }
    pthread_mutex_unlock(&r->lock);
    return noted;
}

void
recovery_write_done(struct recovery *r, const char *key, size_t len,
                    uint32_t fallback)
{
    pthread_mutex_lock(&r->lock);
    recovery_note_locked(r, key, len, fallback, true);
    if (r->inflight > 0) {
        r->inflight--;
    }
    pthread_mutex_unlock(&r->lock);
}

bool
recovery_close(struct recovery *r, _Atomic int *state, int from, int to)
{
    bool closed = false;

    pthread_mutex_lock(&r->lock);
    if (r->cur.ndirty == 0 && !r->cur.flush && r->inflight == 0) {
        closed = atomic_compare_exchange_strong(state, &from, to);
    }
    pthread_mutex_unlock(&r->lock);
    return closed;
}

void
recovery_note_flush(struct recovery *r)
{
    pthread_mutex_lock(&r->lock);
    recovery_overflow(r, NULL);
    pthread_mutex_unlock(&r->lock);
}

bool
recovery_pending(struct recovery *r)
{
    bool pending;

    pthread_mutex_lock(&r->lock);
    pending = r->cur.n > 0 || r->cur.flush || r->inflight > 0;
    pthread_mutex_unlock(&r->lock);
    return pending;
}

size_t
recovery_size(struct recovery *r)
{
    size_t n;

    pthread_mutex_lock(&r->lock);
    n = r->cur.n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

void
recovery_take(struct recovery *r, struct recovery_batch *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->cur;
    memset(&r->cur, 0, sizeof(r->cur));
    pthread_mutex_unlock(&r->lock);
}

void
recovery_put_back(struct recovery *r, struct recovery_batch *b)
{
    pthread_mutex_lock(&r->lock);
    if (b->flush) {
        recovery_overflow(r, NULL);
    } else {
        for (size_t i = 0; i < b->n && !r->cur.flush; i++) {
            recovery_note_locked(r, recovery_key(b, i), b->entries[i].len,
                                 b->entries[i].fallback,
                                 b->entries[i].dirty);
        }
    }
    pthread_mutex_unlock(&r->lock);
    recovery_batch_release(b);
}
