/* Helpers shared by the op files. */
#ifndef NABLA_OP_UTIL_H
#define NABLA_OP_UTIL_H

#include <math.h>
#include <string.h>

#include "core/internal.h"
#include "nabla/ops.h"
#include "kernels/conv.h"
#include "kernels/pool.h"
#include "kernels/kernels.h"

/* NB_TYPED and NB_KERNEL, the one way to write a loop for both dtypes and
 * to pick a kernel's variant, are public (nabla/op.h): custom ops use them
 * too. */

/* The parameters of the elementwise ops with one or two doubles (the c of
 * scale, the alpha of elu, the min_val and max_val of hardtanh): the
 * attribute block their generated constructors pass (see ops.def). */
typedef struct nb_param_attrs {
    double p[2];
} nb_param_attrs;

/* "[2,3]" of a tensor into a caller's buffer. */
#define NB_SHAPE(t, buf) nb_shape_str((t)->rank, (t)->shape, (buf), sizeof(buf))

/* Output = copy of input i's shape and dtype. */
static inline void nb_same_as_input(nb_op_call *c, int i)
{
    c->out_dtype = c->in[i]->dtype;
    c->out_rank = c->in[i]->rank;
    memcpy(c->out_shape, c->in[i]->shape, sizeof c->out_shape);
}

/* For an op with NB_OP_FRESH_GRADS: no message has reached input i's
 * gradient yet in this pass, so its buffer holds garbage and the op's
 * message is written rather than added. */
/* A generated function that some ops of a family do not use. */
#define NB_MAYBE_UNUSED __attribute__((unused))

static inline bool nb_grad_fresh(const nb_op_call *c, int i)
{
    return c->in_grad_fresh && c->in_grad_fresh[i];
}

/* Gives a fresh gradient its zeros, for a loop that can only add. */
static inline void nb_grad_clear_fresh(const nb_op_call *c, int i)
{
    if (nb_grad_fresh(c, i))
        memset(c->in_grad[i]->data, 0, nb_tensor_bytes(c->in_grad[i]));
}

/* Fails unless every input has the dtype of input 0. */
int nb_require_same_dtype(nb_op_call *c);
/* Normalises a possibly negative axis against rank; fails if out of range. */
int nb_normalize_axis(nb_op_call *c, int axis, int rank, int *out);
/* Sets out_rank/out_shape to a rank-0 scalar of input 0's dtype. */
void nb_scalar_output(nb_op_call *c);

/* ---- numpy-style broadcasting of two operands ---- */
typedef struct nb_bcast {
    int rank;                 /* after merging dims that move together */
    int64_t shape[NB_MAX_RANK];
    int64_t stride_a[NB_MAX_RANK], stride_b[NB_MAX_RANK]; /* 0 = broadcast */
    int64_t outer;            /* product of all but the last dim */
} nb_bcast;

/* Shape of broadcasting a with b into out_*; fails naming both shapes. */
int nb_broadcast_shapes(nb_op_call *c, const nb_tensor *a, const nb_tensor *b,
                        int *out_rank, int64_t *out_shape);
/* Plans the loops for out = f(a, b) with out's shape the broadcast one. */
void nb_bcast_plan(nb_bcast *p, const nb_tensor *out, const nb_tensor *a,
                   const nb_tensor *b);
/* Offsets into a and b of the start of inner row `row` (0 <= row < outer). */
void nb_bcast_row(const nb_bcast *p, int64_t row, int64_t *off_a,
                  int64_t *off_b);

/* ---- a shape requested by the caller (reshape, broadcast_to) ---- */
typedef struct nb_shape_attrs {
    int rank;                   /* as requested; checked by infer */
    bool has_shape;             /* shape was given and rank fitted */
    int64_t shape[NB_MAX_RANK]; /* requested extents */
} nb_shape_attrs;

/* Captures a caller's (rank, shape) without trusting either. */
nb_shape_attrs nb_shape_attrs_of(int rank, const int64_t *shape);
/* Fails unless the captured rank is in range and a shape was given. */
int nb_shape_attrs_check(nb_op_call *c, const nb_shape_attrs *at);

/* ---- reductions over one axis or every element ---- */
typedef struct nb_reduce_attrs {
    int axis;
    bool keepdims;
    bool all; /* every element, to a scalar */
} nb_reduce_attrs;

/* x seen as [outer, n, inner] with n the reduced extent (the whole tensor
 * is [1, size, 1] for the all-elements form), so one loop serves every
 * axis. */
typedef struct nb_reduce_layout {
    int64_t outer, n, inner;
} nb_reduce_layout;

nb_reduce_layout nb_reduce_layout_of(const nb_tensor *x,
                                     const nb_reduce_attrs *at);
/* The shape rule of a reduction of in[0] by the nb_reduce_attrs in attrs;
 * fails on a bad axis, or on an empty one unless empty_ok. */
int nb_reduce_shape(nb_op_call *c, bool empty_ok);

/* ---- softmax along lines ----
 * x viewed as [outer, n, inner] (an nb_reduce_layout); line (o, i) is
 * x[o, :, i]. Writes p, shaped like x, the softmax of every line,
 * lse[o * inner + i], its log-sum-exp, and when logp is not NULL log p,
 * shaped like x, all in x's dtype: the one stable max/exp/sum loop of
 * softmax, log_softmax, logsumexp and the fused softmax cross-entropy.
 * n >= 1.
 *
 * With m the line's maximum, p_j = e^{x_j - m} / sum_k e^{x_k - m} and
 * lse = m + log sum_k e^{x_k - m}, so nothing overflows. Lines whose
 * maximum is infinite get the limits:
 *   - some x_j = +inf: lse = +inf, and p shares 1 equally among the c
 *     elements that are +inf (0 elsewhere), the limit as they grow alike;
 *   - every x_j = -inf: lse = -inf, and p = 1/n, the limit of equal
 *     elements (softmax does not change when all move together).
 * A NaN anywhere in a line makes its p and lse NaN. */
void nb_softmax_lines(const nb_tensor *x, nb_reduce_layout l, void *p,
                      void *lse, void *logp);
/* The layout of x's rows along its last axis: [size / K, K, 1]. */
nb_reduce_layout nb_rows_layout(const nb_tensor *x);
/* log p_j of an element x of a line with log-sum-exp lse and softmax p:
 * x - lse where lse is finite (exact for very small p), else log p (the
 * limits above). */
#define NB_LOG_PROB(x, lse, p)                                                \
    (isfinite((double)(lse)) ? (double)(x) - (double)(lse) : log((double)(p)))

/* Adds g (shaped like out) into acc (shaped like one broadcast operand),
 * summing over the broadcast dimensions. */
void nb_reduce_into(const nb_tensor *g, nb_tensor *acc);

/* ---- convolution (conv.c, conv_transpose.c) ---- */

/* Stride 1, no padding, dilation 1, one group: what a NULL nb_conv_params
 * stands for. */
extern const nb_conv_params nb_conv_plain;

/* Fails unless the parameters of a convolution with `spatial` axes are
 * valid: strides and dilations >= 1, padding >= 0, groups >= 1, and an
 * output padding only for a transposed convolution, below max(stride,
 * dilation). */
int nb_conv_check_params(nb_op_call *c, const nb_conv_params *p, int spatial,
                         bool transpose);
/* Fails unless in[0] and in[1] have rank 2 + spatial and a kernel of at
 * least one tap. */
int nb_conv_check_operands(nb_op_call *c, int spatial);
/* dilation (k - 1) + 1 into span; fails where that could overflow. */
int nb_conv_span(nb_op_call *c, int64_t dilation, int64_t k, int64_t *span);
/* Fails when the geometry's patch matrix would pass 2^40 elements. */
int nb_conv_check_geom(nb_op_call *c, const nb_conv_geom *g);
/* The kernel geometry of convolving `image` by w into `out` (rank 3 or 4). */
nb_conv_geom nb_conv_geom_of(const nb_conv_params *p, const nb_tensor *image,
                             const nb_tensor *w, const nb_tensor *out);
size_t nb_conv_workspace(nb_dtype dtype, const nb_conv_geom *g);
/* The shape rule of conv2d (spatial 2) or conv1d (1) on in[0] and in[1],
 * with the nb_conv_params at the start of attrs: checks, output shape,
 * workspace. */
int nb_conv_infer(nb_op_call *c, int spatial);

/* ---- pooling (pool2d.c) ---- */

/* max_pool2d's shape rule on x (of any op's making): checks p against x,
 * fills g and c's output shape, or fails naming the shapes. */
int nb_max_pool2d_shape(nb_op_call *c, const nb_tensor *x,
                        const nb_pool2d_params *p, nb_pool2d_geom *g);

#endif
