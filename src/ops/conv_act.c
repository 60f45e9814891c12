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
 * conv2d_bias_act_maxpool pools y as max_pool2d does (pool2d.c: the
 * whole message of a window to its first maximum), each sample's planes
 * while they are in cache, so a = act(z) is not kept either:
 *
 *   out = max_pool2d(a),  a = act(z)
 *   da = dout at each window's first argmax, 0 elsewhere
 *   dz = da [a > 0] = (dout [out > 0]) routed to the winners
 *
 * (where a window holds some z > 0 its winner is that of z and out > 0;
 * where it holds none, out = 0 and relu sends nothing back either way).
 *
 * The op's value is y (or out); z is not kept. The arithmetic is that of
 * conv2d, add, relu (and max_pool2d) composed: the same GEMMs, z = conv +
 * b rounded once, the same selects, the same pooling kernels, db summed
 * per sample and channel plane by nb_run_sum as a broadcast add sums a
 * bias; so values and gradients equal the composed graph's bit for bit
 * (tests/test_ops_conv.c checks it).
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   conv2d_bias_act: y = act(conv2d(x, w) + b), b [O] (optional), act
 *       identity or relu; dz = dy [y > 0] (relu) or dy, db[o] = sum_{n,oy,ox}
 *       dz, dx and dw those of conv2d for dz
 *
 *   conv2d_bias_act_maxpool: y = max_pool2d(a), a = act(conv2d(x, w) + b),
 *       b [O] (optional), act identity or relu; da = dy at each window's
 *       first argmax (0 elsewhere), dz = da [a > 0] (relu) or da, db[o] =
 *       sum_{n,oy,ox} dz, dx and dw those of conv2d for dz
 */
#include "kernels/conv.h"
#include "ops/op_util.h"

/* The attributes: the geometry first, where conv2d's shape rule reads it;
 * pooled only in conv2d_bias_act_maxpool. */
typedef struct conv_act_attrs {
    nb_conv_params p;
    int32_t act;
    bool pooled;
    nb_pool2d_params pool;
} conv_act_attrs;

static bool relu_of(const nb_op_call *c)
{
    return ((const conv_act_attrs *)c->attrs)->act == NB_CONV_ACT_RELU;
}

/* The convolution's geometry and, when pooled, the pooling's over one
 * sample's O planes; fills c's output shape (the pooled one when pooled).
 * Fails as the shape rules of conv2d and max_pool2d do. */
static int geoms(nb_op_call *c, nb_conv_geom *g, nb_pool2d_geom *pg)
{
    const conv_act_attrs *a = c->attrs;
    int rc = nb_conv_infer(c, 2);
    if (rc != NB_OK)
        return rc;
    int64_t shape[4];
    memcpy(shape, c->out_shape, sizeof shape);
    nb_tensor conv = {.shape = shape, .rank = 4, .dtype = c->in[0]->dtype};
    *g = nb_conv_geom_of(&a->p, c->in[0], c->in[1], &conv);
    if (!a->pooled)
        return NB_OK;
    rc = nb_max_pool2d_shape(c, &conv, &a->pool, pg);
    pg->planes = g->o;
    return rc;
}

static int conv_act_infer(nb_op_call *c)
{
    const conv_act_attrs *a = c->attrs;
    if (a->act != NB_CONV_ACT_NONE && a->act != NB_CONV_ACT_RELU)
        return nb_op_fail(c, "act is %d; expected NB_CONV_ACT_NONE (0) or "
                          "NB_CONV_ACT_RELU (1)", (int)a->act);
    nb_conv_geom g;
    nb_pool2d_geom pg = {0};
    int rc = geoms(c, &g, &pg);
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
    const nb_pool2d_geom *pool = a->pooled ? &pg : NULL;
    c->workspace_bytes = c->in[0]->dtype == NB_F64
                             ? nb_conv_act_workspace_f64(&g, relu_of(c), pool)
                             : nb_conv_act_workspace_f32(&g, relu_of(c), pool);
    /* the winners of every pooling window, kept for backward */
    c->scratch_bytes = a->pooled ? (size_t)(g.batch * g.o * pg.oh * pg.ow) *
                                       sizeof(int32_t)
                                 : 0;
    return NB_OK;
}

/* The geometries at forward and backward, where the shape rule has
 * passed (recomputing them costs a few comparisons; a copy of the call
 * takes the output shape geoms writes); the pooling's, or NULL. */
static const nb_pool2d_geom *run_geoms(const nb_op_call *c, nb_conv_geom *g,
                                       nb_pool2d_geom *pg)
{
    nb_op_call probe = *c;
    (void)geoms(&probe, g, pg);
    return ((const conv_act_attrs *)c->attrs)->pooled ? pg : NULL;
}

static int conv_act_forward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *w = c->in[1];
    const void *b = c->n_inputs == 3 ? c->in[2]->data : NULL;
    nb_conv_geom g;
    nb_pool2d_geom pg;
    const nb_pool2d_geom *pool = run_geoms(c, &g, &pg);
    NB_TYPED(x->dtype, {
        NB_KERNEL(nb_conv_act_forward, T)(&g, x->data, w->data, b,
                                          relu_of(c), pool, c->scratch,
                                          c->out->data, c->workspace);
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
    nb_conv_geom g;
    nb_pool2d_geom pg;
    const nb_pool2d_geom *pool = run_geoms(c, &g, &pg);
    NB_TYPED(x->dtype, {
        NB_KERNEL(nb_conv_act_backward, T)(&g, x->data, w->data,
                                           c->out->data, c->out_grad->data,
                                           relu_of(c), pool, c->scratch, &d,
                                           c->workspace);
    });
    return NB_OK;
}

/* The two ops differ in name and doc; the attributes say whether to pool. */
#define CONV_ACT_OP(NAME, DOC)                                                \
    const nb_op nb_op_##NAME = {                                              \
        .struct_size = sizeof(nb_op),                                         \
        .flags = NB_OP_FRESH_GRADS,                                           \
        .name = #NAME,                                                        \
        .min_inputs = 2,                                                      \
        .max_inputs = 3,                                                      \
        .attr_size = sizeof(conv_act_attrs),                                  \
        .doc = DOC,                                                           \
        .infer = conv_act_infer,                                              \
        .forward = conv_act_forward,                                          \
        .backward = conv_act_backward,                                        \
    };

CONV_ACT_OP(conv2d_bias_act,
            "y = act(conv2d(x, w) + b), b [O] (optional), act identity or "
            "relu; dz = dy [y > 0] (relu) or dy, db[o] = sum_{n,oy,ox} dz, "
            "dx and dw those of conv2d for dz")
CONV_ACT_OP(conv2d_bias_act_maxpool,
            "y = max_pool2d(a), a = act(conv2d(x, w) + b), b [O] (optional), "
            "act identity or relu; da = dy at each window's first argmax "
            "(0 elsewhere), dz = da [a > 0] (relu) or da, db[o] = "
            "sum_{n,oy,ox} dz, dx and dw those of conv2d for dz")

/* A NULL bias is "no bias" only while the graph holds no error: after
 * one, it is the NULL of a failed constructor, and chained construction
 * must see NULL come out. */
static nb_node *apply(nb_graph *g, const nb_op *op, nb_node *x, nb_node *w,
                      nb_node *b, const conv_act_attrs *a)
{
    if (!b && g && nb_graph_status(g) != NB_OK)
        return NULL;
    nb_node *in[3] = {x, w, b};
    return nb_apply(g, op, b ? 3 : 2, in, a);
}

nb_node *nb_conv2d_bias_act(nb_graph *g, nb_node *x, nb_node *w, nb_node *b,
                            const nb_conv_params *p, nb_conv_act act)
{
    conv_act_attrs a = {.p = p ? *p : nb_conv_plain, .act = (int32_t)act};
    return apply(g, &nb_op_conv2d_bias_act, x, w, b, &a);
}

nb_node *nb_conv2d_bias_act_maxpool(nb_graph *g, nb_node *x, nb_node *w,
                                    nb_node *b, const nb_conv_params *p,
                                    nb_conv_act act,
                                    const nb_pool2d_params *pool)
{
    conv_act_attrs a = {.p = p ? *p : nb_conv_plain,
                        .act = (int32_t)act,
                        .pooled = true};
    if (pool)
        a.pool = *pool;
    return apply(g, &nb_op_conv2d_bias_act_maxpool, x, w, b, &a);
}
