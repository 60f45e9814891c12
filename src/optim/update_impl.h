/* The optimisers' inner loops for one element type. optimizer.c includes
 * this file once per dtype, with REAL (float or double), SFX (f32 or f64)
 * and SQRT (sqrtf or sqrt) defined. Per element, with w the parameter and
 * dw its loss gradient:
 *
 *   g  = cs dw + l2 w + l1 sign(w)          (clipping factor, L2, L1)
 *   sgd       w = w - lr g
 *   momentum  v = mu v + g;  w = w - lr v            (classic)
 *             v = mu v + g;  w = w - lr (g + mu v)   (Nesterov)
 *   rmsprop   s = rho s + (1 - rho) g^2;  w = w - lr g / (sqrt(s) + eps)
 *   adam      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *             w = decay w - a m / (sqrt(v) ic2 + eps)
 *             a = lr / (1 - b1^t), ic2 = 1 / sqrt(1 - b2^t), so that
 *             a m / (sqrt(v) ic2 + eps) = lr mhat / (sqrt(vhat) + eps);
 *             decay = 1 - lr wd for AdamW, 1 for Adam.
 *
 * g comes in four forms fixed at compile time: dw itself (no clipping
 * factor, no regularisation: the common case costs nothing), cs dw, with L2
 * and with L1 too; each is a separate loop.
 *
 * The hyper-parameters arrive in double (struct hyper, computed once per
 * step) and are copied into REAL locals first: a store through a REAL
 * pointer could otherwise alias them and keep the compiler from hoisting
 * them out of the loop. Each loop is branch-free over restrict-qualified
 * arrays so that it vectorises; the square root vectorises only under
 * -fno-math-errno (sqrt may set errno, so by default it becomes a call
 * behind a test).
 *
 * Every loop is elementwise, so any split of a tensor into pieces (one per
 * thread) gives the same bits. The one reduction, the sum of squares, fixes
 * its own order: lanes of 32 float partial sums over blocks of 1024
 * elements, folded into 32 double lanes after each block, so at most 32
 * float roundings precede the double accumulation. Its result depends only
 * on the piece it is given, never on the vector width of the machine: the
 * lanes are explicit and the compiler may not reassociate them.
 */

#define OPT_CAT_(a, b) a##_##b
#define OPT_CAT(a, b) OPT_CAT_(a, b)
#define OPT_FN(name) OPT_CAT(name, SFX)

/* The gradient fed to the rule in the form `reg` (a constant at every call,
 * see OPT_REG_CASES). sign(w) is computed as selects of one width so the
 * comparison masks need no widening. */
static OPT_INLINE REAL OPT_FN(reg_grad)(REAL dw, REAL w, REAL cs, REAL l2,
                                        REAL l1, int reg)
{
    if (reg == REG_RAW)
        return dw;
    if (reg == REG_SCALED)
        return cs * dw;
    if (reg == REG_L2)
        return cs * dw + l2 * w;
    REAL sgn = (w > 0 ? (REAL)1 : (REAL)0) - (w < 0 ? (REAL)1 : (REAL)0);
    return cs * dw + l2 * w + l1 * sgn;
}

static OPT_INLINE void OPT_FN(sgd_body)(int64_t n, REAL *restrict w,
                                        const REAL *restrict dw,
                                        const struct hyper *h, int reg)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL lr = (REAL)h->lr;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        w[i] = w[i] - lr * g;
    }
}

static OPT_INLINE void OPT_FN(momentum_body)(int64_t n, REAL *restrict w,
                                             const REAL *restrict dw,
                                             REAL *restrict v,
                                             const struct hyper *h, int reg,
                                             int nesterov)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL lr = (REAL)h->lr, mu = (REAL)h->mu;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL vi = mu * v[i] + g;
        v[i] = vi;
        if (nesterov)
            w[i] = w[i] - lr * (g + mu * vi);
        else
            w[i] = w[i] - lr * vi;
    }
}

static OPT_INLINE void OPT_FN(rmsprop_body)(int64_t n, REAL *restrict w,
                                            const REAL *restrict dw,
                                            REAL *restrict s,
                                            const struct hyper *h, int reg)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL lr = (REAL)h->lr, eps = (REAL)h->eps;
    const REAL rho = (REAL)h->rho, crho = (REAL)h->crho;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL si = rho * s[i] + crho * g * g;
        s[i] = si;
        w[i] = w[i] - lr * g / (SQRT(si) + eps);
    }
}

static OPT_INLINE void OPT_FN(adam_body)(int64_t n, REAL *restrict w,
                                         const REAL *restrict dw,
                                         REAL *restrict m, REAL *restrict v,
                                         const struct hyper *h, int reg)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL b1 = (REAL)h->b1, c1 = (REAL)h->c1;
    const REAL b2 = (REAL)h->b2, c2 = (REAL)h->c2;
    const REAL a = (REAL)h->a, ic2 = (REAL)h->ic2, eps = (REAL)h->eps;
    const REAL decay = (REAL)h->decay;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL mi = b1 * m[i] + c1 * g;
        REAL vi = b2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        w[i] = decay * w[i] - a * mi / (SQRT(vi) * ic2 + eps);
    }
}

/* One entry point per rule, instantiating its body once per form of the
 * gradient (and of the momentum), compiled once per instruction set. */
OPT_CLONES
static void OPT_FN(sgd)(int64_t n, REAL *restrict w, const REAL *restrict dw,
                        const struct hyper *h)
{
    OPT_REG_CASES(h, OPT_FN(sgd_body)(n, w, dw, h, REG));
}

OPT_CLONES
static void OPT_FN(momentum)(int64_t n, REAL *restrict w,
                             const REAL *restrict dw, REAL *restrict v,
                             const struct hyper *h)
{
    if (h->nesterov)
        OPT_REG_CASES(h, OPT_FN(momentum_body)(n, w, dw, v, h, REG, 1));
    else
        OPT_REG_CASES(h, OPT_FN(momentum_body)(n, w, dw, v, h, REG, 0));
}

OPT_CLONES
static void OPT_FN(rmsprop)(int64_t n, REAL *restrict w,
                            const REAL *restrict dw, REAL *restrict s,
                            const struct hyper *h)
{
    OPT_REG_CASES(h, OPT_FN(rmsprop_body)(n, w, dw, s, h, REG));
}

OPT_CLONES
static void OPT_FN(adam)(int64_t n, REAL *restrict w, const REAL *restrict dw,
                         REAL *restrict m, REAL *restrict v,
                         const struct hyper *h)
{
    OPT_REG_CASES(h, OPT_FN(adam_body)(n, w, dw, m, v, h, REG));
}

/* Sum of squares in the fixed order described at the top. Float lanes for
 * f32 (squares summed in float, 32 terms per lane per block), double lanes
 * throughout for f64. More lanes than one vector holds keep several
 * additions in flight, so the loop runs at the speed of memory rather than
 * of the adder's latency. */
OPT_CLONES
static double OPT_FN(sum_squares)(int64_t n, const REAL *restrict x)
{
    double dacc[32] = {0};
    int64_t i = 0;
    while (n - i >= 32) {
        int64_t m = n - i < 1024 ? (n - i) / 32 * 32 : 1024;
        REAL acc[32] = {0};
        for (int64_t k = 0; k < m; k += 32)
            for (int j = 0; j < 32; j++)
                acc[j] += x[i + k + j] * x[i + k + j];
        for (int j = 0; j < 32; j++)
            dacc[j] += (double)acc[j];
        i += m;
    }
    double s = 0;
    for (int j = 0; j < 32; j++)
        s += dacc[j];
    for (; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return s;
}

/* The largest |x|, for the rescaled norm when the plain sum overflows. */
static double OPT_FN(max_abs)(int64_t n, const REAL *restrict x)
{
    double mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        mx = a > mx ? a : mx;
    }
    return mx;
}

static double OPT_FN(sum_squares_scaled)(int64_t n, const REAL *restrict x,
                                         double inv)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double y = (double)x[i] * inv;
        s += y * y;
    }
    return s;
}

static void OPT_FN(scale)(int64_t n, REAL *restrict x, double c)
{
    const REAL k = (REAL)c;
    for (int64_t i = 0; i < n; i++)
        x[i] = k * x[i];
}

#undef OPT_FN
#undef OPT_CAT
#undef OPT_CAT_
