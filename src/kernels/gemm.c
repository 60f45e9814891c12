/* The built-in GEMM: C = alpha op(A) op(B) + beta C, row-major, blocked
 * and packed (gemm_impl.h), with the micro-kernel chosen by instruction
 * set: AVX-512 or AVX2 (gemm_avx512.c, gemm_avx2.c) where the CPU has
 * them, else a portable one.
 *
 * Packing uses a fixed per-thread arena rather than the heap, so a GEMM in
 * a training step allocates nothing and threads never share buffers. Its
 * size bounds the blocks: kc = 256 deep, an A block of up to 192 KiB (fits
 * L2 next to the B panel's working slivers) and a B panel of up to 1 MiB.
 */
#include <stddef.h>

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

#define GEMM_KC 256
#define GEMM_A_BYTES (192 * 1024)
#define GEMM_B_BYTES (1024 * 1024)

static _Thread_local union {
    _Alignas(64) float f32[(GEMM_A_BYTES + GEMM_B_BYTES) / sizeof(float)];
    double f64[(GEMM_A_BYTES + GEMM_B_BYTES) / sizeof(double)];
} arena;

#if NB_X86_KERNELS
#define SIMD_KERNEL(type, isa)                                                 \
    ((isa) == NB_ISA_AVX512 ? &nb_gemm_kernel_##type##_avx512                  \
     : (isa) == NB_ISA_AVX2 ? &nb_gemm_kernel_##type##_avx2                    \
                            : NULL)
#else
#define SIMD_KERNEL(type, isa) ((void)(isa), NULL)
#endif

#define REAL float
#define GEMM nb_gemm_f32
#define NAME(x) x##_f32
#define KDESC_TYPE nb_gemm_kernel_f32
#define ARENA arena.f32
#define GEN_MR 4
#define GEN_NR 8
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f32, isa)
#include "kernels/gemm_impl.h"

#define REAL double
#define GEMM nb_gemm_f64
#define NAME(x) x##_f64
#define KDESC_TYPE nb_gemm_kernel_f64
#define ARENA arena.f64
#define GEN_MR 4
#define GEN_NR 4
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f64, isa)
#include "kernels/gemm_impl.h"
