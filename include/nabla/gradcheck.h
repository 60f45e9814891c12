/** @file
 * Gradient checking by central differences.
 *
 * nb_gradcheck perturbs, one element at a time, every trainable parameter
 * and every input that requires a gradient on the path to `output`, and
 * compares (f(x+h) - f(x-h)) / 2h with the gradient backward computes. For a
 * non-scalar output, f is sum_i r_i y_i with fixed random weights r, and
 * backward is seeded with r. The graph's RNG is rewound before every
 * evaluation, so ops that draw random numbers (dropout) see the same draws,
 * and every state tensor on the path (nb_state: batch norm's running
 * statistics, which forward updates) is restored before every evaluation,
 * so each one starts from the same state and the check leaves the state as
 * a single forward would.
 * Use f64 graphs: in f32 the differences are too coarse to mean much.
 */
#ifndef NABLA_GRADCHECK_H
#define NABLA_GRADCHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How nb_gradcheck perturbs and compares; zero fields take defaults. */
typedef struct nb_gradcheck_options {
    double step;    /**< h; 0 means 1e-6 in f64, 1e-2 in f32 */
    double atol;    /**< pass if |analytic - numeric| <= atol + rtol*|numeric| */
    double rtol;    /**< 0 for both means atol 1e-6, rtol 1e-5 in f64 (both
                         1e-2 in f32) */
    uint64_t seed;  /**< for the projection weights r */
} nb_gradcheck_options;

/** What nb_gradcheck found. */
typedef struct nb_gradcheck_result {
    bool passed;              /**< at least one element compared, every one
                                   within tolerance, and no zero_gradient */
    int64_t checked;          /**< number of elements compared */
    double max_abs_err;       /**< the largest |analytic - numeric| */
    /** |a - n| / max(|a|, |n|) over elements with max(|a|, |n|) >= 1e-3;
     * below that the rounding noise of the difference quotient dominates. */
    double max_rel_err;
    const nb_node *worst;     /**< the node holding the largest violation */
    int64_t worst_index;      /**< flat index inside it */
    /** The analytic gradient at the worst element... */
    double worst_analytic, worst_numeric; /**< ...and the numeric one */
    /** A node whose analytic gradient is entirely zero while the numeric one
     * is not: the trap of a backward that does nothing. NULL if none. */
    const nb_node *zero_gradient;
    char message[256];        /**< human-readable summary */
} nb_gradcheck_result;

/** Checks backward's gradients on the path to `output` against central
 * differences, as described at the top of gradcheck.h.
 * Returns NB_OK when the check ran (see result->passed), or an error code
 * when it could not run (message on the graph). opts may be NULL. */
NB_API int nb_gradcheck(nb_graph *g, nb_node *output,
                 const nb_gradcheck_options *opts, nb_gradcheck_result *result);

#ifdef __cplusplus
}
#endif
#endif
