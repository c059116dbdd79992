/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * spool: see spool.h.
 *
 * Invariants:
 *   - the file is a superset of what the recovery logs still have to do,
 *     but for the last SPOOL_SYNC_MS of notes: a record leaves it only
 *     when the file is rewritten from recovery_dump(), which reads the
 *     logs and the batches their passes hold under each log's lock;
 *   - the file is replaced whole (rename of a synced temporary file) or
 *     appended to; after a failed or short write nothing is appended until
 *     a rewrite succeeds, so a torn line can only be the last one;
 *   - file_keys counts the key records in the file (duplicates included),
 *     and never exceeds delete_spool_max: an append that would is a
 *     rewrite, which enforces the bound.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "backend.h"
#include "log.h"
#include "recovery.h"
#include "spool.h"
#include "topology.h"
#include "util.h"

/* ---- the format ---------------------------------------------------------- */

static bool
spool_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > CONFIG_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

/* The next field of [*p, end): up to a space (consumed) or the end. */
static struct proto_str
spool_field(const char **p, const char *end)
{
    const char *s = *p;
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    struct proto_str f = {s, (size_t)((sp != NULL ? sp : end) - s)};

    *p = sp != NULL ? sp + 1 : end;
    return f;
}

static bool
spool_is(struct proto_str f, const char *word)
{
    return f.len == strlen(word) && memcmp(f.p, word, f.len) == 0;
}

int
spool_parse_line(const char *line, size_t len, struct spool_record *rec)
{
    const char *p = line, *end = line + len;
    struct proto_str verb;

    memset(rec, 0, sizeof(*rec));
    if (len == 0 || memchr(line, '\n', len) != NULL) {
        return -1;
    }
    verb = spool_field(&p, end);
    rec->owner = spool_field(&p, end);
    if (!spool_name_ok(rec->owner.p, rec->owner.len)) {
        return -1;
    }
    if (spool_is(verb, "flush")) {
        rec->kind = SPOOL_FLUSH;
        return p == end && line[len - 1] != ' ' ? 0 : -1;
    }
    if (spool_is(verb, "delete")) {
        rec->kind = SPOOL_DELETE;
    } else if (spool_is(verb, "copy")) {
        rec->kind = SPOOL_COPY;
    } else {
        return -1;
    }
    if (p == end) {
        return -1;
    }
    rec->key = spool_field(&p, end);
    if (!proto_key_classic(rec->key.p, rec->key.len)) {
        return -1;
    }
    if (p < end || line[len - 1] == ' ') {
        rec->fallback = spool_field(&p, end);
        if (p != end || line[len - 1] == ' ' ||
            !spool_name_ok(rec->fallback.p, rec->fallback.len)) {
            return -1;
        }
    }
    return rec->kind == SPOOL_COPY && rec->fallback.len == 0 ? -1 : 0;
}

size_t
spool_format(char *buf, size_t cap, const struct spool_record *rec)
{
    int n;

    if (!spool_name_ok(rec->owner.p, rec->owner.len)) {
        return 0;
    }
    if (rec->kind == SPOOL_FLUSH) {
        n = snprintf(buf, cap, "flush %.*s\n", (int)rec->owner.len,
                     rec->owner.p);
    } else {
        if (!proto_key_classic(rec->key.p, rec->key.len) ||
            (rec->fallback.len > 0 &&
             !spool_name_ok(rec->fallback.p, rec->fallback.len)) ||
            (rec->kind == SPOOL_COPY && rec->fallback.len == 0)) {
            return 0;
        }
        n = snprintf(buf, cap, "%s %.*s %.*s%s%.*s\n",
                     rec->kind == SPOOL_DELETE ? "delete" : "copy",
                     (int)rec->owner.len, rec->owner.p, (int)rec->key.len,
                     rec->key.p, rec->fallback.len > 0 ? " " : "",
                     (int)rec->fallback.len,
                     rec->fallback.len > 0 ? rec->fallback.p : "");
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int
spool_read(const char *path, spool_record_fn fn, void *arg,
           struct spool_read_stats *st, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    if (fp == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "delete_spool %s: cannot open: %s", path,
                 strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, fp)) > 0) {
        size_t len = (size_t)n;
        bool cut = line[len - 1] != '\n';
        struct spool_record rec;

        lineno++;
        len -= !cut;
        if (lineno == 1) {
            if (len == strlen(SPOOL_HEADER) &&
                memcmp(line, SPOOL_HEADER, len) == 0 && !cut) {
                continue;
            }
            if (cut && len <= strlen(SPOOL_HEADER) &&
                memcmp(line, SPOOL_HEADER, len) == 0) {
                st->truncated = true;
                break;
            }
            snprintf(err, errlen,
                     "delete_spool %s: not a delete spool (its first line "
                     "is not \"%s\"); move it away or name another file",
                     path, SPOOL_HEADER);
            rc = -1;
            break;
        }
        if (cut) {
            st->truncated = true;
            break;
        }
        if (spool_parse_line(line, len, &rec) != 0) {
            if (st->malformed++ == 0) {
                st->first_malformed = lineno;
            }
            continue;
        }
        st->records++;
        if (fn != NULL) {
            fn(&rec, arg);
        }
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errlen, "delete_spool %s: cannot read: %s", path,
                 strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(fp);
    return rc;
}

/* The directory of path (a static-free copy in buf). */
static void
spool_dirname(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);

    if (n == 0) {
        snprintf(buf, cap, "%s", slash == NULL ? "." : "/");
        return;
    }
    snprintf(buf, cap, "%.*s", (int)n, path);
}

int
spool_check(const char *path, char *err, size_t errlen)
{
    struct spool_read_stats st;
    char dir[4096];
    struct stat sb;

    spool_dirname(path, dir, sizeof(dir));
    if (stat(dir, &sb) != 0) {
        snprintf(err, errlen, "delete_spool %s: directory %s: %s", path, dir,
                 strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "delete_spool %s: %s is not a directory", path,
                 dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "delete_spool %s: directory %s is not "
                              "writable: %s",
                 path, dir, strerror(errno));
        return -1;
    }
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "delete_spool %s: not a regular file", path);
        return -1;
    }
    return spool_read(path, NULL, NULL, &st, err, errlen);
}

/* ---- the spool of a running proxy ---------------------------------------- */

/* Records of a backend that is not configured, dropped (logged once). */
struct spool_dropped {
    char *name;
    size_t n;
};

struct spool {
    struct event_base *base;        /* the main thread's */
    struct event *ev_tick;          /* every SPOOL_SYNC_MS */
    char *path;
    char *tmp;                      /* rewrites are written here first */
    char *dir;                      /* synced after a rename */
    int fd;                         /* appends; -1 until a rewrite */
    int lock_fd;                    /* PATH.lock, flock()ed: one mcring
                                       per spool */
    struct topology *topo;          /* a reference: its backends' logs */
    size_t file_keys;               /* key records in the file */
    bool rewrite;                   /* the next sync rewrites the file */
    char *buf;                      /* lines to write */
    size_t len, cap;
    const struct backend **by_id;   /* [nids]: of topo, for fallbacks */
    uint32_t nids;
};

static void
spool_put(struct spool *sp, const char *bytes, size_t n)
{
    if (sp->len + n > sp->cap) {
        sp->cap = (sp->len + n) * 2;
        sp->buf = util_xrealloc(sp->buf, sp->cap, 1);
    }
    memcpy(sp->buf + sp->len, bytes, n);
    sp->len += n;
}

/* by_id for topo (fallbacks are named by their id in the logs). */
static void
spool_index(struct spool *sp)
{
    const struct topology *t = sp->topo;

    if (sp->nids < t->id_limit) {
        sp->by_id = util_xrealloc(sp->by_id, t->id_limit, sizeof(*sp->by_id));
        sp->nids = t->id_limit;
    }
    memset(sp->by_id, 0, sp->nids * sizeof(*sp->by_id));
    for (uint32_t i = 0; i < t->n; i++) {
        sp->by_id[t->backends[i]->id] = t->backends[i];
    }
}

static struct proto_str
spool_str(const char *s)
{
    return (struct proto_str){s, strlen(s)};
}

/* Adds the records of owner's batch b to the buffer; returns how many key
 * records. */
static size_t
spool_put_batch(struct spool *sp, const struct backend *owner,
                const struct recovery_batch *b)
{
    char line[SPOOL_RECORD_MAX];
    struct spool_record rec = {.owner = spool_str(owner->name)};
    size_t keys = 0, n;

    if (b->flush) {
        rec.kind = SPOOL_FLUSH;
        n = spool_format(line, sizeof(line), &rec);
        spool_put(sp, line, n);
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct recovery_entry *e = &b->entries[i];
        const struct backend *fb =
            e->fallback < sp->nids ? sp->by_id[e->fallback] : NULL;

        if (fb == owner) {
            fb = NULL; /* the key is on the owner only */
        }
        if (!e->dirty && fb == NULL) {
            continue; /* a copy on a backend that is gone: moot */
        }
        rec.kind = e->dirty ? SPOOL_DELETE : SPOOL_COPY;
        rec.key = (struct proto_str){recovery_key(b, i), e->len};
        rec.fallback = spool_str(fb != NULL ? fb->name : "");
        n = spool_format(line, sizeof(line), &rec);
        if (n > 0) {
            spool_put(sp, line, n);
            keys++;
        }
    }
    return keys;
}

static int
spool_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the buffer as the whole file: temporary file, fsync, rename,
 * fsync of the directory. Returns 0, or -1 with errno. */
static int
spool_replace(struct spool *sp)
{
    int fd = open(sp->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int dfd, e;

    if (fd < 0) {
        return -1;
    }
    if (spool_write_all(fd, sp->buf, sp->len) != 0 || fsync(fd) != 0) {
        e = errno;
        close(fd);
        unlink(sp->tmp);
        errno = e;
        return -1;
    }
    if (close(fd) != 0 || rename(sp->tmp, sp->path) != 0) {
        e = errno;
        unlink(sp->tmp);
        errno = e;
        return -1;
    }
    dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/*
 * Rewrites the file from the logs of topo's backends, within
 * delete_spool_max (flushing the backends with the most keys until the
 * rest fits). Returns 0, or -1 with err (the next sync tries again).
 */
static int
spool_rewrite(struct spool *sp, char *err, size_t errlen)
{
    const struct topology *t = sp->topo;
    struct recovery_batch *dumps =
        util_xcalloc(t->n ? t->n : 1, sizeof(*dumps));
    size_t total = 0, keys = 0, max = t->cfg->delete_spool_max;

    for (uint32_t i = 0; i < t->n; i++) {
        recovery_dump(t->backends[i]->recovery, &dumps[i]);
        total += dumps[i].n;
    }
    while (total > max) {
        uint32_t big = 0;
        struct backend *be;

        for (uint32_t i = 1; i < t->n; i++) {
            if (dumps[i].n > dumps[big].n) {
                big = i;
            }
        }
        be = t->backends[big];
        log_warn("delete spool: %zu keys to delete, over delete_spool_max "
                 "%zu: backend %s (%s) will be flushed when it returns "
                 "instead of having its %zu keys deleted",
                 total, max, be->name, be->addr, dumps[big].n);
        total -= dumps[big].n;
        recovery_note_flush(be->recovery);
        recovery_batch_release(&dumps[big]);
        recovery_dump(be->recovery, &dumps[big]);
    }
    spool_index(sp);
    sp->len = 0;
    spool_put(sp, SPOOL_HEADER "\n", strlen(SPOOL_HEADER) + 1);
    for (uint32_t i = 0; i < t->n; i++) {
        keys += spool_put_batch(sp, t->backends[i], &dumps[i]);
        recovery_batch_release(&dumps[i]);
    }
    free(dumps);
    if (sp->fd >= 0) {
        close(sp->fd);
        sp->fd = -1;
    }
    sp->rewrite = true;
    if (spool_replace(sp) != 0) {
        snprintf(err, errlen, "delete_spool %s: cannot write: %s", sp->path,
                 strerror(errno));
        return -1;
    }
    sp->fd = open(sp->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (sp->fd < 0) {
        snprintf(err, errlen, "delete_spool %s: cannot open: %s", sp->path,
                 strerror(errno));
        return -1;
    }
    sp->rewrite = false;
    sp->file_keys = keys;
    log_debug("delete spool %s: rewritten, %zu keys", sp->path, keys);
    return 0;
}

static void
spool_rewrite_logged(struct spool *sp)
{
    char err[512];

    if (spool_rewrite(sp, err, sizeof(err)) != 0) {
        log_limited_at(LOG_LEVEL_ERROR,
                       "%s; trying again (the recovery logs in memory "
                       "still keep the keys)",
                       err);
    }
}

void
spool_sync(struct spool *sp)
{
    const struct topology *t = sp->topo;
    size_t keys = 0;

    for (uint32_t i = 0; i < t->n && !sp->rewrite; i++) {
        /* Keys are done: the file is rewritten without them. */
        sp->rewrite = recovery_finished(t->backends[i]->recovery);
    }
    if (!sp->rewrite) {
        spool_index(sp);
        sp->len = 0;
        for (uint32_t i = 0; i < t->n; i++) {
            struct recovery_batch j;

            if (!recovery_journal_take(t->backends[i]->recovery, &j)) {
                sp->rewrite = true; /* the rewrite's dumps cover the rest */
                break;
            }
            keys += spool_put_batch(sp, t->backends[i], &j);
            recovery_batch_release(&j);
        }
    }
    if (!sp->rewrite) {
        if (sp->len == 0) {
            return;
        }
        if (sp->fd >= 0 && sp->file_keys + keys <= t->cfg->delete_spool_max) {
            if (spool_write_all(sp->fd, sp->buf, sp->len) == 0 &&
                fdatasync(sp->fd) == 0) {
                sp->file_keys += keys;
                return;
            }
            log_limited_at(LOG_LEVEL_ERROR,
                           "delete_spool %s: cannot append: %s; rewriting "
                           "it",
                           sp->path, strerror(errno));
        }
        sp->rewrite = true;
    }
    spool_rewrite_logged(sp);
}

static void
spool_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    spool_sync(arg);
}

/* State of the read at start. */
struct spool_load {
    struct spool *sp;
    struct backend *last;           /* the last owner found */
    struct spool_dropped *dropped;
    size_t ndropped;
};

static struct backend *
spool_find(const struct topology *t, struct proto_str name)
{
    for (uint32_t i = 0; i < t->n; i++) {
        const char *n = t->backends[i]->name;

        if (strlen(n) == name.len && memcmp(n, name.p, name.len) == 0) {
            return t->backends[i];
        }
    }
    return NULL;
}

static void
spool_load_record(const struct spool_record *rec, void *arg)
{
    struct spool_load *l = arg;
    const struct topology *t = l->sp->topo;
    struct backend *owner = l->last, *fb;
    size_t i;

    if (owner == NULL || strlen(owner->name) != rec->owner.len ||
        memcmp(owner->name, rec->owner.p, rec->owner.len) != 0) {
        owner = spool_find(t, rec->owner);
    }
    if (owner == NULL) {
        for (i = 0; i < l->ndropped; i++) {
            if (strlen(l->dropped[i].name) == rec->owner.len &&
                memcmp(l->dropped[i].name, rec->owner.p, rec->owner.len) ==
                    0) {
                break;
            }
        }
        if (i == l->ndropped) {
            l->dropped = util_xrealloc(l->dropped, i + 1, sizeof(*l->dropped));
            l->dropped[i].name = util_xcalloc(1, rec->owner.len + 1);
            memcpy(l->dropped[i].name, rec->owner.p, rec->owner.len);
            l->dropped[i].n = 0;
            l->ndropped++;
        }
        l->dropped[i].n++;
        return;
    }
    l->last = owner;
    if (rec->kind == SPOOL_FLUSH) {
        recovery_note_flush(owner->recovery);
        return;
    }
    fb = rec->fallback.len > 0 ? spool_find(t, rec->fallback) : NULL;
    if (rec->kind == SPOOL_COPY) {
        if (fb != NULL) {
            recovery_note_clean(owner->recovery, rec->key.p, rec->key.len,
                                fb->id);
        }
        return;
    }
    recovery_note(owner->recovery, rec->key.p, rec->key.len,
                  fb != NULL ? fb->id : owner->id);
}

/* Reads the file into the logs; returns 0, or -1 with err. */
static int
spool_load(struct spool *sp, char *err, size_t errlen)
{
    struct spool_load l = {.sp = sp};
    struct spool_read_stats st;
    const struct topology *t = sp->topo;
    unsigned waiting = 0;

    if (spool_read(sp->path, spool_load_record, &l, &st, err, errlen) != 0) {
        return -1;
    }
    if (st.truncated) {
        log_warn("delete spool %s: its last line was cut short (mcring "
                 "stopped while writing it?): ignored",
                 sp->path);
    }
    if (st.malformed > 0) {
        log_warn("delete spool %s: %zu malformed lines skipped (the first "
                 "at line %u)",
                 sp->path, st.malformed, st.first_malformed);
    }
    for (size_t i = 0; i < l.ndropped; i++) {
        log_warn("delete spool %s: %zu records of backend %s, which is not "
                 "configured, dropped",
                 sp->path, l.dropped[i].n, l.dropped[i].name);
        free(l.dropped[i].name);
    }
    free(l.dropped);
    for (uint32_t i = 0; i < t->n; i++) {
        struct backend *be = t->backends[i];
        char why[160];

        if (!recovery_pending(be->recovery)) {
            continue;
        }
        if (recovery_size(be->recovery) > 0) {
            snprintf(why, sizeof(why),
                     "delete spool: %zu keys to delete before it serves",
                     recovery_size(be->recovery));
        } else {
            snprintf(why, sizeof(why),
                     "delete spool: a flush owed before it serves");
        }
        waiting += backend_set_state(be, BACKEND_UP, BACKEND_RECOVERING,
                                     why);
    }
    log_notice("delete spool %s: %zu records read, %u backends wait for "
               "theirs",
               sp->path, st.records, waiting);
    return 0;
}

static void
spool_journal_all(const struct topology *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        recovery_journal_start(t->backends[i]->recovery);
    }
}

static void
spool_free(struct spool *sp)
{
    if (sp->ev_tick != NULL) {
        event_free(sp->ev_tick);
    }
    if (sp->fd >= 0) {
        close(sp->fd);
    }
    if (sp->lock_fd >= 0) {
        close(sp->lock_fd);
    }
    topology_unref(sp->topo);
    free(sp->path);
    free(sp->tmp);
    free(sp->dir);
    free(sp->buf);
    free(sp->by_id);
    free(sp);
}

/* Two processes on one spool would each rewrite it without the other's
 * keys: the second one is refused. Returns 0, or -1 with err. */
static int
spool_lock(struct spool *sp, char *err, size_t errlen)
{
    size_t n = strlen(sp->path) + 6;
    char *name = util_xcalloc(1, n);

    snprintf(name, n, "%s.lock", sp->path);
    sp->lock_fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lock_fd < 0 || flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "delete_spool %s: %s %s: %s", sp->path,
                 sp->lock_fd < 0 ? "cannot open" : "cannot lock", name,
                 errno == EWOULDBLOCK ? "in use by another mcring"
                                      : strerror(errno));
        free(name);
        return -1;
    }
    free(name);
    return 0;
}

struct spool *
spool_create(struct event_base *base, const char *path, struct topology *t,
             char *err, size_t errlen)
{
    struct spool *sp = util_xcalloc(1, sizeof(*sp));
    struct timeval tv = {0, SPOOL_SYNC_MS * 1000};
    size_t n = strlen(path);
    char dir[4096];

    sp->base = base;
    sp->fd = -1;
    sp->lock_fd = -1;
    sp->path = util_xstrdup(path);
    sp->tmp = util_xcalloc(1, n + 5);
    snprintf(sp->tmp, n + 5, "%s.tmp", path);
    spool_dirname(path, dir, sizeof(dir));
    sp->dir = util_xstrdup(dir);
    sp->topo = topology_ref(t);
    if (spool_check(path, err, errlen) != 0 ||
        spool_lock(sp, err, errlen) != 0 || spool_load(sp, err, errlen) != 0) {
        spool_free(sp);
        return NULL;
    }
    spool_journal_all(t);
    if (spool_rewrite(sp, err, errlen) != 0) {
        spool_free(sp);
        return NULL;
    }
    sp->ev_tick = event_new(base, -1, EV_PERSIST, spool_tick_cb, sp);
    if (sp->ev_tick == NULL || event_add(sp->ev_tick, &tv) != 0) {
        snprintf(err, errlen, "delete_spool: cannot arm its timer");
        spool_free(sp);
        return NULL;
    }
    return sp;
}

void
spool_apply(struct spool *sp, struct topology *t)
{
    struct topology *old = sp->topo;
    bool changed = old->n != t->n ||
                   old->cfg->delete_spool_max != t->cfg->delete_spool_max;

    for (uint32_t i = 0; i < old->n; i++) {
        struct backend *be = old->backends[i];

        if (topology_index_of(t, be->id) != UINT32_MAX) {
            continue;
        }
        changed = true;
        if (recovery_pending(be->recovery)) {
            log_notice("delete spool: backend %s (%s) left the topology: "
                       "its %zu spooled keys are dropped",
                       be->name, be->addr, recovery_size(be->recovery));
        }
    }
    spool_journal_all(t);
    sp->topo = topology_ref(t);
    topology_unref(old);
    if (changed) {
        /* Without the backends that left, with the flushes owed by those
         * that came (or came back at another address). */
        sp->rewrite = true;
        spool_sync(sp);
    }
}

void
spool_destroy(struct spool *sp)
{
    if (sp == NULL) {
        return;
    }
    spool_sync(sp);
    spool_free(sp);
}
