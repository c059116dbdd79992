/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dns: see dns.h.
 *
 * Every lookup in flight is on d->reqs until evdns answers it. evdns also
 * answers a cancelled lookup (with EVUTIL_EAI_CANCEL, at once or from the
 * loop): a cancelled request is only marked, and freed when that answer
 * comes, without calling the user back. At dns_destroy() whatever evdns
 * has not answered is freed with the resolver.
 */
#include "autoconf.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "dns.h"
#include "log.h"
#include "net.h"
#include "util.h"

#define DNS_RESOLV_CONF "/etc/resolv.conf"

struct dns_req {
    struct dns *d;
    struct evdns_getaddrinfo_request *r;
    dns_cb cb;
    void *arg;
    bool cancelled;
    bool in_call;                   /* inside evdns_getaddrinfo() */
    bool answered;
    TAILQ_ENTRY(dns_req) link;
};

TAILQ_HEAD(dns_req_list, dns_req);

struct dns {
    struct evdns_base *evdns;
    struct dns_req_list reqs;
};

struct dns *
dns_create(struct event_base *base, char *err, size_t errlen)
{
    struct dns *d = util_xcalloc(1, sizeof(*d));

    TAILQ_INIT(&d->reqs);
    /* Resolv.conf's nameservers, or 127.0.0.1 without one; the loop does
     * not wait for the resolver when no lookup is in flight. */
    d->evdns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                        EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (d->evdns == NULL) {
        snprintf(err, errlen, "cannot start the DNS resolver");
        free(d);
        return NULL;
    }
    return d;
}

void
dns_destroy(struct dns *d)
{
    struct dns_req *r;

    if (d == NULL) {
        return;
    }
    TAILQ_FOREACH(r, &d->reqs, link) {
        r->cancelled = true;
    }
    for (struct dns_req *next, *c = TAILQ_FIRST(&d->reqs); c != NULL;
         c = next) {
        next = TAILQ_NEXT(c, link);
        /* May answer (and free) c at once. */
        evdns_getaddrinfo_cancel(c->r);
    }
    evdns_base_free(d->evdns, 0);
    while ((r = TAILQ_FIRST(&d->reqs)) != NULL) {
        TAILQ_REMOVE(&d->reqs, r, link);
        free(r);
    }
    free(d);
}

void
dns_reload(struct dns *d)
{
    int rc;

    evdns_base_clear_nameservers_and_suspend(d->evdns);
    rc = evdns_base_resolv_conf_parse(d->evdns, DNS_OPTIONS_ALL,
                                      DNS_RESOLV_CONF);
    if (rc != 0) {
        log_warn("dns: cannot read %s (error %d); using 127.0.0.1",
                 DNS_RESOLV_CONF, rc);
    }
    evdns_base_resume(d->evdns);
}

/* The first IPv4 address of res, else its first address. */
static const struct evutil_addrinfo *
dns_pick(const struct evutil_addrinfo *res)
{
    for (const struct evutil_addrinfo *a = res; a != NULL; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            return a;
        }
    }
    return res;
}

static void
dns_done(int result, struct evutil_addrinfo *res, void *arg)
{
    struct dns_req *r = arg;
    const struct evutil_addrinfo *a = result == 0 ? dns_pick(res) : NULL;

    r->answered = true;
    if (!r->in_call) {
        TAILQ_REMOVE(&r->d->reqs, r, link);
    }
    if (!r->cancelled) {
        if (a != NULL && a->ai_addrlen <= sizeof(struct sockaddr_storage)) {
            struct sockaddr_storage sa;

            memset(&sa, 0, sizeof(sa));
            memcpy(&sa, a->ai_addr, a->ai_addrlen);
            r->cb(0, NULL, &sa, (socklen_t)a->ai_addrlen, r->arg);
        } else {
            r->cb(result != 0 ? result : EVUTIL_EAI_FAIL,
                  result != 0 ? evutil_gai_strerror(result)
                              : "no usable address",
                  NULL, 0, r->arg);
        }
    }
    if (res != NULL) {
        evutil_freeaddrinfo(res);
    }
    if (!r->in_call) {
        free(r);
    }
}

struct dns_req *
dns_resolve(struct dns *d, const char *host, uint16_t port, dns_cb cb,
            void *arg)
{
    struct dns_req *r = util_xcalloc(1, sizeof(*r));
    struct evutil_addrinfo hints;
    char serv[8];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    snprintf(serv, sizeof(serv), "%u", (unsigned)port);
    r->d = d;
    r->cb = cb;
    r->arg = arg;
    r->in_call = true;
    r->r = evdns_getaddrinfo(d->evdns, host, serv, &hints, dns_done, r);
    r->in_call = false;
    if (r->answered) {
        /* Numeric, or in /etc/hosts: answered already. */
        free(r);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&d->reqs, r, link);
    return r;
}

void
dns_cancel(struct dns_req *r)
{
    if (r != NULL) {
        r->cancelled = true;
        evdns_getaddrinfo_cancel(r->r);
    }
}

int
dns_numeric(const char *host, uint16_t port, struct sockaddr_storage *sa,
            socklen_t *salen)
{
    struct evutil_addrinfo hints, *res = NULL;
    char serv[8];

    if (host[0] == '/') {
        return net_unix_addr(host, sa, salen);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
    snprintf(serv, sizeof(serv), "%u", (unsigned)port);
    if (evutil_getaddrinfo(host, serv, &hints, &res) != 0 || res == NULL ||
        res->ai_addrlen > sizeof(*sa)) {
        if (res != NULL) {
            evutil_freeaddrinfo(res);
        }
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = (socklen_t)res->ai_addrlen;
    evutil_freeaddrinfo(res);
    return 0;
}
