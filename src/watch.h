/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * watch: a live, sampled stream of requests for whoever asks (`watch` on
 * the text protocol, GET /watch on the admin API), off and free when
 * nobody does.
 *
 *   worker i:  request read -> watch_request_begin(): sampled by which
 *              watchers (watch_tap_sample()), its keys kept
 *              reply ready (client_flush()) -> watch_request_end(): one
 *              line per key -> watch_tap_emit() copies it into ring i of
 *              each of those watchers (full: dropped and counted, never
 *              waited for)
 *   consumer:  (the watcher's thread: its worker, or the main thread for
 *              HTTP) every WATCH_FLUSH_MS, watch_read() moves what the
 *              rings hold into its output, at most WATCH_OUTPUT_MAX
 *              bytes of it pending: a watcher that does not read only
 *              makes its rings fill, and lines drop.
 *
 * Each watcher (struct watch_slot) has one single-producer single-consumer
 * byte ring per worker, allocated when it starts, never on the request
 * path. Workers learn of watchers through their inbox (WORKER_MSG_WATCH,
 * WORKER_MSG_UNWATCH): each keeps a plain struct watch_tap, so that with
 * no watcher a request costs a predictable branch on tap.mask (and one on
 * its own watch_mask, 0, when its reply goes out). A slot
 * is freed once its consumer and every worker have let it go; at most
 * WATCH_MAX exist.
 */
#ifndef MCRING_WATCH_H
#define MCRING_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Watchers at once, text and HTTP together: fewer than the admin API's
 * connections (ADMIN_HTTP_MAX_CONNS), so that watching never locks the
 * API out. */
#define WATCH_MAX 8
/* Bytes of lines one worker holds for one watcher (a power of two). */
#define WATCH_RING_BYTES (64u * 1024)
/* Bytes a watcher may have pending in its output (socket buffer aside). */
#define WATCH_OUTPUT_MAX (256u * 1024)
/* How often a watcher's rings are read. */
#define WATCH_FLUSH_MS 20
/* The largest N of `watch sample=N` (1 in N requests). */
#define WATCH_SAMPLE_MAX 1000000u
/* The longest line: a key of PROTO_KEY_MAX bytes, each escaped as \xHH,
 * and the other fields. */
#define WATCH_LINE_MAX 1280

struct evbuffer;
struct watch;
struct watch_slot;

/*
 * Tells worker `worker` that slot s starts (on) or stops feeding: the
 * worker then calls watch_tap_add() or watch_tap_remove(). Returns 0, or
 * -1 when the message could not be sent.
 */
typedef int (*watch_send_fn)(void *arg, unsigned worker, bool on,
                             struct watch_slot *s);

/* A worker's watchers: that worker's thread only. */
struct watch_tap {
    uint32_t mask;                  /* bit i: slot[i] is fed; 0: off */
    struct watch_slot *slot[WATCH_MAX];
    uint32_t every[WATCH_MAX];      /* its sample rate */
    uint32_t countdown[WATCH_MAX];  /* requests until its next sample */
    uint64_t dropped[WATCH_MAX];    /* lines lost since the last one that
                                       went in: told before the next */
};

/* ---- the hub (owned by the proxy) ---------------------------------------- */

/* A hub for nworkers workers, told of watchers through send(arg, ...). */
struct watch *watch_create(unsigned nworkers, watch_send_fn send, void *arg);
/*
 * From now on no message goes to the workers (they are being destroyed):
 * slots still held are freed by watch_destroy().
 */
void watch_quiesce(struct watch *h);
/* Frees h and every slot left (after the workers are gone). */
void watch_destroy(struct watch *h);
/* Watchers now (any thread; 0 without a hub). */
unsigned watch_count(struct watch *h);

/*
 * Parses the N of `sample=N` (text without the "sample=", len bytes):
 * 1..WATCH_SAMPLE_MAX. Returns 0, or -1 when it is not such a number.
 */
int watch_parse_sample(const char *text, size_t len, uint32_t *every)
    __attribute__((warn_unused_result));

/* ---- a watcher (its consumer's thread) ----------------------------------- */

/*
 * Starts a watcher of 1 in every requests of each worker. Returns its
 * slot (the caller's until watch_close()), or NULL when WATCH_MAX are
 * running.
 */
struct watch_slot *watch_open(struct watch *h, uint32_t every)
    __attribute__((warn_unused_result));
/*
 * Moves whole lines out of s's rings into out, at most room bytes.
 * Returns the bytes moved.
 */
size_t watch_read(struct watch_slot *s, struct evbuffer *out, size_t room);
/* Stops s; its memory goes once every worker has let it go. */
void watch_close(struct watch_slot *s);

/* ---- a worker's side (its thread) ---------------------------------------- */

/* s starts or stops feeding on this worker (its inbox message). Remove
 * lets go of the worker's hold on s (which may free it). */
void watch_tap_add(struct watch_tap *t, struct watch_slot *s);
void watch_tap_remove(struct watch_tap *t, struct watch_slot *s);
/* The watchers sampling the request that starts now (0: none). Only when
 * t->mask != 0. */
uint32_t watch_tap_sample(struct watch_tap *t);
/*
 * Appends line (len bytes, with its "\n") to ring `worker` of each
 * watcher of mask that still feeds. A ring without room for it drops
 * it; the next line that fits is preceded by "ts=... dropped=N". Adds
 * the lines that went in to *events and those dropped to *dropped.
 */
void watch_tap_emit(struct watch_tap *t, unsigned worker, uint32_t mask,
                    const char *line, size_t len, uint64_t *events,
                    uint64_t *dropped);

/*
 * Parses the arguments of `watch` (args, len bytes): nothing, or
 * sample=N. Returns 0 with *every (1 without sample), or -1.
 */
int watch_parse_args(const char *args, size_t len, uint32_t *every)
    __attribute__((warn_unused_result));

/* ---- the data path (watch_req.c), on a worker ---------------------------- */

struct client;
struct proto_req;
struct request;

/*
 * A request of a client starts (request_dispatch(), only while its
 * worker's tap.mask != 0): whether a watcher samples it, and if so what
 * its line needs (its command, keys, start time); a noreply request gets
 * its reply made, to be seen and dropped in watch_request_end().
 */
void watch_request_begin(struct request *req, const struct proto_req *pr);
/* A sampled request's reply is about to go to its client
 * (client_flush()): its lines, one per key, go to its watchers. */
void watch_request_end(struct request *req);

/*
 * `watch [sample=N]` from client c: answers OK and streams from then on
 * (what c sends is ignored; it closing ends the watch), or answers
 * CLIENT_ERROR (bad arguments) or SERVER_ERROR too many watchers and c
 * goes on as before.
 */
void watch_client_start(struct client *c, const struct proto_req *pr);
/* c's watch ends (it closes or drains): no-op when it has none. */
void watch_client_stop(struct client *c);

/* ---- lines (pure) -------------------------------------------------------- */

/*
 * Writes key (len bytes) into out (cap >= 4 * len + 1) as a watch line
 * shows it: bytes 0x21..0x7e as they are but '\\', others as \xHH, '\\'
 * as \\. Returns the length written (NUL-terminated).
 */
size_t watch_escape_key(const char *key, size_t len, char *out, size_t cap);

/*
 * The result word of a reply that starts with line (len bytes, to the
 * end of its first line or less): stored, not_stored, exists,
 * not_found, deleted, touched, ok, error, client_error, server_error;
 * meta codes as the command means them (VA/HD of mg: hit, EN: miss, HD
 * of ms: stored...); VALUE and END of a retrieval hit and miss (of
 * another command, such as stats ARGS: ok). meta is whether the command
 * was a meta command, cmd its name ("mg", "get"...).
 */
const char *watch_result(const char *line, size_t len, bool meta,
                         const char *cmd);

/* The "ts=SECS.USECS" of a line, now (wall clock), into buf (>= 32). */
size_t watch_ts(char *buf, size_t cap);

#endif
