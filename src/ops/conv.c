/* Convolution: conv2d on images [N,C,H,W] and conv1d on sequences [N,C,L]
 * (a 2-D convolution of height 1), as PyTorch's conv2d and conv1d, with
 * stride s, zero padding p (before each axis), dilation d and groups.
 * For output channel o of group g (O/groups channels per group, C/groups
 * input channels per group):
 *
 *   y[n,o,oy,ox] = sum_{c,i,j} w[o,c,i,j] x[n, g C/groups + c,
 *                                            oy s - p + i d, ox s - p + j d]
 *
 * with x zero outside the image. y is linear in x and in w, so
 *
 *   dx[n, g C/groups + c, iy, ix] += sum over (o in g, oy, ox, i, j) with
 *       oy s - p + i d = iy and ox s - p + j d = ix of w[o,c,i,j] dy[n,o,oy,ox]
 *   dw[o,c,i,j] += sum_{n,oy,ox} dy[n,o,oy,ox] x[n, g C/groups + c,
 *                                               oy s - p + i d, ox s - p + j d]
 *
 * (dx is the transposed convolution of dy, see conv_transpose.c). Both run
 * as GEMMs over patch matrices (kernels/conv.h); the patch matrix and the
 * GEMM's packing space are the graph's shared workspace.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   conv2d: y[n,o,oy,ox] = sum_{c,i,j} w[o,c,i,j] x[n,c,oy s-p+i d,ox s-p+j
 *       d] (zero outside, per group); dx = conv_transpose2d(dy, w),
 *       dw[o,c,i,j] = sum_{n,oy,ox} dy[n,o,oy,ox] x[n,c,oy s-p+i d,ox s-p+j
 *       d]
 *   conv1d: y[n,o,t] = sum_{c,j} w[o,c,j] x[n,c,t s-p+j d] (zero outside, per
 *       group); dx[n,c,t s-p+j d] += w[o,c,j] dy[n,o,t], dw[o,c,j] =
 *       sum_{n,t} dy[n,o,t] x[n,c,t s-p+j d]
 */
#include "kernels/conv.h"
#include "ops/op_util.h"

const nb_conv_params nb_conv_plain = {
    .stride = {1, 1},
    .padding = {0, 0, 0, 0},
    .dilation = {1, 1},
    .groups = 1,
    .output_padding = {0, 0},
};

nb_conv_params nb_conv_params_of(int64_t stride, int64_t padding,
                                 int64_t dilation, int64_t groups)
{
    nb_conv_params p = {
        .stride = {stride, stride},
        .padding = {padding, padding, padding, padding},
        .dilation = {dilation, dilation},
        .groups = groups,
        .output_padding = {0, 0},
    };
    return p;
}

int nb_conv_check_params(nb_op_call *c, const nb_conv_params *p, int spatial,
                         bool transpose)
{
    /* A 1-D convolution keeps its parameters in the column entries. */
    for (int a = 2 - spatial; a < 2; a++) {
        const char *axis = spatial == 1 ? "" : a == 0 ? " of the rows"
                                                      : " of the columns";
        const int64_t limit = INT64_C(1) << 40;
        if (p->stride[a] > limit || p->dilation[a] > limit ||
            p->padding[2 * a] > limit || p->padding[2 * a + 1] > limit ||
            p->output_padding[a] > limit)
            return nb_op_fail(c, "stride, dilation or padding%s above 2^40",
                              axis);
        if (p->stride[a] < 1)
            return nb_op_fail(c, "stride%s is %lld, must be at least 1", axis,
                              (long long)p->stride[a]);
        if (p->dilation[a] < 1)
            return nb_op_fail(c, "dilation%s is %lld, must be at least 1",
                              axis, (long long)p->dilation[a]);
        for (int side = 0; side < 2; side++)
            if (p->padding[2 * a + side] < 0)
                return nb_op_fail(c, "padding %s is %lld, must be at least 0",
                                  (const char *[]){"top", "bottom", "left",
                                                   "right"}[2 * a + side],
                                  (long long)p->padding[2 * a + side]);
        int64_t op = p->output_padding[a];
        int64_t most = p->stride[a] > p->dilation[a] ? p->stride[a]
                                                     : p->dilation[a];
        if (!transpose && op != 0)
            return nb_op_fail(c,
                              "output padding%s is %lld; only "
                              "conv_transpose2d takes one",
                              axis, (long long)op);
        if (transpose && (op < 0 || op >= most))
            return nb_op_fail(c,
                              "output padding%s is %lld, must be at least 0 "
                              "and below max(stride, dilation) = %lld",
                              axis, (long long)op, (long long)most);
    }
    if (p->groups < 1)
        return nb_op_fail(c, "groups is %lld, must be at least 1",
                          (long long)p->groups);
    return NB_OK;
}

/* dilation (k - 1) + 1, the extent a kernel of k taps covers; fails past
 * 2^62, where it could overflow. */
int nb_conv_span(nb_op_call *c, int64_t dilation, int64_t k, int64_t *span)
{
    if (k - 1 > (INT64_C(1) << 62) / dilation)
        return nb_op_fail(c, "a kernel of %lld taps at dilation %lld spans "
                          "more than 2^62", (long long)k, (long long)dilation);
    *span = dilation * (k - 1) + 1;
    return NB_OK;
}

/* Fails when the patch matrix of this geometry would pass 2^40 elements. */
int nb_conv_check_geom(nb_op_call *c, const nb_conv_geom *g)
{
    int64_t k = g->c / g->groups * g->kh * g->kw, cols = g->oh * g->ow;
    if (cols > 0 && k > (INT64_C(1) << 40) / cols)
        return nb_op_fail(c, "the patch matrix of %lld x %lld elements per "
                          "sample passes 2^40", (long long)k, (long long)cols);
    return NB_OK;
}

/* Fails unless x and w have the rank of a convolution with `spatial` axes
 * and a kernel of at least one tap (nb_apply has checked the dtypes). */
int nb_conv_check_operands(nb_op_call *c, int spatial)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    char sx[128], sw[128];
    NB_SHAPE(x, sx);
    NB_SHAPE(w, sw);
    const char *layout = spatial == 2 ? "[N,C,H,W]" : "[N,C,L]";
    if (x->rank != 2 + spatial)
        return nb_op_fail(c, "x is %s, expected %s", sx, layout);
    if (w->rank != 2 + spatial)
        return nb_op_fail(c, "weight is %s, expected rank %d", sw,
                          2 + spatial);
    for (int a = 2; a < w->rank; a++)
        if (w->shape[a] < 1)
            return nb_op_fail(c, "weight %s has an empty kernel", sw);
    return NB_OK;
}

/* The geometry of a convolution of `image` into `out` by w (the image of
 * conv2d is its input; that of conv_transpose2d is its output), each of
 * rank 3 (1-D) or 4. */
nb_conv_geom nb_conv_geom_of(const nb_conv_params *p, const nb_tensor *image,
                             const nb_tensor *w, const nb_tensor *out)
{
    bool one_d = image->rank == 3;
    nb_conv_geom g = {
        .batch = image->shape[0],
        .groups = p->groups,
        .c = image->shape[1],
        .h = one_d ? 1 : image->shape[2],
        .w = image->shape[image->rank - 1],
        .o = out->shape[1],
        .oh = one_d ? 1 : out->shape[2],
        .ow = out->shape[out->rank - 1],
        .kh = one_d ? 1 : w->shape[2],
        .kw = w->shape[w->rank - 1],
        .sh = p->stride[0],
        .sw = p->stride[1],
        .ph = p->padding[0],
        .pw = p->padding[2],
        .dh = p->dilation[0],
        .dw = p->dilation[1],
    };
    return g;
}

size_t nb_conv_workspace(nb_dtype dtype, const nb_conv_geom *g)
{
    return dtype == NB_F64 ? nb_conv_workspace_f64(g)
                           : nb_conv_workspace_f32(g);
}

int nb_conv_infer(nb_op_call *c, int spatial)
{
    const nb_conv_params *p = c->attrs;
    const nb_tensor *x = c->in[0], *w = c->in[1];
    int rc = nb_conv_check_operands(c, spatial);
    if (rc == NB_OK)
        rc = nb_conv_check_params(c, p, spatial, false);
    if (rc != NB_OK)
        return rc;
    char sx[128], sw[128];
    NB_SHAPE(x, sx);
    NB_SHAPE(w, sw);
    const int64_t C = x->shape[1], O = w->shape[0], G = p->groups;
    if (C % G != 0)
        return nb_op_fail(c, "%lld groups do not divide the %lld channels of "
                          "x %s", (long long)G, (long long)C, sx);
    if (O % G != 0)
        return nb_op_fail(c, "%lld groups do not divide the %lld output "
                          "channels of weight %s", (long long)G, (long long)O,
                          sw);
    if (C / G != w->shape[1])
        return nb_op_fail(c, "input %s has %lld channels, weight %s "
                          "expects %lld%s", sx, (long long)C, sw,
                          (long long)(w->shape[1] * G),
                          G > 1 ? " (its channels per group times the "
                                  "groups)" : "");
    c->out_dtype = x->dtype;
    c->out_rank = x->rank;
    c->out_shape[0] = x->shape[0];
    c->out_shape[1] = O;
    for (int a = 2 - spatial; a < 2; a++) {
        int ax = x->rank - 2 + a; /* the tensor axis of parameter entry a */
        int64_t in = x->shape[ax] + p->padding[2 * a] + p->padding[2 * a + 1];
        int64_t span = 1;
        rc = nb_conv_span(c, p->dilation[a], w->shape[ax], &span);
        if (rc != NB_OK)
            return rc;
        if (span > in)
            return nb_op_fail(c,
                              "kernel %s spans %lld (dilation %lld) on axis "
                              "%d, larger than x %s padded to %lld",
                              sw, (long long)span, (long long)p->dilation[a],
                              ax, sx, (long long)in);
        c->out_shape[ax] = (in - span) / p->stride[a] + 1;
    }
    nb_tensor out = {.shape = c->out_shape, .rank = (uint8_t)c->out_rank};
    nb_conv_geom g = nb_conv_geom_of(p, x, w, &out);
    rc = nb_conv_check_geom(c, &g);
    if (rc != NB_OK)
        return rc;
    c->workspace_bytes = nb_conv_workspace(x->dtype, &g);
    return NB_OK;
}

static int conv2d_infer(nb_op_call *c) { return nb_conv_infer(c, 2); }
static int conv1d_infer(nb_op_call *c) { return nb_conv_infer(c, 1); }

static int conv_forward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    nb_conv_geom g = nb_conv_geom_of(c->attrs, x, w, c->out);
    NB_TYPED(x->dtype, {
        NB_KERNEL(nb_conv_forward, T)(&g, x->data, w->data, 0, c->out->data, c->workspace);
    });
    return NB_OK;
}

static int conv_backward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    nb_tensor *gx = c->in_grad[0], *gw = c->in_grad[1];
    nb_conv_geom g = nb_conv_geom_of(c->attrs, x, w, c->out);
    NB_TYPED(x->dtype, {
        const T *dy = c->out_grad->data;
        if (gx)
            NB_KERNEL(nb_conv_backward_data, T)(&g, w->data, dy,
                                   nb_grad_fresh(c, 0) ? 0 : 1, gx->data,
                                   c->workspace);
        if (gw)
            NB_KERNEL(nb_conv_backward_weight, T)(&g, x->data, dy,
                                     nb_grad_fresh(c, 1) ? 0 : 1, gw->data,
                                     c->workspace);
    });
    return NB_OK;
}

const nb_op nb_op_conv2d = {
    .struct_size = sizeof(nb_op),
    .flags = NB_OP_FRESH_GRADS,
    .name = "conv2d",
    .min_inputs = 2,
    .max_inputs = 2,
    .attr_size = sizeof(nb_conv_params),
    .doc = "y[n,o,oy,ox] = sum_{c,i,j} w[o,c,i,j] x[n,c,oy s-p+i d,ox s-p+j d] "
           "(zero outside, per group); dx = conv_transpose2d(dy, w), "
           "dw[o,c,i,j] = sum_{n,oy,ox} dy[n,o,oy,ox] x[n,c,oy s-p+i d,"
           "ox s-p+j d]",
    .infer = conv2d_infer,
    .forward = conv_forward,
    .backward = conv_backward,
};

const nb_op nb_op_conv1d = {
    .struct_size = sizeof(nb_op),
    .flags = NB_OP_FRESH_GRADS,
    .name = "conv1d",
    .min_inputs = 2,
    .max_inputs = 2,
    .attr_size = sizeof(nb_conv_params),
    .doc = "y[n,o,t] = sum_{c,j} w[o,c,j] x[n,c,t s-p+j d] (zero outside, per "
           "group); dx[n,c,t s-p+j d] += w[o,c,j] dy[n,o,t], "
           "dw[o,c,j] = sum_{n,t} dy[n,o,t] x[n,c,t s-p+j d]",
    .infer = conv1d_infer,
    .forward = conv_forward,
    .backward = conv_backward,
};

nb_node *nb_conv2d(nb_graph *g, nb_node *x, nb_node *w,
                   const nb_conv_params *p)
{
    nb_node *in[2] = {x, w};
    return nb_apply(g, &nb_op_conv2d, 2, in, p ? p : &nb_conv_plain);
}

nb_node *nb_conv1d(nb_graph *g, nb_node *x, nb_node *w, int64_t stride,
                   int64_t pad_left, int64_t pad_right, int64_t dilation,
                   int64_t groups)
{
    nb_conv_params p = nb_conv_plain;
    p.stride[1] = stride;
    p.padding[2] = pad_left;
    p.padding[3] = pad_right;
    p.dilation[1] = dilation;
    p.groups = groups;
    nb_node *in[2] = {x, w};
    return nb_apply(g, &nb_op_conv1d, 2, in, &p);
}
