/* Hooks of the thread policy for the library's tests. Not part of the
 * public API. */
#ifndef NABLA_PARALLEL_INTERNAL_H
#define NABLA_PARALLEL_INTERNAL_H

#include <stdint.h>

/* A team's timing: the calling thread's own share (seconds, barrier waits
 * excluded) and its wait for the rest of the team. */
void nb_parallel_report(double own_seconds, double waited_seconds);

/* Substitutes the clock nb_parallel_for measures with (seconds; NULL
 * restores omp_get_wtime), so that a test can give one thread and the
 * team the times it wants them to take. */
void nb_parallel_set_clock(double (*now)(void));

/* Whole training steps on one thread against steps that may use the team.
 *
 * The per-site choice of nb_parallel_for times each region alone, but a
 * team also moves data: what one core wrote, the other must fetch before
 * it reads it, and on some machines that costs more than the region
 * saves (a batch-64 MLP's optimiser step ran 66 us after a one-thread
 * backward and 215 us after a two-thread one). Only the time of a whole
 * step sees that. A graph marks the start of each of its steps (its
 * backward); the time between two marks is one step's cost in the way that
 * step ran. The graph runs its steps the faster way, tries the other now
 * and then (soon after the choice changed, then less and less often, as
 * nb_parallel_for does per site), and drops the first step after each
 * switch, whose caches still hold the other way's layout.
 *
 * A step that runs on one thread caps every region the calling thread
 * opens until the next mark, or until twice the step's cost has passed
 * without one (so a graph that stops training does not hold other work on
 * one thread for long). */
typedef struct nb_parallel_cycle {
    double last;     /* clock at the latest mark; 0: none to measure from */
    double cost[2];  /* seconds per step, [0] with the team, [1] on one
                        thread; 0 = not measured */
    int single;      /* how the current step runs: 0 with the team (where
                        nb_parallel_for chooses it), 1 on one thread */
    int run;         /* steps completed in this mode since it was entered */
    int trial;       /* the current mode is a trial of the one not preferred */
    int64_t left;    /* steps before the next trial */
    int64_t gap;     /* steps between trials */
    unsigned teams;  /* team regions opened on this thread at the last mark */
} nb_parallel_cycle;

/* Marks the start of a step of the owner of c (which starts zeroed). */
void nb_parallel_cycle_mark(nb_parallel_cycle *c);
/* The owner of c is done: lifts its cap on the calling thread. */
void nb_parallel_cycle_end(nb_parallel_cycle *c);

#endif
