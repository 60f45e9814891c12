/* Values and errors of the elementwise math ops: unary.c, activation.c,
 * prelu.c and maxout.c, in f32 and f64.
 *
 * Expected numbers are derived by hand or with a different computation
 * (30-digit mpmath for the transcendental ones, libm where noted), never
 * taken from the ops' own output. Gradients are read after backward with a
 * seed of ones (or a stated seed), so dx is the derivative itself.
 */
#include "test_util.h"

#define SELU_LAMBDA 1.0507009873554804934
#define SELU_ALPHA 1.6732632423543772848
#define E 2.718281828459045235
#define LN2 0.6931471805599453094

/* Relative-ish tolerance: |got - want| <= tol (1 + |want|). */
static double tol_of(nb_dtype dtype)
{
    return dtype == NB_F32 ? 2e-6 : 1e-14;
}

#define CHECK_CLOSE(got, want, tol, ...)                                      \
    do {                                                                      \
        double got_ = (got), want_ = (want);                                  \
        CHECK(fabs(got_ - want_) <= (tol) * (1 + fabs(want_)),                \
              "got %.17g, want %.17g: %s", got_, want_, __VA_ARGS__);         \
    } while (0)

/* A trainable parameter holding v (rank and shape as given). */
static nb_node *values(nb_graph *g, nb_dtype dtype, int rank,
                       const int64_t *shape, const double *v)
{
    nb_node *n = nb_param(g, NULL, dtype, rank, shape);
    if (n)
        nb_tensor_copy_from_f64(nb_node_value(n), v,
                                nb_tensor_size(nb_node_value(n)));
    return n;
}

/* Forward, then backward seeded with `seed` (NULL: ones). */
static int run(nb_graph *g, nb_node *y, const double *seed)
{
    int rc = nb_forward(g, y);
    if (rc != NB_OK)
        return rc;
    nb_tensor *v = nb_node_value(y);
    nb_tensor *s = nb_tensor_new(nb_tensor_dtype(v), nb_tensor_rank(v),
                                 nb_tensor_shape(v));
    if (!s)
        return NB_ERR_NOMEM;
    for (int64_t i = 0; i < nb_tensor_size(s); i++)
        nb_tensor_set(s, i, seed ? seed[i] : 1.0);
    rc = nb_backward_ex(g, y, s, 0);
    nb_tensor_free(s);
    return rc;
}

/* ---- pointwise ops: value and derivative at chosen points ---- */

typedef struct pointwise_case {
    const char *op;
    double p[2]; /* the op's parameters, if it has any */
    int n;
    double x[4], y[4], dx[4];
} pointwise_case;

/* The constructor of an elementwise op of the list, by name, from ops.def
 * (NULL for a name the list does not give a unary kind). */
static nb_node *apply_unary(nb_graph *g, const char *op, nb_node *x,
                            const double *p)
{
    (void)p;
#define NB_OP_UNARY(name, lo, hi)                                             \
    if (strcmp(op, #name) == 0)                                               \
        return nb_##name(g, x);
#define NB_OP_UNARY1(name, p_, p_lo, p_hi, lo, hi)                            \
    if (strcmp(op, #name) == 0)                                               \
        return nb_##name(g, x, p[0]);
#define NB_OP_UNARY2(name, p_, p_lo, p_hi, q_, q_lo, q_hi, lo, hi)            \
    if (strcmp(op, #name) == 0)                                               \
        return nb_##name(g, x, p[0], p[1]);
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP
    return NULL;
}

static const pointwise_case pointwise_cases[] = {
    /* unary.c */
    {"neg", {0, 0}, 3, {1.5, -2, 0}, {-1.5, 2, 0}, {-1, -1, -1}},
    {"exp", {0, 0}, 4, {0, 1, -1, 0.5},
     {1, E, 0.36787944117144232160, 1.6487212707001281468},
     {1, E, 0.36787944117144232160, 1.6487212707001281468}},
    {"log", {0, 0}, 4, {1, 2, 10, 0.5},
     {0, LN2, 2.3025850929940456840, -LN2}, {1, 0.5, 0.1, 2}},
    {"sqrt", {0, 0}, 4, {4, 2, 0.25, 9},
     {2, 1.4142135623730950488, 0.5, 3},
     {0.25, 0.35355339059327376220, 1, 1.0 / 6}},
    {"square", {0, 0}, 3, {-3, 0, 1.5}, {9, 0, 2.25}, {-6, 0, 3}},
    /* |x|' at 0 is 0 */
    {"abs", {0, 0}, 3, {-2.5, 0, 3}, {2.5, 0, 3}, {-1, 0, 1}},
    {"scale", {2.5, 0}, 3, {-2, 0, 4}, {-5, 0, 10},
     {2.5, 2.5, 2.5}},
    {"add_scalar", {-0.75, 0}, 3, {-2, 0, 4},
     {-2.75, -0.75, 3.25}, {1, 1, 1}},
    {"sign", {0, 0}, 4, {-3, 0, 2, -0.001}, {-1, 0, 1, -1},
     {0, 0, 0, 0}},
    {"step", {0, 0}, 4, {-1, 0, 0.5, 1e-30}, {0, 0, 1, 1},
     {0, 0, 0, 0}},
    /* activation.c */
    {"identity", {0, 0}, 3, {-1, 0, 2}, {-1, 0, 2}, {1, 1, 1}},
    {"sigmoid", {0, 0}, 3, {0, 2, -2},
     {0.5, 0.88079707797788244406, 0.11920292202211755594},
     {0.25, 0.10499358540350651735, 0.10499358540350651735}},
    {"tanh", {0, 0}, 3, {1, -0.5, 0},
     {0.76159415595576488812, -0.46211715726000975850, 0},
     {0.41997434161402606939, 0.78644773296592741015, 1}},
    /* relu'(0) = 0 */
    {"relu", {0, 0}, 3, {-1, 0, 2}, {0, 0, 2}, {0, 0, 1}},
    /* leaky_relu'(0) = alpha */
    {"leaky_relu", {0.1, 0}, 4, {-1, 0, 2, -3},
     {-0.1, 0, 2, -0.3}, {0.1, 0.1, 1, 0.1}},
    /* alpha (e^-1 - 1), alpha e^-1; elu'(0) = alpha */
    {"elu", {1.5, 0}, 3, {-1, 0, 2},
     {-0.94818083824283651761, 0, 2}, {0.55181916175716348239, 1.5, 1}},
    {"selu", {0, 0}, 4, {1, -1, 0, 2},
     {SELU_LAMBDA, -1.1113307378125627618, 0, 2 * SELU_LAMBDA},
     {SELU_LAMBDA, 0.64676860303481409812, 1.7580993408473768599,
      SELU_LAMBDA}},
    {"softplus", {0, 0}, 3, {0, 1, -1},
     {LN2, 1.3132616875182228340, 0.31326168751822283405},
     {0.5, 0.73105857863000487925, 0.26894142136999512075}},
    /* Phi(1), -Phi(-1); Phi(1) + phi(1), Phi(-1) - phi(-1) */
    {"gelu", {0, 0}, 3, {0, 1, -1},
     {0, 0.84134474606854294859, -0.15865525393145705141},
     {0.5, 1.0833154705876862984, -0.083315470587686298383}},
    {"silu", {0, 0}, 3, {0, 1, -2},
     {0, 0.73105857863000487925, -0.23840584404423511188},
     {0.5, 0.92767051187148673179, -0.090784248784895478757}},
    /* hardtanh(x; -1, 2): the kinks -1 and 2 have derivative 0 */
    {"hardtanh", {-1, 2}, 4, {-3, -1, 0.5, 2}, {-1, -1, 0.5, 2}, {0, 0, 1, 0}},
    /* hardsigmoid: (x + 3) / 6 inside (-3, 3); derivative 0 at -3 and 3 */
    {"hardsigmoid", {0, 0}, 4, {-3, 0, 1.5, 3}, {0, 0.5, 0.75, 1},
     {0, 1.0 / 6, 1.0 / 6, 0}},
};

static void test_pointwise(nb_dtype dtype)
{
    double tol = tol_of(dtype);
    for (size_t k = 0; k < sizeof pointwise_cases / sizeof *pointwise_cases;
         k++) {
        const pointwise_case *pc = &pointwise_cases[k];
        char where[96];
        nb_graph *g = nb_graph_new();
        nb_node *x = values(g, dtype, 1, SHAPE(pc->n), pc->x);
        nb_node *y = apply_unary(g, pc->op, x, pc->p);
        CHECK(y != NULL, "%s build: %s", pc->op, nb_graph_error(g));
        if (!y) {
            nb_graph_free(g);
            continue;
        }
        CHECK(strcmp(nb_node_op_name(y), pc->op) == 0, "op name %s",
              nb_node_op_name(y));
        CHECK(run(g, y, NULL) == NB_OK, "%s run: %s", pc->op,
              nb_graph_error(g));
        CHECK(nb_tensor_dtype(nb_node_value(y)) == dtype, "%s dtype", pc->op);
        CHECK(nb_tensor_rank(nb_node_value(y)) == 1 &&
                  nb_tensor_dim(nb_node_value(y), 0) == pc->n,
              "%s shape", pc->op);
        for (int i = 0; i < pc->n; i++) {
            snprintf(where, sizeof where, "%s %s x = %g", pc->op,
                     nb_dtype_name(dtype), pc->x[i]);
            CHECK_CLOSE(nb_tensor_get(nb_node_value(y), i), pc->y[i], tol,
                        where);
            CHECK_CLOSE(nb_tensor_get(nb_node_grad(x), i), pc->dx[i], tol,
                        where);
        }
        nb_graph_free(g);
    }
}

/* ---- against libm over a range, including tiny arguments ---- */

static void test_against_libm(nb_dtype dtype)
{
    /* A few ULP of the dtype: the kernels promise a few ULP, and tanh of a
     * tiny x must keep its relative precision (a tanh that returns 0 or
     * loses digits there ruins deep chains). */
    double rel = dtype == NB_F32 ? 6e-7 : 2e-15;
    const double xs[] = {-20,   -5,   -1.25, -0.3, -1e-3, -1e-8, 1e-30,
                         1e-12, 1e-5, 0.01,  0.2,  0.7,   3,     9.5};
    enum { N = sizeof xs / sizeof *xs };
    nb_graph *g = nb_graph_new();
    nb_node *x = values(g, dtype, 1, SHAPE(N), xs);
    nb_node *t = nb_tanh(g, x), *e = nb_exp(g, x), *s = nb_sigmoid(g, x);
    CHECK(nb_forward(g, t) == NB_OK && nb_forward(g, e) == NB_OK &&
              nb_forward(g, s) == NB_OK,
          "%s", nb_graph_error(g));
    for (int i = 0; i < N; i++) {
        /* The input as stored, so f32 rounding of x is not counted. */
        double xi = nb_tensor_get(nb_node_value(x), i);
        char where[64];
        snprintf(where, sizeof where, "%s x = %g", nb_dtype_name(dtype), xi);
        double want_t = tanh(xi), want_e = exp(xi);
        double want_s = 1 / (1 + exp(-xi));
        CHECK(fabs(nb_tensor_get(nb_node_value(t), i) - want_t) <=
                  rel * fabs(want_t),
              "tanh: got %.17g, libm %.17g (%s)",
              nb_tensor_get(nb_node_value(t), i), want_t, where);
        CHECK(fabs(nb_tensor_get(nb_node_value(e), i) - want_e) <=
                  rel * fabs(want_e),
              "exp: got %.17g, libm %.17g (%s)",
              nb_tensor_get(nb_node_value(e), i), want_e, where);
        CHECK(fabs(nb_tensor_get(nb_node_value(s), i) - want_s) <=
                  rel * fabs(want_s),
              "sigmoid: got %.17g, libm %.17g (%s)",
              nb_tensor_get(nb_node_value(s), i), want_s, where);
    }
    nb_graph_free(g);
}

/* ---- saturation: finite values and gradients at huge arguments ---- */

static void test_extremes(nb_dtype dtype)
{
    const double xs[] = {-1000, 1000, -100, 100};
    double dtol = dtype == NB_F32 ? 1e-6 : 1e-15;
    nb_graph *g = nb_graph_new();
    nb_node *x = values(g, dtype, 1, SHAPE(4), xs);
    struct {
        const char *op;
        nb_node *y;
        double want[4], dwant[4];
    } cases[] = {
        {"sigmoid", nb_sigmoid(g, x), {0, 1, 0, 1}, {0, 0, 0, 0}},
        {"tanh", nb_tanh(g, x), {-1, 1, -1, 1}, {0, 0, 0, 0}},
        {"softplus", nb_softplus(g, x), {0, 1000, 0, 100}, {0, 1, 0, 1}},
        {"silu", nb_silu(g, x), {0, 1000, 0, 100}, {0, 1, 0, 1}},
        {"gelu", nb_gelu(g, x), {0, 1000, 0, 100}, {0, 1, 0, 1}},
        {"elu", nb_elu(g, x, 0.5), {-0.5, 1000, -0.5, 100}, {0, 1, 0, 1}},
        {"selu", nb_selu(g, x),
         {-SELU_LAMBDA * SELU_ALPHA, 1000 * SELU_LAMBDA,
          -SELU_LAMBDA * SELU_ALPHA, 100 * SELU_LAMBDA},
         {0, SELU_LAMBDA, 0, SELU_LAMBDA}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        CHECK(cases[k].y != NULL, "%s: %s", cases[k].op, nb_graph_error(g));
        if (!cases[k].y)
            continue;
        CHECK(run(g, cases[k].y, NULL) == NB_OK, "%s: %s", cases[k].op,
              nb_graph_error(g));
        for (int i = 0; i < 4; i++) {
            double v = nb_tensor_get(nb_node_value(cases[k].y), i);
            double d = nb_tensor_get(nb_node_grad(x), i);
            /* e^-100 ~ 4e-44 survives in f64; anything below 1e-40 counts
             * as the saturated value. */
            CHECK(isfinite(v) && fabs(v - cases[k].want[i]) <=
                                     1e-40 + 1e-6 * fabs(cases[k].want[i]),
                  "%s %s(%g) = %.17g, want %.17g", nb_dtype_name(dtype),
                  cases[k].op, xs[i], v, cases[k].want[i]);
            /* Derivatives taken from y (selu's y + lambda alpha) cancel
             * to a few ULP of the constant, not to the true e^-1000. */
            CHECK(isfinite(d) && fabs(d - cases[k].dwant[i]) <=
                                     dtol * (1 + fabs(cases[k].dwant[i])),
                  "%s %s'(%g) = %.17g, want %.17g", nb_dtype_name(dtype),
                  cases[k].op, xs[i], d, cases[k].dwant[i]);
        }
    }
    /* The node value of sigmoid(-1000) is exactly 0, not NaN. */
    CHECK(nb_tensor_get(nb_node_value(cases[0].y), 0) == 0.0,
          "sigmoid(-1000) = %g", nb_tensor_get(nb_node_value(cases[0].y), 0));
    CHECK(nb_tensor_get(nb_node_value(cases[2].y), 1) == 1000.0,
          "softplus(1000) = %.17g",
          nb_tensor_get(nb_node_value(cases[2].y), 1));
    nb_graph_free(g);
}

/* NaN passes through rather than turning into a number. */
static void test_nan_propagates(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = values(g, NB_F64, 1, SHAPE(2), (double[]){NAN, 1});
    nb_node *ys[] = {nb_sign(g, x), nb_relu(g, x), nb_leaky_relu(g, x, 0.1),
                     nb_abs(g, x), nb_maxout(g, x, 2)};
    for (size_t k = 0; k < sizeof ys / sizeof *ys; k++) {
        CHECK(ys[k] && nb_forward(g, ys[k]) == NB_OK, "%s", nb_graph_error(g));
        if (ys[k])
            CHECK(isnan(nb_tensor_get(nb_node_value(ys[k]), 0)),
                  "%s(NaN) = %g", nb_node_op_name(ys[k]),
                  nb_tensor_get(nb_node_value(ys[k]), 0));
    }
    nb_graph_free(g);
}

/* ---- prelu ---- */

static void check_all(nb_tensor *t, int n, const double *want, double tol,
                      const char *what)
{
    CHECK(t != NULL && nb_tensor_size(t) == n, "%s: size", what);
    for (int i = 0; t && i < n && i < nb_tensor_size(t); i++) {
        char where[96];
        snprintf(where, sizeof where, "%s[%d]", what, i);
        CHECK_CLOSE(nb_tensor_get(t, i), want[i], tol, where);
    }
}

static void test_prelu(nb_dtype dtype)
{
    double tol = tol_of(dtype);
    const double xv[] = {-2, 0, 3, 1, -4, 0.5};

    /* One slope for everything: dalpha sums x dy over every x <= 0. */
    nb_graph *g = nb_graph_new();
    nb_node *x = values(g, dtype, 2, SHAPE(2, 3), xv);
    nb_node *a = values(g, dtype, 0, NULL, (double[]){0.25});
    nb_node *y = nb_prelu(g, x, a);
    CHECK(y && run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    if (y) {
        check_all(nb_node_value(y), 6,
                  (double[]){-0.5, 0, 3, 1, -1, 0.5}, tol, "prelu scalar y");
        /* At x = 0 the slope is alpha. */
        check_all(nb_node_grad(x), 6,
                  (double[]){0.25, 0.25, 1, 1, 0.25, 1}, tol,
                  "prelu scalar dx");
        check_all(nb_node_grad(a), 1, (double[]){-6}, tol,
                  "prelu scalar dalpha");
    }
    nb_graph_free(g);

    /* One slope per channel of the last axis, seed [[1,2,3],[4,5,6]]. */
    g = nb_graph_new();
    x = values(g, dtype, 2, SHAPE(2, 3), xv);
    a = values(g, dtype, 1, SHAPE(3), (double[]){0.1, 0.2, 0.3});
    y = nb_prelu(g, x, a);
    CHECK(y && run(g, y, (double[]){1, 2, 3, 4, 5, 6}) == NB_OK, "%s",
          nb_graph_error(g));
    if (y) {
        check_all(nb_node_value(y), 6, (double[]){-0.2, 0, 3, 1, -0.8, 0.5},
                  tol, "prelu channel y");
        check_all(nb_node_grad(x), 6, (double[]){0.1, 0.4, 3, 4, 1, 6}, tol,
                  "prelu channel dx");
        /* channel 0: x = -2, dy = 1; channel 1: x = 0 (adds 0) and x = -4,
         * dy = 5; channel 2: every x is positive. */
        check_all(nb_node_grad(a), 3, (double[]){-2, -20, 0}, tol,
                  "prelu channel dalpha");
    }
    nb_graph_free(g);

    /* [B,C,N] = [1,2,2] with alpha [C,1]. */
    g = nb_graph_new();
    x = values(g, dtype, 3, SHAPE(1, 2, 2), (double[]){-1, 2, -3, -4});
    a = values(g, dtype, 2, SHAPE(2, 1), (double[]){0.5, 0.1});
    y = nb_prelu(g, x, a);
    CHECK(y && run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    if (y) {
        CHECK(nb_tensor_rank(nb_node_value(y)) == 3, "rank");
        check_all(nb_node_value(y), 4, (double[]){-0.5, 2, -0.3, -0.4}, tol,
                  "prelu [C,1] y");
        check_all(nb_node_grad(x), 4, (double[]){0.5, 1, 0.1, 0.1}, tol,
                  "prelu [C,1] dx");
        check_all(nb_node_grad(a), 2, (double[]){-1, -7}, tol,
                  "prelu [C,1] dalpha");
    }
    nb_graph_free(g);
}

static void test_prelu_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 2, SHAPE(2, 3));
    nb_node *x1 = nb_param(g, "x1", NB_F64, 2, SHAPE(1, 3));
    nb_node *v = nb_param(g, "v", NB_F64, 1, SHAPE(3));
    nb_node *a4 = nb_param(g, "a4", NB_F64, 1, SHAPE(4));
    nb_node *a23 = nb_param(g, "a23", NB_F64, 2, SHAPE(2, 3));
    nb_node *a32 = nb_param(g, "a32", NB_F32, 1, SHAPE(3));
    int64_t nodes = nb_graph_node_count(g);

    CHECK(nb_prelu(g, x, a4) == NULL, "alpha [4] on x [2,3]");
    CHECK_ERROR(g, "prelu", "[4]", "[2,3]");
    /* Would broadcast, but only by enlarging x: rejected. */
    CHECK(nb_prelu(g, v, a23) == NULL, "alpha [2,3] on x [3]");
    CHECK_ERROR(g, "prelu", "[2,3]", "[3]", "more axes");
    CHECK(nb_prelu(g, x1, a23) == NULL, "alpha [2,3] on x [1,3]");
    CHECK_ERROR(g, "prelu", "[2,3]", "[1,3]");
    CHECK(nb_prelu(g, x, a32) == NULL, "f32 alpha on f64 x");
    CHECK_ERROR(g, "prelu", "f32", "f64", "[3]", "[2,3]");
    CHECK(nb_graph_node_count(g) == nodes, "a rejected op left a node");

    /* The graph still works. */
    nb_tensor_fill(nb_node_value(x), -1);
    nb_tensor_fill(nb_node_value(v), 0.5);
    nb_node *y = nb_prelu(g, x, v);
    CHECK(y && nb_forward(g, y) == NB_OK && nb_graph_error(g) == NULL, "%s",
          nb_graph_error(g));
    if (y)
        CHECK_NEAR(nb_tensor_get(nb_node_value(y), 5), -0.5, 0);
    nb_graph_free(g);
}

/* ---- maxout ---- */

static void test_maxout(nb_dtype dtype)
{
    double tol = tol_of(dtype);
    nb_graph *g = nb_graph_new();
    /* Rows of two groups of 3; ties in the first group of each row. */
    nb_node *x = values(g, dtype, 2, SHAPE(2, 6),
                        (double[]){1, 5, 5, 0, -2, 7, 3, 3, 3, -1, -4, -1});
    nb_node *y = nb_maxout(g, x, 3);
    CHECK(y && run(g, y, (double[]){10, 20, 30, 40}) == NB_OK, "%s",
          nb_graph_error(g));
    if (y) {
        CHECK(nb_tensor_rank(nb_node_value(y)) == 2 &&
                  nb_tensor_dim(nb_node_value(y), 0) == 2 &&
                  nb_tensor_dim(nb_node_value(y), 1) == 2,
              "maxout shape");
        check_all(nb_node_value(y), 4, (double[]){5, 7, 3, -1}, tol,
                  "maxout y");
        /* The whole message goes to the first of a tie. */
        check_all(nb_node_grad(x), 12,
                  (double[]){0, 10, 0, 0, 0, 20, 30, 0, 0, 40, 0, 0}, tol,
                  "maxout dx");
    }
    nb_graph_free(g);

    /* Groups are consecutive units: [6,1 | 2,5 | 3,4], not strided
     * [6,5 | 1,3 | 2,4] (which would give 6, 3, 4). */
    g = nb_graph_new();
    x = values(g, dtype, 1, SHAPE(6), (double[]){6, 1, 2, 5, 3, 4});
    y = nb_maxout(g, x, 2);
    CHECK(y && run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    if (y) {
        check_all(nb_node_value(y), 3, (double[]){6, 5, 4}, tol,
                  "maxout consecutive y");
        check_all(nb_node_grad(x), 6, (double[]){1, 0, 0, 1, 0, 1}, tol,
                  "maxout consecutive dx");
    }
    /* k = 1 is the identity; k = all units is a max over the axis. */
    nb_node *same = nb_maxout(g, x, 1), *whole = nb_maxout(g, x, 6);
    CHECK(same && whole && nb_forward(g, same) == NB_OK &&
              nb_forward(g, whole) == NB_OK,
          "%s", nb_graph_error(g));
    if (same && whole) {
        check_all(nb_node_value(same), 6, (double[]){6, 1, 2, 5, 3, 4}, tol,
                  "maxout k=1");
        check_all(nb_node_value(whole), 1, (double[]){6}, tol, "maxout k=6");
    }
    nb_graph_free(g);

    /* Rank 3, [B,C,4] with k = 2 -> [B,C,2]. */
    g = nb_graph_new();
    x = values(g, dtype, 3, SHAPE(2, 1, 4),
               (double[]){-1, -2, 0.5, 0.25, 9, 8, -7, -6});
    y = nb_maxout(g, x, 2);
    CHECK(y && run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    if (y) {
        CHECK(nb_tensor_rank(nb_node_value(y)) == 3 &&
                  nb_tensor_dim(nb_node_value(y), 2) == 2,
              "maxout rank-3 shape");
        check_all(nb_node_value(y), 4, (double[]){-1, 0.5, 9, -6}, tol,
                  "maxout rank-3 y");
        check_all(nb_node_grad(x), 8, (double[]){1, 0, 1, 0, 1, 0, 0, 1}, tol,
                  "maxout rank-3 dx");
    }
    nb_graph_free(g);
}

/* The winners live in scratch sized by the batch: a bigger batch after a
 * smaller one must re-plan, and backward must follow the new winners. */
static void test_maxout_dynamic_batch(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 4));
    nb_input_set_requires_grad(g, x, true);
    nb_node *y = nb_maxout(g, x, 2);
    CHECK(y != NULL, "%s", nb_graph_error(g));
    if (!y) {
        nb_graph_free(g);
        return;
    }
    nb_feed(g, x, 2, SHAPE(1, 4), (double[]){1, 2, 4, 3});
    CHECK(run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    check_all(nb_node_value(y), 2, (double[]){2, 4}, 0, "batch 1 y");
    check_all(nb_node_grad(x), 4, (double[]){0, 1, 1, 0}, 0, "batch 1 dx");
    nb_feed(g, x, 2, SHAPE(3, 4),
            (double[]){1, 2, 4, 3, 0, -1, 7, 7, -5, -3, 2, 8});
    CHECK(run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    check_all(nb_node_value(y), 6, (double[]){2, 4, 0, 7, -3, 8}, 0,
              "batch 3 y");
    check_all(nb_node_grad(x), 12,
              (double[]){0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1}, 0, "batch 3 dx");
    nb_graph_free(g);
}

static void test_maxout_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 2, SHAPE(2, 6));
    nb_node *s = nb_scalar(g, NULL, NB_F64, 1.0);
    int64_t nodes = nb_graph_node_count(g);

    CHECK(nb_maxout(g, x, 4) == NULL, "k = 4 on 6 units");
    CHECK_ERROR(g, "maxout", "[2,6]", "6 units", "k = 4");
    CHECK(nb_maxout(g, x, 0) == NULL, "k = 0");
    CHECK_ERROR(g, "maxout", "k = 0", "[2,6]");
    CHECK(nb_maxout(g, x, -3) == NULL, "k = -3");
    CHECK_ERROR(g, "maxout", "k = -3", "[2,6]");
    CHECK(nb_maxout(g, s, 1) == NULL, "scalar x");
    CHECK_ERROR(g, "maxout", "scalar");
    CHECK(nb_graph_node_count(g) == nodes, "a rejected op left a node");

    nb_node *y = nb_maxout(g, x, 2);
    CHECK(y && nb_forward(g, y) == NB_OK && nb_graph_error(g) == NULL, "%s",
          nb_graph_error(g));
    nb_graph_free(g);
}

/* ---- scalar arguments ---- */

static void test_constant_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F32, 2, SHAPE(2, 3));
    int64_t nodes = nb_graph_node_count(g);

    CHECK(nb_leaky_relu(g, x, NAN) == NULL, "leaky_relu NaN");
    CHECK_ERROR(g, "leaky_relu", "alpha = nan", "[2,3]");
    CHECK(nb_leaky_relu(g, x, INFINITY) == NULL, "leaky_relu inf");
    CHECK_ERROR(g, "leaky_relu", "alpha = inf", "[2,3]");
    CHECK(nb_elu(g, x, NAN) == NULL, "elu NaN");
    CHECK_ERROR(g, "elu", "alpha = nan", "[2,3]");
    CHECK(nb_elu(g, x, -INFINITY) == NULL, "elu -inf");
    CHECK_ERROR(g, "elu", "alpha = -inf", "[2,3]");
    CHECK(nb_scale(g, x, NAN) == NULL, "scale NaN");
    CHECK_ERROR(g, "scale", "c = nan", "[2,3]");
    CHECK(nb_add_scalar(g, x, INFINITY) == NULL, "add_scalar inf");
    CHECK_ERROR(g, "add_scalar", "c = inf", "[2,3]");
    CHECK(nb_hardtanh(g, x, -1, NAN) == NULL, "hardtanh NaN max_val");
    CHECK_ERROR(g, "hardtanh", "max_val = nan", "[2,3]");
    CHECK(nb_hardtanh(g, x, 2, 1) == NULL, "hardtanh min_val > max_val");
    CHECK_ERROR(g, "hardtanh", "min_val = 2 is above max_val = 1");
    CHECK(nb_graph_node_count(g) == nodes, "a rejected op left a node");

    /* Negative and zero slopes are legitimate. */
    nb_tensor_fill(nb_node_value(x), -2);
    nb_node *a = nb_leaky_relu(g, x, -0.5), *b = nb_elu(g, x, 0);
    CHECK(a && b && nb_forward(g, a) == NB_OK && nb_forward(g, b) == NB_OK,
          "%s", nb_graph_error(g));
    if (a && b) {
        CHECK_NEAR(nb_tensor_get(nb_node_value(a), 0), 1.0, 0);
        CHECK_NEAR(nb_tensor_get(nb_node_value(b), 0), 0.0, 0);
    }
    /* A failed constructor's NULL passes along without a second message. */
    CHECK(nb_relu(g, nb_scale(g, x, NAN)) == NULL, "chain");
    CHECK_ERROR(g, "scale", "c = nan");
    nb_graph_free(g);
}

/* sign and step send nothing back; the rest of the graph still does. */
static void test_flat_ops_block_gradient(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = values(g, NB_F64, 1, SHAPE(3), (double[]){-1, 0.5, 2});
    /* y = x * x + sign(x) + step(x): dy/dx = 2x */
    nb_node *y = nb_add(g, nb_add(g, nb_square(g, x), nb_sign(g, x)),
                        nb_step(g, x));
    CHECK(y && run(g, y, NULL) == NB_OK, "%s", nb_graph_error(g));
    if (y) {
        check_all(nb_node_value(y), 3, (double[]){0, 2.25, 6}, 0,
                  "x^2 + sign + step");
        check_all(nb_node_grad(x), 3, (double[]){-2, 1, 4}, 0,
                  "d(x^2 + sign + step)");
    }
    nb_graph_free(g);
}

/* Plain row-major product c = a b of (r x k) by (k x n), in double. */
static void ref_matmul(int r, int k, int n, const double *a, const double *b,
                       double *c)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += a[i * k + p] * b[p * n + j];
            c[i * n + j] = s;
        }
}

static void ref_transpose(int r, int c, const double *a, double *t)
{
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++)
            t[j * r + i] = a[i * c + j];
}

/* The executor lets matmul write an input's gradient outright when no
 * message has reached it yet in the pass, instead of clearing it and
 * adding. Every way that could go wrong, checked against plain loops:
 * h = x W feeds both an add and a matmul (fan-out), q = s s takes the same
 * node twice, U reaches the loss only through step (its gradient must be
 * zero), h + b and b + h broadcast a bias over h's rows (h, full-size,
 * takes its message written where it is the first, added where not; b
 * sums its messages), and before the second
 * pass every gradient is poisoned with NaN, so a message added to an
 * uncleared gradient would show. Accumulation must still double the
 * leaves' gradients. */
static void test_fresh_gradients(nb_dtype dtype)
{
    const double xv[6] = {0.5, -1, 2, 1.5, 0.25, -0.75};
    const double wv[6] = {1, -0.5, 0.25, 2, -1.5, 0.75};
    const double vv[4] = {0.3, -0.2, 0.6, 1.1};
    const double uv[2] = {-1, 2};
    const double bv[2] = {0.5, -0.25};
    nb_graph *g = nb_graph_new();
    const int64_t sx[2] = {2, 3}, sw[2] = {3, 2}, sv[2] = {2, 2}, su[1] = {2};
    nb_node *x = values(g, dtype, 2, sx, xv);
    nb_node *w = values(g, dtype, 2, sw, wv);
    nb_node *v = values(g, dtype, 2, sv, vv);
    nb_node *u = values(g, dtype, 1, su, uv);
    nb_node *b = values(g, dtype, 1, su, bv);
    nb_node *h = nb_matmul(g, x, w);
    nb_node *s = nb_add(g, nb_matmul(g, h, v), h);
    nb_node *q = nb_matmul(g, s, s);
    nb_node *loss = nb_add(g, nb_sum(g, q), nb_sum(g, nb_step(g, u)));
    loss = nb_add(g, loss, nb_sum(g, nb_add(g, h, b)));
    loss = nb_add(g, loss, nb_sum(g, nb_add(g, b, h)));
    CHECK(loss != NULL, "fresh gradients: build: %s", nb_graph_error(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }

    /* by hand: dQ = ones; dS = dQ s^T + s^T dQ; dh = dS V^T + dS;
     * dV = h^T dS; dW = x^T dh; dx = dh W^T; dU = 0 */
    double hh[4], hv[4], ss[4], st[4], ones[4] = {1, 1, 1, 1}, ds[4], t1[4];
    double vt[4], dh[4], ht[4], dv[4], xt[6], dw[6], wt[6], dx[6];
    ref_matmul(2, 3, 2, xv, wv, hh);
    ref_matmul(2, 2, 2, hh, vv, hv);
    for (int i = 0; i < 4; i++)
        ss[i] = hv[i] + hh[i];
    ref_transpose(2, 2, ss, st);
    ref_matmul(2, 2, 2, ones, st, ds);
    ref_matmul(2, 2, 2, st, ones, t1);
    for (int i = 0; i < 4; i++)
        ds[i] += t1[i];
    ref_transpose(2, 2, vv, vt);
    ref_matmul(2, 2, 2, ds, vt, dh);
    for (int i = 0; i < 4; i++)
        dh[i] += ds[i] + 2; /* 1 from sum(h + b), 1 from sum(b + h) */
    ref_transpose(2, 2, hh, ht);
    ref_matmul(2, 2, 2, ht, ds, dv);
    ref_transpose(2, 3, xv, xt);
    ref_matmul(3, 2, 2, xt, dh, dw);
    ref_transpose(3, 2, wv, wt);
    ref_matmul(2, 2, 3, dh, wt, dx);

    const double tol = dtype == NB_F32 ? 1e-5 : 1e-12;
    const double db[2] = {4, 4}; /* each b[j] feeds both rows, twice */
    nb_node *nodes[5] = {x, w, v, u, b};
    const double *want[5] = {dx, dw, dv, NULL, db};
    const char *names[5] = {"x", "W", "V", "U", "b"};
    for (int pass = 0; pass < 3; pass++) {
        /* pass 1 poisons every gradient first; pass 2 accumulates */
        if (pass == 1)
            for (int64_t k = 0; nb_graph_node(g, k); k++) {
                nb_tensor *gr = nb_node_grad(nb_graph_node(g, k));
                for (int64_t i = 0; gr && i < nb_tensor_size(gr); i++)
                    nb_tensor_set(gr, i, NAN);
            }
        int rc = nb_forward(g, loss);
        if (rc == NB_OK)
            rc = nb_backward_ex(g, loss, NULL,
                                pass == 2 ? NB_BACKWARD_ACCUMULATE : 0);
        CHECK(rc == NB_OK, "fresh gradients pass %d: %s", pass,
              nb_graph_error(g));
        double factor = pass == 2 ? 2 : 1;
        for (int m = 0; m < 5; m++) {
            nb_tensor *gr = nb_node_grad(nodes[m]);
            CHECK(gr != NULL, "fresh gradients: no gradient for %s", names[m]);
            for (int64_t i = 0; gr && i < nb_tensor_size(gr); i++) {
                double got = nb_tensor_get(gr, i);
                double exp = want[m] ? factor * want[m][i] : 0;
                CHECK(fabs(got - exp) <= tol * (1 + fabs(exp)),
                      "fresh gradients pass %d, d%s[%lld] (%s): got %.17g, "
                      "want %.17g",
                      pass, names[m], (long long)i, nb_dtype_name(dtype), got,
                      exp);
            }
        }
    }
    nb_graph_free(g);
}

int main(void)
{
    const nb_dtype dtypes[] = {NB_F32, NB_F64};
    for (int d = 0; d < 2; d++) {
        test_pointwise(dtypes[d]);
        test_against_libm(dtypes[d]);
        test_extremes(dtypes[d]);
        test_prelu(dtypes[d]);
        test_maxout(dtypes[d]);
        test_fresh_gradients(dtypes[d]);
    }
    test_nan_propagates();
    test_prelu_errors();
    test_maxout_dynamic_batch();
    test_maxout_errors();
    test_constant_errors();
    test_flat_ops_block_gradient();
    return tu_finish("ops_math");
}
