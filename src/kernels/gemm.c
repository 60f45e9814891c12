/* The built-in GEMM: C = alpha op(A) op(B) + beta C, row-major, blocked
 * and packed (gemm_impl.h), with the micro-kernel chosen by instruction
 * set: AVX-512 or AVX2 (gemm_avx512.c, gemm_avx2.c) where the CPU has
 * them, else a portable one.
 *
 * Packing goes into a workspace the caller lends (the graph keeps one), so
 * a GEMM in a training step allocates nothing. Its size bounds the blocks:
 * kc = 256 deep, an A block of up to 192 KiB (fits L2 next to the B
 * panel's working slivers) and a B panel of up to 1 MiB.
 *
 * Threads (OpenMP builds): a product of enough work is cut into p strips
 * of whole micro-tiles, across the columns of C (when n >= m) or its rows,
 * and each thread runs the one-thread algorithm on its strip with its own
 * slice of the workspace. k is never split, and strips start on the tile
 * grid of the whole product, so every element of C sees the same k blocks,
 * the same micro-kernel and the same edge handling whatever p is: results
 * are bitwise identical for any thread count. The operand all strips
 * need (A when splitting columns, B when splitting rows) is packed by every
 * thread; splitting the larger of m and n keeps that repeated packing the
 * smaller. The p slices share the one-thread budget (each block cap divided by
 * p), so the workspace stays about 1.2 MiB at most however many threads.
 */
#include <stdbool.h>
#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

#define GEMM_KC 256
#define GEMM_A_BYTES (192 * 1024)
#define GEMM_B_BYTES (1024 * 1024)
/* Every micro-kernel's MR divides the first (lcm of 4, 6, 8) and every NR
 * the second (lcm of 4, 8, 16, 32), so rounding a dimension up to it
 * bounds the packed block whatever kernel the CPU gets. */
#define GEMM_MR_UNIT 24
#define GEMM_NR_UNIT 32
/* Multiply-adds (m n k) per thread below which a thread is not started:
 * a parallel region costs about 2 us here. Measured (one thread -> two,
 * AVX-512, f32): 64x64x64 (256 Ki) 7.5 -> 5.8 us, 64x128x64 and 128x64x64
 * (512 Ki) 11-12 -> 7.6-8.0 us, 64x128x128 23 -> 14 us; the MLP's
 * 64x10x128 (80 Ki) would only lose. The cut sits where two threads save
 * a third of the time, since a busy machine makes a region cost more. */
#define GEMM_MIN_WORK (512 * 1024)
/* ... and each thread gets a strip at least this wide (a whole AVX-512
 * tile of columns, four of rows). */
#define GEMM_MIN_STRIP 32

static int64_t round_up(int64_t x, int64_t unit)
{
    return (x + unit - 1) / unit * unit;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Elements of the packed A block and B panel for an m x n x k product
 * whose blocks may take a_bytes and b_bytes. */
static void pack_sizes(size_t elem, int64_t m, int64_t n, int64_t k,
                       int64_t a_bytes, int64_t b_bytes, int64_t *a_elems,
                       int64_t *b_elems)
{
    int64_t kc = min64(k, GEMM_KC);
    int64_t mc_cap = a_bytes / (int64_t)elem / GEMM_KC;
    int64_t nc_cap = b_bytes / (int64_t)elem / GEMM_KC;
    *a_elems = round_up(min64(round_up(m, GEMM_MR_UNIT), mc_cap) * kc, 16);
    *b_elems = min64(round_up(n, GEMM_NR_UNIT), nc_cap) * kc;
}

/* How a product is run: on `threads` threads, each taking a strip of
 * columns (split_n) or of rows of C. */
typedef struct {
    int threads;
    bool split_n;
} gemm_plan;

static gemm_plan plan_for(int64_t m, int64_t n, int64_t k, int available)
{
    gemm_plan plan = {1, n >= m};
    int64_t strip = plan.split_n ? n : m;
    /* in double: m n k may pass 2^63 */
    double by_work = (double)m * (double)n * (double)k / GEMM_MIN_WORK;
    int64_t most = min64(strip / GEMM_MIN_STRIP, available);
    if (by_work < (double)most)
        most = (int64_t)by_work;
    plan.threads = most > 1 ? (int)most : 1;
    return plan;
}

/* Bytes of one thread's slice of the workspace when `threads` threads
 * split the product: its strip is at most ceil(d / p) plus two tiles of
 * the widest kernel (the strips are whole tiles), and its block caps are
 * the one-thread caps over p. A multiple of 64, so every slice stays
 * aligned. */
static size_t slice_bytes(size_t elem, int64_t m, int64_t n, int64_t k,
                          gemm_plan plan)
{
    int64_t p = plan.threads;
    int64_t strip = plan.split_n ? n : m;
    strip = min64(strip, (strip + p - 1) / p + 2 * GEMM_NR_UNIT);
    int64_t a_elems, b_elems;
    pack_sizes(elem, plan.split_n ? m : strip, plan.split_n ? strip : n, k,
               GEMM_A_BYTES / p, GEMM_B_BYTES / p, &a_elems, &b_elems);
    return (size_t)round_up((a_elems + b_elems) * (int64_t)elem, 64);
}

/* Room for the one-thread run and for every plan a call may choose: a call
 * uses at most nb_kernel_threads_max() threads, fixed for the process. */
static size_t workspace_bytes(size_t elem, int64_t m, int64_t n, int64_t k)
{
    if (m <= 0 || n <= 0 || k <= 0)
        return 0;
    int64_t a_elems, b_elems;
    pack_sizes(elem, m, n, k, GEMM_A_BYTES, GEMM_B_BYTES, &a_elems, &b_elems);
    size_t bytes = (size_t)(a_elems + b_elems) * elem;
    gemm_plan most = plan_for(m, n, k, nb_kernel_threads_max());
    for (int p = 2; p <= most.threads; p++) {
        gemm_plan plan = {p, most.split_n};
        size_t all = (size_t)p * slice_bytes(elem, m, n, k, plan);
        bytes = all > bytes ? all : bytes;
    }
    return bytes;
}

size_t nb_gemm_workspace_f32(int64_t m, int64_t n, int64_t k)
{
    return workspace_bytes(sizeof(float), m, n, k);
}

size_t nb_gemm_workspace_f64(int64_t m, int64_t n, int64_t k)
{
    return workspace_bytes(sizeof(double), m, n, k);
}

#if NB_X86_KERNELS
#define SIMD_KERNEL(type, isa)                                                 \
    ((isa) == NB_ISA_AVX512 ? &nb_gemm_kernel_##type##_avx512                  \
     : (isa) == NB_ISA_AVX2 ? &nb_gemm_kernel_##type##_avx2                    \
                            : NULL)
#else
#define SIMD_KERNEL(type, isa) ((void)(isa), NULL)
#endif

#define REAL float
#define GEMM nb_gemm_f32
#define NAME(x) x##_f32
#define KDESC_TYPE nb_gemm_kernel_f32
#define GEN_MR 4
#define GEN_NR 8
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f32, isa)
#include "kernels/gemm_impl.h"

#define REAL double
#define GEMM nb_gemm_f64
#define NAME(x) x##_f64
#define KDESC_TYPE nb_gemm_kernel_f64
#define GEN_MR 4
#define GEN_NR 4
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f64, isa)
#include "kernels/gemm_impl.h"
