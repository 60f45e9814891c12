/* Robustness, the fuzzer: random graphs of random leaves and random
 * constructor calls with hostile arguments, then feeds, forward, backward
 * and gradcheck on random nodes, in chunks (each an isolated scenario). A
 * fixed-seed private generator drives every choice, and a failure prints
 * the scenario, iteration and seed; NABLA_ROBUSTNESS_ONLY=fuzz_3 runs one
 * chunk, and NABLA_FUZZ_SEED, NABLA_FUZZ_ITERATIONS and
 * NABLA_FUZZ_ONLY=<iteration> search further or replay one iteration. The
 * constructor calls of the op list's regular kinds are generated from
 * src/ops/ops.def. */
#include "robustness/common.h"

/* ---- coverage counters, printed after each fuzz chunk so that a change
 * making the fuzzer reject everything shows ---- */

static struct {
    long built, rejected, forward_ok, forward_err, backward_ok, backward_err,
        feeds_ok, feeds_err, gradchecks_ok, gradchecks_passed;
} stats;

/* ---- random graphs ---- */

#define POOL_MAX 48

typedef struct fuzz_graph {
    nb_graph *g;
    nb_dtype dtype; /* the graph's usual dtype */
    bool mixed;     /* leaves may take either dtype */
    bool checking;  /* checking mode: a NaN anywhere fails a run */
    bool wide;      /* some extents of 5..40, see rnd_extent */
    nb_node *pool[POOL_MAX];
    int n;
    nb_node *inputs[POOL_MAX];
    bool input_dynamic[POOL_MAX];
    int n_inputs;
    nb_node *params[POOL_MAX];
    int n_params;
    int64_t batch; /* the batch last fed to dynamic inputs */
    /* Most leaves take this shape, a suffix of it or it with some extents
     * 1, so that ops meet compatible inputs often enough to go deep. */
    int base_rank;
    int64_t base_shape[NB_MAX_RANK];
} fuzz_graph;

static void pool_add(fuzz_graph *f, nb_node *n)
{
    if (!n)
        return;
    if (f->n < POOL_MAX)
        f->pool[f->n++] = n;
    else
        f->pool[rnd_int(0, POOL_MAX - 1)] = n;
}

/* Mostly tiny extents; a "wide" graph also gets extents past the vector
 * widths and blocking factors of the kernels (8, 16, gemm tiles), whose
 * loop tails are where out-of-bounds accesses hide. */
static int64_t rnd_extent(const fuzz_graph *f)
{
    if (f->wide && chance(0.5))
        return rnd_int(5, 40);
    int r = rnd_int(0, 99);
    if (r < 6)
        return 0;
    if (r < 45)
        return 1;
    return rnd_int(2, 4);
}

static nb_dtype rnd_dtype(const fuzz_graph *f)
{
    if (f->mixed && chance(0.3))
        return f->dtype == NB_F64 ? NB_F32 : NB_F64;
    return f->dtype;
}

/* Names that a careless message formatter would trip over: format
 * directives, a name longer than any message buffer, an empty one. */
static void maybe_odd_name(nb_node *n)
{
    static char long_name[700];
    if (!n || !chance(0.08))
        return;
    if (!long_name[0]) {
        for (size_t i = 0; i + 1 < sizeof long_name; i++)
            long_name[i] = (char)('a' + i % 26);
    }
    static const char *const names[] = {
        "%s%s%s%n%d", "", "x\n\ty", "%%", "\xc3\xa9t\xc3\xa9", NULL};
    int k = rnd_int(0, 5);
    nb_node_set_name(n, names[k] ? names[k] : long_name);
}

static nb_node *new_random_leaf(fuzz_graph *f)
{
    nb_graph *g = f->g;
    int rank = f->wide ? rnd_int(0, 3) : rnd_int(0, 4);
    int64_t shape[NB_MAX_RANK];
    for (int i = 0; i < rank; i++)
        shape[i] = rnd_extent(f);
    if (chance(0.6)) {
        int drop = chance(0.7) ? 0 : rnd_int(0, f->base_rank);
        rank = f->base_rank - drop;
        for (int i = 0; i < rank; i++)
            shape[i] = chance(0.85) ? f->base_shape[i + drop] : 1;
    }
    nb_dtype dt = rnd_dtype(f);
    int kind = rnd_int(0, 9);
    nb_node *n;
    if (kind < 3) {
        if (rank > 0 && chance(0.4))
            shape[0] = NB_DYNAMIC;
        n = nb_input(g, NULL, dt, rank, shape);
        RCHECK(n != NULL, "input failed: %s", msg_or(g));
        if (n && f->n_inputs < POOL_MAX) {
            f->input_dynamic[f->n_inputs] = rank > 0 && shape[0] == NB_DYNAMIC;
            f->inputs[f->n_inputs++] = n;
        }
    } else if (kind < 7) {
        n = nb_param(g, NULL, dt, rank, shape);
        RCHECK(n != NULL, "param failed: %s", msg_or(g));
        if (n) {
            fill_random(nb_node_value(n));
            if (f->n_params < POOL_MAX)
                f->params[f->n_params++] = n;
        }
    } else if (kind < 9) {
        n = nb_constant(g, NULL, dt, rank, shape);
        RCHECK(n != NULL, "constant failed: %s", msg_or(g));
        if (n)
            fill_random(nb_node_value(n));
    } else {
        n = nb_scalar(g, NULL, dt, rnd_range(-3, 3));
        RCHECK(n != NULL, "scalar failed: %s", msg_or(g));
    }
    maybe_odd_name(n);
    pool_add(f, n);
    return n;
}

static nb_graph *other_graph; /* foreign nodes come from here */
static nb_node *foreign[4];

/* A node to feed a constructor: usually from the pool, sometimes NULL or a
 * node of another graph (flagged in *null_given / *foreign_given). */
static nb_node *pick(fuzz_graph *f, bool *null_given, bool *foreign_given)
{
    int r = rnd_int(0, 99);
    if (r < 5 || f->n == 0) {
        *null_given = true;
        return NULL;
    }
    if (r < 10) {
        *foreign_given = true;
        return foreign[rnd_int(0, 3)];
    }
    return f->pool[rnd_int(0, f->n - 1)];
}

static double hostile_double(void)
{
    static const double values[] = {0.1,  -0.5,  1.0,    0.0,     2.5,
                                    -3.0, 1e308, -1e308, DBL_MIN, 1e-320};
    switch (rnd_int(0, 5)) {
    case 0:
        return NAN;
    case 1:
        return INFINITY;
    case 2:
        return -INFINITY;
    default:
        return values[rnd_int(0, 9)];
    }
}

static double hostile_p(void)
{
    static const double values[] = {-1.0, 1.0,    0.5, 0.0,  0.999999,
                                    -0.0, 1e-300, 2.0, 0.25, 0.9};
    switch (rnd_int(0, 5)) {
    case 0:
        return NAN;
    case 1:
        return INFINITY;
    case 2:
        return -INFINITY;
    default:
        return values[rnd_int(0, 9)];
    }
}

static int64_t hostile_extent(void)
{
    switch (rnd_int(0, 12)) {
    case 0:
        return -1;
    case 1:
        return -2;
    /* Only extents past the limit: a valid 2^40-element shape would make
     * forward allocate terabytes, which is not what this test is about. */
    case 2:
        return (INT64_C(1) << 40) + 1;
    case 3:
        return INT64_C(1) << 41;
    case 4:
        return INT64_MAX;
    case 5:
        return INT64_MIN;
    case 6:
        return 0;
    default:
        return rnd_int(1, 6);
    }
}

static int64_t hostile_bound(void)
{
    switch (rnd_int(0, 12)) {
    case 0:
        return NB_SLICE_END;
    case 1:
        return INT64_MIN;
    case 2:
        return INT64_MAX - 1;
    case 3:
        return -(INT64_C(1) << 50);
    case 4:
        return INT64_C(1) << 50;
    default:
        return rnd_int(-6, 6);
    }
}

/* A group size for maxout: valid, zero, negative or extreme. */
static int hostile_k(void)
{
    static const int ks[] = {0, -1, 1, 2, 3, INT_MAX, INT_MIN, 4};
    return ks[rnd_int(0, 7)];
}

static int hostile_axis(void)
{
    switch (rnd_int(0, 9)) {
    case 0:
        return INT_MIN;
    case 1:
        return INT_MAX;
    default:
        return rnd_int(-6, 6);
    }
}

/* A shape for reshape or broadcast_to: sometimes right, often wrong. */
static int hostile_shape(nb_node *x, int64_t *shape)
{
    int rank = rnd_int(0, 5);
    if (chance(0.05))
        return chance(0.5) ? -1 : NB_MAX_RANK + 1;
    const nb_tensor *v = x && chance(0.5) ? nb_node_value(x) : NULL;
    if (v && chance(0.5)) {
        /* x's own shape, with a new axis in front and an axis set to -1 */
        int r = nb_tensor_rank(v);
        shape[0] = chance(0.5) ? 1 : rnd_int(2, 3);
        for (int i = 0; i < r; i++)
            shape[i + 1] = nb_tensor_dim(v, i);
        rank = r + 1;
        if (chance(0.3))
            shape[rnd_int(0, rank - 1)] = -1;
        if (chance(0.2)) {
            /* or without the new axis */
            memmove(shape, shape + 1, (size_t)r * sizeof *shape);
            rank = r;
        }
        return rank;
    }
    for (int i = 0; i < rank; i++)
        shape[i] = chance(0.6) ? rnd_int(0, 4) : hostile_extent();
    if (rank > 1 && chance(0.2))
        shape[0] = shape[1] = -1; /* two unknown extents */
    return rank;
}

/* Each constructor of ops.h, called with random and hostile arguments.
 * *name gets the op name a fresh failure must mention (*alt a second name
 * it may use instead). The constructors of the list's regular
 * kinds come from ops.def; every NB_OP_OTHER op has an entry in
 * other_calls (a check at start-up fails when one lacks it). */
typedef nb_node *(*fuzz_call)(fuzz_graph *f, nb_node *a, nb_node *b,
                              const char **alt, bool *null_given,
                              bool *foreign_given);

/* b was drawn too; for one-input ops only a counts. */
static void one_input(fuzz_graph *f, nb_node *a, bool *null_given,
                      bool *foreign_given)
{
    *null_given = !a;
    *foreign_given = a && nb_node_graph(a) != f->g;
}

#define FUZZ_CALL(fn)                                                         \
    static nb_node *fuzz_##fn(fuzz_graph *f, nb_node *a, nb_node *b,          \
                              const char **alt, bool *null_given,             \
                              bool *foreign_given)
/* A constructor of one input and of two, called as `call`. */
#define FUZZ_ONE(fn, call)                                                    \
    FUZZ_CALL(fn)                                                             \
    {                                                                         \
        (void)alt, (void)b;                                                   \
        one_input(f, a, null_given, foreign_given);                           \
        return call;                                                          \
    }
#define FUZZ_TWO(fn)                                                          \
    FUZZ_CALL(fn)                                                             \
    {                                                                         \
        (void)alt, (void)null_given, (void)foreign_given;                     \
        return nb_##fn(f->g, a, b);                                           \
    }
#define NB_OP_BINARY(name, lo, hi) FUZZ_TWO(name)
#define NB_OP_UNARY(name, lo, hi) FUZZ_ONE(name, nb_##name(f->g, a))
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi)                             \
    FUZZ_ONE(name, nb_##name(f->g, a, hostile_double()))
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    FUZZ_ONE(name, nb_##name(f->g, a, hostile_double(), hostile_double()))
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP

/* The other signatures, by hand. */
#define OTHER1(fn) FUZZ_ONE(fn, nb_##fn(f->g, a))
/* clang-format off */
OTHER1(softmax) OTHER1(log_softmax) OTHER1(sum) OTHER1(mean) OTHER1(max)
OTHER1(min) OTHER1(logsumexp) OTHER1(transpose) OTHER1(l1_penalty)
OTHER1(l2_penalty)
FUZZ_TWO(matmul) FUZZ_TWO(prelu) FUZZ_TWO(sse_loss) FUZZ_TWO(mse_loss)
FUZZ_TWO(bce_loss) FUZZ_TWO(bce_logits_loss) FUZZ_TWO(cce_loss)
FUZZ_TWO(softmax_ce_loss) FUZZ_TWO(softmax_ce_index_loss) FUZZ_TWO(nll_loss)
FUZZ_TWO(embedding) OTHER1(stop_gradient)
/* clang-format on */

FUZZ_ONE(maxout, nb_maxout(f->g, a, hostile_k()))
FUZZ_ONE(dropout, nb_dropout(f->g, a, hostile_p()))
/* The axis forms of the reductions, with hostile and with small axes. */
#define AXIS_CALL(fn)                                                         \
    FUZZ_ONE(fn##_axis, nb_##fn##_axis(f->g, a, hostile_axis(), chance(0.5)))
AXIS_CALL(sum) AXIS_CALL(mean) AXIS_CALL(max) AXIS_CALL(min)
AXIS_CALL(logsumexp)
FUZZ_ONE(sum_small_axis, nb_sum_axis(f->g, a, rnd_int(-3, 3), chance(0.5)))
FUZZ_CALL(reshape)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    int64_t shape[NB_MAX_RANK + 2];
    int rank = hostile_shape(a, shape);
    return nb_reshape(f->g, a, rank, chance(0.05) ? NULL : shape);
}
FUZZ_CALL(broadcast_to)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    int64_t shape[NB_MAX_RANK + 2];
    int rank = hostile_shape(a, shape);
    return nb_broadcast_to(f->g, a, rank, chance(0.05) ? NULL : shape);
}
FUZZ_CALL(permute)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    int64_t perm[NB_MAX_RANK];
    int rank = a ? nb_tensor_rank(nb_node_value(a)) : 0;
    for (int i = 0; i < NB_MAX_RANK; i++)
        perm[i] = i < rank ? rank - 1 - i : 0;
    if (chance(0.6)) {
        /* a duplicate, a negative or an out-of-range axis */
        int i = rnd_int(0, NB_MAX_RANK - 1);
        static const int64_t bad[] = {-1, 0, 1, 7, 8, 100, INT64_MIN,
                                      INT64_MAX};
        perm[i] = bad[rnd_int(0, 7)];
    }
    if (chance(0.1)) /* a length that is not the rank */
        rank = rnd_int(-1, NB_MAX_RANK + 1);
    return nb_permute(f->g, a, rank, chance(0.05) ? NULL : perm);
}
FUZZ_CALL(slice)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    return nb_slice(f->g, a, hostile_axis(), hostile_bound(), hostile_bound());
}
FUZZ_CALL(slice_small)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    return nb_slice(f->g, a, rnd_int(-2, 2), rnd_int(-3, 3),
                    chance(0.5) ? NB_SLICE_END : rnd_int(-3, 3));
}
/* Mostly small parameters (-1 to 3: some valid), sometimes hostile. */
static int64_t hostile_small(void)
{
    return chance(0.8) ? rnd_int(-1, 3) : hostile_bound();
}
static nb_conv_params hostile_conv(void)
{
    nb_conv_params p = {
        .stride = {hostile_small(), hostile_small()},
        .padding = {hostile_small(), hostile_small(), hostile_small(),
                    hostile_small()},
        .dilation = {hostile_small(), hostile_small()},
        .groups = hostile_small(),
        .output_padding = {hostile_small(), hostile_small()},
    };
    return p;
}
FUZZ_CALL(conv2d)
{
    (void)alt, (void)null_given, (void)foreign_given;
    nb_conv_params p = hostile_conv();
    return nb_conv2d(f->g, a, b, chance(0.2) ? NULL : &p);
}
FUZZ_CALL(conv2d_bias_act)
{
    (void)alt, (void)null_given, (void)foreign_given;
    nb_conv_params p = hostile_conv();
    nb_conv_act act = chance(0.8) ? NB_CONV_ACT_RELU
                                  : (nb_conv_act)rnd_int(-1, 3);
    return nb_conv2d_bias_act(f->g, a, b, chance(0.5) ? NULL : a,
                              chance(0.2) ? NULL : &p, act);
}
FUZZ_CALL(conv2d_bias_act_maxpool)
{
    (void)alt, (void)null_given, (void)foreign_given;
    nb_conv_params p = hostile_conv();
    nb_pool2d_params pool = {
        .kernel = {hostile_small(), hostile_small()},
        .stride = {hostile_small(), hostile_small()},
        .padding = {hostile_small(), hostile_small()},
        .dilation = {hostile_small(), hostile_small()},
    };
    return nb_conv2d_bias_act_maxpool(f->g, a, b, chance(0.5) ? NULL : a,
                                      chance(0.2) ? NULL : &p,
                                      NB_CONV_ACT_RELU,
                                      chance(0.1) ? NULL : &pool);
}
FUZZ_CALL(conv_transpose2d)
{
    (void)alt, (void)null_given, (void)foreign_given;
    nb_conv_params p = hostile_conv();
    return nb_conv_transpose2d(f->g, a, b, chance(0.2) ? NULL : &p);
}
FUZZ_CALL(conv1d)
{
    (void)alt, (void)null_given, (void)foreign_given;
    return nb_conv1d(f->g, a, b, hostile_small(), hostile_small(),
                     hostile_small(), hostile_small(), hostile_small());
}
FUZZ_CALL(pad)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    int64_t before[NB_MAX_RANK], after[NB_MAX_RANK];
    for (int i = 0; i < NB_MAX_RANK; i++) {
        before[i] = hostile_small();
        after[i] = hostile_small();
    }
    return nb_pad(f->g, a, rnd_int(-1, 9), chance(0.05) ? NULL : before,
                  after);
}
FUZZ_CALL(slice_step)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    return nb_slice_step(f->g, a, hostile_axis(), hostile_bound(),
                         hostile_bound(), hostile_small());
}
static nb_pool2d_params hostile_pool(void)
{
    nb_pool2d_params p = {
        .kernel = {hostile_small(), hostile_small()},
        .stride = {hostile_small(), hostile_small()},
        .padding = {hostile_small(), hostile_small()},
        .dilation = {hostile_small(), hostile_small()},
        .count_include_pad = chance(0.5),
    };
    return p;
}
FUZZ_CALL(max_pool2d)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    nb_pool2d_params p = hostile_pool();
    return nb_max_pool2d(f->g, a, chance(0.1) ? NULL : &p);
}
FUZZ_CALL(avg_pool2d)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    nb_pool2d_params p = hostile_pool();
    return nb_avg_pool2d(f->g, a, chance(0.1) ? NULL : &p);
}
FUZZ_CALL(global_avg_pool2d)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    return nb_global_avg_pool2d(f->g, a);
}
/* b stands in for the running statistics: usually not a state node, which
 * the op must refuse by name. */
FUZZ_CALL(batch_norm)
{
    (void)alt, (void)null_given, (void)foreign_given;
    return nb_batch_norm(f->g, a, b, b, NULL, NULL, chance(0.9) ? 0.1 : -1,
                         chance(0.9) ? 1e-5 : 0);
}
FUZZ_CALL(layer_norm)
{
    (void)alt, (void)b;
    one_input(f, a, null_given, foreign_given);
    return nb_layer_norm(f->g, a, (int)hostile_small(), NULL, NULL,
                         chance(0.9) ? 1e-5 : -1);
}
FUZZ_CALL(concat)
{
    (void)alt, (void)b;
    nb_node *xs[12];
    int n = chance(0.1) ? rnd_int(6, 12) : rnd_int(0, 5);
    bool same = chance(0.5);
    *null_given = *foreign_given = false;
    for (int i = 0; i < n; i++) {
        xs[i] = same ? a : pick(f, null_given, foreign_given);
        *null_given |= xs[i] == NULL;
        *foreign_given |= xs[i] && nb_node_graph(xs[i]) != f->g;
    }
    if (chance(0.15)) {
        *null_given = *foreign_given = false;
        return nb_concat(f->g, rnd_int(-2, 3), NULL, hostile_axis());
    }
    return nb_concat(f->g, n, xs, hostile_axis());
}

/* The recurrent ops take every one of their inputs from a and b: the
 * shapes rarely fit, which is the point; biases come in pairs, one alone
 * sometimes, which the constructor must refuse by the op's name. */
static nb_node *fuzz_bias(nb_node *n)
{
    return chance(0.4) ? NULL : n;
}
FUZZ_CALL(elman_seq)
{
    (void)alt, (void)null_given, (void)foreign_given;
    return nb_elman_seq(f->g, a, b, b, b, fuzz_bias(a), fuzz_bias(a));
}
FUZZ_CALL(lstm_seq)
{
    (void)alt, (void)null_given, (void)foreign_given;
    return nb_lstm_seq(f->g, a, b, b, a, b, fuzz_bias(a), fuzz_bias(b),
                       chance(0.5));
}
FUZZ_CALL(gru_seq)
{
    (void)alt, (void)null_given, (void)foreign_given;
    return nb_gru_seq(f->g, a, b, a, b, fuzz_bias(b), fuzz_bias(b));
}

static const struct {
    const char *name; /* the op its fresh failures must name */
    fuzz_call call;
} fuzz_calls[] = {
#define NB_OP_BINARY(name, lo, hi) {#name, fuzz_##name},
#define NB_OP_UNARY(name, lo, hi) {#name, fuzz_##name},
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi) {#name, fuzz_##name},
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    {#name, fuzz_##name},
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP
    {"softmax", fuzz_softmax}, {"log_softmax", fuzz_log_softmax},
    {"sum", fuzz_sum}, {"mean", fuzz_mean}, {"max", fuzz_max},
    {"min", fuzz_min}, {"logsumexp", fuzz_logsumexp},
    {"permute", fuzz_transpose}, {"l1_penalty", fuzz_l1_penalty},
    {"l2_penalty", fuzz_l2_penalty}, {"matmul", fuzz_matmul},
    {"prelu", fuzz_prelu}, {"sse_loss", fuzz_sse_loss},
    {"mse_loss", fuzz_mse_loss}, {"bce_loss", fuzz_bce_loss},
    {"bce_logits_loss", fuzz_bce_logits_loss}, {"cce_loss", fuzz_cce_loss},
    {"softmax_ce_loss", fuzz_softmax_ce_loss},
    {"softmax_ce_index_loss", fuzz_softmax_ce_index_loss},
    {"nll_loss", fuzz_nll_loss}, {"maxout", fuzz_maxout},
    {"embedding", fuzz_embedding}, {"stop_gradient", fuzz_stop_gradient},
    {"dropout", fuzz_dropout}, {"sum", fuzz_sum_axis},
    {"mean", fuzz_mean_axis}, {"max", fuzz_max_axis}, {"min", fuzz_min_axis},
    {"logsumexp", fuzz_logsumexp_axis}, {"sum", fuzz_sum_small_axis},
    {"reshape", fuzz_reshape}, {"broadcast_to", fuzz_broadcast_to},
    {"permute", fuzz_permute}, {"slice", fuzz_slice},
    {"slice", fuzz_slice_small}, {"slice", fuzz_slice_step},
    {"pad", fuzz_pad}, {"conv2d", fuzz_conv2d}, {"conv1d", fuzz_conv1d},
    {"conv_transpose2d", fuzz_conv_transpose2d},
    {"conv2d_bias_act", fuzz_conv2d_bias_act},
    {"conv2d_bias_act_maxpool", fuzz_conv2d_bias_act_maxpool},
    {"max_pool2d", fuzz_max_pool2d}, {"avg_pool2d", fuzz_avg_pool2d},
    {"global_avg_pool2d", fuzz_global_avg_pool2d},
    {"batch_norm", fuzz_batch_norm}, {"layer_norm", fuzz_layer_norm},
    {"concat", fuzz_concat},
    {"concat", fuzz_concat},
    {"elman_seq", fuzz_elman_seq}, {"lstm_seq", fuzz_lstm_seq},
    {"gru_seq", fuzz_gru_seq},
};
enum { N_CONSTRUCTORS = sizeof fuzz_calls / sizeof *fuzz_calls };

/* Every op of the list is called by some entry. */
static void check_fuzz_calls_cover_the_list(void)
{
    for (int i = 0; i < nb_builtin_op_count(); i++) {
        const char *op = nb_builtin_op(i)->name;
        bool found = false;
        for (int k = 0; k < N_CONSTRUCTORS && !found; k++)
            found = strcmp(fuzz_calls[k].name, op) == 0;
        CHECK(found, "op '%s' is in the list but the fuzzer never calls it "
                     "(add its call to fuzz_calls in tests/robustness/fuzz.c)",
              op);
    }
}

/* One random constructor call and the error contract around it. */
static void fuzz_one_constructor(fuzz_graph *f)
{
    nb_graph *g = f->g;
    if (chance(0.5))
        nb_graph_clear_error(g);
    bool had_error = nb_graph_error(g) != NULL;
    int64_t count_before = nb_graph_node_count(g);
    const char *name = "?", *alt = NULL;
    bool null_given = false, foreign_given = false;
    int which = rnd_int(0, N_CONSTRUCTORS - 1);
    nb_node *a = pick(f, &null_given, &foreign_given);
    nb_node *b = pick(f, &null_given, &foreign_given);
    name = fuzz_calls[which].name;
    nb_node *n = fuzz_calls[which].call(f, a, b, &alt, &null_given,
                                        &foreign_given);
    if (n) {
        RCHECK(nb_node_graph(n) == g, "%s returned a node of another graph",
               name);
        RCHECK(had_error || nb_graph_error(g) == NULL,
               "%s succeeded but recorded '%s'", name, msg_or(g));
        RCHECK(!null_given && !foreign_given,
               "%s accepted a NULL or foreign input", name);
        RCHECK(nb_node_get_kind(n) == NB_NODE_OP, "%s made a non-op node",
               name);
        touch_tensor(nb_node_value(n), name);
        maybe_odd_name(n);
        pool_add(f, n);
        stats.built++;
        return;
    }
    stats.rejected++;
    RCHECK(has_message(g), "%s returned NULL without a message", name);
    RCHECK(nb_graph_node_count(g) == count_before,
           "%s: node count grew from %lld to %lld on failure", name,
           (long long)count_before, (long long)nb_graph_node_count(g));
    if (!had_error && !null_given) {
        const char *m = msg_or(g);
        RCHECK(strstr(m, name) || (alt && strstr(m, alt)),
               "fresh failure of %s does not name it: '%s'", name, m);
    }
}

/* Feeds one input, sometimes with a wrong shape, rank or NULL data; a
 * dynamic input sometimes gets a new batch size. */
static void fuzz_feed(fuzz_graph *f)
{
    if (f->n_inputs == 0)
        return;
    nb_graph *g = f->g;
    int which = rnd_int(0, f->n_inputs - 1);
    nb_node *in = f->inputs[which];
    const nb_tensor *v = nb_node_value(in);
    int rank = nb_tensor_rank(v);
    int64_t shape[NB_MAX_RANK + 1];
    for (int i = 0; i < rank; i++)
        shape[i] = nb_tensor_dim(v, i);
    bool dynamic = f->input_dynamic[which];
    if (dynamic) {
        static const int64_t batches[] = {0, 1, 2, 3, 5};
        if (chance(0.3))
            f->batch = batches[rnd_int(0, 4)];
        shape[0] = f->batch;
    }
    bool valid = true;
    int r = rnd_int(0, 19);
    if (r == 0 && rank > 0) {
        /* A grown extent: wrong unless it is the dynamic batch. */
        int axis = rnd_int(0, rank - 1);
        shape[axis] += rnd_int(1, 2);
        valid = axis == 0 && dynamic;
    } else if (r == 1) {
        shape[rank++] = 1; /* one axis too many */
        valid = false;
    } else if (r == 2 && rank > 0) {
        shape[0] = -5;
        valid = false;
    }
    int64_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= shape[i] > 0 ? shape[i] : 0;
    size_t esize = nb_dtype_size(nb_tensor_dtype(v));
    void *data = malloc((size_t)(count > 0 ? count : 1) * esize);
    for (int64_t i = 0; i < count; i++) {
        double x = rnd_range(-2, 2);
        if (esize == 8)
            ((double *)data)[i] = x;
        else
            ((float *)data)[i] = (float)x;
    }
    bool null_data = chance(0.04);
    bool was_error = nb_graph_error(g) != NULL;
    int rc = nb_feed(g, in, rank, shape, null_data ? NULL : data);
    if (null_data)
        valid = false;
    if (valid) {
        RCHECK(rc == NB_OK, "valid feed returned %d: %s", rc, msg_or(g));
        if (rc == NB_OK && dynamic) {
            f->batch = shape[0];
        }
    } else {
        RCHECK(rc < 0, "invalid feed (rank %d) returned %d", rank, rc);
        RCHECK(has_message(g), "failed feed left no message");
        if (!was_error)
            RCHECK(strstr(msg_or(g), "feed") != NULL,
                   "feed failure does not say feed: '%s'", msg_or(g));
    }
    free(data);
    rc == NB_OK ? stats.feeds_ok++ : stats.feeds_err++;
}

static nb_node *pick_target(fuzz_graph *f)
{
    int r = rnd_int(0, 99);
    if (r < 3)
        return NULL;
    if (r < 6)
        return foreign[rnd_int(0, 3)];
    return f->pool[rnd_int(0, f->n - 1)];
}

static void check_rc(nb_graph *g, int rc, const char *what)
{
    RCHECK(rc == NB_OK || rc < 0, "%s returned %d", what, rc);
    if (rc != NB_OK)
        RCHECK(has_message(g), "%s returned %d without a message", what, rc);
}

/* Reads every gradient the latest backward left, to catch buffers that
 * disagree with their shapes. */
static void touch_grads(fuzz_graph *f)
{
    for (int i = 0; i < f->n; i++) {
        nb_tensor *gt = nb_node_grad(f->pool[i]);
        if (gt)
            touch_tensor(gt, "gradient");
    }
}

/* A seed for backward_ex: right, wrong shape, wrong dtype or NULL. */
static nb_tensor *make_seed(nb_node *out, bool *right)
{
    const nb_tensor *v = nb_node_value(out);
    int rank = nb_tensor_rank(v);
    int64_t shape[NB_MAX_RANK + 1];
    for (int i = 0; i < rank; i++)
        shape[i] = nb_tensor_dim(v, i);
    nb_dtype dt = nb_tensor_dtype(v);
    *right = true;
    switch (rnd_int(0, 5)) {
    case 0:
        if (rank > 0) {
            shape[rnd_int(0, rank - 1)] += 1;
            *right = false;
        }
        break;
    case 1:
        shape[rank++] = 1;
        *right = false;
        break;
    case 2:
        dt = dt == NB_F64 ? NB_F32 : NB_F64;
        *right = false;
        break;
    default:
        break;
    }
    nb_tensor *seed = nb_tensor_new(dt, rank, shape);
    if (seed)
        fill_random(seed);
    return seed;
}

static void fuzz_run(fuzz_graph *f)
{
    nb_graph *g = f->g;
    if (chance(0.5))
        nb_graph_clear_error(g);
    nb_node *target = pick_target(f);
    bool was_error = nb_graph_error(g) != NULL;
    int rc = nb_forward(g, target);
    check_rc(g, rc, "forward");
    if (!target && !was_error)
        RCHECK(rc == NB_ERR_ARG, "forward(NULL) returned %d", rc);
    if (target && nb_node_graph(target) != g)
        RCHECK(rc == NB_ERR_ARG, "forward(foreign) returned %d", rc);
    if (rc == NB_OK)
        touch_tensor(nb_node_value(target), "forward value");
    rc == NB_OK ? stats.forward_ok++ : stats.forward_err++;
    bool forward_ok = rc == NB_OK;

    /* Sometimes disturb the graph between forward and backward. */
    bool disturbed = false;
    int r = rnd_int(0, 9);
    if (r == 0) {
        fuzz_feed(f);
        disturbed = true;
    } else if (r == 1 && f->n_params > 0) {
        nb_param_set_trainable(g, f->params[rnd_int(0, f->n_params - 1)],
                               chance(0.5));
        disturbed = true;
    } else if (r == 2 && f->n_inputs > 0) {
        nb_input_set_requires_grad(g, f->inputs[rnd_int(0, f->n_inputs - 1)],
                                   chance(0.5));
        disturbed = true;
    } else if (r == 3) {
        /* Dropout remembers whether forward masked: backward still fits. */
        nb_graph_set_training(g, !nb_graph_training(g));
    } else if (r == 4) {
        uint64_t state[4] = {0, 0, 0, 0}; /* xoshiro's one bad state */
        if (chance(0.5))
            for (int i = 0; i < 4; i++)
                state[i] = rnd_u64();
        nb_rng_set_state(g, state);
    } else if (r == 5) {
        f->checking = !f->checking;
        nb_graph_set_checking(g, f->checking);
    }
    if (!target || nb_node_graph(target) != g) {
        rc = nb_backward(g, target);
        RCHECK(rc < 0, "backward of a NULL/foreign node returned %d", rc);
        check_rc(g, rc, "backward");
        return;
    }
    if (chance(0.5)) {
        rc = nb_backward(g, target);
        check_rc(g, rc, "backward");
        bool scalar = nb_tensor_size(nb_node_value(target)) == 1;
        if (forward_ok && !disturbed && scalar && !f->checking)
            RCHECK(rc == NB_OK,
                   "backward of %s '%s' after a good forward: "
                   "%d %s",
                   nb_node_op_name(target), nb_node_name(target), rc,
                   msg_or(g));
        if (!scalar)
            RCHECK(rc < 0, "backward of a non-scalar returned %d", rc);
    } else {
        bool right;
        nb_tensor *seed = chance(0.1) ? NULL : make_seed(target, &right);
        if (!seed)
            right = nb_tensor_size(nb_node_value(target)) == 1;
        unsigned flags = chance(0.3) ? NB_BACKWARD_ACCUMULATE : 0;
        rc = nb_backward_ex(g, target, seed, flags);
        check_rc(g, rc, "backward_ex");
        if (!right)
            RCHECK(rc < 0, "backward_ex with a wrong seed returned %d", rc);
        else if (forward_ok && !disturbed && flags == 0 && !f->checking)
            RCHECK(rc == NB_OK,
                   "backward_ex of %s '%s' after a good "
                   "forward: %d %s",
                   nb_node_op_name(target), nb_node_name(target), rc,
                   msg_or(g));
        nb_tensor_free(seed);
    }
    if (rc == NB_OK)
        touch_grads(f);
    rc == NB_OK ? stats.backward_ok++ : stats.backward_err++;
}

/* nb_gradcheck on a random node: it runs or says why not. */
static void fuzz_gradcheck(fuzz_graph *f)
{
    nb_graph *g = f->g;
    nb_node *target = pick_target(f);
    if (target && nb_node_graph(target) == g) {
        /* Keep it cheap: at most a few hundred perturbed elements. */
        int64_t elements = 0;
        for (int i = 0; i < f->n_params; i++)
            elements += nb_tensor_size(nb_node_value(f->params[i]));
        if (elements > 300)
            return;
    }
    /* gradcheck perturbs the leaves; it must put every value back bit for
     * bit, whether it passes, fails or stops on an error. */
    nb_node *leaves[2 * POOL_MAX];
    int n_leaves = 0;
    for (int i = 0; i < f->n_params; i++)
        leaves[n_leaves++] = f->params[i];
    for (int i = 0; i < f->n_inputs; i++)
        leaves[n_leaves++] = f->inputs[i];
    double *before[2 * POOL_MAX];
    for (int i = 0; i < n_leaves; i++)
        before[i] = snapshot(nb_node_value(leaves[i]));
    nb_gradcheck_result res;
    nb_gradcheck_options opts = {0, 0, 0, rnd_u64()};
    int rc = nb_gradcheck(g, target, chance(0.5) ? &opts : NULL, &res);
    check_rc(g, rc, "gradcheck");
    for (int i = 0; i < n_leaves; i++) {
        double *after = snapshot(nb_node_value(leaves[i]));
        int64_t n = nb_tensor_size(nb_node_value(leaves[i]));
        RCHECK(!before[i] || !after ||
                   memcmp(before[i], after, (size_t)n * sizeof(double)) == 0,
               "gradcheck (rc %d) changed the value of '%s'", rc,
               nb_node_name(leaves[i]));
        free(before[i]);
        free(after);
    }
    if (rc == NB_OK) {
        stats.gradchecks_ok++;
        stats.gradchecks_passed += res.passed;
    }
    if (!target || nb_node_graph(target) != g)
        RCHECK(rc < 0, "gradcheck of a NULL/foreign node returned %d", rc);
}

static void fuzz_iteration(void)
{
    fuzz_graph f;
    memset(&f, 0, sizeof f);
    f.g = nb_graph_new();
    RCHECK(f.g != NULL, "graph_new failed");
    if (!f.g)
        return;
    nb_graph_seed(f.g, rnd_u64());
    f.dtype = chance(0.8) ? NB_F64 : NB_F32;
    f.mixed = chance(0.15);
    f.batch = 1;
    f.wide = chance(0.15);
    f.base_rank = f.wide ? rnd_int(1, 3) : rnd_int(0, 4);
    for (int i = 0; i < f.base_rank; i++)
        f.base_shape[i] = rnd_extent(&f);
    if (chance(0.2))
        nb_graph_set_training(f.g, false);
    f.checking = chance(0.2);
    nb_graph_set_checking(f.g, f.checking);

    int leaves = rnd_int(2, 6);
    for (int i = 0; i < leaves; i++)
        new_random_leaf(&f);
    int steps = rnd_int(4, 32);
    for (int i = 0; i < steps; i++) {
        if (chance(0.1))
            new_random_leaf(&f);
        else if (chance(0.1))
            fuzz_feed(&f);
        else
            fuzz_one_constructor(&f);
    }
    int runs = rnd_int(1, 8);
    for (int i = 0; i < runs; i++) {
        if (chance(0.5))
            fuzz_feed(&f);
        fuzz_run(&f);
        /* Nodes built after a feed changed the batch. */
        if (chance(0.3))
            fuzz_one_constructor(&f);
    }
    if (chance(0.3))
        fuzz_gradcheck(&f);
    check_usable(f.g);
    nb_graph_free(f.g);
}

/* Iterations [first, first + count) of the fuzzer. */
static void fuzz_range(long first, long count)
{
    scenario = "fuzz";
    other_graph = nb_graph_new();
    foreign[0] = nb_param(other_graph, "foreign_w", NB_F64, 2, SHAPE(2, 2));
    foreign[1] =
        nb_input(other_graph, "foreign_x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    foreign[2] = nb_scalar(other_graph, NULL, NB_F32, 1.0);
    foreign[3] = nb_matmul(other_graph, foreign[1], foreign[0]);
    CHECK(foreign[0] && foreign[1] && foreign[2] && foreign[3],
          "foreign graph setup: %s", msg_or(other_graph));
    for (iteration = first; iteration < first + count; iteration++) {
        /* Seeded from the seed and its own number, so that NABLA_FUZZ_ONLY
         * replays one iteration alone. */
        rng_state = fuzz_seed ^ ((uint64_t)iteration * 0xd1b54a32d192ed03ull);
        fuzz_iteration();
    }
    iteration = -1;
    /* The other graph was only read: it must be untouched and clean. */
    CHECK(nb_graph_error(other_graph) == NULL, "foreign graph got an error: %s",
          msg_or(other_graph));
    nb_graph_free(other_graph);
    other_graph = NULL;
    printf("fuzz %ld..%ld: %ld ops built, %ld rejected; forward %ld ok, %ld "
           "failed; backward %ld ok, %ld failed; feeds %ld ok, %ld failed; "
           "gradcheck %ld ran (%ld passed)\n",
           first, first + count - 1, stats.built, stats.rejected,
           stats.forward_ok, stats.forward_err, stats.backward_ok,
           stats.backward_err, stats.feeds_ok, stats.feeds_err,
           stats.gradchecks_ok, stats.gradchecks_passed);
}

/* The fuzzer runs as FUZZ_CHUNKS scenarios of FUZZ_CHUNK iterations, so
 * that one crash costs one chunk. The environment can replace the whole
 * run (handed to the first chunk). */
enum { FUZZ_CHUNKS = 8, FUZZ_CHUNK = 500 };
static int fuzz_chunk;

static void fuzz_chunk_scenario(void)
{
    const char *seed_text = getenv("NABLA_FUZZ_SEED");
    if (seed_text && *seed_text)
        fuzz_seed = strtoull(seed_text, NULL, 0);
    const char *only = getenv("NABLA_FUZZ_ONLY");
    const char *iterations = getenv("NABLA_FUZZ_ITERATIONS");
    if ((only && *only) || (iterations && *iterations)) {
        if (fuzz_chunk == 0) {
            if (only && *only)
                fuzz_range(strtol(only, NULL, 0), 1);
            else
                fuzz_range(0, strtol(iterations, NULL, 0));
        }
        return;
    }
    fuzz_range((long)fuzz_chunk * FUZZ_CHUNK, FUZZ_CHUNK);
}

int main(void)
{
    check_fuzz_calls_cover_the_list();
    const char *only = getenv("NABLA_ROBUSTNESS_ONLY");
    for (fuzz_chunk = 0; fuzz_chunk < FUZZ_CHUNKS; fuzz_chunk++) {
        char name[32];
        snprintf(name, sizeof name, "fuzz_%d", fuzz_chunk);
        if (only && *only && strcmp(only, name) != 0 &&
            strcmp(only, "fuzz") != 0)
            continue;
        rng_state = fuzz_seed;
        run_isolated(name, fuzz_chunk_scenario);
    }
    return tu_finish("robustness_fuzz");
}
