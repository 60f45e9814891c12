/* Counts the libc heap calls of a bench program and of the nabla code
 * linked statically into it, through the linker's --wrap: a reference to
 * malloc in any linked object resolves to __wrap_malloc, which counts and
 * forwards to the real one (__real_malloc). Used to check that a steady-
 * state training step makes no heap call, including calls that do not go
 * through nb_set_allocator. Frees are forwarded without counting: a free
 * without an allocation cannot happen in a loop that allocates nothing. */
#include <stddef.h>
#include <stdint.h>

int64_t bench_libc_heap_calls;

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);

void *__wrap_malloc(size_t size)
{
    bench_libc_heap_calls++;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    bench_libc_heap_calls++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    bench_libc_heap_calls++;
    return __real_realloc(p, size);
}

int __wrap_posix_memalign(void **p, size_t align, size_t size)
{
    bench_libc_heap_calls++;
    return __real_posix_memalign(p, align, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    bench_libc_heap_calls++;
    return __real_aligned_alloc(align, size);
}
