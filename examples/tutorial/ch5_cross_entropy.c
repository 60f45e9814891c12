/* Tutorial chapter 5: cross-entropy on softmax and on sigmoid outputs.
 *
 * Softmax with cross-entropy, for one row of logits z and a one-hot (or
 * any) target y with sum_k y_k = 1:
 *
 *     p_k = e^{z_k} / sum_m e^{z_m},    L = -sum_k y_k log p_k,
 *     dp_k/dz_j = p_k ([k = j] - p_j),
 *     dL/dz_j = sum_k (-y_k / p_k) p_k ([k = j] - p_j) = p_j - y_j.
 *
 * nabla's losses average over the rows of a batch, so for N rows each
 * row's gradient is (p - y) / N. The program shows it for N = 2, once
 * with the fused op (softmax_ce_loss) and once as two nodes (softmax, then
 * cce_loss), where the trace shows the message -y/p/N entering the softmax
 * node and (p - y)/N leaving it: the 1/p cancels.
 *
 * Sigmoid with binary cross-entropy, in the softplus form used from the
 * logit z (zeta(u) = log(1 + e^u)):
 *
 *     L = zeta(z) - t z = zeta((1 - 2t) z)  for t in {0, 1},
 *     dL/dz = sigma(z) - t,
 *
 * against the squared error on the sigmoid's output,
 *
 *     L = 1/2 (sigma(z) - t)^2,
 *     dL/dz = (sigma(z) - t) sigma(z) (1 - sigma(z)).
 *
 * For a confidently wrong unit (z = -10, t = 1) the squared error's
 * gradient carries the factor sigma'(z) ~ e^{-10} and almost vanishes; the
 * cross-entropy's stays near -1. The program counts the gradient descent
 * steps each loss needs to pull z from -10 to the right side of 0, with
 * nabla and with a plain-C loop on the hand formulas.
 *
 * Exits 1 if any nabla number disagrees with the hand formulas.
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

enum { N = 2, K = 3 };

static int failures;

static void expect(const char *what, double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * (1 + fabs(want)))) {
        fprintf(stderr,
                "ch5_cross_entropy: %s = %.17g, hand formula gives %.17g\n",
                what, got, want);
        failures++;
    }
}

static void section(const char *key, const char *title)
{
    static int count;
    printf("%s== %s: %s\n", count++ ? "\n" : "", key, title);
}

static nb_node *named(nb_node *n, const char *name)
{
    if (n)
        nb_node_set_name(n, name);
    return n;
}

static double sigma(double z)
{
    return 1 / (1 + exp(-z));
}

static const double logits[N][K] = {{2, 1, -1}, {0.5, 0.5, 3}};
static const double onehot[N][K] = {{1, 0, 0}, {1, 0, 0}};

/* The softmax of each row, by hand (max-shifted, as any careful
 * implementation would). */
static void hand_softmax(double p[N][K])
{
    for (int r = 0; r < N; r++) {
        double mx = fmax(logits[r][0], fmax(logits[r][1], logits[r][2]));
        double sum = 0;
        for (int k = 0; k < K; k++)
            sum += p[r][k] = exp(logits[r][k] - mx);
        for (int k = 0; k < K; k++)
            p[r][k] /= sum;
    }
}

/* The logits z (a parameter) and the targets y (a constant). */
static void make_inputs(nb_graph *g, nb_node **z, nb_node **y)
{
    *z = nb_param(g, "z", NB_F64, 2, (int64_t[]){N, K});
    *y = nb_constant(g, "y", NB_F64, 2, (int64_t[]){N, K});
    if (*z && *y) {
        nb_tensor_copy_from_f64(nb_node_value(*z), &logits[0][0], N * K);
        nb_tensor_copy_from_f64(nb_node_value(*y), &onehot[0][0], N * K);
    }
}

static void print_row(const char *label, int r, const double *v)
{
    printf("row %d %-14s", r, label);
    for (int k = 0; k < K; k++)
        printf(" %10.6f", v[k]);
    printf("\n");
}

static int softmax_ce(void)
{
    double p[N][K];
    hand_softmax(p);

    nb_graph *g = nb_graph_new();
    nb_node *z, *y;
    make_inputs(g, &z, &y);
    nb_node *L = named(nb_softmax_ce_loss(g, z, y), "L");
    nb_trace *t = L ? nb_trace_run(g, L) : NULL;
    if (!t) {
        fprintf(stderr, "ch5_cross_entropy: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    section("fused", "L = softmax_ce_loss(z, y), a batch of N = 2 rows");
    nb_trace_print(t, stdout, 0);

    section("p-minus-y", "the gradient of the logits is (p - y) / N");
    const nb_tensor *dz = nb_trace_grad(t, nb_trace_find(t, z));
    double hand_loss = 0;
    for (int r = 0; r < N; r++) {
        double d[K], q[K], got[K];
        for (int k = 0; k < K; k++) {
            d[k] = p[r][k] - onehot[r][k];
            q[k] = d[k] / N;
            got[k] = nb_tensor_get(dz, r * K + k);
            expect("dL/dz", got[k], q[k], 1e-12);
            hand_loss -= onehot[r][k] * log(p[r][k]) / N;
        }
        print_row("p", r, p[r]);
        print_row("y", r, onehot[r]);
        print_row("p - y", r, d);
        print_row("(p - y) / N", r, q);
        print_row("nabla dL/dz", r, got);
    }
    double Lv = nb_tensor_get(nb_trace_value(t, nb_trace_find(t, L)), 0);
    printf("L = mean over rows of -log p_label = %.6f (by hand %.6f)\n", Lv,
           hand_loss);
    expect("L", Lv, hand_loss, 1e-12);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

static int softmax_then_cce(void)
{
    double p[N][K];
    hand_softmax(p);

    nb_graph *g = nb_graph_new();
    nb_node *z, *y;
    make_inputs(g, &z, &y);
    nb_node *pn = named(nb_softmax(g, z), "p");
    nb_node *L = named(nb_cce_loss(g, pn, y), "L");
    nb_trace *t = L ? nb_trace_run(g, L) : NULL;
    if (!t) {
        fprintf(stderr, "ch5_cross_entropy: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return 1;
    }
    section("unfused", "the same loss as two nodes, p = softmax(z), "
                       "L = cce_loss(p, y)");
    nb_trace_print(t, stdout, 0);
    int64_t ip = nb_trace_find(t, pn);
    const nb_tensor *into_p = nb_trace_in_message(t, ip, 0);
    const nb_tensor *out_of_p = nb_trace_out_message(t, ip, 0);
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            expect("L -> p", nb_tensor_get(into_p, r * K + k),
                   -onehot[r][k] / p[r][k] / N, 1e-12);
            expect("p -> z", nb_tensor_get(out_of_p, r * K + k),
                   (p[r][k] - onehot[r][k]) / N, 1e-12);
        }
    printf("by hand: L sends -y/p/N = %.6g for row 0, class 0, and the "
           "softmax node\n"
           "         turns it into (p - y)/N = %.6g\n",
           -1 / p[0][0] / N, (p[0][0] - 1) / N);
    nb_trace_free(t);
    nb_graph_free(g);
    return 0;
}

/* dL/dz for one sigmoid unit with target 1 at logit zv, under the squared
 * error (bce = 0) or the softplus-form cross-entropy (bce = 1). */
typedef struct unit {
    nb_graph *g;
    nb_node *z, *L;
} unit;

static int unit_new(unit *u, int bce)
{
    u->g = nb_graph_new();
    u->z = nb_param(u->g, "z", NB_F64, 0, NULL);
    nb_node *t = nb_scalar(u->g, NULL, NB_F64, 1);
    u->L = bce ? nb_bce_logits_loss(u->g, u->z, t)
               : nb_sse_loss(u->g, nb_sigmoid(u->g, u->z), t);
    if (!u->L) {
        fprintf(stderr, "ch5_cross_entropy: %s\n", nb_graph_error(u->g));
        nb_graph_free(u->g);
        return 1;
    }
    nb_node_set_name(u->L, "L");
    return 0;
}

static int unit_grad(unit *u, double zv, double *L, double *dz)
{
    nb_tensor_set(nb_node_value(u->z), 0, zv);
    if (nb_forward(u->g, u->L) || nb_backward(u->g, u->L)) {
        fprintf(stderr, "ch5_cross_entropy: %s\n", nb_graph_error(u->g));
        return 1;
    }
    *L = nb_tensor_get(nb_node_value(u->L), 0);
    *dz = nb_tensor_get(nb_node_grad(u->z), 0);
    return 0;
}

/* Gradient descent on z alone, from z0, until sigma(z) > 1/2. */
static long steps_to_right_side(unit *u, double z0, double eta, long limit)
{
    double zv = z0, L, dz;
    long n = 0;
    while (zv <= 0 && n < limit) {
        if (unit_grad(u, zv, &L, &dz))
            return -1;
        zv -= eta * dz;
        n++;
    }
    return n;
}

static long hand_steps(int bce, double z0, double eta, long limit)
{
    double zv = z0;
    long n = 0;
    while (zv <= 0 && n < limit) {
        double y = sigma(zv);
        zv -= eta * (bce ? y - 1 : (y - 1) * y * (1 - y));
        n++;
    }
    return n;
}

static int saturation(void)
{
    unit sq, ce;
    if (unit_new(&sq, 0))
        return 1;
    if (unit_new(&ce, 1)) {
        nb_graph_free(sq.g);
        return 1;
    }
    section("saturation", "one sigmoid unit, target t = 1, dL/dz from nabla");
    printf("%5s  %-11s %-24s %s\n", "z", "sigma(z)", "squared error on sigma",
           "cross-entropy, softplus form");
    static const double zs[] = {-10, -5, -2, 0, 2, 5};
    int rc = 0;
    for (size_t i = 0; i < sizeof zs / sizeof zs[0] && !rc; i++) {
        double Lsq, dsq, Lce, dce, y = sigma(zs[i]);
        rc = unit_grad(&sq, zs[i], &Lsq, &dsq) ||
             unit_grad(&ce, zs[i], &Lce, &dce);
        if (rc)
            break;
        printf("%5g  %-11.6g %-24.6g %.6g\n", zs[i], y, dsq, dce);
        expect("squared error dL/dz", dsq, (y - 1) * y * (1 - y), 1e-12);
        expect("cross-entropy dL/dz", dce, y - 1, 1e-12);
        /* zeta(-z) = log(1 + e^{-z}), the softplus form for t = 1. */
        expect("cross-entropy L", Lce, log1p(exp(-zs[i])), 1e-12);
        expect("squared error L", Lsq, 0.5 * (y - 1) * (y - 1), 1e-12);
    }
    if (!rc) {
        double Lce, dce;
        rc = unit_grad(&ce, -10, &Lce, &dce);
        printf("at z = -10: cross-entropy L = zeta(10) = %.6f, "
               "sigma'(z) = %.6g\n",
               Lce, sigma(-10) * (1 - sigma(-10)));
    }

    const double eta = 1;
    const long limit = 1000000;
    long nsq = rc ? -1 : steps_to_right_side(&sq, -10, eta, limit);
    long nce = rc ? -1 : steps_to_right_side(&ce, -10, eta, limit);
    if (nsq >= 0 && nce >= 0) {
        section("escape", "gradient descent on z from -10, eta = 1, until "
                          "sigma(z) > 1/2");
        printf("squared error on sigma:        %ld steps\n", nsq);
        printf("cross-entropy, softplus form:  %ld steps\n", nce);
        long hsq = hand_steps(0, -10, eta, limit);
        long hce = hand_steps(1, -10, eta, limit);
        if (hsq != nsq || hce != nce) {
            fprintf(stderr,
                    "ch5_cross_entropy: steps %ld and %ld, the hand loop "
                    "took %ld and %ld\n",
                    nsq, nce, hsq, hce);
            failures++;
        }
    } else {
        rc = 1;
    }
    nb_graph_free(sq.g);
    nb_graph_free(ce.g);
    return rc;
}

int main(void)
{
    if (softmax_ce() || softmax_then_cce() || saturation())
        return 1;
    return failures ? 1 : 0;
}
