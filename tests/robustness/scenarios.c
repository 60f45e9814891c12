/* Robustness scenarios: hostile calls into the public API one situation
 * at a time (batch changes, flag flips, hostile shapes and arguments,
 * every constructor given bad nodes, empty tensors through every op,
 * sticky errors, hostile gradcheck options), each an isolated scenario
 * (robustness/common.h). */
#include "robustness/common.h"

/* ---- scenarios, one function each so a failure isolates ---- */

/* A new batch fed between forward and backward: backward must refuse until
 * forward runs again, then give the gradient of the new batch. */
static void test_batch_change_before_backward(void)
{
    scenario = "batch_change_before_backward";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(2, 1));
    SET(w, 3.0, -1.0);
    nb_node *loss = nb_sum(g, nb_matmul(g, x, w));
    CHECK(loss != NULL, "setup: %s", msg_or(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }
    const double x2[] = {1, 2, 3, 4};
    CHECK(nb_feed(g, x, 2, SHAPE(2, 2), x2) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    /* (1*3 - 2) + (3*3 - 4) = 6 */
    CHECK_NEAR(nb_tensor_get(nb_node_value(loss), 0), 6.0, 1e-12);

    const double x3[] = {1, 1, 2, 2, 5, -1};
    CHECK(nb_feed(g, x, 2, SHAPE(3, 2), x3) == NB_OK, "%s", msg_or(g));
    int rc = nb_backward(g, loss);
    CHECK(rc == NB_ERR_STATE, "backward after a new batch returned %d", rc);
    CHECK_ERROR(g, "backward", "forward");
    rc = nb_backward_ex(g, loss, NULL, NB_BACKWARD_ACCUMULATE);
    CHECK(rc == NB_ERR_STATE, "accumulating backward after a new batch: %d",
          rc);
    CHECK_ERROR(g, "backward");

    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    /* (3-1) + (6-2) + (15+1) = 22 */
    CHECK_NEAR(nb_tensor_get(nb_node_value(loss), 0), 22.0, 1e-12);
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    nb_tensor *gw = nb_node_grad(w);
    CHECK(gw != NULL, "w has no gradient");
    if (gw) {
        /* dL/dw = column sums of x */
        CHECK_NEAR(nb_tensor_get(gw, 0), 8.0, 1e-12);
        CHECK_NEAR(nb_tensor_get(gw, 1), 2.0, 1e-12);
    }
    /* The same batch size with new data also makes the values stale. */
    CHECK(nb_feed(g, x, 2, SHAPE(3, 2), x3) == NB_OK, "%s", msg_or(g));
    rc = nb_backward(g, loss);
    CHECK(rc == NB_ERR_STATE, "backward after a refeed returned %d", rc);
    CHECK_ERROR(g, "backward");

    /* Back to a smaller batch, then to an empty one. */
    CHECK(nb_feed(g, x, 2, SHAPE(2, 2), x2) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(loss), 0), 6.0, 1e-12);
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_feed(g, x, 2, SHAPE(0, 2), x2) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "empty batch forward: %s", msg_or(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(loss), 0), 0.0, 0);
    CHECK(nb_backward(g, loss) == NB_OK, "empty batch backward: %s", msg_or(g));
    gw = nb_node_grad(w);
    CHECK(gw && nb_tensor_get(gw, 0) == 0 && nb_tensor_get(gw, 1) == 0,
          "empty batch gradient is not zero");
    check_usable(g);
    nb_graph_free(g);
}

/* Freezing or unfreezing a parameter, or asking for an input's gradient,
 * between forward and backward changes the plan: backward must refuse,
 * and the next forward + backward must honour the new flags. */
static void test_flag_flips(void)
{
    scenario = "flag_flips";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(1, 2));
    nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(2, 1));
    nb_node *b = nb_param(g, "b", NB_F64, 1, SHAPE(1));
    SET(w, 2.0, 5.0);
    SET(b, 0.5);
    nb_node *loss = nb_sum(g, nb_add(g, nb_matmul(g, x, w), b));
    CHECK(loss != NULL, "setup: %s", msg_or(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }
    CHECK(nb_feed(g, x, 2, SHAPE(1, 2), (const double[]){1.0, -1.0}) == NB_OK,
          "%s", msg_or(g));
    bool was_w = true, was_b = true, was_x = false;
    for (int round = 0; round < 12; round++) {
        iteration = round;
        bool w_on = round % 3 != 1, b_on = round % 4 != 2,
             x_on = round % 2 == 1;
        bool flipped = w_on != was_w || b_on != was_b || x_on != was_x;
        was_w = w_on, was_b = b_on, was_x = x_on;
        CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
        CHECK_NEAR(nb_tensor_get(nb_node_value(loss), 0), -2.5, 1e-12);
        CHECK(nb_param_set_trainable(g, w, w_on) == NB_OK, "%s", msg_or(g));
        CHECK(nb_param_set_trainable(g, b, b_on) == NB_OK, "%s", msg_or(g));
        CHECK(nb_input_set_requires_grad(g, x, x_on) == NB_OK, "%s", msg_or(g));
        /* A flip since the forward must be refused; setting a flag to
         * the value it has changes nothing. */
        int rc = nb_backward(g, loss);
        if (flipped) {
            RCHECK(rc == NB_ERR_STATE, "backward after a flip: %d", rc);
            CHECK_ERROR(g, "backward", "forward");
        } else {
            RCHECK(rc == NB_OK, "backward without a flip: %d %s", rc,
                   msg_or(g));
        }
        CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
        rc = nb_backward(g, loss);
        if (!w_on && !b_on && !x_on) {
            /* What nb_node_grad says then is test_backward_with_nothing_
             * to_train's business. */
            CHECK(rc == NB_OK, "backward with nothing to train: %d", rc);
            continue;
        }
        CHECK(rc == NB_OK, "backward returned %d: %s", rc, msg_or(g));
        nb_tensor *gw = nb_node_grad(w), *gb = nb_node_grad(b),
                  *gx = nb_node_grad(x);
        CHECK((gw != NULL) == w_on, "round %d: w grad %p, trainable %d", round,
              (void *)gw, w_on);
        CHECK((gb != NULL) == b_on, "round %d: b grad %p, trainable %d", round,
              (void *)gb, b_on);
        CHECK((gx != NULL) == x_on, "round %d: x grad %p, requires %d", round,
              (void *)gx, x_on);
        if (gw) {
            CHECK_NEAR(nb_tensor_get(gw, 0), 1.0, 1e-12);
            CHECK_NEAR(nb_tensor_get(gw, 1), -1.0, 1e-12);
        }
        if (gb)
            CHECK_NEAR(nb_tensor_get(gb, 0), 1.0, 1e-12);
        if (gx) {
            CHECK_NEAR(nb_tensor_get(gx, 0), 2.0, 1e-12);
            CHECK_NEAR(nb_tensor_get(gx, 1), 5.0, 1e-12);
        }
    }
    iteration = -1;
    /* Flags on the wrong kind of node, NULL or a foreign node. */
    nb_graph *other = nb_graph_new();
    nb_node *fp = nb_param(other, "fp", NB_F64, 0, NULL);
    nb_node *fx = nb_input(other, "fx", NB_F64, 0, NULL);
    CHECK(nb_param_set_trainable(g, x, true) == NB_ERR_ARG, "input as param");
    CHECK_ERROR(g, "param_set_trainable", "'x'");
    CHECK(nb_param_set_trainable(g, loss, false) == NB_ERR_ARG, "op as param");
    CHECK_ERROR(g, "param_set_trainable");
    CHECK(nb_param_set_trainable(g, NULL, true) == NB_ERR_ARG, "NULL param");
    CHECK_ERROR(g, "param_set_trainable");
    CHECK(nb_param_set_trainable(g, fp, true) == NB_ERR_ARG, "foreign param");
    CHECK_ERROR(g, "param_set_trainable", "another graph");
    CHECK(nb_input_set_requires_grad(g, w, true) == NB_ERR_ARG,
          "param as input");
    CHECK_ERROR(g, "input_set_requires_grad", "'w'");
    CHECK(nb_input_set_requires_grad(g, NULL, true) == NB_ERR_ARG,
          "NULL input");
    CHECK_ERROR(g, "input_set_requires_grad");
    CHECK(nb_input_set_requires_grad(g, fx, true) == NB_ERR_ARG, "foreign");
    CHECK_ERROR(g, "input_set_requires_grad", "another graph");
    CHECK(nb_graph_error(other) == NULL, "the foreign graph got an error: %s",
          msg_or(other));
    nb_graph_free(other);
    check_usable(g);
    nb_graph_free(g);
}

/* nb_tensor_new refuses bad dtypes and shapes with NULL. */
static void test_tensor_new_bad(void)
{
    scenario = "tensor_new_bad";
    const int64_t big = INT64_C(1) << 40;
    struct {
        int dtype, rank;
        const int64_t *shape;
    } bad[] = {
        {2, 1, SHAPE(3)},
        {-1, 1, SHAPE(3)},
        {NB_F64, -1, SHAPE(3)},
        {NB_F64, NB_MAX_RANK + 1, SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1)},
        {NB_F64, INT_MAX, SHAPE(1)},
        {NB_F64, 2, NULL},
        {NB_F32, 2, SHAPE(3, -1)},
        {NB_F32, 1, SHAPE(INT64_MIN)},
        {NB_F64, 1, SHAPE(big + 1)},
        {NB_F64, 1, SHAPE(INT64_MAX)},
        {NB_F64, 2, SHAPE(INT64_C(1) << 20, INT64_C(1) << 21)},
        {NB_F32, 3, SHAPE(INT64_C(1) << 32, INT64_C(1) << 32, 0)},
        {NB_F64, 3, SHAPE(0, big, 2)},
        {NB_F64, 8, SHAPE(64, 64, 64, 64, 64, 64, 64, 64)},
        {NB_F64, 4,
         SHAPE(INT64_C(1) << 16, INT64_C(1) << 16, INT64_C(1) << 16,
               INT64_C(1) << 16)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nb_tensor *t =
            nb_tensor_new((nb_dtype)bad[i].dtype, bad[i].rank, bad[i].shape);
        CHECK(t == NULL, "bad tensor %zu was created", i);
        nb_tensor_free(t);
    }
    /* The edges that are fine: a scalar, empty tensors (even with a huge
     * extent next to the zero), rank 8. */
    nb_tensor *ok[] = {
        nb_tensor_new(NB_F64, 0, NULL),
        nb_tensor_new(NB_F32, 1, SHAPE(0)),
        nb_tensor_new(NB_F64, 2, SHAPE(0, big)),
        nb_tensor_new(NB_F64, 8, SHAPE(1, 2, 1, 2, 1, 2, 1, 2)),
    };
    const int64_t sizes[] = {1, 0, 0, 16};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        CHECK(ok[i] != NULL, "good tensor %zu was refused", i);
        if (!ok[i])
            continue;
        CHECK(nb_tensor_size(ok[i]) == sizes[i], "tensor %zu has size %lld", i,
              (long long)nb_tensor_size(ok[i]));
        touch_tensor(ok[i], "new tensor");
        CHECK(nb_tensor_dim(ok[i], 99) == 0 && nb_tensor_dim(ok[i], -99) == 0 &&
                  nb_tensor_dim(ok[i], INT_MIN) == 0,
              "dim out of range is not 0");
        CHECK(nb_tensor_copy_from_f64(ok[i], (const double[]){1, 2},
                                      sizes[i] + 1) == -1,
              "copy of the wrong count accepted");
        nb_tensor_free(ok[i]);
    }
    nb_tensor *t = nb_tensor_new(NB_F64, 1, SHAPE(2));
    CHECK(t && nb_tensor_f32(t) == NULL && nb_tensor_f64(t) != NULL,
          "typed accessors ignore the dtype");
    nb_tensor_free(t);
    nb_tensor_free(NULL);
}

/* Extents past 2^40 and products past 2^40 are rejected with a message,
 * at every place a shape enters: leaves, feeds, and op outputs. */
static void test_huge_shapes(void)
{
    scenario = "huge_shapes";
    const int64_t big = INT64_C(1) << 40, e20 = INT64_C(1) << 20,
                  e21 = INT64_C(1) << 21, e39 = INT64_C(1) << 39;
    nb_graph *g = nb_graph_new();
    const int64_t *shapes[] = {SHAPE(big + 1),  SHAPE(INT64_MAX),
                               SHAPE(e20, e21), SHAPE(2, big),
                               SHAPE(big, big), SHAPE(0, big, 2)};
    const int ranks[] = {1, 1, 2, 2, 2, 3};
    for (int i = 0; i < 6; i++) {
        iteration = i;
        RCHECK(nb_input(g, "hx", NB_F64, ranks[i], shapes[i]) == NULL,
               "huge input accepted");
        CHECK_ERROR(g, "input", "hx");
        RCHECK(nb_param(g, "hw", NB_F32, ranks[i], shapes[i]) == NULL,
               "huge param accepted");
        CHECK_ERROR(g, "param", "hw");
        RCHECK(nb_constant(g, "hc", NB_F64, ranks[i], shapes[i]) == NULL,
               "huge constant accepted");
        CHECK_ERROR(g, "constant", "hc");
    }
    iteration = -1;
    /* A dynamic batch next to a huge extent is fine until fed. */
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 4));
    double data[4] = {0};
    CHECK(nb_feed(g, x, 2, SHAPE(big * 2, 4), data) == NB_ERR_ARG,
          "huge feed accepted");
    CHECK_ERROR(g, "feed", "'x'");
    CHECK(nb_feed(g, x, 2, SHAPE(e39, 4), data) == NB_ERR_ARG,
          "feed past 2^40 elements accepted");
    CHECK_ERROR(g, "feed");

    /* Op outputs past the limit, from inputs that are each within it
     * (inputs are not allocated before a feed, so this costs nothing). */
    nb_node *col = nb_input(g, "col", NB_F64, 2, SHAPE(e20, 1));
    nb_node *row = nb_input(g, "row", NB_F64, 2, SHAPE(1, e21));
    nb_node *half = nb_input(g, "half", NB_F64, 1, SHAPE(e39 + 1));
    nb_node *s = nb_scalar(g, NULL, NB_F64, 1.0);
    CHECK(col && row && half && s, "setup: %s", msg_or(g));
    CHECK(nb_add(g, col, row) == NULL, "2^41-element add accepted");
    CHECK_ERROR(g, "add");
    CHECK(nb_matmul(g, col, row) == NULL, "2^41-element matmul accepted");
    CHECK_ERROR(g, "matmul");
    CHECK(nb_concat(g, 2, (nb_node *[]){half, half}, 0) == NULL,
          "concat past 2^40 accepted");
    CHECK_ERROR(g, "concat");
    CHECK(nb_broadcast_to(g, s, 2, SHAPE(e20, e21)) == NULL,
          "broadcast_to past 2^40 accepted");
    CHECK_ERROR(g, "broadcast_to");
    CHECK(nb_broadcast_to(g, s, 1, SHAPE(big * 4)) == NULL,
          "broadcast_to to a huge extent accepted");
    CHECK_ERROR(g, "broadcast_to");
    CHECK(nb_broadcast_to(g, s, 8, SHAPE(64, 64, 64, 64, 64, 64, 64, 64)) ==
              NULL,
          "broadcast_to to 2^48 elements accepted");
    CHECK_ERROR(g, "broadcast_to");
    nb_node *p = nb_param(g, "p", NB_F64, 2, SHAPE(3, 4));
    CHECK(nb_reshape(g, p, 2, SHAPE(e20, e21)) == NULL, "huge reshape");
    CHECK_ERROR(g, "reshape");
    CHECK(nb_reshape(g, p, 2, SHAPE(-1, big)) == NULL, "reshape -1 with big");
    CHECK_ERROR(g, "reshape");
    CHECK(nb_slice(g, col, 0, 0, big * 2) == NULL, "slice past the end");
    CHECK_ERROR(g, "slice");
    check_usable(g);
    nb_graph_free(g);
}

/* Reshape extents whose product overflows int64 (found by the fuzzer:
 * src/ops/reshape.c multiplied them without a bound, undefined behaviour
 * that UBSan reports). The shape is refused with a reshape message. */
static void test_reshape_overflowing_product(void)
{
    scenario = "reshape_overflowing_product";
    nb_graph *g = nb_graph_new();
    nb_node *p = nb_param(g, "p", NB_F64, 2, SHAPE(3, 4));
    const int64_t *shapes[] = {SHAPE(INT64_MAX, 12), SHAPE(INT64_MAX, -1, 2),
                               SHAPE(INT64_C(1) << 62, 4, 3),
                               SHAPE(INT64_C(3) << 61, 2, 2),
                               SHAPE(INT64_C(1) << 40, INT64_C(1) << 40, 0)};
    const int ranks[] = {2, 3, 3, 3, 3};
    for (int i = 0; i < 5; i++) {
        iteration = i;
        RCHECK(nb_reshape(g, p, ranks[i], shapes[i]) == NULL,
               "overflowing reshape accepted");
        CHECK_ERROR(g, "reshape");
    }
    iteration = -1;
    check_usable(g);
    nb_graph_free(g);
}

/* Every constructor of ops.h behind one signature, with valid arguments
 * beside the nodes, for the table-driven checks. Those of the list's
 * regular kinds come from ops.def, with parameters in the middle of their
 * gradient-check ranges; the others are written here, and a check fails
 * when an op of the list has no entry. */
typedef nb_node *(*any_op)(nb_graph *g, nb_node *a, nb_node *b);
#define NB_OP_BINARY(name, lo, hi)                                            \
    static nb_node *w_##name(nb_graph *g, nb_node *a, nb_node *b)             \
    {                                                                         \
        return nb_##name(g, a, b);                                            \
    }
#define NB_OP_UNARY(name, lo, hi)                                             \
    static nb_node *w_##name(nb_graph *g, nb_node *a, nb_node *b)             \
    {                                                                         \
        (void)b;                                                              \
        return nb_##name(g, a);                                               \
    }
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi)                             \
    static nb_node *w_##name(nb_graph *g, nb_node *a, nb_node *b)             \
    {                                                                         \
        (void)b;                                                              \
        return nb_##name(g, a, ((p_lo) + (p_hi)) / 2.0);                      \
    }
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    static nb_node *w_##name(nb_graph *g, nb_node *a, nb_node *b)             \
    {                                                                         \
        (void)b;                                                              \
        return nb_##name(g, a, ((p_lo) + (p_hi)) / 2.0,                       \
                         ((q_lo) + (q_hi)) / 2.0);                            \
    }
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP

/* clang-format off */
#define W1(fn)                                                                 \
    static nb_node *w_##fn(nb_graph *g, nb_node *a, nb_node *b)                \
    {                                                                          \
        (void)b;                                                               \
        return nb_##fn(g, a);                                                  \
    }
#define W2(fn)                                                                 \
    static nb_node *w_##fn(nb_graph *g, nb_node *a, nb_node *b)                \
    {                                                                          \
        return nb_##fn(g, a, b);                                               \
    }
W1(softmax) W1(log_softmax) W1(sum) W1(mean) W1(max) W1(min)
W1(logsumexp) W1(transpose) W1(l1_penalty) W1(l2_penalty)
W2(matmul) W2(prelu) W2(sse_loss) W2(mse_loss) W2(bce_loss)
W2(bce_logits_loss) W2(cce_loss) W2(softmax_ce_loss)
W2(softmax_ce_index_loss) W2(nll_loss) W2(embedding) W1(stop_gradient)
#undef W1
#undef W2
/* clang-format on */

static nb_node *w_maxout(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_maxout(g, a, 2);
}
static nb_node *w_dropout(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_dropout(g, a, 0.5);
}
static nb_node *w_sum_axis(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_sum_axis(g, a, -1, false);
}
static nb_node *w_mean_axis(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_mean_axis(g, a, 0, true);
}
static nb_node *w_max_axis(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_max_axis(g, a, -1, true);
}
static nb_node *w_min_axis(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_min_axis(g, a, 1, false);
}
static nb_node *w_logsumexp_axis(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_logsumexp_axis(g, a, -1, false);
}
static nb_node *w_reshape(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_reshape(g, a, 1, SHAPE(-1));
}
static nb_node *w_permute(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    /* perm must hold rank(a) entries, whatever the rank */
    static const int64_t swap_first_two[NB_MAX_RANK] = {1, 0, 2, 3,
                                                        4, 5, 6, 7};
    return nb_permute(g, a, a ? nb_tensor_rank(nb_node_value(a)) : 2,
                      swap_first_two);
}
static nb_node *w_concat(nb_graph *g, nb_node *a, nb_node *b)
{
    return nb_concat(g, 2, (nb_node *[]){a, b}, 0);
}
static nb_node *w_slice(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_slice(g, a, 0, 0, NB_SLICE_END);
}
static nb_node *w_pad(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    static const int64_t one[NB_MAX_RANK] = {1, 1, 1, 1, 1, 1, 1, 1};
    return nb_pad(g, a, a ? nb_tensor_rank(nb_node_value(a)) : 2, one, one);
}
/* Two [2,2] nodes of g seen as images [1,1,2,2] (rank 3: [1,2,2]); with a
 * NULL or foreign node among them both go as they are, so the convolution
 * itself meets it and no reshape node is left behind. */
static void as_images(nb_graph *g, nb_node **a, nb_node **b, int rank)
{
    if (!*a || !*b || nb_node_graph(*a) != g || nb_node_graph(*b) != g)
        return;
    const int64_t *shape = rank == 4 ? SHAPE(1, 1, 2, 2) : SHAPE(1, 2, 2);
    *a = nb_reshape(g, *a, rank, shape);
    *b = nb_reshape(g, *b, rank, shape);
}
static nb_node *w_conv2d(nb_graph *g, nb_node *a, nb_node *b)
{
    as_images(g, &a, &b, 4);
    return nb_conv2d(g, a, b, NULL);
}
static nb_node *w_conv2d_bias_act(nb_graph *g, nb_node *a, nb_node *b)
{
    as_images(g, &a, &b, 4);
    return nb_conv2d_bias_act(g, a, b, NULL, NULL, NB_CONV_ACT_RELU);
}
static nb_node *w_conv2d_bias_act_maxpool(nb_graph *g, nb_node *a,
                                           nb_node *b)
{
    as_images(g, &a, &b, 4);
    return nb_conv2d_bias_act_maxpool(
        g, a, b, NULL, NULL, NB_CONV_ACT_RELU,
        &(nb_pool2d_params){.kernel = {1, 1}, .stride = {1, 1}});
}
static nb_node *w_conv1d(nb_graph *g, nb_node *a, nb_node *b)
{
    as_images(g, &a, &b, 3);
    return nb_conv1d(g, a, b, 1, 0, 0, 1, 1);
}
static nb_node *w_conv_transpose2d(nb_graph *g, nb_node *a, nb_node *b)
{
    as_images(g, &a, &b, 4);
    return nb_conv_transpose2d(g, a, b, NULL);
}
/* One [2,2] node of g seen as an image [1,1,2,2] (left as it is when NULL
 * or foreign, so the op itself meets it). */
static nb_node *as_image(nb_graph *g, nb_node *a)
{
    if (!a || nb_node_graph(a) != g)
        return a;
    return nb_reshape(g, a, 4, SHAPE(1, 1, 2, 2));
}
static nb_node *w_max_pool2d(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_max_pool2d(g, as_image(g, a),
                         &(nb_pool2d_params){.kernel = {2, 2},
                                             .stride = {1, 1}});
}
static nb_node *w_avg_pool2d(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_avg_pool2d(g, as_image(g, a),
                         &(nb_pool2d_params){.kernel = {2, 2},
                                             .stride = {1, 1}});
}
static nb_node *w_global_avg_pool2d(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_global_avg_pool2d(g, as_image(g, a));
}
/* Batch norm needs state nodes: made once per graph, by the first (valid)
 * call, so a NULL or foreign x is the only thing wrong with later calls. */
static nb_node *w_batch_norm(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    nb_node *mean = nb_graph_find(g, "w_bn.running_mean");
    nb_node *var = nb_graph_find(g, "w_bn.running_var");
    if (!mean)
        mean = nb_state(g, "w_bn.running_mean", NB_F64, 1, SHAPE(2));
    if (!var)
        var = nb_state(g, "w_bn.running_var", NB_F64, 1, SHAPE(2));
    return nb_batch_norm(g, a, mean, var, NULL, NULL, NB_BN_MOMENTUM,
                         NB_NORM_EPS);
}
static nb_node *w_layer_norm(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_layer_norm(g, a, 1, NULL, NULL, NB_NORM_EPS);
}
static nb_node *w_broadcast_to(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_broadcast_to(g, a, 3, SHAPE(2, 2, 2));
}

/* The recurrent ops on a [2,2] node seen as x [1,2,2] (N 1, T 2, E 2)
 * with H 2: the states and weights are constants made once per graph by
 * the first (valid) call, so a NULL or foreign x is the only thing wrong
 * with later calls and no failed call leaves a node. */
static nb_node *rnn_const(nb_graph *g, const char *name, int64_t rows,
                          int64_t cols, double v)
{
    nb_node *n = nb_graph_find(g, name);
    if (!n) {
        n = nb_constant(g, name, NB_F64, 2, SHAPE(rows, cols));
        nb_tensor *t = nb_node_value(n);
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            nb_tensor_set(t, i, v * (double)(i % 5 - 2));
    }
    return n;
}
static nb_node *as_seq(nb_graph *g, nb_node *a)
{
    if (!a || nb_node_graph(a) != g)
        return a;
    return nb_reshape(g, a, 3, SHAPE(1, 2, 2));
}
/* Elman and GRU: one state, G = 1 or 3 */
typedef nb_node *(*one_state_seq)(nb_graph *, nb_node *, nb_node *, nb_node *,
                                  nb_node *, nb_node *, nb_node *);
static nb_node *one_state(nb_graph *g, nb_node *a, one_state_seq fn,
                          const char *w_name, int64_t gates)
{
    if (!g)
        return fn(g, a, a, a, a, NULL, NULL);
    nb_node *w = rnn_const(g, w_name, 2 * gates, 2, 0.25);
    return fn(g, as_seq(g, a), rnn_const(g, "w_rnn.h0", 1, 2, 0.5), w, w,
              NULL, NULL);
}
static nb_node *w_elman_seq(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return one_state(g, a, nb_elman_seq, "w_rnn.w1", 1);
}
static nb_node *w_gru_seq(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return one_state(g, a, nb_gru_seq, "w_rnn.w3", 3);
}
static nb_node *w_lstm_seq(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    if (!g)
        return nb_lstm_seq(g, a, a, a, a, a, NULL, NULL, true);
    nb_node *h0 = rnn_const(g, "w_rnn.h0", 1, 2, 0.5);
    nb_node *w = rnn_const(g, "w_rnn.w4", 8, 2, 0.25);
    nb_node *bias = nb_graph_find(g, "w_rnn.b4");
    if (!bias)
        bias = nb_constant(g, "w_rnn.b4", NB_F64, 1, SHAPE(8));
    return nb_lstm_seq(g, as_seq(g, a), h0, h0, w, w, bias, bias, true);
}

static const struct {
    const char *name; /* the op name its messages must carry */
    any_op fn;
    bool binary;
} all_ops[] = {
#define NB_OP_BINARY(name, lo, hi) {#name, w_##name, true},
#define NB_OP_UNARY(name, lo, hi) {#name, w_##name, false},
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi) {#name, w_##name, false},
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    {#name, w_##name, false},
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP
/* clang-format off */
#define E1(fn) {#fn, w_##fn, false}
#define E2(fn) {#fn, w_##fn, true}
    E2(prelu), E1(maxout), E1(softmax), E1(log_softmax), E2(matmul),
    E1(sum), {"sum", w_sum_axis, false}, E1(mean),
    {"mean", w_mean_axis, false}, E1(max), {"max", w_max_axis, false},
    E1(min), {"min", w_min_axis, false}, E1(logsumexp),
    {"logsumexp", w_logsumexp_axis, false},
    E1(reshape), {"permute", w_permute, false},
    {"permute", w_transpose, false},
    E2(concat), E1(slice), E1(broadcast_to), E1(pad), E2(conv2d),
    E2(conv2d_bias_act), E2(conv2d_bias_act_maxpool), E2(conv1d),
    E2(conv_transpose2d), E1(max_pool2d), E1(avg_pool2d),
    E1(global_avg_pool2d), E1(batch_norm), E1(layer_norm),
    E2(sse_loss), E2(mse_loss), E2(bce_loss), E2(bce_logits_loss),
    E2(cce_loss), E2(softmax_ce_loss), E2(softmax_ce_index_loss),
    E2(nll_loss), E1(l1_penalty), E1(l2_penalty), E1(dropout),
    E2(embedding), E1(stop_gradient),
    E1(elman_seq), E1(lstm_seq), E1(gru_seq),
#undef E1
#undef E2
};
/* clang-format on */
enum { N_ALL_OPS = sizeof all_ops / sizeof *all_ops };

/* Every op of the list has an entry in all_ops. */
static void test_all_ops_cover_the_list(void)
{
    scenario = "all_ops_cover_the_list";
    for (int i = 0; i < nb_builtin_op_count(); i++) {
        const char *op = nb_builtin_op(i)->name;
        bool found = false;
        for (int k = 0; k < N_ALL_OPS && !found; k++)
            found = strcmp(all_ops[k].name, op) == 0;
        CHECK(found, "op '%s' is in the list but not in all_ops (add it in "
                     "tests/robustness/scenarios.c)",
              op);
    }
}

/* Each constructor on valid 2x2 inputs works; the same with a NULL input
 * fails with a message naming the op, or keeps the earlier message; with
 * a node of another graph it fails naming the op and the other graph; and
 * with a NULL graph it returns NULL without crashing. */
static void test_every_constructor_bad_nodes(void)
{
    scenario = "every_constructor_bad_nodes";
    nb_graph *g = nb_graph_new(), *other = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F64, 2, SHAPE(2, 2));
    nb_node *b = nb_constant(g, "b", NB_F64, 2, SHAPE(2, 2));
    nb_node *labels = nb_constant(g, "labels", NB_F64, 1, SHAPE(2));
    nb_node *fa = nb_param(other, "fa", NB_F64, 2, SHAPE(2, 2));
    SET(a, 0.25, 0.5, 0.75, 0.125);
    SET(b, 0.5, 0.5, 0.25, 0.75);
    SET(labels, 1, 0);
    for (int i = 0; i < N_ALL_OPS; i++) {
        iteration = i;
        const char *name = all_ops[i].name;
        bool indexed = strstr(name, "index") || strstr(name, "nll") ||
                       strstr(name, "embedding");
        nb_node *second = indexed ? labels : b;
        nb_node *ok = all_ops[i].fn(g, a, second);
        RCHECK(ok != NULL, "%s on valid inputs failed: %s", name, msg_or(g));
        if (ok) {
            int rc = nb_forward(g, ok);
            RCHECK(rc == NB_OK, "%s forward: %s", name, msg_or(g));
        }
        nb_graph_clear_error(g);

        int64_t count = nb_graph_node_count(g);
        RCHECK(all_ops[i].fn(g, NULL, second) == NULL, "%s took NULL", name);
        RCHECK(has_message(g) && strstr(msg_or(g), name),
               "%s(NULL): message '%s'", name, msg_or(g));
        nb_graph_clear_error(g);
        if (all_ops[i].binary) {
            RCHECK(all_ops[i].fn(g, a, NULL) == NULL, "%s took NULL", name);
            RCHECK(has_message(g) && strstr(msg_or(g), name),
                   "%s(a, NULL): message '%s'", name, msg_or(g));
        }
        /* An earlier message survives a NULL input. */
        nb_graph_clear_error(g);
        nb_sqrt(g, nb_matmul(g, a, labels));
        char before[512];
        snprintf(before, sizeof before, "%s", msg_or(g));
        RCHECK(all_ops[i].fn(g, NULL, second) == NULL, "%s took NULL", name);
        RCHECK(strcmp(before, msg_or(g)) == 0,
               "%s replaced the earlier message '%s' by '%s'", name, before,
               msg_or(g));
        nb_graph_clear_error(g);

        RCHECK(all_ops[i].fn(g, fa, second) == NULL, "%s took a foreign node",
               name);
        RCHECK(strstr(msg_or(g), name) && strstr(msg_or(g), "another graph"),
               "%s(foreign): message '%s'", name, msg_or(g));
        nb_graph_clear_error(g);
        if (all_ops[i].binary) {
            RCHECK(all_ops[i].fn(g, a, fa) == NULL, "%s took a foreign node",
                   name);
            RCHECK(strstr(msg_or(g), name) &&
                       strstr(msg_or(g), "another graph"),
                   "%s(a, foreign): message '%s'", name, msg_or(g));
            nb_graph_clear_error(g);
        }
        RCHECK(nb_graph_node_count(g) == count, "%s: failed calls added nodes",
               name);
        RCHECK(all_ops[i].fn(NULL, a, second) == NULL, "%s with a NULL graph",
               name);
    }
    iteration = -1;
    RCHECK(nb_graph_error(other) == NULL, "the other graph got '%s'",
           msg_or(other));
    nb_graph_free(other);
    check_usable(g);
    nb_graph_free(g);
}

/* Scalar arguments out of their domain: dropout needs 0 <= p < 1, maxout
 * k >= 1 dividing the last axis. NaN and infinite scale factors, shifts
 * and alphas are either refused with a message naming the op or accepted
 * (they are well defined, if silly); either way nothing breaks. */
static void test_hostile_arguments(void)
{
    scenario = "hostile_arguments";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 2, SHAPE(2, 6));
    const double bad_p[] = {-1.0, 1.0, 1.5, NAN, INFINITY, -INFINITY, -1e-300};
    for (int i = 0; i < 7; i++) {
        iteration = i;
        RCHECK(nb_dropout(g, x, bad_p[i]) == NULL, "dropout p=%g accepted",
               bad_p[i]);
        CHECK_ERROR(g, "dropout");
    }
    const double good_p[] = {0.0, 0.5, 0.999, -0.0};
    for (int i = 0; i < 4; i++) {
        iteration = i;
        nb_node *d = nb_dropout(g, x, good_p[i]);
        RCHECK(d != NULL, "dropout p=%g refused: %s", good_p[i], msg_or(g));
        RCHECK(d && nb_forward(g, d) == NB_OK, "dropout forward: %s",
               msg_or(g));
    }
    const int bad_k[] = {0, -1, INT_MIN, INT_MAX, 4, 5, 7, 12 + 6};
    for (int i = 0; i < 8; i++) {
        iteration = i;
        RCHECK(nb_maxout(g, x, bad_k[i]) == NULL, "maxout k=%d accepted",
               bad_k[i]);
        CHECK_ERROR(g, "maxout");
    }
    const int good_k[] = {1, 2, 3, 6};
    for (int i = 0; i < 4; i++) {
        iteration = i;
        nb_node *m = nb_maxout(g, x, good_k[i]);
        RCHECK(m && nb_tensor_dim(nb_node_value(m), -1) == 6 / good_k[i],
               "maxout k=%d: %s", good_k[i], msg_or(g));
    }
    iteration = -1;
    RCHECK(nb_maxout(g, nb_scalar(g, NULL, NB_F64, 1), 1) == NULL,
           "maxout of a scalar accepted");
    CHECK_ERROR(g, "maxout");

    const double odd[] = {NAN, INFINITY, -INFINITY, DBL_MAX, -DBL_MAX, 0.0};
    for (int i = 0; i < 6; i++) {
        iteration = i;
        nb_node *ys[4] = {nb_scale(g, x, odd[i]), NULL, NULL, NULL};
        const char *names[4] = {"scale", "add_scalar", "leaky_relu", "elu"};
        if (!ys[0])
            RCHECK(strstr(msg_or(g), names[0]), "message '%s'", msg_or(g));
        nb_graph_clear_error(g);
        ys[1] = nb_add_scalar(g, x, odd[i]);
        if (!ys[1])
            RCHECK(strstr(msg_or(g), names[1]), "message '%s'", msg_or(g));
        nb_graph_clear_error(g);
        ys[2] = nb_leaky_relu(g, x, odd[i]);
        if (!ys[2])
            RCHECK(strstr(msg_or(g), names[2]), "message '%s'", msg_or(g));
        nb_graph_clear_error(g);
        ys[3] = nb_elu(g, x, odd[i]);
        if (!ys[3])
            RCHECK(strstr(msg_or(g), names[3]), "message '%s'", msg_or(g));
        nb_graph_clear_error(g);
        for (int k = 0; k < 4; k++) {
            if (!ys[k])
                continue;
            nb_node *l = nb_sum(g, ys[k]);
            int rc = nb_forward(g, l);
            RCHECK(rc == NB_OK, "%s(%g) forward %d: %s", names[k], odd[i], rc,
                   msg_or(g));
            rc = nb_backward(g, l);
            RCHECK(rc == NB_OK, "%s(%g) backward %d: %s", names[k], odd[i], rc,
                   msg_or(g));
        }
    }
    iteration = -1;
    /* prelu alphas that do not broadcast to x, or of another dtype. */
    nb_node *bad_alpha[] = {
        nb_param(g, "a3", NB_F64, 1, SHAPE(3)),
        nb_param(g, "a7", NB_F64, 2, SHAPE(7, 1)),
        nb_param(g, "a32", NB_F32, 1, SHAPE(6)),
        nb_param(g, "a_big", NB_F64, 3, SHAPE(2, 2, 6)),
    };
    for (int i = 0; i < 4; i++) {
        iteration = i;
        nb_node *p = nb_prelu(g, x, bad_alpha[i]);
        if (i < 3) {
            RCHECK(p == NULL, "prelu with a bad alpha accepted");
            CHECK_ERROR(g, "prelu");
        } else if (!p) {
            CHECK_ERROR(g, "prelu");
        }
    }
    iteration = -1;
    check_usable(g);
    nb_graph_free(g);
}

/* Class labels that are out of range, not integers, NaN or infinite: the
 * run fails with a message naming the op and the label; the graph is
 * usable afterwards and right labels give the right loss. */
static void test_hostile_labels(void)
{
    scenario = "hostile_labels";
    const double bad[] = {3,        -1,        0.5,   2.0000001, NAN,
                          INFINITY, -INFINITY, 1e300, -0.5,      1e19};
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype dtype = dt ? NB_F32 : NB_F64;
        nb_graph *g = nb_graph_new();
        nb_node *z = nb_param(g, "z", dtype, 2, SHAPE(2, 3));
        nb_node *labels = nb_input(g, "labels", dtype, 1, SHAPE(NB_DYNAMIC));
        SET(z, 1, 2, 3, 0, 0, 0);
        /* The batch of labels is fed before the losses are built, or they
         * would see the stand-in batch 1 against 2 rows. */
        CHECK(nb_feed(g, labels, 1, SHAPE(2),
                      dt ? (const void *)(const float[]){0, 0}
                         : (const void *)(const double[]){0, 0}) == NB_OK,
              "%s", msg_or(g));
        nb_node *ce = nb_softmax_ce_index_loss(g, z, labels);
        nb_node *nll = nb_nll_loss(g, nb_log_softmax(g, z), labels);
        CHECK(ce && nll, "setup: %s", msg_or(g));
        if (!ce || !nll) {
            nb_graph_free(g);
            continue;
        }
        for (int i = 0; i < 10; i++) {
            iteration = i;
            double lv[2] = {1, bad[i]};
            float lf[2] = {1, (float)bad[i]};
            if (dt && lf[1] == 2.0f)
                continue; /* 2.0000001 is the valid class 2 in f32 */
            int rc = nb_feed(g, labels, 1, SHAPE(2),
                             dt ? (const void *)lf : (const void *)lv);
            RCHECK(rc == NB_OK, "label feed: %s", msg_or(g));
            nb_node *outs[2] = {ce, nll};
            const char *names[2] = {"softmax_ce_index_loss", "nll_loss"};
            for (int k = 0; k < 2; k++) {
                rc = nb_forward(g, outs[k]);
                RCHECK(rc < 0, "%s with label %g: %d", names[k], bad[i], rc);
                RCHECK(strstr(msg_or(g), names[k]) &&
                           strstr(msg_or(g), "label"),
                       "%s with label %g: message '%s'", names[k], bad[i],
                       msg_or(g));
                nb_graph_clear_error(g);
                rc = nb_backward(g, outs[k]);
                RCHECK(rc < 0, "backward after a failed forward: %d", rc);
                RCHECK(has_message(g), "backward failed silently");
                nb_graph_clear_error(g);
            }
        }
        iteration = -1;
        /* Good labels: L = mean of lse(z_r) - z_r[label_r]. */
        double lv[2] = {2, 0};
        float lf[2] = {2, 0};
        CHECK(nb_feed(g, labels, 1, SHAPE(2),
                      dt ? (const void *)lf : (const void *)lv) == NB_OK,
              "%s", msg_or(g));
        double lse0 = 3 + log(exp(-2.0) + exp(-1.0) + 1.0), lse1 = log(3.0);
        double want = ((lse0 - 3) + (lse1 - 0)) / 2;
        double tol = dt ? 1e-5 : 1e-12;
        CHECK(nb_forward(g, ce) == NB_OK, "%s", msg_or(g));
        CHECK_NEAR(nb_tensor_get(nb_node_value(ce), 0), want, tol);
        CHECK(nb_backward(g, ce) == NB_OK, "%s", msg_or(g));
        CHECK(nb_forward(g, nll) == NB_OK, "%s", msg_or(g));
        CHECK_NEAR(nb_tensor_get(nb_node_value(nll), 0), want, tol);
        CHECK(nb_backward(g, nll) == NB_OK, "%s", msg_or(g));
        /* Labels of the wrong count for the rows. */
        CHECK(nb_feed(g, labels, 1, SHAPE(3),
                      dt ? (const void *)(const float[]){0, 0, 0}
                         : (const void *)(const double[]){0, 0, 0}) == NB_OK,
              "%s", msg_or(g));
        int rc = nb_forward(g, ce);
        CHECK(rc < 0, "3 labels for 2 rows: %d", rc);
        CHECK_ERROR(g, "softmax_ce_index_loss", "label");
        check_usable(g);
        nb_graph_free(g);
    }
}

/* A constructor that fails because an older node no longer fits the batch
 * a feed changed must still say which call failed: the sticky message is
 * all the user of a chain gets. */
static void test_stale_failure_names_constructor(void)
{
    scenario = "stale_failure_names_constructor";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 4));
    nb_node *c = nb_constant(g, "c", NB_F64, 2, SHAPE(3, 4));
    nb_node *s = nb_add(g, x, c); /* [1,4] + [3,4] is fine at batch 1 */
    CHECK(s != NULL, "setup: %s", msg_or(g));
    double data[8] = {0};
    CHECK(nb_feed(g, x, 2, SHAPE(2, 4), data) == NB_OK, "%s", msg_or(g));
    nb_node *r = nb_relu(g, s);
    CHECK(r == NULL, "relu of a node that no longer fits was built");
    const char *m = msg_or(g);
    CHECK(strstr(m, "add") != NULL, "message '%s' hides the add", m);
    CHECK(strstr(m, "relu") != NULL,
          "message '%s' does not name the relu call that failed", m);
    nb_graph_clear_error(g);
    /* Forward of the stale node fails too, naming it; a batch it fits
     * makes everything work again. */
    int rc = nb_forward(g, s);
    CHECK(rc < 0, "forward of a node that does not fit: %d", rc);
    CHECK_ERROR(g, "add");
    CHECK(nb_feed(g, x, 2, SHAPE(1, 4), data) == NB_OK, "%s", msg_or(g));
    r = nb_relu(g, s);
    CHECK(r != NULL, "relu after the batch fits again: %s", msg_or(g));
    CHECK(r && nb_forward(g, r) == NB_OK, "%s", msg_or(g));
    CHECK(r && nb_tensor_dim(nb_node_value(r), 0) == 3, "relu shape");
    check_usable(g);
    nb_graph_free(g);
}

/* The sticky error of a chain: the first failure's message survives the
 * NULL inputs that follow, and the chain needs one check at the end. */
static void test_sticky_chain(void)
{
    scenario = "sticky_chain";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 784));
    nb_node *w1 = nb_param(g, "W1", NB_F64, 2, SHAPE(700, 256));
    nb_node *b1 = nb_param(g, "b1", NB_F64, 1, SHAPE(256));
    nb_node *y = nb_relu(g, nb_add(g, nb_matmul(g, x, w1), b1));
    nb_node *loss = nb_mean(g, nb_softmax(g, y));
    CHECK(loss == NULL, "chain with a bad matmul built");
    const char *m = msg_or(g);
    CHECK(strstr(m, "matmul") && strstr(m, "784") && strstr(m, "700"),
          "chain message '%s'", m);
    CHECK(nb_graph_status(g) == NB_ERR_ARG, "status %d", nb_graph_status(g));
    int rc = nb_forward(g, loss);
    CHECK(rc == NB_ERR_ARG, "forward(NULL) after a failed chain: %d", rc);
    CHECK(strstr(msg_or(g), "matmul") != NULL, "forward replaced '%s'",
          msg_or(g));
    rc = nb_backward(g, loss);
    CHECK(rc < 0 && strstr(msg_or(g), "matmul"), "backward(NULL): %d '%s'", rc,
          msg_or(g));
    nb_gradcheck_result res;
    rc = nb_gradcheck(g, loss, NULL, &res);
    CHECK(rc < 0 && strstr(msg_or(g), "matmul"), "gradcheck(NULL): %d '%s'", rc,
          msg_or(g));
    nb_graph_clear_error(g);
    rc = nb_forward(g, NULL);
    CHECK(rc == NB_ERR_ARG, "forward(NULL) on a clean graph: %d", rc);
    CHECK_ERROR(g, "forward");
    rc = nb_backward(g, NULL);
    CHECK(rc == NB_ERR_ARG, "backward(NULL) on a clean graph: %d", rc);
    CHECK_ERROR(g, "backward");
    rc = nb_gradcheck(g, NULL, NULL, &res);
    CHECK(rc == NB_ERR_ARG, "gradcheck(NULL) on a clean graph: %d", rc);
    CHECK_ERROR(g, "gradcheck");
    rc = nb_gradcheck(g, w1, NULL, NULL);
    CHECK(rc == NB_ERR_ARG, "gradcheck with a NULL result: %d", rc);
    CHECK_ERROR(g, "gradcheck");
    check_usable(g);
    nb_graph_free(g);
}

/* Running hostile targets: never-fed inputs, nodes of another graph, NULL
 * graphs, non-scalar backward, seeds of the wrong shape or dtype. */
static void test_run_hostile(void)
{
    scenario = "run_hostile";
    nb_graph *g = nb_graph_new(), *other = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(3, 2));
    SET(w, 1, 2, 3, 4, 5, 6);
    nb_node *h = nb_matmul(g, x, w);
    nb_node *loss = nb_sum(g, h);
    nb_node *fw = nb_param(other, "fw", NB_F64, 0, NULL);
    CHECK(loss && fw, "setup: %s", msg_or(g));
    if (!loss || !fw) {
        nb_graph_free(g);
        nb_graph_free(other);
        return;
    }
    int rc = nb_forward(g, loss);
    CHECK(rc == NB_ERR_STATE, "forward with a never-fed input: %d", rc);
    CHECK_ERROR(g, "'x'", "fed");
    rc = nb_backward(g, loss);
    CHECK(rc == NB_ERR_STATE, "backward before any forward: %d", rc);
    CHECK_ERROR(g, "backward");
    nb_gradcheck_result res;
    rc = nb_gradcheck(g, loss, NULL, &res);
    CHECK(rc < 0, "gradcheck with a never-fed input: %d", rc);
    CHECK_ERROR(g, "fed");
    /* Leaves run fine on their own. */
    CHECK(nb_forward(g, w) == NB_OK, "forward of a param: %s", msg_or(g));
    rc = nb_backward_ex(g, w, NULL, 0);
    CHECK(rc == NB_ERR_ARG, "backward of a non-scalar param: %d", rc);
    CHECK_ERROR(g, "backward", "seed");

    rc = nb_forward(g, fw);
    CHECK(rc == NB_ERR_ARG, "forward of a foreign node: %d", rc);
    CHECK_ERROR(g, "another graph");
    rc = nb_backward(g, fw);
    CHECK(rc == NB_ERR_ARG, "backward of a foreign node: %d", rc);
    CHECK_ERROR(g, "another graph");
    rc = nb_gradcheck(g, fw, NULL, &res);
    CHECK(rc == NB_ERR_ARG, "gradcheck of a foreign node: %d", rc);
    CHECK_ERROR(g, "another graph");
    rc = nb_feed(g, nb_input(other, "fx", NB_F64, 0, NULL), 0, NULL,
                 (const double[]){1});
    CHECK(rc == NB_ERR_ARG, "feed of a foreign input: %d", rc);
    CHECK_ERROR(g, "feed", "another graph");
    rc = nb_feed(g, w, 2, SHAPE(3, 2), (const double[]){0, 0, 0, 0, 0, 0});
    CHECK(rc == NB_ERR_ARG, "feed of a param: %d", rc);
    CHECK_ERROR(g, "feed", "'w'");
    rc = nb_feed(g, NULL, 0, NULL, (const double[]){1});
    CHECK(rc == NB_ERR_ARG, "feed of NULL: %d", rc);
    CHECK_ERROR(g, "feed");
    rc = nb_feed(g, x, 2, NULL, (const double[]){1});
    CHECK(rc == NB_ERR_ARG, "feed with a NULL shape: %d", rc);
    CHECK_ERROR(g, "feed", "'x'");
    rc = nb_feed(g, x, 2, SHAPE(1, 3), NULL);
    CHECK(rc == NB_ERR_ARG, "feed with NULL data: %d", rc);
    CHECK_ERROR(g, "feed", "'x'");
    rc = nb_feed(g, x, -1, SHAPE(1, 3), (const double[]){1, 2, 3});
    CHECK(rc == NB_ERR_ARG, "feed with rank -1: %d", rc);
    CHECK_ERROR(g, "feed");
    rc = nb_feed(g, x, NB_MAX_RANK + 1, SHAPE(1, 3, 1, 1, 1, 1, 1, 1, 1),
                 (const double[]){1, 2, 3});
    CHECK(rc == NB_ERR_ARG, "feed with rank 9: %d", rc);
    CHECK_ERROR(g, "feed");
    rc = nb_feed(g, x, 2, SHAPE(-1, 3), (const double[]){1, 2, 3});
    CHECK(rc == NB_ERR_ARG, "feed with batch -1: %d", rc);
    CHECK_ERROR(g, "feed");
    CHECK(nb_forward(NULL, loss) == NB_ERR_ARG, "forward(NULL graph)");
    CHECK(nb_backward(NULL, loss) == NB_ERR_ARG, "backward(NULL graph)");
    CHECK(nb_backward_ex(NULL, loss, NULL, 0) == NB_ERR_ARG,
          "backward_ex(NULL graph)");
    CHECK(nb_gradcheck(NULL, loss, NULL, &res) == NB_ERR_ARG,
          "gradcheck(NULL graph)");
    CHECK(nb_feed(NULL, x, 2, SHAPE(1, 3), (const double[]){1, 2, 3}) ==
              NB_ERR_ARG,
          "feed(NULL graph)");
    CHECK(nb_input(NULL, "n", NB_F64, 0, NULL) == NULL, "input(NULL graph)");
    CHECK(nb_param(NULL, "n", NB_F64, 0, NULL) == NULL, "param(NULL graph)");
    CHECK(nb_scalar(NULL, NULL, NB_F64, 1) == NULL, "scalar(NULL graph)");
    CHECK(nb_param_set_trainable(NULL, w, false) == NB_ERR_ARG,
          "set_trainable(NULL graph)");
    CHECK(nb_graph_error(NULL) == NULL, "error of a NULL graph");
    CHECK(nb_graph_status(NULL) < 0, "status of a NULL graph");
    nb_graph_clear_error(NULL);
    nb_graph_free(NULL);
    CHECK(nb_node_value(NULL) == NULL && nb_node_grad(NULL) == NULL,
          "value/grad of NULL");
    CHECK(nb_node_input(h, -1) == NULL && nb_node_input(h, 2) == NULL &&
              nb_node_input(h, INT_MAX) == NULL && nb_node_input(w, 0) == NULL,
          "node_input out of range");

    /* Good feed, then seeds of every wrong kind. */
    const double xv[] = {1, 0, -1, 2, 2, 2};
    CHECK(nb_feed(g, x, 2, SHAPE(2, 3), xv) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, h) == NB_OK, "%s", msg_or(g));
    nb_tensor *seeds[] = {
        nb_tensor_new(NB_F64, 2, SHAPE(2, 3)),
        nb_tensor_new(NB_F64, 2, SHAPE(1, 2)),
        nb_tensor_new(NB_F64, 1, SHAPE(4)),
        nb_tensor_new(NB_F32, 2, SHAPE(2, 2)),
        nb_tensor_new(NB_F64, 3, SHAPE(2, 2, 1)),
        nb_tensor_new(NB_F64, 0, NULL),
    };
    for (int i = 0; i < 6; i++) {
        iteration = i;
        rc = nb_backward_ex(g, h, seeds[i], 0);
        RCHECK(rc == NB_ERR_ARG, "wrong seed accepted: %d", rc);
        CHECK_ERROR(g, "backward", "seed");
        nb_tensor_free(seeds[i]);
    }
    iteration = -1;
    rc = nb_backward(g, h);
    CHECK(rc == NB_ERR_ARG, "nb_backward of a [2,2] node: %d", rc);
    CHECK_ERROR(g, "backward", "scalar");
    rc = nb_backward_ex(g, h, NULL, 0xffffffffu);
    CHECK(rc == NB_OK || rc < 0, "backward_ex with unknown flags: %d", rc);
    nb_graph_clear_error(g);
    /* The right seed: dL/dw = x^T seed. */
    nb_tensor *seed = nb_tensor_new(NB_F64, 2, SHAPE(2, 2));
    nb_tensor_copy_from_f64(seed, (const double[]){1, 0, 0, 2}, 4);
    CHECK(nb_forward(g, h) == NB_OK, "%s", msg_or(g));
    rc = nb_backward_ex(g, h, seed, 0);
    CHECK(rc == NB_OK, "backward_ex with the right seed: %s", msg_or(g));
    nb_tensor *gw = nb_node_grad(w);
    const double want[] = {1, 4, 0, 4, -1, 4};
    for (int i = 0; gw && i < 6; i++)
        CHECK_NEAR(nb_tensor_get(gw, i), want[i], 1e-12);
    CHECK(gw != NULL, "w has no gradient");
    nb_tensor_free(seed);
    CHECK(nb_graph_error(other) == NULL, "the other graph got '%s'",
          msg_or(other));
    nb_graph_free(other);
    check_usable(g);
    nb_graph_free(g);
}

/* A backward with nothing trainable upstream computes no gradient, so
 * nb_node_grad must not hand out the previous backward's (graph.h: "the
 * node's gradient from the latest backward, or NULL if that backward gave
 * it none"). */
static void test_backward_with_nothing_to_train(void)
{
    scenario = "backward_with_nothing_to_train";
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(2));
    SET(w, 1.0, 2.0);
    nb_node *loss = nb_sum(g, nb_square(g, w));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_node_grad(w) != NULL, "w has no gradient");
    CHECK(nb_param_set_trainable(g, w, false) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_node_grad(w) == NULL,
          "a frozen parameter still shows the gradient of an earlier "
          "backward");
    CHECK(nb_node_grad(loss) == NULL,
          "the loss still shows the gradient of an earlier backward");
    check_usable(g);
    nb_graph_free(g);
}

/* Nodes built after a feed changed the batch take the new batch, nodes
 * built before follow it, and an empty batch or a batch some op cannot
 * take fails with a message and leaves the graph fine for the next feed. */
static void test_nodes_after_batch_change(void)
{
    scenario = "nodes_after_batch_change";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(2, 2));
    SET(w, 1, -1, 2, 0.5);
    nb_node *h = nb_relu(g, nb_matmul(g, x, w)); /* built at batch 1 */
    CHECK(h != NULL, "setup: %s", msg_or(g));
    for (int round = 0; round < 6; round++) {
        iteration = round;
        static const int64_t batches[] = {5, 2, 0, 7, 1, 3};
        int64_t n = batches[round];
        double xv[14];
        for (int i = 0; i < 2 * n; i++)
            xv[i] = (i % 3) - 0.75 * (i % 2) + 0.1 * round;
        RCHECK(nb_feed(g, x, 2, SHAPE(n, 2), xv) == NB_OK, "%s", msg_or(g));
        /* Built now, after the feed: */
        nb_node *total = nb_sum(g, h);
        nb_node *last = nb_slice(g, h, 0, -1, NB_SLICE_END);
        nb_node *flat = nb_reshape(g, h, 1, SHAPE(-1));
        nb_node *mean = nb_mean_axis(g, h, 0, false);
        RCHECK(total && flat, "built after the feed: %s", msg_or(g));
        if (n == 0) {
            /* no last row, no mean over zero rows */
            RCHECK(!last || !mean, "slice -1 or mean of an empty batch");
        } else {
            RCHECK(last && mean, "built after the feed: %s", msg_or(g));
        }
        nb_graph_clear_error(g);
        /* Expected values computed row by row here. */
        double want_total = 0, want_last[2] = {0, 0}, col[2] = {0, 0};
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < 2; j++) {
                double v = xv[2 * r] * (j ? -1.0 : 1.0) +
                           xv[2 * r + 1] * (j ? 0.5 : 2.0);
                v = v > 0 ? v : 0;
                want_total += v;
                col[j] += v;
                if (r == n - 1)
                    want_last[j] = v;
            }
        }
        if (total && nb_forward(g, total) == NB_OK)
            RCHECK(fabs(nb_tensor_get(nb_node_value(total), 0) - want_total) <
                       1e-12,
                   "sum %g, want %g", nb_tensor_get(nb_node_value(total), 0),
                   want_total);
        else
            RCHECK(0, "sum forward failed: %s", msg_or(g));
        if (last) {
            int rc = nb_forward(g, last);
            RCHECK(rc == NB_OK, "slice forward: %s", msg_or(g));
            for (int j = 0; rc == NB_OK && j < 2; j++)
                RCHECK(nb_tensor_get(nb_node_value(last), j) == want_last[j],
                       "last row [%d] %g want %g", j,
                       nb_tensor_get(nb_node_value(last), j), want_last[j]);
        }
        if (flat) {
            int rc = nb_forward(g, flat);
            RCHECK(rc == NB_OK &&
                       nb_tensor_dim(nb_node_value(flat), 0) == 2 * n,
                   "flat forward %d: %s", rc, msg_or(g));
        }
        if (mean) {
            int rc = nb_forward(g, mean);
            RCHECK(rc == NB_OK, "mean forward: %s", msg_or(g));
            for (int j = 0; rc == NB_OK && j < 2; j++)
                RCHECK(fabs(nb_tensor_get(nb_node_value(mean), j) -
                            col[j] / (double)n) < 1e-12,
                       "mean[%d]", j);
            nb_node *l = nb_sum(g, mean);
            rc = nb_forward(g, l);
            RCHECK(rc == NB_OK, "%s", msg_or(g));
            rc = nb_backward(g, l);
            RCHECK(rc == NB_OK, "backward: %s", msg_or(g));
            nb_tensor *gw = nb_node_grad(w);
            RCHECK(gw && nb_tensor_size(gw) == 4, "w gradient");
            if (gw)
                touch_tensor(gw, "w gradient");
        }
        nb_graph_clear_error(g);
    }
    iteration = -1;
    check_usable(g);
    nb_graph_free(g);
}

/* nb_gradcheck on random small smooth f64 subgraphs: it runs and passes. */
static nb_node *smooth_unary(nb_graph *g, nb_node *x, bool keep_shape)
{
    int rank = x ? nb_tensor_rank(nb_node_value(x)) : 0;
    int pick = keep_shape ? rnd_int(0, 8) : rnd_int(0, 13);
    /* softmax and the axis ops need an axis, transpose two */
    if ((rank < 1 && pick >= 7) || (rank < 2 && pick == 13))
        pick = 0;
    switch (pick) {
    case 0:
        return nb_tanh(g, x);
    case 1:
        return nb_sigmoid(g, x);
    case 2:
        return nb_softplus(g, x);
    case 3:
        return nb_exp(g, nb_scale(g, x, 0.3));
    case 4:
        return nb_square(g, x);
    case 5:
        return nb_gelu(g, x);
    case 6:
        return nb_silu(g, x);
    case 7:
        return nb_softmax(g, x);
    case 8:
        return nb_add_scalar(g, x, 0.5);
    case 9:
        return nb_logsumexp_axis(g, x, -1, chance(0.5));
    case 10:
        return nb_sum_axis(g, x, 0, chance(0.5));
    case 11:
        return nb_mean_axis(g, x, -1, true);
    case 12:
        return nb_log_softmax(g, x);
    default:
        return nb_transpose(g, x);
    }
}

static void test_gradcheck_smooth(int iterations)
{
    scenario = "gradcheck_smooth";
    for (iteration = 0; iteration < iterations; iteration++) {
        nb_graph *g = nb_graph_new();
        int64_t m = rnd_int(1, 3), k = rnd_int(1, 3), n = rnd_int(1, 3);
        nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, k));
        nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(k, n));
        nb_node *b = nb_param(g, "b", NB_F64, 1, SHAPE(n));
        fill_random(nb_node_value(w));
        for (int i = 0; i < n; i++)
            nb_tensor_set(nb_node_value(b), i, rnd_range(-1, 1));
        for (int i = 0; i < k * n; i++)
            nb_tensor_set(nb_node_value(w), i, rnd_range(-1, 1));
        double xv[9];
        for (int i = 0; i < m * k; i++)
            xv[i] = rnd_range(-1.5, 1.5);
        RCHECK(nb_feed(g, x, 2, SHAPE(m, k), xv) == NB_OK, "%s", msg_or(g));
        nb_input_set_requires_grad(g, x, chance(0.5));
        nb_node *h = nb_add(g, nb_matmul(g, x, w), b);
        int depth = rnd_int(1, 3);
        for (int i = 0; i < depth; i++)
            h = chance(0.2) ? nb_mul(g, h, smooth_unary(g, h, true))
                            : smooth_unary(g, h, false);
        nb_node *out = chance(0.5) ? nb_mean(g, h) : h;
        RCHECK(out != NULL, "smooth graph failed to build: %s", msg_or(g));
        if (out) {
            nb_gradcheck_result res;
            nb_gradcheck_options opts = {0, 0, 0, rnd_u64()};
            int rc = nb_gradcheck(g, out, &opts, &res);
            RCHECK(rc == NB_OK, "gradcheck returned %d: %s", rc, msg_or(g));
            RCHECK(rc != NB_OK || res.passed, "gradcheck failed: %s",
                   res.message);
            RCHECK(rc != NB_OK || res.checked >= k * n + n,
                   "gradcheck compared only %lld elements",
                   (long long)res.checked);
        }
        nb_graph_free(g);
    }
    iteration = -1;
}

/* Gradient accumulation: twice the same batch doubles the parameter
 * gradient; across a batch change it still works for a parameter (its
 * shape does not change) but must be refused for an input that asks for
 * its gradient (its shape does). */
static void test_accumulate_across_batches(void)
{
    scenario = "accumulate_across_batches";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(2));
    SET(w, 0.5, -2.0);
    nb_node *loss = nb_sum(g, nb_mul(g, x, w));
    CHECK(loss != NULL, "setup: %s", msg_or(g));
    if (!loss) {
        nb_graph_free(g);
        return;
    }
    const double a[] = {1, 2, 3, 4}, b[] = {-1, 1, 2, 2, 0, 5};
    CHECK(nb_feed(g, x, 2, SHAPE(2, 2), a) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward_ex(g, loss, NULL, NB_BACKWARD_ACCUMULATE) == NB_OK, "%s",
          msg_or(g));
    nb_tensor *gw = nb_node_grad(w);
    CHECK(gw && nb_tensor_get(gw, 0) == 8.0 && nb_tensor_get(gw, 1) == 12.0,
          "twice accumulated gradient");
    /* A second micro-batch of another size. */
    CHECK(nb_feed(g, x, 2, SHAPE(3, 2), b) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward_ex(g, loss, NULL, NB_BACKWARD_ACCUMULATE) == NB_OK, "%s",
          msg_or(g));
    gw = nb_node_grad(w);
    CHECK(gw && nb_tensor_get(gw, 0) == 9.0 && nb_tensor_get(gw, 1) == 20.0,
          "accumulated over two batch sizes: %g %g",
          gw ? nb_tensor_get(gw, 0) : 0, gw ? nb_tensor_get(gw, 1) : 0);
    /* Now the input wants its gradient too: its shape changes between
     * micro-batches, so accumulating must be refused, with a message. */
    CHECK(nb_input_set_requires_grad(g, x, true) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_feed(g, x, 2, SHAPE(2, 2), a) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    int rc = nb_backward_ex(g, loss, NULL, NB_BACKWARD_ACCUMULATE);
    CHECK(rc == NB_ERR_STATE, "accumulating an input across shapes: %d", rc);
    CHECK_ERROR(g, "accumulate", "'x'");
    /* A plain backward afterwards is fine and right. */
    CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    nb_tensor *gx = nb_node_grad(x);
    CHECK(gx && nb_tensor_size(gx) == 4 && nb_tensor_get(gx, 2) == 0.5 &&
              nb_tensor_get(gx, 3) == -2.0,
          "input gradient after the refused accumulation");
    check_usable(g);
    nb_graph_free(g);
}

/* A forward that fails part-way must not make the leaves after the
 * failing node look unevaluated: a parameter or constant always holds its
 * value, so backward from it (with a seed) must keep working once a
 * forward succeeds again (found by the fuzzer). */
static void test_failed_forward_keeps_leaves(void)
{
    scenario = "failed_forward_keeps_leaves";
    nb_graph *g = nb_graph_new();
    nb_node *z = nb_param(g, "z", NB_F64, 2, SHAPE(1, 3));
    nb_node *labels = nb_constant(g, "labels", NB_F64, 1, SHAPE(1));
    SET(labels, 7.0); /* out of range: the forward of l fails */
    nb_node *l = nb_softmax_ce_index_loss(g, z, labels);
    nb_node *w = nb_param(g, "w", NB_F64, 0, NULL); /* made after l */
    nb_node *c = nb_constant(g, "c", NB_F64, 0, NULL);
    nb_node *y = nb_add(g, nb_add(g, l, w), c);
    CHECK(y != NULL, "setup: %s", msg_or(g));
    int rc = nb_forward(g, y);
    CHECK(rc < 0, "forward with a bad label: %d", rc);
    CHECK_ERROR(g, "softmax_ce_index_loss", "label");
    SET(labels, 1.0);
    CHECK(nb_forward(g, y) == NB_OK, "%s", msg_or(g));
    CHECK(nb_backward(g, y) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, w) == NB_OK, "%s", msg_or(g));
    rc = nb_backward(g, w);
    CHECK(rc == NB_OK,
          "backward from a parameter after a failed forward: "
          "%d '%s'",
          rc, msg_or(g));
    nb_graph_clear_error(g);
    CHECK(nb_node_grad(w) && nb_tensor_get(nb_node_grad(w), 0) == 1.0,
          "d w / d w");
    CHECK(nb_forward(g, c) == NB_OK, "%s", msg_or(g));
    rc = nb_backward(g, c);
    CHECK(rc == NB_OK,
          "backward from a constant after a failed forward: "
          "%d '%s'",
          rc, msg_or(g));
    check_usable(g);
    nb_graph_free(g);
}

/* Element access out of range reads NaN and writes nothing; shape text
 * fits any buffer, however small, and is always terminated. */
static void test_tensor_accessors_hostile(void)
{
    scenario = "tensor_accessors_hostile";
    nb_tensor *t = nb_tensor_new(NB_F32, 2, SHAPE(2, 3));
    CHECK(t != NULL, "tensor_new");
    if (!t)
        return;
    const int64_t bad[] = {-1, 6, 7, INT64_MAX, INT64_MIN};
    for (int i = 0; i < 5; i++) {
        nb_tensor_set(t, bad[i], 5.0);
        CHECK(isnan(nb_tensor_get(t, bad[i])), "get(%lld) is not NaN",
              (long long)bad[i]);
    }
    for (int i = 0; i < 6; i++)
        CHECK(nb_tensor_get(t, i) == 0.0, "an out-of-range set wrote [%d]", i);
    nb_tensor_fill(t, 1e300); /* past f32: becomes infinity, not a trap */
    CHECK(isinf(nb_tensor_get(t, 0)), "f32 1e300 reads %g",
          nb_tensor_get(t, 0));
    CHECK(nb_tensor_copy_from_f64(t, NULL, -1) == -1, "negative count");
    nb_tensor_free(t);

    const int64_t shape[] = {INT64_MAX, INT64_MIN, -1, 0, 123456789, 1, 2, 3};
    for (size_t len = 0; len <= 40; len++) {
        /* Exactly len bytes on the heap, so a write past them is caught. */
        char *buf = len ? malloc(len) : NULL;
        char *r = nb_shape_str(8, shape, buf, len);
        CHECK(r == buf, "shape_str returned another pointer");
        if (len) {
            CHECK(memchr(buf, '\0', len) != NULL,
                  "shape_str into %zu bytes is not terminated", len);
            CHECK(buf[0] == '[' || len == 1, "shape_str wrote '%s'", buf);
        }
        free(buf);
    }
    char full[256];
    nb_shape_str(0, NULL, full, sizeof full);
    CHECK(strcmp(full, "[]") == 0, "scalar shape text '%s'", full);
    nb_shape_str(3, SHAPE(2, 0, 7), full, sizeof full);
    CHECK(strcmp(full, "[2,0,7]") == 0, "shape text '%s'", full);
}

/* Feeding an input from its own value buffer (re-marking it fed) is a
 * copy onto itself: it must not be undefined behaviour. */
static void test_feed_from_own_buffer(void)
{
    scenario = "feed_from_own_buffer";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *s = nb_sum(g, x);
    CHECK(nb_feed(g, x, 1, SHAPE(3), (const double[]){1, 2, 3}) == NB_OK, "%s",
          msg_or(g));
    const void *own = nb_tensor_cdata(nb_node_value(x));
    CHECK(nb_feed(g, x, 1, SHAPE(3), own) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, s) == NB_OK, "%s", msg_or(g));
    CHECK(nb_tensor_get(nb_node_value(s), 0) == 6.0, "sum %g",
          nb_tensor_get(nb_node_value(s), 0));
    /* A smaller batch from the front of its own buffer. */
    own = nb_tensor_cdata(nb_node_value(x));
    CHECK(nb_feed(g, x, 1, SHAPE(2), own) == NB_OK, "%s", msg_or(g));
    CHECK(nb_forward(g, s) == NB_OK, "%s", msg_or(g));
    CHECK(nb_tensor_get(nb_node_value(s), 0) == 3.0, "sum %g",
          nb_tensor_get(nb_node_value(s), 0));
    check_usable(g);
    nb_graph_free(g);
}

/* The shape ops with every kind of wrong argument, each refused with a
 * message naming the op; and a concat of many inputs (more than any
 * earlier op had) computes the right values and gradients. */
static void test_shape_ops_hostile(void)
{
    scenario = "shape_ops_hostile";
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 2, SHAPE(2, 3));
    nb_node *y32 = nb_param(g, "y32", NB_F32, 2, SHAPE(2, 3));
    nb_node *r3 = nb_param(g, "r3", NB_F64, 3, SHAPE(2, 3, 1));
    nb_node *s = nb_scalar(g, NULL, NB_F64, 1.0);
    SET(x, 1, 2, 3, 4, 5, 6);

    const struct {
        int rank;
        const int64_t *shape;
    } reshapes[] = {
        {2, SHAPE(-1, -1)},
        {2, SHAPE(4, 2)},
        {1, SHAPE(-2)},
        {2, SHAPE(0, -1)},
        {3, SHAPE(1, -1, 4)},
        {-1, SHAPE(6)},
        {NB_MAX_RANK + 1, SHAPE(1, 1, 1, 1, 1, 1, 1, 6, 1)},
        {1, NULL},
        {1, SHAPE(INT64_MIN)},
        {0, NULL},
    };
    for (int i = 0; i < 10; i++) {
        iteration = i;
        RCHECK(nb_reshape(g, x, reshapes[i].rank, reshapes[i].shape) == NULL,
               "bad reshape accepted");
        CHECK_ERROR(g, "reshape");
    }
    const int64_t perms[][NB_MAX_RANK] = {
        {0, 0}, {1, 2}, {-1, 0}, {2, 1}, {INT64_MIN, INT64_MAX}};
    for (int i = 0; i < 5; i++) {
        iteration = i;
        RCHECK(nb_permute(g, x, 2, perms[i]) == NULL, "bad perm accepted");
        RCHECK(strstr(msg_or(g), "perm"), "message '%s'", msg_or(g));
        nb_graph_clear_error(g);
    }
    RCHECK(nb_permute(g, x, 2, NULL) == NULL, "NULL perm accepted");
    CHECK_ERROR(g, "perm");
    RCHECK(nb_transpose(g, s) == NULL, "transpose of a scalar");
    CHECK_ERROR(g, "permute");

    const struct {
        int axis;
        int64_t start, end;
    } slices[] = {
        {2, 0, 1},
        {-3, 0, 1},
        {INT_MIN, 0, 1},
        {1, 2, 1},
        {1, 0, 4},
        {1, -4, NB_SLICE_END},
        {1, 4, NB_SLICE_END},
        {0, INT64_MIN, 1},
        {0, 0, INT64_MAX - 1},
        {0, INT64_MAX, NB_SLICE_END},
        {1, -1, -2},
        {0, 3, 3},
    };
    for (int i = 0; i < 12; i++) {
        iteration = i;
        RCHECK(nb_slice(g, x, slices[i].axis, slices[i].start, slices[i].end) ==
                   NULL,
               "bad slice accepted");
        CHECK_ERROR(g, "slice");
    }
    RCHECK(nb_slice(g, s, 0, 0, 1) == NULL, "slice of a scalar");
    CHECK_ERROR(g, "slice");
    /* Edges that are fine: empty slices, counting from the end. */
    nb_node *e = nb_slice(g, x, 1, 3, NB_SLICE_END);
    nb_node *t = nb_slice(g, x, -1, -2, -1);
    CHECK(e && nb_tensor_dim(nb_node_value(e), 1) == 0, "empty slice");
    CHECK(t && nb_forward(g, t) == NB_OK &&
              nb_tensor_get(nb_node_value(t), 0) == 2 &&
              nb_tensor_get(nb_node_value(t), 1) == 5,
          "slice -2:-1: %s", msg_or(g));

    const struct {
        int rank;
        const int64_t *shape;
    } bcast[] = {
        {1, SHAPE(3)},     {2, SHAPE(3, 3)},
        {2, SHAPE(2, -1)}, {3, SHAPE(2, 3, 3)},
        {-1, SHAPE(1)},    {NB_MAX_RANK + 1, SHAPE(1, 1, 1, 1, 1, 1, 1, 2, 3)},
        {2, NULL},         {2, SHAPE(0, 3)},
    };
    for (int i = 0; i < 8; i++) {
        iteration = i;
        RCHECK(nb_broadcast_to(g, x, bcast[i].rank, bcast[i].shape) == NULL,
               "bad broadcast_to accepted");
        CHECK_ERROR(g, "broadcast_to");
    }
    iteration = -1;

    /* concat: nothing, a NULL list, mixed dtypes, ranks, extents, axes. */
    CHECK(nb_concat(g, 0, (nb_node *[]){x}, 0) == NULL, "concat of none");
    CHECK_ERROR(g, "concat");
    CHECK(nb_concat(g, -3, (nb_node *[]){x}, 0) == NULL, "concat of -3");
    CHECK_ERROR(g, "concat");
    CHECK(nb_concat(g, 2, NULL, 0) == NULL, "concat of a NULL list");
    CHECK_ERROR(g, "concat");
    CHECK(nb_concat(g, 0, NULL, 0) == NULL, "concat of none, NULL list");
    CHECK_ERROR(g, "concat");
    CHECK(nb_concat(g, 2, (nb_node *[]){x, y32}, 0) == NULL, "mixed dtypes");
    CHECK_ERROR(g, "concat", "f32");
    CHECK(nb_concat(g, 2, (nb_node *[]){x, r3}, 0) == NULL, "mixed ranks");
    CHECK_ERROR(g, "concat");
    CHECK(nb_concat(g, 2, (nb_node *[]){x, nb_transpose(g, x)}, 0) == NULL,
          "mismatched extents");
    CHECK_ERROR(g, "concat");
    CHECK(nb_concat(g, 2, (nb_node *[]){x, x}, 2) == NULL, "axis 2 of rank 2");
    CHECK_ERROR(g, "concat", "axis");
    CHECK(nb_concat(g, 2, (nb_node *[]){s, s}, 0) == NULL, "scalars");
    CHECK_ERROR(g, "concat");

    /* 20 inputs, x appearing several times: y = [x|p_1|x|p_2|...]. */
    enum { N = 20 };
    nb_node *xs[N], *ps[N / 2];
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            xs[i] = x;
        } else {
            ps[i / 2] = nb_param(g, "p", NB_F64, 2, SHAPE(2, 1));
            SET(ps[i / 2], (double)i, (double)-i);
            xs[i] = ps[i / 2];
        }
    }
    nb_node *cat = nb_concat(g, N, xs, -1);
    nb_node *loss = nb_sum(g, nb_square(g, cat));
    CHECK(cat && loss, "concat of 20: %s", msg_or(g));
    if (cat && loss) {
        CHECK(nb_tensor_dim(nb_node_value(cat), 1) == 10 * 3 + 10,
              "concat extent %lld",
              (long long)nb_tensor_dim(nb_node_value(cat), 1));
        CHECK(nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
        double want = 10 * (1 + 4 + 9 + 16 + 25 + 36);
        for (int i = 1; i < N; i += 2)
            want += 2.0 * i * i;
        CHECK_NEAR(nb_tensor_get(nb_node_value(loss), 0), want, 1e-9);
        CHECK(nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
        nb_tensor *gx = nb_node_grad(x);
        /* x appears 10 times: d/dx sum x^2 = 10 * 2x */
        for (int i = 0; gx && i < 6; i++)
            CHECK_NEAR(nb_tensor_get(gx, i), 20.0 * (i + 1), 1e-9);
        CHECK(gx != NULL, "x has no gradient");
        nb_tensor *gp = nb_node_grad(ps[3]);
        CHECK(gp && nb_tensor_get(gp, 0) == 14.0 &&
                  nb_tensor_get(gp, 1) == -14.0,
              "gradient of the 4th param");
    }
    check_usable(g);
    nb_graph_free(g);
}

/* gradcheck with options out of their domain (negative, NaN or infinite
 * step and tolerances) runs or refuses, never crashes, and always puts
 * the parameters back; on an f32 graph and on one with dropout too. */
static void test_gradcheck_hostile_options(void)
{
    scenario = "gradcheck_hostile_options";
    const nb_gradcheck_options opts[] = {
        {-1, 0, 0, 1},    {NAN, 0, 0, 2},      {INFINITY, 0, 0, 3},
        {1e300, 0, 0, 4}, {DBL_MIN, 0, 0, 5},  {0, NAN, NAN, 6},
        {0, -1, -1, 7},   {0, INFINITY, 0, 8}, {1e-3, 1e-2, 1e-2, 0},
    };
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype dtype = dt ? NB_F32 : NB_F64;
        nb_graph *g = nb_graph_new();
        nb_node *w = nb_param(g, "w", dtype, 2, SHAPE(2, 3));
        SET(w, 0.5, -1, 2, 0.25, -0.75, 1.5);
        nb_node *h = nb_dropout(g, nb_tanh(g, w), 0.4);
        nb_node *y = nb_mean(g, nb_mul(g, h, w));
        CHECK(y != NULL, "setup: %s", msg_or(g));
        double *before = snapshot(nb_node_value(w));
        for (int i = 0; y && i < (int)(sizeof opts / sizeof *opts); i++) {
            iteration = dt * 100 + i;
            nb_gradcheck_result res;
            int rc = nb_gradcheck(g, y, &opts[i], &res);
            RCHECK(rc == NB_OK || (rc < 0 && has_message(g)),
                   "gradcheck returned %d: %s", rc, msg_or(g));
            RCHECK(memchr(res.message, '\0', sizeof res.message) != NULL,
                   "result message not terminated");
            double *after = snapshot(nb_node_value(w));
            RCHECK(before && after &&
                       memcmp(before, after, 6 * sizeof(double)) == 0,
                   "gradcheck changed w");
            free(after);
            nb_graph_clear_error(g);
        }
        iteration = -1;
        /* The plain check still passes afterwards (f64; f32 is too coarse
         * to promise anything). */
        nb_gradcheck_result res;
        int rc = nb_gradcheck(g, y, NULL, &res);
        CHECK(rc == NB_OK, "gradcheck: %d %s", rc, msg_or(g));
        if (!dt)
            CHECK(res.passed, "gradcheck after hostile options: %s",
                  res.message);
        free(before);
        check_usable(g);
        nb_graph_free(g);
    }
}

/* Empty tensors through every op: a forward and a backward on a tensor
 * with no elements must do nothing wrong (no pointer arithmetic on the
 * missing scratch of an empty output, no read of a missing element), and
 * reductions over each axis, empty or not, either work or say why. */
static void test_empty_tensors_every_op(void)
{
    scenario = "empty_tensors_every_op";
    const struct {
        int rank;
        const int64_t *shape;
    } shapes[] = {
        {1, SHAPE(0)},       {2, SHAPE(2, 0)},    {2, SHAPE(0, 3)},
        {3, SHAPE(2, 3, 0)}, {3, SHAPE(0, 2, 2)}, {2, SHAPE(0, 0)},
    };
    for (int s = 0; s < (int)(sizeof shapes / sizeof *shapes); s++) {
        for (int dt = 0; dt < 2; dt++) {
            nb_dtype dtype = dt ? NB_F32 : NB_F64;
            nb_graph *g = nb_graph_new();
            int rank = shapes[s].rank;
            nb_node *a = nb_param(g, "a", dtype, rank, shapes[s].shape);
            nb_node *b = nb_param(g, "b", dtype, rank, shapes[s].shape);
            int64_t rows = 1;
            for (int i = 0; i + 1 < rank; i++)
                rows *= shapes[s].shape[i];
            nb_node *labels = nb_constant(g, "labels", dtype, 1, SHAPE(rows));
            nb_node *outs[N_ALL_OPS + 64];
            const char *names[N_ALL_OPS + 64];
            int n_outs = 0;
            for (int i = 0; i < N_ALL_OPS; i++) {
                const char *name = all_ops[i].name;
                bool indexed = strstr(name, "index") || strstr(name, "nll") ||
                       strstr(name, "embedding");
                names[n_outs] = name;
                outs[n_outs++] = all_ops[i].fn(g, a, indexed ? labels : b);
                nb_graph_clear_error(g);
            }
            for (int axis = -rank; axis < rank; axis++) {
                for (int keep = 0; keep < 2; keep++) {
                    names[n_outs] = "sum_axis";
                    outs[n_outs++] = nb_sum_axis(g, a, axis, keep);
                    names[n_outs] = "max_axis";
                    outs[n_outs++] = nb_max_axis(g, a, axis, keep);
                    names[n_outs] = "logsumexp_axis";
                    outs[n_outs++] = nb_logsumexp_axis(g, a, axis, keep);
                }
                names[n_outs] = "slice";
                outs[n_outs++] = nb_slice(g, a, axis, 0, NB_SLICE_END);
                nb_graph_clear_error(g);
            }
            for (int k = 0; k < n_outs; k++) {
                iteration = s * 1000 + dt * 500 + k;
                if (!outs[k])
                    continue;
                int rc = nb_forward(g, outs[k]);
                RCHECK(rc == NB_OK || (rc < 0 && has_message(g)),
                       "%s on an empty input: forward %d", names[k], rc);
                if (rc != NB_OK) {
                    nb_graph_clear_error(g);
                    continue;
                }
                touch_tensor(nb_node_value(outs[k]), names[k]);
                const nb_tensor *v = nb_node_value(outs[k]);
                nb_tensor *seed = nb_tensor_new(
                    nb_tensor_dtype(v), nb_tensor_rank(v), nb_tensor_shape(v));
                if (seed)
                    nb_tensor_fill(seed, 1.0);
                rc = nb_backward_ex(g, outs[k], seed, 0);
                RCHECK(rc == NB_OK, "%s on an empty input: backward %d %s",
                       names[k], rc, msg_or(g));
                nb_graph_clear_error(g);
                nb_tensor *ga = nb_node_grad(a);
                if (ga)
                    touch_tensor(ga, "gradient of an empty input");
                nb_tensor_free(seed);
            }
            iteration = -1;
            check_usable(g);
            nb_graph_free(g);
        }
    }
}

static void test_gradcheck_smooth_200(void)
{
    test_gradcheck_smooth(200);
}

int main(void)
{
    static const robustness_scenario scenarios[] = {
        {"all_ops_cover_the_list", test_all_ops_cover_the_list},
        {"batch_change_before_backward", test_batch_change_before_backward},
        {"flag_flips", test_flag_flips},
        {"backward_with_nothing_to_train", test_backward_with_nothing_to_train},
        {"nodes_after_batch_change", test_nodes_after_batch_change},
        {"accumulate_across_batches", test_accumulate_across_batches},
        {"failed_forward_keeps_leaves", test_failed_forward_keeps_leaves},
        {"stale_failure_names_constructor",
         test_stale_failure_names_constructor},
        {"tensor_new_bad", test_tensor_new_bad},
        {"tensor_accessors_hostile", test_tensor_accessors_hostile},
        {"feed_from_own_buffer", test_feed_from_own_buffer},
        {"huge_shapes", test_huge_shapes},
        {"reshape_overflowing_product", test_reshape_overflowing_product},
        {"every_constructor_bad_nodes", test_every_constructor_bad_nodes},
        {"hostile_arguments", test_hostile_arguments},
        {"shape_ops_hostile", test_shape_ops_hostile},
        {"empty_tensors_every_op", test_empty_tensors_every_op},
        {"hostile_labels", test_hostile_labels},
        {"sticky_chain", test_sticky_chain},
        {"run_hostile", test_run_hostile},
        {"gradcheck_hostile_options", test_gradcheck_hostile_options},
        {"gradcheck_smooth", test_gradcheck_smooth_200},
    };
    return robustness_main("robustness_scenarios", scenarios,
                           sizeof scenarios / sizeof *scenarios);
}
