/*
 * recovery: the bounded set of keys that mcring wrote to fallbacks on a
 * DOWN backend's behalf, so that they can be deleted before the backend is
 * routed to again (stale-safe recovery).
 *
 * Any worker adds to it (under its mutex: this is the failover path only,
 * never the steady state); the health checker takes the whole set for a
 * recovery pass and puts it back if the pass could not finish.
 */
#ifndef MCRING_RECOVERY_H
#define MCRING_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recovery_entry {
    uint64_t hash;
    uint32_t off;                   /* key bytes in the batch's arena */
    uint16_t len;
    uint32_t fallback;              /* backend the write went to */
};

/* A set of (key, fallback) pairs, distinct. */
struct recovery_batch {
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    struct recovery_entry *entries;
    size_t n;
    size_t cap;
    uint32_t *slots;                /* open addressing: entry index + 1 */
    size_t nslots;                  /* power of two, or 0 */
    bool flush;                     /* overflowed: flush the backend */
};

struct recovery;

/* limit: distinct entries before the set overflows (0: always flush). */
struct recovery *recovery_create(size_t limit);
void recovery_destroy(struct recovery *r);

/* Remembers that key was written to backend fallback. Thread-safe. */
void recovery_note(struct recovery *r, const char *key, size_t len,
                   uint32_t fallback);
/* The backend must be flushed when it recovers (e.g. a flush_all missed
 * it). Thread-safe. */
void recovery_note_flush(struct recovery *r);
/* True if there is anything to do before the backend may be routed to. */
bool recovery_pending(struct recovery *r);

/* Moves everything into out (which must be empty: zeroed or released). */
void recovery_take(struct recovery *r, struct recovery_batch *out);
/* Merges a batch back (a pass failed) and releases it. */
void recovery_put_back(struct recovery *r, struct recovery_batch *b);

const char *recovery_key(const struct recovery_batch *b, size_t i);
void recovery_batch_release(struct recovery_batch *b);

#endif
