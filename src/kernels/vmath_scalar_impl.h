/* Body of the scalar kernels, included once per REAL (float, double).
 * Formulas are arranged to stay finite at the extremes:
 *   sigmoid(x)  = 1 / (1 + e^-x)             -> 0 at -inf, 1 at +inf
 *   softplus(x) = max(x, 0) + log1p(e^-|x|)  -> x for huge x, no overflow
 *   gelu(x)     = x/2 (1 + erf(x / sqrt 2))
 *   silu(x)     = x sigmoid(x)
 */
static inline REAL SUFFIX(sigmoid1)(REAL x)
{
    return (REAL)1 / ((REAL)1 + EXP(-x));
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
    for (int64_t i = 0; i < n; i++)
        y[i] = (REAL)0.5 * x[i] * ((REAL)1 + ERF(x[i] * (REAL)INV_SQRT2));
}

void SUFFIX(nb_vm_silu)(int64_t n, const REAL *x, REAL *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * SUFFIX(sigmoid1)(x[i]);
}

/* softplus'(x) = sigmoid(x) */
void SUFFIX(nb_vm_softplus_grad)(int64_t n, const REAL *x, const REAL *dy,
                                 REAL *dx)
{
    for (int64_t i = 0; i < n; i++)
        dx[i] += dy[i] * SUFFIX(sigmoid1)(x[i]);
}

/* gelu'(x) = Phi(x) + x phi(x) */
void SUFFIX(nb_vm_gelu_grad)(int64_t n, const REAL *x, const REAL *dy,
                             REAL *dx)
{
    for (int64_t i = 0; i < n; i++) {
        REAL v = x[i];
        REAL cdf = (REAL)0.5 * ((REAL)1 + ERF(v * (REAL)INV_SQRT2));
        REAL pdf = (REAL)INV_SQRT_2PI * EXP((REAL)-0.5 * v * v);
        dx[i] += dy[i] * (cdf + v * pdf);
    }
}

/* silu'(x) = s (1 + x (1 - s)), s = sigmoid(x) */
void SUFFIX(nb_vm_silu_grad)(int64_t n, const REAL *x, const REAL *dy,
                             REAL *dx)
{
    for (int64_t i = 0; i < n; i++) {
        REAL s = SUFFIX(sigmoid1)(x[i]);
        dx[i] += dy[i] * s * ((REAL)1 + x[i] * ((REAL)1 - s));
    }
}
