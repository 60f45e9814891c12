/* Elementwise binary ops with numpy-style broadcasting.
 *
 * A tie of maximum/minimum sends the whole gradient to the first input; a
 * NaN on either side propagates (as it does through max and min).
 * Where an operand was broadcast, its gradient sums the messages of every
 * output element it fed: fan-out forward is a sum backward.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   add: y = a + b; da = dy, db = dy (broadcast dims summed)
 *   sub: y = a - b; da = dy, db = -dy (broadcast dims summed)
 *   mul: y = a * b; da = dy * b, db = dy * a (broadcast dims summed)
 *   div: y = a / b; da = dy / b, db = -dy * a / b^2 (broadcast dims
 *       summed)
 *   maximum: y = max(a, b); da = dy [a >= b], db = dy [b > a] (tie:
 *       all to a)
 *   minimum: y = min(a, b); da = dy [a <= b], db = dy [b < a] (tie:
 *       all to a)
 */
#include "kernels/run_sum.h"
#include "ops/op_util.h"

static int binary_infer(nb_op_call *c)
{
    int rc = nb_require_same_dtype(c);
    if (rc != NB_OK)
        return rc;
    c->out_dtype = c->in[0]->dtype;
    return nb_broadcast_shapes(c, c->in[0], c->in[1], &c->out_rank,
                               c->out_shape);
}

/* One inner loop per stride pattern: with constant strides the compiler
 * vectorises the common cases (same shape, scalar or row broadcast). */
#define INNER(expr, sa, sb)                                                   \
    for (int64_t j = 0; j < n; j++) {                                         \
        T a = pa[j * (sa)], b = pb[j * (sb)];                                 \
        po[j] = (expr);                                                       \
    }

/* Operands as large as the output have its shape (broadcasting only
 * stretches extents of 1): one flat loop, with no plan to build. */
#define SAME_SIZE(c)                                                          \
    ((c)->in[0]->size == (c)->out->size && (c)->in[1]->size == (c)->out->size)


/* One operand's message over a same-size call: written (OP =) into a
 * fresh gradient, added (OP +=) otherwise. */
#define FLAT_GRAD(g, OP, D)                                                   \
    for (int64_t j = 0; j < n; j++) {                                         \
        T a = pa[j], b = pb[j], dy = pdy[j];                                  \
        (void)a;                                                              \
        (void)b;                                                              \
        g[j] OP(D);                                                           \
    }

/* One operand's message along a row of a broadcast call, its gradient
 * element j at g[j * s]: written (OP =) or added (OP +=). */
#define BCAST_GRAD(g, s, OP, D)                                               \
    for (int64_t j = 0; j < n; j++) {                                         \
        T a = pa[j * sa], b = pb[j * sb], dy = pdy[j];                        \
        (void)a;                                                              \
        (void)b;                                                              \
        g[j * (s)] OP(D);                                                     \
    }

/* The gradient of an operand repeated along a whole inner run (a bias
 * [O,1,1] against [N,O,H,W] gives runs of H*W) when the op passes dy to it
 * unchanged: the run's sum (nb_run_sum, kernels/run_sum.h, whose order the
 * fused convolution's bias gradient shares), added to the gradient element
 * once per run. */

/* The one-element forms (nb_one_element in core/internal.h): the loops'
 * formulas on a[0], b[0] alone, the same bits without the loops; T names
 * REAL_T inside the formulas, as in NB_TYPED. A gradient repeated in both
 * slots (x * x) takes a's message, then b's, as FLAT_GRAD does. */
#define BINARY1(NAME, FWD, DA, DB, REAL_T, SUF)                               \
    static int NAME##_forward1_##SUF(nb_op_call *c)                           \
    {                                                                         \
        typedef REAL_T T;                                                     \
        const T a = *(const T *)c->in[0]->data;                               \
        const T b = *(const T *)c->in[1]->data;                               \
        *(T *)c->out->data = (FWD);                                           \
        return NB_OK;                                                         \
    }                                                                         \
    static int NAME##_backward1_##SUF(nb_op_call *c)                          \
    {                                                                         \
        typedef REAL_T T;                                                     \
        const T a = *(const T *)c->in[0]->data;                               \
        const T b = *(const T *)c->in[1]->data;                               \
        const T dy = *(const T *)c->out_grad->data;                           \
        (void)a;                                                              \
        (void)b;                                                              \
        if (c->in_grad[0]) {                                                  \
            T *ga = c->in_grad[0]->data;                                      \
            if (nb_grad_fresh(c, 0))                                          \
                *ga = (DA);                                                   \
            else                                                              \
                *ga += (DA);                                                  \
        }                                                                     \
        if (c->in_grad[1]) {                                                  \
            T *gb = c->in_grad[1]->data;                                      \
            if (nb_grad_fresh(c, 1))                                          \
                *gb = (DB);                                                   \
            else                                                              \
                *gb += (DB);                                                  \
        }                                                                     \
        return NB_OK;                                                         \
    }

/* SIGN_A, SIGN_B: da = SIGN_A dy (db = SIGN_B dy) for every a and b, so a
 * repeated operand's run reduces by run_sum; 0 when the derivative
 * depends on the values. */
#define DEFINE_BINARY(NAME, FWD, DA, DB, SIGN_A, SIGN_B, DOC)                 \
    static int NAME##_forward(nb_op_call *c)                                  \
    {                                                                         \
        if (SAME_SIZE(c)) {                                                   \
            int64_t n = c->out->size;                                         \
            NB_TYPED(c->out->dtype, {                                         \
                const T *pa = c->in[0]->data, *pb = c->in[1]->data;           \
                T *po = c->out->data;                                         \
                INNER(FWD, 1, 1)                                              \
            });                                                               \
            return NB_OK;                                                     \
        }                                                                     \
        nb_bcast p;                                                           \
        nb_bcast_plan(&p, c->out, c->in[0], c->in[1]);                        \
        int64_t n = p.shape[p.rank - 1];                                      \
        int64_t sa = p.stride_a[p.rank - 1], sb = p.stride_b[p.rank - 1];     \
        NB_TYPED(c->out->dtype, {                                             \
            for (int64_t row = 0; row < p.outer; row++) {                     \
                int64_t oa, ob;                                               \
                nb_bcast_row(&p, row, &oa, &ob);                              \
                const T *pa = (const T *)c->in[0]->data + oa;                 \
                const T *pb = (const T *)c->in[1]->data + ob;                 \
                T *po = (T *)c->out->data + row * n;                          \
                if (sa == 1 && sb == 1) {                                     \
                    INNER(FWD, 1, 1)                                          \
                } else if (sa == 1 && sb == 0) {                              \
                    INNER(FWD, 1, 0)                                          \
                } else if (sa == 0 && sb == 1) {                              \
                    INNER(FWD, 0, 1)                                          \
                } else {                                                      \
                    INNER(FWD, sa, sb)                                        \
                }                                                             \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }                                                                         \
    static int NAME##_backward(nb_op_call *c)                                 \
    {                                                                         \
        if (SAME_SIZE(c)) {                                                   \
            int64_t n = c->out->size;                                         \
            NB_TYPED(c->out->dtype, {                                         \
                const T *pa = c->in[0]->data, *pb = c->in[1]->data;           \
                const T *pdy = c->out_grad->data;                             \
                T *ga = c->in_grad[0] ? (T *)c->in_grad[0]->data : NULL;      \
                T *gb = c->in_grad[1] ? (T *)c->in_grad[1]->data : NULL;      \
                if (ga && nb_grad_fresh(c, 0))                                \
                    FLAT_GRAD(ga, =, DA)                                      \
                else if (ga)                                                  \
                    FLAT_GRAD(ga, +=, DA)                                     \
                if (gb && nb_grad_fresh(c, 1))                                \
                    FLAT_GRAD(gb, =, DB)                                      \
                else if (gb)                                                  \
                    FLAT_GRAD(gb, +=, DB)                                     \
            });                                                               \
            return NB_OK;                                                     \
        }                                                                     \
        /* A broadcast operand sums messages, so its fresh gradient needs  \
         * zeros; a full-size one (a conv's output beside its bias) gets   \
         * each element once, written outright. */                         \
        bool write_a = nb_grad_fresh(c, 0) && c->in[0]->size == c->out->size; \
        bool write_b = nb_grad_fresh(c, 1) && c->in[1]->size == c->out->size; \
        if (!write_a)                                                         \
            nb_grad_clear_fresh(c, 0);                                        \
        if (!write_b)                                                         \
            nb_grad_clear_fresh(c, 1);                                        \
        nb_bcast p;                                                           \
        nb_bcast_plan(&p, c->out, c->in[0], c->in[1]);                        \
        int64_t n = p.shape[p.rank - 1];                                      \
        int64_t sa = p.stride_a[p.rank - 1], sb = p.stride_b[p.rank - 1];     \
        nb_tensor *ga_t = c->in_grad[0], *gb_t = c->in_grad[1];               \
        NB_TYPED(c->out->dtype, {                                             \
            for (int64_t row = 0; row < p.outer; row++) {                     \
                int64_t oa, ob;                                               \
                nb_bcast_row(&p, row, &oa, &ob);                              \
                const T *pa = (const T *)c->in[0]->data + oa;                 \
                const T *pb = (const T *)c->in[1]->data + ob;                 \
                const T *pdy = (const T *)c->out_grad->data + row * n;        \
                if (ga_t && sa == 0 && (SIGN_A) != 0 && !write_a) {                       \
                    ((T *)ga_t->data)[oa] +=                                  \
                        (T)(SIGN_A) * NB_KERNEL(nb_run_sum, T)(pdy, n);       \
                } else if (ga_t) {                                            \
                    T *ga = (T *)ga_t->data + oa;                             \
                    if (write_a)                                              \
                        BCAST_GRAD(ga, sa, =, DA)                             \
                    else                                                      \
                        BCAST_GRAD(ga, sa, +=, DA)                            \
                }                                                             \
                if (gb_t && sb == 0 && (SIGN_B) != 0 && !write_b) {                       \
                    ((T *)gb_t->data)[ob] +=                                  \
                        (T)(SIGN_B) * NB_KERNEL(nb_run_sum, T)(pdy, n);       \
                } else if (gb_t) {                                            \
                    T *gb = (T *)gb_t->data + ob;                             \
                    if (write_b)                                              \
                        BCAST_GRAD(gb, sb, =, DB)                             \
                    else                                                      \
                        BCAST_GRAD(gb, sb, +=, DB)                            \
                }                                                             \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }                                                                         \
    const nb_op nb_op_##NAME = {                                              \
        .struct_size = sizeof(nb_op),                                         \
        .name = #NAME,                                                        \
        .min_inputs = 2,                                                      \
        .max_inputs = 2,                                                      \
        .doc = DOC,                                                           \
        .infer = binary_infer,                                                \
        .forward = NAME##_forward,                                            \
        .backward = NAME##_backward,                                          \
        .flags = NB_OP_FRESH_GRADS,                                           \
    };                                                                        \
    BINARY1(NAME, FWD, DA, DB, float, f32)                                    \
    BINARY1(NAME, FWD, DA, DB, double, f64)                                   \
    const nb_one_element nb_one_##NAME = {                                    \
        &nb_op_##NAME,                                                        \
        {NAME##_forward1_f32, NAME##_forward1_f64},                           \
        {NAME##_backward1_f32, NAME##_backward1_f64},                         \
    };

DEFINE_BINARY(add, a + b, dy, dy, 1, 1,
              "y = a + b; da = dy, db = dy (broadcast dims summed)")
DEFINE_BINARY(sub, a - b, dy, -dy, 1, -1,
              "y = a - b; da = dy, db = -dy (broadcast dims summed)")
DEFINE_BINARY(mul, a * b, dy * b, dy * a, 0, 0,
              "y = a * b; da = dy * b, db = dy * a (broadcast dims summed)")
DEFINE_BINARY(div, a / b, dy / b, -dy * a / (b * b), 0, 0,
              "y = a / b; da = dy / b, db = -dy * a / b^2 (broadcast dims summed)")
/* "a wins" includes a NaN a, and a NaN b beats a number a, so a NaN
 * propagates from either side. */
#define A_WINS_MAX (a >= b || a != a)
#define A_WINS_MIN (a <= b || a != a)
DEFINE_BINARY(maximum, A_WINS_MAX ? a : b, A_WINS_MAX ? dy : (T)0,
              A_WINS_MAX ? (T)0 : dy, 0, 0,
              "y = max(a, b); da = dy [a >= b], db = dy [b > a] (tie: all to a)")
DEFINE_BINARY(minimum, A_WINS_MIN ? a : b, A_WINS_MIN ? dy : (T)0,
              A_WINS_MIN ? (T)0 : dy, 0, 0,
              "y = min(a, b); da = dy [a <= b], db = dy [b < a] (tie: all to a)")
