/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fuzz_config: a libFuzzer target for the config loader: every input is a
 * config file (written to an in-memory file, read through config_load(),
 * inih and all); a config that loads must render to a file that loads
 * again with the same pools and routes, and its rings must build or fail
 * cleanly.
 */
#define _GNU_SOURCE
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a file: its path (a /proc/self/fd name), or NULL. */
static int
fuzz_file(const void *data, size_t size, char *path, size_t len)
{
    int fd = memfd_create("fuzz-config", 0);

    if (fd < 0) {
        return -1;
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], path2[64], err[512];
    int fd = fuzz_file(data, size, path, sizeof(path));
    struct config *cfg;

    if (fd < 0) {
        return 0;
    }
    cfg = config_load(path, err, sizeof(err));
    close(fd);
    if (cfg != NULL) {
        char *text = NULL;
        size_t tlen = 0;
        FILE *out = open_memstream(&text, &tlen);
        struct config *back;
        int fd2;

        config_render(cfg, out);
        fclose(out);
        fd2 = fuzz_file(text, tlen, path2, sizeof(path2));
        back = fd2 >= 0 ? config_load(path2, err, sizeof(err)) : NULL;
        if (fd2 >= 0) {
            close(fd2);
        }
        if (back == NULL || !config_pools_same_placement(cfg, back) ||
            back->nbackends != cfg->nbackends) {
            abort();
        }
        if (config_check_rings(cfg, err, sizeof(err)) == 0) {
            (void)config_moved_share(cfg, back);
        }
        config_destroy(back);
        config_destroy(cfg);
        free(text);
    }
    return 0;
}
