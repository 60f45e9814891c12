/* Convolution through the GEMM (conv.h), instantiated for f32 and f64 from
 * conv_impl.h. */
#include <stdbool.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/kernels.h"
#include "kernels/run_sum.h"
#include "nabla/parallel.h"

/* Multiply-adds per thread below which a fused convolution's forward tries
 * no team (a sample of a small convolution takes a few microseconds, about
 * what a parallel region costs); above it nabla/parallel.h times one
 * thread and the team where it runs. */
#define CONV_GRAIN (256 * 1024)

/* The patch matrix's bytes, rounded to whole cache lines so the GEMM's
 * packing space after it stays 64-byte aligned; 0 where x itself is the
 * patch matrix (1x1 kernel, stride 1, no padding). */
static size_t nb_conv_col_bytes(const nb_conv_geom *g, size_t elem)
{
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
        g->pw == 0 && g->oh == g->h && g->ow == g->w)
        return 0;
    size_t bytes = (size_t)(g->c / g->groups * g->kh * g->kw) *
                   (size_t)(g->oh * g->ow) * elem;
    return (bytes + 63) / 64 * 64;
}

#define REAL float
#define SUFFIX(name) name##_f32
#define GEMM nb_gemm_f32
#define GEMM_WORKSPACE nb_gemm_workspace_f32
#define CONV_TYPE_NAME "f32"
#include "kernels/conv_impl.h"
#undef REAL
#undef SUFFIX
#undef GEMM
#undef GEMM_WORKSPACE
#undef CONV_TYPE_NAME

#define REAL double
#define SUFFIX(name) name##_f64
#define GEMM nb_gemm_f64
#define GEMM_WORKSPACE nb_gemm_workspace_f64
#define CONV_TYPE_NAME "f64"
#include "kernels/conv_impl.h"
#undef REAL
#undef SUFFIX
#undef GEMM
#undef GEMM_WORKSPACE
#undef CONV_TYPE_NAME
