/* Activation functions, elementwise: y has x's shape and dtype.
 *
 * Phi and phi are the standard normal CDF and density. At the kink x = 0
 * the derivative is the left one: relu'(0) = 0, leaky_relu'(0) = alpha,
 * elu'(0) = alpha, selu'(0) = lambda alpha. hardtanh and hardsigmoid are
 * PyTorch's: their derivative is 0 at their kinks (x = min_val or max_val,
 * x = -3 or 3), the flat side's, as relu'(0) = 0; hardtanh needs
 * min_val <= max_val.
 *
 * The transcendental forwards run on the vectorised kernels. Where the
 * derivative is a cheap function of the value y (sigmoid, tanh, elu, selu)
 * backward reuses y instead of recomputing an exponential; softplus, gelu
 * and silu need x, so their derivatives come from the gradient kernels.
 *
 * The ops' doc strings (docs/ops.md and ops.h show them; the ops_doc
 * test fails if one is missing here):
 *
 *   identity: y = x; dx = dy
 *   sigmoid: y = 1 / (1 + exp(-x)); dx = dy * y (1 - y)
 *   tanh: y = tanh(x); dx = dy * (1 - y^2)
 *   relu: y = max(x, 0); dx = dy * [x > 0] (0 at x = 0)
 *   leaky_relu: y = x > 0 ? x : alpha x; dx = dy * (x > 0 ? 1 :
 *       alpha)
 *   elu: y = x > 0 ? x : alpha (exp(x) - 1); dx = dy * (x > 0 ? 1 : y
 *       + alpha)
 *   selu: y = lambda (x > 0 ? x : alpha (exp(x) - 1)), lambda =
 *       1.0507009873554805, alpha = 1.6732632423543772; dx = dy * (x
 *       > 0 ? lambda : y + lambda alpha)
 *   softplus: y = log(1 + exp(x)); dx = dy * sigmoid(x)
 *   gelu: y = x Phi(x) (exact, erf form); dx = dy * (Phi(x) + x
 *       phi(x))
 *   silu: y = x s, s = sigmoid(x); dx = dy * s (1 + x (1 - s))
 *   hardtanh: y = min(max(x, min_val), max_val); dx = dy * [min_val <
 *       x < max_val] (0 at the kinks)
 *   hardsigmoid: y = min(max(x + 3, 0), 6) / 6; dx = dy / 6 * [-3 < x <
 *       3] (0 at the kinks)
 */
#include <math.h>

#define POINTWISE_PARAM alpha
#define POINTWISE_PARAM2 alpha2 /* hardtanh's max_val; alpha is its min_val */
#include "ops/pointwise.h"

#define SELU_LAMBDA 1.0507009873554804934
#define SELU_ALPHA 1.6732632423543772848

static int alpha_infer(nb_op_call *c)
{
    return pointwise_param_infer(c, "alpha", NULL);
}

/* The ops with a kink at 0 split each element's message into the part on
 * the positive side, on = [x > 0] dy POS_SLOPE, and the rest,
 * off = [x <= 0] dy, and add on + off * NEG_SLOPE: exactly dy POS_SLOPE or
 * dy NEG_SLOPE. The plain select x > 0 ? dy : dy * slope would not
 * vectorise: gcc keeps a select with arithmetic in a branch as a branch
 * (the arithmetic might raise a floating-point exception the scalar code
 * would not). In NEG_SLOPE, y_neg is y where x <= 0 and 0 elsewhere, so
 * that NEG_SLOPE stays finite where it is multiplied by 0. gcc 12 still
 * folds selu's literal constants back into branches, so selu's loop stays
 * scalar unless the target has masked vector instructions. */
#define KINK_BACKWARD(NAME, POS_SLOPE, NEG_SLOPE)                             \
    static int NAME##_backward(nb_op_call *c)                                 \
    {                                                                         \
        if (!c->in_grad[0])                                                   \
            return NB_OK;                                                     \
        nb_grad_clear_fresh(c, 0);                                            \
        int64_t n = c->out->size;                                             \
        double alpha_attr = nb_pointwise_param(c, 0);                            \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            const T *restrict py = c->out->data;                              \
            const T *restrict pdy = c->out_grad->data;                        \
            T *restrict pdx = c->in_grad[0]->data;                            \
            const T alpha = (T)alpha_attr;                                    \
            (void)alpha;                                                      \
            for (int64_t i = 0; i < n; i++) {                                 \
                const T x = px[i], y = py[i], dy = pdy[i];                    \
                const T y_neg = x > 0 ? (T)0 : y, dy_pos = dy * (POS_SLOPE);  \
                const T on = x > 0 ? dy_pos : (T)0, off = x > 0 ? (T)0 : dy;  \
                (void)y_neg;                                                  \
                pdx[i] += on + off * (NEG_SLOPE);                             \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }

/* dx += dy * f'(x) straight from the gradient kernel. */
#define KERNEL_BACKWARD(NAME)                                                 \
    static int NAME##_backward(nb_op_call *c)                                 \
    {                                                                         \
        if (!c->in_grad[0])                                                   \
            return NB_OK;                                                     \
        nb_grad_clear_fresh(c, 0);                                            \
        NB_TYPED(c->out->dtype, {                                             \
            const T *px = c->in[0]->data;                                     \
            VM(NAME##_grad)(c->out->size, px,                             \
                                (const T *)c->out_grad->data,                 \
                                (T *)c->in_grad[0]->data);                    \
        });                                                                   \
        return NB_OK;                                                         \
    }

/* The tables; the constructors come from ops.def (registry.c). */
#define PLAIN_OP(NAME, DOC)                                                   \
    POINTWISE_TABLE(NAME, 0, pointwise_infer, NAME##_backward, DOC)
#define ALPHA_OP(NAME, DOC)                                                   \
    POINTWISE_TABLE(NAME, sizeof(nb_param_attrs), alpha_infer,                \
                    NAME##_backward, DOC)

static int identity_forward(nb_op_call *c)
{
    if (c->out->size > 0)
        memcpy(c->out->data, c->in[0]->data, nb_tensor_bytes(c->out));
    return NB_OK;
}
LOOP_BACKWARD(identity, dy)
PLAIN_OP(identity, "y = x; dx = dy")

KERNEL_FORWARD(sigmoid)
LOOP_BACKWARD(sigmoid, dy * y * (1 - y))
PLAIN_OP(sigmoid, "y = 1 / (1 + exp(-x)); dx = dy * y (1 - y)")
ONE_ELEMENT_OF(sigmoid)

KERNEL_FORWARD(tanh)
LOOP_BACKWARD(tanh, dy * (1 - y * y))
PLAIN_OP(tanh, "y = tanh(x); dx = dy * (1 - y^2)")
ONE_ELEMENT_OF(tanh)

/* Written so that a NaN passes through instead of becoming 0. */
LOOP_FORWARD(relu, x <= 0 ? (T)0 : x)
LOOP_BACKWARD(relu, x > 0 ? dy : (T)0)
PLAIN_OP(relu, "y = max(x, 0); dx = dy * [x > 0] (0 at x = 0)")
ONE_ELEMENT_OF(relu)

/* relu(x) - alpha relu(-x), so that no select has arithmetic in a branch
 * (see KINK_BACKWARD). */
LOOP_FORWARD(leaky_relu, (x > 0 ? x : (T)0) + alpha * (x > 0 ? (T)0 : x))
KINK_BACKWARD(leaky_relu, 1, alpha)
ALPHA_OP(leaky_relu,
         "y = x > 0 ? x : alpha x; dx = dy * (x > 0 ? 1 : alpha)")

static int elu_forward(nb_op_call *c)
{
    double alpha = nb_pointwise_param(c, 0);
    NB_TYPED(c->out->dtype, {
        const T *px = c->in[0]->data;
        VM(elu)(c->out->size, (T)alpha, px, (T *)c->out->data);
    });
    return NB_OK;
}
/* For x <= 0, d/dx alpha (e^x - 1) = alpha e^x = y + alpha. */
KINK_BACKWARD(elu, 1, y_neg + alpha)
ALPHA_OP(elu, "y = x > 0 ? x : alpha (exp(x) - 1); "
              "dx = dy * (x > 0 ? 1 : y + alpha)")

KERNEL_FORWARD(selu)
KINK_BACKWARD(selu, (T)SELU_LAMBDA, y_neg + (T)(SELU_LAMBDA * SELU_ALPHA))
PLAIN_OP(selu, "y = lambda (x > 0 ? x : alpha (exp(x) - 1)), "
               "lambda = 1.0507009873554805, alpha = 1.6732632423543772; "
               "dx = dy * (x > 0 ? lambda : y + lambda alpha)")

KERNEL_FORWARD(softplus)
KERNEL_BACKWARD(softplus)
PLAIN_OP(softplus, "y = log(1 + exp(x)); dx = dy * sigmoid(x)")

KERNEL_FORWARD(gelu)
KERNEL_BACKWARD(gelu)
PLAIN_OP(gelu, "y = x Phi(x) (exact, erf form); "
               "dx = dy * (Phi(x) + x phi(x))")

KERNEL_FORWARD(silu)
KERNEL_BACKWARD(silu)
PLAIN_OP(silu, "y = x s, s = sigmoid(x); dx = dy * s (1 + x (1 - s))")

static int hardtanh_infer(nb_op_call *c)
{
    int rc = pointwise_param_infer(c, "min_val", "max_val");
    const nb_param_attrs *at = c->attrs;
    if (rc == NB_OK && at->p[0] > at->p[1])
        return nb_op_fail(c, "min_val = %g is above max_val = %g", at->p[0],
                          at->p[1]);
    return rc;
}
/* Selects without arithmetic, so a NaN passes through and gcc vectorises. */
LOOP_FORWARD(hardtanh, x < alpha ? alpha : x > alpha2 ? alpha2 : x)
LOOP_BACKWARD(hardtanh, x > alpha && x < alpha2 ? dy : (T)0)
POINTWISE_TABLE(hardtanh, sizeof(nb_param_attrs), hardtanh_infer,
                hardtanh_backward,
                "y = min(max(x, min_val), max_val); "
                "dx = dy * [min_val < x < max_val] (0 at the kinks)")

/* Written so that a NaN passes through instead of becoming 0 or 1. */
LOOP_FORWARD(hardsigmoid,
             (x + 3 <= 0 ? (T)0 : x + 3 >= 6 ? (T)6 : x + 3) / 6)
LOOP_BACKWARD(hardsigmoid, (x > -3 && x < 3 ? dy : (T)0) / 6)
PLAIN_OP(hardsigmoid, "y = min(max(x + 3, 0), 6) / 6; "
                      "dx = dy / 6 * [-3 < x < 3] (0 at the kinks)")
