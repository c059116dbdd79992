/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bconn: one worker's persistent connection to one backend.
 *
 * Requests from many clients are pipelined on it; replies come back in the
 * order the requests were written, so the fragment queue is a FIFO and the
 * head is always the fragment whose reply is being read. A timeout of the
 * head, a reset or garbage from the backend fails every queued fragment and
 * resets the connection, because the stream cannot be trusted any more.
 *
 * States: IDLE (no socket) -> CONNECTING -> CONNECTED; on failure
 * BACKOFF until a retry time, then IDLE again.
 */
#ifndef MCRING_BCONN_H
#define MCRING_BCONN_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"
#include "request.h"

struct worker;
struct worker_backend;
struct event;
struct evbuffer;

enum bconn_state {
    BCONN_IDLE,
    BCONN_CONNECTING,
    BCONN_CONNECTED,
    BCONN_BACKOFF,
};

/* A shared get line (bconn_send_get()) holds at most this many keys, in
 * at most this many bytes: well inside what every memcached reads as one
 * command line (2048 bytes before it treats it as a large multi-get). A
 * retrieval longer than that alone goes on a line of its own. */
#define BCONN_JOIN_KEYS 32
#define BCONN_JOIN_LINE 1024

struct bconn {
    struct worker *worker;
    struct worker_backend *wb;      /* the backend, as this worker has it */
    enum bconn_state state;
    struct net_conn nc;             /* a socket while CONNECTING or
                                       CONNECTED; ev_write: connect
                                       completion, full socket */
    bool flush_pending;             /* on the worker's flush list */
    TAILQ_ENTRY(bconn) flush_link;
    struct frag_queue queue;
    uint32_t nqueued;
    struct event *timer;            /* connect/request timeout, backoff */
    bool timer_armed;
    uint64_t retry_ns;              /* BACKOFF: when to try again */
    uint64_t backoff_epoch;         /* backend transitions at backoff */
    unsigned backoff_ms;
    bool overloaded;                /* bconn_output() said no: the queue
                                       is at backend_queue_limit */
    /* The turn's get (gets) line, open: its bytes in line, its fragments in line_frags, both joining nc.out
     * and queue when it is sealed (bconn_seal()). The turn's next gets add
     * their keys to it (bconn_send_get()); a write of one key that is not
     * on it goes ahead of it (bconn_output_key()); anything else seals it
     * first. */
    struct frag_queue line_frags;
    bool join_open;
    bool join_gets;
    uint32_t join_keys;
    uint32_t join_len;              /* the line's bytes so far */
    char line[BCONN_JOIN_LINE + 2]; /* and its "\r\n" when sealed */
};

struct bconn *bconn_create(struct worker *w, struct worker_backend *wb);
void bconn_destroy(struct bconn *bc);
/* Starts connecting if IDLE (eager connect at worker start). */
void bconn_connect(struct bconn *bc);
/* Ends the open get line, if there is one (what is in nc.out is then
 * whole commands, ready to write). */
void bconn_seal(struct bconn *bc);
/* Writes what the socket takes now (the worker's end-of-turn flush). */
void bconn_flush(struct bconn *bc);
/* Fails everything queued and closes the connection (backend DOWN). */
void bconn_fail(struct bconn *bc, const char *reason);

/*
 * The output buffer to write one request to, connecting first if needed;
 * NULL if the backend cannot take requests now (the caller fails the
 * fragment). After writing, the caller must call bconn_enqueue().
 */
struct evbuffer *bconn_output(struct bconn *bc);
/*
 * bconn_output() for a command whose only key is key (as the backend
 * reads it): it may go ahead of the turn's open get line, unless the line
 * asks for that key, so that memcached answers the line in one write.
 */
struct evbuffer *bconn_output_key(struct bconn *bc, const char *key,
                                  size_t keylen);
void bconn_enqueue(struct bconn *bc, struct frag *f);
/*
 * Sends f, a get or gets (pr's command) of its keys (f->req->keys
 * through frag_keys), and queues it. The gets of one loop turn on a connection share a line (get
 * k1 k2 k3), which one-key writes of other keys go ahead of: memcached
 * before 1.6.35 writes the reply to each get in a system call and a TCP
 * segment of its own.
 * Their replies are told apart by key (f->joined, mget_claim()). Returns
 * false where bconn_output() gives NULL (nothing sent: the caller fails
 * f).
 */
bool bconn_send_get(struct bconn *bc, struct frag *f,
                    const struct proto_req *pr)
    __attribute__((warn_unused_result));
/* bconn_output() gave NULL: the reply line for the request (backend
 * unavailable, or overloaded when its queue is full), the error counted
 * on the backend. */
const char *bconn_refuse(struct bconn *bc);

#endif
