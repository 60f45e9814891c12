/* Layer normalisation over the trailing `axes` axes of x: x is seen as
 * rows of d elements (d = product of those axes), each row normalised on
 * its own; optional weight (gamma) and bias (beta) of the normalised shape
 * (PyTorch's elementwise_affine).
 *
 *   mu = sum_j x_j / d,  var = sum_j (x_j - mu)^2 / d,  r = 1/sqrt(var+eps)
 *   xhat_j = (x_j - mu) r,   y_j = gamma_j xhat_j + beta_j
 *   g_j = dy_j gamma_j
 *   dx_j = r (g_j - sum_k g_k / d - xhat_j sum_k g_k xhat_k / d)
 *   dgamma_j = sum over rows dy_j xhat_j,  dbeta_j = sum over rows dy_j
 *
 * Statistics come from each row alone, so training and inference agree.
 * Scratch: mu and r per row.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   layer_norm: y = gamma (x - mu) / sqrt(var + eps) + beta over each
 *       row of the trailing axes; dx = r (g - mean g - xhat mean(g xhat)),
 *       g = gamma dy
 */
#include <math.h>

#include "kernels/norm.h"
#include "ops/op_util.h"

typedef struct layer_norm_attrs {
    int axes;
    double eps;
} layer_norm_attrs;

static int layer_norm_infer(nb_op_call *c)
{
    const layer_norm_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    char xs[128], ps[128], ns[128];
    if (!(at->eps > 0 && isfinite(at->eps)))
        return nb_op_fail(c, "eps %g must be positive", at->eps);
    if (c->n_inputs != 1 && c->n_inputs != 3)
        return nb_op_fail(c, "takes x and optionally weight and bias (1 or "
                             "3 inputs), got %d", c->n_inputs);
    if (at->axes < 1 || at->axes > x->rank)
        return nb_op_fail(c, "cannot normalise over the last %d axes of "
                             "input %s (1 to %d)",
                          at->axes, NB_SHAPE(x, xs), x->rank);
    int lead = x->rank - at->axes;
    nb_shape_str(at->axes, x->shape + lead, ns, sizeof ns);
    for (int i = 1; i < c->n_inputs; i++) {
        const nb_tensor *p = c->in[i];
        const char *role = i == 1 ? "weight" : "bias";
        bool same = p->rank == at->axes;
        for (int d = 0; same && d < at->axes; d++)
            same = p->shape[d] == x->shape[lead + d];
        if (!same)
            return nb_op_fail(c, "%s is %s, but input %s is normalised over "
                                 "%s",
                              role, NB_SHAPE(p, ps), NB_SHAPE(x, xs), ns);
    }
    int64_t d = 1;
    for (int k = lead; k < x->rank; k++)
        d *= x->shape[k];
    if (d == 0)
        return nb_op_fail(c, "input %s: the normalised shape %s is empty",
                          NB_SHAPE(x, xs), ns);
    nb_same_as_input(c, 0);
    c->scratch_bytes = (size_t)(x->size / d) * 2 * nb_dtype_size(x->dtype);
    return NB_OK;
}

/* x as rows of d elements; the shape rule made sure d > 0 */
static int64_t rows_of(const nb_op_call *c, int64_t *d)
{
    const layer_norm_attrs *at = c->attrs;
    *d = 1;
    for (int k = c->in[0]->rank - at->axes; k < c->in[0]->rank; k++)
        *d *= c->in[0]->shape[k];
    return c->in[0]->size / *d;
}

static int layer_norm_forward(nb_op_call *c)
{
    const layer_norm_attrs *at = c->attrs;
    int64_t d, rows = rows_of(c, &d);
    bool affine = c->n_inputs == 3;
    NB_TYPED(c->out->dtype, {
        T *mu = c->scratch, *r = mu + rows;
        const T *gamma = affine ? c->in[1]->data : NULL;
        const T *beta = affine ? c->in[2]->data : NULL;
        NB_KERNEL(nb_ln_forward, T)(rows, d, c->in[0]->data, gamma, beta,
                                    at->eps, c->out->data, mu, r);
    });
    return NB_OK;
}

static int layer_norm_backward(nb_op_call *c)
{
    int64_t d, rows = rows_of(c, &d);
    bool affine = c->n_inputs == 3;
    nb_tensor *dx = c->in_grad[0];
    nb_tensor *dg = affine ? c->in_grad[1] : NULL;
    nb_tensor *db = affine ? c->in_grad[2] : NULL;
    NB_TYPED(c->out->dtype, {
        const T *mu = c->scratch, *r = mu + rows;
        const T *gamma = affine ? c->in[1]->data : NULL;
        T *dxp = dx ? dx->data : NULL, *dgp = dg ? dg->data : NULL,
          *dbp = db ? db->data : NULL;
        NB_KERNEL(nb_ln_back, T)(rows, d, c->in[0]->data, c->out_grad->data,
                                 mu, r, gamma, dxp, dgp, dbp);
    });
    return NB_OK;
}

const nb_op nb_op_layer_norm = {
    .struct_size = sizeof(nb_op),
    .name = "layer_norm",
    .min_inputs = 1,
    .max_inputs = 3,
    .attr_size = sizeof(layer_norm_attrs),
    .doc = "y = gamma (x - mu) / sqrt(var + eps) + beta over each row of "
           "the trailing axes; dx = r (g - mean g - xhat mean(g xhat)), "
           "g = gamma dy",
    .infer = layer_norm_infer,
    .forward = layer_norm_forward,
    .backward = layer_norm_backward,
};

nb_node *nb_layer_norm(nb_graph *g, nb_node *x, int axes, nb_node *weight,
                       nb_node *bias, double eps)
{
    if (!g)
        return NULL;
    if ((weight == NULL) != (bias == NULL)) {
        nb_set_error(g, NB_ERR_ARG,
                     "layer_norm: weight and bias are given together or "
                     "not at all (weight %s, bias %s)",
                     weight ? "given" : "NULL", bias ? "given" : "NULL");
        return NULL;
    }
    layer_norm_attrs at = {axes, eps};
    nb_node *in[3] = {x, weight, bias};
    return nb_apply(g, &nb_op_layer_norm, weight ? 3 : 1, in, &at);
}
