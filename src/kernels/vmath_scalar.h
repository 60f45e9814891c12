/* The scalar reference kernels (vmath_scalar.c), named
 * <kernel>_<type>_scalar. */
#ifndef NABLA_VMATH_SCALAR_H
#define NABLA_VMATH_SCALAR_H

#include <stdint.h>

#include "kernels/kernels.h"

#define NB_VM_DECLARE_ISA(name, isa)                                           \
    void nb_vm_##name##_f32_##isa(int64_t n, const float *x, float *y);        \
    void nb_vm_##name##_f64_##isa(int64_t n, const double *x, double *y);
#define NB_VM_DECLARE_GRAD_ISA(name, isa)                                      \
    void nb_vm_##name##_grad_f32_##isa(int64_t n, const float *x,              \
                                       const float *dy, float *dx);            \
    void nb_vm_##name##_grad_f64_##isa(int64_t n, const double *x,             \
                                       const double *dy, double *dx);
#define NB_VM_DECLARE_ELU_ISA(isa)                                             \
    void nb_vm_elu_f32_##isa(int64_t n, float alpha, const float *x,           \
                             float *y);                                        \
    void nb_vm_elu_f64_##isa(int64_t n, double alpha, const double *x,         \
                             double *y);
#define NB_VM_DECLARE_LSTM_ISA(isa)                                            \
    void nb_vm_lstm_cell_f32_##isa(int64_t n, float *a, const float *cp,      \
                                   float *c, float *tc, float *h);            \
    void nb_vm_lstm_cell_f64_##isa(int64_t n, double *a, const double *cp,    \
                                   double *c, double *tc, double *h);     \
    void nb_vm_lstm_cell_back_f32_##isa(int64_t n, const float *a,            \
                                        const float *cp, const float *tc,     \
                                        const float *dy, const float *dhn,    \
                                        float *dc, float *da, float *da2);    \
    void nb_vm_lstm_cell_back_f64_##isa(int64_t n, const double *a,           \
                                        const double *cp, const double *tc,   \
                                        const double *dy, const double *dhn,  \
                                        double *dc, double *da, double *da2); \
    void nb_vm_gru_cell_back_f32_##isa(int64_t n, const float *a,             \
                                       const float *hn, const float *hp,      \
                                       const float *dy, float *dhn,           \
                                       float *da, float *dah, float *dah2);   \
    void nb_vm_gru_cell_back_f64_##isa(int64_t n, const double *a,            \
                                       const double *hn, const double *hp,    \
                                       const double *dy, double *dhn,         \
                                       double *da, double *dah, double *dah2);

#define NB_VM_SCALAR_DECL(name) NB_VM_DECLARE_ISA(name, scalar)
#define NB_VM_SCALAR_GRAD_DECL(name) NB_VM_DECLARE_GRAD_ISA(name, scalar)
NB_VM_UNARY(NB_VM_SCALAR_DECL)
NB_VM_GRAD(NB_VM_SCALAR_GRAD_DECL)
NB_VM_DECLARE_ELU_ISA(scalar)
NB_VM_DECLARE_LSTM_ISA(scalar)
#undef NB_VM_SCALAR_DECL
#undef NB_VM_SCALAR_GRAD_DECL

#endif
