/* Body of the normalisation kernels, included once per REAL (float,
 * double). The statistics are formed in double whatever REAL is: a channel
 * of a batch-64 feature map has tens of thousands of elements, too many
 * for a float running sum. Each channel (batch norm), row or column
 * (layer norm) is one item of nb_parallel_for (pool_norm.c). */

/* One normalisation call, for nb_parallel_for: batch norm's n, c, s or
 * layer norm's r rows of d. */
typedef struct {
    int kernel; /* BN_STATS... (pool_norm.c) */
    int64_t n, c, s, r, d;
    const REAL *x, *dy, *mean, *invstd, *gamma, *beta;
    bool batch_stats;
    double eps;
    REAL *y, *dx, *dgamma, *dbeta;
    REAL *mean_out, *stat_out; /* written: mean and variance or invstd */
} SUFFIX(norm_call);
#define NORM_CALL SUFFIX(norm_call)

static void SUFFIX(norm_items)(void *ctx, int64_t lo, int64_t hi, int thread,
                               int threads);

static void SUFFIX(bn_stats_channels)(int64_t n, int64_t c, int64_t s,
                                      const REAL *x, REAL *mean, REAL *var,
                                      int64_t lo, int64_t hi)
{
    double m = (double)(n * s);
    for (int64_t ch = lo; ch < hi; ch++) {
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            const REAL *xp = x + (i * c + ch) * s;
            for (int64_t k = 0; k < s; k++)
                sum += xp[k];
        }
        double mu = sum / m, sq = 0;
        for (int64_t i = 0; i < n; i++) {
            const REAL *xp = x + (i * c + ch) * s;
            for (int64_t k = 0; k < s; k++) {
                double e = xp[k] - mu;
                sq += e * e;
            }
        }
        mean[ch] = (REAL)mu;
        var[ch] = (REAL)(sq / m);
    }
}

void SUFFIX(nb_bn_stats)(int64_t n, int64_t c, int64_t s, const REAL *x,
                         REAL *mean, REAL *var)
{
    NORM_CALL call = {.kernel = BN_STATS,
                      .n = n,
                      .c = c,
                      .s = s,
                      .x = x,
                      .mean_out = mean,
                      .stat_out = var};
    RUN_ITEMS("batch_norm.stats", c, n * c * s, SUFFIX(norm_items), &call);
}

static void SUFFIX(bn_apply_channels)(int64_t n, int64_t c, int64_t s,
                                      const REAL *x, const REAL *mean,
                                      const REAL *invstd, const REAL *gamma,
                                      const REAL *beta, REAL *y, int64_t lo,
                                      int64_t hi)
{
    for (int64_t ch = lo; ch < hi; ch++) {
        REAL k = invstd[ch] * (gamma ? gamma[ch] : (REAL)1);
        REAL b = beta ? beta[ch] : (REAL)0, mu = mean[ch];
        for (int64_t i = 0; i < n; i++) {
            const REAL *xp = x + (i * c + ch) * s;
            REAL *yp = y + (i * c + ch) * s;
            for (int64_t j = 0; j < s; j++)
                yp[j] = (xp[j] - mu) * k + b;
        }
    }
}

void SUFFIX(nb_bn_apply)(int64_t n, int64_t c, int64_t s, const REAL *x,
                         const REAL *mean, const REAL *invstd,
                         const REAL *gamma, const REAL *beta, REAL *y)
{
    NORM_CALL call = {.kernel = BN_APPLY,
                      .n = n,
                      .c = c,
                      .s = s,
                      .x = x,
                      .mean = mean,
                      .invstd = invstd,
                      .gamma = gamma,
                      .beta = beta,
                      .y = y};
    RUN_ITEMS("batch_norm.apply", c, n * c * s, SUFFIX(norm_items), &call);
}

static void SUFFIX(bn_back_channels)(int64_t n, int64_t c, int64_t s,
                                     const REAL *x, const REAL *dy,
                                     const REAL *mean, const REAL *invstd,
                                     const REAL *gamma, bool batch_stats,
                                     REAL *dx, REAL *dgamma, REAL *dbeta,
                                     int64_t lo, int64_t hi)
{
    double m = (double)(n * s);
    for (int64_t ch = lo; ch < hi; ch++) {
        double G = 0, H = 0, mu = mean[ch], is = invstd[ch];
        for (int64_t i = 0; i < n; i++) {
            const REAL *xp = x + (i * c + ch) * s;
            const REAL *gp = dy + (i * c + ch) * s;
            for (int64_t k = 0; k < s; k++) {
                G += gp[k];
                H += gp[k] * ((xp[k] - mu) * is);
            }
        }
        if (dgamma)
            dgamma[ch] += (REAL)H;
        if (dbeta)
            dbeta[ch] += (REAL)G;
        if (!dx)
            continue;
        double k = is * (gamma ? (double)gamma[ch] : 1.0);
        double gm = batch_stats ? G / m : 0, hm = batch_stats ? H / m : 0;
        for (int64_t i = 0; i < n; i++) {
            const REAL *xp = x + (i * c + ch) * s;
            const REAL *gp = dy + (i * c + ch) * s;
            REAL *dp = dx + (i * c + ch) * s;
            for (int64_t j = 0; j < s; j++) {
                double xhat = (xp[j] - mu) * is;
                dp[j] += (REAL)(k * (gp[j] - gm - xhat * hm));
            }
        }
    }
}

void SUFFIX(nb_bn_back)(int64_t n, int64_t c, int64_t s, const REAL *x,
                        const REAL *dy, const REAL *mean, const REAL *invstd,
                        const REAL *gamma, bool batch_stats, REAL *dx,
                        REAL *dgamma, REAL *dbeta)
{
    NORM_CALL call = {.kernel = BN_BACK,
                      .n = n,
                      .c = c,
                      .s = s,
                      .x = x,
                      .dy = dy,
                      .mean = mean,
                      .invstd = invstd,
                      .gamma = gamma,
                      .batch_stats = batch_stats,
                      .dx = dx,
                      .dgamma = dgamma,
                      .dbeta = dbeta};
    RUN_ITEMS("batch_norm.backward", c, n * c * s, SUFFIX(norm_items), &call);
}

static void SUFFIX(ln_forward_rows)(int64_t d, const REAL *x, const REAL *gamma,
                                    const REAL *beta, double eps, REAL *y,
                                    REAL *mean, REAL *invstd, int64_t lo,
                                    int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        const REAL *xp = x + i * d;
        REAL *yp = y + i * d;
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < d; j++)
            sum += xp[j];
        double mu = sum / (double)d;
        for (int64_t j = 0; j < d; j++) {
            double e = xp[j] - mu;
            sq += e * e;
        }
        double is = 1.0 / sqrt(sq / (double)d + eps);
        mean[i] = (REAL)mu;
        invstd[i] = (REAL)is;
        for (int64_t j = 0; j < d; j++) {
            double v = (xp[j] - mu) * is;
            if (gamma)
                v = v * gamma[j] + beta[j];
            yp[j] = (REAL)v;
        }
    }
}

void SUFFIX(nb_ln_forward)(int64_t r, int64_t d, const REAL *x,
                           const REAL *gamma, const REAL *beta, double eps,
                           REAL *y, REAL *mean, REAL *invstd)
{
    NORM_CALL call = {.kernel = LN_FORWARD,
                      .r = r,
                      .d = d,
                      .x = x,
                      .gamma = gamma,
                      .beta = beta,
                      .eps = eps,
                      .y = y,
                      .mean_out = mean,
                      .stat_out = invstd};
    RUN_ITEMS("layer_norm.forward", r, r * d, SUFFIX(norm_items), &call);
}

static void SUFFIX(ln_back_rows)(int64_t d, const REAL *x, const REAL *dy,
                                 const REAL *mean, const REAL *invstd,
                                 const REAL *gamma, REAL *dx, int64_t lo,
                                 int64_t hi)
{
    for (int64_t i = lo; i < hi; i++) {
        const REAL *xp = x + i * d, *gp = dy + i * d;
        REAL *dp = dx + i * d;
        double mu = mean[i], is = invstd[i], A = 0, B = 0;
        for (int64_t j = 0; j < d; j++) {
            double g = gp[j] * (gamma ? (double)gamma[j] : 1.0);
            A += g;
            B += g * ((xp[j] - mu) * is);
        }
        A /= (double)d;
        B /= (double)d;
        for (int64_t j = 0; j < d; j++) {
            double g = gp[j] * (gamma ? (double)gamma[j] : 1.0);
            double xhat = (xp[j] - mu) * is;
            dp[j] += (REAL)(is * (g - A - xhat * B));
        }
    }
}

/* Column by column, rows in order: the same sums for any split. */
static void SUFFIX(ln_back_columns)(int64_t r, int64_t d, const REAL *x,
                                    const REAL *dy, const REAL *mean,
                                    const REAL *invstd, REAL *dgamma,
                                    REAL *dbeta, int64_t lo, int64_t hi)
{
    for (int64_t j = lo; j < hi; j++) {
        double G = 0, H = 0;
        for (int64_t i = 0; i < r; i++) {
            double g = dy[i * d + j];
            G += g;
            H += g * ((x[i * d + j] - (double)mean[i]) * invstd[i]);
        }
        if (dgamma)
            dgamma[j] += (REAL)H;
        if (dbeta)
            dbeta[j] += (REAL)G;
    }
}

void SUFFIX(nb_ln_back)(int64_t r, int64_t d, const REAL *x, const REAL *dy,
                        const REAL *mean, const REAL *invstd, const REAL *gamma,
                        REAL *dx, REAL *dgamma, REAL *dbeta)
{
    NORM_CALL call = {.r = r,
                      .d = d,
                      .x = x,
                      .dy = dy,
                      .mean = mean,
                      .invstd = invstd,
                      .gamma = gamma,
                      .dx = dx,
                      .dgamma = dgamma,
                      .dbeta = dbeta};
    if (dx) {
        call.kernel = LN_BACK_ROWS;
        RUN_ITEMS("layer_norm.backward", r, r * d, SUFFIX(norm_items), &call);
    }
    if (dgamma || dbeta) {
        call.kernel = LN_BACK_COLUMNS;
        RUN_ITEMS("layer_norm.param_grads", d, r * d, SUFFIX(norm_items),
                  &call);
    }
}

/* The body of every normalisation call: items [lo, hi) of its kernel. */
static void SUFFIX(norm_items)(void *ctx, int64_t lo, int64_t hi, int thread,
                               int threads)
{
    (void)thread;
    (void)threads;
    const NORM_CALL *k = ctx;
    switch (k->kernel) {
    case BN_STATS:
        SUFFIX(bn_stats_channels)
        (k->n, k->c, k->s, k->x, k->mean_out, k->stat_out, lo, hi);
        break;
    case BN_APPLY:
        SUFFIX(bn_apply_channels)
        (k->n, k->c, k->s, k->x, k->mean, k->invstd, k->gamma, k->beta, k->y,
         lo, hi);
        break;
    case BN_BACK:
        SUFFIX(bn_back_channels)
        (k->n, k->c, k->s, k->x, k->dy, k->mean, k->invstd, k->gamma,
         k->batch_stats, k->dx, k->dgamma, k->dbeta, lo, hi);
        break;
    case LN_FORWARD:
        SUFFIX(ln_forward_rows)
        (k->d, k->x, k->gamma, k->beta, k->eps, k->y, k->mean_out, k->stat_out,
         lo, hi);
        break;
    case LN_BACK_ROWS:
        SUFFIX(ln_back_rows)
        (k->d, k->x, k->dy, k->mean, k->invstd, k->gamma, k->dx, lo, hi);
        break;
    case LN_BACK_COLUMNS:
        SUFFIX(ln_back_columns)
        (k->r, k->d, k->x, k->dy, k->mean, k->invstd, k->dgamma, k->dbeta, lo,
         hi);
        break;
    }
}

#undef NORM_CALL
