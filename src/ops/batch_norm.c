/* Batch normalisation, channel axis 1 of x [N, C, ...] ([N, F], [N, C, L],
 * [N, C, H, W]); inputs x, running_mean [C], running_var [C], and
 * optionally weight (gamma) [C] and bias (beta) [C]. Per channel c, over
 * the m = N * (product of the axes after C) elements x_i of the channel:
 *
 * training (batch statistics):
 *   mu = sum x_i / m,  var = sum (x_i - mu)^2 / m,  r = 1/sqrt(var + eps)
 *   xhat_i = (x_i - mu) r,   y_i = gamma xhat_i + beta
 *   dbeta = sum dy_i,  dgamma = sum dy_i xhat_i
 *   dx_i = gamma r (dy_i - dbeta/m - xhat_i dgamma/m)
 * The last line is the full derivative, through mu and var: mu and var
 * depend on every x_i of the channel, which adds the two mean terms to the
 * inference-mode gamma r dy_i.
 *   Side effect (not differentiated): running_mean = (1 - momentum)
 *   running_mean + momentum mu, running_var likewise with the unbiased
 *   var m/(m-1), PyTorch's convention. Training needs m >= 2.
 *
 * inference (running statistics):
 *   mu = running_mean, r = 1/sqrt(running_var + eps), y as above,
 *   dx_i = gamma r dy_i, dgamma and dbeta as above.
 *
 * The graph's training flag picks the mode at each forward; backward
 * follows what forward did (a flag in the scratch). The running statistics
 * are state nodes (nb_state), written in place by forward: they take no
 * gradient. Scratch: mu, r and var per channel, then the mode flag.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   batch_norm: y = gamma (x - mu) / sqrt(var + eps) + beta per
 *       channel (batch statistics in training, running ones in inference);
 *       dx = gamma r (dy - mean dy - xhat mean(dy xhat)) in training,
 *       gamma r dy in inference
 */
#include <math.h>

#include "kernels/norm.h"
#include "ops/op_util.h"

typedef struct batch_norm_attrs {
    double momentum, eps;
} batch_norm_attrs;

static int batch_norm_infer(nb_op_call *c)
{
    const batch_norm_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    char xs[128], ps[128];
    if (!(at->momentum >= 0 && at->momentum <= 1))
        return nb_op_fail(c, "momentum %g is not in [0, 1]", at->momentum);
    if (!(at->eps > 0 && isfinite(at->eps)))
        return nb_op_fail(c, "eps %g must be positive", at->eps);
    if (c->n_inputs != 3 && c->n_inputs != 5)
        return nb_op_fail(c, "takes x, running_mean, running_var and "
                             "optionally weight and bias (3 or 5 inputs), "
                             "got %d", c->n_inputs);
    if (x->rank < 2)
        return nb_op_fail(c, "input %s needs a batch and a channel axis "
                             "([N,C], [N,C,L] or [N,C,H,W])",
                          NB_SHAPE(x, xs));
    static const char *const role[5] = {"x", "running_mean", "running_var",
                                        "weight", "bias"};
    for (int i = 1; i < c->n_inputs; i++) {
        const nb_tensor *p = c->in[i];
        if (p->rank != 1 || p->shape[0] != x->shape[1])
            return nb_op_fail(c,
                              "input %s has %lld channels, %s is %s "
                              "(expected [%lld])",
                              NB_SHAPE(x, xs), (long long)x->shape[1],
                              role[i], NB_SHAPE(p, ps),
                              (long long)x->shape[1]);
    }
    nb_same_as_input(c, 0);
    c->scratch_bytes =
        ((size_t)x->shape[1] * 3 + 1) * nb_dtype_size(x->dtype);
    return NB_OK;
}

/* x as [n, ch, s] */
static void layout(const nb_tensor *x, int64_t *n, int64_t *ch, int64_t *s)
{
    *n = x->shape[0];
    *ch = x->shape[1];
    *s = 1;
    for (int d = 2; d < x->rank; d++)
        *s *= x->shape[d];
}

static int batch_norm_forward(nb_op_call *c)
{
    const batch_norm_attrs *at = c->attrs;
    int64_t n, ch, s;
    layout(c->in[0], &n, &ch, &s);
    int64_t m = n * s;
    bool batch = nb_op_training(c);
    if (batch && m < 2) {
        char xs[128];
        return nb_op_fail(c, "training needs more than one value per "
                             "channel, input %s has %lld",
                          NB_SHAPE(c->in[0], xs), (long long)m);
    }
    bool affine = c->n_inputs == 5;
    double mom = at->momentum;
    NB_TYPED(c->out->dtype, {
        T *mu = c->scratch, *r = mu + ch, *var = r + ch;
        /* the running statistics are state, updated in place */
        T *run_mu = (T *)c->in[1]->data, *run_var = (T *)c->in[2]->data;
        if (batch) {
            NB_KERNEL(nb_bn_stats, T)(n, ch, s, c->in[0]->data, mu, var);
            double unbias = (double)m / (double)(m - 1);
            for (int64_t k = 0; k < ch; k++) {
                r[k] = (T)(1.0 / sqrt((double)var[k] + at->eps));
                run_mu[k] = (T)((1 - mom) * run_mu[k] + mom * mu[k]);
                run_var[k] =
                    (T)((1 - mom) * run_var[k] + mom * unbias * var[k]);
            }
        } else {
            for (int64_t k = 0; k < ch; k++) {
                mu[k] = run_mu[k];
                r[k] = (T)(1.0 / sqrt((double)run_var[k] + at->eps));
            }
        }
        var[ch] = batch ? (T)1 : (T)0;
        const T *gamma = affine ? c->in[3]->data : NULL;
        const T *beta = affine ? c->in[4]->data : NULL;
        NB_KERNEL(nb_bn_apply, T)(n, ch, s, c->in[0]->data, mu, r, gamma,
                                  beta, c->out->data);
    });
    return NB_OK;
}

static int batch_norm_backward(nb_op_call *c)
{
    int64_t n, ch, s;
    layout(c->in[0], &n, &ch, &s);
    bool affine = c->n_inputs == 5;
    nb_tensor *dx = c->in_grad[0];
    nb_tensor *dg = affine ? c->in_grad[3] : NULL;
    nb_tensor *db = affine ? c->in_grad[4] : NULL;
    if (!dx && !dg && !db)
        return NB_OK;
    NB_TYPED(c->out->dtype, {
        const T *mu = c->scratch, *r = mu + ch;
        bool batch = r[2 * ch] != 0;
        const T *gamma = affine ? c->in[3]->data : NULL;
        T *dxp = dx ? dx->data : NULL, *dgp = dg ? dg->data : NULL,
          *dbp = db ? db->data : NULL;
        NB_KERNEL(nb_bn_back, T)(n, ch, s, c->in[0]->data, c->out_grad->data,
                                 mu, r, gamma, batch, dxp, dgp, dbp);
    });
    return NB_OK;
}

const nb_op nb_op_batch_norm = {
    .struct_size = sizeof(nb_op),
    .name = "batch_norm",
    .min_inputs = 3,
    .max_inputs = 5,
    .attr_size = sizeof(batch_norm_attrs),
    .doc = "y = gamma (x - mu) / sqrt(var + eps) + beta per channel (batch "
           "statistics in training, running ones in inference); dx = gamma "
           "r (dy - mean dy - xhat mean(dy xhat)) in training, gamma r dy "
           "in inference",
    .infer = batch_norm_infer,
    .forward = batch_norm_forward,
    .backward = batch_norm_backward,
};

nb_node *nb_batch_norm(nb_graph *g, nb_node *x, nb_node *running_mean,
                       nb_node *running_var, nb_node *weight, nb_node *bias,
                       double momentum, double eps)
{
    if (!g)
        return NULL;
    if ((weight == NULL) != (bias == NULL)) {
        nb_set_error(g, NB_ERR_ARG,
                     "batch_norm: weight and bias are given together or "
                     "not at all (weight %s, bias %s)",
                     weight ? "given" : "NULL", bias ? "given" : "NULL");
        return NULL;
    }
    nb_node *stats[2] = {running_mean, running_var};
    for (int i = 0; i < 2; i++) {
        if (stats[i] && stats[i]->kind != NB_NODE_STATE) {
            nb_set_error(g, NB_ERR_ARG,
                         "batch_norm: %s ('%s') must be a state node "
                         "(nb_state): forward writes it",
                         i ? "running_var" : "running_mean",
                         nb_node_name(stats[i]));
            return NULL;
        }
    }
    batch_norm_attrs at = {momentum, eps};
    nb_node *in[5] = {x, running_mean, running_var, weight, bias};
    return nb_apply(g, &nb_op_batch_norm, weight ? 5 : 3, in, &at);
}
