/* Whole graphs with hand-derived gradients: the regularised logistic unit
 * where w fans out, a parameter shared by two layers, and reuse across
 * feeds. */
#include "test_util.h"

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* z = w x + b, y = sigmoid(z), L = 1/2 (y - t)^2, R = 1/2 w^2,
 * L_reg = L + lambda R. w feeds both z and R, so backward must sum two
 * messages into it: dL_reg/dw = (y - t) y (1 - y) x + lambda w. */
static void test_regularised_logistic(nb_dtype dtype, double tol)
{
    const double xv = 1.5, wv = -0.8, bv = 0.3, tv = 1.0, lambda = 0.1;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", dtype, 0, NULL);
    nb_node *t = nb_input(g, "t", dtype, 0, NULL);
    nb_node *w = nb_param(g, "w", dtype, 0, NULL);
    nb_node *b = nb_param(g, "b", dtype, 0, NULL);
    SET(w, wv);
    SET(b, bv);
    nb_node *z = nb_add(g, nb_mul(g, w, x), b);
    nb_node *y = nb_sigmoid(g, z);
    nb_node *L = nb_sse_loss(g, y, t);
    nb_node *R = nb_l2_penalty(g, w);
    nb_node *Lreg = nb_add(g, L, nb_scale(g, R, lambda));
    CHECK(Lreg != NULL, "build: %s", nb_graph_error(g));
    if (!Lreg) {
        nb_graph_free(g);
        return;
    }
    if (dtype == NB_F64) {
        nb_feed(g, x, 0, NULL, (double[]){xv});
        nb_feed(g, t, 0, NULL, (double[]){tv});
    } else {
        nb_feed(g, x, 0, NULL, (float[]){(float)xv});
        nb_feed(g, t, 0, NULL, (float[]){(float)tv});
    }
    CHECK(nb_forward(g, Lreg) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward(g, Lreg) == NB_OK, "%s", nb_graph_error(g));

    double yv = sigmoid(wv * xv + bv);
    double delta = (yv - tv) * yv * (1 - yv); /* dL/dz */
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 0), yv, tol);
    CHECK_NEAR(nb_tensor_get(nb_node_value(Lreg), 0),
               0.5 * (yv - tv) * (yv - tv) + lambda * 0.5 * wv * wv, tol);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w), 0), delta * xv + lambda * wv, tol);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(b), 0), delta, tol);
    /* The two messages w receives, one per consumer. */
    CHECK_NEAR(nb_tensor_get(nb_node_grad(z), 0), delta, tol);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(R), 0), lambda, tol);
    if (dtype == NB_F64) {
        nb_gradcheck_result r;
        CHECK(nb_gradcheck(g, Lreg, NULL, &r) == NB_OK && r.passed, "%s",
              r.message);
    }
    nb_graph_free(g);
}

/* One W used by two layers: h1 = tanh(x W), h2 = tanh(h1 W), L = sum h2.
 * W's gradient is the sum of both layers' messages; the check proves it. */
static void test_shared_parameter(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 3);
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(5, 4));
    nb_node *W = nb_param(g, "W", NB_F64, 2, SHAPE(4, 4));
    for (int i = 0; i < 16; i++)
        nb_tensor_set(nb_node_value(W), i, 0.5 * nb_rng_normal(g));
    double xs[20];
    for (int i = 0; i < 20; i++)
        xs[i] = nb_rng_normal(g);
    nb_feed(g, x, 2, SHAPE(5, 4), xs);
    nb_node *h2 = nb_tanh(g, nb_matmul(g, nb_tanh(g, nb_matmul(g, x, W)), W));
    nb_node *L = nb_sum(g, h2);
    CHECK(L != NULL, "build: %s", nb_graph_error(g));
    nb_gradcheck_result r;
    CHECK(L && nb_gradcheck(g, L, NULL, &r) == NB_OK && r.passed, "%s",
          L ? r.message : "");
    nb_graph_free(g);
}

/* The zero-gradient trap: a backward that does nothing must fail the
 * check, not pass it. */
static int lazy_infer(nb_op_call *c)
{
    c->out_dtype = nb_tensor_dtype(c->in[0]);
    c->out_rank = nb_tensor_rank(c->in[0]);
    memcpy(c->out_shape, nb_tensor_shape(c->in[0]), sizeof c->out_shape);
    return 0;
}
static int lazy_forward(nb_op_call *c)
{
    for (int64_t i = 0; i < nb_tensor_size(c->out); i++)
        nb_tensor_set(c->out, i, 3 * nb_tensor_get(c->in[0], i));
    return 0;
}
static int lazy_backward(nb_op_call *c)
{
    (void)c; /* forgets to send any message */
    return 0;
}
static const nb_op lazy_op = {"lazy_triple", 1, 1, 0, "y = 3x; (broken)",
                              lazy_infer, lazy_forward, lazy_backward};

static void test_gradcheck_catches_silent_backward(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(3));
    SET(w, 1, 2, 3);
    nb_node *x = nb_apply(g, &lazy_op, 1, &w, NULL);
    nb_node *L = nb_sum(g, x);
    nb_gradcheck_result r;
    CHECK(L && nb_gradcheck(g, L, NULL, &r) == NB_OK, "ran: %s",
          nb_graph_error(g));
    CHECK(L && !r.passed, "a silent backward must fail the check");
    CHECK(L && r.zero_gradient == w, "and be reported as all-zero");
    nb_graph_free(g);
}

/* Checking mode names the first node, in forward order, that is not
 * finite: where the NaN starts, not where it ends up. */
static void test_checking_mode(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(3));
    SET(w, 1.0, -2.0, 3.0);
    nb_node *bad = nb_log(g, w);
    nb_node_set_name(bad, "log_w");
    nb_node *L = nb_sum(g, nb_exp(g, nb_mul(g, bad, w)));
    CHECK(nb_forward(g, L) == NB_OK, "unchecked forward runs on: %s",
          nb_graph_error(g));
    nb_graph_set_checking(g, true);
    CHECK(nb_forward(g, L) == NB_ERR_NONFINITE, "checked forward stops");
    CHECK_ERROR(g, "'log_w'", "op log", "'w'", "value");
    /* Fixed input: the check passes, and backward is checked too. */
    SET(w, 1.0, 2.0, 3.0);
    CHECK(nb_forward(g, L) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward(g, L) == NB_OK, "%s", nb_graph_error(g));
    nb_graph_free(g);
}

/* The graph's 32-bit epoch counters wrap around: every stamp of the kind
 * that wrapped is forgotten, so a stamp taken long ago cannot match the
 * restarted counter. The counters are set near the limit through the
 * internal header (no hook in the library). Each case arranges that, had
 * the stamps not been reset, a stale stamp would equal the counter again. */
#include "core/internal.h"

static void test_epoch_wrap(void)
{
    const double xs[4] = {0.5, -1.0, 2.0, 0.25};
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(1));
    nb_node *c = nb_param(g, "c", NB_F64, 0, NULL);
    SET(w, 3.0);
    SET(c, 2.0);
    CHECK(nb_feed(g, x, 1, SHAPE(2), xs) == NB_OK, "%s", nb_graph_error(g));
    nb_node *y = nb_tanh(g, x);
    nb_node *L = nb_sum(g, nb_mul(g, y, w)); /* dL/dw = sum tanh(x) */
    nb_node *L2 = nb_mul(g, c, c);           /* w is not on its path */
    CHECK(L && L2, "built: %s", nb_graph_error(g));
    if (!L || !L2) {
        nb_graph_free(g);
        return;
    }
    uint32_t y_shape = y->shape_epoch;

    /* Shape epoch: y was inferred for the batch of 2 at y_shape. */
    g->shape_epoch = UINT32_MAX;
    CHECK(nb_feed(g, x, 1, SHAPE(3), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(g->shape_epoch == 1, "the counter restarted (%u)", g->shape_epoch);
    while (g->shape_epoch + 1 < y_shape)
        g->shape_epoch++;
    CHECK(nb_feed(g, x, 1, SHAPE(4), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(g->shape_epoch == y_shape && y->shape_epoch != y_shape,
          "the stale stamp %u was reset (now %u)", y_shape, y->shape_epoch);
    CHECK(nb_forward(g, L) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_size(nb_node_value(y)) == 4, "y re-inferred for 4 rows, "
          "has %lld", (long long)nb_tensor_size(nb_node_value(y)));
    CHECK(nb_backward(g, L) == NB_OK, "%s", nb_graph_error(g));
    double want = tanh(0.5) + tanh(-1.0) + tanh(2.0) + tanh(0.25);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w), 0), want, 1e-12);

    /* Value epoch: y was evaluated at stamp v; after a wrap and as many
     * feeds as bring the counter back to v, backward must still ask for a
     * forward. */
    uint32_t v = L->evaluated;
    g->value_epoch = UINT32_MAX;
    CHECK(nb_feed(g, x, 1, SHAPE(4), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(g->value_epoch == 1, "the counter restarted (%u)", g->value_epoch);
    while (g->value_epoch < v)
        CHECK(nb_feed(g, x, 1, SHAPE(4), xs) == NB_OK, "%s",
              nb_graph_error(g));
    CHECK(g->value_epoch == v, "the counter is back at %u", v);
    CHECK(nb_backward(g, L) == NB_ERR_STATE,
          "a value from before the wrap is not current");
    nb_graph_clear_error(g);

    /* Grad epoch: w holds the gradient of stamp e; backwards of L2 (w off
     * its path) wrap the counter and bring it back to e. */
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    uint32_t e = w->grad_epoch;
    CHECK(nb_node_grad(w) != NULL, "w has a gradient");
    CHECK(nb_forward(g, L2) == NB_OK, "%s", nb_graph_error(g));
    g->grad_epoch = UINT32_MAX;
    CHECK(nb_backward(g, L2) == NB_OK, "%s", nb_graph_error(g));
    CHECK(g->grad_epoch == 1, "the counter restarted (%u)", g->grad_epoch);
    while (g->grad_epoch < e)
        CHECK(nb_backward(g, L2) == NB_OK, "%s", nb_graph_error(g));
    CHECK(g->grad_epoch == e, "the counter is back at %u", e);
    CHECK(nb_node_grad(w) == NULL,
          "a gradient from before the wrap is not the latest backward's");
    CHECK_NEAR(nb_tensor_get(nb_node_grad(c), 0), 4.0, 1e-12);
    nb_graph_free(g);
}

int main(void)
{
    test_checking_mode();
    test_regularised_logistic(NB_F64, 1e-14);
    test_regularised_logistic(NB_F32, 1e-6);
    test_shared_parameter();
    test_gradcheck_catches_silent_backward();
    test_epoch_wrap();
    return tu_finish("graph");
}
