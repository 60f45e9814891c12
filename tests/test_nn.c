/* Tests of the nn layer (include/nabla/nn.h), through the public API only:
 *
 * - initialisers: sample mean and variance of many draws against the
 *   formulas (uniform U(lo, hi): mean (lo+hi)/2, variance (hi-lo)^2/12;
 *   Xavier variance gain^2 2/(fan_in+fan_out); He variance 2/fan_in), the
 *   bounds of the uniform ones, f32 and f64, and seed reproducibility;
 * - the linear layer and the MLP builder: parameter names and shapes, the
 *   nodes they return, the default initialiser's choice;
 * - forward values of a hand-set 2-2-2 MLP and of each nb_mlp_loss kind
 *   against numbers worked out by hand (python float64, listed below);
 * - nb_gradcheck of small f64 MLPs through nb_mlp_loss for every output
 *   unit, with dropout and with the weight penalty;
 * - freezing layers; every error message; the graph staying usable;
 * - the convolution, pooling and normalisation layers: PyTorch's parameter
 *   names and shapes, the bounds and variance of each initialisation
 *   against its formula (fans as PyTorch computes them), values worked out
 *   by hand, output shapes, and every error naming the layer.
 */
#include "test_util.h"

/* Sample statistics of a tensor. */
typedef struct stats {
    double mean, var, min, max;
    double within_1sd; /* fraction with |w - mean| <= sd */
} stats;

static stats stats_of(const nb_tensor *t)
{
    int64_t n = nb_tensor_size(t);
    stats s = {0, 0, INFINITY, -INFINITY, 0};
    for (int64_t i = 0; i < n; i++) {
        double v = nb_tensor_get(t, i);
        s.mean += v;
        s.min = v < s.min ? v : s.min;
        s.max = v > s.max ? v : s.max;
    }
    s.mean /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = nb_tensor_get(t, i) - s.mean;
        s.var += d * d;
    }
    s.var /= (double)(n - 1);
    double sd = sqrt(s.var);
    for (int64_t i = 0; i < n; i++)
        s.within_1sd += fabs(nb_tensor_get(t, i) - s.mean) <= sd;
    s.within_1sd /= (double)n;
    return s;
}

/* Checks mean and variance of n draws against the expected values, within
 * 5 standard errors: sd(mean) = sigma/sqrt(n), and sd(sample variance) is
 * at most sigma^2 sqrt(2/n) for the normal and uniform laws. */
static void check_moments(const char *what, const stats *s, double n,
                          double mean, double var)
{
    double tol_mean = 5 * sqrt(var / n) + 1e-12;
    double tol_var = 5 * var * sqrt(2 / n) + 1e-12;
    CHECK(fabs(s->mean - mean) <= tol_mean, "%s: mean %.6g, expected %.6g",
          what, s->mean, mean);
    CHECK(fabs(s->var - var) <= tol_var, "%s: variance %.6g, expected %.6g",
          what, s->var, var);
}

#define ROWS 200
#define COLS 250
#define N_DRAWS ((double)(ROWS * COLS))

static void test_initialisers(nb_dtype dtype)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 7);
    const char *dn = nb_dtype_name(dtype);
    nb_node *w = nb_param(g, "w", dtype, 2, SHAPE(ROWS, COLS));
    const nb_tensor *t = nb_node_value(w);
    char what[64];
    stats s;

    CHECK(nb_init_uniform(g, w, -0.5, 1.5) == NB_OK, "%s", dn);
    s = stats_of(t);
    snprintf(what, sizeof what, "uniform %s", dn);
    check_moments(what, &s, N_DRAWS, 0.5, 4.0 / 12);
    CHECK(s.min >= -0.5 && s.max < 1.5, "%s: range [%g, %g]", what, s.min,
          s.max);
    CHECK(s.min < -0.49 && s.max > 1.49, "%s: range [%g, %g] too narrow", what,
          s.min, s.max);

    CHECK(nb_init_normal(g, w, 3.0, 0.5) == NB_OK, "%s", dn);
    s = stats_of(t);
    snprintf(what, sizeof what, "normal %s", dn);
    check_moments(what, &s, N_DRAWS, 3.0, 0.25);
    /* P(|z| <= 1) = 0.6827 for a normal; a uniform would give 0.577. */
    CHECK_NEAR(s.within_1sd, 0.6827, 0.01);

    double gain = 1.5, fi = 200, fo = 250;
    double a = gain * sqrt(6 / (fi + fo));
    CHECK(nb_init_xavier_uniform(g, w, fi, fo, gain) == NB_OK, "%s", dn);
    s = stats_of(t);
    snprintf(what, sizeof what, "xavier uniform %s", dn);
    check_moments(what, &s, N_DRAWS, 0, gain * gain * 2 / (fi + fo));
    CHECK(s.min >= -a && s.max < a, "%s: range [%g, %g], a = %g", what, s.min,
          s.max, a);
    CHECK(s.min < -0.99 * a && s.max > 0.99 * a, "%s: range too narrow", what);

    CHECK(nb_init_xavier_normal(g, w, fi, fo, gain) == NB_OK, "%s", dn);
    s = stats_of(t);
    snprintf(what, sizeof what, "xavier normal %s", dn);
    check_moments(what, &s, N_DRAWS, 0, gain * gain * 2 / (fi + fo));
    CHECK_NEAR(s.within_1sd, 0.6827, 0.01);

    /* A fan unrelated to the tensor's shape: the initialisers take it as
     * given. */
    double he_fan = 30;
    double ha = sqrt(6 / he_fan);
    CHECK(nb_init_he_uniform(g, w, he_fan) == NB_OK, "%s", dn);
    s = stats_of(t);
    snprintf(what, sizeof what, "he uniform %s", dn);
    check_moments(what, &s, N_DRAWS, 0, 2 / he_fan);
    CHECK(s.min >= -ha && s.max < ha, "%s: range [%g, %g]", what, s.min, s.max);

    CHECK(nb_init_he_normal(g, w, he_fan) == NB_OK, "%s", dn);
    s = stats_of(t);
    snprintf(what, sizeof what, "he normal %s", dn);
    check_moments(what, &s, N_DRAWS, 0, 2 / he_fan);
    CHECK_NEAR(s.within_1sd, 0.6827, 0.01);

    CHECK(nb_init_constant(g, w, -2.25) == NB_OK, "%s", dn);
    s = stats_of(t);
    CHECK(s.min == -2.25 && s.max == -2.25, "constant %s: [%g, %g]", dn, s.min,
          s.max);

    /* A narrow interval near 1 where f32 rounding of lo + (hi-lo) u would
     * often land on hi: the half-open bound must still hold. */
    CHECK(nb_init_uniform(g, w, 1.0, 1.0 + 1e-7) == NB_OK, "%s", dn);
    s = stats_of(t);
    CHECK(s.min >= 1.0 && s.max < 1.0 + 1e-7, "narrow %s: [%.17g, %.17g]", dn,
          s.min, s.max);

    CHECK(nb_graph_error(g) == NULL, "%s", nb_graph_error(g));
    nb_graph_free(g);
}

/* Builds the same MLP on a graph seeded with `seed`. */
static nb_graph *seeded_mlp(uint64_t seed, nb_init_kind init, nb_mlp *m)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, seed);
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 6));
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = SHAPE(6, 8, 5, 3),
                        .hidden = NB_ACT_RELU,
                        .output = NB_ACT_SOFTMAX,
                        .init = init};
    CHECK(nb_mlp_build(g, x, &spec, m) == NB_OK, "%s", nb_graph_error(g));
    return g;
}

static bool same_values(nb_node *a, nb_node *b)
{
    const nb_tensor *ta = nb_node_value(a), *tb = nb_node_value(b);
    if (nb_tensor_size(ta) != nb_tensor_size(tb))
        return false;
    for (int64_t i = 0; i < nb_tensor_size(ta); i++)
        if (nb_tensor_get(ta, i) != nb_tensor_get(tb, i))
            return false;
    return true;
}

static void test_seed_reproducibility(void)
{
    nb_init_kind kinds[] = {NB_INIT_DEFAULT, NB_INIT_XAVIER_NORMAL,
                            NB_INIT_HE_NORMAL, NB_INIT_TORCH};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        nb_mlp m1, m2, m3;
        nb_graph *g1 = seeded_mlp(123, kinds[k], &m1);
        nb_graph *g2 = seeded_mlp(123, kinds[k], &m2);
        nb_graph *g3 = seeded_mlp(124, kinds[k], &m3);
        for (int l = 0; l < 3; l++) {
            CHECK(same_values(m1.layer[l].W, m2.layer[l].W),
                  "init %zu layer %d: same seed, different W", k, l);
            CHECK(same_values(m1.layer[l].b, m2.layer[l].b),
                  "init %zu layer %d: same seed, different b", k, l);
            CHECK(!same_values(m1.layer[l].W, m3.layer[l].W),
                  "init %zu layer %d: other seed, same W", k, l);
        }
        nb_graph_free(g1);
        nb_graph_free(g2);
        nb_graph_free(g3);
    }
}

static void check_shape(nb_node *n, int rank, const int64_t *shape)
{
    CHECK(n != NULL, "node is NULL");
    if (!n)
        return;
    const nb_tensor *t = nb_node_value(n);
    char want[64], got[64];
    nb_shape_str(rank, shape, want, sizeof want);
    nb_shape_str(nb_tensor_rank(t), nb_tensor_shape(t), got, sizeof got);
    CHECK(strcmp(want, got) == 0, "'%s' is %s, expected %s", nb_node_name(n),
          got, want);
}

static void check_name(nb_node *n, const char *name)
{
    CHECK(n && strcmp(nb_node_name(n), name) == 0, "name '%s', expected '%s'",
          n ? nb_node_name(n) : "(null)", name);
}

static double max_abs(nb_node *n)
{
    const nb_tensor *t = nb_node_value(n);
    double m = 0;
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        m = fmax(m, fabs(nb_tensor_get(t, i)));
    return m;
}

static void test_linear(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 3);
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 4));
    nb_linear L;
    nb_node *y =
        nb_linear_layer(g, x, 3, true, "fc", NB_INIT_DEFAULT, NB_ACT_TANH, &L);
    CHECK(y != NULL && y == L.out, "%s", nb_graph_error(g));
    check_name(L.W, "fc.W");
    check_name(L.b, "fc.b");
    check_shape(L.W, 2, SHAPE(4, 3));
    check_shape(L.b, 1, SHAPE(3));
    CHECK(nb_graph_find(g, "fc.W") == L.W, "find fc.W");
    CHECK(nb_node_get_kind(L.W) == NB_NODE_PARAM && nb_node_is_trainable(L.b),
          "W and b are trainable parameters");
    CHECK(max_abs(L.b) == 0, "default bias is zero");

    /* y = x W + b on a fed batch, against the sum written out. */
    SET(L.W, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    SET(L.b, 0.5, -0.5, 1);
    const double xv[] = {1, 0, -1, 2, 0.5, 0.5, 0.5, 0.5};
    nb_feed(g, x, 2, SHAPE(2, 4), xv);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    /* row 0: [1,0,-1,2] W = [1-7+20, 2-8+22, 3-9+24] = [14, 16, 18] */
    /* row 1: 0.5 * column sums [22, 26, 30] = [11, 13, 15] */
    const double want[] = {14.5, 15.5, 19, 11.5, 12.5, 16};
    check_shape(y, 2, SHAPE(2, 3));
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(nb_tensor_get(nb_node_value(y), i), want[i], 1e-12);

    /* Rank 1 and rank 4 inputs go through reshapes: same numbers. */
    nb_node *v = nb_constant(g, "v", NB_F64, 1, SHAPE(4));
    SET(v, 1, 0, -1, 2);
    nb_linear L1;
    nb_node *y1 = nb_linear_layer(g, v, 3, false, "vec", NB_INIT_ZEROS,
                                  NB_ACT_LINEAR, &L1);
    CHECK(L1.b == NULL && nb_graph_find(g, "vec.b") == NULL, "no bias");
    nb_tensor_copy_from_f64(nb_node_value(L1.W),
                            nb_tensor_f64(nb_node_value(L.W)), 12);
    check_shape(y1, 1, SHAPE(3));
    CHECK(nb_forward(g, y1) == NB_OK, "%s", nb_graph_error(g));
    const double no_bias[] = {14, 16, 18};
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(nb_tensor_get(nb_node_value(y1), i), no_bias[i], 1e-12);

    nb_node *x4 = nb_constant(g, "x4", NB_F64, 4, SHAPE(2, 1, 2, 4));
    nb_tensor_copy_from_f64(nb_node_value(x4),
                            (const double[]){1, 0, -1, 2, 0.5, 0.5, 0.5, 0.5, 0,
                                             0, 0, 0, 1, 0, 0, 0},
                            16);
    nb_linear L4;
    nb_node *y4 = nb_linear_layer(g, x4, 3, true, "r4", NB_INIT_ZEROS,
                                  NB_ACT_LINEAR, &L4);
    nb_tensor_copy_from_f64(nb_node_value(L4.W),
                            nb_tensor_f64(nb_node_value(L.W)), 12);
    SET(L4.b, 0.5, -0.5, 1);
    check_shape(y4, 4, SHAPE(2, 1, 2, 3));
    CHECK(nb_forward(g, y4) == NB_OK, "%s", nb_graph_error(g));
    const double want4[] = {14.5, 15.5, 19, 11.5, 12.5, 16,
                            0.5,  -0.5, 1,  1.5,  1.5,  4};
    for (int i = 0; i < 12; i++)
        CHECK_NEAR(nb_tensor_get(nb_node_value(y4), i), want4[i], 1e-12);

    /* The default initialiser: He uniform (a = sqrt(6/100) = 0.245) before a
     * ReLU, Xavier uniform (a = sqrt(6/200) = 0.173) otherwise. Of 10^4
     * draws some exceed 0.173 unless the bound is Xavier's. */
    nb_node *x100 = nb_input(g, "x100", NB_F32, 2, SHAPE(NB_DYNAMIC, 100));
    nb_linear Lr, Ls, Lt;
    nb_linear_layer(g, x100, 100, true, "relu_fc", NB_INIT_DEFAULT, NB_ACT_RELU,
                    &Lr);
    nb_linear_layer(g, x100, 100, true, "sig_fc", NB_INIT_DEFAULT,
                    NB_ACT_SIGMOID, &Ls);
    nb_linear_layer(g, x100, 100, true, "torch_fc", NB_INIT_TORCH, NB_ACT_RELU,
                    &Lt);
    CHECK(max_abs(Lr.W) <= sqrt(0.06) && max_abs(Lr.W) > sqrt(0.03),
          "relu default: max |W| = %g", max_abs(Lr.W));
    CHECK(max_abs(Ls.W) <= sqrt(0.03) && max_abs(Ls.W) > 0.99 * sqrt(0.03),
          "sigmoid default: max |W| = %g", max_abs(Ls.W));
    CHECK(max_abs(Lr.b) == 0 && max_abs(Ls.b) == 0, "default biases are zero");
    /* Torch: W and b both U(-0.1, 0.1); b's 100 draws are not all tiny. */
    CHECK(max_abs(Lt.W) <= 0.1 && max_abs(Lt.W) > 0.099, "torch W: %g",
          max_abs(Lt.W));
    CHECK(max_abs(Lt.b) <= 0.1 && max_abs(Lt.b) > 0.05, "torch b: %g",
          max_abs(Lt.b));
    stats s = stats_of(nb_node_value(Lt.W));
    check_moments("torch W", &s, 1e4, 0, 0.01 / 3);

    /* Every kind through the layer, 100 -> 100: Xavier variance 2/200,
     * He 2/100, torch (1/10)^2/3; the fraction within one sd tells the
     * uniform law (1/sqrt 3 = 0.577) from the normal one (0.683). */
    struct {
        nb_init_kind kind;
        double var, bound, within;
    } kinds[] = {
        {NB_INIT_XAVIER_UNIFORM, 0.01, sqrt(0.03), 0.577},
        {NB_INIT_XAVIER_NORMAL, 0.01, INFINITY, 0.683},
        {NB_INIT_HE_UNIFORM, 0.02, sqrt(0.06), 0.577},
        {NB_INIT_HE_NORMAL, 0.02, INFINITY, 0.683},
        {NB_INIT_TORCH, 0.01 / 3, 0.1, 0.577},
        {NB_INIT_ZEROS, 0, 0, 1},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        nb_linear Lk;
        char name[32];
        snprintf(name, sizeof name, "kind%zu", k);
        /* The activation must not matter once a kind is named. */
        nb_linear_layer(g, x100, 100, true, name, kinds[k].kind,
                        k % 2 ? NB_ACT_SIGMOID : NB_ACT_RELU, &Lk);
        CHECK(Lk.W != NULL, "%s", nb_graph_error(g));
        if (!Lk.W)
            continue;
        stats sk = stats_of(nb_node_value(Lk.W));
        snprintf(name, sizeof name, "init kind %d", (int)kinds[k].kind);
        check_moments(name, &sk, 1e4, 0, kinds[k].var);
        CHECK(max_abs(Lk.W) <= kinds[k].bound, "%s: max |W| = %g", name,
              max_abs(Lk.W));
        if (kinds[k].var > 0)
            CHECK_NEAR(sk.within_1sd, kinds[k].within, 0.02);
        CHECK((max_abs(Lk.b) > 0) == (kinds[k].kind == NB_INIT_TORCH),
              "%s: bias max %g", name, max_abs(Lk.b));
    }

    CHECK(nb_graph_error(g) == NULL, "%s", nb_graph_error(g));
    nb_graph_free(g);
}

static void test_activations(void)
{
    for (int a = NB_ACT_LINEAR; a <= NB_ACT_SOFTMAX; a++) {
        const char *name = nb_activation_name((nb_activation)a);
        CHECK(nb_activation_from_name(name) == a, "round trip of '%s'", name);
    }
    CHECK(strcmp(nb_activation_name(NB_ACT_LEAKY_RELU), "leaky_relu") == 0,
          "leaky_relu name");
    CHECK(strcmp(nb_activation_name((nb_activation)99), "unknown") == 0,
          "unknown name");
    CHECK(nb_activation_from_name("bogus") == -1, "bogus");
    CHECK(nb_activation_from_name(NULL) == -1, "NULL");
    CHECK(nb_activation_from_name("identity") == NB_ACT_LINEAR, "identity");

    nb_graph *g = nb_graph_new();
    nb_node *x = nb_constant(g, "x", NB_F64, 1, SHAPE(2));
    SET(x, -2, 0.5);
    CHECK(nb_activate(g, x, NB_ACT_LINEAR, 0) == x, "linear adds no node");
    /* Every other activation is the built-in op of its name. */
    for (int a = NB_ACT_SIGMOID; a <= NB_ACT_SOFTMAX; a++) {
        const char *name = nb_activation_name((nb_activation)a);
        nb_node *y = nb_activate(g, x, (nb_activation)a, 0);
        CHECK(nb_find_op(name) != NULL, "'%s' is not an op of the list", name);
        CHECK(y && strcmp(nb_node_op_name(y), name) == 0,
              "activation '%s' made a node of op '%s'", name,
              y ? nb_node_op_name(y) : "(none)");
    }
    struct {
        nb_activation act;
        double param, y0, y1;
    } cases[] = {
        {NB_ACT_SIGMOID, 0, 0.11920292202211755, 0.6224593312018546},
        {NB_ACT_TANH, 0, -0.9640275800758169, 0.46211715726000974},
        {NB_ACT_RELU, 0, 0, 0.5},
        {NB_ACT_LEAKY_RELU, 0, -0.02, 0.5}, /* default slope 0.01 */
        {NB_ACT_LEAKY_RELU, 0.2, -0.4, 0.5},
        {NB_ACT_ELU, 0, -0.8646647167633873, 0.5}, /* default alpha 1 */
        {NB_ACT_ELU, 2, -1.7293294335267746, 0.5},
        {NB_ACT_SOFTPLUS, 0, 0.1269280110429725, 0.9740769841801067},
        {NB_ACT_SILU, 0, -0.2384058440442351, 0.3112296656009273},
        /* x Phi(x) = x erfc(-x/sqrt 2) / 2 */
        {NB_ACT_GELU, 0, -0.04550026389635844, 0.34573123063700656},
        /* lambda = 1.0507009873554805, alpha = 1.6732632423543772 */
        {NB_ACT_SELU, 0, -1.5201664685956948, 0.5253504936777402},
        /* e^-2 / (e^-2 + e^0.5), e^0.5 / (...) */
        {NB_ACT_SOFTMAX, 0, 0.07585818002124355, 0.9241418199787564},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_node *y = nb_activate(g, x, cases[i].act, cases[i].param);
        CHECK(y && nb_forward(g, y) == NB_OK, "%s: %s",
              nb_activation_name(cases[i].act), nb_graph_error(g));
        if (!y)
            continue;
        CHECK(fabs(nb_tensor_get(nb_node_value(y), 0) - cases[i].y0) < 1e-12 &&
                  fabs(nb_tensor_get(nb_node_value(y), 1) - cases[i].y1) <
                      1e-12,
              "%s(%g): [%.17g, %.17g]", nb_activation_name(cases[i].act),
              cases[i].param, nb_tensor_get(nb_node_value(y), 0),
              nb_tensor_get(nb_node_value(y), 1));
    }
    nb_graph_free(g);
}

static void test_mlp_structure(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 5));
    const nb_activation per_layer[] = {NB_ACT_RELU, NB_ACT_TANH};
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = SHAPE(5, 7, 6, 3),
                        .hidden = NB_ACT_SIGMOID, /* overridden */
                        .hidden_per_layer = per_layer,
                        .output = NB_ACT_SOFTMAX,
                        .name = "net"};
    nb_mlp m;
    CHECK(nb_mlp_build(g, x, &spec, &m) == NB_OK, "%s", nb_graph_error(g));
    CHECK(m.n_layers == 3 && m.input == x, "n_layers %d", m.n_layers);
    const char *wn[] = {"net.1.W", "net.2.W", "net.3.W"};
    const char *bn[] = {"net.1.b", "net.2.b", "net.3.b"};
    for (int l = 0; l < 3; l++) {
        check_name(m.layer[l].W, wn[l]);
        check_name(m.layer[l].b, bn[l]);
        check_shape(m.layer[l].W, 2, SHAPE(spec.sizes[l], spec.sizes[l + 1]));
        check_shape(m.layer[l].b, 1, SHAPE(spec.sizes[l + 1]));
        check_shape(m.layer[l].out, 2, SHAPE(1, spec.sizes[l + 1]));
        CHECK(nb_graph_find(g, wn[l]) == m.layer[l].W, "find %s", wn[l]);
    }
    CHECK(strcmp(nb_node_op_name(m.hidden[0]), "relu") == 0, "hidden 1: %s",
          nb_node_op_name(m.hidden[0]));
    CHECK(strcmp(nb_node_op_name(m.hidden[1]), "tanh") == 0, "hidden 2: %s",
          nb_node_op_name(m.hidden[1]));
    CHECK(nb_node_input(m.hidden[0], 0) == m.layer[0].out, "h1 = act(s1)");
    CHECK(m.hidden[2] == NULL, "no hidden[2] in a 3-layer net");
    CHECK(m.logits == m.layer[2].out, "logits are the last s");
    CHECK(strcmp(nb_node_op_name(m.output), "softmax") == 0 &&
              nb_node_input(m.output, 0) == m.logits,
          "output = softmax(logits)");
    CHECK(m.output_act == NB_ACT_SOFTMAX, "output_act");
    check_shape(m.output, 2, SHAPE(1, 3));
    /* A fed batch flows through every layer. */
    float xb[4 * 5] = {0};
    nb_feed(g, x, 2, SHAPE(4, 5), xb);
    CHECK(nb_forward(g, m.output) == NB_OK, "%s", nb_graph_error(g));
    check_shape(m.output, 2, SHAPE(4, 3));
    check_shape(m.hidden[1], 2, SHAPE(4, 6));

    /* Defaults: name "mlp", linear output adds no node, dropout after each
     * hidden activation, which it wraps. */
    nb_mlp_spec s2 = {.n_layers = 2,
                      .sizes = SHAPE(5, 4, 2),
                      .hidden = NB_ACT_LEAKY_RELU,
                      .hidden_param = 0.1,
                      .output = NB_ACT_LINEAR,
                      .dropout = 0.25};
    nb_mlp m2;
    CHECK(nb_mlp_build(g, x, &s2, &m2) == NB_OK, "%s", nb_graph_error(g));
    check_name(m2.layer[0].W, "mlp.1.W");
    check_name(m2.layer[1].b, "mlp.2.b");
    CHECK(m2.output == m2.logits, "linear output is the logits");
    CHECK(strcmp(nb_node_op_name(m2.hidden[0]), "dropout") == 0 &&
              strcmp(nb_node_op_name(nb_node_input(m2.hidden[0], 0)),
                     "leaky_relu") == 0,
          "hidden = dropout(leaky_relu(s)): %s", nb_node_op_name(m2.hidden[0]));

    /* One layer: a linear model, no hidden nodes at all. */
    nb_mlp_spec s3 = {.n_layers = 1,
                      .sizes = SHAPE(5, 1),
                      .output = NB_ACT_SIGMOID,
                      .name = "logreg"};
    nb_mlp m3;
    CHECK(nb_mlp_build(g, x, &s3, &m3) == NB_OK, "%s", nb_graph_error(g));
    check_name(m3.layer[0].W, "logreg.1.W");
    CHECK(m3.hidden[0] == NULL, "no hidden layer");
    CHECK(strcmp(nb_node_op_name(m3.output), "sigmoid") == 0, "sigmoid out");
    nb_graph_free(g);
}

/* The 2-2-2 network with sigmoid hidden units used for hand-computed
 * values:  x = [1, 2],  W1 = [[0.5, -1], [0.25, 1]],  b1 = [0, -1]
 *   s1 = [1, 0],  h = [sigma(1), 1/2] = [0.7310585786300049, 0.5]
 *   W2 = [[2, -1], [-2, 1]],  b2 = [0.5, 0]
 *   s2 = [2 h0 - 2 h1 + 0.5, -h0 + h1]
 *      = [0.9621171572600098, -0.2310585786300049]          */
static const double S2[2] = {0.9621171572600098, -0.2310585786300049};

static nb_graph *hand_set_net(nb_activation output, nb_mlp *m, nb_node **x)
{
    nb_graph *g = nb_graph_new();
    *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 2));
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = SHAPE(2, 2, 2),
                        .hidden = NB_ACT_SIGMOID,
                        .output = output,
                        .init = NB_INIT_ZEROS};
    CHECK(nb_mlp_build(g, *x, &spec, m) == NB_OK, "%s", nb_graph_error(g));
    CHECK(max_abs(m->layer[0].W) == 0 && max_abs(m->layer[1].b) == 0,
          "NB_INIT_ZEROS");
    SET(m->layer[0].W, 0.5, -1, 0.25, 1);
    SET(m->layer[0].b, 0, -1);
    SET(m->layer[1].W, 2, -1, -2, 1);
    SET(m->layer[1].b, 0.5, 0);
    nb_feed(g, *x, 2, SHAPE(1, 2), (const double[]){1, 2});
    return g;
}

static double loss_of(nb_graph *g, const nb_mlp *m, nb_node *t)
{
    nb_node *loss = nb_mlp_loss(g, m, t);
    CHECK(loss && nb_forward(g, loss) == NB_OK, "%s", nb_graph_error(g));
    return loss ? nb_tensor_get(nb_node_value(loss), 0) : NAN;
}

static void test_hand_set_forward(void)
{
    nb_mlp m;
    nb_node *x;

    /* Linear output: y = s2; loss = mean (s2 - t)^2 with t = [0.5, 0]. */
    nb_graph *g = hand_set_net(NB_ACT_LINEAR, &m, &x);
    CHECK(nb_forward(g, m.output) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.hidden[0]), 0), 0.7310585786300049,
               1e-14);
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.output), 0), S2[0], 1e-14);
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.output), 1), S2[1], 1e-14);
    nb_node *t = nb_constant(g, "t", NB_F64, 2, SHAPE(1, 2));
    SET(t, 0.5, 0);
    CHECK_NEAR(loss_of(g, &m, t), 0.1334701668962954, 1e-14);
    /* Penalty: 0.1/2 (2.3125 + 10) + 0.01 (2.75 + 6) = 0.703125. */
    nb_node *pen = nb_mlp_weight_penalty(g, &m, 0.1, 0.01);
    CHECK(pen && nb_forward(g, pen) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(pen), 0), 0.703125, 1e-14);
    nb_node *l2 = nb_mlp_weight_penalty(g, &m, 0.1, 0);
    CHECK(l2 && nb_forward(g, l2) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(l2), 0), 0.615625, 1e-14);
    nb_node *none = nb_mlp_weight_penalty(g, &m, 0, 0);
    CHECK(none && nb_forward(g, none) == NB_OK, "%s", nb_graph_error(g));
    CHECK(none && nb_tensor_get(nb_node_value(none), 0) == 0, "no penalty");
    nb_graph_free(g);

    /* Sigmoid output: y = sigma(s2); loss = mean softplus(s) - t s, with
     * t = [1, 0]: (log(1 + e^-s0) + log(1 + e^s1)) / 2. */
    g = hand_set_net(NB_ACT_SIGMOID, &m, &x);
    CHECK(nb_forward(g, m.output) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.output), 0), 0.7235454949773021,
               1e-14);
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.output), 1), 0.4424909858925388,
               1e-14);
    t = nb_constant(g, "t", NB_F64, 2, SHAPE(1, 2));
    SET(t, 1, 0);
    CHECK_NEAR(loss_of(g, &m, t), 0.4539342300352197, 1e-14);
    nb_graph_free(g);

    /* Softmax output; loss for label 0 is lse - s0 = log(1 + e^(s1 - s0)),
     * for the one-hot row [0, 1] log(1 + e^(s0 - s1)). */
    g = hand_set_net(NB_ACT_SOFTMAX, &m, &x);
    CHECK(nb_forward(g, m.output) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.output), 0), 0.7673085608637868,
               1e-14);
    CHECK_NEAR(nb_tensor_get(nb_node_value(m.output), 1), 0.23269143913621312,
               1e-14);
    nb_node *label = nb_constant(g, "label", NB_F64, 1, SHAPE(1));
    SET(label, 0);
    CHECK_NEAR(loss_of(g, &m, label), 0.26486626273344527, 1e-14);
    nb_node *onehot = nb_constant(g, "onehot", NB_F64, 2, SHAPE(1, 2));
    SET(onehot, 0, 1);
    CHECK_NEAR(loss_of(g, &m, onehot), 1.45804199862346, 1e-13);
    nb_graph_free(g);
}

/* A 3-5-4-k f64 network with smooth hidden units (no kinks for the
 * difference quotients to straddle), checked through nb_mlp_loss. */
static void gradcheck_mlp(nb_activation output, int targets_rank,
                          double dropout, double l2, const char *what)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 11);
    const int k = 3, rows = 4;
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    const nb_activation per_layer[] = {NB_ACT_TANH, NB_ACT_SOFTPLUS};
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = SHAPE(3, 5, 4, k),
                        .hidden_per_layer = per_layer,
                        .output = output,
                        .dropout = dropout,
                        .init = NB_INIT_TORCH};
    nb_mlp m;
    CHECK(nb_mlp_build(g, x, &spec, &m) == NB_OK, "%s", nb_graph_error(g));
    double xv[4 * 3];
    for (int i = 0; i < rows * 3; i++)
        xv[i] = 2 * nb_rng_uniform(g) - 1;
    nb_feed(g, x, 2, SHAPE(rows, 3), xv);

    nb_node *t;
    if (targets_rank == 1) {
        t = nb_constant(g, "labels", NB_F64, 1, SHAPE(rows));
        SET(t, 0, 2, 1, 2);
    } else {
        t = nb_constant(g, "t", NB_F64, 2, SHAPE(rows, k));
        nb_tensor *tv = nb_node_value(t);
        for (int i = 0; i < rows * k; i++) {
            double v = output == NB_ACT_LINEAR ? nb_rng_normal(g)
                       : output == NB_ACT_SIGMOID
                           ? (double)(i % 2)
                           : (double)(i % k == i / k % k);
            nb_tensor_set(tv, i, v);
        }
    }
    nb_node *loss = nb_mlp_loss(g, &m, t);
    if (l2 > 0)
        loss = nb_add(g, loss, nb_mlp_weight_penalty(g, &m, l2, 0));
    CHECK(loss != NULL, "%s: %s", what, nb_graph_error(g));
    nb_gradcheck_result r;
    int rc = nb_gradcheck(g, loss, NULL, &r);
    CHECK(rc == NB_OK && r.passed, "%s: %s %s", what, r.message,
          nb_graph_error(g));
    /* Every weight and bias: 3*5+5 + 5*4+4 + 4*3+3 = 59 elements. */
    CHECK(r.checked == 59, "%s: checked %lld", what, (long long)r.checked);
    CHECK(r.zero_gradient == NULL, "%s: zero gradient", what);
    nb_graph_free(g);
}

static void test_gradcheck(void)
{
    gradcheck_mlp(NB_ACT_SOFTMAX, 1, 0, 0, "softmax, class indices");
    gradcheck_mlp(NB_ACT_SOFTMAX, 2, 0, 0, "softmax, one-hot");
    gradcheck_mlp(NB_ACT_SIGMOID, 2, 0, 0, "sigmoid");
    gradcheck_mlp(NB_ACT_LINEAR, 2, 0, 0, "linear");
    gradcheck_mlp(NB_ACT_SOFTMAX, 1, 0.3, 0, "softmax with dropout");
    gradcheck_mlp(NB_ACT_LINEAR, 2, 0, 0.05, "linear with L2 penalty");
}

static void test_freezing(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 5);
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = SHAPE(3, 4, 4, 2),
                        .hidden = NB_ACT_TANH,
                        .output = NB_ACT_SOFTMAX};
    nb_mlp m;
    CHECK(nb_mlp_build(g, x, &spec, &m) == NB_OK, "%s", nb_graph_error(g));
    nb_node *labels = nb_input(g, "labels", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *loss = nb_mlp_loss(g, &m, labels);
    nb_feed(g, x, 2, SHAPE(2, 3), (const double[]){1, 2, 3, -1, 0, 1});
    nb_feed(g, labels, 1, SHAPE(2), (const double[]){0, 1});

    CHECK(nb_mlp_set_trainable(g, &m, 0, 2, false) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(!nb_node_is_trainable(m.layer[0].W) &&
              !nb_node_is_trainable(m.layer[1].b) &&
              nb_node_is_trainable(m.layer[2].W),
          "layers 0 and 1 frozen, 2 not");
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "%s",
          nb_graph_error(g));
    for (int l = 0; l < 2; l++)
        CHECK(nb_node_grad(m.layer[l].W) == NULL &&
                  nb_node_grad(m.layer[l].b) == NULL,
              "frozen layer %d has a gradient", l);
    CHECK(nb_node_grad(m.layer[2].W) && nb_node_grad(m.layer[2].b),
          "the trainable layer has a gradient");
    if (nb_node_grad(m.layer[2].W)) {
        const nb_tensor *gw = nb_node_grad(m.layer[2].W);
        double gmax = 0;
        for (int64_t i = 0; i < nb_tensor_size(gw); i++)
            gmax = fmax(gmax, fabs(nb_tensor_get(gw, i)));
        CHECK(gmax > 0, "the trainable layer's gradient is all zero");
    }
    /* Nothing upstream of layer 3 is trainable: its input gets no grad. */
    CHECK(nb_node_grad(m.hidden[0]) == NULL, "h1 is off the gradient path");

    CHECK(nb_mlp_set_trainable(g, &m, 0, 3, true) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "%s",
          nb_graph_error(g));
    for (int l = 0; l < 3; l++)
        CHECK(nb_node_grad(m.layer[l].W) && nb_node_grad(m.layer[l].b),
              "unfrozen layer %d has no gradient", l);
    /* An empty range changes nothing and is fine. */
    CHECK(nb_mlp_set_trainable(g, &m, 1, 1, false) == NB_OK, "empty range");
    CHECK(nb_node_is_trainable(m.layer[1].W), "empty range froze something");
    nb_graph_free(g);
}

static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph *other = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 2, SHAPE(3, 4));
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *foreign = nb_param(other, "foreign", NB_F64, 1, SHAPE(2));

    /* Initialisers. */
    CHECK(nb_init_uniform(g, NULL, 0, 1) == NB_ERR_ARG, "NULL param");
    CHECK_ERROR(g, "init_uniform", "param is NULL");
    CHECK(nb_init_normal(g, x, 0, 1) == NB_ERR_ARG, "input");
    CHECK_ERROR(g, "init_normal", "'x' is not a parameter");
    CHECK(nb_init_he_normal(g, foreign, 3) == NB_ERR_ARG, "foreign");
    CHECK_ERROR(g, "init_he_normal", "'foreign' belongs to another graph");
    CHECK(nb_init_normal(g, w, 0, -1) == NB_ERR_ARG, "std < 0");
    CHECK_ERROR(g, "init_normal 'w'", "std = -1");
    CHECK(nb_init_normal(g, w, NAN, 1) == NB_ERR_ARG, "mean NaN");
    CHECK_ERROR(g, "init_normal 'w'", "mean = nan");
    CHECK(nb_init_uniform(g, w, 1, 1) == NB_ERR_ARG, "lo == hi");
    CHECK_ERROR(g, "init_uniform 'w'", "[1, 1)", "lo < hi");
    CHECK(nb_init_uniform(g, w, 0, INFINITY) == NB_ERR_ARG, "hi inf");
    CHECK_ERROR(g, "init_uniform 'w'", "not finite");
    CHECK(nb_init_xavier_uniform(g, w, 0, 4, 1) == NB_ERR_ARG, "fan_in 0");
    CHECK_ERROR(g, "init_xavier_uniform", "fan_in = 0 must be positive");
    CHECK(nb_init_xavier_normal(g, w, 3, -4, 1) == NB_ERR_ARG, "fan_out < 0");
    CHECK_ERROR(g, "init_xavier_normal", "fan_out = -4 must be positive");
    CHECK(nb_init_xavier_uniform(g, w, 3, 4, 0) == NB_ERR_ARG, "gain 0");
    CHECK_ERROR(g, "init_xavier_uniform", "gain = 0 must be positive");
    CHECK(nb_init_he_uniform(g, w, -3) == NB_ERR_ARG, "he fan_in < 0");
    CHECK_ERROR(g, "init_he_uniform", "fan_in = -3 must be positive");
    CHECK(nb_init_constant(g, w, INFINITY) == NB_ERR_ARG, "inf");
    CHECK_ERROR(g, "init_constant 'w'", "value = inf is not finite");
    CHECK(nb_init_uniform(NULL, w, 0, 1) == NB_ERR_ARG, "NULL graph");
    CHECK(max_abs(w) == 0, "a failed initialiser wrote the parameter");

    /* Activation. */
    CHECK(nb_activate(g, x, (nb_activation)42, 0) == NULL, "bad act");
    CHECK_ERROR(g, "activate", "unknown activation 42");
    CHECK(nb_activate(g, NULL, NB_ACT_RELU, 0) == NULL, "NULL x");
    CHECK_ERROR(g, "activate relu", "x is NULL");

    /* Linear layer. */
    nb_linear L;
    CHECK(nb_linear_layer(g, x, 0, true, "fc", NB_INIT_DEFAULT, NB_ACT_RELU,
                          &L) == NULL &&
              L.W == NULL,
          "out_features 0");
    CHECK_ERROR(g, "linear 'fc'", "out_features = 0 must be positive");
    CHECK(nb_linear_layer(g, NULL, 2, true, NULL, NB_INIT_DEFAULT, NB_ACT_RELU,
                          &L) == NULL,
          "NULL x");
    CHECK_ERROR(g, "linear 'linear'", "x is NULL");
    nb_node *scalar = nb_scalar(g, NULL, NB_F64, 1);
    CHECK(nb_linear_layer(g, scalar, 2, true, "fc", NB_INIT_DEFAULT,
                          NB_ACT_RELU, NULL) == NULL,
          "scalar x");
    CHECK_ERROR(g, "linear 'fc'", "is a scalar");
    CHECK(nb_linear_layer(g, x, 2, true, "fc", (nb_init_kind)17, NB_ACT_RELU,
                          NULL) == NULL,
          "bad init");
    CHECK_ERROR(g, "linear 'fc'", "unknown init kind 17");
    CHECK(nb_linear_layer(g, foreign, 2, true, "fc", NB_INIT_DEFAULT,
                          NB_ACT_RELU, NULL) == NULL,
          "foreign x");
    CHECK_ERROR(g, "linear 'fc'", "belongs to another graph");
    /* Sticky: with an error held, a NULL input adds no second message. */
    nb_graph_set_error(g, NB_ERR_ARG, "the first error");
    CHECK(nb_linear_layer(g, NULL, 2, true, "fc", NB_INIT_DEFAULT, NB_ACT_RELU,
                          NULL) == NULL,
          "NULL x after an error");
    CHECK_ERROR(g, "the first error");

    /* MLP spec. */
    nb_mlp m;
    nb_mlp_spec ok = {.n_layers = 2,
                      .sizes = SHAPE(3, 4, 2),
                      .hidden = NB_ACT_RELU,
                      .output = NB_ACT_SOFTMAX,
                      .name = "net"};
    nb_mlp_spec s;
    s = ok;
    s.n_layers = 0;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG && m.logits == NULL, "0");
    CHECK_ERROR(g, "mlp 'net'", "n_layers = 0 is outside 1..64");
    s.n_layers = NB_MLP_MAX_LAYERS + 1;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "65");
    CHECK_ERROR(g, "mlp 'net'", "n_layers = 65");
    s = ok;
    s.sizes = NULL;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "sizes NULL");
    CHECK_ERROR(g, "mlp 'net'", "sizes is NULL");
    s = ok;
    s.sizes = SHAPE(3, 4, 0);
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "size 0");
    CHECK_ERROR(g, "mlp 'net'", "sizes[2] = 0 must be positive");
    s = ok;
    s.sizes = SHAPE(5, 4, 2);
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "width mismatch");
    CHECK_ERROR(g, "mlp 'net'", "x ('x') is [1,3] but sizes[0] = 5");
    s = ok;
    s.output = NB_ACT_RELU;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "relu output");
    CHECK_ERROR(g, "mlp 'net'", "output must be linear, sigmoid or softmax",
                "not relu");
    s = ok;
    s.hidden = NB_ACT_SOFTMAX;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "softmax hidden");
    CHECK_ERROR(g, "mlp 'net'", "hidden layer 1: softmax");
    s = ok;
    s.hidden_per_layer = (const nb_activation[]){(nb_activation)99};
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "bad per-layer act");
    CHECK_ERROR(g, "mlp 'net'", "hidden layer 1 has unknown activation 99");
    s = ok;
    s.dropout = 1.0;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "dropout 1");
    CHECK_ERROR(g, "mlp 'net'", "dropout = 1 is not in [0, 1)");
    s.dropout = -0.1;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "dropout < 0");
    CHECK_ERROR(g, "dropout = -0.1");
    s.dropout = NAN;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "dropout NaN");
    CHECK_ERROR(g, "dropout = nan");
    s = ok;
    s.init = (nb_init_kind)-1;
    CHECK(nb_mlp_build(g, x, &s, &m) == NB_ERR_ARG, "bad init");
    CHECK_ERROR(g, "mlp 'net'", "unknown init kind -1");
    CHECK(nb_mlp_build(g, x, NULL, &m) == NB_ERR_ARG, "NULL spec");
    CHECK_ERROR(g, "mlp", "spec is NULL");
    CHECK(nb_mlp_build(g, x, &ok, NULL) == NB_ERR_ARG, "NULL mlp");
    CHECK_ERROR(g, "mlp", "the nb_mlp to fill is NULL");
    CHECK(nb_mlp_build(g, NULL, &ok, &m) == NB_ERR_ARG, "NULL x");
    CHECK_ERROR(g, "mlp 'net'", "x is NULL");
    CHECK(nb_mlp_build(g, foreign, &ok, &m) == NB_ERR_ARG, "foreign x");
    CHECK_ERROR(g, "mlp 'net'", "belongs to another graph");
    CHECK(nb_graph_find(g, "net.1.W") == NULL,
          "a rejected spec created parameters");

    /* Loss, penalty, freezing. */
    nb_mlp unbuilt;
    memset(&unbuilt, 0, sizeof unbuilt);
    CHECK(nb_mlp_loss(g, &unbuilt, x) == NULL, "unbuilt");
    CHECK_ERROR(g, "mlp_loss", "was not built");
    CHECK(nb_mlp_loss(g, NULL, x) == NULL, "NULL mlp");
    CHECK_ERROR(g, "mlp_loss", "the MLP is NULL");
    CHECK(nb_mlp_build(g, x, &ok, &m) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_mlp_loss(g, &m, NULL) == NULL, "NULL targets");
    CHECK_ERROR(g, "mlp_loss", "targets is NULL");
    nb_node *bad_t = nb_constant(g, "bad_t", NB_F64, 2, SHAPE(1, 3));
    CHECK(nb_mlp_loss(g, &m, bad_t) == NULL, "target shape");
    CHECK_ERROR(g, "softmax_ce");
    CHECK(nb_mlp_weight_penalty(g, &m, -1, 0) == NULL, "l2 < 0");
    CHECK_ERROR(g, "mlp_weight_penalty", "l2 = -1");
    CHECK(nb_mlp_weight_penalty(g, &m, 0, NAN) == NULL, "l1 NaN");
    CHECK_ERROR(g, "mlp_weight_penalty", "l1 = nan");
    CHECK(nb_mlp_set_trainable(g, &m, 1, 3, false) == NB_ERR_ARG, "range");
    CHECK_ERROR(g, "mlp_set_trainable", "layers [1, 3)", "[0, 2)");
    CHECK(nb_mlp_set_trainable(g, &m, -1, 1, false) == NB_ERR_ARG, "first<0");
    CHECK_ERROR(g, "mlp_set_trainable", "layers [-1, 1)");
    CHECK(nb_mlp_set_trainable(g, &m, 2, 1, false) == NB_ERR_ARG, "first>l");
    CHECK_ERROR(g, "mlp_set_trainable", "layers [2, 1)");
    CHECK(nb_mlp_set_trainable(g, NULL, 0, 1, false) == NB_ERR_ARG, "NULL");
    CHECK_ERROR(g, "mlp_set_trainable", "the MLP is NULL");
    CHECK(nb_node_is_trainable(m.layer[0].W), "a failed call froze a layer");

    /* The graph still works: train-step shape of a normal run. */
    CHECK(nb_graph_error(g) == NULL, "error left: %s", nb_graph_error(g));
    nb_node *labels = nb_input(g, "labels", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *loss = nb_mlp_loss(g, &m, labels);
    nb_feed(g, x, 2, SHAPE(2, 3), (const double[]){1, 2, 3, 4, 5, 6});
    nb_feed(g, labels, 1, SHAPE(2), (const double[]){1, 0});
    CHECK(loss && nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK,
          "%s", nb_graph_error(g));
    CHECK(nb_node_grad(m.layer[0].W) != NULL, "gradient after the errors");
    CHECK(loss && isfinite(nb_tensor_get(nb_node_value(loss), 0)),
          "finite loss");
    nb_graph_free(other);
    nb_graph_free(g);
}

/* ---- convolution, pooling and normalisation layers ---- */

/* A parameter's name and shape. */
static void check_param_node(nb_node *p, const char *name, int rank,
                             const int64_t *shape)
{
    CHECK(p != NULL, "%s missing", name);
    if (!p)
        return;
    CHECK(strcmp(nb_node_name(p), name) == 0, "name '%s', expected '%s'",
          nb_node_name(p), name);
    const nb_tensor *t = nb_node_value(p);
    CHECK(nb_tensor_rank(t) == rank, "%s: rank %d, expected %d", name,
          nb_tensor_rank(t), rank);
    for (int i = 0; i < rank && i < nb_tensor_rank(t); i++)
        CHECK(nb_tensor_dim(t, i) == shape[i], "%s: extent %d is %lld, "
              "expected %lld", name, i, (long long)nb_tensor_dim(t, i),
              (long long)shape[i]);
}

/* Checks that every element lies in [-a, a) and that the sample variance
 * is a^2/3, the variance of U(-a, a). */
static void check_uniform(const char *what, nb_node *p, double a)
{
    stats s = stats_of(nb_node_value(p));
    double n = (double)nb_tensor_size(nb_node_value(p));
    CHECK(s.min >= -a && s.max < a, "%s: range [%g, %g] outside +-%g", what,
          s.min, s.max, a);
    CHECK(s.max > 0.9 * a && s.min < -0.9 * a, "%s: range [%g, %g] too "
          "narrow for +-%g", what, s.min, s.max, a);
    check_moments(what, &s, n, 0, a * a / 3);
}

/* Feeds x a batch of the given shape holding sin(i), i the element index. */
static void feed_wave(nb_graph *g, nb_node *x, int rank, const int64_t *shape)
{
    void *buf = nb_feed_buffer(g, x, rank, shape);
    const nb_tensor *t = nb_node_value(x);
    CHECK(buf != NULL, "feed: %s", nb_graph_error(g));
    for (int64_t i = 0; buf && i < nb_tensor_size(t); i++) {
        if (nb_tensor_dtype(t) == NB_F32)
            ((float *)buf)[i] = (float)sin((double)i);
        else
            ((double *)buf)[i] = sin((double)i);
    }
}

/* nb_conv2d_relu_layer against nb_conv2d_layer then nb_relu on two graphs
 * seeded alike: the same parameters (names, shapes, values) and the same
 * output and gradients of x, weight and bias, bit for bit; the fused
 * layer's output is one conv2d_bias_act node. */
static void test_conv2d_relu_layer(void)
{
    nb_graph *gs[2];
    nb_conv c[2];
    nb_node *x[2], *y[2];
    for (int v = 0; v < 2; v++) {
        nb_graph *g = gs[v] = nb_graph_new();
        nb_graph_seed(g, 5);
        x[v] = nb_param(g, "x", NB_F64, 4, SHAPE(2, 3, 7, 6));
        nb_init_uniform(g, x[v], -1, 1);
        nb_conv_params p = nb_conv_params_of(1, 1, 1, 1);
        y[v] = v ? nb_conv2d_relu_layer(g, x[v], 4, 3, 3, &p, true, "c",
                                        NB_INIT_TORCH, &c[v])
                 : nb_relu(g, nb_conv2d_layer(g, x[v], 4, 3, 3, &p, true, "c",
                                              NB_INIT_TORCH, NB_ACT_RELU,
                                              &c[v]));
        nb_node *loss = y[v] ? nb_sum(g, nb_square(g, y[v])) : NULL;
        CHECK(loss && nb_forward(g, loss) == NB_OK &&
                  nb_backward(g, loss) == NB_OK,
              "%s", nb_graph_error(g));
    }
    CHECK(c[1].out == y[1] &&
              strcmp(nb_node_op_name(y[1]), "conv2d_bias_act") == 0,
          "the fused layer's output is its conv2d_bias_act node");
    check_param_node(c[1].weight, "c.weight", 4, SHAPE(4, 3, 3, 3));
    check_param_node(c[1].bias, "c.bias", 1, SHAPE(4));
    const nb_tensor *pairs[5][2] = {
        {nb_node_value(c[0].weight), nb_node_value(c[1].weight)},
        {nb_node_value(c[0].bias), nb_node_value(c[1].bias)},
        {nb_node_value(y[0]), nb_node_value(y[1])},
        {nb_node_grad(x[0]), nb_node_grad(x[1])},
        {nb_node_grad(c[0].bias), nb_node_grad(c[1].bias)},
    };
    for (int i = 0; i < 5; i++) {
        const nb_tensor *a = pairs[i][0], *b = pairs[i][1];
        CHECK(a && b && nb_tensor_size(a) == nb_tensor_size(b) &&
                  memcmp(nb_tensor_cdata(a), nb_tensor_cdata(b),
                         (size_t)nb_tensor_size(a) * sizeof(double)) == 0,
              "fused relu layer: pair %d differs from conv layer + relu", i);
    }
    nb_graph_free(gs[0]);
    nb_graph_free(gs[1]);
}

static void test_conv_layers(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 11);
    nb_node *x = nb_input(g, "x", NB_F32, 4, SHAPE(NB_DYNAMIC, 32, 12, 10));
    nb_conv_params same = nb_conv_params_of(1, 1, 1, 1);
    nb_conv c;

    /* PyTorch's Conv2d(32, 64, 3, padding=1): fan_in 32 * 9. */
    nb_node *y = nb_conv2d_layer(g, x, 64, 3, 3, &same, true, "conv1",
                                 NB_INIT_TORCH, NB_ACT_RELU, &c);
    CHECK(y != NULL && c.out == y, "%s", nb_graph_error(g));
    check_param_node(c.weight, "conv1.weight", 4, SHAPE(64, 32, 3, 3));
    check_param_node(c.bias, "conv1.bias", 1, SHAPE(64));
    CHECK(nb_graph_find(g, "conv1.weight") == c.weight, "findable by name");
    double k = 1 / sqrt(32.0 * 9);
    check_uniform("conv2d torch weight", c.weight, k);
    stats sb = stats_of(nb_node_value(c.bias));
    CHECK(sb.min >= -k && sb.max < k && sb.max > sb.min,
          "conv2d torch bias in [%g, %g], bound %g", sb.min, sb.max, k);
    feed_wave(g, x, 4, SHAPE(2, 32, 12, 10));
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    const nb_tensor *yv = nb_node_value(y);
    CHECK(nb_tensor_rank(yv) == 4 && nb_tensor_dim(yv, 0) == 2 &&
              nb_tensor_dim(yv, 1) == 64 && nb_tensor_dim(yv, 2) == 12 &&
              nb_tensor_dim(yv, 3) == 10,
          "conv2d output shape");

    /* He (default before a ReLU) and Xavier on the same shape; no bias,
     * stride 2, a rectangular kernel: (12 - 3) / 2 + 1 by (10 - 5) / 2 + 1. */
    nb_conv_params s2 = nb_conv_params_of(2, 0, 1, 1);
    y = nb_conv2d_layer(g, x, 64, 3, 5, &s2, false, "he", NB_INIT_DEFAULT,
                        NB_ACT_RELU, &c);
    CHECK(y && c.bias == NULL && nb_graph_find(g, "he.bias") == NULL,
          "no bias: %s", nb_graph_error(g));
    check_uniform("conv2d he weight", c.weight, sqrt(6 / (32.0 * 15)));
    CHECK(y && nb_forward(g, y) == NB_OK &&
              nb_tensor_dim(nb_node_value(y), 2) == 5 &&
              nb_tensor_dim(nb_node_value(y), 3) == 3,
          "strided output shape");
    y = nb_conv2d_layer(g, x, 64, 3, 3, NULL, true, "xa", NB_INIT_DEFAULT,
                        NB_ACT_TANH, &c);
    check_uniform("conv2d xavier weight", c.weight,
                  sqrt(6 / (32.0 * 9 + 64.0 * 9)));
    CHECK(nb_tensor_get(nb_node_value(c.bias), 0) == 0 &&
              stats_of(nb_node_value(c.bias)).max == 0,
          "bias 0 outside NB_INIT_TORCH");
    y = nb_conv2d_layer(g, x, 64, 3, 3, NULL, true, NULL, NB_INIT_HE_NORMAL,
                        NB_ACT_LINEAR, &c);
    CHECK(y && nb_graph_find(g, "conv2d.weight") == c.weight, "default name");
    stats sn = stats_of(nb_node_value(c.weight));
    check_moments("conv2d he normal", &sn,
                  (double)nb_tensor_size(nb_node_value(c.weight)), 0,
                  2 / (32.0 * 9));

    /* Depthwise: groups = C, weight [C * 2, 1, 3, 3], fan_in 9. */
    nb_conv_params dw = nb_conv_params_of(1, 1, 1, 32);
    y = nb_conv2d_layer(g, x, 64, 3, 3, &dw, true, "dw", NB_INIT_TORCH,
                        NB_ACT_RELU, &c);
    CHECK(y != NULL, "%s", nb_graph_error(g));
    check_param_node(c.weight, "dw.weight", 4, SHAPE(64, 1, 3, 3));
    check_uniform("depthwise torch weight", c.weight, 1 / 3.0);

    /* conv_transpose2d: weight [C, O/groups, KH, KW], fan_in O KH KW; a
     * stride-2, padding-1, output-padding-1 layer doubles H and W. */
    nb_conv_params up = nb_conv_params_of(2, 1, 1, 1);
    up.output_padding[0] = up.output_padding[1] = 1;
    y = nb_conv_transpose2d_layer(g, x, 16, 3, 3, &up, true, "up",
                                  NB_INIT_TORCH, NB_ACT_LINEAR, &c);
    CHECK(y != NULL, "%s", nb_graph_error(g));
    check_param_node(c.weight, "up.weight", 4, SHAPE(32, 16, 3, 3));
    check_param_node(c.bias, "up.bias", 1, SHAPE(16));
    check_uniform("conv_transpose2d torch weight", c.weight,
                  1 / sqrt(16.0 * 9));
    CHECK(y && nb_forward(g, y) == NB_OK &&
              nb_tensor_dim(nb_node_value(y), 1) == 16 &&
              nb_tensor_dim(nb_node_value(y), 2) == 24 &&
              nb_tensor_dim(nb_node_value(y), 3) == 20,
          "transposed output shape: %s", nb_graph_error(g));

    /* conv1d on [N, C, L]: weight [O, C, K], padding on both ends. */
    nb_node *s = nb_input(g, "s", NB_F64, 3, SHAPE(NB_DYNAMIC, 4, 9));
    y = nb_conv1d_layer(g, s, 6, 3, 2, 1, 1, 2, true, "c1", NB_INIT_TORCH,
                        NB_ACT_RELU, &c);
    CHECK(y != NULL, "%s", nb_graph_error(g));
    check_param_node(c.weight, "c1.weight", 3, SHAPE(6, 2, 3));
    check_param_node(c.bias, "c1.bias", 1, SHAPE(6));
    feed_wave(g, s, 3, SHAPE(1, 4, 9));
    CHECK(y && nb_forward(g, y) == NB_OK &&
              nb_tensor_dim(nb_node_value(y), 1) == 6 &&
              nb_tensor_dim(nb_node_value(y), 2) == 5,
          "conv1d output shape: %s", nb_graph_error(g));
    nb_graph_free(g);
}

/* Values worked out by hand: a 1x1 convolution is a per-pixel mix of the
 * channels plus the bias. */
static void test_conv_layer_values(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 4, SHAPE(1, 2, 1, 2));
    nb_conv c;
    nb_node *y = nb_conv2d_layer(g, x, 1, 1, 1, NULL, true, "mix",
                                 NB_INIT_ZEROS, NB_ACT_LINEAR, &c);
    SET(c.weight, 2, -1);
    SET(c.bias, 0.5);
    nb_feed(g, x, 4, SHAPE(1, 2, 1, 2), (const double[]){1, 2, 3, 5});
    CHECK(y && nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    /* 2 * 1 - 3 + 0.5 and 2 * 2 - 5 + 0.5 */
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 0), -0.5, 1e-15);
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 1), -0.5, 1e-15);
    /* The bias gradient sums over the positions: dL/db = 2 for L = sum y. */
    nb_node *loss = nb_sum(g, y);
    CHECK(loss && nb_forward(g, loss) == NB_OK &&
              nb_backward(g, loss) == NB_OK,
          "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_grad(c.bias), 0), 2.0, 1e-15);
    CHECK_NEAR(nb_tensor_get(nb_node_grad(c.weight), 1), 8.0, 1e-15);
    nb_graph_free(g);
}

static void test_pool_layers(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 4, SHAPE(1, 1, 2, 4));
    nb_feed(g, x, 4, SHAPE(1, 1, 2, 4),
            (const double[]){1, 2, 5, 0, 3, 4, -1, -2});
    nb_node *m = nb_max_pool2d_layer(g, x, 2, 0, 0, "pool1");
    nb_node *a = nb_avg_pool2d_layer(g, x, 2, 0, 0, NULL);
    /* Padding 1 at stride 2 with the zeros counted: the window at the top
     * left holds only the 1. */
    nb_node *p = nb_avg_pool2d_layer(g, x, 2, 2, 1, "padded");
    CHECK(m && a && p && nb_forward(g, m) == NB_OK &&
              nb_forward(g, a) == NB_OK && nb_forward(g, p) == NB_OK,
          "%s", nb_graph_error(g));
    const nb_tensor *mv = nb_node_value(m), *av = nb_node_value(a);
    CHECK(nb_tensor_dim(mv, 2) == 1 && nb_tensor_dim(mv, 3) == 2,
          "stride defaults to the kernel");
    CHECK(nb_tensor_get(mv, 0) == 4 && nb_tensor_get(mv, 1) == 5, "max");
    CHECK(nb_tensor_get(av, 0) == 2.5 && nb_tensor_get(av, 1) == 0.5, "avg");
    CHECK(nb_tensor_dim(nb_node_value(p), 3) == 3 &&
              nb_tensor_get(nb_node_value(p), 0) == 0.25,
          "count_include_pad");
    nb_graph_free(g);
}

static void test_norm_layers(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 4, SHAPE(NB_DYNAMIC, 2, 1, 2));
    nb_norm bn;
    nb_node *y = nb_batch_norm_layer(g, x, true, NB_BN_MOMENTUM, NB_NORM_EPS,
                                     "bn1", &bn);
    CHECK(y != NULL && bn.out == y, "%s", nb_graph_error(g));
    check_param_node(bn.weight, "bn1.weight", 1, SHAPE(2));
    check_param_node(bn.bias, "bn1.bias", 1, SHAPE(2));
    check_param_node(bn.running_mean, "bn1.running_mean", 1, SHAPE(2));
    check_param_node(bn.running_var, "bn1.running_var", 1, SHAPE(2));
    CHECK(nb_node_get_kind(bn.running_mean) == NB_NODE_STATE &&
              nb_node_get_kind(bn.running_var) == NB_NODE_STATE &&
              nb_node_get_kind(bn.weight) == NB_NODE_PARAM,
          "running statistics are state, gain and shift parameters");
    for (int i = 0; i < 2; i++) {
        CHECK(nb_tensor_get(nb_node_value(bn.weight), i) == 1, "gain 1");
        CHECK(nb_tensor_get(nb_node_value(bn.bias), i) == 0, "shift 0");
        CHECK(nb_tensor_get(nb_node_value(bn.running_mean), i) == 0, "mean 0");
        CHECK(nb_tensor_get(nb_node_value(bn.running_var), i) == 1, "var 1");
    }
    /* Inference before any training: x / sqrt(1 + eps). */
    nb_feed(g, x, 4, SHAPE(2, 2, 1, 2),
            (const double[]){1, 3, 10, 20, 5, 7, 30, 40});
    nb_graph_set_training(g, false);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 2), 10 / sqrt(1 + 1e-5),
               1e-12);
    /* Training: channel 0 holds 1, 3, 5, 7 (mean 4, biased variance 5),
     * and the running mean moves a tenth of the way to 4. */
    nb_graph_set_training(g, true);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 0), -3 / sqrt(5 + 1e-5),
               1e-12);
    CHECK_NEAR(nb_tensor_get(nb_node_value(bn.running_mean), 0), 0.4, 1e-12);

    /* Without the affine part only the state is made. */
    nb_node *h = nb_input(g, "h", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    y = nb_batch_norm_layer(g, h, false, 0.5, 1e-3, NULL, &bn);
    CHECK(y && !bn.weight && !bn.bias && bn.running_var &&
              nb_graph_find(g, "bn.running_var") == bn.running_var &&
              nb_graph_find(g, "bn.weight") == NULL,
          "plain batch norm: %s", nb_graph_error(g));

    /* Layer norm over the last two axes: gain and shift [1, 2]. */
    nb_norm ln;
    y = nb_layer_norm_layer(g, x, 2, true, NB_NORM_EPS, "ln1", &ln);
    CHECK(y && !ln.running_mean, "%s", nb_graph_error(g));
    check_param_node(ln.weight, "ln1.weight", 2, SHAPE(1, 2));
    check_param_node(ln.bias, "ln1.bias", 2, SHAPE(1, 2));
    CHECK(y && nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    /* The pair 1, 3: mean 2, variance 1. */
    CHECK_NEAR(nb_tensor_get(nb_node_value(y), 0), -1 / sqrt(1 + 1e-5),
               1e-12);
    nb_graph_free(g);
}

/* The layers' parameters get the gradients central differences give, the
 * bias through its reshape and broadcast included: a small f64 CNN of
 * conv2d, batch norm (training mode), relu, max pooling, a transposed
 * convolution, layer norm, a conv1d and a linear layer. */
static void test_layer_gradcheck(void)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 21);
    nb_node *x = nb_input(g, "x", NB_F64, 4, SHAPE(NB_DYNAMIC, 2, 6, 6));
    nb_node *labels = nb_input(g, "labels", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_conv_params same = nb_conv_params_of(1, 1, 1, 1);
    nb_conv_params up = nb_conv_params_of(2, 0, 1, 1);
    nb_node *h = nb_conv2d_layer(g, x, 3, 3, 3, &same, true, "conv1",
                                 NB_INIT_TORCH, NB_ACT_RELU, NULL);
    h = nb_batch_norm_layer(g, h, true, 0.1, 1e-5, "bn1", NULL);
    h = nb_max_pool2d_layer(g, nb_relu(g, h), 2, 0, 0, "pool1");
    h = nb_conv_transpose2d_layer(g, h, 2, 2, 2, &up, true, "up",
                                  NB_INIT_TORCH, NB_ACT_LINEAR, NULL);
    h = nb_layer_norm_layer(g, h, 2, true, 1e-5, "ln1", NULL);
    h = nb_reshape(g, h, 3, SHAPE(-1, 2, 36));
    h = nb_conv1d_layer(g, h, 2, 5, 3, 1, 1, 1, true, "c1", NB_INIT_TORCH,
                        NB_ACT_TANH, NULL);
    h = nb_reshape(g, nb_tanh(g, h), 2, SHAPE(-1, 24));
    h = nb_linear_layer(g, h, 3, true, "fc", NB_INIT_TORCH, NB_ACT_LINEAR,
                        NULL);
    nb_node *loss = nb_softmax_ce_index_loss(g, h, labels);
    CHECK(loss != NULL, "%s", nb_graph_error(g));
    feed_wave(g, x, 4, SHAPE(3, 2, 6, 6));
    nb_feed(g, labels, 1, SHAPE(3), (const double[]){0, 2, 1});
    /* Nudge the gains and shifts off 1 and 0 so that their gradients are
     * not checked at a special point only. */
    SET(nb_graph_find(g, "bn1.weight"), 1.2, 0.7, 1.1);
    nb_tensor *lb = nb_node_value(nb_graph_find(g, "ln1.bias"));
    for (int64_t i = 0; i < nb_tensor_size(lb); i++)
        nb_tensor_set(lb, i, 0.3 * cos((double)i));
    nb_gradcheck_result r;
    CHECK(loss && nb_gradcheck(g, loss, NULL, &r) == NB_OK && r.passed,
          "CNN of layers: %s", loss ? r.message : nb_graph_error(g));
    nb_graph_free(g);
}

static void test_layer_errors(void)
{
    nb_graph *g = nb_graph_new(), *other = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F32, 4, SHAPE(NB_DYNAMIC, 3, 8, 8));
    nb_node *v = nb_input(g, "v", NB_F32, 2, SHAPE(NB_DYNAMIC, 3));
    nb_node *foreign = nb_input(other, "f", NB_F32, 4, SHAPE(1, 3, 8, 8));
    nb_conv_params p = nb_conv_params_of(1, 0, 1, 1);
    nb_conv c;
    int64_t before = nb_graph_node_count(g);

    CHECK(!nb_conv2d_layer(g, v, 4, 3, 3, &p, true, "conv1", NB_INIT_TORCH,
                           NB_ACT_RELU, &c) && c.weight == NULL, "rank");
    CHECK_ERROR(g, "conv2d 'conv1'", "x ('v') has rank 2", "[N, C, H, W]");
    CHECK(!nb_conv1d_layer(g, x, 4, 3, 1, 0, 1, 1, true, "c1", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "conv1d rank");
    CHECK_ERROR(g, "conv1d 'c1'", "rank 4", "[N, C, L]");
    CHECK(!nb_conv2d_layer(g, x, 0, 3, 3, &p, true, "conv1", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "out 0");
    CHECK_ERROR(g, "conv2d 'conv1'", "out_channels = 0 must be positive");
    CHECK(!nb_conv2d_layer(g, x, 4, 3, 0, &p, true, "conv1", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "kernel 0");
    CHECK_ERROR(g, "conv2d 'conv1'", "kernel size 0");
    p.groups = 2;
    CHECK(!nb_conv2d_layer(g, x, 4, 3, 3, &p, true, "conv1", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "groups");
    CHECK_ERROR(g, "conv2d 'conv1'", "groups = 2", "3 input", "4 output");
    p.groups = 1;
    CHECK(!nb_conv_transpose2d_layer(g, x, 4, 3, 3, &p, true, "up",
                                     (nb_init_kind)42, NB_ACT_RELU, NULL),
          "init");
    CHECK_ERROR(g, "conv_transpose2d 'up'", "unknown init kind 42");
    CHECK(!nb_conv2d_layer(g, x, 4, 3, 3, &p, true, "conv1", NB_INIT_TORCH,
                           (nb_activation)-3, NULL), "act");
    CHECK_ERROR(g, "conv2d 'conv1'", "unknown activation -3");
    CHECK(!nb_conv2d_layer(g, NULL, 4, 3, 3, &p, true, "conv1", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "NULL x");
    CHECK_ERROR(g, "conv2d 'conv1'", "x is NULL");
    CHECK(!nb_conv2d_layer(g, foreign, 4, 3, 3, &p, true, "conv1",
                           NB_INIT_TORCH, NB_ACT_RELU, NULL), "foreign");
    CHECK_ERROR(g, "conv2d 'conv1'", "belongs to another graph");
    CHECK(nb_graph_node_count(g) == before,
          "a rejected layer made %lld nodes",
          (long long)(nb_graph_node_count(g) - before));
    /* The op's own checks, under the layer's name. */
    p.stride[0] = 0;
    CHECK(!nb_conv2d_layer(g, x, 4, 3, 3, &p, true, "conv1", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "stride 0");
    CHECK_ERROR(g, "conv2d 'conv1'", "stride of the rows is 0");
    p.stride[0] = 1;
    CHECK(!nb_conv2d_layer(g, x, 4, 9, 9, &p, true, "big", NB_INIT_TORCH,
                           NB_ACT_RELU, NULL), "kernel > input");
    CHECK_ERROR(g, "conv2d 'big'");
    /* Those refusals came after the layer made its parameters: it takes
     * them back, so the names are free for a layer that fits. */
    CHECK(nb_graph_node_count(g) == before && !nb_graph_find(g, "big.weight") &&
              !nb_graph_find(g, "conv1.bias"),
          "a layer its op refused left %lld nodes",
          (long long)(nb_graph_node_count(g) - before));
    nb_node *fits = nb_conv2d_layer(g, x, 4, 3, 3, &p, true, "big",
                                    NB_INIT_TORCH, NB_ACT_RELU, NULL);
    CHECK(fits && nb_graph_find(g, "big.weight") &&
              nb_graph_find(g, "big.bias"),
          "the same name after a refusal: %s", nb_graph_error(g));
    float image[3 * 8 * 8] = {0};
    CHECK(nb_feed(g, x, 4, SHAPE(1, 3, 8, 8), image) == NB_OK &&
              nb_forward(g, fits) == NB_OK,
          "the graph runs after the refusals: %s", nb_graph_error(g));
    before = nb_graph_node_count(g);

    CHECK(!nb_max_pool2d_layer(g, x, 0, 0, 0, "pool1"), "pool kernel 0");
    CHECK_ERROR(g, "max_pool2d 'pool1'", "kernel = 0");
    CHECK(!nb_avg_pool2d_layer(g, x, 2, 0, 2, "pool2"), "pool padding");
    CHECK_ERROR(g, "avg_pool2d 'pool2'", "padding");
    CHECK(!nb_max_pool2d_layer(g, v, 2, 0, 0, NULL), "pool rank");
    CHECK_ERROR(g, "max_pool2d 'max_pool2d'");

    CHECK(!nb_batch_norm_layer(g, x, true, 1.5, NB_NORM_EPS, "bn1", NULL),
          "momentum");
    CHECK_ERROR(g, "batch_norm 'bn1'", "momentum = 1.5");
    CHECK(!nb_batch_norm_layer(g, x, true, 0.1, 0, "bn1", NULL), "eps");
    CHECK_ERROR(g, "batch_norm 'bn1'", "eps = 0 must be positive");
    nb_node *r5 = nb_input(g, "r5", NB_F32, 5, SHAPE(1, 2, 2, 2, 2));
    CHECK(!nb_batch_norm_layer(g, r5, true, 0.1, 1e-5, "bn1", NULL), "rank 5");
    CHECK_ERROR(g, "batch_norm 'bn1'", "rank 5");
    CHECK(!nb_layer_norm_layer(g, x, 5, true, 1e-5, "ln1", NULL), "axes");
    CHECK_ERROR(g, "layer_norm 'ln1'", "axes = 5 is outside 1..4");
    CHECK(nb_graph_find(g, "bn1.weight") == NULL &&
              nb_graph_find(g, "ln1.weight") == NULL,
          "a rejected norm layer made parameters");

    /* Chained construction: one message, from the first failure. */
    nb_node *h = nb_conv2d_layer(g, x, 0, 3, 3, NULL, true, "a",
                                 NB_INIT_TORCH, NB_ACT_RELU, NULL);
    h = nb_max_pool2d_layer(g, h, 2, 0, 0, "p");
    h = nb_batch_norm_layer(g, h, true, 0.1, 1e-5, "b", NULL);
    CHECK(h == NULL, "chain");
    CHECK_ERROR(g, "conv2d 'a'", "out_channels = 0");

    /* The graph still works. */
    CHECK(nb_graph_error(g) == NULL, "error left: %s", nb_graph_error(g));
    h = nb_conv2d_layer(g, x, 4, 3, 3, NULL, true, "ok", NB_INIT_TORCH,
                        NB_ACT_RELU, &c);
    h = nb_batch_norm_layer(g, h, true, 0.1, 1e-5, "okbn", NULL);
    h = nb_max_pool2d_layer(g, nb_relu(g, h), 2, 0, 0, NULL);
    nb_node *loss = nb_sum(g, h);
    feed_wave(g, x, 4, SHAPE(2, 3, 8, 8));
    CHECK(loss && nb_forward(g, loss) == NB_OK &&
              nb_backward(g, loss) == NB_OK && nb_node_grad(c.weight),
          "training step after the errors: %s", nb_graph_error(g));
    nb_graph_free(other);
    nb_graph_free(g);
}

int main(void)
{
    test_initialisers(NB_F64);
    test_initialisers(NB_F32);
    test_seed_reproducibility();
    test_linear();
    test_activations();
    test_mlp_structure();
    test_hand_set_forward();
    test_gradcheck();
    test_freezing();
    test_errors();
    test_conv_layers();
    test_conv2d_relu_layer();
    test_conv_layer_values();
    test_pool_layers();
    test_norm_layers();
    test_layer_gradcheck();
    test_layer_errors();
    return tu_finish("nn");
}
