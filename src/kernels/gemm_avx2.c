/* GEMM kernels for AVX2 + FMA: packed micro-kernels of 6 x 16 floats (12
 * accumulators) and 6 x 8 doubles; direct tiles of 6 rows by two vectors
 * or 8 by one (vmaskmov for the masked edges); narrow tiles of 2 W rows by
 * up to 6 columns (16 registers); 8 x 8 / 4 x 4 in-register transposes.
 * Compiled with -mavx2 -mfma; used only when the CPU has both. */
#include <immintrin.h>

#include "kernels/gemm.h"

/* In-register transposes of an 8 x 8 float and a 4 x 4 double block (x[r]
 * is row r; afterwards x[j] is column j): unpack pairs of rows, shuffle
 * quads within 128-bit lanes (floats only), then swap 128-bit halves. */
static inline __attribute__((always_inline)) void transpose8_f32(__m256 *x)
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* u[4 g + q] half L: column 4 L + q of rows 4 g .. 4 g + 3 */
    for (int q = 0; q < 4; q++) {
        x[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
        x[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
    }
}

static inline __attribute__((always_inline)) void transpose4_f64(__m256d *x)
{
    __m256d t[4];
    for (int i = 0; i < 4; i += 2) {
        t[i] = _mm256_unpacklo_pd(x[i], x[i + 1]);
        t[i + 1] = _mm256_unpackhi_pd(x[i], x[i + 1]);
    }
    /* t[2 g + q] half L: column 2 L + q of rows 2 g, 2 g + 1 */
    for (int q = 0; q < 2; q++) {
        x[q] = _mm256_permute2f128_pd(t[q], t[2 + q], 0x20);
        x[2 + q] = _mm256_permute2f128_pd(t[q], t[2 + q], 0x31);
    }
}

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
#define DMR2 6
#define DMR1 8
#define DMR_MAX 16
#define NCT 6
#define S_FMA __builtin_fmaf
#define TRANSPOSE_BLOCK transpose8_f32
#define MASK_T __m256i
#define V_MASK(cols)                                                           \
    _mm256_cmpgt_epi32(_mm256_set1_epi32(cols),                                \
                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define V_LOADM(p, m) _mm256_maskload_ps((p), (m))
#define V_STOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
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
#define DMR2 6
#define DMR1 8
#define DMR_MAX 16
#define NCT 6
#define S_FMA __builtin_fma
#define TRANSPOSE_BLOCK transpose4_f64
#define MASK_T __m256i
#define V_MASK(cols)                                                           \
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(cols), _mm256_setr_epi64x(0, 1, 2, 3))
#define V_LOADM(p, m) _mm256_maskload_pd((p), (m))
#define V_STOREM(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#include "kernels/gemm_ukernel_simd.h"
