/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * watch: the hub of watchers, their rings, and the pieces of a line (see
 * watch.h for the data flow).
 *
 * A ring is single-producer (worker i, the only one writing ring i of a
 * slot) and single-consumer (the slot's consumer): head and tail count
 * bytes ever written and read, so that head - tail is what it holds;
 * the producer publishes with a release store of head, the consumer
 * frees room with a release store of tail. Only whole lines go in, so
 * the consumer can always stop at a newline.
 *
 * Slot life: watch_open() takes one reference for its consumer and one
 * for each worker, and tells the workers; each worker drops its own when
 * told to stop (watch_tap_remove()), the consumer its own in
 * watch_close(); the last one frees the rings and the slot is free
 * again. Once the hub is quiesced (the workers are being destroyed) no
 * message goes out and watch_destroy() frees what is left.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "log.h"
#include "util.h"
#include "watch.h"

_Static_assert((WATCH_RING_BYTES & (WATCH_RING_BYTES - 1)) == 0,
               "a ring is a power of two");
_Static_assert(WATCH_MAX <= 32, "a request's watchers are a 32-bit mask");
_Static_assert(WATCH_LINE_MAX < WATCH_RING_BYTES / 4,
               "a ring holds several lines");

/* One worker's lines for one watcher. */
struct watch_ring {
    _Alignas(64) _Atomic uint64_t head; /* bytes written: its worker */
    _Alignas(64) _Atomic uint64_t tail; /* bytes read: the consumer */
    char *buf;                          /* [WATCH_RING_BYTES] */
};

struct watch_slot {
    struct watch *hub;
    unsigned index;                 /* in hub->slots, its tap bit */
    uint32_t every;                 /* 1 in every requests */
    _Atomic unsigned refs;
    struct watch_ring *rings;       /* [hub->nworkers], owned */
};

/* Owned by the proxy. */
struct watch {
    pthread_mutex_t lock;           /* guards used[] */
    unsigned nworkers;
    watch_send_fn send;
    void *arg;
    _Atomic bool quiesced;
    _Atomic unsigned count;
    bool used[WATCH_MAX];
    struct watch_slot slots[WATCH_MAX];
};

struct watch *
watch_create(unsigned nworkers, watch_send_fn send, void *arg)
{
    struct watch *h = util_xcalloc(1, sizeof(*h));

    pthread_mutex_init(&h->lock, NULL);
    h->nworkers = nworkers;
    h->send = send;
    h->arg = arg;
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        h->slots[i].hub = h;
        h->slots[i].index = i;
    }
    return h;
}

void
watch_quiesce(struct watch *h)
{
    if (h != NULL) {
        atomic_store(&h->quiesced, true);
    }
}

static void
watch_free_rings(struct watch_slot *s)
{
    if (s->rings == NULL) {
        return;
    }
    for (unsigned i = 0; i < s->hub->nworkers; i++) {
        free(s->rings[i].buf);
    }
    free(s->rings);
    s->rings = NULL;
}

void
watch_destroy(struct watch *h)
{
    if (h == NULL) {
        return;
    }
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        watch_free_rings(&h->slots[i]);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

unsigned
watch_count(struct watch *h)
{
    return h != NULL ? atomic_load_explicit(&h->count, memory_order_relaxed)
                     : 0;
}

int
watch_parse_sample(const char *text, size_t len, uint32_t *every)
{
    uint64_t n = 0;

    if (len == 0 || len > 10 || text[0] == '0') {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        n = n * 10 + (uint64_t)(text[i] - '0');
    }
    if (n < 1 || n > WATCH_SAMPLE_MAX) {
        return -1;
    }
    *every = (uint32_t)n;
    return 0;
}

/* Drops one reference to s: the last frees its rings and the slot. */
static void
watch_unref(struct watch_slot *s)
{
    struct watch *h = s->hub;

    if (atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    watch_free_rings(s);
    pthread_mutex_lock(&h->lock);
    h->used[s->index] = false;
    atomic_fetch_sub(&h->count, 1);
    pthread_mutex_unlock(&h->lock);
}

struct watch_slot *
watch_open(struct watch *h, uint32_t every)
{
    struct watch_slot *s = NULL;

    if (atomic_load(&h->quiesced)) {
        return NULL;
    }
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < WATCH_MAX; i++) {
        if (!h->used[i]) {
            h->used[i] = true;
            atomic_fetch_add(&h->count, 1);
            s = &h->slots[i];
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (s == NULL) {
        return NULL;
    }
    s->every = every;
    if (posix_memalign((void **)&s->rings, 64,
                       h->nworkers * sizeof(*s->rings)) != 0) {
        log_error("out of memory");
        abort();
    }
    for (unsigned i = 0; i < h->nworkers; i++) {
        atomic_init(&s->rings[i].head, 0);
        atomic_init(&s->rings[i].tail, 0);
        s->rings[i].buf = util_xmalloc(WATCH_RING_BYTES);
    }
    atomic_store(&s->refs, 1 + h->nworkers);
    for (unsigned i = 0; i < h->nworkers; i++) {
        if (h->send(h->arg, i, true, s) != 0) {
            /* That worker never holds it. */
            log_warn("watch: cannot tell worker %u of a watcher", i);
            watch_unref(s);
        }
    }
    return s;
}

void
watch_close(struct watch_slot *s)
{
    struct watch *h = s->hub;

    if (!atomic_load(&h->quiesced)) {
        for (unsigned i = 0; i < h->nworkers; i++) {
            if (h->send(h->arg, i, false, s) != 0) {
                /* It may still write: the slot stays until
                 * watch_destroy(). */
                log_warn("watch: cannot tell worker %u a watcher left", i);
                atomic_fetch_add(&s->refs, 1);
            }
        }
    }
    watch_unref(s);
}

/* The last newline in ring bytes [from, from + n), as a count of bytes up
 * to and including it, or 0. */
static size_t
watch_ring_cut(const struct watch_ring *r, uint64_t from, size_t n)
{
    while (n > 0) {
        if (r->buf[(from + n - 1) & (WATCH_RING_BYTES - 1)] == '\n') {
            return n;
        }
        n--;
    }
    return 0;
}

size_t
watch_read(struct watch_slot *s, struct evbuffer *out, size_t room)
{
    size_t moved = 0;

    for (unsigned i = 0; i < s->hub->nworkers && room > 0; i++) {
        struct watch_ring *r = &s->rings[i];
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        size_t n = (size_t)(head - tail);
        size_t pos, first;

        if (n == 0) {
            continue;
        }
        if (n > room) {
            n = watch_ring_cut(r, tail, room);
            if (n == 0) {
                continue;
            }
        }
        pos = (size_t)(tail & (WATCH_RING_BYTES - 1));
        first = n < WATCH_RING_BYTES - pos ? n : WATCH_RING_BYTES - pos;
        evbuffer_add(out, r->buf + pos, first);
        if (n > first) {
            evbuffer_add(out, r->buf, n - first);
        }
        atomic_store_explicit(&r->tail, tail + n, memory_order_release);
        moved += n;
        room -= n;
    }
    return moved;
}

void
watch_tap_add(struct watch_tap *t, struct watch_slot *s)
{
    unsigned i = s->index;

    t->slot[i] = s;
    t->every[i] = s->every;
    t->countdown[i] = 1;            /* the next request is sampled */
    t->dropped[i] = 0;
    t->mask |= 1u << i;
}

void
watch_tap_remove(struct watch_tap *t, struct watch_slot *s)
{
    unsigned i = s->index;

    if (t->slot[i] == s) {
        t->slot[i] = NULL;
        t->mask &= ~(1u << i);
    }
    watch_unref(s);
}

uint32_t
watch_tap_sample(struct watch_tap *t)
{
    uint32_t mask = 0;

    for (uint32_t m = t->mask; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);

        if (--t->countdown[i] == 0) {
            t->countdown[i] = t->every[i];
            mask |= 1u << i;
        }
    }
    return mask;
}

/* Copies n bytes to ring r at head. */
static void
watch_ring_put(struct watch_ring *r, uint64_t head, const char *p, size_t n)
{
    size_t pos = (size_t)(head & (WATCH_RING_BYTES - 1));
    size_t first = n < WATCH_RING_BYTES - pos ? n : WATCH_RING_BYTES - pos;

    memcpy(r->buf + pos, p, first);
    memcpy(r->buf, p + first, n - first);
}

void
watch_tap_emit(struct watch_tap *t, unsigned worker, uint32_t mask,
               const char *line, size_t len, uint64_t *events,
               uint64_t *dropped)
{
    const char *sp = memchr(line, ' ', len);
    size_t tslen = sp != NULL ? (size_t)(sp - line) : 0;

    for (uint32_t m = mask & t->mask; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        struct watch_ring *r = &t->slot[i]->rings[worker];
        uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        size_t room = WATCH_RING_BYTES - (size_t)(head - tail);
        char note[96];
        size_t nlen = 0;

        if (t->dropped[i] > 0) {
            /* "ts=... dropped=N": the line's own time. */
            int k = snprintf(note, sizeof(note), "%.*s dropped=%llu\n",
                             (int)(tslen < 40 ? tslen : 40), line,
                             (unsigned long long)t->dropped[i]);

            nlen = k > 0 ? (size_t)k : 0;
        }
        if (nlen + len > room) {
            t->dropped[i]++;
            (*dropped)++;
            continue;
        }
        if (nlen > 0) {
            watch_ring_put(r, head, note, nlen);
            head += nlen;
            t->dropped[i] = 0;
        }
        watch_ring_put(r, head, line, len);
        atomic_store_explicit(&r->head, head + len, memory_order_release);
        (*events)++;
    }
}

size_t
watch_escape_key(const char *key, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (size_t i = 0; i < len && n + 5 <= cap; i++) {
        unsigned char b = (unsigned char)key[i];

        if (b == '\\') {
            out[n++] = '\\';
            out[n++] = '\\';
        } else if (b > 0x20 && b < 0x7f) {
            out[n++] = (char)b;
        } else {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[b >> 4];
            out[n++] = hex[b & 15];
        }
    }
    if (cap > 0) {
        out[n] = '\0';
    }
    return n;
}

static bool
watch_word_is(const char *w, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(w, word, n) == 0;
}

const char *
watch_result(const char *line, size_t len, bool meta, const char *cmd)
{
    static const struct {
        const char *word;
        const char *result;
    } classic[] = {
        {"STORED", "stored"},         {"NOT_STORED", "not_stored"},
        {"EXISTS", "exists"},         {"NOT_FOUND", "not_found"},
        {"DELETED", "deleted"},       {"TOUCHED", "touched"},
        {"OK", "ok"},                 {"ERROR", "error"},
        {"CLIENT_ERROR", "client_error"},
        {"SERVER_ERROR", "server_error"},
        {"VALUE", "hit"},             {"END", "miss"},
        {"VERSION", "ok"},            {"STAT", "ok"},
        {"RESET", "ok"},              {"MN", "ok"},
    };
    size_t n = 0;

    while (n < len && line[n] != ' ' && line[n] != ':' && line[n] != '\r' &&
           line[n] != '\n') {
        n++;
    }
    if (n == 0) {
        return "none";
    }
    if (line[0] >= '0' && line[0] <= '9') {
        return "ok"; /* incr, decr: the new value */
    }
    if (meta && n == 2) {
        bool mg = strcmp(cmd, "mg") == 0;

        if (watch_word_is(line, n, "VA")) {
            return mg ? "hit" : "ok";
        }
        if (watch_word_is(line, n, "HD")) {
            return mg                        ? "hit"
                   : strcmp(cmd, "ms") == 0 ? "stored"
                   : strcmp(cmd, "md") == 0 ? "deleted"
                                            : "ok";
        }
        if (watch_word_is(line, n, "EN")) {
            return "miss";
        }
        if (watch_word_is(line, n, "NF")) {
            return "not_found";
        }
        if (watch_word_is(line, n, "NS")) {
            return "not_stored";
        }
        if (watch_word_is(line, n, "EX")) {
            return "exists";
        }
        if (watch_word_is(line, n, "ME")) {
            return "ok";
        }
    }
    if ((watch_word_is(line, n, "VALUE") || watch_word_is(line, n, "END")) &&
        strcmp(cmd, "get") != 0 && strcmp(cmd, "gets") != 0 &&
        strcmp(cmd, "gat") != 0 && strcmp(cmd, "gats") != 0) {
        return "ok"; /* stats ARGS: lines, then END */
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(classic); i++) {
        if (watch_word_is(line, n, classic[i].word)) {
            return classic[i].result;
        }
    }
    return "other";
}

size_t
watch_ts(char *buf, size_t cap)
{
    struct timespec ts;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    n = snprintf(buf, cap, "ts=%lld.%06ld", (long long)ts.tv_sec,
                 (long)(ts.tv_nsec / 1000));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int
watch_parse_args(const char *args, size_t len, uint32_t *every)
{
    const char *p = args, *end = args + len;
    bool seen = false;

    *every = 1;
    while (p < end) {
        const char *tok, *sp;
        size_t n;

        while (p < end && *p == ' ') {
            p++;
        }
        if (p == end) {
            break;
        }
        tok = p;
        sp = memchr(p, ' ', (size_t)(end - p));
        n = sp != NULL ? (size_t)(sp - p) : (size_t)(end - p);
        p = tok + n;
        if (seen || n < 8 || memcmp(tok, "sample=", 7) != 0 ||
            watch_parse_sample(tok + 7, n - 7, every) != 0) {
            return -1;
        }
        seen = true;
    }
    return 0;
}
