/** @file
 * Sharing nabla's threads with code built on it.
 *
 * nabla's kernels run on OpenMP threads (OMP_NUM_THREADS) above size
 * thresholds. On a machine busy with other work a thread of a team may stay
 * unscheduled for a whole time slice while the caller waits for it, which
 * costs far more than the thread saves; so after several late teams in a
 * row nabla keeps its work on one thread for a while. Code that runs its
 * own OpenMP regions next to nabla's (its optimisers and batch feeding do)
 * follows the same rule by asking nb_parallel_threads() for a team size
 * and reporting every region of more than one thread with
 * nb_parallel_report(), so that one busy machine backs them all off.
 */
#ifndef NABLA_PARALLEL_H
#define NABLA_PARALLEL_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The most threads a parallel region should use now: 1 in a build without
 * OpenMP, inside a parallel region (its threads are already busy), and
 * while nabla backs off after late teams; otherwise OpenMP's
 * omp_get_max_threads(), capped at the number of processors. The caller
 * still decides whether its work is big enough to split. */
NB_API int nb_parallel_threads(void);

/** Reports the timing of a region that ran on more than one thread.
 * @param own_seconds    time the calling thread spent on its own share
 * @param waited_seconds time it then waited for the rest of the team
 * A team is late when the wait exceeds the own share by more than half a
 * millisecond; several late teams in a row make nb_parallel_threads()
 * return 1 for 0.2 s. Without OpenMP this does nothing. */
NB_API void nb_parallel_report(double own_seconds, double waited_seconds);

#ifdef __cplusplus
}
#endif

#endif
