/* The public helpers for writing an op (nabla/op.h): typed views,
 * broadcasting, and the vectorised math kernels, which are the built-in
 * ops' own. */
#include "ops/op_util.h"

void *nb_tensor_view(nb_tensor *t)
{
    return t ? t->data : NULL;
}

const void *nb_tensor_cview(const nb_tensor *t)
{
    return t ? t->data : NULL;
}

const float *nb_tensor_cf32(const nb_tensor *t)
{
    return t && t->dtype == NB_F32 ? (const float *)t->data : NULL;
}

const double *nb_tensor_cf64(const nb_tensor *t)
{
    return t && t->dtype == NB_F64 ? (const double *)t->data : NULL;
}

int nb_op_broadcast_shape(nb_op_call *c, int a, int b)
{
    if (!c || a < 0 || b < 0 || a >= c->n_inputs || b >= c->n_inputs)
        return c ? nb_op_fail(c, "broadcast: inputs %d and %d are not both "
                                 "among the op's %d",
                              a, b, c->n_inputs)
                 : NB_ERR_ARG;
    c->out_dtype = c->in[a]->dtype;
    return nb_broadcast_shapes(c, c->in[a], c->in[b], &c->out_rank,
                               c->out_shape);
}

int64_t nb_broadcast_index(const nb_tensor *t, const nb_tensor *out, int64_t i)
{
    if (!t || !out || i < 0 || i >= out->size)
        return -1;
    int64_t index = 0, stride = 1;
    for (int k = out->rank - 1, kt = t->rank - 1; k >= 0 && kt >= 0;
         k--, kt--) {
        int64_t extent = out->shape[k], own = t->shape[kt];
        int64_t at = i % extent;
        i /= extent;
        if (own != 1)
            index += at * stride;
        stride *= own;
    }
    return index;
}

int nb_reduce_broadcast_add(const nb_tensor *g, nb_tensor *acc)
{
    if (!g || !acc || g->dtype != acc->dtype || acc->rank > g->rank)
        return NB_ERR_ARG;
    for (int k = 0; k < acc->rank; k++) {
        int64_t own = acc->shape[acc->rank - 1 - k];
        if (own != 1 && own != g->shape[g->rank - 1 - k])
            return NB_ERR_ARG;
    }
    if (g->size)
        nb_reduce_into(g, acc);
    return NB_OK;
}

/* NULL arrays (or n <= 0) do nothing, as every public call takes NULL. */
#define VMATH(name)                                                           \
    void nb_vmath_##name##_f32(int64_t n, const float *x, float *y)           \
    {                                                                         \
        if (x && y && n > 0)                                                  \
            nb_vm_##name##_f32(n, x, y);                                      \
    }                                                                         \
    void nb_vmath_##name##_f64(int64_t n, const double *x, double *y)         \
    {                                                                         \
        if (x && y && n > 0)                                                  \
            nb_vm_##name##_f64(n, x, y);                                      \
    }
VMATH(exp)
VMATH(log)
VMATH(tanh)
VMATH(sigmoid)
VMATH(softplus)
VMATH(gelu)
VMATH(silu)
