/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * wbatch: a loop turn's writes in one system call (io_uring).
 *
 * At the end of a turn a worker writes to every client that has replies
 * and to every backend that has requests. With a batch, those writes are
 * queued as non-blocking sendmsg operations on an io_uring and handed to
 * the kernel in one io_uring_enter: each is done inline, as writev would
 * do it, but the system call and the return to user space (where a
 * backend woken by the write preempts this thread) happen once per turn
 * instead of once per socket.
 *
 * The batch only writes: what a socket did not take (EAGAIN, a short
 * write, an error) stays in its buffer, and the caller's ordinary write
 * (net_conn_write()) then deals with it as it always does.
 *
 * Built without liburing, or where the kernel refuses io_uring (seccomp,
 * an old kernel, io_uring_disabled), wbatch_new() returns NULL and the
 * worker writes with writev.
 */
#ifndef MCRING_WBATCH_H
#define MCRING_WBATCH_H

#include "net.h"

struct wbatch;

/* A batch, or NULL (io_uring unavailable: reason says why). */
struct wbatch *wbatch_new(char *reason, size_t reasonlen);
void wbatch_free(struct wbatch *b);
/* Queues nc's output (plain sockets only; others are left alone). */
void wbatch_add(struct wbatch *b, struct net_conn *nc);
/* Writes everything queued; drains what each socket took. */
void wbatch_submit(struct wbatch *b);

#endif
