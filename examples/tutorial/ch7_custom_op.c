/* Tutorial chapter 7: writing your own op and proving it with nb_gradcheck.
 *
 * The op is softsign, an activation shaped like tanh but with polynomial
 * tails:
 *
 *     y = x / (1 + |x|),        dy/dx = 1 / (1 + |x|)^2,
 *
 * so its backward adds dL/dx = dL/dy / (1 + |x|)^2 into the input's
 * gradient. An op is a const nb_op table (nabla/op.h): a shape rule
 * (infer), forward, backward and a doc line. Four tables share infer and
 * forward and differ only in backward:
 *
 *   correct     dx += dy / (1 + |x|)^2
 *   no-square   dx += dy / (1 + |x|)            the classic slip
 *   overwrite   dx  = dy / (1 + |x|)^2          '=' where '+=' belongs
 *   nothing     returns without touching dx
 *
 * Each is checked by central differences in two models, with x a batch of
 * inputs, W a trainable [3,2] matrix and t targets:
 *
 *   plain     L = 1/2 sum (softsign(x W) - t)^2
 *   residual  L = 1/2 sum (softsign(x W) + x W - t)^2
 *
 * In the residual model u = x W feeds two nodes, so its gradient is the
 * sum of two messages; an op that overwrites instead of adding erases the
 * other one. The plain model cannot see that bug: test ops where their
 * input fans out.
 *
 * Exits 1 unless the correct op passes both checks, every wrong one fails
 * where it should, and the traced message matches the hand derivative.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

static int failures;

static void section(const char *key, const char *title)
{
    static int count;
    printf("%s== %s: %s\n", count++ ? "\n" : "", key, title);
}

/* ---- the op ---- */

/* One input; the output has its shape and dtype. */
static int softsign_infer(nb_op_call *c)
{
    c->out_dtype = nb_tensor_dtype(c->in[0]);
    c->out_rank = nb_tensor_rank(c->in[0]);
    memcpy(c->out_shape, nb_tensor_shape(c->in[0]),
           (size_t)c->out_rank * sizeof c->out_shape[0]);
    return 0;
}

/* One loop for both dtypes: NB_TYPED (nabla/op.h) expands it once with T
 * float and once with T double, and the typed views hand out the inputs
 * as const arrays and the output as a writable one. */
static int softsign_forward(nb_op_call *c)
{
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *x = nb_tensor_cview(c->in[0]);
        T *y = nb_tensor_view(c->out);
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] / (1 + fabs(x[i]));
    });
    return 0;
}

/* in_grad[0] is NULL when the input needs no gradient. Backward must ADD
 * its message: the buffer may already hold messages from other consumers
 * of the same input. */
static int softsign_backward(nb_op_call *c)
{
    if (!c->in_grad[0])
        return 0;
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *x = nb_tensor_cview(c->in[0]);
        const T *dy = nb_tensor_cview(c->out_grad);
        T *dx = nb_tensor_view(c->in_grad[0]);
        for (int64_t i = 0; i < n; i++) {
            T d = 1 + fabs(x[i]);
            dx[i] += dy[i] / (d * d);
        }
    });
    return 0;
}

/* Wrong: forgets to square (1 + |x|). */
static int softsign_backward_no_square(nb_op_call *c)
{
    if (!c->in_grad[0])
        return 0;
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *x = nb_tensor_cview(c->in[0]);
        const T *dy = nb_tensor_cview(c->out_grad);
        T *dx = nb_tensor_view(c->in_grad[0]);
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] / (1 + fabs(x[i]));
    });
    return 0;
}

/* Wrong: overwrites the gradient instead of adding to it. */
static int softsign_backward_overwrite(nb_op_call *c)
{
    if (!c->in_grad[0])
        return 0;
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *x = nb_tensor_cview(c->in[0]);
        const T *dy = nb_tensor_cview(c->out_grad);
        T *dx = nb_tensor_view(c->in_grad[0]);
        for (int64_t i = 0; i < n; i++) {
            T d = 1 + fabs(x[i]);
            dx[i] = dy[i] / (d * d);
        }
    });
    return 0;
}

/* Wrong: sends nothing. */
static int softsign_backward_nothing(nb_op_call *c)
{
    (void)c;
    return 0;
}

#define SOFTSIGN_OP(backward_fn)                                               \
    {                                                                          \
        .struct_size = sizeof(nb_op), .name = "softsign",                      \
        .min_inputs = 1, .max_inputs = 1, .attr_size = 0,                      \
        .doc = "y = x / (1 + |x|); dx = dy / (1 + |x|)^2",                     \
        .infer = softsign_infer, .forward = softsign_forward,                  \
        .backward = backward_fn                                                \
    }

static const nb_op softsign_ops[4] = {
    SOFTSIGN_OP(softsign_backward),
    SOFTSIGN_OP(softsign_backward_no_square),
    SOFTSIGN_OP(softsign_backward_overwrite),
    SOFTSIGN_OP(softsign_backward_nothing),
};
static const char *const variant_name[4] = {"correct", "no-square", "overwrite",
                                            "nothing"};

static nb_node *softsign(nb_graph *g, const nb_op *op, nb_node *x)
{
    return nb_apply(g, op, 1, &x, NULL);
}

/* ---- a trace of the op ---- */

static int trace_demo(void)
{
    const double uv = 2;
    nb_graph *g = nb_graph_new();
    nb_node *u = nb_param(g, "u", NB_F64, 0, NULL);
    nb_node *y = softsign(g, &softsign_ops[0], u);
    if (!y) {
        fprintf(stderr, "ch7_custom_op: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    nb_node_set_name(y, "y");
    nb_tensor_set(nb_node_value(u), 0, uv);
    nb_trace *t = nb_trace_run(g, y);
    if (!t) {
        fprintf(stderr, "ch7_custom_op: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    section("trace", "the custom op in a trace, y = softsign(u) at u = 2");
    nb_trace_print(t, stdout, 0);
    /* By hand: y = 2/3, dy/du = 1/(1 + 2)^2 = 1/9. */
    printf("by hand: y = u / (1 + |u|) = 2/3 = %.6g,\n"
           "         dy/du = 1 / (1 + |u|)^2 = 1/9 = %.6g\n",
           uv / (1 + uv), 1 / ((1 + uv) * (1 + uv)));
    double got = nb_tensor_get(nb_trace_grad(t, nb_trace_find(t, u)), 0);
    if (fabs(got - 1.0 / 9) > 1e-15) {
        fprintf(stderr, "ch7_custom_op: dy/du = %.17g, want 1/9\n", got);
        failures++;
    }
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

/* ---- gradient checks ---- */

enum { ROWS = 4, IN = 3, OUT = 2 };

/* The f64 defaults, spelled out so that the output can show them: step h,
 * and an element passes when |analytic - numeric| <= atol + rtol
 * |numeric|. */
static const nb_gradcheck_options check_options = {
    .step = 1e-6, .atol = 1e-6, .rtol = 1e-5};

static void print_verdict(const char *variant, const char *model,
                          const nb_gradcheck_result *r);

/* Builds one model around one variant of the op, runs nb_gradcheck on it
 * and prints the verdict; returns NB_OK and fills r, or an error code.
 * r's node pointers die with the graph, so they are read here only and
 * cleared; *zero_trap keeps whether zero_gradient was set. */
static int check_variant(int v, bool residual, nb_gradcheck_result *r,
                         bool *zero_trap)
{
    const nb_op *op = &softsign_ops[v];
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 77);
    nb_node *x = nb_input(g, "x", NB_F64, 2, (int64_t[]){ROWS, IN});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (int64_t[]){ROWS, OUT});
    nb_node *W = nb_param(g, "W", NB_F64, 2, (int64_t[]){IN, OUT});
    nb_node *u = nb_matmul(g, x, W);
    nb_node *y = softsign(g, op, u);
    if (residual)
        y = nb_add(g, y, u);
    nb_node *L = nb_sse_loss(g, y, t);
    if (!L) {
        fprintf(stderr, "ch7_custom_op: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return NB_ERR_ARG;
    }
    double xs[ROWS * IN], ts[ROWS * OUT];
    for (int i = 0; i < ROWS * IN; i++)
        xs[i] = 2 * nb_rng_normal(g);
    for (int i = 0; i < ROWS * OUT; i++)
        ts[i] = nb_rng_uniform(g) - 0.5;
    for (int i = 0; i < IN * OUT; i++)
        nb_tensor_set(nb_node_value(W), i, nb_rng_normal(g));
    nb_feed_data(g, x, xs);
    nb_feed_data(g, t, ts);
    int rc = nb_gradcheck(g, L, &check_options, r);
    if (rc != NB_OK)
        fprintf(stderr, "ch7_custom_op: %s\n", nb_graph_error(g));
    else
        print_verdict(variant_name[v], residual ? "residual" : "plain", r);
    *zero_trap = r->zero_gradient != NULL;
    r->worst = r->zero_gradient = NULL;
    nb_graph_free(g);
    return rc;
}

/* One line of verdict. The numbers are rounded to 6 digits: the last
 * digits of a difference quotient are rounding noise. */
static void print_verdict(const char *variant, const char *model,
                          const nb_gradcheck_result *r)
{
    printf("%-10s %-9s ", variant, model);
    if (r->passed)
        printf("passed: %lld elements, max rel err below 1e-6\n",
               (long long)r->checked);
    else if (r->zero_gradient)
        printf("FAILED: the analytic gradient of '%s' is all zeros,\n"
               "%21sthe numeric one is not\n",
               nb_node_name(r->zero_gradient), "");
    else
        printf("FAILED at '%s'[%lld]: analytic %.6g, numeric %.6g\n",
               nb_node_name(r->worst), (long long)r->worst_index,
               r->worst_analytic, r->worst_numeric);
}

int main(void)
{
    if (trace_demo())
        return 1;

    section("gradcheck", "nb_gradcheck on every variant, in both models");
    printf("step h = %g, pass if |analytic - numeric| <= %g + %g "
           "|numeric|\n",
           check_options.step, check_options.atol, check_options.rtol);
    printf("%-10s %-9s %s\n", "variant", "model", "verdict");
    /* Which checks must pass: the correct op everywhere, and the overwrite
     * bug where nothing else writes into u's gradient. */
    static const bool must_pass[4][2] = {
        {true, true}, {false, false}, {true, false}, {false, false}};
    for (int v = 0; v < 4; v++)
        for (int residual = 0; residual < 2; residual++) {
            nb_gradcheck_result r;
            bool zero_trap;
            if (check_variant(v, residual, &r, &zero_trap) != NB_OK)
                return 1;
            bool ok = r.passed == must_pass[v][residual];
            if (r.passed && r.max_rel_err >= 1e-6)
                ok = false;
            /* The do-nothing backward in the plain model is exactly the
             * all-zeros trap the check names. */
            if (v == 3 && !residual && !zero_trap)
                ok = false;
            if (!ok) {
                fprintf(stderr, "ch7_custom_op: %s/%s: %s\n", variant_name[v],
                        residual ? "residual" : "plain", r.message);
                failures++;
            }
        }
    return failures ? 1 : 0;
}
