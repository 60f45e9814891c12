/* Matrix product C = A B, in three forms:
 *
 *   [M,K]   x [K,N]   -> [M,N]
 *   [B,M,K] x [B,K,N] -> [B,M,N]   one product per batch entry
 *   [B,M,K] x [K,N]   -> [B,M,N]   one B shared by the whole batch
 *
 *   C = A B        dA = dC B^T        dB = A^T dC
 *
 * With a shared B, dB sums A_b^T dC_b over the batch. Because the batch of
 * A is contiguous, that form is one [B*M,K] x [K,N] product, and the batch
 * sum of dB falls out of one GEMM whose inner dimension is B*M.
 *
 * Every product, forward and backward, goes through nb_gemm with transpose
 * flags, so no transpose is ever materialised. A message is added into its
 * gradient with beta = 1, except where the executor reports the gradient
 * unwritten so far in the pass (the op's NB_OP_FRESH_GRADS flag asks for
 * that news in call->in_grad_fresh): there beta = 0 writes it outright,
 * which spares clearing it first and reading it back.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   matmul: C = A B (batched, or B shared by the batch); dA = dC B^T,
 *       dB = A^T dC (summed over a shared batch)
 */
#include "ops/op_util.h"

#define GEMM(T) NB_KERNEL(nb_gemm, T)

/* The product's dimensions, read from the input shapes. */
typedef struct dims {
    int64_t batch;  /* products in a batched form; 1 for [M,K] x [K,N] */
    int64_t m, k, n;
    bool shared_b;  /* [B,M,K] x [K,N] */
} dims;

static dims dims_of(const nb_tensor *a, const nb_tensor *b)
{
    dims d;
    d.shared_b = a->rank == 3 && b->rank == 2;
    d.batch = a->rank == 3 ? a->shape[0] : 1;
    d.m = a->shape[a->rank - 2];
    d.k = a->shape[a->rank - 1];
    d.n = b->shape[b->rank - 1];
    return d;
}

static int matmul_infer(nb_op_call *c)
{
    const nb_tensor *a = c->in[0], *b = c->in[1];
    char sa[128], sb[128];
    NB_SHAPE(a, sa);
    NB_SHAPE(b, sb);
    if (a->dtype != b->dtype)
        return nb_op_fail(c, "dtypes differ: a is %s %s, b is %s %s",
                          nb_dtype_name(a->dtype), sa, nb_dtype_name(b->dtype),
                          sb);
    bool ranks_fit = (a->rank == 2 && b->rank == 2) ||
                     (a->rank == 3 && (b->rank == 3 || b->rank == 2));
    if (!ranks_fit)
        return nb_op_fail(c,
                          "a is %s, b is %s: expected [M,K] x [K,N], "
                          "[B,M,K] x [B,K,N] or [B,M,K] x [K,N]",
                          sa, sb);
    if (a->rank == 3 && b->rank == 3 && a->shape[0] != b->shape[0])
        return nb_op_fail(c, "batch sizes differ: a is %s, b is %s", sa, sb);
    if (a->shape[a->rank - 1] != b->shape[b->rank - 2])
        return nb_op_fail(c, "inner dimensions differ: a is %s, b is %s", sa,
                          sb);
    c->out_dtype = a->dtype;
    c->out_rank = a->rank;
    for (int i = 0; i < a->rank - 1; i++)
        c->out_shape[i] = a->shape[i];
    c->out_shape[a->rank - 1] = b->shape[b->rank - 1];

    /* Packing space for the largest of the three products forward and
     * backward run: C = A B, dA = dC B^T, dB = A^T dC. */
    dims d = dims_of(a, b);
    int64_t rows = d.shared_b ? d.batch * d.m : d.m;
    NB_TYPED(a->dtype, {
        size_t fwd = NB_KERNEL(nb_gemm_workspace, T)(rows, d.n, d.k);
        size_t da = NB_KERNEL(nb_gemm_workspace, T)(rows, d.k, d.n);
        size_t db = NB_KERNEL(nb_gemm_workspace, T)(d.k, d.n, rows);
        c->workspace_bytes = fwd > da ? fwd : da;
        if (db > c->workspace_bytes)
            c->workspace_bytes = db;
    });
    return NB_OK;
}

static int matmul_forward(nb_op_call *c)
{
    dims d = dims_of(c->in[0], c->in[1]);
    NB_TYPED(c->out->dtype, {
        const T *a = c->in[0]->data, *b = c->in[1]->data;
        T *y = c->out->data;
        /* one product (a batch of one is [1,M,K] or [M,K]): no offsets */
        if (d.shared_b || d.batch == 1) {
            GEMM(T)(false, false, d.batch * d.m, d.n, d.k, 1, a, d.k, b, d.n, 0,
                    y, d.n, c->workspace);
        } else {
            for (int64_t i = 0; i < d.batch; i++)
                GEMM(T)(false, false, d.m, d.n, d.k, 1, a + i * d.m * d.k, d.k,
                        b + i * d.k * d.n, d.n, 0, y + i * d.m * d.n, d.n,
                        c->workspace);
        }
    });
    return NB_OK;
}

static int matmul_backward(nb_op_call *c)
{
    dims d = dims_of(c->in[0], c->in[1]);
    nb_tensor *ga = c->in_grad[0], *gb = c->in_grad[1];
    /* A shared B sees the batch as extra rows of A. */
    int64_t rows = d.shared_b ? d.batch * d.m : d.m;
    int64_t products = d.shared_b ? 1 : d.batch;
    NB_TYPED(c->out->dtype, {
        const T *a = c->in[0]->data, *b = c->in[1]->data;
        const T *dy = c->out_grad->data;
        T *da = ga ? ga->data : NULL, *db = gb ? gb->data : NULL;
        /* A fresh gradient (NB_OP_FRESH_GRADS) is written with beta 0
         * rather than added to. */
        const T beta_a = c->in_grad_fresh[0] ? 0 : 1;
        const T beta_b = c->in_grad_fresh[1] ? 0 : 1;
        /* Each product moves every pointer by its own block; pointers
         * stepped along spare the offsets' products, which cost more
         * than a tiny product's arithmetic. */
        for (int64_t i = 0; i < products; i++) {
            if (da) /* dA += dC B^T */
                GEMM(T)(false, true, rows, d.k, d.n, 1, dy, d.n, b, d.n,
                        beta_a, da, d.k, c->workspace);
            if (db) /* dB += A^T dC */
                GEMM(T)(true, false, d.k, d.n, rows, 1, a, d.k, dy, d.n,
                        beta_b, db, d.n, c->workspace);
            a += rows * d.k;
            b += d.k * d.n;
            dy += rows * d.n;
            da = da ? da + rows * d.k : NULL;
            db = db ? db + d.k * d.n : NULL;
        }
    });
    return NB_OK;
}

const nb_op nb_op_matmul = {
    .struct_size = sizeof(nb_op),
    .name = "matmul",
    .min_inputs = 2,
    .max_inputs = 2,
    .doc = "C = A B (batched, or B shared by the batch); dA = dC B^T, dB = A^T dC "
        "(summed over a shared batch)",
    .infer = matmul_infer,
    .forward = matmul_forward,
    .backward = matmul_backward,
    .flags = NB_OP_FRESH_GRADS,
};

nb_node *nb_matmul(nb_graph *g, nb_node *a, nb_node *b)
{
    nb_node *in[2] = {a, b};
    return nb_apply(g, &nb_op_matmul, 2, in, NULL);
}
