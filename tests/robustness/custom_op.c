/* Robustness of user-defined op tables (op.h): nb_apply and the executor
 * must survive bad ones (no name, no infer or forward, negative or huge
 * counts, huge attribute sizes, shape rules that lie), each an isolated
 * scenario (robustness/common.h). */
#include "robustness/common.h"

/* ---- user-defined op tables (op.h): nb_apply must survive bad ones ---- */

typedef struct custom_attrs {
    int mode;
    int rank;
    int64_t extent;
} custom_attrs;

/* A shape rule steered by its attributes into each way of going wrong. */
static int custom_infer(nb_op_call *c)
{
    const custom_attrs *at = c->attrs;
    switch (at ? at->mode : 0) {
    case 1:
        return 5; /* fails without nb_op_fail */
    case 2:
        return NB_ERR_NOMEM; /* likewise, with a real code */
    case 3:
        c->out_rank = 0;
        return 0; /* forgets the dtype */
    default:
        break;
    }
    c->out_dtype = NB_F64;
    c->out_rank = at ? at->rank : 0;
    for (int i = 0; i < 8; i++)
        c->out_shape[i] = at ? at->extent : 1;
    return 0;
}

static int custom_forward(nb_op_call *c)
{
    const custom_attrs *at = c->attrs;
    if (at && at->mode == 10)
        return -1; /* a runtime failure that forgets nb_op_fail */
    if (at && at->mode == 11)
        return 3;
    nb_tensor_fill(c->out, 2.0);
    return 0;
}

static int custom_backward(nb_op_call *c)
{
    const custom_attrs *at = c->attrs;
    if (at && at->mode == 12)
        return -1;
    for (int i = 0; i < c->n_inputs; i++)
        if (c->in_grad[i])
            for (int64_t k = 0; k < nb_tensor_size(c->in_grad[i]); k++)
                nb_tensor_set(c->in_grad[i], k,
                              nb_tensor_get(c->in_grad[i], k) + 1.0);
    return 0;
}

static const nb_op custom_op = {
    .struct_size = sizeof(nb_op),
    .name = "custom",
    .min_inputs = 0,
    .max_inputs = 2,
    .attr_size = sizeof(custom_attrs),
    .doc = "y = 2",
    .infer = custom_infer,
    .forward = custom_forward,
    .backward = custom_backward,
};

/* Shape rules that fail silently or give nonsense, and runs that fail
 * without nb_op_fail: every failure leaves a message naming the op. */
static void test_custom_op_contract(void)
{
    scenario = "custom_op_contract";
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 0, NULL);

    const nb_op no_name = {
        .struct_size = sizeof(nb_op),
        .name = NULL,
        .min_inputs = 0,
        .max_inputs = 0,
        .attr_size = 0,
        .doc = "",
        .infer = custom_infer,
        .forward = custom_forward,
        .backward = NULL,
    };
    const nb_op no_infer = {
        .struct_size = sizeof(nb_op),
        .name = "no_infer",
        .min_inputs = 0,
        .max_inputs = 0,
        .attr_size = 0,
        .doc = "",
        .infer = NULL,
        .forward = custom_forward,
        .backward = NULL,
    };
    const nb_op no_forward = {
        .struct_size = sizeof(nb_op),
        .name = "no_forward",
        .min_inputs = 0,
        .max_inputs = 0,
        .attr_size = 0,
        .doc = "",
        .infer = custom_infer,
        .forward = NULL,
        .backward = NULL,
    };
    CHECK(nb_apply(g, NULL, 0, NULL, NULL) == NULL, "NULL op applied");
    CHECK_ERROR(g, "apply");
    CHECK(nb_apply(g, &no_name, 0, NULL, NULL) == NULL, "nameless op");
    CHECK_ERROR(g, "apply");
    CHECK(nb_apply(g, &no_infer, 0, NULL, NULL) == NULL, "op without infer");
    CHECK_ERROR(g, "infer");
    CHECK(nb_apply(g, &no_forward, 0, NULL, NULL) == NULL,
          "op without forward");
    CHECK_ERROR(g, "forward");
    CHECK(nb_apply(NULL, &custom_op, 0, NULL, NULL) == NULL, "NULL graph");

    /* Arity: too many, a NULL list, a negative count. */
    CHECK(nb_apply(g, &custom_op, 3, (nb_node *[]){w, w, w}, NULL) == NULL,
          "3 inputs to a 0..2 op");
    const char *m = msg_or(g);
    CHECK(strstr(m, "custom") && strstr(m, "2") && strstr(m, "3"),
          "arity message '%s' should give the range 0 to 2 and the 3 given", m);
    nb_graph_clear_error(g);
    CHECK(nb_apply(g, &custom_op, 2, NULL, NULL) == NULL, "NULL input list");
    CHECK_ERROR(g, "custom");
    CHECK(nb_apply(g, &custom_op, -1, NULL, NULL) == NULL,
          "negative input count");
    CHECK_ERROR(g, "custom");

    const custom_attrs bad[] = {
        {1, 0, 1},
        {2, 0, 1},
        {3, 0, 1},
        {0, -1, 1},
        {0, 9, 1},
        {0, INT_MAX, 1},
        {0, 2, -3},
        {0, 1, (INT64_C(1) << 40) + 1},
        {0, 3, INT64_C(1) << 20},
    };
    for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
        iteration = i;
        int64_t count = nb_graph_node_count(g);
        RCHECK(nb_apply(g, &custom_op, 1, &w, &bad[i]) == NULL,
               "bad shape rule accepted");
        RCHECK(has_message(g) && strstr(msg_or(g), "custom"),
               "bad shape rule: message '%s'", msg_or(g));
        RCHECK(nb_graph_status(g) < 0, "status %d", nb_graph_status(g));
        RCHECK(nb_graph_node_count(g) == count, "a rejected op left a node");
        nb_graph_clear_error(g);
    }
    iteration = -1;

    /* Forward and backward failures without nb_op_fail. */
    const custom_attrs fwd_fail = {10, 0, 1}, fwd_positive = {11, 0, 1},
                       bwd_fail = {12, 0, 1};
    nb_node *y = nb_apply(g, &custom_op, 1, &w, &fwd_fail);
    CHECK(y != NULL, "%s", msg_or(g));
    int rc = nb_forward(g, y);
    CHECK(rc < 0, "silent forward failure returned %d", rc);
    CHECK(has_message(g) && strstr(msg_or(g), "custom"),
          "a forward that fails without nb_op_fail leaves message '%s'",
          msg_or(g));
    nb_graph_clear_error(g);
    y = nb_apply(g, &custom_op, 1, &w, &fwd_positive);
    rc = nb_forward(g, y);
    CHECK(rc < 0, "forward returning 3 gave %d", rc);
    CHECK(has_message(g) && strstr(msg_or(g), "custom"),
          "a forward returning 3 leaves message '%s'", msg_or(g));
    nb_graph_clear_error(g);
    y = nb_apply(g, &custom_op, 1, &w, &bwd_fail);
    CHECK(nb_forward(g, y) == NB_OK, "%s", msg_or(g));
    rc = nb_backward(g, y);
    CHECK(rc < 0, "silent backward failure returned %d", rc);
    CHECK(has_message(g) && strstr(msg_or(g), "custom"),
          "a backward that fails without nb_op_fail leaves message '%s'",
          msg_or(g));
    nb_graph_clear_error(g);

    /* A good custom op next to all that. */
    const custom_attrs good = {0, 2, 3};
    y = nb_apply(g, &custom_op, 2, (nb_node *[]){w, w}, &good);
    nb_node *loss = nb_sum(g, y);
    CHECK(loss && nb_forward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(loss && nb_tensor_get(nb_node_value(loss), 0) == 18.0,
          "custom sum %g", loss ? nb_tensor_get(nb_node_value(loss), 0) : 0);
    CHECK(loss && nb_backward(g, loss) == NB_OK, "%s", msg_or(g));
    CHECK(nb_node_grad(w) && nb_tensor_get(nb_node_grad(w), 0) == 2.0,
          "custom gradient");
    check_usable(g);
    nb_graph_free(g);
}

/* An op table whose arity bounds are negative must not let a negative
 * input count through: nb_apply would size the input list with it. */
static void test_custom_op_negative_count(void)
{
    scenario = "custom_op_negative_count";
    const nb_op loose = {
        .struct_size = sizeof(nb_op),
        .name = "loose",
        .min_inputs = -5,
        .max_inputs = -1,
        .attr_size = 0,
        .doc = "",
        .infer = custom_infer,
        .forward = custom_forward,
        .backward = NULL,
    };
    nb_graph *g = nb_graph_new();
    nb_node *n = nb_apply(g, &loose, -1, NULL, NULL);
    CHECK(n == NULL, "an op applied to -1 inputs was built");
    CHECK_ERROR(g, "loose");
    /* The arena must still be sound for what follows. */
    nb_node *p = nb_param(g, "after_negative_count", NB_F64, 1, SHAPE(3));
    CHECK(p != NULL, "%s", msg_or(g));
    check_usable(g);
    nb_graph_free(g);
}

/* An attribute block too large to allocate is an allocation failure, not
 * a wrapped size. */
static void test_custom_op_huge_attr_size(void)
{
    scenario = "custom_op_huge_attr_size";
    const nb_op huge = {
        .struct_size = sizeof(nb_op),
        .name = "huge_attrs",
        .min_inputs = 0,
        .max_inputs = 0,
        .attr_size = SIZE_MAX,
        .doc = "",
        .infer = custom_infer,
        .forward = custom_forward,
        .backward = NULL,
    };
    const nb_op big = {
        .struct_size = sizeof(nb_op),
        .name = "big_attrs",
        .min_inputs = 0,
        .max_inputs = 0,
        .attr_size = SIZE_MAX - 32,
        .doc = "",
        .infer = custom_infer,
        .forward = custom_forward,
        .backward = NULL,
    };
    nb_graph *g = nb_graph_new();
    CHECK(nb_apply(g, &huge, 0, NULL, NULL) == NULL,
          "a SIZE_MAX attribute block was allocated");
    CHECK_ERROR(g, "huge_attrs");
    CHECK(nb_apply(g, &big, 0, NULL, NULL) == NULL,
          "a SIZE_MAX - 32 attribute block was allocated");
    CHECK_ERROR(g, "big_attrs");
    check_usable(g);
    nb_graph_free(g);
}

int main(void)
{
    static const robustness_scenario scenarios[] = {
        {"custom_op_contract", test_custom_op_contract},
        {"custom_op_negative_count", test_custom_op_negative_count},
        {"custom_op_huge_attr_size", test_custom_op_huge_attr_size},
    };
    return robustness_main("robustness_custom_op", scenarios,
                           sizeof scenarios / sizeof *scenarios);
}
