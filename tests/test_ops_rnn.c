/* The fused recurrent ops (elman_seq, lstm_seq, gru_seq) against the same
 * cells written here from public ops (matmul, transpose, add, sigmoid,
 * tanh, mul, slice, concat) and unrolled over several steps, in f64:
 * values and every gradient to 1e-12 relative to the largest element,
 * with per-sample initial states and with one [1, H] state for the batch.
 * Also: a sequence split into two windows that carry h and c (the
 * final_cell row) gives the values of the whole; 1, 2 and 3 threads give
 * the same bits in f32 and f64; each shape rule's message names the op
 * and both shapes, and the graph stays usable. */
#include "test_util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef enum { ELMAN = 1, LSTM = 4, GRU = 3 } cell;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double urand(double lo, double hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng_state >> 11) * 0x1.0p-53;
}

static void fill(nb_node *n, double lo, double hi)
{
    nb_tensor *t = nb_node_value(n);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, urand(lo, hi));
}

typedef struct leaves {
    nb_node *x, *h0, *c0, *w_ih, *w_hh, *b_ih, *b_hh;
} leaves;

/* shared: h0 and c0 are [1, H], one state for the whole batch */
static leaves make_leaves_ex(nb_graph *g, nb_dtype dt, cell k, int64_t n,
                             int64_t t, int64_t e, int64_t h, bool shared)
{
    leaves l;
    int64_t rows = shared ? 1 : n;
    l.x = nb_param(g, "x", dt, 3, SHAPE(n, t, e));
    l.h0 = nb_param(g, "h0", dt, 2, SHAPE(rows, h));
    l.c0 = k == LSTM ? nb_param(g, "c0", dt, 2, SHAPE(rows, h)) : NULL;
    l.w_ih = nb_param(g, "w_ih", dt, 2, SHAPE(k * h, e));
    l.w_hh = nb_param(g, "w_hh", dt, 2, SHAPE(k * h, h));
    l.b_ih = nb_param(g, "b_ih", dt, 1, SHAPE(k * h));
    l.b_hh = nb_param(g, "b_hh", dt, 1, SHAPE(k * h));
    fill(l.x, -1, 1);
    fill(l.h0, -1, 1);
    if (l.c0)
        fill(l.c0, -1, 1);
    double s = 1.0 / sqrt((double)h);
    fill(l.w_ih, -s, s);
    fill(l.w_hh, -s, s);
    fill(l.b_ih, -s, s);
    fill(l.b_hh, -s, s);
    return l;
}

static leaves make_leaves(nb_graph *g, nb_dtype dt, cell k, int64_t n,
                          int64_t t, int64_t e, int64_t h)
{
    return make_leaves_ex(g, dt, k, n, t, e, h, false);
}

static nb_node *fused(nb_graph *g, cell k, const leaves *l, bool final_cell)
{
    if (k == LSTM)
        return nb_lstm_seq(g, l->x, l->h0, l->c0, l->w_ih, l->w_hh, l->b_ih,
                           l->b_hh, final_cell);
    if (k == GRU)
        return nb_gru_seq(g, l->x, l->h0, l->w_ih, l->w_hh, l->b_ih, l->b_hh);
    return nb_elman_seq(g, l->x, l->h0, l->w_ih, l->w_hh, l->b_ih, l->b_hh);
}

/* The cell from public ops, unrolled: every step reuses the same weight
 * nodes, so each weight's gradient is the sum of the steps' messages. */
static nb_node *composite(nb_graph *g, cell k, const leaves *l, int64_t n,
                          int64_t t, int64_t e, int64_t h, bool final_cell)
{
    nb_node *wt_ih = nb_transpose(g, l->w_ih), *wt_hh = nb_transpose(g, l->w_hh);
    nb_node *hs = l->h0, *cs = l->c0;
    nb_node *steps[64];
    for (int64_t s = 0; s < t; s++) {
        nb_node *xt = nb_reshape(g, nb_slice(g, l->x, 1, s, s + 1), 2,
                                 SHAPE(n, e));
        nb_node *ax = nb_add(g, nb_matmul(g, xt, wt_ih), l->b_ih);
        nb_node *ah = nb_add(g, nb_matmul(g, hs, wt_hh), l->b_hh);
#define GATE(a, i) nb_slice(g, (a), 1, (i) * h, ((i) + 1) * h)
        if (k == ELMAN) {
            hs = nb_tanh(g, nb_add(g, ax, ah));
        } else if (k == LSTM) {
            nb_node *a = nb_add(g, ax, ah);
            nb_node *ig = nb_sigmoid(g, GATE(a, 0));
            nb_node *fg = nb_sigmoid(g, GATE(a, 1));
            nb_node *gg = nb_tanh(g, GATE(a, 2));
            nb_node *og = nb_sigmoid(g, GATE(a, 3));
            cs = nb_add(g, nb_mul(g, fg, cs), nb_mul(g, ig, gg));
            hs = nb_mul(g, og, nb_tanh(g, cs));
        } else {
            nb_node *r = nb_sigmoid(g, nb_add(g, GATE(ax, 0), GATE(ah, 0)));
            nb_node *z = nb_sigmoid(g, nb_add(g, GATE(ax, 1), GATE(ah, 1)));
            nb_node *nn =
                nb_tanh(g, nb_add(g, GATE(ax, 2), nb_mul(g, r, GATE(ah, 2))));
            nb_node *one_minus_z = nb_add_scalar(g, nb_neg(g, z), 1);
            hs = nb_add(g, nb_mul(g, one_minus_z, nn), nb_mul(g, z, hs));
        }
#undef GATE
        steps[s] = nb_reshape(g, hs, 3, SHAPE(n, 1, h));
    }
    int count = (int)t;
    if (final_cell)
        steps[count++] = nb_reshape(g, cs, 3, SHAPE(n, 1, h));
    return nb_concat(g, count, steps, 1);
}

static nb_tensor *clone(const nb_tensor *t)
{
    nb_tensor *c = nb_tensor_new(nb_tensor_dtype(t), nb_tensor_rank(t),
                                 nb_tensor_shape(t));
    memcpy(nb_tensor_data(c), nb_tensor_cdata(t),
           (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t)));
    return c;
}

/* max |a - b| / max |b| over two tensors of the same size */
static double rel_diff(const nb_tensor *a, const nb_tensor *b)
{
    if (!a || !b || nb_tensor_size(a) != nb_tensor_size(b))
        return INFINITY;
    double d = 0, m = 0;
    for (int64_t i = 0; i < nb_tensor_size(a); i++) {
        double u = nb_tensor_get(a, i), v = nb_tensor_get(b, i);
        d = fmax(d, fabs(u - v));
        m = fmax(m, fabs(v));
    }
    return m > 0 ? d / m : d;
}

static void compare_with_composite(cell k, int64_t n, int64_t t, int64_t e,
                                   int64_t h, bool final_cell, bool shared)
{
    const char *name = k == LSTM ? "lstm_seq" : k == GRU ? "gru_seq"
                                                         : "elman_seq";
    nb_graph *g = nb_graph_new();
    leaves l = make_leaves_ex(g, NB_F64, k, n, t, e, h, shared);
    nb_node *yf = fused(g, k, &l, final_cell);
    nb_node *yc = composite(g, k, &l, n, t, e, h, final_cell);
    int64_t ty = t + (final_cell ? 1 : 0);
    nb_node *proj = nb_constant(g, "proj", NB_F64, 3, SHAPE(n, ty, h));
    fill(proj, -1, 1);
    nb_node *lf = nb_sum(g, nb_mul(g, yf, proj));
    nb_node *lc = nb_sum(g, nb_mul(g, yc, proj));
    CHECK(lf && lc, "%s: %s", name, nb_graph_error(g));
    if (!lf || !lc) {
        nb_graph_free(g);
        return;
    }
    nb_node *ins[7] = {l.x, l.h0, l.c0, l.w_ih, l.w_hh, l.b_ih, l.b_hh};
    const char *what[7] = {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"};
    nb_tensor *gf[7] = {0};
    CHECK(nb_forward(g, lf) == NB_OK && nb_backward(g, lf) == NB_OK, "%s",
          nb_graph_error(g));
    for (int i = 0; i < 7; i++)
        if (ins[i])
            gf[i] = clone(nb_node_grad(ins[i]));
    CHECK(nb_forward(g, lc) == NB_OK && nb_backward(g, lc) == NB_OK, "%s",
          nb_graph_error(g));
    double dv = rel_diff(nb_node_value(yf), nb_node_value(yc));
    CHECK(dv <= 1e-12, "%s N %lld T %lld E %lld H %lld: values differ by "
                       "%.3g relative",
          name, (long long)n, (long long)t, (long long)e, (long long)h, dv);
    for (int i = 0; i < 7; i++) {
        if (!ins[i])
            continue;
        double dg = rel_diff(gf[i], nb_node_grad(ins[i]));
        CHECK(dg <= 1e-12, "%s N %lld T %lld: d%s differs by %.3g relative",
              name, (long long)n, (long long)t, what[i], dg);
        nb_tensor_free(gf[i]);
    }
    nb_graph_free(g);
}

/* One sequence of 2T steps, and the same in two windows of T where the
 * second starts from the first's last h and c rows: the carry truncated
 * BPTT relies on. */
static void test_windows_carry_state(void)
{
    enum { N = 3, T = 4, E = 2, H = 5 };
    nb_graph *g = nb_graph_new();
    leaves l = make_leaves(g, NB_F64, LSTM, N, 2 * T, E, H);
    nb_node *whole = nb_lstm_seq(g, l.x, l.h0, l.c0, l.w_ih, l.w_hh, l.b_ih,
                                 l.b_hh, true);
    nb_node *x1 = nb_slice(g, l.x, 1, 0, T), *x2 = nb_slice(g, l.x, 1, T, 2 * T);
    nb_node *h1 = nb_input(g, "h1", NB_F64, 2, SHAPE(N, H));
    nb_node *c1 = nb_input(g, "c1", NB_F64, 2, SHAPE(N, H));
    nb_node *w1 = nb_lstm_seq(g, x1, l.h0, l.c0, l.w_ih, l.w_hh, l.b_ih,
                              l.b_hh, true);
    nb_node *w2 = nb_lstm_seq(g, x2, h1, c1, l.w_ih, l.w_hh, l.b_ih, l.b_hh,
                              true);
    nb_node *last_h = nb_slice(g, w1, 1, T - 1, T);
    nb_node *last_c = nb_slice(g, w1, 1, T, T + 1);
    CHECK(nb_forward(g, whole) == NB_OK && nb_forward(g, last_h) == NB_OK &&
              nb_forward(g, last_c) == NB_OK,
          "%s", nb_graph_error(g));
    CHECK(nb_feed(g, h1, 2, SHAPE(N, H),
                  nb_tensor_cdata(nb_node_value(last_h))) == NB_OK &&
              nb_feed(g, c1, 2, SHAPE(N, H),
                      nb_tensor_cdata(nb_node_value(last_c))) == NB_OK &&
              nb_forward(g, w2) == NB_OK && nb_forward(g, whole) == NB_OK &&
              nb_forward(g, w1) == NB_OK,
          "%s", nb_graph_error(g));
    const nb_tensor *a = nb_node_value(whole), *b1 = nb_node_value(w1),
                    *b2 = nb_node_value(w2);
    double worst = 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t s = 0; s <= 2 * T; s++)
            for (int64_t j = 0; j < H; j++) {
                double u = nb_tensor_get(a, (i * (2 * T + 1) + s) * H + j);
                /* window 1 holds steps 0..T-1, window 2 steps T..2T-1 and
                 * the final c in its row T */
                double v = s < T ? nb_tensor_get(b1, (i * (T + 1) + s) * H + j)
                                 : nb_tensor_get(b2, (i * (T + 1) + s - T) * H + j);
                worst = fmax(worst, fabs(u - v));
            }
    CHECK(worst <= 1e-14, "two windows differ from the whole by %g", worst);
    nb_graph_free(g);
}

/* ---- a sequence length set by each feed ----
 * Token ids [N, T] with both extents NB_DYNAMIC, through an embedding, a
 * fused LSTM layer, a linear layer and the cross-entropy: fed windows of
 * T = 5, 9, 3 and 9 again (and another batch), each gives the loss and
 * gradients of a graph built for that N and T, bit for bit. A fixed
 * reshape in the same graph is refused by the feed it cannot follow. */
static nb_graph *lm_graph(int64_t n, int64_t t, nb_node **ids,
                          nb_node **labels, nb_node **table, nb_node **loss)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 5);
    *ids = nb_input(g, "ids", NB_F64, 2, SHAPE(n, t));
    *labels = nb_input(g, "labels", NB_F64, 2, SHAPE(n, t));
    *table = nb_param(g, "table", NB_F64, 2, SHAPE(7, 4));
    nb_init_normal(g, *table, 0, 1);
    nb_rnn_spec spec = {.cell = NB_RNN_LSTM, .hidden = 5};
    nb_rnn rnn;
    nb_node *x = nb_embedding(g, *table, *ids);
    CHECK(nb_rnn_build(g, x, NULL, NULL, NULL, &spec, &rnn) == NB_OK, "%s",
          nb_graph_error(g));
    nb_node *logits = nb_linear_layer(g, rnn.output, 7, true, "out",
                                      NB_INIT_TORCH, NB_ACT_LINEAR, NULL);
    *loss = nb_softmax_ce_index_loss(g, logits, *labels);
    CHECK(*loss != NULL, "%s", nb_graph_error(g));
    return g;
}

static void feed_window(nb_graph *g, nb_node *ids, nb_node *labels,
                        int64_t n, int64_t t)
{
    double v[4 * 16];
    for (int64_t i = 0; i < n * t; i++)
        v[i] = (double)((3 * i + t) % 7);
    CHECK(nb_feed(g, ids, 2, SHAPE(n, t), v) == NB_OK, "%s",
          nb_graph_error(g));
    for (int64_t i = 0; i < n * t; i++)
        v[i] = (double)((5 * i + 1) % 7);
    CHECK(nb_feed(g, labels, 2, SHAPE(n, t), v) == NB_OK, "%s",
          nb_graph_error(g));
}

static void test_dynamic_length(void)
{
    nb_node *ids, *labels, *table, *loss;
    nb_graph *g = lm_graph(NB_DYNAMIC, NB_DYNAMIC, &ids, &labels, &table,
                           &loss);
    const int64_t windows[5][2] = {{2, 5}, {2, 9}, {2, 3}, {2, 9}, {4, 16}};
    for (int w = 0; w < 5 && loss; w++) {
        int64_t n = windows[w][0], t = windows[w][1];
        nb_node *fids, *flabels, *ftable, *floss;
        nb_graph *f = lm_graph(n, t, &fids, &flabels, &ftable, &floss);
        for (int pass = 0; pass < 2; pass++) { /* general, then compiled */
            feed_window(g, ids, labels, n, t);
            CHECK(nb_forward(g, loss) == NB_OK &&
                      nb_backward(g, loss) == NB_OK,
                  "T = %lld: %s", (long long)t, nb_graph_error(g));
        }
        feed_window(f, fids, flabels, n, t);
        CHECK(floss && nb_forward(f, floss) == NB_OK &&
                  nb_backward(f, floss) == NB_OK,
              "%s", nb_graph_error(f));
        CHECK(nb_tensor_get(nb_node_value(loss), 0) ==
                  nb_tensor_get(nb_node_value(floss), 0),
              "N %lld T %lld: loss %.17g, built for it %.17g", (long long)n,
              (long long)t, nb_tensor_get(nb_node_value(loss), 0),
              nb_tensor_get(nb_node_value(floss), 0));
        const nb_tensor *dg = nb_node_grad(table), *df = nb_node_grad(ftable);
        int differ = 0;
        for (int64_t i = 0; dg && df && i < 7 * 4; i++)
            differ += nb_tensor_get(dg, i) != nb_tensor_get(df, i);
        CHECK(dg && df && differ == 0,
              "T %lld: %d gradient elements differ", (long long)t, differ);
        nb_graph_free(f);
    }
    /* An op that fixes T refuses the feed it cannot follow, by name. */
    nb_node *fixed = nb_reshape(g, ids, 1, SHAPE(4 * 16));
    CHECK(fixed && nb_forward(g, fixed) == NB_OK, "%s", nb_graph_error(g));
    feed_window(g, ids, labels, 4, 15);
    CHECK(nb_forward(g, fixed) != NB_OK, "a fixed reshape followed T 15");
    CHECK_ERROR(g, "reshape", "[4,15]", "[64]");
    nb_graph_clear_error(g);
    CHECK(nb_forward(g, loss) == NB_OK, "the rest runs: %s",
          nb_graph_error(g));
    /* Only the fed extents move. */
    double v[3 * 7] = {0};
    CHECK(nb_feed(g, ids, 3, SHAPE(3, 7, 1), v) == NB_ERR_ARG, "rank 3");
    CHECK_ERROR(g, "feed 'ids'", "[-1,-1]");
    nb_graph_free(g);
}

/* Results do not depend on how the batch rows and GEMM strips are split. */
static void test_thread_counts(nb_dtype dt)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    enum { N = 16, T = 6, E = 24, H = 40 };
    nb_parallel_set_mode(NB_PARALLEL_TEAM);
    for (int kc = 0; kc < 3; kc++) {
        cell k = kc == 0 ? ELMAN : kc == 1 ? LSTM : GRU;
        unsigned char *first = NULL;
        size_t first_len = 0;
        for (int threads = 1; threads <= 3; threads++) {
            omp_set_num_threads(threads);
            rng_state = 42;
            nb_graph *g = nb_graph_new();
            leaves l = make_leaves(g, dt, k, N, T, E, H);
            nb_node *y = fused(g, k, &l, k == LSTM);
            nb_node *loss = nb_sum(g, nb_square(g, y));
            CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK,
                  "%s", nb_graph_error(g));
            const nb_tensor *parts[] = {nb_node_value(y), nb_node_grad(l.x),
                                        nb_node_grad(l.h0), nb_node_grad(l.w_ih),
                                        nb_node_grad(l.w_hh), nb_node_grad(l.b_hh)};
            size_t len = 0;
            for (int i = 0; i < 6; i++)
                len += parts[i] ? (size_t)nb_tensor_size(parts[i]) *
                                      nb_dtype_size(dt)
                                : 0;
            unsigned char *all = malloc(len);
            size_t at = 0;
            for (int i = 0; i < 6; i++)
                if (parts[i]) {
                    size_t b = (size_t)nb_tensor_size(parts[i]) * nb_dtype_size(dt);
                    memcpy(all + at, nb_tensor_cdata(parts[i]), b);
                    at += b;
                }
            if (!first) {
                first = all;
                first_len = len;
            } else {
                CHECK(len == first_len && memcmp(all, first, len) == 0,
                      "cell %d %s: %d threads differ from 1 thread", (int)k,
                      nb_dtype_name(dt), threads);
                free(all);
            }
            nb_graph_free(g);
        }
        free(first);
    }
    omp_set_num_threads(saved);
    nb_parallel_set_mode(NB_PARALLEL_MEASURE);
#else
    (void)dt;
#endif
}

static void test_shape_errors(void)
{
    nb_graph *g = nb_graph_new();
    leaves l = make_leaves(g, NB_F64, LSTM, 2, 4, 3, 2);
    nb_node *x2 = nb_param(g, "x2", NB_F64, 2, SHAPE(2, 3));
    nb_node *wbad = nb_param(g, "wbad", NB_F64, 2, SHAPE(8, 5));
    nb_node *hbad = nb_param(g, "hbad", NB_F64, 2, SHAPE(3, 2));
    nb_node *bbad = nb_param(g, "bbad", NB_F64, 1, SHAPE(7));
    int64_t before = nb_graph_node_count(g);
    CHECK(!nb_lstm_seq(g, x2, l.h0, l.c0, l.w_ih, l.w_hh, NULL, NULL, false),
          "rank-2 x accepted");
    CHECK_ERROR(g, "lstm_seq", "x is [2,3]", "[N, T, E]");
    CHECK(!nb_lstm_seq(g, l.x, l.h0, l.c0, wbad, l.w_hh, NULL, NULL, false),
          "w_ih of the wrong E accepted");
    CHECK_ERROR(g, "lstm_seq", "w_ih is [8,5]", "x is [2,4,3]");
    CHECK(!nb_lstm_seq(g, l.x, l.h0, l.c0, l.w_ih, wbad, NULL, NULL, false),
          "bad w_hh accepted");
    CHECK_ERROR(g, "lstm_seq", "w_hh is [8,5]", "w_ih is [8,3]");
    CHECK(!nb_lstm_seq(g, l.x, hbad, l.c0, l.w_ih, l.w_hh, NULL, NULL, false),
          "h0 of another batch accepted");
    CHECK_ERROR(g, "lstm_seq", "h0 is [3,2]", "x is [2,4,3]");
    CHECK(!nb_lstm_seq(g, l.x, l.h0, hbad, l.w_ih, l.w_hh, NULL, NULL, false),
          "bad c0 accepted");
    CHECK_ERROR(g, "lstm_seq", "c0 is [3,2]");
    CHECK(!nb_lstm_seq(g, l.x, l.h0, l.c0, l.w_ih, l.w_hh, bbad, bbad, false),
          "bad bias accepted");
    CHECK_ERROR(g, "lstm_seq", "b_ih is [7]", "w_ih is [8,3]");
    CHECK(!nb_lstm_seq(g, l.x, l.h0, l.c0, l.w_ih, l.w_hh, l.b_ih, NULL,
                       false),
          "a lone bias accepted");
    CHECK_ERROR(g, "lstm_seq", "together");
    /* LSTM's [4H, E] weights are not a GRU's [3H, E] (8 is no multiple
     * of 3) */
    CHECK(!nb_gru_seq(g, l.x, l.h0, l.w_ih, l.w_hh, NULL, NULL),
          "LSTM weights accepted by the GRU");
    CHECK_ERROR(g, "gru_seq", "w_ih is [8,3]", "[3 H, E]");
    CHECK(!nb_apply(g, nb_find_op("gru_seq"), 4,
                    (nb_node *[]){l.x, l.h0, l.w_ih, l.w_hh},
                    &(bool){true}),
          "final_cell accepted by the GRU");
    CHECK_ERROR(g, "gru_seq", "final_cell");
    CHECK(nb_graph_node_count(g) == before, "failed calls left nodes");
    nb_node *ok = nb_lstm_seq(g, l.x, l.h0, l.c0, l.w_ih, l.w_hh, l.b_ih,
                              l.b_hh, true);
    CHECK(ok && nb_forward(g, ok) == NB_OK, "graph unusable: %s",
          nb_graph_error(g));
    nb_graph_free(g);
}

int main(void)
{
    test_dynamic_length();
    static const int64_t sizes[][4] = {
        {1, 1, 1, 1}, {1, 5, 3, 4}, {3, 4, 2, 3}, {2, 7, 5, 6}, {4, 3, 6, 2},
    };
    for (int kc = 0; kc < 3; kc++) {
        cell k = kc == 0 ? ELMAN : kc == 1 ? LSTM : GRU;
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
            compare_with_composite(k, sizes[i][0], sizes[i][1], sizes[i][2],
                                   sizes[i][3], false, false);
        /* one initial state broadcast over the batch */
        compare_with_composite(k, 3, 4, 2, 3, k == LSTM, true);
        /* enough rows a step that LSTM and Elman take x_t into each
         * step's product (rnn.c, RNN_FUSE_ROWS) */
        compare_with_composite(k, 9, 4, 5, 6, false, false);
        compare_with_composite(k, 8, 3, 2, 5, k == LSTM, true);
    }
    compare_with_composite(LSTM, 2, 5, 3, 4, true, false);
    compare_with_composite(LSTM, 1, 3, 2, 2, true, false);
    test_windows_carry_state();
    test_thread_counts(NB_F32);
    test_thread_counts(NB_F64);
    test_shape_errors();
    return tu_finish("ops_rnn");
}
