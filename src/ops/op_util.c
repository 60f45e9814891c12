/* Shape checks and the broadcasting machinery shared by the op files. */
#include "ops/op_util.h"

int nb_require_same_dtype(nb_op_call *c)
{
    for (int i = 1; i < c->n_inputs; i++)
        if (c->in[i]->dtype != c->in[0]->dtype)
            return nb_op_fail(c, "input %d is %s but input 0 is %s", i,
                              nb_dtype_name(c->in[i]->dtype),
                              nb_dtype_name(c->in[0]->dtype));
    return NB_OK;
}

int nb_normalize_axis(nb_op_call *c, int axis, int rank, int *out)
{
    int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
        return nb_op_fail(c, "axis %d is out of range for rank %d", axis, rank);
    *out = a;
    return NB_OK;
}

void nb_scalar_output(nb_op_call *c)
{
    c->out_dtype = c->in[0]->dtype;
    c->out_rank = 0;
}

int nb_broadcast_shapes(nb_op_call *c, const nb_tensor *a, const nb_tensor *b,
                        int *out_rank, int64_t *out_shape)
{
    int rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < rank; i++) {
        int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
        int64_t da = ia >= 0 ? a->shape[ia] : 1;
        int64_t db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[128], sb[128];
            return nb_op_fail(c,
                              "shapes %s and %s do not broadcast (dimension %d: "
                              "%lld vs %lld)",
                              NB_SHAPE(a, sa), NB_SHAPE(b, sb), i,
                              (long long)da, (long long)db);
        }
        out_shape[i] = da == 1 ? db : da;
    }
    *out_rank = rank;
    return NB_OK;
}

/* Strides of t right-aligned to out's dims, 0 where t broadcasts. */
static void aligned_strides(const nb_tensor *t, int rank, const int64_t *shape,
                            int64_t *stride)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        int it = i - (rank - t->rank);
        int64_t d = it >= 0 ? t->shape[it] : 1;
        stride[i] = (d == 1 && shape[i] != 1) ? 0 : s;
        s *= d;
    }
}

void nb_bcast_plan(nb_bcast *p, const nb_tensor *out, const nb_tensor *a,
                   const nb_tensor *b)
{
    /* An operand as large as the output has its shape (broadcasting only
     * stretches extents of 1), so it is walked as one flat run, and an
     * operand of one element is repeated: the common small cases (same
     * shape, a scalar, a bias row at batch 1) need no per-axis work. */
    if ((a->size == out->size || a->size == 1) &&
        (b->size == out->size || b->size == 1)) {
        p->rank = 1;
        p->outer = 1;
        p->shape[0] = out->size;
        p->stride_a[0] = a->size == out->size ? 1 : 0;
        p->stride_b[0] = b->size == out->size ? 1 : 0;
        return;
    }
    int64_t shape[NB_MAX_RANK] = {0}, sa[NB_MAX_RANK] = {0}, sb[NB_MAX_RANK] = {0};
    int rank = out->rank;
    if (rank == 0) {
        rank = 1;
        shape[0] = 1;
        sa[0] = sb[0] = 1;
    } else {
        memcpy(shape, out->shape, sizeof shape);
        aligned_strides(a, rank, shape, sa);
        aligned_strides(b, rank, shape, sb);
    }
    /* Merge neighbouring dims that both operands walk the same way, so the
     * common cases (same shape, scalar, bias row) become one or two loops. */
    int r = 0;
    p->shape[0] = shape[0];
    p->stride_a[0] = sa[0];
    p->stride_b[0] = sb[0];
    for (int i = 1; i < rank; i++) {
        bool merge_a = (p->stride_a[r] == 0 && sa[i] == 0) ||
                       (p->stride_a[r] != 0 && sa[i] != 0 &&
                        p->stride_a[r] == sa[i] * shape[i]);
        bool merge_b = (p->stride_b[r] == 0 && sb[i] == 0) ||
                       (p->stride_b[r] != 0 && sb[i] != 0 &&
                        p->stride_b[r] == sb[i] * shape[i]);
        if (shape[i] == 1)
            continue; /* extent 1 moves nothing */
        if (p->shape[r] == 1 || (merge_a && merge_b)) {
            p->shape[r] *= shape[i];
            p->stride_a[r] = sa[i];
            p->stride_b[r] = sb[i];
            continue;
        }
        r++;
        p->shape[r] = shape[i];
        p->stride_a[r] = sa[i];
        p->stride_b[r] = sb[i];
    }
    p->rank = r + 1;
    p->outer = 1;
    for (int i = 0; i < p->rank - 1; i++)
        p->outer *= p->shape[i];
}

void nb_bcast_row(const nb_bcast *p, int64_t row, int64_t *off_a,
                  int64_t *off_b)
{
    int64_t oa = 0, ob = 0;
    for (int i = p->rank - 2; i >= 0; i--) {
        int64_t idx = row % p->shape[i];
        row /= p->shape[i];
        oa += idx * p->stride_a[i];
        ob += idx * p->stride_b[i];
    }
    *off_a = oa;
    *off_b = ob;
}

void nb_reduce_into(const nb_tensor *g, nb_tensor *acc)
{
    nb_bcast p;
    nb_bcast_plan(&p, g, acc, acc);
    int64_t inner = p.shape[p.rank - 1], s = p.stride_a[p.rank - 1];
    NB_TYPED(g->dtype, {
        const T *src = g->data;
        T *dst = acc->data;
        for (int64_t row = 0; row < p.outer; row++) {
            int64_t off, unused;
            nb_bcast_row(&p, row, &off, &unused);
            const T *gr = src + row * inner;
            T *d = dst + off;
            if (s == 0) {
                T total = 0;
                for (int64_t j = 0; j < inner; j++)
                    total += gr[j];
                d[0] += total;
            } else {
                for (int64_t j = 0; j < inner; j++)
                    d[j] += gr[j];
            }
        }
    });
}

nb_reduce_layout nb_reduce_layout_of(const nb_tensor *x,
                                     const nb_reduce_attrs *at)
{
    nb_reduce_layout l = {1, x->size, 1};
    if (at->all)
        return l;
    int axis = at->axis < 0 ? at->axis + x->rank : at->axis;
    l.n = x->shape[axis];
    for (int i = 0; i < axis; i++)
        l.outer *= x->shape[i];
    for (int i = axis + 1; i < x->rank; i++)
        l.inner *= x->shape[i];
    return l;
}

int nb_reduce_shape(nb_op_call *c, bool empty_ok)
{
    const nb_reduce_attrs *at = c->attrs;
    const nb_tensor *x = c->in[0];
    char sx[128];
    c->out_dtype = x->dtype;
    if (at->all) {
        if (x->size == 0 && !empty_ok)
            return nb_op_fail(c, "cannot reduce an empty axis: x is %s, with "
                                 "no elements",
                              NB_SHAPE(x, sx));
        nb_scalar_output(c);
        return NB_OK;
    }
    int axis = 0;
    int rc = nb_normalize_axis(c, at->axis, x->rank, &axis);
    if (rc != NB_OK)
        return rc;
    if (x->shape[axis] == 0 && !empty_ok)
        return nb_op_fail(c, "cannot reduce an empty axis: axis %d of x %s "
                             "has extent 0",
                          at->axis, NB_SHAPE(x, sx));
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i != axis)
            c->out_shape[r++] = x->shape[i];
        else if (at->keepdims)
            c->out_shape[r++] = 1;
    }
    c->out_rank = r;
    return NB_OK;
}

nb_shape_attrs nb_shape_attrs_of(int rank, const int64_t *shape)
{
    nb_shape_attrs at;
    memset(&at, 0, sizeof at);
    at.rank = rank;
    at.has_shape = shape != NULL && rank >= 0 && rank <= NB_MAX_RANK;
    if (at.has_shape)
        memcpy(at.shape, shape, (size_t)rank * sizeof *shape);
    return at;
}

int nb_shape_attrs_check(nb_op_call *c, const nb_shape_attrs *at)
{
    if (at->rank < 0 || at->rank > NB_MAX_RANK)
        return nb_op_fail(c, "rank %d is out of range [0, %d]", at->rank,
                          NB_MAX_RANK);
    if (at->rank > 0 && !at->has_shape)
        return nb_op_fail(c, "shape is NULL for rank %d", at->rank);
    return NB_OK;
}

nb_reduce_layout nb_rows_layout(const nb_tensor *x)
{
    int64_t k = x->rank ? x->shape[x->rank - 1] : 1;
    nb_reduce_layout l = {k ? x->size / k : 0, k, 1};
    return l;
}

void nb_softmax_lines(const nb_tensor *xt, nb_reduce_layout l, void *p_out,
                      void *lse_out, void *logp_out)
{
    const int64_t n = l.n, inner = l.inner;
    NB_TYPED(xt->dtype, {
        const T *x = xt->data;
        T *p = p_out, *lse = lse_out; /* lse holds the maxima until the end */
        T *logp = logp_out;
        for (int64_t o = 0; o < l.outer; o++) {
            const T *xo = x + o * n * inner;
            T *m = lse + o * inner, *po = p + o * n * inner;
            for (int64_t i = 0; i < inner; i++)
                m[i] = (T)-INFINITY;
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < inner; i++)
                    if (xo[j * inner + i] > m[i])
                        m[i] = xo[j * inner + i];
            /* An infinite maximum shifts nothing; its line is redone below. */
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < inner; i++)
                    po[j * inner + i] =
                        xo[j * inner + i] - (isfinite(m[i]) ? m[i] : (T)0);
        }
        NB_KERNEL(nb_vm_exp, T)(xt->size, p, p);
        for (int64_t o = 0; o < l.outer; o++) {
            const T *xo = x + o * n * inner;
            T *m = lse + o * inner, *po = p + o * n * inner;
            for (int64_t i = 0; i < inner; i++) {
                double total = 0;
                for (int64_t j = 0; j < n; j++)
                    total += (double)po[j * inner + i];
                if (isfinite(m[i]) || isnan(total)) {
                    /* total >= 1 (the maximum gives e^0), or NaN */
                    T inv = (T)(1.0 / total), log_total = (T)log(total);
                    for (int64_t j = 0; j < n; j++)
                        po[j * inner + i] *= inv;
                    /* (x - m) - log total: as exact as the dtype allows
                     * (x - lse would carry lse's rounding, large when m is) */
                    for (int64_t j = 0; logp && j < n; j++)
                        logp[(o * n + j) * inner + i] =
                            (xo[j * inner + i] - m[i]) - log_total;
                    m[i] = (T)((double)m[i] + log(total));
                    continue;
                }
                int64_t top = 0; /* elements at +inf */
                for (int64_t j = 0; j < n; j++)
                    top += xo[j * inner + i] == (T)INFINITY;
                for (int64_t j = 0; j < n; j++)
                    po[j * inner + i] =
                        top ? (xo[j * inner + i] == (T)INFINITY ? (T)1 / (T)top
                                                                 : (T)0)
                            : (T)1 / (T)n;
                for (int64_t j = 0; logp && j < n; j++)
                    logp[(o * n + j) * inner + i] = (T)log(po[j * inner + i]);
                /* m[i] is already the limit: +inf or -inf */
            }
        }
    });
}
