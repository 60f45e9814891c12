/* Maxout: the maximum over groups of k consecutive units of the last axis,
 * x [..., m*k] -> y [..., m].
 *
 *   y_j  = max_{p < k} x_{jk + p}
 *   dx_i = dy_j  if i = jk + p*, p* the first p attaining the maximum
 *          0     otherwise
 *
 * Like the max node of the lecture derivations, the gradient is routed to
 * the winner alone; a tie sends all of it to the lowest index. Forward
 * records each winner's p in scratch, so backward neither searches again
 * nor can disagree with forward about ties.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   maxout: y_j = max_{p<k} x[j k + p] (groups of k consecutive units
 *       of the last axis); dx[j k + p*] = dy_j, p* the first arg-max
 */
#include "ops/op_util.h"

typedef struct maxout_attrs {
    int k;
} maxout_attrs;

static int maxout_infer(nb_op_call *c)
{
    if (!c->attrs)
        return nb_op_fail(c, "k is missing (attrs is NULL)");
    int k = ((const maxout_attrs *)c->attrs)->k;
    const nb_tensor *x = c->in[0];
    char xs[128];
    if (x->rank == 0)
        return nb_op_fail(c, "x is a scalar []; maxout groups the units of "
                             "x's last axis");
    if (k < 1)
        return nb_op_fail(c, "k = %d: the group size must be at least 1 (x is "
                             "%s)",
                          k, NB_SHAPE(x, xs));
    int64_t units = x->shape[x->rank - 1];
    if (units % k != 0)
        return nb_op_fail(c, "the last axis of x %s has %lld units, not a "
                             "multiple of k = %d",
                          NB_SHAPE(x, xs), (long long)units, k);
    nb_same_as_input(c, 0);
    c->out_shape[c->out_rank - 1] = units / k;
    c->scratch_bytes =
        (size_t)(x->size / k) * sizeof(int32_t); /* one winner per y_j */
    return NB_OK;
}

static int maxout_forward(nb_op_call *c)
{
    int k = ((const maxout_attrs *)c->attrs)->k;
    int64_t groups = c->out->size;
    int32_t *winner = c->scratch;
    NB_TYPED(c->out->dtype, {
        const T *x = c->in[0]->data;
        T *y = c->out->data;
        for (int64_t j = 0; j < groups; j++) {
            const T *group = x + j * k;
            T best = group[0];
            int32_t arg = 0;
            for (int32_t p = 1; p < k; p++) {
                T v = group[p];
                /* Strictly greater keeps the first of a tie; the first NaN
                 * wins so that it reaches the output. */
                if (v > best || (v != v && best == best)) {
                    best = v;
                    arg = p;
                }
            }
            y[j] = best;
            winner[j] = arg;
        }
    });
    return NB_OK;
}

static int maxout_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    int k = ((const maxout_attrs *)c->attrs)->k;
    int64_t groups = c->out->size;
    const int32_t *winner = c->scratch;
    NB_TYPED(c->out->dtype, {
        const T *dy = c->out_grad->data;
        T *dx = c->in_grad[0]->data;
        for (int64_t j = 0; j < groups; j++)
            dx[j * k + winner[j]] += dy[j];
    });
    return NB_OK;
}

const nb_op nb_op_maxout = {
    .struct_size = sizeof(nb_op),
    .name = "maxout",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(maxout_attrs),
    .doc = "y_j = max_{p<k} x[j k + p] (groups of k consecutive units of the last "
        "axis); dx[j k + p*] = dy_j, p* the first arg-max",
    .infer = maxout_infer,
    .forward = maxout_forward,
    .backward = maxout_backward,
};

nb_node *nb_maxout(nb_graph *g, nb_node *x, int k)
{
    maxout_attrs attrs = {k};
    return nb_apply(g, &nb_op_maxout, 1, &x, &attrs);
}
