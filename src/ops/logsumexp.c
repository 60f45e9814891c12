/* Log-sum-exp over every element (a rank-0 result) or over one axis (the
 * axis dropped, or kept as extent 1 with keepdims). For one output element
 * reducing x_1..x_n:
 *
 *   y = log sum_j e^{x_j} = m + log sum_j e^{x_j - m},   m = max_j x_j
 *   dx_j = dy e^{x_j - y} = dy p_j,                      p = softmax(x)
 *
 * The shift by m keeps every exponent <= 0, so nothing overflows and the
 * sum is >= 1. When m is infinite (every x_j = -inf, or some x_j = +inf)
 * y is -inf or +inf as the limit says, and p is the limit of softmax
 * there (nb_softmax_lines in op_util.h, shared with softmax and the fused
 * cross-entropy), so the gradient stays finite.
 *
 * Forward keeps p in scratch for backward. The input is viewed as
 * [outer, n, inner] with n the reduced extent, as in reduce.c. The log-sum-exp of an empty axis (-inf) is rejected when the
 * node is built.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   logsumexp: y = log sum_j e^{x_j} (all elements or one axis,
 *       max-shifted); dx_j = dy * e^{x_j - y}
 */
#include <math.h>

#include "ops/op_util.h"

static int logsumexp_infer(nb_op_call *c)
{
    int rc = nb_reduce_shape(c, false);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *x = c->in[0];
    c->scratch_bytes = (size_t)x->size * nb_dtype_size(x->dtype); /* p */
    return NB_OK;
}

static int logsumexp_forward(nb_op_call *c)
{
    const nb_tensor *xt = c->in[0];
    nb_softmax_lines(xt, nb_reduce_layout_of(xt, c->attrs), c->scratch,
                     c->out->data, NULL);
    return NB_OK;
}

static int logsumexp_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    nb_reduce_layout l = nb_reduce_layout_of(c->in[0], c->attrs);
    NB_TYPED(gx->dtype, {
        const T *p = c->scratch, *dy = c->out_grad->data;
        T *dx = gx->data;
        for (int64_t o = 0; o < l.outer; o++)
            for (int64_t j = 0; j < l.n; j++) {
                int64_t row = (o * l.n + j) * l.inner;
                const T *dyo = dy + o * l.inner;
                for (int64_t i = 0; i < l.inner; i++)
                    dx[row + i] += dyo[i] * p[row + i];
            }
    });
    return NB_OK;
}

const nb_op nb_op_logsumexp = {
    .struct_size = sizeof(nb_op),
    .name = "logsumexp",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_reduce_attrs),
    .doc = "y = log sum_j e^{x_j} (all elements or one axis, max-shifted); "
        "dx_j = dy * e^{x_j - y}",
    .infer = logsumexp_infer,
    .forward = logsumexp_forward,
    .backward = logsumexp_backward,
};

nb_node *nb_logsumexp(nb_graph *g, nb_node *x)
{
    nb_reduce_attrs at = {0, false, true};
    return nb_apply(g, &nb_op_logsumexp, 1, &x, &at);
}

nb_node *nb_logsumexp_axis(nb_graph *g, nb_node *x, int axis, bool keepdims)
{
    nb_reduce_attrs at = {axis, keepdims, false};
    return nb_apply(g, &nb_op_logsumexp, 1, &x, &at);
}
