/* Elementwise unary ops: y has x's shape and dtype.
 *
 *   neg         y = -x             dx = -dy
 *   exp         y = e^x            dx = dy * y
 *   log         y = ln x           dx = dy / x
 *   sqrt        y = sqrt(x)        dx = dy / (2 y)
 *   square      y = x^2            dx = dy * 2 x
 *   abs         y = |x|            dx = dy * sign(x)      (0 at x = 0)
 *   scale       y = c x            dx = dy * c
 *   add_scalar  y = x + c          dx = dy
 *   sign        y = -1, 0, +1      dx = 0                 (no backward)
 *   step        y = [x > 0]        dx = 0                 (no backward)
 *
 * sign and step are flat wherever they are differentiable, so their op
 * tables have no backward and the executor sends nothing through them.
 * exp and log run on the vectorised kernels; exp's derivative reuses the
 * value it already computed.
 */
#include <math.h>
#include <tgmath.h>

#include "ops/op_util.h"

/* The constant of scale and add_scalar. */
typedef struct constant_attrs {
    double c;
} constant_attrs;

/* The kernel of that name for the element type of pointer p. */
#define VM(name, p)                                                           \
    _Generic((p), const float *: nb_vm_##name##_f32,                          \
             const double *: nb_vm_##name##_f64)

static int same_as_x_infer(nb_op_call *c)
{
    nb_same_as_input(c, 0);
    return NB_OK;
}

static int constant_infer(nb_op_call *c)
{
    if (!c->attrs)
        return nb_op_fail(c, "the constant c is missing (attrs is NULL)");
    double k = ((const constant_attrs *)c->attrs)->c;
    if (!isfinite(k)) {
        char xs[128];
        return nb_op_fail(c, "constant c = %g is not finite (x is %s)", k,
                          NB_SHAPE(c->in[0], xs));
    }
    nb_same_as_input(c, 0);
    return NB_OK;
}

static double constant_of(const nb_op_call *c)
{
    return c->op->attr_size ? ((const constant_attrs *)c->attrs)->c : 0.0;
}

/* One plain loop per op and dtype, written so gcc vectorises it. Inside
 * FWD and DX: x the input, y the value, dy the incoming gradient, k the
 * op's constant (0 for ops without one). */
#define LOOP_FORWARD(NAME, FWD)                                               \
    static int NAME##_forward(nb_op_call *c)                                  \
    {                                                                         \
        int64_t n = c->out->size;                                             \
        double k_attr = constant_of(c);                                       \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            T *restrict py = c->out->data;                                    \
            const T k = (T)k_attr;                                            \
            (void)k;                                                          \
            for (int64_t i = 0; i < n; i++) {                                 \
                const T x = px[i];                                            \
                py[i] = (FWD);                                                \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }

#define KERNEL_FORWARD(NAME)                                                  \
    static int NAME##_forward(nb_op_call *c)                                  \
    {                                                                         \
        NB_TYPED(c->out->dtype, {                                             \
            const T *px = c->in[0]->data;                                     \
            VM(NAME, px)(c->out->size, px, (T *)c->out->data);                \
        });                                                                   \
        return NB_OK;                                                         \
    }

#define LOOP_BACKWARD(NAME, DX)                                               \
    static int NAME##_backward(nb_op_call *c)                                 \
    {                                                                         \
        if (!c->in_grad[0])                                                   \
            return NB_OK;                                                     \
        int64_t n = c->out->size;                                             \
        double k_attr = constant_of(c);                                       \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            const T *restrict py = c->out->data;                              \
            const T *restrict pdy = c->out_grad->data;                        \
            T *restrict pdx = c->in_grad[0]->data;                            \
            const T k = (T)k_attr;                                            \
            (void)k;                                                          \
            for (int64_t i = 0; i < n; i++) {                                 \
                const T x = px[i], y = py[i], dy = pdy[i];                    \
                (void)x;                                                      \
                (void)y;                                                      \
                pdx[i] += (DX);                                               \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }

#define OP_TABLE(NAME, ATTR_SIZE, INFER, BACKWARD, DOC)                       \
    const nb_op nb_op_##NAME = {#NAME,  1,     1,        ATTR_SIZE, DOC,      \
                                INFER,  NAME##_forward, BACKWARD};

/* An op without a constant: its table and constructor. */
#define PLAIN_OP(NAME, BACKWARD, DOC)                                         \
    OP_TABLE(NAME, 0, same_as_x_infer, BACKWARD, DOC)                         \
    nb_node *nb_##NAME(nb_graph *g, nb_node *x)                               \
    {                                                                         \
        return nb_apply(g, &nb_op_##NAME, 1, &x, NULL);                       \
    }

/* An op with the constant c. */
#define CONSTANT_OP(NAME, DOC)                                                \
    OP_TABLE(NAME, sizeof(constant_attrs), constant_infer, NAME##_backward,   \
             DOC)                                                             \
    nb_node *nb_##NAME(nb_graph *g, nb_node *x, double c)                     \
    {                                                                         \
        constant_attrs attrs = {c};                                           \
        return nb_apply(g, &nb_op_##NAME, 1, &x, &attrs);                     \
    }

LOOP_FORWARD(neg, -x)
LOOP_BACKWARD(neg, -dy)
PLAIN_OP(neg, neg_backward, "y = -x; dx = -dy")

KERNEL_FORWARD(exp)
LOOP_BACKWARD(exp, dy * y)
PLAIN_OP(exp, exp_backward, "y = exp(x); dx = dy * y")

KERNEL_FORWARD(log)
LOOP_BACKWARD(log, dy / x)
PLAIN_OP(log, log_backward, "y = log(x); dx = dy / x")

/* Scalar unless built with -fno-math-errno: sqrt may set errno. */
LOOP_FORWARD(sqrt, sqrt(x))
LOOP_BACKWARD(sqrt, dy / (2 * y))
PLAIN_OP(sqrt, sqrt_backward, "y = sqrt(x); dx = dy / (2 y)")

LOOP_FORWARD(square, x * x)
LOOP_BACKWARD(square, 2 * x * dy)
PLAIN_OP(square, square_backward, "y = x^2; dx = dy * 2 x")

LOOP_FORWARD(abs, fabs(x))
LOOP_BACKWARD(abs, x > 0 ? dy : x < 0 ? -dy : (T)0)
PLAIN_OP(abs, abs_backward, "y = |x|; dx = dy * sign(x) (0 at x = 0)")

LOOP_FORWARD(scale, k * x)
LOOP_BACKWARD(scale, k * dy)
CONSTANT_OP(scale, "y = c x; dx = dy * c")

LOOP_FORWARD(add_scalar, x + k)
LOOP_BACKWARD(add_scalar, dy)
CONSTANT_OP(add_scalar, "y = x + c; dx = dy")

/* NaN stays NaN, so checking mode still sees where it came from. */
LOOP_FORWARD(sign, x > 0 ? (T)1 : x < 0 ? (T)-1 : x)
PLAIN_OP(sign, NULL, "y = sign(x) in {-1, 0, +1}; dx = 0")

LOOP_FORWARD(step, x > 0 ? (T)1 : (T)0)
PLAIN_OP(step, NULL, "y = 1 if x > 0 else 0; dx = 0")
