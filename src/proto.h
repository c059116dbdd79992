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

#define PROTO_KEY_MAX 250           /* bytes in a key */
#define PROTO_LINE_MAX 2048         /* a command line, but retrievals */

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
};

enum proto_status {
    PROTO_OK = 0,
    PROTO_ERROR,                /* unknown command: reply "ERROR" */
    PROTO_CLIENT_ERROR,         /* malformed: "CLIENT_ERROR <reason>",
                                   the stream is still in sync */
    PROTO_CLIENT_ERROR_CLOSE,   /* malformed storage command whose data
                                   block length is unknown: reply, close */
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
    bool vlen_known;            /* storage: vlen was read, so a data block
                                   of vlen + 2 bytes follows the line and
                                   must be consumed, whatever the status */
    uint64_t cas;               /* cas: unique */
    uint64_t delta;             /* incr/decr */
    unsigned level;             /* verbosity */
    struct proto_str args;      /* stats: the rest of the line (may be
                                   empty) */
    bool noreply;
};

/*
 * Parses one request line of len bytes (no line terminator). A retrieval
 * with more than max_keys keys is a PROTO_CLIENT_ERROR. Returns PROTO_OK and
 * fills req, or another status with a short reason (a static string, without
 * the "CLIENT_ERROR " prefix, one of PROTO_REASON_*) in *reason; *reason is
 * left alone on PROTO_OK and PROTO_ERROR.
 *
 * Tokens are separated by runs of spaces (only ' '; leading and trailing
 * spaces are ignored); command words are lowercase as in memcached. A key
 * is 1..PROTO_KEY_MAX bytes, none of them below 0x21 or 0x7f. "noreply" is
 * only recognised as the last token. Numbers are plain decimal: flags
 * uint32, exptime int32 (negative allowed), bytes 0..INT32_MAX, cas, delta
 * uint64; verbosity level uint32.
 *
 * req->cmd is set whenever the command word is known, whatever the status;
 * the other fields are meaningful on PROTO_OK only, except vlen/vlen_known
 * (below) and noreply: on PROTO_CLIENT_ERROR(_CLOSE) of a command other
 * than a retrieval or stats, noreply tells whether the line's last token is
 * "noreply" (memcached then sends no error line; the caller decides).
 * Storage commands and their data block:
 *   PROTO_OK                  vlen_known, a data block of vlen + 2 bytes
 *                             follows.
 *   PROTO_CLIENT_ERROR        vlen_known too: the bytes field was read but
 *                             something else is wrong (key, flags, exptime,
 *                             cas, a last token that is not "noreply"). The
 *                             caller answers and swallows vlen + 2 bytes;
 *                             the stream stays in sync.
 *   PROTO_CLIENT_ERROR_CLOSE  !vlen_known: the token count is wrong or the
 *                             bytes field is missing, not a number or out of
 *                             range, so the data block cannot be found. The
 *                             caller answers and closes the connection.
 * No other command returns PROTO_CLIENT_ERROR_CLOSE or sets vlen_known.
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

/* Length of line without trailing spaces and, when noreply is set, the
 * "noreply" token before them. */
size_t proto_strip_noreply(const char *line, size_t len, bool noreply);

#endif
