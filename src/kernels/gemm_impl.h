/* Body of the built-in GEMM, included once per REAL by gemm.c, which
 * defines REAL, NAME(x) (a per-type name),
 * KDESC_TYPE, GEN_MR, GEN_NR (the portable micro-kernel's tile) and
 * PICK_SIMD_KERNEL(isa) (the SIMD kernels for an instruction set, or
 * NULL). gemm.c chooses among the three paths (path_for) and says why.
 *
 * Blocked path, as in Goto's and BLIS's GEMM: a kc x nc panel of op(B)
 * and an mc x kc block of op(A) are packed into the workspace (B in
 * NR-wide column slivers, A in MR-tall row slivers, so the micro-kernel
 * reads both sequentially), and the micro-kernel sweeps the tiles of C.
 * Packing is where the transposes are absorbed: every (trans_a, trans_b)
 * combination reaches the same micro-kernel.
 *
 * Direct and narrow paths (kernels in gemm_ukernel_simd.h): nothing is
 * packed but B^T when trans_b (once, for all threads: the kernels read
 * op(B) by rows) and, on the narrow path without trans_a, A^T in strips
 * just before use. */

/* Portable micro-kernel; the compiler vectorises the j loops at whatever
 * width the file is compiled for. */
static void NAME(generic_kernel)(int64_t kc, const REAL *restrict a,
                                 const REAL *restrict b, REAL *restrict c,
                                 int64_t ldc, REAL alpha, REAL beta)
{
    REAL acc[GEN_MR][GEN_NR] = {{0}};
    for (int64_t p = 0; p < kc; p++) {
        for (int i = 0; i < GEN_MR; i++)
            for (int j = 0; j < GEN_NR; j++)
                acc[i][j] += a[i] * b[j];
        a += GEN_MR;
        b += GEN_NR;
    }
    for (int i = 0; i < GEN_MR; i++) {
        REAL *ci = c + i * ldc;
        if (beta == 0)
            for (int j = 0; j < GEN_NR; j++)
                ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < GEN_NR; j++)
                ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
}

static const KDESC_TYPE NAME(generic) = {GEN_MR, GEN_NR, NAME(generic_kernel),
                                         NULL, NULL, NULL};

/* Copies a kc x width block that is stored transposed (element (p, w) at
 * src[w * ld + p]) into rows of `stride` elements, zero-filling columns
 * width..stride. Four source rows are read side by side, so each store
 * fills four adjacent elements and the reads stay sequential (measured
 * fastest among the portable orders; a gather over all `width` rows
 * thrashes L1 when ld is a power of two). */
static void NAME(pack_transposed)(const REAL *src, int64_t ld, int64_t kc,
                                  int width, int stride, REAL *restrict dst)
{
    int w = 0;
    for (; w + 4 <= width; w += 4) {
        const REAL *s0 = src + w * ld, *s1 = s0 + ld, *s2 = s1 + ld,
                   *s3 = s2 + ld;
        REAL *d = dst + w;
        for (int64_t p = 0; p < kc; p++, d += stride) {
            d[0] = s0[p];
            d[1] = s1[p];
            d[2] = s2[p];
            d[3] = s3[p];
        }
    }
    for (; w < width; w++) {
        const REAL *s = src + w * ld;
        for (int64_t p = 0; p < kc; p++)
            dst[p * stride + w] = s[p];
    }
    for (w = width; w < stride; w++)
        for (int64_t p = 0; p < kc; p++)
            dst[p * stride + w] = 0;
}

/* A full sliver of W_ elements a row: a copy of constant size, which
 * the compiler makes a few vector moves. */
#define PACK_ROWS_FULL(W_)                                                     \
    if (width == (W_) && stride == (W_)) {                                     \
        for (int64_t p = 0; p < kc; p++)                                       \
            memcpy(dst + p * (W_), src + p * ld, (W_) * sizeof(REAL));         \
        return;                                                                \
    }

/* Copies a kc x width block stored row by row (element (p, w) at
 * src[p * ld + w]) into rows of `stride` elements, zero-filled. A sliver
 * row is 16 to 256 bytes; the plain loop below compiles to a memcpy call
 * per row, which costs more than the copy (a tenth of an LSTM step's
 * time went to those calls when packing A^T for dW), so the tile widths
 * of the kernels (gemm_*.c) get constant-size copies. */
static void NAME(pack_rows)(const REAL *src, int64_t ld, int64_t kc, int width,
                            int stride, REAL *restrict dst)
{
    PACK_ROWS_FULL(4)
    PACK_ROWS_FULL(6)
    PACK_ROWS_FULL(8)
    PACK_ROWS_FULL(16)
    PACK_ROWS_FULL(32)
    for (int64_t p = 0; p < kc; p++) {
        REAL *d = dst + p * stride;
        const REAL *s = src + p * ld;
        for (int w = 0; w < width; w++)
            d[w] = s[w];
        for (int w = width; w < stride; w++)
            d[w] = 0;
    }
}
#undef PACK_ROWS_FULL

/* rows [i0, i0 + mc) and columns [p0, p0 + kc) of op(A), in slivers of mr
 * rows: sliver s holds op(A)[i0 + s mr + r, p0 + p] at [s mr kc + p mr + r] */
static void NAME(pack_a)(bool trans, const REAL *a, int64_t lda, int64_t i0,
                         int64_t p0, int64_t mc, int64_t kc, int mr,
                         REAL *restrict dst)
{
    for (int64_t s = 0; s < mc; s += mr, dst += (int64_t)mr * kc) {
        int rows = mc - s < mr ? (int)(mc - s) : mr;
        if (trans)
            NAME(pack_rows)(a + p0 * lda + i0 + s, lda, kc, rows, mr, dst);
        else
            NAME(pack_transposed)
            (a + (i0 + s) * lda + p0, lda, kc, rows, mr, dst);
    }
}

/* rows [p0, p0 + kc) and columns [j0, j0 + nc) of op(B), in slivers of nr
 * columns: sliver t holds op(B)[p0 + p, j0 + t nr + j] at
 * [t nr kc + p nr + j] */
static void NAME(pack_b)(bool trans, const REAL *b, int64_t ldb, int64_t p0,
                         int64_t j0, int64_t kc, int64_t nc, int nr,
                         REAL *restrict dst)
{
    for (int64_t t = 0; t < nc; t += nr, dst += (int64_t)nr * kc) {
        int cols = nc - t < nr ? (int)(nc - t) : nr;
        if (trans)
            NAME(pack_transposed)
            (b + (j0 + t) * ldb + p0, ldb, kc, cols, nr, dst);
        else
            NAME(pack_rows)(b + p0 * ldb + j0 + t, ldb, kc, cols, nr, dst);
    }
}

/* Splits `total` into the fewest blocks of at most `most`, of equal size
 * rounded up to a multiple of `unit`, so no block is a thin leftover. */
static int64_t NAME(block)(int64_t total, int64_t most, int64_t unit)
{
    int64_t blocks = (total + most - 1) / most;
    int64_t size = (total + blocks - 1) / blocks;
    size = (size + unit - 1) / unit * unit;
    return size < most ? size : most;
}

static void NAME(scale)(int64_t m, int64_t n, REAL beta, REAL *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        REAL *ci = c + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < n; j++)
                ci[j] = 0;
        else if (beta != 1)
            for (int64_t j = 0; j < n; j++)
                ci[j] *= beta;
    }
}

/* The one-thread algorithm, with blocks capped at a_bytes (A) and b_bytes
 * (B) and the packing space at `workspace`, which must hold pack_sizes()
 * for the same caps. */
static void NAME(blocked)(const KDESC_TYPE *kd, bool trans_a, bool trans_b,
                          int64_t m, int64_t n, int64_t k, REAL alpha,
                          const REAL *a, int64_t lda, const REAL *b,
                          int64_t ldb, REAL beta, REAL *c, int64_t ldc,
                          void *workspace, int64_t a_bytes, int64_t b_bytes)
{
    const int mr = kd->mr, nr = kd->nr;
    const int64_t kc_most = GEMM_KC;
    const int64_t mc_most = a_bytes / (int64_t)sizeof(REAL) / kc_most / mr * mr;
    const int64_t nc_most = b_bytes / (int64_t)sizeof(REAL) / kc_most / nr * nr;
    const int64_t kc_blk = NAME(block)(k, kc_most, 1);
    const int64_t mc_blk = NAME(block)(m, mc_most, mr);
    const int64_t nc_blk = NAME(block)(n, nc_most, nr);
    int64_t a_elems, b_elems;
    pack_sizes(sizeof(REAL), m, n, k, a_bytes, b_bytes, &a_elems, &b_elems);
    REAL *a_pack = workspace;
    REAL *b_pack = a_pack + a_elems;
    _Alignas(64) REAL tile[NB_GEMM_MAX_TILE];

    for (int64_t jc = 0; jc < n; jc += nc_blk) {
        int64_t nc = n - jc < nc_blk ? n - jc : nc_blk;
        for (int64_t pc = 0; pc < k; pc += kc_blk) {
            int64_t kc = k - pc < kc_blk ? k - pc : kc_blk;
            /* the first k block applies beta, the later ones accumulate */
            REAL beta_k = pc == 0 ? beta : (REAL)1;
            NAME(pack_b)(trans_b, b, ldb, pc, jc, kc, nc, nr, b_pack);
            for (int64_t ic = 0; ic < m; ic += mc_blk) {
                int64_t mc = m - ic < mc_blk ? m - ic : mc_blk;
                NAME(pack_a)(trans_a, a, lda, ic, pc, mc, kc, mr, a_pack);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int cols = nc - jr < nr ? (int)(nc - jr) : nr;
                    const REAL *bp = b_pack + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int rows = mc - ir < mr ? (int)(mc - ir) : mr;
                        const REAL *ap = a_pack + ir * kc;
                        REAL *cij = c + (ic + ir) * ldc + jc + jr;
                        if (rows == mr && cols == nr) {
                            kd->kernel(kc, ap, bp, cij, ldc, alpha, beta_k);
                            continue;
                        }
                        kd->kernel(kc, ap, bp, tile, nr, 1, 0);
                        for (int i = 0; i < rows; i++)
                            for (int j = 0; j < cols; j++) {
                                REAL v = alpha * tile[i * nr + j];
                                REAL *cv = cij + i * ldc + j;
                                *cv = beta_k == 0 ? v : v + beta_k * *cv;
                            }
                    }
                }
            }
        }
    }
}

/* The direct and narrow paths (gemm.c says when) on an m x n block of C,
 * with op(B) given by rows (b, ldb): B as stored, or B^T transposed into
 * the workspace by GEMM. `at` is this thread's room for strips of A^T
 * (narrow path without trans_a). */
static void NAME(direct)(const KDESC_TYPE *kd, gemm_path path, bool trans_a,
                         int64_t m, int64_t n, int64_t k, REAL alpha,
                         const REAL *a, int64_t lda, const REAL *b,
                         int64_t ldb, REAL beta, REAL *c, int64_t ldc,
                         REAL *at)
{
    if (path == PATH_DIRECT) {
        kd->direct(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (trans_a) {
        kd->narrow(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* op(A)'s columns made contiguous: A^T, a strip of rows at a time,
     * transposed just before use so that it is still in L1 */
    int64_t strip = narrow_strip(sizeof(REAL), m, k);
    for (int64_t i = 0; i < m; i += strip) {
        int64_t rows = m - i < strip ? m - i : strip;
        kd->transpose(rows, k, a + i * lda, lda, at, strip);
        kd->narrow(rows, n, k, alpha, at, strip, b, ldb, beta, c + i * ldc,
                   ldc);
    }
}

/* One thread's strip [lo, hi) of the columns (split_n) or rows of C, by
 * the chosen path, packing into ws. op(B) is by rows on the direct and
 * narrow paths (B^T already transposed when trans_b). */
static void NAME(strip)(const KDESC_TYPE *kd, gemm_path path, bool split_n,
                        int64_t lo, int64_t hi, bool trans_a, bool trans_b,
                        int64_t m, int64_t n, int64_t k, REAL alpha,
                        const REAL *a, int64_t lda, const REAL *b, int64_t ldb,
                        REAL beta, REAL *c, int64_t ldc, void *ws,
                        int64_t a_bytes, int64_t b_bytes)
{
    if (split_n) {
        b = trans_b && path == PATH_BLOCKED ? b + lo * ldb : b + lo;
        c += lo;
        n = hi - lo;
    } else {
        a = trans_a ? a + lo : a + lo * lda;
        c += lo * ldc;
        m = hi - lo;
    }
    if (path == PATH_BLOCKED)
        NAME(blocked)(kd, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                      beta, c, ldc, ws, a_bytes, b_bytes);
    else
        NAME(direct)(kd, path, trans_a, m, n, k, alpha, a, lda, b, ldb, beta,
                     c, ldc, ws);
}

/* One product handed to nabla/parallel.h: the units of its range are the
 * tiles of C along the split dimension. */
typedef struct {
    const KDESC_TYPE *kd;
    gemm_path path;
    bool split_n, trans_a, trans_b;
    int64_t m, n, k, lda, ldb, ldc, unit, extent;
    REAL alpha, beta;
    const REAL *a, *b;
    REAL *c;
    char *base;
} NAME(job);

/* Tiles [lo, hi) as thread t of q, each thread on a strip of whole tiles
 * (see gemm.c) with its own slice of the workspace; alone, the whole
 * product with the whole workspace. */
static void NAME(body)(void *ctx, int64_t lo, int64_t hi, int t, int q)
{
    const NAME(job) *j = ctx;
    if (q == 1) {
        NAME(strip)(j->kd, j->path, false, 0, j->m, j->trans_a, j->trans_b,
                    j->m, j->n, j->k, j->alpha, j->a, j->lda, j->b, j->ldb,
                    j->beta, j->c, j->ldc, j->base, GEMM_A_BYTES,
                    GEMM_B_BYTES);
        return;
    }
    gemm_plan plan = {q, j->split_n};
    size_t slice = j->path == PATH_BLOCKED
                       ? slice_bytes(sizeof(REAL), j->m, j->n, j->k, plan)
                       : direct_at_bytes(sizeof(REAL), j->m, j->n, j->k);
    lo *= j->unit;
    hi = min64(hi * j->unit, j->extent);
    if (lo < hi)
        NAME(strip)(j->kd, j->path, j->split_n, lo, hi, j->trans_a,
                    j->trans_b, j->m, j->n, j->k, j->alpha, j->a, j->lda,
                    j->b, j->ldb, j->beta, j->c, j->ldc,
                    j->base + (size_t)t * slice, GEMM_A_BYTES / q,
                    GEMM_B_BYTES / q);
}

static nb_parallel_site NAME(site) =
    NB_PARALLEL_SITE("gemm." GEMM_TYPE_NAME, GEMM_GRAIN);


/* Every product but the tiny ones, which nb_gemm_f32/f64 (gemm_tiny.c)
 * compute themselves before handing the rest over to this. */
void NAME(nb_gemm_general)(bool trans_a, bool trans_b, int64_t m, int64_t n,
                           int64_t k, REAL alpha, const REAL *a, int64_t lda,
                           const REAL *b, int64_t ldb, REAL beta, REAL *c,
                           int64_t ldc, void *workspace)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0) {
        NAME(scale)(m, n, beta, c, ldc);
        return;
    }
    const KDESC_TYPE *kd = PICK_SIMD_KERNEL(nb_isa_active());
    if (!kd)
        kd = &NAME(generic);
    /* decided on the whole product, so every strip takes the same path */
    const gemm_path path = path_for(sizeof(REAL), m, n, k, trans_a, trans_b,
                                    kd->direct != NULL, kd->narrow != NULL,
                                    kd->transpose != NULL);
    char *base = workspace;
    if (path != PATH_BLOCKED) {
        /* op(B) by rows for every thread: B^T made once */
        if (trans_b) {
            int64_t ld = round_up(n, kd->nr);
            if (kd->transpose)
                kd->transpose(n, k, b, ldb, workspace, ld);
            else
                NAME(pack_transposed)(b, ldb, k, (int)n, (int)ld, workspace);
            b = workspace;
            ldb = ld;
        }
        base += direct_bt_bytes(sizeof(REAL), m, n, k);
    }
    gemm_plan most = plan_for(m, n, k, nb_parallel_threads_max());
    NAME(job) job = {.kd = kd, .path = path, .split_n = most.split_n,
                     .trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n,
                     .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                     .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c,
                     .base = base};
    job.unit = most.split_n ? kd->nr : kd->mr;
    job.extent = most.split_n ? n : m;
    /* in double: m n k may pass 2^63 */
    double work = (double)m * (double)n * (double)k;
    nb_parallel_for(&NAME(site), (job.extent + job.unit - 1) / job.unit,
                    work < 4e18 ? (int64_t)work : INT64_MAX, most.threads,
                    NAME(body), &job);
}

/* The CPU's in-register transpose where it has one (the direct path's
 * B^T), else a loop in tiles, so that neither side is walked across rows
 * one element at a time. */
void NAME(nb_transpose)(int64_t rows, int64_t cols, const REAL *src,
                        int64_t ld, REAL *dst, int64_t ldd)
{
    if (rows <= 0 || cols <= 0)
        return;
    const KDESC_TYPE *kd = PICK_SIMD_KERNEL(nb_isa_active());
    if (kd && kd->transpose) {
        kd->transpose(rows, cols, src, ld, dst, ldd);
        return;
    }
    for (int64_t i0 = 0; i0 < rows; i0 += 16)
        for (int64_t j0 = 0; j0 < cols; j0 += 16)
            for (int64_t i = i0; i < i0 + 16 && i < rows; i++)
                for (int64_t j = j0; j < j0 + 16 && j < cols; j++)
                    dst[j * ldd + i] = src[i * ld + j];
}

#undef REAL
#undef NAME
#undef KDESC_TYPE
#undef GEN_MR
#undef GEN_NR
#undef PICK_SIMD_KERNEL
#undef GEMM_TYPE_NAME
