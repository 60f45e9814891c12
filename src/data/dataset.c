/* Datasets: freeing, size, and the row-selecting copies — a contiguous
 * slice, the examples of a range of classes, a train/validation split.
 * (Loading from IDX files lives with the IDX reader in idx.c.)
 *
 * Every function builds its result in locals and only then writes the
 * output, so a failure leaves the outputs NULL and src untouched, and an
 * output that is src itself is replaced safely.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/data.h"

#include "data_util.h"

void nb_dataset_free(nb_dataset *ds)
{
    if (!ds)
        return;
    nb_tensor_free(ds->x);
    nb_tensor_free(ds->y);
    ds->x = NULL;
    ds->y = NULL;
}

int64_t nb_dataset_size(const nb_dataset *ds)
{
    return ds && ds->x ? nb_tensor_dim(ds->x, 0) : 0;
}

static bool check_source(const nb_dataset *src, const char *what,
                         nb_status *status)
{
    if (!src || !src->x || nb_tensor_rank(src->x) < 1) {
        nb_status_set(status, NB_ERR_ARG,
                      "%s: the source dataset has no x of rank >= 1", what);
        return false;
    }
    if (src->y && (nb_tensor_rank(src->y) < 1 ||
                   nb_tensor_dim(src->y, 0) != nb_tensor_dim(src->x, 0))) {
        nb_status_set(status, NB_ERR_ARG, "%s: x has %lld rows but y has %lld",
                      what, (long long)nb_tensor_dim(src->x, 0),
                      (long long)nb_tensor_dim(src->y, 0));
        return false;
    }
    return true;
}

/* A new tensor holding rows [first, first + count) of t (first and count
 * already checked), or NULL when out of memory. */
static nb_tensor *copy_rows(const nb_tensor *t, int64_t first, int64_t count)
{
    if (!t)
        return NULL;
    int64_t shape[NB_MAX_RANK];
    int rank = nb_tensor_rank(t);
    memcpy(shape, nb_tensor_shape(t), (size_t)rank * sizeof *shape);
    int64_t rows = shape[0];
    shape[0] = count;
    nb_tensor *c = nb_tensor_new(nb_tensor_dtype(t), rank, shape);
    if (!c || count == 0)
        return c;
    size_t row_bytes =
        (size_t)(nb_tensor_size(t) / rows) * nb_dtype_size(nb_tensor_dtype(t));
    memcpy(nb_tensor_data(c),
           (const char *)nb_tensor_cdata(t) + (size_t)first * row_bytes,
           (size_t)count * row_bytes);
    return c;
}

/* Stores the result; when dst is the source too, its old tensors go. */
static void assign(nb_dataset *dst, const nb_dataset *src, nb_tensor *x,
                   nb_tensor *y)
{
    if (dst == src)
        nb_dataset_free(dst);
    dst->x = x;
    dst->y = y;
}

static int slice_into(nb_tensor **x, nb_tensor **y, const nb_dataset *src,
                      int64_t first, int64_t count, const char *what,
                      nb_status *status)
{
    *x = copy_rows(src->x, first, count);
    *y = src->y ? copy_rows(src->y, first, count) : NULL;
    if (!*x || (src->y && !*y)) {
        nb_tensor_free(*x);
        nb_tensor_free(*y);
        *x = *y = NULL;
        nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory for %lld rows",
                      what, (long long)count);
        return NB_ERR_NOMEM;
    }
    return NB_OK;
}

int nb_dataset_slice(nb_dataset *dst, const nb_dataset *src, int64_t first,
                     int64_t count, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!dst) {
        nb_status_set(status, NB_ERR_ARG, "slice: dst is NULL");
        return NB_ERR_ARG;
    }
    if (dst != src)
        dst->x = dst->y = NULL;
    if (!check_source(src, "slice", status))
        return NB_ERR_ARG;
    int64_t n = nb_dataset_size(src);
    if (first < 0 || count < 0 || first > n || count > n - first) {
        nb_status_set(
            status, NB_ERR_ARG,
            "slice: rows [%lld, %lld + %lld) are outside the %lld rows",
            (long long)first, (long long)first, (long long)count, (long long)n);
        return NB_ERR_ARG;
    }
    nb_tensor *x, *y;
    int rc = slice_into(&x, &y, src, first, count, "slice", status);
    if (rc == NB_OK)
        assign(dst, src, x, y);
    return rc;
}

int nb_dataset_filter_classes(nb_dataset *dst, const nb_dataset *src,
                              int64_t lo, int64_t hi, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!dst) {
        nb_status_set(status, NB_ERR_ARG, "filter_classes: dst is NULL");
        return NB_ERR_ARG;
    }
    if (dst != src)
        dst->x = dst->y = NULL;
    if (!check_source(src, "filter_classes", status))
        return NB_ERR_ARG;
    if (!src->y || nb_tensor_rank(src->y) != 1) {
        nb_status_set(status, NB_ERR_ARG,
                      "filter_classes: y must hold class indices of rank 1");
        return NB_ERR_ARG;
    }
    if (lo >= hi) {
        nb_status_set(status, NB_ERR_ARG,
                      "filter_classes: the range [%lld, %lld) is empty",
                      (long long)lo, (long long)hi);
        return NB_ERR_ARG;
    }
    int64_t n = nb_dataset_size(src), kept = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = nb_tensor_get(src->y, i);
        if (v != floor(v) || !isfinite(v)) {
            nb_status_set(
                status, NB_ERR_ARG,
                "filter_classes: row %lld: label %g is not a class index",
                (long long)i, v);
            return NB_ERR_ARG;
        }
        kept += v >= (double)lo && v < (double)hi;
    }
    int64_t *idx = nb_alloc((size_t)(kept > 0 ? kept : 1) * sizeof *idx);
    int64_t xshape[NB_MAX_RANK];
    int rank = nb_tensor_rank(src->x);
    memcpy(xshape, nb_tensor_shape(src->x), (size_t)rank * sizeof *xshape);
    xshape[0] = kept;
    nb_tensor *x = nb_tensor_new(nb_tensor_dtype(src->x), rank, xshape);
    nb_tensor *y =
        nb_tensor_new(nb_tensor_dtype(src->y), 1, (const int64_t[]){kept});
    if (!idx || !x || !y) {
        nb_free(idx);
        nb_tensor_free(x);
        nb_tensor_free(y);
        nb_status_set(status, NB_ERR_NOMEM,
                      "filter_classes: out of memory for %lld rows",
                      (long long)kept);
        return NB_ERR_NOMEM;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = nb_tensor_get(src->y, i);
        if (v >= (double)lo && v < (double)hi) {
            nb_tensor_set(y, k, v - (double)lo);
            idx[k++] = i;
        }
    }
    nb_gather_rows(x, src->x, idx, kept, NULL);
    nb_free(idx);
    assign(dst, src, x, y);
    return NB_OK;
}

int nb_dataset_split(const nb_dataset *src, double fraction, nb_dataset *train,
                     nb_dataset *val, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    if (!train || !val || train == val) {
        nb_status_set(status, NB_ERR_ARG,
                      "split: train and val must be two datasets");
        return NB_ERR_ARG;
    }
    if (train != src)
        train->x = train->y = NULL;
    if (val != src)
        val->x = val->y = NULL;
    if (!check_source(src, "split", status))
        return NB_ERR_ARG;
    if (!(fraction >= 0 && fraction <= 1)) {
        nb_status_set(status, NB_ERR_ARG, "split: fraction %g is not in [0, 1]",
                      fraction);
        return NB_ERR_ARG;
    }
    int64_t n = nb_dataset_size(src);
    int64_t n_val = (int64_t)floor(fraction * (double)n + 0.5);
    if (n_val > n)
        n_val = n;
    nb_tensor *tx, *ty, *vx, *vy;
    int rc = slice_into(&tx, &ty, src, 0, n - n_val, "split", status);
    if (rc != NB_OK)
        return rc;
    rc = slice_into(&vx, &vy, src, n - n_val, n_val, "split", status);
    if (rc != NB_OK) {
        nb_tensor_free(tx);
        nb_tensor_free(ty);
        return rc;
    }
    /* src is read for the last time above: replacing it is safe now. */
    nb_dataset old = *src;
    if (train == src || val == src) {
        nb_tensor_free(old.x);
        nb_tensor_free(old.y);
    }
    train->x = tx;
    train->y = ty;
    val->x = vx;
    val->y = vy;
    return NB_OK;
}
