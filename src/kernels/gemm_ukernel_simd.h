/* The SIMD GEMM kernels (see gemm.h for the contracts), written once and
 * included per instruction set and REAL:
 * - the packed micro-kernel: a tile of MR rows by two vectors (NR = 2 W)
 *   of C, held in 2 MR accumulator registers; each step of k loads one row
 *   of the B panel (two vectors) and broadcasts MR elements of the A panel;
 * - the direct kernels (unpacked operands, masked edges) and the narrow
 *   kernel (C by columns), described below;
 * - a W x W blocked transpose, where the includer gives an in-register
 *   TRANSPOSE_BLOCK.
 * The includer defines REAL, VEC, W, MR, DMR2 and DMR1 (direct tile heights
 * for two vectors and one), DMR_MAX, NCT (the narrow kernel's most columns
 * per pass), KDESC_TYPE, NAME(x), V_ZERO, V_LOAD (aligned), V_LOADU,
 * V_STOREU, V_SET1, V_MUL, V_FMA (a * b + c), S_FMA (scalar fused
 * multiply-add), MASK_T, V_MASK(n) (the first n lanes, 0 <= n <= W),
 * V_LOADM (masked lanes read as 0, never touched), V_STOREM, and
 * optionally TRANSPOSE_BLOCK(x); they are undefined at the end. */

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

/* ---- Direct kernels: op(A) and op(B) read where they lie ----
 *
 * For small products (see gemm_impl.h for when) packing costs more than it
 * saves, so these tiles read op(B) row by row straight from B (row p of a
 * column tile at b + p ldb: B itself, or B^T packed into rows when trans_b)
 * and broadcast op(A)'s elements straight from A (element (i, p) at
 * a[i lda + p], or a[p lda + i] when ta). Each tile keeps the whole k sum
 * in registers (no k blocks), and the last columns of a product are
 * covered by masked loads and stores rather than padding, so a product of
 * 10 columns runs one vector of which 10 lanes are live, not 32.
 *
 * Every element of C is computed the same way whatever tile holds it:
 * acc = sum over p = 0..k-1 in order of fused multiply-adds, then
 * alpha acc, or beta C + alpha acc as one fused multiply-add. A tile's
 * position, width or height never changes a result's bits, so strips of
 * any thread count give identical results. */

/* R rows (a compile-time constant once inlined) by NV vectors of C. The
 * second vector (or the only one when NV is 1) is masked when `masked`. */
static inline __attribute__((always_inline)) void
NAME(direct_tile)(const int R, const int NV, const bool masked, const bool ta,
                  int64_t k, const REAL *restrict a, int64_t lda,
                  const REAL *restrict b, int64_t ldb, REAL *restrict c,
                  int64_t ldc, MASK_T mask, REAL alpha, REAL beta)
{
    VEC acc0[DMR_MAX], acc1[DMR_MAX];
#pragma GCC unroll 16
    for (int i = 0; i < R; i++) {
        acc0[i] = V_ZERO;
        acc1[i] = V_ZERO;
    }
    const int64_t a_step = ta ? lda : 1;
    for (int64_t p = 0; p < k; p++) {
        VEC b0, b1 = V_ZERO;
        if (NV == 1) {
            b0 = V_LOADM(b, mask);
        } else {
            b0 = V_LOADU(b);
            b1 = masked ? V_LOADM(b + W, mask) : V_LOADU(b + W);
        }
#pragma GCC unroll 16
        for (int i = 0; i < R; i++) {
            VEC ai = V_SET1(ta ? a[i] : a[i * lda]);
            acc0[i] = V_FMA(ai, b0, acc0[i]);
            if (NV == 2)
                acc1[i] = V_FMA(ai, b1, acc1[i]);
        }
        a += a_step;
        b += ldb;
    }
    VEC va = V_SET1(alpha), vb = V_SET1(beta);
    const bool m0 = NV == 1 && masked, m1 = NV == 2 && masked;
    if (beta == 0) {
#pragma GCC unroll 16
        for (int i = 0; i < R; i++) {
            REAL *ci = c + i * ldc;
            if (m0)
                V_STOREM(ci, mask, V_MUL(va, acc0[i]));
            else
                V_STOREU(ci, V_MUL(va, acc0[i]));
            if (m1)
                V_STOREM(ci + W, mask, V_MUL(va, acc1[i]));
            else if (NV == 2)
                V_STOREU(ci + W, V_MUL(va, acc1[i]));
        }
    } else {
#pragma GCC unroll 16
        for (int i = 0; i < R; i++) {
            REAL *ci = c + i * ldc;
            if (m0)
                V_STOREM(ci, mask,
                         V_FMA(vb, V_LOADM(ci, mask), V_MUL(va, acc0[i])));
            else
                V_STOREU(ci, V_FMA(vb, V_LOADU(ci), V_MUL(va, acc0[i])));
            if (m1)
                V_STOREM(ci + W, mask,
                         V_FMA(vb, V_LOADM(ci + W, mask), V_MUL(va, acc1[i])));
            else if (NV == 2)
                V_STOREU(ci + W,
                         V_FMA(vb, V_LOADU(ci + W), V_MUL(va, acc1[i])));
        }
    }
}

/* All m rows of one column tile: tiles of MRX rows, then the remainder in
 * tiles of 8, 4, 2 and 1 rows (its binary digits), so every tile is one
 * of a few unrolled shapes. */
#define DIRECT_REST(R)                                                         \
    if ((R) < MRX && (rest & (R))) {                                           \
        NAME(direct_tile)((R), NV, masked, ta, k, ta ? a + i : a + i * lda,    \
                          lda, b, ldb, c + i * ldc, ldc, mask, alpha, beta);   \
        i += (R);                                                              \
    }

static inline __attribute__((always_inline)) void
NAME(direct_sweep)(const int NV, const bool masked, const bool ta, int64_t m,
                   int64_t k, const REAL *a, int64_t lda, const REAL *b,
                   int64_t ldb, REAL *c, int64_t ldc, MASK_T mask, REAL alpha,
                   REAL beta)
{
    const int MRX = NV == 2 ? DMR2 : DMR1;
    int64_t i = 0;
    for (; i + MRX <= m; i += MRX)
        NAME(direct_tile)(MRX, NV, masked, ta, k, ta ? a + i : a + i * lda,
                          lda, b, ldb, c + i * ldc, ldc, mask, alpha, beta);
    int64_t rest = m - i;
    DIRECT_REST(8)
    DIRECT_REST(4)
    DIRECT_REST(2)
    DIRECT_REST(1)
}
#undef DIRECT_REST

/* One out-of-line sweep per (tile width, trans_a). */
#define DIRECT_SWEEP_FN(suffix, NV, masked, ta)                                \
    static void NAME(direct_sweep_##suffix)(                                   \
        int64_t m, int64_t k, const REAL *a, int64_t lda, const REAL *b,       \
        int64_t ldb, REAL *c, int64_t ldc, MASK_T mask, REAL alpha,            \
        REAL beta)                                                             \
    {                                                                          \
        NAME(direct_sweep)(NV, masked, ta, m, k, a, lda, b, ldb, c, ldc, mask, \
                           alpha, beta);                                       \
    }
DIRECT_SWEEP_FN(full_n, 2, false, false)
DIRECT_SWEEP_FN(edge2_n, 2, true, false)
DIRECT_SWEEP_FN(edge1_n, 1, true, false)
DIRECT_SWEEP_FN(full_t, 2, false, true)
DIRECT_SWEEP_FN(edge2_t, 2, true, true)
DIRECT_SWEEP_FN(edge1_t, 1, true, true)
#undef DIRECT_SWEEP_FN

/* C = alpha op(A) op(B) + beta C, op(B)[p, j] at b[p ldb + j], the
 * columns of C in tiles of 2 W, each swept down all m rows (its sliver of
 * op(B) stays in cache; A is swept once per column tile). */
static void NAME(direct)(bool ta, int64_t m, int64_t n, int64_t k, REAL alpha,
                         const REAL *a, int64_t lda, const REAL *b,
                         int64_t ldb, REAL beta, REAL *c, int64_t ldc)
{
    for (int64_t j = 0; j < n; j += 2 * W) {
        int64_t cols = n - j;
        const REAL *bj = b + j;
        REAL *cj = c + j;
        if (cols >= 2 * W) {
            MASK_T all = V_MASK(W);
            if (ta)
                NAME(direct_sweep_full_t)
                (m, k, a, lda, bj, ldb, cj, ldc, all, alpha, beta);
            else
                NAME(direct_sweep_full_n)
                (m, k, a, lda, bj, ldb, cj, ldc, all, alpha, beta);
        } else if (cols > W) {
            MASK_T mask = V_MASK((int)cols - W);
            if (ta)
                NAME(direct_sweep_edge2_t)
                (m, k, a, lda, bj, ldb, cj, ldc, mask, alpha, beta);
            else
                NAME(direct_sweep_edge2_n)
                (m, k, a, lda, bj, ldb, cj, ldc, mask, alpha, beta);
        } else {
            MASK_T mask = V_MASK((int)cols);
            if (ta)
                NAME(direct_sweep_edge1_t)
                (m, k, a, lda, bj, ldb, cj, ldc, mask, alpha, beta);
            else
                NAME(direct_sweep_edge1_n)
                (m, k, a, lda, bj, ldb, cj, ldc, mask, alpha, beta);
        }
    }
}

/* ---- Narrow products: C built by columns ----
 *
 * When C has few columns (n of 10: a classifier's output layer), a row of
 * C fills a fraction of a vector, so the tiles above waste most lanes.
 * These tiles turn the product around: a vector holds 2 W rows of one
 * column of C, op(A)'s column p is loaded as vectors (it must be
 * contiguous: A^T as stored, or A transposed into the workspace) and
 * op(B)'s elements are broadcast, op(B)[p, j] at b[p ldb + j]. Columns go
 * in groups of at most NCT; the last rows of C are masked. The k sum and
 * the update of C are the same per element as in the tiles above. */
static inline __attribute__((always_inline)) void
NAME(col_tile)(const int NC, const bool masked, int64_t k,
               const REAL *restrict a, int64_t lda, const REAL *restrict b,
               int64_t ldb, REAL *restrict c, int64_t ldc, int rows,
               MASK_T mask0, MASK_T mask1, REAL alpha, REAL beta)
{
    VEC acc0[NCT], acc1[NCT];
#pragma GCC unroll 16
    for (int j = 0; j < NC; j++) {
        acc0[j] = V_ZERO;
        acc1[j] = V_ZERO;
    }
    for (int64_t p = 0; p < k; p++) {
        VEC a0 = masked ? V_LOADM(a, mask0) : V_LOADU(a);
        VEC a1 = masked ? V_LOADM(a + W, mask1) : V_LOADU(a + W);
#pragma GCC unroll 16
        for (int j = 0; j < NC; j++) {
            VEC bj = V_SET1(b[j]);
            acc0[j] = V_FMA(a0, bj, acc0[j]);
            acc1[j] = V_FMA(a1, bj, acc1[j]);
        }
        a += lda;
        b += ldb;
    }
    /* alpha acc by columns, then C updated by rows (scalar: measured
     * faster than transposing in registers and masked row stores, which
     * made the 128 x 10 x 64 beta 1 product 25% slower; rows of 10
     * overlap in cache lines) */
    _Alignas(64) REAL t[NCT][2 * W];
    VEC va = V_SET1(alpha);
#pragma GCC unroll 16
    for (int j = 0; j < NC; j++) {
        V_STOREU(t[j], V_MUL(va, acc0[j]));
        V_STOREU(t[j] + W, V_MUL(va, acc1[j]));
    }
    if (beta == 0) {
        for (int r = 0; r < rows; r++)
#pragma GCC unroll 16
            for (int j = 0; j < NC; j++)
                c[r * ldc + j] = t[j][r];
    } else {
        for (int r = 0; r < rows; r++)
#pragma GCC unroll 16
            for (int j = 0; j < NC; j++)
                c[r * ldc + j] = S_FMA(beta, c[r * ldc + j], t[j][r]);
    }
}

#define COL_CASE(NC)                                                           \
    case NC:                                                                   \
        if (rows == 2 * W)                                                     \
            NAME(col_tile)(NC, false, k, at, lda, bt, ldb, ct, ldc, rows, m0,  \
                           m1, alpha, beta);                                   \
        else                                                                   \
            NAME(col_tile)(NC, true, k, at, lda, bt, ldb, ct, ldc, rows, m0,   \
                           m1, alpha, beta);                                   \
        break;

/* C = alpha op(A) op(B) + beta C with op(A) column p at a + p lda (rows
 * contiguous) and op(B)[p, j] at b[p ldb + j]; any n, though only a
 * narrow C pays. */
static void NAME(narrow)(int64_t m, int64_t n, int64_t k, REAL alpha,
                         const REAL *a, int64_t lda, const REAL *b,
                         int64_t ldb, REAL beta, REAL *c, int64_t ldc)
{
    /* column groups of equal width, at most NCT */
    int64_t groups = (n + NCT - 1) / NCT;
    for (int64_t g = 0, j0 = 0; g < groups; g++) {
        int64_t j1 = n * (g + 1) / groups;
        int nc = (int)(j1 - j0);
        for (int64_t i = 0; i < m; i += 2 * W) {
            int rows = m - i < 2 * W ? (int)(m - i) : 2 * W;
            MASK_T m0 = V_MASK(rows < W ? rows : W);
            MASK_T m1 = V_MASK(rows > W ? rows - W : 0);
            const REAL *at = a + i, *bt = b + j0;
            REAL *ct = c + i * ldc + j0;
            switch (nc) {
                COL_CASE(1)
                COL_CASE(2)
                COL_CASE(3)
                COL_CASE(4)
                COL_CASE(5)
                COL_CASE(6)
#if NCT > 6
                COL_CASE(7)
                COL_CASE(8)
                COL_CASE(9)
                COL_CASE(10)
                COL_CASE(11)
                COL_CASE(12)
#endif
            default:
                break;
            }
        }
        j0 = j1;
    }
}
#undef COL_CASE

#ifdef TRANSPOSE_BLOCK
/* dst[j ldd + i] = src[i ld + j] for i < rows, j < cols, in W x W blocks
 * transposed in registers by TRANSPOSE_BLOCK (the includer's). Partial
 * blocks load masked (zero beyond) and store masked. */
static void NAME(transpose)(int64_t rows, int64_t cols, const REAL *src,
                            int64_t ld, REAL *dst, int64_t ldd)
{
    for (int64_t i0 = 0; i0 < rows; i0 += W) {
        int nr = rows - i0 < W ? (int)(rows - i0) : W;
        MASK_T rmask = V_MASK(nr);
        for (int64_t j0 = 0; j0 < cols; j0 += W) {
            int nc = cols - j0 < W ? (int)(cols - j0) : W;
            MASK_T cmask = V_MASK(nc);
            VEC x[W];
#pragma GCC unroll 16
            for (int r = 0; r < W; r++) {
                x[r] = V_ZERO;
                if (r < nr) {
                    const REAL *row = src + (i0 + r) * ld + j0;
                    x[r] = nc == W ? V_LOADU(row) : V_LOADM(row, cmask);
                }
            }
            TRANSPOSE_BLOCK(x);
#pragma GCC unroll 16
            for (int j = 0; j < W; j++) {
                REAL *out = dst + (j0 + j) * ldd + i0;
                if (j >= nc)
                    break;
                if (nr == W)
                    V_STOREU(out, x[j]);
                else
                    V_STOREM(out, rmask, x[j]);
            }
        }
    }
}
#define TRANSPOSE_FN NAME(transpose)
#else
#define TRANSPOSE_FN NULL
#endif

const KDESC_TYPE NAME(nb_gemm_kernel) = {MR, 2 * W, NAME(micro_kernel),
                                         NAME(direct), NAME(narrow),
                                         TRANSPOSE_FN};

#undef REAL
#undef VEC
#undef W
#undef MR
#undef DMR1
#undef DMR2
#undef DMR_MAX
#undef NCT
#undef TRANSPOSE_FN
#undef TRANSPOSE_BLOCK
#undef S_FMA
#undef KDESC_TYPE
#undef NAME
#undef V_ZERO
#undef V_LOAD
#undef V_LOADU
#undef V_STOREU
#undef V_SET1
#undef V_MUL
#undef V_FMA
#undef MASK_T
#undef V_MASK
#undef V_LOADM
#undef V_STOREM
