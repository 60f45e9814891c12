/* Tutorial chapter 4: backprop in a d-H-K network, and the stochastic
 * backprop loop.
 *
 * The network, built by hand from ops (one sample x, a row of d inputs):
 *
 *     s1 = x W1 + b1      hidden pre-activations s_j,  W1[i][j] = w_ji
 *     h  = sigma(s1)      hidden outputs h_j
 *     s2 = h W2 + b2      output pre-activations s_k,  W2[j][k] = w_kj
 *     y  = sigma(s2)      outputs y_k
 *     L  = 1/2 sum_k (y_k - t_k)^2
 *
 * The two delta formulas of the lecture, with e_k = y_k - t_k:
 *
 *     output layer:  delta_k = dL/ds_k = e_k sigma'(s_k)
 *     hidden layer:  delta_j = dL/ds_j = sigma'(s_j) sum_k w_kj delta_k
 *
 * with sigma'(s) = sigma(s) (1 - sigma(s)), and the weight gradients
 * dL/dw_kj = delta_k h_j, dL/dw_ji = delta_j x_i, dL/db = delta.
 *
 * The program checks nabla's deltas for one sample against these formulas,
 * then trains the net by stochastic backprop (one update per sample,
 * w -= eta dL/dw, samples in a fresh random order each epoch) and runs a
 * plain-C replica of the same loop, written with nothing but the two delta
 * formulas, in lockstep: after every step both must hold the same weights.
 * The task: 3 binary inputs, 2 targets, t_1 = x_1 XOR x_2 and t_2 = the
 * majority of the three bits.
 *
 *   build-dir/examples/tutorial/ch4_network [--trace]
 *
 * --trace also prints nabla's full trace of the first sample. Exits 1 if
 * nabla and the hand formulas disagree or the loss does not fall.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

enum { D = 3, H = 4, K = 2, N = 8 };

static int failures;

static void fail(const char *fmt, const char *what, double got, double want)
{
    fprintf(stderr, fmt, what, got, want);
    failures++;
}

static void expect(const char *what, double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * (1 + fabs(want))))
        fail("ch4_network: %s = %.17g, hand formula gives %.17g\n", what, got,
             want);
}

static void section(const char *key, const char *title)
{
    static int count;
    printf("%s== %s: %s\n", count++ ? "\n" : "", key, title);
}

static double sigma(double s)
{
    return 1 / (1 + exp(-s));
}

/* The plain-C network: the weights and one sample's forward and backward
 * values, in the lecture's index order. */
typedef struct hand_net {
    double w1[D][H], b1[H], w2[H][K], b2[K];
    double sj[H], hj[H], sk[K], yk[K], ek[K], dk[K], back[H], dj[H];
} hand_net;

static double hand_forward_backward(hand_net *n, const double *x,
                                    const double *t)
{
    double L = 0;
    for (int j = 0; j < H; j++) {
        n->sj[j] = n->b1[j];
        for (int i = 0; i < D; i++)
            n->sj[j] += x[i] * n->w1[i][j];
        n->hj[j] = sigma(n->sj[j]);
    }
    for (int k = 0; k < K; k++) {
        n->sk[k] = n->b2[k];
        for (int j = 0; j < H; j++)
            n->sk[k] += n->hj[j] * n->w2[j][k];
        n->yk[k] = sigma(n->sk[k]);
        n->ek[k] = n->yk[k] - t[k];
        /* output layer: delta_k = e_k sigma'(s_k) */
        n->dk[k] = n->ek[k] * n->yk[k] * (1 - n->yk[k]);
        L += 0.5 * n->ek[k] * n->ek[k];
    }
    for (int j = 0; j < H; j++) {
        /* hidden layer: delta_j = sigma'(s_j) sum_k w_kj delta_k */
        n->back[j] = 0;
        for (int k = 0; k < K; k++)
            n->back[j] += n->w2[j][k] * n->dk[k];
        n->dj[j] = n->hj[j] * (1 - n->hj[j]) * n->back[j];
    }
    return L;
}

static void hand_update(hand_net *n, const double *x, double eta)
{
    for (int j = 0; j < H; j++) {
        for (int k = 0; k < K; k++)
            n->w2[j][k] -= eta * n->dk[k] * n->hj[j];
        for (int i = 0; i < D; i++)
            n->w1[i][j] -= eta * n->dj[j] * x[i];
        n->b1[j] -= eta * n->dj[j];
    }
    for (int k = 0; k < K; k++)
        n->b2[k] -= eta * n->dk[k];
}

/* The nabla network. */
typedef struct net {
    nb_graph *g;
    nb_node *x, *t, *W1, *b1, *W2, *b2, *s1, *h, *hW2, *s2, *y, *L;
} net;

static nb_node *named(nb_node *n, const char *name)
{
    if (n)
        nb_node_set_name(n, name);
    return n;
}

static int build(net *m)
{
    nb_graph *g = m->g = nb_graph_new();
    m->x = nb_input(g, "x", NB_F64, 2, (int64_t[]){1, D});
    m->t = nb_input(g, "t", NB_F64, 2, (int64_t[]){1, K});
    m->W1 = nb_param(g, "W1", NB_F64, 2, (int64_t[]){D, H});
    m->b1 = nb_param(g, "b1", NB_F64, 1, (int64_t[]){H});
    m->W2 = nb_param(g, "W2", NB_F64, 2, (int64_t[]){H, K});
    m->b2 = nb_param(g, "b2", NB_F64, 1, (int64_t[]){K});
    m->s1 =
        named(nb_add(g, named(nb_matmul(g, m->x, m->W1), "xW1"), m->b1), "s1");
    m->h = named(nb_sigmoid(g, m->s1), "h");
    m->hW2 = named(nb_matmul(g, m->h, m->W2), "hW2");
    m->s2 = named(nb_add(g, m->hW2, m->b2), "s2");
    m->y = named(nb_sigmoid(g, m->s2), "y");
    m->L = named(nb_sse_loss(g, m->y, m->t), "L");
    if (!m->L) {
        fprintf(stderr, "ch4_network: %s\n", nb_graph_error(g));
        return 1;
    }
    return 0;
}

static int feed(net *m, const double *x, const double *t)
{
    if (nb_feed_data(m->g, m->x, x) ||
        nb_feed_data(m->g, m->t, t)) {
        fprintf(stderr, "ch4_network: %s\n", nb_graph_error(m->g));
        return 1;
    }
    return 0;
}

static void sgd_update(net *m, double eta)
{
    nb_node *params[4] = {m->W1, m->b1, m->W2, m->b2};
    for (int p = 0; p < 4; p++) {
        double *w = nb_tensor_f64(nb_node_value(params[p]));
        const double *dw = nb_tensor_f64(nb_node_grad(params[p]));
        for (int64_t i = 0; i < nb_tensor_size(nb_node_value(params[p])); i++)
            w[i] -= eta * dw[i];
    }
}

/* Largest |nabla weight - replica weight| over every parameter. */
static double weight_gap(net *m, const hand_net *n)
{
    const double *src[4] = {&n->w1[0][0], n->b1, &n->w2[0][0], n->b2};
    nb_node *params[4] = {m->W1, m->b1, m->W2, m->b2};
    double gap = 0;
    for (int p = 0; p < 4; p++) {
        const nb_tensor *v = nb_node_value(params[p]);
        for (int64_t i = 0; i < nb_tensor_size(v); i++)
            gap = fmax(gap, fabs(nb_tensor_get(v, i) - src[p][i]));
    }
    return gap;
}

static void print_vec(const char *label, const double *v, int n)
{
    printf("%-22s", label);
    for (int i = 0; i < n; i++)
        printf(" %10.6f", v[i]);
    printf("\n");
}

static void print_tensor(const char *label, const nb_tensor *t)
{
    double v[H];
    for (int64_t i = 0; i < nb_tensor_size(t) && i < H; i++)
        v[i] = nb_tensor_get(t, i);
    print_vec(label, v, (int)nb_tensor_size(t));
}

static void data_set(double xs[N][D], double ts[N][K])
{
    for (int s = 0; s < N; s++) {
        for (int i = 0; i < D; i++)
            xs[s][i] = (s >> (D - 1 - i)) & 1;
        int ones = (int)(xs[s][0] + xs[s][1] + xs[s][2]);
        ts[s][0] = xs[s][0] != xs[s][1];
        ts[s][1] = ones >= 2;
    }
}

/* Sum of the per-sample losses over the data set, for both networks. */
static int total_loss(net *m, hand_net *n, double xs[N][D], double ts[N][K],
                      double *nabla, double *hand)
{
    *nabla = *hand = 0;
    for (int s = 0; s < N; s++) {
        if (feed(m, xs[s], ts[s]) || nb_forward(m->g, m->L))
            return 1;
        *nabla += nb_tensor_get(nb_node_value(m->L), 0);
        *hand += hand_forward_backward(n, xs[s], ts[s]);
    }
    return 0;
}

/* One sample, both ways: the lecture's quantities side by side. */
static int one_sample(net *m, hand_net *n, const double *x, const double *t,
                      int print_trace)
{
    if (feed(m, x, t))
        return 1;
    nb_trace *tr = nb_trace_run(m->g, m->L);
    if (!tr) {
        fprintf(stderr, "ch4_network: %s\n", nb_graph_error(m->g));
        return 1;
    }
    if (print_trace) {
        section("trace", "nabla's full trace of the first sample");
        nb_trace_print(tr, stdout, 0);
    }
    hand_forward_backward(n, x, t);
    const nb_tensor *dk = nb_trace_grad(tr, nb_trace_find(tr, m->s2));
    const nb_tensor *dj = nb_trace_grad(tr, nb_trace_find(tr, m->s1));
    /* The message the matmul node h W2 sends to h is sum_k w_kj delta_k,
     * and the sigmoid node h turns it into delta_j. */
    const nb_tensor *back =
        nb_trace_out_message(tr, nb_trace_find(tr, m->hW2), 0);

    section("output", "output layer, x = [1, 0, 1], t = [1, 1]");
    print_vec("s_k", n->sk, K);
    print_vec("y_k = sigma(s_k)", n->yk, K);
    print_vec("e_k = y_k - t_k", n->ek, K);
    print_vec("delta_k (by hand)", n->dk, K);
    print_tensor("delta_k (nabla, s2)", dk);

    section("hidden", "hidden layer, same sample");
    print_vec("s_j", n->sj, H);
    print_vec("h_j = sigma(s_j)", n->hj, H);
    print_vec("sum_k w_kj delta_k", n->back, H);
    print_tensor("  (nabla, hW2 -> h)", back);
    print_vec("delta_j (by hand)", n->dj, H);
    print_tensor("delta_j (nabla, s1)", dj);

    for (int k = 0; k < K; k++)
        expect("delta_k", nb_tensor_get(dk, k), n->dk[k], 1e-12);
    for (int j = 0; j < H; j++) {
        expect("sum_k w_kj delta_k", nb_tensor_get(back, j), n->back[j], 1e-12);
        expect("delta_j", nb_tensor_get(dj, j), n->dj[j], 1e-12);
    }
    /* Weight gradients are outer products: delta_k h_j and delta_j x_i. */
    const nb_tensor *gW2 = nb_trace_grad(tr, nb_trace_find(tr, m->W2));
    const nb_tensor *gW1 = nb_trace_grad(tr, nb_trace_find(tr, m->W1));
    for (int j = 0; j < H; j++) {
        for (int k = 0; k < K; k++)
            expect("dL/dw_kj", nb_tensor_get(gW2, j * K + k),
                   n->dk[k] * n->hj[j], 1e-12);
        for (int i = 0; i < D; i++)
            expect("dL/dw_ji", nb_tensor_get(gW1, i * H + j), n->dj[j] * x[i],
                   1e-12);
    }
    nb_trace_free(tr);
    return 0;
}

int main(int argc, char **argv)
{
    const double eta = 0.5;
    const int epochs = 2000;
    int print_trace = argc > 1 && !strcmp(argv[1], "--trace");
    double xs[N][D], ts[N][K];
    data_set(xs, ts);

    net m;
    hand_net n;
    if (build(&m))
        return 1;
    /* Weights uniform in (-1, 1) from the graph's seeded generator, biases
     * zero; the replica starts from the same numbers. */
    nb_graph_seed(m.g, 2024);
    memset(&n, 0, sizeof n);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < H; j++)
            n.w1[i][j] = 2 * nb_rng_uniform(m.g) - 1;
    for (int j = 0; j < H; j++)
        for (int k = 0; k < K; k++)
            n.w2[j][k] = 2 * nb_rng_uniform(m.g) - 1;
    nb_tensor_copy_from_f64(nb_node_value(m.W1), &n.w1[0][0], D * H);
    nb_tensor_copy_from_f64(nb_node_value(m.W2), &n.w2[0][0], H * K);

    section("network", "a 3-4-2 sigmoid network built from ops");
    printf("s1 = x W1 + b1, h = sigma(s1), s2 = h W2 + b2, y = sigma(s2),\n"
           "L = 1/2 sum_k (y_k - t_k)^2\n");
    printf("W1, W2 uniform in (-1, 1) (seed 2024), b1 = b2 = 0\n");

    if (one_sample(&m, &n, xs[5], ts[5], print_trace)) {
        nb_graph_free(m.g);
        return 1;
    }

    section("training", "stochastic backprop, one update per sample");
    printf("eta = %g, %d samples in a new random order each epoch\n", eta, N);
    printf("%6s  %s\n", "epoch", "sum of the 8 losses");
    double first = 0, last = 0, gap = 0;
    for (int epoch = 0; epoch <= epochs; epoch++) {
        if (epoch == 0 || epoch == 1 || epoch == 10 || epoch % 250 == 0) {
            double lossn, lossh;
            if (total_loss(&m, &n, xs, ts, &lossn, &lossh))
                break;
            printf("%6d  %.6f\n", epoch, lossn);
            expect("sum of losses", lossn, lossh, 1e-9);
            if (epoch == 0)
                first = lossn;
            last = lossn;
        }
        if (epoch == epochs)
            break;
        int order[N];
        for (int s = 0; s < N; s++)
            order[s] = s;
        for (int s = N - 1; s > 0; s--) {
            int r = (int)nb_rng_below(m.g, s + 1), tmp = order[s];
            order[s] = order[r];
            order[r] = tmp;
        }
        for (int s = 0; s < N; s++) {
            const double *x = xs[order[s]], *t = ts[order[s]];
            if (feed(&m, x, t) || nb_forward(m.g, m.L) ||
                nb_backward(m.g, m.L)) {
                fprintf(stderr, "ch4_network: %s\n", nb_graph_error(m.g));
                nb_graph_free(m.g);
                return 1;
            }
            sgd_update(&m, eta);
            hand_forward_backward(&n, x, t);
            hand_update(&n, x, eta);
            gap = fmax(gap, weight_gap(&m, &n));
        }
    }
    printf("plain-C replica, same %d updates: weights agree within 1e-9: "
           "%s\n",
           epochs * N, gap <= 1e-9 ? "yes" : "NO");
    if (gap > 1e-9)
        fail("ch4_network: %s: weights differ by %g (limit %g)\n", "replica",
             gap, 1e-9);
    if (!(last < 0.05 * first))
        fail("ch4_network: %s: loss %g did not fall below 5%% of %g\n",
             "training", last, first);

    section("outputs", "the trained network on all 8 inputs");
    printf("%-10s%-8s%s\n", "x", "t", "y");
    int right = 0;
    for (int s = 0; s < N; s++) {
        if (feed(&m, xs[s], ts[s]) || nb_forward(m.g, m.y))
            break;
        const nb_tensor *y = nb_node_value(m.y);
        printf("%g %g %g     %g %g     %.3f %.3f\n", xs[s][0], xs[s][1],
               xs[s][2], ts[s][0], ts[s][1], nb_tensor_get(y, 0),
               nb_tensor_get(y, 1));
        for (int k = 0; k < K; k++)
            right += (nb_tensor_get(y, k) > 0.5) == (ts[s][k] > 0.5);
    }
    printf("%d of %d outputs on the right side of 0.5\n", right, N * K);
    if (right != N * K)
        fail("ch4_network: %s: %g of %g outputs right\n", "outputs", right,
             N * K);
    nb_graph_free(m.g);
    return failures ? 1 : 0;
}
