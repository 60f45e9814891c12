/* Pad: zeros added before and after chosen axes, any rank.
 *
 *   y[i_0 + b_0, ..., i_r + b_r] = x[i_0, ..., i_r], y = 0 elsewhere
 *   dx[i_0, ..., i_r] += dy[i_0 + b_0, ..., i_r + b_r]
 *
 * with b_k the padding before axis k; y's extent on axis k is
 * x's + before_k + after_k. Both directions walk x's rows (its last axis)
 * and copy or add each as one run.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   pad: y = x with before[k] zeros ahead of and after[k] zeros behind axis
 *       k; dx = dy without the padding
 */
#include "ops/op_util.h"

typedef struct pad_attrs {
    int rank; /* as given; checked against x's by infer */
    bool given;
    int64_t before[NB_MAX_RANK], after[NB_MAX_RANK];
} pad_attrs;

static int pad_infer(nb_op_call *c)
{
    const pad_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    char sx[128];
    NB_SHAPE(x, sx);
    if (!at->given)
        return nb_op_fail(c, "no padding given for x %s", sx);
    if (at->rank != x->rank)
        return nb_op_fail(c, "padding given for %d axes, x %s has %d",
                          at->rank, sx, x->rank);
    nb_same_as_input(c, 0);
    for (int k = 0; k < x->rank; k++) {
        if (at->before[k] < 0 || at->after[k] < 0)
            return nb_op_fail(c,
                              "padding %lld before, %lld after axis %d of x "
                              "%s: must be at least 0",
                              (long long)at->before[k],
                              (long long)at->after[k], k, sx);
        if (at->before[k] > (INT64_C(1) << 40) ||
            at->after[k] > (INT64_C(1) << 40))
            return nb_op_fail(c, "padding of axis %d of x %s above 2^40", k,
                              sx);
        c->out_shape[k] += at->before[k] + at->after[k];
    }
    return NB_OK;
}

/* Runs body for every row of x (its last axis), in order, with xo and yo
 * the offsets of the row's start in x and in the padded y. */
#define FOR_EACH_ROW(at, x, y, xo, yo, body)                                   \
    do {                                                                       \
        int r_ = (x)->rank;                                                    \
        int64_t idx_[NB_MAX_RANK] = {0}, ystride_[NB_MAX_RANK];                \
        int64_t run_ = r_ > 0 ? (x)->shape[r_ - 1] : 1;                        \
        int64_t rows_ = run_ > 0 ? (x)->size / run_ : 0;                       \
        int64_t s_ = 1;                                                        \
        for (int k_ = r_ - 1; k_ >= 0; k_--) {                                 \
            ystride_[k_] = s_;                                                 \
            s_ *= (y)->shape[k_];                                              \
        }                                                                      \
        for (int64_t row_ = 0; row_ < rows_; row_++) {                         \
            int64_t xo = row_ * run_, yo = 0;                                  \
            for (int k_ = 0; k_ < r_; k_++)                                    \
                yo += (idx_[k_] + (at)->before[k_]) * ystride_[k_];            \
            body;                                                              \
            for (int k_ = r_ - 2; k_ >= 0; k_--) {                             \
                if (++idx_[k_] < (x)->shape[k_])                               \
                    break;                                                     \
                idx_[k_] = 0;                                                  \
            }                                                                  \
        }                                                                      \
    } while (0)

static int64_t run_of(const nb_tensor *x)
{
    return x->rank > 0 ? x->shape[x->rank - 1] : 1;
}

static int pad_forward(nb_op_call *c)
{
    const pad_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    nb_tensor *y = c->out;
    size_t elem = nb_dtype_size(x->dtype);
    size_t run = (size_t)run_of(x) * elem;
    if (y->size > 0)
        memset(y->data, 0, nb_tensor_bytes(y));
    const char *src = x->data;
    char *dst = y->data;
    FOR_EACH_ROW(at, x, y, xo, yo,
                 memcpy(dst + (size_t)yo * elem, src + (size_t)xo * elem, run));
    return NB_OK;
}

static int pad_backward(nb_op_call *c)
{
    const pad_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    nb_tensor *gx = c->in_grad[0];
    if (!gx)
        return NB_OK;
    const int64_t run = run_of(x);
    NB_TYPED(gx->dtype, {
        const T *dy = c->out_grad->data;
        T *dx = gx->data;
        FOR_EACH_ROW(at, x, c->out, xo, yo, {
            for (int64_t j = 0; j < run; j++)
                dx[xo + j] += dy[yo + j];
        });
    });
    return NB_OK;
}

const nb_op nb_op_pad = {
    .struct_size = sizeof(nb_op),
    .name = "pad",
    .min_inputs = 1,
    .max_inputs = 1,
    .attr_size = sizeof(pad_attrs),
    .doc = "y = x with before[k] zeros ahead of and after[k] zeros behind axis "
           "k; dx = dy without the padding",
    .infer = pad_infer,
    .forward = pad_forward,
    .backward = pad_backward,
};

nb_node *nb_pad(nb_graph *g, nb_node *x, int rank, const int64_t *before,
                const int64_t *after)
{
    pad_attrs at;
    memset(&at, 0, sizeof at);
    at.rank = rank;
    at.given = rank == 0 || (before && after);
    if (at.given && rank > 0 && rank <= NB_MAX_RANK)
        for (int k = 0; k < rank; k++) {
            at.before[k] = before[k];
            at.after[k] = after[k];
        }
    return nb_apply(g, &nb_op_pad, 1, &x, &at);
}
