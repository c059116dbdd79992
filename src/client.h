/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * client: one client connection on a worker.
 *
 * States: ACTIVE (reading and answering), DRAINING (no more reading: after
 * quit, a fatal protocol error or shutdown; closes once every queued reply
 * is written), CLOSED (socket gone, waiting for the worker's reaper).
 */
#ifndef MCRING_CLIENT_H
#define MCRING_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "net.h"

struct worker;
struct request;
struct event;
struct watch_slot;
struct evbuffer;

enum client_state {
    CLIENT_ACTIVE,
    CLIENT_DRAINING,
    CLIENT_CLOSED,
};

STAILQ_HEAD(request_queue, request);

struct client {
    struct worker *worker;
    uint64_t addr_key;              /* hash of its IP address, for
                                       client_rate; 0: none (unix) */
    struct net_conn nc;             /* ev_write added only while the
                                       socket is full; buffers freed
                                       once CLOSED */
    bool flush_pending;             /* on the worker's flush list */
    TAILQ_ENTRY(client) flush_link;
    enum client_state state;
    struct request_queue queue;     /* in the order the client sent them */
    uint32_t nqueued;
    size_t pending_bytes;           /* value bytes of its queued
                                       requests: collected for a reply,
                                       or sent with a storage command */
    size_t held;                    /* what client_owed() was, last
                                       counted in the worker's
                                       client_memory */
    uint64_t swallow;               /* bytes of a rejected data block */
    bool paused;                    /* output over its limit, or a
                                       barrier */
    bool mem_paused;                /* ... all clients over max_memory */
    uint8_t nreplies;               /* replies written, up to
                                       CLIENT_START_REPLIES */
    struct request *barrier;        /* a delete whose last part waits for
                                       others: the commands after it are
                                       not sent before it is */
    bool in_drive;                  /* client_drive() is on the stack */
    bool started;                   /* its first byte was looked at */
    bool eof;                       /* it shut down its side: what it
                                       sent is still answered */
    bool touched;                   /* read from since the worker last
                                       looked (parking) */
    uint64_t last_us;               /* its last bytes came then (only kept
                                       with client_idle_timeout) */
    uint32_t avg_reply;             /* bytes of its replies, on average */
    uint64_t id;
    TAILQ_ENTRY(client) link;
    /* After `watch` (watch.h): it gets lines, not replies. */
    struct watch_slot *watch;       /* owned, or NULL */
    struct event *ev_watch;         /* reads the watch's rings; owned */
};

/*
 * Per-client bound on requests in flight; past it, reading pauses. With the
 * output limit it bounds what one client can make mcring hold: at most this
 * many replies are being collected at once.
 */
#define CLIENT_MAX_INFLIGHT 64
/*
 * A new client starts with CLIENT_START_INFLIGHT requests in flight, twice
 * as many after each of its first replies, up to CLIENT_MAX_INFLIGHT: its
 * first burst is bounded before a reply tells how big its replies are.
 */
#define CLIENT_START_INFLIGHT 4
#define CLIENT_START_REPLIES 4

/* Creates a client on worker w for socket fd (a TLS session on it when
 * tls). Returns NULL on failure (fd is closed). */
struct client *client_create(struct worker *w, int fd, bool tls);

struct park_slot;
/* park_slot flags */
#define CLIENT_PARKED_STARTED 1u    /* its first byte was looked at */
/* An accepted socket: parked (park.h) until it sends (TLS ones become
 * clients at once). Counted; on failure, closed and uncounted. */
void client_accept(struct worker *w, int fd, bool tls);
/* Parks c if it has nothing going on (c is freed then): true if so. */
bool client_park(struct client *c);
/* A parked socket that became readable is a client again. */
void client_revive(struct worker *w, const struct park_slot *slot);
/* Closes a parked socket (stop, client_idle_timeout), uncounted. */
void client_close_parked(struct worker *w, const struct park_slot *slot);
/* Frees a CLOSED client (called by the worker's reaper). */
void client_free(struct client *c);
/* A request of c became done: queue every finished reply, in order. */
void client_flush(struct client *c);
/* Writes what the socket takes now (the worker's end-of-turn flush). */
void client_write(struct client *c);
/* The barrier's last part is sent (or cannot be): the commands after it
 * may go now. */
void client_barrier_done(struct client *c);
/* Closes c if it has sent nothing for timeout_us and is owed nothing
 * (client_idle_timeout); now_us is the worker's clock. */
void client_close_if_idle(struct client *c, uint64_t now_us,
                          uint64_t timeout_us);
/* Stop reading; close once every reply is out (shutdown, quit). */
void client_drain(struct client *c);
/* Worker w's clients are owed less than max_memory again: those paused
 * for it read again. */
void client_memory_resume(struct worker *w);
/* Close now; requests still in flight become orphans. */
void client_abort(struct client *c);
/* Answers, in order, with one line (adds "\r\n"; nothing with
 * noreply), for a command that never reaches a backend. */
void client_reply_line(struct client *c, const char *line, bool noreply);

#endif
