/* Pooling over the two trailing axes of [planes, H, W] arrays (planes =
 * N*C), for f32 and f64. Each output element is computed from its own
 * window in a fixed order, so results do not depend on how planes are
 * split between threads. Backward adds into dx. */
#ifndef NB_KERNELS_POOL_H
#define NB_KERNELS_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct nb_pool2d_geom {
    int64_t planes;          /* N*C */
    int64_t h, w;            /* input extents */
    int64_t oh, ow;          /* output extents */
    int64_t kh, kw;          /* window */
    int64_t sh, sw;          /* stride */
    int64_t ph, pw;          /* padding before (and after) */
    int64_t dh, dw;          /* dilation */
} nb_pool2d_geom;

/* y[p,i,j] = the first maximum of the window; arg[p,i,j] its index in the
 * plane (i*w + j of x), -1 when the window holds no input element (which
 * max_pool2d's shape rule refuses, so only a direct caller sees it). The
 * index is 32-bit (a plane must hold fewer than 2^31 elements: the shape
 * rule says so): half the bytes of a 64-bit one to write and read back,
 * and lanes as wide as a float's, so the common 2x2 window vectorises. */
void nb_max_pool2d_f32(const nb_pool2d_geom *g, const float *x, float *y,
                       int32_t *arg);
void nb_max_pool2d_f64(const nb_pool2d_geom *g, const double *x, double *y,
                       int32_t *arg);
/* n outputs of a row of 2x2, stride-2 max pooling whose windows lie
 * inside the input: top and bot point at the first window's two rows, k0
 * is the plane index of top[0] and w the plane's width; the same values
 * and indices as the portable path. x86-64 builds only; the caller checks
 * that the CPU runs AVX-512. */
void nb_max_pool2x2_row_f32_avx512(int64_t n, const float *top,
                                   const float *bot, int32_t k0, int32_t w,
                                   float *y, int32_t *arg);
/* Whole planes of 2x2, stride-2 max pooling without padding (outputs
 * h/2 x w/2 per plane, planes of h x w inputs): the values and indices of
 * the row kernel. x86-64 builds only, on a CPU that runs AVX-512. */
void nb_max_pool2x2_planes_f32_avx512(int64_t planes, int64_t h, int64_t w,
                                      const float *x, float *y, int32_t *arg);
/* The gradient of those planes into dx, every element written (dx's
 * old contents ignored): the bits of clearing dx and then adding dy at
 * each window's index. */
void nb_max_pool2x2_back_planes_f32_avx512(int64_t planes, int64_t h,
                                           int64_t w, const float *dy,
                                           const int32_t *arg, float *dx);
/* dx[arg] += dy, plane by plane; with overwrite, dx's old contents are
 * ignored (a gradient no message has reached yet): dx = 0, then
 * dx[arg] += dy. */
void nb_max_pool2d_back_f32(const nb_pool2d_geom *g, bool overwrite,
                            const float *dy, const int32_t *arg, float *dx);
void nb_max_pool2d_back_f64(const nb_pool2d_geom *g, bool overwrite,
                            const double *dy, const int32_t *arg, double *dx);

/* y = (sum of the window's input elements) / divisor, the divisor kh*kw
 * when count_include_pad, else the number of input elements in the
 * window. Dilation is not used (must be 1). */
void nb_avg_pool2d_f32(const nb_pool2d_geom *g, bool count_include_pad,
                       const float *x, float *y);
void nb_avg_pool2d_f64(const nb_pool2d_geom *g, bool count_include_pad,
                       const double *x, double *y);
void nb_avg_pool2d_back_f32(const nb_pool2d_geom *g, bool count_include_pad,
                            const float *dy, float *dx);
void nb_avg_pool2d_back_f64(const nb_pool2d_geom *g, bool count_include_pad,
                            const double *dy, double *dx);

#endif
