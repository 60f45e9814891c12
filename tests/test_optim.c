/* Optimisers and learning-rate schedules, against values worked out by hand
 * from the update rules of include/nabla/optim.h.
 *
 * The graphs are chosen so that the gradient is known in closed form:
 *   L = 1/2 sum (w - c)^2   (nb_sse_loss)     dL/dw = w - c
 *   L = sum w * x                              dL/dw = x (constant)
 *   L = 1/2 sum w^2         (nb_l2_penalty)   dL/dw = w
 * Each hand test runs in f64 (tolerance near rounding) and in f32 (about
 * float precision) from the same literal numbers.
 *
 * Large tensors (past the size at which a step splits across threads) check
 * that a step on 2 or 3 threads gives the bits of a step on one, that a NaN
 * or infinity anywhere in any gradient is refused with nothing changed, and
 * that clipping uses the norm worked out by hand.
 */
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nabla/parallel.h"
#include "test_util.h"

/* nb_clip_grad_norm that must succeed: the norm before scaling. */
static double clip_norm(nb_graph *g, int n, nb_node *const *params,
                        double max_norm)
{
    double norm = -1;
    int rc = nb_clip_grad_norm(g, n, params, max_norm, &norm);
    CHECK(rc == NB_OK, "clip_grad_norm returned %d", rc);
    return norm;
}

/* ---- a counting allocator: a step must not allocate ---- */

static long n_allocs;

static void *count_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    n_allocs++;
    void *p = NULL;
    return posix_memalign(&p, align, size ? size : align) == 0 ? p : NULL;
}

static void count_free(void *p, void *user)
{
    (void)user;
    free(p);
}

/* ---- helpers ---- */

static double val(nb_node *n, int i)
{
    return nb_tensor_get(nb_node_value(n), i);
}

static double grad(nb_node *n, int i)
{
    return nb_tensor_get(nb_node_grad(n), i);
}

static int run_step(nb_graph *g, nb_node *loss, nb_optimizer *opt)
{
    int rc = nb_forward(g, loss);
    if (rc == NB_OK)
        rc = nb_backward(g, loss);
    if (rc == NB_OK)
        rc = nb_optimizer_step(opt);
    return rc;
}

/* A rank-2 [1, n] node holding v. */
static nb_node *param_row(nb_graph *g, const char *name, nb_dtype dt, int n,
                          const double *v)
{
    nb_node *p = nb_param(g, name, dt, 2, SHAPE(1, n));
    if (p)
        nb_tensor_copy_from_f64(nb_node_value(p), v, n);
    return p;
}

static nb_node *const_row(nb_graph *g, const char *name, nb_dtype dt, int n,
                          const double *v)
{
    nb_node *c = nb_constant(g, name, dt, 2, SHAPE(1, n));
    if (c)
        nb_tensor_copy_from_f64(nb_node_value(c), v, n);
    return c;
}

/* L = 1/2 sum (w - c)^2, w a [1, n] weight. */
static nb_node *quad_loss(nb_graph *g, nb_dtype dt, int n, const double *w0,
                          const double *c, nb_node **w)
{
    *w = param_row(g, "w", dt, n, w0);
    return nb_sse_loss(g, *w, const_row(g, "c", dt, n, c));
}

/* L = sum w * x, w a [1, n] weight. */
static nb_node *lin_loss(nb_graph *g, nb_dtype dt, int n, const double *w0,
                         const double *x, nb_node **w)
{
    *w = param_row(g, "w", dt, n, w0);
    return nb_sum(g, nb_mul(g, *w, const_row(g, "x", dt, n, x)));
}

static nb_optimizer *make_opt(nb_graph *g, nb_optim_config cfg)
{
    nb_optimizer *opt = nb_optimizer_new(g, &cfg, 0, NULL);
    CHECK(opt != NULL, "optimizer_new: %s", nb_graph_error(g));
    return opt;
}

static const char *dt_name(nb_dtype dt)
{
    return nb_dtype_name(dt);
}

/* ---- the rules, step by step ---- */

/* SGD, w -= lr (w - c), lr = 0.1, w0 = (1, -2, 0.5), c = (0.5, 1, -0.5):
 *   g0 = (0.5, -3, 1)        w1 = (0.95, -1.7, 0.4)
 *   g1 = (0.45, -2.7, 0.9)   w2 = (0.905, -1.43, 0.31)
 *   g2 = (0.405, -2.43, 0.81) w3 = (0.8645, -1.187, 0.229) */
static void test_sgd(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *loss = quad_loss(g, dt, 3, (double[]){1.0, -2.0, 0.5},
                              (double[]){0.5, 1.0, -0.5}, &w);
    nb_optimizer *opt =
        make_opt(g, (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.1});
    CHECK(nb_optimizer_state_count(opt) == 0, "plain SGD has no state");
    const double want[3][3] = {
        {0.95, -1.7, 0.4}, {0.905, -1.43, 0.31}, {0.8645, -1.187, 0.229}};
    for (int s = 0; s < 3; s++) {
        CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(val(w, i), want[s][i], tol);
    }
    CHECK(nb_optimizer_steps(opt) == 3, "steps %lld",
          (long long)nb_optimizer_steps(opt));
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* Momentum and Nesterov, mu = 0.9, lr = 0.1, on L = 1/2 sum (w - 0)^2
 * (g = w), w0 = (1, -2); the second element is -2 times the first.
 * Momentum  (v = mu v + g, w -= lr v):
 *   g0 = 1      v1 = 1                  w1 = 0.9
 *   g1 = 0.9    v2 = 0.9 + 0.9 = 1.8    w2 = 0.9 - 0.18 = 0.72
 *   g2 = 0.72   v3 = 1.62 + 0.72 = 2.34 w3 = 0.72 - 0.234 = 0.486
 * Nesterov  (v = mu v + g, w -= lr (g + mu v)):
 *   g0 = 1      v1 = 1       w1 = 1 - 0.1 (1 + 0.9) = 0.81
 *   g1 = 0.81   v2 = 1.71    w2 = 0.81 - 0.1 (0.81 + 1.539) = 0.5751
 *   g2 = 0.5751 v3 = 2.1141  w3 = 0.5751 - 0.1 (0.5751 + 1.90269)
 *                               = 0.327321 */
static void test_momentum(nb_dtype dt, double tol, bool nesterov)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *loss =
        quad_loss(g, dt, 2, (double[]){1.0, -2.0}, (double[]){0, 0}, &w);
    nb_optimizer *opt = make_opt(g, (nb_optim_config){.kind = NB_OPTIM_SGD,
                                                      .lr = 0.1,
                                                      .momentum = 0.9,
                                                      .nesterov = nesterov});
    const double mom[3] = {0.9, 0.72, 0.486};
    const double nes[3] = {0.81, 0.5751, 0.327321};
    const double *want = nesterov ? nes : mom;
    for (int s = 0; s < 3; s++) {
        CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(val(w, 0), want[s], tol);
        CHECK_NEAR(val(w, 1), -2 * want[s], 2 * tol);
    }
    const char *name = NULL;
    nb_tensor *v = nb_optimizer_state(opt, 0, &name);
    CHECK(nb_optimizer_state_count(opt) == 1, "one state tensor");
    CHECK(name && strcmp(name, "momentum/w") == 0, "name %s",
          name ? name : "(null)");
    CHECK(v && nb_tensor_dtype(v) == dt && nb_tensor_rank(v) == 2 &&
              nb_tensor_dim(v, 1) == 2,
          "state tensor has the parameter's dtype and shape");
    CHECK_NEAR(nb_tensor_get(v, 0), nesterov ? 2.1141 : 2.34, tol);
    CHECK_NEAR(nb_tensor_get(v, 1), nesterov ? -4.2282 : -4.68, 2 * tol);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* RMSprop, rho = 0.9, lr = 0.01, eps = 1e-8, on L = sum w x with
 * x = (1, -2) (so g = x at every step), w0 = 0:
 *   s1 = 0.1 g^2 = (0.1, 0.4)
 *   w1 = -0.01 g / (sqrt(s1) + 1e-8)
 *   s2 = 0.9 s1 + 0.1 g^2 = 0.19 g^2 = (0.19, 0.76)
 *   w2 = w1 - 0.01 g / (sqrt(s2) + 1e-8)
 * with sqrt(0.1) = 0.31622776601683794, sqrt(0.4) = 0.6324555320336759,
 * sqrt(0.19) = 0.43588989435406733, sqrt(0.76) = 0.8717797887081347. */
static void test_rmsprop(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *loss =
        lin_loss(g, dt, 2, (double[]){0, 0}, (double[]){1.0, -2.0}, &w);
    nb_optimizer *opt = make_opt(
        g, (nb_optim_config){
               .kind = NB_OPTIM_RMSPROP, .lr = 0.01, .rho = 0.9, .eps = 1e-8});
    double w1a = -0.01 * 1.0 / (0.31622776601683794 + 1e-8);
    double w1b = -0.01 * -2.0 / (0.6324555320336759 + 1e-8);
    double w2a = w1a - 0.01 * 1.0 / (0.43588989435406733 + 1e-8);
    double w2b = w1b - 0.01 * -2.0 / (0.8717797887081347 + 1e-8);
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(val(w, 0), w1a, tol);
    CHECK_NEAR(val(w, 1), w1b, tol);
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(val(w, 0), w2a, tol);
    CHECK_NEAR(val(w, 1), w2b, tol);
    const char *name = NULL;
    nb_tensor *s = nb_optimizer_state(opt, 0, &name);
    CHECK(name && strcmp(name, "rmsprop.s/w") == 0, "name %s",
          name ? name : "(null)");
    CHECK_NEAR(nb_tensor_get(s, 0), 0.19, tol);
    CHECK_NEAR(nb_tensor_get(s, 1), 0.76, tol);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* Adam, lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8 (the defaults), on
 * L = 1/2 sum w^2 (g = w), w0 = (1, -2).
 * Step 1: m = 0.1 g, v = 0.001 g^2; the bias corrections divide by
 *   1 - 0.9 = 0.1 and 1 - 0.999 = 0.001, so mhat = g, vhat = g^2 and
 *   w1 = w0 - 0.1 g / (|g| + 1e-8): each weight moves by lr sign(g).
 * Step 2: g1 = w1; m2 = 0.09 g0 + 0.1 g1; v2 = 0.000999 g0^2 + 0.001 g1^2;
 *   mhat = m2 / (1 - 0.81), vhat = v2 / (1 - 0.998001);
 *   w2 = w1 - 0.1 mhat / (sqrt(vhat) + 1e-8). */
static void test_adam(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *loss =
        quad_loss(g, dt, 2, (double[]){1.0, -2.0}, (double[]){0, 0}, &w);
    nb_optimizer *opt =
        make_opt(g, (nb_optim_config){.kind = NB_OPTIM_ADAM, .lr = 0.1});
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    double w1[2] = {1.0 - 0.1 * 1.0 / (1.0 + 1e-8),
                    -2.0 - 0.1 * -2.0 / (2.0 + 1e-8)};
    CHECK_NEAR(val(w, 0), w1[0], tol);
    CHECK_NEAR(val(w, 1), w1[1], tol);
    CHECK_NEAR(val(w, 0), 0.9, 1e-8 + tol);  /* 1 - lr sign(1) */
    CHECK_NEAR(val(w, 1), -1.9, 1e-8 + tol); /* -2 - lr sign(-2) */

    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    const double g0[2] = {1.0, -2.0};
    for (int i = 0; i < 2; i++) {
        double m2 = 0.09 * g0[i] + 0.1 * w1[i];
        double v2 = 0.000999 * g0[i] * g0[i] + 0.001 * w1[i] * w1[i];
        double mhat = m2 / 0.19, vhat = v2 / 0.001999;
        double w2 = w1[i] - 0.1 * mhat / (sqrt(vhat) + 1e-8);
        CHECK_NEAR(val(w, i), w2, tol);
        const char *mname = NULL, *vname = NULL;
        nb_tensor *m = nb_optimizer_state(opt, 0, &mname);
        nb_tensor *v = nb_optimizer_state(opt, 1, &vname);
        CHECK(mname && strcmp(mname, "adam.m/w") == 0, "m name");
        CHECK(vname && strcmp(vname, "adam.v/w") == 0, "v name");
        CHECK_NEAR(nb_tensor_get(m, i), m2, tol);
        CHECK_NEAR(nb_tensor_get(v, i), v2, tol * 1e-2);
    }
    /* Element 0 by the numbers: m2 = 0.18, v2 = 0.001809,
     * mhat = 0.94736842..., vhat = 0.90495247..., step = 0.0995876... */
    CHECK_NEAR(val(w, 0), 0.9 - 0.1 * (0.18 / 0.19) / sqrt(0.001809 / 0.001999),
               1e-8 + tol);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* Adam + L2 against AdamW, weight_decay = 0.1, lr = 0.1, on L = sum w x,
 * x = (0.1, -0.05), w0 = (2, 1). eps = 1e-300 makes Adam's first step
 * exactly lr sign(g).
 * Adam + L2: g = x + 0.1 w = (0.3, 0.05): w1 = (1.9, 0.9); the decay term
 *   outweighs the loss gradient and Adam's normalisation hides its size.
 *   Step 2: g1 = x + 0.1 w1 = (0.29, 0.04); m2 = 0.09 g0 + 0.1 g1,
 *   v2 = 0.000999 g0^2 + 0.001 g1^2, w2 = w1 - 0.1 (m2/0.19) /
 *   sqrt(v2/0.001999).
 * AdamW: g = x, w = 0.99 w - 0.1 sign(x):
 *   w1 = (1.98 - 0.1, 0.99 + 0.1) = (1.88, 1.09)
 *   w2 = (1.88 * 0.99 - 0.1, 1.09 * 0.99 + 0.1) = (1.7612, 1.1791).
 * A bias b0 = 1 with gradient 0.5 is not decayed (b1 = 0.9) unless
 * decay_biases (b1 = 0.99 - 0.1 = 0.89). */
static void test_adamw(nb_dtype dt, double tol, bool decoupled,
                       bool decay_biases)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *lw =
        lin_loss(g, dt, 2, (double[]){2.0, 1.0}, (double[]){0.1, -0.05}, &w);
    nb_node *b = nb_param(g, "b", dt, 1, SHAPE(1));
    nb_node *xb = nb_constant(g, "xb", dt, 1, SHAPE(1));
    SET(b, 1.0);
    SET(xb, 0.5);
    nb_node *loss = nb_add(g, lw, nb_sum(g, nb_mul(g, b, xb)));
    nb_optimizer *opt = make_opt(
        g, (nb_optim_config){.kind = decoupled ? NB_OPTIM_ADAMW : NB_OPTIM_ADAM,
                             .lr = 0.1,
                             .weight_decay = 0.1,
                             .eps = 1e-300,
                             .decay_biases = decay_biases});
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    if (decoupled) {
        CHECK_NEAR(val(w, 0), 1.88, tol);
        CHECK_NEAR(val(w, 1), 1.09, tol);
        CHECK_NEAR(val(b, 0), decay_biases ? 0.89 : 0.9, tol);
    } else {
        CHECK_NEAR(val(w, 0), 1.9, tol);
        CHECK_NEAR(val(w, 1), 0.9, tol);
        /* 1 - 0.1 sign(0.5 + 0.1) = 0.9 either way. */
        CHECK_NEAR(val(b, 0), 0.9, tol);
    }
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    if (decoupled) {
        CHECK_NEAR(val(w, 0), 1.7612, tol);
        CHECK_NEAR(val(w, 1), 1.1791, tol);
    } else {
        const double g0[2] = {0.3, 0.05}, g1[2] = {0.29, 0.04};
        const double w1[2] = {1.9, 0.9};
        for (int i = 0; i < 2; i++) {
            double m2 = 0.09 * g0[i] + 0.1 * g1[i];
            double v2 = 0.000999 * g0[i] * g0[i] + 0.001 * g1[i] * g1[i];
            CHECK_NEAR(val(w, i),
                       w1[i] - 0.1 * (m2 / 0.19) / sqrt(v2 / 0.001999), tol);
        }
    }
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* L2 and L1 enter the gradient: SGD, lr = 0.1, weight_decay = 0.2,
 * l1 = 0.3, on L = sum w x + sum b xb with x = xb = 1:
 *   w0 = (0.5, -1, 0): g = 1 + 0.2 w + 0.3 sign(w) = (1.4, 0.5, 1)
 *     w1 = (0.36, -1.05, -0.1)          (sign(0) = 0)
 *   w1: g = (1 + 0.072 + 0.3, 1 - 0.21 - 0.3, 1 - 0.02 - 0.3)
 *         = (1.372, 0.49, 0.68)
 *     w2 = (0.2228, -1.099, -0.168)
 *   b0 = (0.5, -1), a bias: g = 1, b1 = (0.4, -1.1); with decay_biases it
 *     is regularised like w: b1 = (0.36, -1.05). */
static void test_l1_l2(nb_dtype dt, double tol, bool decay_biases)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *lw =
        lin_loss(g, dt, 3, (double[]){0.5, -1.0, 0.0}, (double[]){1, 1, 1}, &w);
    nb_node *b = nb_param(g, "b", dt, 1, SHAPE(2));
    nb_node *xb = nb_constant(g, "xb", dt, 1, SHAPE(2));
    SET(b, 0.5, -1.0);
    SET(xb, 1.0, 1.0);
    nb_node *loss = nb_add(g, lw, nb_sum(g, nb_mul(g, b, xb)));
    nb_optimizer *opt =
        make_opt(g, (nb_optim_config){.kind = NB_OPTIM_SGD,
                                      .lr = 0.1,
                                      .weight_decay = 0.2,
                                      .l1 = 0.3,
                                      .decay_biases = decay_biases});
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    const double w1[3] = {0.36, -1.05, -0.1}, w2[3] = {0.2228, -1.099, -0.168};
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(val(w, i), w1[i], tol);
    CHECK_NEAR(val(b, 0), decay_biases ? 0.36 : 0.4, tol);
    CHECK_NEAR(val(b, 1), decay_biases ? -1.05 : -1.1, tol);
    CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(val(w, i), w2[i], tol);
    /* The gradient buffers hold the loss gradient only. */
    CHECK_NEAR(grad(w, 0), 1.0, 0);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

/* Clipping by global norm, on L = 1/2 sum w^2 + 1/2 sum b^2 (g = w, b). */
static void test_clipping(nb_dtype dt, double tol)
{
    /* One weight (3, 4): norm 5, clip 1 scales g by 0.2, SGD lr 1:
     * w1 = (3 - 0.6, 4 - 0.8). The gradient buffer itself is left alone. */
    {
        nb_graph *g = nb_graph_new();
        nb_node *w = param_row(g, "w", dt, 2, (double[]){3, 4});
        nb_node *loss = nb_l2_penalty(g, w);
        nb_optimizer *opt = make_opt(
            g,
            (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 1, .clip_norm = 1});
        CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(nb_optimizer_grad_norm(opt), 5, tol);
        CHECK_NEAR(val(w, 0), 2.4, tol);
        CHECK_NEAR(val(w, 1), 3.2, tol);
        CHECK_NEAR(grad(w, 0), 3, 0);
        CHECK_NEAR(grad(w, 1), 4, 0);
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
    /* The norm is global: w = (3) and b = (4) together have norm 5. Clip
     * comes before L2: with weight_decay 0.5 on w, g_w = 0.2 * 3 + 1.5. */
    {
        nb_graph *g = nb_graph_new();
        nb_node *w = param_row(g, "w", dt, 1, (double[]){3});
        nb_node *b = nb_param(g, "b", dt, 1, SHAPE(1));
        SET(b, 4.0);
        nb_node *loss = nb_add(g, nb_l2_penalty(g, w), nb_l2_penalty(g, b));
        nb_optimizer *opt = make_opt(g, (nb_optim_config){.kind = NB_OPTIM_SGD,
                                                          .lr = 1,
                                                          .clip_norm = 1,
                                                          .weight_decay = 0.5});
        CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(nb_optimizer_grad_norm(opt), 5, tol);
        CHECK_NEAR(val(w, 0), 3 - (0.6 + 1.5), tol);
        CHECK_NEAR(val(b, 0), 4 - 0.8, tol);
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
    /* Below the threshold nothing is scaled: lr 0.5, clip 10,
     * w1 = (3 - 1.5, 4 - 2). */
    {
        nb_graph *g = nb_graph_new();
        nb_node *w = param_row(g, "w", dt, 2, (double[]){3, 4});
        nb_node *loss = nb_l2_penalty(g, w);
        nb_optimizer *opt =
            make_opt(g, (nb_optim_config){
                            .kind = NB_OPTIM_SGD, .lr = 0.5, .clip_norm = 10});
        CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(nb_optimizer_grad_norm(opt), 5, tol);
        CHECK_NEAR(val(w, 0), 1.5, tol);
        CHECK_NEAR(val(w, 1), 2.0, tol);
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
    /* nb_clip_grad_norm scales the buffers in place. */
    {
        nb_graph *g = nb_graph_new();
        nb_node *w = param_row(g, "w", dt, 1, (double[]){3});
        nb_node *b = nb_param(g, "b", dt, 1, SHAPE(1));
        SET(b, 4.0);
        nb_node *loss = nb_add(g, nb_l2_penalty(g, w), nb_l2_penalty(g, b));
        nb_forward(g, loss);
        nb_backward(g, loss);
        CHECK_NEAR(clip_norm(g, 0, NULL, 10), 5, tol);
        CHECK_NEAR(grad(w, 0), 3, 0);
        CHECK_NEAR(clip_norm(g, 0, NULL, 1), 5, tol);
        CHECK_NEAR(grad(w, 0), 0.6, tol);
        CHECK_NEAR(grad(b, 0), 0.8, tol);

        nb_backward(g, loss);
        nb_node *only_w[] = {w};
        CHECK_NEAR(clip_norm(g, 1, only_w, 1), 3, tol);
        CHECK_NEAR(grad(w, 0), 1, tol);
        CHECK_NEAR(grad(b, 0), 4, 0);

        /* A frozen parameter has no gradient and no part in the norm. */
        nb_param_set_trainable(g, b, false);
        nb_forward(g, loss);
        nb_backward(g, loss);
        CHECK_NEAR(clip_norm(g, 0, NULL, 100), 3, tol);

        CHECK(nb_clip_grad_norm(g, 0, NULL, 0, NULL) == NB_ERR_ARG, "max_norm 0");
        CHECK_ERROR(g, "clip_grad_norm", "max_norm must be > 0");
        CHECK(nb_clip_grad_norm(g, 0, NULL, NAN, NULL) == NB_ERR_ARG, "NaN");
        CHECK_ERROR(g, "clip_grad_norm", "max_norm");
        nb_node *bad[] = {loss};
        CHECK(nb_clip_grad_norm(g, 1, bad, 1, NULL) == NB_ERR_ARG, "not a param");
        CHECK_ERROR(g, "clip_grad_norm", "not a parameter");
        nb_graph_free(g);
    }
}

/* The norm over large tensors (the blocked sum) and over values whose
 * squares overflow: g = w for L = 1/2 sum w^2. */
static void test_norm_large(nb_dtype dt)
{
    double tol = dt == NB_F64 ? 1e-13 : 1e-6;
    /* w_i = (i mod 5) - 2 over 3003 elements: each 5 give 4 + 1 + 0 + 1 + 4,
     * 600 such groups make 6000 and the last 3 (-2, -1, 0) add 5. */
    {
        nb_graph *g = nb_graph_new();
        nb_node *w = nb_param(g, "w", dt, 2, SHAPE(3, 1001));
        for (int i = 0; i < 3003; i++)
            nb_tensor_set(nb_node_value(w), i, (i % 5) - 2);
        nb_node *loss = nb_l2_penalty(g, w);
        nb_forward(g, loss);
        nb_backward(g, loss);
        double norm = clip_norm(g, 0, NULL, 1e9);
        CHECK(fabs(norm / sqrt(6005.0) - 1) < tol, "%s: norm %.17g",
              dt_name(dt), norm);
        nb_graph_free(g);
    }
    /* Squares past the dtype's range: 2048 elements of 1e30 (f32) or
     * 1e200 (f64) have norm 1e30 sqrt(2048) or 1e200 sqrt(2048), and
     * clipping to 1 leaves each at 1 / sqrt(2048). */
    {
        double big = dt == NB_F64 ? 1e200 : 1e30;
        nb_graph *g = nb_graph_new();
        nb_node *w = nb_param(g, "w", dt, 2, SHAPE(2, 1024));
        nb_tensor_fill(nb_node_value(w), big);
        nb_node *loss = nb_l2_penalty(g, w);
        nb_forward(g, loss);
        nb_backward(g, loss);
        double norm = clip_norm(g, 0, NULL, 1);
        CHECK(fabs(norm / (big * 45.254833995939045) - 1) < tol,
              "%s: norm %.17g", dt_name(dt), norm);
        CHECK(fabs(grad(w, 0) * 45.254833995939045 - 1) < tol &&
                  fabs(grad(w, 2047) * 45.254833995939045 - 1) < tol,
              "%s: clipped to %.17g", dt_name(dt), grad(w, 0));
        nb_graph_free(g);
    }
}

/* A frozen parameter, and one whose gradient the latest backward did not
 * compute, are skipped with their state untouched. */
static void test_skipped(nb_dtype dt)
{
    size_t es = nb_dtype_size(dt);
    /* Frozen before the backward (no gradient) and after it (a gradient
     * exists, but the parameter is frozen now). */
    for (int after = 0; after < 2; after++) {
        nb_graph *g = nb_graph_new();
        nb_node *w1 = param_row(g, "w1", dt, 2, (double[]){1, -1});
        nb_node *w2 = param_row(g, "w2", dt, 2, (double[]){2, 3});
        nb_node *loss = nb_add(g, nb_l2_penalty(g, w1), nb_l2_penalty(g, w2));
        nb_optimizer *opt =
            make_opt(g, (nb_optim_config){.kind = NB_OPTIM_ADAM, .lr = 0.1});
        CHECK(run_step(g, loss, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(val(w2, 0), 1.9, 1e-6);

        double w2v[2] = {val(w2, 0), val(w2, 1)};
        unsigned char m_before[16], v_before[16];
        const char *name;
        nb_tensor *m2 = nb_optimizer_state(opt, 2, &name);
        CHECK(strcmp(name, "adam.m/w2") == 0, "name %s", name);
        nb_tensor *v2 = nb_optimizer_state(opt, 3, &name);
        CHECK(strcmp(name, "adam.v/w2") == 0, "name %s", name);
        memcpy(m_before, nb_tensor_cdata(m2), 2 * es);
        memcpy(v_before, nb_tensor_cdata(v2), 2 * es);
        double w1_before = val(w1, 0);

        if (!after)
            nb_param_set_trainable(g, w2, false);
        nb_forward(g, loss);
        nb_backward(g, loss);
        if (after)
            nb_param_set_trainable(g, w2, false);
        CHECK(nb_optimizer_step(opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK(val(w1, 0) != w1_before, "w1 moved");
        CHECK(val(w2, 0) == w2v[0] && val(w2, 1) == w2v[1],
              "frozen (%s backward) w2 untouched", after ? "after" : "before");
        CHECK(memcmp(m_before, nb_tensor_cdata(m2), 2 * es) == 0 &&
                  memcmp(v_before, nb_tensor_cdata(v2), 2 * es) == 0,
              "frozen w2's state untouched");
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }

    /* An unused parameter never has a gradient; a gradient from an older
     * backward (loss1's, when the latest backward was loss2's) is not
     * reused: momentum would otherwise keep moving w1. */
    {
        nb_graph *g = nb_graph_new();
        nb_node *w1 = param_row(g, "w1", dt, 1, (double[]){1});
        nb_node *w2 = param_row(g, "w2", dt, 1, (double[]){2});
        nb_node *unused = param_row(g, "unused", dt, 1, (double[]){5});
        nb_node *loss1 = nb_l2_penalty(g, w1);
        nb_node *loss2 = nb_l2_penalty(g, w2);
        nb_optimizer *opt =
            make_opt(g, (nb_optim_config){
                            .kind = NB_OPTIM_SGD, .lr = 0.1, .momentum = 0.9});
        CHECK(nb_optimizer_param_count(opt) == 3, "all three parameters");
        CHECK(nb_optimizer_param(opt, 2) == unused, "in creation order");
        CHECK(run_step(g, loss1, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(val(w1, 0), 0.9, 1e-7);
        CHECK_NEAR(val(w2, 0), 2, 0);
        CHECK(run_step(g, loss2, opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(val(w1, 0), 0.9, 1e-7);
        CHECK_NEAR(val(w2, 0), 1.8, 1e-7);
        CHECK_NEAR(val(unused, 0), 5, 0);
        const char *name;
        nb_tensor *v1 = nb_optimizer_state(opt, 0, &name);
        nb_tensor *vu = nb_optimizer_state(opt, 2, &name);
        CHECK(strcmp(name, "momentum/unused") == 0, "name %s", name);
        CHECK_NEAR(nb_tensor_get(v1, 0), 1, 1e-7);
        CHECK_NEAR(nb_tensor_get(vu, 0), 0, 0);
        CHECK(nb_optimizer_steps(opt) == 2, "steps");

        /* A step in which every parameter is frozen changes nothing but
         * the count. */
        nb_param_set_trainable(g, w1, false);
        nb_param_set_trainable(g, w2, false);
        CHECK(nb_optimizer_step(opt) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(val(w2, 0), 1.8, 1e-7);
        CHECK_NEAR(nb_optimizer_grad_norm(opt), 0, 0);
        CHECK(nb_optimizer_steps(opt) == 3, "a call counts");
        nb_optimizer_free(opt);
        nb_graph_free(g);
    }
}

/* ---- defaults, mixed dtypes, allocation ---- */

static void test_defaults(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = param_row(g, "w", NB_F64, 1, (double[]){1});
    (void)w;
    nb_optimizer *o = make_opt(g, (nb_optim_config){.kind = NB_OPTIM_ADAM});
    const nb_optim_config *c = nb_optimizer_config(o);
    CHECK(c->lr == 0.001 && c->beta1 == 0.9 && c->beta2 == 0.999 &&
              c->eps == 1e-8 && c->rho == 0 && c->momentum == 0,
          "Adam defaults: lr %g b1 %g b2 %g eps %g", c->lr, c->beta1, c->beta2,
          c->eps);
    nb_optimizer_set_lr(o, 0);
    CHECK(nb_optimizer_lr(o) == 0 && nb_optimizer_config(o)->lr == 0,
          "set_lr(0) is literal");
    nb_optimizer_free(o);

    o = make_opt(g, (nb_optim_config){.kind = NB_OPTIM_SGD});
    c = nb_optimizer_config(o);
    CHECK(c->lr == 0.01 && c->eps == 0 && c->beta1 == 0,
          "SGD defaults: lr %g eps %g", c->lr, c->eps);
    nb_optimizer_free(o);

    o = make_opt(g, (nb_optim_config){.kind = NB_OPTIM_RMSPROP});
    c = nb_optimizer_config(o);
    CHECK(c->lr == 0.001 && c->rho == 0.99 && c->eps == 1e-8,
          "RMSprop defaults: lr %g rho %g eps %g", c->lr, c->rho, c->eps);
    nb_optimizer_free(o);

    o = make_opt(
        g, (nb_optim_config){.kind = NB_OPTIM_ADAMW, .lr = 0.5, .beta1 = 0.8});
    c = nb_optimizer_config(o);
    CHECK(c->lr == 0.5 && c->beta1 == 0.8 && c->beta2 == 0.999 &&
              c->weight_decay == 0,
          "AdamW: given values kept, weight_decay stays 0");
    nb_optimizer_free(o);
    nb_graph_free(g);

    /* beta1 = 1e-300 stands for 0: m after one step is g itself. */
    g = nb_graph_new();
    nb_node *loss = lin_loss(g, NB_F64, 1, (double[]){0}, (double[]){0.7}, &w);
    o = make_opt(g, (nb_optim_config){.kind = NB_OPTIM_ADAM, .beta1 = 1e-300});
    CHECK(run_step(g, loss, o) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_get(nb_optimizer_state(o, 0, NULL), 0) == 0.7,
          "beta1 1e-300: m = g");
    nb_optimizer_free(o);
    nb_graph_free(g);
}

/* One optimiser over an f32 and an f64 parameter: each state tensor takes
 * its parameter's dtype, and each is updated in its own precision. */
static void test_mixed_dtypes(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *a = param_row(g, "a", NB_F32, 2, (double[]){1, -2});
    nb_node *b = param_row(g, "b", NB_F64, 2, (double[]){1, -2});
    nb_node *la = nb_l2_penalty(g, a), *lb = nb_l2_penalty(g, b);
    nb_optimizer *o =
        make_opt(g, (nb_optim_config){.kind = NB_OPTIM_ADAM, .lr = 0.1});
    CHECK(nb_optimizer_state_count(o) == 4, "2 per parameter");
    for (int i = 0; i < 4; i++) {
        const char *name;
        nb_tensor *s = nb_optimizer_state(o, i, &name);
        CHECK(nb_tensor_dtype(s) == (i < 2 ? NB_F32 : NB_F64), "%s dtype",
              name);
    }
    /* Two backwards: the second (accumulating) keeps a's gradient. */
    nb_forward(g, la);
    nb_forward(g, lb);
    nb_backward(g, la);
    nb_backward_ex(g, lb, NULL, NB_BACKWARD_ACCUMULATE);
    CHECK(nb_optimizer_step(o) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(val(a, 0), 0.9, 1e-6);
    CHECK_NEAR(val(a, 1), -1.9, 1e-6);
    CHECK_NEAR(val(b, 0), 0.9, 1e-8);
    CHECK_NEAR(val(b, 1), -1.9, 1e-8);
    nb_optimizer_free(o);
    nb_graph_free(g);
}

static void test_no_alloc_in_step(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w;
    nb_node *loss =
        quad_loss(g, NB_F32, 3, (double[]){1, 2, 3}, (double[]){0, 0, 0}, &w);
    nb_optim_config cfgs[] = {
        {.kind = NB_OPTIM_SGD,
         .momentum = 0.9,
         .nesterov = true,
         .l1 = 0.1,
         .clip_norm = 0.5},
        {.kind = NB_OPTIM_RMSPROP, .weight_decay = 0.1},
        {.kind = NB_OPTIM_ADAMW, .weight_decay = 0.1, .clip_norm = 1},
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        nb_optimizer *o = make_opt(g, cfgs[k]);
        nb_forward(g, loss);
        nb_backward(g, loss);
        long before = n_allocs;
        for (int s = 0; s < 10; s++)
            nb_optimizer_step(o);
        CHECK(n_allocs == before, "config %zu: %ld allocations in 10 steps", k,
              n_allocs - before);
        CHECK(nb_optimizer_steps(o) == 10, "steps");
        nb_optimizer_free(o);
    }
    nb_graph_free(g);
}

/* ---- save and restore ---- */

/* A small regression net, sse(tanh(x W + b), t), with fixed values. */
struct net {
    nb_graph *g;
    nb_node *w, *b, *loss;
};

static struct net make_net(nb_dtype dt)
{
    struct net n;
    n.g = nb_graph_new();
    nb_node *x = nb_constant(n.g, "x", dt, 2, SHAPE(4, 3));
    nb_node *t = nb_constant(n.g, "t", dt, 2, SHAPE(4, 2));
    n.w = nb_param(n.g, "W", dt, 2, SHAPE(3, 2));
    n.b = nb_param(n.g, "b", dt, 1, SHAPE(2));
    for (int i = 0; i < 12; i++)
        nb_tensor_set(nb_node_value(x), i, sin(1.0 + i));
    for (int i = 0; i < 8; i++)
        nb_tensor_set(nb_node_value(t), i, 0.5 * cos(2.0 + i));
    for (int i = 0; i < 6; i++)
        nb_tensor_set(nb_node_value(n.w), i, 0.3 * (i % 2 ? -1 : 1) * (i + 1));
    SET(n.b, 0.1, -0.2);
    n.loss = nb_sse_loss(
        n.g, nb_tanh(n.g, nb_add(n.g, nb_matmul(n.g, x, n.w), n.b)), t);
    CHECK(n.loss != NULL, "net: %s", nb_graph_error(n.g));
    return n;
}

/* The schedule drives the rate from the optimiser's step count, as a
 * training loop would, so a restored count restores the rate too. */
static const nb_schedule restore_sched = {
    .kind = NB_SCHEDULE_EXPONENTIAL, .lr0 = 0.05, .gamma = 0.8};

static void net_steps(struct net *n, nb_optimizer *o, int steps)
{
    for (int s = 0; s < steps; s++) {
        nb_optimizer_set_lr(
            o, nb_schedule_lr(&restore_sched, nb_optimizer_steps(o)));
        CHECK(run_step(n->g, n->loss, o) == NB_OK, "%s", nb_graph_error(n->g));
    }
}

static bool same_bits(nb_tensor *a, nb_tensor *b)
{
    size_t bytes =
        (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a));
    return nb_tensor_size(a) == nb_tensor_size(b) &&
           nb_tensor_dtype(a) == nb_tensor_dtype(b) &&
           memcmp(nb_tensor_cdata(a), nb_tensor_cdata(b), bytes) == 0;
}

static void test_restore(nb_dtype dt)
{
    nb_optim_config cfgs[] = {
        {.kind = NB_OPTIM_SGD, .clip_norm = 0.3},
        {.kind = NB_OPTIM_SGD, .momentum = 0.9, .weight_decay = 0.01},
        {.kind = NB_OPTIM_SGD, .momentum = 0.8, .nesterov = true, .l1 = 0.01},
        {.kind = NB_OPTIM_RMSPROP, .rho = 0.9, .clip_norm = 0.5},
        {.kind = NB_OPTIM_ADAM, .weight_decay = 0.01},
        {.kind = NB_OPTIM_ADAMW,
         .weight_decay = 0.1,
         .l1 = 0.001,
         .clip_norm = 0.5,
         .decay_biases = true},
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        struct net a = make_net(dt), b = make_net(dt), c = make_net(dt);
        nb_optimizer *oa = make_opt(a.g, cfgs[k]);
        nb_optimizer *ob = make_opt(b.g, cfgs[k]);
        net_steps(&a, oa, 5);
        net_steps(&b, ob, 2);

        /* "Save" b and "load" into the fresh c: parameters and state by
         * name, then the step count. */
        nb_optimizer *oc = make_opt(c.g, cfgs[k]);
        for (int i = 0; i < nb_optimizer_param_count(ob); i++) {
            nb_node *p = nb_optimizer_param(ob, i);
            nb_node *q = nb_graph_find(c.g, nb_node_name(p));
            size_t bytes =
                (size_t)nb_tensor_size(nb_node_value(p)) * nb_dtype_size(dt);
            memcpy(nb_tensor_data(nb_node_value(q)),
                   nb_tensor_cdata(nb_node_value(p)), bytes);
        }
        int copied = 0;
        for (int i = 0; i < nb_optimizer_state_count(ob); i++) {
            const char *name;
            nb_tensor *s = nb_optimizer_state(ob, i, &name);
            for (int j = 0; j < nb_optimizer_state_count(oc); j++) {
                const char *cname;
                nb_tensor *d = nb_optimizer_state(oc, j, &cname);
                if (strcmp(name, cname) == 0) {
                    memcpy(nb_tensor_data(d), nb_tensor_cdata(s),
                           (size_t)nb_tensor_size(s) * nb_dtype_size(dt));
                    copied++;
                }
            }
        }
        CHECK(copied == nb_optimizer_state_count(ob), "config %zu: %d copied",
              k, copied);
        nb_optimizer_set_steps(oc, nb_optimizer_steps(ob));
        net_steps(&c, oc, 3);

        CHECK(nb_optimizer_steps(oc) == 5, "steps");
        CHECK(same_bits(nb_node_value(a.w), nb_node_value(c.w)) &&
                  same_bits(nb_node_value(a.b), nb_node_value(c.b)),
              "%s config %zu: restored run's parameters differ", dt_name(dt),
              k);
        bool states =
            nb_optimizer_state_count(oa) == nb_optimizer_state_count(oc);
        for (int i = 0; states && i < nb_optimizer_state_count(oa); i++)
            states = same_bits(nb_optimizer_state(oa, i, NULL),
                               nb_optimizer_state(oc, i, NULL));
        CHECK(states, "%s config %zu: restored run's state differs",
              dt_name(dt), k);
        /* And the run did move: B's parameters are not A's. */
        CHECK(!same_bits(nb_node_value(a.w), nb_node_value(b.w)),
              "the comparison is not vacuous");
        nb_optimizer_free(oa);
        nb_optimizer_free(ob);
        nb_optimizer_free(oc);
        nb_graph_free(a.g);
        nb_graph_free(b.g);
        nb_graph_free(c.g);
    }
}

/* ---- large tensors: threads, refusals, the norm ---- */

/* Runs the test body with t threads for the library's parallel regions
 * (a no-op without OpenMP, where every step runs on one thread). */
static void use_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
    /* the team whenever it may split, so the comparison means something */
    nb_parallel_set_mode(t > 1 ? NB_PARALLEL_TEAM : NB_PARALLEL_MEASURE);
#else
    (void)t;
#endif
}

/* W [BIG_R, BIG_C] and b [BIG_B] with L = sse(W, CW) + sse(b, cb), so
 * dL/dW = W - CW. 331 * 613 = 202,903 elements: odd, past every thread
 * cut-off, and no multiple of any vector width or slot. */
#define BIG_R 331
#define BIG_C 613
#define BIG_B 37

struct big {
    nb_graph *g;
    nb_node *w, *b, *loss;
};

static struct big make_big(nb_dtype dt)
{
    struct big n;
    n.g = nb_graph_new();
    n.w = nb_param(n.g, "W", dt, 2, SHAPE(BIG_R, BIG_C));
    n.b = nb_param(n.g, "b", dt, 1, SHAPE(BIG_B));
    nb_node *cw = nb_constant(n.g, "CW", dt, 2, SHAPE(BIG_R, BIG_C));
    nb_node *cb = nb_constant(n.g, "cb", dt, 1, SHAPE(BIG_B));
    CHECK(cb != NULL, "%s", nb_graph_error(n.g));
    for (int64_t i = 0; i < BIG_R * BIG_C; i++) {
        nb_tensor_set(nb_node_value(n.w), i, sin(0.37 * (double)i));
        nb_tensor_set(nb_node_value(cw), i, 0.5 * cos(0.11 * (double)i));
    }
    for (int i = 0; i < BIG_B; i++) {
        nb_tensor_set(nb_node_value(n.b), i, 0.1 * i - 1);
        nb_tensor_set(nb_node_value(cb), i, 0.05 * i);
    }
    n.loss = nb_add(n.g, nb_sse_loss(n.g, n.w, cw), nb_sse_loss(n.g, n.b, cb));
    CHECK(n.loss != NULL, "big: %s", nb_graph_error(n.g));
    return n;
}

static const nb_optim_config big_cfgs[] = {
    {.kind = NB_OPTIM_SGD, .lr = 0.1},
    {.kind = NB_OPTIM_SGD, .lr = 0.05, .momentum = 0.9},
    {.kind = NB_OPTIM_SGD,
     .momentum = 0.8,
     .nesterov = true,
     .weight_decay = 0.01,
     .l1 = 0.001},
    /* The norm is in the hundreds: these clip. */
    {.kind = NB_OPTIM_SGD, .lr = 0.5, .clip_norm = 2},
    {.kind = NB_OPTIM_RMSPROP, .rho = 0.9, .clip_norm = 1},
    {.kind = NB_OPTIM_ADAM, .weight_decay = 0.01},
    {.kind = NB_OPTIM_ADAMW,
     .weight_decay = 0.1,
     .l1 = 0.001,
     .clip_norm = 5,
     .decay_biases = true},
};

/* Three steps on `threads` threads, keeping the norm each step saw. */
static void big_steps(struct big *n, nb_optimizer *o, int threads,
                      double *norms)
{
    use_threads(threads);
    for (int s = 0; s < 3; s++) {
        CHECK(run_step(n->g, n->loss, o) == NB_OK, "%s", nb_graph_error(n->g));
        norms[s] = nb_optimizer_grad_norm(o);
    }
    use_threads(1);
}

static void test_threads_bitwise(nb_dtype dt)
{
    size_t ncfg = sizeof big_cfgs / sizeof *big_cfgs;
    for (size_t k = 0; k < ncfg; k++) {
        struct big ref = make_big(dt);
        nb_optimizer *oref = make_opt(ref.g, big_cfgs[k]);
        double nref[3];
        big_steps(&ref, oref, 1, nref);
        CHECK(nref[0] > 100 && isfinite(nref[2]), "norm %g", nref[0]);
        for (int threads = 2; threads <= 3; threads++) {
            struct big n = make_big(dt);
            nb_optimizer *o = make_opt(n.g, big_cfgs[k]);
            double norms[3];
            big_steps(&n, o, threads, norms);
            CHECK(same_bits(nb_node_value(n.w), nb_node_value(ref.w)) &&
                      same_bits(nb_node_value(n.b), nb_node_value(ref.b)),
                  "%s config %zu, %d threads: parameters differ", dt_name(dt),
                  k, threads);
            bool states =
                nb_optimizer_state_count(o) == nb_optimizer_state_count(oref);
            for (int i = 0; states && i < nb_optimizer_state_count(o); i++)
                states = same_bits(nb_optimizer_state(o, i, NULL),
                                   nb_optimizer_state(oref, i, NULL));
            CHECK(states, "%s config %zu, %d threads: state differs",
                  dt_name(dt), k, threads);
            CHECK(memcmp(norms, nref, sizeof norms) == 0,
                  "%s config %zu, %d threads: norm %.17g, one thread %.17g",
                  dt_name(dt), k, threads, norms[2], nref[2]);
            nb_optimizer_free(o);
            nb_graph_free(n.g);
        }
        /* Not vacuous: the steps moved the weights. */
        struct big fresh = make_big(dt);
        CHECK(!same_bits(nb_node_value(fresh.w), nb_node_value(ref.w)),
              "config %zu: the steps changed nothing", k);
        nb_graph_free(fresh.g);
        nb_optimizer_free(oref);
        nb_graph_free(ref.g);
    }

    /* nb_clip_grad_norm: the same norm and the same scaled gradients. */
    struct big a = make_big(dt), b = make_big(dt);
    nb_forward(a.g, a.loss);
    nb_backward(a.g, a.loss);
    nb_forward(b.g, b.loss);
    nb_backward(b.g, b.loss);
    double na = clip_norm(a.g, 0, NULL, 3);
    use_threads(2);
    double nb = clip_norm(b.g, 0, NULL, 3);
    use_threads(1);
    CHECK(na == nb && na > 100, "%s clip_grad_norm: %.17g vs %.17g",
          dt_name(dt), na, nb);
    CHECK(same_bits(nb_node_grad(a.w), nb_node_grad(b.w)) &&
              same_bits(nb_node_grad(a.b), nb_node_grad(b.b)),
          "%s clip_grad_norm: scaled gradients differ", dt_name(dt));
    nb_graph_free(a.g);
    nb_graph_free(b.g);
}

/* Copies of every tensor a step may change. */
struct snap {
    nb_tensor *t[6];
    int n;
};

static struct snap take_snap(struct big *n, nb_optimizer *o)
{
    struct snap s = {{NULL}, 0};
    nb_tensor *src[6] = {nb_node_value(n->w), nb_node_value(n->b)};
    int count = 2;
    for (int i = 0; i < nb_optimizer_state_count(o) && count < 6; i++)
        src[count++] = nb_optimizer_state(o, i, NULL);
    for (int i = 0; i < count; i++) {
        nb_tensor *c =
            nb_tensor_new(nb_tensor_dtype(src[i]), nb_tensor_rank(src[i]),
                          nb_tensor_shape(src[i]));
        memcpy(nb_tensor_data(c), nb_tensor_cdata(src[i]),
               (size_t)nb_tensor_size(c) * nb_dtype_size(nb_tensor_dtype(c)));
        s.t[s.n++] = c;
    }
    return s;
}

static bool snap_same(const struct snap *s, struct big *n, nb_optimizer *o)
{
    bool same = same_bits(s->t[0], nb_node_value(n->w)) &&
                same_bits(s->t[1], nb_node_value(n->b));
    for (int i = 2; same && i < s->n; i++)
        same = same_bits(s->t[i], nb_optimizer_state(o, i - 2, NULL));
    return same;
}

static void free_snap(struct snap *s)
{
    for (int i = 0; i < s->n; i++)
        nb_tensor_free(s->t[i]);
}

/* A NaN or infinity at the first, a middle or the last element of the
 * large weight (202,903 elements, so its end is a tail shorter than any
 * vector or lane block), near its end, or in the small bias, is refused on
 * one thread and on two, and the parameters and state keep their bits. */
static void test_nonfinite_big(nb_dtype dt)
{
    const nb_optim_config cfgs[] = {
        {.kind = NB_OPTIM_SGD, .lr = 0.05, .momentum = 0.9},
        {.kind = NB_OPTIM_ADAMW, .weight_decay = 0.1, .clip_norm = 1},
    };
    const double bad[3] = {NAN, INFINITY, -INFINITY};
    const int64_t nw = (int64_t)BIG_R * BIG_C;
    const int64_t wpos[] = {0, 1, nw / 2, nw / 2 + 31, nw - 17, nw - 1};
    const int64_t bpos[] = {0, BIG_B - 1};
    for (size_t k = 0; k < 2; k++) {
        struct big n = make_big(dt);
        nb_optimizer *o = make_opt(n.g, cfgs[k]);
        /* One good step first, so the state is not all zero. */
        CHECK(run_step(n.g, n.loss, o) == NB_OK, "%s", nb_graph_error(n.g));
        nb_forward(n.g, n.loss);
        nb_backward(n.g, n.loss);
        struct snap s = take_snap(&n, o);
        nb_tensor *gw = nb_node_grad(n.w), *gb = nb_node_grad(n.b);
        int refused = 0, tried = 0;
        for (int threads = 1; threads <= 2; threads++) {
            use_threads(threads);
            for (int which = 0; which < 2; which++) {
                nb_tensor *gt = which ? gb : gw;
                const int64_t *pos = which ? bpos : wpos;
                int npos = which ? 2 : (int)(sizeof wpos / sizeof *wpos);
                for (int i = 0; i < npos; i++)
                    for (int v = 0; v < 3; v++) {
                        double keep = nb_tensor_get(gt, pos[i]);
                        nb_tensor_set(gt, pos[i], bad[v]);
                        tried++;
                        int rc = nb_optimizer_step(o);
                        refused += rc == NB_ERR_NONFINITE;
                        CHECK(rc == NB_ERR_NONFINITE,
                              "%s config %zu, %d threads: %g at %s[%lld] "
                              "accepted",
                              dt_name(dt), k, threads, bad[v],
                              which ? "b" : "W", (long long)pos[i]);
                        CHECK_ERROR(n.g, "optimizer_step", "NaN or infinity");
                        nb_tensor_set(gt, pos[i], keep);
                        CHECK(snap_same(&s, &n, o),
                              "%s config %zu, %d threads: %g at %s[%lld] "
                              "changed something",
                              dt_name(dt), k, threads, bad[v],
                              which ? "b" : "W", (long long)pos[i]);
                    }
            }
        }
        use_threads(1);
        CHECK(refused == tried, "%s config %zu: %d of %d refused", dt_name(dt),
              k, refused, tried);
        CHECK(nb_optimizer_steps(o) == 1, "refused steps are not counted");
        /* Restored, the gradients are accepted again. */
        CHECK(nb_optimizer_step(o) == NB_OK, "%s", nb_graph_error(n.g));
        CHECK(!snap_same(&s, &n, o), "the good step changed the weights");
        free_snap(&s);
        nb_optimizer_free(o);
        nb_graph_free(n.g);
    }
}

/* A step whose inputs are finite but whose results are not is refused with
 * nothing changed (parameters, state, count), for every rule, with and
 * without clipping (the check then runs after the norm), on one thread and
 * on two: one weight far from its target (1e20 in f32) under lr 1e30 steps
 * past the range (and, for RMSprop and Adam, so does its squared
 * gradient), while every other update stays finite, so the one element
 * must be found wherever it falls (first slot, middle, last element). */
static void test_result_overflow(nb_dtype dt)
{
    const double far = dt == NB_F32 ? 1e20 : 1e160;
    const nb_optim_config cfgs[] = {
        {.kind = NB_OPTIM_SGD, .lr = 0.1},
        {.kind = NB_OPTIM_SGD, .lr = 0.05, .momentum = 0.9},
        {.kind = NB_OPTIM_SGD, .lr = 0.05, .momentum = 0.9, .clip_norm = 1e9},
        {.kind = NB_OPTIM_RMSPROP},
        {.kind = NB_OPTIM_ADAM},
        {.kind = NB_OPTIM_ADAMW, .weight_decay = 0.1, .clip_norm = 1e9},
    };
    const int64_t nw = (int64_t)BIG_R * BIG_C;
    const int64_t at[] = {0, nw / 2 + 31, nw - 1};
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        struct big n = make_big(dt);
        nb_optimizer *o = make_opt(n.g, cfgs[k]);
        CHECK(run_step(n.g, n.loss, o) == NB_OK, "%s", nb_graph_error(n.g));
        nb_forward(n.g, n.loss);
        nb_backward(n.g, n.loss);
        double lr = nb_optimizer_lr(o);
        for (int threads = 1; threads <= 2; threads++) {
            use_threads(threads);
            /* One weight far from its target under a learning rate that
             * keeps every other update finite: only that weight (and, for
             * RMSprop and Adam, its squared gradient) leaves the range. */
            nb_optimizer_set_lr(o, dt == NB_F32 ? 1e30 : 1e300);
            for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
                nb_tensor *w = nb_node_value(n.w);
                double keep = nb_tensor_get(w, at[i]);
                nb_tensor_set(w, at[i], far);
                nb_forward(n.g, n.loss);
                nb_backward(n.g, n.loss);
                struct snap s = take_snap(&n, o);
                int rc = nb_optimizer_step(o);
                CHECK(rc == NB_ERR_NONFINITE,
                      "%s config %zu, %d threads: W[%lld] = %g stepped "
                      "(rc %d)",
                      dt_name(dt), k, threads, (long long)at[i], far, rc);
                CHECK(snap_same(&s, &n, o),
                      "%s config %zu, %d threads: W[%lld]: the refused step "
                      "changed something",
                      dt_name(dt), k, threads, (long long)at[i]);
                free_snap(&s);
                nb_tensor_set(w, at[i], keep);
            }
            nb_optimizer_set_lr(o, lr);
            nb_forward(n.g, n.loss);
            nb_backward(n.g, n.loss);
            nb_graph_clear_error(n.g);
        }
        use_threads(1);
        nb_forward(n.g, n.loss);
        nb_backward(n.g, n.loss);
        CHECK(nb_optimizer_step(o) == NB_OK, "%s config %zu after: %s",
              dt_name(dt), k, nb_graph_error(n.g));
        nb_optimizer_free(o);
        nb_graph_free(n.g);
    }
}

/* Clipping with a norm known by hand: L = l2(W) + l2(b), so g = w, with
 * W_i = (i mod 5) - 2 over 131,841 elements (26,368 groups of 4+1+0+1+4
 * = 10, and one more element of -2: 263,684) and b_i = (i mod 3) - 1 over
 * 37 (12 groups of 2 and one of -1: 25), norm^2 = 263,709. SGD lr 1 with
 * clip_norm 1 gives w - w / norm. Every square and partial sum is an
 * integer well within float, so f32 has the exact norm too. */
static void test_clip_big(nb_dtype dt)
{
    const double norm = sqrt(263709.0);
    const int64_t nw = 257 * 513;
    for (int threads = 1; threads <= 2; threads++) {
        nb_graph *g = nb_graph_new();
        nb_node *w = nb_param(g, "W", dt, 2, SHAPE(257, 513));
        nb_node *b = nb_param(g, "b", dt, 1, SHAPE(37));
        for (int64_t i = 0; i < nw; i++)
            nb_tensor_set(nb_node_value(w), i, (double)(i % 5) - 2);
        for (int i = 0; i < 37; i++)
            nb_tensor_set(nb_node_value(b), i, (double)(i % 3) - 1);
        nb_node *loss = nb_add(g, nb_l2_penalty(g, w), nb_l2_penalty(g, b));
        nb_optimizer *o = make_opt(
            g,
            (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 1, .clip_norm = 1});
        use_threads(threads);
        CHECK(run_step(g, loss, o) == NB_OK, "%s", nb_graph_error(g));
        use_threads(1);
        CHECK(fabs(nb_optimizer_grad_norm(o) / norm - 1) < 1e-14,
              "%s, %d threads: norm %.17g, by hand %.17g", dt_name(dt), threads,
              nb_optimizer_grad_norm(o), norm);
        double tol = dt == NB_F64 ? 1e-15 : 1e-7;
        const int64_t at[] = {0, 1, 3, nw / 2, nw - 2, nw - 1};
        for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
            double w0 = (double)(at[i] % 5) - 2;
            CHECK_NEAR(val(w, (int)at[i]), w0 - w0 / norm, tol);
        }
        CHECK_NEAR(val(b, 0), -1 + 1 / norm, tol);
        CHECK_NEAR(val(b, 36), -1 + 1 / norm, tol);
        CHECK_NEAR(val(b, 35), 1 - 1 / norm, tol);
        /* The same norm from nb_clip_grad_norm on the same gradients. */
        use_threads(threads);
        CHECK(fabs(clip_norm(g, 0, NULL, 1e9) / norm - 1) < 1e-14,
              "%s: nb_clip_grad_norm", dt_name(dt));
        use_threads(1);
        nb_optimizer_free(o);
        nb_graph_free(g);
    }
}

/* ---- schedules ---- */

static void test_schedules(void)
{
    nb_schedule s = {.kind = NB_SCHEDULE_CONSTANT, .lr0 = 0.1};
    CHECK_NEAR(nb_schedule_lr(&s, 0), 0.1, 0);
    CHECK_NEAR(nb_schedule_lr(&s, 1000), 0.1, 0);

    /* step: 1 * 0.5^floor(t / 3) */
    s = (nb_schedule){
        .kind = NB_SCHEDULE_STEP, .lr0 = 1, .gamma = 0.5, .step_size = 3};
    const int64_t st[] = {0, 2, 3, 5, 6, 10};
    const double sv[] = {1, 1, 0.5, 0.5, 0.25, 0.125};
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(nb_schedule_lr(&s, st[i]), sv[i], 1e-15);

    /* exponential: 2 * 0.9^t = 2, 1.8, 1.62, 1.458 */
    s = (nb_schedule){.kind = NB_SCHEDULE_EXPONENTIAL, .lr0 = 2, .gamma = 0.9};
    const double ev[] = {2, 1.8, 1.62, 1.458};
    for (int t = 0; t < 4; t++)
        CHECK_NEAR(nb_schedule_lr(&s, t), ev[t], 1e-15);

    /* inverse time: 1 / (1 + 0.5 t) = 1, 2/3, 1/2, ..., 1/4 at t = 6 */
    s = (nb_schedule){.kind = NB_SCHEDULE_INVERSE_TIME, .lr0 = 1, .decay = 0.5};
    CHECK_NEAR(nb_schedule_lr(&s, 0), 1, 0);
    CHECK_NEAR(nb_schedule_lr(&s, 1), 0.6666666666666666, 1e-15);
    CHECK_NEAR(nb_schedule_lr(&s, 2), 0.5, 1e-15);
    CHECK_NEAR(nb_schedule_lr(&s, 6), 0.25, 1e-15);

    /* cosine from 1 to 0.1 over 4: 0.1 + 0.9 (1 + cos(pi t / 4)) / 2 with
     * cos(pi/4) = 0.7071067811865476: t=1 0.8681980515339464, t=2 0.55,
     * t=3 0.2318019484660536, then 0.1. */
    s = (nb_schedule){
        .kind = NB_SCHEDULE_COSINE, .lr0 = 1, .min_lr = 0.1, .period = 4};
    CHECK_NEAR(nb_schedule_lr(&s, 0), 1, 1e-15);
    CHECK_NEAR(nb_schedule_lr(&s, 1), 0.8681980515339464, 1e-15);
    CHECK_NEAR(nb_schedule_lr(&s, 2), 0.55, 1e-15);
    CHECK_NEAR(nb_schedule_lr(&s, 3), 0.2318019484660536, 1e-15);
    CHECK_NEAR(nb_schedule_lr(&s, 4), 0.1, 0);
    CHECK_NEAR(nb_schedule_lr(&s, 100), 0.1, 0);

    /* Bad fields give NaN. */
    const nb_schedule bad[] = {
        {.kind = NB_SCHEDULE_CONSTANT, .lr0 = -1},
        {.kind = NB_SCHEDULE_CONSTANT, .lr0 = NAN},
        {.kind = NB_SCHEDULE_CONSTANT, .lr0 = INFINITY},
        {.kind = NB_SCHEDULE_STEP, .lr0 = 1, .gamma = 0, .step_size = 1},
        {.kind = NB_SCHEDULE_STEP, .lr0 = 1, .gamma = -0.5, .step_size = 1},
        {.kind = NB_SCHEDULE_STEP, .lr0 = 1, .gamma = 0.5, .step_size = 0},
        {.kind = NB_SCHEDULE_STEP, .lr0 = 1, .gamma = 0.5, .step_size = -2},
        {.kind = NB_SCHEDULE_STEP, .lr0 = 1, .gamma = NAN, .step_size = 2},
        {.kind = NB_SCHEDULE_EXPONENTIAL, .lr0 = 1, .gamma = 0},
        {.kind = NB_SCHEDULE_EXPONENTIAL, .lr0 = 1, .gamma = -1},
        {.kind = NB_SCHEDULE_INVERSE_TIME, .lr0 = 1, .decay = -0.1},
        {.kind = NB_SCHEDULE_INVERSE_TIME, .lr0 = 1, .decay = NAN},
        {.kind = NB_SCHEDULE_COSINE, .lr0 = 1, .period = 0},
        {.kind = NB_SCHEDULE_COSINE, .lr0 = 1, .period = -5},
        {.kind = NB_SCHEDULE_COSINE, .lr0 = 1, .period = 5, .min_lr = 2},
        {.kind = NB_SCHEDULE_COSINE, .lr0 = 1, .period = 5, .min_lr = -0.1},
        {.kind = (nb_schedule_kind)99, .lr0 = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(isnan(nb_schedule_lr(&bad[i], 1)), "bad schedule %zu gives %g", i,
              nb_schedule_lr(&bad[i], 1));
    s = (nb_schedule){.kind = NB_SCHEDULE_CONSTANT, .lr0 = 1};
    CHECK(isnan(nb_schedule_lr(&s, -1)), "t < 0");
    CHECK(isnan(nb_schedule_lr(NULL, 0)), "NULL schedule");
    /* Unused fields are ignored; a growing rate is allowed. */
    s = (nb_schedule){.kind = NB_SCHEDULE_CONSTANT, .lr0 = 1, .gamma = -3};
    CHECK_NEAR(nb_schedule_lr(&s, 5), 1, 0);
    s = (nb_schedule){.kind = NB_SCHEDULE_EXPONENTIAL, .lr0 = 1, .gamma = 2};
    CHECK_NEAR(nb_schedule_lr(&s, 3), 8, 0);
}

/* ---- errors ---- */

#define NEW_FAILS(g, cfg, n, params, ...)                                      \
    do {                                                                       \
        nb_optim_config tu_cfg = cfg;                                          \
        nb_optimizer *tu_o = nb_optimizer_new(g, &tu_cfg, n, params);          \
        CHECK(tu_o == NULL, "optimizer_new should fail");                      \
        nb_optimizer_free(tu_o);                                               \
        CHECK(nb_graph_status(g) == NB_ERR_ARG, "status %d",                   \
              nb_graph_status(g));                                             \
        CHECK_ERROR(g, __VA_ARGS__);                                           \
    } while (0)

#define CFG(...) ((nb_optim_config){__VA_ARGS__})

static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(1, 2));
    nb_node *w = param_row(g, "w", NB_F64, 2, (double[]){1, 2});
    nb_node *c = const_row(g, "c", NB_F64, 2, (double[]){0, 0});
    nb_node *loss = nb_sse_loss(g, nb_mul(g, w, x), c);
    CHECK(loss != NULL, "%s", nb_graph_error(g));

    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .lr = -0.1), 0, NULL,
              "optimizer_new", "lr must be >= 0", "-0.1");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .lr = NAN), 0, NULL, "lr is NaN");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .lr = INFINITY), 0, NULL,
              "lr is infinite");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .momentum = 1), 0, NULL,
              "momentum must be in [0, 1)", "got 1");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .momentum = -0.5), 0, NULL,
              "momentum must be in [0, 1)");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .momentum = NAN), 0, NULL,
              "momentum is NaN");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .nesterov = true), 0, NULL,
              "nesterov needs momentum > 0");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAM, .beta1 = 1), 0, NULL,
              "beta1 must be in [0, 1)");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAMW, .beta2 = 1.5), 0, NULL,
              "beta2 must be in [0, 1)", "1.5");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAM, .beta2 = -0.1), 0, NULL,
              "beta2 must be in [0, 1)");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAM, .beta1 = NAN), 0, NULL,
              "beta1 is NaN");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_RMSPROP, .rho = 1), 0, NULL,
              "rho must be in [0, 1)");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAM, .eps = -1e-8), 0, NULL,
              "eps must be >= 0");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .weight_decay = -1), 0, NULL,
              "weight_decay must be >= 0");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .weight_decay = INFINITY), 0, NULL,
              "weight_decay is infinite");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .l1 = -0.1), 0, NULL,
              "l1 must be >= 0");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .clip_norm = -1), 0, NULL,
              "clip_norm must be >= 0");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .clip_norm = NAN), 0, NULL,
              "clip_norm is NaN");
    NEW_FAILS(g, CFG(.kind = (nb_optim_kind)42), 0, NULL,
              "unknown optimiser kind 42");
    /* Fields the kind does not use. */
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAM, .momentum = 0.9), 0, NULL,
              "momentum is not used by Adam", "beta1");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_RMSPROP, .nesterov = true), 0, NULL,
              "nesterov is not used by RMSprop");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .beta1 = 0.9), 0, NULL,
              "beta1 is not used by SGD");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_RMSPROP, .beta2 = 0.9), 0, NULL,
              "beta2 is not used by RMSprop", "rho");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_ADAMW, .rho = 0.9), 0, NULL,
              "rho is not used by AdamW", "beta2");
    NEW_FAILS(g, CFG(.kind = NB_OPTIM_SGD, .eps = 1e-6), 0, NULL,
              "eps is not used by SGD");

    /* The parameter list. */
    nb_optim_config ok = {.kind = NB_OPTIM_SGD};
    nb_node *with_input[] = {w, x};
    NEW_FAILS(g, ok, 2, with_input, "params[1]", "'x'", "not a parameter",
              "an input");
    nb_node *with_const[] = {c};
    NEW_FAILS(g, ok, 1, with_const, "params[0]", "'c'", "a constant");
    nb_node *with_op[] = {w, loss};
    NEW_FAILS(g, ok, 2, with_op, "params[1]", "an op node");
    nb_node *with_null[] = {w, NULL};
    NEW_FAILS(g, ok, 2, with_null, "params[1] is NULL");
    nb_node *twice[] = {w, w};
    NEW_FAILS(g, ok, 2, twice, "params[0] and params[1]", "same parameter",
              "'w'");
    NEW_FAILS(g, ok, -1, NULL, "n must be >= 0");
    NEW_FAILS(g, ok, 2, NULL, "params is NULL");
    nb_graph *other = nb_graph_new();
    nb_node *foreign[] = {param_row(other, "v", NB_F64, 1, (double[]){0})};
    NEW_FAILS(g, ok, 1, foreign, "'v'", "another graph");
    CHECK(nb_optimizer_new(g, NULL, 0, NULL) == NULL, "NULL config");
    CHECK_ERROR(g, "config is NULL");
    nb_graph *empty = nb_graph_new();
    NEW_FAILS(empty, ok, 0, NULL, "the graph has no parameters");
    nb_graph_free(empty);
    nb_graph_free(other);

    /* Setters and lookups. */
    nb_optimizer *o = make_opt(
        g, (nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.5, .momentum = 0.5});
    nb_optimizer_set_lr(o, -1);
    CHECK_ERROR(g, "optimizer_set_lr", "lr must be finite and >= 0");
    nb_optimizer_set_lr(o, NAN);
    CHECK_ERROR(g, "optimizer_set_lr");
    CHECK(nb_optimizer_lr(o) == 0.5, "lr unchanged: %g", nb_optimizer_lr(o));
    CHECK(nb_optimizer_set_steps(o, -3) == NB_ERR_ARG, "steps -3");
    CHECK_ERROR(g, "optimizer_set_steps", "-3");
    CHECK(nb_optimizer_steps(o) == 0, "steps unchanged");
    /* No count a step could not follow: INT64_MAX is refused, and a step
     * that would reach it is refused without changing anything. */
    CHECK(nb_optimizer_set_steps(o, INT64_MAX) == NB_ERR_ARG,
          "steps INT64_MAX accepted");
    CHECK_ERROR(g, "optimizer_set_steps", "9223372036854775807");
    CHECK(nb_optimizer_steps(o) == 0, "steps unchanged");
    CHECK(nb_optimizer_set_steps(o, INT64_MAX - 1) == NB_OK, "%s",
          nb_graph_error(g));
    nb_feed(g, x, 2, SHAPE(1, 2), (double[]){1, 1});
    nb_forward(g, loss);
    nb_backward(g, loss);
    double w_before[2] = {val(w, 0), val(w, 1)};
    CHECK(nb_optimizer_step(o) == NB_ERR_STATE, "the count overflowed");
    CHECK_ERROR(g, "optimizer_step", "step count");
    CHECK(nb_optimizer_steps(o) == INT64_MAX - 1 && val(w, 0) == w_before[0] &&
              val(w, 1) == w_before[1],
          "the refused step changed something");
    CHECK(nb_optimizer_set_steps(o, 0) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_optimizer_set_lr(o, -1) == NB_ERR_ARG, "set_lr -1");
    nb_graph_clear_error(g);
    const char *name = "sentinel";
    CHECK(nb_optimizer_state(o, 1, &name) == NULL && name == NULL,
          "state index out of range");
    CHECK_ERROR(g, "optimizer_state", "index 1", "[0, 1)");
    CHECK(nb_optimizer_state(o, -1, NULL) == NULL, "negative index");
    CHECK_ERROR(g, "optimizer_state");
    CHECK(nb_optimizer_param(o, 5) == NULL, "param index out of range");
    CHECK_ERROR(g, "optimizer_param", "index 5");
    CHECK(nb_optimizer_step(NULL) == NB_ERR_ARG, "NULL optimiser");
    CHECK(isnan(nb_optimizer_lr(NULL)), "NULL optimiser lr");

    /* A non-finite gradient is refused and changes nothing. */
    double inf_x[2] = {1, INFINITY};
    nb_feed(g, x, 2, SHAPE(1, 2), inf_x);
    nb_forward(g, loss);
    nb_backward(g, loss);
    CHECK(nb_optimizer_step(o) == NB_ERR_NONFINITE, "non-finite gradient");
    CHECK_ERROR(g, "optimizer_step", "NaN or infinity", "no parameter");
    CHECK(val(w, 0) == 1 && val(w, 1) == 2, "w untouched");
    CHECK(nb_tensor_get(nb_optimizer_state(o, 0, NULL), 0) == 0,
          "state untouched");
    CHECK(nb_optimizer_steps(o) == 0, "not counted");
    CHECK(isnan(nb_optimizer_grad_norm(o)) || isinf(nb_optimizer_grad_norm(o)),
          "the norm is reported: %g", nb_optimizer_grad_norm(o));
    CHECK(nb_clip_grad_norm(g, 0, NULL, 1, NULL) == NB_ERR_NONFINITE, "clip");
    CHECK_ERROR(g, "clip_grad_norm", "NaN or infinity");

    /* The graph and the optimiser stay usable. x = (1, 1): loss =
     * 1/2 sum w^2, g = w = (1, 2), lr 0.5: w1 = (0.5, 1). */
    nb_feed(g, x, 2, SHAPE(1, 2), (double[]){1, 1});
    CHECK(run_step(g, loss, o) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_graph_error(g) == NULL, "no error left");
    CHECK_NEAR(val(w, 0), 0.5, 1e-15);
    CHECK_NEAR(val(w, 1), 1.0, 1e-15);
    nb_optimizer_free(o);
    nb_graph_free(g);
}

/* ---- convergence ---- */

/* Logistic regression on 32 separable points in the plane (label
 * [x0 + 2 x1 > 0.3]): every optimiser must bring the loss from ln 2 well
 * down. */
static double logistic_run(nb_optim_config cfg, nb_dtype dt, int steps)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_constant(g, "x", dt, 2, SHAPE(32, 2));
    nb_node *t = nb_constant(g, "t", dt, 2, SHAPE(32, 1));
    nb_node *w = nb_param(g, "W", dt, 2, SHAPE(2, 1));
    nb_node *b = nb_param(g, "b", dt, 1, SHAPE(1));
    for (int i = 0; i < 32; i++) {
        double x0 = sin(1.7 * i + 0.3), x1 = cos(2.3 * i + 1.1);
        nb_tensor_set(nb_node_value(x), 2 * i, x0);
        nb_tensor_set(nb_node_value(x), 2 * i + 1, x1);
        nb_tensor_set(nb_node_value(t), i, x0 + 2 * x1 > 0.3 ? 1 : 0);
    }
    nb_node *loss = nb_bce_logits_loss(g, nb_add(g, nb_matmul(g, x, w), b), t);
    nb_optimizer *o = make_opt(g, cfg);
    for (int s = 0; s < steps; s++)
        CHECK(run_step(g, loss, o) == NB_OK, "%s", nb_graph_error(g));
    nb_forward(g, loss);
    double l = val(loss, 0);
    nb_optimizer_free(o);
    nb_graph_free(g);
    return l;
}

/* 1/2 sum (w - c)^2 with an ill-conditioned scaling: w = (w0, 10 w1)
 * entering through x = (1, 10); the minimum is w = (3, -0.2). */
static double quadratic_run(nb_optim_config cfg, int steps)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = param_row(g, "w", NB_F64, 2, (double[]){0, 0});
    nb_node *x = const_row(g, "x", NB_F64, 2, (double[]){1, 10});
    nb_node *c = const_row(g, "c", NB_F64, 2, (double[]){3, -2});
    nb_node *loss = nb_sse_loss(g, nb_mul(g, w, x), c);
    nb_optimizer *o = make_opt(g, cfg);
    for (int s = 0; s < steps; s++)
        CHECK(run_step(g, loss, o) == NB_OK, "%s", nb_graph_error(g));
    double d0 = val(w, 0) - 3, d1 = val(w, 1) + 0.2;
    nb_optimizer_free(o);
    nb_graph_free(g);
    return sqrt(d0 * d0 + d1 * d1);
}

static void test_convergence(void)
{
    const struct {
        const char *name;
        nb_optim_config cfg;
    } runs[] = {
        {"sgd", {.kind = NB_OPTIM_SGD, .lr = 0.5}},
        {"momentum", {.kind = NB_OPTIM_SGD, .lr = 0.2, .momentum = 0.9}},
        {"nesterov",
         {.kind = NB_OPTIM_SGD, .lr = 0.2, .momentum = 0.9, .nesterov = true}},
        {"rmsprop", {.kind = NB_OPTIM_RMSPROP, .lr = 0.02}},
        {"adam", {.kind = NB_OPTIM_ADAM, .lr = 0.05}},
        {"adamw", {.kind = NB_OPTIM_ADAMW, .lr = 0.05, .weight_decay = 0.01}},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        for (int d = 0; d < 2; d++) {
            nb_dtype dt = d ? NB_F64 : NB_F32;
            double l = logistic_run(runs[i].cfg, dt, 300);
            CHECK(l < 0.2,
                  "%s %s: logistic loss %g after 300 steps (from "
                  "0.693)",
                  runs[i].name, dt_name(dt), l);
        }
    }
    /* The quadratic's curvatures are 1 and 100: plain SGD needs lr < 0.02
     * to be stable (Nesterov's look-ahead about lr < 0.0136 with mu = 0.9)
     * and then crawls along the flat direction. */
    const struct {
        const char *name;
        nb_optim_config cfg;
    } quad[] = {
        {"sgd", {.kind = NB_OPTIM_SGD, .lr = 0.015}}, /* must stay first */
        {"momentum", {.kind = NB_OPTIM_SGD, .lr = 0.015, .momentum = 0.9}},
        {"nesterov",
         {.kind = NB_OPTIM_SGD, .lr = 0.01, .momentum = 0.9, .nesterov = true}},
        {"rmsprop", {.kind = NB_OPTIM_RMSPROP, .lr = 0.01}},
        {"adam", {.kind = NB_OPTIM_ADAM, .lr = 0.05}},
        {"adamw", {.kind = NB_OPTIM_ADAMW, .lr = 0.05}},
    };
    for (size_t i = 0; i < sizeof quad / sizeof *quad; i++) {
        double dist = quadratic_run(quad[i].cfg, 500);
        CHECK(dist < 0.01,
              "%s: distance to the minimum %g after 500 steps "
              "(from 3.007)",
              quad[i].name, dist);
        /* Plain SGD in closed form: each coordinate's error shrinks by
         * 1 - lr h per step, h = 1 and 100: 3 * 0.985^500 and 0.2 * 0.5^500. */
        if (i == 0)
            CHECK_NEAR(dist, 3 * pow(0.985, 500), 1e-12);
    }
}

/* A step over fewer than 64 elements runs on the calling thread without
 * slots, and plain SGD's there as one loop over every parameter: its
 * update must be w - lr dw to the bit in either dtype, its norm that of
 * the gradient, and an update past the range refused with nothing
 * changed. */
static void test_small_sgd(nb_dtype dt)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", dt, 1, SHAPE(5));
    nb_node *b = nb_param(g, "b", dt, 1, SHAPE(2));
    for (int i = 0; i < 5; i++)
        nb_tensor_set(nb_node_value(w), i, 0.3 * i - 0.7);
    nb_tensor_set(nb_node_value(b), 0, 1.5);
    nb_tensor_set(nb_node_value(b), 1, -0.25);
    /* d/dw sum(w w) = 2w and d/db sum(b) = 1, both exact. */
    nb_node *loss = nb_add(g, nb_sum(g, nb_mul(g, w, w)), nb_sum(g, b));
    nb_optimizer *o = nb_optimizer_new(
        g, &(nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.1}, 0, NULL);
    CHECK(o != NULL, "%s", nb_graph_error(g));
    double before[5], sq = 0;
    for (int i = 0; i < 5; i++) {
        before[i] = nb_tensor_get(nb_node_value(w), i);
        sq += 4 * before[i] * before[i];
    }
    CHECK(run_step(g, loss, o) == NB_OK, "%s", nb_graph_error(g));
    for (int i = 0; i < 5; i++) {
        double got = nb_tensor_get(nb_node_value(w), i), want;
        if (dt == NB_F32) {
            float wi = (float)before[i];
            want = wi - (float)0.1 * (2 * wi);
        } else {
            want = before[i] - 0.1 * (2 * before[i]);
        }
        CHECK(got == want, "%s w[%d] = %.17g, expected %.17g", dt_name(dt), i,
              got, want);
    }
    double bw = dt == NB_F32 ? (double)(1.5f - (float)0.1) : 1.5 - 0.1;
    CHECK(nb_tensor_get(nb_node_value(b), 0) == bw, "%s b[0] = %.17g",
          dt_name(dt), nb_tensor_get(nb_node_value(b), 0));
    CHECK_NEAR(nb_optimizer_grad_norm(o), sqrt(sq + 2), 1e-6);
    /* One weight far out under a huge rate: refused, nothing moves. */
    nb_tensor_set(nb_node_value(w), 3, dt == NB_F32 ? 1e20 : 1e160);
    nb_optimizer_set_lr(o, dt == NB_F32 ? 1e30 : 1e300);
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "%s",
          nb_graph_error(g));
    double held[5];
    for (int i = 0; i < 5; i++)
        held[i] = nb_tensor_get(nb_node_value(w), i);
    double b0 = nb_tensor_get(nb_node_value(b), 0);
    CHECK(nb_optimizer_step(o) == NB_ERR_NONFINITE, "%s: overflow stepped",
          dt_name(dt));
    nb_graph_clear_error(g);
    for (int i = 0; i < 5; i++)
        CHECK(nb_tensor_get(nb_node_value(w), i) == held[i],
              "%s: the refused step moved w[%d]", dt_name(dt), i);
    CHECK(nb_tensor_get(nb_node_value(b), 0) == b0,
          "%s: the refused step moved b", dt_name(dt));
    nb_optimizer_free(o);
    nb_graph_free(g);
}

/* Plain SGD's small path (one walk that checks, updates and keeps the old
 * values) against the general passes, which a clipping threshold no norm
 * reaches selects: the same bits in every parameter and the same norm,
 * step after step, over parameters whose sizes take whole vectors and
 * remainders, with a frozen parameter, one that never gets a gradient and
 * one left out of every other loss. With a parameter of 70 elements after
 * small ones the walk gives up past 64 elements (putting back what it had
 * updated) and the general passes must still give the same bits. */
struct small_net {
    nb_graph *g;
    nb_node *p[8];
    int n;
    nb_node *loss[2];
};

static struct small_net make_small_net(nb_dtype dt, const int64_t *sizes,
                                       int n)
{
    struct small_net s = {.g = nb_graph_new(), .n = n};
    nb_node *sum[2] = {NULL, NULL};
    for (int k = 0; k < n; k++) {
        char name[8] = {'p', (char)('0' + k), 0};
        s.p[k] = nb_param(s.g, name, dt, 1, SHAPE(sizes[k]));
        for (int64_t i = 0; i < sizes[k]; i++)
            nb_tensor_set(nb_node_value(s.p[k]), i,
                          0.37 * (double)(i + 1) - 0.21 * k - 0.9);
        if (k == 1)
            continue; /* never in a loss: never a gradient */
        nb_node *p = s.p[k];
        nb_node *term = nb_sum(s.g, nb_mul(s.g, nb_tanh(s.g, p), p));
        for (int l = 0; l < 2; l++)
            if (l == 0 || k != 2) /* the second loss leaves p2 out */
                sum[l] = sum[l] ? nb_add(s.g, sum[l], term) : term;
    }
    s.loss[0] = sum[0];
    s.loss[1] = sum[1];
    CHECK(nb_param_set_trainable(s.g, s.p[n - 1], false) == NB_OK, "%s",
          nb_graph_error(s.g));
    return s;
}

static void test_small_sgd_paths(nb_dtype dt)
{
    const int64_t small[] = {5, 4, 3, 8, 1, 2, 9};
    const int64_t big[] = {3, 2, 2, 70, 1};
    const int64_t *sets[2] = {small, big};
    const int ns[2] = {7, 5};
    for (int set = 0; set < 2; set++) {
        struct small_net a = make_small_net(dt, sets[set], ns[set]);
        struct small_net b = make_small_net(dt, sets[set], ns[set]);
        struct small_net fresh = make_small_net(dt, sets[set], ns[set]);
        nb_optimizer *oa = nb_optimizer_new(
            a.g, &(nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.3}, 0,
            NULL);
        nb_optimizer *ob = nb_optimizer_new(
            b.g,
            &(nb_optim_config){
                .kind = NB_OPTIM_SGD, .lr = 0.3, .clip_norm = 1e300},
            0, NULL);
        CHECK(oa && ob, "%s", nb_graph_error(a.g));
        for (int step = 0; step < 6; step++) {
            int l = step % 2;
            CHECK(run_step(a.g, a.loss[l], oa) == NB_OK, "%s",
                  nb_graph_error(a.g));
            CHECK(run_step(b.g, b.loss[l], ob) == NB_OK, "%s",
                  nb_graph_error(b.g));
            for (int k = 0; k < a.n; k++)
                CHECK(same_bits(nb_node_value(a.p[k]), nb_node_value(b.p[k])),
                      "%s set %d step %d: p%d differs between the paths",
                      dt_name(dt), set, step, k);
            CHECK(nb_optimizer_grad_norm(oa) == nb_optimizer_grad_norm(ob),
                  "%s set %d step %d: norm %.17g, general %.17g", dt_name(dt),
                  set, step, nb_optimizer_grad_norm(oa),
                  nb_optimizer_grad_norm(ob));
        }
        /* Not vacuous: trained parameters moved, the others did not. */
        for (int k = 0; k < a.n; k++) {
            bool moved = !same_bits(nb_node_value(a.p[k]),
                                    nb_node_value(fresh.p[k]));
            CHECK(moved == (k != 1 && k != a.n - 1),
                  "%s set %d: p%d %s", dt_name(dt), set, k,
                  moved ? "moved" : "did not move");
        }
        nb_optimizer_free(oa);
        nb_optimizer_free(ob);
        nb_graph_free(a.g);
        nb_graph_free(b.g);
        nb_graph_free(fresh.g);
    }
}

int main(void)
{
    /* Before any graph exists, as nb_set_allocator requires. */
    nb_set_allocator(&(nb_allocator){count_alloc, count_free, NULL});

    const nb_dtype dts[2] = {NB_F64, NB_F32};
    const double tols[2] = {1e-14, 2e-6};
    for (int d = 0; d < 2; d++) {
        test_sgd(dts[d], tols[d]);
        test_momentum(dts[d], tols[d], false);
        test_momentum(dts[d], tols[d], true);
        test_rmsprop(dts[d], tols[d]);
        test_adam(dts[d], tols[d]);
        test_adamw(dts[d], tols[d], false, false);
        test_adamw(dts[d], tols[d], true, false);
        test_adamw(dts[d], tols[d], true, true);
        test_l1_l2(dts[d], tols[d], false);
        test_l1_l2(dts[d], tols[d], true);
        test_clipping(dts[d], tols[d]);
        test_norm_large(dts[d]);
        test_skipped(dts[d]);
        test_restore(dts[d]);
        test_threads_bitwise(dts[d]);
        test_nonfinite_big(dts[d]);
        test_clip_big(dts[d]);
        test_result_overflow(dts[d]);
        test_small_sgd(dts[d]);
        test_small_sgd_paths(dts[d]);
    }
    test_defaults();
    test_mixed_dtypes();
    test_no_alloc_in_step();
    test_schedules();
    test_errors();
    test_convergence();
    return tu_finish("optim");
}
