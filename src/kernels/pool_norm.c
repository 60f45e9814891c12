/* The pooling and normalisation kernels, instantiated for f32 and f64 from
 * pool_impl.h and norm_impl.h.
 *
 * Threads: each kernel's work is a list of independent items (planes for
 * pooling, channels for batch norm, rows or columns for layer norm), each
 * computed by one thread in the same order as with one, so results are
 * bitwise identical for any thread count. The items go through
 * nb_parallel_for, one call site per kernel and dtype, which decides by
 * measurement whether a team pays for a call of that size (the costs per
 * element differ between kernels and machines, so no fixed threshold
 * would fit them all). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "nabla/parallel.h"

/* Elements per thread below which no team is tried: as for the
 * elementwise kernels, an element costs about a nanosecond and a region a
 * microsecond or more, so a smaller share cannot gain on any machine. */
#define POOL_NORM_GRAIN 4096

/* The kernels behind the one body of each family (pool_planes,
 * norm_items), which a call names in its context. */
enum {
    POOL_MAX,
    POOL_MAX_BACK,
    POOL_AVG,
    POOL_AVG_BACK,
    BN_STATS,
    BN_APPLY,
    BN_BACK,
    LN_FORWARD,
    LN_BACK_ROWS,
    LN_BACK_COLUMNS
};

/* Runs body over items [0, items) of a call, at a call site of its own
 * (one per use of the macro, and so per kernel and dtype: their costs per
 * element differ, so each is measured apart). */
#define RUN_ITEMS(site_name, items, work, body, call)                          \
    do {                                                                       \
        static nb_parallel_site site_ =                                        \
            NB_PARALLEL_SITE(site_name "_" DTYPE, POOL_NORM_GRAIN);            \
        nb_parallel_for(&site_, (items), (work), INT32_MAX, (body), (call));   \
    } while (0)

/* A row of 2x2, stride-2 max pooling on the CPU's vector unit, if a
 * kernel for it exists (AVX-512, f32): true when it ran. */
static bool max2x2_row_f32(int64_t n, const float *top, const float *bot,
                           int32_t k0, int32_t w, float *y, int32_t *arg)
{
#if NB_X86_KERNELS
    if (nb_isa_active() == NB_ISA_AVX512) {
        nb_max_pool2x2_row_f32_avx512(n, top, bot, k0, w, y, arg);
        return true;
    }
#endif
    (void)n, (void)top, (void)bot, (void)k0, (void)w, (void)y, (void)arg;
    return false;
}

/* Whole planes of 2x2, stride-2 max pooling without padding, forward
 * and backward into a fresh gradient, on the CPU's vector unit if a
 * kernel for them exists (AVX-512, f32): true when it ran. */
#if NB_X86_KERNELS
#define ON_AVX512(call) (nb_isa_active() == NB_ISA_AVX512 && ((call), true))
#else
#define ON_AVX512(call) false
#endif

#define REAL float
#define SUFFIX(name) name##_f32
#define DTYPE "f32"
#define MAX2X2_ROW max2x2_row_f32
#define MAX2X2_PLANES(planes, h, w, x, y, arg)                                 \
    ON_AVX512(nb_max_pool2x2_planes_f32_avx512(planes, h, w, x, y, arg))
#define MAX2X2_BACK_PLANES(planes, h, w, dy, arg, dx)                          \
    ON_AVX512(nb_max_pool2x2_back_planes_f32_avx512(planes, h, w, dy, arg, dx))
#include "kernels/norm_impl.h"
#include "kernels/pool_impl.h"
#undef REAL
#undef SUFFIX
#undef DTYPE
#undef MAX2X2_ROW
#undef MAX2X2_PLANES
#undef MAX2X2_BACK_PLANES

#define REAL double
#define SUFFIX(name) name##_f64
#define DTYPE "f64"
#define MAX2X2_ROW(n, top, bot, k0, w, y, arg) false
#define MAX2X2_PLANES(planes, h, w, x, y, arg) false
#define MAX2X2_BACK_PLANES(planes, h, w, dy, arg, dx) false
#include "kernels/norm_impl.h"
#include "kernels/pool_impl.h"
#undef REAL
#undef SUFFIX
#undef DTYPE
