/* What the robustness tests share: a private deterministic generator, the
 * failure context that RCHECK prints, the probes that read every element
 * of a tensor and that check a graph is usable after an error, and crash
 * isolation, which runs each scenario in a child process.
 *
 * The contract checked everywhere (graph.h, docs/design.md on errors): a
 * constructor returns a node, or NULL with a message on the graph, and a
 * fresh failure names its op; a run returns NB_OK or a negative code with
 * a message; nothing crashes, aborts or reads out of bounds (CI runs these
 * under ASan/UBSan); after nb_graph_clear_error the graph still builds and
 * runs a simple op correctly.
 *
 * Header-only (static functions), like test_util.h, so that each test
 * program counts its own checks. NABLA_ROBUSTNESS_ONLY=<scenario> runs one
 * scenario of a program (see robustness_main). */
#ifndef NABLA_ROBUSTNESS_COMMON_H
#define NABLA_ROBUSTNESS_COMMON_H

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "test_util.h"

/* ---- a private, deterministic generator (splitmix64) ---- */

static uint64_t rng_state;
static uint64_t fuzz_seed = 0x726f627573746e65ull;

static inline uint64_t rnd_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static inline int rnd_int(int lo, int hi)
{
    return lo + (int)(rnd_u64() % (uint64_t)(hi - lo + 1));
}

static inline double rnd_unit(void)
{
    return (double)(rnd_u64() >> 11) * 0x1.0p-53;
}

static inline bool chance(double p)
{
    return rnd_unit() < p;
}

static inline double rnd_range(double lo, double hi)
{
    return lo + (hi - lo) * rnd_unit();
}

/* ---- failure context ---- */

static const char *scenario = "";
static long iteration = -1;

/* CHECK that also says where in the random sequence it failed. */
#define RCHECK(cond, ...)                                                      \
    do {                                                                       \
        int rc_failed_before = tu_failed;                                      \
        CHECK(cond, __VA_ARGS__);                                              \
        if (tu_failed != rc_failed_before)                                     \
            printf("  (scenario %s, iteration %ld, seed %#llx)\n", scenario,   \
                   iteration, (unsigned long long)fuzz_seed);                  \
    } while (0)

static inline bool has_message(const nb_graph *g)
{
    const char *m = nb_graph_error(g);
    return m != NULL && m[0] != '\0';
}

static inline const char *msg_or(const nb_graph *g)
{
    const char *m = nb_graph_error(g);
    return m ? m : "(none)";
}

/* Reads every element of a tensor, so a buffer shorter than the shape says
 * shows up under AddressSanitizer; also checks size == product of extents. */
static inline void touch_tensor(const nb_tensor *t, const char *what)
{
    int rank = nb_tensor_rank(t);
    RCHECK(rank >= 0 && rank <= NB_MAX_RANK, "%s has rank %d", what, rank);
    if (rank < 0 || rank > NB_MAX_RANK)
        return;
    const int64_t *shape = nb_tensor_shape(t);
    int64_t product = 1;
    for (int i = 0; i < rank; i++)
        product *= shape[i];
    RCHECK(product == nb_tensor_size(t), "%s: size %lld, shape product %lld",
           what, (long long)nb_tensor_size(t), (long long)product);
    RCHECK(nb_tensor_size(t) <= (1 << 20), "%s: unexpectedly large (%lld)",
           what, (long long)nb_tensor_size(t));
    if (!nb_tensor_cdata(t) || nb_tensor_size(t) > (1 << 20))
        return;
    volatile double sink = 0;
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        sink += nb_tensor_get(t, i);
    (void)sink;
}

/* ---- the usability probe ---- */

/* After clearing the error the graph must build and run a simple op:
 * a + b of two fresh f64 parameters with known values, and its gradient. */
static inline void check_usable(nb_graph *g)
{
    nb_graph_clear_error(g);
    RCHECK(nb_graph_error(g) == NULL && nb_graph_status(g) == NB_OK,
           "clear_error left '%s'", msg_or(g));
    nb_node *a = nb_param(g, "probe_a", NB_F64, 1, SHAPE(3));
    nb_node *b = nb_param(g, "probe_b", NB_F64, 1, SHAPE(3));
    RCHECK(a && b, "fresh params failed: %s", msg_or(g));
    if (!a || !b)
        return;
    SET(a, 1.5, -2.0, 4.0);
    SET(b, 0.25, 3.0, -1.0);
    nb_node *s = nb_add(g, a, b);
    nb_node *loss = nb_sum(g, s);
    RCHECK(s && loss, "add/sum of fresh params failed: %s", msg_or(g));
    if (!s || !loss)
        return;
    int rc = nb_forward(g, loss);
    RCHECK(rc == NB_OK, "probe forward returned %d: %s", rc, msg_or(g));
    if (rc != NB_OK)
        return;
    const double want[3] = {1.75, 1.0, 3.0};
    for (int i = 0; i < 3; i++)
        RCHECK(nb_tensor_get(nb_node_value(s), i) == want[i],
               "probe sum[%d] = %g, want %g", i,
               nb_tensor_get(nb_node_value(s), i), want[i]);
    RCHECK(nb_tensor_get(nb_node_value(loss), 0) == 5.75, "probe loss %g",
           nb_tensor_get(nb_node_value(loss), 0));
    rc = nb_backward(g, loss);
    RCHECK(rc == NB_OK, "probe backward returned %d: %s", rc, msg_or(g));
    nb_tensor *ga = nb_node_grad(a);
    RCHECK(ga != NULL, "probe param has no gradient");
    for (int i = 0; ga && i < 3; i++)
        RCHECK(nb_tensor_get(ga, i) == 1.0, "probe grad[%d] = %g", i,
               nb_tensor_get(ga, i));
    RCHECK(nb_graph_error(g) == NULL, "probe left an error: %s", msg_or(g));
}

/* Values for a leaf: mostly moderate, sometimes class-like integers,
 * rarely NaN or infinity. */
static inline void fill_random(nb_tensor *t)
{
    int style = rnd_int(0, 9);
    for (int64_t i = 0; i < nb_tensor_size(t); i++) {
        double v;
        if (style == 0)
            v = rnd_int(-1, 4); /* labels, some invalid */
        else if (style == 1 && chance(0.2))
            v = chance(0.5) ? NAN : (chance(0.5) ? INFINITY : -INFINITY);
        else if (style == 2)
            v = rnd_range(0.05, 0.95); /* probabilities */
        else
            v = rnd_range(-2, 2);
        nb_tensor_set(t, i, v);
    }
}

/* A copy of a tensor's elements as doubles (NULL for an empty or unfed
 * one), for comparing before and after. */
static inline double *snapshot(const nb_tensor *t)
{
    int64_t n = nb_tensor_size(t);
    if (n <= 0 || !nb_tensor_cdata(t))
        return NULL;
    double *copy = malloc((size_t)n * sizeof *copy);
    for (int64_t i = 0; copy && i < n; i++)
        copy[i] = nb_tensor_get(t, i);
    return copy;
}

/* ---- crash isolation ---- */

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
#include <unistd.h>

/* Runs one scenario in a child process, so that a crash, a sanitizer
 * report or a leak costs that scenario (one failed check here) and not
 * the rest of the test. The child's counts come back through a pipe. */
static inline void run_isolated(const char *name, void (*fn)(void))
{
    int fds[2];
    fflush(stdout);
    if (pipe(fds) != 0) {
        fn();
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        fn();
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        tu_passed = tu_failed = 0;
        fn();
        fflush(stdout);
        int counts[2] = {tu_passed, tu_failed};
        ssize_t w = write(fds[1], counts, sizeof counts);
        close(fds[1]);
        /* exit, not _exit: LeakSanitizer checks the child at exit. */
        exit(w == (ssize_t)sizeof counts && !tu_failed ? 0 : 1);
    }
    close(fds[1]);
    int counts[2] = {0, 0};
    ssize_t got = read(fds[0], counts, sizeof counts);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got == (ssize_t)sizeof counts) {
        tu_passed += counts[0];
        tu_failed += counts[1];
    }
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (got == (ssize_t)sizeof counts && WIFEXITED(status) &&
        WEXITSTATUS(status) == (counts[1] ? 1 : 0))
        return; /* finished; its failures, if any, are counted */
    CHECK(clean,
          "scenario %s did not finish: %s %d (a crash, a sanitizer "
          "report or a leak: see its output above)",
          name, WIFSIGNALED(status) ? "killed by signal" : "exit status",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}
#else
static inline void run_isolated(const char *name, void (*fn)(void))
{
    (void)name;
    fn();
}
#endif

/* A program's scenarios, each run isolated with its own draws. */
typedef struct robustness_scenario {
    const char *name;
    void (*fn)(void);
} robustness_scenario;

/* Runs every scenario (or only the one NABLA_ROBUSTNESS_ONLY names) and
 * returns the exit status. */
static inline int robustness_main(const char *program,
                                  const robustness_scenario *scenarios,
                                  size_t count)
{
    const char *only = getenv("NABLA_ROBUSTNESS_ONLY");
    for (size_t i = 0; i < count; i++) {
        if (only && *only && strcmp(only, scenarios[i].name) != 0)
            continue;
        rng_state = fuzz_seed + i; /* each scenario draws its own numbers */
        run_isolated(scenarios[i].name, scenarios[i].fn);
    }
    return tu_finish(program);
}

#endif
