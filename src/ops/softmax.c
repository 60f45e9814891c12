/* Softmax and log-softmax along the last axis; every other axis counts
 * rows, each row normalised on its own.
 *
 *   softmax      y_k = e^{x_k} / sum_j e^{x_j}
 *                dx_k = y_k (dy_k - sum_j dy_j y_j)
 *   log_softmax  y_k = x_k - log sum_j e^{x_j}
 *                dx_k = dy_k - p_k sum_j dy_j,    p = softmax(x) = e^y
 *
 * Both run on nb_softmax_lines (op_util.h), which subtracts the row
 * maximum m before exponentiating (softmax is unchanged by a shift, and
 * log sum_j e^{x_j} = m + log sum_j e^{x_j - m}), so no exp overflows:
 * log_softmax([1000, 0]) = [0, -1000]. A row holding +inf, or only -inf,
 * gets the limits stated there (softmax([1, +inf]) = [0, 1],
 * softmax([-inf, -inf]) = [1/2, 1/2]), the same in every op built on it.
 *
 * softmax exponentiates in its own output buffer. log_softmax keeps p in
 * scratch from forward to backward, so backward needs no exp.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   softmax: y = e^x / sum e^x (last axis); dx = y * (dy - sum(dy *
 *       y))
 *   log_softmax: y = x - log sum e^x (last axis); dx = dy -
 *       softmax(x) * sum(dy)
 */
#include <math.h>

#include "ops/op_util.h"

static int64_t row_length(const nb_tensor *x)
{
    return x->shape[x->rank - 1];
}

static int64_t row_count(const nb_tensor *x)
{
    return nb_rows_layout(x).outer;
}

/* softmax keeps nothing from forward to backward (its value is p);
 * log_softmax keeps p in scratch. Both take each row's log-sum-exp in the
 * workspace. */
static int rows_infer(nb_op_call *c, bool keep_probabilities)
{
    const nb_tensor *x = c->in[0];
    if (x->rank == 0)
        return nb_op_fail(c, "x is a scalar: it needs an axis to normalise "
                             "over (the last)");
    nb_same_as_input(c, 0);
    size_t elem = nb_dtype_size(x->dtype);
    c->scratch_bytes = keep_probabilities ? (size_t)x->size * elem : 0;
    c->workspace_bytes = (size_t)nb_rows_layout(x).outer * elem;
    return NB_OK;
}

static int softmax_infer(nb_op_call *c)
{
    return rows_infer(c, false);
}

static int softmax_forward(nb_op_call *c)
{
    const nb_tensor *xt = c->in[0];
    if (xt->size == 0)
        return NB_OK;
    nb_softmax_lines(xt, nb_rows_layout(xt), c->out->data, c->workspace,
                     NULL);
    return NB_OK;
}

static int softmax_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    int64_t k = row_length(c->out), rows = row_count(c->out);
    NB_TYPED(c->out->dtype, {
        const T *y = c->out->data, *dy = c->out_grad->data;
        T *dx = gx->data;
        for (int64_t r = 0; r < rows; r++) {
            const T *yr = y + r * k, *dyr = dy + r * k;
            T *dxr = dx + r * k;
            double dot = 0;
            for (int64_t j = 0; j < k; j++)
                dot += (double)dyr[j] * (double)yr[j];
            T d = (T)dot;
            for (int64_t j = 0; j < k; j++)
                dxr[j] += yr[j] * (dyr[j] - d);
        }
    });
    return NB_OK;
}

static int log_softmax_infer(nb_op_call *c)
{
    return rows_infer(c, true);
}

static int log_softmax_forward(nb_op_call *c)
{
    const nb_tensor *xt = c->in[0];
    if (xt->size == 0)
        return NB_OK;
    nb_softmax_lines(xt, nb_rows_layout(xt), c->scratch, c->workspace,
                     c->out->data);
    return NB_OK;
}

static int log_softmax_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    int64_t k = row_length(c->out), rows = row_count(c->out);
    NB_TYPED(c->out->dtype, {
        const T *p = c->scratch, *dy = c->out_grad->data;
        T *dx = gx->data;
        for (int64_t r = 0; r < rows; r++) {
            const T *pr = p + r * k, *dyr = dy + r * k;
            T *dxr = dx + r * k;
            double total = 0;
            for (int64_t j = 0; j < k; j++)
                total += (double)dyr[j];
            T s = (T)total;
            for (int64_t j = 0; j < k; j++)
                dxr[j] += dyr[j] - pr[j] * s;
        }
    });
    return NB_OK;
}

const nb_op nb_op_softmax = {
    .struct_size = sizeof(nb_op),
    .name = "softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "y = e^x / sum e^x (last axis); dx = y * (dy - sum(dy * y))",
    .infer = softmax_infer,
    .forward = softmax_forward,
    .backward = softmax_backward,
};

const nb_op nb_op_log_softmax = {
    .struct_size = sizeof(nb_op),
    .name = "log_softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "y = x - log sum e^x (last axis); dx = dy - softmax(x) * sum(dy)",
    .infer = log_softmax_infer,
    .forward = log_softmax_forward,
    .backward = log_softmax_backward,
};

nb_node *nb_softmax(nb_graph *g, nb_node *x)
{
    return nb_apply(g, &nb_op_softmax, 1, &x, NULL);
}

nb_node *nb_log_softmax(nb_graph *g, nb_node *x)
{
    return nb_apply(g, &nb_op_log_softmax, 1, &x, NULL);
}
