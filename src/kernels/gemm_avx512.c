/* GEMM micro-kernels for AVX-512: 8 x 32 floats (16 accumulators) and
 * 8 x 16 doubles. Compiled with -mavx512f; used only when the CPU has it. */
#include <immintrin.h>

#include "kernels/gemm.h"

#define REAL float
#define VEC __m512
#define W 16
#define MR 8
#define KDESC_TYPE nb_gemm_kernel_f32
#define NAME(x) x##_f32_avx512
#define V_ZERO _mm512_setzero_ps()
#define V_LOAD _mm512_load_ps
#define V_LOADU _mm512_loadu_ps
#define V_STOREU _mm512_storeu_ps
#define V_SET1 _mm512_set1_ps
#define V_MUL _mm512_mul_ps
#define V_FMA _mm512_fmadd_ps
#include "kernels/gemm_ukernel_simd.h"

#define REAL double
#define VEC __m512d
#define W 8
#define MR 8
#define KDESC_TYPE nb_gemm_kernel_f64
#define NAME(x) x##_f64_avx512
#define V_ZERO _mm512_setzero_pd()
#define V_LOAD _mm512_load_pd
#define V_LOADU _mm512_loadu_pd
#define V_STOREU _mm512_storeu_pd
#define V_SET1 _mm512_set1_pd
#define V_MUL _mm512_mul_pd
#define V_FMA _mm512_fmadd_pd
#include "kernels/gemm_ukernel_simd.h"
