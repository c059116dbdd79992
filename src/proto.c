/*
 * proto: pure parsers for the memcached text protocol.
 *
 *   request line --proto_parse_request()--> struct proto_req
 *       skip spaces, take the command word, look it up by length and
 *       first byte (no strcmp chain), then either walk the keys of a
 *       retrieval in one pass or split the few remaining tokens into an
 *       array and check them per command.
 *   backend line --proto_classify_response()--> enum proto_rsp
 *                --proto_parse_value()--> key, flags, bytes, cas
 *
 * Invariants:
 *   - nothing here allocates, does I/O or keeps state: every function is
 *     safe to call from any thread on any input;
 *   - no read ever leaves [line, line + len); lines are not NUL-terminated,
 *     so numbers go through the length-bounded util_parse_* and never
 *     through strtol;
 *   - every view put in a result points into the caller's line;
 *   - a reason handed back is one of the static PROTO_REASON_* strings;
 *   - for a storage command, vlen_known is set exactly when the bytes field
 *     was read, which is what lets the caller tell a swallowable error
 *     (PROTO_CLIENT_ERROR) from one that loses the stream
 *     (PROTO_CLIENT_ERROR_CLOSE).
 *
 * Where memcached answers a bad token count with a bare "ERROR", mcring
 * answers "CLIENT_ERROR bad command line format" and keeps "ERROR" for an
 * unknown command word, as DESIGN.md asks.
 */
#include "autoconf.h"

#include <string.h>

#include "proto.h"
#include "util.h"

/* Most tokens a non-retrieval command takes after its word (cas). */
#define PROTO_ARGS_MAX 6

/* Exact comparison of a view of known length with a string literal. */
#define PROTO_EQ(p, len, lit)                                                  \
    ((len) == sizeof(lit) - 1 && memcmp((p), (lit), sizeof(lit) - 1) == 0)

/* Header room of a retrieval line: "gats " and a 32-bit exptime. */
#define PROTO_RETRIEVAL_HEAD 32

/* clang-format off */
static const char *const proto_cmd_names[] = {
    [PROTO_CMD_NONE] = "",
    [PROTO_CMD_GET] = "get",
    [PROTO_CMD_GETS] = "gets",
    [PROTO_CMD_GAT] = "gat",
    [PROTO_CMD_GATS] = "gats",
    [PROTO_CMD_SET] = "set",
    [PROTO_CMD_ADD] = "add",
    [PROTO_CMD_REPLACE] = "replace",
    [PROTO_CMD_APPEND] = "append",
    [PROTO_CMD_PREPEND] = "prepend",
    [PROTO_CMD_CAS] = "cas",
    [PROTO_CMD_DELETE] = "delete",
    [PROTO_CMD_INCR] = "incr",
    [PROTO_CMD_DECR] = "decr",
    [PROTO_CMD_TOUCH] = "touch",
    [PROTO_CMD_FLUSH_ALL] = "flush_all",
    [PROTO_CMD_VERSION] = "version",
    [PROTO_CMD_VERBOSITY] = "verbosity",
    [PROTO_CMD_QUIT] = "quit",
    [PROTO_CMD_STATS] = "stats",
};
/* clang-format on */

const char *
proto_cmd_name(enum proto_cmd cmd)
{
    if ((size_t)cmd >= UTIL_ARRAY_SIZE(proto_cmd_names)) {
        return "";
    }
    return proto_cmd_names[cmd];
}

bool
proto_cmd_is_retrieval(enum proto_cmd cmd)
{
    return cmd >= PROTO_CMD_GET && cmd <= PROTO_CMD_GATS;
}

bool
proto_cmd_is_storage(enum proto_cmd cmd)
{
    return cmd >= PROTO_CMD_SET && cmd <= PROTO_CMD_CAS;
}

static inline const char *
proto_skip_spaces(const char *p, const char *end)
{
    while (p < end && *p == ' ') {
        p++;
    }
    return p;
}

/* Takes the token at or after *cur; false when only spaces are left. */
static inline bool
proto_token(const char **cur, const char *end, struct proto_str *tok)
{
    const char *p = proto_skip_spaces(*cur, end);
    const char *start = p;

    if (p == end) {
        *cur = p;
        return false;
    }
    while (p < end && *p != ' ') {
        p++;
    }
    tok->p = start;
    tok->len = (size_t)(p - start);
    *cur = p;
    return true;
}

bool
proto_next_key(const char **cur, const char *end, struct proto_str *key)
{
    return proto_token(cur, end, key);
}

/*
 * Byte classes for the scanning loops, so each byte costs one load and one
 * compare: a key may hold any byte of class PROTO_BYTE_KEY (printable, not
 * space, not DEL; 0x80..0xff are fine).
 */
enum proto_byte_class {
    PROTO_BYTE_KEY = 0,
    PROTO_BYTE_SPACE,
    PROTO_BYTE_CTRL,
};

static const uint8_t proto_byte_class[256] = {
    [0x00 ... 0x1f] = PROTO_BYTE_CTRL,
    [' '] = PROTO_BYTE_SPACE,
    [0x7f] = PROTO_BYTE_CTRL,
};

static inline bool
proto_key_byte_ok(unsigned char c)
{
    return proto_byte_class[c] == PROTO_BYTE_KEY;
}

static bool
proto_key_ok(const struct proto_str *k)
{
    if (k->len == 0 || k->len > PROTO_KEY_MAX) {
        return false;
    }
    for (size_t i = 0; i < k->len; i++) {
        if (!proto_key_byte_ok((unsigned char)k->p[i])) {
            return false;
        }
    }
    return true;
}

static inline bool
proto_is_noreply(const struct proto_str *t)
{
    return PROTO_EQ(t->p, t->len, "noreply");
}

/*
 * True if the last token of [p, end) is "noreply", p being just past the
 * command word. Used, like memcached's set_noreply_maybe(), to tell the
 * caller of a malformed line whether the client asked for no reply.
 */
static bool
proto_ends_with_noreply(const char *p, const char *end)
{
    while (end > p && end[-1] == ' ') {
        end--;
    }
    return end - p >= 8 && memcmp(end - 8, " noreply", 8) == 0;
}

static int
proto_parse_u32(const struct proto_str *t, uint32_t *out)
{
    uint64_t v;

    if (util_parse_u64(t->p, t->len, &v) != 0 || v > UINT32_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* A memcached exptime or delay: what memcached's safe_strtol accepts. */
static int
proto_parse_i32(const struct proto_str *t, int64_t *out)
{
    int64_t v;

    if (util_parse_i64(t->p, t->len, &v) != 0 || v < INT32_MIN ||
        v > INT32_MAX) {
        return -1;
    }
    *out = v;
    return 0;
}

/* A data block length; memcached refuses what does not fit an int. */
static int
proto_parse_vlen(const struct proto_str *t, uint32_t *out)
{
    uint64_t v;

    if (util_parse_u64(t->p, t->len, &v) != 0 || v > INT32_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static inline enum proto_status
proto_fail(enum proto_status st, const char *why, const char **reason)
{
    *reason = why;
    return st;
}

/*
 * The command for word w of len bytes, PROTO_CMD_NONE if unknown. Switches
 * on the length and first byte so at most one or two memcmp run.
 */
static enum proto_cmd
proto_lookup(const char *w, size_t len)
{
    switch (len) {
    case 3:
        switch (w[0]) {
        case 'g':
            if (w[2] == 't') {
                if (w[1] == 'e') {
                    return PROTO_CMD_GET;
                }
                if (w[1] == 'a') {
                    return PROTO_CMD_GAT;
                }
            }
            break;
        case 's':
            if (w[1] == 'e' && w[2] == 't') {
                return PROTO_CMD_SET;
            }
            break;
        case 'a':
            if (w[1] == 'd' && w[2] == 'd') {
                return PROTO_CMD_ADD;
            }
            break;
        case 'c':
            if (w[1] == 'a' && w[2] == 's') {
                return PROTO_CMD_CAS;
            }
            break;
        }
        break;
    case 4:
        switch (w[0]) {
        case 'g':
            if (memcmp(w, "gets", 4) == 0) {
                return PROTO_CMD_GETS;
            }
            if (memcmp(w, "gats", 4) == 0) {
                return PROTO_CMD_GATS;
            }
            break;
        case 'i':
            if (memcmp(w, "incr", 4) == 0) {
                return PROTO_CMD_INCR;
            }
            break;
        case 'd':
            if (memcmp(w, "decr", 4) == 0) {
                return PROTO_CMD_DECR;
            }
            break;
        case 'q':
            if (memcmp(w, "quit", 4) == 0) {
                return PROTO_CMD_QUIT;
            }
            break;
        }
        break;
    case 5:
        if (memcmp(w, "touch", 5) == 0) {
            return PROTO_CMD_TOUCH;
        }
        if (memcmp(w, "stats", 5) == 0) {
            return PROTO_CMD_STATS;
        }
        break;
    case 6:
        if (memcmp(w, "delete", 6) == 0) {
            return PROTO_CMD_DELETE;
        }
        if (memcmp(w, "append", 6) == 0) {
            return PROTO_CMD_APPEND;
        }
        break;
    case 7:
        switch (w[0]) {
        case 'r':
            if (memcmp(w, "replace", 7) == 0) {
                return PROTO_CMD_REPLACE;
            }
            break;
        case 'p':
            if (memcmp(w, "prepend", 7) == 0) {
                return PROTO_CMD_PREPEND;
            }
            break;
        case 'v':
            if (memcmp(w, "version", 7) == 0) {
                return PROTO_CMD_VERSION;
            }
            break;
        }
        break;
    case 9:
        if (memcmp(w, "flush_all", 9) == 0) {
            return PROTO_CMD_FLUSH_ALL;
        }
        if (memcmp(w, "verbosity", 9) == 0) {
            return PROTO_CMD_VERBOSITY;
        }
        break;
    }
    return PROTO_CMD_NONE;
}

/*
 * get/gets [exptime for gat/gats] <key>+, from p (just past the command
 * word) to end. Validates every key in the same pass that counts them.
 */
static enum proto_status
proto_parse_retrieval(const char *p, const char *end, unsigned max_keys,
                      struct proto_req *req, const char **reason)
{
    const char *last = NULL;
    uint32_t nkeys = 0;

    if (req->cmd == PROTO_CMD_GAT || req->cmd == PROTO_CMD_GATS) {
        struct proto_str t;

        if (!proto_token(&p, end, &t)) {
            return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
        }
        if (proto_parse_i32(&t, &req->exptime) != 0) {
            return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_EXPTIME, reason);
        }
    }
    p = proto_skip_spaces(p, end);
    if (p == end) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    req->keys.p = p;
    while (p < end) {
        const char *k = p;
        size_t klen;

        while (p < end &&
               proto_byte_class[(unsigned char)*p] == PROTO_BYTE_KEY) {
            p++;
        }
        klen = (size_t)(p - k);
        if ((p < end && *p != ' ') || klen > PROTO_KEY_MAX) {
            return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
        }
        if (nkeys == 0) {
            req->key.p = k;
            req->key.len = klen;
        }
        if (nkeys == max_keys) {
            return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_TOO_MANY_KEYS,
                              reason);
        }
        nkeys++;
        last = p;
        p = proto_skip_spaces(p, end);
    }
    req->keys.len = (size_t)(last - req->keys.p);
    req->nkeys = nkeys;
    return PROTO_OK;
}

/*
 * set/add/replace/append/prepend <key> <flags> <exptime> <bytes> [noreply]
 * cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
 * The bytes field is read first: once it is known the data block can be
 * skipped, so every later error leaves the stream in sync.
 */
static enum proto_status
proto_parse_storage(const struct proto_str *a, unsigned n,
                    struct proto_req *req, const char **reason)
{
    unsigned base = req->cmd == PROTO_CMD_CAS ? 5 : 4;

    if (n < 4 || proto_parse_vlen(&a[3], &req->vlen) != 0) {
        return proto_fail(PROTO_CLIENT_ERROR_CLOSE, PROTO_REASON_FORMAT,
                          reason);
    }
    /* The bytes field is where it belongs: whatever else is wrong, the
     * data block can be skipped and the stream stays in step. */
    req->vlen_known = true;
    if (n != base && n != base + 1) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    if (!proto_key_ok(&a[0]) || proto_parse_u32(&a[1], &req->flags) != 0 ||
        proto_parse_i32(&a[2], &req->exptime) != 0 ||
        (base == 5 && util_parse_u64(a[4].p, a[4].len, &req->cas) != 0) ||
        (n == base + 1 && !proto_is_noreply(&a[base]))) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    req->key = a[0];
    req->noreply = n == base + 1;
    return PROTO_OK;
}

/* delete <key> [0] [noreply]: the "0" is a legacy hold time. */
static enum proto_status
proto_parse_delete(const struct proto_str *a, unsigned n, struct proto_req *req,
                   const char **reason)
{
    bool ok;

    switch (n) {
    case 1:
        ok = true;
        break;
    case 2:
        ok = PROTO_EQ(a[1].p, a[1].len, "0") || proto_is_noreply(&a[1]);
        break;
    case 3:
        ok = PROTO_EQ(a[1].p, a[1].len, "0") && proto_is_noreply(&a[2]);
        break;
    default:
        ok = false;
        break;
    }
    if (!ok) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_DELETE_FORMAT,
                          reason);
    }
    if (!proto_key_ok(&a[0])) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    req->key = a[0];
    req->noreply = n > 1 && proto_is_noreply(&a[n - 1]);
    return PROTO_OK;
}

/* incr/decr <key> <delta> [noreply], touch <key> <exptime> [noreply]. */
static enum proto_status
proto_parse_key_number(const struct proto_str *a, unsigned n,
                       struct proto_req *req, const char **reason)
{
    if ((n != 2 && n != 3) || !proto_key_ok(&a[0]) ||
        (n == 3 && !proto_is_noreply(&a[2]))) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    if (req->cmd == PROTO_CMD_TOUCH) {
        if (proto_parse_i32(&a[1], &req->exptime) != 0) {
            return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_EXPTIME, reason);
        }
    } else if (util_parse_u64(a[1].p, a[1].len, &req->delta) != 0) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_DELTA, reason);
    }
    req->key = a[0];
    req->noreply = n == 3;
    return PROTO_OK;
}

/* flush_all [delay] [noreply] */
static enum proto_status
proto_parse_flush_all(const struct proto_str *a, unsigned n,
                      struct proto_req *req, const char **reason)
{
    unsigned ndelay = n;

    if (n > 2 || (n == 2 && !proto_is_noreply(&a[1]))) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    if (n > 0 && proto_is_noreply(&a[n - 1])) {
        req->noreply = true;
        ndelay--;
    }
    if (ndelay == 1) {
        if (proto_parse_i32(&a[0], &req->exptime) != 0) {
            return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_EXPTIME, reason);
        }
        req->has_delay = true;
    }
    return PROTO_OK;
}

/*
 * verbosity <level> [noreply]. As in memcached, "verbosity noreply" is a
 * missing level, so a format error.
 */
static enum proto_status
proto_parse_verbosity(const struct proto_str *a, unsigned n,
                      struct proto_req *req, const char **reason)
{
    uint32_t level;

    if ((n != 1 && n != 2) || proto_parse_u32(&a[0], &level) != 0 ||
        (n == 2 && !proto_is_noreply(&a[1]))) {
        return proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
    }
    req->level = level;
    req->noreply = n == 2;
    return PROTO_OK;
}

enum proto_status
proto_parse_request(const char *line, size_t len, unsigned max_keys,
                    struct proto_req *req, const char **reason)
{
    const char *end = line + len;
    const char *p = line;
    struct proto_str a[PROTO_ARGS_MAX];
    struct proto_str word;
    enum proto_status st;
    unsigned n;

    memset(req, 0, sizeof(*req));
    if (!proto_token(&p, end, &word)) {
        return PROTO_ERROR;
    }
    req->name = word;
    req->cmd = proto_lookup(word.p, word.len);
    if (req->cmd == PROTO_CMD_NONE) {
        return PROTO_ERROR;
    }
    if (proto_cmd_is_retrieval(req->cmd)) {
        return proto_parse_retrieval(p, end, max_keys, req, reason);
    }
    if (req->cmd == PROTO_CMD_STATS) {
        p = proto_skip_spaces(p, end);
        while (end > p && end[-1] == ' ') {
            end--;
        }
        req->args.p = p;
        req->args.len = (size_t)(end - p);
        return PROTO_OK;
    }

    /* n == PROTO_ARGS_MAX + 1 stands for "more than any command takes". */
    for (n = 0; n <= PROTO_ARGS_MAX; n++) {
        struct proto_str t;

        if (!proto_token(&p, end, n < PROTO_ARGS_MAX ? &a[n] : &t)) {
            break;
        }
    }

    switch (req->cmd) {
    case PROTO_CMD_SET:
    case PROTO_CMD_ADD:
    case PROTO_CMD_REPLACE:
    case PROTO_CMD_APPEND:
    case PROTO_CMD_PREPEND:
    case PROTO_CMD_CAS:
        st = proto_parse_storage(a, n, req, reason);
        break;
    case PROTO_CMD_DELETE:
        st = proto_parse_delete(a, n, req, reason);
        break;
    case PROTO_CMD_INCR:
    case PROTO_CMD_DECR:
    case PROTO_CMD_TOUCH:
        st = proto_parse_key_number(a, n, req, reason);
        break;
    case PROTO_CMD_FLUSH_ALL:
        st = proto_parse_flush_all(a, n, req, reason);
        break;
    case PROTO_CMD_VERBOSITY:
        st = proto_parse_verbosity(a, n, req, reason);
        break;
    default: /* PROTO_CMD_VERSION, PROTO_CMD_QUIT */
        if (n != 0) {
            st = proto_fail(PROTO_CLIENT_ERROR, PROTO_REASON_FORMAT, reason);
        } else {
            st = PROTO_OK;
        }
        break;
    }
    if (st != PROTO_OK) {
        req->noreply = proto_ends_with_noreply(word.p + word.len, line + len);
    }
    return st;
}

size_t
proto_line_limit(const char *p, size_t avail, unsigned max_keys)
{
    static const struct proto_str words[] = {
        {"get ", 4},
        {"gets ", 5},
        {"gat ", 4},
        {"gats ", 5},
    };
    const char *end = p + avail;
    size_t n, big;

    p = proto_skip_spaces(p, end);
    n = (size_t)(end - p);
    if (n > 0 && *p != 'g') {
        return PROTO_LINE_MAX;
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(words); i++) {
        size_t cmp = n < words[i].len ? n : words[i].len;

        if (memcmp(p, words[i].p, cmp) == 0) {
            big = PROTO_RETRIEVAL_HEAD + (size_t)max_keys * (PROTO_KEY_MAX + 1);
            return big > PROTO_LINE_MAX ? big : PROTO_LINE_MAX;
        }
    }
    return PROTO_LINE_MAX;
}

/* Exactly word, or word, a space and text (when text is allowed). */
static inline bool
proto_rsp_is(const char *line, size_t len, const char *word, size_t wlen,
             bool text)
{
    if (len < wlen || memcmp(line, word, wlen) != 0) {
        return false;
    }
    return len == wlen || (text && line[wlen] == ' ');
}

#define PROTO_RSP_IS(line, len, lit, text)                                     \
    proto_rsp_is((line), (len), (lit), sizeof(lit) - 1, (text))

enum proto_rsp
proto_classify_response(const char *line, size_t len)
{
    uint64_t v;

    if (len == 0) {
        return PROTO_RSP_UNKNOWN;
    }
    switch (line[0]) {
    case 'V':
        if (len > 6 && memcmp(line, "VALUE ", 6) == 0) {
            return PROTO_RSP_VALUE;
        }
        if (PROTO_RSP_IS(line, len, "VERSION", true)) {
            return PROTO_RSP_VERSION;
        }
        break;
    case 'E':
        if (PROTO_RSP_IS(line, len, "END", false)) {
            return PROTO_RSP_END;
        }
        if (PROTO_RSP_IS(line, len, "EXISTS", false)) {
            return PROTO_RSP_EXISTS;
        }
        if (PROTO_RSP_IS(line, len, "ERROR", true)) {
            return PROTO_RSP_ERROR;
        }
        break;
    case 'S':
        if (PROTO_RSP_IS(line, len, "STORED", false)) {
            return PROTO_RSP_STORED;
        }
        if (PROTO_RSP_IS(line, len, "SERVER_ERROR", true)) {
            return PROTO_RSP_SERVER_ERROR;
        }
        break;
    case 'N':
        if (PROTO_RSP_IS(line, len, "NOT_STORED", false)) {
            return PROTO_RSP_NOT_STORED;
        }
        if (PROTO_RSP_IS(line, len, "NOT_FOUND", false)) {
            return PROTO_RSP_NOT_FOUND;
        }
        break;
    case 'D':
        if (PROTO_RSP_IS(line, len, "DELETED", false)) {
            return PROTO_RSP_DELETED;
        }
        break;
    case 'T':
        if (PROTO_RSP_IS(line, len, "TOUCHED", false)) {
            return PROTO_RSP_TOUCHED;
        }
        break;
    case 'O':
        if (PROTO_RSP_IS(line, len, "OK", false)) {
            return PROTO_RSP_OK;
        }
        break;
    case 'C':
        if (PROTO_RSP_IS(line, len, "CLIENT_ERROR", true)) {
            return PROTO_RSP_CLIENT_ERROR;
        }
        break;
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        if (util_parse_u64(line, len, &v) == 0) {
            return PROTO_RSP_NUMBER;
        }
        break;
    }
    return PROTO_RSP_UNKNOWN;
}

int
proto_parse_value(const char *line, size_t len, struct proto_str *key,
                  uint32_t *flags, uint32_t *vlen, uint64_t *cas, bool *has_cas)
{
    const char *p = line + 6, *end = line + len;
    uint64_t num[3];
    unsigned n;

    if (len < 6 || memcmp(line, "VALUE ", 6) != 0) {
        return -1;
    }
    /* One pass: the key, then 2 or 3 numbers, separated by exactly one
     * space, none empty (this runs once per value a backend returns). */
    key->p = p;
    p = memchr(p, ' ', (size_t)(end - p));
    if (p == NULL) {
        return -1;
    }
    key->len = (size_t)(p - key->p);
    if (key->len == 0 || key->len > PROTO_KEY_MAX) {
        return -1;
    }
    for (size_t i = 0; i < key->len; i++) {
        if (!proto_key_byte_ok((unsigned char)key->p[i])) {
            return -1;
        }
    }
    for (n = 0; p < end; n++) {
        const char *d;
        uint64_t v = 0;

        if (n == 3) {
            return -1;
        }
        d = ++p;                        /* past the space */
        while (p < end && *p != ' ') {
            unsigned digit = (unsigned)(*p - '0');

            if (digit > 9 || __builtin_mul_overflow(v, 10u, &v) ||
                __builtin_add_overflow(v, digit, &v)) {
                return -1;
            }
            p++;
        }
        if (p == d) {
            return -1;
        }
        num[n] = v;
    }
    if (n < 2 || num[0] > UINT32_MAX || num[1] > INT32_MAX) {
        return -1;
    }
    *flags = (uint32_t)num[0];
    *vlen = (uint32_t)num[1];
    *has_cas = n == 3;
    *cas = n == 3 ? num[2] : 0;
    return 0;
}

/* Length of line without a trailing "noreply" token and spaces. */
size_t
proto_strip_noreply(const char *line, size_t len, bool noreply)
{
    while (len > 0 && line[len - 1] == ' ') {
        len--;
    }
    if (noreply && len >= 7) {
        len -= 7;
        while (len > 0 && line[len - 1] == ' ') {
            len--;
        }
    }
    return len;
}
