/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hotkeys: the keys that take most requests, found with the space-saving
 * algorithm (Metwally, Agrawal, El Abbadi 2005) over sampled requests.
 *
 * Each worker keeps a table of K counters (key, count, overestimate) per
 * window of HOTKEYS_WINDOW_S seconds, the last finished window and the
 * current one, and counts its samples per backend. A sampled key that is
 * counted already adds one; a new one takes a free counter, or the
 * smallest, inheriting its count as its overestimate. Any key with more
 * than samples / K hits is in the table. The tables of every worker are
 * merged when read (hotkeys_merge()).
 *
 * Pure: no threads, no clock (callers pass the time); the worker guards
 * its table with a mutex taken for sampled requests only.
 */
#ifndef MCRING_HOTKEYS_H
#define MCRING_HOTKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOTKEYS_WINDOW_S 10
#define HOTKEYS_KEY_MAX 250

struct hotkeys_entry {
    uint64_t hash;
    uint64_t count;                 /* samples, over-estimated by error */
    uint64_t error;
    uint32_t backend;               /* id of its owner when last seen */
    uint16_t len;
    char key[HOTKEYS_KEY_MAX];
};

/* One window: K counters and the samples per backend id. */
struct hotkeys_window {
    struct hotkeys_entry *e;        /* [k] */
    uint32_t n;                     /* counters in use */
    uint64_t samples;
    uint64_t *per_backend;          /* [nbackends], by backend id */
    uint32_t nbackends;
    uint64_t start_s;               /* when it began */
};

struct hotkeys {
    uint32_t k;
    struct hotkeys_window w[2];     /* [cur], [!cur]: the last finished */
    unsigned cur;
};

/* k counters per window (k > 0). */
void hotkeys_init(struct hotkeys *h, uint32_t k, uint64_t now_s);
void hotkeys_free(struct hotkeys *h);

/* A sampled request for key (len bytes, at most HOTKEYS_KEY_MAX are kept)
 * owned by backend id, at now_s: a new window begins when the current one
 * is HOTKEYS_WINDOW_S old (and the one before it is forgotten). Returns
 * the samples the key certainly had in the current window (count -
 * error). */
uint64_t hotkeys_add(struct hotkeys *h, const char *key, size_t len,
                     uint64_t hash, uint32_t backend, uint64_t now_s);

/* A merged view: each distinct key's samples (summed over tables), its
 * backend, and the samples per backend. */
struct hotkeys_merged {
    struct hotkeys_entry *e;
    uint32_t n, cap;
    uint64_t samples;
    uint64_t *per_backend;
    uint32_t nbackends;
    double seconds;                 /* the time the samples cover */
};

/* Adds h's last finished and current windows (as of now_s) to m. */
void hotkeys_merge(struct hotkeys_merged *m, const struct hotkeys *h,
                   uint64_t now_s);
/* Sorts m by the samples each key certainly had (count - error), largest
 * first, and keeps at most k entries, none with no such sample. */
void hotkeys_top(struct hotkeys_merged *m, uint32_t k);
void hotkeys_merged_free(struct hotkeys_merged *m);

#endif
