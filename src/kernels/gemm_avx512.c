/* GEMM kernels for AVX-512: packed micro-kernels of 8 x 32 floats (16
 * accumulators) and 8 x 16 doubles; direct tiles of 8 rows by two vectors
 * or one (masked loads and stores through mask registers); narrow tiles of
 * 2 W rows by up to 12 columns (24 accumulators); 16 x 16 / 8 x 8
 * in-register transposes. Compiled with -mavx512f; used only when the CPU
 * has it. */
#include <immintrin.h>

#include "kernels/gemm.h"

/* In-register transposes of a 16 x 16 float and an 8 x 8 double block
 * (x[r] is row r; afterwards x[j] is column j). Floats: unpack pairs of
 * rows, shuffle quads within 128-bit lanes, then two rounds of 128-bit
 * lane shuffles; doubles skip the middle round. In-lane unpacks and
 * shuffles cost less here than two-source permutes (measured: the
 * narrow 64 x 10 x 128 product spent 40% of its time transposing A with
 * vpermt2ps rounds). */
static inline __attribute__((always_inline)) void transpose16_f32(__m512 *x)
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(x[i], x[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* u[4 g + q] lane L: column 4 L + q of rows 4 g .. 4 g + 3 */
    for (int q = 0; q < 4; q++) {
        __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
        __m512 v2 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
        __m512 w2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
        x[q] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        x[8 + q] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
        x[4 + q] = _mm512_shuffle_f32x4(v2, w2, 0x88);
        x[12 + q] = _mm512_shuffle_f32x4(v2, w2, 0xDD);
    }
}

static inline __attribute__((always_inline)) void transpose8_f64(__m512d *x)
{
    __m512d t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(x[i], x[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(x[i], x[i + 1]);
    }
    /* t[2 g + q] lane L: column 2 L + q of rows 2 g, 2 g + 1 */
    for (int q = 0; q < 2; q++) {
        __m512d v1 = _mm512_shuffle_f64x2(t[q], t[2 + q], 0x88);
        __m512d v2 = _mm512_shuffle_f64x2(t[q], t[2 + q], 0xDD);
        __m512d w1 = _mm512_shuffle_f64x2(t[4 + q], t[6 + q], 0x88);
        __m512d w2 = _mm512_shuffle_f64x2(t[4 + q], t[6 + q], 0xDD);
        x[q] = _mm512_shuffle_f64x2(v1, w1, 0x88);
        x[4 + q] = _mm512_shuffle_f64x2(v1, w1, 0xDD);
        x[2 + q] = _mm512_shuffle_f64x2(v2, w2, 0x88);
        x[6 + q] = _mm512_shuffle_f64x2(v2, w2, 0xDD);
    }
}

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
#define DMR2 8
#define DMR1 8
#define DMR_MAX 16
#define NCT 12
#define S_FMA __builtin_fmaf
#define TRANSPOSE_BLOCK transpose16_f32
#define MASK_T __mmask16
#define V_MASK(cols) ((__mmask16)((1u << (cols)) - 1))
#define V_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
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
#define DMR2 8
#define DMR1 8
#define DMR_MAX 16
#define NCT 12
#define S_FMA __builtin_fma
#define TRANSPOSE_BLOCK transpose8_f64
#define MASK_T __mmask8
#define V_MASK(cols) ((__mmask8)((1u << (cols)) - 1))
#define V_LOADM(p, m) _mm512_maskz_loadu_pd((m), (p))
#define V_STOREM(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#include "kernels/gemm_ukernel_simd.h"
