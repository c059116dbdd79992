/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * topology_bench: what one topology snapshot costs, at 10, 100 and 1000
 * backends: heap bytes (glibc's mallinfo2() before and after) and build
 * time of the config copy, the ring and the snapshot, as a reload builds
 * them; and the backend objects themselves (shared by every snapshot that
 * lists them, so a reload that keeps them does not pay for them again).
 *
 * Usage: topology-bench [THREADS]   (counter slots per backend, default 4)
 */
#include "autoconf.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "ring.h"
#include "topology.h"
#include "util.h"

static size_t
bench_heap(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

static struct config *
bench_config(unsigned n)
{
    struct config *cfg = util_xcalloc(1, sizeof(*cfg));
    char err[256];

    config_defaults(cfg);
    cfg->listen_host = util_xstrdup(cfg->listen_host);
    for (unsigned i = 0; i < n; i++) {
        char name[32], addr[64];

        snprintf(name, sizeof(name), "mc%u", i + 1);
        snprintf(addr, sizeof(addr), "10.0.%u.%u:11211", i / 250, i % 250 + 1);
        if (config_add_backend_str(cfg, NULL, name, addr, 1.0, err,
                                   sizeof(err)) !=
            0) {
            fprintf(stderr, "topology-bench: %s\n", err);
            exit(1);
        }
    }
    return cfg;
}

int
main(int argc, char **argv)
{
    static const unsigned sizes[] = {10, 100, 1000};
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 4;
    struct backend_set set;

    backend_set_init(&set, threads ? threads : 1, NULL, NULL);
    printf("%-9s %14s %14s %12s %16s\n", "backends", "snapshot_bytes",
           "ring_bytes", "build_ms", "backend_objects");
    for (size_t k = 0; k < UTIL_ARRAY_SIZE(sizes); k++) {
        unsigned n = sizes[k];
        struct config *cfg = bench_config(n);
        struct backend **bes = util_xcalloc(n, sizeof(*bes));
        size_t h0, h1, h2;
        uint64_t t0, t1;
        struct topology *t;
        char err[256];

        h0 = bench_heap();
        for (unsigned i = 0; i < n; i++) {
            bes[i] = backend_create(&set, &cfg->backends[i], BACKEND_UP,
                                    100000, err, sizeof(err));
        }
        h1 = bench_heap();
        /* What a reload builds: a config, a ring, a snapshot. */
        t0 = util_now_ns();
        for (unsigned i = 0; i < n; i++) {
            backend_ref(bes[i]);
        }
        t = topology_create(1, config_clone(cfg), bes, err, sizeof(err));
        if (t == NULL) {
            fprintf(stderr, "topology-bench: %s\n", err);
            return 1;
        }
        t1 = util_now_ns();
        h2 = bench_heap();
        printf("%-9u %14zu %14zu %12.2f %16zu\n", n, h2 - h1,
               ring_memory(t->pools[0].ring), (double)(t1 - t0) / 1e6,
               h1 - h0);
        topology_unref(t);
        for (unsigned i = 0; i < n; i++) {
            backend_unref(bes[i]);
        }
        free(bes);
        config_destroy(cfg);
    }
    backend_set_deinit(&set);
    return 0;
}
