/* 2-D pooling over the last two axes of x [N, C, H, W], with PyTorch's
 * arguments (nb_pool2d_params: kernel, stride, padding, dilation) and its
 * output extent, floor((H + 2p - d (k - 1) - 1) / s) + 1 (no ceil mode).
 *
 * max_pool2d   y = max over the window of x, padding acting as -inf
 *              dx[first argmax] += dy
 *   The whole gradient of a window goes to its FIRST maximum in row-major
 *   window order, the tie rule of the max node; a later equal element gets
 *   none. Forward keeps each output's winner (a 32-bit index into its
 *   plane, so a plane holds fewer than 2^31 elements) in the node's
 *   scratch for backward.
 *
 * avg_pool2d   y = (sum over the window of x) / D
 *              dx[window] += dy / D
 *   Padding holds zeros. D is kh*kw when count_include_pad (PyTorch's
 *   default), else the number of elements of x inside the window, so a
 *   border output averages only real pixels. No dilation, as PyTorch.
 *
 * global_avg_pool2d   [N, C, H, W] -> [N, C]:  y = mean of each plane,
 *              dx = dy / (H W)
 *   The result is [N, C], ready for a linear layer (PyTorch's
 *   AdaptiveAvgPool2d(1) keeps [N, C, 1, 1]; reshape if you need that).
 *
 * Every shape rule rejects a rank other than 4, stride 0, negative
 * padding, padding above half the kernel (as PyTorch) and a (dilated)
 * kernel larger than the padded input, naming the shapes. max_pool2d also
 * rejects a geometry where a window holds only padding: the half-kernel
 * rule exists so that every window reaches the input, but a dilated
 * window can step over it (kernel 2, padding 1, dilation 2 on an extent
 * of 1 has taps -1 and 1), and its output would be -inf with no gradient,
 * which no loss can use (PyTorch returns -inf there, pytorch#114216).
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   max_pool2d: y = max over each window (padding -inf); dx[first
 *       argmax] += dy
 *
 *   avg_pool2d: y = sum over each window / D (D = kh kw with
 *       count_include_pad, else the input elements in the window);
 *       dx[window] += dy / D
 *
 *   global_avg_pool2d: [N,C,H,W] -> [N,C]: y = mean of each HxW plane;
 *       dx = dy / (H W)
 */
#include "kernels/pool.h"
#include "ops/op_util.h"

/* 0 or 1: no dilation. */
static int64_t dilation_of(int64_t d)
{
    return d == 0 ? 1 : d;
}

/* Checks the window against x and fills the geometry. */
static int pool_geometry_of(nb_op_call *c, const nb_tensor *x,
                            const nb_pool2d_params *p, bool dilated,
                            nb_pool2d_geom *g)
{
    char xs[128];
    if (x->rank != 4)
        return nb_op_fail(c, "input must be [N,C,H,W] (rank 4), got %s",
                          NB_SHAPE(x, xs));
    static const char *const axis[2] = {"height", "width"};
    int64_t k[2], s[2], pd[2], d[2], o[2];
    for (int a = 0; a < 2; a++) {
        k[a] = p->kernel[a];
        s[a] = p->stride[a];
        pd[a] = p->padding[a];
        d[a] = dilation_of(p->dilation[a]);
        if (k[a] < 1)
            return nb_op_fail(c, "kernel [%lld,%lld]: the %s must be >= 1",
                              (long long)p->kernel[0], (long long)p->kernel[1],
                              axis[a]);
        if (s[a] < 1)
            return nb_op_fail(c,
                              "stride [%lld,%lld]: the %s must be >= 1 "
                              "(PyTorch's default stride is the kernel)",
                              (long long)p->stride[0], (long long)p->stride[1],
                              axis[a]);
        if (d[a] < 1)
            return nb_op_fail(c, "dilation [%lld,%lld]: the %s must be >= 1",
                              (long long)p->dilation[0],
                              (long long)p->dilation[1], axis[a]);
        if (!dilated && d[a] != 1)
            return nb_op_fail(c, "has no dilation (got [%lld,%lld])",
                              (long long)p->dilation[0],
                              (long long)p->dilation[1]);
        if (pd[a] < 0)
            return nb_op_fail(c, "padding [%lld,%lld] is negative",
                              (long long)p->padding[0],
                              (long long)p->padding[1]);
        if (pd[a] > k[a] / 2)
            return nb_op_fail(c,
                              "padding [%lld,%lld] is more than half the "
                              "kernel [%lld,%lld] in the %s",
                              (long long)p->padding[0],
                              (long long)p->padding[1], (long long)p->kernel[0],
                              (long long)p->kernel[1], axis[a]);
        /* Bounded before the sums and products below, which would
         * otherwise overflow (the fuzzer found dilation 2^63 - 2). */
        const int64_t limit = INT64_C(1) << 40;
        if (k[a] > limit || s[a] > limit || d[a] > limit)
            return nb_op_fail(c,
                              "kernel [%lld,%lld], stride [%lld,%lld] or "
                              "dilation [%lld,%lld] above 2^40 in the %s",
                              (long long)p->kernel[0], (long long)p->kernel[1],
                              (long long)p->stride[0], (long long)p->stride[1],
                              (long long)dilation_of(p->dilation[0]),
                              (long long)dilation_of(p->dilation[1]), axis[a]);
        if (k[a] - 1 > (INT64_C(1) << 62) / d[a])
            return nb_op_fail(c,
                              "kernel [%lld,%lld] at dilation [%lld,%lld] "
                              "spans more than 2^62 in the %s",
                              (long long)p->kernel[0], (long long)p->kernel[1],
                              (long long)dilation_of(p->dilation[0]),
                              (long long)dilation_of(p->dilation[1]), axis[a]);
        int64_t n = x->shape[2 + a] + 2 * pd[a];
        int64_t span = d[a] * (k[a] - 1) + 1;
        if (span > n)
            return nb_op_fail(c,
                              "kernel [%lld,%lld] (dilation [%lld,%lld]) is "
                              "larger than the padded input: input %s with "
                              "padding [%lld,%lld]",
                              (long long)p->kernel[0], (long long)p->kernel[1],
                              (long long)dilation_of(p->dilation[0]),
                              (long long)dilation_of(p->dilation[1]),
                              NB_SHAPE(x, xs), (long long)p->padding[0],
                              (long long)p->padding[1]);
        o[a] = (n - span) / s[a] + 1;
        /* Only a window that starts in the leading padding can miss the
         * input: one starting at 0 or later has its first tap inside
         * (the last start is at most H + p - span < H). The first tap at
         * or after 0 of a window starting at st < 0 is at st mod d. An
         * average has no dilation, so its windows always reach the input
         * (or average nothing, to 0, when the input is empty). */
        for (int64_t i = 0; dilated && i < o[a] && i * s[a] < pd[a]; i++) {
            int64_t st = i * s[a] - pd[a];
            int64_t first = ((st % d[a]) + d[a]) % d[a];
            if (first >= x->shape[2 + a])
                return nb_op_fail(
                    c,
                    "window %lld of the %s holds only padding: kernel "
                    "[%lld,%lld], stride [%lld,%lld], padding [%lld,%lld], "
                    "dilation [%lld,%lld] on input %s step over the input "
                    "(its maximum would be -inf)",
                    (long long)i, axis[a], (long long)p->kernel[0],
                    (long long)p->kernel[1], (long long)p->stride[0],
                    (long long)p->stride[1], (long long)p->padding[0],
                    (long long)p->padding[1],
                    (long long)dilation_of(p->dilation[0]),
                    (long long)dilation_of(p->dilation[1]), NB_SHAPE(x, xs));
        }
    }
    *g = (nb_pool2d_geom){.planes = x->shape[0] * x->shape[1],
                          .h = x->shape[2],
                          .w = x->shape[3],
                          .oh = o[0],
                          .ow = o[1],
                          .kh = k[0],
                          .kw = k[1],
                          .sh = s[0],
                          .sw = s[1],
                          .ph = pd[0],
                          .pw = pd[1],
                          .dh = d[0],
                          .dw = d[1]};
    c->out_dtype = x->dtype;
    c->out_rank = 4;
    c->out_shape[0] = x->shape[0];
    c->out_shape[1] = x->shape[1];
    c->out_shape[2] = o[0];
    c->out_shape[3] = o[1];
    return NB_OK;
}

static int pool_geometry(nb_op_call *c, const nb_pool2d_params *p, bool dilated,
                         nb_pool2d_geom *g)
{
    return pool_geometry_of(c, c->in[0], p, dilated, g);
}

/* The shape rule has run when forward and backward do, so the geometry
 * holds; recomputing it costs a few comparisons. */
static nb_pool2d_geom geometry(nb_op_call *c, bool dilated)
{
    nb_pool2d_geom g = {0};
    (void)pool_geometry(c, c->attrs, dilated, &g);
    return g;
}

/* ---- max_pool2d ---- */

int nb_max_pool2d_shape(nb_op_call *c, const nb_tensor *x,
                        const nb_pool2d_params *p, nb_pool2d_geom *g)
{
    int rc = pool_geometry_of(c, x, p, true, g);
    if (rc != NB_OK)
        return rc;
    /* The winners are kept as 32-bit indices into their plane. */
    if (g->h * g->w > INT32_MAX)
        return nb_op_fail(c,
                          "planes of %lld x %lld elements: max_pool2d takes "
                          "planes of fewer than 2^31 elements",
                          (long long)g->h, (long long)g->w);
    return NB_OK;
}

static int max_pool2d_infer(nb_op_call *c)
{
    nb_pool2d_geom g = {0};
    int rc = nb_max_pool2d_shape(c, c->in[0], c->attrs, &g);
    if (rc != NB_OK)
        return rc;
    c->scratch_bytes = (size_t)(g.planes * g.oh * g.ow) * sizeof(int32_t);
    return NB_OK;
}

static int max_pool2d_forward(nb_op_call *c)
{
    nb_pool2d_geom g = geometry(c, true);
    NB_TYPED(c->out->dtype, {
        NB_KERNEL(nb_max_pool2d, T)
        (&g, c->in[0]->data, c->out->data, c->scratch);
    });
    return NB_OK;
}

static int max_pool2d_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    nb_pool2d_geom g = geometry(c, true);
    NB_TYPED(c->out->dtype, {
        NB_KERNEL(nb_max_pool2d_back, T)
        (&g, nb_grad_fresh(c, 0), c->out_grad->data, c->scratch,
         c->in_grad[0]->data);
    });
    return NB_OK;
}

const nb_op nb_op_max_pool2d = {
    .struct_size = sizeof(nb_op),
    .name = "max_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_pool2d_params),
    .doc = "y = max over each window (padding -inf); dx[first argmax] += dy",
    .infer = max_pool2d_infer,
    .forward = max_pool2d_forward,
    .backward = max_pool2d_backward,
    /* a fresh gradient is written by the kernel, where the 2x2 one writes
     * each window whole, instead of cleared by the executor first */
    .flags = NB_OP_FRESH_GRADS,
};

nb_node *nb_max_pool2d(nb_graph *g, nb_node *x, const nb_pool2d_params *p)
{
    nb_pool2d_params none = {{0, 0}, {0, 0}, {0, 0}, {0, 0}, false};
    return nb_apply(g, &nb_op_max_pool2d, 1, &x, p ? p : &none);
}

/* ---- avg_pool2d ---- */

static int avg_pool2d_infer(nb_op_call *c)
{
    nb_pool2d_geom g = {0};
    return pool_geometry(c, c->attrs, false, &g);
}

static int avg_pool2d_forward(nb_op_call *c)
{
    nb_pool2d_geom g = geometry(c, false);
    bool include = ((const nb_pool2d_params *)c->attrs)->count_include_pad;
    NB_TYPED(c->out->dtype, {
        NB_KERNEL(nb_avg_pool2d, T)(&g, include, c->in[0]->data, c->out->data);
    });
    return NB_OK;
}

static int avg_pool2d_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    nb_pool2d_geom g = geometry(c, false);
    bool include = ((const nb_pool2d_params *)c->attrs)->count_include_pad;
    NB_TYPED(c->out->dtype, {
        NB_KERNEL(nb_avg_pool2d_back, T)
        (&g, include, c->out_grad->data, c->in_grad[0]->data);
    });
    return NB_OK;
}

const nb_op nb_op_avg_pool2d = {
    .struct_size = sizeof(nb_op),
    .name = "avg_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(nb_pool2d_params),
    .doc = "y = sum over each window / D (D = kh kw with count_include_pad, "
           "else the input elements in the window); dx[window] += dy / D",
    .infer = avg_pool2d_infer,
    .forward = avg_pool2d_forward,
    .backward = avg_pool2d_backward,
};

nb_node *nb_avg_pool2d(nb_graph *g, nb_node *x, const nb_pool2d_params *p)
{
    nb_pool2d_params none = {{0, 0}, {0, 0}, {0, 0}, {0, 0}, false};
    return nb_apply(g, &nb_op_avg_pool2d, 1, &x, p ? p : &none);
}

/* ---- global_avg_pool2d ---- */

static int global_avg_pool2d_infer(nb_op_call *c)
{
    const nb_tensor *x = c->in[0];
    char xs[128];
    if (x->rank != 4)
        return nb_op_fail(c, "input must be [N,C,H,W] (rank 4), got %s",
                          NB_SHAPE(x, xs));
    if (x->shape[2] * x->shape[3] == 0)
        return nb_op_fail(c, "input %s has empty planes: nothing to average",
                          NB_SHAPE(x, xs));
    c->out_dtype = x->dtype;
    c->out_rank = 2;
    c->out_shape[0] = x->shape[0];
    c->out_shape[1] = x->shape[1];
    return NB_OK;
}

static int global_avg_pool2d_forward(nb_op_call *c)
{
    int64_t planes = c->out->size,
            area = c->in[0]->shape[2] * c->in[0]->shape[3];
    NB_TYPED(c->out->dtype, {
        const T *x = c->in[0]->data;
        T *y = c->out->data;
        for (int64_t p = 0; p < planes; p++) {
            double s = 0;
            for (int64_t k = 0; k < area; k++)
                s += x[p * area + k];
            y[p] = (T)(s / (double)area);
        }
    });
    return NB_OK;
}

static int global_avg_pool2d_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    int64_t planes = c->out->size,
            area = c->in[0]->shape[2] * c->in[0]->shape[3];
    NB_TYPED(c->out->dtype, {
        const T *dy = c->out_grad->data;
        T *dx = c->in_grad[0]->data;
        for (int64_t p = 0; p < planes; p++) {
            T v = dy[p] / (T)area;
            for (int64_t k = 0; k < area; k++)
                dx[p * area + k] += v;
        }
    });
    return NB_OK;
}

const nb_op nb_op_global_avg_pool2d = {
    .struct_size = sizeof(nb_op),
    .name = "global_avg_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = 0,
    .doc = "[N,C,H,W] -> [N,C]: y = mean of each HxW plane; dx = dy / (H W)",
    .infer = global_avg_pool2d_infer,
    .forward = global_avg_pool2d_forward,
    .backward = global_avg_pool2d_backward,
};

nb_node *nb_global_avg_pool2d(nb_graph *g, nb_node *x)
{
    return nb_apply(g, &nb_op_global_avg_pool2d, 1, &x, NULL);
}
