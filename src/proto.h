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
 * the "CLIENT_ERROR " prefix) in *reason. For PROTO_CLIENT_ERROR_CLOSE and a
 * storage command, req->cmd is still set.
 */
enum proto_status proto_parse_request(const char *line, size_t len,
                                      unsigned max_keys, struct proto_req *req,
                                      const char **reason);

/*
 * Iterates the keys of a retrieval: *cur starts at req->keys.p, end is
 * req->keys.p + req->keys.len. Returns true and sets key to the next key, or
 * false when there are no more. Keys were validated by
 * proto_parse_request().
 */
bool proto_next_key(const char **cur, const char *end, struct proto_str *key);

/* True for GET, GETS, GAT, GATS. */
bool proto_cmd_is_retrieval(enum proto_cmd cmd);
/* True for SET..CAS (a data block follows). */
bool proto_cmd_is_storage(enum proto_cmd cmd);

/*
 * The longest line accepted for a request that starts with the avail bytes
 * at p (which need not hold a whole line): PROTO_LINE_MAX, or for a line
 * starting with a retrieval command word, enough for max_keys keys of
 * PROTO_KEY_MAX bytes.
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

/* Classifies one response line (no terminator). */
enum proto_rsp proto_classify_response(const char *line, size_t len);

/*
 * Parses "VALUE <key> <flags> <bytes> [<cas>]". Returns 0 and fills the
 * outputs (key points into line), or -1 if the line is malformed.
 */
int proto_parse_value(const char *line, size_t len, struct proto_str *key,
                      uint32_t *flags, uint32_t *vlen, uint64_t *cas,
                      bool *has_cas);

#endif
