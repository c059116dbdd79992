/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mem: per-thread free lists for libevent's buffer memory.
 *
 * libevent allocates an evbuffer chain (a power of two from 1 KiB) when a
 * buffer grows from empty and frees it when the buffer is drained: on a
 * proxy's steady path that is several chains per request, all larger than
 * what glibc's own per-thread cache keeps. mem_init() hands libevent
 * allocation functions that keep freed blocks of 1 KiB to 64 KiB on a
 * free list of the freeing thread (each worker frees what it allocated),
 * so the steady path takes them from there instead of from malloc.
 *
 * Blocks are plain malloc() blocks: a block may be freed by another
 * thread, or kept; a thread's lists hold at most MEM_CACHE_BYTES in all
 * (enough for the replies of 1000 pipelined requests in flight), whatever
 * the mix of sizes. What a thread's lists kept unused since its last
 * mem_thread_trim() is freed by the next.
 *
 * Blocks of up to MEM_SLOT bytes come from slots of one region reserved
 * at mem_init(), not from the heap. libevent keeps such a record for
 * every descriptor that ever had an event, for as long as its event_base
 * lives: taken from the heap between the buffers of busy clients, a few
 * thousand of them would pin every page of it once those clients went
 * idle (1 KB per idle client measured); in the region they fill 32 bytes
 * each. A freed slot goes to a list of the freeing thread's. Memory that
 * libevent returns (evbuffer_readln(), evhttp_uridecode()) is therefore
 * freed with mem_free(), never free(), as libevent's documentation of
 * event_set_mem_functions() asks.
 */
#ifndef MCRING_MEM_H
#define MCRING_MEM_H

#include <stdbool.h>

/* Requests of at most this many bytes are served from the slot region. */
#define MEM_SLOT 32
/* The slot region's size (address space; pages are used as slots are). */
#define MEM_SLOT_REGION (16 * 1024 * 1024)

/* Bytes of freed blocks kept per thread, at most. */
#define MEM_CACHE_BYTES (4 * 1024 * 1024)

/* Blocks from this size up are mmap()ed (and unmapped when freed). */
#define MEM_MMAP_THRESHOLD (128 * 1024)
/* mem_trim() gives memory back once this much is free in the heap. */
#define MEM_TRIM_FREE (2 * 1024 * 1024)

/* Installs the allocation functions; call before any libevent call. */
void mem_init(void);
/* Gives free heap memory back to the system when there is more than
 * MEM_TRIM_FREE of it (malloc_trim()). Returns whether any went back. */
bool mem_trim(void);
/* Frees the blocks of the calling thread's free lists that were not
 * needed since the last call (the least they held meanwhile); call it
 * every second or so. */
void mem_thread_trim(void);
/* Frees the calling thread's free lists (before the thread ends); its
 * free slots go to a list all threads take from. */
void mem_thread_release(void);
/* Bytes of blocks on the calling thread's free lists (by class size). */
size_t mem_thread_kept(void);

/* Slots handed out of the region so far, free ones included. */
size_t mem_slots_used(void);
/* Whether p is a slot of the region. */
bool mem_is_slot(const void *p);

/* The allocation functions (exported for tests). */
void *mem_malloc(size_t size);
void *mem_realloc(void *p, size_t size);
void mem_free(void *p);

#endif
