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
 * load or store passes its end.
 *
 * Whole planes without padding (nb_max_pool2x2_planes_f32_avx512) run
 * the same steps row after row in one call; rows of at most 8 outputs
 * (a 14- or 16-wide input) go two to a vector, the second row's taps
 * permuted into the upper lanes, since one such row alone would leave
 * half of each vector idle. */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/pool.h"

/* Up to 16 windows whose two input rows are (t0, t1) and (b0, b1), the
 * permutes even and odd picking each window's left and right taps, k
 * their top-left indices: the maxima and their indices stored in the
 * lanes of out. */
static inline void windows(__m512 t0, __m512 t1, __m512 b0, __m512 b1,
                           __m512i even, __m512i odd, __m512i k, int32_t w,
                           __mmask16 out, float *y, int32_t *arg)
{
    const __m512i right = _mm512_set1_epi32(1), below = _mm512_set1_epi32(w),
                  below_right = _mm512_set1_epi32(w + 1);
    __m512 v0 = _mm512_permutex2var_ps(t0, even, t1);
    __m512 v1 = _mm512_permutex2var_ps(t0, odd, t1);
    __m512 v2 = _mm512_permutex2var_ps(b0, even, b1);
    __m512 v3 = _mm512_permutex2var_ps(b0, odd, b1);
    __mmask16 c = _mm512_cmp_ps_mask(v1, v0, _CMP_GT_OQ);
    __m512 best = _mm512_mask_blend_ps(c, v0, v1);
    __m512i at = _mm512_mask_add_epi32(k, c, k, right);
    c = _mm512_cmp_ps_mask(v2, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(c, best, v2);
    at = _mm512_mask_add_epi32(at, c, k, below);
    c = _mm512_cmp_ps_mask(v3, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(c, best, v3);
    at = _mm512_mask_add_epi32(at, c, k, below_right);
    _mm512_mask_storeu_ps(y, out, best);
    _mm512_mask_storeu_epi32(arg, out, at);
}

/* n outputs of one row, sixteen at a time. */
static inline void row(int64_t n, const float *top, const float *bot,
                       int32_t k0, int32_t w, float *y, int32_t *arg)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18,
                                           20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
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
        __m512i k = _mm512_add_epi32(_mm512_set1_epi32(k0 + 2 * (int32_t)j),
                                     even);
        windows(t0, t1, b0, b1, even, odd, k, w, out, y + j, arg + j);
    }
}

void nb_max_pool2x2_row_f32_avx512(int64_t n, const float *top,
                                   const float *bot, int32_t k0, int32_t w,
                                   float *y, int32_t *arg)
{
    row(n, top, bot, k0, w, y, arg);
}

/* Rows r and r + 1 (or r alone when pair is false) of ow <= 8 outputs
 * each: lanes [0, ow) hold row r's windows, [ow, 2 ow) row r + 1's. */
static inline void row_pair(int64_t ow, bool pair, const float *top0,
                            const float *top1, int32_t k0, int32_t k1,
                            int32_t w, __m512i even, __m512i odd,
                            __m512i step, float *y, int32_t *arg)
{
    __mmask16 in = (__mmask16)((1u << (2 * ow)) - 1);
    __mmask16 in1 = pair ? in : 0;
    __mmask16 upper = (__mmask16)(in & ~((1u << ow) - 1));
    __mmask16 out = pair ? in : (__mmask16)((1u << ow) - 1);
    __m512 t0 = _mm512_maskz_loadu_ps(in, top0);
    __m512 t1 = _mm512_maskz_loadu_ps(in1, top1);
    __m512 b0 = _mm512_maskz_loadu_ps(in, top0 + w);
    __m512 b1 = _mm512_maskz_loadu_ps(in1, top1 + w);
    __m512i k = _mm512_add_epi32(
        _mm512_mask_blend_epi32(upper, _mm512_set1_epi32(k0),
                                _mm512_set1_epi32(k1)),
        step);
    windows(t0, t1, b0, b1, even, odd, k, w, out, y, arg);
}

void nb_max_pool2x2_planes_f32_avx512(int64_t planes, int64_t h, int64_t w,
                                      const float *x, float *y, int32_t *arg)
{
    const int64_t oh = h / 2, ow = w / 2, rows = planes * oh;
    const int32_t w32 = (int32_t)w;
    if (ow > 8) {
        for (int64_t p = 0; p < planes; p++)
            for (int64_t i = 0; i < oh; i++) {
                const float *top = x + p * h * w + 2 * i * w;
                int64_t o = (p * oh + i) * ow;
                row(ow, top, top + w, (int32_t)(2 * i * w), w32, y + o,
                    arg + o);
            }
        return;
    }
    /* lane l < ow takes row r's window l, lane l >= ow row r + 1's
     * window l - ow: input column 2l, or 2 (l - ow) of the second source
     * (the permutes' lanes 16 and up) */
    int32_t e[16] = {0}, s[16] = {0};
    for (int l = 0; l < 2 * ow; l++) {
        s[l] = 2 * (l < ow ? l : l - (int)ow);
        e[l] = s[l] + (l < ow ? 0 : 16);
    }
    const __m512i even = _mm512_loadu_si512(e);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i step = _mm512_loadu_si512(s);
    int64_t p = 0, i = 0; /* row r's plane and row in it */
    for (int64_t r = 0; r < rows; r += 2) {
        int64_t p1 = i + 1 < oh ? p : p + 1, i1 = i + 1 < oh ? i + 1 : 0;
        const float *top0 = x + p * h * w + 2 * i * w;
        /* an odd last row pairs with itself; the masks load nothing */
        const float *top1 =
            r + 1 < rows ? x + p1 * h * w + 2 * i1 * w : top0;
        row_pair(ow, r + 1 < rows, top0, top1, (int32_t)(2 * i * w),
                 (int32_t)(2 * i1 * w), w32, even, odd, step, y + r * ow,
                 arg + r * ow);
        p = i1 + 1 < oh ? p1 : p1 + 1;
        i = i1 + 1 < oh ? i1 + 1 : 0;
    }
}

/* The backward of the planes above into a gradient no message has reached
 * yet: each window's four elements written at once, dy where the window's
 * index says and zeros elsewhere (the windows tile the plane, so nothing
 * else writes them), then the row and column no window covers (an odd
 * extent) cleared. Equal to clearing dx and adding dy at the indices,
 * without a pass that only clears. */

/* Windows with top-left indices k, winners' indices a and gradients g
 * spread into their four taps: v[t] is 0 + g where a names tap t, else 0
 * (the sum the cleared gradient would have taken, -0 included). */
static inline void taps(__m512 g, __m512i a, __m512i k, int32_t w,
                        __m512 v[4])
{
    const __m512 zero = _mm512_setzero_ps();
    const __m512i d = _mm512_sub_epi32(a, k);
    const int32_t at[4] = {0, 1, w, w + 1};
    for (int t = 0; t < 4; t++)
        v[t] = _mm512_maskz_add_ps(
            _mm512_cmpeq_epi32_mask(d, _mm512_set1_epi32(at[t])), zero, g);
}

/* Lanes l0, l0 + 1, ... of the left and right taps interleaved: left[l0],
 * right[l0], left[l0 + 1], ... */
static __m512i pairs_from(int l0)
{
    int32_t e[16];
    for (int l = 0; l < 16; l++)
        e[l] = l0 + l / 2 + (l % 2 ? 16 : 0);
    return _mm512_loadu_si512(e);
}

/* The 2n elements of a window row (n <= 8) from the lanes that idx, made
 * by pairs_from, names. */
static inline void store_pairs(__m512 left, __m512 right, __m512i idx, int n,
                               float *dst)
{
    _mm512_mask_storeu_ps(dst, (__mmask16)((1u << (2 * n)) - 1),
                          _mm512_permutex2var_ps(left, idx, right));
}

void nb_max_pool2x2_back_planes_f32_avx512(int64_t planes, int64_t h,
                                           int64_t w, const float *dy,
                                           const int32_t *arg, float *dx)
{
    const int64_t oh = h / 2, ow = w / 2, rows = planes * oh;
    const int32_t w32 = (int32_t)w;
    const __m512i from0 = pairs_from(0);
    if (ow > 8) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16,
                                               18, 20, 22, 24, 26, 28, 30);
        const __m512i from8 = pairs_from(8);
        for (int64_t p = 0; p < planes; p++)
            for (int64_t i = 0; i < oh; i++) {
                float *top = dx + p * h * w + 2 * i * w;
                int64_t o = (p * oh + i) * ow;
                for (int64_t j = 0; j < ow; j += 16) {
                    int m = ow - j < 16 ? (int)(ow - j) : 16;
                    __mmask16 out = (__mmask16)((1u << m) - 1);
                    __m512i k = _mm512_add_epi32(
                        _mm512_set1_epi32((int32_t)(2 * i * w + 2 * j)), even);
                    __m512 v[4];
                    taps(_mm512_maskz_loadu_ps(out, dy + o + j),
                         _mm512_maskz_loadu_epi32(out, arg + o + j), k, w32,
                         v);
                    float *t = top + 2 * j, *b = t + w;
                    store_pairs(v[0], v[1], from0, m < 8 ? m : 8, t);
                    store_pairs(v[2], v[3], from0, m < 8 ? m : 8, b);
                    if (m > 8) {
                        store_pairs(v[0], v[1], from8, m - 8, t + 16);
                        store_pairs(v[2], v[3], from8, m - 8, b + 16);
                    }
                }
            }
    } else {
        int32_t s[16] = {0};
        for (int l = 0; l < 2 * ow; l++)
            s[l] = 2 * (l < ow ? l : l - (int)ow);
        const __m512i step = _mm512_loadu_si512(s);
        const int n = (int)ow;
        const __m512i from_n = pairs_from(n);
        int64_t p = 0, i = 0; /* row r's plane and row in it */
        for (int64_t r = 0; r < rows; r += 2) {
            bool pair = r + 1 < rows;
            int64_t p1 = i + 1 < oh ? p : p + 1, i1 = i + 1 < oh ? i + 1 : 0;
            __mmask16 in = (__mmask16)((1u << (pair ? 2 * n : n)) - 1);
            __mmask16 upper = (__mmask16)(in & ~((1u << n) - 1));
            __m512i k = _mm512_add_epi32(
                _mm512_mask_blend_epi32(upper,
                                        _mm512_set1_epi32((int32_t)(2 * i * w)),
                                        _mm512_set1_epi32((int32_t)(2 * i1 * w))),
                step);
            __m512 v[4];
            taps(_mm512_maskz_loadu_ps(in, dy + r * ow),
                 _mm512_maskz_loadu_epi32(in, arg + r * ow), k, w32, v);
            float *top0 = dx + p * h * w + 2 * i * w;
            store_pairs(v[0], v[1], from0, n, top0);
            store_pairs(v[2], v[3], from0, n, top0 + w);
            if (pair) {
                float *top1 = dx + p1 * h * w + 2 * i1 * w;
                store_pairs(v[0], v[1], from_n, n, top1);
                store_pairs(v[2], v[3], from_n, n, top1 + w);
            }
            p = i1 + 1 < oh ? p1 : p1 + 1;
            i = i1 + 1 < oh ? i1 + 1 : 0;
        }
    }
    if (h % 2 == 0 && w % 2 == 0)
        return;
    for (int64_t p = 0; p < planes; p++) {
        float *plane = dx + p * h * w;
        for (int64_t r = 0; w % 2 && r < 2 * oh; r++)
            plane[r * w + w - 1] = 0;
        for (int64_t c = 0; h % 2 && c < w; c++)
            plane[(h - 1) * w + c] = 0;
    }
}
