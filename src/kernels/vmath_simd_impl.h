/* Body of the SIMD elementwise kernels, written once and included by one
 * source file per instruction set and per REAL. The includer defines:
 *
 *   REAL, VEC, MASK, WIDTH       element type, vector type, comparison
 *                                result, lanes per vector
 *   NAME(kernel)                 public name of a kernel for this ISA/REAL
 *   V_LOAD V_STORE V_SET1        unaligned load/store, broadcast
 *   V_FIRST                      lane 0 as a scalar
 *   V_ADD V_SUB V_MUL V_DIV      arithmetic
 *   V_MUL_ADD(a, b, c)           a * b + c (fused where the ISA has FMA)
 *   V_MUL_ERR(a, b, p)           the exact rounding error a * b - p of
 *                                p = fl(a * b)
 *   V_MAX V_MIN                  as the x86 instructions: (a > b ? a : b),
 *                                so the SECOND operand wins when either is
 *                                NaN; we always pass x second to keep NaN
 *   V_AND V_OR V_XOR             bitwise
 *   V_LT V_GT V_GE               ordered comparisons -> MASK
 *   V_SELECT(m, t, f)            m ? t : f per lane
 *   V_EXP V_LOG V_LOG1P V_EXPM1 V_ERFC V_TANH    SLEEF functions
 *   TANH_FROM_EXP                defined to build tanh from exp (f32)
 *
 * and the template undefines all of them at its end, so the next REAL can
 * be set up from scratch.
 *
 *   V_LOAD_PART(p, len), V_STORE_PART(p, v, len)    optional: the first
 *                                len (0 < len < WIDTH) lanes from / to
 *                                memory, the others loaded as zero, with
 *                                masked moves (AVX2, AVX-512)
 *
 * Tails (n % WIDTH elements) run through the same vector code on a zero-
 * padded vector, so an element's result never depends on its position in
 * the array. The ISA's masked moves make that vector where it has them;
 * otherwise it goes through a zero-padded copy in a local buffer. A tensor
 * shorter than a vector (a tiny graph's every tensor) is all tail, and
 * the buffer's two library copies cost more than the arithmetic.
 *
 * Formulas, arranged to stay finite and accurate at the extremes:
 *   sigmoid(x)  = 1/(1+e) for x >= 0, e/(1+e) for x < 0, e = exp(-|x|);
 *                 exp never overflows, so sigmoid(-1000) = 0 exactly
 *   softplus(x) = max(x, 0) + log1p(exp(-|x|))
 *   tanh(x)     = sign(x) (1 - 2/(exp(2|x|)+1)) for |x| >= 0.625, an odd
 *                 polynomial below, where that subtraction would cancel
 *   gelu(x)     = x/2 erfc(-x/sqrt 2); erfc instead of 1 + erf keeps the
 *                 relative accuracy for negative x, and -x/sqrt 2 is
 *                 carried as hi + lo because erfc's steep tail multiplies
 *                 the relative rounding error of its argument by 2 y^2
 *   gelu'(x)    = Phi(x) + x phi(x)
 *   silu'(x)    = s (1 + x (1 - s)), with s and 1 - s both taken from e so
 *                 that neither is computed as 1 minus something close to 1
 *   selu, elu   = x for x > 0, scale * expm1(x) otherwise
 * Inputs are clamped where a product would otherwise form inf * 0 (gelu at
 * -inf, silu at -inf, the derivatives at +-inf); the clamps sit where the
 * result has already reached its limit in both precisions.
 */

#define K(name) NAME(name##_one)

/* -|x| and copysign for a non-negative magnitude */
#define SIGN_BIT V_SET1((REAL)-0.0)
#define NEG_ABS(x) V_OR((x), SIGN_BIT)
#define WITH_SIGN_OF(mag, x) V_OR((mag), V_AND((x), SIGN_BIT))

static inline VEC K(exp)(VEC x)
{
    return V_EXP(x);
}

static inline VEC K(log)(VEC x)
{
    return V_LOG(x);
}

static inline VEC K(tanh)(VEC x)
{
#ifdef TANH_FROM_EXP
    /* Odd polynomial x + x u P(u), u = x^2, fitted to tanh on [0, 0.625]
     * (Chebyshev fit, relative error 2e-9). Above 0.625, tanh > 0.55 and
     * 2/(e+1) < 0.45, so the subtraction loses no more than a bit. */
    const VEC one = V_SET1((REAL)1);
    VEC ax = V_XOR(x, V_AND(x, SIGN_BIT));
    VEC u = V_MUL(ax, ax);
    VEC p = V_SET1((REAL)0.00229274481618);
    p = V_MUL_ADD(p, u, V_SET1((REAL)-0.00834394551584));
    p = V_MUL_ADD(p, u, V_SET1((REAL)0.021768918651));
    p = V_MUL_ADD(p, u, V_SET1((REAL)-0.0539592595772));
    p = V_MUL_ADD(p, u, V_SET1((REAL)0.133333035569));
    p = V_MUL_ADD(p, u, V_SET1((REAL)-0.333333331721));
    VEC small = V_MUL_ADD(V_MUL(ax, u), p, ax);
    VEC e = V_EXP(V_ADD(ax, ax));
    VEC large = V_SUB(one, V_DIV(V_SET1((REAL)2), V_ADD(e, one)));
    return WITH_SIGN_OF(V_SELECT(V_LT(ax, V_SET1((REAL)0.625)), small, large),
                        x);
#else
    return V_TANH(x);
#endif
}

/* Sigmoid of x and of -x (= 1 - sigmoid(x)), each to full relative
 * accuracy. r = 1/(1+e) gets one Newton step against the exact 1 + e
 * (rounded sum plus its error), so r is good to about half an ulp and
 * e * r to about two, leaving room for what silu' builds on them. */
static inline void K(sigmoid_pair)(VEC x, VEC *s, VEC *s_neg)
{
    const VEC one = V_SET1((REAL)1);
    VEC e = V_EXP(NEG_ABS(x));
    VEC sum = V_ADD(one, e);
    VEC sum_err = V_SUB(e, V_SUB(sum, one)); /* exact: e <= 1 */
    VEC r = V_DIV(one, sum);
    VEC p = V_MUL(sum, r);
    /* 1 - (sum + sum_err) r; 1 - p is exact as p is within an ulp of 1 */
    VEC residual =
        V_SUB(V_SUB(V_SUB(one, p), V_MUL_ERR(sum, r, p)), V_MUL(sum_err, r));
    r = V_MUL_ADD(r, residual, r);
    VEC er = V_MUL(e, r);
    MASK nonneg = V_GE(x, V_SET1((REAL)0));
    *s = V_SELECT(nonneg, r, er);
    *s_neg = V_SELECT(nonneg, er, r);
}

/* Sigmoid for silu, which multiplies it by x: the Newton-corrected r. */
static inline VEC K(sigmoid_accurate)(VEC x)
{
    VEC s, s_neg;
    K(sigmoid_pair)(x, &s, &s_neg);
    return s;
}

/* Sigmoid on its own: the division is correctly rounded, so r = 1/(1+e)
 * is within an ulp and e r within about three, inside the kernels' 4-ulp
 * bound, without the Newton step that costs half the time. */
static inline VEC K(sigmoid)(VEC x)
{
    const VEC one = V_SET1((REAL)1);
    VEC e = V_EXP(NEG_ABS(x));
    VEC r = V_DIV(one, V_ADD(one, e));
    return V_SELECT(V_GE(x, V_SET1((REAL)0)), r, V_MUL(e, r));
}

static inline VEC K(softplus)(VEC x)
{
    VEC e = V_EXP(NEG_ABS(x));
    return V_ADD(V_MAX(V_SET1((REAL)0), x), V_LOG1P(e));
}

static inline VEC K(selu)(VEC x)
{
    const REAL lambda = (REAL)1.0507009873554804934193349852946;
    const REAL lambda_alpha = (REAL)(1.0507009873554804934193349852946 *
                                     1.6732632423543772848170429916717);
    VEC neg = V_MUL(V_SET1(lambda_alpha), V_EXPM1(x));
    return V_SELECT(V_GT(x, V_SET1((REAL)0)), V_MUL(V_SET1(lambda), x), neg);
}

static inline VEC K(elu)(VEC x, VEC alpha)
{
    return V_SELECT(V_GT(x, V_SET1((REAL)0)), x, V_MUL(alpha, V_EXPM1(x)));
}

/* 2 Phi(x) = erfc(-x/sqrt 2) for x already clamped to [-40, 40].
 * exp_half_sq must be exp(-x^2/2) to a few ulp; it only scales the small
 * first-order correction for the lo part of the argument. */
static inline VEC K(two_cdf)(VEC xc, VEC exp_half_sq)
{
    const VEC neg_inv_sqrt2_hi = V_SET1((REAL)-0.70710678118654752440);
    const VEC neg_inv_sqrt2_lo =
        V_SET1(sizeof(REAL) == sizeof(float) ? (REAL)-1.2101617104478969362e-8
                                             : (REAL)4.8336466567264565186e-17);
    VEC y_hi = V_MUL(xc, neg_inv_sqrt2_hi);
    VEC y_lo =
        V_MUL_ADD(xc, neg_inv_sqrt2_lo, V_MUL_ERR(xc, neg_inv_sqrt2_hi, y_hi));
    /* erfc(y_hi + y_lo) = erfc(y_hi) - y_lo 2/sqrt(pi) exp(-y_hi^2) + ... */
    VEC slope =
        V_MUL(V_SET1((REAL)1.128379167095512573896158903121545), exp_half_sq);
    return V_SUB(V_ERFC(y_hi), V_MUL(y_lo, slope));
}

#define GELU_CLAMP ((REAL)40)

static inline VEC K(gelu)(VEC x)
{
    VEC lo_clamped = V_MAX(V_SET1(-GELU_CLAMP), x);
    VEC xc = V_MIN(V_SET1(GELU_CLAMP), lo_clamped);
    VEC g = V_MUL(xc, xc);
    VEC two_cdf = K(two_cdf)(xc, V_EXP(V_MUL(V_SET1((REAL)-0.5), g)));
    /* above the clamp erfc is 2: x/2 * 2 keeps gelu(+inf) = +inf */
    return V_MUL(V_MUL(V_SET1((REAL)0.5), lo_clamped), two_cdf);
}

static inline VEC K(gelu_grad)(VEC x)
{
    VEC xc = V_MIN(V_SET1(GELU_CLAMP), V_MAX(V_SET1(-GELU_CLAMP), x));
    /* exp(-x^2/2) with x^2 = sq + sq_err exactly: the exponent's rounding
     * would otherwise cost |x^2/2| ulps */
    VEC sq = V_MUL(xc, xc);
    VEC sq_err = V_MUL_ERR(xc, xc, sq);
    const VEC minus_half = V_SET1((REAL)-0.5);
    VEC gauss = V_EXP(V_MUL(minus_half, sq));
    gauss = V_MUL_ADD(V_MUL(gauss, minus_half), sq_err, gauss);
    VEC cdf = V_MUL(V_SET1((REAL)0.5), K(two_cdf)(xc, gauss));
    /* pdf = (c_hi + c_lo) gauss = pdf_hi + pdf_lo, c = 1/sqrt(2 pi): x pdf
     * nearly cancels cdf for negative x, so it gets no rounding of its own */
    const VEC c_hi = V_SET1((REAL)0.3989422804014326779399460599343819);
    const VEC c_lo = V_SET1(sizeof(REAL) == sizeof(float)
                                ? (REAL)-1.133517010526317894e-8
                                : (REAL)-2.4923272022777300786e-17);
    VEC pdf_hi = V_MUL(c_hi, gauss);
    VEC pdf_lo = V_MUL_ADD(c_lo, gauss, V_MUL_ERR(c_hi, gauss, pdf_hi));
    return V_MUL_ADD(xc, pdf_hi, V_MUL_ADD(xc, pdf_lo, cdf));
}

/* Below -800 every silu value and slope has underflowed to -0 / 0 in both
 * precisions; the clamp keeps -inf from meeting sigmoid's 0. Above +800
 * the slope is exactly 1. */
#define SILU_CLAMP ((REAL)800)

static inline VEC K(silu)(VEC x)
{
    VEC xc = V_MAX(V_SET1(-SILU_CLAMP), x);
    return V_MUL(xc, K(sigmoid_accurate)(xc));
}

static inline VEC K(silu_grad)(VEC x)
{
    VEC xc = V_MIN(V_SET1(SILU_CLAMP), V_MAX(V_SET1(-SILU_CLAMP), x));
    VEC s, s_neg;
    K(sigmoid_pair)(xc, &s, &s_neg);
    return V_MUL(s, V_MUL_ADD(xc, s_neg, V_SET1((REAL)1)));
}

static inline VEC K(softplus_grad)(VEC x)
{
    return K(sigmoid)(x);
}

/* ---- loops ---- */

/* A tail of len lanes, 0 < len < WIDTH: loaded zero-padded, stored in
 * part. */
static inline VEC K(load_part)(const REAL *p, int64_t len)
{
#ifdef V_LOAD_PART
    return V_LOAD_PART(p, len);
#else
    REAL buf[WIDTH] = {0};
    memcpy(buf, p, (size_t)len * sizeof(REAL));
    return V_LOAD(buf);
#endif
}

static inline void K(store_part)(REAL *p, VEC v, int64_t len)
{
#ifdef V_STORE_PART
    V_STORE_PART(p, v, len);
#else
    REAL buf[WIDTH];
    V_STORE(buf, v);
    memcpy(p, buf, (size_t)len * sizeof(REAL));
#endif
}

/* One element goes from and to a register: a masked load cannot take its
 * data from a store still in flight, so a chain of one-element ops (a
 * scalar graph) would wait at every node for the last one's store to
 * land. Lane 0 computes what it would in any other vector, so the bits
 * are the same. */
#define UNARY_KERNEL(name)                                                     \
    void NAME(nb_vm_##name)(int64_t n, const REAL *x, REAL *y)                 \
    {                                                                          \
        if (n == 1) {                                                          \
            *y = V_FIRST(K(name)(V_SET1(*x)));                                 \
            return;                                                            \
        }                                                                      \
        int64_t i = 0;                                                         \
        for (; i + WIDTH <= n; i += WIDTH)                                     \
            V_STORE(y + i, K(name)(V_LOAD(x + i)));                            \
        if (i < n)                                                             \
            K(store_part)(y + i, K(name)(K(load_part)(x + i, n - i)), n - i);  \
    }
NB_VM_UNARY(UNARY_KERNEL)
#undef UNARY_KERNEL

void NAME(nb_vm_elu)(int64_t n, REAL alpha, const REAL *x, REAL *y)
{
    VEC valpha = V_SET1(alpha);
    int64_t i = 0;
    for (; i + WIDTH <= n; i += WIDTH)
        V_STORE(y + i, K(elu)(V_LOAD(x + i), valpha));
    if (i < n)
        K(store_part)(y + i, K(elu)(K(load_part)(x + i, n - i), valpha),
                      n - i);
}

/* One vector of LSTM units: gates at a + q ld (q = i, f, g, o). The sum
 * is a product plus a product, not a fused multiply-add, as in the
 * composite cell built from the mul and add ops. */
static inline void K(lstm_cell)(REAL *a, int64_t ld, const REAL *cp, REAL *c,
                                REAL *tc, REAL *h)
{
    VEC i = K(sigmoid)(V_LOAD(a)), f = K(sigmoid)(V_LOAD(a + ld));
    VEC g = K(tanh)(V_LOAD(a + 2 * ld)), o = K(sigmoid)(V_LOAD(a + 3 * ld));
    V_STORE(a, i);
    V_STORE(a + ld, f);
    V_STORE(a + 2 * ld, g);
    V_STORE(a + 3 * ld, o);
    VEC cv = V_ADD(V_MUL(f, V_LOAD(cp)), V_MUL(i, g));
    VEC t = K(tanh)(cv);
    V_STORE(c, cv);
    V_STORE(tc, t);
    V_STORE(h, V_MUL(o, t));
}

void NAME(nb_vm_lstm_cell)(int64_t n, REAL *a, const REAL *cp, REAL *c,
                           REAL *tc, REAL *h)
{
    int64_t j = 0;
    for (; j + WIDTH <= n; j += WIDTH)
        K(lstm_cell)(a + j, n, cp + j, c + j, tc + j, h + j);
    if (j < n) {
        REAL ba[4 * WIDTH] = {0}, bcp[WIDTH] = {0};
        REAL bc[WIDTH], btc[WIDTH], bh[WIDTH];
        size_t bytes = (size_t)(n - j) * sizeof(REAL);
        for (int q = 0; q < 4; q++)
            memcpy(ba + q * WIDTH, a + q * n + j, bytes);
        memcpy(bcp, cp + j, bytes);
        K(lstm_cell)(ba, WIDTH, bcp, bc, btc, bh);
        for (int q = 0; q < 4; q++)
            memcpy(a + q * n + j, ba + q * WIDTH, bytes);
        memcpy(c + j, bc, bytes);
        memcpy(tc + j, btc, bytes);
        memcpy(h + j, bh, bytes);
    }
}

/* LSTM backward of one vector of units (kernels.h, nb_vm_lstm_cell_back):
 * the products in the order of the scalar loop, so every ISA gives the
 * scalar bits. */
static inline void K(lstm_back)(const REAL *a, int64_t ld, const REAL *cp,
                                const REAL *tc, const REAL *dy,
                                const REAL *dhn, REAL *dc, REAL *da,
                                REAL *da2)
{
    VEC one = V_SET1((REAL)1);
    VEC gi = V_LOAD(a), gf = V_LOAD(a + ld), gg = V_LOAD(a + 2 * ld);
    VEC go = V_LOAD(a + 3 * ld), t = V_LOAD(tc);
    VEC dh = V_ADD(V_LOAD(dy), V_LOAD(dhn));
    VEC d = V_ADD(V_LOAD(dc),
                  V_MUL(V_MUL(dh, go), V_SUB(one, V_MUL(t, t))));
    VEC di = V_MUL(V_MUL(V_MUL(d, gg), gi), V_SUB(one, gi));
    VEC df = V_MUL(V_MUL(V_MUL(d, V_LOAD(cp)), gf), V_SUB(one, gf));
    VEC dg = V_MUL(V_MUL(d, gi), V_SUB(one, V_MUL(gg, gg)));
    VEC dout = V_MUL(V_MUL(V_MUL(dh, t), go), V_SUB(one, go));
    V_STORE(da, di);
    V_STORE(da + ld, df);
    V_STORE(da + 2 * ld, dg);
    V_STORE(da + 3 * ld, dout);
    V_STORE(da2, di);
    V_STORE(da2 + ld, df);
    V_STORE(da2 + 2 * ld, dg);
    V_STORE(da2 + 3 * ld, dout);
    V_STORE(dc, V_MUL(d, gf));
}

void NAME(nb_vm_lstm_cell_back)(int64_t n, const REAL *a, const REAL *cp,
                                const REAL *tc, const REAL *dy,
                                const REAL *dhn, REAL *dc, REAL *da,
                                REAL *da2)
{
    int64_t j = 0;
    for (; j + WIDTH <= n; j += WIDTH)
        K(lstm_back)(a + j, n, cp + j, tc + j, dy + j, dhn + j, dc + j,
                     da + j, da2 + j);
    if (j < n) {
        REAL ba[4 * WIDTH] = {0}, bcp[WIDTH] = {0}, btc[WIDTH] = {0};
        REAL bdy[WIDTH] = {0}, bdhn[WIDTH] = {0}, bdc[WIDTH] = {0};
        REAL bda[4 * WIDTH], bda2[4 * WIDTH];
        size_t bytes = (size_t)(n - j) * sizeof(REAL);
        for (int q = 0; q < 4; q++)
            memcpy(ba + q * WIDTH, a + q * n + j, bytes);
        memcpy(bcp, cp + j, bytes);
        memcpy(btc, tc + j, bytes);
        memcpy(bdy, dy + j, bytes);
        memcpy(bdhn, dhn + j, bytes);
        memcpy(bdc, dc + j, bytes);
        K(lstm_back)(ba, WIDTH, bcp, btc, bdy, bdhn, bdc, bda, bda2);
        for (int q = 0; q < 4; q++) {
            memcpy(da + q * n + j, bda + q * WIDTH, bytes);
            memcpy(da2 + q * n + j, bda + q * WIDTH, bytes);
        }
        memcpy(dc + j, bdc, bytes);
    }
}

/* GRU backward of one vector of units (kernels.h, nb_vm_gru_cell_back),
 * in the order of the scalar loop. */
static inline void K(gru_back)(const REAL *a, int64_t ld, const REAL *hn,
                               const REAL *hp, const REAL *dy, REAL *dhn,
                               REAL *da, REAL *dah, REAL *dah2)
{
    VEC one = V_SET1((REAL)1);
    VEC r = V_LOAD(a), z = V_LOAD(a + ld), nn = V_LOAD(a + 2 * ld);
    VEC dh = V_ADD(V_LOAD(dy), V_LOAD(dhn));
    VEC dn = V_MUL(dh, V_SUB(one, z));
    VEC dz = V_MUL(dh, V_SUB(V_LOAD(hp), nn));
    VEC dan = V_MUL(dn, V_SUB(one, V_MUL(nn, nn)));
    VEC dar = V_MUL(V_MUL(V_MUL(dan, V_LOAD(hn)), r), V_SUB(one, r));
    VEC daz = V_MUL(V_MUL(dz, z), V_SUB(one, z));
    VEC dhr = V_MUL(dan, r);
    V_STORE(da, dar);
    V_STORE(da + ld, daz);
    V_STORE(da + 2 * ld, dan);
    V_STORE(dah, dar);
    V_STORE(dah + ld, daz);
    V_STORE(dah + 2 * ld, dhr);
    V_STORE(dah2, dar);
    V_STORE(dah2 + ld, daz);
    V_STORE(dah2 + 2 * ld, dhr);
    V_STORE(dhn, V_MUL(dh, z));
}

void NAME(nb_vm_gru_cell_back)(int64_t n, const REAL *a, const REAL *hn,
                               const REAL *hp, const REAL *dy, REAL *dhn,
                               REAL *da, REAL *dah, REAL *dah2)
{
    int64_t j = 0;
    for (; j + WIDTH <= n; j += WIDTH)
        K(gru_back)(a + j, n, hn + j, hp + j, dy + j, dhn + j, da + j,
                    dah + j, dah2 + j);
    if (j < n) {
        /* the tail through zero-padded copies, 3 gates then 3 vectors */
        REAL in[6 * WIDTH] = {0}, out[10 * WIDTH] = {0};
        size_t bytes = (size_t)(n - j) * sizeof(REAL);
        const REAL *src[6] = {a + j, a + n + j, a + 2 * n + j, hn + j,
                              hp + j, dy + j};
        for (int q = 0; q < 6; q++)
            memcpy(in + q * WIDTH, src[q], bytes);
        REAL *odhn = out + 9 * WIDTH;
        memcpy(odhn, dhn + j, bytes);
        K(gru_back)(in, WIDTH, in + 3 * WIDTH, in + 4 * WIDTH, in + 5 * WIDTH,
                    odhn, out, out + 3 * WIDTH, out + 6 * WIDTH);
        for (int q = 0; q < 3; q++) {
            memcpy(da + q * n + j, out + q * WIDTH, bytes);
            memcpy(dah + q * n + j, out + (3 + q) * WIDTH, bytes);
            memcpy(dah2 + q * n + j, out + (6 + q) * WIDTH, bytes);
        }
        memcpy(dhn + j, odhn, bytes);
    }
}

/* dx += dy * f'(x) */
#define GRAD_KERNEL(name)                                                      \
    void NAME(nb_vm_##name##_grad)(int64_t n, const REAL *x, const REAL *dy,   \
                                   REAL *dx)                                   \
    {                                                                          \
        int64_t i = 0;                                                         \
        for (; i + WIDTH <= n; i += WIDTH)                                     \
            V_STORE(dx + i,                                                    \
                    V_MUL_ADD(V_LOAD(dy + i), K(name##_grad)(V_LOAD(x + i)),   \
                              V_LOAD(dx + i)));                                \
        if (i < n) {                                                           \
            const int64_t len = n - i;                                         \
            VEC g = K(name##_grad)(K(load_part)(x + i, len));                  \
            K(store_part)(dx + i,                                              \
                          V_MUL_ADD(K(load_part)(dy + i, len), g,              \
                                    K(load_part)(dx + i, len)),                \
                          len);                                                \
        }                                                                      \
    }
NB_VM_GRAD(GRAD_KERNEL)
#undef GRAD_KERNEL

#undef K
#undef SIGN_BIT
#undef NEG_ABS
#undef WITH_SIGN_OF
#undef GELU_CLAMP
#undef SILU_CLAMP

#undef REAL
#undef VEC
#undef MASK
#undef WIDTH
#undef NAME
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_FIRST
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_MUL_ADD
#undef V_MUL_ERR
#undef V_MAX
#undef V_MIN
#undef V_AND
#undef V_OR
#undef V_XOR
#undef V_LT
#undef V_GT
#undef V_GE
#undef V_SELECT
#undef V_EXP
#undef V_LOG
#undef V_LOG1P
#undef V_EXPM1
#undef V_ERFC
#undef V_TANH
#undef TANH_FROM_EXP
#undef V_LOAD_PART
#undef V_STORE_PART
