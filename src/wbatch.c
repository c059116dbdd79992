/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * wbatch: a loop turn's writes in one io_uring_enter (see wbatch.h).
 *
 * Invariants:
 *   - between wbatch_add() and wbatch_submit() nothing touches the queued
 *     buffers: the iovecs point into them until the kernel has taken the
 *     bytes, and wbatch_submit() returns only once every operation has
 *     completed.
 *   - every operation is a sendmsg with MSG_DONTWAIT: done inline, never
 *     parked on the ring waiting for space, so completion is immediate.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "wbatch.h"

#ifdef HAVE_LIBURING

#include <liburing.h>

/* Sockets per submission, and iovecs shared among them: a socket takes
 * up to WBATCH_CONN_IOV (what libevent's evbuffer_write takes at most). */
#define WBATCH_DEPTH 256
#define WBATCH_IOV 2048
#define WBATCH_CONN_IOV 128

struct wbatch {
    struct io_uring ring;
    unsigned n;                       /* queued operations */
    unsigned niov;                    /* iovecs used by them */
    struct msghdr msg[WBATCH_DEPTH];
    struct iovec iov[WBATCH_IOV];
};

struct wbatch *
wbatch_new(char *reason, size_t reasonlen)
{
    struct wbatch *b = calloc(1, sizeof(*b));
    int rc;

    if (b == NULL) {
        snprintf(reason, reasonlen, "out of memory");
        return NULL;
    }
    rc = io_uring_queue_init(WBATCH_DEPTH, &b->ring, 0);
    if (rc < 0) {
        snprintf(reason, reasonlen, "io_uring_setup: %s", strerror(-rc));
        free(b);
        return NULL;
    }
    return b;
}

void
wbatch_free(struct wbatch *b)
{
    if (b != NULL) {
        io_uring_queue_exit(&b->ring);
        free(b);
    }
}

void
wbatch_submit(struct wbatch *b)
{
    struct io_uring_cqe *cqe;
    unsigned done = 0;

    if (b->n == 0) {
        return;
    }
    /* Submitted and waited for in one call; MSG_DONTWAIT makes each
     * complete inline, so the wait does not sleep. */
    while (io_uring_submit_and_wait(&b->ring, b->n) == -EINTR) {
    }
    while (done < b->n) {
        if (io_uring_wait_cqe(&b->ring, &cqe) != 0) {
            /* Cannot happen with operations in flight; what was not
             * written stays buffered for net_conn_write(). */
            break;
        }
        struct net_conn *nc = io_uring_cqe_get_data(cqe);

        if (cqe->res > 0) {
            evbuffer_drain(nc->out, (size_t)cqe->res);
            nc->sent += (size_t)cqe->res;
        }
        io_uring_cqe_seen(&b->ring, cqe);
        done++;
    }
    b->n = 0;
    b->niov = 0;
}

void
wbatch_add(struct wbatch *b, struct net_conn *nc)
{
    struct io_uring_sqe *sqe;
    struct msghdr *m;
    size_t len = evbuffer_get_length(nc->out);
    int want;
    int nv;

    if (nc->fd < 0 || nc->tls != NULL || nc->writing || len == 0) {
        return;
    }
    want = evbuffer_peek(nc->out, -1, NULL, NULL, 0);
    if (want > WBATCH_CONN_IOV) {
        want = WBATCH_CONN_IOV;
    }
    if (b->n == WBATCH_DEPTH || b->niov + (unsigned)want > WBATCH_IOV) {
        wbatch_submit(b);
    }
    sqe = io_uring_get_sqe(&b->ring);
    if (sqe == NULL) {
        return; /* left to net_conn_write() */
    }
    nv = evbuffer_peek(nc->out, -1, NULL,
                       (struct evbuffer_iovec *)&b->iov[b->niov], want);
    if (nv > want) {
        nv = want;
    }
    m = &b->msg[b->n];
    memset(m, 0, sizeof(*m));
    m->msg_iov = &b->iov[b->niov];
    m->msg_iovlen = (size_t)nv;
    io_uring_prep_sendmsg(sqe, nc->fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, nc);
    b->n++;
    b->niov += (unsigned)nv;
}

#else /* !HAVE_LIBURING */

struct wbatch *
wbatch_new(char *reason, size_t reasonlen)
{
    snprintf(reason, reasonlen, "built without liburing");
    return NULL;
}

void
wbatch_free(struct wbatch *b)
{
    (void)b;
}

void
wbatch_add(struct wbatch *b, struct net_conn *nc)
{
    (void)b;
    (void)nc;
}

void
wbatch_submit(struct wbatch *b)
{
    (void)b;
}

#endif
