/* embedding: rows of a table picked by integer ids.
 *
 *   table W [V, E], ids of any shape S (up to rank NB_MAX_RANK - 1)
 *   y[s, :] = W[ids[s], :]                      y is [S..., E]
 *   dW[v, :] = sum over every s with ids[s] = v of dy[s, :]
 *   no gradient to the ids
 *
 * The backward is a scatter-add: an id that occurs several times receives
 * the sum of its messages (the fan-out rule), rows no id picked receive
 * nothing. The positions are walked in order, so the sums are the same
 * bits on every run.
 *
 * Ids travel in the table's dtype, as the class-index labels of the
 * cross-entropy losses do: nabla's tensors are f32 or f64, a batch of ids
 * is fed and batched like any other input (nb_feed, datasets, nb_train),
 * and a vocabulary is far smaller than the range where floats stop being
 * exact. f32 holds every integer up to 2^24 = 16777216 exactly and f64 up
 * to 2^53, so an f32 table may have at most 2^24 rows (a larger one is
 * refused: some of its rows could not be named); use f64 beyond that.
 * Each id must be an integer in [0, V): forward (and backward, which
 * indexes with them) reject any other value, NaN included, with the id,
 * its position and V, and never read outside the table.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   embedding: y[s,:] = W[ids[s],:]; dW[v,:] = sum of dy[s,:] over s
 *       with ids[s] = v, no gradient to ids
 */
#include <math.h>

#include "ops/op_util.h"

/* The most rows an f32 table may have: every id below it is exact. */
#define F32_EXACT_ROWS 16777216

static int embedding_infer(nb_op_call *c)
{
    int rc = nb_require_same_dtype(c);
    if (rc != NB_OK)
        return rc;
    const nb_tensor *w = c->in[0], *ids = c->in[1];
    char sw[128], si[128];
    if (w->rank != 2)
        return nb_op_fail(c, "the table is %s: it must be [V, E]",
                          NB_SHAPE(w, sw));
    if (ids->rank + 1 > NB_MAX_RANK)
        return nb_op_fail(c, "ids are %s: rank %d leaves no room for the "
                             "embedding axis (rank at most %d)",
                          NB_SHAPE(ids, si), ids->rank, NB_MAX_RANK - 1);
    if (w->dtype == NB_F32 && w->shape[0] > F32_EXACT_ROWS)
        return nb_op_fail(c, "the f32 table has V = %lld rows, but f32 ids "
                             "are exact only up to 2^24 = %d: use f64",
                          (long long)w->shape[0], F32_EXACT_ROWS);
    c->out_dtype = w->dtype;
    c->out_rank = ids->rank + 1;
    for (int i = 0; i < ids->rank; i++)
        c->out_shape[i] = ids->shape[i];
    c->out_shape[ids->rank] = w->shape[1];
    return NB_OK;
}

/* The row an id names, or a failure naming the id, its position and V. */
static int row_of(nb_op_call *c, double id, int64_t pos, int64_t v,
                  int64_t *row)
{
    *row = 0;
    if (!(id >= 0 && id < (double)v && id == floor(id)))
        return nb_op_fail(c, "id %g at position %lld is not an integer in "
                             "[0, V) with V = %lld",
                          id, (long long)pos, (long long)v);
    *row = (int64_t)id;
    return NB_OK;
}

static int embedding_forward(nb_op_call *c)
{
    const nb_tensor *wt = c->in[0], *it = c->in[1];
    int64_t v = wt->shape[0], e = wt->shape[1], n = it->size;
    NB_TYPED(c->out->dtype, {
        const T *w = wt->data, *ids = it->data;
        T *y = c->out->data;
        /* Every id first: a bad one fails before any row is copied. */
        for (int64_t s = 0; s < n; s++) {
            int64_t row;
            int rc = row_of(c, (double)ids[s], s, v, &row);
            if (rc != NB_OK)
                return rc;
        }
        for (int64_t s = 0; s < n && e > 0; s++)
            memcpy(y + s * e, w + (int64_t)ids[s] * e, (size_t)e * sizeof(T));
    });
    return NB_OK;
}

static int embedding_backward(nb_op_call *c)
{
    nb_tensor *gw = c->in_grad[0];
    if (!gw)
        return NB_OK; /* ids get no gradient */
    const nb_tensor *wt = c->in[0], *it = c->in[1];
    int64_t v = wt->shape[0], e = wt->shape[1], n = it->size;
    NB_TYPED(c->out->dtype, {
        const T *ids = it->data, *dy = c->out_grad->data;
        T *dw = gw->data;
        for (int64_t s = 0; s < n; s++) {
            int64_t row;
            int rc = row_of(c, (double)ids[s], s, v, &row);
            if (rc != NB_OK)
                return rc;
            T *dst = dw + row * e;
            const T *src = dy + s * e;
            for (int64_t j = 0; j < e; j++)
                dst[j] += src[j];
        }
    });
    return NB_OK;
}

const nb_op nb_op_embedding = {
    .struct_size = sizeof(nb_op),
    .name = "embedding",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "y[s,:] = W[ids[s],:]; dW[v,:] = sum of dy[s,:] over s with "
        "ids[s] = v, no gradient to ids",
    .infer = embedding_infer,
    .forward = embedding_forward,
    .backward = embedding_backward,
};

nb_node *nb_embedding(nb_graph *g, nb_node *table, nb_node *ids)
{
    nb_node *in[2] = {table, ids};
    return nb_apply(g, &nb_op_embedding, 2, in, NULL);
}
