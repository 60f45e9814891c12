/* Run-time choice of the elementwise kernels' instruction set.
 * (Only the scalar path exists so far; the SIMD paths plug in here.) */
#include <stdlib.h>
#include <string.h>

#include "kernels/vmath_scalar.h"

const char *nb_vm_isa(void)
{
    return "scalar";
}

bool nb_vm_force_isa(const char *isa)
{
    return isa == NULL || strcmp(isa, "scalar") == 0;
}

#define FORWARD(name)                                                         \
    void nb_vm_##name##_f32(int64_t n, const float *x, float *y)              \
    {                                                                         \
        nb_vm_##name##_f32_scalar(n, x, y);                                   \
    }                                                                         \
    void nb_vm_##name##_f64(int64_t n, const double *x, double *y)            \
    {                                                                         \
        nb_vm_##name##_f64_scalar(n, x, y);                                   \
    }
NB_VM_UNARY(FORWARD)
#undef FORWARD

#define GRAD(name)                                                            \
    void nb_vm_##name##_grad_f32(int64_t n, const float *x, const float *dy,  \
                                 float *dx)                                   \
    {                                                                         \
        nb_vm_##name##_grad_f32_scalar(n, x, dy, dx);                         \
    }                                                                         \
    void nb_vm_##name##_grad_f64(int64_t n, const double *x,                  \
                                 const double *dy, double *dx)                \
    {                                                                         \
        nb_vm_##name##_grad_f64_scalar(n, x, dy, dx);                         \
    }
NB_VM_GRAD(GRAD)
#undef GRAD

void nb_vm_elu_f32(int64_t n, float alpha, const float *x, float *y)
{
    nb_vm_elu_f32_scalar(n, alpha, x, y);
}

void nb_vm_elu_f64(int64_t n, double alpha, const double *x, double *y)
{
    nb_vm_elu_f64_scalar(n, alpha, x, y);
}
