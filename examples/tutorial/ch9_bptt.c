/* Tutorial chapter 9: backpropagation through time, watched through
 * nabla's backward trace.
 *
 * The scalar recurrence h_t = tanh(w h_{t-1} + x_t), unrolled over three
 * steps with L = h_3, is an ordinary graph in which one weight node w has
 * three consumers, one multiplication per step. Backward is the same
 * message passing as in chapter 1: w receives one message from each step,
 * delta_a_t h_{t-1}, and its gradient is their sum.
 *
 *   unrolled: the three steps built from mul, add and tanh; the trace,
 *             then every delta and message recomputed by hand.
 *   fused:    the same recurrence as one elman_seq node (nabla's fused
 *             Elman layer); its gradient for w equals the sum above.
 *   vanish:   thirty steps of the fused node; dL/dx_t, the gradient that
 *             reaches step t, shrinks by w (1 - h_t^2) per step back.
 *
 *   build-dir/examples/tutorial/ch9_bptt
 *
 * Exits 1 if any number nabla computes disagrees with the hand formula.
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

static int failures;

/* Complains on stderr, so stdout stays exactly what the chapter quotes. */
static void expect(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
        fprintf(stderr, "ch9_bptt: %s = %.17g, hand formula gives %.17g\n",
                what, got, want);
        failures++;
    }
}

static nb_node *scalar(nb_graph *g, nb_node *(*make)(nb_graph *, const char *,
                                                     nb_dtype, int,
                                                     const int64_t *),
                       const char *name, double v)
{
    nb_node *p = make(g, name, NB_F64, 0, NULL);
    if (p)
        nb_tensor_set(nb_node_value(p), 0, v);
    return p;
}

enum { T = 3 };
static const double W = 0.8, H0 = 0.5, XS[T] = {1, -1, 2};

static int unrolled(void)
{
    printf("== unrolled: h_t = tanh(w h_{t-1} + x_t), three steps, "
           "L = h_3\n");
    nb_graph *g = nb_graph_new();
    nb_node *w = scalar(g, nb_param, "w", W);
    nb_node *h = scalar(g, nb_constant, "h0", H0);
    nb_node *m[T];
    for (int t = 0; t < T; t++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", t + 1);
        nb_node *x = scalar(g, nb_constant, name, XS[t]);
        m[t] = nb_mul(g, w, h);
        snprintf(name, sizeof name, "m%d", t + 1);
        nb_node_set_name(m[t], name);
        nb_node *a = nb_add(g, m[t], x);
        snprintf(name, sizeof name, "a%d", t + 1);
        nb_node_set_name(a, name);
        h = nb_tanh(g, a);
        snprintf(name, sizeof name, "h%d", t + 1);
        nb_node_set_name(h, name);
    }
    nb_trace *tr = h ? nb_trace_run(g, h) : NULL;
    if (!tr) {
        fprintf(stderr, "ch9_bptt: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    nb_trace_print(tr, stdout, 0);

    /* By hand: forward, then backward from delta_h3 = 1. Each step sends
     * delta_a_t = delta_h_t (1 - h_t^2) to its mul node, which sends
     * delta_a_t h_{t-1} to w and delta_a_t w to h_{t-1}. */
    double hs[T + 1] = {H0}, msg[T], dh = 1, sum = 0;
    for (int t = 0; t < T; t++)
        hs[t + 1] = tanh(W * hs[t] + XS[t]);
    printf("by hand: h1 = %g, h2 = %g, h3 = %g\n", hs[1], hs[2], hs[3]);
    for (int t = T - 1; t >= 0; t--) {
        double da = dh * (1 - hs[t + 1] * hs[t + 1]);
        msg[t] = da * hs[t];
        printf("         step %d: delta_a%d = %g, message to w = "
               "delta_a%d h%d = %g\n",
               t + 1, t + 1, da, t + 1, t, msg[t]);
        dh = da * W;
    }
    for (int t = 0; t < T; t++)
        sum += msg[t];
    printf("         dL/dw = (%g) + (%g) + (%g) = %g\n", msg[0], msg[1],
           msg[2], sum);
    /* w's messages are listed in forward order of their senders. */
    int iw = nb_trace_find(tr, w);
    if (nb_trace_in_count(tr, iw) != T) {
        fprintf(stderr, "ch9_bptt: w should receive %d messages\n", T);
        failures++;
    }
    for (int k = 0; k < nb_trace_in_count(tr, iw) && k < T; k++) {
        double got = nb_tensor_get(nb_trace_in_message(tr, iw, k), 0);
        expect("message to w", got, msg[k]);
    }
    expect("dL/dw", nb_tensor_get(nb_trace_grad(tr, iw), 0), sum);
    expect("h3", nb_tensor_get(nb_trace_value(tr, nb_trace_find(tr, h)), 0),
           hs[3]);
    nb_trace_free(tr);
    nb_graph_free(g);
    return 0;
}

/* The recurrence as one elman_seq node over x [1, n, 1]: w_ih = 1 (a
 * constant), w_hh = w, no biases. Returns the graph; *y is the node. */
static nb_graph *fused_graph(int n, const double *xs, nb_node **x,
                             nb_node **w, nb_node **y)
{
    nb_graph *g = nb_graph_new();
    *x = nb_param(g, "x", NB_F64, 3, (const int64_t[]){1, n, 1});
    nb_node *h0 = nb_constant(g, "h0", NB_F64, 2, (const int64_t[]){1, 1});
    nb_node *w_ih = nb_constant(g, "w_ih", NB_F64, 2, (const int64_t[]){1, 1});
    *w = nb_param(g, "w_hh", NB_F64, 2, (const int64_t[]){1, 1});
    for (int t = 0; t < n; t++)
        nb_tensor_set(nb_node_value(*x), t, xs[t]);
    nb_tensor_set(nb_node_value(h0), 0, H0);
    nb_tensor_set(nb_node_value(w_ih), 0, 1);
    nb_tensor_set(nb_node_value(*w), 0, W);
    *y = nb_elman_seq(g, *x, h0, w_ih, *w, NULL, NULL);
    return g;
}

static int fused(void)
{
    printf("\n== fused: the same three steps as one elman_seq node\n");
    nb_node *x, *w, *y;
    nb_graph *g = fused_graph(T, XS, &x, &w, &y);
    nb_node *loss = nb_sum(g, nb_slice(g, y, 1, T - 1, T));
    if (!loss || nb_forward(g, loss) || nb_backward(g, loss)) {
        fprintf(stderr, "ch9_bptt: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    double hs[T + 1] = {H0}, dh = 1, sum = 0;
    for (int t = 0; t < T; t++)
        hs[t + 1] = tanh(W * hs[t] + XS[t]);
    for (int t = T - 1; t >= 0; t--) {
        double da = dh * (1 - hs[t + 1] * hs[t + 1]);
        sum += da * hs[t];
        dh = da * W;
    }
    double got = nb_tensor_get(nb_node_grad(w), 0);
    printf("elman_seq: y = [%g, %g, %g], dL/dw_hh = %g\n",
           nb_tensor_get(nb_node_value(y), 0),
           nb_tensor_get(nb_node_value(y), 1),
           nb_tensor_get(nb_node_value(y), 2), got);
    expect("elman_seq dL/dw_hh", got, sum);
    for (int t = 0; t < T; t++)
        expect("elman_seq h_t", nb_tensor_get(nb_node_value(y), t),
               hs[t + 1]);
    nb_graph_free(g);
    return 0;
}

static int vanish(void)
{
    enum { N = 30 };
    printf("\n== vanish: thirty steps, L = h_30; the gradient reaching "
           "step t\n");
    double xs[N];
    for (int t = 0; t < N; t++)
        xs[t] = 0.5 * sin(1.7 * t);
    nb_node *x, *w, *y;
    nb_graph *g = fused_graph(N, xs, &x, &w, &y);
    nb_node *loss = nb_sum(g, nb_slice(g, y, 1, N - 1, N));
    if (!loss || nb_forward(g, loss) || nb_backward(g, loss)) {
        fprintf(stderr, "ch9_bptt: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    /* dL/dx_t = delta_a_t, and delta_a_{t-1} = delta_a_t w (1 - h_{t-1}^2) */
    double hs[N + 1] = {H0}, da[N], dh = 1;
    for (int t = 0; t < N; t++)
        hs[t + 1] = tanh(W * hs[t] + xs[t]);
    for (int t = N - 1; t >= 0; t--) {
        da[t] = dh * (1 - hs[t + 1] * hs[t + 1]);
        dh = da[t] * W;
    }
    printf("   t   dL/dx_t\n");
    for (int t = N; t >= 1; t -= (t > 25 ? 1 : 5)) {
        double got = nb_tensor_get(nb_node_grad(x), t - 1);
        printf("  %2d   %.3e\n", t, got);
        expect("dL/dx_t", got, da[t - 1]);
    }
    nb_graph_free(g);
    return 0;
}

int main(void)
{
    if (unrolled() || fused() || vanish())
        return 1;
    return failures ? 1 : 0;
}
