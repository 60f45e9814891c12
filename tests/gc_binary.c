/* Gradient-check cases: binary.c (add, sub, mul, div, maximum, minimum),
 * with equal shapes, broadcasting (the loop plan of src/ops/op_util.c) of
 * a row, a column and a scalar, and a
 * batch dimension. */
#include "gradcheck_cases.h"

/* a [B,M,N] against b drawn from one of several broadcastable shapes. */
static nb_node *pair(nb_graph *g, gc_ctx *c, nb_node *(*op)(nb_graph *,
                     nb_node *, nb_node *), double lo, double hi, int form)
{
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 1, 4), N = gc_dim(c, 1, 5);
    nb_node *a = gc_input(g, c, 3, (int64_t[]){B, M, N}, lo, hi);
    nb_node *b;
    switch (form) {
    case 0: b = gc_param(g, c, 3, (int64_t[]){B, M, N}, lo, hi); break;
    case 1: b = gc_param(g, c, 1, (int64_t[]){N}, lo, hi); break;        /* row */
    case 2: b = gc_param(g, c, 3, (int64_t[]){1, M, 1}, lo, hi); break;  /* column */
    default: b = gc_param(g, c, 0, NULL, lo, hi); break;                 /* scalar */
    }
    /* Alternate the broadcast side so both operands' reductions are checked. */
    return form % 2 ? op(g, b, a) : op(g, a, b);
}

#define CASES(name, lo, hi)                                                   \
    static nb_node *name##_same(nb_graph *g, gc_ctx *c)                       \
    {                                                                         \
        return pair(g, c, nb_##name, lo, hi, 0);                              \
    }                                                                         \
    static nb_node *name##_row(nb_graph *g, gc_ctx *c)                        \
    {                                                                         \
        return pair(g, c, nb_##name, lo, hi, 1);                              \
    }                                                                         \
    static nb_node *name##_col(nb_graph *g, gc_ctx *c)                        \
    {                                                                         \
        return pair(g, c, nb_##name, lo, hi, 2);                              \
    }                                                                         \
    static nb_node *name##_scalar(nb_graph *g, gc_ctx *c)                     \
    {                                                                         \
        return pair(g, c, nb_##name, lo, hi, 3);                              \
    }

CASES(add, -2, 2)
CASES(sub, -2, 2)
CASES(mul, -2, 2)
CASES(div, 0.5, 2) /* keep b away from 0 */
/* maximum/minimum: continuous values almost never tie; a tie within the
 * step h would straddle the kink, so the draws use a wide range. */
CASES(maximum, -3, 3)
CASES(minimum, -3, 3)

#define ROWS(name)                                                            \
    {#name, "same shape [B,M,N]", name##_same},                               \
    {#name, "row [N] broadcast", name##_row},                                 \
    {#name, "column [1,M,1] broadcast", name##_col},                          \
    {#name, "scalar broadcast", name##_scalar}

const gc_case gc_cases_binary[] = {
    ROWS(add), ROWS(sub), ROWS(mul), ROWS(div), ROWS(maximum), ROWS(minimum),
    {NULL, NULL, NULL},
};
