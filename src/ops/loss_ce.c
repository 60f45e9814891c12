/* Cross-entropy losses, row-wise. The last axis holds K classes; every
 * other axis counts rows (a rank-1 input is one row); each loss is the mean
 * over R rows of a per-row sum, and the output is a scalar. s = dL / R.
 *
 *   cce_loss(p, y)               L = 1/R sum_r -sum_k y_k log p_k
 *                                dp = -s y / p          dy = -s log p
 *   softmax_ce_loss(z, y)        q = softmax(z) per row, lse = log sum_k e^z_k
 *                                L = 1/R sum_r -sum_k y_k log q_k
 *                                  = 1/R sum_r sum_k y_k (lse - z_k)
 *                                dz = s (q sum_k y_k - y) dy = s (lse - z)
 *   softmax_ce_index_loss(z, c)  the same with y the one-hot row of label c:
 *                                L = 1/R sum_r lse - z_c
 *                                dz = s (q - onehot(c))   (no gradient to c)
 *   nll_loss(logp, c)            L = 1/R sum_r -logp_c
 *                                dlogp = -s onehot(c)     (no gradient to c)
 *
 * For one-hot (or any normalised) y the fused gradient is the textbook
 * s (q - y); the q sum_k y_k form is exact for soft targets that do not sum
 * to 1. The fused forms never take log of a softmax that underflowed: lse
 * comes from the row maximum, so logits of +-1000 stay finite. Rows of
 * logits holding +inf, or only -inf, get the limits of nb_softmax_lines
 * (op_util.h), the same as softmax and logsumexp: log q_k is z_k - lse
 * where lse is finite and log q_k where it is not.
 *
 * cce_loss takes 0 log 0 = 0: terms with y_k = 0 are skipped, so p_k = 0
 * there is harmless (and gives dp_k = 0).
 *
 * Labels are stored in the logits' dtype, one per row: shaped like the
 * logits without the class axis, or flat [R]. Each must be an integer in
 * [0, K); forward (and backward, which indexes with them) reject any other
 * value with the row it sits in.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   cce_loss: L = mean over rows of -sum_k y_k log p_k (0 log 0 = 0);
 *       dp = -y/p/rows, dy = -log p/rows
 *   softmax_ce_loss: L = mean over rows of -sum_k y_k log
 *       softmax(z)_k; dz = (softmax(z) sum_k y_k - y)/rows, dy = -log
 *       softmax(z)/rows
 *   softmax_ce_index_loss: L = mean over rows of -log
 *       softmax(z)_label; dz = (softmax(z) - onehot(label))/rows, no
 *       gradient to labels
 *   nll_loss: L = mean over rows of -logp_label; dlogp =
 *       -onehot(label)/rows, no gradient to labels
 */
#include <math.h>
#include <stdio.h>

#include "ops/op_util.h"

static int64_t class_count(const nb_tensor *x)
{
    return x->shape[x->rank - 1];
}

static int64_t row_count(const nb_tensor *x)
{
    return x->size / class_count(x);
}

/* Input 0 needs a class axis and at least one row of at least one class. */
static int require_rows(nb_op_call *c, const char *what)
{
    const nb_tensor *x = c->in[0];
    char sx[128];
    if (x->rank == 0)
        return nb_op_fail(c, "%s is a scalar: it needs a class axis (the last)",
                          what);
    if (x->size == 0)
        return nb_op_fail(c, "%s is %s: no rows or no classes to average over",
                          what, NB_SHAPE(x, sx));
    return NB_OK;
}

/* Shape rule of the losses whose targets are rows like the prediction. */
static int target_rows_infer(nb_op_call *c, const char *pred, const char *target,
                             size_t scratch_elements)
{
    int rc = nb_require_same_dtype(c);
    if (rc == NB_OK)
        rc = require_rows(c, pred);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *x = c->in[0], *y = c->in[1];
    char sx[128], sy[128];
    if (!nb_same_shape(x, y))
        return nb_op_fail(c, "shapes differ: %s is %s, %s is %s (no broadcasting)",
                          pred, NB_SHAPE(x, sx), target, NB_SHAPE(y, sy));
    nb_scalar_output(c);
    c->scratch_bytes = scratch_elements * nb_dtype_size(x->dtype);
    return NB_OK;
}

/* Shape rule of the losses given one class index per row. */
static int label_rows_infer(nb_op_call *c, const char *pred,
                            size_t scratch_elements)
{
    int rc = nb_require_same_dtype(c);
    if (rc == NB_OK)
        rc = require_rows(c, pred);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *x = c->in[0], *labels = c->in[1];
    int64_t rows = row_count(x);
    bool per_axis = labels->rank == x->rank - 1;
    for (int i = 0; per_axis && i < labels->rank; i++)
        per_axis = labels->shape[i] == x->shape[i];
    bool flat = labels->rank == 1 && labels->shape[0] == rows;
    if (!per_axis && !flat) {
        char sl[128], sx[128], want[128], rows_shape[40] = "";
        /* For 2-D logits both accepted shapes are [rows]: say it once. */
        if (x->rank > 2)
            snprintf(rows_shape, sizeof rows_shape, " or [%lld]",
                     (long long)rows);
        return nb_op_fail(c,
                          "labels are %s but %s is %s: give one label per row, "
                          "shaped %s%s",
                          NB_SHAPE(labels, sl), pred, NB_SHAPE(x, sx),
                          nb_shape_str(x->rank - 1, x->shape, want, sizeof want),
                          rows_shape);
    }
    nb_scalar_output(c);
    c->scratch_bytes = scratch_elements * nb_dtype_size(x->dtype);
    return NB_OK;
}

/* The class index held by a label value, or a failure naming its row. */
static int label_class(nb_op_call *c, double label, int64_t row, int64_t k,
                       int64_t *cls)
{
    *cls = 0;
    if (!(label >= 0 && label < (double)k && label == floor(label)))
        return nb_op_fail(c,
                          "label %g at row %lld is not an integer class in "
                          "[0, %lld)",
                          label, (long long)row, (long long)k);
    *cls = (int64_t)label;
    return NB_OK;
}

/* Softmax of every row of z into q (the first z->size elements of scratch)
 * and each row's log-sum-exp after it (row_count elements). */
static void softmax_rows(const nb_tensor *zt, void *scratch)
{
    nb_softmax_lines(zt, nb_rows_layout(zt), scratch,
                     (char *)scratch + nb_tensor_bytes(zt), NULL);
}

/* dL / R, the factor every row-wise message carries. */
static double row_scale(const nb_op_call *c)
{
    double dl = c->out->dtype == NB_F64 ? *(const double *)c->out_grad->data
                                        : (double)*(const float *)c->out_grad->data;
    return dl / (double)row_count(c->in[0]);
}

/* ---- cce_loss: scratch holds log p, kept for dy ---- */

static int cce_infer(nb_op_call *c)
{
    return target_rows_infer(c, "p", "y", (size_t)c->in[0]->size);
}

static int cce_forward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    NB_TYPED(c->out->dtype, {
        const T *p = c->in[0]->data, *y = c->in[1]->data;
        T *log_p = c->scratch;
        NB_KERNEL(nb_vm_log, T)(n, p, log_p);
        double total = 0;
        for (int64_t i = 0; i < n; i++)
            if (y[i] != 0)
                total -= (double)y[i] * (double)log_p[i];
        *(T *)c->out->data = (T)(total / (double)row_count(c->in[0]));
    });
    return NB_OK;
}

static int cce_backward(nb_op_call *c)
{
    int64_t n = c->in[0]->size;
    nb_tensor *gp = c->in_grad[0], *gy = c->in_grad[1];
    NB_TYPED(c->out->dtype, {
        const T *p = c->in[0]->data, *y = c->in[1]->data;
        const T *log_p = c->scratch;
        T s = (T)row_scale(c);
        if (gp) {
            T *dp = gp->data;
            for (int64_t i = 0; i < n; i++)
                if (y[i] != 0)
                    dp[i] -= s * y[i] / p[i];
        }
        if (gy) {
            T *dy = gy->data;
            for (int64_t i = 0; i < n; i++)
                dy[i] -= s * log_p[i];
        }
    });
    return NB_OK;
}

/* ---- softmax_ce_loss: scratch holds q = softmax(z), then lse per row ---- */

static int softmax_ce_infer(nb_op_call *c)
{
    const nb_tensor *z = c->in[0];
    size_t rows = z->rank > 0 && z->size > 0 ? (size_t)row_count(z) : 0;
    return target_rows_infer(c, "z", "y", (size_t)z->size + rows);
}

static int softmax_ce_forward(nb_op_call *c)
{
    const nb_tensor *zt = c->in[0];
    int64_t k = class_count(zt), rows = row_count(zt);
    softmax_rows(zt, c->scratch);
    NB_TYPED(c->out->dtype, {
        const T *z = zt->data, *y = c->in[1]->data;
        const T *q = c->scratch, *lse = q + zt->size;
        double total = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < k; j++) {
                int64_t i = r * k + j;
                if (y[i] != 0)
                    total -= (double)y[i] * NB_LOG_PROB(z[i], lse[r], q[i]);
            }
        *(T *)c->out->data = (T)(total / (double)rows);
    });
    return NB_OK;
}

static int softmax_ce_backward(nb_op_call *c)
{
    const nb_tensor *zt = c->in[0];
    int64_t k = class_count(zt), rows = row_count(zt);
    nb_tensor *gz = c->in_grad[0], *gy = c->in_grad[1];
    NB_TYPED(c->out->dtype, {
        const T *z = zt->data, *y = c->in[1]->data;
        const T *q = c->scratch, *lse = q + zt->size;
        T s = (T)row_scale(c);
        if (gz) {
            T *dz = gz->data;
            for (int64_t r = 0; r < rows; r++) {
                const T *yr = y + r * k, *qr = q + r * k;
                T y_total = 0;
                for (int64_t j = 0; j < k; j++)
                    y_total += yr[j];
                for (int64_t j = 0; j < k; j++)
                    dz[r * k + j] += s * (qr[j] * y_total - yr[j]);
            }
        }
        if (gy) {
            T *dy = gy->data;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < k; j++) {
                    int64_t i = r * k + j;
                    dy[i] -= s * (T)NB_LOG_PROB(z[i], lse[r], q[i]);
                }
        }
    });
    return NB_OK;
}

/* ---- softmax_ce_index_loss: scratch as softmax_ce_loss ---- */

static int softmax_ce_index_infer(nb_op_call *c)
{
    const nb_tensor *z = c->in[0];
    size_t rows = z->rank > 0 && z->size > 0 ? (size_t)row_count(z) : 0;
    return label_rows_infer(c, "z", (size_t)z->size + rows);
}

static int softmax_ce_index_forward(nb_op_call *c)
{
    const nb_tensor *zt = c->in[0];
    int64_t k = class_count(zt), rows = row_count(zt);
    NB_TYPED(c->out->dtype, {
        const T *z = zt->data, *labels = c->in[1]->data;
        /* Labels first: a bad one fails before any work is done. */
        for (int64_t r = 0; r < rows; r++) {
            int64_t cls;
            int rc = label_class(c, (double)labels[r], r, k, &cls);
            if (rc != NB_OK)
                return rc;
        }
        softmax_rows(zt, c->scratch);
        const T *q = c->scratch, *lse = q + zt->size;
        double total = 0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = r * k + (int64_t)labels[r];
            total -= NB_LOG_PROB(z[i], lse[r], q[i]);
        }
        *(T *)c->out->data = (T)(total / (double)rows);
    });
    return NB_OK;
}

static int softmax_ce_index_backward(nb_op_call *c)
{
    const nb_tensor *zt = c->in[0];
    int64_t k = class_count(zt), rows = row_count(zt);
    nb_tensor *gz = c->in_grad[0];
    if (!gz)
        return NB_OK; /* labels get no gradient */
    NB_TYPED(c->out->dtype, {
        const T *labels = c->in[1]->data, *q = c->scratch;
        T *dz = gz->data;
        T s = (T)row_scale(c);
        for (int64_t r = 0; r < rows; r++) {
            int64_t cls;
            int rc = label_class(c, (double)labels[r], r, k, &cls);
            if (rc != NB_OK)
                return rc;
            for (int64_t j = 0; j < k; j++)
                dz[r * k + j] += s * q[r * k + j];
            dz[r * k + cls] -= s;
        }
    });
    return NB_OK;
}

/* ---- nll_loss ---- */

static int nll_infer(nb_op_call *c)
{
    return label_rows_infer(c, "logp", 0);
}

static int nll_forward(nb_op_call *c)
{
    const nb_tensor *lt = c->in[0];
    int64_t k = class_count(lt), rows = row_count(lt);
    NB_TYPED(c->out->dtype, {
        const T *logp = lt->data, *labels = c->in[1]->data;
        double total = 0;
        for (int64_t r = 0; r < rows; r++) {
            int64_t cls;
            int rc = label_class(c, (double)labels[r], r, k, &cls);
            if (rc != NB_OK)
                return rc;
            total -= (double)logp[r * k + cls];
        }
        *(T *)c->out->data = (T)(total / (double)rows);
    });
    return NB_OK;
}

static int nll_backward(nb_op_call *c)
{
    const nb_tensor *lt = c->in[0];
    int64_t k = class_count(lt), rows = row_count(lt);
    nb_tensor *glogp = c->in_grad[0];
    if (!glogp)
        return NB_OK; /* labels get no gradient */
    NB_TYPED(c->out->dtype, {
        const T *labels = c->in[1]->data;
        T *dlogp = glogp->data;
        T s = (T)row_scale(c);
        for (int64_t r = 0; r < rows; r++) {
            int64_t cls;
            int rc = label_class(c, (double)labels[r], r, k, &cls);
            if (rc != NB_OK)
                return rc;
            dlogp[r * k + cls] -= s;
        }
    });
    return NB_OK;
}

const nb_op nb_op_cce_loss = {
    .struct_size = sizeof(nb_op),
    .name = "cce_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean over rows of -sum_k y_k log p_k (0 log 0 = 0); "
        "dp = -y/p/rows, dy = -log p/rows",
    .infer = cce_infer,
    .forward = cce_forward,
    .backward = cce_backward,
};

const nb_op nb_op_softmax_ce_loss = {
    .struct_size = sizeof(nb_op),
    .name = "softmax_ce_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean over rows of -sum_k y_k log softmax(z)_k; "
        "dz = (softmax(z) sum_k y_k - y)/rows, dy = -log softmax(z)/rows",
    .infer = softmax_ce_infer,
    .forward = softmax_ce_forward,
    .backward = softmax_ce_backward,
};

const nb_op nb_op_softmax_ce_index_loss = {
    .struct_size = sizeof(nb_op),
    .name = "softmax_ce_index_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean over rows of -log softmax(z)_label; "
        "dz = (softmax(z) - onehot(label))/rows, no gradient to labels",
    .infer = softmax_ce_index_infer,
    .forward = softmax_ce_index_forward,
    .backward = softmax_ce_index_backward,
};

const nb_op nb_op_nll_loss = {
    .struct_size = sizeof(nb_op),
    .name = "nll_loss",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "L = mean over rows of -logp_label; dlogp = -onehot(label)/rows, "
        "no gradient to labels",
    .infer = nll_infer,
    .forward = nll_forward,
    .backward = nll_backward,
};

nb_node *nb_cce_loss(nb_graph *g, nb_node *p, nb_node *y)
{
    nb_node *in[2] = {p, y};
    return nb_apply(g, &nb_op_cce_loss, 2, in, NULL);
}

nb_node *nb_softmax_ce_loss(nb_graph *g, nb_node *z, nb_node *y)
{
    nb_node *in[2] = {z, y};
    return nb_apply(g, &nb_op_softmax_ce_loss, 2, in, NULL);
}

nb_node *nb_softmax_ce_index_loss(nb_graph *g, nb_node *z, nb_node *labels)
{
    nb_node *in[2] = {z, labels};
    return nb_apply(g, &nb_op_softmax_ce_index_loss, 2, in, NULL);
}

nb_node *nb_nll_loss(nb_graph *g, nb_node *logp, nb_node *labels)
{
    nb_node *in[2] = {logp, labels};
    return nb_apply(g, &nb_op_nll_loss, 2, in, NULL);
}
