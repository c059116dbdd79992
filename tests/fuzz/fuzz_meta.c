/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_meta: a libFuzzer target for the meta protocol's parsers: reply
 * lines with flags (proto_parse_meta_value, proto_parse_meta_hit) and
 * base64 keys (proto_base64_decode, whose output must fit and encode back
 * to a value that decodes the same).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_meta_value mv;
    char out[PROTO_KEY_MAX];
    char *line = malloc(size > 0 ? size : 1);
    size_t n;

    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, size);
    if (proto_parse_meta_value(line, size, &mv) == 0) {
        (void)proto_meta_unsettled(&mv);
    }
    if (proto_parse_meta_hit(line, size, &mv) == 0) {
        (void)proto_meta_unsettled(&mv);
    }
    n = proto_base64_decode(line, size, out, sizeof(out));
    if (n > sizeof(out)) {
        abort();
    }
    if (n > 0) {
        char enc[PROTO_BASE64_LEN(PROTO_KEY_MAX) + 1];
        char back[PROTO_KEY_MAX];
        size_t e = proto_base64_encode(out, n, enc);

        if (proto_base64_decode(enc, e, back, sizeof(back)) != n ||
            memcmp(back, out, n) != 0) {
            abort();
        }
    }
    free(line);
    return 0;
}
