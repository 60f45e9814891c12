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
    const REAL *x, *dy;
    REAL *y, *dx;
    int64_t *arg;          /* max forward: where each maximum was */
    const int64_t *arg_in; /* max backward: the same, read */
} SUFFIX(pool_call);
#define POOL_CALL SUFFIX(pool_call)

/* Input and output elements of the call: its work for nb_parallel_for. */
static int64_t SUFFIX(pool_work)(const nb_pool2d_geom *g)
{
    return g->planes * (g->h * g->w + g->oh * g->ow);
}

static void SUFFIX(pool_planes)(void *ctx, int64_t lo, int64_t hi, int thread,
                                int threads);

static void SUFFIX(max_pool2d_planes)(const nb_pool2d_geom *g, const REAL *x,
                                      REAL *y, int64_t *arg, int64_t lo,
                                      int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t p = lo; p < hi; p++) {
        const REAL *xp = x + p * in_plane;
        REAL *yp = y + p * out_plane;
        int64_t *ap = arg + p * out_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0, r1;
            SUFFIX(taps)(i, g->sh, g->ph, g->dh, g->kh, g->h, &r0, &r1);
            int64_t row0 = i * g->sh - g->ph;
            for (int64_t j = 0; j < g->ow; j++) {
                int64_t c0, c1;
                SUFFIX(taps)(j, g->sw, g->pw, g->dw, g->kw, g->w, &c0, &c1);
                int64_t col0 = j * g->sw - g->pw;
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
                yp[i * g->ow + j] = best;
                ap[i * g->ow + j] = at;
            }
        }
    }
}

void SUFFIX(nb_max_pool2d)(const nb_pool2d_geom *g, const REAL *x, REAL *y,
                           int64_t *arg)
{
    POOL_CALL c = {.kernel = POOL_MAX, .g = g, .x = x, .y = y, .arg = arg};
    RUN_ITEMS("pool.max_forward", g->planes, SUFFIX(pool_work)(g),
              SUFFIX(pool_planes), &c);
}

static void SUFFIX(max_pool2d_back_planes)(const nb_pool2d_geom *g,
                                           const REAL *dy, const int64_t *arg,
                                           REAL *dx, int64_t lo, int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t p = lo; p < hi; p++) {
        const REAL *dyp = dy + p * out_plane;
        const int64_t *ap = arg + p * out_plane;
        REAL *dxp = dx + p * in_plane;
        for (int64_t o = 0; o < out_plane; o++)
            if (ap[o] >= 0)
                dxp[ap[o]] += dyp[o];
    }
}

void SUFFIX(nb_max_pool2d_back)(const nb_pool2d_geom *g, const REAL *dy,
                                const int64_t *arg, REAL *dx)
{
    POOL_CALL c = {
        .kernel = POOL_MAX_BACK, .g = g, .dy = dy, .arg_in = arg, .dx = dx};
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

static void SUFFIX(avg_pool2d_planes)(const nb_pool2d_geom *g,
                                      bool count_include_pad, const REAL *x,
                                      REAL *y, int64_t lo, int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t p = lo; p < hi; p++) {
        const REAL *xp = x + p * in_plane;
        REAL *yp = y + p * out_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t row0 = i * g->sh - g->ph;
            for (int64_t j = 0; j < g->ow; j++) {
                int64_t r0, r1, c0, c1, col0 = j * g->sw - g->pw;
                REAL scale = SUFFIX(avg_window)(g, count_include_pad, i, j, &r0,
                                                &r1, &c0, &c1);
                REAL s = 0;
                for (int64_t a = r0; a < r1; a++) {
                    const REAL *row = xp + (row0 + a) * g->w + col0;
                    for (int64_t b = c0; b < c1; b++)
                        s += row[b];
                }
                yp[i * g->ow + j] = s * scale;
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

static void SUFFIX(avg_pool2d_back_planes)(const nb_pool2d_geom *g,
                                           bool count_include_pad,
                                           const REAL *dy, REAL *dx, int64_t lo,
                                           int64_t hi)
{
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t p = lo; p < hi; p++) {
        const REAL *dyp = dy + p * out_plane;
        REAL *dxp = dx + p * in_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t row0 = i * g->sh - g->ph;
            for (int64_t j = 0; j < g->ow; j++) {
                int64_t r0, r1, c0, c1, col0 = j * g->sw - g->pw;
                REAL v = dyp[i * g->ow + j] *
                         SUFFIX(avg_window)(g, count_include_pad, i, j, &r0,
                                            &r1, &c0, &c1);
                for (int64_t a = r0; a < r1; a++) {
                    REAL *row = dxp + (row0 + a) * g->w + col0;
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
        SUFFIX(max_pool2d_back_planes)(g, c->dy, c->arg_in, c->dx, lo, hi);
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
