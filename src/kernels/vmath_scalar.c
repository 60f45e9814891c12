/* Scalar reference versions of the elementwise kernels, on libm. They serve
 * CPUs without SIMD support, the tails of vector loops, and the tests that
 * compare every vector path against them. */
#include <math.h>

#include "kernels/vmath_scalar.h"

#define SELU_LAMBDA 1.0507009873554804934193349852946
#define SELU_ALPHA 1.6732632423543772848170429916717
#define INV_SQRT2 0.70710678118654752440084436210485
#define INV_SQRT_2PI 0.39894228040143267793994605993438

#define REAL float
#define SUFFIX(name) name##_f32_scalar
#define EXP expf
#define LOG logf
#define LOG1P log1pf
#define EXPM1 expm1f
#define TANH tanhf
#define ERF erff
#define FABS fabsf
#include "kernels/vmath_scalar_impl.h"
#undef REAL
#undef SUFFIX
#undef EXP
#undef LOG
#undef LOG1P
#undef EXPM1
#undef TANH
#undef ERF
#undef FABS

#define REAL double
#define SUFFIX(name) name##_f64_scalar
#define EXP exp
#define LOG log
#define LOG1P log1p
#define EXPM1 expm1
#define TANH tanh
#define ERF erf
#define FABS fabs
#include "kernels/vmath_scalar_impl.h"
