/** @file
 * nabla's one thread policy, and the `parallel for` that applies it.
 *
 * Every parallel region of the library (the elementwise kernels, GEMM,
 * pooling and normalisation, the optimisers' norm, step and clipping, the
 * batch feed) runs through
 * nb_parallel_for, and so can code built on nabla that wants the same
 * policy. It owns four decisions:
 *
 * - **Team size.** 1 in a build without OpenMP and inside a parallel
 *   region (its threads are already busy); otherwise OpenMP's
 *   omp_get_max_threads() (OMP_NUM_THREADS), capped at the processors and
 *   by the caller.
 * - **One thread or the team, by measurement.** Each call site keeps, per
 *   size class (powers of two of the work it reports), the time per unit
 *   of work of its latest runs on one thread and on the team, and runs the
 *   faster. The other way is tried again now and then: soon after the
 *   choice changed, then less and less often while it keeps losing (at
 *   most every 1024 calls of that size class). So a second core that turns
 *   slow (another process took it) is dropped after a few calls, and taken
 *   back at the next trial that finds it fast. No size threshold is tuned
 *   to a CPU: the caller states only a floor of work per thread below which
 *   no machine gains from a second thread (a region costs a microsecond or
 *   more), and everything above it is measured where it runs.
 * - **Whole steps.** A graph also times its training steps (backward to
 *   backward) with the team allowed and all on one thread, and runs the
 *   faster: a team also moves data between the cores' caches, a cost no
 *   single region's timing shows (docs/design.md, "Threading").
 * - **Back-off.** A team whose calling thread waited for the others far
 *   longer than its own share took (a machine busier than its cores) counts
 *   as late; several late teams in a row, at any call sites, send every
 *   call to one thread for 0.2 s.
 *
 * Results must not depend on the choice: a body must compute every element
 * the same way whatever range it is given (the library's bodies do, so its
 * results are bitwise identical for any thread count).
 */
#ifndef NABLA_PARALLEL_H
#define NABLA_PARALLEL_H

#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Size classes a call site tells apart (work up to 2^40 units; larger
 * work shares the last class). */
#define NB_PARALLEL_CLASSES 41

/** One call site's measurements. Define it static, initialised with
 * NB_PARALLEL_SITE; its fields are the library's (read and written with
 * relaxed atomics, so concurrent calls from independent graphs are safe). */
typedef struct nb_parallel_site {
    const char *name; /**< for reports, e.g. "optim.step" */
    int64_t grain;    /**< work per thread below which no team is tried */
    int64_t state_[NB_PARALLEL_CLASSES * 4]; /**< private */
} nb_parallel_site;

/** Initialiser of a static nb_parallel_site. */
#define NB_PARALLEL_SITE(name, grain) {(name), (grain), {0}}

/** A body of a parallel for: handles the units [lo, hi) of the range as
 * thread `thread` of `threads` (0 and 1 when run on the calling thread
 * alone, with lo = 0 and hi = n). */
typedef void (*nb_parallel_body)(void *ctx, int64_t lo, int64_t hi,
                                 int thread, int threads);

/** Runs body over the units [0, n), on one thread or on a team (see the top
 * of this file), each thread t of p taking [n t / p, n (t + 1) / p).
 * @param site        the call site's measurements
 * @param n           units of the range (rows, chunks, tiles...)
 * @param work        the cost of the whole call in the site's own measure
 *                    (elements, multiply-adds, bytes): what the size
 *                    classes and the site's grain are counted in
 * @param max_threads the caller's cap on the team (e.g. one per slot)
 * @param body        the work, called once per thread with its units
 * @param ctx         passed to body
 * @return the number of threads that ran the body (0 when n <= 0: the
 *         body is not called) */
NB_API int nb_parallel_for(nb_parallel_site *site, int64_t n, int64_t work,
                           int max_threads, nb_parallel_body body, void *ctx);

/** Inside a body run by nb_parallel_for: waits until every thread of the
 * team has reached it (does nothing on one thread). Every thread of the
 * team must call it the same number of times. Its wait is not counted as
 * the thread's own work by the back-off. */
NB_API void nb_parallel_barrier(void);

/** The most threads a call may use now: 1 in a build without OpenMP,
 * inside a parallel region and while backing off after late teams;
 * otherwise omp_get_max_threads(), capped at nb_parallel_threads_max(). */
NB_API int nb_parallel_threads(void);

/** The most threads any call will use in this process: the processors
 * OpenMP sees, capped at 8. Fixed at first use, so per-thread workspaces
 * sized with it stay large enough whatever OMP_NUM_THREADS says later. */
NB_API int nb_parallel_threads_max(void);

/** How nb_parallel_for chooses between one thread and the team. */
typedef enum nb_parallel_mode {
    NB_PARALLEL_MEASURE = 0, /**< the faster, by measurement (the default) */
    NB_PARALLEL_TEAM /**< the team whenever the caps allow more than one
                          thread: for tests that results do not depend on
                          the thread count, and for timing the team */
} nb_parallel_mode;

/** Sets the choice for the whole process. Returns NB_OK, or NB_ERR_ARG for
 * an unknown mode (the mode is then unchanged). */
NB_API int nb_parallel_set_mode(nb_parallel_mode mode);

/** How a call site has been choosing: for the size class of `work`, the
 * latest seconds per unit of work on one thread and on the team (0 when
 * not measured yet), and whether the team is preferred now. For reports
 * and tests; returns 0, or NB_ERR_ARG for a NULL site or negative work. */
NB_API int nb_parallel_site_stats(const nb_parallel_site *site, int64_t work,
                                  double *one_thread, double *team,
                                  int *team_preferred);

#ifdef __cplusplus
}
#endif

#endif
