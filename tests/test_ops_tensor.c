/* Tensor ops — softmax, matmul, reductions, logsumexp, reshape, permute /
 * transpose, concat, slice, broadcast_to: forward values and gradients
 * against numbers worked out by hand or recomputed here another way (libm,
 * explicit index arithmetic, Jacobians), in f32 and f64; the stable forms
 * at extreme inputs; the first-winner rule of max/min; round trips; a
 * dynamic batch through matmul and reshape; and every constructor's
 * rejection of bad input, with the graph usable afterwards.
 */
#include <stdint.h>

#include "test_util.h"

/* ---- helpers ---- */

static nb_node *param_of(nb_graph *g, nb_dtype dt, int rank,
                         const int64_t *shape)
{
    return nb_param(g, NULL, dt, rank, shape);
}

static double val(nb_node *n, int64_t i)
{
    return nb_tensor_get(nb_node_value(n), i);
}

static double grad(nb_node *n, int64_t i)
{
    nb_tensor *gr = nb_node_grad(n);
    return gr ? nb_tensor_get(gr, i) : NAN;
}

static int rank_of(nb_node *n)
{
    return nb_tensor_rank(nb_node_value(n));
}

static int64_t dim_of(nb_node *n, int axis)
{
    return nb_tensor_dim(nb_node_value(n), axis);
}

static bool shape_is(nb_node *n, int rank, const int64_t *shape)
{
    if (!n || rank_of(n) != rank)
        return false;
    for (int i = 0; i < rank; i++)
        if (dim_of(n, i) != shape[i])
            return false;
    return true;
}

/* Forward, then backward seeded with `seed` (shaped like out; NULL = all
 * ones). Reports failures; returns NB_OK when both ran. */
static int run_seeded(nb_graph *g, nb_node *out, const double *seed)
{
    if (!out) {
        CHECK(out != NULL, "construction failed: %s", nb_graph_error(g));
        return NB_ERR_ARG;
    }
    int rc = nb_forward(g, out);
    CHECK(rc == NB_OK, "forward: %s", nb_graph_error(g));
    if (rc != NB_OK)
        return rc;
    nb_tensor *v = nb_node_value(out);
    nb_tensor *s = nb_tensor_new(nb_tensor_dtype(v), nb_tensor_rank(v),
                                 nb_tensor_shape(v));
    for (int64_t i = 0; i < nb_tensor_size(v); i++)
        nb_tensor_set(s, i, seed ? seed[i] : 1.0);
    rc = nb_backward_ex(g, out, s, 0);
    CHECK(rc == NB_OK, "backward: %s", nb_graph_error(g));
    nb_tensor_free(s);
    return rc;
}

static int run_forward(nb_graph *g, nb_node *out)
{
    if (!out) {
        CHECK(out != NULL, "construction failed: %s", nb_graph_error(g));
        return NB_ERR_ARG;
    }
    int rc = nb_forward(g, out);
    CHECK(rc == NB_OK, "forward: %s", nb_graph_error(g));
    return rc;
}

/* ---- matmul ---- */

static void test_matmul(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    /* [1 2 3; 4 5 6] [7 8; 9 10; 11 12]
     *   = [1*7+2*9+3*11, 1*8+2*10+3*12; 4*7+5*9+6*11, 4*8+5*10+6*12]
     *   = [58, 64; 139, 154] */
    nb_node *a = param_of(g, dt, 2, SHAPE(2, 3));
    nb_node *b = param_of(g, dt, 2, SHAPE(3, 2));
    SET(a, 1, 2, 3, 4, 5, 6);
    SET(b, 7, 8, 9, 10, 11, 12);
    nb_node *c = nb_matmul(g, a, b);
    CHECK(shape_is(c, 2, SHAPE(2, 2)), "matmul shape");
    /* Seed G = [1 0; 0 2]: dA = G B^T = [7 9 11; 16 20 24],
     * dB = A^T G = [1 8; 2 10; 3 12]. */
    if (run_seeded(g, c, (const double[]){1, 0, 0, 2}) == NB_OK) {
        const double want[] = {58, 64, 139, 154};
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(val(c, i), want[i], tol * 154);
        const double da[] = {7, 9, 11, 16, 20, 24};
        const double db[] = {1, 8, 2, 10, 3, 12};
        for (int i = 0; i < 6; i++) {
            CHECK_NEAR(grad(a, i), da[i], tol * 24);
            CHECK_NEAR(grad(b, i), db[i], tol * 12);
        }
    }

    /* Batched: A_0 = [1 2; 3 4], A_1 = [0 1; 1 0] (swaps rows),
     * B_0 = I, B_1 = [1 2; 3 4]:
     * C_0 = [1 2; 3 4], C_1 = [3 4; 1 2]. With dC = ones:
     * dA_b = ones B_b^T: dA_0 = [1 1; 1 1], dA_1 = [3 7; 3 7];
     * dB_b = A_b^T ones: dB_0 = [4 4; 6 6], dB_1 = [1 1; 1 1]. */
    nb_node *ab = param_of(g, dt, 3, SHAPE(2, 2, 2));
    nb_node *bb = param_of(g, dt, 3, SHAPE(2, 2, 2));
    SET(ab, 1, 2, 3, 4, 0, 1, 1, 0);
    SET(bb, 1, 0, 0, 1, 1, 2, 3, 4);
    nb_node *cb = nb_matmul(g, ab, bb);
    CHECK(shape_is(cb, 3, SHAPE(2, 2, 2)), "batched matmul shape");
    if (run_seeded(g, cb, NULL) == NB_OK) {
        const double want[] = {1, 2, 3, 4, 3, 4, 1, 2};
        const double da[] = {1, 1, 1, 1, 3, 7, 3, 7};
        const double db[] = {4, 4, 6, 6, 1, 1, 1, 1};
        for (int i = 0; i < 8; i++) {
            CHECK_NEAR(val(cb, i), want[i], tol * 4);
            CHECK_NEAR(grad(ab, i), da[i], tol * 7);
            CHECK_NEAR(grad(bb, i), db[i], tol * 6);
        }
    }

    /* Shared weight: rows [1 2], [3 4], [5 6] in batches of one row,
     * W = [1 0 1; 0 1 1]: C = [1 2 3], [3 4 7], [5 6 11]. With dC = ones,
     * dW = sum over the batch of x_b^T [1 1 1]: every column is
     * (1+3+5, 2+4+6) = (9, 12); dx_b = [1 1 1] W^T = [2 2]. */
    nb_node *xs = param_of(g, dt, 3, SHAPE(3, 1, 2));
    nb_node *w = param_of(g, dt, 2, SHAPE(2, 3));
    SET(xs, 1, 2, 3, 4, 5, 6);
    SET(w, 1, 0, 1, 0, 1, 1);
    nb_node *cs = nb_matmul(g, xs, w);
    CHECK(shape_is(cs, 3, SHAPE(3, 1, 3)), "shared-weight matmul shape");
    if (run_seeded(g, cs, NULL) == NB_OK) {
        const double want[] = {1, 2, 3, 3, 4, 7, 5, 6, 11};
        for (int i = 0; i < 9; i++)
            CHECK_NEAR(val(cs, i), want[i], tol * 11);
        const double dw[] = {9, 9, 9, 12, 12, 12};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(w, i), dw[i], tol * 12);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(xs, i), 2, tol * 2);
    }

    /* x @ x with x = [1 2; 3 4]: [7 10; 15 22]. Both messages land in one
     * gradient: with dC = ones, dx = ones x^T + x^T ones
     * = [3 7; 3 7] + [4 4; 6 6] = [7 11; 9 13]. */
    nb_node *sq = param_of(g, dt, 2, SHAPE(2, 2));
    SET(sq, 1, 2, 3, 4);
    nb_node *cc = nb_matmul(g, sq, sq);
    if (run_seeded(g, cc, NULL) == NB_OK) {
        const double want[] = {7, 10, 15, 22}, dx[] = {7, 11, 9, 13};
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(val(cc, i), want[i], tol * 22);
            CHECK_NEAR(grad(sq, i), dx[i], tol * 13);
        }
    }
    nb_graph_free(g);
}

/* ---- softmax ---- */

static void test_softmax(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    const double xv[] = {1, 2, 3}, dy[] = {0.5, -1, 2};
    double p[3], total = 0;
    for (int i = 0; i < 3; i++)
        total += p[i] = exp(xv[i]);
    for (int i = 0; i < 3; i++)
        p[i] /= total;
    /* The Jacobians, element by element: d softmax_i / dx_j =
     * p_i ([i == j] - p_j); d log_softmax_i / dx_j = [i == j] - p_j. */
    double dsm[3] = {0}, dlsm[3] = {0};
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 3; i++) {
            dsm[j] += dy[i] * p[i] * ((i == j) - p[j]);
            dlsm[j] += dy[i] * ((i == j) - p[j]);
        }

    nb_node *x = param_of(g, dt, 1, SHAPE(3));
    SET(x, 1, 2, 3);
    nb_node *s = nb_softmax(g, x);
    CHECK(shape_is(s, 1, SHAPE(3)), "softmax shape");
    if (run_seeded(g, s, dy) == NB_OK)
        for (int i = 0; i < 3; i++) {
            CHECK_NEAR(val(s, i), p[i], tol);
            CHECK_NEAR(grad(x, i), dsm[i], tol);
        }
    nb_node *ls = nb_log_softmax(g, x);
    if (run_seeded(g, ls, dy) == NB_OK)
        for (int i = 0; i < 3; i++) {
            CHECK_NEAR(val(ls, i), log(p[i]), tol);
            CHECK_NEAR(grad(x, i), dlsm[i], tol);
        }

    /* Rows are independent: [[1 2 3], [1001 1002 1003]] gives the same
     * probabilities twice (a shift does not change softmax), and the
     * second row would overflow exp without the max shift. */
    nb_node *x2 = param_of(g, dt, 2, SHAPE(2, 3));
    SET(x2, 1, 2, 3, 1001, 1002, 1003);
    nb_node *s2 = nb_softmax(g, x2);
    if (run_forward(g, s2) == NB_OK)
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(val(s2, i), p[i % 3], tol);

    /* log_softmax([1000, 0]) = [0, -1000], finite; softmax = [1, 0]; the
     * gradient of log_softmax with dy = [1, 1] is dy - p sum(dy) = [-1, 1]. */
    nb_node *big = param_of(g, dt, 1, SHAPE(2));
    SET(big, 1000, 0);
    nb_node *lb = nb_log_softmax(g, big);
    if (run_seeded(g, lb, NULL) == NB_OK) {
        CHECK(isfinite(val(lb, 0)) && isfinite(val(lb, 1)),
              "log_softmax([1000,0]) = [%g, %g]", val(lb, 0), val(lb, 1));
        CHECK_NEAR(val(lb, 0), 0, tol);
        CHECK_NEAR(val(lb, 1), -1000, tol * 1000);
        CHECK_NEAR(grad(big, 0), -1, tol);
        CHECK_NEAR(grad(big, 1), 1, tol);
    }
    nb_node *sb = nb_softmax(g, big);
    if (run_forward(g, sb) == NB_OK) {
        CHECK_NEAR(val(sb, 0), 1, tol);
        CHECK_NEAR(val(sb, 1), 0, tol);
    }
    nb_graph_free(g);
}

/* ---- reductions ---- */

static void test_reduce(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    /* X = [1 5 3; 4 2 6] */
    nb_node *x = param_of(g, dt, 2, SHAPE(2, 3));
    SET(x, 1, 5, 3, 4, 2, 6);

    nb_node *s = nb_sum(g, x);
    CHECK(s && rank_of(s) == 0, "sum of all is a scalar");
    if (run_seeded(g, s, (const double[]){2}) == NB_OK) {
        CHECK_NEAR(val(s, 0), 21, tol * 21);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), 2, tol);
    }
    /* Columns: [5 7 9]; rows: [9 12]. */
    nb_node *s0 = nb_sum_axis(g, x, 0, false);
    CHECK(shape_is(s0, 1, SHAPE(3)), "sum axis 0 shape");
    if (run_seeded(g, s0, (const double[]){1, 2, 3}) == NB_OK) {
        const double want[] = {5, 7, 9}, dx[] = {1, 2, 3, 1, 2, 3};
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(val(s0, i), want[i], tol * 9);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), dx[i], tol);
    }
    nb_node *s1 = nb_sum_axis(g, x, -1, true);
    CHECK(shape_is(s1, 2, SHAPE(2, 1)), "sum axis -1 keepdims shape");
    if (run_seeded(g, s1, (const double[]){1, -1}) == NB_OK) {
        CHECK_NEAR(val(s1, 0), 9, tol * 9);
        CHECK_NEAR(val(s1, 1), 12, tol * 12);
        const double dx[] = {1, 1, 1, -1, -1, -1};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), dx[i], tol);
    }

    /* Means: all 21/6 = 3.5; columns [2.5 3.5 4.5]; rows [3 4]. */
    nb_node *m = nb_mean(g, x);
    if (run_seeded(g, m, NULL) == NB_OK) {
        CHECK_NEAR(val(m, 0), 3.5, tol * 4);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), 1.0 / 6, tol);
    }
    nb_node *m0 = nb_mean_axis(g, x, 0, true);
    CHECK(shape_is(m0, 2, SHAPE(1, 3)), "mean axis 0 keepdims shape");
    if (run_seeded(g, m0, NULL) == NB_OK) {
        const double want[] = {2.5, 3.5, 4.5};
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(val(m0, i), want[i], tol * 5);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), 0.5, tol);
    }
    nb_node *m1 = nb_mean_axis(g, x, 1, false);
    if (run_forward(g, m1) == NB_OK) {
        CHECK_NEAR(val(m1, 0), 3, tol * 3);
        CHECK_NEAR(val(m1, 1), 4, tol * 4);
    }

    /* max/min: columns max [4 5 6], row max [5 6] at (0,1), (1,2);
     * row min [1 2] at (0,0), (1,1); all: max 6 at 5, min 1 at 0. */
    nb_node *mx0 = nb_max_axis(g, x, 0, false);
    if (run_seeded(g, mx0, (const double[]){1, 2, 3}) == NB_OK) {
        const double want[] = {4, 5, 6}, dx[] = {0, 2, 0, 1, 0, 3};
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(val(mx0, i), want[i], tol * 6);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), dx[i], tol);
    }
    nb_node *mx1 = nb_max_axis(g, x, 1, true);
    CHECK(shape_is(mx1, 2, SHAPE(2, 1)), "max keepdims shape");
    if (run_seeded(g, mx1, (const double[]){1, 1}) == NB_OK) {
        const double dx[] = {0, 1, 0, 0, 0, 1};
        CHECK_NEAR(val(mx1, 0), 5, tol * 5);
        CHECK_NEAR(val(mx1, 1), 6, tol * 6);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), dx[i], tol);
    }
    nb_node *mn1 = nb_min_axis(g, x, -1, false);
    if (run_seeded(g, mn1, (const double[]){1, 1}) == NB_OK) {
        const double dx[] = {1, 0, 0, 0, 1, 0};
        CHECK_NEAR(val(mn1, 0), 1, tol);
        CHECK_NEAR(val(mn1, 1), 2, tol * 2);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), dx[i], tol);
    }
    nb_node *mxa = nb_max(g, x), *mna = nb_min(g, x);
    if (run_seeded(g, mxa, NULL) == NB_OK) {
        CHECK_NEAR(val(mxa, 0), 6, tol * 6);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), i == 5, tol);
    }
    if (run_seeded(g, mna, NULL) == NB_OK) {
        CHECK_NEAR(val(mna, 0), 1, tol);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(x, i), i == 0, tol);
    }

    /* Ties go to the first index: T = [3 1 3; 2 2 0]. Row max: (0,0) not
     * (0,2); (1,0) not (1,1). Column 1 min of [1 2] is (0,1); a column
     * tie in min: [3 1 3; 3 2 0] column 0 -> (0,0). All-max of T: 3 first
     * at 0. */
    nb_node *t = param_of(g, dt, 2, SHAPE(2, 3));
    SET(t, 3, 1, 3, 2, 2, 0);
    nb_node *tm = nb_max_axis(g, t, 1, false);
    if (run_seeded(g, tm, (const double[]){1, 1}) == NB_OK) {
        const double dx[] = {1, 0, 0, 1, 0, 0};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(t, i), dx[i], tol);
    }
    nb_node *ta = nb_max(g, t);
    if (run_seeded(g, ta, NULL) == NB_OK)
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(t, i), i == 0, tol);
    nb_node *u = param_of(g, dt, 2, SHAPE(2, 3));
    SET(u, 3, 1, 3, 3, 2, 0);
    nb_node *um = nb_min_axis(g, u, 0, false);
    if (run_seeded(g, um, (const double[]){1, 1, 1}) == NB_OK) {
        /* Columns: [3 3] tie -> row 0; [1 2] -> row 0; [3 0] -> row 1. */
        const double dx[] = {1, 1, 0, 0, 0, 1};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(u, i), dx[i], tol);
    }

    /* Reducing an axis of extent 0: sum is 0; the others are errors. */
    nb_node *e = param_of(g, dt, 2, SHAPE(2, 0));
    nb_node *es = nb_sum_axis(g, e, 1, false);
    CHECK(shape_is(es, 1, SHAPE(2)), "empty sum shape");
    if (run_forward(g, es) == NB_OK) {
        CHECK_NEAR(val(es, 0), 0, 0);
        CHECK_NEAR(val(es, 1), 0, 0);
    }
    nb_node *ea = nb_sum(g, e);
    if (run_forward(g, ea) == NB_OK)
        CHECK_NEAR(val(ea, 0), 0, 0);
    /* Along the non-empty axis every reduction is fine: [0] extents out. */
    nb_node *em = nb_max_axis(g, e, 0, false);
    CHECK(shape_is(em, 1, SHAPE(0)), "max over axis 0 of [2,0] is [0]");
    nb_graph_free(g);
}

static void test_logsumexp(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    /* X = [1 2 3; 0 0 0] */
    nb_node *x = param_of(g, dt, 2, SHAPE(2, 3));
    SET(x, 1, 2, 3, 0, 0, 0);
    double row0 = log(exp(1) + exp(2) + exp(3)), row1 = log(3.0);
    nb_node *l1 = nb_logsumexp_axis(g, x, 1, false);
    CHECK(shape_is(l1, 1, SHAPE(2)), "logsumexp axis 1 shape");
    if (run_seeded(g, l1, (const double[]){1, 2}) == NB_OK) {
        CHECK_NEAR(val(l1, 0), row0, tol * 4);
        CHECK_NEAR(val(l1, 1), row1, tol * 2);
        /* d/dx_j = dy e^{x_j} / sum e^x */
        for (int j = 0; j < 3; j++) {
            CHECK_NEAR(grad(x, j), exp(j + 1.0) / exp(row0), tol);
            CHECK_NEAR(grad(x, 3 + j), 2.0 / 3, tol);
        }
    }
    /* Columns: log(e^1 + 1), log(e^2 + 1), log(e^3 + 1), kept as [1,3]. */
    nb_node *l0 = nb_logsumexp_axis(g, x, -2, true);
    CHECK(shape_is(l0, 2, SHAPE(1, 3)), "logsumexp axis -2 keepdims shape");
    if (run_forward(g, l0) == NB_OK)
        for (int j = 0; j < 3; j++)
            CHECK_NEAR(val(l0, j), log(exp(j + 1.0) + 1), tol * 4);
    /* All: log(e + e^2 + e^3 + 3). */
    nb_node *la = nb_logsumexp(g, x);
    if (run_forward(g, la) == NB_OK)
        CHECK_NEAR(val(la, 0), log(exp(1) + exp(2) + exp(3) + 3), tol * 4);
    /* Stable: logsumexp([1000, 1000]) = 1000 + log 2, not inf. */
    nb_node *big = param_of(g, dt, 1, SHAPE(2));
    SET(big, 1000, 1000);
    nb_node *lb = nb_logsumexp(g, big);
    if (run_seeded(g, lb, NULL) == NB_OK) {
        CHECK_NEAR(val(lb, 0), 1000 + log(2.0), tol * 1000);
        CHECK_NEAR(grad(big, 0), 0.5, tol);
        CHECK_NEAR(grad(big, 1), 0.5, tol);
    }
    nb_graph_free(g);
}

/* Rows holding +inf or only -inf: softmax, log_softmax, logsumexp and the
 * fused softmax cross-entropy all take the limits of nb_softmax_lines,
 * with finite gradients. The rows: [1, +inf, 2] (p = [0, 1, 0]), [+inf,
 * +inf, 0] (p = [1/2, 1/2, 0]), [-inf, -inf, -inf] (p = 1/3 each, lse
 * -inf) and [0, -inf, 0] (an ordinary row with one zero probability). */
static void test_infinite_rows(nb_dtype dt)
{
    const double inf = INFINITY;
    const double rows[12] = {1, inf, 2, inf, inf, 0, -inf, -inf, -inf,
                             0, -inf, 0};
    const double p[12] = {0, 1, 0, 0.5, 0.5, 0, 1. / 3, 1. / 3, 1. / 3,
                          0.5, 0, 0.5};
    const double lse[4] = {inf, inf, -inf, log(2.0)};
    const double tol = 1e-6;
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 2, SHAPE(4, 3));
    nb_tensor_copy_from_f64(nb_node_value(x), rows, 12);

    nb_node *sm = nb_softmax(g, x);
    if (run_seeded(g, sm, (const double[]){1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2,
                                           3}) == NB_OK)
        for (int i = 0; i < 12; i++) {
            CHECK_NEAR(val(sm, i), p[i], tol);
            CHECK(isfinite(grad(x, i)), "softmax gradient %d finite", i);
        }
    nb_node *ls = nb_log_softmax(g, x);
    if (run_seeded(g, ls, (const double[]){1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0,
                                           0}) == NB_OK)
        for (int i = 0; i < 12; i++) {
            double want = p[i] > 0 ? log(p[i]) : -inf;
            CHECK(val(ls, i) == want || fabs(val(ls, i) - want) <= tol,
                  "log_softmax %d = %g, want %g", i, val(ls, i), want);
            CHECK(isfinite(grad(x, i)), "log_softmax gradient %d finite", i);
        }
    nb_node *lse_node = nb_logsumexp_axis(g, x, -1, false);
    if (run_seeded(g, lse_node, (const double[]){1, 1, 1, 1}) == NB_OK)
        for (int r = 0; r < 4; r++) {
            CHECK(val(lse_node, r) == lse[r] ||
                      fabs(val(lse_node, r) - lse[r]) <= tol,
                  "logsumexp row %d = %g, want %g", r, val(lse_node, r),
                  lse[r]);
            for (int j = 0; j < 3; j++)
                CHECK_NEAR(grad(x, r * 3 + j), p[r * 3 + j], tol);
        }
    /* Labels on a most probable class: the loss is -mean log p of them,
     * log 2 for the tied row and log 3 for the -inf row. */
    nb_node *labels = nb_constant(g, "labels", dt, 1, SHAPE(4));
    SET(labels, 1, 0, 2, 2);
    nb_node *ce = nb_softmax_ce_index_loss(g, x, labels);
    double want_ce = (0 + log(2.0) + log(3.0) + log(2.0)) / 4;
    if (run_seeded(g, ce, NULL) == NB_OK) {
        CHECK_NEAR(val(ce, 0), want_ce, tol);
        for (int i = 0; i < 12; i++)
            CHECK(isfinite(grad(x, i)), "ce gradient %d finite", i);
    }
    nb_node *onehot = nb_constant(g, "onehot", dt, 2, SHAPE(4, 3));
    SET(onehot, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1);
    nb_node *ce2 = nb_softmax_ce_loss(g, x, onehot);
    if (run_seeded(g, ce2, NULL) == NB_OK)
        CHECK_NEAR(val(ce2, 0), want_ce, tol);
    /* A NaN in a row makes that row NaN, not a limit. */
    nb_tensor_set(nb_node_value(x), 1, NAN);
    if (run_forward(g, sm) == NB_OK)
        for (int j = 0; j < 3; j++)
            CHECK(isnan(val(sm, j)), "NaN row: softmax %d is NaN", j);
    nb_graph_free(g);
}

/* log_softmax keeps its precision when the logits are large: computed as
 * (x - max) - log sum, not x - lse, whose rounding at 1000 would be 6e-5
 * in f32. log_softmax([1000.5, 1000]) = -log(1 + e^-0.5) - [0, 0.5]. */
static void test_log_softmax_large_logits(nb_dtype dt)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 1, SHAPE(2));
    SET(x, 1000.5, 1000);
    nb_node *y = nb_log_softmax(g, x);
    if (run_forward(g, y) == NB_OK) {
        CHECK_NEAR(val(y, 0), -0.47407698418010663, 1e-7);
        CHECK_NEAR(val(y, 1), -0.97407698418010663, 1e-7);
    }
    nb_graph_free(g);
}

/* ---- shape ops ---- */

static void test_reshape(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 2, SHAPE(2, 3));
    SET(x, 1, 2, 3, 4, 5, 6);
    nb_node *r = nb_reshape(g, x, 2, SHAPE(3, -1));
    CHECK(shape_is(r, 2, SHAPE(3, 2)), "reshape [3,-1] of [2,3] is [3,2]");
    const double seed[] = {10, 20, 30, 40, 50, 60};
    if (run_seeded(g, r, seed) == NB_OK)
        for (int i = 0; i < 6; i++) {
            CHECK_NEAR(val(r, i), i + 1, tol);
            CHECK_NEAR(grad(x, i), seed[i], tol * 60);
        }
    nb_node *flat = nb_reshape(g, x, 1, SHAPE(-1));
    CHECK(shape_is(flat, 1, SHAPE(6)), "reshape [-1] flattens");
    nb_node *s = nb_reshape(g, nb_sum(g, x), 3, SHAPE(1, 1, 1));
    CHECK(shape_is(s, 3, SHAPE(1, 1, 1)), "scalar to [1,1,1]");
    nb_node *back = nb_reshape(g, s, 0, NULL);
    if (run_forward(g, back) == NB_OK) {
        CHECK(rank_of(back) == 0, "[1,1,1] back to a scalar");
        CHECK_NEAR(val(back, 0), 21, tol * 21);
    }
    nb_graph_free(g);
}

/* x[i0,i1,i2] of shape [2,3,4] holds 100 i0 + 10 i1 + i2. */
static double at3(int64_t i0, int64_t i1, int64_t i2)
{
    return 100.0 * (double)i0 + 10.0 * (double)i1 + (double)i2;
}

static void test_permute(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 3, SHAPE(2, 3, 4));
    nb_tensor *xv = nb_node_value(x);
    for (int64_t i = 0; i < 24; i++)
        nb_tensor_set(xv, i, at3(i / 12, (i / 4) % 3, i % 4));

    /* perm (2,0,1): y[a,b,c] = x[b,c,a], y is [4,2,3]. */
    nb_node *y = nb_permute(g, x, 3, SHAPE(2, 0, 1));
    CHECK(shape_is(y, 3, SHAPE(4, 2, 3)), "permute shape");
    double seed[24];
    for (int i = 0; i < 24; i++)
        seed[i] = i;
    if (run_seeded(g, y, seed) == NB_OK) {
        for (int64_t a = 0; a < 4; a++)
            for (int64_t b = 0; b < 2; b++)
                for (int64_t c = 0; c < 3; c++)
                    CHECK_NEAR(val(y, (a * 2 + b) * 3 + c), at3(b, c, a), 0);
        /* dx[b,c,a] = dy[a,b,c] = (a*2 + b)*3 + c */
        for (int64_t b = 0; b < 2; b++)
            for (int64_t c = 0; c < 3; c++)
                for (int64_t a = 0; a < 4; a++)
                    CHECK_NEAR(grad(x, (b * 3 + c) * 4 + a),
                               (double)((a * 2 + b) * 3 + c), tol * 24);
    }
    /* Round trip through the inverse (1,2,0) gives x back. */
    nb_node *z = nb_permute(g, y, 3, SHAPE(1, 2, 0));
    CHECK(shape_is(z, 3, SHAPE(2, 3, 4)), "inverse permute shape");
    if (run_forward(g, z) == NB_OK)
        for (int64_t i = 0; i < 24; i++)
            CHECK_NEAR(val(z, i), val(x, i), 0);

    /* nb_transpose swaps the last two axes: t[i,c,b] = x[i,b,c]. */
    nb_node *t = nb_transpose(g, x);
    CHECK(shape_is(t, 3, SHAPE(2, 4, 3)), "transpose shape");
    if (run_forward(g, t) == NB_OK)
        for (int64_t i = 0; i < 2; i++)
            for (int64_t c = 0; c < 4; c++)
                for (int64_t b = 0; b < 3; b++)
                    CHECK_NEAR(val(t, (i * 4 + c) * 3 + b), at3(i, b, c), 0);

    /* A 2-D transpose past the 32 x 32 tiles with ragged edges. */
    const int64_t R = 37, C = 70;
    nb_node *m = param_of(g, dt, 2, SHAPE(R, C));
    for (int64_t i = 0; i < R * C; i++)
        nb_tensor_set(nb_node_value(m), i, (double)i);
    nb_node *mt = nb_transpose(g, m);
    double *big_seed = malloc(sizeof(double) * (size_t)(R * C));
    for (int64_t i = 0; i < R * C; i++)
        big_seed[i] = (double)(i % 97);
    if (run_seeded(g, mt, big_seed) == NB_OK) {
        int bad_value = 0, bad_grad = 0;
        for (int64_t j = 0; j < C; j++)
            for (int64_t i = 0; i < R; i++) {
                bad_value += val(mt, j * R + i) != (double)(i * C + j);
                bad_grad += grad(m, i * C + j) != big_seed[j * R + i];
            }
        CHECK(bad_value == 0, "%d wrong elements in a 37x70 transpose",
              bad_value);
        CHECK(bad_grad == 0, "%d wrong gradients in a 37x70 transpose",
              bad_grad);
    }
    free(big_seed);

    /* Identity perm is a plain copy. */
    nb_node *id = nb_permute(g, x, 3, SHAPE(0, 1, 2));
    if (run_forward(g, id) == NB_OK)
        for (int64_t i = 0; i < 24; i++)
            CHECK_NEAR(val(id, i), val(x, i), 0);
    nb_graph_free(g);
}

static void test_concat_slice(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *a = param_of(g, dt, 2, SHAPE(2, 3));
    nb_node *b = param_of(g, dt, 2, SHAPE(2, 1));
    nb_node *c = param_of(g, dt, 2, SHAPE(2, 2));
    SET(a, 1, 2, 3, 4, 5, 6);
    SET(b, 7, 8);
    SET(c, 9, 10, 11, 12);
    nb_node *parts[3] = {a, b, c};
    nb_node *cat = nb_concat(g, 3, parts, 1);
    CHECK(shape_is(cat, 2, SHAPE(2, 6)), "concat axis 1 shape");
    const double seed[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    if (run_seeded(g, cat, seed) == NB_OK) {
        const double want[] = {1, 2, 3, 7, 9, 10, 4, 5, 6, 8, 11, 12};
        for (int i = 0; i < 12; i++)
            CHECK_NEAR(val(cat, i), want[i], tol * 12);
        /* Each input gets back the part of dy it filled. */
        const double da[] = {1, 2, 3, 7, 8, 9}, db[] = {4, 10},
                     dc[] = {5, 6, 11, 12};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(a, i), da[i], tol * 12);
        for (int i = 0; i < 2; i++)
            CHECK_NEAR(grad(b, i), db[i], tol * 12);
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(grad(c, i), dc[i], tol * 12);
    }
    /* Slicing the concatenation gives each part back. */
    nb_node *sa = nb_slice(g, cat, 1, 0, 3), *sb = nb_slice(g, cat, 1, 3, 4);
    nb_node *sc = nb_slice(g, cat, -1, -2, 6);
    CHECK(shape_is(sc, 2, SHAPE(2, 2)), "slice [-2, 6) shape");
    if (run_forward(g, sa) == NB_OK && run_forward(g, sb) == NB_OK &&
        run_forward(g, sc) == NB_OK) {
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(val(sa, i), val(a, i), 0);
        for (int i = 0; i < 2; i++)
            CHECK_NEAR(val(sb, i), val(b, i), 0);
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(val(sc, i), val(c, i), 0);
    }
    /* Along axis 0: [a; a] is [4,3]; rows 1..3 are a's row 1 then a's
     * row 0. The slice's gradient lands only in its rows. */
    nb_node *twice[2] = {a, a};
    nb_node *cat0 = nb_concat(g, 2, twice, 0);
    CHECK(shape_is(cat0, 2, SHAPE(4, 3)), "concat axis 0 shape");
    nb_node *mid = nb_slice(g, cat0, 0, 1, -1);
    CHECK(shape_is(mid, 2, SHAPE(2, 3)), "slice [1, -1) of 4 rows");
    if (run_seeded(g, mid, seed) == NB_OK) {
        const double want[] = {4, 5, 6, 1, 2, 3};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(val(mid, i), want[i], tol * 6);
        /* a's row 1 got dy row 0 (1 2 3), a's row 0 got dy row 1 (4 5 6). */
        const double da[] = {4, 5, 6, 1, 2, 3};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad(a, i), da[i], tol * 6);
    }
    /* An empty slice is fine: [2,0]. */
    nb_node *empty = nb_slice(g, a, 1, 2, 2);
    CHECK(shape_is(empty, 2, SHAPE(2, 0)), "empty slice");
    CHECK(run_forward(g, empty) == NB_OK, "empty slice forward");
    nb_graph_free(g);
}

static void test_broadcast_to(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *row = param_of(g, dt, 1, SHAPE(3));
    SET(row, 1, 2, 3);
    nb_node *y = nb_broadcast_to(g, row, 2, SHAPE(2, 3));
    CHECK(shape_is(y, 2, SHAPE(2, 3)), "broadcast [3] to [2,3]");
    if (run_seeded(g, y, (const double[]){1, 2, 3, 10, 20, 30}) == NB_OK) {
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(val(y, i), 1 + i % 3, tol);
        /* Column sums of the seed. */
        CHECK_NEAR(grad(row, 0), 11, tol * 30);
        CHECK_NEAR(grad(row, 1), 22, tol * 30);
        CHECK_NEAR(grad(row, 2), 33, tol * 30);
    }
    /* [1,2,1] to [3,2,2]: y[i,j,k] = col[j]; dcol[j] = sum over i,k of dy. */
    nb_node *col = param_of(g, dt, 3, SHAPE(1, 2, 1));
    SET(col, 5, 7);
    nb_node *yc = nb_broadcast_to(g, col, 3, SHAPE(3, 2, 2));
    double seed[12];
    for (int i = 0; i < 12; i++)
        seed[i] = i;
    if (run_seeded(g, yc, seed) == NB_OK) {
        double want_grad[2] = {0, 0};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++)
                for (int k = 0; k < 2; k++) {
                    int flat = (i * 2 + j) * 2 + k;
                    CHECK_NEAR(val(yc, flat), j ? 7 : 5, tol * 7);
                    want_grad[j] += seed[flat];
                }
        CHECK_NEAR(grad(col, 0), want_grad[0], tol * 100);
        CHECK_NEAR(grad(col, 1), want_grad[1], tol * 100);
    }
    nb_graph_free(g);
}

/* Embedding picks rows; backward sums the seed of every position into the
 * row it picked (id 2 twice), rows never picked get 0. Bad ids fail
 * naming the op, the id and V, and leave the graph usable. */
static void test_embedding(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = param_of(g, dt, 2, SHAPE(4, 2));
    SET(w, 0, 1, 10, 11, 20, 21, 30, 31);
    nb_node *ids = nb_input(g, "ids", dt, 2, SHAPE(2, 2));
    nb_feed_f64(g, ids, 2, SHAPE(2, 2), (const double[]){2, 0, 2, 3});
    nb_node *y = nb_embedding(g, w, ids);
    CHECK(shape_is(y, 3, SHAPE(2, 2, 2)), "embedding of [2,2] ids by [4,2]");
    const double seed[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (run_seeded(g, y, seed) == NB_OK) {
        const double want[8] = {20, 21, 0, 1, 20, 21, 30, 31};
        for (int i = 0; i < 8; i++)
            CHECK_NEAR(val(y, i), want[i], tol);
        const double want_grad[8] = {3, 4, 0, 0, 1 + 5, 2 + 6, 7, 8};
        for (int i = 0; i < 8; i++)
            CHECK_NEAR(grad(w, i), want_grad[i], tol * 10);
    }
    const double bad[3] = {4, -1, 1.5};
    for (int k = 0; k < 3; k++) {
        nb_feed_f64(g, ids, 2, SHAPE(2, 2), (const double[]){0, 1, bad[k], 0});
        CHECK(nb_forward(g, y) != NB_OK, "id %g accepted", bad[k]);
        char idtext[32];
        snprintf(idtext, sizeof idtext, "id %g", bad[k]);
        CHECK_ERROR(g, "embedding", idtext, "position 2", "V = 4");
    }
    nb_feed_f64(g, ids, 2, SHAPE(2, 2), (const double[]){3, 3, 1, 0});
    CHECK(nb_forward(g, y) == NB_OK, "the graph works after bad ids: %s",
          nb_graph_error(g));
    CHECK_NEAR(val(y, 0), 30, tol);
    nb_node *v3 = param_of(g, dt, 1, SHAPE(3));
    CHECK(nb_embedding(g, v3, ids) == NULL, "a rank-1 table accepted");
    CHECK_ERROR(g, "embedding", "[3]", "[V, E]");
    /* f32 names rows exactly only below 2^24 (E = 0 keeps it cheap). */
    if (dt == NB_F32) {
        nb_node *huge = param_of(g, dt, 2, SHAPE(16777217, 0));
        CHECK(huge && nb_embedding(g, huge, ids) == NULL,
              "an f32 table of 2^24 + 1 rows accepted");
        CHECK_ERROR(g, "embedding", "2^24", "f64");
        nb_node *edge = param_of(g, dt, 2, SHAPE(16777216, 0));
        CHECK(nb_embedding(g, edge, ids) != NULL,
              "an f32 table of 2^24 rows refused: %s", nb_graph_error(g));
    }
    nb_graph_free(g);
}

/* stop_gradient passes the value and no message: in y = x * x + stop(x) * 3
 * dy/dx is 2x, not 2x + 3, and a parameter reached only through it gets a
 * zero gradient. */
static void test_stop_gradient(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 1, SHAPE(2));
    SET(x, 1.5, -2);
    nb_node *y = nb_add(g, nb_mul(g, x, x),
                        nb_scale(g, nb_stop_gradient(g, x), 3));
    if (run_seeded(g, y, (const double[]){1, 1}) == NB_OK) {
        CHECK_NEAR(val(y, 0), 1.5 * 1.5 + 4.5, tol * 10);
        CHECK_NEAR(val(y, 1), 4 - 6, tol * 10);
        CHECK_NEAR(grad(x, 0), 3, tol * 10);
        CHECK_NEAR(grad(x, 1), -4, tol * 10);
    }
    nb_node *only = nb_sum(g, nb_stop_gradient(g, nb_tanh(g, x)));
    if (run_seeded(g, only, (const double[]){1}) == NB_OK) {
        CHECK_NEAR(val(only, 0), tanh(1.5) + tanh(-2.0), tol * 10);
        CHECK_NEAR(grad(x, 0), 0, 0);
        CHECK_NEAR(grad(x, 1), 0, 0);
    }
    nb_graph_free(g);
}

/* Tensors with no elements pass through every op without touching memory
 * (run under the sanitizers in CI), and sum to 0. */
static void test_empty(nb_dtype dt)
{
    nb_graph *g = nb_graph_new();
    nb_node *e = param_of(g, dt, 3, SHAPE(2, 0, 3));
    nb_node *full = param_of(g, dt, 3, SHAPE(2, 2, 3));
    SET(full, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    nb_node *parts[2] = {e, full};
    nb_node *outs[] = {
        nb_reshape(g, e, 3, SHAPE(3, 0, 7)),
        nb_permute(g, e, 3, SHAPE(2, 1, 0)),
        nb_transpose(g, e),
        nb_concat(g, 2, parts, 1),
        nb_slice(g, full, 1, 1, 1),
        nb_broadcast_to(g, e, 4, SHAPE(4, 2, 0, 3)),
        nb_softmax(g, e),
        nb_log_softmax(g, e),
        nb_matmul(g, e, param_of(g, dt, 2, SHAPE(3, 4))),
        nb_matmul(g, param_of(g, dt, 2, SHAPE(2, 0)),
                  param_of(g, dt, 2, SHAPE(0, 3))),
        nb_logsumexp_axis(g, e, 2, false),
        nb_max_axis(g, e, 0, true),
    };
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        CHECK(outs[i] != NULL, "empty case %zu: %s", i, nb_graph_error(g));
        if (!outs[i])
            continue;
        nb_node *total = nb_sum(g, outs[i]);
        if (run_seeded(g, total, NULL) == NB_OK) {
            /* concat keeps full's 12 elements; the rest are empty. The
             * [2,0] x [0,3] product is a [2,3] of zeros. */
            double want = i == 3 ? 78 : 0;
            CHECK_NEAR(val(total, 0), want, 0);
        }
    }
    nb_graph_free(g);
}

/* ---- a dynamic batch through matmul and reshape ---- */

static void feed_rows(nb_graph *g, nb_node *x, nb_dtype dt, int64_t batch,
                      const double *v)
{
    int64_t shape[2] = {batch, 3};
    if (dt == NB_F64) {
        CHECK(nb_feed(g, x, 2, shape, v) == NB_OK, "feed: %s",
              nb_graph_error(g));
        return;
    }
    float buf[128];
    for (int64_t i = 0; i < batch * 3; i++)
        buf[i] = (float)v[i];
    CHECK(nb_feed(g, x, 2, shape, buf) == NB_OK, "feed: %s",
          nb_graph_error(g));
}

/* reshape is a view: its value is x's buffer, and it follows that buffer
 * when a feed or a forward moves it (each batch below outgrows the last),
 * so nothing is copied and no view is left pointing at freed memory. */
static void test_reshape_view(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", dt, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *flat = nb_reshape(g, x, 1, SHAPE(-1));
    nb_node *w = param_of(g, dt, 2, SHAPE(3, 2));
    SET(w, 1, 0, 0, 1, 1, 1); /* h = [x0 + x2, x1 + x2] */
    nb_node *h = nb_matmul(g, x, w);
    nb_node *hv = nb_reshape(g, nb_reshape(g, h, 3, SHAPE(-1, 1, 2)), 1,
                             SHAPE(-1)); /* a view of a view */
    nb_node *loss = nb_add(g, nb_sum(g, flat), nb_sum(g, hv));
    CHECK(loss != NULL, "view graph: %s", nb_graph_error(g));
    double v[3 * 40];
    for (int i = 0; i < 3 * 40; i++)
        v[i] = 0.25 * (i % 7) - 0.5;
    const int64_t batches[4] = {1, 2, 9, 40};
    for (int run = 0; run < 4 && loss; run++) {
        int64_t B = batches[run];
        feed_rows(g, x, dt, B, v);
        CHECK(nb_tensor_data(nb_node_value(flat)) == nb_tensor_data(nb_node_value(x)),
              "batch %lld: the view follows the fed buffer before forward",
              (long long)B);
        if (run == 3) {
            /* A forward that grows h but not hv: hv follows all the same. */
            CHECK(run_forward(g, h) == NB_OK, "forward h: %s",
                  nb_graph_error(g));
            CHECK(nb_tensor_data(nb_node_value(hv)) == nb_tensor_data(nb_node_value(h)),
                  "a view off the order follows its input's new buffer");
        }
        if (run_seeded(g, loss, NULL) != NB_OK)
            continue;
        CHECK(nb_tensor_data(nb_node_value(hv)) == nb_tensor_data(nb_node_value(h)),
              "batch %lld: the view of a view is h's buffer", (long long)B);
        CHECK(shape_is(hv, 1, SHAPE(2 * B)), "hv is [%lld]",
              (long long)(2 * B));
        double total = 0, col[3] = {0, 0, 0};
        for (int64_t b = 0; b < B; b++) {
            const double *r = v + 3 * b;
            CHECK_NEAR(val(flat, 3 * b + 1), r[1], tol);
            CHECK_NEAR(val(hv, 2 * b), r[0] + r[2], tol * 4);
            CHECK_NEAR(val(hv, 2 * b + 1), r[1] + r[2], tol * 4);
            for (int k = 0; k < 3; k++) {
                col[k] += r[k];
                total += r[k];
            }
            total += r[0] + r[1] + 2 * r[2];
        }
        CHECK_NEAR(val(loss, 0), total, tol * 100);
        /* d loss / dW[k][n] = sum over rows of x[b][k], through two views */
        for (int k = 0; k < 3; k++)
            for (int n = 0; n < 2; n++)
                CHECK_NEAR(grad(w, k * 2 + n), col[k], tol * 40);
    }
    nb_graph_free(g);
}

static void test_dynamic_batch(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", dt, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *w = param_of(g, dt, 2, SHAPE(3, 4));
    /* W = [1 0 0 1; 0 1 0 1; 0 0 1 1]: h = [x0 x1 x2 x0+x1+x2]. */
    SET(w, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1);
    nb_node *h = nb_matmul(g, x, w);
    nb_node *r = nb_reshape(g, h, 3, SHAPE(-1, 2, 2));
    nb_node *loss = nb_sum(g, nb_sum_axis(g, r, 0, false));
    CHECK(loss != NULL, "dynamic graph: %s", nb_graph_error(g));

    const double x2[] = {1, 2, 3, 4, 5, 6};
    const double x5[] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 2, -1, 0.5};
    const double *feeds[2] = {x2, x5};
    const int64_t batches[2] = {2, 5};
    for (int run = 0; run < 2 && loss; run++) {
        int64_t B = batches[run];
        const double *v = feeds[run];
        feed_rows(g, x, dt, B, v);
        if (run_seeded(g, loss, NULL) != NB_OK)
            continue;
        CHECK(shape_is(h, 2, SHAPE(B, 4)), "h is [%lld,4]", (long long)B);
        CHECK(shape_is(r, 3, SHAPE(B, 2, 2)), "reshape is [%lld,2,2]",
              (long long)B);
        /* loss = sum over rows of 2 (x0 + x1 + x2); dW[k][n] = sum_b x_bk. */
        double total = 0, col[3] = {0, 0, 0};
        for (int64_t b = 0; b < B; b++) {
            for (int k = 0; k < 3; k++) {
                total += 2 * v[b * 3 + k];
                col[k] += v[b * 3 + k];
            }
            CHECK_NEAR(val(h, b * 4 + 3), v[b * 3] + v[b * 3 + 1] + v[b * 3 + 2],
                       tol * 20);
            CHECK_NEAR(val(r, b * 4 + 1), v[b * 3 + 1], tol * 10);
        }
        CHECK_NEAR(val(loss, 0), total, tol * 50);
        for (int k = 0; k < 3; k++)
            for (int n = 0; n < 4; n++)
                CHECK_NEAR(grad(w, k * 4 + n), col[k], tol * 20);
    }

    /* A fixed-size reshape of a dynamic batch fails at the forward that
     * feeds a batch it cannot hold, naming both shapes, and the graph then
     * runs again at a batch that fits. */
    nb_node *y = nb_input(g, "y", dt, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *fixed = nb_reshape(g, y, 1, SHAPE(3));
    CHECK(fixed != NULL, "reshape at batch 1: %s", nb_graph_error(g));
    feed_rows(g, y, dt, 2, x2);
    CHECK(nb_forward(g, fixed) != NB_OK, "reshape [2,3] to [3] must fail");
    CHECK_ERROR(g, "reshape", "[2,3]", "[3]");
    feed_rows(g, y, dt, 1, x2);
    if (run_forward(g, fixed) == NB_OK)
        CHECK_NEAR(val(fixed, 2), 3, tol * 3);
    nb_graph_free(g);
}

/* ---- bad input ---- */

static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x784 = param_of(g, NB_F32, 2, SHAPE(64, 784));
    nb_node *w700 = param_of(g, NB_F32, 2, SHAPE(700, 256));
    CHECK(nb_matmul(g, x784, w700) == NULL, "inner mismatch accepted");
    CHECK_ERROR(g, "matmul", "inner dimensions differ", "[64,784]",
                "[700,256]");
    nb_node *v3 = param_of(g, NB_F32, 1, SHAPE(3));
    nb_node *m32 = param_of(g, NB_F32, 2, SHAPE(3, 2));
    CHECK(nb_matmul(g, v3, m32) == NULL, "rank 1 accepted");
    CHECK_ERROR(g, "matmul", "[3]", "[3,2]");
    nb_node *t4 = param_of(g, NB_F32, 4, SHAPE(1, 2, 3, 2));
    CHECK(nb_matmul(g, t4, m32) == NULL, "rank 4 accepted");
    CHECK_ERROR(g, "matmul", "[1,2,3,2]", "[3,2]");
    CHECK(nb_matmul(g, m32, param_of(g, NB_F32, 3, SHAPE(2, 2, 2))) == NULL,
          "[M,K] x [B,K,N] accepted");
    CHECK_ERROR(g, "matmul", "[3,2]", "[2,2,2]");
    nb_node *a234 = param_of(g, NB_F32, 3, SHAPE(2, 3, 4));
    nb_node *b546 = param_of(g, NB_F32, 3, SHAPE(5, 4, 6));
    CHECK(nb_matmul(g, a234, b546) == NULL, "batch mismatch accepted");
    CHECK_ERROR(g, "matmul", "batch", "[2,3,4]", "[5,4,6]");
    nb_node *d64 = param_of(g, NB_F64, 2, SHAPE(2, 3));
    CHECK(nb_matmul(g, d64, m32) == NULL, "dtype mismatch accepted");
    CHECK_ERROR(g, "matmul", "f64", "f32", "[2,3]", "[3,2]");

    nb_node *scalar = nb_scalar(g, NULL, NB_F32, 1.0);
    CHECK(nb_softmax(g, scalar) == NULL, "softmax of a scalar accepted");
    CHECK_ERROR(g, "softmax", "scalar");
    CHECK(nb_log_softmax(g, scalar) == NULL, "log_softmax of a scalar");
    CHECK_ERROR(g, "log_softmax", "scalar");

    nb_node *x23 = param_of(g, NB_F32, 2, SHAPE(2, 3));
    CHECK(nb_sum_axis(g, x23, 2, false) == NULL, "axis 2 of rank 2");
    CHECK_ERROR(g, "sum", "axis 2", "rank 2");
    CHECK(nb_max_axis(g, x23, -3, true) == NULL, "axis -3 of rank 2");
    CHECK_ERROR(g, "max", "axis -3", "rank 2");
    CHECK(nb_logsumexp_axis(g, scalar, 0, false) == NULL, "axis of scalar");
    CHECK_ERROR(g, "logsumexp", "axis 0", "rank 0");
    nb_node *e20 = param_of(g, NB_F32, 2, SHAPE(2, 0));
    CHECK(nb_mean_axis(g, e20, 1, false) == NULL, "mean of empty axis");
    CHECK_ERROR(g, "mean", "cannot reduce an empty axis", "[2,0]");
    CHECK(nb_max_axis(g, e20, -1, false) == NULL, "max of empty axis");
    CHECK_ERROR(g, "max", "cannot reduce an empty axis", "[2,0]");
    CHECK(nb_min(g, e20) == NULL, "min of no elements");
    CHECK_ERROR(g, "min", "cannot reduce an empty axis", "[2,0]");
    CHECK(nb_mean(g, e20) == NULL, "mean of no elements");
    CHECK_ERROR(g, "mean", "cannot reduce an empty axis");
    CHECK(nb_logsumexp_axis(g, e20, 1, true) == NULL, "lse of empty axis");
    CHECK_ERROR(g, "logsumexp", "cannot reduce an empty axis", "[2,0]");
    CHECK(nb_logsumexp(g, e20) == NULL, "lse of no elements");
    CHECK_ERROR(g, "logsumexp", "cannot reduce an empty axis");

    CHECK(nb_reshape(g, x23, 2, SHAPE(4, 2)) == NULL, "6 into 8 elements");
    CHECK_ERROR(g, "reshape", "[2,3]", "[4,2]");
    CHECK(nb_reshape(g, x23, 2, SHAPE(-1, 4)) == NULL, "-1 cannot resolve");
    CHECK_ERROR(g, "reshape", "[2,3]", "[-1,4]");
    CHECK(nb_reshape(g, x23, 3, SHAPE(-1, -1, 6)) == NULL, "two -1");
    CHECK_ERROR(g, "reshape", "more than one -1", "[-1,-1,6]");
    CHECK(nb_reshape(g, x23, 2, SHAPE(-2, -3)) == NULL, "negative extent");
    CHECK_ERROR(g, "reshape", "negative", "-2");
    CHECK(nb_reshape(g, x23, 9, SHAPE(1, 1, 1, 1, 1, 1, 2, 3, 1)) == NULL,
          "rank 9");
    CHECK_ERROR(g, "reshape", "rank 9");
    CHECK(nb_reshape(g, x23, 2, NULL) == NULL, "NULL shape");
    CHECK_ERROR(g, "reshape", "NULL");
    CHECK(nb_reshape(g, e20, 2, SHAPE(0, -1)) == NULL, "0 x -1");
    CHECK_ERROR(g, "reshape", "[2,0]", "[0,-1]");

    CHECK(nb_permute(g, a234, 3, SHAPE(0, 0, 1)) == NULL, "repeat");
    CHECK_ERROR(g, "permute", "(0,0,1)", "not a permutation", "[2,3,4]");
    CHECK(nb_permute(g, a234, 3, SHAPE(0, 1, 3)) == NULL, "3 of rank 3");
    CHECK_ERROR(g, "permute", "(0,1,3)", "[2,3,4]");
    CHECK(nb_permute(g, a234, 3, NULL) == NULL, "NULL perm");
    CHECK_ERROR(g, "permute", "NULL");
    /* The length is checked, so a short array is caught, not read past. */
    CHECK(nb_permute(g, a234, 2, SHAPE(1, 0)) == NULL, "2 entries for rank 3");
    CHECK_ERROR(g, "permute", "2 entries", "rank 3");
    CHECK(nb_permute(g, a234, 9, SHAPE(0, 1, 2, 3, 4, 5, 6, 7, 8)) == NULL,
          "9 entries");
    CHECK_ERROR(g, "permute", "9 entries", "rank 3");
    CHECK(nb_permute(g, a234, -1, SHAPE(0)) == NULL, "-1 entries");
    CHECK_ERROR(g, "permute", "-1 entries");
    CHECK(nb_permute(g, a234, 3, SHAPE(0, 1, (int64_t)1 << 40)) == NULL,
          "a 64-bit axis");
    CHECK_ERROR(g, "permute", "1099511627776");
    CHECK(nb_transpose(g, v3) == NULL, "transpose of rank 1");
    CHECK_ERROR(g, "permute", "[3]", "rank >= 2");
    nb_node *tr = nb_transpose(g, a234);
    CHECK(tr && strcmp(nb_node_op_name(tr), "permute") == 0,
          "nb_transpose builds a permute node");

    nb_node *x24 = param_of(g, NB_F32, 2, SHAPE(2, 4));
    nb_node *pair[2] = {x23, x24};
    CHECK(nb_concat(g, 2, pair, 0) == NULL, "extents differ off axis");
    CHECK_ERROR(g, "concat", "[2,3]", "[2,4]", "axis 0");
    nb_node *ranks[2] = {x23, a234};
    CHECK(nb_concat(g, 2, ranks, 0) == NULL, "ranks differ");
    CHECK_ERROR(g, "concat", "[2,3]", "[2,3,4]", "rank");
    nb_node *types[2] = {x23, d64};
    CHECK(nb_concat(g, 2, types, 0) == NULL, "dtypes differ");
    CHECK_ERROR(g, "concat", "f64", "f32");
    CHECK(nb_concat(g, 2, pair, 2) == NULL, "axis out of range");
    CHECK_ERROR(g, "concat", "axis 2", "rank 2");
    CHECK(nb_concat(g, 0, pair, 0) == NULL, "no inputs");
    CHECK_ERROR(g, "concat", "given 0");
    CHECK(nb_concat(g, 1, &scalar, 0) == NULL, "concat of a scalar");
    CHECK_ERROR(g, "concat", "scalar");
    CHECK(nb_concat(g, 2, NULL, 0) == NULL, "NULL list");
    CHECK_ERROR(g, "concat");

    CHECK(nb_slice(g, x23, 1, 2, 1) == NULL, "start > end");
    CHECK_ERROR(g, "slice", "start 2", "end 1", "[2,3]");
    CHECK(nb_slice(g, x23, 1, 0, 4) == NULL, "end past the extent");
    CHECK_ERROR(g, "slice", "end 4", "[2,3]");
    CHECK(nb_slice(g, x23, 0, -3, 1) == NULL, "start before the beginning");
    CHECK_ERROR(g, "slice", "start -3", "[2,3]");
    CHECK(nb_slice(g, x23, 2, 0, 1) == NULL, "axis out of range");
    CHECK_ERROR(g, "slice", "axis 2", "rank 2");

    CHECK(nb_broadcast_to(g, v3, 2, SHAPE(2, 4)) == NULL, "3 to 4");
    CHECK_ERROR(g, "broadcast_to", "[3]", "[2,4]");
    CHECK(nb_broadcast_to(g, x23, 1, SHAPE(3)) == NULL, "fewer axes");
    CHECK_ERROR(g, "broadcast_to", "[2,3]", "[3]");
    CHECK(nb_broadcast_to(g, v3, 2, SHAPE(-1, 3)) == NULL, "negative");
    CHECK_ERROR(g, "broadcast_to", "[-1,3]", "negative");
    CHECK(nb_broadcast_to(g, v3, 2, NULL) == NULL, "NULL shape");
    CHECK_ERROR(g, "broadcast_to", "NULL");

    /* A failed constructor leaves one message; the chain after it adds
     * none. */
    nb_node *chain = nb_sum(g, nb_softmax(g, nb_matmul(g, x784, w700)));
    CHECK(chain == NULL, "chain over a failure");
    CHECK_ERROR(g, "matmul", "inner dimensions differ");

    /* The graph still works. */
    nb_node *ok = nb_sum(g, nb_matmul(g, x23, param_of(g, NB_F32, 2,
                                                       SHAPE(3, 1))));
    SET(x23, 1, 1, 1, 1, 1, 1);
    CHECK(ok != NULL, "valid node after errors: %s", nb_graph_error(g));
    if (ok && run_forward(g, ok) == NB_OK)
        CHECK_NEAR(val(ok, 0), 0, 0); /* the [3,1] param is zero-filled */
    CHECK(nb_graph_error(g) == NULL, "no error left: %s", nb_graph_error(g));
    nb_graph_free(g);
}

/* A NaN reaches the output of max/min and maximum/minimum from any
 * position, so checking mode sees it. */
static void test_nan_propagation(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F64, 1, SHAPE(2));
    nb_node *b = nb_param(g, "b", NB_F64, 1, SHAPE(2));
    SET(a, NAN, 1.0);
    SET(b, 1.0, NAN);
    nb_node *outs[] = {nb_maximum(g, a, b), nb_minimum(g, a, b),
                       nb_max(g, a), nb_max(g, b), nb_min(g, a), nb_min(g, b)};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        CHECK(nb_forward(g, outs[i]) == NB_OK, "%s", nb_graph_error(g));
        nb_tensor *v = nb_node_value(outs[i]);
        for (int64_t j = 0; j < nb_tensor_size(v); j++)
            CHECK(isnan(nb_tensor_get(v, j)), "output %zu[%lld] = %g", i,
                  (long long)j, nb_tensor_get(v, j));
    }
    nb_graph_free(g);
}

/* NB_SLICE_END follows a dynamic batch: the last rows of any batch. */
static void test_slice_to_end(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    double data[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* Shape rules see the batch last fed (1 before any feed), so the slice
     * of the last two rows is built once a batch of two or more is in. */
    CHECK(nb_feed(g, x, 2, SHAPE(3, 2), data) == NB_OK, "feed 3");
    nb_node *tail = nb_slice(g, x, 0, -2, NB_SLICE_END);
    CHECK(tail != NULL, "%s", nb_graph_error(g));
    if (!tail) {
        nb_graph_free(g);
        return;
    }
    CHECK(nb_forward(g, tail) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_dim(nb_node_value(tail), 0) == 2, "two rows");
    CHECK_NEAR(nb_tensor_get(nb_node_value(tail), 3), 5.0, 0);
    CHECK(nb_feed(g, x, 2, SHAPE(5, 2), data) == NB_OK, "feed 5");
    CHECK(nb_forward(g, tail) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(tail), 0), 6.0, 0);
    CHECK_NEAR(nb_tensor_get(nb_node_value(tail), 3), 9.0, 0);
    /* Absurd shapes are refused before any size is computed from them. */
    CHECK(nb_param(g, "huge", NB_F32, 3,
                   SHAPE(0, INT64_C(1) << 62, INT64_C(1) << 62)) == NULL,
          "an empty tensor with absurd extents");
    CHECK_ERROR(g, "param", "'huge'");
    nb_graph_free(g);
}

int main(void)
{
    const nb_dtype types[2] = {NB_F32, NB_F64};
    const double tols[2] = {2e-6, 1e-12};
    for (int i = 0; i < 2; i++) {
        test_matmul(types[i], tols[i]);
        test_softmax(types[i], tols[i] * 4);
        test_reduce(types[i], tols[i]);
        test_logsumexp(types[i], tols[i] * 4);
        test_reshape(types[i], tols[i]);
        test_permute(types[i], tols[i]);
        test_concat_slice(types[i], tols[i]);
        test_broadcast_to(types[i], tols[i]);
        test_embedding(types[i], tols[i]);
        test_stop_gradient(types[i], tols[i]);
        test_dynamic_batch(types[i], tols[i]);
        test_reshape_view(types[i], tols[i]);
        test_empty(types[i]);
    }
    test_infinite_rows(NB_F32);
    test_log_softmax_large_logits(NB_F32);
    test_log_softmax_large_logits(NB_F64);
    test_infinite_rows(NB_F64);
    test_errors();
    test_nan_propagation();
    test_slice_to_end();
    return tu_finish("ops_tensor");
}
