/* The optimisers' update loops for one element type. step.c includes
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
 * thread) gives the same bits.
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

/* Each body either stores its results (store = 1) or only computes them
 * and returns whether any would be non-finite (store = 0): the step's
 * check, the same arithmetic as the update so that it predicts exactly
 * what the update would write. */
static OPT_INLINE int OPT_FN(sgd_body)(int64_t n, REAL *restrict w,
                                       const REAL *restrict dw,
                                       const struct hyper *h, int reg,
                                       int store)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL lr = (REAL)h->lr;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL wi = w[i] - lr * g;
        if (store)
            w[i] = wi;
        else
            bad |= OPT_NONFINITE(wi);
    }
    return bad;
}

static OPT_INLINE int OPT_FN(momentum_body)(int64_t n, REAL *restrict w,
                                            const REAL *restrict dw,
                                            REAL *restrict v,
                                            const struct hyper *h, int reg,
                                            int nesterov, int store)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL lr = (REAL)h->lr, mu = (REAL)h->mu;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL vi = mu * v[i] + g;
        REAL wi = nesterov ? w[i] - lr * (g + mu * vi) : w[i] - lr * vi;
        if (store) {
            v[i] = vi;
            w[i] = wi;
        } else {
            bad |= OPT_NONFINITE(vi) | OPT_NONFINITE(wi);
        }
    }
    return bad;
}

static OPT_INLINE int OPT_FN(rmsprop_body)(int64_t n, REAL *restrict w,
                                           const REAL *restrict dw,
                                           REAL *restrict s,
                                           const struct hyper *h, int reg,
                                           int store)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL lr = (REAL)h->lr, eps = (REAL)h->eps;
    const REAL rho = (REAL)h->rho, crho = (REAL)h->crho;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL si = rho * s[i] + crho * g * g;
        REAL wi = w[i] - lr * g / (SQRT(si) + eps);
        if (store) {
            s[i] = si;
            w[i] = wi;
        } else {
            bad |= OPT_NONFINITE(si) | OPT_NONFINITE(wi);
        }
    }
    return bad;
}

static OPT_INLINE int OPT_FN(adam_body)(int64_t n, REAL *restrict w,
                                        const REAL *restrict dw,
                                        REAL *restrict m, REAL *restrict v,
                                        const struct hyper *h, int reg,
                                        int store)
{
    const REAL cs = (REAL)h->cs, l2 = (REAL)h->l2, l1 = (REAL)h->l1;
    const REAL b1 = (REAL)h->b1, c1 = (REAL)h->c1;
    const REAL b2 = (REAL)h->b2, c2 = (REAL)h->c2;
    const REAL a = (REAL)h->a, ic2 = (REAL)h->ic2, eps = (REAL)h->eps;
    const REAL decay = (REAL)h->decay;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        REAL g = OPT_FN(reg_grad)(dw[i], w[i], cs, l2, l1, reg);
        REAL mi = b1 * m[i] + c1 * g;
        REAL vi = b2 * v[i] + c2 * g * g;
        REAL wi = decay * w[i] - a * mi / (SQRT(vi) * ic2 + eps);
        if (store) {
            m[i] = mi;
            v[i] = vi;
            w[i] = wi;
        } else {
            bad |= OPT_NONFINITE(mi) | OPT_NONFINITE(vi) | OPT_NONFINITE(wi);
        }
    }
    return bad;
}

/* One entry point per rule, instantiating its body once per form of the
 * gradient (and of the momentum), compiled once per instruction set.
 * store = 1 updates and returns 0; store = 0 writes nothing (the arrays
 * are only read) and returns 1 if some result would be non-finite. */
OPT_CLONES
static int OPT_FN(sgd)(int64_t n, REAL *restrict w, const REAL *restrict dw,
                       const struct hyper *h, int store)
{
    int bad = 0;
    if (store)
        OPT_REG_CASES(h, bad = OPT_FN(sgd_body)(n, w, dw, h, REG, 1));
    else
        OPT_REG_CASES(h, bad = OPT_FN(sgd_body)(n, w, dw, h, REG, 0));
    return bad;
}

OPT_CLONES
static int OPT_FN(momentum)(int64_t n, REAL *restrict w,
                            const REAL *restrict dw, REAL *restrict v,
                            const struct hyper *h, int store)
{
    int bad = 0;
    if (h->nesterov && store)
        OPT_REG_CASES(h, bad = OPT_FN(momentum_body)(n, w, dw, v, h, REG, 1, 1));
    else if (h->nesterov)
        OPT_REG_CASES(h, bad = OPT_FN(momentum_body)(n, w, dw, v, h, REG, 1, 0));
    else if (store)
        OPT_REG_CASES(h, bad = OPT_FN(momentum_body)(n, w, dw, v, h, REG, 0, 1));
    else
        OPT_REG_CASES(h, bad = OPT_FN(momentum_body)(n, w, dw, v, h, REG, 0, 0));
    return bad;
}

OPT_CLONES
static int OPT_FN(rmsprop)(int64_t n, REAL *restrict w,
                           const REAL *restrict dw, REAL *restrict s,
                           const struct hyper *h, int store)
{
    int bad = 0;
    if (store)
        OPT_REG_CASES(h, bad = OPT_FN(rmsprop_body)(n, w, dw, s, h, REG, 1));
    else
        OPT_REG_CASES(h, bad = OPT_FN(rmsprop_body)(n, w, dw, s, h, REG, 0));
    return bad;
}

OPT_CLONES
static int OPT_FN(adam)(int64_t n, REAL *restrict w, const REAL *restrict dw,
                        REAL *restrict m, REAL *restrict v,
                        const struct hyper *h, int store)
{
    int bad = 0;
    if (store)
        OPT_REG_CASES(h, bad = OPT_FN(adam_body)(n, w, dw, m, v, h, REG, 1));
    else
        OPT_REG_CASES(h, bad = OPT_FN(adam_body)(n, w, dw, m, v, h, REG, 0));
    return bad;
}

#undef OPT_FN
#undef OPT_CAT
#undef OPT_CAT_
