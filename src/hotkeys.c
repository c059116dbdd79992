/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hotkeys: see hotkeys.h.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "hotkeys.h"
#include "util.h"

static void
hotkeys_window_reset(struct hotkeys_window *w, uint64_t now_s)
{
    w->n = 0;
    w->samples = 0;
    if (w->per_backend != NULL) {
        memset(w->per_backend, 0, w->nbackends * sizeof(*w->per_backend));
    }
    w->start_s = now_s;
}

void
hotkeys_init(struct hotkeys *h, uint32_t k, uint64_t now_s)
{
    memset(h, 0, sizeof(*h));
    h->k = k;
    for (unsigned i = 0; i < 2; i++) {
        h->w[i].e = util_xcalloc(k, sizeof(*h->w[i].e));
    }
    h->w[0].start_s = now_s;
    h->w[1].start_s = 0; /* none finished yet */
}

void
hotkeys_free(struct hotkeys *h)
{
    for (unsigned i = 0; i < 2; i++) {
        free(h->w[i].e);
        free(h->w[i].per_backend);
    }
    memset(h, 0, sizeof(*h));
}

/* Counts one sample of backend in w, growing its array as needed. */
static void
hotkeys_count_backend(struct hotkeys_window *w, uint32_t backend)
{
    if (backend >= w->nbackends) {
        uint32_t n = backend + 16;

        w->per_backend = util_xrealloc(w->per_backend, n,
                                       sizeof(*w->per_backend));
        memset(w->per_backend + w->nbackends, 0,
               (n - w->nbackends) * sizeof(*w->per_backend));
        w->nbackends = n;
    }
    w->per_backend[backend]++;
}

uint64_t
hotkeys_add(struct hotkeys *h, const char *key, size_t len, uint64_t hash,
            uint32_t backend, uint64_t now_s)
{
    struct hotkeys_window *w = &h->w[h->cur];
    struct hotkeys_entry *e, *min = NULL;

    if (now_s >= w->start_s + HOTKEYS_WINDOW_S) {
        /* The current window is over: it becomes the last finished one
         * (or, if it ended long ago, nothing is). */
        h->cur ^= 1;
        hotkeys_window_reset(&h->w[h->cur], now_s);
        if (now_s >= w->start_s + 2 * HOTKEYS_WINDOW_S) {
            hotkeys_window_reset(w, 0);
        }
        w = &h->w[h->cur];
    }
    if (len > HOTKEYS_KEY_MAX) {
        len = HOTKEYS_KEY_MAX;
    }
    w->samples++;
    hotkeys_count_backend(w, backend);
    for (uint32_t i = 0; i < w->n; i++) {
        e = &w->e[i];
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
            e->count++;
            e->backend = backend;
            return e->count - e->error;
        }
        if (min == NULL || e->count < min->count) {
            min = e;
        }
    }
    if (w->n < h->k) {
        e = &w->e[w->n++];
        e->count = 1;
        e->error = 0;
    } else {
        /* Space-saving: the smallest counter goes to the newcomer, which
         * may have had up to that many samples. */
        e = min;
        e->error = e->count;
        e->count++;
    }
    e->hash = hash;
    e->backend = backend;
    e->len = (uint16_t)len;
    memcpy(e->key, key, len);
    return e->count - e->error;
}

static void
hotkeys_merge_window(struct hotkeys_merged *m, const struct hotkeys_window *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        const struct hotkeys_entry *e = &w->e[i];
        uint32_t j;

        for (j = 0; j < m->n; j++) {
            if (m->e[j].hash == e->hash && m->e[j].len == e->len &&
                memcmp(m->e[j].key, e->key, e->len) == 0) {
                break;
            }
        }
        if (j == m->n) {
            if (m->n == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 64;
                m->e = util_xrealloc(m->e, m->cap, sizeof(*m->e));
            }
            m->e[m->n] = *e;
            m->e[m->n].count = 0;
            m->e[m->n].error = 0;
            m->n++;
        }
        m->e[j].count += e->count;
        m->e[j].error += e->error;
        m->e[j].backend = e->backend;
    }
    m->samples += w->samples;
    if (w->nbackends > m->nbackends) {
        m->per_backend = util_xrealloc(m->per_backend, w->nbackends,
                                       sizeof(*m->per_backend));
        memset(m->per_backend + m->nbackends, 0,
               (w->nbackends - m->nbackends) * sizeof(*m->per_backend));
        m->nbackends = w->nbackends;
    }
    for (uint32_t b = 0; b < w->nbackends; b++) {
        m->per_backend[b] += w->per_backend[b];
    }
}

void
hotkeys_merge(struct hotkeys_merged *m, const struct hotkeys *h,
              uint64_t now_s)
{
    uint64_t start = now_s;

    for (unsigned i = 0; i < 2; i++) {
        const struct hotkeys_window *w = &h->w[i];

        /* A window that ended more than a window ago is too old. */
        if (w->start_s == 0 || now_s >= w->start_s + 2 * HOTKEYS_WINDOW_S) {
            continue;
        }
        hotkeys_merge_window(m, w);
        if (w->start_s < start) {
            start = w->start_s;
        }
    }
    if ((double)(now_s - start) > m->seconds) {
        m->seconds = (double)(now_s - start);
    }
}

/* By samples certainly counted (count - error), largest first. */
static int
hotkeys_cmp(const void *a, const void *b)
{
    const struct hotkeys_entry *x = a, *y = b;
    uint64_t sx = x->count - x->error, sy = y->count - y->error;

    return sx < sy ? 1 : sx > sy ? -1 : 0;
}

void
hotkeys_top(struct hotkeys_merged *m, uint32_t k)
{
    uint32_t keep = 0;

    if (m->n > 0) {
        qsort(m->e, m->n, sizeof(*m->e), hotkeys_cmp);
    }
    /* A key with no sample certainly its own is noise. */
    while (keep < m->n && keep < k && m->e[keep].count > m->e[keep].error) {
        keep++;
    }
    m->n = keep;
}

void
hotkeys_merged_free(struct hotkeys_merged *m)
{
    free(m->e);
    free(m->per_backend);
    memset(m, 0, sizeof(*m));
}
