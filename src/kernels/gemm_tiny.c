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
 * gradient) and the transpose pair are constants in each inlined copy of
 * the loops, so they test nothing per element and unit strides are known.
 * Entering here first spares a tiny product a second call and frame; the
 * entry's tests are integer ones (one for the three sizes, the bits of
 * alpha and beta), as the product is a few dozen instructions. */
#include "kernels/gemm.h"
#include "kernels/kernels.h"

#include <stdint.h>
#include <string.h>

_Static_assert((NB_GEMM_TINY & (NB_GEMM_TINY - 1)) == 0,
               "the size test of nb_gemm needs a power of two");

#define TINY_STORE(cij, sum)                                                   \
    ((cij) = plain       ? (sum)                                               \
             : beta == 0 ? alpha * (sum)                                       \
                         : alpha * (sum) + beta * (cij))

/* alpha == 1 && beta == 0, tested on the bits (1 has one encoding, 0 two):
 * the same answer without the floating-point compares' unordered cases. */
static inline bool plain_f32(float alpha, float beta)
{
    uint32_t a, b;
    memcpy(&a, &alpha, sizeof a);
    memcpy(&b, &beta, sizeof b);
    return a == UINT32_C(0x3f800000) && (b << 1) == 0;
}

static inline bool plain_f64(double alpha, double beta)
{
    uint64_t a, b;
    memcpy(&a, &alpha, sizeof a);
    memcpy(&b, &beta, sizeof b);
    return a == UINT64_C(0x3ff0000000000000) && (b << 1) == 0;
}

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
    /* One copy of the loops per transpose pair, so that a unit stride is a \
     * constant there. */                                                  \
    static inline __attribute__((always_inline)) void tiny_trans_##SFX(       \
        bool plain, bool trans_a, bool trans_b, int64_t m, int64_t n,          \
        int64_t k, REAL alpha, const REAL *a, int64_t lda, const REAL *b,      \
        int64_t ldb, REAL beta, REAL *c, int64_t ldc)                          \
    {                                                                          \
        if (trans_a) {                                                         \
            if (trans_b)                                                       \
                tiny_loops_##SFX(plain, 1, lda, 1, ldb, m, n, k, alpha, a, b,  \
                                 beta, c, ldc);                                \
            else                                                               \
                tiny_loops_##SFX(plain, 1, lda, ldb, 1, m, n, k, alpha, a, b,  \
                                 beta, c, ldc);                                \
        } else {                                                               \
            if (trans_b)                                                       \
                tiny_loops_##SFX(plain, lda, 1, 1, ldb, m, n, k, alpha, a, b,  \
                                 beta, c, ldc);                                \
            else                                                               \
                tiny_loops_##SFX(plain, lda, 1, ldb, 1, m, n, k, alpha, a, b,  \
                                 beta, c, ldc);                                \
        }                                                                      \
    }                                                                          \
    void nb_gemm_##SFX(bool trans_a, bool trans_b, int64_t m, int64_t n,       \
                       int64_t k, REAL alpha, const REAL *a, int64_t lda,      \
                       const REAL *b, int64_t ldb, REAL beta, REAL *c,         \
                       int64_t ldc, void *workspace)                           \
    {                                                                          \
        /* m, n and k in [1, NB_GEMM_TINY], a power of two: one test. */      \
        if (((uint64_t)(m - 1) | (uint64_t)(n - 1) | (uint64_t)(k - 1)) <      \
                NB_GEMM_TINY &&                                                \
            m * n * k <= NB_GEMM_TINY) {                                       \
            if (plain_##SFX(alpha, beta)) {                                    \
                tiny_trans_##SFX(true, trans_a, trans_b, m, n, k, alpha, a,    \
                                 lda, b, ldb, beta, c, ldc);                   \
                return;                                                        \
            }                                                                  \
            if (alpha != 0) {                                                  \
                tiny_trans_##SFX(false, trans_a, trans_b, m, n, k, alpha, a,   \
                                 lda, b, ldb, beta, c, ldc);                   \
                return;                                                        \
            }                                                                  \
        }                                                                      \
        nb_gemm_general_##SFX(trans_a, trans_b, m, n, k, alpha, a, lda, b,     \
                              ldb, beta, c, ldc, workspace);                   \
    }

DEFINE_GEMM(float, f32)
DEFINE_GEMM(double, f64)
