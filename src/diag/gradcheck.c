/* Gradient check by central differences:
 *   numeric = (f(x + h) - f(x - h)) / 2h,   error O(h^2),
 * compared element by element with the gradient backward computes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "nabla/gradcheck.h"

/* f = sum_i r_i y_i (r = NULL means the output is a scalar and f = y). */
static double project(const nb_tensor *y, const nb_tensor *r)
{
    if (!r)
        return nb_tensor_get(y, 0);
    double f = 0;
    for (int64_t i = 0; i < y->size; i++)
        f += nb_tensor_get(r, i) * nb_tensor_get(y, i);
    return f;
}

/* The state tensors on the path (running statistics) as they were before
 * the check: forward updates them as a side effect, and the check runs
 * forward many times. */
typedef struct saved_state {
    int64_t n;
    nb_node **nodes;
    nb_tensor **values;
} saved_state;

static void state_free(saved_state *s)
{
    for (int64_t i = 0; i < s->n; i++)
        nb_tensor_free(s->values[i]);
    nb_free(s->nodes);
    nb_free(s->values);
    memset(s, 0, sizeof *s);
}

static int state_save(nb_graph *g, saved_state *s)
{
    int64_t count = 0;
    for (int64_t k = 0; k < g->order_len; k++)
        count += g->order[k]->kind == NB_NODE_STATE;
    if (count == 0)
        return NB_OK;
    s->nodes = nb_alloc_zeroed((size_t)count * sizeof *s->nodes);
    s->values = nb_alloc_zeroed((size_t)count * sizeof *s->values);
    if (!s->nodes || !s->values)
        goto nomem;
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = g->order[k];
        if (n->kind != NB_NODE_STATE)
            continue;
        nb_tensor *t = nb_tensor_new(n->value.dtype, n->value.rank,
                                     n->value.shape);
        if (!t)
            goto nomem;
        memcpy(t->data, n->value.data, nb_tensor_bytes(t));
        s->nodes[s->n] = n;
        s->values[s->n++] = t;
    }
    return NB_OK;
nomem:
    state_free(s);
    return nb_set_error(g, NB_ERR_NOMEM, "gradcheck: out of memory");
}

static void state_restore(const saved_state *s)
{
    for (int64_t i = 0; i < s->n; i++)
        memcpy(s->nodes[i]->value.data, s->values[i]->data,
               nb_tensor_bytes(s->values[i]));
}

/* Evaluates f with the RNG rewound, so random ops draw the same numbers,
 * and the state restored, so each evaluation starts from the same state
 * (an op whose output read the state it updates would otherwise drift). */
static int evaluate(nb_graph *g, nb_node *out, const uint64_t rng[4],
                    const saved_state *st, const nb_tensor *r, double *f)
{
    nb_rng_set_state(g, rng);
    state_restore(st);
    int rc = nb_forward(g, out);
    if (rc == NB_OK)
        *f = project(&out->value, r);
    return rc;
}

/* Records one comparison; returns false if it violates the tolerance. */
static bool compare(nb_gradcheck_result *res, const nb_node *n, int64_t i,
                    double analytic, double numeric, double atol, double rtol,
                    double *worst_excess)
{
    double err = fabs(analytic - numeric);
    double scale = fmax(fabs(analytic), fabs(numeric));
    res->checked++;
    if (err > res->max_abs_err)
        res->max_abs_err = err;
    if (scale >= 1e-3 && err / scale > res->max_rel_err)
        res->max_rel_err = err / scale;
    double excess = err - (atol + rtol * fabs(numeric));
    bool ok = !(excess > 0) && isfinite(analytic) && isfinite(numeric);
    if (!ok && (isnan(excess) || excess > *worst_excess || !res->worst)) {
        *worst_excess = isnan(excess) ? INFINITY : excess;
        res->worst = n;
        res->worst_index = i;
        res->worst_analytic = analytic;
        res->worst_numeric = numeric;
    }
    return ok;
}

int nb_gradcheck(nb_graph *g, nb_node *output, const nb_gradcheck_options *opts,
                 nb_gradcheck_result *res)
{
    if (!g)
        return NB_ERR_ARG;
    if (!res)
        return nb_set_error(g, NB_ERR_ARG, "gradcheck: result is NULL");
    memset(res, 0, sizeof *res);
    if (!output)
        return g->status != NB_OK ? g->status
                                  : nb_set_error(g, NB_ERR_ARG,
                                                 "gradcheck: output is NULL");
    if (nb_node_owner(output) != g)
        return nb_set_error(g, NB_ERR_ARG,
                            "gradcheck: output belongs to another graph");
    nb_gradcheck_options o = opts ? *opts : (nb_gradcheck_options){0};
    bool f64 = output->value.dtype == NB_F64;
    double h = o.step > 0 ? o.step : (f64 ? 1e-6 : 1e-2);
    double atol = o.atol, rtol = o.rtol;
    if (atol == 0 && rtol == 0) {
        atol = f64 ? 1e-6 : 1e-2;
        rtol = f64 ? 1e-5 : 1e-2;
    }

    uint64_t rng[4];
    nb_rng_get_state(g, rng);
    saved_state st = {0};
    int rc = nb_plan(g, output);
    if (rc == NB_OK)
        rc = state_save(g, &st);
    if (rc != NB_OK)
        return rc;
    rc = nb_forward(g, output);
    if (rc != NB_OK) {
        state_restore(&st);
        state_free(&st);
        return rc;
    }

    /* Fixed projection weights for a non-scalar output, drawn from a
     * private generator so the graph's stream is untouched. */
    nb_tensor *r = NULL;
    if (output->value.size != 1) {
        r = nb_tensor_new(output->value.dtype, output->value.rank,
                          output->value.shape);
        if (!r) {
            rc = nb_set_error(g, NB_ERR_NOMEM, "gradcheck: out of memory");
            goto done;
        }
        uint64_t s = o.seed ? o.seed : 0x9e3779b97f4a7c15ull;
        for (int64_t i = 0; i < r->size; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            nb_tensor_set(r, i, (double)(s >> 11) * 0x1.0p-53 * 2.0 - 1.0);
        }
    }
    double f0;
    if ((rc = evaluate(g, output, rng, &st, r, &f0)) != NB_OK ||
        (rc = nb_backward_ex(g, output, r, 0)) != NB_OK)
        goto done;

    /* The leaves to perturb are those backward gave a gradient. Their
     * analytic gradients are copied, since every later forward may reuse
     * buffers. */
    nb_plan(g, output);
    double worst_excess = -INFINITY;
    bool all_ok = true;
    for (int64_t k = 0; k < g->order_len; k++) {
        nb_node *n = g->order[k];
        if (!n->needs_grad || n->kind == NB_NODE_OP)
            continue;
        nb_tensor *analytic = nb_tensor_new(n->grad.dtype, n->grad.rank,
                                            n->grad.shape);
        if (!analytic) {
            rc = nb_set_error(g, NB_ERR_NOMEM, "gradcheck: out of memory");
            goto done;
        }
        memcpy(analytic->data, n->grad.data, nb_tensor_bytes(&n->grad));
        bool analytic_zero = true, numeric_zero = true;
        for (int64_t i = 0; i < n->value.size; i++) {
            double x = nb_tensor_get(&n->value, i), fp, fm;
            nb_tensor_set(&n->value, i, x + h);
            rc = evaluate(g, output, rng, &st, r, &fp);
            nb_tensor_set(&n->value, i, x - h);
            if (rc == NB_OK)
                rc = evaluate(g, output, rng, &st, r, &fm);
            nb_tensor_set(&n->value, i, x);
            if (rc != NB_OK) {
                nb_tensor_free(analytic);
                goto done;
            }
            double numeric = (fp - fm) / (2 * h);
            double a = nb_tensor_get(analytic, i);
            analytic_zero = analytic_zero && a == 0;
            numeric_zero = numeric_zero && fabs(numeric) <= 10 * atol;
            all_ok &= compare(res, n, i, a, numeric, atol, rtol, &worst_excess);
        }
        nb_tensor_free(analytic);
        if (analytic_zero && !numeric_zero && !res->zero_gradient)
            res->zero_gradient = n;
    }
    res->passed = all_ok && !res->zero_gradient && res->checked > 0;
    if (res->zero_gradient)
        snprintf(res->message, sizeof res->message,
                 "gradcheck: FAILED: the analytic gradient of '%s' is all "
                 "zeros but the numeric one is not",
                 nb_node_name(res->zero_gradient));
    else if (res->checked == 0)
        snprintf(res->message, sizeof res->message,
                 "gradcheck: nothing to check: no trainable parameter or "
                 "grad-requiring input reaches '%s'",
                 nb_node_name(output));
    else if (res->worst)
        snprintf(res->message, sizeof res->message,
                 "gradcheck: FAILED at '%s'[%lld]: analytic %.10g, numeric "
                 "%.10g (%lld elements, max abs err %.3g, max rel err %.3g)",
                 nb_node_name(res->worst), (long long)res->worst_index,
                 res->worst_analytic, res->worst_numeric,
                 (long long)res->checked, res->max_abs_err, res->max_rel_err);
    else
        snprintf(res->message, sizeof res->message,
                 "gradcheck: passed, %lld elements, max abs err %.3g, max rel "
                 "err %.3g",
                 (long long)res->checked, res->max_abs_err, res->max_rel_err);
    /* Leave the graph holding the unperturbed values and gradients. */
    if ((rc = evaluate(g, output, rng, &st, r, &f0)) == NB_OK)
        rc = nb_backward_ex(g, output, r, 0);
done:
    if (rc != NB_OK)
        state_restore(&st);
    state_free(&st);
    nb_tensor_free(r);
    nb_rng_set_state(g, rng);
    return rc;
}
