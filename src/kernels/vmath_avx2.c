/* The elementwise kernels on AVX2 + FMA (8 floats / 4 doubles a vector),
 * with SLEEF's 1-ulp AVX2 functions. Compiled with -mavx2 -mfma; called
 * only when the CPU has both. */
#include <immintrin.h>
#include <sleef.h>
#include <string.h>

#include "kernels/vmath_simd.h"

/* Lanes below len: all bits set in the lanes a masked move takes. */
static inline __m256i mask_f32(int64_t len)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)len),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m256i mask_f64(int64_t len)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(len),
                              _mm256_setr_epi64x(0, 1, 2, 3));
}

#define REAL float
#define VEC __m256
#define MASK __m256
#define WIDTH 8
#define NAME(name) name##_f32_avx2
#define V_LOAD _mm256_loadu_ps
#define V_STORE _mm256_storeu_ps
#define V_LOAD_PART(p, len) _mm256_maskload_ps(p, mask_f32(len))
#define V_STORE_PART(p, v, len) _mm256_maskstore_ps(p, mask_f32(len), v)
#define V_SET1 _mm256_set1_ps
#define V_FIRST _mm256_cvtss_f32
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_DIV _mm256_div_ps
#define V_MUL_ADD _mm256_fmadd_ps
#define V_MUL_ERR(a, b, p) _mm256_fmsub_ps(a, b, p)
#define V_MAX _mm256_max_ps
#define V_MIN _mm256_min_ps
#define V_AND _mm256_and_ps
#define V_OR _mm256_or_ps
#define V_XOR _mm256_xor_ps
#define V_LT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define V_GE(a, b) _mm256_cmp_ps(a, b, _CMP_GE_OQ)
#define V_SELECT(m, t, f) _mm256_blendv_ps(f, t, m)
#define V_EXP Sleef_expf8_u10avx2
#define V_LOG Sleef_logf8_u10avx2
#define V_LOG1P Sleef_log1pf8_u10avx2
#define V_EXPM1 Sleef_expm1f8_u10avx2
#define V_ERFC Sleef_erfcf8_u15avx2
#define V_TANH Sleef_tanhf8_u10avx2
#define TANH_FROM_EXP 1
#include "kernels/vmath_simd_impl.h"

#define REAL double
#define VEC __m256d
#define MASK __m256d
#define WIDTH 4
#define NAME(name) name##_f64_avx2
#define V_LOAD _mm256_loadu_pd
#define V_STORE _mm256_storeu_pd
#define V_LOAD_PART(p, len) _mm256_maskload_pd(p, mask_f64(len))
#define V_STORE_PART(p, v, len) _mm256_maskstore_pd(p, mask_f64(len), v)
#define V_SET1 _mm256_set1_pd
#define V_FIRST _mm256_cvtsd_f64
#define V_ADD _mm256_add_pd
#define V_SUB _mm256_sub_pd
#define V_MUL _mm256_mul_pd
#define V_DIV _mm256_div_pd
#define V_MUL_ADD _mm256_fmadd_pd
#define V_MUL_ERR(a, b, p) _mm256_fmsub_pd(a, b, p)
#define V_MAX _mm256_max_pd
#define V_MIN _mm256_min_pd
#define V_AND _mm256_and_pd
#define V_OR _mm256_or_pd
#define V_XOR _mm256_xor_pd
#define V_LT(a, b) _mm256_cmp_pd(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define V_GE(a, b) _mm256_cmp_pd(a, b, _CMP_GE_OQ)
#define V_SELECT(m, t, f) _mm256_blendv_pd(f, t, m)
#define V_EXP Sleef_expd4_u10avx2
#define V_LOG Sleef_logd4_u10avx2
#define V_LOG1P Sleef_log1pd4_u10avx2
#define V_EXPM1 Sleef_expm1d4_u10avx2
#define V_ERFC Sleef_erfcd4_u15avx2
#define V_TANH Sleef_tanhd4_u10avx2
#include "kernels/vmath_simd_impl.h"
