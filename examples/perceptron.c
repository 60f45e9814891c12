/* Rosenblatt's perceptron and its learning rule.
 *
 * A perceptron outputs o = step(w . x + b) (1 if w . x + b > 0, else 0).
 * After each sample with target t in {0, 1} it corrects itself:
 *
 *   w <- w + eta (t - o) x        b <- b + eta (t - o)
 *
 * which does nothing when o is right and otherwise tilts the separating
 * line towards the misclassified point. This is not gradient descent (the
 * step has no useful gradient); the graph only computes o, with nb_step,
 * and the update is written by hand on the parameters' values.
 *
 * The convergence theorem (Novikoff 1962): if some unit vector u separates
 * the data with margin gamma = min_i s_i u . (x_i, 1) > 0 (s_i = +-1 the
 * label, (x_i, 1) the input with a constant 1 for the bias) and
 * R = max_i |(x_i, 1)|, then from w = 0 the rule makes at most
 * (R / gamma)^2 mistakes, whatever eta, and then stops changing.
 *
 * The program trains on AND and on a random linearly separable 2-D set
 * (from the graph's RNG), stating the bound and checking that it converges
 * within it, then on XOR, where no line separates {(0,1), (1,0)} from
 * {(0,0), (1,1)}, so no epoch is ever free of mistakes. It exits 1 unless
 * both separable sets converge within the mistake bound and the epoch cap,
 * and XOR does not.
 *
 *   build/examples/perceptron
 */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

#define MAX_POINTS 64
#define MAX_EPOCHS 100

typedef struct dataset {
    const char *name;
    int n;
    double x[MAX_POINTS][2];
    double t[MAX_POINTS];
} dataset;

typedef struct outcome {
    int converged_epoch; /* the first epoch without mistakes; 0 if none */
    int mistakes;        /* updates made in all */
    double w[2], b;
} outcome;

/* Trains a perceptron from w = 0 and reports what happened. */
static int train(const dataset *d, double eta, bool verbose, outcome *out)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, (const int64_t[]){1, 2});
    nb_node *w = nb_param(g, "w", NB_F64, 2, (const int64_t[]){2, 1});
    nb_node *b = nb_param(g, "b", NB_F64, 1, (const int64_t[]){1});
    nb_node *o = nb_step(g, nb_add(g, nb_matmul(g, x, w), b));
    if (!o) {
        fprintf(stderr, "perceptron: %s\n", nb_graph_error(g));
        nb_graph_free(g);
        return -1;
    }
    double *wv = nb_tensor_f64(nb_node_value(w));
    double *bv = nb_tensor_f64(nb_node_value(b));

    out->converged_epoch = 0;
    out->mistakes = 0;
    for (int epoch = 1; epoch <= MAX_EPOCHS && !out->converged_epoch; epoch++) {
        int errors = 0;
        for (int i = 0; i < d->n; i++) {
            if (nb_feed_data(g, x, d->x[i]) != NB_OK ||
                nb_forward(g, o) != NB_OK) {
                fprintf(stderr, "perceptron: %s\n", nb_graph_error(g));
                nb_graph_free(g);
                return -1;
            }
            double err = d->t[i] - nb_tensor_get(nb_node_value(o), 0);
            if (err != 0) {
                wv[0] += eta * err * d->x[i][0];
                wv[1] += eta * err * d->x[i][1];
                bv[0] += eta * err;
                errors++;
            }
        }
        out->mistakes += errors;
        if (verbose)
            printf(
                "  epoch %3d: %2d mistakes   w = (%6.2f, %6.2f)  b = %6.2f\n",
                epoch, errors, wv[0], wv[1], bv[0]);
        if (errors == 0)
            out->converged_epoch = epoch;
    }
    out->w[0] = wv[0];
    out->w[1] = wv[1];
    out->b = bv[0];
    nb_graph_free(g);
    return 0;
}

/* (R / gamma)^2 for the separator (u, c), normalised with its bias, over
 * inputs augmented with a constant 1; 0 if (u, c) does not separate. */
static double mistake_bound(const dataset *d, const double u[2], double c)
{
    double norm = sqrt(u[0] * u[0] + u[1] * u[1] + c * c);
    double gamma = INFINITY, r = 0;
    for (int i = 0; i < d->n; i++) {
        double s = d->t[i] > 0.5 ? 1 : -1;
        double m = s * (u[0] * d->x[i][0] + u[1] * d->x[i][1] + c) / norm;
        gamma = fmin(gamma, m);
        r = fmax(r,
                 sqrt(d->x[i][0] * d->x[i][0] + d->x[i][1] * d->x[i][1] + 1));
    }
    return gamma > 0 ? (r / gamma) * (r / gamma) : 0;
}

/* A separable set: points in [-1, 1]^2 labelled by which side of the line
 * 0.8 x1 - 0.6 x2 + 0.2 = 0 they fall, keeping only those at distance
 * >= 0.05 from it so that the margin, and hence the bound, is reasonable. */
static void random_set(dataset *d, const double u[2], double c)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 2024);
    d->name = "random separable set";
    d->n = 0;
    while (d->n < 60) {
        double x1 = 2 * nb_rng_uniform(g) - 1, x2 = 2 * nb_rng_uniform(g) - 1;
        double s = u[0] * x1 + u[1] * x2 + c; /* |u| = 1: s is the distance */
        if (fabs(s) < 0.05)
            continue;
        d->x[d->n][0] = x1;
        d->x[d->n][1] = x2;
        d->t[d->n] = s > 0;
        d->n++;
    }
    nb_graph_free(g);
}

/* Trains on a separable set and checks convergence within the bound. */
static bool separable_case(const dataset *d, const double u[2], double c,
                           bool verbose)
{
    double bound = mistake_bound(d, u, c);
    printf("%s (%d points): separated by %.2f x1 %+.2f x2 %+.2f > 0,\n"
           "  Novikoff bound (R/gamma)^2 = %.1f mistakes\n",
           d->name, d->n, u[0], u[1], c, bound);
    outcome r;
    if (train(d, 0.5, verbose, &r) != 0)
        return false;
    bool ok = r.converged_epoch > 0 && r.mistakes <= bound;
    if (r.converged_epoch)
        printf("  converged: epoch %d has no mistakes, after %d updates in "
               "all (bound %.1f)\n",
               r.converged_epoch, r.mistakes, bound);
    else
        printf("  did NOT converge within %d epochs\n", MAX_EPOCHS);
    printf("  learned line: %.2f x1 %+.2f x2 %+.2f = 0  %s\n\n", r.w[0], r.w[1],
           r.b, ok ? "" : "<- unexpected");
    return ok;
}

int main(void)
{
    dataset and_set = {
        "AND", 4, {{0, 0}, {0, 1}, {1, 0}, {1, 1}}, {0, 0, 0, 1}};
    dataset xor_set = {
        "XOR", 4, {{0, 0}, {0, 1}, {1, 0}, {1, 1}}, {0, 1, 1, 0}};
    const double and_u[2] = {1, 1};
    const double rand_u[2] = {0.8, -0.6};
    dataset rand_set;
    random_set(&rand_set, rand_u, 0.2);

    printf("Perceptron rule w <- w + eta (t - o) x, eta = 0.5, from w = 0, "
           "at most %d epochs\n\n",
           MAX_EPOCHS);
    bool ok = separable_case(&and_set, and_u, -1.5, true);
    ok = separable_case(&rand_set, rand_u, 0.2, false) && ok;

    printf("XOR (4 points):\n");
    outcome r;
    if (train(&xor_set, 0.5, false, &r) != 0)
        return 1;
    if (r.converged_epoch) {
        printf("  converged at epoch %d: impossible for XOR\n\n",
               r.converged_epoch);
        ok = false;
    } else {
        printf("  no epoch without mistakes in %d epochs (%d updates); the\n"
               "  weights keep cycling, ending at w = (%.2f, %.2f), b = %.2f.\n"
               "  XOR is not linearly separable: no line separates {(0,1), "
               "(1,0)} from\n  {(0,0), (1,1)} (the conditions b <= 0, "
               "w1 + b > 0, w2 + b > 0 add up to\n  w1 + w2 + b > -b >= 0, "
               "contradicting w1 + w2 + b <= 0), so a single\n  perceptron "
               "cannot represent it; a hidden layer can (see xor, "
               "logic_gates).\n\n",
               MAX_EPOCHS, r.mistakes, r.w[0], r.w[1], r.b);
    }
    printf("%s\n", ok ? "all outcomes as expected" : "UNEXPECTED OUTCOME");
    return ok ? 0 : 1;
}
