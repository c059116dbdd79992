/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mem: see mem.h.
 *
 * Size classes are the powers of two 2^MEM_MIN_SHIFT .. 2^MEM_MAX_SHIFT.
 * A request of n bytes in that range is served from the list of the
 * smallest class >= n; a freed block goes to the list of the largest class
 * <= malloc_usable_size(block), so every block on a list has room for its
 * class. Everything else goes straight to malloc and free.
 */
#include "autoconf.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/event.h>

#include "mem.h"

/* Built with AddressSanitizer (gcc's macro, or clang's feature test). */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif

#if defined(MEM_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define MEM_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MEM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MEM_POISON(p, n) ((void)(p), (void)(n))
#define MEM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MEM_MIN_SHIFT 10
#define MEM_MAX_SHIFT 16
#define MEM_CLASSES (MEM_MAX_SHIFT - MEM_MIN_SHIFT + 1)

struct mem_block {
    struct mem_block *next;
};

struct mem_cache {
    struct mem_block *head[MEM_CLASSES];
    unsigned n[MEM_CLASSES];
    size_t bytes;                   /* on all lists, by class size */
    size_t low;                     /* the least bytes held since the
                                       last mem_thread_trim() */
};

static _Thread_local struct mem_cache mem_cache;

/*
 * The slot region: mem_slot_lo .. + MEM_SLOT_REGION, handed out from
 * the bottom (mem_slot_next) and reused through the lists of free slots:
 * the freeing thread's own, and the one that ended threads left.
 */
/* Without a region, an address no block of the process has: the test in
 * mem_is_slot() is one subtraction and one comparison either way. */
#define MEM_SLOT_NONE (UINTPTR_MAX - MEM_SLOT_REGION)
static uintptr_t mem_slot_lo = MEM_SLOT_NONE;
static atomic_size_t mem_slot_next;
static _Thread_local struct mem_block *mem_slot_free;
static pthread_mutex_t mem_slot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mem_block *mem_slot_orphans;  /* under mem_slot_lock */
static atomic_bool mem_slot_have_orphans;

bool
mem_is_slot(const void *p)
{
    return (uintptr_t)p - mem_slot_lo < MEM_SLOT_REGION;
}

size_t
mem_slots_used(void)
{
    size_t n = atomic_load_explicit(&mem_slot_next, memory_order_relaxed);

    return (n < MEM_SLOT_REGION ? n : MEM_SLOT_REGION) / MEM_SLOT;
}

/* A free slot, or NULL when the region is used up (or not there). Out of
 * line: the common calls of mem_malloc() and mem_free() do not pay for
 * its registers. */
static __attribute__((noinline)) void *
mem_slot_get(void)
{
    struct mem_block *b = mem_slot_free;
    size_t at;

    if (b == NULL && atomic_load_explicit(&mem_slot_have_orphans,
                                          memory_order_relaxed)) {
        pthread_mutex_lock(&mem_slot_lock);
        b = mem_slot_free = mem_slot_orphans;
        mem_slot_orphans = NULL;
        atomic_store_explicit(&mem_slot_have_orphans, false,
                              memory_order_relaxed);
        pthread_mutex_unlock(&mem_slot_lock);
    }
    if (b != NULL) {
        MEM_UNPOISON(b, MEM_SLOT);
        mem_slot_free = b->next;
        return b;
    }
    if (mem_slot_lo == MEM_SLOT_NONE) {
        return NULL;
    }
    at = atomic_fetch_add_explicit(&mem_slot_next, MEM_SLOT,
                                   memory_order_relaxed);
    if (at > MEM_SLOT_REGION - MEM_SLOT) {
        return NULL;
    }
    MEM_UNPOISON((char *)mem_slot_lo + at, MEM_SLOT);
    return (char *)mem_slot_lo + at;
}

static __attribute__((noinline)) void
mem_slot_put(void *p)
{
    struct mem_block *b = p;

    b->next = mem_slot_free;
    mem_slot_free = b;
    MEM_POISON(b, MEM_SLOT);
}

/* Smallest class with room for n bytes, or -1 outside the classes. */
static inline int
mem_class_for(size_t n)
{
    int shift;

    if (n <= ((size_t)1 << (MEM_MIN_SHIFT - 1)) ||
        n > ((size_t)1 << MEM_MAX_SHIFT)) {
        return -1;
    }
    shift = n <= ((size_t)1 << MEM_MIN_SHIFT)
                ? MEM_MIN_SHIFT
                : 64 - __builtin_clzll((unsigned long long)(n - 1));
    return shift - MEM_MIN_SHIFT;
}

/* Largest class a block of usable size u fills, or -1. */
static inline int
mem_class_of(size_t u)
{
    int shift;

    if (u < ((size_t)1 << MEM_MIN_SHIFT)) {
        return -1;
    }
    shift = 63 - __builtin_clzll((unsigned long long)u);
    return shift > MEM_MAX_SHIFT ? -1 : shift - MEM_MIN_SHIFT;
}

void *
mem_malloc(size_t size)
{
    int c = mem_class_for(size);

    if (__builtin_expect(size <= MEM_SLOT, 0)) {
        void *p = mem_slot_get();

        if (p != NULL) {
            return p;
        }
    }
    if (c >= 0 && mem_cache.head[c] != NULL) {
        struct mem_block *b = mem_cache.head[c];

        mem_cache.head[c] = b->next;
        mem_cache.n[c]--;
        mem_cache.bytes -= (size_t)1 << (c + MEM_MIN_SHIFT);
        if (mem_cache.bytes < mem_cache.low) {
            mem_cache.low = mem_cache.bytes;
        }
        return b;
    }
    /* A new block gets its class's full size, so that it can serve any
     * request of the class once it is freed. */
    return malloc(c >= 0 ? (size_t)1 << (c + MEM_MIN_SHIFT) : size);
}

void
mem_free(void *p)
{
    int c;

    if (p == NULL) {
        return;
    }
    if (__builtin_expect(mem_is_slot(p), 0)) {
        mem_slot_put(p);
        return;
    }
    c = mem_class_of(malloc_usable_size(p));
    if (c >= 0 &&
        mem_cache.bytes + ((size_t)1 << (c + MEM_MIN_SHIFT)) <=
            MEM_CACHE_BYTES) {
        struct mem_block *b = p;

        b->next = mem_cache.head[c];
        mem_cache.head[c] = b;
        mem_cache.n[c]++;
        mem_cache.bytes += (size_t)1 << (c + MEM_MIN_SHIFT);
        return;
    }
    free(p);
}

void *
mem_realloc(void *p, size_t size)
{
    void *q;

    if (!mem_is_slot(p)) {
        return realloc(p, size);
    }
    if (size <= MEM_SLOT) {
        return p;
    }
    if ((q = malloc(size)) != NULL) {
        memcpy(q, p, MEM_SLOT);
        mem_slot_put(p);
    }
    return q;
}

void
mem_thread_trim(void)
{
    size_t unused = mem_cache.low;

    /* The largest blocks first: fewest calls to free(). */
    for (int c = MEM_CLASSES - 1; c >= 0 && unused > 0; c--) {
        size_t size = (size_t)1 << (c + MEM_MIN_SHIFT);

        while (mem_cache.head[c] != NULL && unused >= size) {
            struct mem_block *b = mem_cache.head[c];

            mem_cache.head[c] = b->next;
            mem_cache.n[c]--;
            mem_cache.bytes -= size;
            unused -= size;
            free(b);
        }
    }
    mem_cache.low = mem_cache.bytes;
}

void
mem_thread_release(void)
{
    for (int c = 0; c < MEM_CLASSES; c++) {
        while (mem_cache.head[c] != NULL) {
            struct mem_block *b = mem_cache.head[c];

            mem_cache.head[c] = b->next;
            free(b);
        }
        mem_cache.n[c] = 0;
    }
    mem_cache.bytes = 0;
    mem_cache.low = 0;
    if (mem_slot_free != NULL) {
        struct mem_block *last = mem_slot_free;

        for (;;) {
            struct mem_block *next;

            MEM_UNPOISON(last, MEM_SLOT);
            if ((next = last->next) == NULL) {
                break;
            }
            MEM_POISON(last, MEM_SLOT);
            last = next;
        }
        pthread_mutex_lock(&mem_slot_lock);
        last->next = mem_slot_orphans;
        MEM_POISON(last, MEM_SLOT);
        mem_slot_orphans = mem_slot_free;
        atomic_store_explicit(&mem_slot_have_orphans, true,
                              memory_order_relaxed);
        pthread_mutex_unlock(&mem_slot_lock);
        mem_slot_free = NULL;
    }
}

size_t
mem_thread_kept(void)
{
    return mem_cache.bytes;
}

/* Reserves the slot region (once; without it every block is malloc's). */
static void
mem_slot_init(void)
{
    void *r;

    if (mem_slot_lo != MEM_SLOT_NONE) {
        return;
    }
    r = mmap(NULL, MEM_SLOT_REGION, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) {
        return;
    }
#if defined(MEM_ASAN)
    /* Heap blocks a slot points to are reachable; free slots are not
     * readable. */
    __lsan_register_root_region(r, MEM_SLOT_REGION);
    MEM_POISON(r, MEM_SLOT_REGION);
#endif
    mem_slot_lo = (uintptr_t)r;
}

void
mem_init(void)
{
    /* A fixed threshold: glibc's own rises to the largest block freed so
     * far, after which big buffers (values of hundreds of KB) come from
     * the heap and stay there once freed. */
#if !defined(MEM_ASAN)
    mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD);
#endif
    mem_slot_init();
    event_set_mem_functions(mem_malloc, mem_realloc, mem_free);
}

bool
mem_trim(void)
{
#if defined(MEM_ASAN)
    /* AddressSanitizer's allocator is not glibc's: these would walk (and
     * crash in) glibc's unused heap. */
    return false;
#else
    struct mallinfo2 mi = mallinfo2();

    if (mi.fordblks < MEM_TRIM_FREE) {
        return false;
    }
    return malloc_trim(0) != 0;
#endif
}
