/* Scalar reference versions of the elementwise kernels, on libm. They serve
 * CPUs without SIMD support (and NABLA_ISA=scalar), and the tests compare
 * every vector path against them. */
#include <math.h>

#include "kernels/vmath_scalar.h"

#define SELU_LAMBDA 1.0507009873554804934193349852946
#define SELU_ALPHA 1.6732632423543772848170429916717
#define INV_SQRT2 0.70710678118654752440084436210485
#define INV_SQRT_2PI 0.39894228040143267793994605993438
#define TWO_OVER_SQRTPI 1.1283791670955125738961589031215

/* erfc one precision up: glibc's erfc and erfcf are good to a few ulps,
 * which would be most of gelu's error budget */
static inline float erfc_f32(float y)
{
    return (float)erfc((double)y);
}

static inline double erfc_f64(double y)
{
    return (double)erfcl((long double)y);
}

#define REAL float
#define SUFFIX(name) name##_f32_scalar
#define EXP expf
#define LOG logf
#define LOG1P log1pf
#define EXPM1 expm1f
#define TANH tanhf
#define ERFC erfc_f32
#define FMA fmaf
#define INV_SQRT2_LO                                                           \
    1.2101617104478969362e-8f /* 1/sqrt 2 - (float)(1/sqrt 2) */
#define INV_SQRT_2PI_LO -1.133517010526317894e-8f
#define FABS fabsf
#include "kernels/vmath_scalar_impl.h"
#undef REAL
#undef SUFFIX
#undef EXP
#undef LOG
#undef LOG1P
#undef EXPM1
#undef TANH
#undef ERFC
#undef FMA
#undef INV_SQRT2_LO
#undef INV_SQRT_2PI_LO
#undef FABS

#define REAL double
#define SUFFIX(name) name##_f64_scalar
#define EXP exp
#define LOG log
#define LOG1P log1p
#define EXPM1 expm1
#define TANH tanh
#define ERFC erfc_f64
#define FMA fma
#define INV_SQRT2_LO                                                           \
    -4.8336466567264565186e-17 /* 1/sqrt 2 - (double)(1/sqrt 2) */
#define INV_SQRT_2PI_LO -2.4923272022777300786e-17
#define FABS fabs
#include "kernels/vmath_scalar_impl.h"
