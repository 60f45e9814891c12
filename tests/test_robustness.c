/* Robustness: random and hostile calls into the public API.
 *
 * The contract checked everywhere (graph.h, DESIGN.md section 5): a
 * constructor returns a node, or NULL with a message on the graph, and a
 * fresh failure names its op; a run returns NB_OK or a negative code with
 * a message; nothing crashes, aborts or reads out of bounds (CI runs this
 * under ASan/UBSan); after nb_graph_clear_error the graph still builds and
 * runs a simple op correctly.
 *
 * Each scenario is one function and runs in a child process where fork
 * exists, so a crash or a sanitizer report costs that scenario only. The
 * last scenarios are the fuzzer, in chunks: random graphs of random leaves
 * and random constructor calls with hostile arguments, then feeds,
 * forward, backward and gradcheck on random nodes. A fixed-seed private
 * generator drives every choice, and a failure prints the scenario, iteration
 * and seed; NABLA_ROBUSTNESS_ONLY=<scenario> runs one scenario ("fuzz" all the
 * fuzzer's chunks, "fuzz_3" one of them), and NABLA_FUZZ_SEED,
 * NABLA_FUZZ_ITERATIONS and NABLA_FUZZ_ONLY=<iteration> search further or
 * replay one fuzz iteration. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "test_util.h"

/* ---- a private, deterministic generator (splitmix64) ---- */

static uint64_t rng_state;
static uint64_t fuzz_seed = 0x726f627573746e65ull;

static uint64_t rnd_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static int rnd_int(int lo, int hi)
{
    return lo + (int)(rnd_u64() % (uint64_t)(hi - lo + 1));
}

static double rnd_unit(void)
{
    return (double)(rnd_u64() >> 11) * 0x1.0p-53;
}

static bool chance(double p)
{
    return rnd_unit() < p;
}

static double rnd_range(double lo, double hi)
{
    return lo + (hi - lo) * rnd_unit();
}

/* ---- coverage counters, printed after each fuzz chunk so that a change
 * making the fuzzer reject everything shows ---- */

static struct {
    long built, rejected, forward_ok, forward_err, backward_ok, backward_err,
        feeds_ok, feeds_err, gradchecks_ok, gradchecks_passed;
} stats;

/* ---- failure context ---- */

static const char *scenario = "";
static long iteration = -1;

/* CHECK that also says where in the random sequence it failed. */
#define RCHECK(cond, ...)                                                      \
    do {                                                                       \
        int rc_failed_before = tu_failed;                                      \
        CHECK(cond, __VA_ARGS__);                                              \
        if (tu_failed != rc_failed_before)                                     \
            printf("  (scenario %s, iteration %ld, seed %#llx)\n", scenario,   \
                   iteration, (unsigned long long)fuzz_seed);                  \
    } while (0)

static bool has_message(const nb_graph *g)
{
    const char *m = nb_graph_error(g);
    return m != NULL && m[0] != '\0';
}

static const char *msg_or(const nb_graph *g)
{
    const char *m = nb_graph_error(g);
    return m ? m : "(none)";
}

/* Reads every element of a tensor, so a buffer shorter than the shape says
 * shows up under AddressSanitizer; also checks size == product of extents. */
static void touch_tensor(const nb_tensor *t, const char *what)
{
    int rank = nb_tensor_rank(t);
    RCHECK(rank >= 0 && rank <= NB_MAX_RANK, "%s has rank %d", what, rank);
    if (rank < 0 || rank > NB_MAX_RANK)
        return;
    const int64_t *shape = nb_tensor_shape(t);
    int64_t product = 1;
    for (int i = 0; i < rank; i++)
        product *= shape[i];
    RCHECK(product == nb_tensor_size(t), "%s: size %lld, shape product %lld",
           what, (long long)nb_tensor_size(t), (long long)product);
    RCHECK(nb_tensor_size(t) <= (1 << 20), "%s: unexpectedly large (%lld)",
           what, (long long)nb_tensor_size(t));
    if (!nb_tensor_cdata(t) || nb_tensor_size(t) > (1 << 20))
        return;
    volatile double sink = 0;
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        sink += nb_tensor_get(t, i);
    (void)sink;
}

/* ---- the usability probe ---- */

/* After clearing the error the graph must build and run a simple op:
 * a + b of two fresh f64 parameters with known values, and its gradient. */
static void check_usable(nb_graph *g)
{
    nb_graph_clear_error(g);
    RCHECK(nb_graph_error(g) == NULL && nb_graph_status(g) == NB_OK,
           "clear_error left '%s'", msg_or(g));
    nb_node *a = nb_param(g, "probe_a", NB_F64, 1, SHAPE(3));
    nb_node *b = nb_param(g, "probe_b", NB_F64, 1, SHAPE(3));
    RCHECK(a && b, "fresh params failed: %s", msg_or(g));
    if (!a || !b)
        return;
    SET(a, 1.5, -2.0, 4.0);
    SET(b, 0.25, 3.0, -1.0);
    nb_node *s = nb_add(g, a, b);
    nb_node *loss = nb_sum(g, s);
    RCHECK(s && loss, "add/sum of fresh params failed: %s", msg_or(g));
    if (!s || !loss)
        return;
    int rc = nb_forward(g, loss);
    RCHECK(rc == NB_OK, "probe forward returned %d: %s", rc, msg_or(g));
    if (rc != NB_OK)
        return;
    const double want[3] = {1.75, 1.0, 3.0};
    for (int i = 0; i < 3; i++)
        RCHECK(nb_tensor_get(nb_node_value(s), i) == want[i],
               "probe sum[%d] = %g, want %g", i,
               nb_tensor_get(nb_node_value(s), i), want[i]);
    RCHECK(nb_tensor_get(nb_node_value(loss), 0) == 5.75, "probe loss %g",
           nb_tensor_get(nb_node_value(loss), 0));
    rc = nb_backward(g, loss);
    RCHECK(rc == NB_OK, "probe backward returned %d: %s", rc, msg_or(g));
    nb_tensor *ga = nb_node_grad(a);
    RCHECK(ga != NULL, "probe param has no gradient");
    for (int i = 0; ga && i < 3; i++)
        RCHECK(nb_tensor_get(ga, i) == 1.0, "probe grad[%d] = %g", i,
               nb_tensor_get(ga, i));
    RCHECK(nb_graph_error(g) == NULL, "probe left an error: %s", msg_or(g));
}

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

/* Values for a leaf: mostly moderate, sometimes class-like integers,
 * rarely NaN or infinity. */
static void fill_random(nb_tensor *t)
{
    int style = rnd_int(0, 9);
    for (int64_t i = 0; i < nb_tensor_size(t); i++) {
        double v;
        if (style == 0)
            v = rnd_int(-1, 4); /* labels, some invalid */
        else if (style == 1 && chance(0.2))
            v = chance(0.5) ? NAN : (chance(0.5) ? INFINITY : -INFINITY);
        else if (style == 2)
            v = rnd_range(0.05, 0.95); /* probabilities */
        else
            v = rnd_range(-2, 2);
        nb_tensor_set(t, i, v);
    }
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
 * it may use instead). */
enum { N_CONSTRUCTORS = 62 };

static nb_node *call_constructor(fuzz_graph *f, int which, const char **name,
                                 const char **alt, bool *null_given,
                                 bool *foreign_given)
{
    nb_graph *g = f->g;
    nb_node *a = pick(f, null_given, foreign_given);
    nb_node *b = pick(f, null_given, foreign_given);
    bool keep = chance(0.5);
    int axis = hostile_axis();
    *alt = NULL;
    /* b was drawn too; for one-input ops only a counts */
#define OP1(id, fn)                                                            \
    case id:                                                                   \
        *name = #fn;                                                           \
        *null_given = !a;                                                      \
        *foreign_given = a && nb_node_graph(a) != g;                           \
        return nb_##fn(g, a)
#define OP2(id, fn)                                                            \
    case id:                                                                   \
        *name = #fn;                                                           \
        return nb_##fn(g, a, b)
    switch (which) {
        OP2(0, add);
        OP2(1, sub);
        OP2(2, mul);
        OP2(3, div);
        OP2(4, maximum);
        OP2(5, minimum);
        OP1(6, neg);
        OP1(7, exp);
        OP1(8, log);
        OP1(9, sqrt);
        OP1(10, square);
        OP1(11, abs);
        OP1(12, sign);
        OP1(13, step);
        OP1(14, identity);
        OP1(15, sigmoid);
        OP1(16, tanh);
        OP1(17, relu);
        OP1(18, selu);
        OP1(19, softplus);
        OP1(20, gelu);
        OP1(21, silu);
        OP1(22, softmax);
        OP1(23, log_softmax);
        OP1(24, sum);
        OP1(25, mean);
        OP1(26, max);
        OP1(27, min);
        OP1(28, logsumexp);
    case 29: /* nb_transpose builds a permute */
        *name = "permute";
        *null_given = !a;
        *foreign_given = a && nb_node_graph(a) != g;
        return nb_transpose(g, a);
        OP1(30, l1_penalty);
        OP1(31, l2_penalty);
        OP2(32, matmul);
        OP2(33, prelu);
        OP2(34, sse_loss);
        OP2(35, mse_loss);
        OP2(36, bce_loss);
        OP2(37, bce_logits_loss);
        OP2(38, cce_loss);
        OP2(39, softmax_ce_loss);
        OP2(40, softmax_ce_index_loss);
        OP2(41, nll_loss);
    default:
        break;
    }
#undef OP1
#undef OP2
    /* The rest take one node and arguments. */
    *null_given = !a;
    *foreign_given = a && nb_node_graph(a) != g;
    switch (which) {
    case 42:
        *name = "scale";
        return nb_scale(g, a, hostile_double());
    case 43:
        *name = "add_scalar";
        return nb_add_scalar(g, a, hostile_double());
    case 44:
        *name = "leaky_relu";
        return nb_leaky_relu(g, a, hostile_double());
    case 45:
        *name = "elu";
        return nb_elu(g, a, hostile_double());
    case 46: {
        static const int ks[] = {0, -1, 1, 2, 3, INT_MAX, INT_MIN, 4};
        *name = "maxout";
        return nb_maxout(g, a, ks[rnd_int(0, 7)]);
    }
    case 47:
        *name = "dropout";
        return nb_dropout(g, a, hostile_p());
    case 48:
        *name = "sum";
        return nb_sum_axis(g, a, axis, keep);
    case 49:
        *name = "mean";
        return nb_mean_axis(g, a, axis, keep);
    case 50:
        *name = "max";
        return nb_max_axis(g, a, axis, keep);
    case 51:
        *name = "min";
        return nb_min_axis(g, a, axis, keep);
    case 52:
        *name = "logsumexp";
        return nb_logsumexp_axis(g, a, axis, keep);
    case 53: {
        int64_t shape[NB_MAX_RANK + 2];
        int rank = hostile_shape(a, shape);
        *name = "reshape";
        return nb_reshape(g, a, rank, chance(0.05) ? NULL : shape);
    }
    case 54: {
        int64_t shape[NB_MAX_RANK + 2];
        int rank = hostile_shape(a, shape);
        *name = "broadcast_to";
        return nb_broadcast_to(g, a, rank, chance(0.05) ? NULL : shape);
    }
    case 55: {
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
        *name = "permute";
        return nb_permute(g, a, rank, chance(0.05) ? NULL : perm);
    }
    case 56: {
        *name = "slice";
        return nb_slice(g, a, axis, hostile_bound(), hostile_bound());
    }
    case 57:
    case 58: {
        nb_node *xs[12];
        int n = chance(0.1) ? rnd_int(6, 12) : rnd_int(0, 5);
        bool same = chance(0.5);
        *null_given = *foreign_given = false;
        for (int i = 0; i < n; i++) {
            xs[i] = same ? a : pick(f, null_given, foreign_given);
            *null_given |= xs[i] == NULL;
            *foreign_given |= xs[i] && nb_node_graph(xs[i]) != g;
        }
        *name = "concat";
        if (which == 58 && chance(0.3)) {
            *null_given = *foreign_given = false;
            return nb_concat(g, rnd_int(-2, 3), NULL, axis);
        }
        return nb_concat(g, n, xs, axis);
    }
    case 59:
        *name = "sum";
        return nb_sum_axis(g, a, rnd_int(-3, 3), keep);
    case 60:
        *name = "slice";
        return nb_slice(g, a, rnd_int(-2, 2), rnd_int(-3, 3),
                        chance(0.5) ? NB_SLICE_END : rnd_int(-3, 3));
    default:
        *name = "identity";
        return nb_identity(g, a);
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
    nb_node *n =
        call_constructor(f, which, &name, &alt, &null_given, &foreign_given);
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

/* A copy of a tensor's elements as doubles (NULL for an empty or unfed
 * one), for comparing before and after. */
static double *snapshot(const nb_tensor *t)
{
    int64_t n = nb_tensor_size(t);
    if (n <= 0 || !nb_tensor_cdata(t))
        return NULL;
    double *copy = malloc((size_t)n * sizeof *copy);
    for (int64_t i = 0; copy && i < n; i++)
        copy[i] = nb_tensor_get(t, i);
    return copy;
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
 * beside the nodes, for the table-driven checks. */
typedef nb_node *(*any_op)(nb_graph *g, nb_node *a, nb_node *b);
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
W2(add) W2(sub) W2(mul) W2(div) W2(maximum) W2(minimum)
W1(neg) W1(exp) W1(log) W1(sqrt) W1(square) W1(abs) W1(sign) W1(step)
W1(identity) W1(sigmoid) W1(tanh) W1(relu) W1(selu) W1(softplus) W1(gelu)
W1(silu) W1(softmax) W1(log_softmax) W1(sum) W1(mean) W1(max) W1(min)
W1(logsumexp) W1(transpose) W1(l1_penalty) W1(l2_penalty)
W2(matmul) W2(prelu) W2(sse_loss) W2(mse_loss) W2(bce_loss)
W2(bce_logits_loss) W2(cce_loss) W2(softmax_ce_loss)
W2(softmax_ce_index_loss) W2(nll_loss)
#undef W1
#undef W2

static nb_node *w_scale(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_scale(g, a, 2.0);
}
/* clang-format on */
static nb_node *w_add_scalar(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_add_scalar(g, a, 1.0);
}
static nb_node *w_leaky_relu(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_leaky_relu(g, a, 0.1);
}
static nb_node *w_elu(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_elu(g, a, 1.0);
}
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
static nb_node *w_broadcast_to(nb_graph *g, nb_node *a, nb_node *b)
{
    (void)b;
    return nb_broadcast_to(g, a, 3, SHAPE(2, 2, 2));
}

static const struct {
    const char *name; /* the op name its messages must carry */
    any_op fn;
    bool binary;
} all_ops[] = {
/* clang-format off */
#define E1(fn) {#fn, w_##fn, false}
#define E2(fn) {#fn, w_##fn, true}
    E2(add), E2(sub), E2(mul), E2(div), E2(maximum), E2(minimum),
    E1(neg), E1(exp), E1(log), E1(sqrt), E1(square), E1(abs), E1(scale),
    E1(add_scalar), E1(sign), E1(step),
    E1(identity), E1(sigmoid), E1(tanh), E1(relu), E1(leaky_relu),
    E2(prelu), E1(elu), E1(selu), E1(softplus), E1(maxout), E1(gelu),
    E1(silu), E1(softmax), E1(log_softmax), E2(matmul),
    E1(sum), {"sum", w_sum_axis, false}, E1(mean),
    {"mean", w_mean_axis, false}, E1(max), {"max", w_max_axis, false},
    E1(min), {"min", w_min_axis, false}, E1(logsumexp),
    {"logsumexp", w_logsumexp_axis, false},
    E1(reshape), {"permute", w_permute, false},
    {"permute", w_transpose, false},
    E2(concat), E1(slice), E1(broadcast_to),
    E2(sse_loss), E2(mse_loss), E2(bce_loss), E2(bce_logits_loss),
    E2(cce_loss), E2(softmax_ce_loss), E2(softmax_ce_index_loss),
    E2(nll_loss), E1(l1_penalty), E1(l2_penalty), E1(dropout),
#undef E1
#undef E2
};
/* clang-format on */
enum { N_ALL_OPS = sizeof all_ops / sizeof *all_ops };

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
        bool indexed = strstr(name, "index") || strstr(name, "nll");
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
                bool indexed = strstr(name, "index") || strstr(name, "nll");
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

/* ---- crash isolation ---- */

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>

/* Runs one scenario in a child process, so that a crash, a sanitizer
 * report or a leak costs that scenario (one failed check here) and not
 * the rest of the test. The child's counts come back through a pipe. */
static void run_isolated(const char *name, void (*fn)(void))
{
    int fds[2];
    fflush(stdout);
    if (pipe(fds) != 0) {
        fn();
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        fn();
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        tu_passed = tu_failed = 0;
        fn();
        fflush(stdout);
        int counts[2] = {tu_passed, tu_failed};
        ssize_t w = write(fds[1], counts, sizeof counts);
        close(fds[1]);
        /* exit, not _exit: LeakSanitizer checks the child at exit. */
        exit(w == (ssize_t)sizeof counts && !tu_failed ? 0 : 1);
    }
    close(fds[1]);
    int counts[2] = {0, 0};
    ssize_t got = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got == (ssize_t)sizeof counts) {
        tu_passed += counts[0];
        tu_failed += counts[1];
    }
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (got == (ssize_t)sizeof counts && WIFEXITED(status) &&
        WEXITSTATUS(status) == (counts[1] ? 1 : 0))
        return; /* finished; its failures, if any, are counted */
    CHECK(clean,
          "scenario %s did not finish: %s %d (a crash, a sanitizer "
          "report or a leak: see its output above)",
          name, WIFSIGNALED(status) ? "killed by signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}
#else
static void run_isolated(const char *name, void (*fn)(void))
{
    (void)name;
    fn();
}
#endif

static void test_gradcheck_smooth_200(void)
{
    test_gradcheck_smooth(200);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } scenarios[] = {
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
        {"custom_op_contract", test_custom_op_contract},
        {"custom_op_negative_count", test_custom_op_negative_count},
        {"custom_op_huge_attr_size", test_custom_op_huge_attr_size},
        {"gradcheck_hostile_options", test_gradcheck_hostile_options},
        {"gradcheck_smooth", test_gradcheck_smooth_200},
    };
    /* NABLA_ROBUSTNESS_ONLY=<name> runs one scenario. */
    const char *only = getenv("NABLA_ROBUSTNESS_ONLY");
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
        if (only && *only && strcmp(only, scenarios[i].name) != 0)
            continue;
        rng_state = fuzz_seed + i; /* each scenario draws its own numbers */
        run_isolated(scenarios[i].name, scenarios[i].fn);
    }
    for (fuzz_chunk = 0; fuzz_chunk < FUZZ_CHUNKS; fuzz_chunk++) {
        char name[32];
        snprintf(name, sizeof name, "fuzz_%d", fuzz_chunk);
        if (only && *only && strcmp(only, name) != 0 &&
            strcmp(only, "fuzz") != 0)
            continue;
        rng_state = fuzz_seed;
        run_isolated(name, fuzz_chunk_scenario);
    }
    return tu_finish("robustness");
}
