/* Internals of the built-in GEMM (gemm.c): the micro-kernel interface that
 * the per-instruction-set files (gemm_avx512.c, gemm_avx2.c) implement.
 *
 * A micro-kernel computes one MR x NR tile of C from packed panels:
 *   C = alpha * sum_p a[p*MR + i] * b[p*NR + j] + beta * C
 * for p < kc, where a holds MR rows and b NR columns of the operands, both
 * 64-byte aligned and zero-padded to full width. beta == 0 stores without
 * reading C, so whatever C held (NaN included) is overwritten. */
#ifndef NABLA_KERNELS_GEMM_H
#define NABLA_KERNELS_GEMM_H

#include <stdint.h>

/* Largest MR * NR of any micro-kernel: the size of the tile buffer the
 * driver uses for edge tiles. */
#define NB_GEMM_MAX_TILE 256

typedef struct {
    int mr, nr;
    void (*kernel)(int64_t kc, const float *a, const float *b, float *c,
                   int64_t ldc, float alpha, float beta);
} nb_gemm_kernel_f32;

typedef struct {
    int mr, nr;
    void (*kernel)(int64_t kc, const double *a, const double *b, double *c,
                   int64_t ldc, double alpha, double beta);
} nb_gemm_kernel_f64;

#if NB_X86_KERNELS
extern const nb_gemm_kernel_f32 nb_gemm_kernel_f32_avx512;
extern const nb_gemm_kernel_f64 nb_gemm_kernel_f64_avx512;
extern const nb_gemm_kernel_f32 nb_gemm_kernel_f32_avx2;
extern const nb_gemm_kernel_f64 nb_gemm_kernel_f64_avx2;
/* Threads a kernel called now may use: 1 inside an active OpenMP parallel
 * region, in a build without OpenMP or while backing off after a late team
 * (below), else omp_get_max_threads() capped at nb_kernel_threads_max().
 * Defined in dispatch.c. */
int nb_kernel_threads(void);
/* The most threads any kernel call will use in this process: the
 * processors OpenMP sees, capped at NB_KERNEL_MAX_THREADS. Fixed at first
 * use, so a workspace sized with it stays large enough whatever
 * OMP_NUM_THREADS or omp_set_num_threads says later. */
int nb_kernel_threads_max(void);
/* Reports a parallel region's times (omp_get_wtime seconds): its start,
 * when the calling (master) thread finished its own share, and its end.
 * When the master waited for the others much longer than its own share
 * took, some team thread was not running (a machine busier than its
 * cores), and the kernels stay on one thread for a while
 * (nb_kernel_threads returns 1): such a region costs a scheduler time
 * slice, milliseconds, for microseconds of work. */
void nb_kernel_team_times(double start, double own_done, double end);
#define NB_KERNEL_MAX_THREADS 8

#endif

/* Threads a kernel called now may use: 1 inside an active OpenMP parallel
 * region, in a build without OpenMP or while backing off after a late team
 * (below), else omp_get_max_threads() capped at nb_kernel_threads_max().
 * Defined in dispatch.c. */
int nb_kernel_threads(void);
/* The most threads any kernel call will use in this process: the
 * processors OpenMP sees, capped at NB_KERNEL_MAX_THREADS. Fixed at first
 * use, so a workspace sized with it stays large enough whatever
 * OMP_NUM_THREADS or omp_set_num_threads says later. */
int nb_kernel_threads_max(void);
/* Reports a parallel region's times (omp_get_wtime seconds): its start,
 * when the calling (master) thread finished its own share, and its end.
 * When the master waited for the others much longer than its own share
 * took, some team thread was not running (a machine busier than its
 * cores), and the kernels stay on one thread for a while
 * (nb_kernel_threads returns 1): such a region costs a scheduler time
 * slice, milliseconds, for microseconds of work. */
void nb_kernel_team_times(double start, double own_done, double end);
#define NB_KERNEL_MAX_THREADS 8

#endif
