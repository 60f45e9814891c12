/* Gradient-check cases: the shape ops — reshape.c (with -1, and with -1
 * standing for a dynamic batch), permute.c (nb_transpose of rank 2 and 3,
 * a 2-D transpose large enough for the tiled copy, nb_permute of rank 3
 * with a random permutation and with a 3-cycle, and of rank 4), concat.c
 * (2 and 3 inputs along different axes, one input used twice), slice.c
 * (several axes, negative bounds, a step) and broadcast_to.c (from [N], from
 * [1,M,1], from a scalar). */
#include <stdlib.h>

#include "gradcheck_cases.h"

static nb_node *cube(nb_graph *g, gc_ctx *c, int64_t *B, int64_t *M,
                     int64_t *N)
{
    *B = gc_dim(c, 1, 3);
    *M = gc_dim(c, 1, 4);
    *N = gc_dim(c, 1, 5);
    return gc_input(g, c, 3, (int64_t[]){*B, *M, *N}, -2, 2);
}

/* ---- reshape ---- */

static nb_node *reshape_flatten(nb_graph *g, gc_ctx *c)
{
    int64_t B, M, N;
    nb_node *x = cube(g, c, &B, &M, &N);
    return nb_reshape(g, x, 2, (int64_t[]){-1, M * N});
}

static nb_node *reshape_split(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), K = 2 * gc_dim(c, 1, 3);
    nb_node *x = gc_param(g, c, 2, (int64_t[]){B, K}, -2, 2);
    return nb_reshape(g, x, 4, (int64_t[]){B, 2, -1, 1});
}

/* An input with a dynamic batch, fed a random batch: -1 resolves to it. */
static nb_node *reshape_dynamic(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 4), M = gc_dim(c, 1, 3), N = gc_dim(c, 1, 3);
    nb_node *x = nb_input(g, "x", NB_F64, 3, (int64_t[]){NB_DYNAMIC, M, N});
    nb_input_set_requires_grad(g, x, true);
    double *data = malloc((size_t)(B * M * N) * sizeof *data);
    for (int64_t i = 0; i < B * M * N; i++)
        data[i] = gc_uniform(c, -2, 2);
    nb_feed(g, x, 3, (int64_t[]){B, M, N}, data);
    free(data);
    nb_node *w = gc_param(g, c, 1, (int64_t[]){M * N}, -2, 2);
    return nb_mul(g, nb_reshape(g, x, 2, (int64_t[]){-1, M * N}), w);
}

/* ---- transpose / permute ---- */

static nb_node *transpose_2d(nb_graph *g, gc_ctx *c)
{
    int64_t M = gc_dim(c, 1, 5), N = gc_dim(c, 1, 5);
    return nb_transpose(g, gc_input(g, c, 2, (int64_t[]){M, N}, -2, 2));
}

static nb_node *transpose_3d(nb_graph *g, gc_ctx *c)
{
    int64_t B, M, N;
    return nb_transpose(g, cube(g, c, &B, &M, &N));
}

/* Past one 32 x 32 tile in both directions, with ragged edges. */
static nb_node *transpose_tiled(nb_graph *g, gc_ctx *c)
{
    int64_t M = gc_dim(c, 33, 45), N = gc_dim(c, 33, 45);
    return nb_transpose(g, gc_param(g, c, 2, (int64_t[]){M, N}, -1, 1));
}

static nb_node *permute_3d(nb_graph *g, gc_ctx *c)
{
    static const int64_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    int64_t B, M, N;
    nb_node *x = cube(g, c, &B, &M, &N);
    return nb_permute(g, x, 3, perms[gc_dim(c, 0, 5)]);
}

/* A 3-cycle is not its own inverse, so a backward that applied perm
 * instead of its inverse fails here. */
static nb_node *permute_cycle(nb_graph *g, gc_ctx *c)
{
    int64_t B, M, N;
    nb_node *x = cube(g, c, &B, &M, &N);
    return nb_permute(g, x, 3, (const int64_t[]){2, 0, 1});
}

static nb_node *permute_4d(nb_graph *g, gc_ctx *c)
{
    int64_t s[4] = {gc_dim(c, 1, 3), gc_dim(c, 1, 3), gc_dim(c, 1, 3),
                    gc_dim(c, 1, 3)};
    nb_node *x = gc_input(g, c, 4, s, -2, 2);
    return nb_permute(g, x, 4, (const int64_t[]){3, 1, 0, 2});
}

/* ---- concat ---- */

static nb_node *concat_axis0_two(nb_graph *g, gc_ctx *c)
{
    int64_t M = gc_dim(c, 1, 4), N = gc_dim(c, 1, 4);
    nb_node *xs[2] = {
        gc_input(g, c, 2, (int64_t[]){gc_dim(c, 1, 3), N}, -2, 2),
        gc_param(g, c, 2, (int64_t[]){M, N}, -2, 2)};
    return nb_concat(g, 2, xs, 0);
}

static nb_node *concat_axis1_three(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), N = gc_dim(c, 1, 3);
    nb_node *xs[3];
    for (int i = 0; i < 3; i++)
        xs[i] = gc_input(g, c, 3, (int64_t[]){B, gc_dim(c, 1, 3), N}, -2, 2);
    return nb_concat(g, 3, xs, 1);
}

static nb_node *concat_last_three(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 1, 3);
    nb_node *xs[3];
    for (int i = 0; i < 3; i++)
        xs[i] = gc_param(g, c, 3, (int64_t[]){B, M, gc_dim(c, 1, 4)}, -2, 2);
    return nb_concat(g, 3, xs, -1);
}

static nb_node *concat_same_twice(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), N = gc_dim(c, 1, 4);
    nb_node *x = gc_input(g, c, 2, (int64_t[]){B, N}, -2, 2);
    nb_node *y = gc_input(g, c, 2, (int64_t[]){B, 1}, -2, 2);
    nb_node *xs[3] = {x, y, x};
    return nb_concat(g, 3, xs, 1);
}

/* ---- slice ---- */

static nb_node *slice_batch(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 2, 5), N = gc_dim(c, 1, 4);
    nb_node *x = gc_input(g, c, 2, (int64_t[]){B, N}, -2, 2);
    int64_t start = gc_dim(c, 0, B - 1), end = gc_dim(c, start + 1, B);
    return nb_slice(g, x, 0, start, end);
}

static nb_node *slice_middle(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 2, 6), N = gc_dim(c, 1, 3);
    nb_node *x = gc_param(g, c, 3, (int64_t[]){B, M, N}, -2, 2);
    return nb_slice(g, x, 1, 1, M);
}

static nb_node *slice_step(nb_graph *g, gc_ctx *c)
{
    int64_t B, M, N;
    nb_node *x = cube(g, c, &B, &M, &N);
    int64_t start = gc_dim(c, 0, M - 1), end = gc_dim(c, start + 1, M);
    return nb_slice_step(g, x, 1, start, end, gc_dim(c, 2, 3));
}

static nb_node *slice_negative(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), N = gc_dim(c, 3, 6);
    nb_node *x = gc_input(g, c, 2, (int64_t[]){B, N}, -2, 2);
    return nb_slice(g, x, -1, -3, -1);
}

/* ---- broadcast_to ---- */

static nb_node *broadcast_row(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 1, 4), N = gc_dim(c, 1, 5);
    nb_node *x = gc_param(g, c, 1, (int64_t[]){N}, -2, 2);
    return nb_broadcast_to(g, x, 3, (int64_t[]){B, M, N});
}

static nb_node *broadcast_column(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 1, 4), N = gc_dim(c, 1, 5);
    nb_node *x = gc_input(g, c, 3, (int64_t[]){1, M, 1}, -2, 2);
    return nb_broadcast_to(g, x, 3, (int64_t[]){B, M, N});
}

static nb_node *broadcast_scalar(nb_graph *g, gc_ctx *c)
{
    int64_t B = gc_dim(c, 1, 3), N = gc_dim(c, 1, 5);
    nb_node *x = gc_input(g, c, 0, NULL, -2, 2);
    return nb_broadcast_to(g, x, 2, (int64_t[]){B, N});
}

const gc_case gc_cases_shape[] = {
    {"reshape", "[B,M,N] to [-1,M*N]", reshape_flatten},
    {"reshape", "[B,K] to [B,2,-1,1]", reshape_split},
    {"reshape", "dynamic batch [-1,M,N] to [-1,M*N]", reshape_dynamic},
    {"permute", "nb_transpose of [M,N]", transpose_2d},
    {"permute", "nb_transpose of [B,M,N]", transpose_3d},
    {"permute", "nb_transpose of [33..45,33..45] (tiled)", transpose_tiled},
    {"permute", "nb_permute of [B,M,N], random perm", permute_3d},
    {"permute", "nb_permute (2,0,1) of [B,M,N]", permute_cycle},
    {"permute", "nb_permute (3,1,0,2) of rank 4", permute_4d},
    {"concat", "2 inputs along axis 0", concat_axis0_two},
    {"concat", "3 inputs along axis 1 of rank 3", concat_axis1_three},
    {"concat", "3 inputs along axis -1 of rank 3", concat_last_three},
    {"concat", "(x, y, x) along axis 1", concat_same_twice},
    {"slice", "random range of the batch axis", slice_batch},
    {"slice", "[1, M) of axis 1", slice_middle},
    {"slice", "[-3, -1) of the last axis", slice_negative},
    {"slice", "random range and step 2-3 of axis 1", slice_step},
    {"broadcast_to", "[N] to [B,M,N]", broadcast_row},
    {"broadcast_to", "[1,M,1] to [B,M,N]", broadcast_column},
    {"broadcast_to", "scalar to [B,N]", broadcast_scalar},
    {NULL, NULL, NULL},
};
