/* SPDX-License-Identifier: BSD-3-Clause */
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

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recovery_entry {
    uint64_t hash;
    uint32_t off;                   /* key bytes in the batch's arena */
    uint16_t len;
    bool dirty;                     /* the owner may hold an older value:
                                       delete there before it serves */
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
    size_t ndirty;                  /* entries with dirty set */
    bool flush;                     /* overflowed: flush the backend */
};

struct recovery;

/* limit: distinct entries before the set overflows (0: always flush). */
struct recovery *recovery_create(size_t limit);
void recovery_destroy(struct recovery *r);

/* Remembers that key was written to backend fallback (dirty: the owner may
 * hold an older value). Thread-safe. */
void recovery_note(struct recovery *r, const char *key, size_t len,
                   uint32_t fallback);
/*
 * Remembers that key was written to backend fallback by a write that also
 * deleted it on the owner (during RECOVERING): only the fallback's copy is
 * left to remove, and it does not keep the backend out of the ring.
 */
void recovery_note_clean(struct recovery *r, const char *key, size_t len,
                         uint32_t fallback);
/*
 * Remembers (key, fallback) unless *state equals up, atomically with
 * recovery_close(): returns false, remembering nothing, if the backend is
 * already back (the caller then sends the write to the backend itself).
 */
bool recovery_note_unless(struct recovery *r, _Atomic int *state, int up,
                          const char *key, size_t len, uint32_t fallback);
/*
 * A write noted by recovery_note_unless() was answered (or failed): note
 * the key again, now that it is on the fallback, so that a clean-up delete
 * can never overtake the write it is meant to undo.
 */
void recovery_write_done(struct recovery *r, const char *key, size_t len,
                         uint32_t fallback);
/*
 * Moves *state from `from` to `to` if and only if no dirty key is pending,
 * no flush is owed and no noted write is still in flight, under
 * the same lock as recovery_note_unless(): no write can slip to a fallback
 * unrecorded between the last clean-up and the backend's return.
 */
bool recovery_close(struct recovery *r, _Atomic int *state, int from, int to);
/* The backend must be flushed when it recovers (e.g. a flush_all missed
 * it). Thread-safe. */
void recovery_note_flush(struct recovery *r);
/* Keys remembered now (the recovery log's size). Thread-safe. */
size_t recovery_size(struct recovery *r);
/* True if there is anything to do before the backend may be routed to. */
bool recovery_pending(struct recovery *r);

/*
 * Moves everything into out (which must be empty: zeroed or released) for
 * a pass; out stays lent (recovery_dump() reads it) until
 * recovery_put_back() or recovery_done(). Main thread.
 */
void recovery_take(struct recovery *r, struct recovery_batch *out);
/* Merges a batch back (a pass failed) and releases it. */
void recovery_put_back(struct recovery *r, struct recovery_batch *b);
/* A pass did everything in b (or b is moot: its backend is gone):
 * releases it. */
void recovery_done(struct recovery *r, struct recovery_batch *b);

/*
 * The delete spool's view (spool.h), main thread. Once the journal is
 * started, every change of the log (a new entry, an entry turned dirty,
 * a flush) is also journaled; recovery_journal_take() moves the journal
 * into out (a batch whose flush says a flush was noted), or returns false,
 * leaving out alone, when more was noted than the log holds (the spool
 * then rewrites its file from recovery_dump()).
 */
void recovery_journal_start(struct recovery *r);
bool recovery_journal_take(struct recovery *r, struct recovery_batch *out)
    __attribute__((warn_unused_result));
/* Whether a pass finished since the last recovery_dump(): the spool's
 * file holds keys that are done. */
bool recovery_finished(struct recovery *r);
/*
 * Everything still to do, into out (overwritten; release it): the log and
 * the batch lent to a pass; a flush alone when one is owed (its keys are
 * moot). Empties the journal: the dump covers it.
 */
void recovery_dump(struct recovery *r, struct recovery_batch *out);

const char *recovery_key(const struct recovery_batch *b, size_t i);
void recovery_batch_release(struct recovery_batch *b);

#endif
