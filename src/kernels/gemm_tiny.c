/* The GEMM's entry point, nb_gemm_f32/f64, and the products it computes
 * itself: those of at most NB_GEMM_TINY multiply-adds (a neuron, the 2-4-1
 * XOR net), with plain loops, since the tiled paths' set-up, transposes
 * and masks cost more than the arithmetic. Every other product goes to
 * the paths of gemm.c (nb_gemm_general_*).
 *
 * Each element of C is one multiply-add chain over k in order, starting
 * from 0, then alpha, then beta C, the order every other path keeps; alpha
 * 1 skips a multiplication by 1 and beta 0 the term beta C, which changes
 * no bit. The chain is the innermost loop. This file is compiled without
 * auto-vectorisation (src/kernels/meson.build): at these sizes vector
 * loops' set-up, stride checks and remainders cost several times the
 * arithmetic, while the scalar loops take a few instructions per
 * multiply-add. `plain` (alpha 1, beta 0: a forward product, a fresh
 * gradient) is a constant in each inlined copy of the loops, so they test
 * nothing per element. Entering here first spares a tiny product a second
 * call and frame. */
#include "kernels/gemm.h"
#include "kernels/kernels.h"

#define TINY_STORE(cij, sum)                                                   \
    ((cij) = plain       ? (sum)                                               \
             : beta == 0 ? alpha * (sum)                                       \
                         : alpha * (sum) + beta * (cij))

#define DEFINE_GEMM(REAL, SFX)                                                 \
    static inline __attribute__((always_inline)) void tiny_loops_##SFX(        \
        bool plain, int64_t sa_i, int64_t sa_p, int64_t sb_p, int64_t sb_j,    \
        int64_t m, int64_t n, int64_t k, REAL alpha, const REAL *a,            \
        const REAL *b, REAL beta, REAL *c, int64_t ldc)                        \
    {                                                                          \
        if (k == 1) { /* an outer product: each chain is one term */           \
            for (int64_t i = 0; i < m; i++, a += sa_i, c += ldc) {             \
                const REAL ai = *a, *bj = b;                                   \
                for (int64_t j = 0; j < n; j++, bj += sb_j)                    \
                    TINY_STORE(c[j], (REAL)0 + ai * *bj);                      \
            }                                                                  \
            return;                                                            \
        }                                                                      \
        for (int64_t i = 0; i < m; i++, a += sa_i, c += ldc) {                 \
            const REAL *bj = b;                                                \
            for (int64_t j = 0; j < n; j++, bj += sb_j) {                      \
                const REAL *ap = a, *bp = bj;                                  \
                REAL sum = (REAL)0 + *ap * *bp;                                \
                for (int64_t p = 1; p < k; p++) {                              \
                    ap += sa_p;                                                \
                    bp += sb_p;                                                \
                    sum += *ap * *bp;                                          \
                }                                                              \
                TINY_STORE(c[j], sum);                                         \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    void nb_gemm_##SFX(bool trans_a, bool trans_b, int64_t m, int64_t n,       \
                       int64_t k, REAL alpha, const REAL *a, int64_t lda,      \
                       const REAL *b, int64_t ldb, REAL beta, REAL *c,         \
                       int64_t ldc, void *workspace)                           \
    {                                                                          \
        if (!(m > 0 && n > 0 && k > 0 && m <= NB_GEMM_TINY &&                  \
              n <= NB_GEMM_TINY && k <= NB_GEMM_TINY &&                        \
              m * n * k <= NB_GEMM_TINY && alpha != 0)) {                      \
            nb_gemm_general_##SFX(trans_a, trans_b, m, n, k, alpha, a, lda, b, \
                                  ldb, beta, c, ldc, workspace);               \
            return;                                                            \
        }                                                                      \
        const int64_t sa_i = trans_a ? 1 : lda, sa_p = trans_a ? lda : 1;      \
        const int64_t sb_p = trans_b ? 1 : ldb, sb_j = trans_b ? ldb : 1;      \
        if (alpha == 1 && beta == 0)                                           \
            tiny_loops_##SFX(true, sa_i, sa_p, sb_p, sb_j, m, n, k, alpha, a,  \
                             b, beta, c, ldc);                                 \
        else                                                                   \
            tiny_loops_##SFX(false, sa_i, sa_p, sb_p, sb_j, m, n, k, alpha, a, \
                             b, beta, c, ldc);                                 \
    }

DEFINE_GEMM(float, f32)
DEFINE_GEMM(double, f64)
