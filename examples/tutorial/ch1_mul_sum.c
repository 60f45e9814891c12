/* Tutorial chapter 1: the multiplication node and the summation node,
 * watched through nabla's backward trace.
 *
 * Three small graphs, each printed as a trace (forward value of every
 * node, every backward message) and checked against the chain rule done
 * by hand:
 *
 *   mul:    z = x y, L = z^2. The multiplication node receives
 *           delta_z = dL/dz = 2 z and sends delta_z * y to x and
 *           delta_z * x to y: output gradient times local gradient.
 *   fanout: a = x + y, L = a x. The summation node a copies its delta to
 *           both inputs (sum forward = fan-out backward); x is used twice
 *           (by a and by L), so it receives two messages and sums them
 *           (fan-out forward = sum backward): dL/dx = a + x = 2 x + y.
 *   square: q = x * x. One node using x in both input slots sends x two
 *           messages, delta_q x each; their sum 2 x delta_q is the power
 *           rule, recovered from the product rule and the fan-out sum.
 *
 *   build-dir/examples/tutorial/ch1_mul_sum [file.dot]
 *
 * With a file name, the fan-out trace is also written there as Graphviz
 * DOT, the messages on the edges (render: dot -Tsvg file.dot -o a.svg).
 * Exits 1 if any traced number disagrees with the hand formula.
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

static int failures;

/* Compares a number from nabla with the hand formula; complains on
 * stderr, so stdout stays exactly what the chapter quotes. */
static void expect(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
        fprintf(stderr, "ch1_mul_sum: %s = %.17g, hand formula gives %.17g\n",
                what, got, want);
        failures++;
    }
}

static nb_node *scalar_param(nb_graph *g, const char *name, double v)
{
    nb_node *p = nb_param(g, name, NB_F64, 0, NULL);
    if (p)
        nb_tensor_set(nb_node_value(p), 0, v);
    return p;
}

static double value(const nb_trace *t, nb_node *n)
{
    return nb_tensor_get(nb_trace_value(t, nb_trace_find(t, n)), 0);
}

static double delta(const nb_trace *t, nb_node *n)
{
    return nb_tensor_get(nb_trace_grad(t, nb_trace_find(t, n)), 0);
}

/* The k-th message node n received. */
static double received(const nb_trace *t, nb_node *n, int k)
{
    return nb_tensor_get(nb_trace_in_message(t, nb_trace_find(t, n), k), 0);
}

/* Builds nothing itself: runs the traced pass, prints it, and hands the
 * trace back (NULL after printing the graph's error). */
static nb_trace *run_and_print(nb_graph *g, nb_node *loss)
{
    nb_trace *t = loss ? nb_trace_run(g, loss) : NULL;
    if (!t) {
        fprintf(stderr, "ch1_mul_sum: %s\n", nb_graph_error(g));
        return NULL;
    }
    nb_trace_print(t, stdout, 0);
    return t;
}

static int mul_node(void)
{
    const double xv = 1.5, yv = -2;
    printf("== mul: the multiplication node, z = x y, L = z^2\n");
    nb_graph *g = nb_graph_new();
    nb_node *x = scalar_param(g, "x", xv);
    nb_node *y = scalar_param(g, "y", yv);
    nb_node *z = nb_mul(g, x, y);
    nb_node_set_name(z, "z");
    nb_node *L = nb_square(g, z);
    nb_node_set_name(L, "L");
    nb_trace *t = run_and_print(g, L);
    if (!t) {
        nb_graph_free(g);
        return 1;
    }
    /* By hand: z = x y, delta_z = dL/dz = 2 z, then the product rule. */
    double zv = xv * yv, dz = 2 * zv;
    printf("by hand: z = x y = %g, delta_z = 2 z = %g,\n"
           "         x receives delta_z * y = %g, y receives delta_z * x = "
           "%g\n",
           zv, dz, dz * yv, dz * xv);
    expect("z", value(t, z), zv);
    expect("delta_z", delta(t, z), dz);
    expect("message z -> x", received(t, x, 0), dz * yv);
    expect("message z -> y", received(t, y, 0), dz * xv);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

static int fanout(const char *dot_path)
{
    const double xv = 3, yv = 0.5;
    printf("\n== fanout: a = x + y, L = a x (x is used twice)\n");
    nb_graph *g = nb_graph_new();
    nb_node *x = scalar_param(g, "x", xv);
    nb_node *y = scalar_param(g, "y", yv);
    nb_node *a = nb_add(g, x, y);
    nb_node_set_name(a, "a");
    nb_node *L = nb_mul(g, a, x);
    nb_node_set_name(L, "L");
    nb_trace *t = run_and_print(g, L);
    if (!t) {
        nb_graph_free(g);
        return 1;
    }
    /* By hand: L = (x + y) x = x^2 + x y, so dL/dx = 2 x + y and
     * dL/dy = x. Node by node: L sends x to a and a to x; a copies its
     * delta (x) to x and to y; x sums a + x. */
    double av = xv + yv;
    printf("by hand: a = x + y = %g, L = a x = %g\n"
           "         L sends x = %g to a and a = %g to x\n"
           "         a copies its delta, %g, to x and to y\n"
           "         delta_x = %g + %g = %g = 2 x + y, delta_y = x = %g\n",
           av, av * xv, xv, av, xv, xv, av, xv + av, xv);
    expect("L", value(t, L), av * xv);
    expect("delta_a", delta(t, a), xv);
    if (nb_trace_in_count(t, nb_trace_find(t, x)) != 2) {
        fprintf(stderr, "ch1_mul_sum: x should receive two messages\n");
        failures++;
    }
    /* Senders come in forward order: a (made first), then L. */
    expect("message a -> x", received(t, x, 0), xv);
    expect("message L -> x", received(t, x, 1), av);
    expect("delta_x", delta(t, x), 2 * xv + yv);
    expect("delta_y", delta(t, y), xv);
    if (dot_path) {
        FILE *f = fopen(dot_path, "w");
        if (!f || nb_trace_write_dot(t, f, NB_DOT_VALUES | NB_DOT_GRADS) ||
            fclose(f)) {
            perror(dot_path);
            failures++;
        }
    }
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

static int square_by_mul(void)
{
    const double xv = 3;
    printf("\n== square: q = x * x (one node, x in both slots)\n");
    nb_graph *g = nb_graph_new();
    nb_node *x = scalar_param(g, "x", xv);
    nb_node *q = nb_mul(g, x, x);
    nb_node_set_name(q, "q");
    nb_trace *t = run_and_print(g, q);
    if (!t) {
        nb_graph_free(g);
        return 1;
    }
    printf("by hand: each slot sends delta_q * (the other factor) = 1 * %g;\n"
           "         delta_x = %g + %g = %g = 2 x, the power rule\n",
           xv, xv, xv, 2 * xv);
    expect("message slot 0", received(t, x, 0), xv);
    expect("message slot 1", received(t, x, 1), xv);
    expect("delta_x", delta(t, x), 2 * xv);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    if (mul_node() || fanout(argc > 1 ? argv[1] : NULL) || square_by_mul())
        return 1;
    return failures ? 1 : 0;
}
