/* Body of the pooling kernels, included once per REAL (float, double).
 * Window rows and columns are clipped to the input once per output element
 * (padding never holds a value: for max it acts as -inf, for the average
 * as zeros), so the inner loops touch only input elements. */

/* First and one-past-last window taps t with 0 <= o*s - p + t*d < n. */
static inline void SUFFIX(taps)(int64_t o, int64_t s, int64_t p, int64_t d,
                                int64_t k, int64_t n, int64_t *t0, int64_t *t1)
{
    int64_t start = o * s - p;
    int64_t lo = start >= 0 ? 0 : (-start + d - 1) / d;
    int64_t hi = start + (k - 1) * d < n ? k : (n - 1 - start) / d + 1;
    if (start > n - 1)
        hi = 0;
    *t0 = lo;
    *t1 = hi > lo ? hi : lo;
}

/* One pooling call, for nb_parallel_for: its items are the planes. */
typedef struct {
    int kernel; /* POOL_MAX... (pool_norm.c) */
    const nb_pool2d_geom *g;
    bool count_include_pad;
    bool overwrite; /* max backward: dx holds no message yet */
    const REAL *x, *dy;
    REAL *y, *dx;
    int32_t *arg;          /* max forward: where each maximum was */
    const int32_t *arg_in; /* max backward: the same, read */
} SUFFIX(pool_call);
#define POOL_CALL SUFFIX(pool_call)

/* Input and output elements of the call: its work for nb_parallel_for. */
static int64_t SUFFIX(pool_work)(const nb_pool2d_geom *g)
{
    return g->planes * (g->h * g->w + g->oh * g->ow);
}

static void SUFFIX(pool_planes)(void *ctx, int64_t lo, int64_t hi, int thread,
                                int threads);

/* Outputs [*o0, *o1) of an axis whose windows lie wholly inside the
 * input (o*s - p >= 0 and o*s - p + (k-1)*d <= n-1), which need no
 * clipping: the interior, where the fast paths below run; an empty range
 * when there is none. */
static inline void SUFFIX(inside)(int64_t s, int64_t p, int64_t d, int64_t k,
                                  int64_t n, int64_t on, int64_t *o0,
                                  int64_t *o1)
{
    int64_t lo = (p + s - 1) / s, last = n - 1 - (k - 1) * d + p;
    int64_t hi = last < 0 ? 0 : last / s + 1;
    if (hi > on)
        hi = on;
    *o0 = lo < hi ? lo : 0;
    *o1 = lo < hi ? hi : 0;
}

/* The interior of a call: rows [i0, i1) by columns [j0, j1). */
typedef struct {
    int64_t i0, i1, j0, j1;
} SUFFIX(pool_inside);

static inline SUFFIX(pool_inside) SUFFIX(inside_of)(const nb_pool2d_geom *g)
{
    SUFFIX(pool_inside) in;
    SUFFIX(inside)(g->sh, g->ph, g->dh, g->kh, g->h, g->oh, &in.i0, &in.i1);
    SUFFIX(inside)(g->sw, g->pw, g->dw, g->kw, g->w, g->ow, &in.j0, &in.j1);
    return in;
}

/* The columns [*j0, *j1) of output row i that take an interior path; the
 * others take the clipped one. */
static inline void SUFFIX(row_inside)(const nb_pool2d_geom *g,
                                      const SUFFIX(pool_inside) *in, int64_t i,
                                      int64_t *j0, int64_t *j1)
{
    bool row = i >= in->i0 && i < in->i1;
    *j0 = row ? in->j0 : g->ow;
    *j1 = row ? in->j1 : g->ow;
}

/* The common window (2x2, stride 2 along rows, no dilation): the
 * interior paths below unroll it so gcc vectorises across outputs. */
static inline bool SUFFIX(is_2x2)(const nb_pool2d_geom *g)
{
    return g->kh == 2 && g->kw == 2 && g->sw == 2 && g->dh == 1 &&
           g->dw == 1;
}

/* Output (i, j) of a plane with its window clipped to the input. */
static inline void SUFFIX(max_clipped)(const nb_pool2d_geom *g,
                                       const REAL *xp, int64_t i, int64_t j,
                                       REAL *y, int32_t *arg)
{
    int64_t r0, r1, c0, c1;
    SUFFIX(taps)(i, g->sh, g->ph, g->dh, g->kh, g->h, &r0, &r1);
    SUFFIX(taps)(j, g->sw, g->pw, g->dw, g->kw, g->w, &c0, &c1);
    int64_t row0 = i * g->sh - g->ph, col0 = j * g->sw - g->pw;
    REAL best = (REAL)-INFINITY;
    int64_t at = -1;
    for (int64_t a = r0; a < r1; a++) {
        int64_t off = (row0 + a * g->dh) * g->w + col0;
        for (int64_t b = c0; b < c1; b++) {
            int64_t k = off + b * g->dw;
            /* strict: a later equal value does not take over */
            if (at < 0 || xp[k] > best) {
                best = xp[k];
                at = k;
            }
        }
    }
    *y = best;
    *arg = (int32_t)at;
}

/* Outputs [j0, j1) of row i, all inside: the first tap starts the
 * maximum, as the clipped path's at < 0 does, and the strict comparisons
 * in window order keep the first maximum. The 2x2 window is written as
 * selects on 32-bit lanes, which gcc turns into vector blends: as branches
 * on random data, half of them mispredicted and the loop cost 3.7 ns an
 * input element. */
static void SUFFIX(max_inside)(const nb_pool2d_geom *g, const REAL *xp,
                               int64_t i, int64_t j0, int64_t j1, REAL *yr,
                               int32_t *ar)
{
    int64_t w = g->w, pw = g->pw, row0 = i * g->sh - g->ph;
    if (SUFFIX(is_2x2)(g)) {
        const REAL *top = xp + row0 * w - pw, *bot = top + w;
        const int32_t k0 = (int32_t)(row0 * w - pw), kw = (int32_t)w;
        if (MAX2X2_ROW(j1 - j0, top + 2 * j0, bot + 2 * j0,
                       k0 + 2 * (int32_t)j0, kw, yr + j0, ar + j0))
            return;
        for (int64_t j = j0; j < j1; j++) {
            REAL v0 = top[2 * j], v1 = top[2 * j + 1];
            REAL v2 = bot[2 * j], v3 = bot[2 * j + 1];
            int32_t k = k0 + 2 * (int32_t)j;
            REAL best = v1 > v0 ? v1 : v0;
            int32_t at = v1 > v0 ? k + 1 : k;
            at = v2 > best ? k + kw : at;
            best = v2 > best ? v2 : best;
            at = v3 > best ? k + kw + 1 : at;
            best = v3 > best ? v3 : best;
            yr[j] = best;
            ar[j] = at;
        }
        return;
    }
    for (int64_t j = j0; j < j1; j++) {
        int64_t col0 = j * g->sw - g->pw, at = row0 * w + col0;
        REAL best = xp[at];
        for (int64_t a = 0; a < g->kh; a++) {
            int64_t off = (row0 + a * g->dh) * w + col0;
            for (int64_t b = 0; b < g->kw; b++) {
                int64_t k = off + b * g->dw;
                if (xp[k] > best) {
                    best = xp[k];
                    at = k;
                }
            }
        }
        yr[j] = best;
        ar[j] = (int32_t)at;
    }
}

static void SUFFIX(max_pool2d_planes)(const nb_pool2d_geom *g, const REAL *x,
                                      REAL *y, int32_t *arg, int64_t lo,
                                      int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    /* Without padding every window is inside: whole planes in one call,
     * not a call per row of a few outputs. */
    if (SUFFIX(is_2x2)(g) && g->sh == 2 && g->ph == 0 && g->pw == 0 &&
        MAX2X2_PLANES(hi - lo, g->h, g->w, x + lo * in_plane,
                      y + lo * out_plane, arg + lo * out_plane))
        return;
    SUFFIX(pool_inside) in = SUFFIX(inside_of)(g);
    for (int64_t p = lo; p < hi; p++) {
        const REAL *xp = x + p * in_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            REAL *yr = y + p * out_plane + i * g->ow;
            int32_t *ar = arg + p * out_plane + i * g->ow;
            int64_t j0, j1;
            SUFFIX(row_inside)(g, &in, i, &j0, &j1);
            for (int64_t j = 0; j < j0; j++)
                SUFFIX(max_clipped)(g, xp, i, j, &yr[j], &ar[j]);
            SUFFIX(max_inside)(g, xp, i, j0, j1, yr, ar);
            for (int64_t j = j1; j < g->ow; j++)
                SUFFIX(max_clipped)(g, xp, i, j, &yr[j], &ar[j]);
        }
    }
}

void SUFFIX(nb_max_pool2d)(const nb_pool2d_geom *g, const REAL *x, REAL *y,
                           int32_t *arg)
{
    POOL_CALL c = {.kernel = POOL_MAX, .g = g, .x = x, .y = y, .arg = arg};
    RUN_ITEMS("pool.max_forward", g->planes, SUFFIX(pool_work)(g),
              SUFFIX(pool_planes), &c);
}

/* overwrite: dx holds no message yet (maybe garbage), so the planes are
 * cleared before the scatter, or written window by window in one pass
 * where a kernel can (the cleared gradient's bits either way). */
static void SUFFIX(max_pool2d_back_planes)(const nb_pool2d_geom *g,
                                           bool overwrite, const REAL *dy,
                                           const int32_t *arg, REAL *dx,
                                           int64_t lo, int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    if (overwrite && SUFFIX(is_2x2)(g) && g->sh == 2 && g->ph == 0 &&
        g->pw == 0 &&
        MAX2X2_BACK_PLANES(hi - lo, g->h, g->w, dy + lo * out_plane,
                           arg + lo * out_plane, dx + lo * in_plane))
        return;
    if (overwrite)
        memset(dx + lo * in_plane, 0,
               (size_t)((hi - lo) * in_plane) * sizeof *dx);
    for (int64_t p = lo; p < hi; p++) {
        const REAL *dyp = dy + p * out_plane;
        const int32_t *ap = arg + p * out_plane;
        REAL *dxp = dx + p * in_plane;
        for (int64_t o = 0; o < out_plane; o++)
            if (ap[o] >= 0)
                dxp[ap[o]] += dyp[o];
    }
}

void SUFFIX(nb_max_pool2d_back)(const nb_pool2d_geom *g, bool overwrite,
                                const REAL *dy, const int32_t *arg, REAL *dx)
{
    POOL_CALL c = {
        .kernel = POOL_MAX_BACK, .g = g, .dy = dy, .arg_in = arg, .dx = dx};
    c.overwrite = overwrite;
    RUN_ITEMS("pool.max_backward", g->planes, SUFFIX(pool_work)(g),
              SUFFIX(pool_planes), &c);
}

/* The divisor of output (i, j), and its clipped window. */
static inline REAL SUFFIX(avg_window)(const nb_pool2d_geom *g, bool include,
                                      int64_t i, int64_t j, int64_t *r0,
                                      int64_t *r1, int64_t *c0, int64_t *c1)
{
    SUFFIX(taps)(i, g->sh, g->ph, 1, g->kh, g->h, r0, r1);
    SUFFIX(taps)(j, g->sw, g->pw, 1, g->kw, g->w, c0, c1);
    int64_t count = include ? g->kh * g->kw : (*r1 - *r0) * (*c1 - *c0);
    return count > 0 ? (REAL)1 / (REAL)count : (REAL)0;
}

/* The divisor of an interior output, and its whole window. */
static inline REAL SUFFIX(avg_whole)(const nb_pool2d_geom *g, REAL inner,
                                     int64_t *r0, int64_t *r1, int64_t *c0,
                                     int64_t *c1)
{
    *r0 = *c0 = 0;
    *r1 = g->kh;
    *c1 = g->kw;
    return inner;
}

/* The sums start from 0 and add the window in row-major order on every
 * path, so the interior paths give the clipped path's bits (0 + x is not
 * x for x = -0). */
static void SUFFIX(avg_pool2d_planes)(const nb_pool2d_geom *g,
                                      bool count_include_pad, const REAL *x,
                                      REAL *y, int64_t lo, int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow, w = g->w;
    REAL inner = (REAL)1 / (REAL)(g->kh * g->kw);
    SUFFIX(pool_inside) in = SUFFIX(inside_of)(g);
    for (int64_t p = lo; p < hi; p++) {
        const REAL *xp = x + p * in_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t row0 = i * g->sh - g->ph, j0, j1;
            REAL *yr = y + p * out_plane + i * g->ow;
            SUFFIX(row_inside)(g, &in, i, &j0, &j1);
            for (int64_t j = 0; j < g->ow; j++) {
                if (j == j0 && SUFFIX(is_2x2)(g)) {
                    const REAL *top = xp + row0 * w, *bot = top + w;
                    for (; j < j1; j++) {
                        int64_t c = 2 * j - g->pw;
                        REAL s = 0;
                        s += top[c];
                        s += top[c + 1];
                        s += bot[c];
                        s += bot[c + 1];
                        yr[j] = s * inner;
                    }
                    if (j == g->ow)
                        break;
                }
                int64_t r0, r1, c0, c1, col0 = j * g->sw - g->pw;
                REAL scale = j >= j0 && j < j1
                                 ? SUFFIX(avg_whole)(g, inner, &r0, &r1, &c0,
                                                     &c1)
                                 : SUFFIX(avg_window)(g, count_include_pad, i,
                                                      j, &r0, &r1, &c0, &c1);
                REAL s = 0;
                for (int64_t a = r0; a < r1; a++) {
                    const REAL *row = xp + (row0 + a) * w + col0;
                    for (int64_t b = c0; b < c1; b++)
                        s += row[b];
                }
                yr[j] = s * scale;
            }
        }
    }
}

void SUFFIX(nb_avg_pool2d)(const nb_pool2d_geom *g, bool count_include_pad,
                           const REAL *x, REAL *y)
{
    POOL_CALL c = {.kernel = POOL_AVG,
                   .g = g,
                   .count_include_pad = count_include_pad,
                   .x = x,
                   .y = y};
    RUN_ITEMS("pool.avg_forward", g->planes, SUFFIX(pool_work)(g),
              SUFFIX(pool_planes), &c);
}

/* Each dx element takes its outputs' shares in output order on every
 * path, as the clipped path alone would. */
static void SUFFIX(avg_pool2d_back_planes)(const nb_pool2d_geom *g,
                                           bool count_include_pad,
                                           const REAL *dy, REAL *dx, int64_t lo,
                                           int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow, w = g->w;
    REAL inner = (REAL)1 / (REAL)(g->kh * g->kw);
    SUFFIX(pool_inside) in = SUFFIX(inside_of)(g);
    for (int64_t p = lo; p < hi; p++) {
        REAL *dxp = dx + p * in_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t row0 = i * g->sh - g->ph, j0, j1;
            const REAL *dyr = dy + p * out_plane + i * g->ow;
            SUFFIX(row_inside)(g, &in, i, &j0, &j1);
            for (int64_t j = 0; j < g->ow; j++) {
                if (j == j0 && SUFFIX(is_2x2)(g)) {
                    REAL *top = dxp + row0 * w, *bot = top + w;
                    for (; j < j1; j++) {
                        int64_t c = 2 * j - g->pw;
                        REAL v = dyr[j] * inner;
                        top[c] += v;
                        top[c + 1] += v;
                        bot[c] += v;
                        bot[c + 1] += v;
                    }
                    if (j == g->ow)
                        break;
                }
                int64_t r0, r1, c0, c1, col0 = j * g->sw - g->pw;
                REAL scale = j >= j0 && j < j1
                                 ? SUFFIX(avg_whole)(g, inner, &r0, &r1, &c0,
                                                     &c1)
                                 : SUFFIX(avg_window)(g, count_include_pad, i,
                                                      j, &r0, &r1, &c0, &c1);
                REAL v = dyr[j] * scale;
                for (int64_t a = r0; a < r1; a++) {
                    REAL *row = dxp + (row0 + a) * w + col0;
                    for (int64_t b = c0; b < c1; b++)
                        row[b] += v;
                }
            }
        }
    }
}

void SUFFIX(nb_avg_pool2d_back)(const nb_pool2d_geom *g, bool count_include_pad,
                                const REAL *dy, REAL *dx)
{
    POOL_CALL c = {.kernel = POOL_AVG_BACK,
                   .g = g,
                   .count_include_pad = count_include_pad,
                   .dy = dy,
                   .dx = dx};
    RUN_ITEMS("pool.avg_backward", g->planes, SUFFIX(pool_work)(g),
              SUFFIX(pool_planes), &c);
}

/* The body of every pooling call: planes [lo, hi) of its kernel. */
static void SUFFIX(pool_planes)(void *ctx, int64_t lo, int64_t hi, int thread,
                                int threads)
{
    (void)thread;
    (void)threads;
    const POOL_CALL *c = ctx;
    const nb_pool2d_geom *g = c->g;
    bool inc = c->count_include_pad;
    switch (c->kernel) {
    case POOL_MAX:
        SUFFIX(max_pool2d_planes)(g, c->x, c->y, c->arg, lo, hi);
        break;
    case POOL_MAX_BACK:
        SUFFIX(max_pool2d_back_planes)(g, c->overwrite, c->dy, c->arg_in,
                                       c->dx, lo, hi);
        break;
    case POOL_AVG:
        SUFFIX(avg_pool2d_planes)(g, inc, c->x, c->y, lo, hi);
        break;
    case POOL_AVG_BACK:
        SUFFIX(avg_pool2d_back_planes)(g, inc, c->dy, c->dx, lo, hi);
        break;
    }
}

#undef POOL_CALL
