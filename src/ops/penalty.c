/* Weight penalties: any shape in, a scalar out.
 *
 *   l1_penalty  L = sum_i |w_i|        dw = dL sign(w)   (0 at w = 0)
 *   l2_penalty  L = 1/2 sum_i w_i^2    dw = dL w
 *
 * The 1/2 makes the L2 derivative w itself, the form weight decay is
 * written in. |w|' at 0 is taken as 0, the library-wide kink convention.
 * Sums are accumulated in double.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   l1_penalty: L = sum |w|; dw = sign(w) (0 at w = 0)
 *   l2_penalty: L = 1/2 sum w^2; dw = w
 */
#include "ops/op_util.h"

static int penalty_infer(nb_op_call *c)
{
    nb_scalar_output(c);
    return NB_OK;
}

static int l1_forward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *w = c->in[0]->data;
        double total = 0;
        for (int64_t i = 0; i < n; i++)
            total += w[i] < 0 ? -(double)w[i] : (double)w[i];
        *(T *)c->out->data = (T)total;
    });
    return NB_OK;
}

static int l1_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *w = c->in[0]->data;
        T *dw = c->in_grad[0]->data;
        T s = *(const T *)c->out_grad->data;
        for (int64_t i = 0; i < n; i++)
            dw[i] += w[i] > 0 ? s : w[i] < 0 ? -s : (T)0;
    });
    return NB_OK;
}

static int l2_forward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *w = c->in[0]->data;
        double total = 0;
        for (int64_t i = 0; i < n; i++)
            total += (double)w[i] * (double)w[i];
        *(T *)c->out->data = (T)(0.5 * total);
    });
    return NB_OK;
}

static int l2_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return NB_OK;
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *w = c->in[0]->data;
        T *dw = c->in_grad[0]->data;
        T s = *(const T *)c->out_grad->data;
        for (int64_t i = 0; i < n; i++)
            dw[i] += s * w[i];
    });
    return NB_OK;
}

const nb_op nb_op_l1_penalty = {
    .struct_size = sizeof(nb_op),
    .name = "l1_penalty",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "L = sum |w|; dw = sign(w) (0 at w = 0)",
    .infer = penalty_infer,
    .forward = l1_forward,
    .backward = l1_backward,
};

const nb_op nb_op_l2_penalty = {
    .struct_size = sizeof(nb_op),
    .name = "l2_penalty",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "L = 1/2 sum w^2; dw = w",
    .infer = penalty_infer,
    .forward = l2_forward,
    .backward = l2_backward,
};

nb_node *nb_l1_penalty(nb_graph *g, nb_node *w)
{
    return nb_apply(g, &nb_op_l1_penalty, 1, &w, NULL);
}

nb_node *nb_l2_penalty(nb_graph *g, nb_node *w)
{
    return nb_apply(g, &nb_op_l2_penalty, 1, &w, NULL);
}
