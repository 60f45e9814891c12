/* Axis permutation: the op "permute", which nb_permute and nb_transpose
 * both build.
 *
 *   y[i_0, ..., i_{r-1}] = x[j]  with j_{perm[k]} = i_k,
 *   so y.shape[k] = x.shape[perm[k]]
 *   dx = permute(dy, inverse(perm)),   inverse(perm)[perm[k]] = k
 *
 * nb_transpose swaps the last two axes (perm = 0, ..., r-3, r-1, r-2),
 * resolved against the input's rank when the shape is inferred.
 *
 * Both directions are one strided gather: walk the destination in row-major
 * order and read the source through the strides its axes have there.
 * Forward reads x, backward reads dy and adds. The gather drops extent-1
 * axes, merges axes that stay contiguous together, and copies the last two
 * remaining axes in square tiles when the source is strided along the
 * destination's rows, so both sides of a 2-D transpose stay in cache.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   permute: y = x with axes permuted, y.shape[k] =
 *       x.shape[perm[k]] (nb_transpose: the last two swapped); dx = dy
 *       permuted by the inverse of perm
 */
#include <stdio.h>

#include "ops/op_util.h"

typedef struct permute_attrs {
    bool swap_last;         /* nb_transpose: perm comes from the input rank */
    bool has_perm;          /* nb_permute was given a perm */
    int n_perm;             /* entries of perm, as the caller said */
    int64_t perm[NB_MAX_RANK];
} permute_attrs;

#define TILE 32

/* The permutation for input rank `rank`, or a failure. */
static int perm_of(nb_op_call *c, int *perm)
{
    const permute_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    int rank = x->rank;
    char sx[128];
    if (at->swap_last) {
        if (rank < 2)
            return nb_op_fail(c, "x is %s: swapping the last two axes needs "
                                 "rank >= 2",
                              NB_SHAPE(x, sx));
        for (int i = 0; i < rank; i++)
            perm[i] = i;
        perm[rank - 2] = rank - 1;
        perm[rank - 1] = rank - 2;
        return NB_OK;
    }
    if (!at->has_perm)
        return nb_op_fail(c, "perm is NULL");
    if (at->n_perm != rank)
        return nb_op_fail(c, "perm has %d entries but x %s has rank %d",
                          at->n_perm, NB_SHAPE(x, sx), rank);
    bool seen[NB_MAX_RANK] = {false};
    bool valid = true;
    for (int i = 0; i < rank; i++) {
        int64_t p = at->perm[i];
        if (p < 0 || p >= rank || seen[p])
            valid = false;
        else
            seen[p] = true;
        perm[i] = (int)p;
    }
    if (!valid) {
        char list[192];
        size_t used = 0;
        list[0] = '\0';
        for (int i = 0; i < rank && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%lld",
                                     i ? "," : "", (long long)at->perm[i]);
        return nb_op_fail(c,
                          "perm (%s) is not a permutation of 0..%d for x %s",
                          list, rank - 1, NB_SHAPE(x, sx));
    }
    return NB_OK;
}

static int permute_infer(nb_op_call *c)
{
    int perm[NB_MAX_RANK];
    int rc = perm_of(c, perm);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *x = c->in[0];
    c->out_dtype = x->dtype;
    c->out_rank = x->rank;
    for (int k = 0; k < x->rank; k++)
        c->out_shape[k] = x->shape[perm[k]];
    return NB_OK;
}

static void row_major_strides(const nb_tensor *t, int64_t *stride)
{
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        stride[i] = s;
        s *= t->shape[i];
    }
}

/* Copies (or adds, with ASSIGN +=) a rows x cols block whose source steps
 * by sr per row and sc per column into the contiguous destination d. */
#define COPY_2D(T, ASSIGN)                                                    \
    if (sc == 1) {                                                            \
        for (int64_t i = 0; i < rows; i++)                                    \
            for (int64_t j = 0; j < cols; j++)                                \
                d[i * cols + j] ASSIGN s[i * sr + j];                         \
    } else {                                                                  \
        for (int64_t i0 = 0; i0 < rows; i0 += TILE)                           \
            for (int64_t j0 = 0; j0 < cols; j0 += TILE) {                     \
                int64_t i1 = i0 + TILE < rows ? i0 + TILE : rows;             \
                int64_t j1 = j0 + TILE < cols ? j0 + TILE : cols;             \
                for (int64_t i = i0; i < i1; i++)                             \
                    for (int64_t j = j0; j < j1; j++)                         \
                        d[i * cols + j] ASSIGN s[i * sr + j * sc];            \
            }                                                                 \
    }

/* dst (contiguous, of shape `shape`) = or += src, where moving one step
 * along dst's axis k moves from[k] elements in src. */
static void gather(nb_dtype dtype, int rank, const int64_t *shape_in,
                   const int64_t *from_in, const void *src, void *dst,
                   bool add)
{
    int64_t shape[NB_MAX_RANK + 2], from[NB_MAX_RANK + 2];
    int r = 0;
    for (int k = 0; k < rank; k++) {
        if (shape_in[k] == 0)
            return;
        if (shape_in[k] == 1)
            continue;
        if (r > 0 && from[r - 1] == from_in[k] * shape_in[k]) {
            shape[r - 1] *= shape_in[k];
            from[r - 1] = from_in[k];
            continue;
        }
        shape[r] = shape_in[k];
        from[r] = from_in[k];
        r++;
    }
    while (r < 2) {
        for (int k = r; k > 0; k--) {
            shape[k] = shape[k - 1];
            from[k] = from[k - 1];
        }
        shape[0] = 1;
        from[0] = 0;
        r++;
    }
    int64_t rows = shape[r - 2], cols = shape[r - 1];
    int64_t sr = from[r - 2], sc = from[r - 1];
    int64_t batch = 1;
    for (int k = 0; k < r - 2; k++)
        batch *= shape[k];
    int64_t index[NB_MAX_RANK] = {0}, base = 0;
    NB_TYPED(dtype, {
        for (int64_t b = 0; b < batch; b++) {
            const T *s = (const T *)src + base;
            T *d = (T *)dst + b * rows * cols;
            if (add) {
                COPY_2D(T, +=)
            } else {
                COPY_2D(T, =)
            }
            /* Odometer over the leading axes. */
            for (int k = r - 3; k >= 0; k--) {
                base += from[k];
                if (++index[k] < shape[k])
                    break;
                base -= index[k] * from[k];
                index[k] = 0;
            }
        }
    });
}

static int permute_forward(nb_op_call *c)
{
    const nb_tensor *x = c->in[0];
    int perm[NB_MAX_RANK];
    int64_t stride[NB_MAX_RANK], from[NB_MAX_RANK];
    if (perm_of(c, perm) != NB_OK)
        return NB_ERR_ARG;
    row_major_strides(x, stride);
    for (int k = 0; k < x->rank; k++)
        from[k] = stride[perm[k]];
    gather(x->dtype, x->rank, c->out->shape, from, x->data, c->out->data,
           false);
    return NB_OK;
}

static int permute_backward(nb_op_call *c)
{
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    int perm[NB_MAX_RANK];
    int64_t stride[NB_MAX_RANK], from[NB_MAX_RANK];
    if (perm_of(c, perm) != NB_OK)
        return NB_ERR_ARG;
    row_major_strides(c->out_grad, stride);
    /* x's axis perm[k] is dy's axis k. */
    for (int k = 0; k < gx->rank; k++)
        from[perm[k]] = stride[k];
    gather(gx->dtype, gx->rank, gx->shape, from, c->out_grad->data, gx->data,
           true);
    return NB_OK;
}

const nb_op nb_op_permute = {
    .struct_size = sizeof(nb_op),
    .name = "permute",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(permute_attrs),
    .doc = "y = x with axes permuted, y.shape[k] = x.shape[perm[k]] "
        "(nb_transpose: the last two swapped); dx = dy permuted by the "
        "inverse of perm",
    .infer = permute_infer,
    .forward = permute_forward,
    .backward = permute_backward,
};

nb_node *nb_permute(nb_graph *g, nb_node *x, int rank, const int64_t *perm)
{
    permute_attrs at;
    memset(&at, 0, sizeof at);
    /* A rank that cannot be x's is kept as said, so the shape rule names
     * it; only the entries that fit are copied. */
    at.n_perm = rank;
    at.has_perm = perm != NULL;
    if (perm && rank > 0)
        memcpy(at.perm, perm,
               (size_t)(rank < NB_MAX_RANK ? rank : NB_MAX_RANK) *
                   sizeof *perm);
    return nb_apply(g, &nb_op_permute, 1, &x, &at);
}

nb_node *nb_transpose(nb_graph *g, nb_node *x)
{
    permute_attrs at;
    memset(&at, 0, sizeof at);
    at.swap_last = true;
    return nb_apply(g, &nb_op_permute, 1, &x, &at);
}
