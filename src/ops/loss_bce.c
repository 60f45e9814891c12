/* Binary cross-entropy, elementwise targets t of the prediction's shape,
 * averaged over all n elements; the output is a scalar.
 *
 *   bce_loss(p, t)         L = 1/n sum -[t log p + (1-t) log(1-p)]
 *                          dp = (p - t) / (p (1-p)) / n
 *                          dt = (log(1-p) - log p) / n
 *   bce_logits_loss(z, t)  L = 1/n sum softplus(z) - t z
 *                            = 1/n sum max(z,0) - t z + log1p(e^-|z|)
 *                          dz = (sigmoid(z) - t) / n
 *                          dt = -z / n
 *
 * Both messages are scaled by the incoming dL.
 *
 * bce_loss takes 0 log 0 = 0: the t log p term is only formed when t != 0
 * and the (1-t) log(1-p) term only when t != 1, so p exactly 0 or 1 with a
 * matching target gives a loss of 0, not NaN. For the same reason dp at
 * p = 0 or 1 is taken from the split form -t/p + (1-t)/(1-p) with the same
 * rule (equal to the form above inside (0, 1)). Nothing is clamped: a
 * confident wrong answer costs infinity, as the formula says.
 *
 * bce_logits_loss is the softplus form zeta((1-2t) z) for t in {0, 1}; it
 * never saturates and stays finite for any finite z (z = +-1000 included).
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   bce_loss: L = mean -[t log p + (1-t) log(1-p)] (0 log 0 = 0); dp
 *       = (p - t)/(p (1-p))/n, dt = (log(1-p) - log p)/n
 *   bce_logits_loss: L = mean softplus(z) - t z; dz = (sigmoid(z) -
 *       t)/n, dt = -z/n
 */
#include "ops/op_util.h"

static int bce_infer_common(nb_op_call *c, const char *pred, int copies)
{
    int rc = nb_require_same_dtype(c);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *x = c->in[0], *t = c->in[1];
    char sx[128], st[128];
    if (!nb_same_shape(x, t))
        return nb_op_fail(c, "shapes differ: %s is %s, t is %s (no broadcasting)",
                          pred, NB_SHAPE(x, sx), NB_SHAPE(t, st));
    if (x->size == 0)
        return nb_op_fail(c, "%s is %s: the mean of no elements is undefined",
                          pred, NB_SHAPE(x, sx));
    nb_scalar_output(c);
    c->scratch_bytes = (size_t)copies * (size_t)x->size * nb_dtype_size(x->dtype);
    return NB_OK;
}

/* ---- bce_loss: scratch holds log p, then log(1-p), kept for dt ---- */

static int bce_infer(nb_op_call *c)
{
    return bce_infer_common(c, "p", 2);
}

static int bce_forward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *p = c->in[0]->data, *t = c->in[1]->data;
        /* p and 1 - p side by side, then one call takes the log of both
         * halves in place: an element's log does not depend on where it
         * sits, and a call costs more than a tiny loss's arithmetic. */
        T *log_p = c->scratch, *log_q = log_p + n;
        for (int64_t i = 0; i < n; i++) {
            log_p[i] = p[i];
            log_q[i] = (T)1 - p[i];
        }
        NB_KERNEL(nb_vm_log, T)(2 * n, log_p, log_p);
        double total = 0;
        for (int64_t i = 0; i < n; i++) {
            if (t[i] != 0)
                total -= (double)t[i] * (double)log_p[i];
            if (t[i] != 1)
                total -= (1.0 - (double)t[i]) * (double)log_q[i];
        }
        *(T *)c->out->data = (T)(total / (double)n);
    });
    return NB_OK;
}

static int bce_backward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    nb_tensor *gp = c->in_grad[0], *gt = c->in_grad[1];
    const bool fresh_p = nb_grad_fresh(c, 0);
    NB_TYPED(c->out->dtype, {
        const T *p = c->in[0]->data, *t = c->in[1]->data;
        const T *log_p = c->scratch, *log_q = log_p + n;
        T s = (T)((double)*(const T *)c->out_grad->data / (double)n);
        if (gp) {
            T *dp = gp->data;
            for (int64_t i = 0; i < n; i++) {
                T d;
                if (p[i] > 0 && p[i] < 1) {
                    d = (p[i] - t[i]) / (p[i] * ((T)1 - p[i]));
                } else {
                    d = 0;
                    if (t[i] != 0)
                        d -= t[i] / p[i];
                    if (t[i] != 1)
                        d += ((T)1 - t[i]) / ((T)1 - p[i]);
                }
                if (fresh_p)
                    dp[i] = s * d;
                else
                    dp[i] += s * d;
            }
        }
        if (gt) {
            T *dt = gt->data;
            nb_grad_clear_fresh(c, 1);
            for (int64_t i = 0; i < n; i++)
                dt[i] += s * (log_q[i] - log_p[i]);
        }
    });
    return NB_OK;
}

/* ---- bce_logits_loss: scratch holds softplus(z), later sigmoid(z) ---- */

static int bce_logits_infer(nb_op_call *c)
{
    return bce_infer_common(c, "z", 1);
}

static int bce_logits_forward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *z = c->in[0]->data, *t = c->in[1]->data;
        T *softplus_z = c->scratch;
        NB_KERNEL(nb_vm_softplus, T)(n, z, softplus_z);
        double total = 0;
        for (int64_t i = 0; i < n; i++)
            total += (double)softplus_z[i] - (double)t[i] * (double)z[i];
        *(T *)c->out->data = (T)(total / (double)n);
    });
    return NB_OK;
}

static int bce_logits_backward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    nb_tensor *gz = c->in_grad[0], *gt = c->in_grad[1];
    NB_TYPED(c->out->dtype, {
        const T *z = c->in[0]->data, *t = c->in[1]->data;
        T s = (T)((double)*(const T *)c->out_grad->data / (double)n);
        if (gz) {
            /* sigmoid(z) takes over the scratch from forward's softplus(z),
             * which backward does not need. */
            T *sigmoid_z = c->scratch, *dz = gz->data;
            NB_KERNEL(nb_vm_sigmoid, T)(n, z, sigmoid_z);
            for (int64_t i = 0; i < n; i++)
                dz[i] += s * (sigmoid_z[i] - t[i]);
        }
        if (gt) {
            T *dt = gt->data;
            for (int64_t i = 0; i < n; i++)
                dt[i] -= s * z[i];
        }
    });
    return NB_OK;
}

const nb_op nb_op_bce_loss = {
    .struct_size = sizeof(nb_op),
    .name = "bce_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean -[t log p + (1-t) log(1-p)] (0 log 0 = 0); "
        "dp = (p - t)/(p (1-p))/n, dt = (log(1-p) - log p)/n",
    .infer = bce_infer,
    .forward = bce_forward,
    .backward = bce_backward,
    .flags = NB_OP_FRESH_GRADS,
};

const nb_op nb_op_bce_logits_loss = {
    .struct_size = sizeof(nb_op),
    .name = "bce_logits_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean softplus(z) - t z; dz = (sigmoid(z) - t)/n, dt = -z/n",
    .infer = bce_logits_infer,
    .forward = bce_logits_forward,
    .backward = bce_logits_backward,
};

nb_node *nb_bce_loss(nb_graph *g, nb_node *p, nb_node *t)
{
    nb_node *in[2] = {p, t};
    return nb_apply(g, &nb_op_bce_loss, 2, in, NULL);
}

nb_node *nb_bce_logits_loss(nb_graph *g, nb_node *z, nb_node *t)
{
    nb_node *in[2] = {z, t};
    return nb_apply(g, &nb_op_bce_logits_loss, 2, in, NULL);
}
