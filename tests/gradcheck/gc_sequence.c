/* Gradient-check cases: the ops of sequence models — embedding.c (ids of
 * rank 1 and 2, one id repeated so that its row sums two messages) and
 * stop_gradient.c (see its case). The family comes last in the runner's
 * list so the draws of the older families stay what they were. */
#include <stdlib.h>

#include "gradcheck_cases.h"

/* ---- embedding: the gradient w.r.t. the table ---- */

/* Ids of `shape` in [0, v), the last a repeat of the first so that one
 * row always receives the sum of two messages. */
static nb_node *ids_input(nb_graph *g, gc_ctx *c, int rank,
                          const int64_t *shape, int64_t v)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    nb_node *ids = nb_input(g, "ids", NB_F64, rank, shape);
    double *data = malloc((size_t)n * sizeof *data);
    for (int64_t i = 0; i < n; i++)
        data[i] = (double)gc_dim(c, 0, v - 1);
    data[n - 1] = data[0];
    if (ids)
        nb_feed(g, ids, rank, shape, data);
    free(data);
    return ids;
}

static nb_node *embedding_2d(nb_graph *g, gc_ctx *c)
{
    int64_t V = gc_dim(c, 2, 5), E = gc_dim(c, 1, 4);
    int64_t B = gc_dim(c, 1, 3), T = gc_dim(c, 2, 4);
    nb_node *w = gc_param(g, c, 2, (int64_t[]){V, E}, -2, 2);
    return nb_embedding(g, w, ids_input(g, c, 2, (int64_t[]){B, T}, V));
}

static nb_node *embedding_1d(nb_graph *g, gc_ctx *c)
{
    int64_t V = gc_dim(c, 1, 6), E = gc_dim(c, 1, 5), N = gc_dim(c, 2, 7);
    nb_node *w = gc_param(g, c, 2, (int64_t[]){V, E}, -2, 2);
    /* Squared, so the projection is not linear in the rows. */
    return nb_square(g, nb_embedding(g, w, ids_input(g, c, 1, &N, V)));
}

/* ---- stop_gradient ----
 * Finite differences see a stopped value as a function of x, so the case
 * stops a function that is flat where it is differentiable (sign, x kept
 * away from 0): both sides then agree that nothing flows through the
 * stop, and w's gradient checks the value passed on. That no message
 * passes through a slope is checked in test_ops_tensor. */
static nb_node *stop_gradient_flat(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), N = gc_dim(c, 1, 5);
    nb_node *x = gc_input_away(g, c, 2, (int64_t[]){B, N}, -2, 2, 0, 0.3);
    nb_node *w = gc_param(g, c, 2, (int64_t[]){B, N}, -2, 2);
    nb_node *stopped = nb_stop_gradient(g, nb_sign(g, x));
    return nb_add(g, nb_mul(g, w, stopped), nb_square(g, x));
}

const gc_case gc_cases_sequence[] = {
    {"embedding", "[V,E] by ids [B,T], one id repeated", embedding_2d},
    {"embedding", "[V,E] by ids [N], squared", embedding_1d},
    {"stop_gradient", "w * stop(sign(x)) + x^2", stop_gradient_flat},
    {NULL, NULL, NULL},
};
