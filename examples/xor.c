/* XOR learned by backpropagation: a 2-H-1 network with a sigmoid output
 * unit, trained by full-batch gradient descent on the squared error
 * 1/2 sum (y - t)^2, once with sigmoid hidden units and once with ReLU
 * hidden units.
 *
 * XOR is the classic function a single neuron cannot represent (it is not
 * linearly separable); one hidden layer is enough. The program builds each
 * network as a graph of nabla ops (nb_mlp_build: s1 = x W1 + b1,
 * h = act(s1), y = sigmoid(h W2 + b2)), initialises it at random, trains
 * it, prints the truth table and exits with status 1 unless all four cases
 * come out right for both kinds of hidden unit.
 *
 * Initialisation follows the unit: Glorot's U(-a, a), a = sqrt(6 / (fan_in
 * + fan_out)), keeps sigmoid units out of saturation; He's a = sqrt(6 /
 * fan_in) keeps the ReLU units' signal from shrinking. A ReLU unit whose
 * input is negative on all four cases gets no gradient and stays dead, so
 * the ReLU net gets more hidden units than XOR strictly needs (2) to keep
 * enough of them alive from any seed. With the defaults below, seeds 1..500
 * all succeed for sigmoid (2-4-1) and 498 of 500 for ReLU (2-16-1); the two
 * failures are the squared error's own trap: the output unit saturates on
 * a wrong answer (y = 1.0000 for t = 0) where its gradient
 * (y - t) y (1 - y) vanishes. The cross-entropy of nb_mlp_loss, whose
 * gradient on the logit is y - t, does not stall there.
 *
 *   build/examples/xor [--sigmoid | --relu] [hidden_units] [epochs] [seed]
 *
 * With no option both variants run; the numbers, when given, apply to
 * whichever run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static const double inputs[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
static const double targets[4] = {0, 1, 1, 0};

static void sgd_step(const nb_mlp *m, double lr)
{
    for (int l = 0; l < m->n_layers; l++) {
        nb_node *params[2] = {m->layer[l].W, m->layer[l].b};
        for (int p = 0; p < 2; p++) {
            nb_tensor *w = nb_node_value(params[p]);
            double *wd = nb_tensor_f64(w);
            const double *gd = nb_tensor_cdata(nb_node_grad(params[p]));
            for (int64_t i = 0; i < nb_tensor_size(w); i++)
                wd[i] -= lr * gd[i];
        }
    }
}

/* Trains one variant and prints its progress and truth table; returns the
 * number of cases it gets right, or -1 if the graph failed. */
static int run(nb_activation hidden_act, int hidden, int epochs,
               unsigned long seed, double lr)
{
    printf("== %s hidden units: 2-%d-1, lr %g, %d epochs, seed %lu\n",
           nb_activation_name(hidden_act), hidden, lr, epochs, seed);
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, seed);
    nb_node *x = nb_input(g, "x", NB_F64, 2, (int64_t[]){NB_DYNAMIC, 2});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (int64_t[]){NB_DYNAMIC, 1});
    nb_mlp net;
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = (const int64_t[]){2, hidden, 1},
                        .hidden = hidden_act,
                        .output = NB_ACT_SIGMOID,
                        .init = NB_INIT_DEFAULT}; /* Glorot or He, above */
    nb_node *loss = NULL;
    if (nb_mlp_build(g, x, &spec, &net) == NB_OK)
        loss = nb_sse_loss(g, net.output, t);
    if (!loss) {
        fprintf(stderr, "xor: building the graph failed: %s\n",
                nb_graph_error(g));
        nb_graph_free(g);
        return -1;
    }
    nb_feed(g, x, 2, (int64_t[]){4, 2}, inputs);
    nb_feed(g, t, 2, (int64_t[]){4, 1}, targets);

    double final_loss = 0;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        if (nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK) {
            fprintf(stderr, "xor: %s\n", nb_graph_error(g));
            nb_graph_free(g);
            return -1;
        }
        final_loss = nb_tensor_get(nb_node_value(loss), 0);
        if (epoch == 1 || epoch % (epochs / 5 > 0 ? epochs / 5 : 1) == 0)
            printf("epoch %5d  loss %.6f\n", epoch, final_loss);
        sgd_step(&net, lr);
    }

    nb_forward(g, net.output);
    int correct = 0;
    printf("\n x1 x2 | target | output\n");
    for (int i = 0; i < 4; i++) {
        double out = nb_tensor_get(nb_node_value(net.output), i);
        int predicted = out > 0.5;
        correct += predicted == (int)targets[i];
        printf("  %g  %g |   %g    | %.4f %s\n", inputs[i][0], inputs[i][1],
               targets[i], out,
               predicted == (int)targets[i] ? "" : "  <- wrong");
    }
    printf("\n%d of 4 correct after %d epochs (loss %.6f)\n\n", correct, epochs,
           final_loss);
    nb_graph_free(g);
    return correct;
}

int main(int argc, char **argv)
{
    bool sigmoid = true, relu = true;
    int a = 1;
    if (a < argc && strcmp(argv[a], "--sigmoid") == 0) {
        relu = false;
        a++;
    } else if (a < argc && strcmp(argv[a], "--relu") == 0) {
        sigmoid = false;
        a++;
    }
    int hidden = a < argc ? atoi(argv[a]) : 0;
    int epochs = a + 1 < argc ? atoi(argv[a + 1]) : 0;
    unsigned long seed = a + 2 < argc ? strtoul(argv[a + 2], NULL, 10) : 1;
    if ((a < argc && hidden < 1) || (a + 1 < argc && epochs < 1) ||
        a + 3 < argc) {
        fprintf(stderr, "usage: xor [--sigmoid | --relu] [hidden_units >= 1] "
                        "[epochs >= 1] [seed]\n");
        return 2;
    }

    int sig_right = 4, relu_right = 4;
    if (sigmoid)
        sig_right = run(NB_ACT_SIGMOID, hidden ? hidden : 4,
                        epochs ? epochs : 5000, seed, 2.0);
    if (relu)
        relu_right = run(NB_ACT_RELU, hidden ? hidden : 16,
                         epochs ? epochs : 2000, seed, 0.5);
    if (sigmoid && relu)
        printf("sigmoid: %d of 4, relu: %d of 4\n", sig_right, relu_right);
    return sig_right == 4 && relu_right == 4 ? 0 : 1;
}
