/* Gradient-check cases of the activations with their own signatures:
 * prelu.c and maxout.c, on batches of rows [B,N] and of channels [B,C,N]
 * (the elementwise activations' cases come from the op list, in
 * gc_elementwise.c). prelu draws x at least 0.05 away from its kink at 0
 * (the difference step is 1e-6); maxout draws the units of each group at
 * least 0.05 apart so the winner cannot change within a step. */
#include <math.h>
#include <stdlib.h>

#include "gradcheck_cases.h"

#define KINK_MARGIN 0.05

/* ---- prelu: x away from 0, alpha a parameter of several shapes ---- */

static nb_node *prelu_scalar(nb_graph *g, gc_ctx *c)
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, 0, shape);
    nb_node *x = gc_input_away(g, c, rank, shape, -2, 2, 0, KINK_MARGIN);
    return nb_prelu(g, x, gc_param(g, c, 0, NULL, 0.05, 0.5));
}

/* One slope per channel of the last axis, the usual layout. */
static nb_node *prelu_last_axis(nb_graph *g, gc_ctx *c)
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, 1, shape);
    nb_node *x = gc_input_away(g, c, rank, shape, -2, 2, 0, KINK_MARGIN);
    return nb_prelu(g, x, gc_param(g, c, 1, &shape[rank - 1], -0.5, 0.5));
}

/* [B,C,N] with one slope per channel C: alpha [C,1]. */
static nb_node *prelu_middle_axis(nb_graph *g, gc_ctx *c)
{
    int64_t shape[3];
    gc_batch_shape(c, 1, shape);
    nb_node *x = gc_input_away(g, c, 3, shape, -2, 2, 0, KINK_MARGIN);
    return nb_prelu(g, x,
                    gc_param(g, c, 2, (int64_t[]){shape[1], 1}, 0.05, 0.5));
}

/* alpha of x's own shape: no broadcasting, one slope per element. */
static nb_node *prelu_full(nb_graph *g, gc_ctx *c)
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, 0, shape);
    nb_node *x = gc_input_away(g, c, rank, shape, -2, 2, 0, KINK_MARGIN);
    return nb_prelu(g, x, gc_param(g, c, rank, shape, 0.05, 0.5));
}

/* alpha and x the same node, y = x > 0 ? x : x^2: both messages land in
 * one gradient buffer. */
static nb_node *prelu_self(nb_graph *g, gc_ctx *c)
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, 0, shape);
    nb_node *x = gc_input_away(g, c, rank, shape, -2, 2, 0, KINK_MARGIN);
    return nb_prelu(g, x, x);
}

/* ---- maxout ---- */

/* An input [..., m*k] whose groups of k consecutive units hold values at
 * least KINK_MARGIN apart. */
static nb_node *grouped_input(nb_graph *g, gc_ctx *c, int rank,
                              const int64_t *shape, int64_t k)
{
    nb_node *x = nb_input(g, NULL, NB_F64, rank, shape);
    if (!x)
        return NULL;
    nb_input_set_requires_grad(g, x, true);
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        size *= shape[i];
    double *v = malloc((size_t)size * sizeof *v);
    if (!v)
        return NULL;
    for (int64_t start = 0; start < size; start += k) {
        for (int64_t p = 0; p < k; p++) {
            bool clear;
            do {
                v[start + p] = gc_uniform(c, -3, 3);
                clear = true;
                for (int64_t q = 0; q < p; q++)
                    if (fabs(v[start + p] - v[start + q]) < KINK_MARGIN)
                        clear = false;
            } while (!clear);
        }
    }
    nb_feed(g, x, rank, shape, v);
    free(v);
    return x;
}

static nb_node *maxout_case(nb_graph *g, gc_ctx *c, int form)
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, form, shape);
    int64_t k = gc_dim(c, 1, 4);
    shape[rank - 1] = gc_dim(c, 1, 3) * k;
    return nb_maxout(g, grouped_input(g, c, rank, shape, k), (int)k);
}

static nb_node *maxout_rows(nb_graph *g, gc_ctx *c)
{
    return maxout_case(g, c, 0);
}

static nb_node *maxout_channels(nb_graph *g, gc_ctx *c)
{
    return maxout_case(g, c, 1);
}

#define ROWS(name, domain)                                                    \
    {#name, "[B,N], " domain, name##_rows},                                   \
    {#name, "[B,C,N], " domain, name##_channels}

const gc_case gc_cases_activation[] = {
    {"prelu", "[B,N], scalar alpha", prelu_scalar},
    {"prelu", "[B,C,N], alpha [N] per last-axis channel", prelu_last_axis},
    {"prelu", "[B,C,N], alpha [C,1] per middle-axis channel",
     prelu_middle_axis},
    {"prelu", "[B,N], alpha [B,N] per element", prelu_full},
    {"prelu", "[B,N], alpha = x (one node, two inputs)", prelu_self},
    ROWS(maxout, "k in 1..4, units of a group >= 0.05 apart"),
    {NULL, NULL, NULL},
};
