/* Backpropagation with per-sample updates, checked against the lecture
 * formulas.
 *
 * A d-H-K network of sigmoid units (here 3-4-2), for one sample x with
 * target t:
 *
 *   s_j = sum_i x_i w_ji + b_j      h_j = sigma(s_j)       (hidden)
 *   s_k = sum_j h_j w_kj + b_k      y_k = sigma(s_k)       (output)
 *   E   = 1/2 sum_k (y_k - t_k)^2
 *
 * Backpropagation writes dE/ds as the "delta" of each unit, with
 * sigma'(s) = sigma(s) (1 - sigma(s)):
 *
 *   delta_k = (y_k - t_k) sigma'(s_k)
 *   delta_j = sigma'(s_j) sum_k w_kj delta_k
 *   dE/dw_kj = delta_k h_j         dE/dw_ji = delta_j x_i
 *
 * nabla gets the same numbers by message passing on the graph: each s is
 * an op node on the path from the weights to E, so after nb_backward its
 * gradient, nb_node_grad(s), is dE/ds. The program prints both side by
 * side for one sample and checks they agree to 1e-12, then trains by
 * online gradient descent (one update per sample, samples in a fresh
 * random order each epoch) on the 8 binary inputs with targets
 * t = (majority(x1, x2, x3), x1 AND NOT x3). It exits 1 unless the deltas
 * agree, the mean error falls below a tenth of its start, and every output
 * rounds to its target.
 *
 *   build/examples/stochastic_backprop
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

#define D 3
#define H 4
#define K 2
#define EPOCHS 2000

static double dsigma(double y)
{
    return y * (1 - y); /* sigma'(s) written with y = sigma(s) */
}

static double get(nb_tensor *t, int64_t i)
{
    return nb_tensor_get(t, i);
}

/* Prints the hand-computed deltas next to nabla's dE/ds for the sample
 * currently fed; returns the largest difference. */
static double compare_deltas(const nb_mlp *m, const double *x, const double *t)
{
    nb_tensor *h = nb_node_value(m->hidden[0]);
    nb_tensor *y = nb_node_value(m->output);
    nb_tensor *w2 = nb_node_value(m->layer[1].W); /* [H, K]: w_kj at [j][k] */
    nb_tensor *ds1 = nb_node_grad(m->layer[0].out);
    nb_tensor *ds2 = nb_node_grad(m->logits);
    nb_tensor *dw1 = nb_node_grad(m->layer[0].W);
    nb_tensor *dw2 = nb_node_grad(m->layer[1].W);
    if (!ds1 || !ds2 || !dw1 || !dw2) {
        printf("a gradient is missing\n");
        return INFINITY;
    }
    double worst = 0, delta_k[K], delta_j[H];

    printf("sample x = (%g, %g, %g), t = (%g, %g)\n\n", x[0], x[1], x[2], t[0],
           t[1]);
    printf("output units  y_k       delta_k = (y_k-t_k) sigma'(s_k)   "
           "nabla dE/ds_k\n");
    for (int k = 0; k < K; k++) {
        double yk = get(y, k);
        delta_k[k] = (yk - t[k]) * dsigma(yk);
        worst = fmax(worst, fabs(delta_k[k] - get(ds2, k)));
        printf("  k = %d      %.6f  %+.15f             %+.15f\n", k + 1, yk,
               delta_k[k], get(ds2, k));
    }
    printf("\nhidden units  h_j       delta_j = sigma'(s_j) sum_k w_kj "
           "delta_k  nabla dE/ds_j\n");
    for (int j = 0; j < H; j++) {
        double hj = get(h, j), sum = 0;
        for (int k = 0; k < K; k++)
            sum += get(w2, j * K + k) * delta_k[k];
        delta_j[j] = dsigma(hj) * sum;
        worst = fmax(worst, fabs(delta_j[j] - get(ds1, j)));
        printf("  j = %d      %.6f  %+.15f             %+.15f\n", j + 1, hj,
               delta_j[j], get(ds1, j));
    }
    /* The weight gradients are outer products of inputs and deltas. */
    for (int j = 0; j < H; j++)
        for (int k = 0; k < K; k++)
            worst =
                fmax(worst, fabs(delta_k[k] * get(h, j) - get(dw2, j * K + k)));
    for (int i = 0; i < D; i++)
        for (int j = 0; j < H; j++)
            worst = fmax(worst, fabs(delta_j[j] * x[i] - get(dw1, i * H + j)));
    printf("\nlargest difference (deltas and dE/dw = delta * input): %.3g\n\n",
           worst);
    return worst;
}

static void sgd_step(const nb_mlp *m, double eta)
{
    for (int l = 0; l < m->n_layers; l++) {
        nb_node *p[2] = {m->layer[l].W, m->layer[l].b};
        for (int q = 0; q < 2; q++) {
            double *v = nb_tensor_f64(nb_node_value(p[q]));
            const double *gr = nb_tensor_cdata(nb_node_grad(p[q]));
            for (int64_t i = 0; i < nb_tensor_size(nb_node_value(p[q])); i++)
                v[i] -= eta * gr[i];
        }
    }
}

int main(void)
{
    double xs[8][D], ts[8][K];
    for (int n = 0; n < 8; n++) {
        int b1 = n >> 2 & 1, b2 = n >> 1 & 1, b3 = n & 1;
        xs[n][0] = b1;
        xs[n][1] = b2;
        xs[n][2] = b3;
        ts[n][0] = b1 + b2 + b3 >= 2;
        ts[n][1] = b1 && !b3;
    }

    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 1);
    nb_node *x = nb_input(g, "x", NB_F64, 2, (const int64_t[]){1, D});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (const int64_t[]){1, K});
    nb_mlp m;
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = (const int64_t[]){D, H, K},
                        .hidden = NB_ACT_SIGMOID,
                        .output = NB_ACT_SIGMOID,
                        .name = "net"};
    nb_node *loss = NULL;
    if (nb_mlp_build(g, x, &spec, &m) == NB_OK)
        loss = nb_sse_loss(g, m.output, t); /* 1/2 sum_k (y_k - t_k)^2 */
    if (!loss) {
        fprintf(stderr, "stochastic_backprop: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }

    /* One sample, one backward: the deltas by hand and by nabla. */
    const int probe = 6; /* x = (1, 1, 0), t = (1, 1) */
    nb_feed_data(g, x, xs[probe]);
    nb_feed_data(g, t, ts[probe]);
    if (nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK) {
        fprintf(stderr, "stochastic_backprop: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    double worst = compare_deltas(&m, xs[probe], ts[probe]);
    bool deltas_ok = worst <= 1e-12;

    /* Online training. */
    const double eta = 0.5;
    double first = 0, last = 0;
    int order[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    printf("online SGD, eta = %g, %d epochs of 8 samples\n", eta, EPOCHS);
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        for (int i = 7; i > 0; i--) { /* Fisher-Yates */
            int j = (int)nb_rng_below(g, i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double sum = 0;
        for (int i = 0; i < 8; i++) {
            int n = order[i];
            nb_feed_data(g, x, xs[n]);
            nb_feed_data(g, t, ts[n]);
            if (nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK) {
                fprintf(stderr, "stochastic_backprop: %s\n", nb_graph_error(g));
                nb_graph_free(g);
                return 1;
            }
            sum += nb_tensor_get(nb_node_value(loss), 0);
            sgd_step(&m, eta);
        }
        last = sum / 8;
        if (epoch == 1)
            first = last;
        if (epoch == 1 || epoch % 400 == 0)
            printf("  epoch %4d  mean E = %.6f\n", epoch, last);
    }

    printf("\n x1 x2 x3 | t1 t2 | y1     y2\n");
    int right = 0;
    for (int n = 0; n < 8; n++) {
        nb_feed_data(g, x, xs[n]);
        nb_forward(g, m.output);
        double y1 = get(nb_node_value(m.output), 0);
        double y2 = get(nb_node_value(m.output), 1);
        int ok =
            ((y1 > 0.5) == (ts[n][0] > 0.5)) + ((y2 > 0.5) == (ts[n][1] > 0.5));
        right += ok;
        printf("  %g  %g  %g |  %g  %g | %.4f %.4f%s\n", xs[n][0], xs[n][1],
               xs[n][2], ts[n][0], ts[n][1], y1, y2,
               ok == 2 ? "" : "  <- wrong");
    }
    bool loss_ok = last < 0.1 * first;
    printf("\ndeltas agree to %.3g (%s); mean E %.6f -> %.6f (%s); %d of 16 "
           "outputs right\n",
           worst, deltas_ok ? "ok" : "FAIL", first, last,
           loss_ok ? "ok" : "FAIL: not below a tenth", right);
    nb_graph_free(g);
    return deltas_ok && loss_ok && right == 16 ? 0 : 1;
}
