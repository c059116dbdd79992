/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * copier: the background copy of a move. After a topology change, every
 * key stored on a backend that no longer owns it is moved to its owner,
 * so that a change ends with each key on its owner only (an orphaned copy
 * left behind would be served, stale, by a later change back).
 *
 * A pass over a snapshot t walks each backend of t with memcached 1.6's
 * `lru_crawler metadump all` and, for each key whose owner in t is another
 * backend that is UP, in batches paced at `rate` keys per second:
 *
 *   mg KEY v f t c      on the backend holding it (value, flags, TTL, cas)
 *   mg KEY c N<ttl>     on the owner: a placeholder where it has nothing;
 *                       a value there is newer (the holder's goes at the
 *                       end of the walk), another mover's placeholder (Z)
 *                       leaves the key for the next walk
 *   ms KEY C<cas> F T   on the owner, over the placeholder: fails once a
 *                       write replaced it or a delete took it
 *   md KEY C<cas>       on the holder: only if unchanged since the mg;
 *                       if it changed or went (a write or delete through
 *                       the proxy deleted it), the copy just made is
 *                       deleted again (md C<its cas>): a deleted key stays
 *                       deleted
 *
 * Only keys whose holder owned them in an origin of t (before the move, or
 * where a rollback began) are copied. A key held where it never belonged
 * during this move (left by an earlier change, or written to a fallback
 * while its owner was DOWN) may be older than what its owner had since,
 * or deleted there since: it is deleted (md C<cas>), not copied.
 *
 * The passes of a move's steps walk each backend once; the move ends with
 * thorough passes that walk the backends again while a walk finds keys to
 * move (memcached's crawler skips items that move in the LRU while it
 * walks).
 *
 * It runs on a thread of its own with blocking sockets (timeouts from the
 * config), one pass at a time; a new snapshot is walked once the pass in
 * progress is over (the newest of those that came meanwhile). Keys
 * that cannot be named by a classic command (binary keys) are skipped.
 */
#ifndef MCRING_COPIER_H
#define MCRING_COPIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct topology;

/* Keys remembered from one metadump; a backend holding more misplaced
 * keys is walked again once they are moved. */
#define COPIER_MAX_KEYS 100000
/* Keys per batch. */
#define COPIER_BATCH 100

struct copier_progress {
    _Atomic uint64_t passes;        /* passes begun */
    _Atomic uint64_t scanned;       /* keys listed by metadumps */
    _Atomic uint64_t copied;        /* moved to their owner */
    _Atomic uint64_t skipped;       /* gone meanwhile, owner had a value
                                       already, or owner not UP */
    _Atomic uint64_t orphans;       /* held where neither the owner nor
                                       a previous owner is: deleted */
    _Atomic uint64_t failed;        /* an error on the way (kept where it
                                       was) */
    _Atomic bool running;           /* a pass is in progress */
};

struct copier;

struct copier *copier_create(void);
/* Stops the pass in progress and the thread. */
void copier_destroy(struct copier *c);

/* A pass over t (a reference is taken) at rate keys per second, once the
 * pass in progress, if any, is over: one walk of each backend, or with
 * thorough walks until one finds nothing to move (at most COPIER_ROUNDS).
 * rate 0: no copy. */
void copier_start(struct copier *c, struct topology *t, unsigned rate,
                  bool thorough);
/* Ends the pass in progress (at its next batch) and any queued. */
void copier_cancel(struct copier *c);
/* Holds (or lets go) the pass in progress, between batches. */
void copier_pause(struct copier *c, bool paused);
/* Whether a pass is queued or in progress. */
bool copier_busy(struct copier *c);

const struct copier_progress *copier_progress(const struct copier *c);

#endif
