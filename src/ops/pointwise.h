/* The machinery shared by the pointwise (elementwise unary) op files,
 * unary.c and activation.c: the shape rule, the optional scalar parameter
 * (the c of scale, the alpha of leaky_relu), and loop templates that write
 * each op's forward and backward once for both dtypes. */
#ifndef NABLA_POINTWISE_H
#define NABLA_POINTWISE_H

#include <math.h>

#include "ops/op_util.h"

#ifndef POINTWISE_PARAM
#error "define POINTWISE_PARAM, the name the op formulas use for the parameter"
#endif

/* The one scalar parameter of an op such as scale or elu. */
typedef struct pointwise_attrs {
    double value;
} pointwise_attrs;

/* The kernel of that name for the element type of pointer p. */
#define VM(name, p)                                                           \
    _Generic((p), const float *: nb_vm_##name##_f32,                          \
             const double *: nb_vm_##name##_f64)

static inline int pointwise_infer(nb_op_call *c)
{
    nb_same_as_input(c, 0);
    return NB_OK;
}

/* The shape rule of an op with a parameter, which must be finite. */
static inline int pointwise_param_infer(nb_op_call *c, const char *what)
{
    if (!c->attrs)
        return nb_op_fail(c, "%s is missing (attrs is NULL)", what);
    double v = ((const pointwise_attrs *)c->attrs)->value;
    if (!isfinite(v)) {
        char xs[128];
        return nb_op_fail(c, "%s = %g is not finite (x is %s)", what, v,
                          NB_SHAPE(c->in[0], xs));
    }
    nb_same_as_input(c, 0);
    return NB_OK;
}

static inline double nb_pointwise_param(const nb_op_call *c)
{
    return c->op->attr_size ? ((const pointwise_attrs *)c->attrs)->value : 0.0;
}

/* One plain loop per op and dtype, written so gcc vectorises it. Inside
 * FWD and DX: x the input, y the value, dy the incoming gradient, and the
 * op's scalar parameter under the name POINTWISE_PARAM (0 for ops without
 * one), which the including file defines before including this header. */
#define LOOP_FORWARD(NAME, FWD)                                               \
    static int NAME##_forward(nb_op_call *c)                                  \
    {                                                                         \
        int64_t n = c->out->size;                                             \
        double param_value = nb_pointwise_param(c);                           \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            T *restrict py = c->out->data;                                    \
            const T POINTWISE_PARAM = (T)param_value;                         \
            (void)POINTWISE_PARAM;                                            \
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
        double param_value = nb_pointwise_param(c);                           \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            const T *restrict py = c->out->data;                              \
            const T *restrict pdy = c->out_grad->data;                        \
            T *restrict pdx = c->in_grad[0]->data;                            \
            const T POINTWISE_PARAM = (T)param_value;                         \
            (void)POINTWISE_PARAM;                                            \
            for (int64_t i = 0; i < n; i++) {                                 \
                const T x = px[i], y = py[i], dy = pdy[i];                    \
                (void)x;                                                      \
                (void)y;                                                      \
                pdx[i] += (DX);                                               \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }

#endif
