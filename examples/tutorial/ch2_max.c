/* Tutorial chapter 2: the max node routes the gradient to its winner.
 *
 * For m = max_j v_j the local gradient dm/dv_j is 1 for the winning j and
 * 0 for every other j, so the max node sends its whole delta to the winner
 * and nothing to the losers. Where several entries tie, max has no
 * derivative; nabla's documented convention (ops.h, docs/ops.md) sends the
 * whole delta to the first winner: the lowest index of a reduction, the
 * first input of the binary maximum(a, b).
 *
 *   winner:  v = [0.5, 1.5, -1], m = max(v), L = m^2: v receives
 *            [0, 2m, 0]
 *   tie:     v = [1.5, 0.5, 1.5]: v receives [2m, 0, 0], first winner only
 *   maximum: m = maximum(a, b) elementwise, L = sum(m): each element's 1
 *            goes to a where a >= b and to b where b > a
 *   kink:    relu(x), maximum(x, 0) and maximum(0, x) are one function,
 *            but at x = 0 they pick different subgradients (0, 1, 0),
 *            while the central difference gives 1/2: a kink has no
 *            derivative, so a convention is needed and nabla states it.
 *
 * Exits 1 if nabla's numbers disagree with these rules.
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

static int failures;

static void expect(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
        fprintf(stderr, "ch2_max: %s = %.17g, hand formula gives %.17g\n", what,
                got, want);
        failures++;
    }
}

/* Opens a section of the output that the chapter quotes by its key. */
static void section(const char *key, const char *title)
{
    static int count;
    printf("%s== %s: %s\n", count++ ? "\n" : "", key, title);
}

static nb_node *vec_param(nb_graph *g, const char *name, int n, const double *v)
{
    nb_node *p = nb_param(g, name, NB_F64, 1, (int64_t[]){n});
    if (p)
        nb_tensor_copy_from_f64(nb_node_value(p), v, n);
    return p;
}

/* m = max(v), L = m^2 for a 3-vector v; prints the trace and checks that
 * v's gradient is 2m at the first index holding the maximum, 0 elsewhere. */
static int max_of(const char *key, const char *title, const double v[3])
{
    section(key, title);
    nb_graph *g = nb_graph_new();
    nb_node *vn = vec_param(g, "v", 3, v);
    nb_node *m = nb_max(g, vn);
    nb_node_set_name(m, "m");
    nb_node *L = nb_square(g, m);
    nb_node_set_name(L, "L");
    nb_trace *t = L ? nb_trace_run(g, L) : NULL;
    if (!t) {
        fprintf(stderr, "ch2_max: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    nb_trace_print(t, stdout, 0);

    int win = 0, winners = 1;
    for (int j = 1; j < 3; j++) {
        if (v[j] > v[win])
            win = j, winners = 1;
        else if (v[j] == v[win])
            winners++;
    }
    double mv = v[win], dm = 2 * mv;
    printf("by hand: m = v[%d] = %g (%s), delta_m = 2 m = %g;\n"
           "         v[%d] receives %g, the other entries 0\n",
           win, mv, winners > 1 ? "the first of the winners" : "the winner", dm,
           win, dm);
    const nb_tensor *dv = nb_trace_grad(t, nb_trace_find(t, vn));
    for (int j = 0; j < 3; j++)
        expect("dL/dv_j", nb_tensor_get(dv, j), j == win ? dm : 0);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

static int elementwise_maximum(void)
{
    const double a[3] = {1, 1, 0}, b[3] = {1, 1.5, -2};
    section("maximum", "m = maximum(a, b) elementwise, L = sum(m)");
    nb_graph *g = nb_graph_new();
    nb_node *an = vec_param(g, "a", 3, a);
    nb_node *bn = vec_param(g, "b", 3, b);
    nb_node *m = nb_maximum(g, an, bn);
    nb_node_set_name(m, "m");
    nb_node *L = nb_sum(g, m);
    nb_node_set_name(L, "L");
    nb_trace *t = L ? nb_trace_run(g, L) : NULL;
    if (!t) {
        fprintf(stderr, "ch2_max: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    nb_trace_print(t, stdout, 0);
    printf(
        "by hand: element 0 ties (1 = 1): its 1 goes to a, the first "
        "input;\n"
        "         element 1: b wins (1.5 > 1); element 2: a wins (0 > -2)\n");
    const nb_tensor *da = nb_trace_grad(t, nb_trace_find(t, an));
    const nb_tensor *db = nb_trace_grad(t, nb_trace_find(t, bn));
    for (int j = 0; j < 3; j++) {
        expect("dL/da_j", nb_tensor_get(da, j), a[j] >= b[j] ? 1 : 0);
        expect("dL/db_j", nb_tensor_get(db, j), b[j] > a[j] ? 1 : 0);
    }
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

/* dL/dx at x = 0 for L = one spelling of max(x, 0); also the central
 * difference (L(h) - L(-h)) / 2h computed by running the graph forward. */
enum spelling { RELU, MAX_X0, MAX_0X };

static int kink_gradient(enum spelling s, double *grad, double *central)
{
    const double h = 1e-6;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 0, NULL);
    nb_node *zero = nb_scalar(g, NULL, NB_F64, 0);
    nb_node *L = s == RELU     ? nb_relu(g, x)
                 : s == MAX_X0 ? nb_maximum(g, x, zero)
                               : nb_maximum(g, zero, x);
    int rc = L ? NB_OK : NB_ERR_ARG;
    double f[2] = {0, 0};
    for (int k = 0; k < 2 && rc == NB_OK; k++) {
        nb_tensor_set(nb_node_value(x), 0, k ? -h : h);
        rc = nb_forward(g, L);
        f[k] = nb_tensor_get(nb_node_value(L), 0);
    }
    nb_tensor_set(nb_node_value(x), 0, 0);
    if (rc == NB_OK)
        rc = nb_forward(g, L);
    if (rc == NB_OK)
        rc = nb_backward(g, L);
    if (rc != NB_OK) {
        fprintf(stderr, "ch2_max: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    *grad = nb_tensor_get(nb_node_grad(x), 0);
    *central = (f[0] - f[1]) / (2 * h);
    nb_graph_free(g);
    return 0;
}

static int kink(void)
{
    static const char *const names[3] = {"relu(x)", "maximum(x, 0)",
                                         "maximum(0, x)"};
    /* relu'(0) = 0 by convention; maximum's tie goes to its first input. */
    static const double rule[3] = {0, 1, 0};
    section("kink", "three spellings of max(x, 0), differentiated at x = 0");
    printf("%-15s %-14s %s\n", "spelling", "nabla dL/dx", "central difference");
    for (int s = 0; s < 3; s++) {
        double grad, central;
        if (kink_gradient((enum spelling)s, &grad, &central))
            return 1;
        printf("%-15s %-14g %g\n", names[s], grad, central);
        expect(names[s], grad, rule[s]);
        /* (h - 0) / 2h: the average of the slopes 0 and 1. */
        expect("central difference", central, 0.5);
    }
    return 0;
}

int main(void)
{
    if (max_of("winner", "m = max(v), L = m^2, one clear winner",
               (double[]){0.5, 1.5, -1}) ||
        max_of("tie", "the same with a tie, v = [1.5, 0.5, 1.5]",
               (double[]){1.5, 0.5, 1.5}) ||
        elementwise_maximum() || kink())
        return 1;
    return failures ? 1 : 0;
}
