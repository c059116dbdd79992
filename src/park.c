/* SPDX-License-Identifier: BSD-3-Clause */
/* park: see park.h. */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "park.h"
#include "util.h"

int
park_init(struct park *pk, struct event_base *base, event_callback_fn cb,
          void *arg)
{
    pk->slots = NULL;
    pk->n = pk->cap = 0;
    pk->ev = NULL;
    pk->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (pk->epfd < 0) {
        return -1;
    }
    pk->ev = event_new(base, pk->epfd, EV_READ | EV_PERSIST, cb, arg);
    if (pk->ev == NULL || event_add(pk->ev, NULL) != 0) {
        park_deinit(pk);
        return -1;
    }
    return 0;
}

void
park_deinit(struct park *pk)
{
    if (pk->ev != NULL) {
        event_free(pk->ev);
        pk->ev = NULL;
    }
    if (pk->epfd >= 0) {
        close(pk->epfd);
        pk->epfd = -1;
    }
    free(pk->slots);
    pk->slots = NULL;
    pk->n = pk->cap = 0;
}

static int
park_watch(struct park *pk, int op, int fd, uint32_t index)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP,
        .data.u64 = (uint64_t)index << 32 | (uint32_t)fd,
    };

    return epoll_ctl(pk->epfd, op, fd, &ev);
}

int
park_add(struct park *pk, const struct park_slot *slot)
{
    if (pk->epfd < 0) {
        return -1;
    }
    if (pk->n == pk->cap) {
        uint32_t ncap = pk->cap ? pk->cap * 2 : 64;
        struct park_slot *s = realloc(pk->slots, ncap * sizeof(*s));

        if (s == NULL) {
            return -1;
        }
        pk->slots = s;
        pk->cap = ncap;
    }
    if (park_watch(pk, EPOLL_CTL_ADD, slot->fd, pk->n) != 0) {
        return -1;
    }
    pk->slots[pk->n++] = *slot;
    return 0;
}

/* Takes slot i out (out of the epoll set too); the last moves in. */
static void
park_remove(struct park *pk, uint32_t i, struct park_slot *out)
{
    *out = pk->slots[i];
    (void)epoll_ctl(pk->epfd, EPOLL_CTL_DEL, out->fd, NULL);
    pk->n--;
    if (i != pk->n) {
        pk->slots[i] = pk->slots[pk->n];
        (void)park_watch(pk, EPOLL_CTL_MOD, pk->slots[i].fd, i);
    }
    if (pk->n == 0 && pk->cap > 64) {
        free(pk->slots);
        pk->slots = NULL;
        pk->cap = 0;
    }
}

unsigned
park_take_ready(struct park *pk, struct park_slot *out, unsigned max)
{
    struct epoll_event ev[64];
    unsigned taken = 0;
    int n;

    if (max > UTIL_ARRAY_SIZE(ev)) {
        max = UTIL_ARRAY_SIZE(ev);
    }
    do {
        n = epoll_wait(pk->epfd, ev, (int)max, 0);
    } while (n < 0 && errno == EINTR);
    for (int k = 0; k < n; k++) {
        uint32_t i = (uint32_t)(ev[k].data.u64 >> 32);
        int fd = (int)(uint32_t)ev[k].data.u64;

        /* A slot moved by an earlier removal of this batch: its socket
         * is still watched (level-triggered) and comes again. */
        if (i < pk->n && pk->slots[i].fd == fd) {
            park_remove(pk, i, &out[taken++]);
        }
    }
    return taken;
}

unsigned
park_take_idle(struct park *pk, uint64_t cutoff_us, struct park_slot *out,
               unsigned max)
{
    unsigned taken = 0;
    uint32_t i = 0;

    while (i < pk->n && taken < max) {
        if (pk->slots[i].since_us < cutoff_us) {
            park_remove(pk, i, &out[taken++]);
        } else {
            i++;
        }
    }
    return taken;
}

unsigned
park_take_all(struct park *pk, struct park_slot *out, unsigned max)
{
    unsigned taken = 0;

    while (pk->n > 0 && taken < max) {
        park_remove(pk, pk->n - 1, &out[taken++]);
    }
    return taken;
}
