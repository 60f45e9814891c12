/* The built-in GEMM: C = alpha op(A) op(B) + beta C, row-major, blocked
 * and packed (gemm_impl.h), with the micro-kernel chosen by instruction
 * set: AVX-512 or AVX2 (gemm_avx512.c, gemm_avx2.c) where the CPU has
 * them, else a portable one.
 *
 * Packing goes into a workspace the caller lends (the graph keeps one), so
 * a GEMM in a training step allocates nothing. Its size bounds the blocks:
 * kc = 256 deep, an A block of up to 192 KiB (fits L2 next to the B
 * panel's working slivers) and a B panel of up to 1 MiB.
 */
#include <stddef.h>

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

#define GEMM_KC 256
#define GEMM_A_BYTES (192 * 1024)
#define GEMM_B_BYTES (1024 * 1024)
/* Every micro-kernel's MR and NR divide this, so rounding a dimension up to
 * it bounds the packed panel whatever kernel the CPU gets. */
#define GEMM_MAX_UNIT 32

static int64_t round_up(int64_t x, int64_t unit)
{
    return (x + unit - 1) / unit * unit;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Elements of the packed A block and B panel for an m x n x k product. */
static void pack_sizes(size_t elem, int64_t m, int64_t n, int64_t k,
                       int64_t *a_elems, int64_t *b_elems)
{
    int64_t kc = min64(k, GEMM_KC);
    int64_t mc_cap = GEMM_A_BYTES / (int64_t)elem / GEMM_KC;
    int64_t nc_cap = GEMM_B_BYTES / (int64_t)elem / GEMM_KC;
    *a_elems = round_up(min64(round_up(m, GEMM_MAX_UNIT), mc_cap) * kc, 16);
    *b_elems = min64(round_up(n, GEMM_MAX_UNIT), nc_cap) * kc;
}

static size_t workspace_bytes(size_t elem, int64_t m, int64_t n, int64_t k)
{
    if (m <= 0 || n <= 0 || k <= 0)
        return 0;
    int64_t a_elems, b_elems;
    pack_sizes(elem, m, n, k, &a_elems, &b_elems);
    return (size_t)(a_elems + b_elems) * elem;
}

size_t nb_gemm_workspace_f32(int64_t m, int64_t n, int64_t k)
{
    return workspace_bytes(sizeof(float), m, n, k);
}

size_t nb_gemm_workspace_f64(int64_t m, int64_t n, int64_t k)
{
    return workspace_bytes(sizeof(double), m, n, k);
}

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
#define GEN_MR 4
#define GEN_NR 8
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f32, isa)
#include "kernels/gemm_impl.h"

#define REAL double
#define GEMM nb_gemm_f64
#define NAME(x) x##_f64
#define KDESC_TYPE nb_gemm_kernel_f64
#define GEN_MR 4
#define GEN_NR 4
#define PICK_SIMD_KERNEL(isa) SIMD_KERNEL(f64, isa)
#include "kernels/gemm_impl.h"
