/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * recovery: see recovery.h. A batch is an append-only arena of key bytes,
 * an entry array and an open-addressing index for de-duplication, so that a
 * hot key written a thousand times during an outage costs one entry.
 *
 * With the journal on (the delete spool, spool.h), every note that changes
 * the log (a new entry, an entry turned dirty, the first flush) is also
 * added to a second batch, the journal, that the spool takes and appends
 * to its file. The journal is independent of the log itself: a pass taking
 * the log leaves it alone, so what was noted reaches the file even if a
 * pass deleted it first (the file is a superset of the log; the spool
 * compacts it from recovery_dump()). Keys put back by a failed pass are in
 * the file already and are not journaled again.
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
    /* The delete spool's view (all under lock). */
    bool journaling;
    bool journal_over;              /* more than limit: the spool rewrites
                                       from recovery_dump() instead */
    bool finished;                  /* a pass removed keys (or a flush) */
    struct recovery_batch journal;
    struct recovery_batch *taken;   /* lent to a pass (health), or NULL */
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
    recovery_batch_release(&r->journal);
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
 * entry dirty. Returns 1 if that changed the batch, 0 if not, -1 past
 * limit. */
static int
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
                    return 1;
                }
                return 0;
            }
        }
    }
    if (b->n >= limit) {
        return -1;
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
    return 1;
}

/* The backend is to be flushed (journaled unless !journal). */
static void
recovery_overflow(struct recovery *r, const char *why, bool journal)
{
    struct recovery_batch *b = &r->cur;

    if (!b->flush && why != NULL) {
        log_warn("%s: the backend will be flushed when it recovers", why);
    }
    /* The keys no longer matter: the flush covers the backend, and the
     * fallbacks' copies expire within failover_ttl. */
    recovery_batch_release(b);
    b->flush = true;
    if (r->journaling && journal) {
        recovery_batch_release(&r->journal);
        r->journal.flush = true;
    }
}

/* Adds the note to the journal (the log changed). */
static void
recovery_journal_add(struct recovery *r, const char *key, size_t len,
                     uint32_t fallback, bool dirty)
{
    bool flush = r->journal.flush;

    if (r->journal_over ||
        recovery_add(&r->journal, r->limit, key, len, fallback, dirty) >= 0) {
        return;
    }
    /* More than the log holds since the spool last looked: it rewrites
     * the file from the log instead. */
    recovery_batch_release(&r->journal);
    r->journal.flush = flush;
    r->journal_over = true;
}

static void
recovery_note_locked(struct recovery *r, const char *key, size_t len,
                     uint32_t fallback, bool dirty, bool journal)
{
    int rc;

    if (r->cur.flush) {
        return;
    }
    rc = recovery_add(&r->cur, r->limit, key, len, fallback, dirty);
    if (rc < 0) {
        recovery_overflow(r, "recovery log full", true);
    } else if (rc > 0 && journal && r->journaling) {
        recovery_journal_add(r, key, len, fallback, dirty);
    }
}

void
recovery_note(struct recovery *r, const char *key, size_t len,
              uint32_t fallback)
{
    pthread_mutex_lock(&r->lock);
    recovery_note_locked(r, key, len, fallback, true, true);
    pthread_mutex_unlock(&r->lock);
}

void
recovery_note_clean(struct recovery *r, const char *key, size_t len,
                    uint32_t fallback)
{
    pthread_mutex_lock(&r->lock);
    recovery_note_locked(r, key, len, fallback, false, true);
    pthread_mutex_unlock(&r->lock);
}

bool
recovery_note_unless(struct recovery *r, _Atomic int *state, int up,
                      const char *key, size_t len, uint32_t fallback)
{
    bool noted = false;

    pthread_mutex_lock(&r->lock);
    if (atomic_load(state) != up) {
        recovery_note_locked(r, key, len, fallback, true, true);
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
    recovery_note_locked(r, key, len, fallback, true, true);
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
    recovery_overflow(r, NULL, true);
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
    r->taken = out;
    pthread_mutex_unlock(&r->lock);
}

void
recovery_put_back(struct recovery *r, struct recovery_batch *b)
{
    pthread_mutex_lock(&r->lock);
    if (r->taken == b) {
        r->taken = NULL;
    }
    if (b->flush) {
        /* Not journaled: the spool has it since it was noted. */
        recovery_overflow(r, NULL, false);
    } else {
        for (size_t i = 0; i < b->n && !r->cur.flush; i++) {
            recovery_note_locked(r, recovery_key(b, i), b->entries[i].len,
                                 b->entries[i].fallback,
                                 b->entries[i].dirty, false);
        }
    }
    pthread_mutex_unlock(&r->lock);
    recovery_batch_release(b);
}

void
recovery_done(struct recovery *r, struct recovery_batch *b)
{
    pthread_mutex_lock(&r->lock);
    if (r->taken == b) {
        r->taken = NULL;
    }
    if (r->journaling && (b->n > 0 || b->flush)) {
        r->finished = true;
    }
    pthread_mutex_unlock(&r->lock);
    recovery_batch_release(b);
}

/* ---- the delete spool's view --------------------------------------------- */

void
recovery_journal_start(struct recovery *r)
{
    pthread_mutex_lock(&r->lock);
    r->journaling = true;
    pthread_mutex_unlock(&r->lock);
}

bool
recovery_journal_take(struct recovery *r, struct recovery_batch *out)
{
    bool ok;

    pthread_mutex_lock(&r->lock);
    ok = !r->journal_over;
    if (ok) {
        *out = r->journal;
        memset(&r->journal, 0, sizeof(r->journal));
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

bool
recovery_finished(struct recovery *r)
{
    bool finished;

    pthread_mutex_lock(&r->lock);
    finished = r->finished;
    pthread_mutex_unlock(&r->lock);
    return finished;
}

/* Copies the entries of b into out (de-duplicated). */
static void
recovery_copy(struct recovery_batch *out, const struct recovery_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        (void)recovery_add(out, SIZE_MAX, recovery_key(b, i),
                           b->entries[i].len, b->entries[i].fallback,
                           b->entries[i].dirty);
    }
}

void
recovery_dump(struct recovery *r, struct recovery_batch *out)
{
    pthread_mutex_lock(&r->lock);
    memset(out, 0, sizeof(*out));
    out->flush = r->cur.flush || (r->taken != NULL && r->taken->flush);
    if (!out->flush) {
        recovery_copy(out, &r->cur);
        if (r->taken != NULL) {
            recovery_copy(out, r->taken);
        }
    }
    recovery_batch_release(&r->journal);
    r->journal_over = false;
    r->finished = false;
    pthread_mutex_unlock(&r->lock);
}
