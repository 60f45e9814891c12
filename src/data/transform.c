/* Data transforms: scaling, per-column statistics and standardisation,
 * one-hot encoding and row-wise argmax.
 *
 *   scale:        x <- s x
 *   column stats: mean_j = (1/n) sum_i x_ij,
 *                 std_j  = sqrt((1/n) sum_i (x_ij - mean_j)^2)
 *                 (two passes: subtracting the mean before squaring avoids
 *                 the cancellation of E[x^2] - E[x]^2), std 0 reported as 1
 *   standardize:  x_ij <- (x_ij - mean_j) / std_j
 *   one-hot:      y_ik = [k == label_i]
 *   argmax:       out_i = min { k : x_ik = max_k' x_ik' }
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla/data.h"

#include "data_util.h"

/* x viewed as [rows, cols]: rows = dimension 0 (1 for a scalar). */
static void as_matrix(const nb_tensor *x, int64_t *rows, int64_t *cols)
{
    int64_t size = nb_tensor_size(x);
    *rows = nb_tensor_rank(x) > 0 ? nb_tensor_dim(x, 0) : 1;
    *cols = *rows > 0 ? size / *rows : 0;
}

void nb_data_scale(nb_tensor *x, double scale)
{
    if (!x || !nb_tensor_data(x))
        return;
    int64_t n = nb_tensor_size(x);
    float *f = nb_tensor_f32(x);
    double *d = nb_tensor_f64(x);
    if (f) {
        for (int64_t i = 0; i < n; i++)
            f[i] = (float)(f[i] * scale);
    } else {
        for (int64_t i = 0; i < n; i++)
            d[i] *= scale;
    }
}

/* One body for both dtypes: exactly one of f, d is set, and the branch is
 * the same for every element, so it predicts perfectly. */
static inline double load(const float *f, const double *d, int64_t k)
{
    return f ? (double)f[k] : d[k];
}

static inline void store(float *f, double *d, int64_t k, double v)
{
    if (f)
        f[k] = (float)v;
    else
        d[k] = v;
}

/* After the first pass: a column whose sum is not finite holds a NaN or an
 * infinity, or values whose sum overflows; the message says which. */
static int nonfinite_column(const float *f, const double *d, int64_t rows,
                            int64_t cols, int64_t j, nb_status *status)
{
    for (int64_t i = 0; i < rows; i++) {
        double v = load(f, d, i * cols + j);
        if (!isfinite(v))
            return nb_status_set(status, NB_ERR_NONFINITE,
                                 "column_stats: column %lld, row %lld holds "
                                 "%g",
                                 (long long)j, (long long)i, v);
    }
    return nb_status_set(status, NB_ERR_NONFINITE,
                         "column_stats: the sum of column %lld overflows "
                         "double",
                         (long long)j);
}

int nb_data_column_stats(const nb_tensor *x, double *mean, double *std,
                         nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!x || !mean || !std || !nb_tensor_cdata(x))
        return nb_status_set(status, NB_ERR_ARG,
                             "column_stats: a tensor or output is NULL");
    int64_t rows, cols;
    as_matrix(x, &rows, &cols);
    if (rows <= 0)
        return nb_status_set(status, NB_ERR_ARG,
                             "column_stats: the tensor has no rows");
    const float *f = nb_tensor_dtype(x) == NB_F32 ? nb_tensor_cdata(x) : NULL;
    const double *d = f ? NULL : nb_tensor_cdata(x);
    for (int64_t j = 0; j < cols; j++)
        mean[j] = std[j] = 0;
    /* Row by row, so the reads stay sequential. */
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            mean[j] += load(f, d, i * cols + j);
    for (int64_t j = 0; j < cols; j++) {
        if (!isfinite(mean[j]))
            return nonfinite_column(f, d, rows, cols, j, status);
        mean[j] /= (double)rows;
    }
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double dev = load(f, d, i * cols + j) - mean[j];
            std[j] += dev * dev;
        }
    for (int64_t j = 0; j < cols; j++) {
        if (!isfinite(std[j]))
            return nb_status_set(status, NB_ERR_NONFINITE,
                                 "column_stats: the spread of column %lld "
                                 "overflows double",
                                 (long long)j);
        std[j] = sqrt(std[j] / (double)rows);
        if (std[j] == 0)
            std[j] = 1;
    }
    return NB_OK;
}

int nb_data_standardize(nb_tensor *x, const double *mean, const double *std,
                        nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!x || !mean || !std || !nb_tensor_data(x))
        return nb_status_set(status, NB_ERR_ARG,
                             "standardize: a tensor or statistic is NULL");
    int64_t rows, cols;
    as_matrix(x, &rows, &cols);
    for (int64_t j = 0; j < cols; j++)
        if (!(std[j] > 0) || !isfinite(std[j]) || !isfinite(mean[j]))
            return nb_status_set(status, NB_ERR_ARG,
                                 "standardize: column %lld has mean %g and "
                                 "std %g (std must be finite and > 0)",
                                 (long long)j, mean[j], std[j]);
    float *f = nb_tensor_f32(x);
    double *d = nb_tensor_f64(x);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            int64_t k = i * cols + j;
            store(f, d, k, (load(f, d, k) - mean[j]) / std[j]);
        }
    return NB_OK;
}

nb_tensor *nb_one_hot(const nb_tensor *labels, int64_t classes, nb_dtype dtype,
                      nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!labels || !nb_tensor_cdata(labels)) {
        nb_status_set(status, NB_ERR_ARG, "one_hot: labels are NULL");
        return NULL;
    }
    int rank = nb_tensor_rank(labels);
    if (rank != 1 && !(rank == 2 && nb_tensor_dim(labels, 1) == 1)) {
        char buf[128];
        nb_status_set(
            status, NB_ERR_ARG,
            "one_hot: labels have shape %s, expected [n] "
            "or [n,1]",
            nb_shape_str(rank, nb_tensor_shape(labels), buf, sizeof buf));
        return NULL;
    }
    if (classes < 1 || classes > (INT64_C(1) << 24)) {
        nb_status_set(status, NB_ERR_ARG,
                      "one_hot: %lld classes is not in 1..2^24",
                      (long long)classes);
        return NULL;
    }
    if (dtype != NB_F32 && dtype != NB_F64) {
        nb_status_set(status, NB_ERR_ARG, "one_hot: bad dtype %d", (int)dtype);
        return NULL;
    }
    int64_t n = nb_tensor_dim(labels, 0);
    /* Every label is checked before the result is allocated. */
    for (int64_t i = 0; i < n; i++) {
        double v = nb_tensor_get(labels, i);
        if (v != floor(v) || !isfinite(v)) {
            nb_status_set(status, NB_ERR_ARG,
                          "one_hot: row %lld: label %g is not an "
                          "integer",
                          (long long)i, v);
            return NULL;
        }
        if (v < 0 || v >= (double)classes) {
            nb_status_set(status, NB_ERR_ARG,
                          "one_hot: row %lld: label %g is out of "
                          "range [0, %lld)",
                          (long long)i, v, (long long)classes);
            return NULL;
        }
    }
    nb_tensor *y = nb_tensor_new(dtype, 2, (const int64_t[]){n, classes});
    if (!y) {
        nb_status_set(status, NB_ERR_NOMEM,
                      "one_hot: cannot allocate [%lld,%lld]", (long long)n,
                      (long long)classes);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        nb_tensor_set(y, i * classes + (int64_t)nb_tensor_get(labels, i), 1);
    return y;
}

void nb_argmax_rows(const nb_tensor *x, int64_t *out)
{
    if (!x || !out || !nb_tensor_cdata(x))
        return;
    int64_t rows, cols;
    as_matrix(x, &rows, &cols);
    const float *f = nb_tensor_dtype(x) == NB_F32 ? nb_tensor_cdata(x) : NULL;
    const double *d = f ? NULL : nb_tensor_cdata(x);
    for (int64_t i = 0; i < rows; i++) {
        int64_t best = cols > 0 ? 0 : -1;
        if (f) {
            const float *r = f + i * cols;
            for (int64_t k = 1; k < cols; k++)
                if (r[k] > r[best])
                    best = k;
        } else {
            const double *r = d + i * cols;
            for (int64_t k = 1; k < cols; k++)
                if (r[k] > r[best])
                    best = k;
        }
        out[i] = best;
    }
}
