/* Aligned heap memory through a replaceable allocator, and the per-graph
 * bump arena that holds small construction-time data (names, attribute
 * blocks, input lists, tiny tensors) so a million-node graph does not make
 * millions of heap calls. */
/* madvise is Linux's (and the BSDs'), not POSIX's. */
#define _DEFAULT_SOURCE

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "core/internal.h"

/* Below this, prefaulting is not worth a system call. */
#define PREFAULT_MIN (64u * 1024u)

void nb_advise_huge(void *p, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Transparent huge pages in "madvise" mode, a common default, serve
     * only ranges advised so. */
    uintptr_t first = ((uintptr_t)p + NB_HUGE_PAGE - 1) & ~(NB_HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + bytes) & ~(NB_HUGE_PAGE - 1);
    if (p && end > first)
        (void)madvise((void *)first, end - first, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

void nb_prefault(void *p, size_t bytes)
{
#if defined(__linux__)
/* Linux 5.14; the value is the kernel's, for C libraries that predate it. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    if (!p || bytes < PREFAULT_MIN)
        return;
    const uintptr_t page = 4096;
    uintptr_t first = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + bytes) & ~(page - 1);
    /* Advice only: an older kernel refuses it (EINVAL) and the pages then
     * fault in one by one, as without it. */
    /* Huge pages first where the range holds whole ones: populating then
     * takes them 2 MiB at a time. */
    nb_advise_huge(p, bytes);
    if (end > first)
        (void)madvise((void *)first, end - first, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)bytes;
#endif
}

static void *default_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : align) != 0)
        return NULL;
    return p;
}

static void default_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static nb_allocator current = {default_alloc, default_free, NULL};

void nb_set_allocator(const nb_allocator *allocator)
{
    if (allocator && allocator->alloc && allocator->free)
        current = *allocator;
    else
        current = (nb_allocator){default_alloc, default_free, NULL};
}

void *nb_alloc(size_t size)
{
    /* A hook need not handle 0; every caller still gets a pointer to free. */
    return current.alloc(size ? size : 1, NB_ALIGN, current.user);
}

void *nb_alloc_aligned(size_t size, size_t align)
{
    /* A hook has only ever been asked for NB_ALIGN, and one written for
     * that (a size kept in front of the block, say) would break on more:
     * it gets NB_ALIGN still, and the caller whatever alignment results. */
    if (current.alloc != default_alloc)
        return nb_alloc(size);
    return default_alloc(size ? size : 1, align < NB_ALIGN ? NB_ALIGN : align,
                         NULL);
}

void *nb_alloc_zeroed(size_t size)
{
    void *p = nb_alloc(size);
    if (p) {
        nb_prefault(p, size);
        memset(p, 0, size);
    }
    return p;
}

void nb_free(void *ptr)
{
    if (ptr)
        current.free(ptr, current.user);
}

void *nb_realloc(void *ptr, size_t old_size, size_t new_size)
{
    void *p = nb_alloc(new_size);
    if (p && ptr) {
        nb_prefault(p, old_size < new_size ? old_size : new_size);
        memcpy(p, ptr, old_size < new_size ? old_size : new_size);
        nb_free(ptr);
    }
    return p;
}

struct nb_arena_chunk {
    nb_arena_chunk *next;
    size_t used, capacity;
    /* data follows, starting 64-byte aligned */
};

#define CHUNK_HEADER 64
#define CHUNK_DEFAULT (16u * 1024u)
#define CHUNK_MAX (1024u * 1024u)

void *nb_arena_alloc_aligned(nb_graph *g, size_t size, size_t align)
{
    if (size > ((size_t)1 << 40))
        return NULL; /* no caller asks this much; keeps the sums below exact */
    nb_arena_chunk *c = g->arena;
    if (c) {
        size_t start = (c->used + align - 1) & ~(align - 1);
        if (start + size <= c->capacity) {
            c->used = start + size;
            return (char *)c + CHUNK_HEADER + start;
        }
    }
    /* Chunks grow with the graph (up to CHUNK_MAX), so a big graph makes
     * few heap calls and a small one keeps a small footprint. */
    size_t capacity = CHUNK_DEFAULT;
    if (c && c->capacity * 2 <= CHUNK_MAX)
        capacity = c->capacity * 2;
    else if (c)
        capacity = c->capacity;
    if (size > capacity)
        capacity = size;
    nb_arena_chunk *fresh = nb_alloc(CHUNK_HEADER + capacity);
    if (!fresh)
        return NULL;
    /* A big chunk serves a big graph, whose construction fills it. */
    nb_prefault(fresh, CHUNK_HEADER + capacity);
    fresh->next = c;
    fresh->used = size;
    fresh->capacity = capacity;
    g->arena = fresh;
    return (char *)fresh + CHUNK_HEADER;
}

void *nb_arena_alloc(nb_graph *g, size_t size, bool align64)
{
    return nb_arena_alloc_aligned(g, size, align64 ? 64 : 16);
}

char *nb_arena_strdup(nb_graph *g, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = nb_arena_alloc(g, n, false);
    if (d)
        memcpy(d, s, n);
    return d;
}

void nb_arena_free_all(nb_graph *g)
{
    nb_arena_chunk *c = g->arena;
    while (c) {
        nb_arena_chunk *next = c->next;
        nb_free(c);
        c = next;
    }
    g->arena = NULL;
}
