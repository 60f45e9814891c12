/* Gradient-check cases: matmul.c in its three forms — [M,K] x [K,N],
 * batched [B,M,K] x [B,K,N], and [B,M,K] x [K,N] with one weight shared by
 * the batch (its gradient sums over the batch) — plus x @ x, where both
 * messages land in one gradient, and a product large enough to span
 * several of the GEMM's register tiles. */
#include "gradcheck_cases.h"

static nb_node *plain(nb_graph *g, gc_ctx *c)
{
    int64_t M = gc_dim(c, 1, 5), K = gc_dim(c, 1, 6), N = gc_dim(c, 1, 5);
    nb_node *a = gc_input(g, c, 2, (int64_t[]){M, K}, -2, 2);
    nb_node *b = gc_param(g, c, 2, (int64_t[]){K, N}, -2, 2);
    return nb_matmul(g, a, b);
}

static nb_node *batched(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 2, 3), M = gc_dim(c, 1, 4), K = gc_dim(c, 1, 4),
            N = gc_dim(c, 1, 4);
    nb_node *a = gc_param(g, c, 3, (int64_t[]){B, M, K}, -2, 2);
    nb_node *b = gc_input(g, c, 3, (int64_t[]){B, K, N}, -2, 2);
    return nb_matmul(g, a, b);
}

static nb_node *shared_weight(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 2, 3), M = gc_dim(c, 1, 4), K = gc_dim(c, 1, 5),
            N = gc_dim(c, 1, 4);
    nb_node *a = gc_input(g, c, 3, (int64_t[]){B, M, K}, -2, 2);
    nb_node *w = gc_param(g, c, 2, (int64_t[]){K, N}, -2, 2);
    return nb_matmul(g, a, w);
}

static nb_node *square_self(nb_graph *g, gc_ctx *c)
{
    int64_t N = gc_dim(c, 1, 5);
    nb_node *x = gc_param(g, c, 2, (int64_t[]){N, N}, -1, 1);
    return nb_matmul(g, x, x);
}

static nb_node *larger(nb_graph *g, gc_ctx *c)
{
    int64_t M = gc_dim(c, 9, 17), K = gc_dim(c, 5, 12), N = gc_dim(c, 9, 17);
    nb_node *a = gc_input(g, c, 2, (int64_t[]){M, K}, -1, 1);
    nb_node *b = gc_param(g, c, 2, (int64_t[]){K, N}, -1, 1);
    return nb_matmul(g, a, b);
}

const gc_case gc_cases_matmul[] = {
    {"matmul", "[M,K] x [K,N]", plain},
    {"matmul", "batched [B,M,K] x [B,K,N]", batched},
    {"matmul", "shared weight [B,M,K] x [K,N]", shared_weight},
    {"matmul", "x @ x (both messages into one gradient)", square_self},
    {"matmul", "[9..17,5..12] x [5..12,9..17] (several GEMM tiles)", larger},
    {NULL, NULL, NULL},
};
