/* Gradient-check cases of the elementwise ops, generated from the op list
 * (src/ops/ops.def): each binary op on equal shapes and with a row, a
 * column and a scalar broadcast (alternating which side broadcasts, so
 * both operands' reductions are checked), and each unary op on a batch of
 * rows [B,N] and of channels [B,C,N], drawing x and its parameters from
 * the ranges the list gives.
 *
 * Kinks are found, not listed: before the check, every x is probed at
 * x - d, x and x + d, and one whose second difference is larger than a
 * smooth function's could make it is drawn again. So x stays about d away
 * from every kink and jump, wherever the op's parameters put them
 * (hardtanh's are at min_val and max_val), while the check's difference
 * step is 1e-6. An op without a backward (flat wherever it is
 * differentiable: sign, step) is checked as x * w + f(x), so the check has
 * a path through w and x's gradient, w exactly, shows f adds nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck_cases.h"

/* The probe's half-width, and the largest second difference a smooth op
 * in these ranges makes over it (|f''| d^2 with |f''| up to about 40); a
 * kink of slope jump J within d - LIMIT/J of x exceeds it. */
#define PROBE 5e-4
#define SMOOTH_LIMIT 1e-5

typedef struct gc_elementwise {
    nb_node *(*unary)(nb_graph *g, nb_node *x, const double *p);
    nb_node *(*binary)(nb_graph *g, nb_node *a, nb_node *b);
    const char *name;
    double lo, hi;          /* x (or a and b) */
    double p_lo[2], p_hi[2]; /* the parameters, when the op has them */
} gc_elementwise;

#define NB_OP_BINARY(name, lo, hi)                                            \
    static const gc_elementwise spec_##name = {                               \
        NULL, nb_##name, #name, lo, hi, {0, 0}, {0, 0}};
#define NB_OP_UNARY(name, lo, hi)                                             \
    static nb_node *apply_##name(nb_graph *g, nb_node *x, const double *p)    \
    {                                                                         \
        (void)p;                                                              \
        return nb_##name(g, x);                                               \
    }                                                                         \
    static const gc_elementwise spec_##name = {                               \
        apply_##name, NULL, #name, lo, hi, {0, 0}, {0, 0}};
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi)                             \
    static nb_node *apply_##name(nb_graph *g, nb_node *x, const double *p)    \
    {                                                                         \
        return nb_##name(g, x, p[0]);                                         \
    }                                                                         \
    static const gc_elementwise spec_##name = {                               \
        apply_##name, NULL, #name, lo, hi, {p_lo, 0}, {p_hi, 0}};
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    static nb_node *apply_##name(nb_graph *g, nb_node *x, const double *p)    \
    {                                                                         \
        return nb_##name(g, x, p[0], p[1]);                                   \
    }                                                                         \
    static const gc_elementwise spec_##name = {                               \
        apply_##name, NULL, #name, lo, hi, {p_lo, q_lo}, {p_hi, q_hi}};
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP

static const gc_elementwise *const specs[] = {
#define NB_OP_BINARY(name, lo, hi) &spec_##name,
#define NB_OP_UNARY(name, lo, hi) &spec_##name,
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi) &spec_##name,
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi) &spec_##name,
#define NB_OP(name)
#include "ops/ops.def"
#undef NB_OP
};

/* The spec of the op whose case is being built. */
static const gc_elementwise *spec_of(const gc_ctx *c)
{
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++)
        if (strcmp(specs[i]->name, c->op) == 0)
            return specs[i];
    return NULL;
}

/* ---- binary ---- */

/* a [B,M,N] against b of one of several broadcastable shapes. */
static nb_node *pair(nb_graph *g, gc_ctx *c, int form)
{
    const gc_elementwise *s = spec_of(c);
    double lo = s->lo, hi = s->hi;
    int64_t B = gc_dim(c, 1, 3), M = gc_dim(c, 1, 4), N = gc_dim(c, 1, 5);
    nb_node *a = gc_input(g, c, 3, (int64_t[]){B, M, N}, lo, hi);
    nb_node *b;
    switch (form) {
    case 0: b = gc_param(g, c, 3, (int64_t[]){B, M, N}, lo, hi); break;
    case 1: b = gc_param(g, c, 1, (int64_t[]){N}, lo, hi); break;       /* row */
    case 2: b = gc_param(g, c, 3, (int64_t[]){1, M, 1}, lo, hi); break; /* column */
    default: b = gc_param(g, c, 0, NULL, lo, hi); break;                /* scalar */
    }
    return form % 2 ? s->binary(g, b, a) : s->binary(g, a, b);
}

static nb_node *binary_same(nb_graph *g, gc_ctx *c) { return pair(g, c, 0); }
static nb_node *binary_row(nb_graph *g, gc_ctx *c) { return pair(g, c, 1); }
static nb_node *binary_col(nb_graph *g, gc_ctx *c) { return pair(g, c, 2); }
static nb_node *binary_scalar(nb_graph *g, gc_ctx *c) { return pair(g, c, 3); }

/* ---- unary ---- */

/* Draws x[0..n) in [lo, hi) away from the op's kinks (see the top). */
static void draw_smooth(gc_ctx *c, const gc_elementwise *s, const double *p,
                        double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = gc_uniform(c, s->lo, s->hi);
    double *probe = malloc((size_t)(3 * n) * sizeof *probe);
    for (int round = 0; probe && round < 100; round++) {
        for (int64_t i = 0; i < n; i++) {
            probe[3 * i] = x[i] - PROBE;
            probe[3 * i + 1] = x[i];
            probe[3 * i + 2] = x[i] + PROBE;
        }
        nb_graph *g = nb_graph_new();
        nb_node *in = nb_input(g, NULL, NB_F64, 1, (int64_t[]){3 * n});
        nb_feed(g, in, 1, (int64_t[]){3 * n}, probe);
        nb_node *y = s->unary(g, in, p);
        int redrawn = 0;
        if (y && nb_forward(g, y) == NB_OK) {
            const nb_tensor *v = nb_node_value(y);
            for (int64_t i = 0; i < n; i++) {
                double d2 = nb_tensor_get(v, 3 * i) -
                            2 * nb_tensor_get(v, 3 * i + 1) +
                            nb_tensor_get(v, 3 * i + 2);
                if (!(fabs(d2) <= SMOOTH_LIMIT)) {
                    x[i] = gc_uniform(c, s->lo, s->hi);
                    redrawn++;
                }
            }
        }
        nb_graph_free(g);
        if (!redrawn)
            break;
    }
    free(probe);
}

static nb_node *unary(nb_graph *g, gc_ctx *c, int form)
{
    const gc_elementwise *s = spec_of(c);
    double p[2];
    for (int i = 0; i < 2; i++)
        p[i] = gc_uniform(c, s->p_lo[i], s->p_hi[i]);
    int64_t shape[3];
    int rank = gc_batch_shape(c, form, shape);
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    double *x = malloc((size_t)n * sizeof *x);
    if (!x)
        return NULL;
    draw_smooth(c, s, p, x, n);
    nb_node *in = nb_input(g, "x", NB_F64, rank, shape);
    nb_input_set_requires_grad(g, in, true);
    nb_feed(g, in, rank, shape, x);
    free(x);
    const nb_op *op = nb_find_op(s->name);
    if (op && !op->backward) {
        nb_node *w = gc_param(g, c, 1, &shape[rank - 1], -2, 2);
        return nb_add(g, nb_mul(g, in, w), s->unary(g, in, p));
    }
    return s->unary(g, in, p);
}

static nb_node *unary_rows(nb_graph *g, gc_ctx *c) { return unary(g, c, 0); }
static nb_node *unary_channels(nb_graph *g, gc_ctx *c) { return unary(g, c, 1); }

/* ---- the table ---- */

#define DOMAIN(lo, hi) "in [" #lo ", " #hi ")"
#define NB_OP_BINARY(name, lo, hi)                                            \
    {#name, "same shape [B,M,N], " DOMAIN(lo, hi), binary_same},              \
    {#name, "row [N] broadcast, " DOMAIN(lo, hi), binary_row},                \
    {#name, "column [1,M,1] broadcast, " DOMAIN(lo, hi), binary_col},         \
    {#name, "scalar broadcast, " DOMAIN(lo, hi), binary_scalar},
#define UNARY_ROWS(name, lo, hi, params)                                      \
    {#name, "[B,N], x " DOMAIN(lo, hi) params, unary_rows},                   \
    {#name, "[B,C,N], x " DOMAIN(lo, hi) params, unary_channels},
#define NB_OP_UNARY(name, lo, hi) UNARY_ROWS(name, lo, hi, "")
#define NB_OP_UNARY1(name, p, p_lo, p_hi, lo, hi)                             \
    UNARY_ROWS(name, lo, hi, ", " #p " " DOMAIN(p_lo, p_hi))
#define NB_OP_UNARY2(name, p, p_lo, p_hi, q, q_lo, q_hi, lo, hi)              \
    UNARY_ROWS(name, lo, hi,                                                  \
               ", " #p " " DOMAIN(p_lo, p_hi) ", " #q " " DOMAIN(q_lo, q_hi))
#define NB_OP(name)

const gc_case gc_cases_elementwise[] = {
#include "ops/ops.def"
    {NULL, NULL, NULL},
};
#undef NB_OP
