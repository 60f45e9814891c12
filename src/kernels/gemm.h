/* Internals of the built-in GEMM (gemm.c): the kernel interface that the
 * per-instruction-set files (gemm_avx512.c, gemm_avx2.c) implement.
 *
 * A micro-kernel computes one MR x NR tile of C from packed panels:
 *   C = alpha * sum_p a[p*MR + i] * b[p*NR + j] + beta * C
 * for p < kc, where a holds MR rows and b NR columns of the operands, both
 * 64-byte aligned and zero-padded to full width. The direct, narrow and
 * transpose entries (below) work on unpacked operands. Wherever C is
 * written, beta == 0 stores without reading C, so whatever C held (NaN
 * included) is overwritten. */
#ifndef NABLA_KERNELS_GEMM_H
#define NABLA_KERNELS_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* Largest MR * NR of any micro-kernel: the size of the tile buffer the
 * driver uses for edge tiles. */
#define NB_GEMM_MAX_TILE 256

typedef struct {
    int mr, nr;
    void (*kernel)(int64_t kc, const float *a, const float *b, float *c,
                   int64_t ldc, float alpha, float beta);
    /* The unpacked path, or NULL: C = alpha op(A) op(B) + beta C with
     * op(A) read from A (transposed when trans_a) and op(B)[p, j] at
     * b[p ldb + j]. */
    void (*direct)(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb,
                   float beta, float *c, int64_t ldc);
    /* For few columns, or NULL: the same product built by columns of C,
     * with op(A)'s column p contiguous at a + p lda and op(B)[p, j] at
     * b[p ldb + j]. */
    void (*narrow)(int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb,
                   float beta, float *c, int64_t ldc);
    /* dst[j ldd + i] = src[i ld + j] (i < rows, j < cols), or NULL. */
    void (*transpose)(int64_t rows, int64_t cols, const float *src,
                      int64_t ld, float *dst, int64_t ldd);
} nb_gemm_kernel_f32;

typedef struct {
    int mr, nr;
    void (*kernel)(int64_t kc, const double *a, const double *b, double *c,
                   int64_t ldc, double alpha, double beta);
    void (*direct)(bool trans_a, int64_t m, int64_t n, int64_t k,
                   double alpha, const double *a, int64_t lda, const double *b,
                   int64_t ldb, double beta, double *c, int64_t ldc);
    void (*narrow)(int64_t m, int64_t n, int64_t k, double alpha,
                   const double *a, int64_t lda, const double *b, int64_t ldb,
                   double beta, double *c, int64_t ldc);
    void (*transpose)(int64_t rows, int64_t cols, const double *src,
                      int64_t ld, double *dst, int64_t ldd);
} nb_gemm_kernel_f64;

#if NB_X86_KERNELS
extern const nb_gemm_kernel_f32 nb_gemm_kernel_f32_avx512;
extern const nb_gemm_kernel_f64 nb_gemm_kernel_f64_avx512;
extern const nb_gemm_kernel_f32 nb_gemm_kernel_f32_avx2;
extern const nb_gemm_kernel_f64 nb_gemm_kernel_f64_avx2;
#endif

/* Multiply-adds (m n k) up to which plain loops beat any tiled path: on
 * products as small as the XOR net's 1x2x4 the narrow path's transposes
 * and masks cost more than the arithmetic. nb_gemm_f32/f64 (gemm_tiny.c)
 * run those loops themselves and hand every other product to the paths of
 * gemm.c. */
#define NB_GEMM_TINY 64
void nb_gemm_general_f32(bool trans_a, bool trans_b, int64_t m, int64_t n,
                         int64_t k, float alpha, const float *a, int64_t lda,
                         const float *b, int64_t ldb, float beta, float *c,
                         int64_t ldc, void *workspace);
void nb_gemm_general_f64(bool trans_a, bool trans_b, int64_t m, int64_t n,
                         int64_t k, double alpha, const double *a,
                         int64_t lda, const double *b, int64_t ldb,
                         double beta, double *c, int64_t ldc, void *workspace);

#endif
