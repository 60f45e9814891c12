/* Concatenation of n >= 1 tensors along one axis. The inputs share rank,
 * dtype and every extent but the axis's; the output's extent there is the
 * sum of theirs.
 *
 *   y = [x_0 | x_1 | ... | x_{n-1}] along axis
 *   dx_i = the slice of dy that x_i filled
 *
 * Viewing each input as [outer, e_i * inner] (outer the product of the
 * extents before the axis, inner of those after it), every output row is
 * the inputs' rows one after another: forward copies runs, backward adds
 * them back.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   concat: y = [x_0 | x_1 | ...] along axis; dx_i = the slice of dy
 *       x_i filled
 */
#include "ops/op_util.h"

typedef struct concat_attrs {
    int axis; /* negative counts from the end */
} concat_attrs;

static int concat_infer(nb_op_call *c)
{
    const concat_attrs *at = c->attrs;
    const nb_tensor *x0 = c->in[0];
    char s0[128], si[128];
    NB_SHAPE(x0, s0);
    for (int i = 1; i < c->n_inputs; i++) {
        const nb_tensor *xi = c->in[i];
        if (xi->dtype != x0->dtype)
            return nb_op_fail(c, "input %d is %s %s but input 0 is %s %s", i,
                              nb_dtype_name(xi->dtype), NB_SHAPE(xi, si),
                              nb_dtype_name(x0->dtype), s0);
        if (xi->rank != x0->rank)
            return nb_op_fail(c, "input %d is %s but input 0 is %s: ranks "
                                 "differ",
                              i, NB_SHAPE(xi, si), s0);
    }
    if (x0->rank == 0)
        return nb_op_fail(c, "input 0 is a scalar: there is no axis to "
                             "concatenate along");
    int axis;
    int rc = nb_normalize_axis(c, at->axis, x0->rank, &axis);
    if (rc != NB_OK)
        return rc;
    int64_t total = 0;
    for (int i = 0; i < c->n_inputs; i++) {
        const nb_tensor *xi = c->in[i];
        for (int k = 0; k < x0->rank; k++)
            if (k != axis && xi->shape[k] != x0->shape[k])
                return nb_op_fail(c,
                                  "input %d is %s but input 0 is %s: extents "
                                  "must match except along axis %d",
                                  i, NB_SHAPE(xi, si), s0, axis);
        total += xi->shape[axis];
    }
    nb_same_as_input(c, 0);
    c->out_shape[axis] = total;
    return NB_OK;
}

/* The product of the extents before the axis, and of those after it. */
static void outer_inner(const nb_tensor *y, int axis_in, int64_t *outer,
                        int64_t *inner)
{
    int axis = axis_in < 0 ? axis_in + y->rank : axis_in;
    *outer = 1;
    *inner = 1;
    for (int k = 0; k < axis; k++)
        *outer *= y->shape[k];
    for (int k = axis + 1; k < y->rank; k++)
        *inner *= y->shape[k];
}

static int concat_forward(nb_op_call *c)
{
    const concat_attrs *at = c->attrs;
    int axis = at->axis < 0 ? at->axis + c->out->rank : at->axis;
    int64_t outer, inner;
    outer_inner(c->out, at->axis, &outer, &inner);
    size_t elem = nb_dtype_size(c->out->dtype);
    int64_t row = c->out->shape[axis] * inner;
    char *y = c->out->data;
    int64_t offset = 0; /* of input i's run inside an output row */
    for (int i = 0; i < c->n_inputs; i++) {
        const nb_tensor *xi = c->in[i];
        int64_t run = xi->shape[axis] * inner;
        const char *x = xi->data;
        for (int64_t o = 0; o < outer && run > 0; o++)
            memcpy(y + (size_t)(o * row + offset) * elem,
                   x + (size_t)(o * run) * elem, (size_t)run * elem);
        offset += run;
    }
    return NB_OK;
}

static int concat_backward(nb_op_call *c)
{
    const concat_attrs *at = c->attrs;
    int axis = at->axis < 0 ? at->axis + c->out->rank : at->axis;
    int64_t outer, inner;
    outer_inner(c->out, at->axis, &outer, &inner);
    int64_t row = c->out->shape[axis] * inner;
    int64_t offset = 0;
    for (int i = 0; i < c->n_inputs; i++) {
        int64_t run = c->in[i]->shape[axis] * inner;
        nb_tensor *gx = c->in_grad[i];
        if (gx) {
            NB_TYPED(gx->dtype, {
                const T *dy = c->out_grad->data;
                T *dx = gx->data;
                for (int64_t o = 0; o < outer; o++)
                    for (int64_t j = 0; j < run; j++)
                        dx[o * run + j] += dy[o * row + offset + j];
            });
        }
        offset += run;
    }
    return NB_OK;
}

const nb_op nb_op_concat = {
    .struct_size = sizeof(nb_op),
    .name = "concat",
    .min_inputs = 1,
    .max_inputs = -1,
    .attr_size = sizeof(concat_attrs),
    .doc = "y = [x_0 | x_1 | ...] along axis; dx_i = the slice of dy x_i filled",
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};

nb_node *nb_concat(nb_graph *g, int n, nb_node *const *xs, int axis)
{
    concat_attrs at = {axis};
    return nb_apply(g, &nb_op_concat, n, xs, &at);
}
