/* Whole graphs with hand-derived gradients: the regularised logistic unit
 * where w fans out, a parameter shared by two layers, and reuse across
 * feeds; and how nodes are stored (inputs, names, blocks, failed
 * constructors, the cached order). */
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
    /* Doubles feed either dtype. */
    nb_feed_f64(g, x, 0, NULL, &xv);
    nb_feed_f64(g, t, 0, NULL, &tv);
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
static const nb_op lazy_op = {
    .struct_size = sizeof(nb_op),
    .name = "lazy_triple",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = 0,
    .doc = "y = 3x; (broken)",
    .infer = lazy_infer,
    .forward = lazy_forward,
    .backward = lazy_backward,
};

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

/* y = 2 x for a custom op that honours NB_OP_FRESH_GRADS: it writes a
 * fresh gradient, adds to any other, and counts the fresh ones it saw. */
static int fresh_seen;
static int double_forward(nb_op_call *c)
{
    for (int64_t i = 0; i < nb_tensor_size(c->out); i++)
        nb_tensor_set(c->out, i, 2 * nb_tensor_get(c->in[0], i));
    return 0;
}
static int double_backward(nb_op_call *c)
{
    nb_tensor *dx = c->in_grad[0];
    if (!dx)
        return 0;
    bool fresh = c->in_grad_fresh && c->in_grad_fresh[0];
    fresh_seen += fresh;
    for (int64_t i = 0; i < nb_tensor_size(dx); i++) {
        double m = 2 * nb_tensor_get(c->out_grad, i);
        nb_tensor_set(dx, i, fresh ? m : nb_tensor_get(dx, i) + m);
    }
    return 0;
}
static const nb_op double_op = {
    .struct_size = sizeof(nb_op),
    .name = "double",
    .min_inputs = 1,
    .max_inputs = 1,
    .doc = "y = 2 x; dx = 2 dy",
    .infer = lazy_infer,
    .forward = double_forward,
    .backward = double_backward,
    .flags = NB_OP_FRESH_GRADS,
};

/* Two inputs of any dtypes; y has input 0's shape, y = x0. */
static int first_forward(nb_op_call *c)
{
    for (int64_t i = 0; i < nb_tensor_size(c->out); i++)
        nb_tensor_set(c->out, i, nb_tensor_get(c->in[0], i));
    return 0;
}

/* The op table's contract: struct_size is checked (0 and a table from a
 * newer header are refused, a shorter one from an older header runs with
 * its missing fields read as zeros), inputs of mixed dtypes are refused
 * unless the op says it takes them, and the fresh-gradient capability is
 * a flag a custom op can set. */
static int no_forward(nb_op_call *c)
{
    (void)c;
    return 0;
}
/* One element more than the input: no view can hold it. */
static int longer_infer(nb_op_call *c)
{
    c->out_dtype = nb_tensor_dtype(c->in[0]);
    c->out_rank = 1;
    c->out_shape[0] = nb_tensor_size(c->in[0]) + 1;
    return 0;
}

static void test_op_table_contract(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(3));
    nb_node *w32 = nb_param(g, "w32", NB_F32, 1, SHAPE(3));
    SET(w, 1, 2, 3);
    SET(w32, 1, 2, 3);

    nb_op op = double_op;
    op.struct_size = 0;
    CHECK(nb_apply(g, &op, 1, &w, NULL) == NULL, "struct_size 0 refused");
    CHECK_ERROR(g, "double", "struct_size is 0", "sizeof(nb_op)");
    op.struct_size = sizeof(nb_op) + 8;
    CHECK(nb_apply(g, &op, 1, &w, NULL) == NULL, "a newer table refused");
    CHECK_ERROR(g, "double", "newer");

    /* An older table: ends before flags, so the fresh flag reads as 0
     * even though the caller's copy holds it. */
    op.struct_size = NB_OP_MIN_SIZE;
    nb_node *y_old = nb_apply(g, &op, 1, &w, NULL);
    CHECK(y_old != NULL, "a table of NB_OP_MIN_SIZE works: %s",
          nb_graph_error(g));
    nb_node *L = nb_sum(g, y_old);
    fresh_seen = 0;
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(fresh_seen == 0, "flags past struct_size read as 0 (saw %d)",
          fresh_seen);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w), 1), 2, 0);

    /* The current table: its one message into w's gradient is fresh. */
    nb_node *y = nb_apply(g, &double_op, 1, &w, NULL);
    L = nb_sum(g, y);
    fresh_seen = 0;
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(fresh_seen == 1, "the custom op was told the gradient is fresh");
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(nb_tensor_get(nb_node_grad(w), i), 2, 0);
    /* Used twice by the sum of two branches: the second message adds. */
    nb_node *L2 = nb_sum(g, nb_add(g, nb_apply(g, &double_op, 1, &w, NULL),
                                   nb_apply(g, &double_op, 1, &w, NULL)));
    CHECK(nb_forward(g, L2) == NB_OK && nb_backward(g, L2) == NB_OK, "%s",
          nb_graph_error(g));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(nb_tensor_get(nb_node_grad(w), i), 4, 0);

    /* Mixed dtypes: refused by default, accepted with the flag. */
    nb_op pair = {
        .struct_size = sizeof(nb_op),
        .name = "pair",
        .min_inputs = 2,
        .max_inputs = 2,
        .doc = "y = x0; nothing",
        .infer = lazy_infer,
        .forward = first_forward,
    };
    nb_node *mixed = nb_apply(g, &pair, 2, (nb_node *[]){w, w32}, NULL);
    CHECK(mixed == NULL, "mixed dtypes refused by default");
    CHECK_ERROR(g, "pair", "input 1 ('w32') is f32 [3]", "f64",
                "NB_OP_MIXED_DTYPES");
    pair.flags = NB_OP_MIXED_DTYPES;
    mixed = nb_apply(g, &pair, 2, (nb_node *[]){w, w32}, NULL);
    CHECK(mixed != NULL, "accepted with NB_OP_MIXED_DTYPES: %s",
          nb_graph_error(g));

    /* A view: its value is its input's buffer, so the shape rule must keep
     * the element count and dtype, and there must be an input to view. */
    nb_op view = pair; /* y = x under x's own shape */
    view.name = "same_view";
    view.min_inputs = 0;
    view.max_inputs = 1;
    view.forward = no_forward;
    view.flags = NB_OP_VIEW;
    CHECK(nb_apply(g, &view, 0, NULL, NULL) == NULL, "a view of nothing");
    CHECK_ERROR(g, "same_view", "needs an input");
    nb_node *seen = nb_apply(g, &view, 1, &w, NULL);
    CHECK(seen && nb_forward(g, seen) == NB_OK, "a custom view: %s",
          nb_graph_error(g));
    CHECK(seen && nb_tensor_data(nb_node_value(seen)) ==
                      nb_tensor_data(nb_node_value(w)),
          "the view's value is its input's buffer");
    CHECK_NEAR(nb_tensor_get(nb_node_value(seen), 2), 3, 0);
    view.name = "longer_view";
    view.infer = longer_infer;
    CHECK(nb_apply(g, &view, 1, &w, NULL) == NULL, "a view that grows");
    CHECK_ERROR(g, "longer_view", "NB_OP_VIEW", "'w' is f64 [3]", "f64 [4]");
    nb_node *after = nb_sum(g, w);
    CHECK(after && nb_forward(g, after) == NB_OK &&
              nb_tensor_get(nb_node_value(after), 0) == 6,
          "the graph still runs after the refused view: %s",
          nb_graph_error(g));
    nb_graph_free(g);
}

/* A custom broadcasting product written with the public helpers of op.h:
 * y = a * b, da = sum over a's broadcast axes of dy * b, likewise db. */
static int bmul_infer(nb_op_call *c)
{
    return nb_op_broadcast_shape(c, 0, 1);
}
static int bmul_forward(nb_op_call *c)
{
    int64_t n = nb_tensor_size(c->out);
    NB_TYPED(nb_tensor_dtype(c->out), {
        const T *a = nb_tensor_cview(c->in[0]), *b = nb_tensor_cview(c->in[1]);
        T *y = nb_tensor_view(c->out);
        for (int64_t i = 0; i < n; i++)
            y[i] = a[nb_broadcast_index(c->in[0], c->out, i)] *
                   b[nb_broadcast_index(c->in[1], c->out, i)];
    });
    return 0;
}
static int bmul_backward(nb_op_call *c)
{
    int64_t n = nb_tensor_size(c->out);
    nb_tensor *msg = nb_tensor_new(nb_tensor_dtype(c->out),
                                   nb_tensor_rank(c->out),
                                   nb_tensor_shape(c->out));
    if (!msg)
        return nb_op_fail(c, "out of memory");
    for (int side = 0; side < 2; side++) {
        if (!c->in_grad[side])
            continue;
        const nb_tensor *other = c->in[1 - side];
        NB_TYPED(nb_tensor_dtype(c->out), {
            const T *o = nb_tensor_cview(other), *dy = nb_tensor_cview(c->out_grad);
            T *m = nb_tensor_view(msg);
            for (int64_t i = 0; i < n; i++)
                m[i] = dy[i] * o[nb_broadcast_index(other, c->out, i)];
        });
        nb_reduce_broadcast_add(msg, c->in_grad[side]);
    }
    nb_tensor_free(msg);
    return 0;
}
static const nb_op bmul_op = {
    .struct_size = sizeof(nb_op),
    .name = "bmul",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "y = a * b (broadcast); da = dy * b, db = dy * a (summed back)",
    .infer = bmul_infer,
    .forward = bmul_forward,
    .backward = bmul_backward,
};

/* The helpers give a custom op the built-in one's values and gradients,
 * in both dtypes, with a row, a column and a scalar broadcast. */
static void test_op_helpers(void)
{
    const int64_t shapes[4][3] = {{2, 3, 4}, {4, 0, 0}, {3, 1, 0}, {0, 0, 0}};
    const int ranks[4] = {3, 1, 2, 0};
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype dtype = dt ? NB_F64 : NB_F32;
        for (int k = 1; k < 4; k++) {
            nb_graph *g = nb_graph_new();
            nb_node *a = nb_param(g, "a", dtype, 3, shapes[0]);
            nb_node *b = nb_param(g, "b", dtype, ranks[k], shapes[k]);
            for (int64_t i = 0; i < 24; i++)
                nb_tensor_set(nb_node_value(a), i, 0.1 * (double)i - 1);
            for (int64_t i = 0; i < nb_tensor_size(nb_node_value(b)); i++)
                nb_tensor_set(nb_node_value(b), i, 0.5 + 0.25 * (double)i);
            nb_node *mine = nb_apply(g, &bmul_op, 2, (nb_node *[]){b, a}, NULL);
            nb_node *theirs = nb_mul(g, b, a);
            CHECK(mine && theirs, "%s", nb_graph_error(g));
            if (!mine || !theirs) {
                nb_graph_free(g);
                continue;
            }
            nb_forward(g, mine);
            nb_forward(g, theirs);
            for (int64_t i = 0; i < 24; i++)
                CHECK(nb_tensor_get(nb_node_value(mine), i) ==
                          nb_tensor_get(nb_node_value(theirs), i),
                      "value %lld", (long long)i);
            if (dtype == NB_F64) {
                nb_gradcheck_result r;
                nb_node *L = nb_sum(g, nb_square(g, mine));
                CHECK(nb_gradcheck(g, L, NULL, &r) == NB_OK && r.passed,
                      "custom broadcast product, case %d: %s", k, r.message);
            }
            nb_graph_free(g);
        }
    }
    /* A shape that does not broadcast: the message names both. */
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F32, 1, SHAPE(3));
    nb_node *b = nb_param(g, "b", NB_F32, 1, SHAPE(4));
    CHECK(nb_apply(g, &bmul_op, 2, (nb_node *[]){a, b}, NULL) == NULL, "3 x 4");
    CHECK_ERROR(g, "bmul", "[3]", "[4]");
    nb_tensor *g4 = nb_tensor_new(NB_F32, 1, SHAPE(4));
    nb_tensor *acc = nb_tensor_new(NB_F32, 1, SHAPE(3));
    CHECK(nb_reduce_broadcast_add(g4, acc) == NB_ERR_ARG, "[4] into [3]");
    CHECK(nb_reduce_broadcast_add(NULL, acc) == NB_ERR_ARG, "NULL g");
    CHECK(nb_broadcast_index(acc, g4, 4) == -1, "index past the end");
    CHECK(nb_broadcast_index(NULL, g4, 0) == -1, "NULL tensor");
    nb_tensor_free(g4);
    nb_tensor_free(acc);
    /* The typed views and the math kernels. */
    nb_tensor *t = nb_tensor_new(NB_F32, 1, SHAPE(2));
    CHECK(nb_tensor_cf32(t) != NULL && nb_tensor_cf64(t) == NULL, "views");
    float xs[2] = {0, 1}, ys[2];
    nb_vmath_exp_f32(2, xs, ys);
    CHECK_NEAR(ys[1], exp(1.0), 1e-6);
    nb_tensor_free(t);
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

/* The graph's 16-bit epoch counters wrap around: every stamp of the kind
 * that wrapped is forgotten, so a stamp taken long ago cannot match the
 * restarted counter. The counters are set near the limit through the
 * internal header (no hook in the library). Each case arranges that, had
 * the stamps not been reset, a stale stamp would equal the counter again.
 * (test_epoch_wrap_public wraps them the long way.) */
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
    nb_epoch y_shape = y->shape_epoch;

    /* Shape epoch: y was inferred for the batch of 2 at y_shape. */
    g->shape_epoch = NB_EPOCH_MAX;
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

    /* Value epoch: L was evaluated at stamp v; after a wrap and as many
     * feeds as bring the counter back to v, backward must still ask for a
     * forward. A feed moves the counter only when some node holds its
     * value, so another target (L2, off x's path) is evaluated between
     * feeds. */
    nb_epoch v = L->evaluated;
    g->value_epoch = NB_EPOCH_MAX;
    CHECK(nb_feed(g, x, 1, SHAPE(4), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(g->value_epoch == 1, "the counter restarted (%u)", g->value_epoch);
    CHECK(nb_feed(g, x, 1, SHAPE(4), xs) == NB_OK && g->value_epoch == 1,
          "a feed with no value computed since leaves it (%u)",
          g->value_epoch);
    while (g->value_epoch < v)
        CHECK(nb_forward(g, L2) == NB_OK &&
                  nb_feed(g, x, 1, SHAPE(4), xs) == NB_OK,
              "%s", nb_graph_error(g));
    CHECK(g->value_epoch == v, "the counter is back at %u", v);
    CHECK(nb_backward(g, L) == NB_ERR_STATE,
          "a value from before the wrap is not current");
    nb_graph_clear_error(g);

    /* Grad epoch: w holds the gradient of stamp e; backwards of L2 (w off
     * its path) wrap the counter and bring it back to e. */
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    nb_epoch e = w->grad_epoch;
    CHECK(nb_node_grad(w) != NULL, "w has a gradient");
    CHECK(nb_forward(g, L2) == NB_OK, "%s", nb_graph_error(g));
    g->grad_epoch = NB_EPOCH_MAX;
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

/* The epoch counters wrap the long way, through the public API: a training
 * loop runs past 65536 feeds and backwards while an old value and an old
 * gradient stay behind, and at no point do they pass for current ones. */
static void test_epoch_wrap_public(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *w = nb_param(g, "w", NB_F64, 0, NULL);
    nb_node *u = nb_param(g, "u", NB_F64, 0, NULL);
    SET(w, 2.0);
    SET(u, 3.0);
    nb_node *L = nb_sum(g, nb_mul(g, nb_tanh(g, x), w));
    nb_node *L2 = nb_mul(g, u, u); /* off x's path */
    const double xs[2] = {0.5, -0.25};
    CHECK(L && L2 && nb_forward(g, L2) == NB_OK && nb_backward(g, L2) == NB_OK,
          "%s", nb_graph_error(g));
    CHECK(nb_node_grad(u) != NULL, "u has a gradient");
    int stale_value = 0, stale_grad = 0, wrong = 0;
    for (int step = 0; step < 65536 + 64; step++) {
        int64_t batch = 1 + step % 2; /* a new shape every feed */
        if (nb_feed(g, x, 1, SHAPE(batch), xs) != NB_OK ||
            nb_forward(g, L) != NB_OK || nb_backward(g, L) != NB_OK) {
            wrong++;
            break;
        }
        double want = 0;
        for (int i = 0; i < batch; i++)
            want += tanh(xs[i]);
        wrong += fabs(nb_tensor_get(nb_node_grad(w), 0) - want) > 1e-12;
        stale_grad += nb_node_grad(u) != NULL;
        /* L2's value was computed before all these feeds. */
        stale_value += nb_backward(g, L2) != NB_ERR_STATE;
        nb_graph_clear_error(g);
    }
    CHECK(wrong == 0, "%d steps went wrong: %s", wrong, nb_graph_error(g));
    CHECK(stale_grad == 0, "u's old gradient passed for current %d times",
          stale_grad);
    CHECK(stale_value == 0, "L2's old value passed for current %d times",
          stale_value);
    nb_graph_free(g);
}

/* Nodes keep their inputs in one of three ways (a single input in the
 * node, a list, a list followed by attributes) and find their graph and
 * their names through their block: each must read back the same. */
static void test_node_storage(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 1, SHAPE(2));
    nb_node *y = nb_param(g, "y", NB_F64, 1, SHAPE(2));
    SET(x, 0.5, -1.0);
    SET(y, 2.0, 3.0);
    nb_node *t = nb_tanh(g, x);      /* one input, no attributes */
    nb_node *s = nb_scale(g, x, 3.0); /* one input and an attribute */
    nb_node *a = nb_add(g, x, y);    /* two inputs */
    nb_node *cat = nb_concat(g, 3, (nb_node *const[]){t, s, a}, 0);
    nb_node *L = nb_sum(g, nb_mul(g, cat, cat));
    CHECK(L != NULL, "build: %s", nb_graph_error(g));
    if (!L) {
        nb_graph_free(g);
        return;
    }
    CHECK(nb_node_input_count(t) == 1 && nb_node_input(t, 0) == x &&
              nb_node_input(t, 1) == NULL,
          "tanh reads back its input");
    CHECK(nb_node_input_count(s) == 1 && nb_node_input(s, 0) == x,
          "scale reads back its input");
    CHECK(nb_node_input(a, 0) == x && nb_node_input(a, 1) == y,
          "add reads back its inputs");
    CHECK(nb_node_input(cat, 0) == t && nb_node_input(cat, 1) == s &&
              nb_node_input(cat, 2) == a,
          "concat reads back its inputs");
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    /* L = sum tanh(x)^2 + sum (3x)^2 + sum (x + y)^2;
     * dL/dx = 2 tanh(x) (1 - tanh(x)^2) + 18 x + 2 (x + y). */
    const double xs[2] = {0.5, -1.0}, ys[2] = {2.0, 3.0};
    double want = 0;
    for (int i = 0; i < 2; i++)
        want += tanh(xs[i]) * tanh(xs[i]) + 9 * xs[i] * xs[i] +
                (xs[i] + ys[i]) * (xs[i] + ys[i]);
    CHECK_NEAR(nb_tensor_get(nb_node_value(L), 0), want, 1e-12);
    for (int i = 0; i < 2; i++) {
        double th = tanh(xs[i]);
        CHECK_NEAR(nb_tensor_get(nb_node_grad(x), i),
                   2 * th * (1 - th * th) + 18 * xs[i] + 2 * (xs[i] + ys[i]),
                   1e-12);
        CHECK_NEAR(nb_tensor_get(nb_node_grad(y), i), 2 * (xs[i] + ys[i]),
                   1e-12);
    }

    /* Past the first block of nodes: graph, id, names and the other
     * graph's check work the same there. */
    nb_node *c = nb_scalar(g, "one", NB_F64, 1.0);
    CHECK(c && nb_graph_find(g, "one") == c &&
              nb_tensor_get(nb_node_value(c), 0) == 1.0,
          "a named scalar is found by its name");
    nb_node *h = c;
    while (h && nb_node_id(h) < 9000)
        h = nb_add(g, h, c);
    CHECK(h != NULL, "long build: %s", nb_graph_error(g));
    nb_node *deep = nb_graph_node(g, 8500);
    CHECK(deep && nb_node_graph(deep) == g && nb_node_id(deep) == 8500,
          "node 8500 knows its graph and id");
    CHECK(deep && strcmp(nb_node_name(deep), "add#8500") == 0,
          "default name '%s'", deep ? nb_node_name(deep) : "?");
    nb_node_set_name(nb_graph_node(g, 8400), "renamed");
    CHECK(nb_graph_find(g, "renamed") == nb_graph_node(g, 8400),
          "a name set in a later block is found");
    CHECK(strcmp(nb_node_name(nb_graph_node(g, 8401)), "add#8401") == 0,
          "its neighbour keeps the default name");
    nb_graph *g2 = nb_graph_new();
    nb_node *other = nb_scalar(g2, NULL, NB_F64, 1.0);
    CHECK(nb_add(g2, other, deep) == NULL, "a node of another graph");
    CHECK_ERROR(g2, "belongs to another graph");
    nb_graph_free(g2);
    nb_graph_free(g);
}

/* Fails the next allocation of exactly `fail_size` bytes (once armed). */
static size_t fail_size;

static void *failing_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    if (fail_size && size == fail_size) {
        fail_size = 0;
        return NULL;
    }
    void *p = NULL;
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void plain_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

/* A constructor that fails leaves no node behind, and nothing of it (a
 * name) passes to the node built next in its place. */
static void test_failed_constructor(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F32, 1, SHAPE(2));
    int64_t count = nb_graph_node_count(g);
    /* Rejected by its shape rule. */
    CHECK(nb_add(g, x, nb_param(g, "y", NB_F32, 1, SHAPE(3))) == NULL,
          "add of [2] and [3]");
    CHECK_ERROR(g, "add");
    count++; /* y itself was built */
    CHECK(nb_graph_node_count(g) == count, "no node left (%lld)",
          (long long)nb_graph_node_count(g));
    /* Out of memory after its name was stored: 1000 f32 take a heap buffer
     * of 4032 bytes (rounded up to 64). */
    nb_set_allocator(&(nb_allocator){failing_alloc, plain_free, NULL});
    fail_size = 4032;
    nb_node *big = nb_param(g, "big", NB_F32, 1, SHAPE(1000));
    nb_set_allocator(NULL);
    CHECK(big == NULL && fail_size == 0, "the allocation failed");
    CHECK_ERROR(g, "out of memory");
    CHECK(nb_graph_node_count(g) == count, "no node left (%lld)",
          (long long)nb_graph_node_count(g));
    nb_node *next = nb_tanh(g, x);
    CHECK(next && nb_node_id(next) == count, "the next node takes the id");
    CHECK(next && strcmp(nb_node_name(next), "tanh#2") == 0,
          "and not the failed one's name: '%s'", next ? nb_node_name(next) : "?");
    CHECK(nb_graph_find(g, "big") == NULL, "no node is called 'big'");
    nb_graph_free(g);
}

/* Building on an input whose new batch no longer fits an older node fails
 * (see test_core's dynamic batch tests); the cached order of another
 * target must survive that attempt, since the planner's marks are where
 * the order lives. */
static void test_order_survives_failed_refresh(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *c = nb_constant(g, "c", NB_F64, 2, SHAPE(2, 2));
    nb_node *z = nb_param(g, "z", NB_F64, 0, NULL);
    SET(c, 1.0, 2.0, 3.0, 4.0);
    SET(z, 0.5);
    nb_node *b = nb_tanh(g, z);
    nb_node *a = nb_add(g, x, c); /* fits batches of 1 and 2 only */
    nb_node *L = nb_add(g, nb_sum(g, a), b);
    const double xs[6] = {1, 1, 1, 1, 1, 1};
    CHECK(nb_feed(g, x, 2, SHAPE(2, 2), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(L && nb_forward(g, L) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(L), 0), 14 + tanh(0.5), 1e-12);

    SET(z, -2.0);
    CHECK(nb_feed(g, x, 2, SHAPE(3, 2), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tanh(g, a) == NULL, "a no longer fits the batch of 3");
    CHECK_ERROR(g, "no longer fits");
    CHECK(nb_feed(g, x, 2, SHAPE(2, 2), xs) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(L), 0), 14 + tanh(-2.0), 1e-12);
    CHECK(nb_node_grad(z) != NULL, "z has a gradient");
    CHECK_NEAR(nb_tensor_get(nb_node_grad(z), 0), 1 - tanh(-2.0) * tanh(-2.0),
               1e-12);
    nb_graph_free(g);
}

/* The feed calls: the declared shape by default, and data of the other
 * dtype converted by the calls that say which dtype they are given. */
static void test_feed_forms(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x32 = nb_input(g, "x32", NB_F32, 2, SHAPE(2, 2));
    nb_node *x64 = nb_input(g, "x64", NB_F64, 1, SHAPE(3));
    nb_node *xb = nb_input(g, "xb", NB_F32, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *w = nb_param(g, "w", NB_F32, 1, SHAPE(1));

    const float f[4] = {1.5f, -2.0f, 0.25f, 3.0f};
    CHECK(nb_feed_data(g, x32, f) == NB_OK, "%s", nb_graph_error(g));
    CHECK(memcmp(nb_tensor_f32(nb_node_value(x32)), f, sizeof f) == 0,
          "nb_feed_data copies the declared shape's worth");
    CHECK(nb_feed_data(g, xb, f) == NB_ERR_ARG, "a dynamic batch is not known");
    CHECK_ERROR(g, "feed 'xb'", "dynamic", "nb_feed");
    CHECK(nb_feed_data(g, w, f) == NB_ERR_ARG, "a parameter is not fed");
    CHECK_ERROR(g, "'w'", "not an input");
    CHECK(nb_feed_data(g, x32, NULL) == NB_ERR_ARG, "NULL data");
    CHECK_ERROR(g, "feed 'x32'", "NULL");

    /* 0.1 has no exact float: the f32 input holds the nearest float. */
    const double d[4] = {0.1, -1e-3, 1e30, 2.0};
    CHECK(nb_feed_f64(g, x32, 2, SHAPE(2, 2), d) == NB_OK, "%s",
          nb_graph_error(g));
    for (int i = 0; i < 4; i++)
        CHECK(nb_tensor_f32(nb_node_value(x32))[i] == (float)d[i],
              "element %d: %.9g", i,
              (double)nb_tensor_f32(nb_node_value(x32))[i]);
    CHECK(nb_feed_f64(g, x64, 1, SHAPE(3), d) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(memcmp(nb_tensor_f64(nb_node_value(x64)), d, 3 * sizeof *d) == 0,
          "doubles into f64 are copied");
    CHECK(nb_feed_f32(g, x64, 1, SHAPE(3), f) == NB_OK, "%s",
          nb_graph_error(g));
    for (int i = 0; i < 3; i++)
        CHECK(nb_tensor_f64(nb_node_value(x64))[i] == (double)f[i],
              "element %d", i);
    CHECK(nb_feed_f32(g, xb, 2, SHAPE(1, 2), f) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_tensor_size(nb_node_value(xb)) == 2, "the batch is 1");
    CHECK(nb_feed_f64(g, x32, 2, SHAPE(2, 3), d) == NB_ERR_ARG, "bad shape");
    CHECK_ERROR(g, "feed 'x32'", "[2,3]", "[2,2]");
    CHECK(nb_feed_f32(g, x64, 1, SHAPE(3), NULL) == NB_ERR_ARG, "NULL data");
    CHECK_ERROR(g, "feed 'x64'", "NULL");
    CHECK(nb_feed_f64(NULL, x64, 1, SHAPE(3), d) == NB_ERR_ARG, "NULL graph");
    nb_graph_free(g);
}

/* The gradient-ready hook: each leaf that gets a gradient is reported once
 * per pass, after its last consumer in backward order, holding its final
 * gradient; frozen parameters are not reported; the order is fixed. */
typedef struct ready_log {
    int n;
    nb_node *leaf[8];
    double first[8]; /* the gradient's elements 0 and last at the call */
    double last[8];
} ready_log;

static void log_ready(void *user, nb_node *leaf)
{
    ready_log *r = user;
    if (r->n < 8) {
        nb_tensor *gr = nb_node_grad(leaf);
        r->leaf[r->n] = leaf;
        r->first[r->n] = gr ? nb_tensor_get(gr, 0) : NAN;
        r->last[r->n] = gr ? nb_tensor_get(gr, nb_tensor_size(gr) - 1) : NAN;
    }
    r->n++;
}

static void check_ready_log(const ready_log *r, nb_node *const *want,
                            const char *pass)
{
    CHECK(r->n == 4, "%s: %d calls, not 4", pass, r->n);
    for (int i = 0; i < 4 && i < r->n; i++) {
        CHECK(r->leaf[i] == want[i], "%s: call %d reported '%s', not '%s'",
              pass, i, nb_node_name(r->leaf[i]), nb_node_name(want[i]));
        nb_tensor *gr = nb_node_grad(r->leaf[i]);
        CHECK(gr && r->first[i] == nb_tensor_get(gr, 0) &&
                  r->last[i] == nb_tensor_get(gr, nb_tensor_size(gr) - 1),
              "%s: '%s' was reported before its gradient was final", pass,
              nb_node_name(r->leaf[i]));
    }
}

static void test_grad_ready(void)
{
    CHECK(nb_graph_set_grad_ready(NULL, log_ready, NULL) == NB_ERR_ARG,
          "a NULL graph is refused");
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 3);
    nb_node *x = nb_input(g, "x", NB_F64, 2, (const int64_t[]){2, 3});
    nb_node *W1 = nb_param(g, "W1", NB_F64, 2, (const int64_t[]){3, 4});
    nb_node *b1 = nb_param(g, "b1", NB_F64, 1, (const int64_t[]){4});
    nb_node *W2 = nb_param(g, "W2", NB_F64, 2, (const int64_t[]){4, 1});
    nb_node *F = nb_param(g, "F", NB_F64, 1, (const int64_t[]){4});
    nb_node *leaves[] = {W1, b1, W2, F};
    for (int i = 0; i < 4; i++) {
        nb_tensor *t = nb_node_value(leaves[i]);
        for (int64_t k = 0; k < nb_tensor_size(t); k++)
            nb_tensor_set(t, k, nb_rng_normal(g));
    }
    double xs[6];
    for (int i = 0; i < 6; i++)
        xs[i] = nb_rng_normal(g);
    CHECK(nb_feed_data(g, x, xs) == NB_OK, "%s", nb_graph_error(g));
    nb_input_set_requires_grad(g, x, true);
    nb_param_set_trainable(g, F, false);
    nb_node *h = nb_tanh(g, nb_add(g, nb_matmul(g, x, W1), b1));
    nb_node *out = nb_sum(g, nb_matmul(g, nb_mul(g, h, F), W2));
    /* W1 fans out: the regulariser's product, later in forward order, sends
     * its message first; the matmul's comes last. */
    nb_node *L = nb_add(g, out, nb_sum(g, nb_mul(g, W1, W1)));
    CHECK(L != NULL, "build: %s", nb_graph_error(g));
    ready_log r = {0};
    CHECK(nb_graph_set_grad_ready(g, log_ready, &r) == NB_OK, "set");
    nb_node *const want[] = {W2, b1, x, W1};
    for (int pass = 0; pass < 3; pass++) {
        /* The first pass is the general one, the next ones the compiled
         * list's. */
        r.n = 0;
        CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
              nb_graph_error(g));
        check_ready_log(&r, want, pass ? "steady pass" : "first pass");
    }
    r.n = 0;
    CHECK(nb_backward_ex(g, L, NULL, NB_BACKWARD_ACCUMULATE) == NB_OK, "%s",
          nb_graph_error(g));
    check_ready_log(&r, want, "accumulating pass");
    nb_trace *t = nb_trace_begin(g);
    r.n = 0;
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    check_ready_log(&r, want, "traced pass");
    nb_trace_end(t);
    nb_trace_free(t);
    /* A leaf that is the output is reported at the end of its pass. */
    nb_node *const only[] = {W1};
    r.n = 0;
    CHECK(nb_backward_ex(g, W1, nb_node_value(W1), 0) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(r.n == 1 && r.leaf[0] == only[0], "the output leaf: %d calls", r.n);
    CHECK(nb_graph_set_grad_ready(g, NULL, NULL) == NB_OK, "removed");
    r.n = 0;
    CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(r.n == 0, "no call once removed (%d)", r.n);
    nb_graph_free(g);
}

/* A leaf whose last consumer in backward order sends no message (sign has
 * no backward) is reported at that consumer's turn, before the calls that
 * follow it, in the compiled passes as in the general one: P's consumer
 * sign(P) comes after tanh(Q) in forward order, so P is reported before Q
 * whatever pass runs. */
static void test_grad_ready_silent_consumer(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *P = nb_param(g, "P", NB_F32, 1, (const int64_t[]){3});
    nb_node *Q = nb_param(g, "Q", NB_F32, 1, (const int64_t[]){3});
    for (int64_t k = 0; k < 3; k++) {
        nb_tensor_set(nb_node_value(P), k, 0.5 - 0.4 * (double)k);
        nb_tensor_set(nb_node_value(Q), k, 0.1 * (double)k);
    }
    nb_node *u = nb_tanh(g, Q);
    nb_node *s = nb_sign(g, P);
    nb_node *L = nb_add(g, nb_sum(g, nb_mul(g, s, P)), nb_sum(g, u));
    CHECK(L != NULL, "build: %s", nb_graph_error(g));
    ready_log r = {0};
    CHECK(nb_graph_set_grad_ready(g, log_ready, &r) == NB_OK, "set");
    for (int pass = 0; pass < 3; pass++) {
        r.n = 0;
        CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK, "%s",
              nb_graph_error(g));
        CHECK(r.n == 2 && r.leaf[0] == P && r.leaf[1] == Q,
              "pass %d: %d calls, first '%s'", pass, r.n,
              r.n ? nb_node_name(r.leaf[0]) : "none");
        for (int i = 0; i < r.n && i < 2; i++) {
            nb_tensor *gr = nb_node_grad(r.leaf[i]);
            CHECK(gr && r.first[i] == nb_tensor_get(gr, 0) &&
                      r.last[i] == nb_tensor_get(gr, 2),
                  "pass %d: '%s' was reported before its gradient was final",
                  pass, nb_node_name(r.leaf[i]));
        }
        /* d/dP sum(sign(P) * P) = sign(P) (sign sends nothing back) */
        CHECK(nb_tensor_get(nb_node_grad(P), 0) == 1.0 &&
                  nb_tensor_get(nb_node_grad(P), 2) == -1.0,
              "pass %d: dP", pass);
    }
    nb_graph_free(g);
}

/* nb_prefault is advice about pages: memory it is given keeps its
 * contents, whatever its size and alignment, and NULL or a short range is
 * a no-op. */
static void test_prefault_keeps_contents(void)
{
    const size_t sizes[] = {0, 100, 64 * 1024, 1000 * 1000 + 3};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        unsigned char *p = nb_alloc(n + 1);
        CHECK(p != NULL, "nb_alloc(%zu)", n + 1);
        if (!p)
            continue;
        for (size_t i = 0; i <= n; i++)
            p[i] = (unsigned char)(i * 7 + 3);
        nb_prefault(p + 1, n); /* an unaligned start */
        size_t bad = 0;
        for (size_t i = 0; i <= n; i++)
            bad += p[i] != (unsigned char)(i * 7 + 3);
        CHECK(bad == 0, "nb_prefault changed %zu of %zu bytes", bad, n + 1);
        nb_free(p);
    }
    nb_prefault(NULL, 1 << 20);
}

/* ---- one-element forms ----
 * A graph of one-element tensors runs, once compiled, each elementwise op's
 * one-element form (core/internal.h): they must give the bits of the
 * general loops and kernels. Each op runs on [1] parameters (the first
 * pass general, later ones compiled) and on [2] parameters whose element
 * 0 holds the same numbers (the general path's vector code); values and
 * gradients of element 0 must agree bit for bit, a NaN matching any NaN.
 * p0 feeds two calls, so its gradient is written fresh by one and added
 * to by the other; a binary op's second call takes p0 twice (x * x). */
typedef nb_node *(*binary_fn)(nb_graph *, nb_node *, nb_node *);
typedef nb_node *(*unary_fn)(nb_graph *, nb_node *);
static nb_node *scale_by(nb_graph *g, nb_node *x) { return nb_scale(g, x, 0.7); }
static nb_node *shift_by(nb_graph *g, nb_node *x)
{
    return nb_add_scalar(g, x, -1.3);
}

static bool same_bits(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* y1 = op(p0, p1), y2 = op(p0, p0) (or op(p0) twice), L = sum((y1 + y2)
 * k) with k = 0.7; runs `passes` forward-backward passes. */
static nb_graph *one_element_graph(nb_dtype dt, int64_t len, binary_fn bop,
                                   unary_fn uop, const double v[2],
                                   nb_node **p, nb_node **y1, int passes)
{
    nb_graph *g = nb_graph_new();
    p[0] = nb_param(g, "p0", dt, 1, (int64_t[]){len});
    p[1] = nb_param(g, "p1", dt, 1, (int64_t[]){len});
    for (int64_t i = 0; i < len; i++) {
        nb_tensor_set(nb_node_value(p[0]), i, i ? 0.375 : v[0]);
        nb_tensor_set(nb_node_value(p[1]), i, i ? -2.5 : v[1]);
    }
    nb_node *y2;
    if (bop) {
        *y1 = bop(g, p[0], p[1]);
        y2 = bop(g, p[0], p[0]);
    } else {
        *y1 = uop(g, p[0]);
        y2 = uop(g, p[0]);
    }
    nb_node *L = nb_sum(g, nb_scale(g, nb_add(g, *y1, y2), 0.7));
    for (int pass = 0; pass < passes && L; pass++)
        CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK,
              "pass %d: %s", pass, nb_graph_error(g));
    return g;
}

static void test_one_element_forms(void)
{
    static const struct {
        const char *name;
        binary_fn bop;
        unary_fn uop;
    } ops[] = {
        {"add", nb_add, NULL},     {"sub", nb_sub, NULL},
        {"mul", nb_mul, NULL},     {"div", nb_div, NULL},
        {"maximum", nb_maximum, NULL}, {"minimum", nb_minimum, NULL},
        {"neg", NULL, nb_neg},     {"exp", NULL, nb_exp},
        {"log", NULL, nb_log},     {"sqrt", NULL, nb_sqrt},
        {"square", NULL, nb_square}, {"abs", NULL, nb_abs},
        {"scale", NULL, scale_by}, {"add_scalar", NULL, shift_by},
        {"sigmoid", NULL, nb_sigmoid}, {"tanh", NULL, nb_tanh},
        {"relu", NULL, nb_relu},
    };
    const double values[][2] = {
        {0.5, -1.25}, {-0.0, 0.0}, {3.0, 3.0}, {NAN, 1.0}, {1.0, NAN},
        {INFINITY, 2.0}, {1e-30, 1e30}, {-7.5, 0.3}, {1e-40, -3e-39},
        {88.5, -100.0}, {-0.6, 0.61},
    };
    const nb_dtype dts[2] = {NB_F32, NB_F64};
    int compared = 0;
    for (int d = 0; d < 2; d++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
                nb_node *pa[2], *pb[2], *ya, *yb;
                nb_graph *a = one_element_graph(dts[d], 1, ops[o].bop,
                                                ops[o].uop, values[v], pa,
                                                &ya, 3);
                nb_graph *b = one_element_graph(dts[d], 2, ops[o].bop,
                                                ops[o].uop, values[v], pb,
                                                &yb, 1);
                nb_tensor *got[3] = {nb_node_value(ya), nb_node_grad(pa[0]),
                                     nb_node_grad(pa[1])};
                nb_tensor *want[3] = {nb_node_value(yb), nb_node_grad(pb[0]),
                                      nb_node_grad(pb[1])};
                const char *what[3] = {"value", "p0's gradient",
                                       "p1's gradient"};
                for (int k = 0; k < 3; k++) {
                    if (!got[k] && !want[k])
                        continue; /* a unary op sends p1 nothing */
                    CHECK(got[k] && want[k], "%s: %s missing", ops[o].name,
                          what[k]);
                    if (!got[k] || !want[k])
                        continue;
                    double x = nb_tensor_get(got[k], 0);
                    double w = nb_tensor_get(want[k], 0);
                    compared++;
                    CHECK(same_bits(x, w),
                          "%s %s at (%g, %g): %s %.17g, general path %.17g",
                          nb_dtype_name(dts[d]), ops[o].name, values[v][0],
                          values[v][1], what[k], x, w);
                }
                nb_graph_free(a);
                nb_graph_free(b);
            }
    CHECK(compared > 800, "compared %d results", compared);
}

/* nb_graph_rollback takes back the newest nodes: their names and ids are
 * free again, views and cached orders forget them, older nodes run as
 * before; a count out of range is refused. */
static void test_rollback(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(3));
    SET(w, 1, 2, 3);
    nb_node *L = nb_sum(g, nb_square(g, w));
    CHECK(L && nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK,
          "%s", nb_graph_error(g));
    int64_t mark = nb_graph_node_count(g);
    nb_node *v = nb_param(g, "v", NB_F64, 2, SHAPE(3, 3));
    nb_node *flat = nb_reshape(g, v, 1, SHAPE(-1));
    nb_node *M = nb_sum(g, nb_mul(g, flat, flat));
    CHECK(M && nb_forward(g, M) == NB_OK && nb_backward(g, M) == NB_OK,
          "%s", nb_graph_error(g));
    CHECK(nb_graph_rollback(g, mark + 99) == NB_ERR_ARG, "past the end");
    CHECK_ERROR(g, "rollback", "outside");
    CHECK(nb_graph_rollback(g, mark) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_graph_node_count(g) == mark, "count %lld after rollback",
          (long long)nb_graph_node_count(g));
    CHECK(nb_graph_find(g, "v") == NULL, "a name taken back is free");
    /* Older nodes run, from their compiled lists or not. */
    for (int pass = 0; pass < 3; pass++) {
        CHECK(nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK,
              "pass %d: %s", pass, nb_graph_error(g));
        CHECK_NEAR(nb_tensor_get(nb_node_value(L), 0), 14, 0);
        CHECK_NEAR(nb_tensor_get(nb_node_grad(w), 2), 6, 0);
    }
    /* New nodes take the ids and the name; a view over them follows its
     * new input, not the one taken back. */
    nb_node *v2 = nb_param(g, "v", NB_F64, 1, SHAPE(4));
    SET(v2, 1, 1, 1, 1);
    nb_node *view = nb_reshape(g, v2, 2, SHAPE(2, 2));
    nb_node *M2 = nb_sum(g, view);
    CHECK(v2 && nb_node_id(v2) == mark && nb_graph_find(g, "v") == v2,
          "the new node takes the freed id and name");
    CHECK(M2 && nb_forward(g, M2) == NB_OK &&
              nb_tensor_get(nb_node_value(M2), 0) == 4 &&
              nb_tensor_data(nb_node_value(view)) ==
                  nb_tensor_data(nb_node_value(v2)),
          "%s", nb_graph_error(g));
    CHECK(nb_graph_rollback(g, 0) == NB_OK && nb_graph_node_count(g) == 0,
          "back to an empty graph");
    nb_graph_free(g);
}

int main(void)
{
    test_feed_forms();
    test_prefault_keeps_contents();
    test_checking_mode();
    test_regularised_logistic(NB_F64, 1e-14);
    test_regularised_logistic(NB_F32, 1e-6);
    test_shared_parameter();
    test_gradcheck_catches_silent_backward();
    test_op_table_contract();
    test_op_helpers();
    test_epoch_wrap();
    test_epoch_wrap_public();
    test_node_storage();
    test_failed_constructor();
    test_order_survives_failed_refresh();
    test_grad_ready();
    test_grad_ready_silent_consumer();
    test_one_element_forms();
    test_rollback();
    return tu_finish("graph");
}
