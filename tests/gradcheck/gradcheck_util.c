/* Graph-building helpers for the gradient-check cases. */
#include <stdbool.h>
#include <stdlib.h>

#include "gradcheck_cases.h"

static uint64_t next(gc_ctx *c)
{
    /* splitmix64: the cases' private stream */
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double gc_uniform(gc_ctx *c, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(next(c) >> 11) * 0x1.0p-53);
}

int64_t gc_dim(gc_ctx *c, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(next(c) % (uint64_t)(hi - lo + 1));
}

static nb_node *filled(nb_node *n, gc_ctx *c, double lo, double hi,
                       double kink, double margin)
{
    if (!n)
        return NULL;
    nb_tensor *v = nb_node_value(n);
    int64_t size = nb_tensor_size(v);
    double *data = malloc((size_t)(size ? size : 1) * sizeof *data);
    for (int64_t i = 0; i < size; i++) {
        double x = gc_uniform(c, lo, hi);
        if (margin > 0 && x > kink - margin && x < kink + margin)
            x = x < kink ? kink - margin - (kink - x) : kink + margin + (x - kink);
        data[i] = x;
    }
    if (nb_node_get_kind(n) == NB_NODE_INPUT)
        nb_feed(nb_node_graph(n), n, nb_tensor_rank(v), nb_tensor_shape(v),
                data);
    else
        nb_tensor_copy_from_f64(v, data, size);
    free(data);
    return n;
}

nb_node *gc_input_away(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                       double lo, double hi, double kink, double margin)
{
    nb_node *n = nb_input(g, NULL, NB_F64, rank, shape);
    if (n)
        nb_input_set_requires_grad(g, n, true);
    return filled(n, c, lo, hi, kink, margin);
}

nb_node *gc_input(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                  double lo, double hi)
{
    return gc_input_away(g, c, rank, shape, lo, hi, 0, 0);
}

nb_node *gc_param(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                  double lo, double hi)
{
    return filled(nb_param(g, NULL, NB_F64, rank, shape), c, lo, hi, 0, 0);
}

nb_node *gc_const_input(nb_graph *g, gc_ctx *c, int rank, const int64_t *shape,
                        double lo, double hi)
{
    return filled(nb_input(g, NULL, NB_F64, rank, shape), c, lo, hi, 0, 0);
}

nb_node *gc_labels(nb_graph *g, gc_ctx *c, int64_t rows, int64_t k)
{
    nb_node *n = nb_input(g, "labels", NB_F64, 1, (int64_t[]){rows});
    double *data = malloc((size_t)rows * sizeof *data);
    for (int64_t i = 0; i < rows; i++)
        data[i] = (double)gc_dim(c, 0, k - 1);
    if (n)
        nb_feed(g, n, 1, (int64_t[]){rows}, data);
    free(data);
    return n;
}

nb_node *gc_one_hot(nb_graph *g, gc_ctx *c, int64_t rows, int64_t k)
{
    nb_node *n = nb_input(g, "one_hot", NB_F64, 2, (int64_t[]){rows, k});
    double *data = calloc((size_t)(rows * k), sizeof *data);
    for (int64_t i = 0; i < rows; i++)
        data[i * k + gc_dim(c, 0, k - 1)] = 1.0;
    if (n)
        nb_feed(g, n, 2, (int64_t[]){rows, k}, data);
    free(data);
    return n;
}

nb_node *gc_prob_rows(nb_graph *g, gc_ctx *c, int64_t rows, int64_t k,
                      bool requires_grad)
{
    nb_node *n = nb_input(g, "probs", NB_F64, 2, (int64_t[]){rows, k});
    double *data = malloc((size_t)(rows * k) * sizeof *data);
    for (int64_t i = 0; i < rows; i++) {
        double total = 0;
        for (int64_t j = 0; j < k; j++)
            total += data[i * k + j] = gc_uniform(c, 0.1, 1.0);
        for (int64_t j = 0; j < k; j++)
            data[i * k + j] /= total;
    }
    if (n) {
        nb_feed(g, n, 2, (int64_t[]){rows, k}, data);
        nb_input_set_requires_grad(g, n, requires_grad);
    }
    free(data);
    return n;
}

int gc_batch_shape(gc_ctx *c, int form, int64_t *shape)
{
    shape[0] = gc_dim(c, 1, 3);
    if (form == 0) {
        shape[1] = gc_dim(c, 1, 6);
        return 2;
    }
    shape[1] = gc_dim(c, 1, 3);
    shape[2] = gc_dim(c, 1, 5);
    return 3;
}
