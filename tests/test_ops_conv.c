/* The convolution family, pad and the slice step: conv2d and conv1d
 * against a direct-loop reference written here in f64; conv_transpose2d
 * against the adjoint identity <conv2d(z, w), x> = <z, conv_transpose2d(x,
 * w)>; conv2d_bias_act bit for bit against conv2d, add and relu composed;
 * every rejected shape with its message and the graph usable after;
 * bitwise identical results for 1 and 2 threads; a conv node in the DOT
 * export and the trace. */
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "test_util.h"

static uint64_t rng_state = 88172645463325252u;

static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2 - 1;
}

static nb_node *random_param(nb_graph *g, nb_dtype dt, int rank,
                             const int64_t *shape, double *copy)
{
    nb_node *n = nb_param(g, NULL, dt, rank, shape);
    nb_tensor *t = nb_node_value(n);
    for (int64_t i = 0; i < nb_tensor_size(t); i++) {
        double v = uniform();
        if (copy)
            copy[i] = v;
        nb_tensor_set(t, i, v);
    }
    return n;
}

/* A geometry to test: [N,C,H,W] by [O,C/G,KH,KW]. */
typedef struct cfg {
    int64_t n, c, h, w, o, kh, kw, groups;
    int64_t sh, sw, pt, pb, pl, pr, dh, dw;
} cfg;

/* The output extent of one axis, from the formula in PyTorch's docs. */
static int64_t out_extent(int64_t in, int64_t before, int64_t after,
                          int64_t d, int64_t k, int64_t s)
{
    return (in + before + after - d * (k - 1) - 1) / s + 1;
}

/* y = conv2d(x, w) by the definition, one output element at a time. */
static void reference_conv2d(const cfg *k, const double *x, const double *w,
                             double *y, int64_t oh, int64_t ow)
{
    int64_t cg = k->c / k->groups, og = k->o / k->groups;
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t o = 0; o < k->o; o++)
            for (int64_t oy = 0; oy < oh; oy++)
                for (int64_t ox = 0; ox < ow; ox++) {
                    double s = 0;
                    int64_t gr = o / og;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t i = 0; i < k->kh; i++)
                            for (int64_t j = 0; j < k->kw; j++) {
                                int64_t iy = oy * k->sh - k->pt + i * k->dh;
                                int64_t ix = ox * k->sw - k->pl + j * k->dw;
                                if (iy < 0 || iy >= k->h || ix < 0 ||
                                    ix >= k->w)
                                    continue;
                                s += w[((o * cg + c) * k->kh + i) * k->kw +
                                       j] *
                                     x[((n * k->c + gr * cg + c) * k->h + iy) *
                                           k->w +
                                       ix];
                            }
                    y[((n * k->o + o) * oh + oy) * ow + ox] = s;
                }
}

static nb_conv_params params_of(const cfg *k)
{
    return (nb_conv_params){.stride = {k->sh, k->sw},
                            .padding = {k->pt, k->pb, k->pl, k->pr},
                            .dilation = {k->dh, k->dw},
                            .groups = k->groups};
}

static const cfg configs[] = {
    /* n  c  h  w  o kh kw  g  sh sw pt pb pl pr dh dw */
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},  /* 3x3 "same" */
    {1, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* Fashion layer 1 */
    {2, 4, 9, 8, 6, 3, 2, 2, 2, 3, 0, 2, 1, 0, 1, 2},  /* groups, asymmetry */
    {1, 6, 5, 5, 6, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1},  /* depthwise */
    {3, 5, 4, 6, 7, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},  /* 1x1 */
    {2, 2, 10, 9, 3, 2, 3, 1, 3, 2, 2, 0, 0, 2, 3, 2}, /* dilation, stride */
    {1, 3, 5, 5, 2, 5, 5, 1, 1, 1, 0, 0, 0, 0, 1, 1},  /* kernel = image */
    /* rows as wide as the input's, which the patch copies take as blocks */
    {2, 3, 6, 7, 4, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2},  /* dilated "same" */
    {1, 2, 5, 6, 3, 3, 3, 1, 1, 1, 0, 2, 2, 0, 1, 1},  /* one-sided "same" */
    {2, 2, 2, 3, 3, 5, 5, 1, 1, 1, 2, 2, 2, 2, 1, 1},  /* taps off the image */
    /* more samples than the others, each with 360 outputs, in two groups:
     * every product runs many times over, accumulating where it adds */
    {5, 4, 20, 18, 6, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1},
};

static void check_conv2d_reference(const cfg *k, nb_dtype dt)
{
    int64_t oh = out_extent(k->h, k->pt, k->pb, k->dh, k->kh, k->sh);
    int64_t ow = out_extent(k->w, k->pl, k->pr, k->dw, k->kw, k->sw);
    int64_t xs = k->n * k->c * k->h * k->w;
    int64_t ws = k->o * (k->c / k->groups) * k->kh * k->kw;
    int64_t ys = k->n * k->o * oh * ow;
    double *x = malloc(sizeof(double) * (size_t)xs);
    double *w = malloc(sizeof(double) * (size_t)ws);
    double *y = malloc(sizeof(double) * (size_t)ys);
    nb_graph *g = nb_graph_new();
    nb_node *xn = random_param(g, dt, 4, SHAPE(k->n, k->c, k->h, k->w), x);
    nb_node *wn = random_param(
        g, dt, 4, SHAPE(k->o, k->c / k->groups, k->kh, k->kw), w);
    nb_conv_params p = params_of(k);
    nb_node *yn = nb_conv2d(g, xn, wn, &p);
    CHECK(yn != NULL, "conv2d rejected a valid geometry: %s",
          nb_graph_error(g));
    if (yn && nb_forward(g, yn) == NB_OK) {
        const nb_tensor *t = nb_node_value(yn);
        CHECK(nb_tensor_rank(t) == 4 && nb_tensor_shape(t)[2] == oh &&
                  nb_tensor_shape(t)[3] == ow,
              "shape [.., %lld, %lld], expected %lld x %lld",
              (long long)nb_tensor_shape(t)[2],
              (long long)nb_tensor_shape(t)[3], (long long)oh, (long long)ow);
        reference_conv2d(k, x, w, y, oh, ow);
        double worst = 0, tol = dt == NB_F64 ? 1e-13 : 1e-5;
        for (int64_t i = 0; i < ys; i++) {
            double e = fabs(nb_tensor_get(t, i) - y[i]);
            worst = e > worst ? e : worst;
        }
        CHECK(worst <= tol * (double)(k->c * k->kh * k->kw),
              "%s conv2d %lldx%lld g%lld differs from the reference by %g",
              nb_dtype_name(dt), (long long)k->kh, (long long)k->kw,
              (long long)k->groups, worst);
    }
    nb_graph_free(g);
    free(x);
    free(w);
    free(y);
}

/* conv1d of [N,C,L] equals conv2d of [N,C,1,L] with a kernel of height 1. */
static void check_conv1d(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = random_param(g, NB_F64, 3, SHAPE(2, 4, 11), NULL);
    nb_node *w = random_param(g, NB_F64, 3, SHAPE(6, 2, 3), NULL);
    nb_node *y = nb_conv1d(g, x, w, 2, 2, 1, 2, 2);
    nb_node *x4 = nb_reshape(g, x, 4, SHAPE(2, 4, 1, 11));
    nb_node *w4 = nb_reshape(g, w, 4, SHAPE(6, 2, 1, 3));
    nb_conv_params p = nb_conv_params_of(1, 0, 1, 2);
    p.stride[1] = 2;
    p.padding[2] = 2;
    p.padding[3] = 1;
    p.dilation[1] = 2;
    nb_node *y4 = nb_conv2d(g, x4, w4, &p);
    CHECK(y && y4, "conv1d or conv2d rejected: %s", nb_graph_error(g));
    if (y && y4 && nb_forward(g, y) == NB_OK && nb_forward(g, y4) == NB_OK) {
        const nb_tensor *a = nb_node_value(y), *b = nb_node_value(y4);
        /* L = (11 + 3 - 2*2 - 1) / 2 + 1 = 5 */
        CHECK(nb_tensor_rank(a) == 3 && nb_tensor_shape(a)[2] == 5,
              "conv1d gives length %lld", (long long)nb_tensor_shape(a)[2]);
        CHECK(nb_tensor_size(a) == nb_tensor_size(b), "sizes differ");
        double worst = 0;
        for (int64_t i = 0; i < nb_tensor_size(a); i++)
            worst = fmax(worst, fabs(nb_tensor_get(a, i) -
                                     nb_tensor_get(b, i)));
        CHECK(worst == 0, "conv1d and conv2d differ by %g", worst);
    }
    nb_graph_free(g);
}

static double dot_of(const nb_tensor *a, const nb_tensor *b)
{
    double s = 0;
    for (int64_t i = 0; i < nb_tensor_size(a); i++)
        s += nb_tensor_get(a, i) * nb_tensor_get(b, i);
    return s;
}

/* L = <conv2d(x, w), r> is linear in w and in x, so <dL/dw, w> = L and
 * <dL/dx, x> = L: both backward products against the forward, whatever
 * the geometry (and however the kernels split the batch). */
static void check_backward_identity(const cfg *k)
{
    int64_t oh = out_extent(k->h, k->pt, k->pb, k->dh, k->kh, k->sh);
    int64_t ow = out_extent(k->w, k->pl, k->pr, k->dw, k->kw, k->sw);
    nb_graph *g = nb_graph_new();
    nb_node *x = random_param(g, NB_F64, 4, SHAPE(k->n, k->c, k->h, k->w),
                              NULL);
    nb_node *w = random_param(
        g, NB_F64, 4, SHAPE(k->o, k->c / k->groups, k->kh, k->kw), NULL);
    nb_node *r = random_param(g, NB_F64, 4, SHAPE(k->n, k->o, oh, ow), NULL);
    nb_conv_params p = params_of(k);
    nb_node *L = nb_sum(g, nb_mul(g, nb_conv2d(g, x, w, &p), r));
    CHECK(L != NULL, "rejected: %s", nb_graph_error(g));
    if (L && nb_forward(g, L) == NB_OK && nb_backward(g, L) == NB_OK) {
        double l = nb_tensor_get(nb_node_value(L), 0);
        double lw = dot_of(nb_node_grad(w), nb_node_value(w));
        double lx = dot_of(nb_node_grad(x), nb_node_value(x));
        CHECK(fabs(lw - l) <= 1e-12 * (1 + fabs(l)) &&
                  fabs(lx - l) <= 1e-12 * (1 + fabs(l)),
              "n%lld %lldx%lld g%lld: L = %.17g, <dw, w> = %.17g, <dx, x> = "
              "%.17g",
              (long long)k->n, (long long)k->kh, (long long)k->kw,
              (long long)k->groups, l, lw, lx);
    }
    nb_graph_free(g);
}

/* <conv2d(z, w), x> = <z, conv_transpose2d(x, w)>, with z shaped like the
 * transposed convolution's output, for output paddings below the stride. */
static void check_adjoint(const cfg *k)
{
    nb_conv_params p = params_of(k), pt = p;
    int64_t oh = out_extent(k->h, k->pt, k->pb, k->dh, k->kh, k->sh);
    int64_t ow = out_extent(k->w, k->pl, k->pr, k->dw, k->kw, k->sw);
    /* The input sizes conv2d maps to (oh, ow): the transposed convolution
     * reaches each through its output padding. */
    pt.output_padding[0] = (k->h + k->pt + k->pb - k->dh * (k->kh - 1) - 1) %
                          k->sh;
    pt.output_padding[1] = (k->w + k->pl + k->pr - k->dw * (k->kw - 1) - 1) %
                          k->sw;
    nb_graph *g = nb_graph_new();
    nb_node *z = random_param(g, NB_F64, 4, SHAPE(k->n, k->c, k->h, k->w),
                              NULL);
    nb_node *x = random_param(g, NB_F64, 4, SHAPE(k->n, k->o, oh, ow), NULL);
    nb_node *w = random_param(
        g, NB_F64, 4, SHAPE(k->o, k->c / k->groups, k->kh, k->kw), NULL);
    nb_node *cz = nb_conv2d(g, z, w, &p);
    nb_node *tx = nb_conv_transpose2d(g, x, w, &pt);
    CHECK(cz && tx, "rejected: %s", nb_graph_error(g));
    if (cz && tx && nb_forward(g, cz) == NB_OK && nb_forward(g, tx) == NB_OK) {
        const nb_tensor *t = nb_node_value(tx);
        CHECK(nb_tensor_shape(t)[1] == k->c && nb_tensor_shape(t)[2] == k->h &&
                  nb_tensor_shape(t)[3] == k->w,
              "conv_transpose2d gives [%lld,%lld,%lld,%lld]",
              (long long)nb_tensor_shape(t)[0],
              (long long)nb_tensor_shape(t)[1],
              (long long)nb_tensor_shape(t)[2],
              (long long)nb_tensor_shape(t)[3]);
        double lhs = dot_of(nb_node_value(cz), nb_node_value(x));
        double rhs = dot_of(nb_node_value(z), t);
        CHECK(fabs(lhs - rhs) <= 1e-12 * (1 + fabs(lhs)),
              "<conv2d(z), x> = %.17g, <z, conv_transpose2d(x)> = %.17g", lhs,
              rhs);
    }
    nb_graph_free(g);
}

/* A rejected op leaves an error naming the op and the shapes, no node, and
 * a graph on which a valid op still runs. */
static void expect_rejected(nb_graph *g, nb_node *made, const char *what,
                            const char *frag1, const char *frag2)
{
    CHECK(made == NULL, "%s was accepted", what);
    const char *msg = nb_graph_error(g);
    CHECK(msg != NULL, "%s left no message", what);
    if (msg) {
        CHECK(strstr(msg, frag1) != NULL, "%s: '%s' lacks '%s'", what, msg,
              frag1);
        CHECK(!frag2 || strstr(msg, frag2) != NULL, "%s: '%s' lacks '%s'",
              what, msg, frag2);
    }
    nb_graph_clear_error(g);
    nb_node *a = nb_param(g, NULL, NB_F64, 4, SHAPE(1, 1, 3, 3));
    nb_node *k = nb_param(g, NULL, NB_F64, 4, SHAPE(1, 1, 2, 2));
    nb_node *y = nb_conv2d(g, a, k, NULL);
    CHECK(y && nb_forward(g, y) == NB_OK && nb_graph_error(g) == NULL,
          "graph unusable after %s: %s", what,
          nb_graph_error(g) ? nb_graph_error(g) : "");
}

static void check_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F32, 4, SHAPE(2, 3, 5, 5));
    nb_node *w = nb_param(g, "w", NB_F32, 4, SHAPE(32, 1, 3, 3));
    nb_node *w3 = nb_param(g, "w3", NB_F32, 4, SHAPE(6, 3, 3, 3));
    nb_node *x3 = nb_param(g, "x3", NB_F32, 3, SHAPE(2, 3, 5));
    nb_node *wd = nb_param(g, "wd", NB_F64, 4, SHAPE(6, 3, 3, 3));
    nb_conv_params p;

    expect_rejected(g, nb_conv2d(g, x, w, NULL), "channel mismatch",
                    "conv2d: input [2,3,5,5] has 3 channels, weight "
                    "[32,1,3,3] expects 1", NULL);
    p = nb_conv_params_of(0, 1, 1, 1);
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "stride 0", "conv2d: stride",
                    "at least 1");
    p = nb_conv_params_of(1, 0, 1, 1);
    p.stride[1] = 0;
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "stride 0 (columns)",
                    "stride of the columns is 0", NULL);
    p = nb_conv_params_of(1, 0, 1, 1);
    p.padding[3] = -1;
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "negative padding",
                    "conv2d: padding right is -1", NULL);
    p = nb_conv_params_of(1, 0, 0, 1);
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "dilation 0",
                    "conv2d: dilation", "at least 1");
    p = nb_conv_params_of(1, 0, 3, 1);
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "kernel beyond the input",
                    "conv2d: kernel [6,3,3,3] spans 7", "x [2,3,5,5]");
    p = nb_conv_params_of(1, 0, 1, 2);
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "groups not dividing C",
                    "conv2d: 2 groups do not divide the 3 channels",
                    "[2,3,5,5]");
    nb_node *w5 = nb_param(g, "w5", NB_F32, 4, SHAPE(5, 1, 3, 3));
    p = nb_conv_params_of(1, 0, 1, 3);
    expect_rejected(g, nb_conv2d(g, x, w5, &p), "groups not dividing O",
                    "conv2d: 3 groups do not divide the 5 output channels",
                    "[5,1,3,3]");
    p = nb_conv_params_of(1, 0, 1, 0);
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "groups 0",
                    "conv2d: groups is 0", NULL);
    expect_rejected(g, nb_conv2d(g, x3, w3, NULL), "x of rank 3",
                    "conv2d: x is [2,3,5], expected [N,C,H,W]", NULL);
    expect_rejected(g, nb_conv2d(g, x, x3, NULL), "weight of rank 3",
                    "conv2d: weight is [2,3,5]", NULL);
    expect_rejected(g, nb_conv2d(g, x, wd, NULL), "mixed dtypes",
                    "conv2d: input 1 ('wd') is f64 [6,3,3,3]", "f32 [2,3,5,5]");
    p = nb_conv_params_of(1, 0, 1, 1);
    p.output_padding[0] = 1;
    expect_rejected(g, nb_conv2d(g, x, w3, &p), "output padding on conv2d",
                    "conv2d: output padding", "only conv_transpose2d");

    /* conv1d */
    nb_node *k1 = nb_param(g, "k1", NB_F32, 3, SHAPE(4, 3, 7));
    expect_rejected(g, nb_conv1d(g, x3, k1, 1, 0, 0, 1, 1),
                    "conv1d kernel beyond the input",
                    "conv1d: kernel [4,3,7] spans 7", "x [2,3,5] padded to 5");
    expect_rejected(g, nb_conv1d(g, x3, k1, 0, 1, 1, 1, 1), "conv1d stride 0",
                    "conv1d: stride is 0", NULL);
    expect_rejected(g, nb_conv1d(g, x3, k1, 1, -2, 1, 1, 1),
                    "conv1d negative padding", "conv1d: padding left is -2",
                    NULL);
    expect_rejected(g, nb_conv1d(g, x, k1, 1, 0, 0, 1, 1), "conv1d of rank 4",
                    "conv1d: x is [2,3,5,5], expected [N,C,L]", NULL);
    expect_rejected(g, nb_conv1d(g, x3, k1, 1, 0, 0, 1, 2),
                    "conv1d groups not dividing C", "conv1d: 2 groups", NULL);

    /* conv_transpose2d: weight [C_in, O/groups, KH, KW] */
    nb_node *wt = nb_param(g, "wt", NB_F32, 4, SHAPE(4, 2, 3, 3));
    expect_rejected(g, nb_conv_transpose2d(g, x, wt, NULL),
                    "transpose channel mismatch",
                    "conv_transpose2d: input [2,3,5,5] has 3 channels, "
                    "weight [4,2,3,3] expects 4", NULL);
    nb_node *wt3 = nb_param(g, "wt3", NB_F32, 4, SHAPE(3, 2, 3, 3));
    p = nb_conv_params_of(2, 1, 1, 1);
    p.output_padding[1] = 2;
    expect_rejected(g, nb_conv_transpose2d(g, x, wt3, &p),
                    "output padding at the stride",
                    "conv_transpose2d: output padding of the columns is 2",
                    "below max(stride, dilation) = 2");
    p = nb_conv_params_of(0, 0, 1, 1);
    expect_rejected(g, nb_conv_transpose2d(g, x, wt3, &p),
                    "transpose stride 0", "conv_transpose2d: stride", NULL);
    p = nb_conv_params_of(1, -1, 1, 1);
    expect_rejected(g, nb_conv_transpose2d(g, x, wt3, &p),
                    "transpose negative padding",
                    "conv_transpose2d: padding top is -1", NULL);
    p = nb_conv_params_of(1, 4, 1, 1);
    expect_rejected(g, nb_conv_transpose2d(g, x, wt3, &p),
                    "transpose padding eating the output",
                    "conv_transpose2d: kernel [3,2,3,3]", "leaves no output");
    p = nb_conv_params_of(1, 0, 1, 2);
    expect_rejected(g, nb_conv_transpose2d(g, x, wt3, &p),
                    "transpose groups not dividing C",
                    "conv_transpose2d: 2 groups do not divide the 3 channels",
                    NULL);
    expect_rejected(g, nb_conv_transpose2d(g, x3, wt3, NULL),
                    "transpose of rank 3",
                    "conv_transpose2d: x is [2,3,5], expected [N,C,H,W]",
                    NULL);

    /* pad and the slice step */
    expect_rejected(g, nb_pad(g, x, 4, SHAPE(0, 0, 1, -1), SHAPE(0, 0, 1, 1)),
                    "negative pad", "pad: padding -1 before, 1 after axis 3",
                    "[2,3,5,5]");
    expect_rejected(g, nb_pad(g, x, 2, SHAPE(1, 1), SHAPE(1, 1)),
                    "pad of the wrong rank",
                    "pad: padding given for 2 axes, x [2,3,5,5] has 4", NULL);
    expect_rejected(g, nb_slice_step(g, x, 2, 0, 5, 0), "slice step 0",
                    "slice: step 0 on axis 2 of x [2,3,5,5]", NULL);
    nb_graph_free(g);
}

/* Whether two tensors hold the same bits (same dtype and size). */
static bool same_bits(const nb_tensor *a, const nb_tensor *b)
{
    if (!a || !b || nb_tensor_size(a) != nb_tensor_size(b) ||
        nb_tensor_dtype(a) != nb_tensor_dtype(b))
        return false;
    size_t bytes =
        (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a));
    return memcmp(nb_tensor_data((nb_tensor *)a),
                  nb_tensor_data((nb_tensor *)b), bytes) == 0;
}

/* Copies a tensor's elements (NULL for NULL). */
static void *copy_of(const nb_tensor *t)
{
    if (!t)
        return NULL;
    size_t bytes =
        (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
    void *c = malloc(bytes ? bytes : 1);
    memcpy(c, nb_tensor_data((nb_tensor *)t), bytes);
    return c;
}

/* conv2d_bias_act against conv2d, a broadcast add of the bias reshaped to
 * [O,1,1] and relu, composed from the separate ops on the same x, w and b,
 * and conv2d_bias_act_maxpool against the same followed by max_pool2d:
 * the same arithmetic in the same order (the GEMMs, z = conv + b, relu's
 * select, dz's select, the pooling kernel, the bias sums of nb_run_sum per
 * sample and plane), so the value and the gradients of x, w and b must
 * agree bit for bit, for each geometry, dtype, bias present or absent,
 * relu on or off, no pooling, the CNN's 2x2 window or a padded 3x3 one.
 * The loss <y, r> with r random sends a different message to each output
 * element. Gradients are read after each loss's own backward. */
static const nb_pool2d_params fused_pools[2] = {
    {.kernel = {2, 2}, .stride = {2, 2}},                      /* the CNN's */
    {.kernel = {3, 3}, .stride = {2, 1}, .padding = {1, 1}},   /* general */
};

static void check_fused_matches_composed(const cfg *k, nb_dtype dt,
                                         bool bias, bool relu, int pool)
{
    int64_t oh = out_extent(k->h, k->pt, k->pb, k->dh, k->kh, k->sh);
    int64_t ow = out_extent(k->w, k->pl, k->pr, k->dw, k->kw, k->sw);
    const nb_pool2d_params *pp = pool ? &fused_pools[pool - 1] : NULL;
    if (pp && (oh + 2 * pp->padding[0] < pp->kernel[0] ||
               ow + 2 * pp->padding[1] < pp->kernel[1]))
        return;
    nb_graph *g = nb_graph_new();
    nb_node *x = random_param(g, dt, 4, SHAPE(k->n, k->c, k->h, k->w), NULL);
    nb_node *w = random_param(
        g, dt, 4, SHAPE(k->o, k->c / k->groups, k->kh, k->kw), NULL);
    nb_node *b = bias ? random_param(g, dt, 1, SHAPE(k->o), NULL) : NULL;
    nb_conv_params p = params_of(k);
    nb_node *z = nb_conv2d(g, x, w, &p);
    if (b)
        z = nb_add(g, z, nb_reshape(g, b, 3, SHAPE(k->o, 1, 1)));
    if (relu)
        z = nb_relu(g, z);
    nb_conv_act act = relu ? NB_CONV_ACT_RELU : NB_CONV_ACT_NONE;
    nb_node *y;
    if (pp) {
        z = nb_max_pool2d(g, z, pp);
        y = nb_conv2d_bias_act_maxpool(g, x, w, b, &p, act, pp);
    } else {
        y = nb_conv2d_bias_act(g, x, w, b, &p, act);
    }
    nb_node *r = z ? random_param(g, dt, 4, nb_tensor_shape(nb_node_value(z)),
                                  NULL)
                   : NULL;
    nb_node *lz = nb_sum(g, nb_mul(g, z, r)), *ly = nb_sum(g, nb_mul(g, y, r));
    CHECK(lz && ly, "build: %s", nb_graph_error(g));
    if (!lz || !ly) {
        nb_graph_free(g);
        return;
    }
    nb_node *of[3] = {x, w, b};
    void *composed[3] = {NULL, NULL, NULL};
    int rc = nb_forward(g, lz);
    rc = rc ? rc : nb_forward(g, ly);
    rc = rc ? rc : nb_backward(g, lz);
    for (int i = 0; i < 3 && rc == NB_OK; i++)
        composed[i] = of[i] ? copy_of(nb_node_grad(of[i])) : NULL;
    rc = rc ? rc : nb_backward(g, ly);
    CHECK(rc == NB_OK, "run: %s", nb_graph_error(g));
    if (rc == NB_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s%s%s", bias ? "bias" : "no bias",
                 relu ? " relu" : "",
                 pool ? (pool == 1 ? " pool 2x2" : " pool 3x3") : "");
        CHECK(same_bits(nb_node_value(y), nb_node_value(z)),
              "%s %s %lldx%lld g%lld: fused value differs from composed",
              nb_dtype_name(dt), what, (long long)k->kh, (long long)k->kw,
              (long long)k->groups);
        for (int i = 0; i < 3; i++) {
            if (!of[i])
                continue;
            const nb_tensor *t = nb_node_grad(of[i]);
            size_t bytes = (size_t)nb_tensor_size(t) * nb_dtype_size(dt);
            CHECK(memcmp(composed[i], nb_tensor_data((nb_tensor *)t), bytes) ==
                      0,
                  "%s %s %lldx%lld g%lld: fused gradient of %s differs from "
                  "composed",
                  nb_dtype_name(dt), what, (long long)k->kh, (long long)k->kw,
                  (long long)k->groups, (const char *[]){"x", "w", "b"}[i]);
        }
    }
    for (int i = 0; i < 3; i++)
        free(composed[i]);
    nb_graph_free(g);
}

/* The fused op's own errors, each leaving the graph usable. */
static void check_fused_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F32, 4, SHAPE(2, 3, 5, 5));
    nb_node *w = nb_param(g, "w", NB_F32, 4, SHAPE(4, 3, 3, 3));
    nb_node *b5 = nb_param(g, "b5", NB_F32, 1, SHAPE(5));
    nb_node *b411 = nb_param(g, "b411", NB_F32, 3, SHAPE(4, 1, 1));
    nb_node *bd = nb_param(g, "bd", NB_F64, 1, SHAPE(4));
    nb_node *b = nb_param(g, "b", NB_F32, 1, SHAPE(4));
    nb_conv_params p = nb_conv_params_of(1, 1, 1, 1);
    expect_rejected(g, nb_conv2d_bias_act(g, x, w, b5, &p, NB_CONV_ACT_RELU),
                    "bias of 5", "conv2d_bias_act: bias is [5], expected [4]",
                    "weight [4,3,3,3]");
    expect_rejected(g, nb_conv2d_bias_act(g, x, w, b411, &p, NB_CONV_ACT_RELU),
                    "bias [4,1,1]", "conv2d_bias_act: bias is [4,1,1], "
                    "expected [4]", NULL);
    expect_rejected(g, nb_conv2d_bias_act(g, x, w, bd, &p, NB_CONV_ACT_RELU),
                    "f64 bias", "conv2d_bias_act", "f64");
    expect_rejected(g, nb_conv2d_bias_act(g, x, w, b, &p, (nb_conv_act)7),
                    "act 7", "conv2d_bias_act: act is 7", NULL);
    p.stride[0] = 0;
    expect_rejected(g, nb_conv2d_bias_act(g, x, w, b, &p, NB_CONV_ACT_RELU),
                    "stride 0", "conv2d_bias_act: stride", "at least 1");
    expect_rejected(g, nb_conv2d_bias_act(g, b, w, b, NULL, NB_CONV_ACT_RELU),
                    "x of rank 1", "conv2d_bias_act: x is [4]", NULL);
    expect_rejected(g, nb_conv2d_bias_act_maxpool(
                           g, x, w, b, &(nb_conv_params){0}, NB_CONV_ACT_RELU,
                           &(nb_pool2d_params){.kernel = {2, 2},
                                               .stride = {2, 2}}),
                    "maxpool stride 0", "conv2d_bias_act_maxpool: stride",
                    "at least 1");
    p.stride[0] = 1;
    expect_rejected(g, nb_conv2d_bias_act_maxpool(
                           g, x, w, b, &p, NB_CONV_ACT_RELU,
                           &(nb_pool2d_params){.kernel = {6, 2},
                                               .stride = {2, 2}}),
                    "window beyond the output",
                    "conv2d_bias_act_maxpool: kernel [6,2]",
                    "input [2,4,5,5]");
    expect_rejected(g, nb_conv2d_bias_act_maxpool(g, x, w, b, &p,
                                                  NB_CONV_ACT_RELU, NULL),
                    "no window", "conv2d_bias_act_maxpool: kernel [0,0]",
                    NULL);
    /* A failed bias (NULL after an error) fails the chain. */
    nb_node *bad = nb_param(g, NULL, NB_F32, 1, SHAPE(-4));
    CHECK(bad == NULL && nb_graph_error(g) != NULL, "a shape [-4] passed");
    CHECK(nb_conv2d_bias_act(g, x, w, bad, NULL, NB_CONV_ACT_RELU) == NULL,
          "a NULL bias after an error made a node");
    nb_graph_clear_error(g);
    nb_node *ok = nb_conv2d_bias_act(g, x, w, NULL, NULL, NB_CONV_ACT_RELU);
    CHECK(ok && nb_forward(g, ok) == NB_OK, "no bias: %s",
          nb_graph_error(g) ? nb_graph_error(g) : "");
    nb_graph_free(g);
}

/* Bitwise the same forward and backward with 1 and 2 threads, on the
 * second Fashion-MNIST layer, where the GEMM uses threads and the fused
 * forward splits the batch (5 samples: the threads take unequal shares):
 * conv2d alone, conv2d_bias_act with its bias and relu, and with 2x2
 * pooling too. Two threads run with the team forced, since measurement
 * alone might never pick it. */
static void check_threads(void)
{
#ifdef _OPENMP
    nb_graph *g = nb_graph_new();
    nb_node *x = random_param(g, NB_F32, 4, SHAPE(5, 32, 14, 14), NULL);
    nb_node *w = random_param(g, NB_F32, 4, SHAPE(64, 32, 3, 3), NULL);
    nb_conv_params p = nb_conv_params_of(1, 1, 1, 1);
    nb_node *b = random_param(g, NB_F32, 1, SHAPE(64), NULL);
    nb_node *y = nb_conv2d(g, x, w, &p);
    nb_node *yf = nb_conv2d_bias_act(g, x, w, b, &p, NB_CONV_ACT_RELU);
    nb_node *yp = nb_conv2d_bias_act_maxpool(
        g, x, w, b, &p, NB_CONV_ACT_RELU,
        &(nb_pool2d_params){.kernel = {2, 2}, .stride = {2, 2}});
    nb_node *loss = nb_add(g, nb_add(g, nb_sum(g, nb_square(g, y)),
                                     nb_sum(g, nb_square(g, yf))),
                           nb_sum(g, nb_square(g, yp)));
    enum { KEPT = 6 };
    float *keep[KEPT] = {NULL};
    nb_tensor *(*pick[KEPT])(nb_node *) = {nb_node_value, nb_node_grad,
                                           nb_node_grad, nb_node_value,
                                           nb_node_grad, nb_node_value};
    nb_node *of[KEPT] = {y, x, w, yf, b, yp};
    int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        nb_parallel_set_mode(threads == 2 ? NB_PARALLEL_TEAM
                                          : NB_PARALLEL_MEASURE);
        CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK,
              "%s", nb_graph_error(g));
        for (int i = 0; i < KEPT; i++) {
            const nb_tensor *t = pick[i](of[i]);
            size_t bytes = sizeof(float) * (size_t)nb_tensor_size(t);
            if (threads == 1) {
                keep[i] = malloc(bytes);
                memcpy(keep[i], nb_tensor_data((nb_tensor *)t), bytes);
            } else {
                CHECK(memcmp(keep[i], nb_tensor_data((nb_tensor *)t), bytes) ==
                          0,
                      "result %d differs between 1 and 2 threads", i);
            }
        }
    }
    omp_set_num_threads(saved);
    nb_parallel_set_mode(NB_PARALLEL_MEASURE);
    for (int i = 0; i < KEPT; i++)
        free(keep[i]);
    nb_graph_free(g);
#endif
}

static void check_pad_and_step(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, NULL, NB_F64, 2, SHAPE(2, 3));
    SET(x, 1, 2, 3, 4, 5, 6);
    nb_node *y = nb_pad(g, x, 2, SHAPE(1, 0), SHAPE(0, 2));
    nb_node *s = nb_slice_step(g, x, 1, 0, NB_SLICE_END, 2);
    nb_node *t = nb_slice_step(g, x, -1, -2, 3, 5);
    CHECK(y && s && t, "%s", nb_graph_error(g));
    if (y && nb_forward(g, y) == NB_OK) {
        static const double want[] = {0, 0, 0, 0, 0, 1, 2, 3, 0, 0,
                                      4, 5, 6, 0, 0};
        const nb_tensor *v = nb_node_value(y);
        CHECK(nb_tensor_shape(v)[0] == 3 && nb_tensor_shape(v)[1] == 5,
              "pad shape");
        for (int i = 0; i < 15; i++)
            CHECK(nb_tensor_get(v, i) == want[i], "pad element %d is %g", i,
                  nb_tensor_get(v, i));
    }
    if (s && nb_forward(g, s) == NB_OK) {
        static const double want[] = {1, 3, 4, 6};
        const nb_tensor *v = nb_node_value(s);
        CHECK(nb_tensor_shape(v)[1] == 2, "step 2 keeps %lld",
              (long long)nb_tensor_shape(v)[1]);
        for (int i = 0; i < 4; i++)
            CHECK(nb_tensor_get(v, i) == want[i], "step element %d is %g", i,
                  nb_tensor_get(v, i));
    }
    if (t && nb_forward(g, t) == NB_OK) {
        const nb_tensor *v = nb_node_value(t);
        CHECK(nb_tensor_shape(v)[1] == 1 && nb_tensor_get(v, 0) == 2 &&
                  nb_tensor_get(v, 1) == 5,
              "x[:, -2:3:5] is not [[2],[5]]");
    }
    nb_graph_free(g);
}

/* The conv node in the DOT export and in the printed trace, with its
 * message to the weight. */
static void check_dot_and_trace(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_constant(g, "x", NB_F64, 4, SHAPE(1, 1, 1, 4));
    SET(x, 1, 2, 3, 4);
    nb_node *w = nb_param(g, "w", NB_F64, 4, SHAPE(1, 1, 1, 2));
    SET(w, 1, -1);
    nb_node *y = nb_conv2d(g, x, w, NULL);
    nb_node *loss = nb_sum(g, y);
    char buf[8192];
    FILE *f = tmpfile();
    CHECK(nb_graph_write_dot(g, loss, f, 0) == NB_OK, "dot");
    rewind(f);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = 0;
    fclose(f);
    CHECK(strstr(buf, "conv2d") != NULL, "no conv2d node in the DOT text");
    nb_trace *t = nb_trace_run(g, loss);
    CHECK(t != NULL, "trace: %s", nb_graph_error(g));
    if (t) {
        int64_t e = nb_trace_find(t, y);
        const nb_tensor *m = e >= 0 ? nb_trace_out_message(t, e, 1) : NULL;
        /* y = [1-2, 2-3, 3-4], dL/dw[j] = sum_t x[t + j] = [6, 9] */
        CHECK(m && nb_tensor_get(m, 0) == 6 && nb_tensor_get(m, 1) == 9,
              "conv2d's message to w is not [6, 9]");
        f = tmpfile();
        nb_trace_print(t, f, 0);
        rewind(f);
        got = fread(buf, 1, sizeof buf - 1, f);
        buf[got] = 0;
        fclose(f);
        CHECK(strstr(buf, "conv2d(") != NULL, "no conv2d in the trace text");
        nb_trace_free(t);
    }
    nb_graph_free(g);
}

int main(void)
{
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++) {
        check_conv2d_reference(&configs[i], NB_F64);
        check_conv2d_reference(&configs[i], NB_F32);
        check_adjoint(&configs[i]);
        check_backward_identity(&configs[i]);
        for (int v = 0; v < 24; v++)
            check_fused_matches_composed(&configs[i], v & 4 ? NB_F32 : NB_F64,
                                         v & 1, v & 2, v / 8);
    }
    check_fused_errors();
    check_conv1d();
    check_errors();
    check_threads();
    check_pad_and_step();
    check_dot_and_trace();
    return tu_finish("ops_conv");
}
