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

/* col = the patch matrix of one sample's group of channels x (cg planes). */
static void SUFFIX(im2col)(const nb_conv_geom *g, const REAL *x, REAL *col)
{
    const int64_t cg = g->c / g->groups, ohw = g->oh * g->ow;
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

/* x += the patch matrix col folded back onto the image: every patch
 * element adds into the pixel it was read from (nothing for the padding). */
static void SUFFIX(col2im)(const nb_conv_geom *g, const REAL *col, REAL *x)
{
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

size_t SUFFIX(nb_conv_workspace)(const nb_conv_geom *g)
{
    const int64_t og = g->o / g->groups;
    const int64_t k = g->c / g->groups * g->kh * g->kw, ohw = g->oh * g->ow;
    size_t fwd = GEMM_WORKSPACE(og, ohw, k), data = GEMM_WORKSPACE(k, ohw, og),
           weight = GEMM_WORKSPACE(og, k, ohw);
    size_t gemm = fwd > data ? fwd : data;
    if (weight > gemm)
        gemm = weight;
    return nb_conv_col_bytes(g, sizeof(REAL)) + gemm;
}

/* The patch matrix's place in the workspace (NULL when x serves as it),
 * and the GEMM's packing space after it. */
static REAL *SUFFIX(col_of)(const nb_conv_geom *g, void *ws, void **gemm_ws)
{
    size_t bytes = nb_conv_col_bytes(g, sizeof(REAL));
    *gemm_ws = (char *)ws + bytes;
    return bytes ? (REAL *)ws : NULL;
}

void SUFFIX(nb_conv_forward)(const nb_conv_geom *g, const REAL *x,
                             const REAL *w, REAL beta, REAL *y, void *ws)
{
    const int64_t og = g->o / g->groups, cg = g->c / g->groups;
    const int64_t k = cg * g->kh * g->kw, ohw = g->oh * g->ow;
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t gi = 0; gi < g->groups; gi++) {
            const REAL *xg = x + (n * g->c + gi * cg) * g->h * g->w;
            if (col)
                SUFFIX(im2col)(g, xg, col);
            GEMM(false, false, og, ohw, k, 1, w + gi * og * k, k,
                 col ? col : xg, ohw, beta, y + (n * g->o + gi * og) * ohw,
                 ohw, gemm_ws);
        }
}

void SUFFIX(nb_conv_backward_data)(const nb_conv_geom *g, const REAL *w,
                                   const REAL *dy, REAL beta, REAL *dx,
                                   void *ws)
{
    const int64_t og = g->o / g->groups, cg = g->c / g->groups;
    const int64_t k = cg * g->kh * g->kw, ohw = g->oh * g->ow;
    const int64_t hw = g->h * g->w;
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    if (col && beta == 0)
        memset(dx, 0, (size_t)(g->batch * g->c * hw) * sizeof *dx);
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t gi = 0; gi < g->groups; gi++) {
            REAL *dxg = dx + (n * g->c + gi * cg) * hw;
            const REAL *dyg = dy + (n * g->o + gi * og) * ohw;
            const REAL *wg = w + gi * og * k;
            if (!col) {
                GEMM(true, false, k, ohw, og, 1, wg, k, dyg, ohw, beta, dxg,
                     ohw, gemm_ws);
                continue;
            }
            GEMM(true, false, k, ohw, og, 1, wg, k, dyg, ohw, 0, col, ohw,
                 gemm_ws);
            SUFFIX(col2im)(g, col, dxg);
        }
}

void SUFFIX(nb_conv_backward_weight)(const nb_conv_geom *g, const REAL *x,
                                     const REAL *dy, REAL beta, REAL *dw,
                                     void *ws)
{
    const int64_t og = g->o / g->groups, cg = g->c / g->groups;
    const int64_t k = cg * g->kh * g->kw, ohw = g->oh * g->ow;
    void *gemm_ws;
    REAL *col = SUFFIX(col_of)(g, ws, &gemm_ws);
    if (g->batch == 0 && beta == 0)
        memset(dw, 0, (size_t)(g->o * k) * sizeof *dw);
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t gi = 0; gi < g->groups; gi++) {
            const REAL *xg = x + (n * g->c + gi * cg) * g->h * g->w;
            if (col)
                SUFFIX(im2col)(g, xg, col);
            GEMM(false, true, og, k, ohw, 1, dy + (n * g->o + gi * og) * ohw,
                 ohw, col ? col : xg, ohw, n == 0 ? beta : 1, dw + gi * og * k,
                 k, gemm_ws);
        }
}
