/* Losses, penalties and dropout: forward values and gradients against
 * numbers worked out by hand or recomputed here with libm in a different
 * way than the ops compute them; the stable forms at extreme logits; the
 * label checks; dropout's statistics, reproducibility and modes; and every
 * constructor's rejection of bad input, with the graph usable afterwards.
 */
#include <stdint.h>

#include "test_util.h"

static double value_of(nb_node *n)
{
    return nb_tensor_get(nb_node_value(n), 0);
}

static double grad_at(nb_node *n, int64_t i)
{
    nb_tensor *gr = nb_node_grad(n);
    return gr ? nb_tensor_get(gr, i) : NAN;
}

static nb_node *param_of(nb_graph *g, nb_dtype dt, int rank,
                         const int64_t *shape)
{
    return nb_param(g, NULL, dt, rank, shape);
}

static nb_node *const_of(nb_graph *g, nb_dtype dt, int rank,
                         const int64_t *shape)
{
    return nb_constant(g, NULL, dt, rank, shape);
}

/* Feeds doubles into an input of either dtype. */
static void feed_values(nb_graph *g, nb_node *in, int rank,
                        const int64_t *shape, int count, const double *v)
{
    if (nb_tensor_dtype(nb_node_value(in)) == NB_F64) {
        nb_feed(g, in, rank, shape, v);
        return;
    }
    float buf[64];
    for (int i = 0; i < count && i < 64; i++)
        buf[i] = (float)v[i];
    nb_feed(g, in, rank, shape, buf);
}

/* Forward and backward from a scalar loss, reporting failures. */
static int run(nb_graph *g, nb_node *loss)
{
    int rc = nb_forward(g, loss);
    CHECK(rc == NB_OK, "forward: %s", nb_graph_error(g));
    if (rc == NB_OK) {
        rc = nb_backward(g, loss);
        CHECK(rc == NB_OK, "backward: %s", nb_graph_error(g));
    }
    return rc;
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* ---- squared error ---- */

static void test_squared(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    /* 1/2 ((1-0)^2 + (2-4)^2) = 1/2 (1 + 4) = 2.5 */
    nb_node *y = param_of(g, dt, 1, SHAPE(2)), *t = param_of(g, dt, 1, SHAPE(2));
    SET(y, 1, 2);
    SET(t, 0, 4);
    nb_node *sse = nb_sse_loss(g, y, t);
    CHECK(sse && nb_tensor_rank(nb_node_value(sse)) == 0, "sse: %s",
          nb_graph_error(g));
    if (sse && run(g, sse) == NB_OK) {
        CHECK_NEAR(value_of(sse), 2.5, tol);
        CHECK_NEAR(grad_at(y, 0), 1, tol);
        CHECK_NEAR(grad_at(y, 1), -2, tol);
        CHECK_NEAR(grad_at(t, 0), -1, tol);
        CHECK_NEAR(grad_at(t, 1), 2, tol);
    }
    /* The incoming dL scales every message: 3 * sse. */
    nb_node *three = nb_scalar(g, NULL, dt, 3.0);
    nb_node *scaled = nb_mul(g, sse, three);
    if (scaled && run(g, scaled) == NB_OK) {
        CHECK_NEAR(value_of(scaled), 7.5, tol);
        CHECK_NEAR(grad_at(y, 1), -6, tol);
        CHECK_NEAR(grad_at(t, 0), -3, tol);
    }

    /* d = y - t = [1, 1, 2, 2]: mean d^2 = (1 + 1 + 4 + 4)/4 = 2.5,
     * dy = 2 d / 4 = [0.5, 0.5, 1, 1]. */
    nb_node *ym = param_of(g, dt, 2, SHAPE(2, 2)),
            *tm = param_of(g, dt, 2, SHAPE(2, 2));
    SET(ym, 1, 2, 3, 4);
    SET(tm, 0, 1, 1, 2);
    nb_node *mse = nb_mse_loss(g, ym, tm);
    if (mse && run(g, mse) == NB_OK) {
        CHECK_NEAR(value_of(mse), 2.5, tol);
        const double want[] = {0.5, 0.5, 1, 1};
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(grad_at(ym, i), want[i], tol);
            CHECK_NEAR(grad_at(tm, i), -want[i], tol);
        }
    }
    /* y against itself: zero loss, and the two messages into the one
     * gradient cancel. */
    nb_node *self = nb_sse_loss(g, y, y);
    if (self && run(g, self) == NB_OK) {
        CHECK_NEAR(value_of(self), 0, tol);
        CHECK_NEAR(grad_at(y, 0), 0, tol);
    }
    nb_graph_free(g);
}

/* ---- binary cross-entropy ---- */

static void test_bce(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    const double pv[] = {0.25, 0.5, 0.9}, tv[] = {1, 0, 0.3};
    nb_node *p = param_of(g, dt, 1, SHAPE(3)), *t = param_of(g, dt, 1, SHAPE(3));
    SET(p, 0.25, 0.5, 0.9);
    SET(t, 1, 0, 0.3);
    nb_node *loss = nb_bce_loss(g, p, t);
    if (loss && run(g, loss) == NB_OK) {
        double want = (-log(0.25) - log(0.5) - (0.3 * log(0.9) + 0.7 * log(0.1))) / 3;
        CHECK_NEAR(value_of(loss), want, tol);
        for (int i = 0; i < 3; i++) {
            double dp = (-tv[i] / pv[i] + (1 - tv[i]) / (1 - pv[i])) / 3;
            double dtv = log((1 - pv[i]) / pv[i]) / 3;
            CHECK_NEAR(grad_at(p, i), dp, tol * 10);
            CHECK_NEAR(grad_at(t, i), dtv, tol);
        }
    }

    /* p exactly 0 or 1 with the matching target costs nothing (0 log 0 = 0),
     * and the gradient there is the one-sided derivative, finite. */
    nb_node *pe = param_of(g, dt, 1, SHAPE(3)), *te = const_of(g, dt, 1, SHAPE(3));
    SET(pe, 0, 1, 0.5);
    SET(te, 0, 1, 1);
    nb_node *edge = nb_bce_loss(g, pe, te);
    if (edge && run(g, edge) == NB_OK) {
        CHECK(isfinite(value_of(edge)), "bce at p = 0, 1 is %g", value_of(edge));
        CHECK_NEAR(value_of(edge), log(2.0) / 3, tol);
        CHECK_NEAR(grad_at(pe, 0), 1.0 / 3, tol);
        CHECK_NEAR(grad_at(pe, 1), -1.0 / 3, tol);
        CHECK_NEAR(grad_at(pe, 2), -2.0 / 3, tol);
    }
    nb_graph_free(g);
}

static void test_bce_logits(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    const double zv[] = {-3, -0.5, 0, 0.7, 2.5}, tv[] = {0, 1, 0.5, 1, 0.2};
    nb_node *z = param_of(g, dt, 1, SHAPE(5)), *t = param_of(g, dt, 1, SHAPE(5));
    SET(z, -3, -0.5, 0, 0.7, 2.5);
    SET(t, 0, 1, 0.5, 1, 0.2);
    /* The same loss through the probability form, on p = sigmoid(z). */
    nb_node *p = const_of(g, dt, 1, SHAPE(5));
    double pv[5], want = 0;
    for (int i = 0; i < 5; i++) {
        pv[i] = sigmoid(zv[i]);
        want -= tv[i] * log(pv[i]) + (1 - tv[i]) * log(1 - pv[i]);
    }
    want /= 5;
    nb_tensor_copy_from_f64(nb_node_value(p), pv, 5);
    nb_node *loss = nb_bce_logits_loss(g, z, t);
    nb_node *via_p = nb_bce_loss(g, p, t);
    if (loss && via_p && run(g, loss) == NB_OK) {
        CHECK_NEAR(value_of(loss), want, tol);
        for (int i = 0; i < 5; i++) {
            CHECK_NEAR(grad_at(z, i), (pv[i] - tv[i]) / 5, tol);
            CHECK_NEAR(grad_at(t, i), -zv[i] / 5, tol);
        }
        CHECK(nb_forward(g, via_p) == NB_OK, "%s", nb_graph_error(g));
        CHECK_NEAR(value_of(via_p), value_of(loss), tol * 10);
    }

    /* Extreme logits: softplus(1000) - 1000 = 0, softplus(-1000) + 1000 =
     * 1000, gradients sigmoid(z) - t exactly 0 and -1. */
    const double cases[][4] = {
        /* z, t, loss, dz */
        {1000, 1, 0, 0},
        {-1000, 1, 1000, -1},
        {-1000, 0, 0, 0},
        {1000, 0, 1000, 1},
    };
    for (int c = 0; c < 4; c++) {
        nb_node *ze = param_of(g, dt, 1, SHAPE(1)), *te = const_of(g, dt, 1, SHAPE(1));
        SET(ze, cases[c][0]);
        SET(te, cases[c][1]);
        nb_node *extreme = nb_bce_logits_loss(g, ze, te);
        if (extreme && run(g, extreme) == NB_OK) {
            CHECK(isfinite(value_of(extreme)) && isfinite(grad_at(ze, 0)),
                  "z = %g: loss %g, dz %g", cases[c][0], value_of(extreme),
                  grad_at(ze, 0));
            CHECK_NEAR(value_of(extreme), cases[c][2], 1e-9 * 1000);
            CHECK_NEAR(grad_at(ze, 0), cases[c][3], tol);
        }
    }
    nb_graph_free(g);
}

/* ---- categorical cross-entropy ---- */

static void test_cce(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    /* Two rows; p = 0 under a zero target is harmless (0 log 0 = 0). */
    nb_node *p = param_of(g, dt, 2, SHAPE(2, 3)), *y = const_of(g, dt, 2, SHAPE(2, 3));
    SET(p, 0.2, 0.3, 0.5, 0.6, 0.4, 0);
    SET(y, 0, 0, 1, 1, 0, 0);
    nb_node *loss = nb_cce_loss(g, p, y);
    if (loss && run(g, loss) == NB_OK) {
        CHECK_NEAR(value_of(loss), (-log(0.5) - log(0.6)) / 2, tol);
        /* dp = -y / p / rows */
        const double want[] = {0, 0, -1 / (0.5 * 2), -1 / (0.6 * 2), 0, 0};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad_at(p, i), want[i], tol);
    }
    /* The same rows as [2,1,3]: rows are every axis but the last. */
    nb_node *p3 = param_of(g, dt, 3, SHAPE(2, 1, 3)),
            *y3 = const_of(g, dt, 3, SHAPE(2, 1, 3));
    SET(p3, 0.2, 0.3, 0.5, 0.6, 0.4, 0);
    SET(y3, 0, 0, 1, 1, 0, 0);
    nb_node *loss3 = nb_cce_loss(g, p3, y3);
    if (loss3 && run(g, loss3) == NB_OK)
        CHECK_NEAR(value_of(loss3), (-log(0.5) - log(0.6)) / 2, tol);

    /* A soft target on one rank-1 row, with dy = -log p. */
    nb_node *ps = param_of(g, dt, 1, SHAPE(3)), *ys = param_of(g, dt, 1, SHAPE(3));
    SET(ps, 0.2, 0.3, 0.5);
    SET(ys, 0.1, 0.6, 0.3);
    nb_node *soft = nb_cce_loss(g, ps, ys);
    if (soft && run(g, soft) == NB_OK) {
        CHECK_NEAR(value_of(soft),
                   -(0.1 * log(0.2) + 0.6 * log(0.3) + 0.3 * log(0.5)), tol);
        CHECK_NEAR(grad_at(ys, 1), -log(0.3), tol);
        CHECK_NEAR(grad_at(ps, 1), -0.6 / 0.3, tol);
    }
    nb_graph_free(g);
}

/* log softmax of one row, straight from the definition (no shift). */
static void log_softmax_row(int k, const double *z, double *out)
{
    double total = 0;
    for (int j = 0; j < k; j++)
        total += exp(z[j]);
    for (int j = 0; j < k; j++)
        out[j] = log(exp(z[j]) / total);
}

static void test_softmax_ce(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    const double zv[] = {1, 2, 3, 0.5, -1, 2};
    double lq[6];
    log_softmax_row(3, zv, lq);
    log_softmax_row(3, zv + 3, lq + 3);

    nb_node *z = param_of(g, dt, 2, SHAPE(2, 3)), *y = const_of(g, dt, 2, SHAPE(2, 3));
    nb_tensor_copy_from_f64(nb_node_value(z), zv, 6);
    SET(y, 0, 0, 1, 1, 0, 0);
    nb_node *loss = nb_softmax_ce_loss(g, z, y);
    if (loss && run(g, loss) == NB_OK) {
        CHECK_NEAR(value_of(loss), -(lq[2] + lq[3]) / 2, tol);
        /* The fused gradient is (softmax - y) / rows. */
        const double yv[] = {0, 0, 1, 1, 0, 0};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad_at(z, i), (exp(lq[i]) - yv[i]) / 2, tol);
    }

    /* Soft targets whose rows do not sum to 1: dz = (q sum y - y)/rows,
     * dy = -log q / rows. */
    const double ys[] = {0.2, 0.3, 0.1, 0.5, 0.5, 0.5};
    nb_node *z2 = param_of(g, dt, 2, SHAPE(2, 3)), *y2 = param_of(g, dt, 2, SHAPE(2, 3));
    nb_tensor_copy_from_f64(nb_node_value(z2), zv, 6);
    nb_tensor_copy_from_f64(nb_node_value(y2), ys, 6);
    nb_node *soft = nb_softmax_ce_loss(g, z2, y2);
    if (soft && run(g, soft) == NB_OK) {
        double want = 0;
        for (int i = 0; i < 6; i++)
            want -= ys[i] * lq[i];
        CHECK_NEAR(value_of(soft), want / 2, tol);
        for (int r = 0; r < 2; r++) {
            double ysum = ys[3 * r] + ys[3 * r + 1] + ys[3 * r + 2];
            for (int j = 0; j < 3; j++) {
                int i = 3 * r + j;
                CHECK_NEAR(grad_at(z2, i), (exp(lq[i]) * ysum - ys[i]) / 2, tol);
                CHECK_NEAR(grad_at(y2, i), -lq[i] / 2, tol);
            }
        }
    }

    /* Logits of +-1000: -log softmax is 1000 for the middle class and 0
     * for the top one, with no overflow. */
    nb_node *zl = param_of(g, dt, 1, SHAPE(3));
    nb_node *mid = const_of(g, dt, 1, SHAPE(3)), *top = const_of(g, dt, 1, SHAPE(3));
    SET(zl, 1000, 0, -1000);
    SET(mid, 0, 1, 0);
    SET(top, 1, 0, 0);
    nb_node *l_mid = nb_softmax_ce_loss(g, zl, mid);
    nb_node *l_top = nb_softmax_ce_loss(g, zl, top);
    if (l_mid && run(g, l_mid) == NB_OK) {
        CHECK_NEAR(value_of(l_mid), 1000, 1e-9 * 1000);
        CHECK_NEAR(grad_at(zl, 0), 1, tol);
        CHECK_NEAR(grad_at(zl, 1), -1, tol);
        CHECK_NEAR(grad_at(zl, 2), 0, tol);
    }
    if (l_top && run(g, l_top) == NB_OK) {
        CHECK_NEAR(value_of(l_top), 0, tol);
        CHECK_NEAR(grad_at(zl, 0), 0, tol);
    }
    nb_graph_free(g);
}

/* The index form, the one-hot form and nll on log softmax agree, for
 * [B,T,K] logits with labels shaped [B,T] and flat [B*T]. */
static void test_index_forms(nb_dtype dt, double tol)
{
    enum { B = 2, T = 3, K = 4, N = B * T * K };
    const double labels[B * T] = {3, 0, 2, 1, 1, 0};
    double zv[N], one_hot[N] = {0}, logp[N];
    for (int i = 0; i < N; i++)
        zv[i] = sin(1.7 * i) * 2.5;
    for (int r = 0; r < B * T; r++) {
        one_hot[r * K + (int)labels[r]] = 1;
        log_softmax_row(K, zv + r * K, logp + r * K);
    }
    double want = 0;
    for (int r = 0; r < B * T; r++)
        want -= logp[r * K + (int)labels[r]];
    want /= B * T;

    nb_graph *g = nb_graph_new();
    nb_node *z = param_of(g, dt, 3, SHAPE(B, T, K));
    nb_node *y = const_of(g, dt, 3, SHAPE(B, T, K));
    nb_node *lab = const_of(g, dt, 2, SHAPE(B, T));
    /* Labels as an input that asks for a gradient: it must stay zero. */
    nb_node *lab_flat = nb_input(g, "labels", dt, 1, SHAPE(B * T));
    nb_node *lp = param_of(g, dt, 3, SHAPE(B, T, K));
    nb_tensor_copy_from_f64(nb_node_value(z), zv, N);
    nb_tensor_copy_from_f64(nb_node_value(y), one_hot, N);
    nb_tensor_copy_from_f64(nb_node_value(lab), labels, B * T);
    nb_tensor_copy_from_f64(nb_node_value(lp), logp, N);
    feed_values(g, lab_flat, 1, SHAPE(B * T), B * T, labels);
    nb_input_set_requires_grad(g, lab_flat, true);

    nb_node *l_hot = nb_softmax_ce_loss(g, z, y);
    nb_node *l_idx = nb_softmax_ce_index_loss(g, z, lab);
    nb_node *l_flat = nb_softmax_ce_index_loss(g, z, lab_flat);
    nb_node *l_nll = nb_nll_loss(g, lp, lab);
    CHECK(l_hot && l_idx && l_flat && l_nll, "build: %s", nb_graph_error(g));
    if (!(l_hot && l_idx && l_flat && l_nll)) {
        nb_graph_free(g);
        return;
    }
    double hot_grad[N];
    if (run(g, l_hot) == NB_OK) {
        CHECK_NEAR(value_of(l_hot), want, tol);
        for (int i = 0; i < N; i++)
            hot_grad[i] = grad_at(z, i);
    }
    nb_node *forms[] = {l_idx, l_flat};
    for (int f = 0; f < 2; f++) {
        if (run(g, forms[f]) != NB_OK)
            continue;
        CHECK_NEAR(value_of(forms[f]), want, tol);
        for (int i = 0; i < N; i++) {
            double q = exp(logp[i]);
            CHECK_NEAR(grad_at(z, i), hot_grad[i], tol);
            CHECK_NEAR(grad_at(z, i), (q - one_hot[i]) / (B * T), tol);
        }
    }
    for (int r = 0; r < B * T; r++)
        CHECK(grad_at(lab_flat, r) == 0, "label gradient %g at %d",
              grad_at(lab_flat, r), r);
    if (run(g, l_nll) == NB_OK) {
        CHECK_NEAR(value_of(l_nll), want, tol);
        for (int i = 0; i < N; i++)
            CHECK_NEAR(grad_at(lp, i), -one_hot[i] / (B * T), tol);
    }
    nb_graph_free(g);
}

static void test_nll(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *logp = param_of(g, dt, 2, SHAPE(2, 3)), *lab = const_of(g, dt, 1, SHAPE(2));
    SET(logp, -1, -2, -0.5, -0.1, -3, -2);
    SET(lab, 2, 0);
    nb_node *loss = nb_nll_loss(g, logp, lab);
    if (loss && run(g, loss) == NB_OK) {
        CHECK_NEAR(value_of(loss), (0.5 + 0.1) / 2, tol);
        const double want[] = {0, 0, -0.5, -0.5, 0, 0};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(grad_at(logp, i), want[i], tol);
    }
    /* A rank-1 row takes a rank-0 label. */
    nb_node *row = param_of(g, dt, 1, SHAPE(3)), *one = const_of(g, dt, 0, NULL);
    SET(row, -1, -2, -0.5);
    SET(one, 1);
    nb_node *single = nb_nll_loss(g, row, one);
    if (single && run(g, single) == NB_OK) {
        CHECK_NEAR(value_of(single), 2, tol);
        CHECK_NEAR(grad_at(row, 1), -1, tol);
    }
    nb_graph_free(g);
}

/* ---- penalties ---- */

static void test_penalties(nb_dtype dt, double tol)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = param_of(g, dt, 2, SHAPE(1, 3));
    SET(w, -2, 0, 3);
    nb_node *l1 = nb_l1_penalty(g, w), *l2 = nb_l2_penalty(g, w);
    if (l1 && run(g, l1) == NB_OK) {
        CHECK_NEAR(value_of(l1), 5, tol);
        CHECK_NEAR(grad_at(w, 0), -1, tol);
        CHECK_NEAR(grad_at(w, 1), 0, tol); /* |w|' at 0 is 0 */
        CHECK_NEAR(grad_at(w, 2), 1, tol);
    }
    if (l2 && run(g, l2) == NB_OK) {
        CHECK_NEAR(value_of(l2), 0.5 * (4 + 0 + 9), tol);
        CHECK_NEAR(grad_at(w, 0), -2, tol);
        CHECK_NEAR(grad_at(w, 1), 0, tol);
        CHECK_NEAR(grad_at(w, 2), 3, tol);
    }
    nb_graph_free(g);
}

/* ---- dropout ---- */

static void dropout_stats(nb_dtype dt, double p)
{
    enum { N = 100000 };
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 2, SHAPE(100, N / 100));
    nb_tensor_fill(nb_node_value(x), 1.0);
    nb_node *y = nb_dropout(g, x, p);
    CHECK(y != NULL, "%s", nb_graph_error(g));
    if (!y) {
        nb_graph_free(g);
        return;
    }
    nb_graph_seed(g, 42);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    const nb_tensor *v = nb_node_value(y);
    int64_t kept = 0, bad = 0;
    double scale = 1.0 / (1.0 - p);
    for (int64_t i = 0; i < N; i++) {
        double e = nb_tensor_get(v, i);
        if (e != 0) {
            kept++;
            if (fabs(e - scale) > 1e-6 * scale)
                bad++;
        }
    }
    /* Binomial(N, 1-p): the standard deviation of the kept fraction is
     * under 0.0016, so 0.01 is six deviations. */
    CHECK(fabs((double)kept / N - (1 - p)) < 0.01, "p = %g: kept %lld of %d",
          p, (long long)kept, N);
    CHECK(bad == 0, "%lld kept values are not 1/(1-p) = %g", (long long)bad,
          scale);

    /* Backward multiplies by the same mask: with x = 1 the mask is y. */
    nb_tensor *seed = nb_tensor_new(dt, 2, SHAPE(100, N / 100));
    nb_tensor_fill(seed, 3.0);
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
    int64_t mismatched = 0;
    for (int64_t i = 0; i < N; i++)
        if (grad_at(x, i) != 3.0 * nb_tensor_get(v, i))
            mismatched++;
    CHECK(mismatched == 0, "%lld gradients differ from dy * mask",
          (long long)mismatched);

    /* The same seed draws the same mask; another seed another one. */
    double *first = malloc(N * sizeof *first);
    for (int64_t i = 0; i < N; i++)
        first[i] = nb_tensor_get(v, i);
    nb_graph_seed(g, 42);
    nb_forward(g, y);
    int64_t differ = 0;
    for (int64_t i = 0; i < N; i++)
        differ += nb_tensor_get(v, i) != first[i];
    CHECK(differ == 0, "same seed, %lld elements differ", (long long)differ);
    nb_graph_seed(g, 7);
    nb_forward(g, y);
    differ = 0;
    for (int64_t i = 0; i < N; i++)
        differ += nb_tensor_get(v, i) != first[i];
    CHECK(differ > 0, "another seed drew the same mask");
    free(first);
    nb_tensor_free(seed);
    nb_graph_free(g);
}

static void test_dropout_modes(nb_dtype dt)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = param_of(g, dt, 1, SHAPE(6));
    SET(x, 1.5, -2, 0.25, 4, -0.5, 3);
    nb_node *y = nb_dropout(g, x, 0.5);
    nb_node *y0 = nb_dropout(g, x, 0.0);
    CHECK(y && y0, "%s", nb_graph_error(g));
    if (!y || !y0) {
        nb_graph_free(g);
        return;
    }
    nb_tensor *seed = nb_tensor_new(dt, 1, SHAPE(6));
    const double sv[] = {1, 2, 3, 4, 5, 6};
    nb_tensor_copy_from_f64(seed, sv, 6);

    /* Inference: identity forward and backward, whatever p. */
    nb_graph_set_training(g, false);
    CHECK(!nb_graph_training(g), "training flag did not clear");
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
    for (int i = 0; i < 6; i++) {
        CHECK(nb_tensor_get(nb_node_value(y), i) ==
                  nb_tensor_get(nb_node_value(x), i),
              "inference y[%d] = %g", i, nb_tensor_get(nb_node_value(y), i));
        CHECK(grad_at(x, i) == sv[i], "inference dx[%d] = %g", i, grad_at(x, i));
    }

    /* p = 0 in training: identity, and no random number is drawn. */
    nb_graph_set_training(g, true);
    uint64_t before[4], after[4];
    nb_rng_get_state(g, before);
    CHECK(nb_forward(g, y0) == NB_OK, "%s", nb_graph_error(g));
    nb_rng_get_state(g, after);
    CHECK(memcmp(before, after, sizeof before) == 0, "p = 0 drew numbers");
    for (int i = 0; i < 6; i++)
        CHECK(nb_tensor_get(nb_node_value(y0), i) ==
                  nb_tensor_get(nb_node_value(x), i),
              "p = 0: y[%d] = %g", i, nb_tensor_get(nb_node_value(y0), i));

    /* Backward follows the mask forward drew, even if the flag changes in
     * between. */
    nb_graph_seed(g, 3);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    nb_graph_set_training(g, false);
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
    for (int i = 0; i < 6; i++) {
        double xi = nb_tensor_get(nb_node_value(x), i);
        double yi = nb_tensor_get(nb_node_value(y), i);
        double mask = yi / xi;
        CHECK(mask == 0 || mask == 2, "mask %g at %d", mask, i);
        CHECK(grad_at(x, i) == sv[i] * mask, "dx[%d] = %g, mask %g", i,
              grad_at(x, i), mask);
    }
    nb_tensor_free(seed);
    nb_graph_free(g);
}

/* ---- bad input ---- */

/* After an error the graph still builds and runs a loss. */
static void check_usable(nb_graph *g)
{
    nb_node *a = nb_param(g, NULL, NB_F64, 1, SHAPE(2));
    nb_node *b = nb_constant(g, NULL, NB_F64, 1, SHAPE(2));
    SET(a, 1, 2);
    SET(b, 0, 4);
    nb_node *l = nb_sse_loss(g, a, b);
    CHECK(l != NULL && nb_forward(g, l) == NB_OK && value_of(l) == 2.5,
          "graph unusable after an error: %s", nb_graph_error(g));
    CHECK(nb_graph_status(g) == NB_OK, "stale error: %s", nb_graph_error(g));
}

static void test_bad_shapes(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *a23 = param_of(g, NB_F64, 2, SHAPE(2, 3));
    nb_node *a32 = param_of(g, NB_F64, 2, SHAPE(3, 2));
    nb_node *a24 = param_of(g, NB_F64, 2, SHAPE(2, 4));
    nb_node *f23 = param_of(g, NB_F32, 2, SHAPE(2, 3));
    nb_node *s = param_of(g, NB_F64, 0, NULL);
    nb_node *empty = param_of(g, NB_F64, 2, SHAPE(0, 3));
    int64_t nodes = nb_graph_node_count(g);

    CHECK(nb_sse_loss(g, a23, a32) == NULL, "sse accepted [2,3] vs [3,2]");
    CHECK_ERROR(g, "sse_loss", "[2,3]", "[3,2]");
    CHECK(nb_graph_node_count(g) == nodes, "a rejected op left a node");
    CHECK(nb_mse_loss(g, a23, f23) == NULL, "mse accepted f64 with f32");
    CHECK_ERROR(g, "mse_loss", "f32", "f64");
    CHECK(nb_mse_loss(g, empty, empty) == NULL, "mse of no elements");
    CHECK_ERROR(g, "mse_loss", "[0,3]");
    CHECK(nb_bce_loss(g, a23, a24) == NULL, "bce accepted a shape mismatch");
    CHECK_ERROR(g, "bce_loss", "[2,3]", "[2,4]");
    CHECK(nb_bce_logits_loss(g, a32, a23) == NULL, "bce_logits mismatch");
    CHECK_ERROR(g, "bce_logits_loss", "[3,2]", "[2,3]");
    CHECK(nb_cce_loss(g, a23, a24) == NULL, "cce accepted a shape mismatch");
    CHECK_ERROR(g, "cce_loss", "[2,3]", "[2,4]");
    CHECK(nb_cce_loss(g, s, s) == NULL, "cce accepted a scalar");
    CHECK_ERROR(g, "cce_loss", "class axis");
    CHECK(nb_softmax_ce_loss(g, a24, a23) == NULL, "softmax_ce mismatch");
    CHECK_ERROR(g, "softmax_ce_loss", "[2,4]", "[2,3]");
    CHECK(nb_softmax_ce_loss(g, a23, f23) == NULL, "softmax_ce dtype");
    CHECK_ERROR(g, "softmax_ce_loss", "f32");
    CHECK(nb_softmax_ce_loss(g, empty, empty) == NULL, "softmax_ce empty");
    CHECK_ERROR(g, "softmax_ce_loss", "[0,3]");

    /* Labels: one per row, [2] or (for [2,4]) [2]; [3] is neither. */
    nb_node *lab3 = const_of(g, NB_F64, 1, SHAPE(3));
    nb_node *lab21 = const_of(g, NB_F64, 2, SHAPE(2, 1));
    nb_node *lab_f32 = const_of(g, NB_F32, 1, SHAPE(2));
    CHECK(nb_softmax_ce_index_loss(g, a24, lab3) == NULL, "labels [3]");
    {
        /* For 2-D logits the two accepted shapes are one: named once. */
        const char *m = nb_graph_error(g);
        CHECK(m && strstr(m, "shaped [2]") && !strstr(m, " or "),
              "message '%s'", m ? m : "");
    }
    CHECK_ERROR(g, "softmax_ce_index_loss", "labels are [3]", "[2,4]");
    nb_node *a234 = param_of(g, NB_F64, 3, SHAPE(2, 3, 4));
    CHECK(nb_softmax_ce_index_loss(g, a234, lab3) == NULL, "labels [3]");
    CHECK_ERROR(g, "softmax_ce_index_loss", "shaped [2,3] or [6]");
    CHECK(nb_softmax_ce_index_loss(g, a24, lab21) == NULL, "labels [2,1]");
    CHECK_ERROR(g, "softmax_ce_index_loss", "[2,1]");
    CHECK(nb_nll_loss(g, a23, lab3) == NULL, "nll labels [3]");
    CHECK_ERROR(g, "nll_loss", "labels are [3]", "[2,3]");
    CHECK(nb_nll_loss(g, a23, lab_f32) == NULL, "nll f32 labels");
    CHECK_ERROR(g, "nll_loss", "f32", "f64");
    CHECK(nb_nll_loss(g, s, lab3) == NULL, "nll on a scalar");
    CHECK_ERROR(g, "nll_loss", "class axis");

    CHECK(nb_dropout(g, a23, 1.0) == NULL, "dropout accepted p = 1");
    CHECK_ERROR(g, "dropout", "p = 1", "[0, 1)");
    CHECK(nb_dropout(g, a23, -0.1) == NULL, "dropout accepted p = -0.1");
    CHECK_ERROR(g, "dropout", "p = -0.1", "[0, 1)");
    CHECK(nb_dropout(g, a23, NAN) == NULL, "dropout accepted p = NaN");
    CHECK_ERROR(g, "dropout", "[0, 1)");

    /* A NULL input from an earlier failure passes through silently. */
    CHECK(nb_l2_penalty(g, nb_dropout(g, a23, 2.0)) == NULL, "chain");
    CHECK_ERROR(g, "dropout", "p = 2");
    check_usable(g);
    nb_graph_free(g);
}

/* Labels are checked when the loss runs: out of range, negative,
 * fractional and NaN labels fail forward with the row they sit in. */
static void test_bad_labels(nb_dtype dt)
{
    nb_graph *g = nb_graph_new();
    nb_node *z = param_of(g, dt, 2, SHAPE(2, 4));
    SET(z, 1, 2, 3, 4, 4, 3, 2, 1);
    nb_node *lab = nb_input(g, "labels", dt, 1, SHAPE(2));
    nb_node *idx = nb_softmax_ce_index_loss(g, z, lab);
    nb_node *nll = nb_nll_loss(g, z, lab);
    CHECK(idx && nll, "%s", nb_graph_error(g));
    if (!idx || !nll) {
        nb_graph_free(g);
        return;
    }
    struct {
        double labels[2];
        const char *fragment;
    } bad[] = {
        {{0, 4}, "label 4 at row 1"},
        {{-1, 2}, "label -1 at row 0"},
        {{1.5, 2}, "label 1.5 at row 0"},
        {{2, NAN}, "label nan at row 1"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        feed_values(g, lab, 1, SHAPE(2), 2, bad[b].labels);
        CHECK(nb_forward(g, idx) == NB_ERR_ARG, "softmax_ce_index took %s",
              bad[b].fragment);
        CHECK_ERROR(g, "softmax_ce_index_loss", bad[b].fragment, "[0, 4)");
        CHECK(nb_forward(g, nll) == NB_ERR_ARG, "nll took %s", bad[b].fragment);
        CHECK_ERROR(g, "nll_loss", bad[b].fragment, "[0, 4)");
    }
    /* Good labels again: both run. */
    feed_values(g, lab, 1, SHAPE(2), 2, (double[]){3, 0});
    if (run(g, idx) == NB_OK) {
        double lse = log(exp(1) + exp(2) + exp(3) + exp(4));
        CHECK_NEAR(value_of(idx), lse - 4, dt == NB_F64 ? 1e-12 : 1e-5);
    }
    if (run(g, nll) == NB_OK)
        CHECK_NEAR(value_of(nll), -(4 + 4) / 2.0, 1e-6);
    /* Backward after a forward that failed on a bad label must not index
     * with that label. */
    feed_values(g, lab, 1, SHAPE(2), 2, (double[]){0, 4});
    CHECK(nb_forward(g, idx) != NB_OK, "bad label accepted");
    nb_graph_clear_error(g);
    CHECK(nb_backward(g, idx) != NB_OK, "backward ran on a bad label");
    nb_graph_clear_error(g);
    check_usable(g);
    nb_graph_free(g);
}

int main(void)
{
    const nb_dtype dtypes[] = {NB_F64, NB_F32};
    const double tols[] = {1e-12, 2e-5};
    for (int d = 0; d < 2; d++) {
        test_squared(dtypes[d], tols[d]);
        test_bce(dtypes[d], tols[d]);
        test_bce_logits(dtypes[d], tols[d]);
        test_cce(dtypes[d], tols[d]);
        test_softmax_ce(dtypes[d], tols[d]);
        test_index_forms(dtypes[d], tols[d]);
        test_nll(dtypes[d], tols[d]);
        test_penalties(dtypes[d], tols[d]);
        test_dropout_modes(dtypes[d]);
        test_bad_labels(dtypes[d]);
    }
    dropout_stats(NB_F64, 0.5);
    dropout_stats(NB_F32, 0.5);
    dropout_stats(NB_F64, 0.2);
    test_bad_shapes();
    return tu_finish("ops_loss");
}
