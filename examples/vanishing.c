/* Vanishing gradients, drawn: the gradient norm of every layer's weights in
 * a deep MLP with sigmoid, tanh and ReLU hidden units, after one backward
 * pass on one batch.
 *
 * The net (nb_mlp_build) has DEPTH weight layers of WIDTH units,
 *     s_l = h_{l-1} W_l + b_l,  h_l = f(s_l)  (l < DEPTH),  y = s_DEPTH,
 * and the loss is the mean squared error of y against random targets. The
 * backward pass sends delta_l = f'(s_l) * (delta_{l+1} W_{l+1}^T) down and
 * gives dL/dW_l = h_{l-1}^T delta_l, so the error reaching layer l has been
 * multiplied by f' once per layer above it. sigmoid' <= 1/4, and with
 * Glorot's initialisation (the standard one for sigmoid and tanh; nabla's
 * default for them) the deltas shrink by a roughly constant factor per
 * layer; tanh' = 1 at 0 shrinks them much less; ReLU's f' is 1 on the
 * active half of the units, which He's initialisation (twice the variance,
 * nabla's default for ReLU) makes up for, so its norms stay level.
 *
 * Every net starts from the same seed and sees the same inputs x ~ N(0, 1)
 * and targets t ~ N(0, 1). The program prints ||dL/dW_l|| (Frobenius norm)
 * per layer and activation, draws them against l on a logarithmic axis
 * (vanishing.png, .svg and .pdf, or --out PREFIX), and exits 1 unless the
 * picture says what it should: the first layer's norm is below 1e-3 times
 * the last layer's for sigmoid, and within a factor of 10 of it for ReLU,
 * and the files read back well-formed.
 *
 *   build/examples/vanishing [--depth 16] [--width 48] [--batch 64]
 *                            [--seed 1] [--out vanishing]
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "example_util.h"
#include "nabla/nabla.h"
#include "plot/plot.h"

enum { N_ACTS = 3, MAX_DEPTH = 40 };

static const nb_activation acts[N_ACTS] = {NB_ACT_SIGMOID, NB_ACT_TANH,
                                           NB_ACT_RELU};
static const char *const act_label[N_ACTS] = {
    "sigmoid (Glorot init)", "tanh (Glorot init)", "ReLU (He init)"};

/* Builds the net for one activation, runs forward and backward on (x, t)
 * and stores ||dL/dW_l|| in norms[l - 1]. Returns 0 or -1. */
static int grad_norms(nb_activation act, int depth, int64_t width,
                      int64_t batch, uint64_t seed, const double *x,
                      const double *t, double *norms)
{
    nb_graph *g = nb_graph_new();
    if (!g)
        return -1;
    nb_graph_seed(g, seed);
    int64_t sizes[MAX_DEPTH + 1];
    for (int l = 0; l <= depth; l++)
        sizes[l] = width;
    nb_node *xin = nb_input(g, "x", NB_F64, 2, (int64_t[]){NB_DYNAMIC, width});
    nb_node *tin = nb_input(g, "t", NB_F64, 2, (int64_t[]){NB_DYNAMIC, width});
    nb_mlp net;
    nb_mlp_spec spec = {.n_layers = depth,
                        .sizes = sizes,
                        .hidden = act,
                        .output = NB_ACT_LINEAR,
                        .init = NB_INIT_DEFAULT};
    nb_node *loss = NULL;
    if (xin && tin && nb_mlp_build(g, xin, &spec, &net) == NB_OK)
        loss = nb_mlp_loss(g, &net, tin);
    int rc = -1;
    if (loss && nb_feed(g, xin, 2, (int64_t[]){batch, width}, x) == NB_OK &&
        nb_feed(g, tin, 2, (int64_t[]){batch, width}, t) == NB_OK &&
        nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK) {
        rc = 0;
        for (int l = 0; l < depth; l++) {
            nb_tensor *gw = nb_node_grad(net.layer[l].W);
            if (!gw) {
                rc = -1;
                break;
            }
            norms[l] = ex_tensor_norm(gw);
        }
    }
    if (rc)
        fprintf(stderr, "vanishing: %s\n", nb_graph_error(g));
    nb_graph_free(g);
    return rc;
}

static int draw(const double norms[N_ACTS][MAX_DEPTH], int depth, int64_t width,
                int64_t batch, const char *prefix)
{
    double layer[MAX_DEPTH], lo = INFINITY, hi = -INFINITY;
    for (int l = 0; l < depth; l++)
        layer[l] = l + 1;
    pl_series s[N_ACTS];
    static const uint32_t colour[N_ACTS] = {PL_ORANGE, PL_GREEN, PL_BLUE};
    for (int a = 0; a < N_ACTS; a++) {
        pl_minmax(norms[a], depth, &lo, &hi);
        s[a] = (pl_series){.label = act_label[a],
                           .color = pl_hex(colour[a]),
                           .n = depth,
                           .x = layer,
                           .y = norms[a],
                           .style = PL_LINE | PL_MARKERS,
                           .radius = 4.5,
                           .outline = 1.5,
                           .outline_color = pl_hex(PL_WHITE)};
    }
    char title[128];
    snprintf(title, sizeof title,
             "gradient norm per layer: depth %d, width %lld, batch %lld", depth,
             (long long)width, (long long)batch);
    pl_panel panel = {.x = 0,
                      .y = 40,
                      .w = 900,
                      .h = 520,
                      .title = "each layer down multiplies the error by f'(s)",
                      .xlabel = "layer l (1 = next to the input)",
                      .ylabel = "||dL/dW_l||",
                      .xmin = 0.5,
                      .xmax = depth + 0.5,
                      /* Whole decades, with room for the markers. */
                      .ymin = pow(10, floor(log10(lo) - 0.2)),
                      .ymax = pow(10, ceil(log10(hi) + 0.2)),
                      .ylog = true,
                      .xstep = depth > 20 ? 2 : 1,
                      .series = s,
                      .nseries = N_ACTS,
                      .legend = PL_LEGEND_BOTTOM_RIGHT};
    pl_figure fig = {.w = panel.w,
                     .h = panel.y + panel.h,
                     .title = title,
                     .panels = &panel,
                     .npanels = 1};
    return pl_save(&fig, prefix);
}

int main(int argc, char **argv)
{
    int64_t depth = 16, width = 48, batch = 64, seed = 1;
    const char *out = "vanishing";
    ex_flag flags[] = {
        {"--depth", EX_INT, &depth, "weight layers (2..40)"},
        {"--width", EX_INT, &width, "units per layer"},
        {"--batch", EX_INT, &batch, "examples in the batch"},
        {"--seed", EX_INT, &seed, "seed of the weights and the data"},
        {"--out", EX_STRING, &out, "prefix of the PNG, SVG and PDF files"},
    };
    int status = ex_parse_flags(argc, argv,
                                "Plots the gradient norm of each layer of a "
                                "deep MLP for sigmoid, tanh and ReLU units.",
                                flags, (int)(sizeof flags / sizeof flags[0]));
    if (status >= 0)
        return status;
    if (depth < 2 || depth > MAX_DEPTH || width < 1 || width > 4096 ||
        batch < 1 || batch > 65536) {
        fprintf(stderr,
                "vanishing: need 2 <= --depth <= %d, 1 <= --width "
                "<= 4096, 1 <= --batch <= 65536\n",
                MAX_DEPTH);
        return 2;
    }

    /* Inputs and targets, shared by the three nets. */
    nb_graph *g = nb_graph_new();
    double *x = malloc(2 * (size_t)batch * (size_t)width * sizeof *x);
    if (!g || !x) {
        fprintf(stderr, "vanishing: out of memory\n");
        nb_graph_free(g);
        free(x);
        return 1;
    }
    double *t = x + batch * width;
    nb_graph_seed(g, (uint64_t)seed + 1000);
    for (int64_t i = 0; i < 2 * batch * width; i++)
        x[i] = nb_rng_normal(g);
    nb_graph_free(g);

    static double norms[N_ACTS][MAX_DEPTH];
    for (int a = 0; a < N_ACTS; a++)
        if (grad_norms(acts[a], (int)depth, width, batch, (uint64_t)seed, x, t,
                       norms[a]) != 0) {
            free(x);
            return 1;
        }
    free(x);

    printf("||dL/dW_l|| of a %lld-layer MLP, width %lld, batch %lld, MSE "
           "loss, seed %lld\n\n%5s  %12s  %12s  %12s\n",
           (long long)depth, (long long)width, (long long)batch,
           (long long)seed, "layer", "sigmoid", "tanh", "relu");
    for (int l = 0; l < depth; l++)
        printf("%5d  %12.4e  %12.4e  %12.4e\n", l + 1, norms[0][l], norms[1][l],
               norms[2][l]);
    double ratio[N_ACTS];
    for (int a = 0; a < N_ACTS; a++)
        ratio[a] = norms[a][0] / norms[a][depth - 1];
    printf("%5s  %12.4e  %12.4e  %12.4e   (first / last)\n", "ratio", ratio[0],
           ratio[1], ratio[2]);
    for (int a = 0; a < N_ACTS; a++)
        printf("%-8s per-layer factor (geometric mean) %.3f\n",
               nb_activation_name(acts[a]),
               pow(ratio[a], 1.0 / (double)(depth - 1)));

    bool ok = draw((const double(*)[MAX_DEPTH])norms, (int)depth, width, batch,
                   out) == 0;
    /* The claim of the picture, checked on the numbers. */
    if (!(ratio[0] < 1e-3)) {
        fprintf(stderr,
                "vanishing: sigmoid's first layer gets %.3g of the "
                "last layer's gradient norm, not < 1e-3\n",
                ratio[0]);
        ok = false;
    }
    if (!(ratio[2] > 0.1 && ratio[2] < 10)) {
        fprintf(stderr,
                "vanishing: ReLU's first/last gradient norm ratio "
                "%.3g is not within a factor of 10\n",
                ratio[2]);
        ok = false;
    }
    printf("%s\n",
           ok ? "sigmoid vanishes, ReLU does not: as expected" : "FAILED");
    return ok ? 0 : 1;
}
