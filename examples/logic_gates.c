/* Logic gates from single sigmoid neurons, with hand-set weights.
 *
 * A sigmoid unit sigma(b + w . x) is close to 1 when b + w . x >> 0 and
 * close to 0 when it is << 0, so a large weight scale turns it into a
 * threshold gate. With inputs in {0, 1} (sigma(10) = 0.99995):
 *
 *   AND(x1, x2) = sigma(-30 + 20 x1 + 20 x2)   -30, -10, -10, +10
 *   OR(x1, x2)  = sigma(-10 + 20 x1 + 20 x2)   -10, +10, +10, +30
 *   NOT(x1)     = sigma( 10 - 20 x1)           +10, -10
 *
 * XNOR (1 when x1 == x2) is not linearly separable, so no single unit
 * computes it, but two layers of these gates do:
 *
 *   XNOR(x1, x2) = OR(AND(x1, x2), AND(NOT x1, NOT x2))
 *
 * Taken literally that is three layers (NOT, then AND, then OR). Because
 * NOT x is about 1 - x, the inner AND of the NOTs folds into one unit,
 * sigma(-30 + 20 (1 - x1) + 20 (1 - x2)) = sigma(10 - 20 x1 - 20 x2) (NOR),
 * and XNOR becomes a 2-2-1 network: hidden units AND and NOR, output OR.
 * The program builds both forms as nabla graphs (the two-layer one with
 * nb_mlp_build and hand-set weights), prints every truth table, and exits 1
 * unless every output rounds to the right bit.
 *
 *   build/examples/logic_gates
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

static const double inputs[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};

/* One sigmoid unit on the columns of x ([4, k]): sigma(x w + b). */
static nb_node *neuron(nb_graph *g, nb_node *x, int k, const double *w,
                       double b, const char *name)
{
    /* Gates used twice get their own parameters: "and1", "and2", ... */
    static int made;
    char unique[32];
    snprintf(unique, sizeof unique, "%s%d", name, ++made);
    nb_linear unit;
    nb_node *s = nb_linear_layer(g, x, 1, true, unique, NB_INIT_ZEROS,
                                 NB_ACT_SIGMOID, &unit);
    if (!s)
        return NULL;
    nb_tensor_copy_from_f64(nb_node_value(unit.W), w, k);
    nb_tensor_set(nb_node_value(unit.b), 0, b);
    return nb_sigmoid(g, s);
}

static nb_node *gate_and(nb_graph *g, nb_node *x2cols)
{
    return neuron(g, x2cols, 2, (const double[]){20, 20}, -30, "and");
}

static nb_node *gate_or(nb_graph *g, nb_node *x2cols)
{
    return neuron(g, x2cols, 2, (const double[]){20, 20}, -10, "or");
}

static nb_node *gate_not(nb_graph *g, nb_node *x1col)
{
    return neuron(g, x1col, 1, (const double[]){-20}, 10, "not");
}

static nb_node *columns(nb_graph *g, nb_node *a, nb_node *b)
{
    return nb_concat(g, 2, (nb_node *const[]){a, b}, 1);
}

/* Prints the truth table of `out` (evaluated on the four inputs) and
 * returns how many rows round to the expected bit. */
static int truth_table(nb_graph *g, nb_node *out, const char *title,
                       const int *expected, bool unary)
{
    if (nb_forward(g, out) != NB_OK) {
        fprintf(stderr, "logic_gates: %s\n", nb_graph_error(g));
        return 0;
    }
    printf("%s\n", title);
    printf(unary ? "  x1 | out      | bit\n" : "  x1 x2 | out      | bit\n");
    int right = 0;
    for (int i = 0; i < 4; i++) {
        if (unary && inputs[i][1] != 0)
            continue; /* NOT looks at x1 only: two rows are enough */
        double y = nb_tensor_get(nb_node_value(out), i);
        int bit = y >= 0.5;
        bool ok = bit == expected[i];
        right += ok;
        if (unary)
            printf("  %g  | %.6f | %d%s\n", inputs[i][0], y, bit,
                   ok ? "" : "  <- wrong");
        else
            printf("  %g  %g  | %.6f | %d%s\n", inputs[i][0], inputs[i][1], y,
                   bit, ok ? "" : "  <- wrong");
    }
    printf("\n");
    return right;
}

int main(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, (const int64_t[]){4, 2});
    nb_node *x1 = nb_slice(g, x, 1, 0, 1);
    nb_node *x2 = nb_slice(g, x, 1, 1, 2);

    nb_node *and_ = gate_and(g, x);
    nb_node *or_ = gate_or(g, x);
    nb_node *not_ = gate_not(g, x1);
    /* XNOR, literally: OR(AND(x1, x2), AND(NOT x1, NOT x2)). */
    nb_node *xnor3 = gate_or(
        g, columns(g, gate_and(g, x),
                   gate_and(g, columns(g, gate_not(g, x1), gate_not(g, x2)))));

    /* XNOR, folded into a 2-2-1 net: hidden AND and NOR, output OR. */
    nb_mlp net;
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = (const int64_t[]){2, 2, 1},
                        .hidden = NB_ACT_SIGMOID,
                        .output = NB_ACT_SIGMOID,
                        .init = NB_INIT_ZEROS,
                        .name = "xnor"};
    if (!xnor3 || nb_mlp_build(g, x, &spec, &net) != NB_OK) {
        fprintf(stderr, "logic_gates: building the graph failed: %s\n",
                nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    /* W1 columns: the AND unit (20, 20) and the NOR unit (-20, -20). */
    nb_tensor_copy_from_f64(nb_node_value(net.layer[0].W),
                            (const double[]){20, -20, 20, -20}, 4);
    nb_tensor_copy_from_f64(nb_node_value(net.layer[0].b),
                            (const double[]){-30, 10}, 2);
    nb_tensor_copy_from_f64(nb_node_value(net.layer[1].W),
                            (const double[]){20, 20}, 2);
    nb_tensor_set(nb_node_value(net.layer[1].b), 0, -10);

    if (nb_feed_data(g, x, inputs) != NB_OK) {
        fprintf(stderr, "logic_gates: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }

    int right = 0;
    right += truth_table(g, and_, "AND = sigma(-30 + 20 x1 + 20 x2)",
                         (const int[]){0, 0, 0, 1}, false);
    right += truth_table(g, or_, "OR = sigma(-10 + 20 x1 + 20 x2)",
                         (const int[]){0, 1, 1, 1}, false);
    right += truth_table(g, not_, "NOT = sigma(10 - 20 x1)",
                         (const int[]){1, 1, 0, 0}, true);
    right += truth_table(g, xnor3,
                         "XNOR = OR(AND(x1, x2), AND(NOT x1, NOT x2)), "
                         "three layers of gates",
                         (const int[]){1, 0, 0, 1}, false);
    right += truth_table(g, net.output,
                         "XNOR as a 2-2-1 network: hidden AND, NOR; output OR",
                         (const int[]){1, 0, 0, 1}, false);
    const int total = 4 + 4 + 2 + 4 + 4;

    /* The hidden layer of the folded net, to see the gates at work. */
    nb_forward(g, net.hidden[0]);
    printf("2-2-1 hidden units (AND, NOR) per input:\n");
    for (int i = 0; i < 4; i++)
        printf("  %g %g -> %.6f %.6f\n", inputs[i][0], inputs[i][1],
               nb_tensor_get(nb_node_value(net.hidden[0]), 2 * i),
               nb_tensor_get(nb_node_value(net.hidden[0]), 2 * i + 1));

    printf("\n%d of %d outputs round to the right bit\n", right, total);
    nb_graph_free(g);
    return right == total ? 0 : 1;
}
