/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_request: a libFuzzer target for the client request parser (see
 * scripts/fuzz.sh, which builds and runs every target in tests/fuzz/).
 * Every input goes through proto_parse_request, then the key iterator,
 * proto_line_limit, proto_strip_noreply and proto_key_classic, in a buffer
 * of exactly its size so that AddressSanitizer sees any overread; what the
 * parser hands back must lie inside the input.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_inside(const char *p, size_t n, const char *line, size_t size)
{
    if (n > 0 && (p < line || p + n > line + size)) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_req r;
    const char *reason = NULL;
    char *line = malloc(size > 0 ? size : 1);

    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, size);
    if (proto_parse_request(line, size, 1024, &r, &reason) == PROTO_OK) {
        struct proto_str k;

        fuzz_inside(r.key.p, r.key.len, line, size);
        fuzz_inside(r.keys.p, r.keys.len, line, size);
        if (r.key.len > PROTO_KEY_MAX && !proto_cmd_is_meta(r.cmd)) {
            abort();
        }
        if (r.keys.len > 0) {
            const char *cur = r.keys.p, *end = r.keys.p + r.keys.len;

            while (proto_next_key(&cur, end, &k)) {
                fuzz_inside(k.p, k.len, line, size);
            }
        }
        if (proto_strip_noreply(line, size, r.noreply) > size) {
            abort();
        }
        (void)proto_key_classic(r.key.p, r.key.len);
    }
    (void)proto_line_limit(line, size, 1024);
    free(line);
    return 0;
}
