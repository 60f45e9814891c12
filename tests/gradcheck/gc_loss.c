/* Gradient-check cases: losses (loss_squared.c, loss_bce.c, loss_ce.c),
 * penalties (penalty.c) and dropout (dropout.c).
 *
 * Targets get a gradient wherever the loss is differentiable in them (soft
 * targets); hard 0/1 and one-hot targets and class labels are fed without
 * one. Row-wise losses are checked on [B,K] and on [B,T,K], so the mean
 * over rows is over every axis but the last. */
#include <stdbool.h>
#include <stdlib.h>

#include "gradcheck_cases.h"

/* An f64 input of the given shape fed with `data`. */
static nb_node *fed(nb_graph *g, int rank, const int64_t *shape,
                    const double *data, bool requires_grad)
{
    nb_node *n = nb_input(g, NULL, NB_F64, rank, shape);
    if (n) {
        nb_feed(g, n, rank, shape, data);
        nb_input_set_requires_grad(g, n, requires_grad);
    }
    return n;
}

static int64_t element_count(int rank, const int64_t *shape)
{
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        size *= shape[i];
    return size;
}

/* Rows (last axis) of positive values summing to 1. */
static nb_node *prob_rows(nb_graph *g, gc_ctx *c, int rank,
                          const int64_t *shape, bool requires_grad)
{
    int64_t n = element_count(rank, shape), k = shape[rank - 1];
    double *data = malloc((size_t)n * sizeof *data);
    for (int64_t r = 0; r < n / k; r++) {
        double total = 0;
        for (int64_t j = 0; j < k; j++)
            total += data[r * k + j] = gc_uniform(c, 0.1, 1.0);
        for (int64_t j = 0; j < k; j++)
            data[r * k + j] /= total;
    }
    nb_node *node = fed(g, rank, shape, data, requires_grad);
    free(data);
    return node;
}

/* One-hot rows (last axis), no gradient. */
static nb_node *one_hot_rows(nb_graph *g, gc_ctx *c, int rank,
                             const int64_t *shape)
{
    int64_t n = element_count(rank, shape), k = shape[rank - 1];
    double *data = calloc((size_t)n, sizeof *data);
    for (int64_t r = 0; r < n / k; r++)
        data[r * k + gc_dim(c, 0, k - 1)] = 1.0;
    nb_node *node = fed(g, rank, shape, data, false);
    free(data);
    return node;
}

/* Class labels in [0, k) of the given shape, no gradient. */
static nb_node *labels_shaped(nb_graph *g, gc_ctx *c, int rank,
                              const int64_t *shape, int64_t k)
{
    int64_t n = element_count(rank, shape);
    double *data = malloc((size_t)n * sizeof *data);
    for (int64_t i = 0; i < n; i++)
        data[i] = (double)gc_dim(c, 0, k - 1);
    nb_node *node = fed(g, rank, shape, data, false);
    free(data);
    return node;
}

/* Hard 0/1 targets, no gradient. */
static nb_node *binary_targets(nb_graph *g, gc_ctx *c, int rank,
                               const int64_t *shape)
{
    int64_t n = element_count(rank, shape);
    double *data = malloc((size_t)n * sizeof *data);
    for (int64_t i = 0; i < n; i++)
        data[i] = (double)gc_dim(c, 0, 1);
    nb_node *node = fed(g, rank, shape, data, false);
    free(data);
    return node;
}

/* ---- squared error ---- */

static nb_node *sse_both(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 1, 5)};
    return nb_sse_loss(g, gc_input(g, c, 3, s, -2, 2), gc_input(g, c, 3, s, -2, 2));
}

static nb_node *sse_scalar(nb_graph *g, gc_ctx *c)
{
    return nb_sse_loss(g, gc_param(g, c, 0, NULL, -2, 2),
                       gc_input(g, c, 0, NULL, -2, 2));
}

static nb_node *mse_both(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 1, 6)};
    return nb_mse_loss(g, gc_input(g, c, 2, s, -2, 2), gc_input(g, c, 2, s, -2, 2));
}

static nb_node *mse_fixed_target(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 1, 5)};
    return nb_mse_loss(g, gc_param(g, c, 3, s, -2, 2),
                       gc_const_input(g, c, 3, s, -2, 2));
}

/* ---- binary cross-entropy ---- */

static nb_node *bce_soft(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 1, 6)};
    return nb_bce_loss(g, gc_input(g, c, 2, s, 0.05, 0.95),
                       gc_input(g, c, 2, s, 0.05, 0.95));
}

static nb_node *bce_hard(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 1, 5)};
    return nb_bce_loss(g, gc_input(g, c, 3, s, 0.05, 0.95),
                       binary_targets(g, c, 3, s));
}

static nb_node *bce_logits_soft(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 1, 6)};
    return nb_bce_logits_loss(g, gc_input(g, c, 2, s, -4, 4),
                              gc_input(g, c, 2, s, 0, 1));
}

static nb_node *bce_logits_hard(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 1, 5)};
    return nb_bce_logits_loss(g, gc_input(g, c, 3, s, -8, 8),
                              binary_targets(g, c, 3, s));
}

/* ---- categorical cross-entropy ---- */

static nb_node *cce_one_hot(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 2, 6)};
    return nb_cce_loss(g, prob_rows(g, c, 2, s, true), one_hot_rows(g, c, 2, s));
}

static nb_node *cce_soft(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 3), gc_dim(c, 2, 5)};
    return nb_cce_loss(g, prob_rows(g, c, 3, s, true), prob_rows(g, c, 3, s, true));
}

static nb_node *softmax_ce_one_hot(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 2, 6)};
    return nb_softmax_ce_loss(g, gc_input(g, c, 2, s, -3, 3),
                              one_hot_rows(g, c, 2, s));
}

static nb_node *softmax_ce_soft(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 3), gc_dim(c, 2, 5)};
    return nb_softmax_ce_loss(g, gc_input(g, c, 3, s, -3, 3),
                              prob_rows(g, c, 3, s, true));
}

/* Rows of y that do not sum to 1: the q sum_k y_k term of dz matters. */
static nb_node *softmax_ce_unnormalised(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 2, 6)};
    return nb_softmax_ce_loss(g, gc_input(g, c, 2, s, -3, 3),
                              gc_input(g, c, 2, s, 0, 1));
}

static nb_node *softmax_ce_index_flat(nb_graph *g, gc_ctx *c)
{
    int64_t b = gc_dim(c, 1, 5), k = gc_dim(c, 2, 6);
    return nb_softmax_ce_index_loss(g, gc_input(g, c, 2, (int64_t[]){b, k}, -3, 3),
                                    gc_labels(g, c, b, k));
}

static nb_node *softmax_ce_index_batched(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 3), gc_dim(c, 2, 5)};
    return nb_softmax_ce_index_loss(g, gc_input(g, c, 3, s, -3, 3),
                                    labels_shaped(g, c, 2, s, s[2]));
}

static nb_node *nll_flat(nb_graph *g, gc_ctx *c)
{
    int64_t b = gc_dim(c, 1, 5), k = gc_dim(c, 2, 6);
    return nb_nll_loss(g, gc_input(g, c, 2, (int64_t[]){b, k}, -3, -0.1),
                       gc_labels(g, c, b, k));
}

static nb_node *nll_batched(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 3), gc_dim(c, 2, 5)};
    return nb_nll_loss(g, gc_input(g, c, 3, s, -3, -0.1),
                       labels_shaped(g, c, 2, s, s[2]));
}

/* ---- penalties ---- */

static nb_node *l1(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 1, 6)};
    return nb_l1_penalty(g, gc_input_away(g, c, 2, s, -2, 2, 0, 0.05));
}

static nb_node *l2(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 1, 5)};
    return nb_l2_penalty(g, gc_param(g, c, 3, s, -2, 2));
}

/* ---- dropout ---- */

static nb_node *dropout_training(nb_graph *g, gc_ctx *c)
{
    int64_t s[2] = {gc_dim(c, 1, 4), gc_dim(c, 2, 8)};
    return nb_dropout(g, gc_input(g, c, 2, s, -2, 2), gc_uniform(c, 0.1, 0.6));
}

/* Dropout inside a loss: the mask must be the same draw in every
 * evaluation or the differences are noise. */
static nb_node *dropout_training_loss(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 2, 6)};
    nb_node *y = nb_dropout(g, gc_param(g, c, 3, s, -2, 2), 0.5);
    return nb_sse_loss(g, y, gc_const_input(g, c, 3, s, -1, 1));
}

static nb_node *dropout_inference(nb_graph *g, gc_ctx *c)
{
    int64_t s[3] = {gc_dim(c, 1, 3), gc_dim(c, 1, 4), gc_dim(c, 1, 5)};
    nb_graph_set_training(g, false);
    return nb_dropout(g, gc_input(g, c, 3, s, -2, 2), 0.5);
}

const gc_case gc_cases_loss[] = {
    {"sse_loss", "[B,M,N], y and t with gradient", sse_both},
    {"sse_loss", "rank-0 y (param) and t", sse_scalar},
    {"mse_loss", "[B,N], y and t with gradient", mse_both},
    {"mse_loss", "[B,M,N], fixed target", mse_fixed_target},
    {"bce_loss", "[B,N], p and soft t in (0,1) with gradient", bce_soft},
    {"bce_loss", "[B,M,N], hard 0/1 targets", bce_hard},
    {"bce_logits_loss", "[B,N], z and soft t with gradient", bce_logits_soft},
    {"bce_logits_loss", "[B,M,N], wide z, hard 0/1 targets", bce_logits_hard},
    {"cce_loss", "[B,K], one-hot y", cce_one_hot},
    {"cce_loss", "[B,T,K], soft y with gradient", cce_soft},
    {"softmax_ce_loss", "[B,K], one-hot y", softmax_ce_one_hot},
    {"softmax_ce_loss", "[B,T,K], soft y with gradient", softmax_ce_soft},
    {"softmax_ce_loss", "[B,K], unnormalised soft y with gradient",
     softmax_ce_unnormalised},
    {"softmax_ce_index_loss", "[B,K], flat labels [B]", softmax_ce_index_flat},
    {"softmax_ce_index_loss", "[B,T,K], labels [B,T]", softmax_ce_index_batched},
    {"nll_loss", "[B,K], flat labels [B]", nll_flat},
    {"nll_loss", "[B,T,K], labels [B,T]", nll_batched},
    {"l1_penalty", "[B,N] away from 0", l1},
    {"l2_penalty", "[B,M,N] param", l2},
    {"dropout", "training, [B,N], p in [0.1,0.6)", dropout_training},
    {"dropout", "training, inside an sse loss", dropout_training_loss},
    {"dropout", "inference mode, [B,M,N]", dropout_inference},
    {NULL, NULL, NULL},
};
