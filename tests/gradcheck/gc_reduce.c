/* Gradient-check cases: reduce.c (sum, mean, max, min) and logsumexp.c.
 * Each op reduces a random [B,M,N] (batch first) over all elements, and
 * over axes 0, 1 and -1 (the last), each with and without keepdims.
 * max/min draw from a continuous range, so ties (which would straddle the
 * kink within the step h) do not occur; their gradient must land on the
 * one winner. */
#include "gradcheck_cases.h"

static nb_node *cube(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 1, 4), N = gc_dim(c, 1, 5);
    return gc_input(g, c, 3, (int64_t[]){B, M, N}, -3, 3);
}

/* name_all, name_a0, name_a0k, name_a1, name_a1k, name_am1, name_am1k */
#define CASES(name)                                                           \
    static nb_node *name##_all(nb_graph *g, gc_ctx *c)                        \
    {                                                                         \
        return nb_##name(g, cube(g, c));                                      \
    }                                                                         \
    static nb_node *name##_a0(nb_graph *g, gc_ctx *c)                         \
    {                                                                         \
        return nb_##name##_axis(g, cube(g, c), 0, false);                     \
    }                                                                         \
    static nb_node *name##_a0k(nb_graph *g, gc_ctx *c)                        \
    {                                                                         \
        return nb_##name##_axis(g, cube(g, c), 0, true);                      \
    }                                                                         \
    static nb_node *name##_a1(nb_graph *g, gc_ctx *c)                         \
    {                                                                         \
        return nb_##name##_axis(g, cube(g, c), 1, false);                     \
    }                                                                         \
    static nb_node *name##_a1k(nb_graph *g, gc_ctx *c)                        \
    {                                                                         \
        return nb_##name##_axis(g, cube(g, c), 1, true);                      \
    }                                                                         \
    static nb_node *name##_am1(nb_graph *g, gc_ctx *c)                        \
    {                                                                         \
        return nb_##name##_axis(g, cube(g, c), -1, false);                    \
    }                                                                         \
    static nb_node *name##_am1k(nb_graph *g, gc_ctx *c)                       \
    {                                                                         \
        return nb_##name##_axis(g, cube(g, c), -1, true);                     \
    }

CASES(sum)
CASES(mean)
CASES(max)
CASES(min)
CASES(logsumexp)

/* The reduced value used again: logsumexp of a wide-spread row (the shift
 * by the maximum matters) feeding a product with its own input. */
static nb_node *logsumexp_wide(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 4), K = gc_dim(c, 2, 6);
    nb_node *x = gc_input(g, c, 2, (int64_t[]){B, K}, -40, 40);
    return nb_mul(g, nb_logsumexp_axis(g, x, 1, true), x);
}

/* max of a matrix product: the routed gradient flows on through matmul. */
static nb_node *max_after_matmul(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 4), K = gc_dim(c, 1, 4), N = gc_dim(c, 2, 5);
    nb_node *x = gc_input(g, c, 2, (int64_t[]){B, K}, -2, 2);
    nb_node *w = gc_param(g, c, 2, (int64_t[]){K, N}, -2, 2);
    return nb_max_axis(g, nb_matmul(g, x, w), -1, false);
}

#define ROWS(name)                                                            \
    {#name, "all elements of [B,M,N]", name##_all},                           \
    {#name, "axis 0 of [B,M,N]", name##_a0},                                  \
    {#name, "axis 0 of [B,M,N], keepdims", name##_a0k},                       \
    {#name, "axis 1 of [B,M,N]", name##_a1},                                  \
    {#name, "axis 1 of [B,M,N], keepdims", name##_a1k},                       \
    {#name, "axis -1 of [B,M,N]", name##_am1},                                \
    {#name, "axis -1 of [B,M,N], keepdims", name##_am1k}

const gc_case gc_cases_reduce[] = {
    ROWS(sum), ROWS(mean), ROWS(max), ROWS(min), ROWS(logsumexp),
    {"logsumexp", "rows over [-40,40), times x", logsumexp_wide},
    {"max", "max over the last axis of x W", max_after_matmul},
    {NULL, NULL, NULL},
};
