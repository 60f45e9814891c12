/* libFuzzer harness, structure-aware: the input is read as a program that
 * builds a graph through the public API (leaves of random, sometimes
 * invalid, dtypes and shapes; unary, binary, reduction, shape and loss
 * constructors on random nodes, NULL included), feeds the inputs, runs
 * forward, backward and an optimiser step. Promises checked beyond "no
 * crash": a constructor returns a node or NULL with a message, a run
 * returns NB_OK or a negative code with a message, a gradient has its
 * node's shape, and after clearing the error the graph still builds and
 * runs a node. */
#include <math.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct src {
    const uint8_t *p;
    size_t n;
};

static unsigned take(struct src *s, unsigned mod)
{
    if (s->n == 0 || mod == 0)
        return 0;
    unsigned v = *s->p++;
    s->n--;
    return v % mod;
}

static double take_value(struct src *s)
{
    static const double special[] = {0.0, -0.0, 1.0, -1.0, 1e30, -1e-30,
                                     INFINITY, NAN, 0.5, 3.0};
    unsigned v = take(s, 64);
    return v < 10 ? special[v] : ((double)v - 37.0) / 8.0;
}

#define MAX_NODES 32

typedef nb_node *(*unary_fn)(nb_graph *, nb_node *);
typedef nb_node *(*binary_fn)(nb_graph *, nb_node *, nb_node *);

static const unary_fn unaries[] = {
    nb_neg, nb_exp, nb_log, nb_sqrt, nb_square, nb_abs, nb_sign, nb_step,
    nb_identity, nb_sigmoid, nb_tanh, nb_relu, nb_selu, nb_softplus, nb_gelu,
    nb_silu, nb_softmax, nb_log_softmax, nb_sum, nb_mean, nb_max, nb_min,
    nb_logsumexp, nb_transpose, nb_l1_penalty, nb_l2_penalty,
};
static const binary_fn binaries[] = {
    nb_add, nb_sub, nb_mul, nb_div, nb_maximum, nb_minimum, nb_matmul,
    nb_prelu, nb_sse_loss, nb_mse_loss, nb_bce_loss, nb_bce_logits_loss,
    nb_cce_loss, nb_softmax_ce_loss, nb_softmax_ce_index_loss, nb_nll_loss,
};

/* A constructor's answer: a node, or NULL with a message on the graph (a
 * NULL input may pass on the message already there). */
static nb_node *checked(nb_graph *g, nb_node *n)
{
    FUZZ_CHECK(n != NULL || nb_graph_error(g) != NULL,
               "a constructor returned NULL with no message");
    return n;
}

static nb_node *pick(struct src *s, nb_node **nodes, int count)
{
    unsigned k = take(s, (unsigned)count + 1);
    return k == (unsigned)count ? NULL : nodes[k];
}

static nb_node *make_leaf(struct src *s, nb_graph *g, int id)
{
    /* Valid extents stay small (the fuzzer should not spend its time filling
     * memory); 2^41 is past the largest shape the library accepts. */
    static const int64_t extents[] = {1, 2, 3, 4, 0, NB_DYNAMIC, -5,
                                      INT64_C(1) << 41};
    int rank = (int)take(s, 5);
    if (take(s, 16) == 0)
        rank = 9; /* beyond NB_MAX_RANK */
    int64_t shape[NB_MAX_RANK + 2] = {0};
    for (int i = 0; i < rank && i < NB_MAX_RANK + 2; i++)
        shape[i] = extents[take(s, i == 0 ? 8 : 5)];
    nb_dtype dtype = (nb_dtype)take(s, 3); /* 2 is no dtype */
    char name[32];
    snprintf(name, sizeof name, "leaf%d", id);
    nb_node *n;
    switch (take(s, 3)) {
    case 0: n = nb_input(g, name, dtype, rank, shape); break;
    case 1: n = nb_param(g, name, dtype, rank, shape); break;
    default: n = nb_constant(g, name, dtype, rank, shape); break;
    }
    if (n && nb_node_get_kind(n) != NB_NODE_INPUT) {
        nb_tensor *v = nb_node_value(n);
        for (int64_t i = 0; i < nb_tensor_size(v) && i < 64; i++)
            nb_tensor_set(v, i, take_value(s));
    }
    return checked(g, n);
}

static nb_node *make_op(struct src *s, nb_graph *g, nb_node **nodes, int count)
{
    nb_node *a = pick(s, nodes, count);
    switch (take(s, 8)) {
    case 0:
    case 1:
        return checked(g, unaries[take(s, sizeof unaries / sizeof *unaries)](g, a));
    case 2:
    case 3:
        return checked(g, binaries[take(s, sizeof binaries / sizeof *binaries)](
                              g, a, pick(s, nodes, count)));
    case 4: {
        int axis = (int)take(s, 9) - 4;
        bool keep = take(s, 2);
        switch (take(s, 4)) {
        case 0: return checked(g, nb_sum_axis(g, a, axis, keep));
        case 1: return checked(g, nb_mean_axis(g, a, axis, keep));
        case 2: return checked(g, nb_max_axis(g, a, axis, keep));
        default: return checked(g, nb_logsumexp_axis(g, a, axis, keep));
        }
    }
    case 5: {
        int64_t shape[4];
        int rank = (int)take(s, 4);
        for (int i = 0; i < rank; i++)
            shape[i] = (int64_t)take(s, 7) - 1;
        if (take(s, 2))
            return checked(g, nb_reshape(g, a, rank, shape));
        return checked(g, nb_broadcast_to(g, a, rank, shape));
    }
    case 6: {
        int axis = (int)take(s, 5) - 2;
        if (take(s, 2)) {
            nb_node *xs[3] = {a, pick(s, nodes, count), pick(s, nodes, count)};
            return checked(g, nb_concat(g, 1 + (int)take(s, 3), xs, axis));
        }
        int64_t start = (int64_t)take(s, 5) - 1, stop = (int64_t)take(s, 6) - 1;
        return checked(g, nb_slice(g, a, axis, start, stop));
    }
    default: {
        double c = take_value(s);
        switch (take(s, 6)) {
        case 0: return checked(g, nb_scale(g, a, c));
        case 1: return checked(g, nb_add_scalar(g, a, c));
        case 2: return checked(g, nb_leaky_relu(g, a, c));
        case 3: return checked(g, nb_elu(g, a, c));
        case 4: return checked(g, nb_dropout(g, a, c));
        default: return checked(g, nb_maxout(g, a, (int)take(s, 4)));
        }
    }
    }
}

/* A negative result comes with a message. */
static void check_rc(nb_graph *g, int rc, const char *what)
{
    FUZZ_CHECK(rc == NB_OK || (rc < 0 && nb_graph_error(g) != NULL),
               "%s returned %d with %s", what, rc,
               nb_graph_error(g) ? nb_graph_error(g) : "no message");
}

static void feed_inputs(struct src *s, nb_graph *g, nb_node **nodes, int count)
{
    for (int i = 0; i < count; i++) {
        if (!nodes[i] || nb_node_get_kind(nodes[i]) != NB_NODE_INPUT)
            continue;
        nb_tensor *v = nb_node_value(nodes[i]);
        int rank = nb_tensor_rank(v);
        int64_t shape[NB_MAX_RANK];
        for (int d = 0; d < rank; d++)
            shape[d] = nb_tensor_dim(v, d);
        if (rank > 0 && take(s, 4) == 0)
            shape[0] = (int64_t)take(s, 4); /* another batch, maybe not allowed */
        void *buf = nb_feed_buffer(g, nodes[i], rank, shape);
        if (!buf) {
            check_rc(g, NB_ERR_ARG, "feed_buffer");
            nb_graph_clear_error(g);
            continue;
        }
        v = nb_node_value(nodes[i]);
        for (int64_t k = 0; k < nb_tensor_size(v) && k < 4096; k++)
            nb_tensor_set(v, k, take_value(s));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct src s = {data, size};
    nb_graph *g = nb_graph_new();
    FUZZ_CHECK(g != NULL, "graph");
    nb_graph_seed(g, 7);
    nb_graph_set_checking(g, take(&s, 2));
    nb_graph_set_training(g, take(&s, 2));
    nb_node *nodes[MAX_NODES];
    int count = 0;
    while (s.n > 0 && count < MAX_NODES) {
        nb_node *n = take(&s, 3) == 0 || count == 0
                         ? make_leaf(&s, g, count)
                         : make_op(&s, g, nodes, count);
        if (n)
            nodes[count++] = n;
        if (take(&s, 4) == 0)
            nb_graph_clear_error(g);
    }
    nb_graph_clear_error(g);
    if (count > 0) {
        nb_node *target = nodes[count - 1];
        feed_inputs(&s, g, nodes, count);
        int rc = nb_forward(g, target);
        check_rc(g, rc, "forward");
        if (rc == NB_OK) {
            unsigned flags = take(&s, 8) == 0 ? 99u : 0u;
            rc = nb_backward_ex(g, target, NULL, flags);
            check_rc(g, rc, "backward");
            FUZZ_CHECK(flags == 0 || rc == NB_ERR_ARG, "unknown flags accepted");
            for (int i = 0; rc == NB_OK && i < count; i++) {
                nb_tensor *gr = nb_node_grad(nodes[i]);
                if (gr)
                    FUZZ_CHECK(nb_tensor_size(gr) == nb_tensor_size(nb_node_value(nodes[i])),
                               "gradient of '%s' has another size",
                               nb_node_name(nodes[i]));
            }
            if (rc == NB_OK) {
                nb_optim_config cfg = {
                    .kind = (nb_optim_kind)take(&s, 4),
                    .lr = take_value(&s) * 0.01,
                    .momentum = take(&s, 2) ? 0.9 : 0.0,
                    .clip_norm = take(&s, 2) ? 1.0 : 0.0,
                };
                nb_optimizer *opt = nb_optimizer_new(g, &cfg, 0, NULL);
                if (opt)
                    check_rc(g, nb_optimizer_step(opt), "step");
                else
                    check_rc(g, NB_ERR_ARG, "optimizer_new");
                nb_optimizer_free(opt);
            }
        }
    }
    /* Whatever happened, the graph is still usable. */
    nb_graph_clear_error(g);
    nb_node *p = nb_param(g, "after", NB_F32, 1, (const int64_t[]){2});
    nb_tensor_fill(nb_node_value(p), 1.5);
    nb_node *sum = nb_sum(g, p);
    FUZZ_CHECK(sum && nb_forward(g, sum) == NB_OK &&
                   nb_tensor_get(nb_node_value(sum), 0) == 3.0,
               "graph unusable after the program: %s",
               nb_graph_error(g) ? nb_graph_error(g) : "");
    nb_graph_free(g);
    return 0;
}
