/* Gradient-check cases: softmax.c (softmax, log_softmax along the last
 * axis), on [B,K] rows and on a rank-3 [B,T,K] with a batch dimension, and
 * on rows with a wide spread of values, where the max shift matters. */
#include "gradcheck_cases.h"

static nb_node *rows2(nb_graph *g, gc_ctx *c, double lo, double hi)
{
    int64_t B = gc_dim(c, 1, 4), K = gc_dim(c, 1, 6);
    return gc_input(g, c, 2, (int64_t[]){B, K}, lo, hi);
}

static nb_node *rows3(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), T = gc_dim(c, 1, 3), K = gc_dim(c, 2, 5);
    return gc_param(g, c, 3, (int64_t[]){B, T, K}, -3, 3);
}

static nb_node *softmax_2d(nb_graph *g, gc_ctx *c)
{
    return nb_softmax(g, rows2(g, c, -3, 3));
}

static nb_node *softmax_3d(nb_graph *g, gc_ctx *c)
{
    return nb_softmax(g, rows3(g, c));
}

static nb_node *softmax_wide(nb_graph *g, gc_ctx *c)
{
    return nb_softmax(g, rows2(g, c, -30, 30));
}

static nb_node *log_softmax_2d(nb_graph *g, gc_ctx *c)
{
    return nb_log_softmax(g, rows2(g, c, -3, 3));
}

static nb_node *log_softmax_3d(nb_graph *g, gc_ctx *c)
{
    return nb_log_softmax(g, rows3(g, c));
}

static nb_node *log_softmax_wide(nb_graph *g, gc_ctx *c)
{
    return nb_log_softmax(g, rows2(g, c, -30, 30));
}

/* Two softmaxes of one input summed: fan-out into one gradient. */
static nb_node *softmax_fanout(nb_graph *g, gc_ctx *c)
{
    nb_node *x = rows2(g, c, -2, 2);
    return nb_add(g, nb_softmax(g, x), nb_log_softmax(g, x));
}

const gc_case gc_cases_softmax[] = {
    {"softmax", "[B,K] rows", softmax_2d},
    {"softmax", "[B,T,K] rows", softmax_3d},
    {"softmax", "[B,K] rows spread over [-30,30)", softmax_wide},
    {"softmax", "softmax + log_softmax of one input", softmax_fanout},
    {"log_softmax", "[B,K] rows", log_softmax_2d},
    {"log_softmax", "[B,T,K] rows", log_softmax_3d},
    {"log_softmax", "[B,K] rows spread over [-30,30)", log_softmax_wide},
    {NULL, NULL, NULL},
};
