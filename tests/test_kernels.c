/* The raw kernels below the graph: elementwise math and GEMM.
 *
 * Elementwise: every kernel, on every instruction set this CPU has, in f32
 * and f64, against a truth computed independently in long double with
 * libm's long-double functions. Errors are in ulps of the result type (for
 * results near underflow, an absolute measure, see UNDERFLOW_FLOOR); a
 * kernel fails above ULP_BOUND. NaN must give NaN, an infinite truth the
 * same infinity. The derivative kernels are judged against the magnitude
 * of their terms (gelu' and silu' pass through zero by cancellation, where
 * no formula can hold ulps of the tiny result). Each vector path is also
 * compared with the scalar reference (*_scalar), and tails, unaligned
 * starts and in-place calls must give exactly the full-array results.
 *
 * Where long double is no wider than double (valgrind runs x87 code in
 * double precision; some platforms define it so) there is no truth to be
 * had: every path is then held to 2 ULP_BOUND of the scalar reference.
 *
 * GEMM: all four transpose combinations, odd sizes, alpha/beta variants,
 * padded leading dimensions whose padding is NaN (so a stray read shows),
 * against a triple loop in long double; beta = 0 must overwrite NaN.
 *
 * Threads: results bitwise equal at 1, 2 and 3 threads, and the shared
 * thread policy of nabla/parallel.h. */
#include <float.h>
#include <stdint.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/vmath_scalar.h"
#include "core/parallel_internal.h"
#include "nabla/parallel.h"
#include "test_util.h"

#define ULP_BOUND 4.0

typedef long double ld;

/* ---- truth, in long double ---- */

static const ld SELU_LAMBDA = 1.0507009873554804934193349852946L;
static const ld SELU_ALPHA = 1.6732632423543772848170429916717L;
static const ld INV_SQRT_2PI = 0.39894228040143267793994605993438L;
static const ld TWO_OVER_SQRTPI = 1.1283791670955125738961589031215L;
static const ld INV_SQRT2 = 0.70710678118654752440084436210484904L;
#if LDBL_MANT_DIG == 64
/* 1/sqrt 2 minus its 64-bit-mantissa rounding */
static const ld INV_SQRT2_LO = 1.895032558893257079655e-20L;
#else
static const ld INV_SQRT2_LO = 0;
#endif

static ld t_sigmoid(ld x)
{
    if (x >= 0)
        return 1 / (1 + expl(-x));
    ld e = expl(x);
    return e / (1 + e);
}

/* erfc(-x / sqrt 2), with the argument's rounding corrected to first
 * order: erfc's tail would multiply it by 2 y^2 */
static ld t_two_cdf(ld x)
{
    ld y_hi = -x * INV_SQRT2;
    ld y_lo = fmal(-x, INV_SQRT2, -y_hi) - x * INV_SQRT2_LO;
    return erfcl(y_hi) - y_lo * TWO_OVER_SQRTPI * expl(-y_hi * y_hi);
}

/* exp(-x^2 / 2) with x^2 carried exactly (x has at most 53 bits) */
static ld t_gauss(ld x)
{
    ld sq = x * x, err = fmal(x, x, -sq);
    ld g = expl(-sq / 2);
    return g - g * err / 2;
}

static ld t_exp(ld x)
{
    return expl(x);
}
static ld t_log(ld x)
{
    return logl(x);
}
static ld t_tanh(ld x)
{
    return tanhl(x);
}

static ld t_softplus(ld x)
{
    return x > 0 ? x + log1pl(expl(-x)) : log1pl(expl(x));
}

static ld t_selu(ld x)
{
    return x > 0 ? SELU_LAMBDA * x : SELU_LAMBDA * SELU_ALPHA * expm1l(x);
}

static ld t_gelu(ld x)
{
    if (isinf(x))
        return x > 0 ? x : -0.0L;
    return x / 2 * t_two_cdf(x);
}

static ld t_silu(ld x)
{
    if (isinf(x))
        return x > 0 ? x : -0.0L;
    return x * t_sigmoid(x);
}

static ld t_gelu_grad(ld x)
{
    if (isinf(x))
        return x > 0 ? 1 : 0;
    return t_two_cdf(x) / 2 + x * INV_SQRT_2PI * t_gauss(x);
}

static ld t_silu_grad(ld x)
{
    if (isinf(x))
        return x > 0 ? 1 : 0;
    return t_sigmoid(x) * (1 + x * t_sigmoid(-x));
}

/* The size of the terms a derivative is a sum of: its error is judged in
 * ulps of this, not of a result that cancels to near zero. */
static ld s_gelu_grad(ld x)
{
    if (isinf(x))
        return 1;
    return t_two_cdf(x) / 2 + fabsl(x) * INV_SQRT_2PI * t_gauss(x);
}

static ld s_silu_grad(ld x)
{
    if (isinf(x))
        return 1;
    return t_sigmoid(x) * (1 + fabsl(x) * t_sigmoid(-x));
}

/* the same magnitudes in double, roughly: they only pick the ulp size */
static double d_s_gelu_grad(double x)
{
    if (isinf(x))
        return 1;
    return erfc(-x * 0.70710678118654752) / 2 +
           fabs(x) * 0.3989422804014327 * exp(-x * x / 2);
}

static double d_s_silu_grad(double x)
{
    if (isinf(x))
        return 1;
    return 1 / (1 + exp(-x)) * (1 + fabs(x) / (1 + exp(x)));
}

/* ---- ulps ---- */

/* the spacing of type (mant_dig, min_normal, true_min) numbers around t */
static ld ulp_of(ld t, int mant_dig, ld min_normal, ld true_min)
{
    t = fabsl(t);
    if (t < min_normal)
        return true_min;
    return ldexpl(1, ilogbl(t) - (mant_dig - 1));
}

/* Results this close to underflow are held to an absolute error: an
 * intermediate that underflowed (exp or erfc of a large argument) carries
 * half a subnormal spacing of error, which a final product by x (|x| up to
 * ~745) scales up. Below UNDERFLOW_FLOOR ulps are those at the floor,
 * i.e. 2^10 subnormal spacings. */
#define UNDERFLOW_FLOOR(min_normal) ((ld)(min_normal)*1024)

/* Error of `got` against truth t in ulps of max(|t|, scale, floor); 0 for
 * matching specials, INFINITY for a wrong class. rounded_t is t rounded
 * to the result type. */
static ld ulp_error(ld got, ld t, ld rounded_t, ld scale, bool f32)
{
    if (isnan(t))
        return isnan(got) ? 0 : INFINITY;
    if (isnan(got))
        return INFINITY;
    if (isinf(rounded_t) || isinf(got))
        return got == rounded_t ? 0 : INFINITY;
    ld floor = f32 ? UNDERFLOW_FLOOR(FLT_MIN) : UNDERFLOW_FLOOR(DBL_MIN);
    ld mag = fabsl(t) > scale ? fabsl(t) : scale;
    mag = mag > floor ? mag : floor;
    ld u = f32 ? ulp_of(mag, FLT_MANT_DIG, FLT_MIN, FLT_TRUE_MIN)
               : ulp_of(mag, DBL_MANT_DIG, DBL_MIN, DBL_TRUE_MIN);
    return fabsl(got - t) / u;
}

/* The same in double, for comparisons with the scalar reference when
 * long double cannot serve. */
static double ulp_error_d(double got, double t, double scale, bool f32)
{
    if (isnan(t))
        return isnan(got) ? 0 : INFINITY;
    if (isnan(got))
        return INFINITY;
    if (isinf(t) || isinf(got))
        return got == t ? 0 : INFINITY;
    double floor = f32 ? FLT_MIN * 1024.0 : DBL_MIN * 1024.0;
    double mag = fmax(fmax(fabs(t), scale), floor);
    int mant_dig = f32 ? FLT_MANT_DIG : DBL_MANT_DIG;
    return fabs(got - t) / ldexp(1, ilogb(mag) - (mant_dig - 1));
}

static bool long_double_is_wide(void)
{
    volatile double quarter_eps = DBL_EPSILON / 4;
    volatile ld sum = (ld)1 + (ld)quarter_eps;
    return LDBL_MANT_DIG > DBL_MANT_DIG && sum != 1;
}

static bool ld_wide;

/* ---- inputs ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rng_uniform(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * 0x1p-53;
}

#define N_INPUTS 30011 /* odd, so the full-array call has a tail too */

static double inputs[N_INPUTS];
static int n_inputs;

static void add_input(double v)
{
    if (n_inputs < N_INPUTS)
        inputs[n_inputs++] = v;
}

static void make_inputs(void)
{
    static const double special[] = {
        0.0,       -0.0,       1e-40,    -1e-40,    1.4e-45,   -1.4e-45,
        1e-310,    -1e-310,    4.9e-324, -4.9e-324, INFINITY,  -INFINITY,
        NAN,       -NAN,       1000,     -1000,     1e30,      -1e30,
        1e300,     -1e300,     DBL_MAX,  -DBL_MAX,  FLT_MAX,   -FLT_MAX,
        1,         -1,         0.5,      -0.5,      0.625,     -0.625,
        0.62499,   -0.62499,   40,       -40,       41,        -41,
        800,       -800,       88.7,     -88.7,     103.9,     -103.9,
        709.7,     -709.7,     745,      -745,      20,        -20,
        1e-8,      -1e-8,      1e-20,    -1e-20,    0.7517916, -0.7517916,
        1.2784645, -1.2784645, 9.2,      -9.2,      13.6,      -13.6,
        37.5,      -37.5};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        add_input(special[i]);
    while (n_inputs < N_INPUTS) {
        double sign = rng_next() & 1 ? -1 : 1;
        switch (rng_next() % 4) {
        case 0: /* many magnitudes */
            add_input(sign * pow(10, -10 + 13 * rng_uniform()));
            break;
        case 1: /* where the functions bend */
            add_input(sign * 8 * rng_uniform());
            break;
        case 2:
            add_input(sign * 40 * rng_uniform());
            break;
        default: /* near the f32 / f64 exp range limits */
            add_input(sign * (rng_next() & 2 ? 120 : 800) * rng_uniform());
            break;
        }
    }
}

/* ---- elementwise ---- */

typedef struct {
    const char *name;
    ld (*truth)(ld);
    ld (*scale)(ld);           /* NULL: |truth| */
    double (*scale_d)(double); /* the same in double */
    bool grad;                 /* dx += dy f'(x) */
    void (*f32)(int64_t, const float *, float *);
    void (*f64)(int64_t, const double *, double *);
    void (*g32)(int64_t, const float *, const float *, float *);
    void (*g64)(int64_t, const double *, const double *, double *);
    void (*f32_ref)(int64_t, const float *, float *);
    void (*f64_ref)(int64_t, const double *, double *);
    void (*g32_ref)(int64_t, const float *, const float *, float *);
    void (*g64_ref)(int64_t, const double *, const double *, double *);
} kernel_case;

/* clang-format off */
#define UNARY_CASE(n)                                                         \
    {#n, t_##n, NULL, NULL, false, nb_vm_##n##_f32, nb_vm_##n##_f64, NULL,    \
     NULL, nb_vm_##n##_f32_scalar, nb_vm_##n##_f64_scalar, NULL, NULL}
/* scale and d_##scale both exist */
#define GRAD_CASE(n, truth, scale)                                            \
    {#n "_grad", truth, scale, d_##scale, true, NULL, NULL,                   \
     nb_vm_##n##_grad_f32, nb_vm_##n##_grad_f64, NULL, NULL,                  \
     nb_vm_##n##_grad_f32_scalar, nb_vm_##n##_grad_f64_scalar}
/* clang-format on */

/* elu with a fixed alpha, through the unary shape */
#define ELU_ALPHA 0.3
static ld t_elu(ld x)
{
    return x > 0 ? x : (ld)ELU_ALPHA * expm1l(x);
}
static void elu_f32(int64_t n, const float *x, float *y)
{
    nb_vm_elu_f32(n, (float)ELU_ALPHA, x, y);
}
static void elu_f64(int64_t n, const double *x, double *y)
{
    nb_vm_elu_f64(n, ELU_ALPHA, x, y);
}
static void elu_f32_ref(int64_t n, const float *x, float *y)
{
    nb_vm_elu_f32_scalar(n, (float)ELU_ALPHA, x, y);
}
static void elu_f64_ref(int64_t n, const double *x, double *y)
{
    nb_vm_elu_f64_scalar(n, ELU_ALPHA, x, y);
}
/* for f32 the truth must use the alpha the kernel got */
static ld t_elu_f32(ld x)
{
    return x > 0 ? x : (ld)(float)ELU_ALPHA * expm1l(x);
}

static const kernel_case cases[] = {
    UNARY_CASE(exp),
    UNARY_CASE(log),
    UNARY_CASE(tanh),
    UNARY_CASE(sigmoid),
    UNARY_CASE(softplus),
    UNARY_CASE(selu),
    UNARY_CASE(gelu),
    UNARY_CASE(silu),
    {"elu", t_elu, NULL, NULL, false, elu_f32, elu_f64, NULL, NULL, elu_f32_ref,
     elu_f64_ref, NULL, NULL},
    {"softplus_grad", t_sigmoid, NULL, NULL, true, NULL, NULL,
     nb_vm_softplus_grad_f32, nb_vm_softplus_grad_f64, NULL, NULL,
     nb_vm_softplus_grad_f32_scalar, nb_vm_softplus_grad_f64_scalar},
    GRAD_CASE(gelu, t_gelu_grad, s_gelu_grad),
    GRAD_CASE(silu, t_silu_grad, s_silu_grad),
};
#define N_CASES (int)(sizeof cases / sizeof *cases)

static const char *const all_isas[] = {"avx512", "avx2", "sse2", "scalar"};

/* Runs case c in one precision over the inputs (through the dispatcher
 * when ref is false, else the scalar reference), into out. */
static void run_f32(const kernel_case *c, bool ref, int64_t n, const float *x,
                    float *out)
{
    if (!c->grad) {
        (ref ? c->f32_ref : c->f32)(n, x, out);
        return;
    }
    float *dy = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        dy[i] = 1;
        out[i] = 0;
    }
    (ref ? c->g32_ref : c->g32)(n, x, dy, out);
    free(dy);
}

static void run_f64(const kernel_case *c, bool ref, int64_t n, const double *x,
                    double *out)
{
    if (!c->grad) {
        (ref ? c->f64_ref : c->f64)(n, x, out);
        return;
    }
    double *dy = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        dy[i] = 1;
        out[i] = 0;
    }
    (ref ? c->g64_ref : c->g64)(n, x, dy, out);
    free(dy);
}

typedef struct {
    double max_ulp;    /* against the truth */
    double at;         /* input of the worst case */
    double max_vs_ref; /* against the scalar reference */
} err_stats;

static ld truth_of(const kernel_case *c, bool f32, ld x)
{
    if (f32 && c->truth == t_elu)
        return t_elu_f32(x);
    return c->truth(x);
}

static void compare(const kernel_case *c, bool f32, const char *isa, int n,
                    const double *x, const double *got, const double *ref,
                    err_stats *st)
{
    for (int i = 0; i < n; i++) {
        double e, r;
        if (ld_wide) {
            ld t = truth_of(c, f32, x[i]);
            ld rounded = f32 ? (ld)(float)t : (ld)(double)t;
            ld scale = c->scale ? c->scale(x[i]) : 0;
            e = (double)ulp_error(got[i], t, rounded, scale, f32);
            if (isinf(e))
                printf("  %s %s %s: x = %.9g gives %.9g, truth %.9Lg\n",
                       c->name, f32 ? "f32" : "f64", isa, x[i], got[i], t);
            r = (double)ulp_error(got[i], ref[i], ref[i], scale, f32);
        } else {
            double scale = c->scale_d ? c->scale_d(x[i]) : 0;
            e = r = ulp_error_d(got[i], ref[i], scale, f32);
        }
        if (e > st->max_ulp || isnan(e)) {
            st->max_ulp = e;
            st->at = x[i];
        }
        if (!isinf(e) && r > st->max_vs_ref)
            st->max_vs_ref = r;
    }
}

/* Bit for bit, except that any NaN equals any NaN: which operand's NaN an
 * instruction passes on (and so its sign) may differ between the loop body
 * and the tail, as the compiler is free to commute operands. */
static bool same_value(double a, double b)
{
    return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

/* Tails, offsets and in-place: every length and start must reproduce the
 * full-array results bit for bit and write nothing past the end. Every
 * length up to 17 is a different tail mask for some ISA (AVX-512 f32 has
 * 16 lanes): a tiny graph's tensors are all tail. */
static const int tail_lengths[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                   10, 11, 12, 13, 14, 15, 16, 17, 33, 1000};

static void check_lengths_f32(const kernel_case *c, const char *isa,
                              const float *x, const float *full)
{
    float out[1100], buf[1100];
    for (size_t li = 0; li < sizeof tail_lengths / sizeof *tail_lengths;
         li++) {
        int len = tail_lengths[li];
        for (int start = 0; start < 2; start++) {
            for (int i = 0; i < 1100; i++)
                out[i] = 12345.0f;
            if (c->grad) {
                float dy[1100];
                for (int i = 0; i < 1100; i++) {
                    dy[i] = 1;
                    out[i] = i < len ? 0.0f : 12345.0f;
                }
                c->g32(len, x + start, dy, out);
            } else {
                c->f32(len, x + start, out);
            }
            bool same = true;
            for (int i = 0; i < len; i++)
                same &= same_value(out[i], full[start + i]);
            CHECK(same && out[len] == 12345.0f,
                  "%s f32 %s: length %d from %d differs from the full run",
                  c->name, isa, len, start);
            if (!c->grad) { /* y == x */
                memcpy(buf, x + start, sizeof(float) * (size_t)len);
                c->f32(len, buf, buf);
                bool same_in_place = true;
                for (int i = 0; i < len; i++)
                    same_in_place &= same_value(buf[i], full[start + i]);
                CHECK(same_in_place, "%s f32 %s: in place, length %d", c->name,
                      isa, len);
            }
        }
    }
}

static void check_lengths_f64(const kernel_case *c, const char *isa,
                              const double *x, const double *full)
{
    double out[1100], buf[1100];
    for (size_t li = 0; li < sizeof tail_lengths / sizeof *tail_lengths;
         li++) {
        int len = tail_lengths[li];
        for (int start = 0; start < 2; start++) {
            if (c->grad) {
                double dy[1100];
                for (int i = 0; i < 1100; i++) {
                    dy[i] = 1;
                    out[i] = i < len ? 0.0 : 12345.0;
                }
                c->g64(len, x + start, dy, out);
            } else {
                for (int i = 0; i < 1100; i++)
                    out[i] = 12345.0;
                c->f64(len, x + start, out);
            }
            bool same = true;
            for (int i = 0; i < len; i++)
                same &= same_value(out[i], full[start + i]);
            CHECK(same && out[len] == 12345.0,
                  "%s f64 %s: length %d from %d differs from the full run",
                  c->name, isa, len, start);
            if (!c->grad) {
                memcpy(buf, x + start, sizeof(double) * (size_t)len);
                c->f64(len, buf, buf);
                bool same_in_place = true;
                for (int i = 0; i < len; i++)
                    same_in_place &= same_value(buf[i], full[start + i]);
                CHECK(same_in_place, "%s f64 %s: in place, length %d", c->name,
                      isa, len);
            }
        }
    }
}

static ld term_scale(const kernel_case *c, ld x)
{
    return c->scale ? c->scale(x) : fabsl(c->truth(x));
}

/* dx += dy f'(x) accumulates: compare with dx0 + dy f'(x) from the truth */
static void check_accumulation(const kernel_case *c, const char *isa)
{
    enum { N = 1001 };
    static float x32[N], dy32[N], dx32[N], dx32_0[N];
    static double x64[N], dy64[N], dx64[N], dx64_0[N];
    for (int i = 0; i < N; i++) {
        x64[i] = 10 * (2 * rng_uniform() - 1);
        dy64[i] = 2 * rng_uniform() - 1;
        dx64_0[i] = dx64[i] = 2 * rng_uniform() - 1;
        x32[i] = (float)x64[i];
        dy32[i] = (float)dy64[i];
        dx32_0[i] = dx32[i] = (float)dx64[i];
    }
    c->g32(N, x32, dy32, dx32);
    c->g64(N, x64, dy64, dx64);
    if (!ld_wide)
        return; /* no truth; the kernels still ran under the checker */
    ld worst32 = 0, worst64 = 0;
    for (int i = 0; i < N; i++) {
        ld t32 = (ld)dx32_0[i] + (ld)dy32[i] * c->truth(x32[i]);
        ld t64 = (ld)dx64_0[i] + (ld)dy64[i] * c->truth(x64[i]);
        /* judged on the size of the terms of the sum */
        ld s32 =
            fabsl((ld)dx32_0[i]) + fabsl((ld)dy32[i]) * term_scale(c, x32[i]);
        ld s64 =
            fabsl((ld)dx64_0[i]) + fabsl((ld)dy64[i]) * term_scale(c, x64[i]);
        ld e32 = ulp_error(dx32[i], t32, t32, s32, true);
        ld e64 = ulp_error(dx64[i], t64, t64, s64, false);
        worst32 = e32 > worst32 ? e32 : worst32;
        worst64 = e64 > worst64 ? e64 : worst64;
    }
    CHECK(worst32 <= ULP_BOUND && worst64 <= ULP_BOUND,
          "%s %s: accumulation off by %.2Lf (f32) / %.2Lf (f64) ulps", c->name,
          isa, worst32, worst64);
}

static void test_elementwise(void)
{
    make_inputs();
    int n = n_inputs;
    float *x32 = malloc(sizeof(float) * (size_t)n);
    float *y32 = malloc(sizeof(float) * (size_t)n);
    float *r32 = malloc(sizeof(float) * (size_t)n);
    double *x64 = malloc(sizeof(double) * (size_t)n);
    double *y64 = malloc(sizeof(double) * (size_t)n);
    double *r64 = malloc(sizeof(double) * (size_t)n);
    double *xd =
        malloc(sizeof(double) * (size_t)n); /* the f32 inputs widened */
    double *got = malloc(sizeof(double) * (size_t)n);
    double *refd = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        x32[i] = (float)inputs[i];
        xd[i] = x32[i];
        x64[i] = inputs[i];
    }

    double bound = ld_wide ? ULP_BOUND : 2 * ULP_BOUND;
    if (ld_wide)
        printf("elementwise max error in ulps (vs long double truth; vs the "
               "scalar reference), bound %.0f:\n",
               bound);
    else
        printf("long double is no wider than double here: elementwise max "
               "error in ulps vs the scalar reference, bound %.0f:\n",
               bound);
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        const char *isa = all_isas[s];
        if (!nb_vm_force_isa(isa)) {
            printf("  %s: not available on this CPU\n", isa);
            continue;
        }
        CHECK(strcmp(nb_vm_isa(), isa) == 0, "forced %s, got %s", isa,
              nb_vm_isa());
        for (int k = 0; k < N_CASES; k++) {
            const kernel_case *c = &cases[k];
            err_stats st32 = {0, 0, 0}, st64 = {0, 0, 0};

            run_f32(c, false, n, x32, y32);
            run_f32(c, true, n, x32, r32);
            for (int i = 0; i < n; i++) {
                got[i] = y32[i];
                refd[i] = r32[i];
            }
            compare(c, true, isa, n, xd, got, refd, &st32);

            run_f64(c, false, n, x64, y64);
            run_f64(c, true, n, x64, r64);
            compare(c, false, isa, n, x64, y64, r64, &st64);

            printf("  %-7s %-14s f32 %5.2f (x=%-11.4g) ref %5.2f   "
                   "f64 %5.2f (x=%-11.4g) ref %5.2f\n",
                   isa, c->name, st32.max_ulp, st32.at, st32.max_vs_ref,
                   st64.max_ulp, st64.at, st64.max_vs_ref);
            CHECK(st32.max_ulp <= bound, "%s f32 %s: %.2f ulps at x = %.9g",
                  c->name, isa, st32.max_ulp, st32.at);
            CHECK(st64.max_ulp <= bound, "%s f64 %s: %.2f ulps at x = %.17g",
                  c->name, isa, st64.max_ulp, st64.at);
            /* both within ULP_BOUND of the truth, so within twice of each other
             */
            CHECK(st32.max_vs_ref <= 2 * ULP_BOUND &&
                      st64.max_vs_ref <= 2 * ULP_BOUND,
                  "%s %s: %.2f / %.2f ulps from the scalar reference", c->name,
                  isa, st32.max_vs_ref, st64.max_vs_ref);

            check_lengths_f32(c, isa, x32, y32);
            check_lengths_f64(c, isa, x64, y64);
            if (c->grad)
                check_accumulation(c, isa);
        }

        /* the extremes the graph relies on, exactly */
        float xf[] = {-1000, 1000, -INFINITY, INFINITY, NAN};
        double xdd[] = {-1000, 1000, -INFINITY, INFINITY, NAN};
        float yf[5];
        double yd[5];
        nb_vm_sigmoid_f32(5, xf, yf);
        nb_vm_sigmoid_f64(5, xdd, yd);
        CHECK(yf[0] == 0 && yf[1] == 1 && yf[2] == 0 && yf[3] == 1 &&
                  isnan(yf[4]),
              "sigmoid f32 %s at -1000, 1000, -inf, inf, nan: %g %g %g %g %g",
              isa, yf[0], yf[1], yf[2], yf[3], yf[4]);
        CHECK(yd[0] == 0 && yd[1] == 1 && yd[2] == 0 && yd[3] == 1 &&
                  isnan(yd[4]),
              "sigmoid f64 %s: %g %g %g %g %g", isa, yd[0], yd[1], yd[2], yd[3],
              yd[4]);
        nb_vm_softplus_f32(5, xf, yf);
        nb_vm_softplus_f64(5, xdd, yd);
        CHECK(yf[0] >= 0 && yf[0] < 1e-30f && yf[1] == 1000 && yf[2] == 0 &&
                  yf[3] == INFINITY && isnan(yf[4]),
              "softplus f32 %s: %g %g %g %g %g", isa, yf[0], yf[1], yf[2],
              yf[3], yf[4]);
        CHECK(yd[0] >= 0 && yd[0] < 1e-300 && yd[1] == 1000 && yd[2] == 0 &&
                  yd[3] == INFINITY && isnan(yd[4]),
              "softplus f64 %s: %g %g %g %g %g", isa, yd[0], yd[1], yd[2],
              yd[3], yd[4]);
        nb_vm_tanh_f32(5, xf, yf);
        CHECK(yf[0] == -1 && yf[1] == 1 && yf[2] == -1 && yf[3] == 1 &&
                  isnan(yf[4]),
              "tanh f32 %s: %g %g %g %g %g", isa, yf[0], yf[1], yf[2], yf[3],
              yf[4]);
        nb_vm_exp_f32(5, xf, yf);
        CHECK(yf[0] == 0 && yf[1] == INFINITY && yf[2] == 0 && isnan(yf[4]),
              "exp f32 %s: %g %g %g %g %g", isa, yf[0], yf[1], yf[2], yf[3],
              yf[4]);
        float tiny[] = {1e-40f, -1e-40f, -0.0f};
        nb_vm_tanh_f32(3, tiny, yf);
        CHECK(yf[0] == 1e-40f && yf[1] == -1e-40f && yf[2] == 0 &&
                  signbit(yf[2]),
              "tanh f32 %s keeps denormals and -0: %g %g %g", isa, yf[0], yf[1],
              yf[2]);
    }
    CHECK(nb_vm_force_isa(NULL), "return to the automatic choice");
    CHECK(!nb_vm_force_isa("mmx"), "unknown instruction set accepted");

    free(x32);
    free(y32);
    free(r32);
    free(x64);
    free(y64);
    free(r64);
    free(xd);
    free(got);
    free(refd);
}

/* ---- GEMM ---- */

/* Fills a rows x cols matrix stored with leading dimension ld >= cols;
 * the padding holds NaN so that reading it shows in the result. */
static void fill_matrix(double *m, int64_t rows, int64_t cols, int64_t ld)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < ld; j++)
            m[i * ld + j] = j < cols ? 2 * rng_uniform() - 1 : NAN;
}

typedef struct {
    bool ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    double alpha, beta;
    bool c_nan;   /* C starts as NaN (only with beta = 0) */
    int row_step; /* check every row_step-th row (and the last); 0 = all */
} gemm_case;

/* Sets the leading dimensions to the stored widths of A, B and C (A is
 * stored k wide, or m wide when transposed; B n wide, or k) plus padding. */
static void pad_gemm(gemm_case *g, int64_t pad_a, int64_t pad_b,
                     int64_t pad_c)
{
    g->lda = (g->ta ? g->m : g->k) + pad_a;
    g->ldb = (g->tb ? g->k : g->n) + pad_b;
    g->ldc = g->n + pad_c;
}

/* Runs one case in f32 and f64 and checks every element against a
 * long double triple loop, to (k + 2) eps of the sum of the magnitudes of
 * the terms; C's padding must be untouched. Returns the worst error in
 * units of that bound's eps * magnitude. */
static double check_gemm(const gemm_case *g, const char *isa)
{
    int64_t a_rows = g->ta ? g->k : g->m, a_cols = g->ta ? g->m : g->k;
    int64_t b_rows = g->tb ? g->n : g->k, b_cols = g->tb ? g->k : g->n;
    size_t a_size = (size_t)(a_rows * g->lda),
           b_size = (size_t)(b_rows * g->ldb);
    size_t c_size = (size_t)(g->m * g->ldc);
    double *a = malloc(sizeof(double) * (a_size ? a_size : 1));
    double *b = malloc(sizeof(double) * (b_size ? b_size : 1));
    double *c0 = malloc(sizeof(double) * (c_size ? c_size : 1));
    double *c64 = malloc(sizeof(double) * (c_size ? c_size : 1));
    float *a32 = malloc(sizeof(float) * (a_size ? a_size : 1));
    float *b32 = malloc(sizeof(float) * (b_size ? b_size : 1));
    float *c32 = malloc(sizeof(float) * (c_size ? c_size : 1));
    fill_matrix(a, a_rows, a_cols, g->lda);
    fill_matrix(b, b_rows, b_cols, g->ldb);
    for (int64_t i = 0; i < g->m; i++)
        for (int64_t j = 0; j < g->ldc; j++)
            c0[i * g->ldc + j] = j >= g->n  ? 777.0
                                 : g->c_nan ? NAN
                                            : 2 * rng_uniform() - 1;
    for (size_t i = 0; i < a_size; i++)
        a32[i] = (float)a[i];
    for (size_t i = 0; i < b_size; i++)
        b32[i] = (float)b[i];
    for (size_t i = 0; i < c_size; i++) {
        c32[i] = (float)c0[i];
        c64[i] = c0[i];
    }
    /* Each call gets exactly the workspace it asks for, so a packing
     * overrun shows up under AddressSanitizer. */
    void *ws32 = NULL, *ws64 = NULL;
    size_t need32 = nb_gemm_workspace_f32(g->m, g->n, g->k);
    size_t need64 = nb_gemm_workspace_f64(g->m, g->n, g->k);
    if (posix_memalign(&ws32, 64, need32 ? need32 : 64) != 0 ||
        posix_memalign(&ws64, 64, need64 ? need64 : 64) != 0)
        abort();
    nb_gemm_f32(g->ta, g->tb, g->m, g->n, g->k, (float)g->alpha, a32, g->lda,
                b32, g->ldb, (float)g->beta, c32, g->ldc, ws32);
    nb_gemm_f64(g->ta, g->tb, g->m, g->n, g->k, g->alpha, a, g->lda, b, g->ldb,
                g->beta, c64, g->ldc, ws64);
    free(ws32);
    free(ws64);

    double worst = 0;
    bool pad_ok = true, finite_ok = true;
    for (int prec = 0; prec < 2; prec++) {
        bool f32 = prec == 0;
        ld alpha = f32 ? (ld)(float)g->alpha : (ld)g->alpha;
        ld beta = f32 ? (ld)(float)g->beta : (ld)g->beta;
        ld eps = f32 ? FLT_EPSILON : DBL_EPSILON;
        for (int64_t i = 0; i < g->m; i++) {
            if (g->row_step > 1 && i % g->row_step != 0 && i != g->m - 1)
                continue;
            for (int64_t j = 0; j < g->ldc; j++) {
                ld got = f32 ? c32[i * g->ldc + j] : c64[i * g->ldc + j];
                if (j >= g->n) {
                    pad_ok &= got == 777.0L;
                    continue;
                }
                ld sum = 0, mag = 0;
                for (int64_t p = 0; p < g->k && g->alpha != 0; p++) {
                    double av = g->ta ? a[p * g->lda + i] : a[i * g->lda + p];
                    double bv = g->tb ? b[j * g->ldb + p] : b[p * g->ldb + j];
                    ld prod =
                        f32 ? (ld)(float)av * (ld)(float)bv : (ld)av * (ld)bv;
                    sum += prod;
                    mag += fabsl(prod);
                }
                ld cv = f32 ? (ld)(float)c0[i * g->ldc + j]
                            : (ld)c0[i * g->ldc + j];
                ld want = alpha * sum, tmag = fabsl(alpha) * mag;
                if (beta != 0) {
                    want += beta * cv;
                    tmag += fabsl(beta * cv);
                }
                if (!isfinite(got)) {
                    finite_ok = false;
                    continue;
                }
                ld bound = (ld)(g->k + 2) * eps * tmag + (ld)DBL_MIN;
                double e = (double)(fabsl(got - want) / bound);
                worst = e > worst ? e : worst;
            }
        }
    }
    CHECK(pad_ok && finite_ok && worst <= 1,
          "gemm %s ta=%d tb=%d m=%lld n=%lld k=%lld lda=%lld ldb=%lld "
          "ldc=%lld alpha=%g beta=%g%s: error %.3g of the bound%s%s",
          isa, g->ta, g->tb, (long long)g->m, (long long)g->n, (long long)g->k,
          (long long)g->lda, (long long)g->ldb, (long long)g->ldc, g->alpha,
          g->beta, g->c_nan ? " (C was NaN)" : "", worst,
          pad_ok ? "" : ", wrote into C's padding",
          finite_ok ? "" : ", non-finite result");
    free(a);
    free(b);
    free(c0);
    free(c64);
    free(a32);
    free(b32);
    free(c32);
    return worst;
}

static void test_gemm(void)
{
    /* The packing space is bounded whatever the product's size, and small
     * products need little. */
    size_t huge = nb_gemm_workspace_f32(1 << 20, 1 << 20, 1 << 20);
    CHECK(huge <= (size_t)1300 * 1024, "workspace for a huge f32 product: %zu",
          huge);
    CHECK(nb_gemm_workspace_f64(1 << 20, 1 << 20, 1 << 20) <= (size_t)1300 * 1024,
          "workspace for a huge f64 product");
    CHECK(nb_gemm_workspace_f32(4, 4, 4) <= 4096, "workspace for 4x4x4: %zu",
          nb_gemm_workspace_f32(4, 4, 4));

    static const int64_t sizes[] = {1, 2, 3, 7, 17, 33, 65, 130};
    static const double alpha_beta[][2] = {{1, 0},      {1, 1},   {-0.5, 2},
                                           {0.7, -1.3}, {0, 0.5}, {2, 0}};
    const int n_sizes = (int)(sizeof sizes / sizeof *sizes);
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        const char *isa = all_isas[s];
        if (!nb_vm_force_isa(isa))
            continue;
        double worst = 0;
        int count = 0;
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            for (int mi = 0; mi < n_sizes; mi++)
                for (int ni = 0; ni < n_sizes; ni++)
                    for (int ki = 0; ki < n_sizes; ki++) {
                        /* a third of the size triples, spread over the
                         * alpha/beta variants and leading dimensions */
                        int pick = (mi * 7 + ni * 3 + ki + t) % 3;
                        if (pick != 0 && !(mi < 3 || ni < 3 || ki < 3))
                            continue;
                        gemm_case g = {ta,        tb, sizes[mi], sizes[ni],
                                       sizes[ki], 0,  0,         0,
                                       0,         0,  false,     0};
                        const double *ab = alpha_beta[(mi + ni + ki + t) % 6];
                        g.alpha = ab[0];
                        g.beta = ab[1];
                        int64_t pad = (mi + ki) % 3 == 0 ? 0 : 3 + ki;
                        pad_gemm(&g, pad, ni % 2 ? 5 : 0, mi % 2 ? 2 : 0);
                        g.c_nan = g.beta == 0 && (mi + ni) % 2 == 0;
                        double e = check_gemm(&g, isa);
                        worst = e > worst ? e : worst;
                        count++;
                    }
        }
        /* k = 0 and empty shapes: C = beta C, and nothing for m or n = 0 */
        for (int t = 0; t < 4; t++) {
            gemm_case g0 = {t & 1, t & 2, 5, 6, 0, 5, 6, 8, 1.5, 0.5, false, 0};
            worst = fmax(worst, check_gemm(&g0, isa));
            gemm_case g1 = {t & 1, t & 2, 5, 6, 0, 5, 6, 8, 1.5, 0, true, 0};
            worst = fmax(worst, check_gemm(&g1, isa));
            gemm_case g2 = {t & 1, t & 2, 0, 6, 4, 6, 6, 6, 1, 0, false, 0};
            check_gemm(&g2, isa);
            gemm_case g3 = {t & 1, t & 2, 3, 0, 4, 4, 4, 1, 1, 0, false, 0};
            check_gemm(&g3, isa);
            count += 4;
        }
        /* sizes past every block: kc 256, mc 96/192 rows, nc 512/1024
         * columns, with odd remainders */
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            gemm_case big = {ta, tb, 203, 1100, 601, 0, 0, 0, 1, 1, false, 11};
            pad_gemm(&big, 1, 3, 1);
            worst = fmax(worst, check_gemm(&big, isa));
            count++;
        }
        printf("gemm %-7s %d cases, worst error %.3f of the (k+2) eps bound\n",
               isa, count, worst);
    }
    nb_vm_force_isa(NULL);
}

/* The unpacked paths for small products (gemm.c): every n from 1 to 40
 * (C built by columns up to 12 or 16, then tiles of one or two vectors,
 * masked or whole), m over the row-tile remainders and whole tiles (1 to
 * 130), k from 1 to past the strip of A^T and the direct path's limit of
 * 1024 (where the blocked path takes over), every transpose pair, odd
 * leading dimensions and the alpha/beta variants. */
static void test_gemm_direct(void)
{
    static const int64_t ms[] = {1, 5, 8, 15, 16, 31, 32, 33, 64, 97, 130};
    static const int64_t ks[] = {1, 10, 64, 129, 300};
    static const double alpha_beta[][2] = {{1, 0},      {1, 1},   {-0.5, 2},
                                           {0.7, -1.3}, {2, 0}, {1.5, 0.25}};
    const int n_ms = (int)(sizeof ms / sizeof *ms);
    const int n_ks = (int)(sizeof ks / sizeof *ks);
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        const char *isa = all_isas[s];
        if (!nb_vm_force_isa(isa))
            continue;
        double worst = 0;
        int count = 0;
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            for (int64_t n = 1; n <= 40; n++) {
                /* three (m, k) per n; every m for the widths where the
                 * kernels change */
                bool all_m = n == 1 || n == 10 || n == 12 || n == 13 ||
                             n == 16 || n == 17 || n == 32 || n == 33;
                int tries = all_m ? n_ms : 3;
                for (int q = 0; q < tries; q++) {
                    int mi = all_m ? q : (int)(n * 3 + q * 5 + t) % n_ms;
                    int ki = (int)(n + q * 2 + t) % n_ks;
                    const double *ab = alpha_beta[(n + q + t) % 6];
                    gemm_case g = {ta, tb, ms[mi], n, ks[ki], 0, 0, 0,
                                   ab[0], ab[1], false, 0};
                    pad_gemm(&g, q % 3 == 1 ? 3 : 0, (n + q) % 2 ? 1 : 0,
                             q % 3 == 2 ? 5 : 0);
                    g.c_nan = g.beta == 0 && q % 2 == 0;
                    worst = fmax(worst, check_gemm(&g, isa));
                    count++;
                }
            }
            /* around the limits on k: 256 for A^T strips, 1024 for the
             * direct path; and tall products, whose A passes the direct
             * path's 256 KiB even in f32 (m k > 65,536), around its 64
             * columns (65: blocked) */
            static const int64_t mnk[][3] = {
                {3, 70, 1024},  {3, 70, 1025},  {40, 10, 256},
                {40, 10, 257},  {130, 11, 200}, {33, 5, 1024},
                {230, 17, 300}, {231, 64, 300}, {230, 65, 300},
                {70, 40, 1024}, {70, 40, 1025}};
            for (size_t i = 0; i < sizeof mnk / sizeof *mnk; i++) {
                gemm_case g = {ta,        tb, mnk[i][0], mnk[i][1],
                               mnk[i][2], 0,  0,         0,
                               0.7,       -1.3, false,   0};
                pad_gemm(&g, 1, 2, 3);
                worst = fmax(worst, check_gemm(&g, isa));
                count++;
            }
        }
        printf("gemm %-7s direct: %d cases, worst error %.3f of the bound\n",
               isa, count, worst);
    }
    nb_vm_force_isa(NULL);
}

/* The tiny products (at most 64 multiply-adds, gemm_tiny.c), bit for bit
 * against their stated order: each element the chain 0 + a_0 b_0 + a_1 b_1
 * + ... in order, one rounding per operation, then alpha (skipped when 1),
 * then + beta C (skipped when beta is 0 or -0, so NaN in C is
 * overwritten). Every m, n, k with m n k <= 64 (n and m run to 17 and
 * beyond), every transpose pair, NaN in the padding of A, B and C, the
 * plain form (alpha 1, beta 0 or -0) and the scaled ones, in f32 and f64.
 * The loops are compiled without vectorisation, so no ISA changes them. */
#define TINY_REFERENCE(T, SFX)                                                 \
    static bool tiny_case_##SFX(bool ta, bool tb, int64_t m, int64_t n,        \
                                int64_t k, T alpha, T beta)                    \
    {                                                                          \
        enum { PAD = 2, MAX = 64 + PAD };                                      \
        T a[64 * MAX], b[64 * MAX], c[64 * MAX], want[64 * MAX];               \
        int64_t lda = (ta ? m : k) + PAD, ldb = (tb ? k : n) + PAD;            \
        int64_t ldc = n + PAD;                                                 \
        for (int i = 0; i < 64 * MAX; i++) {                                   \
            a[i] = (T)(2 * rng_uniform() - 1);                                 \
            b[i] = (T)(2 * rng_uniform() - 1);                                 \
            c[i] = beta == 0 && i % 3 == 0 ? (T)NAN : (T)rng_uniform();        \
        }                                                                      \
        for (int64_t r = 0; r < 64; r++)                                       \
            for (int64_t j = (ta ? m : k); j < lda; j++)                       \
                a[r * lda + j] = (T)NAN;                                       \
        for (int64_t r = 0; r < 64; r++)                                       \
            for (int64_t j = (tb ? k : n); j < ldb; j++)                       \
                b[r * ldb + j] = (T)NAN;                                       \
        memcpy(want, c, sizeof want);                                          \
        for (int64_t i = 0; i < m; i++)                                        \
            for (int64_t j = 0; j < n; j++) {                                  \
                volatile T sum = 0; /* one rounding per operation */           \
                for (int64_t p = 0; p < k; p++) {                              \
                    volatile T prod = (ta ? a[p * lda + i] : a[i * lda + p]) * \
                                      (tb ? b[j * ldb + p] : b[p * ldb + j]);  \
                    sum = sum + prod;                                          \
                }                                                              \
                T r = alpha == 1 ? sum : alpha * sum;                          \
                if (beta != 0) {                                               \
                    volatile T scaled = alpha * sum, old = beta * c[i * ldc + j]; \
                    r = scaled + old;                                          \
                }                                                              \
                want[i * ldc + j] = r;                                         \
            }                                                                  \
        nb_gemm_##SFX(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,    \
                      NULL);                                                   \
        return memcmp(c, want, sizeof c) == 0;                                 \
    }
TINY_REFERENCE(float, f32)
TINY_REFERENCE(double, f64)
#undef TINY_REFERENCE

/* The transpose on every ISA (in registers on AVX-512 and AVX2, a loop
 * otherwise), against its definition: sizes with partial blocks, a row
 * stride wider than the rows, and the destination's padding untouched. */
static void test_transpose(void)
{
    enum { R = 37, C = 21, LD = 24, LDD = 45 };
    float src[R * LD], dst[C * LDD];
    double srcd[R * LD], dstd[C * LDD];
    for (int i = 0; i < R * LD; i++)
        srcd[i] = src[i] = (float)(i % 101) - 50;
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        if (!nb_vm_force_isa(all_isas[s]))
            continue;
        for (int i = 0; i < C * LDD; i++)
            dstd[i] = dst[i] = -1000;
        nb_transpose_f32(R, C, src, LD, dst, LDD);
        nb_transpose_f64(R, C, srcd, LD, dstd, LDD);
        int bad = 0;
        for (int j = 0; j < C; j++)
            for (int i = 0; i < LDD; i++) {
                double want = i < R ? src[i * LD + j] : -1000;
                bad += dst[j * LDD + i] != (float)want;
                bad += dstd[j * LDD + i] != want;
            }
        CHECK(bad == 0, "transpose on %s: %d elements wrong", all_isas[s],
              bad);
    }
    nb_vm_force_isa(NULL);
}

static void test_gemm_tiny(void)
{
    /* beta -0 is as plain as 0 (the entry tests the bits of both). */
    static const double alpha_beta[][2] = {{1, 0},      {1, 1}, {-0.5, 2},
                                           {0.7, -1.3}, {2, 0}, {1, -0.0}};
    int count = 0, wrong = 0;
    for (int64_t m = 1; m <= 64; m++)
        for (int64_t n = 1; m * n <= 64; n++)
            for (int64_t k = 1; m * n * k <= 64; k++)
                for (int t = 0; t < 4; t++) {
                    const double *ab = alpha_beta[(m + n + k + t) % 6];
                    bool ok32 = tiny_case_f32(t & 1, t & 2, m, n, k,
                                              (float)ab[0], (float)ab[1]);
                    bool ok64 = tiny_case_f64(t & 1, t & 2, m, n, k, ab[0],
                                              ab[1]);
                    CHECK(ok32 && ok64,
                          "tiny gemm ta=%d tb=%d m=%lld n=%lld k=%lld "
                          "alpha=%g beta=%g:%s%s differs from the chain",
                          t & 1, (t & 2) != 0, (long long)m, (long long)n,
                          (long long)k, ab[0], ab[1], ok32 ? "" : " f32",
                          ok64 ? "" : " f64");
                    wrong += !(ok32 && ok64);
                    count++;
                }
    printf("gemm tiny: %d cases bit for bit, %d differ\n", count, wrong);
}

/* NABLA_ISA is read when the kernels are first used */
static void test_env_choice(void)
{
    setenv("NABLA_ISA", "sse2", 1);
    const char *isa = nb_vm_isa();
    bool has_sse2 = nb_vm_force_isa("sse2");
    nb_vm_force_isa(NULL);
    CHECK(strcmp(isa, has_sse2 ? "sse2" : "scalar") == 0,
          "NABLA_ISA=sse2 gave %s", isa);
    CHECK(strcmp(nb_vm_isa(), isa) == 0, "the choice is not stable");
}

/* ---- threads (OpenMP builds) ----
 *
 * The kernels split large calls over OpenMP threads, each element of the
 * result computed by exactly one thread in the same order, so a result
 * must not change by a single bit with the thread count. Each product or
 * elementwise call runs with 1, 2 and 3 threads (more than this machine
 * may have: OpenMP still grants them) and the results are compared bit for
 * bit; the products are also checked against a double-precision sum (the
 * 1-thread result is the reference the bitwise check rests on). Shapes:
 * the Fashion-MNIST MLP's products forward and backward, and odd ones that
 * leave partial tiles, several k blocks, and m a multiple of 32 (the AVX2
 * kernel's 6-row slivers once overran their packing block there). Some
 * betas are not powers of two, so that C's update rounds differently in a
 * full tile (one fused multiply-add) and an edge tile: a strip boundary
 * off the tile grid would show. */
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    bool ta, tb;
    int64_t m, n, k;
    double beta;
} thread_case;

static const thread_case thread_cases[] = {
    {false, false, 64, 256, 784, 0},  /* MLP forward, layer 1 */
    {true, false, 784, 256, 64, 1},   /* dW1 = X^T dY */
    {false, true, 64, 784, 256, 1},   /* dX = dY W^T */
    {false, false, 256, 128, 256, 0}, /* layer 2, batch 256 */
    {false, false, 67, 259, 133, -1.3},
    {true, true, 333, 45, 301, 1},
    {false, true, 96, 97, 555, 0.7},
    {true, false, 40, 1100, 300, 0}, /* several B panels per thread */
    {false, false, 64, 64, 64, 1.7},
    /* the unpacked paths: C by columns (A^T made in strips per thread, or
     * read in place), and tiles read in place or from B^T */
    {false, false, 1000, 10, 200, 0.7},
    {true, false, 1000, 12, 300, 1},
    {false, true, 800, 11, 100, -1.3},
    {false, true, 100, 40, 500, -1.3},
    {true, false, 64, 300, 600, 0},
};

/* C = op(A) op(B) + beta C0 with `threads` threads into c (ldc = n + 3,
 * padding 777). */
static void run_threaded_f32(const thread_case *t, int threads,
                             const float *a, const float *b, const float *c0,
                             float *c, void *ws)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
    /* the team whenever it may split, so the comparison means something */
    nb_parallel_set_mode(threads > 1 ? NB_PARALLEL_TEAM : NB_PARALLEL_MEASURE);
#else
    (void)threads;
#endif
    int64_t ldc = t->n + 3;
    memcpy(c, c0, sizeof(float) * (size_t)(t->m * ldc));
    nb_gemm_f32(t->ta, t->tb, t->m, t->n, t->k, 1.0f, a, t->ta ? t->m : t->k,
                b, t->tb ? t->k : t->n, (float)t->beta, c, ldc, ws);
}

static void run_threaded_f64(const thread_case *t, int threads,
                             const double *a, const double *b,
                             const double *c0, double *c, void *ws)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
    /* the team whenever it may split, so the comparison means something */
    nb_parallel_set_mode(threads > 1 ? NB_PARALLEL_TEAM : NB_PARALLEL_MEASURE);
#else
    (void)threads;
#endif
    int64_t ldc = t->n + 3;
    memcpy(c, c0, sizeof(double) * (size_t)(t->m * ldc));
    nb_gemm_f64(t->ta, t->tb, t->m, t->n, t->k, 1.0, a, t->ta ? t->m : t->k,
                b, t->tb ? t->k : t->n, t->beta, c, ldc, ws);
}

static void check_gemm_threads(const thread_case *t, const char *isa)
{
    size_t a_size = (size_t)(t->m * t->k), b_size = (size_t)(t->k * t->n);
    int64_t ldc = t->n + 3;
    size_t c_size = (size_t)(t->m * ldc);
    double *a = malloc(sizeof(double) * a_size);
    double *b = malloc(sizeof(double) * b_size);
    double *c0 = malloc(sizeof(double) * c_size);
    double *c1 = malloc(sizeof(double) * c_size);
    double *cn = malloc(sizeof(double) * c_size);
    float *a32 = malloc(sizeof(float) * a_size);
    float *b32 = malloc(sizeof(float) * b_size);
    float *c032 = malloc(sizeof(float) * c_size);
    float *c132 = malloc(sizeof(float) * c_size);
    float *cn32 = malloc(sizeof(float) * c_size);
    void *ws32 = NULL, *ws64 = NULL;
    size_t need32 = nb_gemm_workspace_f32(t->m, t->n, t->k);
    size_t need64 = nb_gemm_workspace_f64(t->m, t->n, t->k);
    if (!a || !b || !c0 || !c1 || !cn || !a32 || !b32 || !c032 || !c132 ||
        !cn32 || posix_memalign(&ws32, 64, need32) != 0 ||
        posix_memalign(&ws64, 64, need64) != 0)
        abort();
    for (size_t i = 0; i < a_size; i++)
        a32[i] = (float)(a[i] = 2 * rng_uniform() - 1);
    for (size_t i = 0; i < b_size; i++)
        b32[i] = (float)(b[i] = 2 * rng_uniform() - 1);
    for (size_t i = 0; i < c_size; i++)
        c032[i] = (float)(c0[i] = (int64_t)i % ldc >= t->n
                                      ? 777.0
                                      : 2 * rng_uniform() - 1);

    run_threaded_f32(t, 1, a32, b32, c032, c132, ws32);
    run_threaded_f64(t, 1, a, b, c0, c1, ws64);
    /* the 1-thread results against a plain sum; a bound of k eps times
     * the terms' magnitude (1 each at most) covers any summation order */
    double worst32 = 0, worst64 = 0;
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            size_t at = (size_t)(i * ldc + j);
            if (j >= t->n) {
                worst32 = c132[at] == 777.0f ? worst32 : INFINITY;
                worst64 = c1[at] == 777.0 ? worst64 : INFINITY;
                continue;
            }
            double s32 = 0, s64 = 0;
            for (int64_t p = 0; p < t->k; p++) {
                size_t ai = (size_t)(t->ta ? p * t->m + i : i * t->k + p);
                size_t bi = (size_t)(t->tb ? j * t->k + p : p * t->n + j);
                s32 += (double)a32[ai] * (double)b32[bi];
                s64 += a[ai] * b[bi];
            }
            s32 += t->beta * (double)c032[at];
            s64 += t->beta * c0[at];
            double e32 = fabs((double)c132[at] - s32) /
                         ((double)(t->k + 2) * FLT_EPSILON);
            double e64 =
                fabs(c1[at] - s64) / ((double)(t->k + 2) * DBL_EPSILON);
            worst32 = e32 > worst32 || isnan(e32) ? e32 : worst32;
            worst64 = e64 > worst64 || isnan(e64) ? e64 : worst64;
        }
    CHECK(worst32 <= 1 && worst64 <= 1,
          "gemm %s ta=%d tb=%d %lldx%lldx%lld, 1 thread: error %.3g (f32) "
          "%.3g (f64) of the bound",
          isa, t->ta, t->tb, (long long)t->m, (long long)t->n,
          (long long)t->k, worst32, worst64);

    for (int threads = 2; threads <= 3; threads++) {
        run_threaded_f32(t, threads, a32, b32, c032, cn32, ws32);
        run_threaded_f64(t, threads, a, b, c0, cn, ws64);
        CHECK(memcmp(cn32, c132, sizeof(float) * c_size) == 0 &&
                  memcmp(cn, c1, sizeof(double) * c_size) == 0,
              "gemm %s ta=%d tb=%d %lldx%lldx%lld: %d threads differ from 1 "
              "(f32 %s, f64 %s)",
              isa, t->ta, t->tb, (long long)t->m, (long long)t->n,
              (long long)t->k, threads,
              memcmp(cn32, c132, sizeof(float) * c_size) ? "differs" : "same",
              memcmp(cn, c1, sizeof(double) * c_size) ? "differs" : "same");
    }
    free(a);
    free(b);
    free(c0);
    free(c1);
    free(cn);
    free(a32);
    free(b32);
    free(c032);
    free(c132);
    free(cn32);
    free(ws32);
    free(ws64);
}

/* Elementwise kernels over an odd length well above the threading
 * threshold, with 1, 2 and 3 threads: bitwise the same. Four calls (a
 * unary, elu, and an accumulating derivative) write four slots of y. */
enum { VM_LEN = 200003 };

static void run_vm_threads(int threads, const float *x32, const double *x64,
                           float *y, double *z)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
    /* the team whenever it may split, so the comparison means something */
    nb_parallel_set_mode(threads > 1 ? NB_PARALLEL_TEAM : NB_PARALLEL_MEASURE);
#else
    (void)threads;
#endif
    nb_vm_exp_f32(VM_LEN, x32, y);
    nb_vm_gelu_f32(VM_LEN, x32, y + VM_LEN);
    nb_vm_elu_f32(VM_LEN, 1.5f, x32, y + 2 * VM_LEN);
    nb_vm_exp_f64(VM_LEN, x64, z);
    nb_vm_gelu_f64(VM_LEN, x64, z + VM_LEN);
    nb_vm_elu_f64(VM_LEN, 1.5, x64, z + 2 * VM_LEN);
    for (int i = 0; i < VM_LEN; i++) {
        y[3 * VM_LEN + i] = 0.5f;
        z[3 * VM_LEN + i] = 0.25;
    }
    nb_vm_silu_grad_f32(VM_LEN, x32, x32, y + 3 * VM_LEN);
    nb_vm_softplus_grad_f64(VM_LEN, x64, x64, z + 3 * VM_LEN);
}

static void check_elementwise_threads(const char *isa)
{
    float *x32 = malloc(sizeof(float) * VM_LEN);
    double *x64 = malloc(sizeof(double) * VM_LEN);
    float *y1 = malloc(sizeof(float) * 4 * VM_LEN),
          *yn = malloc(sizeof(float) * 4 * VM_LEN);
    double *z1 = malloc(sizeof(double) * 4 * VM_LEN),
           *zn = malloc(sizeof(double) * 4 * VM_LEN);
    if (!x32 || !x64 || !y1 || !yn || !z1 || !zn)
        abort();
    for (int i = 0; i < VM_LEN; i++)
        x32[i] = (float)(x64[i] = 20 * rng_uniform() - 10);
    run_vm_threads(1, x32, x64, y1, z1);
    /* the calls did run: exp(x) > 0 everywhere */
    CHECK(y1[VM_LEN - 1] > 0 && z1[VM_LEN - 1] > 0, "elementwise %s: no output",
          isa);
    for (int threads = 2; threads <= 3; threads++) {
        run_vm_threads(threads, x32, x64, yn, zn);
        CHECK(memcmp(y1, yn, sizeof(float) * 4 * VM_LEN) == 0 &&
                  memcmp(z1, zn, sizeof(double) * 4 * VM_LEN) == 0,
              "elementwise %s: %d threads differ from 1", isa, threads);
    }
    free(x32);
    free(x64);
    free(y1);
    free(yn);
    free(z1);
    free(zn);
}

static void test_threads(void)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
#endif
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        const char *isa = all_isas[s];
        if (!nb_vm_force_isa(isa))
            continue;
        for (size_t i = 0; i < sizeof thread_cases / sizeof *thread_cases;
             i++)
            check_gemm_threads(&thread_cases[i], isa);
        check_elementwise_threads(isa);
    }
    nb_vm_force_isa(NULL);
#ifdef _OPENMP
    omp_set_num_threads(saved);
    nb_parallel_set_mode(NB_PARALLEL_MEASURE);
#endif
}

/* nb_parallel_for: every unit handled exactly once, the barrier holds the
 * team until all have arrived, and the range is split as documented. */
struct pf_cover {
    int hits[1000];
    int after_barrier_misses;
    int64_t n;
};

static void pf_cover_body(void *ctx, int64_t lo, int64_t hi, int t, int q)
{
    struct pf_cover *c = ctx;
    if (lo != c->n * t / q || hi != c->n * (t + 1) / q)
        c->after_barrier_misses += 1000; /* not the documented split */
    for (int64_t i = lo; i < hi; i++)
        c->hits[i]++;
    nb_parallel_barrier();
    int missing = 0;
    for (int64_t i = 0; i < c->n; i++)
        missing += c->hits[i] == 0;
#ifdef _OPENMP
#pragma omp atomic
#endif
    c->after_barrier_misses += missing;
}

static void test_parallel_for_cover(void)
{
    static nb_parallel_site site = NB_PARALLEL_SITE("test.cover", 1);
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
#endif
    nb_parallel_set_mode(NB_PARALLEL_TEAM);
    const int64_t ns[] = {1, 2, 3, 7, 64, 1000};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        struct pf_cover c = {{0}, 0, ns[k]};
        int used = nb_parallel_for(&site, c.n, c.n, 8, pf_cover_body, &c);
        int once = 0;
        for (int64_t i = 0; i < c.n; i++)
            once += c.hits[i] == 1;
        CHECK(once == c.n && c.after_barrier_misses == 0,
              "n %lld on %d threads: %d of %lld units once, %d misses",
              (long long)c.n, used, once, (long long)c.n,
              c.after_barrier_misses);
    }
    CHECK(nb_parallel_for(&site, 0, 0, 8, pf_cover_body, NULL) == 0,
          "an empty range runs nothing");
    CHECK(nb_parallel_set_mode((nb_parallel_mode)7) == NB_ERR_ARG,
          "unknown mode accepted");
    nb_parallel_set_mode(NB_PARALLEL_MEASURE);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

/* The measured choice, on a clock the body moves (so that the test does
 * not depend on how busy the machine is): a body that takes 1 s alone and
 * 0.6 s on the team runs on the team; when the team turns slow (5 s, as a
 * second core taken by another process) the site drops it within a call or
 * two; when it is fast again a trial finds it and the site takes it back.
 * Thread 0 moves the clock by the whole call's time, so the back-off never
 * sees a late team. */
static double pf_clock;
static double pf_team_seconds;

static double pf_now(void)
{
    return pf_clock;
}

static void pf_clock_body(void *ctx, int64_t lo, int64_t hi, int t, int q)
{
    (void)ctx;
    (void)lo;
    (void)hi;
    if (t == 0)
        pf_clock += q == 1 ? 1.0 : pf_team_seconds;
}

#ifdef _OPENMP
/* Two threads, no back-off left from earlier tests, the test's clock, and
 * a team region that takes 0.6 of one thread's time. Returns the thread
 * count to restore. */
static int pf_clock_begin(void)
{
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    const struct timespec lift = {0, 250 * 1000 * 1000};
    nanosleep(&lift, NULL);
    nb_parallel_set_clock(pf_now);
    pf_team_seconds = 0.6;
    return saved;
}
#endif

static void test_parallel_for_adapts(void)
{
#ifdef _OPENMP
    if (omp_get_num_procs() < 2)
        return;
    static nb_parallel_site site = NB_PARALLEL_SITE("test.clock", 1);
    int saved = pf_clock_begin();
    int team = 0;
    for (int i = 0; i < 40; i++)
        team += nb_parallel_for(&site, 64, 64, 8, pf_clock_body, NULL) == 2;
    /* two first measurements, then a trial of one thread now and then */
    CHECK(team >= 35, "fast team: %d of 40 calls on 2 threads", team);
    double one = 0, tm = 0;
    int pref = 0;
    nb_parallel_site_stats(&site, 64, &one, &tm, &pref);
    CHECK(pref && one > tm, "fast team: %g s/unit alone, %g on the team",
          one, tm);

    pf_team_seconds = 5.0;
    int on_team = 0;
    for (int i = 0; i < 40; i++)
        on_team += nb_parallel_for(&site, 64, 64, 8, pf_clock_body, NULL) == 2;
    /* the one call that finds it slow, then trials at gaps of 8, 16 */
    CHECK(on_team >= 1 && on_team <= 4,
          "slow team: %d of 40 calls on 2 threads", on_team);
    nb_parallel_site_stats(&site, 64, &one, &tm, &pref);
    CHECK(!pref && tm > one, "slow team preferred: %g alone, %g team", one,
          tm);

    pf_team_seconds = 0.6;
    int back = -1;
    for (int i = 0; i < 1100 && back < 0; i++)
        if (nb_parallel_for(&site, 64, 64, 8, pf_clock_body, NULL) == 2)
            back = i;
    CHECK(back >= 0 && back <= 64, "the fast team came back after %d calls",
          back);
    nb_parallel_site_stats(&site, 64, &one, &tm, &pref);
    CHECK(pref, "fast team not preferred again: %g alone, %g team", one, tm);
    CHECK(nb_parallel_site_stats(NULL, 1, NULL, NULL, NULL) == NB_ERR_ARG,
          "NULL site");
    nb_parallel_set_clock(NULL);
    omp_set_num_threads(saved);
#endif
}

/* One simulated training step for the whole-step policy: a mark, then a
 * region that takes 1 s alone and 0.6 s on the team, then `moving` seconds
 * more if the team ran (what a team costs outside its regions: data that
 * the other core must fetch). Returns whether the team ran. */
static bool cycle_step(nb_parallel_cycle *c, nb_parallel_site *site,
                       double moving)
{
    nb_parallel_cycle_mark(c);
    bool team = nb_parallel_for(site, 64, 64, 8, pf_clock_body, NULL) == 2;
    if (team)
        pf_clock += moving;
    return team;
}

/* Whole steps (core/parallel_internal.h): a team that wins its regions but
 * loses the step is dropped after a few steps, comes back when it wins the
 * step again, and the cap it leaves ends with its owner or when no step
 * follows. */
static void test_parallel_cycle(void)
{
#ifdef _OPENMP
    if (omp_get_num_procs() < 2)
        return;
    static nb_parallel_site site = NB_PARALLEL_SITE("test.cycle", 1);
    int saved = pf_clock_begin();
    nb_parallel_cycle c;
    memset(&c, 0, sizeof c);
    int team = 0;
    for (int i = 0; i < 60; i++)
        team += cycle_step(&c, &site, 2.0); /* steps: 2.6 s team, 1 s alone */
    /* the first steps and a trial of the team at gaps of 8, 16, 32 */
    CHECK(team <= 14, "losing team: %d of 60 steps on 2 threads", team);
    CHECK(c.single && c.cost[0] > c.cost[1],
          "losing team kept: %g s a step with it, %g alone", c.cost[0],
          c.cost[1]);
    int back = -1;
    for (int i = 0; i < 200 && back < 0; i++)
        if (cycle_step(&c, &site, 0.0))
            back = i;
    CHECK(back >= 0 && back <= 80, "the winning team came back after %d",
          back);
    team = 0;
    for (int i = 0; i < 40; i++)
        team += cycle_step(&c, &site, 0.0);
    /* trials of one thread (3 steps each) at gaps of 8 and 16 */
    CHECK(team >= 30, "winning team: %d of 40 steps on 2 threads", team);

    /* Held to one thread: the cap lasts until twice a step's cost passed
     * without a mark, or until its owner ends. */
    for (int i = 0; i < 200 && !(c.single && !c.trial); i++)
        cycle_step(&c, &site, 5.0);
    CHECK(c.single && !c.trial, "a team losing by 5 s a step still in use");
    CHECK(nb_parallel_threads() == 1, "in a one-thread step: %d threads",
          nb_parallel_threads());
    pf_clock += 2.5 * (c.cost[0] > c.cost[1] ? c.cost[0] : c.cost[1]);
    CHECK(nb_parallel_threads() == 2, "no step for long: %d threads",
          nb_parallel_threads());
    cycle_step(&c, &site, 5.0);
    for (int i = 0; i < 200 && !(c.single && !c.trial); i++)
        cycle_step(&c, &site, 5.0);
    CHECK(nb_parallel_threads() == 1, "held again: %d threads",
          nb_parallel_threads());
    nb_parallel_cycle_end(&c);
    CHECK(nb_parallel_threads() == 2, "after its end: %d threads",
          nb_parallel_threads());
    nb_parallel_set_clock(NULL);
    omp_set_num_threads(saved);
#endif
}

/* The shared thread policy (nabla/parallel.h): one team size for every
 * caller, 1 inside a parallel region, and a back-off only after four late
 * teams in a row, lifted 0.2 s later. */
static void test_parallel_policy(void)
{
    CHECK(nb_parallel_threads() >= 1, "nb_parallel_threads below 1");
    nb_parallel_report(1e-3, 0); /* harmless without OpenMP too */
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    const int two = omp_get_num_procs() >= 2 ? 2 : 1;
    const struct timespec lift = {0, 250 * 1000 * 1000};
    nanosleep(&lift, NULL); /* outlast any back-off of earlier tests */
    CHECK(nb_parallel_threads() == two, "idle: %d threads, want %d",
          nb_parallel_threads(), two);
    int inside = 0;
#pragma omp parallel num_threads(2)
    {
        if (omp_get_thread_num() == 0)
            inside = nb_parallel_threads();
    }
    CHECK(inside == 1, "inside a parallel region: %d threads, want 1",
          inside);
    for (int i = 0; i < 3; i++)
        nb_parallel_report(1e-5, 5e-3); /* late: waited 5 ms for 10 us */
    nb_parallel_report(1e-5, 1e-5);     /* on time: the streak restarts */
    for (int i = 0; i < 3; i++)
        nb_parallel_report(1e-5, 5e-3);
    CHECK(nb_parallel_threads() == two,
          "three late teams after one on time: %d threads, want %d",
          nb_parallel_threads(), two);
    nb_parallel_report(1e-5, 5e-3);
    CHECK(nb_parallel_threads() == 1, "four late teams: %d threads, want 1",
          nb_parallel_threads());
    nanosleep(&lift, NULL);
    CHECK(nb_parallel_threads() == two,
          "0.25 s after the back-off: %d threads, want %d",
          nb_parallel_threads(), two);
    omp_set_num_threads(saved);
#endif
}

/* The fused LSTM cell gives, element for element, what the separate
 * sigmoid and tanh kernels and the two products give, on every ISA, with
 * lengths that leave a tail. */
#define LSTM_CELL_CHECK(REAL, SFX)                                             \
    static void lstm_cell_check_##SFX(const char *isa, int64_t n)             \
    {                                                                          \
        REAL a[4 * 70], ref[4 * 70], cp[70] = {0}, c[70], tc[70], h[70];      \
        REAL rc[70], rtc[70], rh[70];                                          \
        for (int64_t j = 0; j < 4 * n; j++)                                    \
            a[j] = ref[j] = (REAL)(8 * rng_uniform() - 4);                     \
        for (int64_t j = 0; j < n; j++)                                        \
            cp[j] = (REAL)(6 * rng_uniform() - 3);                             \
        nb_vm_lstm_cell_##SFX(n, a, cp, c, tc, h);                             \
        nb_vm_sigmoid_##SFX(2 * n, ref, ref);                                  \
        nb_vm_tanh_##SFX(n, ref + 2 * n, ref + 2 * n);                         \
        nb_vm_sigmoid_##SFX(n, ref + 3 * n, ref + 3 * n);                      \
        for (int64_t j = 0; j < n; j++)                                        \
            rc[j] = ref[n + j] * cp[j] + ref[j] * ref[2 * n + j];              \
        nb_vm_tanh_##SFX(n, rc, rtc);                                          \
        for (int64_t j = 0; j < n; j++)                                        \
            rh[j] = ref[3 * n + j] * rtc[j];                                   \
        size_t b = (size_t)n * sizeof(REAL);                                   \
        CHECK(memcmp(a, ref, 4 * b) == 0 && memcmp(c, rc, b) == 0 &&           \
                  memcmp(tc, rtc, b) == 0 && memcmp(h, rh, b) == 0,            \
              "lstm_cell " #SFX " on %s, n %lld: differs from the separate "  \
              "kernels",                                                       \
              isa, (long long)n);                                              \
    }
LSTM_CELL_CHECK(float, f32)
LSTM_CELL_CHECK(double, f64)
#undef LSTM_CELL_CHECK

/* The LSTM cell's backward on every ISA against its formulas written out
 * here (products and sums only, so the bits must agree), with lengths
 * that leave a tail; both copies of da, and dc updated in place. */
#define LSTM_BACK_CHECK(REAL, SFX)                                             \
    static void lstm_back_check_##SFX(const char *isa, int64_t n)             \
    {                                                                          \
        REAL a[4 * 70], cp[70], tc[70], dy[70], dhn[70], dc[70], rdc[70];     \
        REAL da[4 * 70], da2[4 * 70], rda[4 * 70];                             \
        for (int64_t j = 0; j < 4 * n; j++)                                    \
            a[j] = (REAL)rng_uniform();                                        \
        for (int64_t j = 0; j < n; j++) {                                      \
            cp[j] = (REAL)(6 * rng_uniform() - 3);                             \
            tc[j] = (REAL)(2 * rng_uniform() - 1);                             \
            dy[j] = (REAL)(2 * rng_uniform() - 1);                             \
            dhn[j] = (REAL)(2 * rng_uniform() - 1);                            \
            dc[j] = rdc[j] = (REAL)(2 * rng_uniform() - 1);                    \
        }                                                                      \
        for (int64_t j = 0; j < n; j++) {                                      \
            REAL i = a[j], f = a[n + j], g = a[2 * n + j], o = a[3 * n + j];  \
            REAL dh = dy[j] + dhn[j];                                          \
            REAL d = rdc[j] + dh * o * (1 - tc[j] * tc[j]);                    \
            rda[j] = d * g * i * (1 - i);                                      \
            rda[n + j] = d * cp[j] * f * (1 - f);                              \
            rda[2 * n + j] = d * i * (1 - g * g);                              \
            rda[3 * n + j] = dh * tc[j] * o * (1 - o);                         \
            rdc[j] = d * f;                                                    \
        }                                                                      \
        nb_vm_lstm_cell_back_##SFX(n, a, cp, tc, dy, dhn, dc, da, da2);        \
        size_t b = (size_t)n * sizeof(REAL);                                   \
        CHECK(memcmp(da, rda, 4 * b) == 0 && memcmp(da2, rda, 4 * b) == 0 &&   \
                  memcmp(dc, rdc, b) == 0,                                     \
              "lstm_cell_back " #SFX " on %s, n %lld: differs from the "       \
              "formulas",                                                      \
              isa, (long long)n);                                              \
    }
LSTM_BACK_CHECK(float, f32)
LSTM_BACK_CHECK(double, f64)
#undef LSTM_BACK_CHECK

/* The GRU cell's backward likewise: da, both copies of dah, and dhn
 * replaced by h_{t-1}'s direct message. */
#define GRU_BACK_CHECK(REAL, SFX)                                              \
    static void gru_back_check_##SFX(const char *isa, int64_t n)              \
    {                                                                          \
        REAL a[3 * 70], hn[70], hp[70], dy[70], dhn[70], rdhn[70];            \
        REAL da[3 * 70], dah[3 * 70], dah2[3 * 70], rda[3 * 70], rdah[3 * 70]; \
        for (int64_t j = 0; j < 3 * n; j++)                                    \
            a[j] = (REAL)rng_uniform();                                        \
        for (int64_t j = 0; j < n; j++) {                                      \
            hn[j] = (REAL)(4 * rng_uniform() - 2);                             \
            hp[j] = (REAL)(2 * rng_uniform() - 1);                             \
            dy[j] = (REAL)(2 * rng_uniform() - 1);                             \
            dhn[j] = rdhn[j] = (REAL)(2 * rng_uniform() - 1);                  \
        }                                                                      \
        for (int64_t j = 0; j < n; j++) {                                      \
            REAL r = a[j], z = a[n + j], nv = a[2 * n + j];                    \
            REAL dh = dy[j] + rdhn[j];                                         \
            REAL an = dh * (1 - z) * (1 - nv * nv);                            \
            rda[j] = rdah[j] = an * hn[j] * r * (1 - r);                       \
            rda[n + j] = rdah[n + j] = dh * (hp[j] - nv) * z * (1 - z);        \
            rda[2 * n + j] = an;                                               \
            rdah[2 * n + j] = an * r;                                          \
            rdhn[j] = dh * z;                                                  \
        }                                                                      \
        nb_vm_gru_cell_back_##SFX(n, a, hn, hp, dy, dhn, da, dah, dah2);       \
        size_t b = (size_t)n * sizeof(REAL);                                   \
        CHECK(memcmp(da, rda, 3 * b) == 0 && memcmp(dah, rdah, 3 * b) == 0 && \
                  memcmp(dah2, rdah, 3 * b) == 0 &&                            \
                  memcmp(dhn, rdhn, b) == 0,                                   \
              "gru_cell_back " #SFX " on %s, n %lld: differs from the "        \
              "formulas",                                                      \
              isa, (long long)n);                                              \
    }
GRU_BACK_CHECK(float, f32)
GRU_BACK_CHECK(double, f64)
#undef GRU_BACK_CHECK

/* Max pooling with a 2x2 window at stride 2, on every instruction set
 * (AVX-512 has a kernel of its own for it), against the definition: the
 * first maximum of each window in row-major order under strict
 * comparison, padding skipped. Values repeat (ties), include -0 and +0,
 * and now and then a NaN (which, as the first tap, stays the maximum, and
 * elsewhere never wins). Row lengths cover full vectors and masked tails. */
static void max_pool_reference(const nb_pool2d_geom *g, const float *x,
                               float *y, int32_t *arg)
{
    for (int64_t p = 0; p < g->planes; p++)
        for (int64_t i = 0; i < g->oh; i++)
            for (int64_t j = 0; j < g->ow; j++) {
                float best = 0;
                int32_t at = -1;
                for (int64_t a = 0; a < g->kh; a++)
                    for (int64_t b = 0; b < g->kw; b++) {
                        int64_t r = i * g->sh - g->ph + a;
                        int64_t c = j * g->sw - g->pw + b;
                        if (r < 0 || r >= g->h || c < 0 || c >= g->w)
                            continue;
                        float v = x[(p * g->h + r) * g->w + c];
                        if (at < 0 || v > best) {
                            best = v;
                            at = (int32_t)(r * g->w + c);
                        }
                    }
                y[(p * g->oh + i) * g->ow + j] = best;
                arg[(p * g->oh + i) * g->ow + j] = at;
            }
}

static void test_max_pool_2x2(void)
{
    /* three planes: an odd number of output rows when each plane has one,
     * so the AVX-512 kernel's rows taken two at a time leave one */
    enum { CAP = 3 * 9 * 70 };
    static float x[CAP], y[CAP], ry[CAP], dy[CAP], dx[CAP], rdx[CAP];
    static int32_t arg[CAP], rarg[CAP];
    const float values[] = {-1.0f, 0.0f, -0.0f, 1.0f, 2.0f, 0.5f};
    int cases = 0;
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        if (!nb_vm_force_isa(all_isas[s]))
            continue;
        for (int64_t h = 2; h <= 9; h += 3)
            for (int64_t w = 2; w <= 70; w += w < 20 ? 1 : 17)
                for (int64_t pad = 0; pad <= 1; pad++) {
                    nb_pool2d_geom g = {.planes = 3, .h = h, .w = w,
                                        .kh = 2, .kw = 2, .sh = 2, .sw = 2,
                                        .ph = pad, .pw = pad, .dh = 1,
                                        .dw = 1};
                    g.oh = (h + 2 * pad - 2) / 2 + 1;
                    g.ow = (w + 2 * pad - 2) / 2 + 1;
                    for (int64_t k = 0; k < 3 * h * w; k++) {
                        double u = rng_uniform();
                        x[k] = u < 0.02 ? NAN
                                        : values[(int)(u * 6) % 6];
                    }
                    max_pool_reference(&g, x, ry, rarg);
                    nb_max_pool2d_f32(&g, x, y, arg);
                    int64_t n = 3 * g.oh * g.ow;
                    CHECK(memcmp(y, ry, (size_t)n * sizeof *y) == 0 &&
                              memcmp(arg, rarg, (size_t)n * sizeof *arg) == 0,
                          "max_pool2d 2x2 on %s, %lldx%lld pad %lld: differs "
                          "from the definition",
                          all_isas[s], (long long)h, (long long)w,
                          (long long)pad);
                    /* backward: dx[arg] += dy with the 32-bit indices */
                    for (int64_t k = 0; k < n; k++)
                        dy[k] = (float)(rng_uniform() - 0.5);
                    for (int64_t k = 0; k < 3 * h * w; k++)
                        rdx[k] = dx[k] = (float)k;
                    for (int64_t k = 0; k < n; k++)
                        rdx[(k / (g.oh * g.ow)) * h * w + rarg[k]] += dy[k];
                    nb_max_pool2d_back_f32(&g, false, dy, arg, dx);
                    CHECK(memcmp(dx, rdx, (size_t)(3 * h * w) * sizeof *dx) ==
                              0,
                          "max_pool2d 2x2 backward on %s, %lldx%lld pad %lld: "
                          "differs from dx[arg] += dy",
                          all_isas[s], (long long)h, (long long)w,
                          (long long)pad);
                    /* a fresh gradient: whatever dx held is overwritten,
                     * the rows and columns no window covers included, and
                     * a -0 message gives 0 + -0 as a cleared gradient
                     * would */
                    for (int64_t k = 0; k < n; k += 7)
                        dy[k] = -0.0f;
                    for (int64_t k = 0; k < 3 * h * w; k++) {
                        rdx[k] = 0;
                        dx[k] = NAN;
                    }
                    for (int64_t k = 0; k < n; k++)
                        rdx[(k / (g.oh * g.ow)) * h * w + rarg[k]] += dy[k];
                    nb_max_pool2d_back_f32(&g, true, dy, arg, dx);
                    CHECK(memcmp(dx, rdx, (size_t)(3 * h * w) * sizeof *dx) ==
                              0,
                          "max_pool2d 2x2 backward into a fresh gradient on "
                          "%s, %lldx%lld pad %lld: differs from zeros, then "
                          "dx[arg] += dy",
                          all_isas[s], (long long)h, (long long)w,
                          (long long)pad);
                    cases++;
                }
    }
    nb_vm_force_isa(NULL);
    CHECK(cases > 0, "no max_pool2d case ran");
}

static void test_lstm_cell(void)
{
    const int64_t lengths[] = {1, 7, 16, 37, 70};
    for (size_t s = 0; s < sizeof all_isas / sizeof *all_isas; s++) {
        if (!nb_vm_force_isa(all_isas[s]))
            continue;
        for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
            lstm_cell_check_f32(all_isas[s], lengths[i]);
            lstm_cell_check_f64(all_isas[s], lengths[i]);
            lstm_back_check_f32(all_isas[s], lengths[i]);
            lstm_back_check_f64(all_isas[s], lengths[i]);
            gru_back_check_f32(all_isas[s], lengths[i]);
            gru_back_check_f64(all_isas[s], lengths[i]);
        }
    }
    nb_vm_force_isa(NULL);
}

int main(void)
{
    ld_wide = long_double_is_wide();
    test_env_choice();
    test_elementwise();
    test_lstm_cell();
    test_max_pool_2x2();
    test_gemm();
    test_gemm_direct();
    test_gemm_tiny();
    test_transpose();
    test_threads();
    test_parallel_policy();
    test_parallel_cycle();
    test_parallel_for_cover();
    test_parallel_for_adapts();
    return tu_finish("kernels");
}
