/* The built-in GEMM: C = alpha op(A) op(B) + beta C, row-major.
 * Straightforward loops ordered so the innermost one walks contiguous
 * memory for every transpose combination; a blocked kernel replaces this. */
#include "kernels/kernels.h"

#define REAL float
#define GEMM nb_gemm_f32
#include "kernels/gemm_impl.h"
#undef REAL
#undef GEMM

#define REAL double
#define GEMM nb_gemm_f64
#include "kernels/gemm_impl.h"
