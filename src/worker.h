/*
 * worker: one thread, one event_base, its clients and its own connections
 * to every backend. Nothing a worker touches on the request path is shared
 * with another thread except read-only configuration and relaxed atomic
 * counters.
 */
#ifndef MCRING_WORKER_H
#define MCRING_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "stats.h"

struct proxy;
struct client;
struct request;
struct bconn;
struct event;
struct event_base;
struct evbuffer;

TAILQ_HEAD(client_list, client);
TAILQ_HEAD(bconn_list, bconn);

struct worker {
    struct proxy *proxy;
    unsigned id;
    pthread_t thread;
    struct event_base *base;
    int notify_rd;                  /* fds handed over by the main thread */
    int notify_wr;
    struct event *ev_notify;
    struct event *ev_reap;          /* frees closed clients, deferred */
    struct event *ev_drain_timer;   /* bounds the shutdown drain */
    struct event *ev_flush;         /* end of the loop turn: write out */
    bool flush_scheduled;
    struct client_list flush_clients;
    struct bconn_list flush_bconns;
    struct client_list clients;
    struct client_list closed;      /* waiting for ev_reap */
    struct bconn **bconns;          /* [backend * per_backend + slot] */
    unsigned per_backend;
    uint32_t *next_slot;            /* round robin per backend */
    uint32_t *frag_of_backend;      /* scratch for splitting, RING_NONE;
                                       2 per backend: own keys, and keys
                                       of a gat/gats it serves for a
                                       DOWN owner */
    struct request *free_requests;  /* free list, linked by next_free */
    unsigned nfree_requests;
    bool stopping;
    bool started;                   /* its thread runs */
    uint64_t next_client_id;
    struct stats_worker stats;
    struct stats_backend *bstats;   /* per backend */
};

/* Message on the notify pipe that asks the worker to drain and stop. */
#define WORKER_MSG_STOP (-1)
/* Backend b went DOWN: fail what is queued on it now, not at timeout. */
#define WORKER_MSG_BACKEND_DOWN(b) (-2 - (int)(b))

/*
 * Creates worker id of proxy p (its base, pipe, backend connections).
 * Returns NULL with a message in err.
 */
struct worker *worker_create(struct proxy *p, unsigned id, char *err,
                             size_t errlen) __attribute__((warn_unused_result));
/* Starts the thread. Returns 0 or -1 with err. */
int worker_start(struct worker *w, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Hands an accepted socket to the worker; the worker owns fd afterwards. */
int worker_hand_off(struct worker *w, int fd);
/* Asks the worker to finish in-flight requests and exit its loop. */
void worker_request_stop(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/*
 * Reads what the socket has (up to 64 KiB) into buf without an extra copy.
 * Returns bytes read, 0 at EOF, -1 with errno.
 */
ssize_t worker_read(int fd, struct evbuffer *buf);

/*
 * The first chain of buf: *len bytes at the returned address (NULL and 0
 * when buf is empty). Valid until buf is changed.
 */
const char *worker_head(struct evbuffer *buf, size_t *len);

/*
 * The first line of buf, made contiguous: returns its start, its length
 * without the terminator in *len and the terminator's ("\n" or "\r\n") in
 * *eollen; NULL if buf holds no complete line. Found in the first chain
 * with memchr in the common case; only a line that spans chains is pulled
 * up. Valid until buf is changed.
 */
const char *worker_line(struct evbuffer *buf, size_t *len, size_t *eollen);

/*
 * The line from p to the '\n' at nl: its length without the terminator in
 * *len, the terminator's ("\n" or "\r\n") in *eollen.
 */
static inline void
worker_eol(const char *p, const char *nl, size_t *len, size_t *eollen)
{
    *len = (size_t)(nl - p);
    *eollen = 1;
    if (*len > 0 && p[*len - 1] == '\r') {
        (*len)--;
        *eollen = 2;
    }
}

/*
 * Output is batched per loop turn: a client or backend connection with new
 * output is put on a list, and the lists are written out once, at the end
 * of the turn (or by worker_flush()).
 */
void worker_want_flush_client(struct worker *w, struct client *c);
void worker_cancel_flush_client(struct worker *w, struct client *c);
void worker_want_flush_bconn(struct worker *w, struct bconn *bc);
void worker_cancel_flush_bconn(struct worker *w, struct bconn *bc);
void worker_flush(struct worker *w);

/* Called by a client once its last request is done and it was closed. */
void worker_schedule_reap(struct worker *w);
/* Called when a client is gone during shutdown, to end the loop early. */
void worker_check_drained(struct worker *w);

#endif
