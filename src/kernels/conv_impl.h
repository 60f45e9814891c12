/* The convolution kernels of conv.h for one element type: included by
 * conv.c with REAL (float or double), SUFFIX(name) and GEMM defined. */

/* The columns ox of one patch row that read inside the image: x's column
 * ox sw + off lies in [0, w) exactly for lo <= ox < hi. */
static void SUFFIX(inside)(int64_t off, int64_t stride, int64_t w, int64_t ow,
                           int64_t *lo, int64_t *hi)
{
    int64_t a = off < 0 ? (-off + stride - 1) / stride : 0;
    int64_t b = w - off > 0 ? (w - off + stride - 1) / stride : 0;
    *lo = a < ow ? a : ow;
    *hi = b < ow ? b : ow;
    if (*hi < *lo)
        *hi = *lo;
}

/* With stride 1 on both axes and an output row as wide as an input row
 * (a "same" convolution, as in the CNN), the patch row of one (c, i, j)
 * is, over the output rows oy that read inside the image, the plane's
 * rows shifted by one constant offset: block copies instead of one copy
 * per output row. */
static bool SUFFIX(same_rows)(const nb_conv_geom *g)
{
    return g->sh == 1 && g->sw == 1 && g->ow == g->w;
}

/* The output rows [*a, *b) whose input row oy - ph + i dh (stride 1) lies
 * in the image. */
static void SUFFIX(rows_inside)(const nb_conv_geom *g, int64_t i, int64_t *a,
                                int64_t *b)
{
    const int64_t shift = i * g->dh - g->ph;
    int64_t lo = -shift > 0 ? -shift : 0, hi = g->h - shift;
    if (hi > g->oh)
        hi = g->oh;
    if (lo > g->oh)
        lo = g->oh;
    if (hi < lo)
        hi = lo;
    *a = lo;
    *b = hi;
}

/* Sets the columns ox < lo and ox >= hi of rows [a, b) of one patch row to
 * zero: where the padding lies in a block copy. */
static void SUFFIX(zero_edges)(const nb_conv_geom *g, REAL *row, int64_t a,
                               int64_t b, int64_t lo, int64_t hi)
{
    /* by columns: a tap's edge is a column or two, its rows many */
    for (int64_t ox = 0; ox < lo; ox++)
        for (int64_t oy = a; oy < b; oy++)
            row[oy * g->ow + ox] = 0;
    for (int64_t ox = hi; ox < g->ow; ox++)
        for (int64_t oy = a; oy < b; oy++)
            row[oy * g->ow + ox] = 0;
}

/* The first and last element t of a block of `len` whose source t + off
 * also lies in the block. */
static void SUFFIX(block_span)(int64_t len, int64_t off, int64_t *t0,
                               int64_t *t1)
{
    *t0 = off < 0 ? -off : 0;
    *t1 = off > 0 ? len - off : len;
    if (*t1 < *t0)
        *t1 = *t0;
}

/* im2col for same_rows(g): per (c, i, j) the rows above and below the image
 * are cleared in one go, the rows inside copied as one block from the
 * plane shifted by the tap's column offset (an element's neighbour row
 * lands in the edge columns), and the edge columns cleared. */
static void SUFFIX(im2col_same)(const nb_conv_geom *g, const REAL *x, REAL *col)
{
    const int64_t cg = g->c / g->groups, ohw = g->oh * g->ow, w = g->w;
    for (int64_t c = 0; c < cg; c++) {
        const REAL *plane = x + c * g->h * w;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t a, b;
            SUFFIX(rows_inside)(g, i, &a, &b);
            const REAL *src = plane + (a < b ? a + i * g->dh - g->ph : 0) * w;
            for (int64_t j = 0; j < g->kw; j++) {
                REAL *row = col + ((c * g->kh + i) * g->kw + j) * ohw;
                const int64_t off = j * g->dw - g->pw;
                int64_t lo, hi, t0, t1;
                SUFFIX(inside)(off, 1, w, g->ow, &lo, &hi);
                if (a > 0)
                    memset(row, 0, (size_t)(a * g->ow) * sizeof *row);
                if (b < g->oh)
                    memset(row + b * g->ow, 0,
                           (size_t)((g->oh - b) * g->ow) * sizeof *row);
                REAL *dst = row + a * g->ow;
                SUFFIX(block_span)((b - a) * w, off, &t0, &t1);
                memcpy(dst + t0, src + t0 + off, (size_t)(t1 - t0) * sizeof *dst);
                SUFFIX(zero_edges)(g, row, a, b, lo, hi);
            }
        }
    }
}

/* col = the patch matrix of one sample's group of channels x (cg planes). */
static void SUFFIX(im2col)(const nb_conv_geom *g, const REAL *x, REAL *col)
{
    const int64_t cg = g->c / g->groups, ohw = g->oh * g->ow;
    if (SUFFIX(same_rows)(g)) {
        SUFFIX(im2col_same)(g, x, col);
        return;
    }
    for (int64_t c = 0; c < cg; c++) {
        const REAL *plane = x + c * g->h * g->w;
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                REAL *row = col + ((c * g->kh + i) * g->kw + j) * ohw;
                const int64_t off = j * g->dw - g->pw;
                int64_t lo, hi;
                SUFFIX(inside)(off, g->sw, g->w, g->ow, &lo, &hi);
                for (int64_t oy = 0; oy < g->oh; oy++) {
                    REAL *r = row + oy * g->ow;
                    const int64_t iy = oy * g->sh - g->ph + i * g->dh;
                    if (iy < 0 || iy >= g->h) {
                        memset(r, 0, (size_t)g->ow * sizeof *r);
                        continue;
                    }
                    const REAL *src = plane + iy * g->w;
                    for (int64_t ox = 0; ox < lo; ox++)
                        r[ox] = 0;
                    if (g->sw == 1)
                        memcpy(r + lo, src + lo + off,
                               (size_t)(hi - lo) * sizeof *r);
                    else
                        for (int64_t ox = lo; ox < hi; ox++)
                            r[ox] = src[ox * g->sw + off];
                    for (int64_t ox = hi; ox < g->ow; ox++)
                        r[ox] = 0;
                }
            }
    }
}

/* col2im for same_rows(g): the edge columns of col (the GEMM's scratch
 * output) are cleared, then each (c, i, j)'s rows inside the image add
 * into the plane as one shifted block. Each pixel takes its taps in the
 * order of the general loop; the cleared entries add zeros. */
static void SUFFIX(col2im_same)(const nb_conv_geom *g, REAL *col, REAL *x)
{
    const int64_t cg = g->c / g->groups, ohw = g->oh * g->ow, w = g->w;
    for (int64_t c = 0; c < cg; c++) {
        REAL *plane = x + c * g->h * w;
        for (int64_t i = 0; i < g->kh; i++) {
            int64_t a, b;
            SUFFIX(rows_inside)(g, i, &a, &b);
            REAL *dst = plane + (a < b ? a + i * g->dh - g->ph : 0) * w;
            for (int64_t j = 0; j < g->kw; j++) {
                REAL *row = col + ((c * g->kh + i) * g->kw + j) * ohw;
                const int64_t off = j * g->dw - g->pw;
                int64_t lo, hi, t0, t1;
                SUFFIX(inside)(off, 1, w, g->ow, &lo, &hi);
                SUFFIX(zero_edges)(g, row, a, b, lo, hi);
                const REAL *r = row + a * g->ow;
                SUFFIX(block_span)((b - a) * w, off, &t0, &t1);
                for (int64_t t = t0; t < t1; t++)
                    dst[t + off] += r[t];
            }
        }
    }
}

/* x += the patch matrix col folded back onto the image: every patch
 * element adds into the pixel it was read from (nothing for the padding). */
static void SUFFIX(col2im)(const nb_conv_geom *g, REAL *col, REAL *x)
{
    if (SUFFIX(same_rows)(g)) {
        SUFFIX(col2im_same)(g, col, x);
        return;
    }
    const int64_t cg = g->c / g->groups, ohw = g->oh * g->ow;
    for (int64_t c = 0; c < cg; c++) {
        REAL *plane = x + c * g->h * g->w;
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const REAL *row = col + ((c * g->kh + i) * g->kw + j) * ohw;
                const int64_t off = j * g->dw - g->pw;
                int64_t lo, hi;
                SUFFIX(inside)(off, g->sw, g->w, g->ow, &lo, &hi);
                for (int64_t oy = 0; oy < g->oh; oy++) {
                    const int64_t iy = oy * g->sh - g->ph + i * g->dh;
                    if (iy < 0 || iy >= g->h)
                        continue;
                    const REAL *r = row + oy * g->ow;
                    REAL *dst = plane + iy * g->w;
                    if (g->sw == 1)
                        for (int64_t ox = lo; ox < hi; ox++)
                            dst[ox + off] += r[ox];
                    else
                        for (int64_t ox = lo; ox < hi; ox++)
                            dst[ox * g->sw + off] += r[ox];
                }
            }
    }
}

/* Whether the weight gradient is made transposed, dw^T = col dy^T (k rows,
 * og columns), with dy transposed for the GEMM instead of the patch
 * matrix: when dy is the smaller of the two (og <= k: conv2 of the CNN
 * transposes 64 x 196 per sample instead of 288 x 196), or when k is so
 * small (conv1's 9) that k columns would leave most of a tile of two
 * vectors idle (16 floats on AVX2, 32 on AVX-512) while og fills it. */
static bool SUFFIX(weight_transposed)(int64_t og, int64_t k)
{
    return og <= k || k < 16;
}

/* Bytes of dw^T for every group (whole cache lines), where
 * weight_transposed. */
static size_t SUFFIX(dwt_bytes)(const nb_conv_geom *g)
{
    const int64_t og = g->o / g->groups, k = g->c / g->groups * g->kh * g->kw;
    if (!SUFFIX(weight_transposed)(og, k))
        return 0;
    return ((size_t)(g->o * k) * sizeof(REAL) + 63) / 64 * 64;
}

size_t SUFFIX(nb_conv_workspace)(const nb_conv_geom *g)
{
    const int64_t og = g->o / g->groups;
    const int64_t k = g->c / g->groups * g->kh * g->kw, ohw = g->oh * g->ow;
    size_t fwd = GEMM_WORKSPACE(og, ohw, k), data = GEMM_WORKSPACE(k, ohw, og),
           weight = SUFFIX(weight_transposed)(og, k)
                        ? GEMM_WORKSPACE(k, og, ohw)
                        : GEMM_WORKSPACE(og, k, ohw);
    size_t gemm = fwd > data ? fwd : data;
    if (weight > gemm)
        gemm = weight;
    return nb_conv_col_bytes(g, sizeof(REAL)) + SUFFIX(dwt_bytes)(g) + gemm;
}

/* The patch matrix's place in the workspace (NULL when x serves as it),
 * then dw^T's (dwt_bytes), then the GEMM's packing space. */
static REAL *SUFFIX(col_of)(const nb_conv_geom *g, void *ws, void **gemm_ws)
{
    size_t bytes = nb_conv_col_bytes(g, sizeof(REAL));
    *gemm_ws = (char *)ws + bytes + SUFFIX(dwt_bytes)(g);
    return bytes ? (REAL *)ws : NULL;
}

/* One sample's block of one group, og x ohw, after its GEMM: y = y + b
 * (b the group's og biases, NULL for none), then relu where asked, as
 * relu(y + b) is computed by the separate ops (add, then x <= 0 ? 0 : x),
 * while the block is still in cache. */
static void SUFFIX(epilogue)(int64_t og, int64_t ohw, const REAL *b, bool relu,
                             REAL *y)
{
    for (int64_t o = 0; o < og; o++) {
        REAL *restrict r = y + o * ohw;
        const REAL bo = b ? b[o] : 0;
        if (b && relu)
            for (int64_t t = 0; t < ohw; t++) {
                REAL z = r[t] + bo;
                r[t] = z <= 0 ? (REAL)0 : z;
            }
        else if (b)
            for (int64_t t = 0; t < ohw; t++)
                r[t] += bo;
        else if (relu)
            for (int64_t t = 0; t < ohw; t++)
                r[t] = r[t] <= 0 ? (REAL)0 : r[t];
    }
}

/* Sample n's forward into yn (its O planes): per group the patch matrix,
 * the GEMM and, when there is a bias or relu, the epilogue. */
static void SUFFIX(forward_sample)(const nb_conv_geom *g, const REAL *xn,
                                   const REAL *w, REAL beta, const REAL *b,
                                   bool relu, REAL *yn, REAL *col,
                                   void *gemm_ws)
{
    const int64_t og = g->o / g->groups, cg = g->c / g->groups;
    const int64_t k = cg * g->kh * g->kw, ohw = g->oh * g->ow;
    for (int64_t gi = 0; gi < g->groups; gi++) {
        const REAL *xg = xn + gi * cg * g->h * g->w;
        REAL *yg = yn + gi * og * ohw;
        if (col)
            SUFFIX(im2col)(g, xg, col);
        GEMM(false, false, og, ohw, k, 1, w + gi * og * k, k, col ? col : xg,
             ohw, beta, yg, ohw, gemm_ws);
        if (b || relu)
            SUFFIX(epilogue)(og, ohw, b ? b + gi * og : NULL, relu, yg);
    }
}

void SUFFIX(nb_conv_forward)(const nb_conv_geom *g, const REAL *x,
                             const REAL *w, REAL beta, REAL *y, void *ws)
{
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    for (int64_t n = 0; n < g->batch; n++)
        SUFFIX(forward_sample)(g, x + n * g->c * g->h * g->w, w, beta, NULL,
                               false, y + n * g->o * g->oh * g->ow, col,
                               gemm_ws);
}

/* Bytes of one sample's O planes of n elements each, in whole cache
 * lines. */
static size_t SUFFIX(planes_bytes)(int64_t o, int64_t n)
{
    return ((size_t)(o * n) * sizeof(REAL) + 63) / 64 * 64;
}

/* Bytes of one thread's share of nb_conv_act's workspace (backward uses
 * the first share alone): the tile of one sample's convolution, the
 * masked pooled message, then conv's own workspace; whole cache lines. */
static size_t SUFFIX(act_share_bytes)(const nb_conv_geom *g, bool relu,
                                      const nb_pool2d_geom *pool)
{
    const int64_t ohw = g->oh * g->ow;
    size_t tile = relu || pool ? SUFFIX(planes_bytes)(g->o, ohw) : 0;
    size_t masked = relu && pool
                        ? SUFFIX(planes_bytes)(g->o, pool->oh * pool->ow)
                        : 0;
    return (tile + masked + SUFFIX(nb_conv_workspace)(g) + 63) / 64 * 64;
}

size_t SUFFIX(nb_conv_act_workspace)(const nb_conv_geom *g, bool relu,
                                     const nb_pool2d_geom *pool)
{
    return SUFFIX(act_share_bytes)(g, relu, pool) *
           (size_t)nb_parallel_threads_max();
}

/* What the threads of a fused forward share. */
typedef struct {
    const nb_conv_geom *g;
    const REAL *x, *w, *b;
    bool relu;
    const nb_pool2d_geom *pool;
    int32_t *arg;
    REAL *y;
    char *ws;
    size_t share;
} SUFFIX(act_fwd_job);

/* Samples [lo, hi) of a fused forward, in thread t's share of the
 * workspace. */
static void SUFFIX(act_fwd_body)(void *ctx, int64_t lo, int64_t hi, int t,
                                 int q)
{
    (void)q;
    const SUFFIX(act_fwd_job) *j = ctx;
    const nb_conv_geom *g = j->g;
    const int64_t ohw = g->oh * g->ow;
    const int64_t pohw = j->pool ? j->pool->oh * j->pool->ow : 0;
    void *ws = j->ws + (size_t)t * j->share;
    /* with pooling, each sample's convolution goes to a tile of the
     * workspace and only its pooled planes to y */
    REAL *tile = (REAL *)ws;
    if (j->pool)
        ws = (char *)ws + SUFFIX(planes_bytes)(g->o, ohw);
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    for (int64_t n = lo; n < hi; n++) {
        const REAL *xn = j->x + n * g->c * g->h * g->w;
        if (!j->pool) {
            SUFFIX(forward_sample)(g, xn, j->w, 0, j->b, j->relu,
                                   j->y + n * g->o * ohw, col, gemm_ws);
            continue;
        }
        SUFFIX(forward_sample)(g, xn, j->w, 0, j->b, j->relu, tile, col,
                               gemm_ws);
        SUFFIX(nb_max_pool2d)(j->pool, tile, j->y + n * g->o * pohw,
                              j->arg + n * g->o * pohw);
    }
}

static nb_parallel_site SUFFIX(act_fwd_site) =
    NB_PARALLEL_SITE("conv.act_forward_" CONV_TYPE_NAME, CONV_GRAIN);

void SUFFIX(nb_conv_act_forward)(const nb_conv_geom *g, const REAL *x,
                                 const REAL *w, const REAL *b, bool relu,
                                 const nb_pool2d_geom *pool, int32_t *arg,
                                 REAL *y, void *ws)
{
    SUFFIX(act_fwd_job) job = {.g = g, .x = x, .w = w, .b = b, .relu = relu,
                               .pool = pool, .arg = arg, .y = y, .ws = ws,
                               .share = SUFFIX(act_share_bytes)(g, relu,
                                                                pool)};
    /* Whole samples per thread: each core computes and keeps its own
     * samples, whose results do not depend on who computes them. The
     * work is in multiply-adds. */
    double work = (double)g->batch * (double)(g->o * g->oh * g->ow) *
                  (double)(g->c / g->groups * g->kh * g->kw);
    nb_parallel_for(&SUFFIX(act_fwd_site), g->batch,
                    work < 4e18 ? (int64_t)work : INT64_MAX,
                    nb_parallel_threads_max(), SUFFIX(act_fwd_body), &job);
}

/* dx_n = conv^T(dy_n, w) + beta dx_n for one sample n (dx_n, dy_n its
 * planes). With a patch matrix, a fresh dx_n is cleared here, while the
 * sample's planes are about to be written anyway, and col2im adds into
 * it. */
static void SUFFIX(data_sample)(const nb_conv_geom *g, const REAL *w,
                                const REAL *dyn, REAL beta, REAL *dxn,
                                REAL *col, void *gemm_ws)
{
    const int64_t og = g->o / g->groups, cg = g->c / g->groups;
    const int64_t k = cg * g->kh * g->kw, ohw = g->oh * g->ow;
    const int64_t hw = g->h * g->w;
    if (col && beta == 0)
        memset(dxn, 0, (size_t)(g->c * hw) * sizeof *dxn);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        REAL *dxg = dxn + gi * cg * hw;
        const REAL *dyg = dyn + gi * og * ohw;
        const REAL *wg = w + gi * og * k;
        if (!col) {
            GEMM(true, false, k, ohw, og, 1, wg, k, dyg, ohw, beta, dxg, ohw,
                 gemm_ws);
            continue;
        }
        GEMM(true, false, k, ohw, og, 1, wg, k, dyg, ohw, 0, col, ohw,
             gemm_ws);
        SUFFIX(col2im)(g, col, dxg);
    }
}

void SUFFIX(nb_conv_backward_data)(const nb_conv_geom *g, const REAL *w,
                                   const REAL *dy, REAL beta, REAL *dx,
                                   void *ws)
{
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    for (int64_t n = 0; n < g->batch; n++)
        SUFFIX(data_sample)(g, w, dy + n * g->o * g->oh * g->ow, beta,
                            dx + n * g->c * g->h * g->w, col, gemm_ws);
}

/* dw = dwt^T + beta dw for each group's og x k block (dwt is k x og). */
static void SUFFIX(add_transposed)(const nb_conv_geom *g, const REAL *dwt,
                                   REAL beta, REAL *dw)
{
    const int64_t og = g->o / g->groups, k = g->c / g->groups * g->kh * g->kw;
    for (int64_t gi = 0; gi < g->groups; gi++) {
        const REAL *t = dwt + gi * k * og;
        REAL *d = dw + gi * og * k;
        for (int64_t o = 0; o < og; o++)
            for (int64_t p = 0; p < k; p++)
                d[o * k + p] = beta == 0 ? t[p * og + o]
                                         : beta * d[o * k + p] + t[p * og + o];
    }
}

/* Sample n's share of the weight gradient: dw (or dw^T, dwt, where
 * weight_transposed) = sample n's products + (n == 0 ? beta : 1) dw, so
 * the samples add in order into one buffer. */
static void SUFFIX(weight_sample)(const nb_conv_geom *g, const REAL *xn,
                                  const REAL *dyn, int64_t n, REAL beta,
                                  REAL *dw, REAL *dwt, REAL *col,
                                  void *gemm_ws)
{
    const int64_t og = g->o / g->groups, cg = g->c / g->groups;
    const int64_t k = cg * g->kh * g->kw, ohw = g->oh * g->ow;
    const bool transposed = SUFFIX(weight_transposed)(og, k);
    for (int64_t gi = 0; gi < g->groups; gi++) {
        const REAL *xg = xn + gi * cg * g->h * g->w;
        const REAL *dyg = dyn + gi * og * ohw;
        if (col)
            SUFFIX(im2col)(g, xg, col);
        if (transposed)
            GEMM(false, true, k, og, ohw, 1, col ? col : xg, ohw, dyg, ohw,
                 n == 0 ? 0 : 1, dwt + gi * k * og, og, gemm_ws);
        else
            GEMM(false, true, og, k, ohw, 1, dyg, ohw, col ? col : xg, ohw,
                 n == 0 ? beta : 1, dw + gi * og * k, k, gemm_ws);
    }
}

/* dw^T's place: between the patch matrix and the GEMM's space. */
static REAL *SUFFIX(dwt_of)(const nb_conv_geom *g, void *gemm_ws)
{
    return (REAL *)((char *)gemm_ws - SUFFIX(dwt_bytes)(g));
}

/* What every sample's weight gradient leaves to do once: no sample gives
 * a fresh dw its zeros; dw^T is added to dw. */
static void SUFFIX(weight_finish)(const nb_conv_geom *g, const REAL *dwt,
                                  REAL beta, REAL *dw)
{
    const int64_t og = g->o / g->groups, k = g->c / g->groups * g->kh * g->kw;
    if (g->batch == 0 && beta == 0)
        memset(dw, 0, (size_t)(g->o * k) * sizeof *dw);
    if (SUFFIX(weight_transposed)(og, k) && g->batch > 0)
        SUFFIX(add_transposed)(g, dwt, beta, dw);
}

void SUFFIX(nb_conv_backward_weight)(const nb_conv_geom *g, const REAL *x,
                                     const REAL *dy, REAL beta, REAL *dw,
                                     void *ws)
{
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    REAL *dwt = SUFFIX(dwt_of)(g, gemm_ws);
    for (int64_t n = 0; n < g->batch; n++)
        SUFFIX(weight_sample)(g, x + n * g->c * g->h * g->w,
                              dy + n * g->o * g->oh * g->ow, n, beta, dw, dwt,
                              col, gemm_ws);
    SUFFIX(weight_finish)(g, dwt, beta, dw);
}


/* dz = dy [y > 0] over len elements: relu's derivative from its output,
 * as y > 0 exactly where the pre-activation is (relu'(0) = 0), with the
 * relu op's select. */
static void SUFFIX(relu_mask)(int64_t len, const REAL *restrict y,
                              const REAL *restrict dy, REAL *restrict dz)
{
    /* both loaded, then a select: gcc vectorises it */
    for (int64_t t = 0; t < len; t++) {
        const REAL v = y[t], d = dy[t];
        dz[t] = v > 0 ? d : (REAL)0;
    }
}

void SUFFIX(nb_conv_act_backward)(const nb_conv_geom *g, const REAL *x,
                                  const REAL *w, const REAL *y,
                                  const REAL *dy, bool relu,
                                  const nb_pool2d_geom *pool,
                                  const int32_t *arg,
                                  const nb_conv_act_grads *d, void *ws)
{
    const int64_t ohw = g->oh * g->ow;
    /* the elements of one sample's y and dy: pooled, or the conv's own */
    const int64_t len = g->o * (pool ? pool->oh * pool->ow : ohw);
    REAL *dx = d->dx, *dw = d->dw, *db = d->db;
    REAL *dz = (REAL *)ws, *masked = NULL;
    if (relu || pool)
        ws = (char *)ws + SUFFIX(planes_bytes)(g->o, ohw);
    if (relu && pool) {
        masked = (REAL *)ws;
        ws = (char *)ws + SUFFIX(planes_bytes)(g->o, len / g->o);
    }
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    REAL *dwt = SUFFIX(dwt_of)(g, gemm_ws);
    const REAL beta_w = d->fresh_w ? 0 : 1, beta_x = d->fresh_x ? 0 : 1;
    if (db && d->fresh_b)
        memset(db, 0, (size_t)g->o * sizeof *db);
    for (int64_t n = 0; n < g->batch; n++) {
        const REAL *dzn = dy + n * len;
        if (pool) {
            /* The pooled relu's winner is the pre-activation's (the first
             * maximum of relu(z) is the first of z where any z > 0, and
             * where none is its gradient is 0 either way), so masking the
             * pooled message by p > 0 and routing it to the winners gives
             * the composed ops' dz: 0 + message at each winner, 0
             * elsewhere. */
            if (relu) {
                SUFFIX(relu_mask)(len, y + n * len, dzn, masked);
                dzn = masked;
            }
            SUFFIX(nb_max_pool2d_back)(pool, true, dzn, arg + n * len, dz);
            dzn = dz;
        } else if (relu) {
            SUFFIX(relu_mask)(len, y + n * len, dzn, dz);
            dzn = dz;
        }
        if (db)
            for (int64_t o = 0; o < g->o; o++)
                db[o] += SUFFIX(nb_run_sum)(dzn + o * ohw, ohw);
        if (dw)
            SUFFIX(weight_sample)(g, x + n * g->c * g->h * g->w, dzn, n,
                                  beta_w, dw, dwt, col, gemm_ws);
        if (dx)
            SUFFIX(data_sample)(g, w, dzn, beta_x, dx + n * g->c * g->h * g->w,
                                col, gemm_ws);
    }
    if (dw)
        SUFFIX(weight_finish)(g, dwt, beta_w, dw);
}
