/* Recurrent cells and the sequence layer (src/nn/rnn.c), through the
 * public API: each cell's step against the equations evaluated here in
 * plain C from the same weights (PyTorch's gate order and layout),
 * gradient checks in f64 of each cell over several steps sharing one set
 * of weights and of the sequence layer (stacked, reversed, masked, fused
 * and composite), the fused layer against the composite one, and the
 * mask's promise: padding changes neither the loss nor a gradient. */
#include "test_util.h"

static double sigm(double v)
{
    return 1 / (1 + exp(-v));
}

static double at(nb_node *n, int64_t i)
{
    return nb_tensor_get(nb_node_value(n), i);
}

static nb_node *fed(nb_graph *g, const char *name, int rank,
                    const int64_t *shape, double lo, double hi, bool grad)
{
    nb_node *n = nb_input(g, name, NB_F64, rank, shape);
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        size *= shape[i];
    double *v = malloc((size_t)size * sizeof *v);
    for (int64_t i = 0; i < size; i++)
        v[i] = lo + (hi - lo) * nb_rng_uniform(g);
    nb_feed(g, n, rank, shape, v);
    free(v);
    if (grad)
        nb_input_set_requires_grad(g, n, true);
    return n;
}

/* sum_j W[r, j] v[j] for W [rows, cols]. */
static double dot_row(nb_node *W, int64_t r, int64_t cols, const double *v)
{
    double s = 0;
    for (int64_t j = 0; j < cols; j++)
        s += at(W, r * cols + j) * v[j];
    return s;
}

/* One step of `cell` for one row, in plain C: the reference. */
static void reference_step(const nb_rnn_params *p, const double *x,
                           const double *h, const double *c, double *h_out,
                           double *c_out)
{
    int64_t E = p->in, H = p->hidden;
    int G = p->cell == NB_RNN_LSTM ? 4 : p->cell == NB_RNN_GRU ? 3 : 1;
    double a[64], b[64];
    for (int64_t r = 0; r < G * H; r++) {
        a[r] = dot_row(p->w_ih, r, E, x) + at(p->b_ih, r);
        b[r] = dot_row(p->w_hh, r, H, h) + at(p->b_hh, r);
    }
    for (int64_t j = 0; j < H; j++) {
        if (p->cell == NB_RNN_ELMAN) {
            h_out[j] = tanh(a[j] + b[j]);
        } else if (p->cell == NB_RNN_LSTM) {
            double i = sigm(a[j] + b[j]), f = sigm(a[H + j] + b[H + j]);
            double gg = tanh(a[2 * H + j] + b[2 * H + j]);
            double o = sigm(a[3 * H + j] + b[3 * H + j]);
            c_out[j] = f * c[j] + i * gg;
            h_out[j] = o * tanh(c_out[j]);
        } else {
            double r = sigm(a[j] + b[j]), z = sigm(a[H + j] + b[H + j]);
            double n = tanh(a[2 * H + j] + r * b[2 * H + j]);
            h_out[j] = (1 - z) * n + z * h[j];
        }
    }
}

static void test_cell_values(nb_rnn_cell cell)
{
    const int64_t N = 3, E = 4, H = 5;
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 7);
    nb_rnn_params p;
    CHECK(nb_rnn_params_make(g, cell, NB_F64, E, H, true, 0.5, "cell", -1,
                             &p) == NB_OK,
          "params: %s", nb_graph_error(g));
    int G = cell == NB_RNN_LSTM ? 4 : cell == NB_RNN_GRU ? 3 : 1;
    CHECK(nb_tensor_dim(nb_node_value(p.w_ih), 0) == G * H &&
              nb_tensor_dim(nb_node_value(p.w_ih), 1) == E &&
              nb_tensor_dim(nb_node_value(p.w_hh), 1) == H,
          "PyTorch's layout [G H, E] and [G H, H]");
    CHECK(nb_graph_find(g, "cell.weight_ih") == p.w_ih &&
              nb_graph_find(g, "cell.bias_hh") == p.b_hh,
          "PyTorch's parameter names");
    /* The init is U(-k, k), k = 1/sqrt(H), plus the forget bias. */
    double k = 1 / sqrt((double)H);
    bool in_range = true;
    for (int64_t i = 0; i < G * H * E; i++)
        in_range &= fabs(at(p.w_ih, i)) <= k;
    for (int64_t i = 0; i < G * H; i++) {
        double shift = cell == NB_RNN_LSTM && i >= H && i < 2 * H ? 0.5 : 0;
        in_range &= fabs(at(p.b_ih, i) - shift) <= k;
    }
    CHECK(in_range, "%s: init outside U(-1/sqrt(H), 1/sqrt(H))",
          nb_rnn_cell_name(cell));

    nb_node *x = fed(g, "x", 2, (int64_t[]){N, E}, -1, 1, false);
    nb_node *h = fed(g, "h", 2, (int64_t[]){N, H}, -1, 1, false);
    nb_node *c = fed(g, "c", 2, (int64_t[]){N, H}, -1, 1, false);
    nb_node *c_out = NULL;
    nb_node *hn = nb_rnn_cell_step(g, &p, x, h, c, &c_out);
    CHECK(hn && nb_forward(g, hn) == NB_OK, "step: %s", nb_graph_error(g));
    if (c_out)
        nb_forward(g, c_out);
    double worst = 0;
    for (int64_t r = 0; r < N && hn; r++) {
        double xr[4], hr[5], cr[5], want_h[5], want_c[5];
        for (int64_t j = 0; j < E; j++)
            xr[j] = at(x, r * E + j);
        for (int64_t j = 0; j < H; j++) {
            hr[j] = at(h, r * H + j);
            cr[j] = at(c, r * H + j);
        }
        reference_step(&p, xr, hr, cr, want_h, want_c);
        for (int64_t j = 0; j < H; j++) {
            worst = fmax(worst, fabs(at(hn, r * H + j) - want_h[j]));
            if (c_out)
                worst = fmax(worst, fabs(at(c_out, r * H + j) - want_c[j]));
        }
    }
    CHECK(worst < 1e-12, "%s step differs from the equations by %g",
          nb_rnn_cell_name(cell), worst);
    CHECK((cell == NB_RNN_LSTM) == (c_out != NULL), "c_out only for LSTM");
    nb_graph_free(g);
}

static void expect_gradcheck(nb_graph *g, nb_node *out, const char *what)
{
    nb_gradcheck_result r;
    int rc = nb_gradcheck(g, out, NULL, &r);
    CHECK(rc == NB_OK && r.passed, "%s: %s %s", what, r.message,
          rc == NB_OK ? "" : nb_graph_error(g));
}

/* Three steps of one cell sharing its weights: each weight's gradient is
 * the sum of three steps' messages. x_t, h0 (and c0) ask for gradients. */
static void test_cell_gradcheck(nb_rnn_cell cell)
{
    const int64_t N = 2, E = 3, H = 3;
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 11);
    nb_rnn_params p;
    nb_rnn_params_make(g, cell, NB_F64, E, H, true, 1.0, "cell", -1, &p);
    nb_node *h = fed(g, "h0", 2, (int64_t[]){N, H}, -1, 1, true);
    nb_node *c = fed(g, "c0", 2, (int64_t[]){N, H}, -1, 1, true);
    nb_node *loss = NULL;
    for (int t = 0; t < 3; t++) {
        char name[8];
        snprintf(name, sizeof name, "x%d", t);
        nb_node *x = fed(g, name, 2, (int64_t[]){N, E}, -1.5, 1.5, true);
        nb_node *c_next = NULL;
        h = nb_rnn_cell_step(g, &p, x, h, c, &c_next);
        if (cell == NB_RNN_LSTM)
            c = c_next;
        nb_node *term = nb_sum(g, nb_square(g, h));
        loss = loss ? nb_add(g, loss, term) : term;
    }
    if (cell == NB_RNN_LSTM)
        loss = nb_add(g, loss, nb_sum(g, c));
    CHECK(loss != NULL, "%s: %s", nb_rnn_cell_name(cell), nb_graph_error(g));
    char what[64];
    snprintf(what, sizeof what, "%s cell, 3 steps", nb_rnn_cell_name(cell));
    if (loss)
        expect_gradcheck(g, loss, what);
    nb_graph_free(g);
}

/* The sequence layer: two stacked layers, reversed or not, masked or not,
 * all outputs and the final states in the loss. Unmasked and forward it
 * is the fused op unless `composite`. */
static void test_layer_gradcheck(nb_rnn_cell cell, bool reverse, bool masked,
                                 bool composite)
{
    const int64_t N = 2, T = 4, E = 2, H = 3;
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 5);
    nb_node *x = fed(g, "x", 3, (int64_t[]){N, T, E}, -1, 1, true);
    nb_node *mask = NULL;
    if (masked) {
        mask = nb_input(g, "mask", NB_F64, 2, (int64_t[]){N, T});
        nb_feed(g, mask, 2, (int64_t[]){N, T},
                (const double[]){1, 1, 1, 0, 1, 1, 1, 1});
    }
    nb_node *h0[2] = {fed(g, "h0", 2, (int64_t[]){N, H}, -1, 1, true), NULL};
    nb_rnn_spec spec = {.cell = cell, .hidden = H, .n_layers = 2,
                        .reverse = reverse, .forget_bias = 1,
                        .composite = composite};
    nb_rnn rnn;
    int rc = nb_rnn_build(g, x, mask, h0, NULL, &spec, &rnn);
    CHECK(rc == NB_OK, "build: %s", nb_graph_error(g));
    if (rc != NB_OK) {
        nb_graph_free(g);
        return;
    }
    bool fused = !composite && !masked && !reverse;
    CHECK((rnn.seq[0] != NULL) == fused && (rnn.seq[1] != NULL) == fused,
          "%s: the layer took the %s path", nb_rnn_cell_name(cell),
          rnn.seq[0] ? "fused" : "composite");
    nb_node *loss = nb_add(g, nb_sum(g, nb_square(g, rnn.outputs)),
                           nb_sum(g, rnn.h_n[0]));
    if (cell == NB_RNN_LSTM)
        loss = nb_add(g, loss, nb_sum(g, rnn.c_n[1]));
    char what[96];
    snprintf(what, sizeof what, "%s layer x2%s%s%s", nb_rnn_cell_name(cell),
             reverse ? ", reversed" : "", masked ? ", masked" : "",
             fused ? ", fused" : "");
    expect_gradcheck(g, loss, what);
    nb_graph_free(g);
}

/* One build of the layer for test_paths: every value it compares, in a
 * fixed order (outputs, final states, then the gradients of x, h0, c0 and
 * every parameter). Parameters and inputs come from the same seed, so the
 * two paths see the same numbers. */
static int64_t path_run(nb_rnn_cell cell, int layers, bool composite,
                        double *vals, int64_t cap)
{
    const int64_t N = 3, T = 5, E = 4, H = 3;
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 21);
    nb_node *x = fed(g, "x", 3, (int64_t[]){N, T, E}, -1.5, 1.5, true);
    /* Layer 0 starts from a fed state of N rows, layer 1 from zeros. */
    nb_node *h0[2] = {fed(g, "h0", 2, (int64_t[]){N, H}, -1, 1, true), NULL};
    nb_node *c0[2] = {fed(g, "c0", 2, (int64_t[]){N, H}, -1, 1, true), NULL};
    nb_node *wy = fed(g, "wy", 3, (int64_t[]){N, T, H}, -1, 1, false);
    nb_rnn_spec spec = {.cell = cell, .hidden = H, .n_layers = layers,
                        .forget_bias = 1, .composite = composite};
    nb_rnn rnn;
    int64_t n = 0;
    if (nb_rnn_build(g, x, NULL, h0, c0, &spec, &rnn) != NB_OK) {
        CHECK(false, "build: %s", nb_graph_error(g));
        nb_graph_free(g);
        return 0;
    }
    CHECK((rnn.seq[0] == NULL) == composite, "%s: wrong path taken",
          nb_rnn_cell_name(cell));
    /* Every output and final state reaches the loss with its own weight. */
    nb_node *loss = nb_sum(g, nb_mul(g, rnn.outputs, wy));
    for (int l = 0; l < layers; l++) {
        loss = nb_add(g, loss, nb_sum(g, nb_square(g, rnn.h_n[l])));
        if (rnn.c_n[l])
            loss = nb_add(g, loss, nb_sum(g, nb_tanh(g, rnn.c_n[l])));
    }
    if (!loss || nb_forward(g, loss) != NB_OK ||
        nb_backward(g, loss) != NB_OK) {
        CHECK(false, "run: %s", nb_graph_error(g));
        nb_graph_free(g);
        return 0;
    }
    nb_node *show[4 + 2 * NB_RNN_MAX_LAYERS];
    int k = 0;
    show[k++] = rnn.outputs;
    for (int l = 0; l < layers; l++) {
        show[k++] = rnn.h_n[l];
        if (rnn.c_n[l])
            show[k++] = rnn.c_n[l];
    }
    for (int i = 0; i < k; i++) {
        const nb_tensor *v = nb_node_value(show[i]);
        for (int64_t j = 0; j < nb_tensor_size(v) && n < cap; j++)
            vals[n++] = nb_tensor_get(v, j);
    }
    nb_node *wrt[3 + 4 * NB_RNN_MAX_LAYERS];
    int m = 0;
    wrt[m++] = x;
    wrt[m++] = h0[0];
    if (cell == NB_RNN_LSTM)
        wrt[m++] = c0[0];
    for (int l = 0; l < layers; l++) {
        wrt[m++] = rnn.layer[l].w_ih;
        wrt[m++] = rnn.layer[l].w_hh;
        wrt[m++] = rnn.layer[l].b_ih;
        wrt[m++] = rnn.layer[l].b_hh;
    }
    for (int i = 0; i < m; i++) {
        const nb_tensor *gr = nb_node_grad(wrt[i]);
        CHECK(gr != NULL, "no gradient for '%s'", nb_node_name(wrt[i]));
        for (int64_t j = 0; gr && j < nb_tensor_size(gr) && n < cap; j++)
            vals[n++] = nb_tensor_get(gr, j);
    }
    nb_graph_free(g);
    return n;
}

/* The fused layer and the composite one agree to rounding: outputs, final
 * states and gradients, single and stacked. */
static void test_paths(nb_rnn_cell cell, int layers)
{
    enum { CAP = 1024 };
    static double a[CAP], b[CAP];
    int64_t na = path_run(cell, layers, false, a, CAP);
    int64_t nb = path_run(cell, layers, true, b, CAP);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < na && na == nb; i++) {
        worst = fmax(worst, fabs(a[i] - b[i]) / fmax(fabs(b[i]), 1e-3));
        scale = fmax(scale, fabs(b[i]));
    }
    CHECK(na == nb && na > 100 && na < CAP && scale > 0.1 && worst < 1e-12,
          "%s x%d: fused and composite differ by %g relative (%lld and "
          "%lld values)",
          nb_rnn_cell_name(cell), layers, worst, (long long)na,
          (long long)nb);
}

/* The same weights over a row padded with P steps and over the row alone:
 * with the mask, outputs at padding are 0, the final states, the masked
 * loss and every gradient are those of the unpadded run. */
static double masked_run(nb_rnn_cell cell, bool reverse, int64_t T,
                         const double *xs, const double *ys, int64_t real,
                         double *grads, int64_t *n_grads, double *h_last,
                         double *pad_out)
{
    const int64_t E = 2, H = 3, V = 3;
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 99);
    nb_node *x = nb_input(g, "x", NB_F64, 3, (int64_t[]){1, T, E});
    nb_node *y = nb_input(g, "y", NB_F64, 2, (int64_t[]){1, T});
    nb_node *mask = nb_input(g, "mask", NB_F64, 2, (int64_t[]){1, T});
    double m[16] = {0};
    for (int64_t t = 0; t < real; t++)
        m[t] = 1;
    nb_feed(g, x, 3, (int64_t[]){1, T, E}, xs);
    nb_feed(g, y, 2, (int64_t[]){1, T}, ys);
    nb_feed(g, mask, 2, (int64_t[]){1, T}, m);
    nb_rnn_spec spec = {.cell = cell, .hidden = H, .reverse = reverse};
    nb_rnn rnn;
    nb_rnn_build(g, x, mask, NULL, NULL, &spec, &rnn);
    nb_node *logits = nb_linear_layer(g, rnn.outputs, V, true, "out",
                                      NB_INIT_TORCH, NB_ACT_LINEAR, NULL);
    nb_node *loss = nb_masked_ce_index_loss(g, logits, y, mask);
    double value = NAN;
    if (loss && nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK) {
        value = at(loss, 0);
        *n_grads = 0;
        nb_node *params[] = {rnn.layer[0].w_ih, rnn.layer[0].w_hh,
                             rnn.layer[0].b_ih, rnn.layer[0].b_hh};
        for (int k = 0; k < 4; k++) {
            nb_tensor *gr = nb_node_grad(params[k]);
            for (int64_t i = 0; i < nb_tensor_size(gr); i++)
                grads[(*n_grads)++] = nb_tensor_get(gr, i);
        }
        for (int64_t j = 0; j < H; j++)
            h_last[j] = at(rnn.h_n[0], j);
        *pad_out = 0;
        for (int64_t i = real * H; i < T * H; i++)
            *pad_out = fmax(*pad_out, fabs(at(rnn.outputs, i)));
    }
    CHECK(!isnan(value), "masked run: %s", nb_graph_error(g));
    nb_graph_free(g);
    return value;
}

static void test_mask(nb_rnn_cell cell, bool reverse)
{
    const double xs[] = {0.5, -1, 0.25, 0.75, -0.5, 0.5, 1, 1, -2, 3, 4, -5};
    const double ys[] = {2, 0, 1, 2, 1, 0};
    double ga[128], gb[128], ha[3] = {0}, hb[3] = {0}, pad_a = 1, pad_b = 1;
    int64_t na = 0, nb = 0;
    double la = masked_run(cell, reverse, 6, xs, ys, 4, ga, &na, ha, &pad_a);
    double lb = masked_run(cell, reverse, 4, xs, ys, 4, gb, &nb, hb, &pad_b);
    CHECK(fabs(la - lb) < 1e-12, "%s: padded loss %.17g, unpadded %.17g",
          nb_rnn_cell_name(cell), la, lb);
    CHECK(pad_a == 0, "outputs at padding are %g, not 0", pad_a);
    double worst = 0;
    for (int64_t i = 0; i < na && na == nb; i++)
        worst = fmax(worst, fabs(ga[i] - gb[i]));
    CHECK(na == nb && na > 0 && worst < 1e-12,
          "%s%s: gradients with padding differ by %g",
          nb_rnn_cell_name(cell), reverse ? " reversed" : "", worst);
    worst = 0;
    for (int j = 0; j < 3; j++)
        worst = fmax(worst, fabs(ha[j] - hb[j]));
    CHECK(worst < 1e-12, "final state moved by padding: %g", worst);
}

/* Errors name the layer; the graph stays usable. */
static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x2 = nb_input(g, "x2", NB_F64, 2, (int64_t[]){2, 3});
    nb_rnn_spec spec = {.cell = NB_RNN_LSTM, .hidden = 4, .name = "enc"};
    nb_rnn rnn;
    CHECK(nb_rnn_build(g, x2, NULL, NULL, NULL, &spec, &rnn) != NB_OK,
          "rank-2 x accepted");
    CHECK_ERROR(g, "rnn 'enc'", "[N, T, E]");
    nb_node *x = nb_input(g, "x", NB_F64, 3, (int64_t[]){2, 3, 1});
    spec.hidden = 0;
    CHECK(nb_rnn_build(g, x, NULL, NULL, NULL, &spec, &rnn) != NB_OK,
          "hidden 0 accepted");
    CHECK_ERROR(g, "rnn 'enc'", "hidden");
    spec.hidden = 2;
    nb_node *bad_mask = nb_input(g, "m", NB_F64, 2, (int64_t[]){2, 4});
    CHECK(nb_rnn_build(g, x, bad_mask, NULL, NULL, &spec, &rnn) != NB_OK,
          "mask of the wrong length accepted");
    CHECK_ERROR(g, "mask", "T = 3");
    spec.n_layers = NB_RNN_MAX_LAYERS + 1;
    CHECK(nb_rnn_build(g, x, NULL, NULL, NULL, &spec, &rnn) != NB_OK,
          "too many layers accepted");
    CHECK_ERROR(g, "n_layers");
    CHECK(nb_rnn_cell_step(g, NULL, x2, x2, NULL, NULL) == NULL,
          "a step without parameters");
    CHECK_ERROR(g, "rnn cell", "nb_rnn_params_make");
    spec.n_layers = 1;
    CHECK(nb_rnn_build(g, x, NULL, NULL, NULL, &spec, &rnn) == NB_OK &&
              nb_tensor_dim(nb_node_value(rnn.output), 2) == 2,
          "the graph is usable after errors: %s", nb_graph_error(g));
    nb_graph_free(g);
}

int main(void)
{
    const nb_rnn_cell cells[3] = {NB_RNN_ELMAN, NB_RNN_LSTM, NB_RNN_GRU};
    for (int i = 0; i < 3; i++) {
        test_cell_values(cells[i]);
        test_cell_gradcheck(cells[i]);
        test_layer_gradcheck(cells[i], false, false, false);
        test_layer_gradcheck(cells[i], false, false, true);
        test_layer_gradcheck(cells[i], true, true, false);
        test_layer_gradcheck(cells[i], true, false, false);
        test_paths(cells[i], 1);
        test_paths(cells[i], 2);
        test_mask(cells[i], false);
        test_mask(cells[i], true);
    }
    test_layer_gradcheck(NB_RNN_LSTM, false, true, false);
    test_errors();
    return tu_finish("rnn");
}
