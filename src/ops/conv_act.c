/* Fused convolution: conv2d, a bias per output channel and an optional
 * relu as one node, so that the bias and relu are applied to each
 * sample's GEMM output while it is in cache instead of in two more passes
 * over the whole activation, and backward forms each sample's
 * pre-activation gradient in the workspace. With z the convolution of
 * conv.c (stride, padding, dilation, groups as there):
 *
 *   z[n,o,oy,ox] = conv2d(x, w)[n,o,oy,ox] + b[o]     (b [O], or 0 absent)
 *   y = relu(z) = max(z, 0)      (NB_CONV_ACT_RELU; y = z for ACT_NONE)
 *
 * Derivatives, with relu'(0) = 0 (the library's kink convention) read off
 * the output, since y > 0 exactly where z > 0:
 *
 *   dz = dy [y > 0]              (dz = dy without relu)
 *   db[o] += sum_{n,oy,ox} dz[n,o,oy,ox]
 *   dx, dw: conv2d's (conv.c) with dz in place of dy
 *
 * The op's value is y; z is not kept. The arithmetic is that of conv2d,
 * add and relu composed (the same GEMMs, z = conv + b rounded once, the
 * same select, db summed per sample and channel plane by nb_run_sum as a
 * broadcast add sums a bias), so values and gradients equal the composed
 * graph's bit for bit (tests/test_ops_conv.c checks it).
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   conv2d_bias_act: y = act(conv2d(x, w) + b), b [O] (optional), act
 *       identity or relu; dz = dy [y > 0] (relu) or dy, db[o] = sum_{n,oy,ox}
 *       dz, dx and dw those of conv2d for dz
 */
#include "kernels/conv.h"
#include "ops/op_util.h"

/* The attributes: the geometry first, where conv2d's shape rule reads it. */
typedef struct conv_act_attrs {
    nb_conv_params p;
    int32_t act;
} conv_act_attrs;

static bool relu_of(const nb_op_call *c)
{
    return ((const conv_act_attrs *)c->attrs)->act == NB_CONV_ACT_RELU;
}

static int conv_act_infer(nb_op_call *c)
{
    const conv_act_attrs *a = c->attrs;
    if (a->act != NB_CONV_ACT_NONE && a->act != NB_CONV_ACT_RELU)
        return nb_op_fail(c, "act is %d; expected NB_CONV_ACT_NONE (0) or "
                          "NB_CONV_ACT_RELU (1)", (int)a->act);
    int rc = nb_conv_infer(c, 2);
    if (rc != NB_OK)
        return rc;
    if (c->n_inputs == 3) {
        const nb_tensor *b = c->in[2], *w = c->in[1];
        char sb[128], sw[128];
        NB_SHAPE(b, sb);
        NB_SHAPE(w, sw);
        if (b->rank != 1 || b->shape[0] != w->shape[0])
            return nb_op_fail(c, "bias is %s, expected [%lld]: one per "
                              "output channel of weight %s", sb,
                              (long long)w->shape[0], sw);
    }
    nb_tensor out = {.shape = c->out_shape, .rank = (uint8_t)c->out_rank};
    nb_conv_geom g = nb_conv_geom_of(&a->p, c->in[0], c->in[1], &out);
    c->workspace_bytes = c->in[0]->dtype == NB_F64
                             ? nb_conv_act_workspace_f64(&g, relu_of(c))
                             : nb_conv_act_workspace_f32(&g, relu_of(c));
    return NB_OK;
}

static int conv_act_forward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    const void *b = c->n_inputs == 3 ? c->in[2]->data : NULL;
    nb_conv_geom g = nb_conv_geom_of(c->attrs, x, w, c->out);
    NB_TYPED(x->dtype, {
        NB_KERNEL(nb_conv_act_forward, T)(&g, x->data, w->data, b,
                                          relu_of(c), c->out->data,
                                          c->workspace);
    });
    return NB_OK;
}

static int conv_act_backward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    nb_tensor *gb = c->n_inputs == 3 ? c->in_grad[2] : NULL;
    nb_conv_act_grads d = {
        .dx = c->in_grad[0] ? c->in_grad[0]->data : NULL,
        .dw = c->in_grad[1] ? c->in_grad[1]->data : NULL,
        .db = gb ? gb->data : NULL,
        .fresh_x = nb_grad_fresh(c, 0),
        .fresh_w = nb_grad_fresh(c, 1),
        .fresh_b = gb && nb_grad_fresh(c, 2),
    };
    if (!d.dx && !d.dw && !d.db)
        return NB_OK;
    nb_conv_geom g = nb_conv_geom_of(c->attrs, x, w, c->out);
    NB_TYPED(x->dtype, {
        NB_KERNEL(nb_conv_act_backward, T)(&g, x->data, w->data,
                                           c->out->data, c->out_grad->data,
                                           relu_of(c), &d, c->workspace);
    });
    return NB_OK;
}

const nb_op nb_op_conv2d_bias_act = {
    .struct_size = sizeof(nb_op),
    .flags = NB_OP_FRESH_GRADS,
    .name = "conv2d_bias_act",
    .min_inputs = 2,
    .max_inputs = 3,
    .attr_size = sizeof(conv_act_attrs),
    .doc = "y = act(conv2d(x, w) + b), b [O] (optional), act identity or "
           "relu; dz = dy [y > 0] (relu) or dy, db[o] = sum_{n,oy,ox} dz, dx "
           "and dw those of conv2d for dz",
    .infer = conv_act_infer,
    .forward = conv_act_forward,
    .backward = conv_act_backward,
};

nb_node *nb_conv2d_bias_act(nb_graph *g, nb_node *x, nb_node *w, nb_node *b,
                            const nb_conv_params *p, nb_conv_act act)
{
    /* A NULL bias is "no bias" only while the graph holds no error: after
     * one, it is the NULL of a failed constructor, and chained
     * construction must see NULL come out. */
    if (!b && g && nb_graph_status(g) != NB_OK)
        return NULL;
    conv_act_attrs a = {.p = p ? *p : nb_conv_plain, .act = (int32_t)act};
    nb_node *in[3] = {x, w, b};
    return nb_apply(g, &nb_op_conv2d_bias_act, b ? 3 : 2, in, &a);
}
