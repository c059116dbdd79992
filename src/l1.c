/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * l1: see l1.h. An entry's bytes are its key and block plus the entry
 * itself, so that many small entries cannot pass max_bytes either.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "l1.h"
#include "util.h"

void
l1_init(struct l1 *c, size_t max_bytes, uint64_t ttl_us)
{
    memset(c, 0, sizeof(*c));
    c->max_bytes = max_bytes;
    c->ttl_us = ttl_us;
    TAILQ_INIT(&c->lru);
}

static size_t
l1_size(const struct l1_entry *e)
{
    return sizeof(*e) + e->keylen + e->blocklen;
}

/* The link that points at key's entry (at the bucket's end: NULL). */
static struct l1_entry **
l1_find(struct l1 *c, const char *key, size_t len, uint64_t hash)
{
    struct l1_entry **at = &c->bucket[hash % L1_BUCKETS];

    while (*at != NULL && ((*at)->hash != hash || (*at)->keylen != len ||
                           memcmp((*at)->data, key, len) != 0)) {
        at = &(*at)->next;
    }
    return at;
}

static void
l1_unlink(struct l1 *c, struct l1_entry **at)
{
    struct l1_entry *e = *at;

    *at = e->next;
    TAILQ_REMOVE(&c->lru, e, lru);
    c->bytes -= l1_size(e);
    c->n--;
    free(e);
}

void
l1_clear(struct l1 *c)
{
    for (unsigned b = 0; b < L1_BUCKETS; b++) {
        while (c->bucket[b] != NULL) {
            l1_unlink(c, &c->bucket[b]);
        }
    }
}

const char *
l1_get(struct l1 *c, const char *key, size_t len, uint64_t hash,
       uint64_t now_us, size_t *blocklen)
{
    struct l1_entry **at;

    if (c->n == 0) {
        return NULL;
    }
    at = l1_find(c, key, len, hash);
    if (*at == NULL) {
        return NULL;
    }
    if ((*at)->expires_us <= now_us) {
        l1_unlink(c, at);
        return NULL;
    }
    *blocklen = (*at)->blocklen;
    return (*at)->data + (*at)->keylen;
}

uint32_t
l1_watch(struct l1 *c, uint64_t hash, uint32_t *gen)
{
    struct l1_watch *free_slot = NULL;

    for (uint32_t i = 0; i < L1_WATCH; i++) {
        struct l1_watch *w = &c->watch[i];

        if (w->refs > 0 && w->hash == hash) {
            w->refs++;
            *gen = w->gen;
            return i + 1;
        }
        if (w->refs == 0 && free_slot == NULL) {
            free_slot = w;
        }
    }
    if (free_slot == NULL) {
        return 0;
    }
    free_slot->hash = hash;
    free_slot->gen = ++c->gen;
    free_slot->refs = 1;
    c->nwatch++;
    *gen = free_slot->gen;
    return (uint32_t)(free_slot - c->watch) + 1;
}

bool
l1_unwatch(struct l1 *c, uint32_t slot, uint32_t gen)
{
    struct l1_watch *w;
    bool good;

    if (slot == 0 || slot > L1_WATCH || c->watch[slot - 1].refs == 0) {
        return false;
    }
    w = &c->watch[slot - 1];
    good = w->gen == gen;
    if (--w->refs == 0) {
        c->nwatch--;
    }
    return good;
}

/* Moves the ticket of every watched key of hash (all: every key). */
static void
l1_move_tickets(struct l1 *c, uint64_t hash, bool all)
{
    for (uint32_t i = 0; c->nwatch > 0 && i < L1_WATCH; i++) {
        struct l1_watch *w = &c->watch[i];

        if (w->refs > 0 && (all || w->hash == hash)) {
            w->gen = ++c->gen;
        }
    }
}

bool
l1_put(struct l1 *c, const char *key, size_t len, uint64_t hash,
       const char *block, size_t blocklen, uint64_t now_us,
       unsigned *evicted)
{
    struct l1_entry **at, *e;
    size_t need = sizeof(*e) + len + blocklen;

    *evicted = 0;
    if (need > c->max_bytes / 4) {
        return false;
    }
    at = l1_find(c, key, len, hash);
    if (*at != NULL) {
        l1_unlink(c, at);
    }
    while (c->bytes + need > c->max_bytes) {
        struct l1_entry *old = TAILQ_FIRST(&c->lru);

        l1_unlink(c, l1_find(c, old->data, old->keylen, old->hash));
        ++*evicted;
    }
    e = util_xmalloc(need);
    e->hash = hash;
    e->expires_us = now_us + c->ttl_us;
    e->keylen = (uint32_t)len;
    e->blocklen = (uint32_t)blocklen;
    memcpy(e->data, key, len);
    memcpy(e->data + len, block, blocklen);
    at = &c->bucket[hash % L1_BUCKETS];
    e->next = *at;
    *at = e;
    TAILQ_INSERT_TAIL(&c->lru, e, lru);
    c->bytes += need;
    c->n++;
    return true;
}

bool
l1_invalidate(struct l1 *c, const char *key, size_t len, uint64_t hash)
{
    struct l1_entry **at;

    l1_move_tickets(c, hash, false);
    if (c->n == 0) {
        return false;
    }
    at = l1_find(c, key, len, hash);
    if (*at == NULL) {
        return false;
    }
    l1_unlink(c, at);
    return true;
}

void
l1_invalidate_all(struct l1 *c)
{
    l1_move_tickets(c, 0, true);
    l1_clear(c);
}
