/* Parametric ReLU: a leaky ReLU whose slope alpha is a node, usually a
 * trainable parameter, broadcast numpy-style to x (a scalar, one slope per
 * channel of the last axis [C], or any shape that broadcasts to x without
 * enlarging it). y has x's shape.
 *
 *   y      = x > 0 ? x : alpha x
 *   dx     = dy * (x > 0 ? 1 : alpha)
 *   dalpha = sum over the elements alpha fed of dy * (x > 0 ? 0 : x)
 *
 * At x = 0 the derivative is the left one, alpha (as leaky_relu). An alpha
 * that fed many elements collects all their messages: fan-out forward is a
 * sum backward.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   prelu: y = x > 0 ? x : alpha x (alpha broadcast to x); dx = dy *
 *       (x > 0 ? 1 : alpha), dalpha = sum of dy * (x > 0 ? 0 : x)
 *       over the elements it fed
 */
#include "ops/op_util.h"

static int prelu_infer(nb_op_call *c)
{
    const nb_tensor *x = c->in[0], *alpha = c->in[1];
    char xs[128], as[128];
    if (alpha->dtype != x->dtype)
        return nb_op_fail(c, "alpha %s is %s but x %s is %s; both must have "
                             "one dtype",
                          NB_SHAPE(alpha, as), nb_dtype_name(alpha->dtype),
                          NB_SHAPE(x, xs), nb_dtype_name(x->dtype));
    if (alpha->rank > x->rank)
        return nb_op_fail(c,
                          "alpha %s has more axes than x %s; alpha must "
                          "broadcast to x without changing x's shape",
                          NB_SHAPE(alpha, as), NB_SHAPE(x, xs));
    for (int i = 0; i < alpha->rank; i++) {
        int ix = i + x->rank - alpha->rank;
        if (alpha->shape[i] != 1 && alpha->shape[i] != x->shape[ix])
            return nb_op_fail(c,
                              "alpha %s does not broadcast to x %s (alpha axis "
                              "%d has %lld, x has %lld; it must be 1 or equal)",
                              NB_SHAPE(alpha, as), NB_SHAPE(x, xs), i,
                              (long long)alpha->shape[i],
                              (long long)x->shape[ix]);
    }
    nb_same_as_input(c, 0);
    return NB_OK;
}

/* In the innermost loop x has stride 1 (the output has x's shape) and
 * alpha stride 0 (broadcast) or 1; a loop per pattern lets both vectorise.
 * Each element is split into its positive part and the rest, both masked
 * to 0 on the other side, and the two are combined with arithmetic: gcc
 * does not vectorise a select with arithmetic in a branch (it might raise
 * a floating-point exception the scalar code would not). */
static int prelu_forward(nb_op_call *c)
{
    nb_bcast p;
    nb_bcast_plan(&p, c->out, c->in[0], c->in[1]);
    int64_t n = p.shape[p.rank - 1], sa = p.stride_b[p.rank - 1];
    NB_TYPED(c->out->dtype, {
        for (int64_t row = 0; row < p.outer; row++) {
            int64_t ox, oa;
            nb_bcast_row(&p, row, &ox, &oa);
            const T *restrict px = (const T *)c->in[0]->data + ox;
            const T *restrict pa = (const T *)c->in[1]->data + oa;
            T *restrict py = (T *)c->out->data + row * n;
            if (sa == 0) {
                const T a = pa[0];
                for (int64_t j = 0; j < n; j++) {
                    const T x = px[j];
                    const T pos = x > 0 ? x : (T)0, neg = x > 0 ? (T)0 : x;
                    py[j] = pos + a * neg;
                }
            } else {
                for (int64_t j = 0; j < n; j++) {
                    const T x = px[j], a = pa[j * sa];
                    const T pos = x > 0 ? x : (T)0, neg = x > 0 ? (T)0 : x;
                    py[j] = pos + a * neg;
                }
            }
        }
    });
    return NB_OK;
}

static int prelu_backward(nb_op_call *c)
{
    nb_tensor *gx_t = c->in_grad[0], *ga_t = c->in_grad[1];
    nb_bcast p;
    nb_bcast_plan(&p, c->out, c->in[0], c->in[1]);
    int64_t n = p.shape[p.rank - 1], sa = p.stride_b[p.rank - 1];
    NB_TYPED(c->out->dtype, {
        for (int64_t row = 0; row < p.outer; row++) {
            int64_t ox, oa;
            nb_bcast_row(&p, row, &ox, &oa);
            const T *px = (const T *)c->in[0]->data + ox;
            const T *pa = (const T *)c->in[1]->data + oa;
            const T *pdy = (const T *)c->out_grad->data + row * n;
            if (gx_t) {
                T *gx = (T *)gx_t->data + ox;
                for (int64_t j = 0; j < n; j++) {
                    const T x = px[j], dy = pdy[j], a = pa[j * sa];
                    const T on = x > 0 ? dy : (T)0, off = x > 0 ? (T)0 : dy;
                    gx[j] += on + a * off;
                }
            }
            if (ga_t) {
                /* Messages are computed from x and dy only, never from a
                 * gradient buffer, so alpha and x may be the same node. */
                T *ga = (T *)ga_t->data + oa;
                if (sa == 0) {
                    T total = 0;
                    for (int64_t j = 0; j < n; j++) {
                        total += pdy[j] * (px[j] > 0 ? (T)0 : px[j]);
                    }
                    ga[0] += total;
                } else {
                    for (int64_t j = 0; j < n; j++) {
                        ga[j * sa] += pdy[j] * (px[j] > 0 ? (T)0 : px[j]);
                    }
                }
            }
        }
    });
    return NB_OK;
}

const nb_op nb_op_prelu = {
    .struct_size = sizeof(nb_op),
    .name = "prelu",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "y = x > 0 ? x : alpha x (alpha broadcast to x); dx = dy * (x > 0 ? 1 : "
        "alpha), dalpha = sum of dy * (x > 0 ? 0 : x) over the elements it fed",
    .infer = prelu_infer,
    .forward = prelu_forward,
    .backward = prelu_backward,
};

nb_node *nb_prelu(nb_graph *g, nb_node *x, nb_node *alpha)
{
    nb_node *in[2] = {x, alpha};
    return nb_apply(g, &nb_op_prelu, 2, in, NULL);
}
