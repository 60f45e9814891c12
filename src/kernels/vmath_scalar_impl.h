/* Body of the scalar kernels, included once per REAL (float, double).
 * The formulas are the ones the SIMD template (vmath_simd_impl.h) uses,
 * arranged to stay finite and accurate at the extremes:
 *   sigmoid(x)  = 1/(1+e) for x >= 0, e/(1+e) for x < 0, e = exp(-|x|)
 *                 -> exactly 0 at -1000, 1 at +1000, no overflow
 *   softplus(x) = max(x, 0) + log1p(e^-|x|)  -> x for huge x, no overflow
 *   gelu(x)     = x/2 erfc(-x / sqrt 2), the argument carried as hi + lo
 *                 (erfc's tail amplifies its relative rounding by 2 y^2)
 *   silu(x)     = x sigmoid(x)
 * and clamped where inf * 0 would otherwise appear (see the template).
 */
/* r = 1/(1+e) with one Newton step against the exact 1 + e (see the
 * SIMD template for why) */
static inline void SUFFIX(sigmoid_pair)(REAL x, REAL *s, REAL *s_neg)
{
    REAL e = EXP(-FABS(x));
    REAL sum = (REAL)1 + e;
    REAL sum_err = e - (sum - (REAL)1);
    REAL r = (REAL)1 / sum;
    r += r * (FMA(-sum, r, (REAL)1) - sum_err * r);
    *s = x >= 0 ? r : e * r;
    *s_neg = x >= 0 ? e * r : r;
}

static inline REAL SUFFIX(sigmoid1)(REAL x)
{
    REAL s, s_neg;
    SUFFIX(sigmoid_pair)(x, &s, &s_neg);
    return s;
}

static inline REAL SUFFIX(clamp)(REAL x, REAL lo, REAL hi)
{
    return x < lo ? lo : x > hi ? hi : x; /* NaN passes through */
}

/* erfc(-x / sqrt 2) = 2 Phi(x) for |x| <= 40, gauss = exp(-x^2/2) */
static inline REAL SUFFIX(two_cdf)(REAL x, REAL gauss)
{
    REAL y_hi = x * (REAL)-INV_SQRT2;
    REAL y_lo = FMA(x, (REAL)-INV_SQRT2, -y_hi) + x * -INV_SQRT2_LO;
    return ERFC(y_hi) - y_lo * (REAL)TWO_OVER_SQRTPI * gauss;
}

void SUFFIX(nb_vm_exp)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = EXP(x[i]);
}

void SUFFIX(nb_vm_log)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = LOG(x[i]);
}

void SUFFIX(nb_vm_tanh)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = TANH(x[i]);
}

void SUFFIX(nb_vm_sigmoid)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = SUFFIX(sigmoid1)(x[i]);
}

void SUFFIX(nb_vm_lstm_cell)(int64_t n, REAL *a, const REAL *cp, REAL *c,
                             REAL *tc, REAL *h)
{
    REAL *gi = a, *gf = a + n, *gg = a + 2 * n, *go = a + 3 * n;
    for (int64_t j = 0; j < n; j++) {
        gi[j] = SUFFIX(sigmoid1)(gi[j]);
        gf[j] = SUFFIX(sigmoid1)(gf[j]);
        gg[j] = TANH(gg[j]);
        go[j] = SUFFIX(sigmoid1)(go[j]);
        c[j] = gf[j] * cp[j] + gi[j] * gg[j];
        tc[j] = TANH(c[j]);
        h[j] = go[j] * tc[j];
    }
}

void SUFFIX(nb_vm_lstm_cell_back)(int64_t n, const REAL *a, const REAL *cp,
                                  const REAL *tc, const REAL *dy,
                                  const REAL *dhn, REAL *dc, REAL *da,
                                  REAL *da2)
{
    const REAL *gi = a, *gf = a + n, *gg = a + 2 * n, *go = a + 3 * n;
    for (int64_t j = 0; j < n; j++) {
        REAL dh = dy[j] + dhn[j];
        REAL d = dc[j] + dh * go[j] * (1 - tc[j] * tc[j]);
        da[j] = da2[j] = d * gg[j] * gi[j] * (1 - gi[j]);
        da[n + j] = da2[n + j] = d * cp[j] * gf[j] * (1 - gf[j]);
        da[2 * n + j] = da2[2 * n + j] = d * gi[j] * (1 - gg[j] * gg[j]);
        da[3 * n + j] = da2[3 * n + j] = dh * tc[j] * go[j] * (1 - go[j]);
        dc[j] = d * gf[j];
    }
}

void SUFFIX(nb_vm_gru_cell_back)(int64_t n, const REAL *a, const REAL *hn,
                                 const REAL *hp, const REAL *dy, REAL *dhn,
                                 REAL *da, REAL *dah, REAL *dah2)
{
    const REAL *r = a, *z = a + n, *nn = a + 2 * n;
    for (int64_t j = 0; j < n; j++) {
        REAL dh = dy[j] + dhn[j];
        REAL dn = dh * (1 - z[j]);
        REAL dz = dh * (hp[j] - nn[j]);
        REAL dan = dn * (1 - nn[j] * nn[j]);
        REAL dar = dan * hn[j] * r[j] * (1 - r[j]);
        REAL daz = dz * z[j] * (1 - z[j]);
        da[j] = dah[j] = dah2[j] = dar;
        da[n + j] = dah[n + j] = dah2[n + j] = daz;
        da[2 * n + j] = dan;
        dah[2 * n + j] = dah2[2 * n + j] = dan * r[j];
        dhn[j] = dh * z[j];
    }
}

void SUFFIX(nb_vm_softplus)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++) {
        REAL v = x[i];
        y[i] = (v > 0 ? v : (REAL)0) + LOG1P(EXP(-FABS(v)));
    }
}

void SUFFIX(nb_vm_elu)(int64_t n, REAL alpha, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0 ? x[i] : alpha * EXPM1(x[i]);
}

void SUFFIX(nb_vm_selu)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (REAL)SELU_LAMBDA *
               (x[i] > 0 ? x[i] : (REAL)SELU_ALPHA * EXPM1(x[i]));
}

void SUFFIX(nb_vm_gelu)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++) {
        REAL v = x[i] < -40 ? (REAL)-40 : x[i];
        REAL vc = v > 40 ? (REAL)40 : v;
        y[i] = (REAL)0.5 * v * SUFFIX(two_cdf)(vc, EXP((REAL)-0.5 * vc * vc));
    }
}

void SUFFIX(nb_vm_silu)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++) {
        REAL v = x[i] < -800 ? (REAL)-800 : x[i];
        y[i] = v * SUFFIX(sigmoid1)(v);
    }
}

/* softplus'(x) = sigmoid(x) */
void SUFFIX(nb_vm_softplus_grad)(int64_t n, const REAL *x, const REAL *dy,
                                 REAL *dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i] * SUFFIX(sigmoid1)(x[i]);
}

/* gelu'(x) = Phi(x) + x phi(x) */
void SUFFIX(nb_vm_gelu_grad)(int64_t n, const REAL *x, const REAL *dy, REAL *dx)
{
    for (int64_t i = 0; i < n; i++) {
        REAL v = SUFFIX(clamp)(x[i], -40, 40);
        REAL sq = v * v;
        REAL gauss = EXP((REAL)-0.5 * sq);
        gauss -= (REAL)0.5 * gauss * FMA(v, v, -sq);
        REAL cdf = (REAL)0.5 * SUFFIX(two_cdf)(v, gauss);
        REAL pdf_hi = (REAL)INV_SQRT_2PI * gauss;
        REAL pdf_lo = FMA(INV_SQRT_2PI_LO, gauss,
                          FMA((REAL)INV_SQRT_2PI, gauss, -pdf_hi));
        dx[i] += dy[i] * FMA(v, pdf_hi, FMA(v, pdf_lo, cdf));
    }
}

/* silu'(x) = s (1 + x (1 - s)), s = sigmoid(x) */
void SUFFIX(nb_vm_silu_grad)(int64_t n, const REAL *x, const REAL *dy, REAL *dx)
{
    for (int64_t i = 0; i < n; i++) {
        REAL v = SUFFIX(clamp)(x[i], -800, 800);
        REAL s, s_neg;
        SUFFIX(sigmoid_pair)(v, &s, &s_neg);
        dx[i] += dy[i] * s * ((REAL)1 + v * s_neg);
    }
}
