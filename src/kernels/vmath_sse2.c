/* The elementwise kernels on SSE2 (4 floats / 2 doubles a vector), the
 * x86-64 baseline, with SLEEF's 1-ulp SSE2 functions. SSE2 has neither FMA
 * nor a blend instruction: a * b + c is two roundings, selection is done
 * with masks, and the exact product error uses Dekker's splitting. */
#include <emmintrin.h>
#include <sleef.h>
#include <string.h>

#include "kernels/vmath_simd.h"

/* Dekker: a * b - p exactly for p = fl(a * b), from halves of a and b
 * whose products are exact; `split` is 2^ceil(precision/2) + 1. Only used
 * on clamped, moderate arguments, so the splitting cannot overflow. */
static inline __m128 ps_half_hi(__m128 a, __m128 split)
{
    __m128 t = _mm_mul_ps(a, split);
    return _mm_sub_ps(t, _mm_sub_ps(t, a));
}

static inline __m128 ps_mul_err(__m128 a, __m128 b, __m128 p, __m128 split)
{
    __m128 a_hi = ps_half_hi(a, split), a_lo = _mm_sub_ps(a, a_hi);
    __m128 b_hi = ps_half_hi(b, split), b_lo = _mm_sub_ps(b, b_hi);
    __m128 e = _mm_sub_ps(_mm_mul_ps(a_hi, b_hi), p);
    e = _mm_add_ps(e, _mm_mul_ps(a_hi, b_lo));
    e = _mm_add_ps(e, _mm_mul_ps(a_lo, b_hi));
    return _mm_add_ps(e, _mm_mul_ps(a_lo, b_lo));
}

static inline __m128d pd_half_hi(__m128d a, __m128d split)
{
    __m128d t = _mm_mul_pd(a, split);
    return _mm_sub_pd(t, _mm_sub_pd(t, a));
}

static inline __m128d pd_mul_err(__m128d a, __m128d b, __m128d p, __m128d split)
{
    __m128d a_hi = pd_half_hi(a, split), a_lo = _mm_sub_pd(a, a_hi);
    __m128d b_hi = pd_half_hi(b, split), b_lo = _mm_sub_pd(b, b_hi);
    __m128d e = _mm_sub_pd(_mm_mul_pd(a_hi, b_hi), p);
    e = _mm_add_pd(e, _mm_mul_pd(a_hi, b_lo));
    e = _mm_add_pd(e, _mm_mul_pd(a_lo, b_hi));
    return _mm_add_pd(e, _mm_mul_pd(a_lo, b_lo));
}

#define REAL float
#define VEC __m128
#define MASK __m128
#define WIDTH 4
#define NAME(name) name##_f32_sse2
#define V_LOAD _mm_loadu_ps
#define V_STORE _mm_storeu_ps
#define V_SET1 _mm_set1_ps
#define V_FIRST _mm_cvtss_f32
#define V_ADD _mm_add_ps
#define V_SUB _mm_sub_ps
#define V_MUL _mm_mul_ps
#define V_DIV _mm_div_ps
#define V_MUL_ADD(a, b, c) _mm_add_ps(_mm_mul_ps(a, b), c)
#define V_MUL_ERR(a, b, p) ps_mul_err(a, b, p, _mm_set1_ps(4097.0f))
#define V_MAX _mm_max_ps
#define V_MIN _mm_min_ps
#define V_AND _mm_and_ps
#define V_OR _mm_or_ps
#define V_XOR _mm_xor_ps
#define V_LT _mm_cmplt_ps
#define V_GT _mm_cmpgt_ps
#define V_GE _mm_cmpge_ps
#define V_SELECT(m, t, f) _mm_or_ps(_mm_and_ps(m, t), _mm_andnot_ps(m, f))
#define V_EXP Sleef_expf4_u10sse2
#define V_LOG Sleef_logf4_u10sse2
#define V_LOG1P Sleef_log1pf4_u10sse2
#define V_EXPM1 Sleef_expm1f4_u10sse2
#define V_ERFC Sleef_erfcf4_u15sse2
#define V_TANH Sleef_tanhf4_u10sse2
#define TANH_FROM_EXP 1
#include "kernels/vmath_simd_impl.h"

#define REAL double
#define VEC __m128d
#define MASK __m128d
#define WIDTH 2
#define NAME(name) name##_f64_sse2
#define V_LOAD _mm_loadu_pd
#define V_STORE _mm_storeu_pd
#define V_SET1 _mm_set1_pd
#define V_FIRST _mm_cvtsd_f64
#define V_ADD _mm_add_pd
#define V_SUB _mm_sub_pd
#define V_MUL _mm_mul_pd
#define V_DIV _mm_div_pd
#define V_MUL_ADD(a, b, c) _mm_add_pd(_mm_mul_pd(a, b), c)
#define V_MUL_ERR(a, b, p) pd_mul_err(a, b, p, _mm_set1_pd(134217729.0))
#define V_MAX _mm_max_pd
#define V_MIN _mm_min_pd
#define V_AND _mm_and_pd
#define V_OR _mm_or_pd
#define V_XOR _mm_xor_pd
#define V_LT _mm_cmplt_pd
#define V_GT _mm_cmpgt_pd
#define V_GE _mm_cmpge_pd
#define V_SELECT(m, t, f) _mm_or_pd(_mm_and_pd(m, t), _mm_andnot_pd(m, f))
#define V_EXP Sleef_expd2_u10sse2
#define V_LOG Sleef_logd2_u10sse2
#define V_LOG1P Sleef_log1pd2_u10sse2
#define V_EXPM1 Sleef_expm1d2_u10sse2
#define V_ERFC Sleef_erfcd2_u15sse2
#define V_TANH Sleef_tanhd2_u10sse2
#include "kernels/vmath_simd_impl.h"
