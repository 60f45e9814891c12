/* Elementwise unary ops: y has x's shape and dtype.
 *
 * sign and step are flat wherever they are differentiable, so their op
 * tables have no backward and the executor sends nothing through them.
 * exp and log run on the vectorised kernels; exp's derivative reuses the
 * value it already computed.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   neg: y = -x; dx = -dy
 *   exp: y = exp(x); dx = dy * y
 *   log: y = log(x); dx = dy / x
 *   sqrt: y = sqrt(x); dx = dy / (2 y)
 *   square: y = x^2; dx = dy * 2 x
 *   abs: y = |x|; dx = dy * sign(x) (0 at x = 0)
 *   scale: y = c x; dx = dy * c
 *   add_scalar: y = x + c; dx = dy
 *   sign: y = sign(x) in {-1, 0, +1}; dx = 0
 *   step: y = 1 if x > 0 else 0; dx = 0
 */
#include <math.h>
#include <tgmath.h>

#define POINTWISE_PARAM k
#include "ops/pointwise.h"

static int constant_infer(nb_op_call *c)
{
    return pointwise_param_infer(c, "constant c", NULL);
}

/* The tables; the constructors come from ops.def (registry.c). */
#define PLAIN_OP(NAME, BACKWARD, DOC)                                         \
    POINTWISE_TABLE(NAME, 0, pointwise_infer, BACKWARD, DOC)
#define CONSTANT_OP(NAME, DOC)                                                \
    POINTWISE_TABLE(NAME, sizeof(nb_param_attrs), constant_infer,             \
                    NAME##_backward, DOC)

LOOP_FORWARD(neg, -x)
LOOP_BACKWARD(neg, -dy)
PLAIN_OP(neg, neg_backward, "y = -x; dx = -dy")
ONE_ELEMENT_OF(neg)

KERNEL_FORWARD(exp)
LOOP_BACKWARD(exp, dy * y)
PLAIN_OP(exp, exp_backward, "y = exp(x); dx = dy * y")
ONE_ELEMENT_OF(exp)

KERNEL_FORWARD(log)
LOOP_BACKWARD(log, dy / x)
PLAIN_OP(log, log_backward, "y = log(x); dx = dy / x")
ONE_ELEMENT_OF(log)

/* Scalar unless built with -fno-math-errno: sqrt may set errno. */
LOOP_FORWARD(sqrt, sqrt(x))
LOOP_BACKWARD(sqrt, dy / (2 * y))
PLAIN_OP(sqrt, sqrt_backward, "y = sqrt(x); dx = dy / (2 y)")
ONE_ELEMENT_OF(sqrt)

LOOP_FORWARD(square, x * x)
LOOP_BACKWARD(square, 2 * x * dy)
PLAIN_OP(square, square_backward, "y = x^2; dx = dy * 2 x")
ONE_ELEMENT_OF(square)

LOOP_FORWARD(abs, fabs(x))
LOOP_BACKWARD(abs, x > 0 ? dy : x < 0 ? -dy : (T)0)
PLAIN_OP(abs, abs_backward, "y = |x|; dx = dy * sign(x) (0 at x = 0)")
ONE_ELEMENT_OF(abs)

LOOP_FORWARD(scale, k * x)
LOOP_BACKWARD(scale, k * dy)
CONSTANT_OP(scale, "y = c x; dx = dy * c")
ONE_ELEMENT_OF(scale)

LOOP_FORWARD(add_scalar, x + k)
LOOP_BACKWARD(add_scalar, dy)
CONSTANT_OP(add_scalar, "y = x + c; dx = dy")
ONE_ELEMENT_OF(add_scalar)

/* NaN stays NaN, so checking mode still sees where it came from. */
LOOP_FORWARD(sign, x > 0 ? (T)1 : x < 0 ? (T)-1 : x)
PLAIN_OP(sign, NULL, "y = sign(x) in {-1, 0, +1}; dx = 0")

LOOP_FORWARD(step, x > 0 ? (T)1 : (T)0)
PLAIN_OP(step, NULL, "y = 1 if x > 0 else 0; dx = 0")
