/* Squared-error losses: y and t have identical shapes, the output is a
 * scalar; n is the number of elements.
 *
 *   sse_loss  L = 1/2 sum_i (y_i - t_i)^2   dy = (y - t)       dt = -(y - t)
 *   mse_loss  L = 1/n sum_i (y_i - t_i)^2   dy = 2 (y - t)/n   dt = -2 (y - t)/n
 *
 * Both are scaled by the incoming dL. No broadcasting: a target that
 * silently broadcast against the prediction would train on the wrong loss.
 * Sums are accumulated in double so f32 losses over large batches keep
 * their digits.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   sse_loss: L = 1/2 sum (y - t)^2; dy = y - t, dt = -(y - t)
 *   mse_loss: L = mean (y - t)^2 over n elements; dy = 2 (y - t)/n,
 *       dt = -2 (y - t)/n
 */
#include "ops/op_util.h"

static int squared_infer(nb_op_call *c, bool needs_elements)
{
    int rc = nb_require_same_dtype(c);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *y = c->in[0], *t = c->in[1];
    char sy[128], st[128];
    if (!nb_same_shape(y, t))
        return nb_op_fail(c, "shapes differ: y is %s, t is %s (no broadcasting)",
                          NB_SHAPE(y, sy), NB_SHAPE(t, st));
    if (needs_elements && y->size == 0)
        return nb_op_fail(c, "y is %s: the mean of no elements is undefined",
                          NB_SHAPE(y, sy));
    nb_scalar_output(c);
    return NB_OK;
}

static int sse_infer(nb_op_call *c) { return squared_infer(c, false); }
static int mse_infer(nb_op_call *c) { return squared_infer(c, true); }

/* out = scale * sum (y - t)^2 */
static void squared_forward(nb_op_call *c, double scale)
{
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *y = c->in[0]->data, *t = c->in[1]->data;
        double total = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = (double)y[i] - (double)t[i];
            total += d * d;
        }
        *(T *)c->out->data = (T)(scale * total);
    });
}

/* dy += s (y - t), dt -= s (y - t), with s = dL * scale */
static void squared_backward(nb_op_call *c, double scale)
{
    int64_t n = c->in[0]->size;
    nb_tensor *gy = c->in_grad[0], *gt = c->in_grad[1];
    NB_TYPED(c->out->dtype, {
        const T *y = c->in[0]->data, *t = c->in[1]->data;
        T s = (T)(scale * (double)*(const T *)c->out_grad->data);
        if (gy) {
            T *dy = gy->data;
            for (int64_t i = 0; i < n; i++)
                dy[i] += s * (y[i] - t[i]);
        }
        if (gt) {
            T *dt = gt->data;
            for (int64_t i = 0; i < n; i++)
                dt[i] -= s * (y[i] - t[i]);
        }
    });
}

static int sse_forward(nb_op_call *c)
{
    squared_forward(c, 0.5);
    return NB_OK;
}

static int sse_backward(nb_op_call *c)
{
    squared_backward(c, 1.0);
    return NB_OK;
}

static int mse_forward(nb_op_call *c)
{
    squared_forward(c, 1.0 / (double)c->in[0]->size);
    return NB_OK;
}

static int mse_backward(nb_op_call *c)
{
    squared_backward(c, 2.0 / (double)c->in[0]->size);
    return NB_OK;
}

const nb_op nb_op_sse_loss = {
    .struct_size = sizeof(nb_op),
    .name = "sse_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = 1/2 sum (y - t)^2; dy = y - t, dt = -(y - t)",
    .infer = sse_infer,
    .forward = sse_forward,
    .backward = sse_backward,
};

const nb_op nb_op_mse_loss = {
    .struct_size = sizeof(nb_op),
    .name = "mse_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean (y - t)^2 over n elements; dy = 2 (y - t)/n, dt = -2 (y - t)/n",
    .infer = mse_infer,
    .forward = mse_forward,
    .backward = mse_backward,
};

nb_node *nb_sse_loss(nb_graph *g, nb_node *y, nb_node *t)
{
    nb_node *in[2] = {y, t};
    return nb_apply(g, &nb_op_sse_loss, 2, in, NULL);
}

nb_node *nb_mse_loss(nb_graph *g, nb_node *y, nb_node *t)
{
    nb_node *in[2] = {y, t};
    return nb_apply(g, &nb_op_mse_loss, 2, in, NULL);
}
