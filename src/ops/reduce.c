/* Reductions over every element (a rank-0 result) or over one axis (the
 * axis dropped, or kept as extent 1 with keepdims). For one output element
 * y reducing the n elements x_1..x_n:
 *
 *   sum   y = sum_j x_j              dx_j = dy
 *   mean  y = 1/n sum_j x_j          dx_j = dy / n
 *   max   y = x_w, w = argmax_j x_j  dx_w = dy, every other dx_j = 0
 *   min   y = x_w, w = argmin_j x_j  dx_w = dy, every other dx_j = 0
 *
 * max and min route the whole gradient to the winner, the first index on a
 * tie; forward keeps each winner's index (an int64 per output element) in
 * scratch for backward.
 *
 * The input is viewed as [outer, n, inner] with n the reduced extent (the
 * whole tensor as [1, size, 1] for the all-elements form), so one loop
 * serves every axis. An empty sum is 0; mean, max and min of an empty axis
 * are undefined and rejected when the node is built.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   sum: y = sum_j x_j (all elements or one axis); dx_j = dy
 *   mean: y = (1/n) sum_j x_j (all elements or one axis); dx_j = dy /
 *       n
 *   max: y = max_j x_j (all elements or one axis); dx = dy at the
 *       first argmax, 0 elsewhere
 *   min: y = min_j x_j (all elements or one axis); dx = dy at the
 *       first argmin, 0 elsewhere
 */
#include "ops/op_util.h"

static int reduce_infer_common(nb_op_call *c, bool empty_ok, size_t index_bytes)
{
    int rc = nb_reduce_shape(c, empty_ok);
    if (rc != NB_OK)
        return rc;
    nb_reduce_layout l = nb_reduce_layout_of(c->in[0], c->attrs);
    c->scratch_bytes = (size_t)(l.outer * l.inner) * index_bytes;
    return NB_OK;
}

static int sum_infer(nb_op_call *c)
{
    return reduce_infer_common(c, true, 0);
}

static int mean_infer(nb_op_call *c)
{
    return reduce_infer_common(c, false, 0);
}

static int arg_infer(nb_op_call *c)
{
    return reduce_infer_common(c, false, sizeof(int64_t));
}

/* y[o,i] = scale * sum_j x[o,j,i] */
static void sum_rows(const nb_tensor *xt, nb_tensor *yt, nb_reduce_layout l,
                     double scale)
{
    NB_TYPED(xt->dtype, {
        const T *x = xt->data;
        T *y = yt->data;
        for (int64_t o = 0; o < l.outer; o++) {
            const T *xo = x + o * l.n * l.inner;
            T *yo = y + o * l.inner;
            if (l.inner == 1) {
                /* One long run: a double accumulator keeps f32 sums of
                 * many elements accurate. */
                double total = 0;
                for (int64_t j = 0; j < l.n; j++)
                    total += (double)xo[j];
                yo[0] = (T)(total * scale);
                continue;
            }
            for (int64_t i = 0; i < l.inner; i++)
                yo[i] = 0;
            for (int64_t j = 0; j < l.n; j++)
                for (int64_t i = 0; i < l.inner; i++)
                    yo[i] += xo[j * l.inner + i];
            for (int64_t i = 0; i < l.inner; i++)
                yo[i] = (T)(yo[i] * scale);
        }
    });
}

/* dx[o,j,i] += scale * dy[o,i] */
static void spread_rows(const nb_tensor *dyt, nb_tensor *dxt,
                        nb_reduce_layout l, double scale)
{
    NB_TYPED(dxt->dtype, {
        const T *dy = dyt->data;
        T *dx = dxt->data;
        T s = (T)scale;
        for (int64_t o = 0; l.inner == 1 && o < l.outer; o++) {
            /* One long run: one value spread along it (a loop over runs of
             * one element each would not vectorise). */
            T *dxr = dx + o * l.n, v = s * dy[o];
            for (int64_t j = 0; j < l.n; j++)
                dxr[j] += v;
        }
        for (int64_t o = 0; l.inner > 1 && o < l.outer; o++)
            for (int64_t j = 0; j < l.n; j++) {
                T *dxr = dx + (o * l.n + j) * l.inner;
                const T *dyr = dy + o * l.inner;
                for (int64_t i = 0; i < l.inner; i++)
                    dxr[i] += s * dyr[i];
            }
    });
}

static int sum_forward(nb_op_call *c)
{
    sum_rows(c->in[0], c->out, nb_reduce_layout_of(c->in[0], c->attrs), 1.0);
    return NB_OK;
}

static int sum_backward(nb_op_call *c)
{
    if (c->in_grad[0])
        spread_rows(c->out_grad, c->in_grad[0],
                    nb_reduce_layout_of(c->in[0], c->attrs), 1.0);
    return NB_OK;
}

static int mean_forward(nb_op_call *c)
{
    nb_reduce_layout l = nb_reduce_layout_of(c->in[0], c->attrs);
    sum_rows(c->in[0], c->out, l, 1.0 / (double)l.n);
    return NB_OK;
}

static int mean_backward(nb_op_call *c)
{
    nb_reduce_layout l = nb_reduce_layout_of(c->in[0], c->attrs);
    if (c->in_grad[0])
        spread_rows(c->out_grad, c->in_grad[0], l, 1.0 / (double)l.n);
    return NB_OK;
}

/* y[o,i] = x[o,w,i] with w the first index of the largest (sign = 1) or
 * smallest (sign = -1) x[o,.,i]; w kept in win[o,i]. Strict comparison
 * keeps the first winner of a tie. */
static void arg_forward(nb_op_call *c, int sign)
{
    const nb_tensor *xt = c->in[0];
    nb_reduce_layout l = nb_reduce_layout_of(xt, c->attrs);
    int64_t *win = c->scratch;
    NB_TYPED(xt->dtype, {
        const T *x = xt->data;
        T *y = c->out->data;
        for (int64_t o = 0; o < l.outer; o++) {
            const T *xo = x + o * l.n * l.inner;
            T *yo = y + o * l.inner;
            int64_t *wo = win + o * l.inner;
            for (int64_t i = 0; i < l.inner; i++) {
                yo[i] = xo[i];
                wo[i] = 0;
            }
            for (int64_t j = 1; j < l.n; j++) {
                const T *xr = xo + j * l.inner;
                for (int64_t i = 0; i < l.inner; i++) {
                    /* A NaN wins over numbers, so it reaches the output
                     * wherever it sits in the row. */
                    bool better = (sign > 0 ? xr[i] > yo[i] : xr[i] < yo[i]) ||
                                  (xr[i] != xr[i] && yo[i] == yo[i]);
                    if (better) {
                        yo[i] = xr[i];
                        wo[i] = j;
                    }
                }
            }
        }
    });
}

static int arg_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    nb_reduce_layout l = nb_reduce_layout_of(c->in[0], c->attrs);
    const int64_t *win = c->scratch;
    NB_TYPED(gx->dtype, {
        const T *dy = c->out_grad->data;
        T *dx = gx->data;
        for (int64_t o = 0; o < l.outer; o++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = o * l.inner + i;
                dx[(o * l.n + win[k]) * l.inner + i] += dy[k];
            }
    });
    return NB_OK;
}

static int max_forward(nb_op_call *c)
{
    arg_forward(c, 1);
    return NB_OK;
}

static int min_forward(nb_op_call *c)
{
    arg_forward(c, -1);
    return NB_OK;
}

const nb_op nb_op_sum = {
    .struct_size = sizeof(nb_op),
    .name = "sum",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_reduce_attrs),
    .doc = "y = sum_j x_j (all elements or one axis); dx_j = dy",
    .infer = sum_infer,
    .forward = sum_forward,
    .backward = sum_backward,
};

const nb_op nb_op_mean = {
    .struct_size = sizeof(nb_op),
    .name = "mean",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_reduce_attrs),
    .doc = "y = (1/n) sum_j x_j (all elements or one axis); dx_j = dy / n",
    .infer = mean_infer,
    .forward = mean_forward,
    .backward = mean_backward,
};

const nb_op nb_op_max = {
    .struct_size = sizeof(nb_op),
    .name = "max",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_reduce_attrs),
    .doc = "y = max_j x_j (all elements or one axis); dx = dy at the first argmax, 0 "
        "elsewhere",
    .infer = arg_infer,
    .forward = max_forward,
    .backward = arg_backward,
};

const nb_op nb_op_min = {
    .struct_size = sizeof(nb_op),
    .name = "min",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_reduce_attrs),
    .doc = "y = min_j x_j (all elements or one axis); dx = dy at the first argmin, 0 "
        "elsewhere",
    .infer = arg_infer,
    .forward = min_forward,
    .backward = arg_backward,
};

static nb_node *reduce_all(nb_graph *g, const nb_op *op, nb_node *x)
{
    nb_reduce_attrs at = {0, false, true};
    return nb_apply(g, op, 1, &x, &at);
}

static nb_node *reduce_axis(nb_graph *g, const nb_op *op, nb_node *x, int axis,
                            bool keepdims)
{
    nb_reduce_attrs at = {axis, keepdims, false};
    return nb_apply(g, op, 1, &x, &at);
}

nb_node *nb_sum(nb_graph *g, nb_node *x)
{
    return reduce_all(g, &nb_op_sum, x);
}

nb_node *nb_sum_axis(nb_graph *g, nb_node *x, int axis, bool keepdims)
{
    return reduce_axis(g, &nb_op_sum, x, axis, keepdims);
}

nb_node *nb_mean(nb_graph *g, nb_node *x)
{
    return reduce_all(g, &nb_op_mean, x);
}

nb_node *nb_mean_axis(nb_graph *g, nb_node *x, int axis, bool keepdims)
{
    return reduce_axis(g, &nb_op_mean, x, axis, keepdims);
}

nb_node *nb_max(nb_graph *g, nb_node *x)
{
    return reduce_all(g, &nb_op_max, x);
}

nb_node *nb_max_axis(nb_graph *g, nb_node *x, int axis, bool keepdims)
{
    return reduce_axis(g, &nb_op_max, x, axis, keepdims);
}

nb_node *nb_min(nb_graph *g, nb_node *x)
{
    return reduce_all(g, &nb_op_min, x);
}

nb_node *nb_min_axis(nb_graph *g, nb_node *x, int axis, bool keepdims)
{
    return reduce_axis(g, &nb_op_min, x, axis, keepdims);
}
