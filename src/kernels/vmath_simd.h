/* The SIMD elementwise kernels (vmath_avx512.c, vmath_avx2.c, vmath_sse2.c),
 * named <kernel>_<type>_<isa>. They exist on x86-64 only and may be called
 * only when the CPU has the instruction set (dispatch.c checks). */
#ifndef NABLA_VMATH_SIMD_H
#define NABLA_VMATH_SIMD_H

#include "kernels/vmath_scalar.h"

#define NB_VM_SIMD_DECL(isa)                                                   \
    NB_VM_UNARY(NB_VM_SIMD_DECL_##isa)                                         \
    NB_VM_GRAD(NB_VM_SIMD_GRAD_DECL_##isa)                                     \
    NB_VM_DECLARE_ELU_ISA(isa)                                                 \
    NB_VM_DECLARE_LSTM_ISA(isa)
#define NB_VM_SIMD_DECL_avx512(name) NB_VM_DECLARE_ISA(name, avx512)
#define NB_VM_SIMD_GRAD_DECL_avx512(name) NB_VM_DECLARE_GRAD_ISA(name, avx512)
#define NB_VM_SIMD_DECL_avx2(name) NB_VM_DECLARE_ISA(name, avx2)
#define NB_VM_SIMD_GRAD_DECL_avx2(name) NB_VM_DECLARE_GRAD_ISA(name, avx2)
#define NB_VM_SIMD_DECL_sse2(name) NB_VM_DECLARE_ISA(name, sse2)
#define NB_VM_SIMD_GRAD_DECL_sse2(name) NB_VM_DECLARE_GRAD_ISA(name, sse2)
NB_VM_SIMD_DECL(avx512)
NB_VM_SIMD_DECL(avx2)
NB_VM_SIMD_DECL(sse2)

#endif
