/* The vanishing gradient over time: an Elman net and an LSTM asked to
 * remember the first symbol of a sequence until its end.
 *
 * Each sequence is T symbols from an alphabet of K, one-hot [N, T, K]; the
 * target is the first symbol, read from the last hidden state (linear to K,
 * softmax cross-entropy). Everything in between is noise, so the only
 * useful message backward is the one that travels T - 1 steps back to
 * x_0.
 *
 * The picture (long_delay.png/.svg/.pdf) is the mean norm over the batch
 * of d loss / d x_t for every step t, before and after training: through
 * the Elman net, whose Jacobian dh_t/dh_{t-1} = diag(1 - h_t^2) w_hh^T
 * shrinks a message at every step, it falls by orders of magnitude from
 * t = T - 1 back to t = 0; through the LSTM's cell state, where the
 * message is multiplied by the forget gate, it does not: with the forget
 * bias at 3 (see nb_rnn_params_make) a fresh gate is sigmoid(3) = 0.95,
 * not PyTorch's 0.5, so the cell starts out remembering. The program
 * checks the ratio |dL/dx_0| / |dL/dx_{T-1}| at init for both nets and,
 * in the full run (600 steps), that the LSTM alone learns the task. After
 * training the LSTM's gradient gathers at x_0, the one input that
 * matters, and is small elsewhere because the loss is.
 */
#include "example_util.h"
#include "plot/plot.h"

#define K 4
#define MAX_T 64

typedef struct net {
    nb_graph *g;
    nb_node *x, *y, *loss;
    nb_optimizer *opt;
    nb_rnn_cell cell;
} net;

static int net_build(net *n, nb_rnn_cell cell, int64_t T, int64_t H,
                     uint64_t seed)
{
    memset(n, 0, sizeof *n);
    n->cell = cell;
    nb_graph *g = n->g = nb_graph_new();
    nb_graph_seed(g, seed);
    n->x = nb_input(g, "x", NB_F32, 3, (const int64_t[]){NB_DYNAMIC, T, K});
    n->y = nb_input(g, "y", NB_F32, 1, (const int64_t[]){NB_DYNAMIC});
    nb_input_set_requires_grad(g, n->x, true);
    nb_rnn_spec spec = {.cell = cell, .hidden = H, .last_only = true,
                        .forget_bias = 3, .name = nb_rnn_cell_name(cell)};
    nb_rnn rnn;
    if (nb_rnn_build(g, n->x, NULL, NULL, NULL, &spec, &rnn) != NB_OK)
        return -1;
    nb_node *z = nb_linear_layer(g, rnn.output, K, true, "out", NB_INIT_TORCH,
                                 NB_ACT_LINEAR, NULL);
    n->loss = nb_softmax_ce_index_loss(g, z, n->y);
    n->opt = nb_optimizer_new(
        g, &(nb_optim_config){.kind = NB_OPTIM_ADAM, .lr = 1e-2, .clip_norm = 1},
        0, NULL);
    return n->loss && n->opt ? 0 : -1;
}

static void net_free(net *n)
{
    nb_optimizer_free(n->opt);
    nb_graph_free(n->g);
}

/* A batch of random sequences; y is each one's first symbol. */
static void draw_batch(nb_graph *rng, float *x, float *y, int64_t N,
                       int64_t T)
{
    memset(x, 0, (size_t)(N * T * K) * sizeof *x);
    for (int64_t i = 0; i < N; i++) {
        for (int64_t t = 0; t < T; t++)
            x[(i * T + t) * K + nb_rng_below(rng, K)] = 1;
        for (int k = 0; k < K; k++)
            if (x[i * T * K + k] == 1)
                y[i] = (float)k;
    }
}

static int feed(net *n, const float *x, const float *y, int64_t N, int64_t T)
{
    int rc = nb_feed(n->g, n->x, 3, (const int64_t[]){N, T, K}, x);
    return rc ? rc : nb_feed(n->g, n->y, 1, &N, y);
}

/* Mean over the batch of ||d loss / d x_t|| for each t. */
static int grad_norms(net *n, int64_t N, int64_t T, double *norm)
{
    if (nb_forward(n->g, n->loss) != NB_OK ||
        nb_backward(n->g, n->loss) != NB_OK)
        return -1;
    const nb_tensor *gx = nb_node_grad(n->x);
    for (int64_t t = 0; t < T; t++) {
        double sum = 0;
        for (int64_t i = 0; i < N; i++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double v = nb_tensor_get(gx, (i * T + t) * K + k);
                s += v * v;
            }
            sum += sqrt(s);
        }
        norm[t] = sum / (double)N;
    }
    return 0;
}

static double accuracy(net *n, int64_t N)
{
    (void)N;
    /* The loss's forward computed the logits: score them. */
    nb_node *z = nb_node_input(n->loss, 0);
    const nb_tensor *zv = nb_node_value(z);
    const nb_tensor *yv = nb_node_value(n->y);
    int64_t rows = nb_tensor_dim(zv, 0), right = 0;
    for (int64_t i = 0; i < rows; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (nb_tensor_get(zv, i * K + k) > nb_tensor_get(zv, i * K + best))
                best = k;
        right += best == (int)nb_tensor_get(yv, i);
    }
    return (double)right / (double)rows;
}

int main(int argc, char **argv)
{
    int64_t T = 30, H = 32, N = 64, steps = 600;
    bool test_size = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--test-size")) {
            steps = 100;
            test_size = true;
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--delay") && i + 1 < argc) {
            T = atoll(argv[++i]);
        } else {
            fprintf(stderr, "usage: long_delay [--delay T] [--steps S] "
                            "[--test-size]\n");
            return 2;
        }
    }
    if (T < 2 || T > MAX_T || steps < 1) {
        fprintf(stderr, "long_delay: need 2 <= T <= %d and steps >= 1\n",
                MAX_T);
        return 2;
    }
    float *x = malloc((size_t)(N * T * K) * sizeof *x);
    float *y = malloc((size_t)N * sizeof *y);
    double norm[2][2][MAX_T], acc[2];
    const nb_rnn_cell cells[2] = {NB_RNN_ELMAN, NB_RNN_LSTM};
    int rc = 0;
    for (int c = 0; c < 2 && rc == 0; c++) {
        net n;
        nb_graph *rng = nb_graph_new();
        nb_graph_seed(rng, 42); /* the same sequences for both nets */
        if (net_build(&n, cells[c], T, H, 1) != 0) {
            fprintf(stderr, "long_delay: %s\n", nb_graph_error(n.g));
            rc = 1;
        }
        /* A fixed probe batch for the gradient norms. */
        draw_batch(rng, x, y, N, T);
        if (rc == 0 && (feed(&n, x, y, N, T) != NB_OK ||
                        grad_norms(&n, N, T, norm[c][0]) != 0))
            rc = 1;
        double recent = 0;
        for (int64_t s = 0; s < steps && rc == 0; s++) {
            draw_batch(rng, x, y, N, T);
            if (feed(&n, x, y, N, T) != NB_OK ||
                nb_forward(n.g, n.loss) != NB_OK ||
                nb_backward(n.g, n.loss) != NB_OK ||
                nb_optimizer_step(n.opt) != NB_OK)
                rc = 1;
            if (s >= steps - 20)
                recent += accuracy(&n, N) / 20;
        }
        acc[c] = recent;
        nb_graph_seed(rng, 42);
        draw_batch(rng, x, y, N, T);
        if (rc == 0 && (feed(&n, x, y, N, T) != NB_OK ||
                        grad_norms(&n, N, T, norm[c][1]) != 0))
            rc = 1;
        if (rc != 0)
            fprintf(stderr, "long_delay: %s\n", nb_graph_error(n.g));
        printf("%-5s accuracy over the last 20 batches %.2f (chance %.2f); "
               "|dL/dx_0| / |dL/dx_%lld| = %.2g at init, %.2g trained\n",
               nb_rnn_cell_name(cells[c]), acc[c], 1.0 / K, (long long)T - 1,
               norm[c][0][0] / norm[c][0][T - 1],
               norm[c][1][0] / norm[c][1][T - 1]);
        net_free(&n);
        nb_graph_free(rng);
    }
    free(x);
    free(y);
    if (rc != 0)
        return 1;

    double ts[MAX_T], lo = INFINITY, hi = 0;
    for (int64_t t = 0; t < T; t++) {
        ts[t] = (double)t;
        for (int c = 0; c < 2; c++)
            for (int w = 0; w < 2; w++) {
                lo = fmin(lo, norm[c][w][t]);
                hi = fmax(hi, norm[c][w][t]);
            }
    }
    pl_series s[4] = {
        {.label = "Elman, at init", .color = pl_palette(0), .n = (int)T,
         .x = ts, .y = norm[0][0], .style = PL_LINE, .width = 1.5},
        {.label = "Elman, trained", .color = pl_palette(0), .n = (int)T,
         .x = ts, .y = norm[0][1], .style = PL_LINE | PL_MARKERS},
        {.label = "LSTM, at init", .color = pl_palette(1), .n = (int)T,
         .x = ts, .y = norm[1][0], .style = PL_LINE, .width = 1.5},
        {.label = "LSTM, trained", .color = pl_palette(1), .n = (int)T,
         .x = ts, .y = norm[1][1], .style = PL_LINE | PL_MARKERS},
    };
    pl_panel p = {.x = 0, .y = 40, .w = 800, .h = 460,
                  .xlabel = "time step t (the target is x_0's symbol)",
                  .ylabel = "mean |d loss / d x_t|", .ylog = true,
                  .xmin = 0, .xmax = (double)(T - 1),
                  .ymin = pow(10, floor(log10(lo))),
                  .ymax = pow(10, ceil(log10(hi)) + 1), .series = s,
                  .nseries = 4, .legend = PL_LEGEND_TOP_LEFT};
    char title[96];
    snprintf(title, sizeof title,
             "Gradient reaching each step, delay %lld: Elman vs LSTM",
             (long long)T);
    pl_figure f = {.w = 800, .h = 500, .title = title, .panels = &p,
                   .npanels = 1};
    if (pl_save(&f, "long_delay") != 0)
        return 1;

    /* What the picture must show. */
    double elman = norm[0][0][0] / norm[0][0][T - 1];
    double lstm = norm[1][0][0] / norm[1][0][T - 1];
    bool ok = elman < 1e-3 && lstm > 0.1;
    if (!ok)
        fprintf(stderr, "long_delay: at init the Elman ratio %.3g should be "
                        "below 1e-3 and the LSTM's %.3g above 0.1\n",
                elman, lstm);
    /* The full run also learns the task with the LSTM only. */
    if (ok && !test_size && !(acc[1] > 0.9 && acc[0] < 0.5)) {
        fprintf(stderr, "long_delay: accuracies %.2f (Elman), %.2f (LSTM): "
                        "expected the LSTM alone to learn the task\n",
                acc[0], acc[1]);
        ok = false;
    }
    return ok ? 0 : 1;
}
