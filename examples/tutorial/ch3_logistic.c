/* Tutorial chapter 3: univariate logistic least squares with L2
 * regularisation, every delta by hand and by nabla's trace.
 *
 * The model and its loss, for one example (x, t):
 *
 *     z = w x + b,   y = sigma(z),   L = 1/2 (y - t)^2,
 *     R = 1/2 w^2,   Lreg = L + lambda R.
 *
 * Backward by hand, writing delta_v = dLreg/dv (the "bar" of the lecture
 * notes), from the output down:
 *
 *     delta_Lreg = 1
 *     delta_L    = delta_Lreg * 1                = 1
 *     delta_lamR = delta_Lreg * 1                = 1
 *     delta_R    = delta_lamR * lambda           = lambda
 *     delta_y    = delta_L * (y - t)
 *     delta_z    = delta_y * sigma'(z) = delta_y * y (1 - y)
 *     delta_b    = delta_z * 1
 *     delta_wx   = delta_z * 1
 *     delta_w    = delta_wx * x + delta_R * w    (two messages)
 *
 * w feeds two nodes (the product w x and the penalty R), so it receives
 * two messages and its delta is their sum. The program prints the traced
 * pass, a table of every delta computed both ways, and one gradient step;
 * it exits 1 if any nabla number disagrees with the hand formula.
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

static int failures;

static void expect(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
        fprintf(stderr, "ch3_logistic: %s = %.17g, hand formula gives %.17g\n",
                what, got, want);
        failures++;
    }
}

static void section(const char *key, const char *title)
{
    static int count;
    printf("%s== %s: %s\n", count++ ? "\n" : "", key, title);
}

static nb_node *named(nb_node *n, const char *name)
{
    if (n)
        nb_node_set_name(n, name);
    return n;
}

static nb_node *scalar_param(nb_graph *g, const char *name, double v)
{
    nb_node *p = nb_param(g, name, NB_F64, 0, NULL);
    if (p)
        nb_tensor_set(nb_node_value(p), 0, v);
    return p;
}

static double delta_of(const nb_trace *t, nb_node *n)
{
    return nb_tensor_get(nb_trace_grad(t, nb_trace_find(t, n)), 0);
}

int main(void)
{
    const double x = 2, t = 1, w0 = -0.5, b0 = 0.25, lambda = 0.1, eta = 0.5;

    nb_graph *g = nb_graph_new();
    nb_node *xn = nb_input(g, "x", NB_F64, 0, NULL);
    nb_node *tn = nb_input(g, "t", NB_F64, 0, NULL);
    nb_node *w = scalar_param(g, "w", w0);
    nb_node *b = scalar_param(g, "b", b0);
    nb_node *wx = named(nb_mul(g, w, xn), "wx");
    nb_node *z = named(nb_add(g, wx, b), "z");
    nb_node *y = named(nb_sigmoid(g, z), "y");
    nb_node *L = named(nb_sse_loss(g, y, tn), "L");
    nb_node *R = named(nb_l2_penalty(g, w), "R");
    nb_node *lamR = named(nb_scale(g, R, lambda), "lamR");
    nb_node *Lreg = named(nb_add(g, L, lamR), "Lreg");
    if (!Lreg || nb_feed_data(g, xn, &x) || nb_feed_data(g, tn, &t)) {
        fprintf(stderr, "ch3_logistic: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }

    section("setup", "one example, one unit, one penalty");
    printf("x = %g, t = %g, w = %g, b = %g, lambda = %g\n", x, t, w0, b0,
           lambda);
    printf("z = w x + b, y = sigma(z), L = 1/2 (y - t)^2, R = 1/2 w^2, "
           "Lreg = L + lambda R\n");

    nb_trace *tr = nb_trace_run(g, Lreg);
    if (!tr) {
        fprintf(stderr, "ch3_logistic: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    section("trace", "nabla's backward trace of Lreg");
    nb_trace_print(tr, stdout, 0);

    /* The forward pass and the deltas, by hand. */
    double zv = w0 * x + b0, yv = 1 / (1 + exp(-zv));
    double Lv = 0.5 * (yv - t) * (yv - t), Rv = 0.5 * w0 * w0;
    double Lregv = Lv + lambda * Rv;
    double dLreg = 1, dL = dLreg, dlamR = dLreg, dR = dlamR * lambda;
    double dy = dL * (yv - t), dz = dy * yv * (1 - yv);
    double db = dz, dwx = dz;
    double msg_wx = dwx * x, msg_R = dR * w0, dw = msg_wx + msg_R;

    section("deltas", "every delta by hand and from the trace");
    printf("forward by hand: z = w x + b = %.6g, y = sigma(z) = %.6g,\n"
           "                 L = %.6g, R = %.6g, Lreg = %.6g\n",
           zv, yv, Lv, Rv, Lregv);
    struct row {
        const char *name, *formula;
        nb_node *node;
        double hand;
    } rows[] = {
        {"Lreg", "1 (the seed)", Lreg, dLreg},
        {"L", "delta_Lreg * 1", L, dL},
        {"lamR", "delta_Lreg * 1", lamR, dlamR},
        {"R", "delta_lamR * lambda", R, dR},
        {"y", "delta_L * (y - t)", y, dy},
        {"z", "delta_y * y (1 - y)", z, dz},
        {"wx", "delta_z * 1", wx, dwx},
        {"b", "delta_z * 1", b, db},
        {"w", "delta_wx * x + delta_R * w", w, dw},
    };
    printf("%-6s %-28s %-12s %s\n", "node", "hand formula", "by hand",
           "nabla trace");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double traced = delta_of(tr, rows[i].node);
        printf("%-6s %-28s %-12.6g %.6g\n", rows[i].name, rows[i].formula,
               rows[i].hand, traced);
        expect(rows[i].name, traced, rows[i].hand);
    }
    printf("w's two messages: delta_wx * x = %.6g (from wx),\n"
           "                  delta_R * w  = %.6g (from R)\n",
           msg_wx, msg_R);

    int64_t iw = nb_trace_find(tr, w);
    if (nb_trace_in_count(tr, iw) != 2) {
        fprintf(stderr, "ch3_logistic: w should receive two messages\n");
        failures++;
    } else {
        expect("message wx -> w",
               nb_tensor_get(nb_trace_in_message(tr, iw, 0), 0), msg_wx);
        expect("message R -> w",
               nb_tensor_get(nb_trace_in_message(tr, iw, 1), 0), msg_R);
    }
    expect("Lreg",
           nb_tensor_get(nb_trace_value(tr, nb_trace_find(tr, Lreg)), 0),
           Lregv);
    expect("y", nb_tensor_get(nb_trace_value(tr, nb_trace_find(tr, y)), 0), yv);
    nb_trace_free(tr);

    /* What the deltas are for: a step against the gradient lowers Lreg. */
    section("step", "one gradient descent step, w -= eta delta_w, "
                    "b -= eta delta_b");
    nb_tensor_set(nb_node_value(w), 0, w0 - eta * dw);
    nb_tensor_set(nb_node_value(b), 0, b0 - eta * db);
    if (nb_forward(g, Lreg)) {
        fprintf(stderr, "ch3_logistic: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    double after = nb_tensor_get(nb_node_value(Lreg), 0);
    printf("eta = %g: w = %.6g, b = %.6g, Lreg %.6g -> %.6g\n", eta,
           w0 - eta * dw, b0 - eta * db, Lregv, after);
    if (!(after < Lregv)) {
        fprintf(stderr, "ch3_logistic: the step did not lower Lreg\n");
        failures++;
    }
    nb_graph_free(g);
    return failures ? 1 : 0;
}
