/* The pooling and normalisation kernels, instantiated for f32 and f64 from
 * pool_impl.h and norm_impl.h. */
#include <math.h>

#include "kernels/norm.h"
#include "kernels/pool.h"

#define REAL float
#define SUFFIX(name) name##_f32
#include "kernels/norm_impl.h"
#include "kernels/pool_impl.h"
#undef REAL
#undef SUFFIX

#define REAL double
#define SUFFIX(name) name##_f64
#include "kernels/norm_impl.h"
#include "kernels/pool_impl.h"
#undef REAL
#undef SUFFIX
