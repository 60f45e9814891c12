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
#endif

#endif
