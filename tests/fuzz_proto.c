/*
 * fuzz_proto: a libFuzzer target for the request and reply parsers (not
 * part of make check). Every input goes through proto_parse_request,
 * proto_parse_value, proto_classify_response and proto_line_limit, in a
 * buffer of exactly its size so that AddressSanitizer sees any overread.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -I. \
 *       tests/fuzz_proto.c src/proto.c src/util.c src/log.c -levent \
 *       -o /tmp/fuzz_proto && /tmp/fuzz_proto -max_total_time=120
 *
 * (-I. for autoconf.h in a tree configured in place, -Ibuild for one
 * configured in build/.)
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
    struct proto_req r;
    const char *reason = NULL;
    struct proto_str key;
    uint32_t flags, vlen;
    uint64_t cas;
    bool has_cas;
    char *line = malloc(size > 0 ? size : 1);

    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, size);
    (void)proto_parse_request(line, size, 1024, &r, &reason);
    if (proto_parse_value(line, size, &key, &flags, &vlen, &cas,
                          &has_cas) == 0 &&
        (key.p < line || key.p + key.len > line + size || key.len == 0 ||
         key.len > PROTO_KEY_MAX)) {
        abort();
    }
    (void)proto_classify_response(line, size);
    (void)proto_line_limit(line, size, 1024);
    free(line);
    return 0;
}
