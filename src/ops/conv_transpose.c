/* Transposed convolution, as PyTorch's conv_transpose2d: the adjoint in x
 * of conv2d (conv.c), so that <conv2d(z, w), x> = <z, conv_transpose2d(x,
 * w)> for every z and x. With x [N,C,H,W] and w [C,O/groups,KH,KW] (conv2d's
 * weight of the convolution it reverses, which maps O channels to C):
 *
 *   y[n, g O/groups + o, oy s - p + i d, ox s - p + j d]
 *       += w[c,o,i,j] x[n,c,oy,ox]     (c in group g; taps outside y dropped)
 *   OH = (H-1) s - p_top - p_bottom + d (KH-1) + output_padding + 1
 *
 * y is linear in x and in w. Its derivatives are conv2d's forward and
 * weight gradient with the roles of image and output swapped:
 *
 *   dx = conv2d(dy, w)        (same stride, padding, dilation, groups)
 *   dw[c,o,i,j] += sum_{n,oy,ox} x[n,c,oy,ox] dy[n, g O/groups + o,
 *                                               oy s - p + i d, ox s - p + j d]
 *
 * The output padding adds rows and columns at the bottom and right that
 * no tap reaches (zeros in y, ignored in dy).
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   conv_transpose2d: y[n,o,oy s-p+i d,ox s-p+j d] += w[c,o,i,j] x[n,c,oy,ox]
 *       (per group), the adjoint of conv2d in its input; dx = conv2d(dy, w),
 *       dw[c,o,i,j] = sum_{n,oy,ox} x[n,c,oy,ox] dy[n,o,oy s-p+i d,ox s-p+j
 *       d]
 */
#include "kernels/conv.h"
#include "ops/op_util.h"

static int conv_transpose2d_infer(nb_op_call *c)
{
    const nb_conv_params *p = c->attrs;
    const nb_tensor *x = c->in[0], *w = c->in[1];
    int rc = nb_conv_check_operands(c, 2);
    if (rc == NB_OK)
        rc = nb_conv_check_params(c, p, 2, true);
    if (rc != NB_OK)
        return rc;
    char sx[128], sw[128];
    NB_SHAPE(x, sx);
    NB_SHAPE(w, sw);
    const int64_t C = x->shape[1], G = p->groups;
    if (C % G != 0)
        return nb_op_fail(c, "%lld groups do not divide the %lld channels of "
                          "x %s", (long long)G, (long long)C, sx);
    if (w->shape[0] != C)
        return nb_op_fail(c, "input %s has %lld channels, weight %s expects "
                          "%lld", sx, (long long)C, sw,
                          (long long)w->shape[0]);
    c->out_dtype = x->dtype;
    c->out_rank = 4;
    c->out_shape[0] = x->shape[0];
    c->out_shape[1] = w->shape[1] * G;
    for (int a = 0; a < 2; a++) {
        int64_t span = 1;
        rc = nb_conv_span(c, p->dilation[a], w->shape[2 + a], &span);
        if (rc != NB_OK)
            return rc;
        if (x->shape[2 + a] - 1 > (INT64_C(1) << 60) / p->stride[a] ||
            span > (INT64_C(1) << 61))
            return nb_op_fail(c, "x %s at stride %lld, kernel %s: the output "
                              "would pass 2^61 on axis %d", sx,
                              (long long)p->stride[a], sw, 2 + a);
        int64_t full = (x->shape[2 + a] - 1) * p->stride[a] + span +
                       p->output_padding[a];
        int64_t pads = p->padding[2 * a] + p->padding[2 * a + 1];
        /* The output is conv2d's padded input: the padding must leave at
         * least one row of it, and the kernel must fit it. */
        if (x->shape[2 + a] < 1 || full - pads < 1)
            return nb_op_fail(c,
                              "kernel %s spans %lld (dilation %lld) on axis "
                              "%d; x %s with padding %lld leaves no output "
                              "there",
                              sw, (long long)span, (long long)p->dilation[a],
                              2 + a, sx, (long long)pads);
        c->out_shape[2 + a] = full - pads;
    }
    nb_tensor out = {.shape = c->out_shape, .rank = 4};
    nb_conv_geom g = nb_conv_geom_of(p, &out, w, x);
    rc = nb_conv_check_geom(c, &g);
    if (rc != NB_OK)
        return rc;
    c->workspace_bytes = nb_conv_workspace(x->dtype, &g);
    return NB_OK;
}

static int conv_transpose2d_forward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    nb_conv_geom g = nb_conv_geom_of(c->attrs, c->out, w, x);
    NB_TYPED(x->dtype, {
        NB_KERNEL(nb_conv_backward_data, T)(&g, w->data, x->data, 0, c->out->data,
                               c->workspace);
    });
    return NB_OK;
}

static int conv_transpose2d_backward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    nb_tensor *gx = c->in_grad[0], *gw = c->in_grad[1];
    nb_conv_geom g = nb_conv_geom_of(c->attrs, c->out, w, x);
    NB_TYPED(x->dtype, {
        const T *dy = c->out_grad->data;
        if (gx)
            NB_KERNEL(nb_conv_forward, T)(&g, dy, w->data, nb_grad_fresh(c, 0) ? 0 : 1,
                             gx->data, c->workspace);
        if (gw)
            NB_KERNEL(nb_conv_backward_weight, T)(&g, dy, x->data,
                                     nb_grad_fresh(c, 1) ? 0 : 1, gw->data,
                                     c->workspace);
    });
    return NB_OK;
}

const nb_op nb_op_conv_transpose2d = {
    .struct_size = sizeof(nb_op),
    .flags = NB_OP_FRESH_GRADS,
    .name = "conv_transpose2d",
    .min_inputs = 2,
    .max_inputs = 2,
    .attr_size = sizeof(nb_conv_params),
    .doc = "y[n,o,oy s-p+i d,ox s-p+j d] += w[c,o,i,j] x[n,c,oy,ox] (per "
           "group), the adjoint of conv2d in its input; dx = conv2d(dy, w), "
           "dw[c,o,i,j] = sum_{n,oy,ox} x[n,c,oy,ox] dy[n,o,oy s-p+i d,"
           "ox s-p+j d]",
    .infer = conv_transpose2d_infer,
    .forward = conv_transpose2d_forward,
    .backward = conv_transpose2d_backward,
};

nb_node *nb_conv_transpose2d(nb_graph *g, nb_node *x, nb_node *w,
                             const nb_conv_params *p)
{
    nb_node *in[2] = {x, w};
    return nb_apply(g, &nb_op_conv_transpose2d, 2, in, p ? p : &nb_conv_plain);
}
