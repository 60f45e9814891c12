/* Gradient-check cases: the convolution family — conv.c (conv2d with a
 * random geometry: stride, padding per side, dilation, groups, batch 1 or
 * more; a depthwise conv2d; a 1x1 conv2d, which skips the patch matrix;
 * conv1d), conv_act.c (conv2d_bias_act and conv2d_bias_act_maxpool,
 * the bias and relu each on or off, a random pooling window) and
 * conv_transpose2d (random geometry with output padding) — and pad.c
 * (rank 1 to 4, random amounts). */
#include <math.h>

#include "gradcheck_cases.h"

/* A valid random geometry on one axis: kernel k, its dilation, stride, and
 * padding before and after, and an input extent the kernel fits. */
typedef struct axis_geom {
    int64_t k, d, s, before, after, in;
} axis_geom;

static axis_geom draw_axis(gc_ctx *c)
{
    axis_geom a;
    a.k = gc_dim(c, 1, 3);
    a.d = gc_dim(c, 1, 2);
    a.s = gc_dim(c, 1, 2);
    a.before = gc_dim(c, 0, 2);
    a.after = gc_dim(c, 0, 2);
    int64_t span = a.d * (a.k - 1) + 1;
    int64_t least = span - a.before - a.after;
    a.in = gc_dim(c, least > 1 ? least : 1, span + 3);
    return a;
}

/* Batch 1 on the first draw of each shape family half the time. */
static int64_t draw_batch(gc_ctx *c)
{
    return gc_dim(c, 0, 1) ? 1 : gc_dim(c, 1, 3);
}

static nb_conv_params params_of(const axis_geom *r, const axis_geom *col,
                                int64_t groups)
{
    return (nb_conv_params){.stride = {r->s, col->s},
                            .padding = {r->before, r->after, col->before,
                                        col->after},
                            .dilation = {r->d, col->d},
                            .groups = groups};
}

/* The operands of a conv2d of random geometry; returns O. */
static int64_t draw_conv2d(nb_graph *g, gc_ctx *c, nb_node **x, nb_node **w,
                           nb_conv_params *p)
{
    axis_geom r = draw_axis(c), col = draw_axis(c);
    int64_t G = gc_dim(c, 1, 3), Cg = gc_dim(c, 1, 2), Og = gc_dim(c, 1, 2);
    int64_t N = draw_batch(c);
    *x = gc_input(g, c, 4, (int64_t[]){N, G * Cg, r.in, col.in}, -1, 1);
    *w = gc_param(g, c, 4, (int64_t[]){G * Og, Cg, r.k, col.k}, -1, 1);
    *p = params_of(&r, &col, G);
    return G * Og;
}

static nb_node *conv2d_random(nb_graph *g, gc_ctx *c)
{
    nb_node *x, *w;
    nb_conv_params p;
    draw_conv2d(g, c, &x, &w, &p);
    return nb_conv2d(g, x, w, &p);
}

static nb_node *conv2d_depthwise(nb_graph *g, gc_ctx *c)
{
    int64_t C = gc_dim(c, 2, 4), N = draw_batch(c);
    nb_node *x = gc_input(g, c, 4, (int64_t[]){N, C, gc_dim(c, 3, 5),
                                               gc_dim(c, 3, 5)}, -1, 1);
    nb_node *w = gc_param(g, c, 4, (int64_t[]){C, 1, 3, 3}, -1, 1);
    nb_conv_params p = nb_conv_params_of(1, 1, 1, C);
    return nb_conv2d(g, x, w, &p);
}

static nb_node *conv2d_pointwise(nb_graph *g, gc_ctx *c)
{
    int64_t C = gc_dim(c, 1, 3), O = gc_dim(c, 1, 3), N = draw_batch(c);
    nb_node *x = gc_input(g, c, 4, (int64_t[]){N, C, gc_dim(c, 1, 4),
                                               gc_dim(c, 1, 4)}, -1, 1);
    nb_node *w = gc_param(g, c, 4, (int64_t[]){O, C, 1, 1}, -1, 1);
    return nb_conv2d(g, x, w, NULL);
}

/* conv2d_bias_act on a random geometry, with or without a bias and a
 * relu. A pre-activation within 1e-3 of relu's kink would let a central
 * difference straddle it; the draw is looked at through the same op
 * without the relu, and such a draw (rare) is checked without it. */
static nb_node *conv2d_bias_act_with(nb_graph *g, gc_ctx *c, bool pooled)
{
    nb_node *x, *w;
    nb_conv_params p;
    int64_t O = draw_conv2d(g, c, &x, &w, &p);
    nb_node *b = gc_dim(c, 0, 2) ? gc_param(g, c, 1, (int64_t[]){O}, -0.5, 0.5)
                                 : NULL;
    nb_conv_act act = gc_dim(c, 0, 2) ? NB_CONV_ACT_RELU : NB_CONV_ACT_NONE;
    nb_node *z = nb_conv2d_bias_act(g, x, w, b, &p, NB_CONV_ACT_NONE);
    if (!z || nb_forward(g, z) != NB_OK)
        return NULL;
    const nb_tensor *zv = nb_node_value(z);
    for (int64_t i = 0; i < nb_tensor_size(zv); i++)
        if (fabs(nb_tensor_get(zv, i)) < 1e-3)
            act = NB_CONV_ACT_NONE;
    if (!pooled)
        return nb_conv2d_bias_act(g, x, w, b, &p, act);
    /* A window that fits the convolution's output (continuous values: no
     * two pre-activations of a window tie within the step). */
    nb_pool2d_params pool = {0};
    for (int a = 0; a < 2; a++) {
        int64_t ext = nb_tensor_shape(zv)[2 + a];
        pool.kernel[a] = gc_dim(c, 1, ext < 3 ? ext : 3);
        pool.stride[a] = gc_dim(c, 1, 2);
        pool.padding[a] = gc_dim(c, 0, pool.kernel[a] / 2);
    }
    return nb_conv2d_bias_act_maxpool(g, x, w, b, &p, act, &pool);
}

static nb_node *conv2d_bias_act_random(nb_graph *g, gc_ctx *c)
{
    return conv2d_bias_act_with(g, c, false);
}

static nb_node *conv2d_bias_act_maxpool_random(nb_graph *g, gc_ctx *c)
{
    return conv2d_bias_act_with(g, c, true);
}

static nb_node *conv1d_random(nb_graph *g, gc_ctx *c)
{
    axis_geom a = draw_axis(c);
    int64_t G = gc_dim(c, 1, 2), Cg = gc_dim(c, 1, 2), Og = gc_dim(c, 1, 2);
    int64_t N = draw_batch(c);
    nb_node *x = gc_input(g, c, 3, (int64_t[]){N, G * Cg, a.in}, -1, 1);
    nb_node *w = gc_param(g, c, 3, (int64_t[]){G * Og, Cg, a.k}, -1, 1);
    return nb_conv1d(g, x, w, a.s, a.before, a.after, a.d, G);
}

static nb_node *conv_transpose2d_random(nb_graph *g, gc_ctx *c)
{
    int64_t G = gc_dim(c, 1, 2), Cg = gc_dim(c, 1, 2), Og = gc_dim(c, 1, 2);
    int64_t N = draw_batch(c);
    nb_conv_params p = nb_conv_params_of(1, 0, 1, G);
    int64_t k[2], in[2];
    for (int a = 0; a < 2; a++) {
        k[a] = gc_dim(c, 1, 3);
        p.stride[a] = gc_dim(c, 1, 3);
        p.dilation[a] = gc_dim(c, 1, 2);
        p.padding[2 * a] = gc_dim(c, 0, 1);
        p.padding[2 * a + 1] = gc_dim(c, 0, 1);
        int64_t most = p.stride[a] > p.dilation[a] ? p.stride[a]
                                                   : p.dilation[a];
        p.output_padding[a] = gc_dim(c, 0, most - 1);
        /* The output extent, (in - 1) s + d (k - 1) + 1 + output padding
         * - padding, must be at least 1: a 1-tap kernel at stride 1 over
         * 2 rows with padding 1 and 1 leaves none, and is refused. */
        int64_t least = 2;
        while ((least - 1) * p.stride[a] + p.dilation[a] * (k[a] - 1) +
                   p.output_padding[a] <
               p.padding[2 * a] + p.padding[2 * a + 1])
            least++;
        in[a] = gc_dim(c, least, least + 2);
    }
    nb_node *x = gc_input(g, c, 4, (int64_t[]){N, G * Cg, in[0], in[1]}, -1, 1);
    nb_node *w = gc_param(g, c, 4, (int64_t[]){G * Cg, Og, k[0], k[1]}, -1, 1);
    return nb_conv_transpose2d(g, x, w, &p);
}

static nb_node *pad_random(nb_graph *g, gc_ctx *c)
{
    int rank = (int)gc_dim(c, 1, 4);
    int64_t shape[4], before[4], after[4];
    for (int k = 0; k < rank; k++) {
        shape[k] = gc_dim(c, 1, 3);
        before[k] = gc_dim(c, 0, 2);
        after[k] = gc_dim(c, 0, 2);
    }
    return nb_pad(g, gc_input(g, c, rank, shape, -2, 2), rank, before, after);
}

const gc_case gc_cases_conv[] = {
    {"conv2d", "random stride, padding, dilation, groups", conv2d_random},
    {"conv2d", "depthwise 3x3 pad 1", conv2d_depthwise},
    {"conv2d", "1x1 (no patch matrix)", conv2d_pointwise},
    {"conv2d_bias_act", "random geometry, bias and relu on or off",
     conv2d_bias_act_random},
    {"conv2d_bias_act_maxpool", "random geometry and window, bias and relu "
     "on or off", conv2d_bias_act_maxpool_random},
    {"conv1d", "random stride, padding, dilation, groups", conv1d_random},
    {"conv_transpose2d", "random geometry with output padding",
     conv_transpose2d_random},
    {"pad", "rank 1-4, random amounts", pad_random},
    {NULL, NULL, NULL},
};
