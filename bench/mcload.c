/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mcload: a load generator for the memcached text protocol.
 *
 *   main: parse options -> optional preload (one blocking connection,
 *   pipelined sets, every key once) -> N threads -> join -> merge -> print
 *
 *   thread: own event_base, own connections (round-robin share of --conns),
 *   each connection keeps up to --depth requests in flight:
 *
 *     read event -> read() into the connection's fixed input buffer
 *       -> parse every complete response, oldest request first
 *       -> record latency, issue one new request per completed one
 *       -> one write() for everything issued in that turn
 *
 * Invariants:
 *   - No allocation after start-up: each connection's input buffer, output
 *     buffer and in-flight ring are sized from the options once. The output
 *     buffer holds at most --depth requests, since a request is only issued
 *     when an older one completes.
 *   - Responses are matched to requests strictly in order. A response is
 *     only consumed once it is complete in the input buffer, so a partial
 *     response is simply parsed again from its start on the next read.
 *   - Every response is checked: framing (VALUE/END/STORED), the key of each
 *     VALUE against the keys asked (in order), the value length and bytes.
 *     A wrong response counts as an error; a stream that cannot be trusted
 *     any more (bad framing, EOF, timeout) fails every request in flight on
 *     that connection, which is then closed and reconnected.
 *   - Latency is measured from the write of a request's batch to the read
 *     that completed it, in a fixed log-linear histogram per thread.
 *   - No mutable globals: all state hangs off struct mcl_run.
 *
 * Built standalone (no autoconf.h):
 *   gcc -std=gnu11 -O2 -Wall -Wextra -o bench/mcload bench/mcload.c \
 *       $(pkg-config --cflags --libs libevent) -lm -pthread
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* Highest key length: "key:" and ten digits. */
#define MCL_KEY_MAX 14
/* Longest status line we wait for before calling the stream broken. */
#define MCL_LINE_MAX 2048
/* Histogram: exact below 2^(SUB_BITS+1) ns, then 2^SUB_BITS per octave. */
#define MCL_HIST_SUB_BITS 6
#define MCL_HIST_SUB (1u << MCL_HIST_SUB_BITS)
#define MCL_HIST_MAX_BITS 42 /* about 73 minutes in ns */
#define MCL_HIST_BUCKETS                                                       \
    (2 * MCL_HIST_SUB + (MCL_HIST_MAX_BITS - MCL_HIST_SUB_BITS) * MCL_HIST_SUB)
/* Error lines printed per thread before going quiet. */
#define MCL_MAX_REPORTS 5
/* Preload batch: sets written before their replies are read. */
#define MCL_PRELOAD_BATCH 128
#define MCL_RETRY_MS 100
#define MCL_WATCHDOG_MS 500

enum mcl_req_type {
    MCL_REQ_GET,
    MCL_REQ_SET,
};

enum mcl_parse {
    MCL_PARSE_DONE,   /* one response consumed */
    MCL_PARSE_MORE,   /* incomplete, wait for more bytes */
    MCL_PARSE_BROKEN, /* framing lost, connection must be reset */
};

struct mcl_opts {
    const char *host;
    uint16_t port;
    unsigned conns;
    unsigned threads;
    double duration;   /* seconds, when requests == 0 and !have_requests */
    uint64_t requests; /* total, when have_requests */
    bool have_requests;
    unsigned depth;
    uint32_t keys;
    unsigned value_size;
    double get_ratio;
    unsigned multiget;
    double hot_ratio;  /* share of requests for the first hot_keys keys */
    uint32_t hot_keys;
    bool preload;
    double timeout; /* seconds a connection may wait for a response */
};

struct mcl_hist {
    uint64_t counts[MCL_HIST_BUCKETS];
    uint64_t max_ns;
};

struct mcl_stats {
    uint64_t requests; /* completed, with or without error */
    uint64_t gets;
    uint64_t sets;
    uint64_t keys_asked;
    uint64_t hits;
    uint64_t misses;
    uint64_t errors;
    struct mcl_hist hist;
};

/* One request in flight; a multi-get asks keys first .. first+M-1 mod K. */
struct mcl_req {
    uint64_t start_ns;
    uint32_t first_key;
    uint8_t type;
};

/* Owned by its thread; buffers allocated once in mcl_conn_init(). */
struct mcl_conn {
    struct mcl_thread *thr;
    unsigned id;
    int fd;
    struct event *ev_read;
    struct event *ev_write;
    struct event *ev_retry;
    char *in;
    size_t in_len;
    size_t in_cap;
    char *out;
    size_t out_off;
    size_t out_len;
    size_t out_cap;
    bool write_armed;
    struct mcl_req *ring; /* --depth slots */
    unsigned head;
    unsigned count;
    uint64_t progress_ns; /* last completion, or first issue when idle */
    uint64_t rng;
};

/* Owned by struct mcl_run; touched only by its own thread until joined. */
struct mcl_thread {
    struct mcl_run *run;
    unsigned id;
    pthread_t tid;
    struct event_base *base;
    struct event *ev_stop;
    struct event *ev_watchdog;
    struct mcl_conn *conns;
    unsigned nconns;
    bool stopping;
    bool finished;
    uint64_t quota;    /* requests still to issue; UINT64_MAX: timed */
    uint64_t inflight; /* sum of conns[i].count */
    uint64_t start_ns;
    uint64_t end_ns;
    unsigned reports;
    int setup_failed;
    struct mcl_stats stats;
};

struct mcl_run {
    struct mcl_opts opts;
    struct sockaddr_in addr;
    uint32_t get_threshold; /* rng low word below it: get */
    uint32_t hot_threshold; /* another draw below it: a hot key */
    bool all_gets;
    char *fill; /* value_size bytes of '.', read-only */
    size_t max_req;
    size_t max_resp;
    pthread_barrier_t barrier;
    struct mcl_thread *threads;
};

static uint64_t
mcl_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool
mcl_would_block(int e)
{
#if EAGAIN != EWOULDBLOCK
    if (e == EWOULDBLOCK) {
        return true;
    }
#endif
    return e == EAGAIN;
}

/* xorshift64*: fast, good enough for key choice. */
static uint64_t
mcl_rand(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Writes the decimal form of v at p; returns the number of bytes. */
static size_t
mcl_fmt_u32(char *p, uint32_t v)
{
    char tmp[10];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }
    return n;
}

/* Writes "key:<k>" at p; returns its length (at most MCL_KEY_MAX). */
static size_t
mcl_fmt_key(char *p, uint32_t k)
{
    memcpy(p, "key:", 4);
    return 4 + mcl_fmt_u32(p + 4, k);
}

/*
 * Parses an unsigned decimal at *p (up to end), stops at the first non-digit.
 * Returns 0 and advances *p, or -1 when there is no digit or it overflows.
 */
static int
mcl_parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (s >= end || *s < '0' || *s > '9') {
        return -1;
    }
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

/* Writes the value stored under key k: the key's bytes, then '.' fill. */
static void
mcl_fill_value(const struct mcl_run *run, char *p, const char *key, size_t klen)
{
    size_t vs = run->opts.value_size;
    size_t n = klen < vs ? klen : vs;

    memcpy(p, key, n);
    memcpy(p + n, run->fill, vs - n);
}

static bool
mcl_value_ok(const struct mcl_run *run, const char *data, uint32_t k)
{
    char key[MCL_KEY_MAX];
    size_t klen = mcl_fmt_key(key, k);
    size_t vs = run->opts.value_size;
    size_t n = klen < vs ? klen : vs;

    return memcmp(data, key, n) == 0 &&
           memcmp(data + n, run->fill, vs - n) == 0;
}

/* ---- histogram ---- */

static unsigned
mcl_hist_index(uint64_t v)
{
    unsigned msb;
    unsigned shift;
    unsigned idx;

    if (v < 2 * MCL_HIST_SUB) {
        return (unsigned)v;
    }
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - MCL_HIST_SUB_BITS;
    idx = 2 * MCL_HIST_SUB + (msb - MCL_HIST_SUB_BITS - 1) * MCL_HIST_SUB +
          (unsigned)((v >> shift) - MCL_HIST_SUB);
    if (idx >= MCL_HIST_BUCKETS) {
        idx = MCL_HIST_BUCKETS - 1;
    }
    return idx;
}

/* Lowest value of bucket idx and its width, for reporting. */
static void
mcl_hist_bounds(unsigned idx, uint64_t *lo, uint64_t *width)
{
    unsigned octave;
    unsigned sub;

    if (idx < 2 * MCL_HIST_SUB) {
        *lo = idx;
        *width = 1;
        return;
    }
    octave = (idx - 2 * MCL_HIST_SUB) / MCL_HIST_SUB;
    sub = (idx - 2 * MCL_HIST_SUB) % MCL_HIST_SUB;
    *width = 1ull << (octave + 1);
    *lo = (uint64_t)(MCL_HIST_SUB + sub) << (octave + 1);
}

static void
mcl_hist_add(struct mcl_hist *h, uint64_t v)
{
    h->counts[mcl_hist_index(v)]++;
    if (v > h->max_ns) {
        h->max_ns = v;
    }
}

/* Value (ns) at quantile q in [0, 1]: midpoint of the bucket holding it. */
static double
mcl_hist_quantile(const struct mcl_hist *h, double q)
{
    uint64_t total = 0;
    uint64_t rank;
    uint64_t seen = 0;

    for (unsigned i = 0; i < MCL_HIST_BUCKETS; i++) {
        total += h->counts[i];
    }
    if (total == 0) {
        return 0.0;
    }
    rank = (uint64_t)ceil(q * (double)total);
    if (rank == 0) {
        rank = 1;
    }
    for (unsigned i = 0; i < MCL_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo;
            uint64_t width;
            double mid;

            mcl_hist_bounds(i, &lo, &width);
            mid = (double)lo + (double)(width - 1) / 2.0;
            return mid > (double)h->max_ns ? (double)h->max_ns : mid;
        }
    }
    return (double)h->max_ns;
}

/* ---- connections ---- */

static void mcl_conn_on_read(evutil_socket_t fd, short what, void *arg);
static void mcl_conn_on_write(evutil_socket_t fd, short what, void *arg);
static void mcl_conn_on_retry(evutil_socket_t fd, short what, void *arg);

static void
mcl_report(struct mcl_thread *thr, const struct mcl_conn *c, const char *what)
{
    if (thr->reports < MCL_MAX_REPORTS) {
        fprintf(stderr, "mcload: thread %u conn %u: %s\n", thr->id, c->id,
                what);
    } else if (thr->reports == MCL_MAX_REPORTS) {
        fprintf(stderr, "mcload: thread %u: further errors not shown\n",
                thr->id);
    }
    thr->reports++;
}

/*
 * Opens a blocking TCP connection with a bounded connect time, then makes it
 * non-blocking. Returns the fd, or -1 with errno set.
 */
static int
mcl_connect(const struct sockaddr_in *addr, bool nonblock)
{
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    /* On Linux SO_SNDTIMEO also bounds a blocking connect(). */
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nonblock && evutil_make_socket_nonblocking(fd) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
mcl_thread_maybe_finish(struct mcl_thread *thr)
{
    if (thr->stopping && thr->inflight == 0 && !thr->finished) {
        thr->finished = true;
        thr->end_ns = mcl_now_ns();
        event_base_loopexit(thr->base, NULL);
    }
}

/* Appends one new request to c's output buffer and its in-flight ring. */
static void
mcl_conn_issue(struct mcl_conn *c, uint64_t now)
{
    struct mcl_thread *thr = c->thr;
    const struct mcl_run *run = thr->run;
    const struct mcl_opts *o = &run->opts;
    uint64_t r = mcl_rand(&c->rng);
    uint32_t k = (uint32_t)(((r >> 32) * (uint64_t)o->keys) >> 32);
    bool get = run->all_gets || (uint32_t)r < run->get_threshold;

    if (run->hot_threshold > 0) {
        /* A skewed load: this share of requests is for a few keys. */
        uint64_t h = mcl_rand(&c->rng);

        if ((uint32_t)h < run->hot_threshold) {
            k = (uint32_t)(((h >> 32) * (uint64_t)o->hot_keys) >> 32);
        }
    }
    struct mcl_req *q;
    char *p;

    if (c->out_cap - c->out_len < run->max_req) {
        /* Compact: unsent bytes never exceed depth requests. */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    p = c->out + c->out_len;
    if (get) {
        memcpy(p, "get", 3);
        p += 3;
        for (unsigned i = 0; i < o->multiget; i++) {
            uint32_t ki = k + i;

            if (ki >= o->keys) {
                ki -= o->keys;
            }
            *p++ = ' ';
            p += mcl_fmt_key(p, ki);
        }
        thr->stats.gets++;
    } else {
        char *key;
        size_t klen;

        memcpy(p, "set ", 4);
        p += 4;
        key = p;
        klen = mcl_fmt_key(p, k);
        p += klen;
        memcpy(p, " 0 0 ", 5);
        p += 5;
        p += mcl_fmt_u32(p, o->value_size);
        memcpy(p, "\r\n", 2);
        p += 2;
        mcl_fill_value(run, p, key, klen);
        p += o->value_size;
        thr->stats.sets++;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    c->out_len = (size_t)(p - c->out);

    q = &c->ring[(c->head + c->count) % o->depth];
    q->start_ns = now;
    q->first_key = k;
    q->type = get ? MCL_REQ_GET : MCL_REQ_SET;
    if (c->count == 0) {
        c->progress_ns = now;
    }
    c->count++;
    thr->inflight++;
    if (thr->quota != UINT64_MAX) {
        thr->quota--;
        if (thr->quota == 0) {
            thr->stopping = true;
        }
    }
}

/* Issues requests until the pipeline is full or the run is stopping. */
static void
mcl_conn_fill(struct mcl_conn *c, uint64_t now)
{
    while (c->count < c->thr->run->opts.depth && !c->thr->stopping) {
        mcl_conn_issue(c, now);
    }
}

/* Tears c down: every request in flight fails; reconnects unless stopping. */
static void
mcl_conn_fail(struct mcl_conn *c, const char *why)
{
    struct mcl_thread *thr = c->thr;
    struct timeval tv = {.tv_sec = 0, .tv_usec = MCL_RETRY_MS * 1000};

    mcl_report(thr, c, why);
    thr->stats.errors += c->count;
    thr->stats.requests += c->count;
    thr->inflight -= c->count;
    c->count = 0;
    c->head = 0;
    c->in_len = 0;
    c->out_len = 0;
    c->out_off = 0;
    event_del(c->ev_read);
    event_del(c->ev_write);
    c->write_armed = false;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (!thr->stopping) {
        event_add(c->ev_retry, &tv);
    }
    mcl_thread_maybe_finish(thr);
}

/* Writes what is pending; arms the write event if the socket is full. */
static void
mcl_conn_flush(struct mcl_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (mcl_would_block(errno)) {
                if (!c->write_armed) {
                    event_add(c->ev_write, NULL);
                    c->write_armed = true;
                }
                return;
            }
            mcl_conn_fail(c, strerror(errno));
            return;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = 0;
    c->out_len = 0;
    if (c->write_armed) {
        event_del(c->ev_write);
        c->write_armed = false;
    }
}

/*
 * Takes ownership of connected fd, arms c's events and fills its pipeline.
 * On failure c is failed (fd closed, retry scheduled).
 */
static void
mcl_conn_start(struct mcl_conn *c, int fd)
{
    struct event_base *base = c->thr->base;

    c->fd = fd;
    if (event_assign(c->ev_read, base, fd, EV_READ | EV_PERSIST,
                     mcl_conn_on_read, c) != 0 ||
        event_assign(c->ev_write, base, fd, EV_WRITE | EV_PERSIST,
                     mcl_conn_on_write, c) != 0 ||
        event_add(c->ev_read, NULL) != 0) {
        mcl_conn_fail(c, "cannot arm events");
        return;
    }
    mcl_conn_fill(c, mcl_now_ns());
    mcl_conn_flush(c);
}

/*
 * Parses the response to get request q at in[0 .. len). On MCL_PARSE_DONE
 * sets *used, *hits and *bad (a well-framed but wrong response; *bad_at is
 * then the offset of the first wrong line).
 */
static enum mcl_parse
mcl_parse_get(const struct mcl_run *run, const struct mcl_req *q,
              const char *in, size_t len, size_t *used, unsigned *hits,
              bool *bad, size_t *bad_at)
{
    const struct mcl_opts *o = &run->opts;
    size_t pos = 0;
    unsigned next = 0; /* index of the next key we may still see */

    *hits = 0;
    *bad = false;
    for (;;) {
        const char *line = in + pos;
        const char *nl = memchr(line, '\n', len - pos);
        const char *end;
        const char *s;
        uint64_t id;
        uint64_t flags;
        uint64_t bytes;
        size_t llen;
        bool found;

        if (nl == NULL) {
            return len - pos > MCL_LINE_MAX ? MCL_PARSE_BROKEN : MCL_PARSE_MORE;
        }
        llen = (size_t)(nl - line) + 1;
        if (llen < 2 || nl[-1] != '\r') {
            return MCL_PARSE_BROKEN;
        }
        end = nl - 1;
        if (llen == 5 && memcmp(line, "END", 3) == 0) {
            *used = pos + llen;
            return MCL_PARSE_DONE;
        }
        if (llen > 6 && memcmp(line, "VALUE ", 6) == 0) {
            s = line + 6;
            if (end - s < 5 || memcmp(s, "key:", 4) != 0) {
                return MCL_PARSE_BROKEN;
            }
            s += 4;
            if (mcl_parse_u64(&s, end, &id) != 0 || s >= end || *s != ' ') {
                return MCL_PARSE_BROKEN;
            }
            s++;
            if (mcl_parse_u64(&s, end, &flags) != 0 || s >= end || *s != ' ') {
                return MCL_PARSE_BROKEN;
            }
            s++;
            if (mcl_parse_u64(&s, end, &bytes) != 0 ||
                (s != end && *s != ' ') || bytes > SIZE_MAX / 2) {
                return MCL_PARSE_BROKEN;
            }
            pos += llen;
            if (len - pos < bytes + 2) {
                return MCL_PARSE_MORE;
            }
            if (in[pos + bytes] != '\r' || in[pos + bytes + 1] != '\n') {
                return MCL_PARSE_BROKEN;
            }
            /* Keys come back in the order asked, each at most once. */
            found = false;
            while (next < o->multiget && !found) {
                uint32_t want = q->first_key + next;

                if (want >= o->keys) {
                    want -= o->keys;
                }
                next++;
                found = want == id;
            }
            if (*bad) {
                /* Already wrong; just skip the rest of the response. */
            } else if (!found || bytes != o->value_size || flags != 0 ||
                       !mcl_value_ok(run, in + pos, (uint32_t)id)) {
                *bad = true;
                *bad_at = (size_t)(line - in);
            } else {
                (*hits)++;
            }
            pos += bytes + 2;
            continue;
        }
        if ((llen >= 7 && memcmp(line, "ERROR\r\n", 7) == 0) ||
            (llen > 12 && memcmp(line, "SERVER_ERROR", 12) == 0) ||
            (llen > 12 && memcmp(line, "CLIENT_ERROR", 12) == 0)) {
            /* The whole response is this one line. */
            *used = pos + llen;
            *bad = true;
            *bad_at = pos;
            return MCL_PARSE_DONE;
        }
        return MCL_PARSE_BROKEN;
    }
}

/* Parses a one-line storage response; *bad unless it is STORED. */
static enum mcl_parse
mcl_parse_set(const char *in, size_t len, size_t *used, bool *bad)
{
    const char *nl = memchr(in, '\n', len);

    if (nl == NULL) {
        return len > MCL_LINE_MAX ? MCL_PARSE_BROKEN : MCL_PARSE_MORE;
    }
    *used = (size_t)(nl - in) + 1;
    if (*used < 2 || nl[-1] != '\r') {
        return MCL_PARSE_BROKEN;
    }
    *bad = !(*used == 8 && memcmp(in, "STORED", 6) == 0);
    return MCL_PARSE_DONE;
}

/*
 * Consumes every complete response in c's input buffer. Returns 0, or -1
 * when the connection was failed (c must not be used for this turn).
 */
static int
mcl_conn_parse(struct mcl_conn *c, uint64_t now)
{
    struct mcl_thread *thr = c->thr;
    const struct mcl_run *run = thr->run;
    unsigned depth = run->opts.depth;
    size_t pos = 0;

    while (pos < c->in_len) {
        struct mcl_req *q;
        enum mcl_parse rc;
        size_t used = 0;
        size_t bad_at = 0;
        unsigned hits = 0;
        bool bad = false;

        if (c->count == 0) {
            mcl_conn_fail(c, "response without a request");
            return -1;
        }
        q = &c->ring[c->head];
        if (q->type == MCL_REQ_GET) {
            rc = mcl_parse_get(run, q, c->in + pos, c->in_len - pos, &used,
                               &hits, &bad, &bad_at);
        } else {
            rc = mcl_parse_set(c->in + pos, c->in_len - pos, &used, &bad);
        }
        if (rc == MCL_PARSE_MORE) {
            break;
        }
        if (rc == MCL_PARSE_BROKEN) {
            mcl_conn_fail(c, "unparseable response");
            return -1;
        }
        pos += used;
        thr->stats.requests++;
        if (bad) {
            thr->stats.errors++;
            if (thr->reports < MCL_MAX_REPORTS) {
                char msg[96];
                const char *w = c->in + pos - used + bad_at;
                size_t n = used - bad_at < 60 ? used - bad_at : 60;
                int off = snprintf(msg, sizeof(msg), "wrong response: ");

                for (size_t i = 0; i < n; i++) {
                    char ch = w[i];

                    msg[(size_t)off + i] = ch >= ' ' && ch < 127 ? ch : '.';
                }
                msg[(size_t)off + n] = '\0';
                mcl_report(thr, c, msg);
            }
        } else {
            mcl_hist_add(&thr->stats.hist, now - q->start_ns);
            if (q->type == MCL_REQ_GET) {
                thr->stats.keys_asked += run->opts.multiget;
                thr->stats.hits += hits;
                thr->stats.misses += run->opts.multiget - hits;
            }
        }
        c->head = (c->head + 1) % depth;
        c->count--;
        thr->inflight--;
        c->progress_ns = now;
        if (!thr->stopping) {
            mcl_conn_issue(c, now);
        }
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (c->in_len == c->in_cap) {
        mcl_conn_fail(c, "response larger than the input buffer");
        return -1;
    }
    return 0;
}

static void
mcl_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct mcl_conn *c = arg;
    ssize_t n;

    (void)what;
    n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n <= 0) {
        if (n < 0 && (mcl_would_block(errno) || errno == EINTR)) {
            return;
        }
        mcl_conn_fail(c,
                      n == 0 ? "connection closed by peer" : strerror(errno));
        return;
    }
    c->in_len += (size_t)n;
    if (mcl_conn_parse(c, mcl_now_ns()) != 0) {
        return;
    }
    mcl_conn_flush(c);
    mcl_thread_maybe_finish(c->thr);
}

static void
mcl_conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mcl_conn_flush(arg);
}

static void
mcl_conn_on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct mcl_conn *c = arg;
    struct timeval tv = {.tv_sec = 0, .tv_usec = MCL_RETRY_MS * 1000};
    int nfd;

    (void)fd;
    (void)what;
    if (c->thr->stopping) {
        return;
    }
    nfd = mcl_connect(&c->thr->run->addr, true);
    if (nfd < 0) {
        event_add(c->ev_retry, &tv);
        return;
    }
    mcl_conn_start(c, nfd);
}

static int
mcl_conn_init(struct mcl_conn *c, struct mcl_thread *thr, unsigned id)
{
    const struct mcl_run *run = thr->run;

    memset(c, 0, sizeof(*c));
    c->thr = thr;
    c->id = id;
    c->fd = -1;
    c->in_cap = 2 * run->max_resp;
    if (c->in_cap < 65536) {
        c->in_cap = 65536;
    }
    c->out_cap = (size_t)run->opts.depth * run->max_req + run->max_req;
    c->in = malloc(c->in_cap);
    c->out = malloc(c->out_cap);
    c->ring = calloc(run->opts.depth, sizeof(*c->ring));
    c->ev_read = event_new(thr->base, -1, 0, mcl_conn_on_read, c);
    c->ev_write = event_new(thr->base, -1, 0, mcl_conn_on_write, c);
    c->ev_retry = evtimer_new(thr->base, mcl_conn_on_retry, c);
    c->rng = (0x9E3779B97F4A7C15ULL * (((uint64_t)thr->id << 32) + id + 1)) ^
             mcl_now_ns();
    if (c->rng == 0) {
        c->rng = 1;
    }
    if (c->in == NULL || c->out == NULL || c->ring == NULL ||
        c->ev_read == NULL || c->ev_write == NULL || c->ev_retry == NULL) {
        return -1;
    }
    return 0;
}

static void
mcl_conn_deinit(struct mcl_conn *c)
{
    if (c->ev_read != NULL) {
        event_free(c->ev_read);
    }
    if (c->ev_write != NULL) {
        event_free(c->ev_write);
    }
    if (c->ev_retry != NULL) {
        event_free(c->ev_retry);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->in);
    free(c->out);
    free(c->ring);
}

/* ---- threads ---- */

static void
mcl_thread_on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct mcl_thread *thr = arg;

    (void)fd;
    (void)what;
    thr->stopping = true;
    for (unsigned i = 0; i < thr->nconns; i++) {
        event_del(thr->conns[i].ev_retry);
    }
    mcl_thread_maybe_finish(thr);
}

/* Fails connections that have waited longer than --timeout for a reply. */
static void
mcl_thread_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct mcl_thread *thr = arg;
    uint64_t now = mcl_now_ns();
    uint64_t limit = (uint64_t)(thr->run->opts.timeout * 1e9);

    (void)fd;
    (void)what;
    for (unsigned i = 0; i < thr->nconns; i++) {
        struct mcl_conn *c = &thr->conns[i];

        if (c->fd >= 0 && c->count > 0 && now - c->progress_ns > limit) {
            mcl_conn_fail(c, "timeout waiting for a response");
        }
    }
}

static void *
mcl_thread_main(void *arg)
{
    struct mcl_thread *thr = arg;
    struct mcl_run *run = thr->run;
    struct timeval wd = {.tv_sec = 0, .tv_usec = MCL_WATCHDOG_MS * 1000};

    /* Connect everything before the clock starts. */
    for (unsigned i = 0; i < thr->nconns && thr->setup_failed == 0; i++) {
        int fd = mcl_connect(&run->addr, true);

        if (fd < 0) {
            fprintf(stderr, "mcload: connect %s:%u: %s\n", run->opts.host,
                    run->opts.port, strerror(errno));
            thr->setup_failed = 1;
            break;
        }
        thr->conns[i].fd = fd;
    }
    pthread_barrier_wait(&run->barrier);
    /* A second rendezvous so nobody starts if anybody failed. */
    pthread_barrier_wait(&run->barrier);
    for (unsigned i = 0; i < run->opts.threads; i++) {
        if (run->threads[i].setup_failed != 0) {
            return NULL;
        }
    }

    thr->start_ns = mcl_now_ns();
    if (!run->opts.have_requests) {
        struct timeval tv;
        double d = run->opts.duration;

        tv.tv_sec = (time_t)d;
        tv.tv_usec = (suseconds_t)((d - (double)tv.tv_sec) * 1e6);
        event_add(thr->ev_stop, &tv);
    }
    event_add(thr->ev_watchdog, &wd);
    if (thr->quota == 0) {
        thr->stopping = true;
    }
    for (unsigned i = 0; i < thr->nconns; i++) {
        struct mcl_conn *c = &thr->conns[i];
        int fd = c->fd;

        c->fd = -1;
        mcl_conn_start(c, fd);
    }
    mcl_thread_maybe_finish(thr);
    if (!thr->finished) {
        event_base_dispatch(thr->base);
    }
    if (!thr->finished) {
        thr->end_ns = mcl_now_ns();
    }
    return NULL;
}

static int
mcl_thread_init(struct mcl_thread *thr, struct mcl_run *run, unsigned id)
{
    const struct mcl_opts *o = &run->opts;

    memset(thr, 0, sizeof(*thr));
    thr->run = run;
    thr->id = id;
    thr->nconns = o->conns / o->threads + (id < o->conns % o->threads);
    thr->quota = UINT64_MAX;
    if (o->have_requests) {
        thr->quota = o->requests / o->threads + (id < o->requests % o->threads);
    }
    thr->base = event_base_new();
    if (thr->base == NULL) {
        return -1;
    }
    thr->ev_stop = evtimer_new(thr->base, mcl_thread_on_stop, thr);
    thr->ev_watchdog =
        event_new(thr->base, -1, EV_PERSIST, mcl_thread_on_watchdog, thr);
    thr->conns = calloc(thr->nconns ? thr->nconns : 1, sizeof(*thr->conns));
    if (thr->ev_stop == NULL || thr->ev_watchdog == NULL ||
        thr->conns == NULL) {
        return -1;
    }
    for (unsigned i = 0; i < thr->nconns; i++) {
        if (mcl_conn_init(&thr->conns[i], thr, id + i * o->threads) != 0) {
            return -1;
        }
    }
    return 0;
}

static void
mcl_thread_deinit(struct mcl_thread *thr)
{
    if (thr->conns != NULL) {
        for (unsigned i = 0; i < thr->nconns; i++) {
            mcl_conn_deinit(&thr->conns[i]);
        }
        free(thr->conns);
    }
    if (thr->ev_stop != NULL) {
        event_free(thr->ev_stop);
    }
    if (thr->ev_watchdog != NULL) {
        event_free(thr->ev_watchdog);
    }
    if (thr->base != NULL) {
        event_base_free(thr->base);
    }
}

/* ---- preload ---- */

static int
mcl_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Sets every key once over one blocking connection, MCL_PRELOAD_BATCH sets
 * per round trip, and checks each reply is STORED. Returns 0 or -1 (and
 * says why on stderr).
 */
static int
mcl_preload(const struct mcl_run *run)
{
    const struct mcl_opts *o = &run->opts;
    size_t cap = MCL_PRELOAD_BATCH * run->max_req;
    char *buf = malloc(cap);
    char in[4096];
    int fd = mcl_connect(&run->addr, false);
    int rc = -1;

    if (buf == NULL || fd < 0) {
        fprintf(stderr, "mcload: preload: connect %s:%u: %s\n", o->host,
                o->port, strerror(errno));
        goto out;
    }
    for (uint32_t k = 0; k < o->keys;) {
        char *p = buf;
        unsigned batch = 0;
        unsigned got = 0;
        size_t have = 0;

        while (batch < MCL_PRELOAD_BATCH && k < o->keys) {
            char *key;
            size_t klen;

            memcpy(p, "set ", 4);
            p += 4;
            key = p;
            klen = mcl_fmt_key(p, k);
            p += klen;
            memcpy(p, " 0 0 ", 5);
            p += 5;
            p += mcl_fmt_u32(p, o->value_size);
            memcpy(p, "\r\n", 2);
            p += 2;
            mcl_fill_value(run, p, key, klen);
            p += o->value_size;
            memcpy(p, "\r\n", 2);
            p += 2;
            batch++;
            k++;
        }
        if (mcl_write_all(fd, buf, (size_t)(p - buf)) != 0) {
            fprintf(stderr, "mcload: preload: write: %s\n", strerror(errno));
            goto out;
        }
        while (got < batch) {
            char *nl = memchr(in, '\n', have);
            ssize_t n;

            if (nl != NULL) {
                size_t used = (size_t)(nl - in) + 1;

                if (used != 8 || memcmp(in, "STORED\r\n", 8) != 0) {
                    fprintf(stderr,
                            "mcload: preload: unexpected reply "
                            "%.*s\n",
                            (int)(used > 60 ? 60 : used), in);
                    goto out;
                }
                memmove(in, in + used, have - used);
                have -= used;
                got++;
                continue;
            }
            if (have == sizeof(in)) {
                fprintf(stderr, "mcload: preload: reply line too long\n");
                goto out;
            }
            n = read(fd, in + have, sizeof(in) - have);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                fprintf(stderr, "mcload: preload: read: %s\n",
                        n == 0 ? "connection closed" : strerror(errno));
                goto out;
            }
            have += (size_t)n;
        }
        if (have != 0) {
            fprintf(stderr, "mcload: preload: more replies than requests\n");
            goto out;
        }
    }
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return rc;
}

/* ---- options and main ---- */

static void
mcl_usage(FILE *f)
{
    fprintf(f,
            "usage: mcload [options]\n"
            "  --host ADDR         server IPv4 address (127.0.0.1)\n"
            "  --port PORT         server port (11211)\n"
            "  --conns N           connections (50)\n"
            "  --threads N         threads, each with its own event loop (1)\n"
            "  --duration SECONDS  run time (10)\n"
            "  --requests N        run until N requests completed instead\n"
            "  --depth D           requests in flight per connection (1)\n"
            "  --keys K            key space, keys \"key:0\".. (10000)\n"
            "  --value-size BYTES  value size for sets (100)\n"
            "  --get-ratio R       fraction of requests that are gets (0.9)\n"
            "  --multiget M        keys per get request (1)\n"
            "  --hot-ratio R       share of requests for the hot keys (0)\n"
            "  --hot-keys N        the hot keys: key:0.. (8)\n"
            "  --preload           set every key once before the run\n"
            "  --timeout SECONDS   max wait for a response (5)\n"
            "Prints one line: requests= ops_per_sec= p50_us= p99_us= "
            "errors= misses= ...\n");
}

static int
mcl_opt_u64(const char *name, const char *s, uint64_t min, uint64_t max,
            uint64_t *out)
{
    const char *p = s;
    uint64_t v;

    if (mcl_parse_u64(&p, s + strlen(s), &v) != 0 || *p != '\0' || v < min ||
        v > max) {
        fprintf(stderr,
                "mcload: --%s: want an integer in [%llu, %llu], "
                "got '%s'\n",
                name, (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int
mcl_opt_double(const char *name, const char *s, double min, double max,
               double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        fprintf(stderr, "mcload: --%s: want a number in [%g, %g], got '%s'\n",
                name, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns 0, 1 for --help, or -1 after saying what is wrong. */
static int
mcl_parse_opts(int argc, char **argv, struct mcl_opts *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"depth", required_argument, NULL, 'D'},
        {"keys", required_argument, NULL, 'k'},
        {"value-size", required_argument, NULL, 'v'},
        {"get-ratio", required_argument, NULL, 'g'},
        {"multiget", required_argument, NULL, 'm'},
        {"hot-ratio", required_argument, NULL, 'r'},
        {"hot-keys", required_argument, NULL, 'K'},
        {"preload", no_argument, NULL, 'P'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int ch;

    *o = (struct mcl_opts){
        .host = "127.0.0.1",
        .port = 11211,
        .conns = 50,
        .threads = 1,
        .duration = 10.0,
        .depth = 1,
        .keys = 10000,
        .value_size = 100,
        .get_ratio = 0.9,
        .multiget = 1,
        .hot_keys = 8,
        .timeout = 5.0,
    };
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int rc = 0;

        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            rc = mcl_opt_u64("port", optarg, 1, 65535, &v);
            o->port = (uint16_t)v;
            break;
        case 'c':
            rc = mcl_opt_u64("conns", optarg, 1, 100000, &v);
            o->conns = (unsigned)v;
            break;
        case 't':
            rc = mcl_opt_u64("threads", optarg, 1, 256, &v);
            o->threads = (unsigned)v;
            break;
        case 'd':
            rc = mcl_opt_double("duration", optarg, 0.001, 86400.0,
                                &o->duration);
            break;
        case 'n':
            rc = mcl_opt_u64("requests", optarg, 0, UINT64_MAX / 2,
                             &o->requests);
            o->have_requests = true;
            break;
        case 'D':
            rc = mcl_opt_u64("depth", optarg, 1, 4096, &v);
            o->depth = (unsigned)v;
            break;
        case 'k':
            rc = mcl_opt_u64("keys", optarg, 1, UINT32_MAX - 1, &v);
            o->keys = (uint32_t)v;
            break;
        case 'v':
            rc = mcl_opt_u64("value-size", optarg, 0, 1 << 20, &v);
            o->value_size = (unsigned)v;
            break;
        case 'g':
            rc = mcl_opt_double("get-ratio", optarg, 0.0, 1.0, &o->get_ratio);
            break;
        case 'm':
            rc = mcl_opt_u64("multiget", optarg, 1, 100, &v);
            o->multiget = (unsigned)v;
            break;
        case 'r':
            rc = mcl_opt_double("hot-ratio", optarg, 0.0, 1.0, &o->hot_ratio);
            break;
        case 'K':
            rc = mcl_opt_u64("hot-keys", optarg, 1, UINT32_MAX - 1, &v);
            o->hot_keys = (uint32_t)v;
            break;
        case 'P':
            o->preload = true;
            break;
        case 'T':
            rc = mcl_opt_double("timeout", optarg, 0.01, 3600.0, &o->timeout);
            break;
        case 'h':
            mcl_usage(stdout);
            return 1;
        default:
            mcl_usage(stderr);
            return -1;
        }
        if (rc != 0) {
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "mcload: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->hot_keys > o->keys) {
        fprintf(stderr, "mcload: --hot-keys exceeds --keys\n");
        return -1;
    }
    if (o->multiget > o->keys) {
        fprintf(stderr, "mcload: --multiget exceeds --keys\n");
        return -1;
    }
    if (o->threads > o->conns) {
        o->threads = o->conns;
    }
    return 0;
}

static void
mcl_stats_merge(struct mcl_stats *dst, const struct mcl_stats *src)
{
    dst->requests += src->requests;
    dst->gets += src->gets;
    dst->sets += src->sets;
    dst->keys_asked += src->keys_asked;
    dst->hits += src->hits;
    dst->misses += src->misses;
    dst->errors += src->errors;
    for (unsigned i = 0; i < MCL_HIST_BUCKETS; i++) {
        dst->hist.counts[i] += src->hist.counts[i];
    }
    if (src->hist.max_ns > dst->hist.max_ns) {
        dst->hist.max_ns = src->hist.max_ns;
    }
}

static double
mcl_cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0.0;
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
mcl_print(const struct mcl_run *run, const struct mcl_stats *st, double elapsed,
          double cpu)
{
    const struct mcl_hist *h = &st->hist;

    printf("requests=%llu ops_per_sec=%.0f p50_us=%.1f p99_us=%.1f "
           "errors=%llu misses=%llu gets=%llu sets=%llu keys=%llu hits=%llu "
           "p999_us=%.1f max_us=%.1f elapsed_s=%.3f client_cpu_s=%.2f "
           "conns=%u threads=%u depth=%u multiget=%u\n",
           (unsigned long long)st->requests,
           elapsed > 0 ? (double)st->requests / elapsed : 0.0,
           mcl_hist_quantile(h, 0.50) / 1e3, mcl_hist_quantile(h, 0.99) / 1e3,
           (unsigned long long)st->errors, (unsigned long long)st->misses,
           (unsigned long long)st->gets, (unsigned long long)st->sets,
           (unsigned long long)st->keys_asked, (unsigned long long)st->hits,
           mcl_hist_quantile(h, 0.999) / 1e3, (double)h->max_ns / 1e3, elapsed,
           cpu, run->opts.conns, run->opts.threads, run->opts.depth,
           run->opts.multiget);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    struct mcl_run *run = calloc(1, sizeof(*run));
    struct mcl_stats *total = calloc(1, sizeof(*total));
    struct mcl_opts *o;
    size_t set_req;
    size_t get_req;
    uint64_t start = UINT64_MAX;
    uint64_t end = 0;
    bool failed = false;
    int rc;

    if (run == NULL || total == NULL) {
        fprintf(stderr, "mcload: out of memory\n");
        return 2;
    }
    o = &run->opts;
    rc = mcl_parse_opts(argc, argv, o);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    run->addr.sin_family = AF_INET;
    run->addr.sin_port = htons(o->port);
    if (inet_pton(AF_INET, o->host, &run->addr.sin_addr) != 1) {
        fprintf(stderr, "mcload: --host: not an IPv4 address: %s\n", o->host);
        return 2;
    }
    run->all_gets = o->get_ratio >= 1.0;
    run->get_threshold = (uint32_t)(o->get_ratio * 4294967296.0);
    run->hot_threshold = o->hot_ratio >= 1.0
                             ? UINT32_MAX
                             : (uint32_t)(o->hot_ratio * 4294967296.0);
    run->fill = malloc(o->value_size + 1);
    if (run->fill == NULL) {
        fprintf(stderr, "mcload: out of memory\n");
        return 2;
    }
    memset(run->fill, '.', o->value_size);
    /* "set KEY 0 0 BYTES\r\n" VALUE "\r\n" and "get" (" KEY")*M "\r\n". */
    set_req = 4 + MCL_KEY_MAX + 5 + 10 + 2 + o->value_size + 2;
    get_req = 3 + (size_t)o->multiget * (1 + MCL_KEY_MAX) + 2;
    run->max_req = set_req > get_req ? set_req : get_req;
    /* "VALUE KEY FLAGS BYTES CAS\r\n" DATA "\r\n" per key, then "END\r\n". */
    run->max_resp = (size_t)o->multiget * (6 + MCL_KEY_MAX + 1 + 10 + 1 + 10 +
                                           1 + 20 + 2 + o->value_size + 2) +
                    5 + MCL_LINE_MAX;

    if (o->preload) {
        if (mcl_preload(run) != 0) {
            return 1;
        }
        if (o->have_requests && o->requests == 0) {
            printf("preloaded=%u errors=0\n", o->keys);
            return 0;
        }
    }

    run->threads = calloc(o->threads, sizeof(*run->threads));
    if (run->threads == NULL ||
        pthread_barrier_init(&run->barrier, NULL, o->threads) != 0) {
        fprintf(stderr, "mcload: cannot set up threads\n");
        return 2;
    }
    for (unsigned i = 0; i < o->threads; i++) {
        if (mcl_thread_init(&run->threads[i], run, i) != 0) {
            fprintf(stderr, "mcload: cannot set up thread %u\n", i);
            return 2;
        }
    }
    for (unsigned i = 0; i < o->threads; i++) {
        if (pthread_create(&run->threads[i].tid, NULL, mcl_thread_main,
                           &run->threads[i]) != 0) {
            fprintf(stderr, "mcload: pthread_create failed\n");
            return 2;
        }
    }
    for (unsigned i = 0; i < o->threads; i++) {
        struct mcl_thread *thr = &run->threads[i];

        pthread_join(thr->tid, NULL);
        if (thr->setup_failed != 0) {
            failed = true;
            continue;
        }
        if (thr->start_ns < start) {
            start = thr->start_ns;
        }
        if (thr->end_ns > end) {
            end = thr->end_ns;
        }
        /* Requests the watchdog never got to are failures too. */
        thr->stats.errors += thr->inflight;
        thr->stats.requests += thr->inflight;
        mcl_stats_merge(total, &thr->stats);
    }
    if (failed) {
        return 1;
    }
    mcl_print(run, total, end > start ? (double)(end - start) / 1e9 : 0.0,
              mcl_cpu_seconds());
    for (unsigned i = 0; i < o->threads; i++) {
        mcl_thread_deinit(&run->threads[i]);
    }
    pthread_barrier_destroy(&run->barrier);
    free(run->threads);
    free(run->fill);
    free(run);
    free(total);
    return 0;
}
