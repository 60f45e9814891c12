/* XOR learned by backpropagation: a 2-4-1 network of sigmoid units trained
 * by full-batch gradient descent on the squared error 1/2 sum (y - t)^2.
 *
 * XOR is the classic function a single neuron cannot represent (it is not
 * linearly separable); one hidden layer is enough. The program builds the
 * network as a graph of nabla ops, trains it, prints the truth table and
 * exits with status 1 unless all four cases come out right.
 *
 *   build/examples/xor [hidden_units] [epochs] [seed]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla/nabla.h"

/* Uniform(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out)):
 * Glorot's initialisation keeps sigmoid units out of saturation. */
static void init_uniform(nb_graph *g, nb_node *w, double fan_in, double fan_out)
{
    double limit = sqrt(6.0 / (fan_in + fan_out));
    nb_tensor *t = nb_node_value(w);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, limit * (2 * nb_rng_uniform(g) - 1));
}

static void sgd_step(nb_node *const *params, int n, double lr)
{
    for (int p = 0; p < n; p++) {
        nb_tensor *w = nb_node_value(params[p]);
        const nb_tensor *dw = nb_node_grad(params[p]);
        double *wd = nb_tensor_f64(w);
        const double *gd = nb_tensor_cdata(dw);
        for (int64_t i = 0; i < nb_tensor_size(w); i++)
            wd[i] -= lr * gd[i];
    }
}

int main(int argc, char **argv)
{
    int hidden = argc > 1 ? atoi(argv[1]) : 4;
    int epochs = argc > 2 ? atoi(argv[2]) : 5000;
    unsigned long seed = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
    if (hidden < 1 || epochs < 1) {
        fprintf(stderr, "usage: xor [hidden_units >= 1] [epochs >= 1] [seed]\n");
        return 2;
    }

    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, seed);
    nb_node *x = nb_input(g, "x", NB_F64, 2, (int64_t[]){NB_DYNAMIC, 2});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (int64_t[]){NB_DYNAMIC, 1});
    nb_node *w1 = nb_param(g, "W1", NB_F64, 2, (int64_t[]){2, hidden});
    nb_node *b1 = nb_param(g, "b1", NB_F64, 1, (int64_t[]){hidden});
    nb_node *w2 = nb_param(g, "W2", NB_F64, 2, (int64_t[]){hidden, 1});
    nb_node *b2 = nb_param(g, "b2", NB_F64, 1, (int64_t[]){1});
    nb_node *h = nb_sigmoid(g, nb_add(g, nb_matmul(g, x, w1), b1));
    nb_node *y = nb_sigmoid(g, nb_add(g, nb_matmul(g, h, w2), b2));
    nb_node *loss = nb_sse_loss(g, y, t);
    if (!loss) {
        fprintf(stderr, "xor: building the graph failed: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    init_uniform(g, w1, 2, hidden);
    init_uniform(g, w2, hidden, 1);

    const double inputs[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    const double targets[4] = {0, 1, 1, 0};
    nb_feed(g, x, 2, (int64_t[]){4, 2}, inputs);
    nb_feed(g, t, 2, (int64_t[]){4, 1}, targets);

    nb_node *params[] = {w1, b1, w2, b2};
    const double lr = 2.0;
    double final_loss = 0;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        if (nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK) {
            fprintf(stderr, "xor: %s\n", nb_graph_error(g));
            nb_graph_free(g);
            return 1;
        }
        final_loss = nb_tensor_get(nb_node_value(loss), 0);
        if (epoch == 1 || epoch % (epochs / 5 > 0 ? epochs / 5 : 1) == 0)
            printf("epoch %5d  loss %.6f\n", epoch, final_loss);
        sgd_step(params, 4, lr);
    }

    nb_forward(g, y);
    int correct = 0;
    printf("\n x1 x2 | target | output\n");
    for (int i = 0; i < 4; i++) {
        double out = nb_tensor_get(nb_node_value(y), i);
        int predicted = out > 0.5;
        correct += predicted == (int)targets[i];
        printf("  %g  %g |   %g    | %.4f %s\n", inputs[i][0], inputs[i][1],
               targets[i], out, predicted == (int)targets[i] ? "" : "  <- wrong");
    }
    printf("\n%d of 4 correct after %d epochs (loss %.6f)\n", correct, epochs,
           final_loss);
    nb_graph_free(g);
    return correct == 4 ? 0 : 1;
}
