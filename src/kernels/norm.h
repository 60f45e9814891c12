/* Batch and layer normalisation loops on raw arrays, for f32 and f64.
 *
 * Batch norm sees x as [n, c, s]: channel c's elements are x[i, c, k] for
 * every i < n and k < s (s = H*W for images, 1 for [N, F]). Layer norm sees
 * x as [r, d] and normalises each row. Sums run in double in a fixed
 * order, one channel or row at a time, so results do not depend on how the
 * channels or rows are split between threads. gamma and beta may be NULL
 * (no affine part); backward adds into every non-NULL gradient. */
#ifndef NB_KERNELS_NORM_H
#define NB_KERNELS_NORM_H

#include <stdbool.h>
#include <stdint.h>

/* Per channel: mean and biased variance over n and s (two passes). */
void nb_bn_stats_f32(int64_t n, int64_t c, int64_t s, const float *x,
                     float *mean, float *var);
void nb_bn_stats_f64(int64_t n, int64_t c, int64_t s, const double *x,
                     double *mean, double *var);
/* y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]. */
void nb_bn_apply_f32(int64_t n, int64_t c, int64_t s, const float *x,
                     const float *mean, const float *invstd,
                     const float *gamma, const float *beta, float *y);
void nb_bn_apply_f64(int64_t n, int64_t c, int64_t s, const double *x,
                     const double *mean, const double *invstd,
                     const double *gamma, const double *beta, double *y);
/* With xhat = (x - mean) invstd, m = n*s, G = sum dy and H = sum dy xhat
 * over the channel: dgamma += H, dbeta += G, and
 *   batch statistics:  dx += gamma invstd (dy - G/m - xhat H/m)
 *   fixed statistics:  dx += gamma invstd dy */
void nb_bn_back_f32(int64_t n, int64_t c, int64_t s, const float *x,
                    const float *dy, const float *mean, const float *invstd,
                    const float *gamma, bool batch_stats, float *dx,
                    float *dgamma, float *dbeta);
void nb_bn_back_f64(int64_t n, int64_t c, int64_t s, const double *x,
                    const double *dy, const double *mean,
                    const double *invstd, const double *gamma,
                    bool batch_stats, double *dx, double *dgamma,
                    double *dbeta);

/* Per row: mean, invstd = 1/sqrt(biased var + eps), and
 * y = (x - mean) invstd gamma + beta (gamma, beta of d elements). */
void nb_ln_forward_f32(int64_t r, int64_t d, const float *x,
                       const float *gamma, const float *beta, double eps,
                       float *y, float *mean, float *invstd);
void nb_ln_forward_f64(int64_t r, int64_t d, const double *x,
                       const double *gamma, const double *beta, double eps,
                       double *y, double *mean, double *invstd);
/* With g = dy gamma, A = sum g and B = sum g xhat over the row:
 *   dx += invstd (g - A/d - xhat B/d);
 * over the rows: dgamma += sum dy xhat, dbeta += sum dy. */
void nb_ln_back_f32(int64_t r, int64_t d, const float *x, const float *dy,
                    const float *mean, const float *invstd,
                    const float *gamma, float *dx, float *dgamma,
                    float *dbeta);
void nb_ln_back_f64(int64_t r, int64_t d, const double *x, const double *dy,
                    const double *mean, const double *invstd,
                    const double *gamma, double *dx, double *dgamma,
                    double *dbeta);

#endif
