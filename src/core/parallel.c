/* nabla's one thread policy (nabla/parallel.h): team size, the choice
 * between one thread and the team by measurement per call site and size
 * class, and the back-off after late teams. Every parallel region of the
 * library is opened here and nowhere else. */
#include "nabla/parallel.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/parallel_internal.h"

#define MAX_THREADS 8

/* A site's fields are plain int64_t in the public struct (C++ includes it
 * too, where _Atomic is not the same thing); GCC and Clang's builtins give
 * them relaxed atomic loads and stores, so independent graphs running on
 * different threads may share a site. */
#if defined(__GNUC__) || defined(__clang__)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#else
#define LOAD(p) (*(p))
#define STORE(p, v) (*(p) = (v))
#endif

/* Per size class: seconds per unit of work on one thread and on the team
 * (double bits; 0 = not measured), calls left before the next trial of the
 * way not taken, and the current gap between trials. */
enum { ONE, TEAM, LEFT, GAP, WORDS };
_Static_assert(WORDS == 4, "nb_parallel_site.state_ holds 4 words a class");

/* A trial follows GAP_MIN calls after the choice changed; each trial that
 * confirms the choice doubles the gap, up to GAP_MAX: on a machine whose
 * second core stays busy a losing team then costs one region in 1024
 * calls, and a core that comes back is found within 1024 calls. */
#define GAP_MIN 8
#define GAP_MAX 1024

static double word_get(const int64_t *w)
{
    int64_t bits = LOAD(w);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static void word_set(int64_t *w, double v)
{
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    STORE(w, bits);
}

static int size_class(int64_t work)
{
    int c = 0;
    while (work > 1 && c < NB_PARALLEL_CLASSES - 1) {
        work >>= 1;
        c++;
    }
    return c;
}

static _Atomic int threads_max = 0;

int nb_parallel_threads_max(void)
{
    int most = atomic_load_explicit(&threads_max, memory_order_relaxed);
    if (most > 0)
        return most;
#ifdef _OPENMP
    most = omp_get_num_procs();
#else
    most = 1;
#endif
    most = most < 1 ? 1 : most > MAX_THREADS ? MAX_THREADS : most;
    /* The first value stored wins, even if threads pinned to different
     * CPU sets race here: workspaces sized with it must stay valid. */
    int unset = 0;
    if (!atomic_compare_exchange_strong(&threads_max, &unset, most))
        most = unset;
    return most;
}

/* Threads of the team the calling thread runs a body in (1 outside any
 * body), so that a barrier is only ever reached inside a team of ours; and
 * the calling thread's time spent in barriers during its current team. */
static _Thread_local int body_team = 1;
static _Thread_local double barrier_wait = 0;

#ifdef _OPENMP
/* The step (nb_parallel_cycle) that holds the calling thread to one thread,
 * or NULL, and until when (the measuring clock, seconds); and the team
 * regions the calling thread has opened, so a step that opened none is not
 * timed (nothing in it could have run otherwise). */
static _Thread_local const nb_parallel_cycle *cap_owner = NULL;
static _Thread_local double cap_until = 0;
static _Thread_local unsigned teams_opened = 0;
#endif

#ifdef _OPENMP
static double wall_clock(void)
{
    return omp_get_wtime();
}

/* The clock of the measurements (a test may substitute its own). */
static double (*_Atomic clock_now)(void) = wall_clock;

void nb_parallel_set_clock(double (*now)(void))
{
    atomic_store(&clock_now, now ? now : wall_clock);
}

static double now(void)
{
    return atomic_load_explicit(&clock_now, memory_order_relaxed)();
}

/* Until when (omp_get_wtime, in microseconds) every call stays on one
 * thread after late teams. 0.2 s: on a machine that stays overloaded, one
 * late region (a few ms) per back-off costs a few percent, and on an idle
 * machine a stray late region costs at most 0.2 s on one thread. */
static _Atomic int64_t single_until_us = 0;
#define BACKOFF_US 200000
/* A team is late when the caller waited this much longer than its own
 * share took: far beyond what a region costs, and beyond the occasional
 * slow wake-up of a worker that fell asleep while the caller ran serial
 * code. */
#define LATE_SLACK 500e-6
/* Only this many late teams in a row mean an overloaded machine; a single
 * late one is a hiccup, and backing off on it would cost an idle machine
 * its gain. */
#define LATE_STREAK 4
static _Atomic int late_streak = 0;

void nb_parallel_report(double own, double waited)
{
    if (waited <= own + LATE_SLACK) {
        atomic_store_explicit(&late_streak, 0, memory_order_relaxed);
        return;
    }
    if (atomic_fetch_add_explicit(&late_streak, 1, memory_order_relaxed) + 1 <
        LATE_STREAK)
        return;
    atomic_store_explicit(&late_streak, 0, memory_order_relaxed);
    atomic_store_explicit(&single_until_us,
                          (int64_t)(omp_get_wtime() * 1e6) + BACKOFF_US,
                          memory_order_relaxed);
}
#else
void nb_parallel_report(double own, double waited)
{
    (void)own;
    (void)waited;
}

void nb_parallel_set_clock(double (*now)(void))
{
    (void)now;
}
#endif

int nb_parallel_threads(void)
{
#ifdef _OPENMP
    /* a caller that already runs a team keeps its threads busy itself */
    if (omp_in_parallel())
        return 1;
    int64_t until =
        atomic_load_explicit(&single_until_us, memory_order_relaxed);
    if (until != 0 && (int64_t)(omp_get_wtime() * 1e6) < until)
        return 1;
    if (cap_owner && now() < cap_until)
        return 1;
    int want = omp_get_max_threads(), most = nb_parallel_threads_max();
    return want < 1 ? 1 : want < most ? want : most;
#else
    return 1;
#endif
}

void nb_parallel_barrier(void)
{
#ifdef _OPENMP
    if (body_team <= 1)
        return;
    if (omp_get_thread_num() != 0) {
#pragma omp barrier
        return;
    }
    double t0 = omp_get_wtime();
#pragma omp barrier
    barrier_wait += omp_get_wtime() - t0;
#endif
}

static void run_one(int64_t n, nb_parallel_body body, void *ctx)
{
    int saved = body_team;
    body_team = 1;
    body(ctx, 0, n, 0, 1);
    body_team = saved;
}

#ifdef _OPENMP
/* Runs the body on a team of p, reports its timing to the back-off and
 * returns its wall time. If OpenMP grants a smaller team, the range is
 * split among the threads granted. */
static double run_team(int p, int64_t n, nb_parallel_body body, void *ctx)
{
    double saved_wait = barrier_wait;
    barrier_wait = 0;
    teams_opened++;
    double start = now(), own = start;
#pragma omp parallel num_threads(p)
    {
        int t = omp_get_thread_num(), q = omp_get_num_threads();
        int saved = body_team;
        body_team = q;
        body(ctx, n * t / q, n * (t + 1) / q, t, q);
        body_team = saved;
        if (t == 0)
            own = now();
    }
    double end = now();
    nb_parallel_report((own - start) - barrier_wait,
                       (end - own) + barrier_wait);
    barrier_wait = saved_wait;
    return end - start;
}
#endif

static _Atomic int forced_team = 0;

int nb_parallel_set_mode(nb_parallel_mode mode)
{
    if (mode != NB_PARALLEL_MEASURE && mode != NB_PARALLEL_TEAM)
        return NB_ERR_ARG;
    atomic_store_explicit(&forced_team, mode == NB_PARALLEL_TEAM,
                          memory_order_relaxed);
    return NB_OK;
}

int nb_parallel_for(nb_parallel_site *site, int64_t n, int64_t work,
                    int max_threads, nb_parallel_body body, void *ctx)
{
    if (n <= 0 || !body)
        return 0;
    /* Less than two threads' floor of work: one thread, whatever the team
     * (the cap below would say so), without asking OpenMP for it. */
    if (site && site->grain > 0 && work / site->grain < 2) {
        run_one(n, body, ctx);
        return 1;
    }
#ifdef _OPENMP
    int64_t p = nb_parallel_threads();
    if (p > max_threads)
        p = max_threads;
    if (p > n)
        p = n;
    if (site && site->grain > 0 && work / site->grain < p)
        p = work / site->grain;
    if (p > 1 && site &&
        !atomic_load_explicit(&forced_team, memory_order_relaxed)) {
        int64_t *st = site->state_ + WORDS * size_class(work);
        double one = word_get(st + ONE), team = word_get(st + TEAM);
        bool use_team, trial = false;
        if (one == 0 || team == 0) {
            use_team = one != 0;
            trial = true;
        } else {
            bool prefer = team < one;
            int64_t left = LOAD(st + LEFT) - 1;
            trial = left <= 0;
            use_team = trial ? !prefer : prefer;
            STORE(st + LEFT, left);
        }
        double seconds;
        if (use_team) {
            seconds = run_team((int)p, n, body, ctx);
        } else {
            double t0 = now();
            run_one(n, body, ctx);
            seconds = now() - t0;
        }
        /* per unit of work, so calls of one size class compare */
        double per = seconds / (double)(work > 1 ? work : 1);
        per = per > 0 ? per : 1e-300; /* 0 means "not measured" */
        int64_t *slot = st + (use_team ? TEAM : ONE);
        double old = word_get(slot);
        /* A trial replaces the estimate, so one good trial is enough to
         * come back; the way in use moves a quarter of the way to each
         * new time, so one slow region already turns a close choice. */
        word_set(slot, trial || old == 0 ? per : old + (per - old) / 4);
        if (trial) {
            one = word_get(st + ONE);
            team = word_get(st + TEAM);
            int64_t gap = LOAD(st + GAP);
            bool flipped = one != 0 && team != 0 && (team < one) == use_team;
            gap = flipped || gap < GAP_MIN ? GAP_MIN
                  : gap < GAP_MAX          ? 2 * gap
                                           : GAP_MAX;
            STORE(st + GAP, gap);
            STORE(st + LEFT, gap);
        }
        return use_team ? (int)p : 1;
    }
    if (p > 1) {
        run_team((int)p, n, body, ctx);
        return (int)p;
    }
#else
    (void)site;
    (void)work;
    (void)max_threads;
#endif
    run_one(n, body, ctx);
    return 1;
}

int nb_parallel_site_stats(const nb_parallel_site *site, int64_t work,
                           double *one_thread, double *team,
                           int *team_preferred)
{
    if (!site || work < 0)
        return NB_ERR_ARG;
    const int64_t *st = site->state_ + WORDS * size_class(work);
    double one = word_get(st + ONE), tm = word_get(st + TEAM);
    if (one_thread)
        *one_thread = one;
    if (team)
        *team = tm;
    if (team_preferred)
        *team_preferred = one != 0 && tm != 0 && tm < one;
    return NB_OK;
}

/* ---- whole steps: one thread against the team (parallel_internal.h) ---- */

/* Steps a trial runs in the way not preferred: the first, after the
 * switch, is dropped; the others are its measurement. */
#define TRIAL_STEPS 3

#ifdef _OPENMP
/* Holds the calling thread to one thread for c's current step, or lets it
 * go, from time t. */
static void cycle_apply(const nb_parallel_cycle *c, double t)
{
    if (c->single) {
        double span = c->cost[0] > c->cost[1] ? c->cost[0] : c->cost[1];
        cap_owner = c;
        cap_until = t + 2 * span;
    } else if (cap_owner == c) {
        cap_owner = NULL;
    }
}

static void cycle_switch(nb_parallel_cycle *c, int single, int trial)
{
    c->single = single;
    c->trial = trial;
    c->run = 0;
}

/* Whether way a's steps beat way b's by more than noise: 3%, so that two
 * ways of equal cost do not trade places at every measurement (each
 * switch costs a step of moving data between the cores' caches). */
static bool cycle_beats(const nb_parallel_cycle *c, int a, int b)
{
    return c->cost[a] < 0.97 * c->cost[b];
}

/* After a measured step: ends a trial, follows a changed estimate, or
 * starts the next trial. */
static void cycle_decide(nb_parallel_cycle *c)
{
    int way = c->single, other = !way;
    if (c->cost[other] == 0) {
        /* The other way was never measured: measure it now. */
        if (c->run >= 2)
            cycle_switch(c, other, 1);
        return;
    }
    if (c->trial) {
        if (c->run < TRIAL_STEPS)
            return;
        bool won = cycle_beats(c, way, other);
        c->gap = won || c->gap < GAP_MIN ? GAP_MIN
                 : c->gap < GAP_MAX      ? 2 * c->gap
                                         : GAP_MAX;
        c->left = c->gap;
        if (won)
            c->trial = 0;
        else
            cycle_switch(c, other, 0);
        return;
    }
    if (c->run < 2)
        return;
    if (cycle_beats(c, other, way)) {
        cycle_switch(c, other, 0);
        c->gap = c->left = GAP_MIN;
    } else if (--c->left <= 0) {
        cycle_switch(c, other, 1);
    }
}
#endif

void nb_parallel_cycle_mark(nb_parallel_cycle *c)
{
#ifdef _OPENMP
    /* A step with the team that opened no team region would have run the
     * same on one thread: nothing to time, and no clock or OpenMP query to
     * pay for, which matters to steps of a microsecond. */
    if (!c->single && !c->trial && teams_opened == c->teams) {
        c->last = 0;
        return;
    }
    if (omp_in_parallel() || omp_get_max_threads() < 2 ||
        nb_parallel_threads_max() < 2 ||
        atomic_load_explicit(&forced_team, memory_order_relaxed)) {
        nb_parallel_cycle_end(c);
        c->last = 0;
        return;
    }
    double t = now(), last = c->last;
    c->last = t;
    c->teams = teams_opened;
    if (last != 0 && c->run++ > 0) {
        /* The first step after a switch is dropped: its caches still hold
         * the other way's layout. A step far longer than usual also did
         * something else (validation, a checkpoint): it counts as 3. */
        double dt = t - last, *cost = &c->cost[c->single];
        if (*cost > 0 && dt > 3 * *cost)
            dt = 3 * *cost;
        *cost = *cost == 0 || (c->trial && c->run == 2)
                    ? dt
                    : *cost + (dt - *cost) / 4;
        cycle_decide(c);
    }
    cycle_apply(c, t);
#else
    (void)c;
#endif
}

void nb_parallel_cycle_end(nb_parallel_cycle *c)
{
#ifdef _OPENMP
    if (cap_owner == c)
        cap_owner = NULL;
#else
    (void)c;
#endif
}
