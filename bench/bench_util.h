/* Shared helpers of the benchmark programs: a monotonic clock, medians,
 * resident-set readings, a counting allocator for nb_set_allocator and a
 * minimal JSON-lines writer.
 *
 * Every bench program prints its figures on stdout as JSON objects, one per
 * line, which bench/run collects; human-readable progress goes to stderr.
 * Header-only (static functions) so that each program stays one file.
 */
#ifndef NABLA_BENCH_UTIL_H
#define NABLA_BENCH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* User + system CPU seconds of the whole process: divided by wall time it
 * tells how many cores a phase kept busy. */
static inline double bench_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n)
{
    if (n <= 0)
        return 0.0;
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set of the process so far, in bytes (ru_maxrss is KiB on
 * Linux). */
static inline double bench_peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return 1024.0 * (double)ru.ru_maxrss;
}

/* Current resident set in bytes, from /proc/self/statm (0 if unreadable). */
static inline double bench_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0.0;
    long pages_total = 0, pages_resident = 0;
    int got = fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    fclose(f);
    if (got != 2)
        return 0.0;
    return (double)pages_resident * (double)sysconf(_SC_PAGESIZE);
}

/* ---- counting allocator ----
 * Installed with nb_set_allocator before any graph exists. Each block
 * carries its size in a header one alignment unit wide, so frees can be
 * subtracted from the live total; the header costs `align` bytes per block,
 * which the byte counts below leave out (they count what nabla asked for). */
typedef struct bench_alloc_stats {
    int64_t allocs, frees;
    int64_t live_bytes, peak_bytes;
} bench_alloc_stats;

static bench_alloc_stats bench_alloc_counts;

static inline void *bench_counting_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *base = NULL;
    if (posix_memalign(&base, align, size + align) != 0)
        return NULL;
    size_t *hdr = (size_t *)((char *)base + align - 2 * sizeof(size_t));
    hdr[0] = size;
    hdr[1] = align;
    bench_alloc_counts.allocs++;
    bench_alloc_counts.live_bytes += (int64_t)size;
    if (bench_alloc_counts.live_bytes > bench_alloc_counts.peak_bytes)
        bench_alloc_counts.peak_bytes = bench_alloc_counts.live_bytes;
    return (char *)base + align;
}

static inline void bench_counting_free(void *ptr, void *user)
{
    (void)user;
    if (!ptr)
        return;
    size_t *hdr = (size_t *)((char *)ptr - 2 * sizeof(size_t));
    size_t size = hdr[0], align = hdr[1];
    bench_alloc_counts.frees++;
    bench_alloc_counts.live_bytes -= (int64_t)size;
    free((char *)ptr - align);
}

/* ---- libc heap calls ----
 * Programs linked with -Wl,--wrap=malloc (and calloc, realloc, free,
 * posix_memalign, aligned_alloc; see bench/meson.build) route every such
 * call made by themselves and by the statically linked nabla through
 * counters, which catches heap use that bypasses nb_set_allocator. Calls
 * made inside shared libraries (libc itself, SLEEF, zlib) are not seen.
 * bench_libc_calls() is -1 when the wrap is not in place. */
#ifdef BENCH_WRAP_MALLOC
extern int64_t bench_libc_heap_calls;
static inline int64_t bench_libc_calls(void)
{
    return bench_libc_heap_calls;
}
#else
static inline int64_t bench_libc_calls(void)
{
    return -1;
}
#endif

/* ---- JSON lines ---- */
typedef struct bench_json {
    int fields;
} bench_json;

static inline void bench_json_begin(bench_json *j, const char *kind)
{
    j->fields = 1;
    printf("{\"kind\": \"%s\"", kind);
}

static inline void bench_json_num(bench_json *j, const char *key, double v)
{
    /* JSON has no NaN or infinity: such a figure is reported as null. */
    if (v != v || v > 1e308 || v < -1e308)
        printf(", \"%s\": null", key);
    else
        printf(", \"%s\": %.9g", key, v);
    j->fields++;
}

static inline void bench_json_str(bench_json *j, const char *key,
                                  const char *v)
{
    printf(", \"%s\": \"", key);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        if ((unsigned char)*p >= 0x20)
            putchar(*p);
    }
    putchar('"');
    j->fields++;
}

static inline void bench_json_end(bench_json *j)
{
    (void)j;
    printf("}\n");
    fflush(stdout);
}

/* Progress on stderr, so that stdout stays pure JSON lines. */
static inline void bench_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* ---- the machine's FMA peak ---- */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Twelve independent chains of 16-lane FMAs: enough in flight to cover
 * the FMA latency on every core these machines have had. */
__attribute__((target("avx512f,fma"))) static inline double fma_peak_avx512(long iters)
{
    __m512 acc[12];
    const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_set1_ps((float)i);
    double t0 = bench_now();
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    double t = bench_now() - t0;
    float sink = 0;
    for (int i = 0; i < 12; i++)
        sink += _mm512_reduce_add_ps(acc[i]);
    if (sink == 12345.0f)
        fprintf(stderr, " ");
    return 2.0 * 16 * 12 * (double)iters / t / 1e9;
}
#endif

/* The best of `reps` runs of about 1 ms of 16-lane f32 FMAs on one core,
 * in GFLOP/s (0 without AVX-512): the peak the GEMM figures are held
 * against. */
static inline double bench_fma_peak(int reps)
{
    double best = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
    /* Many short runs (about 1 ms each): on a shared machine the best of
     * them is one that kept the core to itself throughout. */
    for (int r = 0; r < reps; r++) {
        double g = fma_peak_avx512(500 * 1000);
        best = g > best ? g : best;
    }
#else
    (void)reps;
#endif
    return best;
}


#endif
