/** @file
 * Tensors: dtype, shape and data access.
 *
 * A tensor is a contiguous row-major array of f32 or f64 with rank <= 8,
 * stored in a 64-byte aligned buffer. Tensors that belong to a graph (node
 * values and gradients) are owned by the graph; nb_tensor_new creates a
 * free-standing one that the caller frees with nb_tensor_free.
 *
 * The accessors take a NULL tensor (nb_node_grad returns one for a node the
 * loss does not reach) and answer as for an empty tensor: dtype NB_F32,
 * rank 0, size 0, dim 0, NULL shape and data, get NaN; set and fill do
 * nothing, nb_tensor_copy_from_f64 returns NB_ERR_ARG.
 */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The largest rank a tensor may have. */
#define NB_MAX_RANK 8

/** Element type of a tensor. */
typedef enum nb_dtype {
    NB_F32 = 0, /**< float: the fast path */
    NB_F64 = 1  /**< double: for gradient checks and users who need it */
} nb_dtype;

/** A tensor: dtype, shape and a 64-byte aligned row-major buffer (opaque). */
typedef struct nb_tensor nb_tensor;

/** Size in bytes of one element of the dtype (4 or 8). */
NB_API size_t nb_dtype_size(nb_dtype dtype);
/** "f32" or "f64". */
NB_API const char *nb_dtype_name(nb_dtype dtype);

/** A free-standing zero-filled tensor, or NULL on a bad shape or no memory.
 * @param dtype NB_F32 or NB_F64.
 * @param rank  0 to NB_MAX_RANK.
 * @param shape rank extents, each >= 0 (may be NULL for rank 0). */
NB_API nb_tensor *nb_tensor_new(nb_dtype dtype, int rank, const int64_t *shape);
/** Frees a tensor made by nb_tensor_new (or a loader); NULL is a no-op. */
NB_API void nb_tensor_free(nb_tensor *t);

/** The tensor's dtype. */
NB_API nb_dtype nb_tensor_dtype(const nb_tensor *t);
/** The tensor's rank (0 for a scalar). */
NB_API int nb_tensor_rank(const nb_tensor *t);
/** Extent of dimension `axis` (negative counts from the end); 0 if out of range. */
NB_API int64_t nb_tensor_dim(const nb_tensor *t, int axis);
/** Pointer to the rank extents. */
NB_API const int64_t *nb_tensor_shape(const nb_tensor *t);
/** Number of elements (1 for a scalar of rank 0). */
NB_API int64_t nb_tensor_size(const nb_tensor *t);

/** Raw data, writable. */
NB_API void *nb_tensor_data(nb_tensor *t);
/** Raw data, read-only. */
NB_API const void *nb_tensor_cdata(const nb_tensor *t);
/** The data as floats; NULL if the dtype is not NB_F32. */
NB_API float *nb_tensor_f32(nb_tensor *t);
/** The data as doubles; NULL if the dtype is not NB_F64. */
NB_API double *nb_tensor_f64(nb_tensor *t);

/** Element at a flat (row-major) index, converted to double. */
NB_API double nb_tensor_get(const nb_tensor *t, int64_t index);
/** Sets the element at a flat (row-major) index, converted from double. */
NB_API void nb_tensor_set(nb_tensor *t, int64_t index, double value);
/** Sets every element to value. */
NB_API void nb_tensor_fill(nb_tensor *t, double value);
/** Copies `count` elements from a double array, converting to the dtype;
 * returns NB_OK, or NB_ERR_ARG (-1) if count differs from the tensor's size
 * or src is NULL. */
NB_API int nb_tensor_copy_from_f64(nb_tensor *t, const double *src, int64_t count);

/** Writes "[2,3]" style text into buf (always terminated); returns buf. A
 * rank outside 0..NB_MAX_RANK, or a NULL shape of rank > 0, is written as
 * "[bad rank R]" without reading shape; a NULL buf writes nothing. */
NB_API char *nb_shape_str(int rank, const int64_t *shape, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
