/* Tutorial chapter 8: weight sharing is fan-out.
 *
 * A convolution applies one kernel w at every position of its input:
 *
 *   y_i = sum_k w_k x_{i+k}          (1-D, stride 1, no padding)
 *
 * so w is one node used by every position, exactly as x in chapter 1 was
 * used by both a and L. Backward, each position i sends w the message
 * delta_{y_i} * (x_i, x_{i+1}, ...), its own window scaled by its own
 * delta, and w's gradient is the sum of those messages (chapter 1's rule:
 * fan-out forward is a sum backward).
 *
 *   conv:     y = conv1d(x, w), L = 1/2 sum y^2 (nb_l2_penalty), with
 *             x = [1, 2, -1, 3, 0.5] and w = [0.5, -1, 2]: the conv node's
 *             message to w, checked against the sum over positions done
 *             by hand.
 *   unrolled: the same convolution written out position by position,
 *             pos_i = w * window_i, y_i = sum(pos_i): w now has one user
 *             per position, and the trace shows its three messages and
 *             their sum, which must equal the conv node's message.
 *   pool:     m = max_pool2d(x) with 2x2 windows over a 2x4 image, one
 *             window holding a tie, L = 1/2 sum m^2: every window is a max
 *             node of chapter 2 and routes its delta to its first winner.
 *
 * Exits 1 if nabla's numbers disagree with the hand arithmetic.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "nabla/nabla.h"

#define XN 5 /* input length */
#define KN 3 /* kernel taps */
#define YN (XN - KN + 1)

static const double xs[XN] = {1, 2, -1, 3, 0.5};
static const double ws[KN] = {0.5, -1, 2};

static int failures;

static void expect(const char *what, int i, double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) {
        fprintf(stderr,
                "ch8_weight_sharing: %s[%d] = %.17g, hand arithmetic gives "
                "%.17g\n",
                what, i, got, want);
        failures++;
    }
}

static void section(const char *key, const char *title)
{
    static int count;
    printf("%s== %s: %s\n", count++ ? "\n" : "", key, title);
}

static nb_node *filled(nb_node *n, const double *v, int64_t count)
{
    if (n)
        nb_tensor_copy_from_f64(nb_node_value(n), v, count);
    return n;
}

/* Names y, appends L = 1/2 sum y^2 and runs the traced pass, printing the
 * whole trace when `print`; on failure reports, frees g and returns NULL. */
static nb_trace *half_square_traced(nb_graph *g, nb_node *y, const char *name,
                                    bool print)
{
    nb_node_set_name(y, name);
    nb_node *L = nb_l2_penalty(g, y);
    nb_node_set_name(L, "L");
    nb_trace *t = L ? nb_trace_run(g, L) : NULL;
    if (!t) {
        fprintf(stderr, "ch8_weight_sharing: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return NULL;
    }
    if (print)
        nb_trace_print(t, stdout, 0);
    return t;
}

/* The hand arithmetic both convolution sections check against. */
static double hand_y[YN], hand_msg[YN][KN], hand_dw[KN];

static void by_hand(void)
{
    for (int i = 0; i < YN; i++) {
        hand_y[i] = 0;
        for (int k = 0; k < KN; k++)
            hand_y[i] += ws[k] * xs[i + k];
    }
    /* L = 1/2 sum y^2, so delta_{y_i} = y_i; position i sends
     * y_i * window_i to w. */
    for (int k = 0; k < KN; k++) {
        hand_dw[k] = 0;
        for (int i = 0; i < YN; i++) {
            hand_msg[i][k] = hand_y[i] * xs[i + k];
            hand_dw[k] += hand_msg[i][k];
        }
    }
}

static void print_hand_sum(void)
{
    printf("by hand: delta_y = y (L = 1/2 sum y^2); position i sends "
           "y_i * x[i..i+2]:\n");
    for (int i = 0; i < YN; i++) {
        printf("  position %d: %4g * [%g, %g, %g] = [%g, %g, %g]\n", i,
               hand_y[i], xs[i], xs[i + 1], xs[i + 2], hand_msg[i][0],
               hand_msg[i][1], hand_msg[i][2]);
    }
    printf("  dL/dw = sum of the %d messages = [%g, %g, %g]\n", YN,
           hand_dw[0], hand_dw[1], hand_dw[2]);
}

static int conv(void)
{
    section("conv", "y = conv1d(x, w), L = 1/2 sum y^2");
    nb_graph *g = nb_graph_new();
    nb_node *x = filled(nb_constant(g, "x", NB_F64, 3, (int64_t[]){1, 1, XN}),
                        xs, XN);
    nb_node *w =
        filled(nb_param(g, "w", NB_F64, 3, (int64_t[]){1, 1, KN}), ws, KN);
    nb_node *y = nb_conv1d(g, x, w, 1, 0, 0, 1, 1);
    nb_trace *t = half_square_traced(g, y, "y", true);
    if (!t)
        return 1;
    print_hand_sum();
    const nb_tensor *yv = nb_trace_value(t, nb_trace_find(t, y));
    const nb_tensor *dw = nb_trace_grad(t, nb_trace_find(t, w));
    for (int i = 0; i < YN; i++)
        expect("y", i, nb_tensor_get(yv, i), hand_y[i]);
    for (int k = 0; k < KN; k++)
        expect("dL/dw", k, nb_tensor_get(dw, k), hand_dw[k]);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

static int unrolled(void)
{
    section("unrolled",
            "the same convolution, one node per position: w has 3 users");
    nb_graph *g = nb_graph_new();
    nb_node *w = filled(nb_param(g, "w", NB_F64, 1, (int64_t[]){KN}), ws, KN);
    nb_node *pos[YN], *ys[YN];
    for (int i = 0; i < YN; i++) {
        char name[16];
        snprintf(name, sizeof name, "window%d", i);
        nb_node *win = filled(nb_constant(g, name, NB_F64, 1, (int64_t[]){KN}),
                              xs + i, KN);
        pos[i] = nb_mul(g, w, win);
        snprintf(name, sizeof name, "pos%d", i);
        nb_node_set_name(pos[i], name);
        ys[i] = nb_sum_axis(g, pos[i], 0, true);
    }
    nb_trace *t = half_square_traced(g, nb_concat(g, YN, ys, 0), "y", false);
    if (!t)
        return 1;
    /* The whole trace has 12 nodes; w's block is the one this chapter is
     * about, so it is printed from the trace's accessors. */
    int64_t e = nb_trace_find(t, w);
    int n = nb_trace_in_count(t, e);
    char buf[256];
    printf("w: %d users, so %d messages (from the trace)\n", n, n);
    for (int k = 0; k < n; k++) {
        nb_tensor_summary(nb_trace_in_message(t, e, k), 0, buf, sizeof buf);
        printf("  message from '%s' (input %d) = %s\n",
               nb_node_name(nb_trace_in_sender(t, e, k)),
               nb_trace_in_slot(t, e, k), buf);
    }
    nb_tensor_summary(nb_trace_grad(t, e), 0, buf, sizeof buf);
    printf("  delta = sum of %d messages = %s\n", n, buf);
    if (n != YN) {
        fprintf(stderr, "ch8_weight_sharing: w should receive %d messages\n",
                YN);
        failures++;
    }
    /* Messages arrive in backward order; match each to its position by
     * its sender. */
    for (int k = 0; k < n && n == YN; k++) {
        nb_node *from = nb_trace_in_sender(t, e, k);
        for (int i = 0; i < YN; i++) {
            if (from != pos[i])
                continue;
            const nb_tensor *m = nb_trace_in_message(t, e, k);
            for (int j = 0; j < KN; j++)
                expect("message from pos", i, nb_tensor_get(m, j),
                       hand_msg[i][j]);
        }
    }
    for (int k = 0; k < KN; k++)
        expect("unrolled dL/dw", k, nb_tensor_get(nb_trace_grad(t, e), k),
               hand_dw[k]);
    printf("by hand: the same three messages and the same sum as the conv "
           "node's\n");
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

static int pool(void)
{
    enum { H = 2, W = 4 };
    static const double img[H * W] = {0.5, 2, -1, 3, 1, -0.5, 3, 0};
    section("pool", "m = max_pool2d(x), 2x2 windows, L = 1/2 sum m^2");
    nb_graph *g = nb_graph_new();
    nb_node *x = filled(
        nb_param(g, "x", NB_F64, 4, (int64_t[]){1, 1, H, W}), img, H * W);
    nb_pool2d_params p = {.kernel = {2, 2}, .stride = {2, 2}};
    nb_trace *t = half_square_traced(g, nb_max_pool2d(g, x, &p), "m", true);
    if (!t)
        return 1;

    /* Each window: the first maximum in row-major window order wins and
     * receives the window's delta m (L = 1/2 sum m^2), the rest 0. */
    double want[H * W] = {0};
    printf("by hand:");
    for (int c = 0; c < W / 2; c++) {
        int win = 2 * c, ties = 0;
        for (int r = 0; r < 2; r++)
            for (int s = 0; s < 2; s++) {
                int at = r * W + 2 * c + s;
                if (img[at] > img[win])
                    win = at, ties = 0;
                else if (at != win && img[at] == img[win])
                    ties++;
            }
        want[win] = img[win];
        printf("%s window %d: max %g at (%d, %d)%s, which receives %g\n",
               c ? "        " : "", c, img[win], win / W, win % W,
               ties ? ", the first of a tie" : "", img[win]);
    }
    const nb_tensor *dx = nb_trace_grad(t, nb_trace_find(t, x));
    for (int i = 0; i < H * W; i++)
        expect("dL/dx", i, nb_tensor_get(dx, i), want[i]);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

int main(void)
{
    by_hand();
    if (conv() || unrolled() || pool())
        return 1;
    return failures ? 1 : 0;
}
