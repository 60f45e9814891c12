/* Reshape: the same elements in the same row-major order under a new shape
 * with the same element count.
 *
 *   y = x (reinterpreted)        dx = dy (reinterpreted)
 *
 * One requested extent may be -1: it takes whatever makes the counts
 * match. The request is kept as given and -1 resolved again by every shape
 * inference, so when it stands for a dynamic batch the new batch flows
 * through each feed.
 *
 * Forward copies nothing: the op is a view (NB_OP_VIEW), so the executor
 * points y's value at x's buffer, and again whenever that buffer moves (a
 * feed or a forward that grows it). Writing into y's value writes into
 * x's. The gradient is not shared: x may have other consumers whose
 * messages add into its gradient, so backward copies dy into a gradient
 * that no message has reached yet (call->in_grad_fresh) and adds it
 * otherwise.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   reshape: y = x under a new shape (one extent may be -1); dx = dy
 *       under x's shape
 */
#include "ops/op_util.h"

static int reshape_infer(nb_op_call *c)
{
    const nb_shape_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    char sx[128], want[160];
    int rc = nb_shape_attrs_check(c, at);
    if (rc != NB_OK)
        return rc;
    NB_SHAPE(x, sx);
    nb_shape_str(at->rank, at->shape, want, sizeof want);
    int unknown = -1;
    int64_t known = 1;
    for (int i = 0; i < at->rank; i++) {
        int64_t d = at->shape[i];
        if (d == -1 && unknown < 0) {
            unknown = i;
        } else if (d == -1) {
            return nb_op_fail(c, "shape %s has more than one -1 extent", want);
        } else if (d < 0) {
            return nb_op_fail(c, "shape %s has the negative extent %lld", want,
                              (long long)d);
        } else if (d > 0 && known > (INT64_C(1) << 40) / d) {
            return nb_op_fail(c, "shape %s has more than 2^40 elements", want);
        } else {
            known *= d;
        }
        c->out_shape[i] = d;
    }
    if (unknown >= 0) {
        if (known == 0 || x->size % known != 0)
            return nb_op_fail(c,
                              "cannot reshape x %s (%lld elements) into %s: "
                              "no extent for -1 makes the counts match (the "
                              "others hold %lld)",
                              sx, (long long)x->size, want, (long long)known);
        c->out_shape[unknown] = x->size / known;
    } else if (known != x->size) {
        return nb_op_fail(c,
                          "cannot reshape x %s (%lld elements) into %s (%lld "
                          "elements)",
                          sx, (long long)x->size, want, (long long)known);
    }
    c->out_dtype = x->dtype;
    c->out_rank = at->rank;
    return NB_OK;
}

static int reshape_forward(nb_op_call *c)
{
    (void)c; /* a view: the output is x's buffer already */
    return NB_OK;
}

static int reshape_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    if (nb_grad_fresh(c, 0)) {
        size_t bytes = nb_tensor_bytes(gx);
        if (bytes > 0)
            memcpy(gx->data, c->out_grad->data, bytes);
        return NB_OK;
    }
    NB_TYPED(gx->dtype, {
        const T *dy = c->out_grad->data;
        T *dx = gx->data;
        for (int64_t i = 0; i < gx->size; i++)
            dx[i] += dy[i];
    });
    return NB_OK;
}

const nb_op nb_op_reshape = {
    .struct_size = sizeof(nb_op),
    .flags = NB_OP_FRESH_GRADS | NB_OP_VIEW,
    .name = "reshape",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_shape_attrs),
    .doc = "y = x under a new shape (one extent may be -1); dx = dy under x's shape",
    .infer = reshape_infer,
    .forward = reshape_forward,
    .backward = reshape_backward,
};

nb_node *nb_reshape(nb_graph *g, nb_node *x, int rank, const int64_t *shape)
{
    nb_shape_attrs at = nb_shape_attrs_of(rank, shape);
    return nb_apply(g, &nb_op_reshape, 1, &x, &at);
}
