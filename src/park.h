/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * park: idle client sockets, kept in a worker as 24 bytes each instead of
 * a whole client (its struct, two buffers, two events: about 0.9 KB).
 *
 * A worker parks a plain client socket when it is accepted, and a client
 * that has had nothing to do for a second (nothing read, nothing owed).
 * Parked sockets wait in an epoll set of their own, which is one read
 * event of the worker's loop; a parked socket that becomes readable (a
 * command, or the peer's close) is taken out and becomes a client again.
 *
 * Slots are a dense array (the epoll entry carries the slot's index);
 * taking one out moves the last into its place. One owner thread.
 */
#ifndef MCRING_PARK_H
#define MCRING_PARK_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

struct park_slot {
    int fd;
    uint32_t flags;                 /* the owner's (client.c: started) */
    uint64_t id;                    /* the client's id, kept */
    uint64_t since_us;              /* idle since (client_idle_timeout) */
};

struct park {
    int epfd;                       /* -1: not set up */
    struct event *ev;               /* readable epfd */
    struct park_slot *slots;
    uint32_t n;
    uint32_t cap;
};

/* Its epoll set and event on base (cb(arg) runs when a parked socket is
 * readable: call park_take_ready()). Returns 0, or -1. */
int park_init(struct park *pk, struct event_base *base,
              event_callback_fn cb, void *arg);
/* Frees it; parked sockets must be gone (park_close_all()). */
void park_deinit(struct park *pk);
/* Parks fd. Returns 0, or -1 (the socket stays the caller's). */
int park_add(struct park *pk, const struct park_slot *slot);
/* Takes out up to max sockets that are readable, into out. Returns how
 * many (each is the caller's again). */
unsigned park_take_ready(struct park *pk, struct park_slot *out,
                         unsigned max);
/* Takes out up to max sockets idle since before cutoff_us. */
unsigned park_take_idle(struct park *pk, uint64_t cutoff_us,
                        struct park_slot *out, unsigned max);
/* Takes out every socket (at most max), e.g. to close them at stop. */
unsigned park_take_all(struct park *pk, struct park_slot *out, unsigned max);

#endif
