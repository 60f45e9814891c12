/* GEMM micro-kernels for AVX2 + FMA: 6 x 16 floats (12 accumulators) and
 * 6 x 8 doubles. Compiled with -mavx2 -mfma; used only when the CPU has
 * both. */
#include <immintrin.h>

#include "kernels/gemm.h"

#define REAL float
#define VEC __m256
#define W 8
#define MR 6
#define KDESC_TYPE nb_gemm_kernel_f32
#define NAME(x) x##_f32_avx2
#define V_ZERO _mm256_setzero_ps()
#define V_LOAD _mm256_load_ps
#define V_LOADU _mm256_loadu_ps
#define V_STOREU _mm256_storeu_ps
#define V_SET1 _mm256_set1_ps
#define V_MUL _mm256_mul_ps
#define V_FMA _mm256_fmadd_ps
#include "kernels/gemm_ukernel_simd.h"

#define REAL double
#define VEC __m256d
#define W 4
#define MR 6
#define KDESC_TYPE nb_gemm_kernel_f64
#define NAME(x) x##_f64_avx2
#define V_ZERO _mm256_setzero_pd()
#define V_LOAD _mm256_load_pd
#define V_LOADU _mm256_loadu_pd
#define V_STOREU _mm256_storeu_pd
#define V_SET1 _mm256_set1_pd
#define V_MUL _mm256_mul_pd
#define V_FMA _mm256_fmadd_pd
#include "kernels/gemm_ukernel_simd.h"
