/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ratelimit: see ratelimit.h.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>

#include "ratelimit.h"

void
ratelimit_init(struct ratelimit *r, unsigned rate, unsigned burst)
{
    if (rate == 0) {
        r->interval_ns = 0;
        r->window_ns = 0;
        return;
    }
    if (burst == 0) {
        burst = rate;
    }
    r->interval_ns = 1000000000u / rate;
    if (r->interval_ns == 0) {
        r->interval_ns = 1;
    }
    r->window_ns = (uint64_t)burst * r->interval_ns;
}

bool
ratelimit_take(_Atomic uint64_t *tat, const struct ratelimit *r,
               uint64_t now_ns, uint32_t n)
{
    uint64_t old = atomic_load_explicit(tat, memory_order_relaxed);

    if (r->interval_ns == 0) {
        return true;
    }
    for (;;) {
        uint64_t base = old > now_ns ? old : now_ns;
        uint64_t next = base + (uint64_t)n * r->interval_ns;

        if (next - now_ns > r->window_ns) {
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(tat, &old, next,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
}

struct ratelimit_slot {
    uint64_t key;                   /* 0: free */
    _Atomic uint64_t tat;
};

struct ratelimit_table {
    pthread_mutex_t locks[RATELIMIT_LOCKS];
    struct ratelimit_slot slots[RATELIMIT_SLOTS];
};

struct ratelimit_table *
ratelimit_table_new(void)
{
    struct ratelimit_table *t = calloc(1, sizeof(*t));

    if (t != NULL) {
        for (unsigned i = 0; i < RATELIMIT_LOCKS; i++) {
            pthread_mutex_init(&t->locks[i], NULL);
        }
    }
    return t;
}

void
ratelimit_table_free(struct ratelimit_table *t)
{
    if (t != NULL) {
        for (unsigned i = 0; i < RATELIMIT_LOCKS; i++) {
            pthread_mutex_destroy(&t->locks[i]);
        }
        free(t);
    }
}

bool
ratelimit_table_take(struct ratelimit_table *t, const struct ratelimit *r,
                     uint64_t key, uint64_t now_ns, uint32_t n)
{
    /* The two candidates of key are slots 2i and 2i + 1, under one lock. */
    uint64_t pair = (key ^ (key >> 29)) % (RATELIMIT_SLOTS / 2);
    struct ratelimit_slot *a = &t->slots[2 * pair];
    struct ratelimit_slot *s;
    pthread_mutex_t *lock = &t->locks[pair % RATELIMIT_LOCKS];
    bool ok;

    if (r->interval_ns == 0) {
        return true;
    }
    pthread_mutex_lock(lock);
    if (a[0].key == key) {
        s = &a[0];
    } else if (a[1].key == key) {
        s = &a[1];
    } else {
        /* A newcomer takes the slot whose limit has lagged longest. */
        s = atomic_load(&a[0].tat) <= atomic_load(&a[1].tat) ? &a[0] : &a[1];
        s->key = key;
        atomic_store(&s->tat, 0);
    }
    ok = ratelimit_take(&s->tat, r, now_ns, n);
    pthread_mutex_unlock(lock);
    return ok;
}
