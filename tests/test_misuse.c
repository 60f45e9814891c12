/* Misuse that the library must answer with an error rather than a crash, a
 * hang or a silent wrong result: a shape string asked for an impossible
 * rank, the gradient a loss does not reach, a node of another graph given
 * to the identity activation, the all-zero RNG state, unknown flag bits,
 * and a NaN that checking mode must name where it starts. */
#include <stdint.h>

#include "test_util.h"

static void test_shape_str_bad_rank(void)
{
    /* Exactly NB_MAX_RANK extents: rank 99 must not read past them (ASan
     * reports the overread in the sanitizer builds). */
    int64_t *shape = malloc(NB_MAX_RANK * sizeof *shape);
    for (int i = 0; i < NB_MAX_RANK; i++)
        shape[i] = 7;
    char buf[1024];
    nb_shape_str(99, shape, buf, sizeof buf);
    CHECK(strstr(buf, "99") != NULL, "'%s' does not name the rank", buf);
    nb_shape_str(-3, shape, buf, sizeof buf);
    CHECK(strstr(buf, "-3") != NULL, "'%s' does not name the rank", buf);
    nb_shape_str(2, NULL, buf, sizeof buf);
    CHECK(buf[0] == '[', "'%s'", buf);
    nb_shape_str(2, shape, buf, sizeof buf);
    CHECK(strcmp(buf, "[7,7]") == 0, "'%s'", buf);
    CHECK(nb_shape_str(2, shape, NULL, 16) == NULL, "NULL buffer");
    free(shape);
}

static void test_unreached_grad(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F64, 1, SHAPE(3));
    nb_node *v = nb_param(g, "v", NB_F64, 1, SHAPE(3));
    nb_node *loss = nb_sum(g, a);
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "%s",
          nb_graph_error(g));
    /* v is documented to have no gradient; asking its size is the usual
     * next line of a user's code. */
    nb_tensor *gv = nb_node_grad(v);
    CHECK(gv == NULL, "v has a gradient");
    CHECK(nb_tensor_size(gv) == 0, "size of NULL");
    CHECK(nb_tensor_rank(gv) == 0, "rank of NULL");
    CHECK(nb_tensor_data(gv) == NULL, "data of NULL");
    CHECK(isnan(nb_tensor_get(gv, 0)), "get of NULL");
    CHECK(nb_tensor_copy_from_f64(gv, (double[]){1}, 1) == NB_ERR_ARG,
          "copy into NULL");
    nb_graph_free(g);
}

static void test_activate_foreign(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph *other = nb_graph_new();
    nb_node *x = nb_input(other, "x_of_other", NB_F32, 1, SHAPE(2));
    for (int act = 0; act <= NB_ACT_SOFTMAX; act++) {
        nb_node *y = nb_activate(g, x, (nb_activation)act, 0);
        CHECK(y == NULL, "activate %s returned a node for a foreign input",
              nb_activation_name((nb_activation)act));
        CHECK_ERROR(g, "x_of_other", "another graph");
    }
    CHECK(nb_graph_error(other) == NULL, "the other graph got the error");
    nb_graph_free(other);
    nb_graph_free(g);
}

static void test_rng_zero_state(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 42);
    uint64_t before[4], after[4];
    nb_rng_get_state(g, before);
    /* Accepting it would make nb_rng_below loop for ever: every draw of the
     * all-zero state is 0, below any rejection threshold of n = 3. */
    const uint64_t zero[4] = {0, 0, 0, 0};
    CHECK(nb_rng_set_state(g, zero) == NB_ERR_ARG, "all-zero state accepted");
    CHECK_ERROR(g, "rng_set_state", "zero");
    nb_rng_get_state(g, after);
    CHECK(memcmp(before, after, sizeof before) == 0, "state changed");
    CHECK(nb_rng_set_state(g, NULL) == NB_ERR_ARG, "NULL state accepted");
    CHECK_ERROR(g, "rng_set_state");
    const uint64_t one[4] = {0, 0, 1, 0};
    CHECK(nb_rng_set_state(g, one) == NB_OK, "%s", nb_graph_error(g));
    nb_rng_get_state(g, after);
    CHECK(memcmp(after, one, sizeof one) == 0, "state not set");
    CHECK(nb_rng_below(g, 3) < 3, "below");
    nb_graph_free(g);
}

static void test_unknown_flags(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(2));
    nb_node *loss = nb_sum(g, nb_mul(g, w, w));
    SET(w, 1.0, 2.0);
    CHECK(nb_forward(g, loss) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_backward_ex(g, loss, NULL, 99) == NB_ERR_ARG, "flags 99 accepted");
    CHECK_ERROR(g, "backward", "flags");
    CHECK(nb_backward_ex(g, loss, NULL, 1u << 31) == NB_ERR_ARG,
          "flag bit 31 accepted");
    CHECK_ERROR(g, "flags");
    CHECK(nb_backward_ex(g, loss, NULL, NB_BACKWARD_ACCUMULATE) == NB_OK, "%s",
          nb_graph_error(g));

    FILE *f = tmpfile();
    CHECK(nb_graph_write_dot(g, loss, f, 1u << 7) == NB_ERR_ARG,
          "dot flags accepted");
    CHECK_ERROR(g, "write_dot", "flags");
    CHECK(nb_graph_write_dot(g, loss, f, NB_DOT_VALUES | NB_DOT_GRADS |
                                             NB_DOT_LEFT_RIGHT) == NB_OK,
          "%s", nb_graph_error(g));
    nb_trace *t = nb_trace_run(g, loss);
    CHECK(t != NULL, "%s", nb_graph_error(g));
    CHECK(nb_trace_write_dot(t, f, 1u << 9) == NB_ERR_ARG,
          "trace dot flags accepted");
    CHECK(nb_trace_write_dot(t, f, NB_DOT_GRADS) == NB_OK, "trace dot");
    nb_trace_free(t);
    fclose(f);
    nb_graph_free(g);
}

/* x [1,2] -> matmul W1 [2,2] -> tanh -> sum, in checking mode. */
struct net {
    nb_graph *g;
    nb_node *x, *w, *loss;
};

static struct net make_net(void)
{
    struct net n;
    n.g = nb_graph_new();
    n.x = nb_input(n.g, "x", NB_F32, 2, SHAPE(1, 2));
    n.w = nb_param(n.g, "mlp.1.W", NB_F32, 2, SHAPE(2, 2));
    n.loss = nb_sum(n.g, nb_tanh(n.g, nb_matmul(n.g, n.x, n.w)));
    nb_tensor_fill(nb_node_value(n.w), 0.5);
    nb_graph_set_checking(n.g, true);
    return n;
}

static void test_checking_names_leaf(void)
{
    /* NaN fed in the input. */
    struct net n = make_net();
    float xs[2] = {1.0f, NAN};
    nb_feed(n.g, n.x, 2, SHAPE(1, 2), xs);
    CHECK(nb_forward(n.g, n.loss) == NB_ERR_NONFINITE, "NaN in x passed");
    const char *msg = nb_graph_error(n.g);
    CHECK(msg && strstr(msg, "'x'") && !strstr(msg, "matmul"),
          "message '%s' does not name x alone", msg ? msg : "(none)");
    nb_graph_clear_error(n.g);
    /* Fed finite again, the graph runs. */
    xs[1] = 2.0f;
    nb_feed(n.g, n.x, 2, SHAPE(1, 2), xs);
    CHECK(nb_forward(n.g, n.loss) == NB_OK, "%s", nb_graph_error(n.g));
    nb_graph_free(n.g);

    /* NaN held in a parameter. */
    n = make_net();
    xs[1] = 2.0f;
    nb_feed(n.g, n.x, 2, SHAPE(1, 2), xs);
    nb_tensor_set(nb_node_value(n.w), 3, INFINITY);
    CHECK(nb_forward(n.g, n.loss) == NB_ERR_NONFINITE, "inf in W passed");
    msg = nb_graph_error(n.g);
    CHECK(msg && strstr(msg, "'mlp.1.W'") && strstr(msg, "param"),
          "message '%s' does not name mlp.1.W", msg ? msg : "(none)");
    nb_graph_free(n.g);
}

static void test_checking_names_op_and_inputs(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 1, SHAPE(2));
    nb_node *c = nb_constant(g, "c", NB_F64, 1, SHAPE(2));
    nb_node *d = nb_sub(g, x, c);
    nb_node_set_name(d, "diff");
    nb_node *lg = nb_log(g, d);
    nb_node_set_name(lg, "log_diff");
    nb_node *loss = nb_sum(g, lg);
    nb_graph_set_checking(g, true);
    nb_feed(g, x, 1, SHAPE(2), (double[]){1.0, 2.0});
    SET(c, 0.0, 3.0); /* diff = [1, -1]: the log of -1 is the first NaN */
    CHECK(nb_forward(g, loss) == NB_ERR_NONFINITE, "NaN passed");
    const char *msg = nb_graph_error(g);
    CHECK(msg && strstr(msg, "'log_diff'") && strstr(msg, "'diff'") &&
              !strstr(msg, "'x'"),
          "message '%s' does not name log_diff and its input", msg ? msg : "");
    nb_graph_free(g);
}

int main(void)
{
    test_shape_str_bad_rank();
    test_unreached_grad();
    test_activate_foreign();
    test_rng_zero_state();
    test_unknown_flags();
    test_checking_names_leaf();
    test_checking_names_op_and_inputs();
    return tu_finish("misuse");
}
