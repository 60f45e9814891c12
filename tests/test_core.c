/* The engine itself: tensors, leaves, feeding, forward/backward on small
 * hand-derivable graphs, fan-out, error rules. Uses only binary ops so it
 * isolates the executor from the op library. */
#include "test_util.h"

static void test_tensor(void)
{
    nb_tensor *t = nb_tensor_new(NB_F32, 2, SHAPE(3, 5));
    CHECK(t != NULL, "tensor_new");
    CHECK(nb_tensor_size(t) == 15, "size %lld", (long long)nb_tensor_size(t));
    CHECK(((uintptr_t)nb_tensor_data(t) & 63) == 0, "64-byte aligned");
    CHECK(nb_tensor_dim(t, -1) == 5, "last dim");
    CHECK(nb_tensor_f64(t) == NULL, "typed accessor checks dtype");
    nb_tensor_set(t, 7, 2.5);
    CHECK(nb_tensor_f32(t)[7] == 2.5f, "set/get");
    nb_tensor_free(t);
    CHECK(nb_tensor_new(NB_F32, 9, SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1)) == NULL,
          "rank 9 rejected");
    CHECK(nb_tensor_new(NB_F32, 1, SHAPE(-3)) == NULL, "negative extent");
}

/* y = (a + b) * b with a = 2, b = 3: y = 15, dy/da = b = 3,
 * dy/db = (a + b) + b = 8 (b fans out to two consumers). */
static void test_fan_out(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F64, 0, NULL);
    nb_node *b = nb_param(g, "b", NB_F64, 0, NULL);
    SET(a, 2.0);
    SET(b, 3.0);
    nb_node *y = nb_mul(g, nb_add(g, a, b), b);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 0), 15.0, 0);
    CHECK(nb_backward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_grad(a), 0), 3.0, 0);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(b), 0), 8.0, 0);
    /* A second backward gives the same gradients, not twice them. */
    CHECK(nb_backward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_grad(b), 0), 8.0, 0);
    /* Accumulation is explicit. */
    CHECK(nb_backward_ex(g, y, NULL, NB_BACKWARD_ACCUMULATE) == NB_OK, "acc");
    CHECK_NEAR(nb_tensor_get(nb_node_grad(b), 0), 16.0, 0);
    nb_graph_free(g);
}

/* x * x: the same node twice in one op gives 2x. */
static void test_same_input_twice(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 1, SHAPE(3));
    SET(x, 1.0, -2.0, 0.5);
    nb_node *y = nb_mul(g, x, x);
    nb_tensor *seed = nb_tensor_new(NB_F64, 1, SHAPE(3));
    nb_tensor_fill(seed, 1.0);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_grad(x), 1), -4.0, 0);
    nb_tensor_free(seed);
    nb_graph_free(g);
}

/* Diamond: u = x + w, v = x * w, y = u * v. */
static void test_diamond(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 0, NULL);
    nb_node *w = nb_param(g, "w", NB_F64, 0, NULL);
    SET(w, 0.5);
    nb_input_set_requires_grad(g, x, true);
    CHECK(nb_feed(g, x, 0, NULL, (double[]){2.0}) == NB_OK, "feed");
    nb_node *y = nb_mul(g, nb_add(g, x, w), nb_mul(g, x, w));
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward(g, y) == NB_OK, "%s", nb_graph_error(g));
    /* y = u v with u = x + w, v = x w:
     * dy/dw = v + u x = 1 + 5 = 6; dy/dx = v + u w = 1 + 1.25 = 2.25 */
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w), 0), 6.0, 1e-15);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(x), 0), 2.25, 1e-15);
    nb_gradcheck_result r;
    CHECK(nb_gradcheck(g, y, NULL, &r) == NB_OK && r.passed, "%s", r.message);
    nb_graph_free(g);
}

/* A frozen parameter gets no gradient buffer; nodes that lead to no
 * trainable parameter get no gradient either. */
static void test_frozen(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w1 = nb_param(g, "w1", NB_F32, 1, SHAPE(4));
    nb_node *w2 = nb_param(g, "w2", NB_F32, 1, SHAPE(4));
    nb_node *c = nb_constant(g, "c", NB_F32, 1, SHAPE(4));
    nb_tensor_fill(nb_node_value(w1), 1);
    nb_tensor_fill(nb_node_value(w2), 2);
    nb_tensor_fill(nb_node_value(c), 3);
    nb_node *frozen_branch = nb_mul(g, w1, c);
    nb_node *y = nb_sub(g, nb_mul(g, frozen_branch, w2), c);
    nb_tensor *seed = nb_tensor_new(NB_F32, 1, SHAPE(4));
    nb_tensor_fill(seed, 1);
    CHECK(nb_param_set_trainable(g, w1, false) == NB_OK, "freeze");
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_node_grad(w1) == NULL, "frozen parameter has no gradient");
    CHECK(nb_node_grad(frozen_branch) == NULL, "no gradient off the path");
    CHECK(nb_node_grad(c) == NULL, "constant has no gradient");
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w2), 0), 3.0, 0);
    CHECK(nb_param_set_trainable(g, w1, true) == NB_OK, "unfreeze");
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_node_grad(w1) != NULL, "unfrozen parameter has a gradient");
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w1), 0), 6.0, 0);
    nb_tensor_free(seed);
    nb_graph_free(g);
}

static void test_dynamic_batch(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *b = nb_param(g, "b", NB_F32, 1, SHAPE(3));
    SET(b, 1, 2, 3);
    nb_node *y = nb_add(g, x, b);
    float two_rows[6] = {0, 0, 0, 10, 10, 10};
    CHECK(nb_feed(g, x, 2, SHAPE(2, 3), two_rows) == NB_OK, "feed 2 rows");
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_dim(nb_node_value(y), 0) == 2, "batch 2");
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 5), 13.0, 0);
    float five_rows[15] = {0};
    CHECK(nb_feed(g, x, 2, SHAPE(5, 3), five_rows) == NB_OK, "feed 5 rows");
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_dim(nb_node_value(y), 0) == 5, "batch 5");
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 14), 3.0, 0);
    nb_graph_free(g);
}

/* The net of test_steady_state: x [N,2] (its gradient required, so an
 * input's gradient is resized too) times w [2,3] plus b [3], tanh, mean. */
typedef struct {
    nb_graph *g;
    nb_node *x, *w, *b, *loss;
} tiny_net;

static tiny_net tiny_net_new(void)
{
    tiny_net t;
    t.g = nb_graph_new();
    t.x = nb_input(t.g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 2));
    t.w = nb_param(t.g, "w", NB_F32, 2, SHAPE(2, 3));
    t.b = nb_param(t.g, "b", NB_F32, 1, SHAPE(3));
    nb_input_set_requires_grad(t.g, t.x, true);
    for (int i = 0; i < 6; i++)
        nb_tensor_set(nb_node_value(t.w), i, 0.1 * i - 0.2);
    SET(t.b, 0.3, -0.1, 0.2);
    t.loss = nb_mean(t.g, nb_tanh(t.g, nb_add(t.g, nb_matmul(t.g, t.x, t.w),
                                               t.b)));
    return t;
}

static const float tiny_rows[8] = {1, -2, 0.5f, 3, -1, 1, 2, 0.25f};

/* One step on t at batch n; the gradients of w, b and x must be those of a
 * graph built fresh for this step (whose first backward sizes everything),
 * bit for bit. */
static void tiny_step_matches_fresh(tiny_net *t, int64_t n, const char *when)
{
    CHECK(nb_feed(t->g, t->x, 2, SHAPE(n, 2), tiny_rows) == NB_OK, "%s", when);
    CHECK(nb_forward(t->g, t->loss) == NB_OK && nb_backward(t->g, t->loss) == NB_OK,
          "%s: %s", when, nb_graph_error(t->g));
    tiny_net f = tiny_net_new();
    for (int64_t i = 0; i < 6; i++)
        nb_tensor_set(nb_node_value(f.w), i, nb_tensor_get(nb_node_value(t->w), i));
    for (int64_t i = 0; i < 3; i++)
        nb_tensor_set(nb_node_value(f.b), i, nb_tensor_get(nb_node_value(t->b), i));
    nb_param_set_trainable(f.g, f.w, nb_node_grad(t->w) != NULL);
    nb_feed(f.g, f.x, 2, SHAPE(n, 2), tiny_rows);
    CHECK(nb_forward(f.g, f.loss) == NB_OK && nb_backward(f.g, f.loss) == NB_OK,
          "%s (fresh): %s", when, nb_graph_error(f.g));
    nb_node *mine[3] = {t->w, t->b, t->x}, *theirs[3] = {f.w, f.b, f.x};
    for (int k = 0; k < 3; k++) {
        const nb_tensor *a = nb_node_grad(mine[k]), *e = nb_node_grad(theirs[k]);
        CHECK((a == NULL) == (e == NULL), "%s: gradient %d present", when, k);
        if (!a || !e)
            continue;
        CHECK(nb_tensor_size(a) == nb_tensor_size(e), "%s: gradient %d has %lld "
              "elements, expected %lld", when, k, (long long)nb_tensor_size(a),
              (long long)nb_tensor_size(e));
        for (int64_t i = 0; i < nb_tensor_size(a) && i < nb_tensor_size(e); i++)
            CHECK(nb_tensor_get(a, i) == nb_tensor_get(e, i),
                  "%s: gradient %d[%lld] = %.9g, fresh %.9g", when, k,
                  (long long)i, nb_tensor_get(a, i), nb_tensor_get(e, i));
    }
    nb_graph_free(f.g);
}

/* Backward skips sizing the gradients while the order and the shapes are
 * those it last sized (docs/design.md, "Backward"): every event that may
 * change them must still give the gradients of a fresh graph. */
static void test_steady_state(void)
{
    tiny_net t = tiny_net_new();
    tiny_step_matches_fresh(&t, 2, "batch 2");
    tiny_step_matches_fresh(&t, 2, "batch 2 again");
    tiny_step_matches_fresh(&t, 4, "a new batch size, larger");
    tiny_step_matches_fresh(&t, 1, "a new batch size, smaller");
    tiny_step_matches_fresh(&t, 1, "batch 1 again");
    /* Backward twice after one forward: the same gradients. */
    CHECK(nb_backward(t.g, t.loss) == NB_OK, "%s", nb_graph_error(t.g));
    tiny_step_matches_fresh(&t, 1, "after a second backward");
    /* A node added after planning, then the old loss again. */
    nb_node *extra = nb_sum(t.g, nb_mul(t.g, t.b, t.b));
    CHECK(nb_forward(t.g, extra) == NB_OK && nb_backward(t.g, extra) == NB_OK,
          "%s", nb_graph_error(t.g));
    CHECK_NEAR(nb_tensor_get(nb_node_grad(t.b), 0), 0.6, 1e-6);
    tiny_step_matches_fresh(&t, 3, "after a node was added");
    /* A parameter frozen, then thawed. */
    nb_param_set_trainable(t.g, t.w, false);
    tiny_step_matches_fresh(&t, 3, "w frozen");
    nb_param_set_trainable(t.g, t.w, true);
    tiny_step_matches_fresh(&t, 3, "w thawed");
    /* Tracing turned on, then off, between steps. */
    nb_trace *tr = nb_trace_begin(t.g);
    CHECK(tr != NULL, "trace");
    tiny_step_matches_fresh(&t, 2, "traced");
    nb_trace_end(tr);
    nb_trace_free(tr);
    tiny_step_matches_fresh(&t, 2, "after the trace");
    /* Accumulation: two passes sum, then a plain pass starts over. */
    CHECK(nb_forward(t.g, t.loss) == NB_OK, "%s", nb_graph_error(t.g));
    double once = nb_tensor_get(nb_node_grad(t.b), 1);
    CHECK(nb_backward_ex(t.g, t.loss, NULL, NB_BACKWARD_ACCUMULATE) == NB_OK,
          "%s", nb_graph_error(t.g));
    CHECK(nb_tensor_get(nb_node_grad(t.b), 1) == 2 * once, "accumulated %.9g, "
          "once %.9g", nb_tensor_get(nb_node_grad(t.b), 1), once);
    tiny_step_matches_fresh(&t, 2, "after accumulating");
    nb_graph_free(t.g);
}

/* A custom op for test_fast_lists: doubles its input, and fails its
 * forward or its backward when told to, without a message of its own. */
static int flaky_fail;
static int flaky_infer(nb_op_call *c)
{
    c->out_dtype = nb_tensor_dtype(c->in[0]);
    c->out_rank = nb_tensor_rank(c->in[0]);
    for (int i = 0; i < c->out_rank; i++)
        c->out_shape[i] = nb_tensor_dim(c->in[0], i);
    return 0;
}
static int flaky_forward(nb_op_call *c)
{
    if (flaky_fail == 1)
        return -1;
    for (int64_t i = 0; i < nb_tensor_size(c->out); i++)
        nb_tensor_set(c->out, i, 2 * nb_tensor_get(c->in[0], i));
    return 0;
}
static int flaky_backward(nb_op_call *c)
{
    if (flaky_fail == 2)
        return -1;
    if (c->in_grad[0])
        for (int64_t i = 0; i < nb_tensor_size(c->out); i++)
            nb_tensor_set(c->in_grad[0], i,
                          nb_tensor_get(c->in_grad[0], i) +
                              2 * nb_tensor_get(c->out_grad, i));
    return 0;
}

/* Steps that repeat the order at the same shapes run from the compiled
 * lists (docs/design.md, "Small graphs"); what those lists do not capture
 * must still take effect between two such steps: the training flag, the
 * checking mode, another target in between, a custom op's failure in
 * either pass. */
static void test_fast_lists(void)
{
    /* The training flag, read by the op at each call. */
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 8));
    nb_node *w = nb_param(g, "w", NB_F32, 1, SHAPE(8));
    for (int i = 0; i < 8; i++)
        nb_tensor_set(nb_node_value(w), i, 0.5 + i);
    nb_node *prod = nb_mul(g, x, w);
    nb_node *y = nb_sum(g, nb_dropout(g, prod, 0.5));
    float ones[16];
    for (int i = 0; i < 16; i++)
        ones[i] = 1;
    double plain = 0;
    for (int i = 0; i < 8; i++)
        plain += 2 * (0.5 + i);
    for (int step = 0; step < 3; step++) {
        CHECK(nb_feed(g, x, 2, SHAPE(2, 8), ones) == NB_OK &&
                  nb_forward(g, y) == NB_OK && nb_backward(g, y) == NB_OK,
              "dropout step %d: %s", step, nb_graph_error(g));
        CHECK(nb_tensor_get(nb_node_value(y), 0) != plain,
              "training: dropout kept every element at step %d", step);
    }
    nb_graph_set_training(g, false);
    CHECK(nb_forward(g, y) == NB_OK && nb_backward(g, y) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_tensor_get(nb_node_value(y), 0) == plain,
          "inference: %.9g, expected %.9g", nb_tensor_get(nb_node_value(y), 0),
          plain);
    CHECK(nb_tensor_get(nb_node_grad(w), 3) == 2, "inference gradient %.9g",
          nb_tensor_get(nb_node_grad(w), 3));
    nb_graph_set_training(g, true);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_get(nb_node_value(y), 0) != plain, "training again");

    /* Checking turned on between steps finds a NaN fed at the same shape. */
    nb_graph_set_checking(g, true);
    ones[5] = NAN;
    CHECK(nb_feed(g, x, 2, SHAPE(2, 8), ones) == NB_OK, "feed");
    CHECK(nb_forward(g, y) == NB_ERR_NONFINITE, "checking: NaN not reported");
    CHECK_ERROR(g, "'x'", "not finite");
    nb_graph_clear_error(g);
    nb_graph_set_checking(g, false);
    nb_graph_free(g);

    /* Another target between steps, and a custom op that fails. */
    static const nb_op flaky = {
        .struct_size = sizeof(nb_op),
        .name = "flaky",
        .min_inputs = 1,
        .max_inputs = 1,
        .doc = "y = 2x; dy/dx = 2",
        .infer = flaky_infer,
        .forward = flaky_forward,
        .backward = flaky_backward,
    };
    tiny_net t = tiny_net_new();
    nb_node *pre = nb_add(t.g, nb_matmul(t.g, t.x, t.w), t.b);
    nb_node *twice = nb_apply(t.g, &flaky, 1, &pre, NULL);
    nb_node *loss2 = nb_mean(t.g, nb_tanh(t.g, twice));
    CHECK(loss2 != NULL, "%s", nb_graph_error(t.g));
    for (int step = 0; step < 3; step++) {
        CHECK(nb_feed(t.g, t.x, 2, SHAPE(2, 2), tiny_rows) == NB_OK &&
                  nb_forward(t.g, pre) == NB_OK,
              "%s", nb_graph_error(t.g));
        tiny_step_matches_fresh(&t, 2, "another target in between");
    }
    CHECK(nb_feed(t.g, t.x, 2, SHAPE(2, 2), tiny_rows) == NB_OK, "feed");
    for (int step = 0; step < 2; step++)
        CHECK(nb_forward(t.g, loss2) == NB_OK && nb_backward(t.g, loss2) == NB_OK,
              "flaky step %d: %s", step, nb_graph_error(t.g));
    double gb = nb_tensor_get(nb_node_grad(t.b), 1);
    flaky_fail = 1;
    CHECK(nb_forward(t.g, loss2) < 0, "a failing forward must fail");
    CHECK_ERROR(t.g, "flaky", "forward failed");
    nb_graph_clear_error(t.g);
    CHECK(nb_backward(t.g, loss2) == NB_ERR_STATE,
          "backward after a failed forward must be refused");
    nb_graph_clear_error(t.g);
    flaky_fail = 2;
    CHECK(nb_forward(t.g, loss2) == NB_OK, "%s", nb_graph_error(t.g));
    CHECK(nb_backward(t.g, loss2) < 0, "a failing backward must fail");
    CHECK_ERROR(t.g, "flaky", "backward failed");
    nb_graph_clear_error(t.g);
    CHECK(nb_tensor_get(nb_node_grad(t.b), 1) == 0,
          "a failed backward leaves zeros, not %.9g",
          nb_tensor_get(nb_node_grad(t.b), 1));
    flaky_fail = 0;
    CHECK(nb_forward(t.g, loss2) == NB_OK && nb_backward(t.g, loss2) == NB_OK,
          "%s", nb_graph_error(t.g));
    CHECK(nb_tensor_get(nb_node_grad(t.b), 1) == gb, "after the failures: "
          "%.9g, expected %.9g", nb_tensor_get(nb_node_grad(t.b), 1), gb);
    nb_graph_free(t.g);
}

static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(4, 3));
    nb_node *w = nb_param(g, "w", NB_F32, 2, SHAPE(5, 3));
    nb_node *d = nb_param(g, "d", NB_F64, 2, SHAPE(4, 3));

    /* Shapes that do not broadcast: the message names op and both shapes. */
    CHECK(nb_add(g, x, w) == NULL, "add [4,3] + [5,3] must fail");
    CHECK_ERROR(g, "add", "[4,3]", "[5,3]");
    /* Mixed dtypes. */
    CHECK(nb_mul(g, x, d) == NULL, "mul f32 * f64 must fail");
    CHECK_ERROR(g, "mul", "f64", "f32");

    /* Chained construction: one message, from the first failure. */
    nb_node *chain = nb_add(g, nb_mul(g, nb_sub(g, x, w), x), x);
    CHECK(chain == NULL, "chain fails");
    CHECK_ERROR(g, "sub", "[4,3]", "[5,3]");

    /* The graph stays usable after errors. */
    nb_node *ok = nb_add(g, x, x);
    CHECK(ok != NULL, "usable after error: %s", nb_graph_error(g));

    /* Forward with an input never fed. */
    CHECK(nb_forward(g, ok) == NB_ERR_STATE, "forward before feed");
    CHECK_ERROR(g, "'x'", "never fed");

    /* Feeding the wrong shape. */
    float data[20] = {0};
    CHECK(nb_feed(g, x, 2, SHAPE(5, 4), data) == NB_ERR_ARG, "bad feed");
    CHECK_ERROR(g, "feed", "[5,4]", "[4,3]");
    CHECK(nb_feed(g, x, 1, SHAPE(12), data) == NB_ERR_ARG, "bad feed rank");
    CHECK_ERROR(g, "feed", "[12]");
    CHECK(nb_feed(g, w, 2, SHAPE(5, 3), data) == NB_ERR_ARG, "feed a param");
    CHECK_ERROR(g, "not an input");

    /* Backward on a non-scalar without a seed. */
    CHECK(nb_feed(g, x, 2, SHAPE(4, 3), data) == NB_OK, "good feed");
    nb_node *y = nb_mul(g, x, nb_param(g, "v", NB_F32, 2, SHAPE(4, 3)));
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward(g, y) == NB_ERR_ARG, "non-scalar backward");
    CHECK_ERROR(g, "not a scalar", "[4,3]", "seed");
    /* A seed of the wrong shape. */
    nb_tensor *seed = nb_tensor_new(NB_F32, 1, SHAPE(12));
    CHECK(nb_backward_ex(g, y, seed, 0) == NB_ERR_ARG, "bad seed");
    CHECK_ERROR(g, "seed", "[12]", "[4,3]");
    nb_tensor_free(seed);

    /* A new batch shape invalidates the last forward: backward refuses to
     * mix old values with new shapes until forward runs again. */
    nb_node *dyn = nb_input(g, "dyn", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *dl = nb_sum(g, nb_mul(g, dyn, nb_param(g, "u", NB_F32, 1, SHAPE(3))));
    CHECK(nb_feed(g, dyn, 2, SHAPE(2, 3), data) == NB_OK, "feed 2");
    CHECK(nb_forward(g, dl) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_feed(g, dyn, 2, SHAPE(4, 3), data) == NB_OK, "feed 4");
    CHECK(nb_backward(g, dl) == NB_ERR_STATE, "stale backward refused");
    CHECK_ERROR(g, "nb_forward");
    CHECK(nb_forward(g, dl) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward(g, dl) == NB_OK, "%s", nb_graph_error(g));

    /* Mixing graphs. */
    nb_graph *h = nb_graph_new();
    nb_node *other = nb_param(h, "other", NB_F32, 2, SHAPE(4, 3));
    CHECK(nb_add(g, x, other) == NULL, "mixing graphs");
    CHECK_ERROR(g, "another graph");
    CHECK(nb_forward(g, other) == NB_ERR_ARG, "forward another graph's node");
    CHECK_ERROR(g, "another graph");
    CHECK(nb_graph_error(h) == NULL, "the other graph is untouched");
    nb_graph_free(h);

    /* Bad leaves. */
    CHECK(nb_param(g, "p", NB_F32, 2, SHAPE(NB_DYNAMIC, 3)) == NULL,
          "params have no dynamic batch");
    CHECK_ERROR(g, "param", "'p'", "[-1,3]");
    CHECK(nb_input(g, "q", NB_F32, 2, SHAPE(3, -2)) == NULL,
          "a negative extent other than NB_DYNAMIC");
    CHECK_ERROR(g, "input", "'q'", "[3,-2]");
    CHECK(nb_param(g, "r", (nb_dtype)7, 1, SHAPE(3)) == NULL, "bad dtype");
    CHECK_ERROR(g, "dtype");
    CHECK(nb_param_set_trainable(g, x, false) == NB_ERR_ARG, "freeze input");
    CHECK_ERROR(g, "not a parameter");

    /* Sticky: the first message stays until cleared. */
    CHECK(nb_add(g, x, w) == NULL, "first");
    CHECK(nb_sub(g, x, w) == NULL, "second");
    CHECK_ERROR(g, "add:");
    CHECK(nb_graph_status(g) == NB_OK, "cleared");
    nb_graph_free(g);
}

/* A node built after a feed changed the batch is sized for the new batch
 * (its inputs' shapes are brought up to date first). */
static void test_node_built_after_feed(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 4));
    nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(4, 8));
    nb_tensor_fill(nb_node_value(w), 0.5);
    nb_node *h = nb_relu(g, nb_matmul(g, x, w)); /* inferred at batch 1 */
    static double data[64 * 4];
    for (int i = 0; i < 64 * 4; i++)
        data[i] = 1.0;
    CHECK(nb_feed(g, x, 2, SHAPE(64, 4), data) == NB_OK, "feed");
    nb_node *v = nb_sum_axis(g, h, 1, false); /* built after the feed */
    CHECK(v && nb_tensor_dim(nb_node_value(v), 0) == 64,
          "built with the fed batch: %lld",
          v ? (long long)nb_tensor_dim(nb_node_value(v), 0) : -1LL);
    CHECK(nb_forward(g, v) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(v), 63), 16.0, 0);
    nb_graph_free(g);
}

/* Gradients belong to the backward that made them: another loss's backward
 * hides them, and a new batch never exposes a buffer of the old size. */
static void test_gradient_lifetime(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w1 = nb_param(g, "w1", NB_F64, 0, NULL);
    nb_node *w2 = nb_param(g, "w2", NB_F64, 0, NULL);
    SET(w1, 3.0);
    SET(w2, 5.0);
    nb_node *l1 = nb_square(g, w1);
    nb_node *l2 = nb_square(g, w2);
    CHECK(nb_forward(g, l1) == NB_OK && nb_backward(g, l1) == NB_OK, "l1");
    CHECK(nb_node_grad(w1) != NULL, "w1 has its gradient");
    CHECK(nb_forward(g, l2) == NB_OK && nb_backward(g, l2) == NB_OK, "l2");
    CHECK(nb_node_grad(w1) == NULL, "w1 is off the latest backward's path");
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w2), 0), 10.0, 0);

    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 16));
    nb_input_set_requires_grad(g, x, true);
    nb_node *h = nb_mul(g, x, x);
    nb_node *loss = nb_sum(g, h);
    static double data[64 * 16];
    CHECK(nb_feed(g, x, 2, SHAPE(1, 16), data) == NB_OK, "feed 1");
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "b1");
    CHECK(nb_feed(g, x, 2, SHAPE(64, 16), data) == NB_OK, "feed 64");
    CHECK(nb_forward(g, loss) == NB_OK, "%s", nb_graph_error(g));
    nb_tensor *gh = nb_node_grad(h);
    CHECK(!gh || nb_tensor_size(gh) == 16, "a gradient reports the size it "
          "was computed at, never more than its buffer");
    /* Accumulating across batch sizes is refused, not silently wrong. */
    CHECK(nb_backward_ex(g, loss, NULL, NB_BACKWARD_ACCUMULATE) ==
              NB_ERR_STATE, "accumulate across shapes");
    CHECK_ERROR(g, "accumulate", "'x'", "[1,16]", "[64,16]");
    CHECK(nb_backward(g, loss) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_size(nb_node_grad(x)) == 64 * 16, "resized gradient");
    nb_graph_free(g);
}

/* New data fed after forward: backward would mix old values with new
 * inputs, so it asks for a forward first. */
static void test_feed_invalidates_values(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 0, NULL);
    nb_node *w = nb_param(g, "w", NB_F64, 0, NULL);
    SET(w, 2.0);
    nb_node *loss = nb_square(g, nb_mul(g, x, w));
    CHECK(nb_feed(g, x, 0, NULL, (double[]){1.0}) == NB_OK, "feed");
    CHECK(nb_forward(g, loss) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_feed(g, x, 0, NULL, (double[]){100.0}) == NB_OK, "feed again");
    CHECK(nb_backward(g, loss) == NB_ERR_STATE, "stale values refused");
    CHECK_ERROR(g, "nb_forward");
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "ok");
    /* d/dw (x w)^2 = 2 x^2 w = 40000 */
    CHECK_NEAR(nb_tensor_get(nb_node_grad(w), 0), 40000.0, 0);
    nb_graph_free(g);
}

/* nb_apply with NULL attributes: the op sees zero-filled attributes in its
 * shape rule exactly as in forward, instead of a NULL pointer. */
static void test_apply_null_attrs(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 1, SHAPE(3));
    SET(x, 1, 2, 3);
    /* sum's zeroed attributes mean axis 0 without keepdims. */
    nb_node *s = nb_apply(g, nb_find_op("sum"), 1, &x, NULL);
    CHECK(s != NULL, "%s", nb_graph_error(g));
    CHECK(s && nb_forward(g, s) == NB_OK, "%s", nb_graph_error(g));
    CHECK(s && nb_tensor_get(nb_node_value(s), 0) == 6.0, "sum");
    nb_graph_free(g);
}

/* A custom op that fails without a message still gets one naming it, and
 * one that forgets the output dtype is caught. */
static int silent_fail_infer(nb_op_call *c)
{
    (void)c;
    return -1;
}
static int no_dtype_infer(nb_op_call *c)
{
    c->out_rank = 0;
    return 0;
}
static int nothing_forward(nb_op_call *c)
{
    (void)c;
    return 0;
}

static void test_custom_op_diagnostics(void)
{
    static const nb_op silent = {
        .struct_size = sizeof(nb_op),
        .name = "silent_op",
        .min_inputs = 1,
        .max_inputs = 1,
        .attr_size = 0,
        .doc = "fails",
        .infer = silent_fail_infer,
        .forward = nothing_forward,
        .backward = NULL,
    };
    static const nb_op no_dtype = {
        .struct_size = sizeof(nb_op),
        .name = "no_dtype_op",
        .min_inputs = 1,
        .max_inputs = 1,
        .attr_size = 0,
        .doc = "forgets",
        .infer = no_dtype_infer,
        .forward = nothing_forward,
        .backward = NULL,
    };
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 1, SHAPE(3));
    CHECK(nb_apply(g, &silent, 1, &x, NULL) == NULL, "silent failure");
    CHECK_ERROR(g, "silent_op", "shape rule failed");
    CHECK(nb_apply(g, &no_dtype, 1, &x, NULL) == NULL, "no dtype");
    CHECK_ERROR(g, "no_dtype_op", "dtype");
    nb_graph_free(g);
}

static void test_rng(void)
{
    nb_graph *a = nb_graph_new(), *b = nb_graph_new();
    nb_graph_seed(a, 42);
    nb_graph_seed(b, 42);
    bool same = true;
    double sum = 0, sumsq = 0;
    for (int i = 0; i < 20000; i++) {
        double u = nb_rng_normal(a);
        same &= u == nb_rng_normal(b);
        sum += u;
        sumsq += u * u;
    }
    CHECK(same, "same seed, same stream");
    CHECK(fabs(sum / 20000) < 0.03, "normal mean %g", sum / 20000);
    CHECK(fabs(sumsq / 20000 - 1) < 0.05, "normal variance %g", sumsq / 20000);
    uint64_t s[4];
    nb_rng_get_state(a, s);
    double u1 = nb_rng_uniform(a);
    nb_rng_set_state(a, s);
    CHECK(nb_rng_uniform(a) == u1, "state restore replays");
    nb_graph_free(a);
    nb_graph_free(b);
}

/* What layered code (optimisers, loaders) relies on: walking nodes by id,
 * finding one by name, recording its own errors with the sticky rule, and
 * unbiased integer draws. */
static void test_layering_api(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(3));
    nb_node *x = nb_input(g, "x", NB_F64, 1, SHAPE(3));
    nb_node *y = nb_mul(g, w, x);
    CHECK(nb_graph_node(g, 0) == w && nb_graph_node(g, 2) == y, "by id");
    CHECK(nb_graph_node(g, 3) == NULL && nb_graph_node(g, -1) == NULL,
          "out of range ids give NULL");
    CHECK(nb_graph_find(g, "x") == x, "find by name");
    CHECK(nb_graph_find(g, nb_node_name(y)) == y, "find an op by its default name");
    CHECK(nb_graph_find(g, "nope") == NULL, "missing name");

    CHECK(nb_graph_set_error(g, NB_ERR_ARG, "loader: %s at byte %d", "bad", 7) ==
              NB_ERR_ARG, "returns its code");
    nb_graph_set_error(g, NB_ERR_STATE, "second");
    CHECK(nb_graph_status(g) == NB_ERR_ARG, "first error wins");
    CHECK_ERROR(g, "loader: bad at byte 7");

    /* nb_rng_below: in range, every value reached, roughly uniform. */
    nb_graph_seed(g, 5);
    int counts[3] = {0};
    bool in_range = true;
    for (int i = 0; i < 30000; i++) {
        int64_t r = nb_rng_below(g, 3);
        in_range = in_range && r >= 0 && r < 3;
        if (r >= 0 && r < 3)
            counts[r]++;
    }
    CHECK(in_range, "draws stay in [0, 3)");
    for (int k = 0; k < 3; k++)
        CHECK(abs(counts[k] - 10000) < 500, "value %d drawn %d times of 30000",
              k, counts[k]);
    CHECK(nb_rng_below(g, 0) == 0 && nb_rng_below(g, -4) == 0, "empty range");

    /* nb_feed_buffer: the caller writes the batch in place. */
    nb_node *in = nb_input(g, "batch", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *total = nb_sum(g, in);
    double *buf = nb_feed_buffer(g, in, 2, SHAPE(3, 2));
    CHECK(buf != NULL, "%s", nb_graph_error(g));
    for (int i = 0; buf && i < 6; i++)
        buf[i] = i + 1;
    CHECK(nb_forward(g, total) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(total), 0), 21, 0);
    CHECK(nb_feed_buffer(g, in, 2, SHAPE(3, 5)) == NULL, "wrong width");
    CHECK_ERROR(g, "feed 'batch'", "[3,5]", "[-1,2]");
    CHECK(nb_tensor_dim(nb_node_value(in), 0) == 3, "refused feed resized");
    CHECK(nb_feed_buffer(g, w, 1, SHAPE(3)) == NULL, "a parameter");
    CHECK_ERROR(g, "not an input");
    uint64_t a = nb_rng_u64(g), b = nb_rng_u64(g);
    CHECK(a != b, "successive 64-bit draws differ");
    nb_graph_free(g);
}

int main(void)
{
    test_tensor();
    test_fan_out();
    test_same_input_twice();
    test_diamond();
    test_frozen();
    test_dynamic_batch();
    test_steady_state();
    test_fast_lists();
    test_errors();
    test_node_built_after_feed();
    test_gradient_lifetime();
    test_feed_invalidates_values();
    test_apply_null_attrs();
    test_custom_op_diagnostics();
    test_rng();
    test_layering_api();
    return tu_finish("core");
}
