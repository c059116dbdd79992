/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * iobatch: a loop turn's writes in one io_uring_enter (see iobatch.h).
 *
 * Invariants:
 *   - between iobatch_add() and iobatch_submit() nothing touches the queued
 *     buffers: the iovecs point into them until the kernel has taken the
 *     bytes, and iobatch_submit() returns only once every operation has
 *     completed. Reads reserve their space in iobatch_read_submit() and
 *     commit it before any owner's callback runs.
 *   - every operation is a sendmsg or recvmsg with MSG_DONTWAIT: done
 *     inline, never parked on the ring waiting for data or space, so
 *     completion is immediate.
 *   - a queued read's slot holds its net_conn, and the net_conn points
 *     back at the slot (read_queued) until its callback runs or
 *     net_conn_detach() empties the slot; slots never move.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "iobatch.h"
#include "log.h"

#ifdef HAVE_LIBURING

#include <liburing.h>

/* Sockets per submission, and iovecs shared among them: a socket takes
 * up to IOBATCH_CONN_IOV (what libevent's evbuffer_write takes at most). */
#define IOBATCH_DEPTH 256
#define IOBATCH_IOV 2048
#define IOBATCH_CONN_IOV 128
/* Sockets whose writes one turn queues (more are written one by one). */
#define IOBATCH_WRITES 4096
/* Sockets whose reads one turn queues, and the most one read takes (as
 * net_read()). */
#define IOBATCH_READS 1024
#define IOBATCH_READ_SIZE 16384

struct iobatch_rd {
    struct net_conn *nc;              /* NULL: cancelled */
    iobatch_read_fn done;
    void *arg;
    ssize_t n;
    int err;
    int nv;
    struct evbuffer_iovec v[2];       /* reserved in nc->in */
};

struct iobatch {
    struct io_uring ring;
    unsigned n;                       /* queued writes */
    unsigned niov;                    /* iovecs used by a submission */
    struct net_conn *wr[IOBATCH_WRITES];
    struct msghdr msg[IOBATCH_DEPTH];
    struct iovec iov[IOBATCH_IOV];
    unsigned nrd;                     /* queued reads */
    bool reading;                     /* in iobatch_read_submit() */
    bool failed;                      /* the kernel refused a submission:
                                         readv and writev from then on */
    struct msghdr rmsg[IOBATCH_DEPTH];
    struct iobatch_rd rd[IOBATCH_READS];
};

struct iobatch *
iobatch_new(char *reason, size_t reasonlen)
{
    struct iobatch *b = calloc(1, sizeof(*b));
    int rc;

    if (b == NULL) {
        snprintf(reason, reasonlen, "out of memory");
        return NULL;
    }
    rc = io_uring_queue_init(IOBATCH_DEPTH, &b->ring, 0);
    if (rc < 0) {
        snprintf(reason, reasonlen, "io_uring_setup: %s", strerror(-rc));
        free(b);
        return NULL;
    }
    return b;
}

void
iobatch_free(struct iobatch *b)
{
    if (b != NULL) {
        io_uring_queue_exit(&b->ring);
        free(b);
    }
}

/*
 * Submits the queued operations and waits for all of them: each is a
 * non-blocking socket call, done inline, so the wait does not sleep. If
 * the kernel takes fewer than all (out of memory), the rest can never be
 * taken back from the ring: the batch is given up for good, and what it
 * did not do is left to readv and writev.
 */
static void
iobatch_run(struct iobatch *b, unsigned n, void (*reap)(struct io_uring_cqe *))
{
    struct io_uring_cqe *cqe;
    unsigned done = 0;
    int rc;

    while ((rc = io_uring_submit_and_wait(&b->ring, n)) == -EINTR) {
    }
    if (rc < 0 || (unsigned)rc < n) {
        b->failed = true;
        log_warn("io_uring_enter: %s; reading and writing with readv and "
                 "writev from now on",
                 rc < 0 ? strerror(-rc) : "short submission");
        n = rc < 0 ? 0 : (unsigned)rc;
    }
    while (done < n && io_uring_wait_cqe(&b->ring, &cqe) == 0) {
        reap(cqe);
        io_uring_cqe_seen(&b->ring, cqe);
        done++;
    }
}

static void
iobatch_reap_write(struct io_uring_cqe *cqe)
{
    struct net_conn *nc = io_uring_cqe_get_data(cqe);

    if (cqe->res > 0) {
        evbuffer_drain(nc->out, (size_t)cqe->res);
        nc->sent += (size_t)cqe->res;
    }
}

static void
iobatch_reap_read(struct io_uring_cqe *cqe)
{
    struct iobatch_rd *e = io_uring_cqe_get_data(cqe);
    size_t left = cqe->res > 0 ? (size_t)cqe->res : 0;
    int nv = e->nv;

    for (int i = 0; i < e->nv; i++) {
        if (e->v[i].iov_len > left) {
            e->v[i].iov_len = left;
        }
        left -= e->v[i].iov_len;
        if (e->v[i].iov_len == 0) {
            nv = i;
            break;
        }
    }
    evbuffer_commit_space(e->nc->in, e->v, nv);
    e->n = cqe->res >= 0 ? cqe->res : -1;
    e->err = cqe->res >= 0 ? 0 : -cqe->res;
}

int
iobatch_read(struct iobatch *b, struct net_conn *nc, iobatch_read_fn done,
             void *arg)
{
    struct iobatch_rd *e;

    if (nc->read_queued != NULL) {
        return 0;
    }
    if (b->nrd == IOBATCH_READS || b->reading || b->failed ||
        nc->tls != NULL || nc->fd < 0) {
        return -1;
    }
    e = &b->rd[b->nrd++];
    e->nc = nc;
    e->done = done;
    e->arg = arg;
    nc->read_queued = &e->nc;
    return 0;
}

void
iobatch_read_submit(struct iobatch *b)
{
    unsigned i = 0;

    b->reading = true;
    if (b->nrd == 1 && b->rd[0].nc != NULL) {
        /* One socket alone: readv, as without a batch. */
        struct iobatch_rd *e = &b->rd[0];

        e->n = net_conn_read(e->nc);
        e->err = e->n < 0 ? errno : 0;
        i = 1;
    }
    while (i < b->nrd) {
        unsigned q = 0;

        for (; i < b->nrd && q < IOBATCH_DEPTH; i++) {
            struct iobatch_rd *e = &b->rd[i];
            struct io_uring_sqe *sqe;
            struct msghdr *m;

            e->n = -1;
            e->err = EAGAIN;
            e->nv = 0;
            if (e->nc == NULL || b->failed) {
                continue; /* (failed: read again next turn, readv) */
            }
            e->nv = evbuffer_reserve_space(e->nc->in, IOBATCH_READ_SIZE,
                                           e->v, 2);
            sqe = e->nv > 0 ? io_uring_get_sqe(&b->ring) : NULL;
            if (sqe == NULL) {
                e->err = ENOMEM;
                e->nv = 0;
                continue;
            }
            m = &b->rmsg[q++];
            if (e->nv == 1) {
                /* One extent: recv, without a msghdr to copy in. */
                io_uring_prep_recv(sqe, e->nc->fd, e->v[0].iov_base,
                                   e->v[0].iov_len, MSG_DONTWAIT);
            } else {
                memset(m, 0, sizeof(*m));
                m->msg_iov = (struct iovec *)e->v;
                m->msg_iovlen = (size_t)e->nv;
                io_uring_prep_recvmsg(sqe, e->nc->fd, m, MSG_DONTWAIT);
            }
            io_uring_sqe_set_data(sqe, e);
        }
        if (q > 0) {
            iobatch_run(b, q, iobatch_reap_read);
        }
    }
    /* Every read is committed: now the owners, who may close others. */
    for (i = 0; i < b->nrd; i++) {
        struct iobatch_rd *e = &b->rd[i];

        if (e->nc != NULL) {
            e->nc->read_queued = NULL;
            e->nc = NULL;
            e->done(e->arg, e->n, e->err);
        }
    }
    b->nrd = 0;
    b->reading = false;
}

void
iobatch_submit(struct iobatch *b)
{
    unsigned q = 0;

    /* One socket alone: writev, as without a batch (net_conn_write()). */
    if (b->n < 2 || b->failed) {
        b->n = 0;
        return;
    }
    b->niov = 0;
    for (unsigned i = 0; i < b->n; i++) {
        struct net_conn *nc = b->wr[i];
        struct io_uring_sqe *sqe;
        struct msghdr *m;
        int nv;

        if (q == IOBATCH_DEPTH || b->niov + IOBATCH_CONN_IOV > IOBATCH_IOV) {
            iobatch_run(b, q, iobatch_reap_write);
            q = 0;
            b->niov = 0;
        }
        sqe = io_uring_get_sqe(&b->ring);
        if (sqe == NULL) {
            continue; /* left to net_conn_write() */
        }
        nv = evbuffer_peek(nc->out, -1, NULL,
                           (struct evbuffer_iovec *)&b->iov[b->niov],
                           IOBATCH_CONN_IOV);
        if (nv > IOBATCH_CONN_IOV) {
            nv = IOBATCH_CONN_IOV;
        }
        m = &b->msg[q++];
        if (nv == 1) {
            /* One extent: send, without a msghdr to copy in. */
            io_uring_prep_send(sqe, nc->fd, b->iov[b->niov].iov_base,
                               b->iov[b->niov].iov_len,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            memset(m, 0, sizeof(*m));
            m->msg_iov = &b->iov[b->niov];
            m->msg_iovlen = (size_t)nv;
            io_uring_prep_sendmsg(sqe, nc->fd, m,
                                  MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        io_uring_sqe_set_data(sqe, nc);
        b->niov += (unsigned)nv;
    }
    if (q > 0) {
        iobatch_run(b, q, iobatch_reap_write);
    }
    b->n = 0;
    b->niov = 0;
}

void
iobatch_add(struct iobatch *b, struct net_conn *nc)
{
    if (nc->fd < 0 || nc->tls != NULL || nc->writing ||
        evbuffer_get_length(nc->out) == 0 || b->n == IOBATCH_WRITES) {
        return; /* left to net_conn_write() */
    }
    b->wr[b->n++] = nc;
}

#else /* !HAVE_LIBURING */

struct iobatch *
iobatch_new(char *reason, size_t reasonlen)
{
    snprintf(reason, reasonlen, "built without liburing");
    return NULL;
}

void
iobatch_free(struct iobatch *b)
{
    (void)b;
}

void
iobatch_add(struct iobatch *b, struct net_conn *nc)
{
    (void)b;
    (void)nc;
}

void
iobatch_submit(struct iobatch *b)
{
    (void)b;
}

int
iobatch_read(struct iobatch *b, struct net_conn *nc, iobatch_read_fn done,
             void *arg)
{
    (void)b;
    (void)nc;
    (void)done;
    (void)arg;
    return -1;
}

void
iobatch_read_submit(struct iobatch *b)
{
    (void)b;
}

#endif
