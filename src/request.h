/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * request: one client command on its way through the proxy.
 *
 * A request is created by its client, split into fragments (one per backend
 * it touches), each fragment queued on a backend connection, and completed
 * when its last fragment is answered or failed. Its reply is built in
 * req->rsp and moved to the client in the order the client sent its
 * requests.
 *
 * Ownership: the worker's free list or the client's queue owns a request;
 * a request whose client went away is "orphaned" (client == NULL) and is
 * freed by its last fragment. Requests are recycled, never freed on the
 * request path; their arrays keep their capacity.
 */
#ifndef MCRING_REQUEST_H
#define MCRING_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "proto.h"
#include "topology.h"

struct client;
struct worker;
struct worker_backend;
struct worker_topo;
struct backend;
struct evbuffer;
struct bconn;

enum frag_kind {
    FRAG_LINE,          /* one reply line: storage, delete, incr, touch */
    FRAG_RETRIEVAL,     /* VALUE blocks then END */
    FRAG_ALL,           /* flush_all or cache_memlimit to one backend */
    FRAG_STATS,         /* stats ARGS to one backend: lines until END */
    FRAG_ADMIN,         /* slabs, lru, lru_crawler or extstore to one
                           backend, then mn: its lines (one, or none for
                           noreply) until the MN */
    FRAG_META,          /* a meta command: one line, or VA and a block */
    FRAG_OWNER_DELETE,  /* delete on a RECOVERING owner, beside a write
                           to its fallback */
    FRAG_REPLICA,       /* a write's copy to another replica of its key
                           (replica.c): one reply line, counted, not
                           relayed */
    FRAG_BIG,           /* a get of a big value's chunks (big.c): VALUE
                           blocks then END, kept in buf */
    FRAG_BIG_CHUNK,     /* a set of one of its chunks: one reply line,
                           counted, not relayed */
    FRAG_POOL_DELETE,   /* a delete for another pool (cmdroute.c): one
                           reply line, counted, not relayed */
    FRAG_SHADOW,        /* a copy to a shadow pool (shadow.c): one reply
                           line, counted, not relayed */
    FRAG_SHADOW_META,   /* ... a meta command (mg for a classic read) */
    /* During a move (warmup.c): */
    FRAG_PREV_DELETE,   /* delete on a written key's previous owner, once
                           the write is answered */
    FRAG_WARM,          /* mg of a key that missed on its new owner, on its
                           previous owner: the hit is answered and copied */
    FRAG_WARM_VERIFY,   /* mg of a key whose hit on its new owner was an
                           empty value: a copy's placeholder (Z)? */
    FRAG_WARM_META,     /* a client's mg that missed, sent again to the
                           key's previous owner, its reply relayed */
    FRAG_COPY_CLAIM,    /* mg N of a warm-up hit's key on its new owner:
                           a placeholder, if nothing is there (an orphaned
                           request) ... */
    FRAG_COPY,          /* ... then ms C<the placeholder's cas> */
    FRAG_COPY_CHECK,    /* ... then mg c on where it came from: unchanged? */
    FRAG_COPY_UNDO,     /* ... else md of the copy (or of the placeholder):
                           it may be older than a write or delete made
                           meanwhile */
};

/* Fragments of a move (warmup.c). */
static inline bool
frag_kind_is_warmup(enum frag_kind k)
{
    return k >= FRAG_PREV_DELETE;
}

/* Fragments whose replies are framed as meta replies. */
static inline bool
frag_kind_is_meta(enum frag_kind k)
{
    return k == FRAG_META || k == FRAG_SHADOW_META || k >= FRAG_WARM;
}

struct frag {
    struct request *req;
    TAILQ_ENTRY(frag) link;         /* on its bconn's queue */
    enum frag_kind kind;
    struct backend *be;             /* kept by the request's topology */
    struct worker_backend *wb;      /* valid while queued */
    uint32_t key_start;             /* into req->frag_keys */
    uint32_t nkeys;
    uint32_t cursor;                /* keys matched so far */
    uint32_t matched;               /* key index of the VALUE just read */
    struct evbuffer *buf;           /* large values, multi-fragment
                                       retrievals */
    uint64_t deadline_ns;
    uint64_t sent_us;               /* when queued (worker_now_us()) */
    bool failed;
    bool fallback;                  /* gat/gats keys of DOWN owners: their
                                       exptime is capped at failover_ttl */
    bool joined;                    /* a get whose keys went on the line
                                       of the get before it on its bconn
                                       (bconn_send_get()): the line's END
                                       ends it too */
    /* A failed retrieval's keys read again where a copy is (a replica,
     * a previous owner): it counts as answered once all are. */
    uint32_t rescue_left;           /* keys of it not yet answered so */
    uint32_t rescue_of;             /* FRAG_WARM: 1 + the index of the
                                       failed fragment its key is of, or
                                       0 */
    uint64_t big_token;             /* FRAG_BIG: its chunks' token */
    uint32_t big_bytes;             /* ... and their bytes in all */
};

TAILQ_HEAD(frag_queue, frag);

struct request {
    struct client *client;          /* NULL once orphaned */
    struct worker *worker;
    struct worker_topo *wt;         /* the snapshot it was routed with */
    STAILQ_ENTRY(request) link;     /* on the client's queue */
    struct request *next_free;
    enum proto_cmd cmd;
    bool noreply;
    bool done;
    bool closes;                    /* quit or fatal error: close after */
    const char *refused;            /* a value not stored: the reply
                                       (request_dispatch_refused()), or
                                       NULL */
    bool split;                     /* a piece of a retrieval split in
                                       max_keys pieces */
    bool more;                      /* ... and not the last one: no END */
    bool meta_quiet;                /* a meta command with q */
    bool stream;                    /* a retrieval's VALUE blocks go
                                       straight to rsp (one fragment, no
                                       warm-up): else collected, merged */
    uint32_t pending;               /* fragments not yet answered */
    struct evbuffer *rsp;
    /* Multi-key state (retrieval and flush_all). */
    char *line;                     /* copy of the keys; keys point here */
    size_t linecap;
    uint32_t nkeys;
    uint32_t keycap;
    struct proto_str *keys;
    uint32_t *key_frag;             /* fragment of each key */
    uint32_t *block_len;            /* bytes of each key's VALUE block */
    uint32_t *block_off;            /* where it is in vals, or
                                       REQUEST_IN_FRAG: in its frag's buf */
    char *vals;                     /* small VALUE blocks of a multi-
                                       fragment retrieval, as they came */
    size_t valslen;
    size_t valscap;
    uint32_t *frag_keys;            /* key indices grouped by fragment */
    struct frag *frags;
    uint32_t nfrags;
    uint32_t fragcap;
    uint32_t nfailed;               /* fragments that failed */
    uint32_t hits;
    struct backend *failover_owner; /* write sent on behalf of this DOWN
                                       backend (key in line), or NULL */
    bool failover_clean;            /* ... and deleted on that owner too */
    bool spool_delete;              /* a delete (md) whose failure to reach
                                       its target is noted in the target's
                                       recovery log (the delete spool is
                                       on): its key, classic, in keys[0] */
    size_t counted;                 /* bytes added to client's
                                       pending_bytes */
    /* During a move (warmup.c). */
    struct topology_prev prev[TOPOLOGY_ORIGINS];
    uint32_t nprev;                 /* a write's key (keys[0]) is deleted
                                       on prev[0..nprev) once answered */
    bool prev_b64;                  /* keys[0] is base64 (md ... b) */
    struct backend **key_prev;      /* [keycap]: previous owner of each
                                       key of a read, NULL if none */
    uint32_t nwarm;                 /* keys of a read with one */
    bool warm_sent;                 /* its warm-up round is out */
    bool meta_seen;                 /* mg: a reply other than EN came */
    bool warm_touch;                /* gat/gats: copies get warm_exptime */
    int64_t warm_exptime;
    uint32_t warm_linelen;          /* mg: the client's line, in line */
    struct {                        /* a warm-up copy (warmup.c) */
        struct backend *src;        /* where its value was read */
        uint64_t src_cas;           /* ... and its cas unique there */
        uint64_t cas;               /* the placeholder's, then the copy's
                                       cas unique on the new owner */
        uint32_t flags;
        int64_t exptime;
        bool held;                  /* its value (in rsp) holds a place
                                       in the worker's copy queue */
    } copy;
    size_t remote_bytes;            /* a write to other regions not waited
                                       for: its share of the worker's
                                       bound (replica.c), or 0 */
    bool big_phase;                 /* a retrieval reading its big values'
                                       chunks (big.c) */
    bool big_meta;                  /* an mg that found a big value's
                                       index: its backend, chunks and the
                                       reply's header line */
    struct backend *big_be;
    uint64_t big_token;
    uint32_t big_n;
    uint32_t big_bytes;
    uint32_t big_headlen;
    char *big_head;                 /* [BIG_HEAD_MAX] once needed, kept */
    struct evbuffer *big_data;      /* ... what was prepended (big_pre
                                       bytes) and appended to it */
    uint32_t big_pre;
    struct backend **big_src;       /* [big_srccap]: the backend a warm-up
                                       read found key i's value on, when
                                       big_src_set (big_note_source()) */
    uint32_t big_srccap;
    bool big_src_set;
    uint32_t big_keylen;            /* an mg's key (decoded), for its
                                       chunks' keys, or 0 */
    char *big_key;                  /* [PROTO_KEY_MAX] once needed, kept */
    struct request *big_parent;     /* a big value's chunk writes: the
                                       write whose index waits for them */
    uint32_t l1_slot;               /* a get of a hot key that may fill
                                       the l1 cache: its watch slot (l1.h),
                                       or 0 */
    uint32_t l1_gen;                /* ... and its ticket */
    size_t shadow_bytes;            /* copies to shadow pools: their share
                                       of the worker's bound (shadow.c),
                                       or 0 */
    struct backend *deferred_be;    /* a delete sent once the previous
                                       owners' deletes are answered: its
                                       target, its kind, its bytes in
                                       vals; or NULL */
    enum frag_kind deferred_kind;
    char errline[128];              /* first failure, for the reply */
    /* Watchers (watch.h) sampling it: 0 but while someone watches. */
    uint32_t watch_mask;
    bool watch_noreply;             /* a noreply reply, made to be seen,
                                       dropped once it is */
    enum proto_cmd watch_cmd;       /* the command as the client sent it */
    uint32_t watch_nkeys;           /* its keys, in watch_keys */
    uint64_t watch_start_us;        /* when it was read */
    char *watch_keys;               /* kept over reuse (grown, never per
                                       request) */
    size_t watch_keyslen;
    size_t watch_keyscap;
};

/* Gets a request from the worker's free list (or allocates one). */
struct request *request_get(struct worker *w, struct client *c);
/* Returns a request to the free list. */
void request_put(struct request *req);
/* Frees a worker's free list (worker shutdown). */
void request_free_list(struct worker *w);

/*
 * Routes and sends a parsed command. line/len is the whole command line
 * (without terminator). For a storage command, `in` starts with the `skip`
 * bytes of that line and its terminator, then the data block (vlen + 2
 * bytes): both are consumed, the block moved without a copy; line must
 * point into those skip bytes. Otherwise in is NULL and the caller drains
 * the line. Fills req->rsp now for commands mcring answers itself. Never
 * fails: a request that cannot be sent is completed with a SERVER_ERROR
 * reply.
 */
void request_dispatch(struct request *req, const struct proto_req *pr,
                      const char *line, size_t len, struct evbuffer *in,
                      size_t skip);

#define REQUEST_TOO_LARGE "SERVER_ERROR object too large for cache"
#define REQUEST_NO_MEMORY "SERVER_ERROR out of memory storing object"

/*
 * A storage command whose value is not stored (its data block is skipped
 * by the caller): answers line (an error) once; for set and ms the key is
 * deleted on its owner, as memcached drops the old value.
 * request_dispatch_too_large(): over max_value_size.
 */
void request_dispatch_refused(struct request *req, const struct proto_req *pr,
                              const char *line);
#define request_dispatch_too_large(req, pr)                                   \
    request_dispatch_refused((req), (pr), REQUEST_TOO_LARGE)

/* Completes req with a literal reply line (adds "\r\n"). */
void request_reply(struct request *req, const char *line);

/* Makes room for n keys and a copy of linelen bytes in req->line. */
void request_reserve_keys(struct request *req, uint32_t n, size_t linelen);

/* Makes room for n fragments in all. Only while none is queued: the array
 * may move. */
void request_reserve_frags(struct request *req, uint32_t n);
/* The next fragment (room reserved), of kind, to be (NULL: none). */
struct frag *request_frag_init(struct request *req, enum frag_kind kind,
                               struct backend *be);
/* Sends the deferred delete (see deferred_be). Returns false when it
 * could not be sent: the request is answered with an error then. */
bool request_send_deferred(struct request *req);

/* Copies key into req->line as req->keys[0]. */
void request_keep_key(struct request *req, const struct proto_str *key);

/*
 * A delete of key (with the delete spool on, and a key its recovery log
 * can name): kept, so that request_delete_failed() can note it.
 */
void request_keep_delete(struct request *req, const struct proto_str *key);
/* A delete kept so did not reach be (NULL: nothing): be keeps the key in
 * its recovery log, deleted on it before it serves again (or by its next
 * pass, if it is UP), and so in the delete spool. */
void request_delete_failed(struct request *req, struct backend *be);

/* Remembers line as the request's error reply, unless it has one. */
void request_set_error(struct request *req, const char *line);

/* A block is REQUEST_IN_FRAG when it is kept in its fragment's buffer. */
#define REQUEST_IN_FRAG UINT32_MAX

/* Fragment callbacks from bconn. */
/* The whole reply line (terminator included) of a FRAG_LINE, FRAG_ALL or
 * FRAG_OWNER_DELETE fragment. */
void request_frag_line(struct frag *f, const char *line, size_t len,
                       enum proto_rsp kind);
/* A VALUE line of a FRAG_RETRIEVAL fragment names key, its whole block
 * (line, data, "\r\n") being blocklen bytes: false if the key was not
 * asked for. Then mget_value() or mget_value_move() hands over the
 * block. */
bool request_frag_match(struct frag *f, const char *key, size_t keylen,
                        uint32_t blocklen);
/* One line (terminator included) of a FRAG_STATS or FRAG_ADMIN answer,
 * kept in the fragment's buffer. Returns -1 when the answer is over
 * REQUEST_STATS_MAX bytes. */
int request_frag_stats_line(struct frag *f, const char *line, size_t len);
/* The END (or the one-line answer, such as ERROR) of a FRAG_STATS; the MN
 * that ends a FRAG_ADMIN. */
void request_frag_stats_end(struct frag *f, const char *line, size_t len,
                            enum proto_rsp kind);
#define REQUEST_STATS_MAX (16u << 20)

/*
 * (A part of) the reply to a FRAG_META, total bytes: a line, and for VA
 * its data block. With in NULL it is contiguous at line; else it is the
 * first total bytes of in (moved out, or drained).
 */
void request_frag_meta(struct frag *f, const char *line, size_t total,
                       struct evbuffer *in);
/* The reply to a FRAG_META is complete. */
void request_frag_meta_end(struct frag *f);

/* END of a retrieval fragment. */
void request_frag_end(struct frag *f);
/* The fragment failed; reason is a full reply line without "\r\n". */
void request_frag_fail(struct frag *f, const char *reason);

#endif
