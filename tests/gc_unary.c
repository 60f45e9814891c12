/* Gradient-check cases: unary.c (neg, exp, log, sqrt, square, abs, scale,
 * add_scalar, sign, step), each on a batch of rows [B,N] and on a batch of
 * channels [B,C,N], with inputs drawn from the op's domain. */
#include "gradcheck_cases.h"

static nb_node *with_constant(nb_graph *g, gc_ctx *c, int form,
                              nb_node *(*op)(nb_graph *, nb_node *, double))
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, form, shape);
    nb_node *x = gc_input(g, c, rank, shape, -2, 2);
    return op(g, x, gc_uniform(c, -3, 3));
}

/* sign and step have gradient 0 wherever they are differentiable, so a
 * graph through them alone has nothing to check. y = x * w + f(x) gives
 * the check a path through w, and x's gradient, w exactly, shows that f
 * adds nothing. x stays away from the jump at 0. */
static nb_node *flat_beside_product(nb_graph *g, gc_ctx *c, int form,
                                    nb_node *(*op)(nb_graph *, nb_node *))
{
    int64_t shape[3];
    int rank = gc_batch_shape(c, form, shape);
    nb_node *x = gc_input_away(g, c, rank, shape, -2, 2, 0, 0.05);
    nb_node *w = gc_param(g, c, 1, &shape[rank - 1], -2, 2);
    return nb_add(g, nb_mul(g, x, w), op(g, x));
}

#define INPUT_CASES(name, lo, hi, margin)                                     \
    static nb_node *name##_rows(nb_graph *g, gc_ctx *c)                       \
    {                                                                         \
        return gc_on_input(g, c, 0, nb_##name, lo, hi, margin);                  \
    }                                                                         \
    static nb_node *name##_channels(nb_graph *g, gc_ctx *c)                   \
    {                                                                         \
        return gc_on_input(g, c, 1, nb_##name, lo, hi, margin);                  \
    }

#define CONSTANT_CASES(name)                                                  \
    static nb_node *name##_rows(nb_graph *g, gc_ctx *c)                       \
    {                                                                         \
        return with_constant(g, c, 0, nb_##name);                             \
    }                                                                         \
    static nb_node *name##_channels(nb_graph *g, gc_ctx *c)                   \
    {                                                                         \
        return with_constant(g, c, 1, nb_##name);                             \
    }

#define FLAT_CASES(name)                                                      \
    static nb_node *name##_rows(nb_graph *g, gc_ctx *c)                       \
    {                                                                         \
        return flat_beside_product(g, c, 0, nb_##name);                       \
    }                                                                         \
    static nb_node *name##_channels(nb_graph *g, gc_ctx *c)                   \
    {                                                                         \
        return flat_beside_product(g, c, 1, nb_##name);                       \
    }

INPUT_CASES(neg, -2, 2, 0)
INPUT_CASES(exp, -2, 2, 0)
INPUT_CASES(log, 0.5, 3, 0)  /* positive only */
INPUT_CASES(sqrt, 0.5, 3, 0) /* positive, away from the infinite slope at 0 */
INPUT_CASES(square, -2, 2, 0)
INPUT_CASES(abs, -2, 2, 0.05) /* away from the kink */
CONSTANT_CASES(scale)
CONSTANT_CASES(add_scalar)
FLAT_CASES(sign)
FLAT_CASES(step)

#define ROWS(name, domain)                                                    \
    {#name, "[B,N], " domain, name##_rows},                                   \
    {#name, "[B,C,N], " domain, name##_channels}

const gc_case gc_cases_unary[] = {
    ROWS(neg, "x in [-2,2]"),
    ROWS(exp, "x in [-2,2]"),
    ROWS(log, "x in [0.5,3]"),
    ROWS(sqrt, "x in [0.5,3]"),
    ROWS(square, "x in [-2,2]"),
    ROWS(abs, "|x| >= 0.05"),
    ROWS(scale, "c in [-3,3]"),
    ROWS(add_scalar, "c in [-3,3]"),
    ROWS(sign, "x * w[N] + sign(x), |x| >= 0.05"),
    ROWS(step, "x * w[N] + step(x), |x| >= 0.05"),
    {NULL, NULL, NULL},
};
