/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * copier: see copier.h.
 *
 * One thread; the main thread hands it snapshots under lock. A pass:
 *
 *   for each backend B of t (UP), again while a walk found keys to move:
 *     metadump B -> the keys whose owner in t is another backend (at most
 *                   COPIER_MAX_KEYS; B is walked again when there were more)
 *     in batches: mg on B; mg N (placeholder) then ms C on each owner;
 *                 md C on B, and the copy deleted again where B's item
 *                 changed meanwhile
 *
 * I/O is blocking, on libevent buffers (evbuffer_read/evbuffer_write), with
 * SO_RCVTIMEO and SO_SNDTIMEO as the timeouts; any error ends the work on
 * that backend for this pass (counted), the keys staying where they are.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "backend.h"
#include "config.h"
#include "copier.h"
#include "log.h"
#include "mem.h"
#include "proto.h"
#include "ring.h"
#include "topology.h"
#include "util.h"

/* Tries of a metadump while another crawl is running (BUSY). */
#define COPIER_BUSY_TRIES 20
/* A pass walks every backend again while the last walk found keys to
 * move: memcached's crawler skips items in use at that moment (being read,
 * for instance), so one walk under load is not the whole list. */
#define COPIER_ROUNDS 8

struct copier {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Under lock. */
    struct topology *next;          /* the pass to run next, or NULL */
    unsigned next_rate;
    unsigned next_rounds;
    bool paused;
    bool stop;
    bool cancel;                    /* the pass in progress ends */
    bool busy;                      /* a pass is queued or running */
    struct copier_progress prog;
    /* The copy thread's own: deletes left for the end of a walk. */
    struct copier_later *later;
    size_t nlater, latercap;
};

/* A blocking connection to one backend. */
struct copier_conn {
    int fd;                         /* -1: none */
    struct evbuffer *in, *out;
};

/* A key of a batch and what happened to it. */
struct copier_key {
    char *key;                      /* as stored (NUL-terminated) */
    size_t len;
    char *name;                     /* on the wire: key, or its base64 */
    bool b64;                       /* ... then (flag b) */
    struct backend *owner;
    char *data;                     /* value and "\r\n", or NULL: no hit
                                       (or nothing to copy) */
    struct proto_meta_value mv;     /* its len, flags, ttl and cas */
    uint64_t cas;                   /* the placeholder's, then the copy's
                                       cas on the owner */
    bool orphan;                    /* the holder was no owner of it */
    bool stored;                    /* the owner took it (HD) */
    bool done;                      /* the holder's item goes */
};

static void
copier_conn_close(struct copier_conn *cc)
{
    if (cc->fd >= 0) {
        close(cc->fd);
    }
    if (cc->in != NULL) {
        evbuffer_free(cc->in);
    }
    if (cc->out != NULL) {
        evbuffer_free(cc->out);
    }
    cc->fd = -1;
    cc->in = cc->out = NULL;
}

static int
copier_conn_open(struct copier_conn *cc, struct backend *be,
                 unsigned timeout_ms)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    struct timeval tv = {(time_t)(timeout_ms / 1000),
                         (suseconds_t)(timeout_ms % 1000) * 1000};

    cc->fd = -1;
    cc->in = evbuffer_new();
    cc->out = evbuffer_new();
    if (cc->in == NULL || cc->out == NULL ||
        !backend_address(be, &sa, &salen)) {
        copier_conn_close(cc);
        return -1;
    }
    cc->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cc->fd < 0 ||
        setsockopt(cc->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(cc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(cc->fd, (struct sockaddr *)&sa, salen) != 0) {
        copier_conn_close(cc);
        return -1;
    }
    return 0;
}

static int
copier_flush(struct copier_conn *cc)
{
    while (evbuffer_get_length(cc->out) > 0) {
        if (evbuffer_write(cc->out, cc->fd) <= 0) {
            return -1;
        }
    }
    return 0;
}

/* The next line (without its EOL, NUL-terminated; the caller frees it
 * with mem_free(): libevent allocated it). */
static char *
copier_line(struct copier_conn *cc, size_t *len)
{
    for (;;) {
        char *l = evbuffer_readln(cc->in, len, EVBUFFER_EOL_CRLF);

        if (l != NULL) {
            return l;
        }
        if (evbuffer_get_length(cc->in) > 64 * 1024 ||
            evbuffer_read(cc->in, cc->fd, 64 * 1024) <= 0) {
            return NULL;
        }
    }
}

/* The next n bytes, into a new buffer (caller frees). */
static char *
copier_bytes(struct copier_conn *cc, size_t n)
{
    char *p;

    while (evbuffer_get_length(cc->in) < n) {
        if (evbuffer_read(cc->in, cc->fd, 256 * 1024) <= 0) {
            return NULL;
        }
    }
    p = util_xmalloc(n ? n : 1);
    evbuffer_remove(cc->in, p, n);
    return p;
}

/* Waits between batches: paused, or the pace. Returns false when the pass
 * must end (stop or cancel; a newer snapshot waits for the pass to end, so
 * that steps that come faster than a walk do not restart it forever). */
static bool
copier_wait(struct copier *c, uint64_t until_ns)
{
    bool go;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        uint64_t now = util_now_ns();
        struct timespec ts;

        if (c->stop || c->cancel) {
            break;
        }
        if (!c->paused && now >= until_ns) {
            break;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        if (c->paused) {
            ts.tv_sec += 1;
        } else {
            uint64_t d = until_ns - now;

            ts.tv_sec += (time_t)(d / 1000000000u);
            ts.tv_nsec += (long)(d % 1000000000u);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
        }
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    go = !c->stop && !c->cancel;
    pthread_mutex_unlock(&c->lock);
    return go;
}

/*
 * Lists the keys of be whose owner in t is another backend into keys
 * (at most COPIER_MAX_KEYS). Returns how many, or -1 on an error; *more
 * when it stopped at the bound.
 */
static long
copier_scan(struct copier *c, const struct topology *t, struct backend *be,
            struct copier_key *keys, bool *more)
{
    struct copier_conn cc;
    long n = 0;

    *more = false;
    for (int tries = 0;; tries++) {
        char *l;
        size_t len;

        if (copier_conn_open(&cc, be, t->cfg->timeout_ms) != 0) {
            return -1;
        }
        evbuffer_add_printf(cc.out, "lru_crawler metadump all\r\n");
        if (copier_flush(&cc) != 0 || (l = copier_line(&cc, &len)) == NULL) {
            copier_conn_close(&cc);
            return -1;
        }
        if (strncmp(l, "BUSY", 4) != 0) {
            /* The first line of the dump (or END, or an error). */
            for (;;) {
                if (strcmp(l, "END") == 0) {
                    mem_free(l);
                    copier_conn_close(&cc);
                    return n;
                }
                if (strncmp(l, "key=", 4) != 0) {
                    log_warn("migration copy: %s answered metadump with "
                             "'%.80s'", be->name, l);
                    mem_free(l);
                    copier_conn_close(&cc);
                    return -1;
                }
                atomic_fetch_add(&c->prog.scanned, 1);
                if (n < COPIER_MAX_KEYS) {
                    char *sp = strchr(l + 4, ' ');
                    size_t klen = 0;
                    char *key;

                    if (sp != NULL) {
                        *sp = '\0';
                    }
                    key = evhttp_uridecode(l + 4, 0, &klen);
                    if (key != NULL && klen > 0 && klen <= PROTO_KEY_MAX &&
                        t->backends[topology_owner_index(t, key, klen)] != be) {
                        struct copier_key *k = &keys[n++];

                        k->key = k->name = key;
                        k->len = klen;
                        /* A binary key (stored with the meta protocol's
                         * b flag) is named in base64. */
                        k->b64 = !proto_key_classic(key, klen);
                        if (k->b64) {
                            k->name =
                                util_xmalloc(PROTO_BASE64_LEN(klen) + 1);
                            proto_base64_encode(key, klen, k->name);
                        }
                        key = NULL;
                    }
                    mem_free(key);
                } else {
                    *more = true;
                }
                mem_free(l);
                if ((l = copier_line(&cc, &len)) == NULL) {
                    copier_conn_close(&cc);
                    return -1;
                }
            }
        }
        mem_free(l);
        copier_conn_close(&cc);
        if (tries >= COPIER_BUSY_TRIES || !copier_wait(c, util_now_ns() +
                                                              500000000u)) {
            return -1;
        }
    }
}

/* Owner connections of a pass, by backend id. */
struct copier_owners {
    struct copier_conn *conns;
    uint32_t n;
};

static struct copier_conn *
copier_owner_conn(struct copier_owners *o, struct backend *be,
                  unsigned timeout_ms)
{
    struct copier_conn *cc;

    if (be->id >= o->n) {
        uint32_t n = be->id + 16;

        o->conns = util_xrealloc(o->conns, n, sizeof(*o->conns));
        for (uint32_t i = o->n; i < n; i++) {
            o->conns[i] = (struct copier_conn){-1, NULL, NULL};
        }
        o->n = n;
    }
    cc = &o->conns[be->id];
    if (cc->fd < 0 && copier_conn_open(cc, be, timeout_ms) != 0) {
        return NULL;
    }
    return cc;
}

/* A holder's item to delete once the walk is over (md C<cas>). */
struct copier_later {
    struct backend *holder;
    char *name;                     /* as copier_key */
    bool b64;
    uint64_t cas;
};

/* The b flag of a key named in base64. */
#define COPIER_B(b64) ((b64) ? " b" : "")

static void
copier_later(struct copier *c, struct backend *be, const struct copier_key *k)
{
    if (c->nlater == c->latercap) {
        c->latercap = c->latercap ? c->latercap * 2 : 256;
        c->later = util_xrealloc(c->later, c->latercap, sizeof(*c->later));
    }
    c->later[c->nlater++] =
        (struct copier_later){be, util_xstrdup(k->name), k->b64, k->mv.cas};
}

/* Deletes the items copier_later() kept, each if unchanged since read,
 * in batches per holder. */
static void
copier_flush_later(struct copier *c, unsigned timeout_ms)
{
    for (size_t i = 0, j; i < c->nlater; i = j) {
        struct backend *be = c->later[i].holder;
        struct copier_conn cc;
        bool ok;
        size_t len;

        for (j = i; j < c->nlater && c->later[j].holder == be &&
                    j - i < COPIER_BATCH;
             j++) {
        }
        ok = copier_conn_open(&cc, be, timeout_ms) == 0;
        for (size_t k = i; ok && k < j; k++) {
            evbuffer_add_printf(cc.out, "md %s%s C%llu\r\n",
                                c->later[k].name, COPIER_B(c->later[k].b64),
                                (unsigned long long)c->later[k].cas);
        }
        ok = ok && copier_flush(&cc) == 0;
        for (size_t k = i; ok && k < j; k++) {
            char *l = copier_line(&cc, &len);

            ok = l != NULL;
            mem_free(l);
        }
        if (cc.fd >= 0 || cc.in != NULL) {
            copier_conn_close(&cc);
        }
        if (!ok) {
            atomic_fetch_add(&c->prog.failed, 1);
        }
    }
    for (size_t k = 0; k < c->nlater; k++) {
        free(c->later[k].name);
    }
    c->nlater = 0;
}

/* For each key of keys[0..n) still to copy, sends its owner the
 * placeholder (claim) or the value over it, then reads the replies in
 * order into handle(). Returns 0 or -1. */
static int
copier_round(struct copier_owners *owners, struct copier_key *keys, size_t n,
             bool claim,
             void (*handle)(struct copier *, struct backend *,
                            struct copier_key *, const char *),
             struct copier *c, struct backend *be)
{
    for (size_t i = 0; i < n; i++) {
        struct copier_key *k = &keys[i];
        struct copier_conn *oc = &owners->conns[k->owner->id];

        if (k->data == NULL) {
            continue;
        }
        if (claim) {
            evbuffer_add_printf(oc->out,
                                "mg %s%s c N" UTIL_STR(PROTO_CLAIM_TTL) "\r\n",
                                k->name, COPIER_B(k->b64));
        } else {
            evbuffer_add_printf(
                oc->out, "ms %s %u%s C%llu F%u T%lld c\r\n", k->name,
                k->mv.len, COPIER_B(k->b64), (unsigned long long)k->cas,
                k->mv.flags,
                (long long)proto_copy_exptime(k->mv.ttl, (int64_t)time(NULL)));
            evbuffer_add(oc->out, k->data, (size_t)k->mv.len + 2);
        }
        if (copier_flush(oc) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct copier_key *k = &keys[i];
        size_t len;
        char *l;

        if (k->data == NULL) {
            continue;
        }
        if ((l = copier_line(&owners->conns[k->owner->id], &len)) == NULL) {
            return -1;
        }
        handle(c, be, k, l);
        mem_free(l);
    }
    return 0;
}

/* The owner's answer to the placeholder (mg k c N): ours (W), a value
 * there already, or another mover's placeholder (Z). */
static void
copier_claimed(struct copier *c, struct backend *be, struct copier_key *k,
               const char *l)
{
    struct proto_meta_value mv;
    bool hd = proto_parse_meta_hit(l, strlen(l), &mv) == 0 && mv.len == 0 &&
              mv.has_cas;

    if (hd && mv.won && !mv.stale) {
        k->cas = mv.cas;
        return;
    }
    if (hd && !mv.won && !mv.claimed && !mv.stale) {
        /* The owner has a value: written since, so newer (or a warm-up
         * copy's, whose own check of the holder may be under way:
         * deleting the holder's now would make that check undo it). The
         * holder's goes at the end of the walk, when no such check is
         * left. */
        copier_later(c, be, k);
        atomic_fetch_add(&c->prog.skipped, 1);
    } else if (hd) {
        /* Being filled by another mover: left for the next walk. */
        atomic_fetch_add(&c->prog.skipped, 1);
    } else {
        atomic_fetch_add(&c->prog.failed, 1);
    }
    free(k->data);
    k->data = NULL;
}

/* The owner's answer to the copy (ms C<placeholder>). */
static void
copier_copied(struct copier *c, struct backend *be, struct copier_key *k,
              const char *l)
{
    struct proto_meta_value mv;

    (void)be;
    if (proto_parse_meta_hit(l, strlen(l), &mv) == 0 && mv.has_cas) {
        k->cas = mv.cas;
        k->stored = true;
    } else {
        /* EX or NF: a write replaced the placeholder, or a delete took
         * it: the holder's item is older than that. */
        atomic_fetch_add(&c->prog.skipped, 1);
    }
    k->done = true;
    free(k->data);
    k->data = NULL;
}

/* Moves keys[0..n) from be to their owners; *found counts them. Returns
 * 0 or -1. */
static int
copier_move(struct copier *c, const struct topology *t, struct backend *be,
            struct copier_conn *src, struct copier_owners *owners,
            struct copier_key *keys, size_t n, uint64_t *found)
{
    unsigned tmo = t->cfg->timeout_ms;
    int rc = 0;

    /* 1. What the holder has. */
    for (size_t i = 0; i < n; i++) {
        keys[i].owner =
            t->backends[topology_owner_index(t, keys[i].key, keys[i].len)];
        evbuffer_add_printf(src->out, "mg %s%s v f t c\r\n", keys[i].name,
                            COPIER_B(keys[i].b64));
    }
    if (copier_flush(src) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *l = copier_line(src, &len);

        if (l == NULL) {
            return -1;
        }
        if (proto_parse_meta_value(l, len, &keys[i].mv) == 0) {
            keys[i].data = copier_bytes(src, (size_t)keys[i].mv.len + 2);
            if (keys[i].data == NULL) {
                mem_free(l);
                return -1;
            }
        }
        mem_free(l);
    }
    *found += n;
    /* 2. Which to copy: those whose holder was their owner before the
     * move. A key the holder never owned (left by an earlier change, or
     * written there while its owner was DOWN) may be older than what its
     * owner had since, and deleted there since: it is deleted, not
     * copied. */
    for (size_t i = 0; i < n; i++) {
        struct copier_key *k = &keys[i];
        struct topology_prev p[TOPOLOGY_ORIGINS];
        unsigned np;
        bool moved = false;

        if (k->data == NULL) {
            atomic_fetch_add(&c->prog.skipped, 1);
            continue;
        }
        if (proto_copy_exptime(k->mv.ttl, (int64_t)time(NULL)) < 0 ||
            proto_meta_unsettled(&k->mv) || !backend_is_up(k->owner) ||
            copier_owner_conn(owners, k->owner, tmo) == NULL) {
            atomic_fetch_add(&c->prog.skipped, 1);
            free(k->data);
            k->data = NULL;
            continue;
        }
        np = topology_prev_owners(t, k->key, k->len, k->owner, false, p);
        for (unsigned j = 0; j < np; j++) {
            moved |= p[j].be == be;
        }
        if (!moved) {
            k->orphan = k->done = true;
            free(k->data);
            k->data = NULL;
        }
    }
    /* 3. A placeholder on each owner, then the value over it. */
    if (copier_round(owners, keys, n, true, copier_claimed, c, be) != 0 ||
        copier_round(owners, keys, n, false, copier_copied, c, be) != 0) {
        return -1;
    }
    /* 4. Deleted on the holder, if it did not change meanwhile. */
    for (size_t i = 0; i < n; i++) {
        if (keys[i].done) {
            evbuffer_add_printf(src->out, "md %s%s C%llu\r\n", keys[i].name,
                                COPIER_B(keys[i].b64),
                                (unsigned long long)keys[i].mv.cas);
        }
    }
    if (copier_flush(src) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct copier_key *k = &keys[i];
        size_t len;
        char *l;

        if (!k->done) {
            continue;
        }
        if ((l = copier_line(src, &len)) == NULL) {
            return -1;
        }
        if (strcmp(l, "HD") == 0) {
            atomic_fetch_add(k->stored   ? &c->prog.copied
                             : k->orphan ? &c->prog.orphans
                                         : &c->prog.skipped,
                             1);
        } else if (k->stored) {
            /* Changed or gone since the mg: written or deleted through
             * the proxy (which deletes the holder's copy), so the copy may
             * be older than what the client last did: it goes, unless
             * something replaced it already. (Moved by another mover
             * looks the same: a miss, never a stale value.) */
            struct copier_conn *oc = &owners->conns[k->owner->id];
            char *l2;

            evbuffer_add_printf(oc->out, "md %s%s C%llu\r\n", k->name,
                                COPIER_B(k->b64), (unsigned long long)k->cas);
            if (copier_flush(oc) != 0 || (l2 = copier_line(oc, &len)) ==
                                             NULL) {
                mem_free(l);
                return -1;
            }
            mem_free(l2);
            atomic_fetch_add(&c->prog.skipped, 1);
        } else {
            atomic_fetch_add(&c->prog.skipped, 1);
        }
        mem_free(l);
    }
    return rc;
}

static void
copier_free_keys(struct copier_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i].name != keys[i].key) {
            free(keys[i].name);
        }
        mem_free(keys[i].key);
        free(keys[i].data);
    }
    memset(keys, 0, n * sizeof(*keys));
}

/* Moves every misplaced key of be; *found counts those it found.
 * Returns false when the pass must end. */
static bool
copier_backend(struct copier *c, const struct topology *t, struct backend *be,
               unsigned rate, struct copier_owners *owners,
               struct copier_key *keys, uint64_t *found)
{
    bool more = true;

    while (more) {
        long n = copier_scan(c, t, be, keys, &more);
        struct copier_conn src;

        if (n < 0) {
            atomic_fetch_add(&c->prog.failed, 1);
            return copier_wait(c, 0);
        }
        if (n > 0 && copier_conn_open(&src, be, t->cfg->timeout_ms) != 0) {
            copier_free_keys(keys, (size_t)n);
            atomic_fetch_add(&c->prog.failed, (uint64_t)n);
            return copier_wait(c, 0);
        }
        for (long i = 0; i < n; i += COPIER_BATCH) {
            size_t b = (size_t)(n - i < COPIER_BATCH ? n - i : COPIER_BATCH);
            uint64_t t0 = util_now_ns();

            if (copier_move(c, t, be, &src, owners, keys + i, b, found) !=
                0) {
                log_warn("migration copy: an error on %s; its keys stay "
                         "where they are for now", be->name);
                atomic_fetch_add(&c->prog.failed, 1);
                more = false;
                break;
            }
            if (!copier_wait(c, t0 + (uint64_t)b * 1000000000u / rate)) {
                copier_free_keys(keys, (size_t)n);
                copier_conn_close(&src);
                return false;
            }
        }
        copier_free_keys(keys, (size_t)(n > 0 ? n : 0));
        if (n > 0) {
            copier_conn_close(&src);
        }
    }
    return true;
}

static void
copier_pass(struct copier *c, struct topology *t, unsigned rate,
            unsigned rounds)
{
    struct copier_key *keys = util_xcalloc(COPIER_MAX_KEYS, sizeof(*keys));
    struct copier_owners owners = {NULL, 0};
    uint64_t copied = atomic_load(&c->prog.copied);

    atomic_fetch_add(&c->prog.passes, 1);
    for (unsigned round = 0; round < rounds; round++) {
        uint64_t found = 0;
        bool go = true, missed = false;

        for (uint32_t i = 0; i < t->n && go; i++) {
            if (!backend_is_up(t->backends[i])) {
                missed = true; /* walked again, once it is back */
                continue;
            }
            go = copier_backend(c, t, t->backends[i], rate, &owners, keys,
                                &found);
        }
        copier_flush_later(c, t->cfg->timeout_ms);
        if (!go || (found == 0 && !missed) ||
            (missed && !copier_wait(c, util_now_ns() + 1000000000u))) {
            break;
        }
    }
    for (uint32_t i = 0; i < owners.n; i++) {
        copier_conn_close(&owners.conns[i]);
    }
    free(owners.conns);
    free(keys);
    log_info("migration copy: pass over topology %llu done, %llu keys "
             "moved",
             (unsigned long long)t->generation,
             (unsigned long long)(atomic_load(&c->prog.copied) - copied));
}

static void *
copier_main(void *arg)
{
    struct copier *c = arg;

    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct topology *t = c->next;
        unsigned rate = c->next_rate;
        unsigned rounds = c->next_rounds;

        if (t == NULL) {
            c->busy = false;
            atomic_store(&c->prog.running, false);
            pthread_cond_wait(&c->cond, &c->lock);
            continue;
        }
        c->next = NULL;
        c->cancel = false;
        atomic_store(&c->prog.running, true);
        pthread_mutex_unlock(&c->lock);
        copier_pass(c, t, rate, rounds);
        topology_unref(t);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct copier *
copier_create(void)
{
    struct copier *c = util_xcalloc(1, sizeof(*c));

    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (pthread_create(&c->thread, NULL, copier_main, c) != 0) {
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
    }
    return c;
}

void
copier_destroy(struct copier *c)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    topology_unref(c->next);
    free(c->later);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void
copier_start(struct copier *c, struct topology *t, unsigned rate,
             bool thorough)
{
    if (rate == 0) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    topology_unref(c->next);
    c->next = topology_ref(t);
    c->next_rate = rate;
    c->next_rounds = thorough ? COPIER_ROUNDS : 1;
    c->busy = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void
copier_cancel(struct copier *c)
{
    pthread_mutex_lock(&c->lock);
    topology_unref(c->next);
    c->next = NULL;
    c->cancel = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void
copier_pause(struct copier *c, bool paused)
{
    pthread_mutex_lock(&c->lock);
    c->paused = paused;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

bool
copier_busy(struct copier *c)
{
    bool b;

    pthread_mutex_lock(&c->lock);
    b = c->busy;
    pthread_mutex_unlock(&c->lock);
    return b;
}

const struct copier_progress *
copier_progress(const struct copier *c)
{
    return &c->prog;
}
