/* The pooling and normalisation kernels, instantiated for f32 and f64 from
 * pool_impl.h and norm_impl.h.
 *
 * Threads: each kernel's work is a list of independent items (planes for
 * pooling, channels for batch norm, rows or columns for layer norm), each
 * computed by one thread in the same order as with one, so results are
 * bitwise identical for any thread count. The items are cut into one
 * contiguous range per thread when the call holds enough elements to pay
 * for waking threads, under the library's thread rules (nb_parallel_threads:
 * none inside a parallel region or while backing off). */
#include <math.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nabla/parallel.h"
#include "kernels/norm.h"
#include "kernels/pool.h"

/* Elements per thread below which a second thread does not pay: these
 * loops take about a nanosecond per element, and waking a thread a few
 * microseconds. */
#define SPLIT_SHARE 16384

#ifdef _OPENMP
static int split_threads(int64_t items, int64_t elements)
{
    if (items < 2 || elements < 2 * SPLIT_SHARE)
        return 1;
    int64_t by_size = elements / SPLIT_SHARE;
    int avail = nb_parallel_threads();
    int p = by_size < avail ? (int)by_size : avail;
    return items < p ? (int)items : p;
}

/* Runs `body` (which reads lo and hi) over items [lo, hi): the whole
 * range on the calling thread, or one contiguous part per thread when
 * `elements` (the call's total work) is worth threads. */
#define SPLIT(items, elements, body)                                           \
    do {                                                                       \
        int64_t n_ = (items);                                                  \
        int p_ = split_threads(n_, (elements));                                \
        if (p_ > 1) {                                                          \
            _Pragma("omp parallel num_threads(p_)")                            \
            {                                                                  \
                int64_t t_ = omp_get_thread_num(), q_ = omp_get_num_threads(); \
                int64_t lo = n_ * t_ / q_, hi = n_ * (t_ + 1) / q_;            \
                body;                                                          \
            }                                                                  \
        } else {                                                               \
            int64_t lo = 0, hi = n_;                                           \
            body;                                                              \
        }                                                                      \
    } while (0)
#else
#define SPLIT(items, elements, body)                                           \
    do {                                                                       \
        int64_t lo = 0, hi = (items);                                          \
        (void)(elements);                                                      \
        body;                                                                  \
    } while (0)
#endif

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
