/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proto: pure parsers for the memcached text protocol (doc/protocol.txt).
 *
 * Nothing here allocates or does I/O. A request line is parsed in place:
 * every string in the result points into the caller's line, which must stay
 * alive and unchanged while the result is used. Lines are given without
 * their terminating "\r\n" (or bare "\n").
 */
#ifndef MCRING_PROTO_H
#define MCRING_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What `version` and `stats` report: the memcached protocol level mcring
 * speaks, then mcring's own version. Clients such as libmemcached parse
 * the leading numbers (and refuse a major version of 0).
 */
#define PROTO_VERSION_STRING "1.6.0-mcring-" PACKAGE_VERSION

#define PROTO_KEY_MAX 250           /* bytes in a key */
#define PROTO_BINARY_MAGIC 0x80     /* first byte of a binary request */
#define PROTO_LINE_MAX 2048         /* bytes without a newline before a
                                       connection is closed (memcached's
                                       rule), but retrievals */
#define PROTO_LINE_BUF 16384        /* the longest complete line read:
                                       memcached's read buffer */

/*
 * Reasons, the text after "CLIENT_ERROR ". proto_parse_request() returns
 * these exact pointers; the last three are for callers (framing, data
 * blocks), worded as memcached words them.
 */
#define PROTO_REASON_FORMAT "bad command line format"
#define PROTO_REASON_DELETE_FORMAT                                             \
    "bad command line format.  Usage: delete <key> [noreply]"
#define PROTO_REASON_DELTA "invalid numeric delta argument"
#define PROTO_REASON_EXPTIME "invalid exptime argument"
#define PROTO_REASON_TOO_MANY_KEYS "too many keys"
#define PROTO_REASON_LINE_TOO_LONG "line too long"
#define PROTO_REASON_BAD_CHUNK "bad data chunk"
#define PROTO_REASON_META_LONG "options flags too long"
#define PROTO_REASON_MG_LONG "options flags are too long"

/* A view into a line. */
struct proto_str {
    const char *p;
    size_t len;
};

enum proto_cmd {
    PROTO_CMD_NONE = 0,
    /* retrieval, any number of keys */
    PROTO_CMD_GET,
    PROTO_CMD_GETS,
    PROTO_CMD_GAT,
    PROTO_CMD_GATS,
    /* storage, followed by a data block of vlen bytes and "\r\n" */
    PROTO_CMD_SET,
    PROTO_CMD_ADD,
    PROTO_CMD_REPLACE,
    PROTO_CMD_APPEND,
    PROTO_CMD_PREPEND,
    PROTO_CMD_CAS,
    /* other single-key commands */
    PROTO_CMD_DELETE,
    PROTO_CMD_INCR,
    PROTO_CMD_DECR,
    PROTO_CMD_TOUCH,
    /* not routed by key */
    PROTO_CMD_FLUSH_ALL,
    PROTO_CMD_VERSION,
    PROTO_CMD_VERBOSITY,
    PROTO_CMD_QUIT,
    PROTO_CMD_STATS,
    PROTO_CMD_MN,               /* answered "MN", in order */
    /* meta commands, routed by key (see proto_parse_request) */
    PROTO_CMD_MG,
    PROTO_CMD_MS,               /* followed by a data block, as storage */
    PROTO_CMD_MD,
    PROTO_CMD_MA,
    PROTO_CMD_ME,
    PROTO_CMD_CACHE_MEMLIMIT,   /* sent to every UP backend */
    PROTO_CMD_SHUTDOWN,         /* refused, as memcached without -A */
    PROTO_CMD_WATCH,            /* the live request stream (watch.h);
                                   args: the rest of the line */
    PROTO_CMD_SLABS,            /* memcached's own tuning: the line goes */
    PROTO_CMD_LRU,              /* to every UP backend as it came; args: */
    PROTO_CMD_LRU_CRAWLER,      /* the rest of the line */
    PROTO_CMD_EXTSTORE,         /* (the backends' extstore settings) */
};
#define PROTO_CMD_COUNT (PROTO_CMD_EXTSTORE + 1)

enum proto_status {
    PROTO_OK = 0,
    PROTO_ERROR,                /* reply "ERROR" */
    PROTO_CLIENT_ERROR,         /* reply "CLIENT_ERROR <reason>" unless
                                   noreply; no data block is read */
    PROTO_CLOSE,                /* an HTTP request line: close, silently */
};

struct proto_req {
    enum proto_cmd cmd;
    struct proto_str name;      /* the command word */
    struct proto_str key;       /* single-key commands; first key of a
                                   retrieval */
    struct proto_str keys;      /* retrieval: from the first key to the end
                                   of the line, see proto_next_key() */
    uint32_t nkeys;             /* retrieval: number of keys, >= 1 */
    uint32_t flags;             /* storage */
    int64_t exptime;            /* storage, touch, gat/gats; flush_all delay */
    bool has_delay;             /* flush_all: a delay was given */
    uint32_t vlen;              /* storage: data block length */
    uint64_t cas;               /* cas: unique */
    uint64_t delta;             /* incr/decr */
    uint32_t level;             /* verbosity, cache_memlimit */
    struct proto_str args;      /* stats, watch: the rest of the line
                                   (may be empty) */
    bool noreply;
    /* meta commands */
    bool meta_b64;              /* the key is base64 ('b' flag) */
    bool meta_quiet;            /* 'q': the backend may not answer */
    uint32_t meta_flags;        /* index of the first flag token */
    char meta_mode;             /* ms: the last M token's mode letter (as
                                   sent: memcached checks it), or 0 */
};

/*
 * Reads one request line of len bytes (no line terminator) exactly as
 * memcached 1.6 does (proto_text.c): a NUL ends the line; tokens are
 * separated by spaces, at most 23 of them; the command word and the token
 * count decide ERROR; then each command's own checks decide CLIENT_ERROR.
 * A key is any bytes but a space, 1..PROTO_KEY_MAX of them. Numbers are
 * what memcached's safe_strto*() take (libc's strto* followed by a space
 * or the end), truncated to the field as memcached truncates them: flags
 * uint32, exptime and bytes int32 (bytes 0..INT32_MAX - 2), cas and delta
 * uint64. A last token "noreply" sets req->noreply, also on a
 * CLIENT_ERROR (memcached then sends nothing) and on the one ERROR that
 * memcached says after reading noreply (cache_memlimit, a bad number). Extra tokens memcached
 * ignores are accepted (and forwarded as they are).
 *
 * A retrieval with more than max_keys keys is a CLIENT_ERROR (0: no
 * bound). gat/gats with no key is PROTO_OK with nkeys 0 (memcached answers
 * END). Returns PROTO_OK and fills req, or another status with, for
 * PROTO_CLIENT_ERROR, a short reason (one of PROTO_REASON_*, without the
 * "CLIENT_ERROR " prefix) in *reason. A storage command's data block is
 * read by the caller only on PROTO_OK: memcached reads what follows a
 * refused line as the next command.
 */
enum proto_status proto_parse_request(const char *line, size_t len,
                                      unsigned max_keys, struct proto_req *req,
                                      const char **reason)
    __attribute__((warn_unused_result));

/*
 * Iterates the keys of a retrieval: *cur starts at req->keys.p, end is
 * req->keys.p + req->keys.len. Returns true and sets key to the next key, or
 * false when there are no more. Keys were validated by
 * proto_parse_request().
 */
bool proto_next_key(const char **cur, const char *end, struct proto_str *key);

/* The command word of cmd ("get", ...), "" for PROTO_CMD_NONE. */
const char *proto_cmd_name(enum proto_cmd cmd);

/* True for GET, GETS, GAT, GATS. */
bool proto_cmd_is_retrieval(enum proto_cmd cmd);
/* True for SET..CAS (a data block follows). */
bool proto_cmd_is_storage(enum proto_cmd cmd);
/* True for MG..ME. */
bool proto_cmd_is_meta(enum proto_cmd cmd);
/* Commands that name keys (retrievals, storage, delete, incr/decr, touch,
 * the meta commands). */
bool proto_cmd_has_key(enum proto_cmd cmd);

/*
 * Decodes base64 (standard alphabet, '=' padding) src of len bytes into
 * out (cap bytes). Returns the decoded length, or 0 if src is not valid
 * base64 or does not fit (what memcached's base64_decode() returns).
 */
size_t proto_base64_decode(const char *src, size_t len, char *out,
                           size_t cap);
/* Encodes len bytes of src as base64 with '=' padding into out, which has
 * room for PROTO_BASE64_LEN(len) + 1 bytes; NUL-terminates it and returns
 * the encoded length. */
#define PROTO_BASE64_LEN(n) (((n) + 2) / 3 * 4)
size_t proto_base64_encode(const char *src, size_t len, char *out);

/*
 * The longest line accepted for a request that starts with the avail bytes
 * at p (which need not hold a whole line): PROTO_LINE_MAX, or for a line
 * starting with a retrieval command word (leading spaces skipped; while
 * avail is too short to tell, a prefix of one counts),
 * max(PROTO_LINE_MAX, 32 + max_keys * (PROTO_KEY_MAX + 1)), enough for
 * max_keys keys of PROTO_KEY_MAX bytes separated by single spaces.
 */
size_t proto_line_limit(const char *p, size_t avail, unsigned max_keys);

/* Kinds of backend response line. */
enum proto_rsp {
    PROTO_RSP_UNKNOWN = 0,
    PROTO_RSP_VALUE,            /* VALUE <key> <flags> <bytes> [<cas>] */
    PROTO_RSP_END,
    PROTO_RSP_STORED,
    PROTO_RSP_NOT_STORED,
    PROTO_RSP_EXISTS,
    PROTO_RSP_NOT_FOUND,
    PROTO_RSP_DELETED,
    PROTO_RSP_TOUCHED,
    PROTO_RSP_OK,
    PROTO_RSP_NUMBER,           /* incr/decr result */
    PROTO_RSP_VERSION,          /* VERSION <string> */
    PROTO_RSP_ERROR,
    PROTO_RSP_CLIENT_ERROR,
    PROTO_RSP_SERVER_ERROR,
};

/*
 * Classifies one response line (no terminator) by its first word. Status
 * words must match exactly; VERSION, ERROR, CLIENT_ERROR and SERVER_ERROR
 * may be followed by a space and text; PROTO_RSP_VALUE only says the line
 * starts with "VALUE " (check it with proto_parse_value()); PROTO_RSP_NUMBER
 * is a decimal uint64.
 */
enum proto_rsp proto_classify_response(const char *line, size_t len);

/*
 * Parses "VALUE <key> <flags> <bytes> [<cas>]" as memcached writes it:
 * single spaces, no leading or trailing space, a valid key, flags uint32,
 * bytes 0..INT32_MAX, cas uint64. Returns 0 and fills the outputs (key
 * points into line; *cas is 0 when !*has_cas), or -1 if the line is
 * malformed, leaving the outputs unspecified.
 */
int proto_parse_value(const char *line, size_t len, struct proto_str *key,
                      uint32_t *flags, uint32_t *vlen, uint64_t *cas,
                      bool *has_cas) __attribute__((warn_unused_result));

/* The fields of a meta get's hit, "VA <len> <flags>*" or "HD <flags>*":
 * len, the f, t and c flags' values when asked for, and the W, Z and X
 * flags memcached adds by itself (others are ignored). */
struct proto_meta_value {
    uint32_t len;                   /* 0 for HD */
    uint32_t flags;                 /* f: client flags, 0 when absent */
    int64_t ttl;                    /* t: remaining seconds, -1: never
                                       expires (also when absent) */
    uint64_t cas;                   /* c */
    bool has_cas;
    bool won;                       /* W: this client may fill the item
                                       (an mg N created it, or it is
                                       stale and nobody was told yet) */
    bool claimed;                   /* Z: another client was told W: the
                                       item is a placeholder (or a stale
                                       value) being filled */
    bool stale;                     /* X: marked stale (md I, ms I) */
};

/* Seconds the placeholder of a copy made during a move lives (mg N, see
 * warmup.h): it is replaced by the value a round trip later, or expires if
 * that never comes. */
#define PROTO_CLAIM_TTL 3

/* Parses an "VA ..." line (without its terminator). Returns 0, or -1 when
 * it is no VA line or a number is malformed. */
int proto_parse_meta_value(const char *line, size_t len,
                           struct proto_meta_value *mv)
    __attribute__((warn_unused_result));
/* The same for a "VA ..." or an "HD ..." line. */
int proto_parse_meta_hit(const char *line, size_t len,
                         struct proto_meta_value *mv)
    __attribute__((warn_unused_result));
/* Whether mv is no value a client may see: W, Z or X (see above). */
static inline bool
proto_meta_unsettled(const struct proto_meta_value *mv)
{
    return mv->won || mv->claimed || mv->stale;
}

/*
 * The exptime that gives a copy the remaining ttl (as mg's t flag says it,
 * -1 never) of the item it copies, at wall-clock time now: 0 for never, a
 * relative time up to 30 days, an absolute time beyond (memcached's rule).
 * -1 when the item is about to expire (ttl 0): no copy then.
 */
int64_t proto_copy_exptime(int64_t ttl, int64_t now);

/* A key that classic commands can name: 1..PROTO_KEY_MAX bytes, no space,
 * newline or NUL, no trailing CR. */
bool proto_key_classic(const char *k, size_t len);

/* Length of line without trailing spaces and, when noreply is set, the
 * "noreply" token before them. */
size_t proto_strip_noreply(const char *line, size_t len, bool noreply);

#endif
