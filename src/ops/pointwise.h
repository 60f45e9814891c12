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
/* The second parameter's name, for the ops that have two. */
#ifndef POINTWISE_PARAM2
#define POINTWISE_PARAM2 pointwise_param2_unused
#endif

/* The kernel of that name for the element type T (inside NB_TYPED). */
#define VM(name) NB_KERNEL(nb_vm_##name, T)

static inline int pointwise_infer(nb_op_call *c)
{
    nb_same_as_input(c, 0);
    return NB_OK;
}

/* The shape rule of an op with parameters, which must be finite: `what`
 * names them, one or two. */
static inline int pointwise_param_infer(nb_op_call *c, const char *what0,
                                        const char *what1)
{
    if (!c->attrs)
        return nb_op_fail(c, "%s is missing (attrs is NULL)", what0);
    const nb_param_attrs *at = c->attrs;
    for (int i = 0; i < (what1 ? 2 : 1); i++)
        if (!isfinite(at->p[i])) {
            char xs[128];
            return nb_op_fail(c, "%s = %g is not finite (x is %s)",
                              i ? what1 : what0, at->p[i],
                              NB_SHAPE(c->in[0], xs));
        }
    nb_same_as_input(c, 0);
    return NB_OK;
}

/* Parameter i of an op (0 for ops without one). */
static inline double nb_pointwise_param(const nb_op_call *c, int i)
{
    return c->op->attr_size ? ((const nb_param_attrs *)c->attrs)->p[i] : 0.0;
}

/* The table of an elementwise op of the list: one input; the parameter
 * block when it has parameters. Every backward of these files honours
 * in_grad_fresh (writes a fresh gradient, or clears it first). */
#define POINTWISE_TABLE(NAME, ATTR_SIZE, INFER, BACKWARD, DOC)                \
    const nb_op nb_op_##NAME = {                                              \
        .struct_size = sizeof(nb_op),                                         \
        .name = #NAME,                                                        \
        .min_inputs = 1,                                                      \
        .max_inputs = 1,                                                      \
        .attr_size = (ATTR_SIZE),                                             \
        .doc = DOC,                                                           \
        .infer = INFER,                                                       \
        .forward = NAME##_forward,                                            \
        .backward = BACKWARD,                                                 \
        .flags = NB_OP_FRESH_GRADS,                                           \
    };

/* One plain loop per op and dtype, written so gcc vectorises it. Inside
 * FWD and DX: x the input, y the value, dy the incoming gradient, and the
 * op's scalar parameter under the name POINTWISE_PARAM (0 for ops without
 * one), which the including file defines before including this header. */
#define LOOP_FORWARD(NAME, FWD)                                               \
    static int NAME##_forward(nb_op_call *c)                                  \
    {                                                                         \
        int64_t n = c->out->size;                                             \
        double param_value = nb_pointwise_param(c, 0);                        \
        double param2_value = nb_pointwise_param(c, 1);                       \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            T *restrict py = c->out->data;                                    \
            const T POINTWISE_PARAM = (T)param_value;                         \
            const T POINTWISE_PARAM2 = (T)param2_value;                       \
            (void)POINTWISE_PARAM;                                            \
            (void)POINTWISE_PARAM2;                                           \
            for (int64_t i = 0; i < n; i++) {                                 \
                const T x = px[i];                                            \
                py[i] = (FWD);                                                \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }                                                                         \
    LOOP_FORWARD1(NAME, FWD, float, f32)                                      \
    LOOP_FORWARD1(NAME, FWD, double, f64)

#define KERNEL_FORWARD(NAME)                                                  \
    static int NAME##_forward(nb_op_call *c)                                  \
    {                                                                         \
        NB_TYPED(c->out->dtype, {                                             \
            const T *px = c->in[0]->data;                                     \
            VM(NAME)(c->out->size, px, (T *)c->out->data);                \
        });                                                                   \
        return NB_OK;                                                         \
    }                                                                         \
    KERNEL_FORWARD1(NAME, float, f32)                                         \
    KERNEL_FORWARD1(NAME, double, f64)

#define LOOP_BACKWARD(NAME, DX)                                               \
    static int NAME##_backward(nb_op_call *c)                                 \
    {                                                                         \
        if (!c->in_grad[0])                                                   \
            return NB_OK;                                                     \
        int64_t n = c->out->size;                                             \
        double param_value = nb_pointwise_param(c, 0);                        \
        double param2_value = nb_pointwise_param(c, 1);                       \
        NB_TYPED(c->out->dtype, {                                             \
            const T *restrict px = c->in[0]->data;                            \
            const T *restrict py = c->out->data;                              \
            const T *restrict pdy = c->out_grad->data;                        \
            T *restrict pdx = c->in_grad[0]->data;                            \
            const T POINTWISE_PARAM = (T)param_value;                         \
            const T POINTWISE_PARAM2 = (T)param2_value;                       \
            (void)POINTWISE_PARAM;                                            \
            (void)POINTWISE_PARAM2;                                           \
            if (nb_grad_fresh(c, 0)) {                                        \
                for (int64_t i = 0; i < n; i++) {                             \
                    const T x = px[i], y = py[i], dy = pdy[i];                \
                    (void)x;                                                  \
                    (void)y;                                                  \
                    pdx[i] = (DX);                                            \
                }                                                             \
            } else {                                                          \
                for (int64_t i = 0; i < n; i++) {                             \
                    const T x = px[i], y = py[i], dy = pdy[i];                \
                    (void)x;                                                  \
                    (void)y;                                                  \
                    pdx[i] += (DX);                                           \
                }                                                             \
            }                                                                 \
        });                                                                   \
        return NB_OK;                                                         \
    }                                                                         \
    LOOP_BACKWARD1(NAME, DX, float, f32)                                      \
    LOOP_BACKWARD1(NAME, DX, double, f64)

/* The one-element forms of the loops above (nb_one_element, in
 * core/internal.h): the same formula on x[0] alone, for graphs of scalars,
 * without the loop, the dtype switch or the kernel's tail handling (a
 * kernel op calls its kernel on one element, so the bits are the
 * kernel's). REAL_T is the element type, SUF its dtype's suffix; inside
 * the formulas T names REAL_T, as in NB_TYPED. */
#define LOOP_FORWARD1(NAME, FWD, REAL_T, SUF)                                 \
    NB_MAYBE_UNUSED static int NAME##_forward1_##SUF(nb_op_call *c)           \
    {                                                                         \
        typedef REAL_T T;                                                     \
        const T POINTWISE_PARAM = (T)nb_pointwise_param(c, 0);                \
        const T POINTWISE_PARAM2 = (T)nb_pointwise_param(c, 1);               \
        const T x = *(const T *)c->in[0]->data;                               \
        (void)POINTWISE_PARAM;                                                \
        (void)POINTWISE_PARAM2;                                               \
        *(T *)c->out->data = (FWD);                                           \
        return NB_OK;                                                         \
    }

#define KERNEL_FORWARD1(NAME, REAL_T, SUF)                                    \
    NB_MAYBE_UNUSED static int NAME##_forward1_##SUF(nb_op_call *c)           \
    {                                                                         \
        nb_vm_##NAME##_##SUF(1, c->in[0]->data, c->out->data);                \
        return NB_OK;                                                         \
    }

#define LOOP_BACKWARD1(NAME, DX, REAL_T, SUF)                                 \
    NB_MAYBE_UNUSED static int NAME##_backward1_##SUF(nb_op_call *c)          \
    {                                                                         \
        if (!c->in_grad[0])                                                   \
            return NB_OK;                                                     \
        typedef REAL_T T;                                                     \
        const T POINTWISE_PARAM = (T)nb_pointwise_param(c, 0);                \
        const T POINTWISE_PARAM2 = (T)nb_pointwise_param(c, 1);               \
        const T x = *(const T *)c->in[0]->data, y = *(const T *)c->out->data; \
        const T dy = *(const T *)c->out_grad->data;                           \
        T *dx = c->in_grad[0]->data;                                          \
        (void)POINTWISE_PARAM;                                                \
        (void)POINTWISE_PARAM2;                                               \
        (void)x;                                                              \
        (void)y;                                                              \
        if (nb_grad_fresh(c, 0))                                              \
            *dx = (DX);                                                       \
        else                                                                  \
            *dx += (DX);                                                      \
        return NB_OK;                                                         \
    }

/* The one-element form of op NAME, for ops built from the loops above
 * with a backward of LOOP_BACKWARD (or none: BACKWARD1 NULL). */
#define ONE_ELEMENT(NAME, BACKWARD1_F32, BACKWARD1_F64)                       \
    const nb_one_element nb_one_##NAME = {                                    \
        &nb_op_##NAME,                                                        \
        {NAME##_forward1_f32, NAME##_forward1_f64},                           \
        {BACKWARD1_F32, BACKWARD1_F64},                                       \
    };
#define ONE_ELEMENT_OF(NAME)                                                  \
    ONE_ELEMENT(NAME, NAME##_backward1_f32, NAME##_backward1_f64)

#endif
