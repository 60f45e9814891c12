/* Hooks of the thread policy for the library's tests. Not part of the
 * public API. */
#ifndef NABLA_PARALLEL_INTERNAL_H
#define NABLA_PARALLEL_INTERNAL_H

/* A team's timing: the calling thread's own share (seconds, barrier waits
 * excluded) and its wait for the rest of the team. */
void nb_parallel_report(double own_seconds, double waited_seconds);

/* Substitutes the clock nb_parallel_for measures with (seconds; NULL
 * restores omp_get_wtime), so that a test can give one thread and the
 * team the times it wants them to take. */
void nb_parallel_set_clock(double (*now)(void));

#endif
