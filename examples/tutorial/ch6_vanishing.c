/* Tutorial chapter 6: vanishing gradients in a deep net, sigmoid vs tanh
 * vs ReLU.
 *
 * A stack of DEPTH fully connected layers of WIDTH units,
 *
 *     s_l = h_{l-1} W_l + b_l,   h_l = f(s_l),   h_0 = x,
 *     L = 1/2 sum (h_DEPTH - t)^2,
 *
 * on a batch of BATCH random inputs. The hidden-layer delta of chapter 4,
 * delta_l = f'(s_l) * (delta_{l+1} W_{l+1}^T), is multiplied by f'(s) once
 * per layer on its way down, and dL/dW_l = h_{l-1}^T delta_l. With
 * sigmoid, f' <= 1/4 everywhere, so the deltas shrink layer after layer;
 * tanh has f'(0) = 1 and shrinks much less; ReLU has f' = 1 on its active
 * units and 0 on the others (about half of them), which He's
 * initialisation (twice the variance) makes up for.
 *
 * Initialisation: W_l ~ N(0, 1/WIDTH) (LeCun) for sigmoid and tanh,
 * N(0, 2/WIDTH) (He) for ReLU, b_l = 0; inputs x ~ N(0, 1), targets
 * t ~ U(0, 1). Every net draws the same normal numbers from the same seed
 * and scales them.
 *
 * The program prints ||dL/dW_l|| (Frobenius norm) for every layer and
 * activation, the ratio of layer 1's norm to layer 16's, the geometric mean
 * factor per layer, ratio^(1/15), and the mean slope f'(s) over all units.
 * Every norm is checked against a plain-C forward and backward pass
 * written from the formulas above. Exits 1 on disagreement or if the
 * qualitative picture (sigmoid vanishes, tanh and ReLU do not) fails.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

enum { DEPTH = 16, WIDTH = 32, BATCH = 16 };
enum act { SIGMOID, TANH, RELU, N_ACTS };
static const char *const act_name[N_ACTS] = {"sigmoid", "tanh", "relu"};

static int failures;

/* Opens a section of the output that the chapter quotes by its key; the
 * title is printf-style, so that the sizes in it follow the constants. */
static void section(const char *key, const char *title_fmt, ...)
{
    static int count;
    va_list ap;
    va_start(ap, title_fmt);
    printf("%s== %s: ", count++ ? "\n" : "", key);
    vprintf(title_fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The shared random numbers: weights (standard normal, scaled per net),
 * inputs and targets. */
typedef struct draws {
    double w[DEPTH][WIDTH * WIDTH];
    double x[BATCH * WIDTH], t[BATCH * WIDTH];
} draws;

static double init_scale(enum act a)
{
    return sqrt((a == RELU ? 2.0 : 1.0) / WIDTH);
}

/* ---- the plain-C replica ---- */

static double act_f(enum act a, double s)
{
    if (a == SIGMOID)
        return 1 / (1 + exp(-s));
    return a == TANH ? tanh(s) : s > 0 ? s : 0;
}

/* f'(s) from the output h = f(s) (and s for ReLU's kink: f'(0) = 0). */
static double act_df(enum act a, double s, double h)
{
    if (a == SIGMOID)
        return h * (1 - h);
    return a == TANH ? 1 - h * h : s > 0 ? 1 : 0;
}

/* norms[l] = ||dL/dW_{l+1}||; *slope = the mean of f'(s) over every unit
 * of every layer and sample. */
static int hand_norms(enum act a, const draws *d, double norms[DEPTH],
                      double *slope)
{
    const double c = init_scale(a);
    /* h[l] is h_l (h[0] = x); s[l] is s_l for l >= 1. */
    double(*h)[BATCH * WIDTH] =
        malloc(sizeof(double[DEPTH + 1][BATCH * WIDTH]));
    double(*s)[BATCH * WIDTH] =
        malloc(sizeof(double[DEPTH + 1][BATCH * WIDTH]));
    double *delta = malloc(sizeof(double[BATCH * WIDTH]));
    double *below = malloc(sizeof(double[BATCH * WIDTH]));
    if (!h || !s || !delta || !below) {
        free(h), free(s), free(delta), free(below);
        return 1;
    }
    memcpy(h[0], d->x, sizeof h[0]);
    for (int l = 1; l <= DEPTH; l++)
        for (int n = 0; n < BATCH; n++)
            for (int j = 0; j < WIDTH; j++) {
                double acc = 0;
                for (int i = 0; i < WIDTH; i++)
                    acc += h[l - 1][n * WIDTH + i] * c *
                           d->w[l - 1][i * WIDTH + j];
                s[l][n * WIDTH + j] = acc;
                h[l][n * WIDTH + j] = act_f(a, acc);
            }
    /* dL/dh_DEPTH = h_DEPTH - t; then delta_l = f'(s_l) * dL/dh_l. */
    for (int k = 0; k < BATCH * WIDTH; k++)
        below[k] = h[DEPTH][k] - d->t[k];
    double slopes = 0;
    for (int l = DEPTH; l >= 1; l--) {
        for (int k = 0; k < BATCH * WIDTH; k++) {
            double df = act_df(a, s[l][k], h[l][k]);
            slopes += df;
            delta[k] = df * below[k];
        }
        double sq = 0;
        for (int i = 0; i < WIDTH; i++)
            for (int j = 0; j < WIDTH; j++) {
                double gw = 0;
                for (int n = 0; n < BATCH; n++)
                    gw += h[l - 1][n * WIDTH + i] * delta[n * WIDTH + j];
                sq += gw * gw;
            }
        norms[l - 1] = sqrt(sq);
        /* dL/dh_{l-1} = delta_l W_l^T */
        for (int n = 0; n < BATCH; n++)
            for (int i = 0; i < WIDTH; i++) {
                double acc = 0;
                for (int j = 0; j < WIDTH; j++)
                    acc +=
                        delta[n * WIDTH + j] * c * d->w[l - 1][i * WIDTH + j];
                below[n * WIDTH + i] = acc;
            }
    }
    *slope = slopes / (DEPTH * BATCH * WIDTH);
    free(h), free(s), free(delta), free(below);
    return 0;
}

/* ---- the nabla net ---- */

static double frobenius(const nb_tensor *t)
{
    double sq = 0;
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        sq += nb_tensor_get(t, i) * nb_tensor_get(t, i);
    return sqrt(sq);
}

static int nabla_norms(enum act a, const draws *d, double norms[DEPTH])
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, (int64_t[]){BATCH, WIDTH});
    nb_node *t = nb_input(g, "t", NB_F64, 2, (int64_t[]){BATCH, WIDTH});
    nb_node *W[DEPTH], *h = x;
    const double c = init_scale(a);
    for (int l = 0; l < DEPTH; l++) {
        char name[16];
        snprintf(name, sizeof name, "W%d", l + 1);
        W[l] = nb_param(g, name, NB_F64, 2, (int64_t[]){WIDTH, WIDTH});
        nb_node *b = nb_param(g, "b", NB_F64, 1, (int64_t[]){WIDTH});
        nb_node *s = nb_add(g, nb_matmul(g, h, W[l]), b);
        h = a == SIGMOID ? nb_sigmoid(g, s)
            : a == TANH  ? nb_tanh(g, s)
                         : nb_relu(g, s);
        if (W[l]) {
            double *w = nb_tensor_f64(nb_node_value(W[l]));
            for (int k = 0; k < WIDTH * WIDTH; k++)
                w[k] = c * d->w[l][k];
        }
    }
    nb_node *L = nb_sse_loss(g, h, t);
    int rc = !L || nb_feed(g, x, 2, (int64_t[]){BATCH, WIDTH}, d->x) ||
             nb_feed(g, t, 2, (int64_t[]){BATCH, WIDTH}, d->t) ||
             nb_forward(g, L) || nb_backward(g, L);
    if (rc)
        fprintf(stderr, "ch6_vanishing: %s\n", nb_graph_error(g));
    else
        for (int l = 0; l < DEPTH; l++)
            norms[l] = frobenius(nb_node_grad(W[l]));
    nb_graph_free(g);
    return rc;
}

int main(void)
{
    draws *d = malloc(sizeof *d);
    if (!d)
        return 1;
    /* The graph's generator, seeded, gives the shared numbers. */
    nb_graph *rng = nb_graph_new();
    nb_graph_seed(rng, 6);
    for (int l = 0; l < DEPTH; l++)
        for (int k = 0; k < WIDTH * WIDTH; k++)
            d->w[l][k] = nb_rng_normal(rng);
    for (int k = 0; k < BATCH * WIDTH; k++) {
        d->x[k] = nb_rng_normal(rng);
        d->t[k] = nb_rng_uniform(rng);
    }
    nb_graph_free(rng);

    double norms[N_ACTS][DEPTH], hand[DEPTH], slope[N_ACTS];
    for (int a = 0; a < N_ACTS; a++) {
        if (nabla_norms((enum act)a, d, norms[a]) ||
            hand_norms((enum act)a, d, hand, &slope[a])) {
            free(d);
            return 1;
        }
        for (int l = 0; l < DEPTH; l++)
            if (!(fabs(norms[a][l] - hand[l]) <= 1e-9 * hand[l])) {
                fprintf(stderr,
                        "ch6_vanishing: %s layer %d: nabla %.17g, plain C "
                        "%.17g\n",
                        act_name[a], l + 1, norms[a][l], hand[l]);
                failures++;
            }
    }
    free(d);

    section("setup",
            "%d layers of %d units, a batch of %d, L = 1/2 sum (h_%d - t)^2",
            DEPTH, WIDTH, BATCH, DEPTH);
    printf("init: W ~ N(0, 1/%d) for sigmoid and tanh, N(0, 2/%d) for relu; "
           "b = 0\n",
           WIDTH, WIDTH);

    section("norms",
            "||dL/dW_l|| per layer, from the output (%d) down to the input (1)",
            DEPTH);
    printf("%5s   %-11s  %-11s  %s\n", "layer", act_name[0], act_name[1],
           act_name[2]);
    for (int l = DEPTH - 1; l >= 0; l--)
        printf("%5d   %-11.3e  %-11.3e  %.3e\n", l + 1, norms[0][l],
               norms[1][l], norms[2][l]);
    /* Layer 1 against the top layer, and the geometric mean of the DEPTH - 1
     * layer-to-layer factors. */
    double ratio[N_ACTS], mean[N_ACTS];
    for (int a = 0; a < N_ACTS; a++) {
        ratio[a] = norms[a][0] / norms[a][DEPTH - 1];
        mean[a] = pow(ratio[a], 1.0 / (DEPTH - 1));
    }
    char ratio_label[16];
    snprintf(ratio_label, sizeof ratio_label, "1/%d", DEPTH);
    printf("%5s   %-11.3e  %-11.3e  %.3e\n", ratio_label, ratio[0], ratio[1],
           ratio[2]);
    printf("%5s   %-11.3f  %-11.3f  %.3f\n", "mean", mean[0], mean[1], mean[2]);
    printf("%5s   %-11.3f  %-11.3f  %.3f\n", "f'", slope[0], slope[1],
           slope[2]);
    printf("%s: layer 1's norm divided by layer %d's\n"
           "mean: the average factor per layer, (%s)^(1/%d)\n"
           "f':   the mean slope f'(s) over all units, layers and samples\n",
           ratio_label, DEPTH, ratio_label, DEPTH - 1);

    /* The picture the chapter draws, checked: sigmoid loses about a factor
     * 4 per layer (its f' is at most 1/4), tanh and ReLU stay within one
     * order of magnitude from top to bottom. */
    bool ok = ratio[SIGMOID] < 1e-6 && ratio[TANH] > 0.1 && ratio[TANH] < 10 &&
              ratio[RELU] > 0.1 && ratio[RELU] < 10;
    if (!ok) {
        fprintf(stderr, "ch6_vanishing: ratios %g %g %g break the picture\n",
                ratio[SIGMOID], ratio[TANH], ratio[RELU]);
        failures++;
    }
    return failures ? 1 : 0;
}
