/* The global norm's loops for one element type, included by grad_norm.c
 * once per dtype with REAL (float or double) and SFX (f32 or f64) defined.
 *
 * The sum of squares fixes its own order: lanes of 32 float partial sums
 * over blocks of 1024 elements, folded into 32 double lanes after each
 * block, so at most 32 float roundings precede the double accumulation. Its
 * result depends only on the piece it is given, never on the vector width
 * of the machine: the lanes are explicit and the compiler may not
 * reassociate them.
 */

#define OPT_CAT_(a, b) a##_##b
#define OPT_CAT(a, b) OPT_CAT_(a, b)
#define OPT_FN(name) OPT_CAT(name, SFX)

/* Sum of squares in the fixed order described at the top. Float lanes for
 * f32 (squares summed in float, 32 terms per lane per block), double lanes
 * throughout for f64. More lanes than one vector holds keep several
 * additions in flight, so the loop runs at the speed of memory rather than
 * of the adder's latency. */
OPT_CLONES
static double OPT_FN(sum_squares)(int64_t n, const REAL *restrict x)
{
    double s = 0;
    if (n < 32) {
        /* No block: the tail loop alone, as below after 32 zero lanes. */
        for (int64_t i = 0; i < n; i++)
            s += (double)x[i] * (double)x[i];
        return s;
    }
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
