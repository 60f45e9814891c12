/* Inverted dropout, y of x's shape.
 *
 *   training:   m_i = 1/(1-p) with probability 1-p, else 0
 *               y = m * x          dx = m * dy
 *   inference:  y = x              dx = dy
 *
 * Scaling the survivors during training keeps E[y] = x, so inference needs
 * no rescaling. The mask is drawn from the graph's RNG (one uniform draw
 * per element, dropped when u < p), so seeding the graph reproduces it,
 * and the gradient check, which rewinds the RNG before each evaluation,
 * sees the same mask every time. p = 0 draws nothing and is the identity.
 *
 * Scratch: the mask (n elements of x's dtype), then one element recording
 * whether forward applied it, so backward follows what forward did even if
 * the training flag changes in between.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   dropout: y = m * x, m_i = 1/(1-p) with prob. 1-p else 0
 *       (training), y = x (inference); dx = m * dy (training), dx =
 *       dy (inference)
 */
#include "ops/op_util.h"

typedef struct dropout_attrs {
    double p;
} dropout_attrs;

static int dropout_infer(nb_op_call *c)
{
    double p = ((const dropout_attrs *)c->attrs)->p;
    if (!(p >= 0 && p < 1))
        return nb_op_fail(c, "drop probability p = %g is not in [0, 1)", p);
    nb_same_as_input(c, 0);
    c->scratch_bytes =
        ((size_t)c->in[0]->size + 1) * nb_dtype_size(c->in[0]->dtype);
    return NB_OK;
}

static int dropout_forward(nb_op_call *c)
{
    double p = ((const dropout_attrs *)c->attrs)->p;
    int64_t n = c->in[0]->size;
    bool masked = nb_op_training(c) && p > 0;
    NB_TYPED(c->out->dtype, {
        const T *x = c->in[0]->data;
        T *y = c->out->data, *mask = c->scratch;
        if (masked) {
            T keep_scale = (T)(1.0 / (1.0 - p));
            for (int64_t i = 0; i < n; i++) {
                mask[i] = nb_rng_uniform(c->graph) < p ? (T)0 : keep_scale;
                y[i] = mask[i] * x[i];
            }
        } else {
            if (n > 0)
                memcpy(y, x, (size_t)n * sizeof(T));
        }
        mask[n] = masked ? (T)1 : (T)0;
    });
    return NB_OK;
}

static int dropout_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *dy = c->out_grad->data, *mask = c->scratch;
        T *dx = c->in_grad[0]->data;
        if (mask[n] != 0) {
            for (int64_t i = 0; i < n; i++)
                dx[i] += mask[i] * dy[i];
        } else {
            for (int64_t i = 0; i < n; i++)
                dx[i] += dy[i];
        }
    });
    return NB_OK;
}

const nb_op nb_op_dropout = {
    .struct_size = sizeof(nb_op),
    .name = "dropout",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(dropout_attrs),
    .doc = "y = m * x, m_i = 1/(1-p) with prob. 1-p else 0 (training), y = x "
        "(inference); dx = m * dy (training), dx = dy (inference)",
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
};

nb_node *nb_dropout(nb_graph *g, nb_node *x, double p)
{
    dropout_attrs attrs = {p};
    return nb_apply(g, &nb_op_dropout, 1, &x, &attrs);
}
