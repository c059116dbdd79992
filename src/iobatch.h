/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * iobatch: a loop turn's reads and writes, each in one system call
 * (io_uring).
 *
 * A worker's read callbacks do not read: they queue the socket here, and
 * at the end of the turn every queued socket is read by one
 * io_uring_enter, then each owner's callback handles what came, as if it
 * had read it itself. The turn's writes (replies to every client with
 * some ready, requests to every backend with some queued) then go out in
 * one more io_uring_enter. Each operation is a non-blocking recvmsg or
 * sendmsg done inline, as readv and writev would do it; what changes is
 * that the system call and the return to user space (where a backend
 * woken by a write preempts this thread on a shared CPU) happen twice a
 * turn instead of twice per socket. A turn with one socket to read (or
 * to write) reads it with readv (writes it with writev): a batch of one
 * only costs more.
 *
 * Writes only write: what a socket did not take (EAGAIN, a short write,
 * an error) stays in its buffer, and the owner's ordinary write
 * (net_conn_write()) then deals with it as it always does. A read's
 * error or end of stream reaches its owner as net_conn_read() would
 * report it.
 *
 * Built without liburing, or where the kernel refuses io_uring (seccomp,
 * an old kernel, io_uring_disabled), iobatch_new() returns NULL and the
 * worker reads with readv and writes with writev.
 */
#ifndef MCRING_IOBATCH_H
#define MCRING_IOBATCH_H

#include "net.h"

struct iobatch;

/* A batch, or NULL (io_uring unavailable: reason says why). */
struct iobatch *iobatch_new(char *reason, size_t reasonlen);
void iobatch_free(struct iobatch *b);
/* Queues nc's output (plain sockets only; others are left alone). */
void iobatch_add(struct iobatch *b, struct net_conn *nc);
/* Writes everything queued; drains what each socket took. */
void iobatch_submit(struct iobatch *b);

/* What a queued read got: n and err as net_conn_read() returns them
 * (n < 0: errno err, EAGAIN when nothing was there). */
typedef void (*iobatch_read_fn)(void *arg, ssize_t n, int err);
/*
 * Queues a read of plain socket nc (at most once per turn: queued again,
 * it is read once); done(arg, ...) runs from iobatch_read_submit().
 * net_conn_detach() cancels it. Returns 0, or -1 (the batch is full: read
 * it now).
 */
int iobatch_read(struct iobatch *b, struct net_conn *nc, iobatch_read_fn done,
                 void *arg) __attribute__((warn_unused_result));
/* Reads every queued socket, then runs each one's done (in queue order). */
void iobatch_read_submit(struct iobatch *b);

#endif
