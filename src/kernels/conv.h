/* Convolution on raw arrays, through the GEMM entry point (kernels.h).
 *
 * The geometry is that of a 2-D convolution of an image x [N, C, H, W] with
 * weights w [O, C/groups, KH, KW] into y [N, O, OH, OW]:
 *
 *   y[n, o, oy, ox] = sum_{c, i, j} w[o, c, i, j]
 *                       x[n, g C/groups + c, oy sh - ph + i dh, ox sw - pw + j dw]
 *
 * where g = o / (O/groups) and x reads as zero outside the image. Only the
 * padding before each axis (ph, pw) appears here: the padding after it is
 * already in OH and OW, which the caller computes. A 1-D convolution is the
 * case H = KH = OH = 1.
 *
 * Per sample and group, the patch matrix col [C/groups KH KW, OH OW] (row
 * (c, i, j), column (oy, ox)) turns each product into one GEMM:
 *
 *   forward          y_g  = w_g col                        (im2col, GEMM)
 *   input gradient   dx_g = col2im(w_g^T dy_g)             (GEMM, col2im)
 *   weight gradient  dw_g = sum_n dy_g col^T               (im2col, GEMM)
 *
 * (the weight gradient made as dw_g^T = sum_n col dy_g^T in the workspace
 * where that transposes less or fills the GEMM's tiles better, and added
 * to dw once at the end; see weight_transposed in conv_impl.h).
 * A 1x1 kernel of stride 1 without padding needs no patch matrix (col is x
 * itself). The patch matrix lives in the caller's workspace beside the
 * GEMM's packing space, so nothing is allocated per call. Samples are
 * taken in order and each GEMM is bitwise identical for any thread count,
 * so the results are too. */
#ifndef NABLA_KERNELS_CONV_H
#define NABLA_KERNELS_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/pool.h"

typedef struct nb_conv_geom {
    int64_t batch, groups;
    int64_t c, h, w;   /* input channels and extents */
    int64_t o, oh, ow; /* output channels and extents */
    int64_t kh, kw;    /* kernel extents */
    int64_t sh, sw;    /* strides, >= 1 */
    int64_t ph, pw;    /* zero padding before each axis, >= 0 */
    int64_t dh, dw;    /* dilations, >= 1 */
} nb_conv_geom;

/* Bytes of workspace every call below needs for this geometry. */
size_t nb_conv_workspace_f32(const nb_conv_geom *g);
size_t nb_conv_workspace_f64(const nb_conv_geom *g);

/* y = conv(x, w) + beta y (beta 0 or 1; 0 overwrites y unread). */
void nb_conv_forward_f32(const nb_conv_geom *g, const float *x,
                         const float *w, float beta, float *y, void *ws);
void nb_conv_forward_f64(const nb_conv_geom *g, const double *x,
                         const double *w, double beta, double *y, void *ws);
/* dx = conv^T(dy, w) + beta dx: the adjoint of the forward in x. */
void nb_conv_backward_data_f32(const nb_conv_geom *g, const float *w,
                               const float *dy, float beta, float *dx,
                               void *ws);
void nb_conv_backward_data_f64(const nb_conv_geom *g, const double *w,
                               const double *dy, double beta, double *dx,
                               void *ws);
/* dw = sum over the batch of dy (x's patches)^T + beta dw. */
void nb_conv_backward_weight_f32(const nb_conv_geom *g, const float *x,
                                 const float *dy, float beta, float *dw,
                                 void *ws);
void nb_conv_backward_weight_f64(const nb_conv_geom *g, const double *x,
                                 const double *dy, double beta, double *dw,
                                 void *ws);

/* The fused convolution y = act(conv(x, w) + b), act the identity or
 * relu, b [O] or NULL, optionally followed by max pooling (pool: the
 * pooling of one sample's O planes, oh x ow each, or NULL; arg: the
 * winners, as nb_max_pool2d keeps them, for the whole batch). Forward
 * applies the bias and relu to each sample's GEMM output while it is in
 * cache, with the arithmetic of the separate add and relu ops, and pools
 * it there (into a workspace tile: only the pooled planes reach y); its
 * threads take whole samples, each in its own share of the workspace
 * (the workspace holds one per possible thread). Backward takes one sample at a time: dz = dy [y > 0] (relu; dz = dy
 * otherwise; with pooling the pooled message masked so and sent to the
 * winners) into the workspace, db[o] += nb_run_sum of dz's plane o
 * (kernels/run_sum.h, the sum a broadcast add's bias gradient takes),
 * then the sample's weight and input gradients as in the calls above; so
 * dz is never a whole batch and every gradient has the bits of the
 * separate ops'. */
size_t nb_conv_act_workspace_f32(const nb_conv_geom *g, bool relu,
                                 const nb_pool2d_geom *pool);
size_t nb_conv_act_workspace_f64(const nb_conv_geom *g, bool relu,
                                 const nb_pool2d_geom *pool);
void nb_conv_act_forward_f32(const nb_conv_geom *g, const float *x,
                             const float *w, const float *b, bool relu,
                             const nb_pool2d_geom *pool, int32_t *arg,
                             float *y, void *ws);
void nb_conv_act_forward_f64(const nb_conv_geom *g, const double *x,
                             const double *w, const double *b, bool relu,
                             const nb_pool2d_geom *pool, int32_t *arg,
                             double *y, void *ws);
/* The gradients a fused backward adds into, each NULL when not wanted,
 * in the dtype of the call; a fresh one (no message yet) is written. */
typedef struct nb_conv_act_grads {
    void *dx, *dw, *db;
    bool fresh_x, fresh_w, fresh_b;
} nb_conv_act_grads;
void nb_conv_act_backward_f32(const nb_conv_geom *g, const float *x,
                              const float *w, const float *y, const float *dy,
                              bool relu, const nb_pool2d_geom *pool,
                              const int32_t *arg, const nb_conv_act_grads *d,
                              void *ws);
void nb_conv_act_backward_f64(const nb_conv_geom *g, const double *x,
                              const double *w, const double *y,
                              const double *dy, bool relu,
                              const nb_pool2d_geom *pool, const int32_t *arg,
                              const nb_conv_act_grads *d, void *ws);

#endif
