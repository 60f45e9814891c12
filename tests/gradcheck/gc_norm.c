/* Gradient-check cases: pool2d.c (max_pool2d, avg_pool2d,
 * global_avg_pool2d), batch_norm.c and layer_norm.c. Shapes, strides,
 * paddings and dilations are drawn at random within the shape rules, with
 * batch-1 forms of each. Max pooling draws continuous values, so no two
 * elements of a window tie within the step h. Batch norm runs in both
 * modes; in training mode forward also moves the running statistics, which
 * the check restores before each evaluation. */
#include "gradcheck_cases.h"

/* A random window that fits x [n, c, h, w] with h, w drawn to fit it. */
static nb_node *pooled_input(nb_graph *g, gc_ctx *c, int64_t n,
                             nb_pool2d_params *p, bool dilated)
{
    int64_t ext[2];
    for (int a = 0; a < 2; a++) {
        p->kernel[a] = gc_dim(c, 1, 3);
        p->stride[a] = gc_dim(c, 1, 3);
        p->padding[a] = gc_dim(c, 0, p->kernel[a] / 2);
        p->dilation[a] = dilated ? gc_dim(c, 1, 2) : 1;
        int64_t span = p->dilation[a] * (p->kernel[a] - 1) + 1;
        int64_t lo = span - 2 * p->padding[a];
        /* A padded window's first tap inside is below the dilation, so an
         * extent of at least the dilation leaves no window of padding only
         * (max_pool2d refuses one: its output would be -inf). */
        if (p->padding[a] > 0 && lo < p->dilation[a])
            lo = p->dilation[a];
        ext[a] = gc_dim(c, lo > 1 ? lo : 1, lo + 4);
    }
    int64_t ch = gc_dim(c, 1, 3);
    return gc_input(g, c, 4, (int64_t[]){n, ch, ext[0], ext[1]}, -2, 2);
}

static nb_node *max_pool(nb_graph *g, gc_ctx *c)
{
    nb_pool2d_params p = {0};
    nb_node *x = pooled_input(g, c, gc_dim(c, 1, 3), &p, true);
    return nb_max_pool2d(g, x, &p);
}

static nb_node *max_pool_b1(nb_graph *g, gc_ctx *c)
{
    nb_pool2d_params p = {0};
    nb_node *x = pooled_input(g, c, 1, &p, true);
    return nb_max_pool2d(g, x, &p);
}

/* The routed gradient flows on into a parameter through a product. */
static nb_node *max_pool_scaled(nb_graph *g, gc_ctx *c)
{
    nb_pool2d_params p = {.kernel = {2, 2}, .stride = {2, 2}};
    int64_t n = gc_dim(c, 1, 2), h = gc_dim(c, 2, 6), w = gc_dim(c, 2, 6);
    nb_node *x = gc_input(g, c, 4, (int64_t[]){n, 2, h, w}, -2, 2);
    nb_node *s = gc_param(g, c, 4, (int64_t[]){1, 2, 1, 1}, 0.5, 2);
    return nb_max_pool2d(g, nb_mul(g, x, s), &p);
}

static nb_node *avg_pool_with(nb_graph *g, gc_ctx *c, int64_t n, bool incl)
{
    nb_pool2d_params p = {0};
    nb_node *x = pooled_input(g, c, n, &p, false);
    p.count_include_pad = incl;
    return nb_avg_pool2d(g, x, &p);
}

static nb_node *avg_pool_incl(nb_graph *g, gc_ctx *c)
{
    return avg_pool_with(g, c, gc_dim(c, 1, 3), true);
}

static nb_node *avg_pool_excl(nb_graph *g, gc_ctx *c)
{
    return avg_pool_with(g, c, gc_dim(c, 1, 3), false);
}

static nb_node *avg_pool_b1(nb_graph *g, gc_ctx *c)
{
    return avg_pool_with(g, c, 1, gc_dim(c, 0, 1) == 1);
}

static nb_node *global_pool(nb_graph *g, gc_ctx *c)
{
    int64_t shape[4] = {gc_dim(c, 1, 3), gc_dim(c, 1, 3), gc_dim(c, 1, 4),
                        gc_dim(c, 1, 4)};
    return nb_global_avg_pool2d(g, gc_input(g, c, 4, shape, -2, 2));
}

/* A state vector of c elements drawn in [lo, hi). */
static nb_node *state(nb_graph *g, gc_ctx *c, const char *name, int64_t ch,
                      double lo, double hi)
{
    nb_node *s = nb_state(g, name, NB_F64, 1, (int64_t[]){ch});
    if (s)
        for (int64_t i = 0; i < ch; i++)
            nb_tensor_set(nb_node_value(s), i, gc_uniform(c, lo, hi));
    return s;
}

/* batch_norm of a random [N,C,H,W] (rank 4) or [N,F] (rank 2). */
static nb_node *bn(nb_graph *g, gc_ctx *c, int rank, int64_t n, bool affine,
                   bool training)
{
    int64_t ch = gc_dim(c, 1, 3);
    int64_t shape[4] = {n, ch, gc_dim(c, 1, 3), gc_dim(c, 1, 3)};
    nb_node *x = gc_input(g, c, rank, shape, -2, 2);
    nb_node *rm = state(g, c, "bn.running_mean", ch, -1, 1);
    nb_node *rv = state(g, c, "bn.running_var", ch, 0.5, 2);
    nb_node *w = affine ? gc_param(g, c, 1, (int64_t[]){ch}, 0.5, 2) : NULL;
    nb_node *b = affine ? gc_param(g, c, 1, (int64_t[]){ch}, -1, 1) : NULL;
    nb_graph_set_training(g, training);
    return nb_batch_norm(g, x, rm, rv, w, b, 0.1, 1e-5);
}

static nb_node *bn_train4(nb_graph *g, gc_ctx *c)
{
    return bn(g, c, 4, gc_dim(c, 2, 3), true, true);
}

static nb_node *bn_train4_b1(nb_graph *g, gc_ctx *c)
{
    /* batch 1 trains on the H*W values of each channel (at least 2) */
    int64_t ch = gc_dim(c, 1, 3);
    nb_node *x = gc_input(g, c, 4, (int64_t[]){1, ch, 2, gc_dim(c, 1, 3)},
                          -2, 2);
    nb_node *rm = state(g, c, "bn.running_mean", ch, -1, 1);
    nb_node *rv = state(g, c, "bn.running_var", ch, 0.5, 2);
    nb_node *w = gc_param(g, c, 1, (int64_t[]){ch}, 0.5, 2);
    nb_node *b = gc_param(g, c, 1, (int64_t[]){ch}, -1, 1);
    return nb_batch_norm(g, x, rm, rv, w, b, 0.1, 1e-5);
}

static nb_node *bn_train2(nb_graph *g, gc_ctx *c)
{
    return bn(g, c, 2, gc_dim(c, 2, 5), true, true);
}

static nb_node *bn_train4_plain(nb_graph *g, gc_ctx *c)
{
    return bn(g, c, 4, gc_dim(c, 2, 3), false, true);
}

static nb_node *bn_eval4(nb_graph *g, gc_ctx *c)
{
    return bn(g, c, 4, gc_dim(c, 1, 3), true, false);
}

static nb_node *bn_eval2_b1(nb_graph *g, gc_ctx *c)
{
    return bn(g, c, 2, 1, true, false);
}

static nb_node *ln(nb_graph *g, gc_ctx *c, bool affine)
{
    int rank = (int)gc_dim(c, 1, 3);
    int axes = (int)gc_dim(c, 1, rank);
    int64_t shape[3];
    for (int i = 0; i < rank; i++)
        shape[i] = gc_dim(c, i == rank - 1 ? 2 : 1, 4);
    nb_node *x = gc_input(g, c, rank, shape, -2, 2);
    nb_node *w = affine ? gc_param(g, c, axes, shape + rank - axes, 0.5, 2)
                        : NULL;
    nb_node *b = affine ? gc_param(g, c, axes, shape + rank - axes, -1, 1)
                        : NULL;
    return nb_layer_norm(g, x, axes, w, b, 1e-5);
}

static nb_node *ln_affine(nb_graph *g, gc_ctx *c) { return ln(g, c, true); }
static nb_node *ln_plain(nb_graph *g, gc_ctx *c) { return ln(g, c, false); }

const gc_case gc_cases_norm[] = {
    {"max_pool2d", "random kernel, stride, padding, dilation", max_pool},
    {"max_pool2d", "batch 1", max_pool_b1},
    {"max_pool2d", "2x2/2 after a product with a parameter", max_pool_scaled},
    {"avg_pool2d", "count_include_pad", avg_pool_incl},
    {"avg_pool2d", "padding excluded", avg_pool_excl},
    {"avg_pool2d", "batch 1", avg_pool_b1},
    {"global_avg_pool2d", "[N,C,H,W] -> [N,C]", global_pool},
    {"batch_norm", "training, [N,C,H,W], affine", bn_train4},
    {"batch_norm", "training, batch 1, [1,C,H,W]", bn_train4_b1},
    {"batch_norm", "training, [N,F], affine", bn_train2},
    {"batch_norm", "training, [N,C,H,W], no affine", bn_train4_plain},
    {"batch_norm", "inference, [N,C,H,W], affine", bn_eval4},
    {"batch_norm", "inference, batch 1, [1,F]", bn_eval2_b1},
    {"layer_norm", "random trailing axes, affine", ln_affine},
    {"layer_norm", "random trailing axes, no affine", ln_plain},
    {NULL, NULL, NULL},
};
