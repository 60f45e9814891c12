/* Broadcast to a shape, numpy-style: x's shape is aligned to the right of
 * the target's, and each of x's extents equals the target's or is 1 (then
 * repeated); missing leading axes are repeated too.
 *
 *   y[i] = x[i with every broadcast axis's index set to 0]
 *   dx = dy summed over every broadcast axis (fan-out forward is a sum
 *        backward), shaped like x
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   broadcast_to: y = x repeated along broadcast axes (numpy rules);
 *       dx = dy summed over them
 */
#include "ops/op_util.h"

static int broadcast_infer(nb_op_call *c)
{
    const nb_shape_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    char sx[128], want[160];
    int rc = nb_shape_attrs_check(c, at);
    if (rc != NB_OK)
        return rc;
    NB_SHAPE(x, sx);
    nb_shape_str(at->rank, at->shape, want, sizeof want);
    if (x->rank > at->rank)
        return nb_op_fail(c, "cannot broadcast x %s to %s: the target has "
                             "fewer axes",
                          sx, want);
    for (int i = 0; i < at->rank; i++) {
        int ix = i - (at->rank - x->rank);
        int64_t d = at->shape[i], dx = ix >= 0 ? x->shape[ix] : 1;
        if (d < 0)
            return nb_op_fail(c, "target %s has the negative extent %lld",
                              want, (long long)d);
        if (dx != d && dx != 1)
            return nb_op_fail(c,
                              "cannot broadcast x %s to %s: axis %d of x has "
                              "extent %lld, target %lld (must be equal or 1)",
                              sx, want, ix, (long long)dx, (long long)d);
        c->out_shape[i] = d;
    }
    c->out_dtype = x->dtype;
    c->out_rank = at->rank;
    return NB_OK;
}

static int broadcast_forward(nb_op_call *c)
{
    const nb_tensor *xt = c->in[0];
    nb_tensor *yt = c->out;
    if (yt->size == 0)
        return NB_OK;
    nb_bcast p;
    nb_bcast_plan(&p, yt, xt, xt);
    int64_t n = p.shape[p.rank - 1], s = p.stride_a[p.rank - 1];
    NB_TYPED(yt->dtype, {
        const T *x = xt->data;
        T *y = yt->data;
        for (int64_t row = 0; row < p.outer; row++) {
            int64_t off, unused;
            nb_bcast_row(&p, row, &off, &unused);
            T *yr = y + row * n;
            if (s == 0) {
                T v = x[off];
                for (int64_t j = 0; j < n; j++)
                    yr[j] = v;
            } else if (s == 1) {
                memcpy(yr, x + off, (size_t)n * sizeof(T));
            } else {
                for (int64_t j = 0; j < n; j++)
                    yr[j] = x[off + j * s];
            }
        }
    });
    return NB_OK;
}

static int broadcast_backward(nb_op_call *c)
{
    if (c->in_grad[0] && c->out_grad->size > 0)
        nb_reduce_into(c->out_grad, c->in_grad[0]);
    return NB_OK;
}

const nb_op nb_op_broadcast_to = {
    .struct_size = sizeof(nb_op),
    .name = "broadcast_to",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_shape_attrs),
    .doc = "y = x repeated along broadcast axes (numpy rules); dx = dy summed over "
        "them",
    .infer = broadcast_infer,
    .forward = broadcast_forward,
    .backward = broadcast_backward,
};

nb_node *nb_broadcast_to(nb_graph *g, nb_node *x, int rank,
                         const int64_t *shape)
{
    nb_shape_attrs at = nb_shape_attrs_of(rank, shape);
    return nb_apply(g, &nb_op_broadcast_to, 1, &x, &at);
}
