/* A SIMD GEMM micro-kernel (see gemm.h for the contract), written once and
 * included per instruction set and REAL. The tile is MR rows by two
 * vectors (NR = 2 W) of C, held in 2 MR accumulator registers; each step
 * of k loads one row of the B panel (two vectors) and broadcasts MR
 * elements of the A panel. The includer defines REAL, VEC, W, MR,
 * KDESC_TYPE, NAME(x), V_ZERO, V_LOAD (aligned), V_LOADU, V_STOREU, V_SET1,
 * V_MUL, V_FMA (a * b + c); they are undefined at the end. */

_Static_assert(MR * 2 * W <= NB_GEMM_MAX_TILE,
               "tile larger than the edge buffer");

static void NAME(micro_kernel)(int64_t kc, const REAL *restrict a,
                               const REAL *restrict b, REAL *restrict c,
                               int64_t ldc, REAL alpha, REAL beta)
{
    VEC acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
        acc0[i] = V_ZERO;
        acc1[i] = V_ZERO;
    }
    for (int64_t p = 0; p < kc; p++) {
        VEC b0 = V_LOAD(b), b1 = V_LOAD(b + W);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            VEC ai = V_SET1(a[i]);
            acc0[i] = V_FMA(ai, b0, acc0[i]);
            acc1[i] = V_FMA(ai, b1, acc1[i]);
        }
        a += MR;
        b += 2 * W;
    }
    VEC va = V_SET1(alpha);
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            V_STOREU(c + i * ldc, V_MUL(va, acc0[i]));
            V_STOREU(c + i * ldc + W, V_MUL(va, acc1[i]));
        }
    } else {
        VEC vb = V_SET1(beta);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            REAL *ci = c + i * ldc;
            V_STOREU(ci, V_FMA(vb, V_LOADU(ci), V_MUL(va, acc0[i])));
            V_STOREU(ci + W, V_FMA(vb, V_LOADU(ci + W), V_MUL(va, acc1[i])));
        }
    }
}

const KDESC_TYPE NAME(nb_gemm_kernel) = {MR, 2 * W, NAME(micro_kernel)};

#undef REAL
#undef VEC
#undef W
#undef MR
#undef KDESC_TYPE
#undef NAME
#undef V_ZERO
#undef V_LOAD
#undef V_LOADU
#undef V_STOREU
#undef V_SET1
#undef V_MUL
#undef V_FMA
