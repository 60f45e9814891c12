/* The elementwise kernels on AVX-512 (16 floats / 8 doubles a vector),
 * with SLEEF's 1-ulp AVX-512 functions. Compiled with -mavx512f; called
 * only when the CPU has it. Integer forms of the bitwise operations keep
 * the file within AVX512F (the float forms need AVX512DQ). */
#include <immintrin.h>
#include <sleef.h>
#include <string.h>

#include "kernels/vmath_simd.h"

#define PS(v) _mm512_castps_si512(v)
#define PD(v) _mm512_castpd_si512(v)
/* the mask of the lanes below len (len < 16) */
#define LANES(len) ((__mmask16)((1u << (len)) - 1u))

#define REAL float
#define VEC __m512
#define MASK __mmask16
#define WIDTH 16
#define NAME(name) name##_f32_avx512
#define V_LOAD _mm512_loadu_ps
#define V_STORE _mm512_storeu_ps
#define V_LOAD_PART(p, len) _mm512_maskz_loadu_ps(LANES(len), p)
#define V_STORE_PART(p, v, len) _mm512_mask_storeu_ps(p, LANES(len), v)
#define V_SET1 _mm512_set1_ps
#define V_FIRST _mm512_cvtss_f32
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_DIV _mm512_div_ps
#define V_MUL_ADD _mm512_fmadd_ps
#define V_MUL_ERR(a, b, p) _mm512_fmsub_ps(a, b, p)
#define V_MAX _mm512_max_ps
#define V_MIN _mm512_min_ps
#define V_AND(a, b) _mm512_castsi512_ps(_mm512_and_si512(PS(a), PS(b)))
#define V_OR(a, b) _mm512_castsi512_ps(_mm512_or_si512(PS(a), PS(b)))
#define V_XOR(a, b) _mm512_castsi512_ps(_mm512_xor_si512(PS(a), PS(b)))
#define V_LT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ)
#define V_GE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ)
#define V_SELECT(m, t, f) _mm512_mask_blend_ps(m, f, t)
#define V_EXP Sleef_expf16_u10avx512f
#define V_LOG Sleef_logf16_u10avx512f
#define V_LOG1P Sleef_log1pf16_u10avx512f
#define V_EXPM1 Sleef_expm1f16_u10avx512f
#define V_ERFC Sleef_erfcf16_u15avx512f
#define V_TANH Sleef_tanhf16_u10avx512f
#define TANH_FROM_EXP 1
#include "kernels/vmath_simd_impl.h"

#define REAL double
#define VEC __m512d
#define MASK __mmask8
#define WIDTH 8
#define NAME(name) name##_f64_avx512
#define V_LOAD _mm512_loadu_pd
#define V_STORE _mm512_storeu_pd
#define V_LOAD_PART(p, len) _mm512_maskz_loadu_pd((__mmask8)LANES(len), p)
#define V_STORE_PART(p, v, len) _mm512_mask_storeu_pd(p, (__mmask8)LANES(len), v)
#define V_SET1 _mm512_set1_pd
#define V_FIRST _mm512_cvtsd_f64
#define V_ADD _mm512_add_pd
#define V_SUB _mm512_sub_pd
#define V_MUL _mm512_mul_pd
#define V_DIV _mm512_div_pd
#define V_MUL_ADD _mm512_fmadd_pd
#define V_MUL_ERR(a, b, p) _mm512_fmsub_pd(a, b, p)
#define V_MAX _mm512_max_pd
#define V_MIN _mm512_min_pd
#define V_AND(a, b) _mm512_castsi512_pd(_mm512_and_si512(PD(a), PD(b)))
#define V_OR(a, b) _mm512_castsi512_pd(_mm512_or_si512(PD(a), PD(b)))
#define V_XOR(a, b) _mm512_castsi512_pd(_mm512_xor_si512(PD(a), PD(b)))
#define V_LT(a, b) _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ)
#define V_GT(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ)
#define V_GE(a, b) _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ)
#define V_SELECT(m, t, f) _mm512_mask_blend_pd(m, f, t)
#define V_EXP Sleef_expd8_u10avx512f
#define V_LOG Sleef_logd8_u10avx512f
#define V_LOG1P Sleef_log1pd8_u10avx512f
#define V_EXPM1 Sleef_expm1d8_u10avx512f
#define V_ERFC Sleef_erfcd8_u15avx512f
#define V_TANH Sleef_tanhd8_u10avx512f
#include "kernels/vmath_simd_impl.h"
