/* The sum of a run of n elements in a fixed order: RUN_LANES interleaved
 * partial sums (lane l adds elements l, l + RUN_LANES, ...) folded
 * pairwise (lane l += lane l + half, halving), plus the leftover tail
 * summed in order. The order is fixed by n alone, so the bits do not
 * depend on threads or alignment; the lanes let gcc vectorise what one
 * running total would make a serial chain. A broadcast add's bias
 * gradient (ops/binary.c) and the fused convolution's (kernels/conv.h)
 * both sum with it, so the two give the same bits. */
#ifndef NABLA_KERNELS_RUN_SUM_H
#define NABLA_KERNELS_RUN_SUM_H

#include <stdint.h>

#define NB_RUN_LANES 16
#define NB_DEFINE_RUN_SUM(T, NAME)                                            \
    static inline T NAME(const T *v, int64_t n)                               \
    {                                                                         \
        T lane[NB_RUN_LANES] = {0}, tail = 0;                                 \
        int64_t j = 0;                                                        \
        for (; j + NB_RUN_LANES <= n; j += NB_RUN_LANES)                      \
            for (int l = 0; l < NB_RUN_LANES; l++)                            \
                lane[l] += v[j + l];                                          \
        for (; j < n; j++)                                                    \
            tail += v[j];                                                     \
        for (int half = NB_RUN_LANES / 2; half > 0; half /= 2)                \
            for (int l = 0; l < half; l++)                                    \
                lane[l] += lane[l + half];                                    \
        return lane[0] + tail;                                                \
    }
NB_DEFINE_RUN_SUM(float, nb_run_sum_f32)
NB_DEFINE_RUN_SUM(double, nb_run_sum_f64)

#endif
