/* The delta rule (Widrow & Hoff's LMS, 1960) fitting a line.
 *
 * A linear unit y = w x + b meets one sample (x, t) at a time and descends
 * the gradient of that sample's squared error E = 1/2 (y - t)^2:
 *
 *   dE/dw = (y - t) x     dE/db = y - t
 *   w <- w + eta (t - y) x        b <- b + eta (t - y)
 *
 * Here the gradients come from nabla's backward pass through the graph
 * y = x w + b, E = nb_sse_loss(y, t), and the program shows for the first
 * sample that they are the hand formula. The data are y = a x + b + noise
 * (x ~ U(-1, 1), noise ~ N(0, 0.1^2), both from the graph's RNG). After
 * training, the learned (w, b) is compared with the true (a, b) and with
 * the least-squares solution in closed form,
 *
 *   w* = sum (x - mx)(t - mt) / sum (x - mx)^2      b* = mt - w* mx,
 *
 * which the per-sample rule approaches as eta shrinks (it is the minimiser
 * of the summed error that each step descends a piece of). The program
 * exits 1 unless backward agreed with the hand formula and w and b end
 * within 0.1 of the truth and within 0.01 of the least-squares solution.
 *
 *   build/examples/delta_rule
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

#define N 200
#define EPOCHS 30

int main(void)
{
    const double true_a = 2.5, true_b = -1.0, noise = 0.1;
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 42);

    /* The data, drawn once from the graph's RNG. */
    double xs[N], ts[N];
    for (int i = 0; i < N; i++) {
        xs[i] = 2 * nb_rng_uniform(g) - 1;
        ts[i] = true_a * xs[i] + true_b + noise * nb_rng_normal(g);
    }

    nb_node *x = nb_input(g, "x", NB_F64, 2, (const int64_t[]){1, 1});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (const int64_t[]){1, 1});
    nb_linear unit;
    nb_node *y = nb_linear_layer(g, x, 1, true, "lms", NB_INIT_ZEROS,
                                 NB_ACT_LINEAR, &unit);
    nb_node *loss = nb_sse_loss(g, y, t); /* 1/2 (y - t)^2 */
    if (!loss) {
        fprintf(stderr, "delta_rule: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    double *w = nb_tensor_f64(nb_node_value(unit.W));
    double *b = nb_tensor_f64(nb_node_value(unit.b));
    w[0] = 0.5; /* any start will do; away from 0 so that the check below
                   compares nonzero numbers */

    printf("delta rule on y = %.2f x %+.2f + N(0, %.2f^2), %d samples\n\n",
           true_a, true_b, noise, N);
    double eta = 0.1;
    bool grad_ok = false;
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        double sse = 0;
        for (int i = 0; i < N; i++) {
            nb_feed_data(g, x, &xs[i]);
            nb_feed_data(g, t, &ts[i]);
            if (nb_forward(g, loss) != NB_OK || nb_backward(g, loss) != NB_OK) {
                fprintf(stderr, "delta_rule: %s\n", nb_graph_error(g));
                nb_graph_free(g);
                return 1;
            }
            double gw = nb_tensor_get(nb_node_grad(unit.W), 0);
            double gb = nb_tensor_get(nb_node_grad(unit.b), 0);
            if (epoch == 1 && i == 0) {
                double yv = nb_tensor_get(nb_node_value(y), 0);
                printf("first sample x = %.4f, t = %.4f, y = %.4f:\n"
                       "  backward: dE/dw = %.6f   dE/db = %.6f\n"
                       "  by hand:  (y-t) x = %.6f  y - t = %.6f\n\n",
                       xs[i], ts[i], yv, gw, gb, (yv - ts[i]) * xs[i],
                       yv - ts[i]);
                grad_ok = fabs(gw - (yv - ts[i]) * xs[i]) < 1e-12 &&
                          fabs(gb - (yv - ts[i])) < 1e-12;
            }
            sse += nb_tensor_get(nb_node_value(loss), 0);
            w[0] -= eta * gw; /* = w + eta (t - y) x */
            b[0] -= eta * gb;
        }
        if (epoch <= 3 || epoch % 10 == 0)
            printf("epoch %2d  eta %.4f  mean 1/2 (y-t)^2 = %.6f  w = %.4f  "
                   "b = %.4f\n",
                   epoch, eta, sse / N, w[0], b[0]);
        /* A shrinking step lets the estimate settle instead of jittering
         * by O(eta) around the least-squares point. */
        if (epoch % 5 == 0)
            eta *= 0.5;
    }

    double mx = 0, mt = 0, sxt = 0, sxx = 0;
    for (int i = 0; i < N; i++) {
        mx += xs[i] / N;
        mt += ts[i] / N;
    }
    for (int i = 0; i < N; i++) {
        sxt += (xs[i] - mx) * (ts[i] - mt);
        sxx += (xs[i] - mx) * (xs[i] - mx);
    }
    double ls_w = sxt / sxx, ls_b = mt - ls_w * mx;

    printf("\n              w         b\n");
    printf("true      %8.4f  %8.4f\n", true_a, true_b);
    printf("LS        %8.4f  %8.4f   (closed form)\n", ls_w, ls_b);
    printf("learned   %8.4f  %8.4f\n", w[0], b[0]);
    bool ok = grad_ok && fabs(w[0] - true_a) < 0.1 &&
              fabs(b[0] - true_b) < 0.1 && fabs(w[0] - ls_w) < 0.01 &&
              fabs(b[0] - ls_b) < 0.01;
    printf("\n%s\n", ok ? "learned line matches the truth and least squares"
                        : "learned line is NOT close enough");
    nb_graph_free(g);
    return ok ? 0 : 1;
}
