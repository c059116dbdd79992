/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * spool: the delete spool ([proxy] delete_spool = PATH), which makes the
 * recovery logs (recovery.h) survive a restart of mcring.
 *
 * Every key a backend's recovery log keeps (a write made on a DOWN
 * backend's behalf, a delete that failed because its backend could not be
 * reached, an invalidation mcring sent itself that failed) and every flush
 * a log owes is written to the spool file, so that a new mcring process
 * reads it back at start, keeps each backend with spooled keys out of the
 * ring (RECOVERING) and lets its recovery pass delete them (or flush it)
 * before it serves again. Once a pass has done that, the file is
 * rewritten without them.
 *
 *   workers --recovery_note()--> log + journal (recovery.c, its mutex)
 *   main thread, every SPOOL_SYNC_MS: journals --> appended lines, one
 *     fdatasync(); a pass finished, a topology change, a journal that
 *     overflowed, the bound crossed, a write error --> the file rewritten
 *     from recovery_dump() (temporary file, fsync, rename, fsync of the
 *     directory)
 *
 * The file: a first line SPOOL_HEADER, then one record a line, fields
 * separated by one space, names as in [backends], keys as classic
 * commands name them (proto_key_classic()):
 *
 *   delete OWNER KEY [FALLBACK]   delete KEY on OWNER before it serves (and
 *                                 on FALLBACK, which holds a copy written
 *                                 on OWNER's behalf)
 *   copy OWNER KEY FALLBACK       only FALLBACK's copy is left to delete
 *   flush OWNER                   flush OWNER before it serves
 *
 * Bounds: at most delete_spool_max key records in the file; when the keys
 * still to do are more, the backend with the most is flushed when it
 * returns instead (a flush record), as when its recovery log overflows.
 * A line cut short at the end (a crash while appending) and malformed
 * lines are skipped and logged; records of backends no longer configured
 * are dropped and logged. File I/O is on the main thread only. PATH.lock
 * is held (flock) while mcring runs: a second mcring on the same spool is
 * refused.
 */
#ifndef MCRING_SPOOL_H
#define MCRING_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "proto.h"

#define SPOOL_HEADER "mcring-delete-spool 1"
/* Journals are written this often: a key noted less than that before a
 * crash may be lost (a clean stop writes everything). */
#define SPOOL_SYNC_MS 50
/* The longest record line, "\n" included. */
#define SPOOL_RECORD_MAX (16 + 2 * CONFIG_NAME_MAX + PROTO_KEY_MAX)

struct event_base;
struct topology;
struct spool;

enum spool_kind {
    SPOOL_DELETE,
    SPOOL_COPY,
    SPOOL_FLUSH,
};

/* One record; the views point into the line it was parsed from. */
struct spool_record {
    enum spool_kind kind;
    struct proto_str owner;
    struct proto_str key;           /* empty for a flush */
    struct proto_str fallback;      /* empty: none (a delete) */
};

/* ---- the format (pure) --------------------------------------------------- */

/* Parses one line (without its "\n"). Returns 0, or -1 when it is not a
 * well-formed record. */
int spool_parse_line(const char *line, size_t len, struct spool_record *rec)
    __attribute__((warn_unused_result));

/* Writes rec as a line ("\n" included) into buf (cap bytes). Returns its
 * length, or 0 when rec is not well formed or does not fit. */
size_t spool_format(char *buf, size_t cap, const struct spool_record *rec);

/* What spool_read() skipped. */
struct spool_read_stats {
    size_t records;                 /* good ones, handed to fn */
    size_t malformed;               /* complete lines that are not */
    unsigned first_malformed;       /* the first one's line number */
    bool truncated;                 /* the last line had no "\n" */
};

typedef void (*spool_record_fn)(const struct spool_record *rec, void *arg);

/*
 * Reads the spool at path and hands each good record to fn (NULL: only
 * checks). A file that does not exist is an empty spool. Returns 0 and
 * fills *st, or -1 with err when the file cannot be read or its first line
 * is not SPOOL_HEADER (it is not a spool: it is never overwritten).
 */
int spool_read(const char *path, spool_record_fn fn, void *arg,
               struct spool_read_stats *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* `mcring -t`: the spool at path can be read and its directory written.
 * Returns 0, or -1 with err. */
int spool_check(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* ---- the spool of a running proxy (main thread) -------------------------- */

/*
 * Reads the spool at path into the recovery logs of t's backends (records
 * of other backends are dropped, logged), moves each backend with
 * something to do from UP to RECOVERING, starts journaling, writes the file
 * afresh and arms the writes on base. t is borrowed (a reference is
 * kept). Returns NULL with err when the file cannot be read or written.
 */
struct spool *spool_create(struct event_base *base, const char *path,
                           struct topology *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A new topology t was published: journal its new backends, and rewrite
 * the file without the backends it left out (logged). */
void spool_apply(struct spool *sp, struct topology *t);

/* Writes what is journaled now (a clean stop, after the workers). */
void spool_sync(struct spool *sp);

/* Writes what is journaled and frees the spool (NULL: nothing). */
void spool_destroy(struct spool *sp);

#endif
