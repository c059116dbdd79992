/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_reply: a libFuzzer target for the backend reply parsers: every
 * input is classified as a reply line (proto_classify_response) and parsed
 * as a VALUE line (proto_parse_value), in a buffer of exactly its size;
 * the key it names must lie inside the line and be a key's length.
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
    struct proto_str key;
    uint32_t flags, vlen;
    uint64_t cas;
    bool has_cas;
    char *line = malloc(size > 0 ? size : 1);

    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, size);
    if (proto_parse_value(line, size, &key, &flags, &vlen, &cas,
                          &has_cas) == 0 &&
        (key.p < line || key.p + key.len > line + size || key.len == 0 ||
         key.len > PROTO_KEY_MAX)) {
        abort();
    }
    (void)proto_classify_response(line, size);
    free(line);
    return 0;
}
