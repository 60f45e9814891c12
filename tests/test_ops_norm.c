/* Pooling and normalisation ops against naive references written here
 * (f64, from the definitions, with padding as explicit out-of-range
 * checks), the max-pool tie rule, batch norm's running statistics against
 * their formula over several steps, state tensors in files and
 * optimisers, and every shape rule's message with the graph usable
 * afterwards. */
#include "test_util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static double urand(double lo, double hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng_state >> 11) * 0x1.0p-53;
}

static int64_t irand(int64_t lo, int64_t hi)
{
    return lo + (int64_t)urand(0, (double)(hi - lo + 1));
}

static void fill_random(nb_node *n, double lo, double hi)
{
    nb_tensor *t = nb_node_value(n);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, urand(lo, hi));
}

/* ---- references ---- */

typedef struct pool_case {
    int64_t n, c, h, w, k[2], s[2], p[2], d[2];
} pool_case;

static int64_t out_extent(int64_t n, int64_t k, int64_t s, int64_t p,
                          int64_t d)
{
    return (n + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* y and, per output, the flat index of x that wins (first strict max). */
static void ref_max_pool(const pool_case *q, const double *x, double *y,
                         int64_t *win)
{
    int64_t oh = out_extent(q->h, q->k[0], q->s[0], q->p[0], q->d[0]);
    int64_t ow = out_extent(q->w, q->k[1], q->s[1], q->p[1], q->d[1]);
    int64_t o = 0;
    for (int64_t pl = 0; pl < q->n * q->c; pl++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++, o++) {
                double best = -INFINITY;
                int64_t at = -1;
                for (int64_t a = 0; a < q->k[0]; a++)
                    for (int64_t b = 0; b < q->k[1]; b++) {
                        int64_t r = i * q->s[0] - q->p[0] + a * q->d[0];
                        int64_t cc = j * q->s[1] - q->p[1] + b * q->d[1];
                        if (r < 0 || r >= q->h || cc < 0 || cc >= q->w)
                            continue; /* padding: -inf never wins */
                        int64_t idx = (pl * q->h + r) * q->w + cc;
                        if (at < 0 || x[idx] > best) {
                            best = x[idx];
                            at = idx;
                        }
                    }
                y[o] = best;
                win[o] = at;
            }
}

static void ref_avg_pool(const pool_case *q, bool incl, const double *x,
                         const double *dy, double *y, double *dx)
{
    int64_t oh = out_extent(q->h, q->k[0], q->s[0], q->p[0], 1);
    int64_t ow = out_extent(q->w, q->k[1], q->s[1], q->p[1], 1);
    int64_t o = 0;
    for (int64_t pl = 0; pl < q->n * q->c; pl++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++, o++) {
                double sum = 0;
                int64_t inside = 0;
                for (int64_t a = 0; a < q->k[0]; a++)
                    for (int64_t b = 0; b < q->k[1]; b++) {
                        int64_t r = i * q->s[0] - q->p[0] + a;
                        int64_t cc = j * q->s[1] - q->p[1] + b;
                        if (r < 0 || r >= q->h || cc < 0 || cc >= q->w)
                            continue;
                        sum += x[(pl * q->h + r) * q->w + cc];
                        inside++;
                    }
                double div = incl ? (double)(q->k[0] * q->k[1])
                                  : (double)inside;
                y[o] = sum / div;
                for (int64_t a = 0; a < q->k[0]; a++)
                    for (int64_t b = 0; b < q->k[1]; b++) {
                        int64_t r = i * q->s[0] - q->p[0] + a;
                        int64_t cc = j * q->s[1] - q->p[1] + b;
                        if (r >= 0 && r < q->h && cc >= 0 && cc < q->w)
                            dx[(pl * q->h + r) * q->w + cc] += dy[o] / div;
                    }
            }
}

static pool_case random_pool_case(bool dilated)
{
    pool_case q = {.n = irand(1, 3), .c = irand(1, 3)};
    for (int a = 0; a < 2; a++) {
        q.k[a] = irand(1, 4);
        q.s[a] = irand(1, 3);
        q.p[a] = irand(0, q.k[a] / 2);
        q.d[a] = dilated ? irand(1, 3) : 1;
        int64_t lo = q.d[a] * (q.k[a] - 1) + 1 - 2 * q.p[a];
        int64_t e = irand(lo > 1 ? lo : 1, (lo > 1 ? lo : 1) + 6);
        if (a == 0)
            q.h = e;
        else
            q.w = e;
    }
    return q;
}

static nb_pool2d_params params_of(const pool_case *q)
{
    return (nb_pool2d_params){.kernel = {q->k[0], q->k[1]},
                              .stride = {q->s[0], q->s[1]},
                              .padding = {q->p[0], q->p[1]},
                              .dilation = {q->d[0], q->d[1]}};
}

/* ---- pooling ---- */

enum { MAX_POOL, AVG_EXCL, AVG_INCL };

/* The graph still works after a refused pool (a 1x1 window fits any x). */
static void check_usable_1x1(nb_graph *g, nb_node *x)
{
    nb_node *y = nb_max_pool2d(g, x, &(nb_pool2d_params){.kernel = {1, 1},
                                                          .stride = {1, 1}});
    CHECK(y && nb_forward(g, y) == NB_OK, "graph unusable after an error: %s",
          nb_graph_error(g));
}

#define POOL_FMT                                                               \
    "%s %s [%lld,%lld,%lld,%lld] k %lldx%lld s %lldx%lld p %lldx%lld d "       \
    "%lldx%lld"
#define POOL_ARGS(mode, dt, q)                                                 \
    (mode) == MAX_POOL   ? "max_pool2d"                                        \
    : (mode) == AVG_INCL ? "avg_pool2d (count_include_pad)"                    \
                         : "avg_pool2d",                                       \
        nb_dtype_name(dt), (long long)(q)->n, (long long)(q)->c,               \
        (long long)(q)->h, (long long)(q)->w, (long long)(q)->k[0],            \
        (long long)(q)->k[1], (long long)(q)->s[0], (long long)(q)->s[1],      \
        (long long)(q)->p[0], (long long)(q)->p[1], (long long)(q)->d[0],      \
        (long long)(q)->d[1]

/* Forward and backward (seeded with random dy) of one pooling op against
 * the reference. A max pool whose reference has a window of padding only
 * (a -inf output) must be refused by the shape rule instead; returns
 * whether the op was built. */
static bool check_pool(nb_dtype dt, const pool_case *q, int mode,
                       const double *xv)
{
    int64_t size = q->n * q->c * q->h * q->w;
    int64_t oh = out_extent(q->h, q->k[0], q->s[0], q->p[0], q->d[0]);
    int64_t ow = out_extent(q->w, q->k[1], q->s[1], q->p[1], q->d[1]);
    int64_t ny = q->n * q->c * oh * ow;
    double *ry = malloc((size_t)ny * sizeof *ry);
    double *dy = malloc((size_t)ny * sizeof *dy);
    double *rdx = calloc((size_t)size, sizeof *rdx);
    int64_t *win = malloc((size_t)ny * sizeof *win);
    for (int64_t o = 0; o < ny; o++)
        dy[o] = urand(-1, 1);
    bool empty_window = false;
    if (mode == MAX_POOL) {
        ref_max_pool(q, xv, ry, win);
        for (int64_t o = 0; o < ny; o++)
            if (win[o] >= 0)
                rdx[win[o]] += dy[o];
            else
                empty_window = true;
    } else {
        ref_avg_pool(q, mode == AVG_INCL, xv, dy, ry, rdx);
    }

    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", dt, 4, SHAPE(q->n, q->c, q->h, q->w));
    nb_tensor_copy_from_f64(nb_node_value(x), xv, size);
    nb_pool2d_params p = params_of(q);
    p.count_include_pad = mode == AVG_INCL;
    nb_node *y = mode == MAX_POOL ? nb_max_pool2d(g, x, &p)
                                  : nb_avg_pool2d(g, x, &p);
    if (empty_window) {
        CHECK(y == NULL, POOL_FMT ": a window holds only padding but the op "
              "was built", POOL_ARGS(mode, dt, q));
        if (!y) {
            CHECK_ERROR(g, "max_pool2d", "holds only padding");
            check_usable_1x1(g, x);
        }
    } else {
        CHECK(y != NULL, POOL_FMT ": %s", POOL_ARGS(mode, dt, q),
              nb_graph_error(g));
    }
    if (y && !empty_window) {
        nb_tensor *seed = nb_tensor_new(dt, 4, SHAPE(q->n, q->c, oh, ow));
        for (int64_t o = 0; o < ny; o++)
            nb_tensor_set(seed, o, dy[o]);
        CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
        CHECK(nb_backward_ex(g, y, seed, 0) == NB_OK, "%s", nb_graph_error(g));
        /* a maximum is exact; an average rounds. Written as !(d <= tol) so
         * that an infinite or NaN element counts as a difference. */
        double tol = dt == NB_F64 ? (mode == MAX_POOL ? 0 : 1e-13) : 1e-5;
        int bad = nb_tensor_size(nb_node_value(y)) != ny;
        for (int64_t o = 0; o < ny && !bad; o++)
            bad += !(fabs(nb_tensor_get(nb_node_value(y), o) - ry[o]) <= tol);
        for (int64_t i = 0; i < size; i++)
            bad += !(fabs(nb_tensor_get(nb_node_grad(x), i) - rdx[i]) <= tol);
        CHECK(bad == 0, POOL_FMT ": %d elements differ from the reference",
              POOL_ARGS(mode, dt, q), bad);
        nb_tensor_free(seed);
    }
    free(ry);
    free(dy);
    free(rdx);
    free(win);
    nb_graph_free(g);
    return y != NULL;
}

static void check_max_pool(nb_dtype dt, const pool_case *q, const double *xv)
{
    check_pool(dt, q, MAX_POOL, xv);
}

/* Many small random geometries (dilation up to 3, so some windows step
 * over a small input), so that no configuration hides behind one seed as
 * the gradient check's draws once hid a window of padding only. */
static void test_pool_references(void)
{
    int refused = 0;
    for (int t = 0; t < 1500; t++) {
        pool_case q = random_pool_case(true);
        int64_t size = q.n * q.c * q.h * q.w;
        double *xv = malloc((size_t)size * sizeof *xv);
        for (int64_t i = 0; i < size; i++)
            xv[i] = urand(-3, 3);
        refused += !check_pool(NB_F64, &q, MAX_POOL, xv);
        /* values exact in f32 too, so both dtypes pick the same winner */
        for (int64_t i = 0; i < size; i++)
            xv[i] = (double)(float)xv[i];
        check_max_pool(NB_F32, &q, xv);
        free(xv);

        q = random_pool_case(false);
        size = q.n * q.c * q.h * q.w;
        xv = malloc((size_t)size * sizeof *xv);
        for (int64_t i = 0; i < size; i++)
            xv[i] = urand(-3, 3);
        for (int mode = AVG_EXCL; mode <= AVG_INCL; mode++) {
            check_pool(NB_F64, &q, mode, xv);
            check_pool(NB_F32, &q, mode, xv);
        }
        free(xv);
    }
    /* the sweep must reach both sides of the rule to test it */
    CHECK(refused > 0 && refused < 1500,
          "%d of 1500 random max pools had a window of padding only", refused);
}

/* The gradient check's draw that found it: kernel 2, padding 1, dilation 2
 * over an extent of 1 has taps -1 and 1, both padding, so the output was
 * -inf and the gradient of x all zeros. Refused, by name; an extent of 2
 * reaches x at 1 and is pooled as the reference does. */
static void test_max_pool_padding_only_window(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(1, 1, 3, 1));
    nb_pool2d_params p = {.kernel = {1, 2}, .stride = {1, 1},
                          .padding = {0, 1}, .dilation = {1, 2}};
    CHECK(!nb_max_pool2d(g, x, &p), "a window of padding only was accepted");
    CHECK_ERROR(g, "max_pool2d", "window 0 of the width holds only padding",
                "kernel [1,2]", "padding [0,1]", "dilation [1,2]", "[1,1,3,1]");
    check_usable_1x1(g, x);
    nb_graph_free(g);

    pool_case q = {.n = 1, .c = 1, .h = 3, .w = 2,
                   .k = {1, 2}, .s = {1, 1}, .p = {0, 1}, .d = {1, 2}};
    double xv[6] = {-1.5, -0.5, -2, -3, 0.75, -0.25};
    CHECK(check_pool(NB_F64, &q, MAX_POOL, xv), "extent 2 refused");
    /* the same on the height, with dilation 3 over an extent of 2 */
    q = (pool_case){.n = 1, .c = 1, .h = 2, .w = 3,
                    .k = {2, 1}, .s = {2, 1}, .p = {1, 0}, .d = {3, 1}};
    CHECK(!check_pool(NB_F64, &q, MAX_POOL, xv), "height: window accepted");
}

/* Windows whose span would overflow: the fuzzer's dilation 2^63 - 2 with
 * a kernel of 5 (a signed overflow in the shape rule), and a kernel or
 * stride past 2^40, each refused by name with the graph usable. */
static void test_pool_huge_window(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(1, 1, 3, 1));
    nb_pool2d_params p = {.kernel = {5, 1}, .stride = {1, 1},
                          .dilation = {INT64_MAX - 1, 1}};
    CHECK(!nb_max_pool2d(g, x, &p), "a dilation of 2^63 - 2 was accepted");
    CHECK_ERROR(g, "max_pool2d", "above 2^40 in the height",
                "dilation [9223372036854775806,1]");
    check_usable_1x1(g, x);
    p = (nb_pool2d_params){.kernel = {1, (INT64_C(1) << 23) + 2},
                           .stride = {1, 1},
                           .dilation = {1, INT64_C(1) << 40}};
    CHECK(!nb_max_pool2d(g, x, &p), "a span past 2^62 was accepted");
    CHECK_ERROR(g, "max_pool2d", "spans more than 2^62 in the width");
    check_usable_1x1(g, x);
    p = (nb_pool2d_params){.kernel = {1, 1},
                           .stride = {INT64_C(1) << 41, 1}};
    CHECK(!nb_avg_pool2d(g, x, &p), "a stride of 2^41 was accepted");
    CHECK_ERROR(g, "avg_pool2d", "above 2^40 in the height");
    check_usable_1x1(g, x);
    nb_graph_free(g);
}

/* Winners are kept as 32-bit plane indices: a plane of 2^31 elements is
 * refused by name (an input that is never fed allocates nothing), and the
 * graph stays usable. */
static void test_max_pool_plane_limit(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *big = nb_input(g, "big", NB_F32, 4, SHAPE(1, 1, 65536, 32768));
    nb_pool2d_params p = {.kernel = {2, 2}, .stride = {2, 2}};
    CHECK(big && !nb_max_pool2d(g, big, &p), "a 2^31-element plane accepted");
    CHECK_ERROR(g, "max_pool2d", "65536 x 32768", "fewer than 2^31");
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(1, 1, 3, 1));
    check_usable_1x1(g, x);
    nb_graph_free(g);
}

/* The pooling kernels' order in the tensor's own precision: the first
 * strict maximum of each window in row-major order; an average's sum
 * starting from 0 in row-major window order times 1/D; dx taking each
 * output's share in output order. The kernels' fast interior paths must
 * give these bits exactly, as their clipped path does. */
#define DEFINE_BITS_REF(T, NAME)                                              \
    static void NAME(const pool_case *q, int mode, const T *x, const T *dy,   \
                     T *y, T *dx)                                             \
    {                                                                         \
        int64_t oh = out_extent(q->h, q->k[0], q->s[0], q->p[0], q->d[0]);    \
        int64_t ow = out_extent(q->w, q->k[1], q->s[1], q->p[1], q->d[1]);    \
        int64_t o = 0, idx[64];                                               \
        for (int64_t pl = 0; pl < q->n * q->c; pl++)                          \
            for (int64_t i = 0; i < oh; i++)                                  \
                for (int64_t j = 0; j < ow; j++, o++) {                       \
                    int m = 0;                                                \
                    for (int64_t a = 0; a < q->k[0]; a++)                     \
                        for (int64_t b = 0; b < q->k[1]; b++) {               \
                            int64_t r = i * q->s[0] - q->p[0] + a * q->d[0];  \
                            int64_t cc =                                      \
                                j * q->s[1] - q->p[1] + b * q->d[1];          \
                            if (r >= 0 && r < q->h && cc >= 0 && cc < q->w)   \
                                idx[m++] = (pl * q->h + r) * q->w + cc;       \
                        }                                                     \
                    if (mode == MAX_POOL && m == 0) {                         \
                        y[o] = (T)-INFINITY;                                  \
                        continue;                                             \
                    }                                                         \
                    if (mode == MAX_POOL) {                                   \
                        int64_t at = idx[0];                                  \
                        for (int t = 1; t < m; t++)                           \
                            if (x[idx[t]] > x[at])                            \
                                at = idx[t];                                  \
                        y[o] = x[at];                                         \
                        dx[at] += dy[o];                                      \
                        continue;                                             \
                    }                                                         \
                    T sum = 0;                                                \
                    for (int t = 0; t < m; t++)                               \
                        sum += x[idx[t]];                                     \
                    int64_t count =                                           \
                        mode == AVG_INCL ? q->k[0] * q->k[1] : m;             \
                    T scale = count > 0 ? (T)1 / (T)count : (T)0;             \
                    y[o] = sum * scale;                                       \
                    T share = dy[o] * scale;                                  \
                    for (int t = 0; t < m; t++)                               \
                        dx[idx[t]] += share;                                  \
                }                                                             \
    }
DEFINE_BITS_REF(float, bits_ref_f32)
DEFINE_BITS_REF(double, bits_ref_f64)

/* One case in one dtype: the op's y and dx against the reference, bit for
 * bit. */
#define DEFINE_CHECK_BITS(T, DT, REF, NAME)                                   \
    static int NAME(const pool_case *q, int mode, const double *xv)           \
    {                                                                         \
        nb_graph *g = nb_graph_new();                                         \
        int64_t shape[4] = {q->n, q->c, q->h, q->w};                          \
        int64_t size = q->n * q->c * q->h * q->w;                             \
        nb_node *x = nb_param(g, "x", DT, 4, shape);                          \
        nb_tensor_copy_from_f64(nb_node_value(x), xv, size);                  \
        nb_pool2d_params p = params_of(q);                                    \
        p.count_include_pad = mode == AVG_INCL;                               \
        nb_node *y = mode == MAX_POOL ? nb_max_pool2d(g, x, &p)               \
                                      : nb_avg_pool2d(g, x, &p);              \
        int64_t ny = y ? nb_tensor_size(nb_node_value(y)) : 0;                \
        nb_tensor *seed =                                                     \
            y ? nb_tensor_new(DT, 4, nb_tensor_shape(nb_node_value(y)))       \
              : NULL;                                                         \
        T *dy = malloc((size_t)(ny + 1) * sizeof *dy);                        \
        T *ry = malloc((size_t)(ny + 1) * sizeof *ry);                        \
        T *rdx = calloc((size_t)size, sizeof *rdx);                           \
        for (int64_t o = 0; o < ny; o++) {                                    \
            dy[o] = (T)urand(-1, 1);                                          \
            nb_tensor_set(seed, o, dy[o]);                                    \
        }                                                                     \
        int bad = y == NULL;                                                  \
        if (y && nb_forward(g, y) == NB_OK &&                                 \
            nb_backward_ex(g, y, seed, 0) == NB_OK) {                         \
            REF(q, mode, nb_tensor_data(nb_node_value(x)), dy, ry, rdx);      \
            bad += memcmp(nb_tensor_data(nb_node_value(y)), ry,               \
                          (size_t)ny * sizeof *ry) != 0;                      \
            bad += memcmp(nb_tensor_data(nb_node_grad(x)), rdx,               \
                          (size_t)size * sizeof *rdx) != 0;                   \
        } else {                                                              \
            bad++;                                                            \
        }                                                                     \
        nb_tensor_free(seed);                                                 \
        free(dy);                                                             \
        free(ry);                                                             \
        free(rdx);                                                            \
        nb_graph_free(g);                                                     \
        return bad;                                                           \
    }
DEFINE_CHECK_BITS(float, NB_F32, bits_ref_f32, check_bits_f32)
DEFINE_CHECK_BITS(double, NB_F64, bits_ref_f64, check_bits_f64)

/* Whether some window along one axis (extent n) takes only padding. */
static bool axis_has_empty_window(int64_t n, int64_t k, int64_t s, int64_t p,
                                  int64_t d)
{
    int64_t out = out_extent(n, k, s, p, d);
    for (int64_t i = 0; i < out; i++) {
        bool inside = false;
        for (int64_t a = 0; a < k; a++) {
            int64_t at = i * s - p + a * d;
            inside = inside || (at >= 0 && at < n);
        }
        if (!inside)
            return true;
    }
    return false;
}

/* Random geometries, half of them the common 2x2 window with stride 2
 * (the kernels' unrolled interior path), on values with many ties and
 * signed zeros, and on random values. */
static void test_pool_bits(void)
{
    for (int t = 0; t < 60; t++) {
        bool dilated = t % 3 == 0;
        pool_case q = random_pool_case(dilated);
        if (t % 2 == 0) {
            q.k[0] = q.k[1] = 2;
            q.s[1] = 2;
            q.s[0] = t % 4 == 0 ? 2 : irand(1, 3);
            q.d[0] = q.d[1] = 1;
            q.p[0] = irand(0, 1);
            q.p[1] = irand(0, 1);
            q.h = irand(2, 12);
            q.w = irand(2, 40);
        }
        int64_t size = q.n * q.c * q.h * q.w;
        double *xv = malloc((size_t)size * sizeof *xv);
        for (int64_t i = 0; i < size; i++) {
            int v = (int)irand(-2, 2);
            /* some planes of -0 alone: a sum from 0 makes +0 of them */
            xv[i] = t % 8 == 6 && i < size / 2 ? -0.0
                    : t % 3 == 1             ? (double)(float)urand(-3, 3)
                    : v == 0   ? (irand(0, 1) ? -0.0 : 0.0)
                               : (double)v;
        }
        /* max_pool2d refuses a window of padding only (the rule has its
         * own sweep in test_pool_references): no bits to compare then */
        bool refused =
            axis_has_empty_window(q.h, q.k[0], q.s[0], q.p[0], q.d[0]) ||
            axis_has_empty_window(q.w, q.k[1], q.s[1], q.p[1], q.d[1]);
        for (int mode = refused ? MAX_POOL + 1 : MAX_POOL;
             mode <= (q.d[0] * q.d[1] == 1 ? AVG_INCL
                                                                : MAX_POOL);
             mode++) {
            int bad = check_bits_f32(&q, mode, xv) + check_bits_f64(&q, mode, xv);
            CHECK(bad == 0,
                  "pooling mode %d [%lld,%lld,%lld,%lld] k %lldx%lld s "
                  "%lldx%lld p %lldx%lld d %lldx%lld: not the reference's "
                  "bits",
                  mode, (long long)q.n, (long long)q.c, (long long)q.h,
                  (long long)q.w, (long long)q.k[0], (long long)q.k[1],
                  (long long)q.s[0], (long long)q.s[1], (long long)q.p[0],
                  (long long)q.p[1], (long long)q.d[0], (long long)q.d[1]);
        }
        free(xv);
    }
}

/* Ties: every window's gradient goes to its first maximum. */
static void test_max_pool_ties(void)
{
    /* hand-made: [[5,5],[5,1]] in one 2x2 window -> only x[0,0] */
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(1, 1, 2, 2));
    SET(x, 5, 5, 5, 1);
    nb_node *y = nb_max_pool2d(g, x, &(nb_pool2d_params){.kernel = {2, 2},
                                                          .stride = {2, 2}});
    nb_node *loss = nb_sum(g, y);
    CHECK(nb_forward(g, loss) == NB_OK && nb_backward(g, loss) == NB_OK, "%s",
          nb_graph_error(g));
    const double want[4] = {1, 0, 0, 0};
    for (int i = 0; i < 4; i++)
        CHECK(nb_tensor_get(nb_node_grad(x), i) == want[i],
              "tie: dx[%d] = %g, want %g", i,
              nb_tensor_get(nb_node_grad(x), i), want[i]);
    nb_graph_free(g);

    /* a constant image, overlapping padded windows (3x3, stride 1, pad 1,
     * and dilated 2x2): each window's first real element wins */
    for (int form = 0; form < 2; form++) {
        pool_case q = {.n = 2, .c = 2, .h = 5, .w = 4,
                       .k = {3, 3}, .s = {1, 1}, .p = {1, 1}, .d = {1, 1}};
        if (form == 1)
            q = (pool_case){.n = 1, .c = 3, .h = 6, .w = 5,
                            .k = {2, 2}, .s = {1, 2}, .p = {1, 0},
                            .d = {2, 2}};
        int64_t size = q.n * q.c * q.h * q.w;
        double *xv = malloc((size_t)size * sizeof *xv);
        for (int64_t i = 0; i < size; i++)
            xv[i] = 0.25;
        check_max_pool(NB_F64, &q, xv);
        check_max_pool(NB_F32, &q, xv);
        /* and rows of equal values with a distinct maximum elsewhere */
        for (int64_t i = 0; i < size; i++)
            xv[i] = (double)((i / 3) % 4);
        check_max_pool(NB_F64, &q, xv);
        free(xv);
    }
}

static void test_global_pool(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(2, 3, 4, 5));
    fill_random(x, -2, 2);
    nb_node *y = nb_global_avg_pool2d(g, x);
    CHECK(y && nb_tensor_rank(nb_node_value(y)) == 2 &&
              nb_tensor_shape(nb_node_value(y))[0] == 2 &&
              nb_tensor_shape(nb_node_value(y))[1] == 3,
          "global_avg_pool2d gives [N,C]: %s", nb_graph_error(g));
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    for (int64_t p = 0; p < 6; p++) {
        double s = 0;
        for (int64_t k = 0; k < 20; k++)
            s += nb_tensor_get(nb_node_value(x), p * 20 + k);
        CHECK_NEAR(nb_tensor_get(nb_node_value(y), p), s / 20, 1e-14);
    }
    nb_graph_free(g);
}

/* ---- batch norm ---- */

/* Per-channel mean and biased variance of x [n, c, s]. */
static void ref_moments(int64_t n, int64_t c, int64_t s, const double *x,
                        double *mean, double *var)
{
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++)
                sum += x[(i * c + ch) * s + k];
        mean[ch] = sum / (double)(n * s);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++) {
                double e = x[(i * c + ch) * s + k] - mean[ch];
                sq += e * e;
            }
        var[ch] = sq / (double)(n * s);
    }
}

/* How many elements of y differ by more than tol from
 * w (x - mean) / sqrt(var + eps) + b, x as [n, c, s]. */
static int bn_mismatches(nb_node *y, nb_node *w, nb_node *b, int n, int c,
                         int s, const double *xs, const double *mean,
                         const double *var, double eps, double tol)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int k = 0; k < s; k++) {
                int idx = (i * c + ch) * s + k;
                double ref = nb_tensor_get(nb_node_value(w), ch) *
                                 (xs[idx] - mean[ch]) / sqrt(var[ch] + eps) +
                             nb_tensor_get(nb_node_value(b), ch);
                bad += fabs(nb_tensor_get(nb_node_value(y), idx) - ref) > tol;
            }
    return bad;
}

static void test_batch_norm_values(nb_dtype dt)
{
    enum { N = 4, C = 3, H = 2, W = 3, S = H * W, STEPS = 3 };
    const double mom = 0.1, eps = 1e-5;
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", dt, 4, SHAPE(N, C, H, W));
    nb_node *rm = nb_state(g, "bn1.running_mean", dt, 1, SHAPE(C));
    nb_node *rv = nb_state(g, "bn1.running_var", dt, 1, SHAPE(C));
    nb_node *w = nb_param(g, "bn1.weight", dt, 1, SHAPE(C));
    nb_node *b = nb_param(g, "bn1.bias", dt, 1, SHAPE(C));
    nb_tensor_fill(nb_node_value(rv), 1);
    fill_random(w, 0.5, 2);
    fill_random(b, -1, 1);
    nb_node *y = nb_batch_norm(g, x, rm, rv, w, b, mom, eps);
    CHECK(y != NULL, "batch_norm: %s", nb_graph_error(g));
    if (!y) {
        nb_graph_free(g);
        return;
    }
    double tol = dt == NB_F64 ? 1e-12 : 2e-5;
    double want_rm[C] = {0, 0, 0}, want_rv[C] = {1, 1, 1};
    static double xs[N * C * S];
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < N * C * S; i++)
            xs[i] = (double)(float)urand(-2, 2) * (1 + step);
        nb_tensor *xt = nb_tensor_new(dt, 4, SHAPE(N, C, H, W));
        nb_tensor_copy_from_f64(xt, xs, N * C * S);
        CHECK(nb_feed(g, x, 4, SHAPE(N, C, H, W), nb_tensor_cdata(xt)) ==
                  NB_OK,
              "%s", nb_graph_error(g));
        nb_tensor_free(xt);
        CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
        double mean[C], var[C];
        ref_moments(N, C, S, xs, mean, var);
        int bad = bn_mismatches(y, w, b, N, C, S, xs, mean, var, eps, tol);
        CHECK(bad == 0, "batch_norm %s training step %d: %d values differ",
              nb_dtype_name(dt), step, bad);
        for (int ch = 0; ch < C; ch++) {
            want_rm[ch] = (1 - mom) * want_rm[ch] + mom * mean[ch];
            want_rv[ch] = (1 - mom) * want_rv[ch] +
                          mom * var[ch] * (N * S) / (N * S - 1.0);
        }
    }
    for (int ch = 0; ch < C; ch++) {
        CHECK_NEAR(nb_tensor_get(nb_node_value(rm), ch), want_rm[ch], tol);
        CHECK_NEAR(nb_tensor_get(nb_node_value(rv), ch), want_rv[ch], tol);
    }

    /* inference: the running statistics normalise and stay as they are */
    nb_graph_set_training(g, false);
    CHECK(nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    int bad = bn_mismatches(y, w, b, N, C, S, xs, want_rm, want_rv, eps, tol);
    CHECK(bad == 0, "batch_norm %s inference: %d values differ",
          nb_dtype_name(dt), bad);
    for (int ch = 0; ch < C; ch++)
        CHECK_NEAR(nb_tensor_get(nb_node_value(rm), ch), want_rm[ch], tol);
    nb_graph_free(g);
}

/* [N, F] input: statistics over N per feature; no affine part. */
static void test_batch_norm_2d(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 2, SHAPE(5, 4));
    nb_node *rm = nb_state(g, "rm", NB_F64, 1, SHAPE(4));
    nb_node *rv = nb_state(g, "rv", NB_F64, 1, SHAPE(4));
    fill_random(x, -3, 3);
    nb_node *y = nb_batch_norm(g, x, rm, rv, NULL, NULL, 0.1, 1e-5);
    CHECK(y && nb_forward(g, y) == NB_OK, "%s", nb_graph_error(g));
    double xs[20], mean[4], var[4];
    for (int i = 0; i < 20; i++)
        xs[i] = nb_tensor_get(nb_node_value(x), i);
    ref_moments(5, 4, 1, xs, mean, var);
    for (int i = 0; i < 20; i++)
        CHECK_NEAR(nb_tensor_get(nb_node_value(y), i),
                   (xs[i] - mean[i % 4]) / sqrt(var[i % 4] + 1e-5), 1e-12);
    nb_graph_free(g);
}

/* Gradient checking runs forward many times; the running statistics end
 * as one forward leaves them, and the check's result is unaffected. */
static void test_batch_norm_gradcheck_state(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 4, SHAPE(3, 2, 2, 2));
    nb_input_set_requires_grad(g, x, true);
    nb_node *rm = nb_state(g, "bn.running_mean", NB_F64, 1, SHAPE(2));
    nb_node *rv = nb_state(g, "bn.running_var", NB_F64, 1, SHAPE(2));
    nb_node *w = nb_param(g, "bn.weight", NB_F64, 1, SHAPE(2));
    nb_node *b = nb_param(g, "bn.bias", NB_F64, 1, SHAPE(2));
    SET(rm, 0.5, -0.5);
    SET(rv, 2, 3);
    SET(w, 1.5, 0.7);
    SET(b, 0.1, -0.2);
    double xs[24], mean[2], var[2];
    for (int i = 0; i < 24; i++)
        xs[i] = urand(-2, 2);
    nb_feed(g, x, 4, SHAPE(3, 2, 2, 2), xs);
    nb_node *y = nb_batch_norm(g, x, rm, rv, w, b, 0.25, 1e-5);
    nb_gradcheck_result r;
    CHECK(nb_gradcheck(g, y, NULL, &r) == NB_OK && r.passed, "%s",
          r.message);
    ref_moments(3, 2, 4, xs, mean, var);
    const double rm0[2] = {0.5, -0.5}, rv0[2] = {2, 3};
    for (int ch = 0; ch < 2; ch++) {
        CHECK_NEAR(nb_tensor_get(nb_node_value(rm), ch),
                   0.75 * rm0[ch] + 0.25 * mean[ch], 1e-14);
        CHECK_NEAR(nb_tensor_get(nb_node_value(rv), ch),
                   0.75 * rv0[ch] + 0.25 * var[ch] * 12 / 11, 1e-14);
    }
    CHECK(nb_node_grad(rm) == NULL, "a state tensor takes no gradient");
    nb_graph_free(g);
}

/* ---- layer norm ---- */

static void test_layer_norm_values(nb_dtype dt)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", dt, 3, SHAPE(2, 3, 4));
    nb_node *w = nb_param(g, "ln.weight", dt, 2, SHAPE(3, 4));
    nb_node *b = nb_param(g, "ln.bias", dt, 2, SHAPE(3, 4));
    fill_random(x, -2, 2);
    fill_random(w, 0.5, 2);
    fill_random(b, -1, 1);
    nb_node *y2 = nb_layer_norm(g, x, 2, w, b, 1e-5);
    nb_node *y1 = nb_layer_norm(g, x, 1, NULL, NULL, 1e-5);
    CHECK(y1 && y2 && nb_forward(g, y2) == NB_OK && nb_forward(g, y1) == NB_OK,
          "%s", nb_graph_error(g));
    double tol = dt == NB_F64 ? 1e-12 : 2e-5;
    for (int axes = 1; axes <= 2; axes++) {
        int64_t d = axes == 2 ? 12 : 4;
        nb_node *y = axes == 2 ? y2 : y1;
        int bad = 0;
        for (int64_t r = 0; r < 24 / d; r++) {
            double m = 0, v = 0;
            for (int64_t j = 0; j < d; j++)
                m += nb_tensor_get(nb_node_value(x), r * d + j) / (double)d;
            for (int64_t j = 0; j < d; j++) {
                double e = nb_tensor_get(nb_node_value(x), r * d + j) - m;
                v += e * e / (double)d;
            }
            for (int64_t j = 0; j < d; j++) {
                double ref = (nb_tensor_get(nb_node_value(x), r * d + j) - m) /
                             sqrt(v + 1e-5);
                if (axes == 2)
                    ref = ref * nb_tensor_get(nb_node_value(w), j) +
                          nb_tensor_get(nb_node_value(b), j);
                bad += fabs(nb_tensor_get(nb_node_value(y), r * d + j) - ref) >
                       tol;
            }
        }
        CHECK(bad == 0, "layer_norm %s over %d axes: %d values differ",
              nb_dtype_name(dt), axes, bad);
    }
    nb_graph_free(g);
}

/* ---- state tensors: files, checkpoints, optimisers ---- */

static void test_state_io(void)
{
    const char *path = "test_ops_norm_state.safetensors";
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "bn1.weight", NB_F32, 1, SHAPE(3));
    nb_node *rm = nb_state(g, "bn1.running_mean", NB_F32, 1, SHAPE(3));
    nb_node *rv = nb_state(g, "bn1.running_var", NB_F32, 1, SHAPE(3));
    CHECK(rm && nb_node_get_kind(rm) == NB_NODE_STATE &&
              strcmp(nb_node_op_name(rm), "state") == 0 &&
              !nb_node_is_trainable(rm),
          "a state node: %s", nb_graph_error(g));
    SET(w, 1, 2, 3);
    SET(rm, 0.25, 0.5, 0.75);
    SET(rv, 1.5, 2.5, 3.5);
    CHECK(nb_save_params(g, path, 0, NULL) == NB_OK, "%s", nb_graph_error(g));

    /* a fresh graph of the same model reads the statistics back */
    nb_graph *h = nb_graph_new();
    nb_node *w2 = nb_param(h, "bn1.weight", NB_F32, 1, SHAPE(3));
    nb_node *rm2 = nb_state(h, "bn1.running_mean", NB_F32, 1, SHAPE(3));
    nb_node *rv2 = nb_state(h, "bn1.running_var", NB_F32, 1, SHAPE(3));
    CHECK(nb_load_params(h, path, 0, NULL) == NB_OK, "%s", nb_graph_error(h));
    for (int i = 0; i < 3; i++) {
        CHECK(nb_tensor_get(nb_node_value(w2), i) == 1 + i, "weight %d", i);
        CHECK(nb_tensor_get(nb_node_value(rm2), i) == 0.25 * (i + 1),
              "running_mean %d", i);
        CHECK(nb_tensor_get(nb_node_value(rv2), i) == 1.5 + i,
              "running_var %d", i);
    }
    /* the file holds them under their names: a constant of that name,
     * loaded on its own, finds it */
    nb_node *c = nb_constant(h, "bn1.running_var", NB_F32, 1, SHAPE(3));
    CHECK(nb_load_params(h, path, 1, &c) == NB_OK &&
              nb_tensor_get(nb_node_value(c), 2) == 3.5,
          "%s", nb_graph_error(h));

    /* checkpoints carry them too */
    SET(rv, 7, 8, 9);
    CHECK(nb_checkpoint_save(g, NULL, 3, path) == NB_OK, "%s",
          nb_graph_error(g));
    nb_graph *k = nb_graph_new();
    nb_param(k, "bn1.weight", NB_F32, 1, SHAPE(3));
    nb_state(k, "bn1.running_mean", NB_F32, 1, SHAPE(3));
    nb_node *rv3 = nb_state(k, "bn1.running_var", NB_F32, 1, SHAPE(3));
    int64_t epoch = 0;
    CHECK(nb_checkpoint_load(k, NULL, &epoch, path) == NB_OK && epoch == 3,
          "%s", nb_graph_error(k));
    CHECK(nb_tensor_get(nb_node_value(rv3), 0) == 7, "checkpointed state");

    /* an optimiser over every parameter leaves the state alone, and one
     * given a state node explicitly refuses it */
    nb_optim_config cfg = {.kind = NB_OPTIM_SGD, .lr = 0.1};
    nb_optimizer *opt = nb_optimizer_new(g, &cfg, 0, NULL);
    CHECK(opt && nb_optimizer_param_count(opt) == 1,
          "every parameter is the weight alone: %s", nb_graph_error(g));
    nb_optimizer_free(opt);
    CHECK(nb_optimizer_new(g, &cfg, 1, &rm) == NULL, "state is not trained");
    CHECK_ERROR(g, "bn1.running_mean", "state");
    /* nor can it be made trainable */
    CHECK(nb_param_set_trainable(g, rm, true) != NB_OK, "state stays state");
    nb_graph_clear_error(g);
    remove(path);
    nb_graph_free(g);
    nb_graph_free(h);
    nb_graph_free(k);
}

/* ---- shape rules ---- */

static nb_node *pool(nb_graph *g, nb_node *x, bool max, nb_pool2d_params p)
{
    return max ? nb_max_pool2d(g, x, &p) : nb_avg_pool2d(g, x, &p);
}

/* The graph still works after an error. */
static void check_usable(nb_graph *g, nb_node *x)
{
    nb_node *y = nb_max_pool2d(g, x, &(nb_pool2d_params){.kernel = {2, 2},
                                                          .stride = {2, 2}});
    CHECK(y && nb_forward(g, y) == NB_OK, "graph unusable after an error: %s",
          nb_graph_error(g));
}

static void test_errors(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F64, 4, SHAPE(2, 3, 5, 6));
    nb_node *x3 = nb_param(g, "x3", NB_F64, 3, SHAPE(2, 3, 5));
    int64_t before = nb_graph_node_count(g);
    for (int m = 0; m < 2; m++) {
        const char *op = m ? "max_pool2d" : "avg_pool2d";
        CHECK(!pool(g, x, m, (nb_pool2d_params){.kernel = {2, 2},
                                                .stride = {0, 2}}),
              "stride 0");
        CHECK_ERROR(g, op, "stride [0,2]");
        CHECK(!pool(g, x, m, (nb_pool2d_params){.kernel = {3, 3},
                                                .stride = {1, 1},
                                                .padding = {-1, 0}}),
              "negative padding");
        CHECK_ERROR(g, op, "padding [-1,0] is negative");
        CHECK(!pool(g, x, m, (nb_pool2d_params){.kernel = {3, 3},
                                                .stride = {1, 1},
                                                .padding = {1, 2}}),
              "padding above half the kernel");
        CHECK_ERROR(g, op, "padding [1,2]", "half the kernel [3,3]");
        CHECK(!pool(g, x, m, (nb_pool2d_params){.kernel = {6, 2},
                                                .stride = {1, 1}}),
              "kernel larger than the input");
        CHECK_ERROR(g, op, "kernel [6,2]", "larger than the padded input",
                    "[2,3,5,6]");
        CHECK(!pool(g, x3, m, (nb_pool2d_params){.kernel = {2, 2},
                                                 .stride = {2, 2}}),
              "rank 3");
        CHECK_ERROR(g, op, "[N,C,H,W]", "[2,3,5]");
        CHECK(!pool(g, x, m, (nb_pool2d_params){.kernel = {0, 2},
                                                .stride = {1, 1}}),
              "kernel 0");
        CHECK_ERROR(g, op, "kernel [0,2]");
        check_usable(g, x);
    }
    /* dilation: a dilated window beyond the padded input; none for avg */
    CHECK(!nb_max_pool2d(g, x, &(nb_pool2d_params){.kernel = {3, 3},
                                                   .stride = {1, 1},
                                                   .dilation = {2, 3}}),
          "dilated kernel larger than the input");
    CHECK_ERROR(g, "max_pool2d", "dilation [2,3]", "larger than the padded");
    CHECK(!nb_avg_pool2d(g, x, &(nb_pool2d_params){.kernel = {2, 2},
                                                   .stride = {1, 1},
                                                   .dilation = {2, 2}}),
          "avg_pool2d has no dilation");
    CHECK_ERROR(g, "avg_pool2d", "dilation");
    CHECK(!nb_max_pool2d(g, x, NULL), "no parameters");
    CHECK_ERROR(g, "max_pool2d", "kernel");
    CHECK(!nb_global_avg_pool2d(g, x3), "global pooling of rank 3");
    CHECK_ERROR(g, "global_avg_pool2d", "[2,3,5]");

    /* batch norm */
    nb_node *rm = nb_state(g, "rm", NB_F64, 1, SHAPE(3));
    nb_node *rv = nb_state(g, "rv", NB_F64, 1, SHAPE(3));
    nb_node *rv4 = nb_state(g, "rv4", NB_F64, 1, SHAPE(4));
    nb_node *w4 = nb_param(g, "w4", NB_F64, 1, SHAPE(4));
    nb_node *w3 = nb_param(g, "w3", NB_F64, 1, SHAPE(3));
    nb_node *b3 = nb_param(g, "b3", NB_F64, 1, SHAPE(3));
    nb_node *p3 = nb_param(g, "p3", NB_F64, 1, SHAPE(3));
    nb_node *x1 = nb_param(g, "x1", NB_F64, 1, SHAPE(3));
    nb_node *f32 = nb_state(g, "f32", NB_F32, 1, SHAPE(3));
    before = nb_graph_node_count(g);
    CHECK(!nb_batch_norm(g, x, rm, rv, w4, b3, 0.1, 1e-5), "weight [4]");
    CHECK_ERROR(g, "batch_norm", "[2,3,5,6] has 3 channels", "weight is [4]");
    CHECK(!nb_batch_norm(g, x, rm, rv4, w3, b3, 0.1, 1e-5), "running_var [4]");
    CHECK_ERROR(g, "batch_norm", "3 channels", "running_var is [4]");
    CHECK(!nb_batch_norm(g, x1, rm, rv, w3, b3, 0.1, 1e-5), "rank 1");
    CHECK_ERROR(g, "batch_norm", "[3]", "channel axis");
    CHECK(!nb_batch_norm(g, x, rm, f32, w3, b3, 0.1, 1e-5), "dtypes");
    CHECK_ERROR(g, "batch_norm", "f32 [3]", "f64 [2,3,5,6]");
    CHECK(!nb_batch_norm(g, x, rm, rv, w3, NULL, 0.1, 1e-5), "half affine");
    CHECK_ERROR(g, "batch_norm", "weight and bias");
    CHECK(!nb_batch_norm(g, x, p3, rv, w3, b3, 0.1, 1e-5), "param as stat");
    CHECK_ERROR(g, "batch_norm", "running_mean ('p3') must be a state node");
    CHECK(!nb_batch_norm(g, x, rm, rv, w3, b3, 1.5, 1e-5), "momentum");
    CHECK_ERROR(g, "batch_norm", "momentum 1.5");
    CHECK(!nb_batch_norm(g, x, rm, rv, w3, b3, 0.1, 0), "eps");
    CHECK_ERROR(g, "batch_norm", "eps 0");
    CHECK(nb_graph_node_count(g) == before, "rejected ops leave no node");
    /* one value per channel cannot train; inference can */
    nb_node *one = nb_param(g, "one", NB_F64, 2, SHAPE(1, 3));
    nb_node *y = nb_batch_norm(g, one, rm, rv, w3, b3, 0.1, 1e-5);
    CHECK(y && nb_forward(g, y) != NB_OK, "batch 1 of [N,F] in training");
    CHECK_ERROR(g, "batch_norm", "more than one value per channel", "[1,3]");
    nb_graph_set_training(g, false);
    CHECK(nb_forward(g, y) == NB_OK, "inference with batch 1: %s",
          nb_graph_error(g));
    nb_graph_set_training(g, true);
    check_usable(g, x);

    /* layer norm */
    nb_node *w34 = nb_param(g, "w34", NB_F64, 2, SHAPE(5, 5));
    before = nb_graph_node_count(g);
    CHECK(!nb_layer_norm(g, x, 2, w34, w34, 1e-5), "weight shape");
    CHECK_ERROR(g, "layer_norm", "weight is [5,5]", "[2,3,5,6]",
                "normalised over [5,6]");
    CHECK(!nb_layer_norm(g, x, 5, NULL, NULL, 1e-5), "too many axes");
    CHECK_ERROR(g, "layer_norm", "last 5 axes", "[2,3,5,6]");
    CHECK(!nb_layer_norm(g, x, 0, NULL, NULL, 1e-5), "zero axes");
    CHECK_ERROR(g, "layer_norm", "last 0 axes");
    CHECK(!nb_layer_norm(g, x, 1, NULL, NULL, -1), "eps");
    CHECK_ERROR(g, "layer_norm", "eps -1");
    CHECK(nb_graph_node_count(g) == before, "rejected ops leave no node");
    check_usable(g, x);
    nb_graph_free(g);
}

/* One f32 graph with every op of the family, large enough for the kernels
 * to split: forward and backward at 1, 2 and 3 threads give the same bits. */
static void test_thread_counts(void)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    enum { N = 8, C = 4, H = 32, W = 32, SIZE = N * C * H * W };
    static float xs[SIZE];
    for (int i = 0; i < SIZE; i++)
        xs[i] = (float)urand(-2, 2);
    float *first = NULL;
    int64_t first_len = 0;
    /* the team whenever allowed: a measured choice could keep every call
     * on one thread and so never compare a split */
    nb_parallel_set_mode(NB_PARALLEL_TEAM);
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        nb_graph *g = nb_graph_new();
        nb_node *x = nb_input(g, "x", NB_F32, 4, SHAPE(N, C, H, W));
        nb_input_set_requires_grad(g, x, true);
        nb_node *rm = nb_state(g, "bn.running_mean", NB_F32, 1, SHAPE(C));
        nb_node *rv = nb_state(g, "bn.running_var", NB_F32, 1, SHAPE(C));
        nb_node *gam = nb_param(g, "bn.weight", NB_F32, 1, SHAPE(C));
        nb_node *bet = nb_param(g, "bn.bias", NB_F32, 1, SHAPE(C));
        nb_node *lw = nb_param(g, "ln.weight", NB_F32, 2, SHAPE(H, W));
        nb_node *lb = nb_param(g, "ln.bias", NB_F32, 2, SHAPE(H, W));
        nb_tensor_fill(nb_node_value(rv), 1);
        nb_tensor_fill(nb_node_value(gam), 1.5);
        nb_tensor_fill(nb_node_value(lw), 0.5);
        nb_node *h = nb_batch_norm(g, x, rm, rv, gam, bet, 0.1, 1e-5);
        h = nb_layer_norm(g, h, 2, lw, lb, 1e-5);
        nb_node *m = nb_max_pool2d(
            g, h,
            &(nb_pool2d_params){.kernel = {3, 3}, .stride = {1, 1},
                                .padding = {1, 1}});
        nb_node *a = nb_avg_pool2d(
            g, m,
            &(nb_pool2d_params){.kernel = {2, 2}, .stride = {2, 2},
                                .count_include_pad = true});
        nb_node *loss = nb_sum(g, nb_square(g, nb_global_avg_pool2d(g, a)));
        CHECK(nb_feed(g, x, 4, SHAPE(N, C, H, W), xs) == NB_OK &&
                  nb_forward(g, loss) == NB_OK &&
                  nb_backward(g, loss) == NB_OK,
              "%s", nb_graph_error(g));
        /* the results that differ first when a sum is split: values,
         * the input's gradient, the parameters' and the statistics */
        const nb_tensor *parts[] = {nb_node_value(a), nb_node_grad(x),
                                    nb_node_grad(gam), nb_node_grad(lw),
                                    nb_node_value(rv)};
        int64_t len = 0;
        for (int i = 0; i < 5; i++)
            len += parts[i] ? nb_tensor_size(parts[i]) : 0;
        float *all = malloc((size_t)len * sizeof *all);
        int64_t at = 0;
        for (int i = 0; i < 5; i++)
            if (parts[i]) {
                memcpy(all + at, nb_tensor_cdata(parts[i]),
                       (size_t)nb_tensor_size(parts[i]) * sizeof(float));
                at += nb_tensor_size(parts[i]);
            }
        if (!first) {
            first = all;
            first_len = len;
        } else {
            CHECK(len == first_len &&
                      memcmp(all, first, (size_t)len * sizeof *all) == 0,
                  "%d threads differ from 1 thread", threads);
            free(all);
        }
        nb_graph_free(g);
    }
    free(first);
    omp_set_num_threads(saved);
    nb_parallel_set_mode(NB_PARALLEL_MEASURE);
#endif
}

int main(void)
{
    test_thread_counts();
    test_pool_references();
    test_max_pool_ties();
    test_max_pool_padding_only_window();
    test_pool_huge_window();
    test_max_pool_plane_limit();
    test_pool_bits();
    test_global_pool();
    test_batch_norm_values(NB_F64);
    test_batch_norm_values(NB_F32);
    test_batch_norm_2d();
    test_batch_norm_gradcheck_state();
    test_layer_norm_values(NB_F64);
    test_layer_norm_values(NB_F32);
    test_state_io();
    test_errors();
    return tu_finish("ops_norm");
}
