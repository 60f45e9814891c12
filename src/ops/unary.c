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

#define POINTWISE_PARAM k
#include "ops/pointwise.h"

static int constant_infer(nb_op_call *c)
{
    return pointwise_param_infer(c, "constant c");
}

#define OP_TABLE(NAME, ATTR_SIZE, INFER, BACKWARD, DOC)                       \
    const nb_op nb_op_##NAME = {#NAME,  1,     1,        ATTR_SIZE, DOC,      \
                                INFER,  NAME##_forward, BACKWARD};

/* An op without a constant: its table and constructor. */
#define PLAIN_OP(NAME, BACKWARD, DOC)                                         \
    OP_TABLE(NAME, 0, pointwise_infer, BACKWARD, DOC)                         \
    nb_node *nb_##NAME(nb_graph *g, nb_node *x)                               \
    {                                                                         \
        return nb_apply(g, &nb_op_##NAME, 1, &x, NULL);                       \
    }

/* An op with the constant c. */
#define CONSTANT_OP(NAME, DOC)                                                \
    OP_TABLE(NAME, sizeof(pointwise_attrs), constant_infer, NAME##_backward,  \
             DOC)                                                             \
    nb_node *nb_##NAME(nb_graph *g, nb_node *x, double c)                     \
    {                                                                         \
        pointwise_attrs attrs = {c};                                          \
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
