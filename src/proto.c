/* SPDX-License-Identifier: BSD-3-Clause */
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

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

/* memcached's MAX_TOKENS: a line is cut into at most 23 tokens and the
 * rest (only a retrieval looks at it). */
#define PROTO_MAX_TOKENS 24

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
    [PROTO_CMD_MN] = "mn",
    [PROTO_CMD_MG] = "mg",
    [PROTO_CMD_MS] = "ms",
    [PROTO_CMD_MD] = "md",
    [PROTO_CMD_MA] = "ma",
    [PROTO_CMD_ME] = "me",
    [PROTO_CMD_CACHE_MEMLIMIT] = "cache_memlimit",
    [PROTO_CMD_SHUTDOWN] = "shutdown",
    [PROTO_CMD_WATCH] = "watch",
    [PROTO_CMD_SLABS] = "slabs",
    [PROTO_CMD_LRU] = "lru",
    [PROTO_CMD_LRU_CRAWLER] = "lru_crawler",
    [PROTO_CMD_EXTSTORE] = "extstore",
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

bool
proto_cmd_is_meta(enum proto_cmd cmd)
{
    return cmd >= PROTO_CMD_MG && cmd <= PROTO_CMD_ME;
}

bool
proto_cmd_has_key(enum proto_cmd cmd)
{
    return (cmd >= PROTO_CMD_GET && cmd <= PROTO_CMD_TOUCH) ||
           proto_cmd_is_meta(cmd);
}

size_t
proto_base64_encode(const char *src, size_t len, char *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)src;
    size_t n = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;

        v |= i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0;
        v |= i + 2 < len ? s[i + 2] : 0;
        out[n++] = digits[v >> 18];
        out[n++] = digits[(v >> 12) & 63];
        out[n++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? digits[v & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

size_t
proto_base64_decode(const char *src, size_t len, char *out, size_t cap)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0, pad = 0;

    if (len == 0 || len % 4 != 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        int v;

        if (c == '=') {
            if (i < len - 2) {
                return 0;
            }
            pad++;
            continue;
        }
        if (pad > 0) {
            return 0;
        }
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+') {
            v = 62;
        } else if (c == '/') {
            v = 63;
        } else {
            return 0;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) {
                return 0;
            }
            out[n++] = (char)(acc >> bits);
        }
    }
    return n;
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

static inline bool
proto_is_noreply(const struct proto_str *t)
{
    return PROTO_EQ(t->p, t->len, "noreply");
}

/*
 * The command for word w of len bytes, PROTO_CMD_NONE if unknown. Switches
 * on the length and first byte so at most one or two memcmp run.
 */
static enum proto_cmd
proto_lookup(const char *w, size_t len)
{
    switch (len) {
    case 2:
        if (w[0] != 'm') {
            break;
        }
        switch (w[1]) {
        case 'n':
            return PROTO_CMD_MN;
        case 'g':
            return PROTO_CMD_MG;
        case 's':
            return PROTO_CMD_MS;
        case 'd':
            return PROTO_CMD_MD;
        case 'a':
            return PROTO_CMD_MA;
        case 'e':
            return PROTO_CMD_ME;
        }
        break;
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
        case 'l':
            if (w[1] == 'r' && w[2] == 'u') {
                return PROTO_CMD_LRU;
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
        case 'b':
            /* An ancient synonym of get that memcached still answers. */
            if (memcmp(w, "bget", 4) == 0) {
                return PROTO_CMD_GET;
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
        if (memcmp(w, "watch", 5) == 0) {
            return PROTO_CMD_WATCH;
        }
        if (memcmp(w, "slabs", 5) == 0) {
            return PROTO_CMD_SLABS;
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
    case 8:
        if (memcmp(w, "shutdown", 8) == 0) {
            return PROTO_CMD_SHUTDOWN;
        }
        if (memcmp(w, "extstore", 8) == 0) {
            return PROTO_CMD_EXTSTORE;
        }
        break;
    case 11:
        if (memcmp(w, "lru_crawler", 11) == 0) {
            return PROTO_CMD_LRU_CRAWLER;
        }
        break;
    case 14:
        if (memcmp(w, "cache_memlimit", 14) == 0) {
            return PROTO_CMD_CACHE_MEMLIMIT;
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

/* ---- requests: memcached 1.6's own reading of a line -------------------- */

/*
 * memcached's tokenizer (proto_text.c tokenize_command()): tokens are
 * separated by single spaces (runs of them make no empty token); at most
 * PROTO_MAX_TOKENS - 1 tokens, the rest of the line being the terminal
 * token's value. Returns the number of tokens, the terminal one included,
 * as memcached counts them; *rest is the terminal token's value (NULL at
 * the end of the line). max (at most PROTO_MAX_TOKENS) stops it earlier,
 * where a caller needs no more.
 */
static size_t
proto_tokenize(const char *line, size_t len, struct proto_str *tok,
               const char **rest, size_t max)
{
    const char *s = line, *e = line, *end = line + len;
    size_t n = 0;

    for (; e < end; e++) {
        if (*e != ' ') {
            continue;
        }
        if (s != e) {
            tok[n].p = s;
            tok[n].len = (size_t)(e - s);
            n++;
            if (n == max - 1) {
                e++;
                s = e;
                break;
            }
        }
        s = e + 1;
    }
    if (s != e) {
        tok[n].p = s;
        tok[n].len = (size_t)(e - s);
        n++;
    }
    *rest = e < end ? e : NULL;
    tok[n].p = *rest;
    tok[n].len = 0;
    return n + 1;
}

/*
 * The NUL-terminated copy of a token that libc's number parsers need, as
 * memcached's tokenizer leaves it (it writes a NUL over each separator).
 */
static const char *
proto_cstr(const struct proto_str *t, char *buf, size_t cap)
{
    size_t n = t->len < cap - 1 ? t->len : cap - 1;

    if (t->p != NULL) {
        memcpy(buf, t->p, n);
    } else {
        n = 0;
    }
    buf[n] = '\0';
    return buf;
}

/* memcached's util.c, exactly: what strtoul and friends take, followed by
 * a space or the end; the result truncated to the field's width. */
/*
 * The common case, plain decimal digits that cannot overflow: what libc's
 * parsers give for them, without the copy. Returns false to fall back.
 */
static inline bool
proto_digits(const struct proto_str *t, uint64_t *out)
{
    uint64_t v = 0;

    if (t->len == 0 || t->len > 18) {
        return false;
    }
    for (size_t i = 0; i < t->len; i++) {
        unsigned d = (unsigned)(t->p[i] - '0');

        if (d > 9) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool
proto_mc_strtoull(const struct proto_str *t, uint64_t *out)
{
    char buf[PROTO_LINE_BUF + 1];
    const char *s;
    char *endp;
    unsigned long long v;

    if (proto_digits(t, out)) {
        return true;
    }
    s = proto_cstr(t, buf, sizeof(buf));
    errno = 0;
    v = strtoull(s, &endp, 10);
    if (errno == ERANGE || endp == s) {
        return false;
    }
    if (isspace((unsigned char)*endp) || *endp == '\0') {
        if ((long long)v < 0 && strchr(s, '-') != NULL) {
            return false;
        }
        *out = v;
        return true;
    }
    return false;
}

static bool
proto_mc_strtoul(const struct proto_str *t, uint32_t *out)
{
    uint64_t v;

    /* unsigned long is 64 bits here: the same test, then truncation. */
    if (!proto_mc_strtoull(t, &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool
proto_mc_strtol(const struct proto_str *t, int32_t *out)
{
    char buf[PROTO_LINE_BUF + 1];
    const char *s;
    char *endp;
    long v;
    uint64_t u;

    if (proto_digits(t, &u)) {
        *out = (int32_t)u;      /* truncated, as memcached's long to int32 */
        return true;
    }
    s = proto_cstr(t, buf, sizeof(buf));
    errno = 0;
    v = strtol(s, &endp, 10);
    if (errno == ERANGE || endp == s) {
        return false;
    }
    if (isspace((unsigned char)*endp) || *endp == '\0') {
        *out = (int32_t)v;
        return true;
    }
    return false;
}

/* set_noreply_maybe(): the last token is "noreply". */
static bool
proto_noreply_maybe(const struct proto_str *tok, size_t ntok)
{
    const struct proto_str *t = &tok[ntok - 2];

    return t->p != NULL && proto_is_noreply(t);
}

static inline enum proto_status
proto_client_error(struct proto_req *req, const char *why,
                   const char **reason)
{
    (void)req;
    *reason = why;
    return PROTO_CLIENT_ERROR;
}

/* get gets gat gats bget: keys to the end of the line (any number). */
static enum proto_status
proto_req_retrieval(const struct proto_str *tok, size_t ntok,
                    const char *line, const char *end, unsigned max_keys,
                    struct proto_req *req, const char **reason)
{
    const struct proto_str *first = &tok[1];
    struct proto_str k;
    const char *p;
    uint32_t nkeys = 0;
    const char *last = NULL;

    if (req->cmd == PROTO_CMD_GAT || req->cmd == PROTO_CMD_GATS) {
        int32_t e;

        if (!proto_mc_strtol(&tok[1], &e)) {
            return proto_client_error(req, PROTO_REASON_EXPTIME, reason);
        }
        req->exptime = e;
        first = &tok[2];
    }
    (void)ntok;
    /* The keys: from the first one to the end of the line. */
    p = first->p != NULL ? first->p : end;
    req->keys.p = p;
    while (proto_token(&p, end, &k)) {
        if (k.len > PROTO_KEY_MAX) {
            return proto_client_error(req, PROTO_REASON_FORMAT, reason);
        }
        if (nkeys == 0) {
            req->key = k;
        }
        if (max_keys != 0 && nkeys == max_keys) {
            return proto_client_error(req, PROTO_REASON_TOO_MANY_KEYS,
                                      reason);
        }
        nkeys++;
        last = p;
    }
    req->keys.len = last != NULL ? (size_t)(last - req->keys.p) : 0;
    req->nkeys = nkeys;
    (void)line;
    return PROTO_OK;
}

/* process_update_command(): set add replace append prepend, cas. */
static enum proto_status
proto_req_update(const struct proto_str *tok, size_t ntok,
                 struct proto_req *req, const char **reason)
{
    int32_t e, vlen;

    req->noreply = proto_noreply_maybe(tok, ntok);
    if (tok[1].len > PROTO_KEY_MAX) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    if (!proto_mc_strtoul(&tok[2], &req->flags) ||
        !proto_mc_strtol(&tok[3], &e) || !proto_mc_strtol(&tok[4], &vlen)) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    if (req->cmd == PROTO_CMD_CAS && !proto_mc_strtoull(&tok[5], &req->cas)) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    if (vlen < 0 || vlen > INT32_MAX - 2) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    req->key = tok[1];
    req->exptime = e;
    req->vlen = (uint32_t)vlen;
    return PROTO_OK;
}

/* process_touch_command(), process_arithmetic_command(). */
static enum proto_status
proto_req_key_number(const struct proto_str *tok, size_t ntok,
                     struct proto_req *req, const char **reason)
{
    req->noreply = proto_noreply_maybe(tok, ntok);
    if (tok[1].len > PROTO_KEY_MAX) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    if (req->cmd == PROTO_CMD_TOUCH) {
        int32_t e;

        if (!proto_mc_strtol(&tok[2], &e)) {
            return proto_client_error(req, PROTO_REASON_EXPTIME, reason);
        }
        req->exptime = e;
    } else if (!proto_mc_strtoull(&tok[2], &req->delta)) {
        return proto_client_error(req, PROTO_REASON_DELTA, reason);
    }
    req->key = tok[1];
    return PROTO_OK;
}

/* process_delete_command(): delete <key> [0] [noreply]. */
static enum proto_status
proto_req_delete(const struct proto_str *tok, size_t ntok,
                 struct proto_req *req, const char **reason)
{
    if (ntok > 3) {
        bool zero = PROTO_EQ(tok[2].p, tok[2].len, "0");
        bool noreply = proto_noreply_maybe(tok, ntok);

        req->noreply = noreply;
        if (!((ntok == 4 && (zero || noreply)) ||
              (ntok == 5 && zero && noreply))) {
            return proto_client_error(req, PROTO_REASON_DELETE_FORMAT,
                                      reason);
        }
    }
    if (tok[1].len > PROTO_KEY_MAX) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    req->key = tok[1];
    return PROTO_OK;
}

/* process_flush_all_command(). */
static enum proto_status
proto_req_flush_all(const struct proto_str *tok, size_t ntok,
                    struct proto_req *req, const char **reason)
{
    req->noreply = proto_noreply_maybe(tok, ntok);
    if (ntok != (req->noreply ? 3u : 2u)) {
        int32_t e;

        if (!proto_mc_strtol(&tok[1], &e)) {
            return proto_client_error(req, PROTO_REASON_EXPTIME, reason);
        }
        req->exptime = e;
        req->has_delay = true;
    }
    return PROTO_OK;
}

/* process_verbosity_command(), process_memlimit_command(). */
static enum proto_status
proto_req_level(const struct proto_str *tok, size_t ntok,
                struct proto_req *req, const char **reason)
{
    req->noreply = proto_noreply_maybe(tok, ntok);
    if (!proto_mc_strtoul(&tok[1], &req->level)) {
        if (req->cmd == PROTO_CMD_CACHE_MEMLIMIT) {
            return PROTO_ERROR;
        }
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    return PROTO_OK;
}

/*
 * mg ms md ma me: what mcring must know to route and frame them, with the
 * checks memcached makes before it looks at the flags (the backend makes
 * the others, and answers them). ms: the data length, as process_mset
 * reads it.
 */
static enum proto_status
proto_req_meta(const struct proto_str *tok, size_t ntok, struct proto_req *req,
               const char **reason)
{
    uint32_t first = req->cmd == PROTO_CMD_MS ? 3 : 2;
    unsigned nq = 0;

    if (ntok < 3) {
        return PROTO_ERROR;
    }
    if (tok[1].len > PROTO_KEY_MAX) {
        return proto_client_error(req, PROTO_REASON_FORMAT, reason);
    }
    req->key = tok[1];
    if (req->cmd == PROTO_CMD_ME) {
        req->meta_b64 = ntok >= 4 && PROTO_EQ(tok[2].p, tok[2].len, "b");
        return PROTO_OK;
    }
    if (req->cmd == PROTO_CMD_MS) {
        int32_t vlen;

        if (ntok == 3) {
            return proto_client_error(req, PROTO_REASON_FORMAT, reason);
        }
        if (ntok > 20) {
            return proto_client_error(req, PROTO_REASON_META_LONG, reason);
        }
        if (!proto_mc_strtol(&tok[2], &vlen) || vlen < 0 ||
            vlen > INT32_MAX - 2) {
            return proto_client_error(req, PROTO_REASON_FORMAT, reason);
        }
        req->vlen = (uint32_t)vlen;
    } else if (ntok > 20) {
        return proto_client_error(req, req->cmd == PROTO_CMD_MG
                                           ? PROTO_REASON_MG_LONG
                                           : PROTO_REASON_META_LONG,
                                  reason);
    }
    req->meta_flags = first;
    for (size_t i = first; i + 1 < ntok; i++) {
        if (tok[i].p[0] == 'b') {
            req->meta_b64 = true;
        } else if (tok[i].p[0] == 'q') {
            nq++;
        } else if (tok[i].p[0] == 'M') {
            req->meta_mode = tok[i].len > 1 ? tok[i].p[1] : '?';
        }
    }
    req->meta_quiet = nq > 0;
    return PROTO_OK;
}

/* True when ntok is a or b (memcached's WANT_TOKENS_OR). */
static inline bool
proto_want(size_t ntok, size_t a, size_t b)
{
    return ntok == a || ntok == b;
}

enum proto_status
proto_parse_request(const char *line, size_t len, unsigned max_keys,
                    struct proto_req *req, const char **reason)
{
    struct proto_str tok[PROTO_MAX_TOKENS];
    const char *rest, *nul, *word, *wend;
    size_t ntok;
    enum proto_cmd cmd;

    memset(req, 0, sizeof(*req));
    /* memcached reads the line as a C string: a NUL ends it. */
    nul = memchr(line, '\0', len);
    if (nul != NULL) {
        len = (size_t)(nul - line);
    }
    /* The command word first: a retrieval needs no more than three tokens
     * (command, exptime, first key), its keys are read from the line. */
    word = proto_skip_spaces(line, line + len);
    for (wend = word; wend < line + len && *wend != ' '; wend++) {
    }
    if (wend - word < 2) {
        return PROTO_ERROR;
    }
    cmd = proto_lookup(word, (size_t)(wend - word));
    req->cmd = cmd;
    ntok = proto_tokenize(line, len, tok, &rest,
                          proto_cmd_is_retrieval(cmd) ? 4 : PROTO_MAX_TOKENS);
    req->name = tok[0];
    switch (cmd) {
    case PROTO_CMD_GET:
    case PROTO_CMD_GETS:
    case PROTO_CMD_GAT:
    case PROTO_CMD_GATS:
        if (ntok < 3) {
            return PROTO_ERROR;
        }
        return proto_req_retrieval(tok, ntok, line, line + len, max_keys, req,
                                   reason);
    case PROTO_CMD_SET:
    case PROTO_CMD_ADD:
    case PROTO_CMD_REPLACE:
    case PROTO_CMD_APPEND:
    case PROTO_CMD_PREPEND:
        if (!proto_want(ntok, 6, 7)) {
            return PROTO_ERROR;
        }
        return proto_req_update(tok, ntok, req, reason);
    case PROTO_CMD_CAS:
        if (!proto_want(ntok, 7, 8)) {
            return PROTO_ERROR;
        }
        return proto_req_update(tok, ntok, req, reason);
    case PROTO_CMD_INCR:
    case PROTO_CMD_DECR:
    case PROTO_CMD_TOUCH:
        if (!proto_want(ntok, 4, 5)) {
            return PROTO_ERROR;
        }
        return proto_req_key_number(tok, ntok, req, reason);
    case PROTO_CMD_DELETE:
        if (ntok < 3 || ntok > 5) {
            return PROTO_ERROR;
        }
        return proto_req_delete(tok, ntok, req, reason);
    case PROTO_CMD_FLUSH_ALL:
        if (ntok < 2 || ntok > 4) {
            return PROTO_ERROR;
        }
        return proto_req_flush_all(tok, ntok, req, reason);
    case PROTO_CMD_VERBOSITY:
    case PROTO_CMD_CACHE_MEMLIMIT:
        if (!proto_want(ntok, 3, 4)) {
            return PROTO_ERROR;
        }
        return proto_req_level(tok, ntok, req, reason);
    case PROTO_CMD_STATS:
    case PROTO_CMD_WATCH:
    case PROTO_CMD_SLABS:
    case PROTO_CMD_LRU:
    case PROTO_CMD_LRU_CRAWLER:
    case PROTO_CMD_EXTSTORE:
        req->args.p = tok[1].p != NULL ? tok[1].p : line + len;
        req->args.len = (size_t)(line + len - req->args.p);
        while (req->args.len > 0 && req->args.p[req->args.len - 1] == ' ') {
            req->args.len--;
        }
        return PROTO_OK;
    case PROTO_CMD_VERSION:
    case PROTO_CMD_QUIT:
    case PROTO_CMD_MN:
    case PROTO_CMD_SHUTDOWN:
        return PROTO_OK;
    case PROTO_CMD_MG:
    case PROTO_CMD_MS:
    case PROTO_CMD_MD:
    case PROTO_CMD_MA:
    case PROTO_CMD_ME:
        return proto_req_meta(tok, ntok, req, reason);
    case PROTO_CMD_NONE:
        break;
    }
    /* Unknown. An HTTP request line is closed on, as memcached does. */
    if (tok[ntok - 2].len >= 5 && memcmp(tok[ntok - 2].p, "HTTP/", 5) == 0) {
        return PROTO_CLOSE;
    }
    return PROTO_ERROR;
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

/* The flags of a meta hit, from p (after "VA <len>" or "HD"). */
static int
proto_parse_meta_flags(const char *p, const char *end,
                       struct proto_meta_value *mv)
{
    struct proto_str tok;
    uint64_t u;

    while (proto_next_key(&p, end, &tok)) {
        const char *num = tok.p + 1;
        size_t nlen = tok.len - 1;

        switch (tok.p[0]) {
        case 'f':
            if (util_parse_u64(num, nlen, &u) != 0 || u > UINT32_MAX) {
                return -1;
            }
            mv->flags = (uint32_t)u;
            break;
        case 't':
            if (util_parse_i64(num, nlen, &mv->ttl) != 0) {
                return -1;
            }
            break;
        case 'c':
            if (util_parse_u64(num, nlen, &mv->cas) != 0) {
                return -1;
            }
            mv->has_cas = true;
            break;
        case 'W':
            mv->won |= tok.len == 1;
            break;
        case 'Z':
            mv->claimed |= tok.len == 1;
            break;
        case 'X':
            mv->stale |= tok.len == 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

int
proto_parse_meta_value(const char *line, size_t len,
                       struct proto_meta_value *mv)
{
    const char *p = line + 3, *end = line + len;
    struct proto_str tok;
    uint64_t u;

    memset(mv, 0, sizeof(*mv));
    mv->ttl = -1;
    if (len < 4 || memcmp(line, "VA ", 3) != 0 ||
        !proto_next_key(&p, end, &tok) ||
        util_parse_u64(tok.p, tok.len, &u) != 0 || u > UINT32_MAX) {
        return -1;
    }
    mv->len = (uint32_t)u;
    return proto_parse_meta_flags(p, end, mv);
}

int
proto_parse_meta_hit(const char *line, size_t len,
                     struct proto_meta_value *mv)
{
    if (len >= 2 && memcmp(line, "HD", 2) == 0 &&
        (len == 2 || line[2] == ' ')) {
        memset(mv, 0, sizeof(*mv));
        mv->ttl = -1;
        return proto_parse_meta_flags(line + 2, line + len, mv);
    }
    return proto_parse_meta_value(line, len, mv);
}

/* memcached reads an exptime above this as an absolute time. */
#define PROTO_RELATIVE_MAX 2592000

int64_t
proto_copy_exptime(int64_t ttl, int64_t now)
{
    if (ttl < 0) {
        return 0;
    }
    if (ttl == 0) {
        return -1;
    }
    return ttl > PROTO_RELATIVE_MAX ? now + ttl : ttl;
}

bool
proto_key_classic(const char *k, size_t len)
{
    return len > 0 && len <= PROTO_KEY_MAX && memchr(k, ' ', len) == NULL &&
           memchr(k, '\n', len) == NULL && memchr(k, '\0', len) == NULL &&
           k[len - 1] != '\r';
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
