/* The 2x2, stride-2 max pooling of a row of outputs on AVX-512 (the
 * window of convolutional nets' downsampling; pool_impl.h runs every
 * other window, and this one where the CPU lacks AVX-512).
 *
 * Output j of the row is the first maximum, in window order, of
 *   top[2j], top[2j+1], bot[2j], bot[2j+1]
 * with the strict comparisons of the portable path (a later equal value
 * does not take over; a NaN first tap stays the maximum), and its index in
 * the plane k0 + 2j, + 1, + w or + w + 1. Sixteen outputs at a time: two
 * loads of each input row, split into even and odd taps by a two-source
 * permute, three compares and blends; the row's tail is masked, so no
 * load or store passes its end. */
#include <immintrin.h>

#include "kernels/pool.h"

void nb_max_pool2x2_row_f32_avx512(int64_t n, const float *top,
                                   const float *bot, int32_t k0, int32_t w,
                                   float *y, int32_t *arg)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18,
                                           20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i right = _mm512_set1_epi32(1), below = _mm512_set1_epi32(w),
                  below_right = _mm512_set1_epi32(w + 1);
    for (int64_t j = 0; j < n; j += 16) {
        int64_t m = n - j < 16 ? n - j : 16;
        /* the 2m inputs of each row: the first 16 and the rest */
        int64_t first = 2 * m < 16 ? 2 * m : 16, rest = 2 * m - first;
        __mmask16 out = (__mmask16)((1u << m) - 1);
        __mmask16 lo = (__mmask16)((1u << first) - 1);
        __mmask16 hi = (__mmask16)((1u << rest) - 1);
        const float *t = top + 2 * j, *b = bot + 2 * j;
        __m512 t0 = _mm512_maskz_loadu_ps(lo, t);
        __m512 t1 = _mm512_maskz_loadu_ps(hi, t + 16);
        __m512 b0 = _mm512_maskz_loadu_ps(lo, b);
        __m512 b1 = _mm512_maskz_loadu_ps(hi, b + 16);
        __m512 v0 = _mm512_permutex2var_ps(t0, even, t1);
        __m512 v1 = _mm512_permutex2var_ps(t0, odd, t1);
        __m512 v2 = _mm512_permutex2var_ps(b0, even, b1);
        __m512 v3 = _mm512_permutex2var_ps(b0, odd, b1);
        __m512i k = _mm512_add_epi32(_mm512_set1_epi32(k0 + 2 * (int32_t)j),
                                     even);
        __mmask16 c = _mm512_cmp_ps_mask(v1, v0, _CMP_GT_OQ);
        __m512 best = _mm512_mask_blend_ps(c, v0, v1);
        __m512i at = _mm512_mask_add_epi32(k, c, k, right);
        c = _mm512_cmp_ps_mask(v2, best, _CMP_GT_OQ);
        best = _mm512_mask_blend_ps(c, best, v2);
        at = _mm512_mask_add_epi32(at, c, k, below);
        c = _mm512_cmp_ps_mask(v3, best, _CMP_GT_OQ);
        best = _mm512_mask_blend_ps(c, best, v3);
        at = _mm512_mask_add_epi32(at, c, k, below_right);
        _mm512_mask_storeu_ps(y + j, out, best);
        _mm512_mask_storeu_epi32(arg + j, out, at);
    }
}

