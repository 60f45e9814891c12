/* Per-phase times at 1 and 2 threads: does a second thread ever cost more
 * than it saves?
 *
 *   threads [--rounds R] [--steps S] [--batch B]
 *
 * Rows: the phases of one training step of the 784-256-128-10 MLP (feed
 * of a batch of rows gathered from a 20,000-row source, forward, backward,
 * the momentum-SGD step), on random data (the timing does not depend on
 * the values), and the GEMM shapes of that step plus 1024^3. Columns: the
 * median microseconds at 1 thread, at 2 threads under nabla's policy
 * (nabla/parallel.h: the team only where it measured faster, region by
 * region and step by step), and at 2
 * threads with the team forced wherever the caps allow it
 * (NB_PARALLEL_TEAM), which shows what the policy chose against; then the
 * ratio policy / 1 thread, which should never exceed 1 by more than the
 * noise. The three configurations are interleaved in R rounds and each
 * figure is the median over rounds of the per-round median, so a machine
 * that is busy for a while disturbs all three alike.
 *
 * Prints a Markdown table on stdout. Reaches the internal GEMM (as the
 * kernels bench does) for the GEMM rows.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "kernels/kernels.h"
#include "nabla/nabla.h"

enum { CONFIGS = 3, MAX_ROUNDS = 64 };
static const char *const config_names[CONFIGS] = {"1 thread", "2, policy",
                                                  "2, team"};

static void use_config(int c)
{
#ifdef _OPENMP
    omp_set_num_threads(c == 0 ? 1 : 2);
#endif
    nb_parallel_set_mode(c == 2 ? NB_PARALLEL_TEAM : NB_PARALLEL_MEASURE);
}

enum { PH_FEED, PH_FWD, PH_BWD, PH_OPT, PHASES };
static const char *const phase_names[PHASES] = {"feed", "forward",
                                                "backward", "optimiser step"};

typedef struct {
    nb_graph *g;
    nb_node *x, *y, *loss;
    nb_optimizer *opt;
    nb_tensor *src_x, *src_y;
    int64_t *rows, batch, src_rows;
} mlp_bench;

static int mlp_setup(mlp_bench *m, int64_t batch)
{
    m->batch = batch;
    m->src_rows = 20000;
    m->g = nb_graph_new();
    nb_graph_seed(m->g, 7);
    m->x = nb_input(m->g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 784});
    m->y = nb_input(m->g, "label", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    nb_mlp mlp;
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = (const int64_t[]){784, 256, 128, 10},
                        .hidden = NB_ACT_RELU,
                        .output = NB_ACT_SOFTMAX,
                        .init = NB_INIT_TORCH};
    m->loss = nb_mlp_build(m->g, m->x, &spec, &mlp) == NB_OK
                  ? nb_mlp_loss(m->g, &mlp, m->y)
                  : NULL;
    m->opt = m->loss ? nb_optimizer_new(m->g,
                                        &(nb_optim_config){.kind = NB_OPTIM_SGD,
                                                           .lr = 0.01,
                                                           .momentum = 0.9},
                                        0, NULL)
                     : NULL;
    m->src_x = nb_tensor_new(NB_F32, 2, (int64_t[]){m->src_rows, 784});
    m->src_y = nb_tensor_new(NB_F32, 1, (int64_t[]){m->src_rows});
    m->rows = malloc((size_t)batch * sizeof *m->rows);
    if (!m->opt || !m->src_x || !m->src_y || !m->rows)
        return -1;
    float *sx = nb_tensor_f32(m->src_x), *sy = nb_tensor_f32(m->src_y);
    uint64_t s = 12345;
    for (int64_t i = 0; i < m->src_rows * 784; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        sx[i] = (float)(s >> 40) / (float)(1 << 24);
    }
    for (int64_t i = 0; i < m->src_rows; i++)
        sy[i] = (float)(i % 10);
    return 0;
}

/* One step, its phases' seconds added to t. */
static int mlp_step(mlp_bench *m, double *t)
{
    for (int64_t i = 0; i < m->batch; i++)
        m->rows[i] = nb_rng_below(m->g, (uint64_t)m->src_rows);
    double a = bench_now();
    int rc = nb_feed_rows(m->g, m->x, m->src_x, m->rows, m->batch);
    if (rc == NB_OK)
        rc = nb_feed_rows(m->g, m->y, m->src_y, m->rows, m->batch);
    double b = bench_now();
    if (rc == NB_OK)
        rc = nb_forward(m->g, m->loss);
    double c = bench_now();
    if (rc == NB_OK)
        rc = nb_backward(m->g, m->loss);
    double d = bench_now();
    if (rc == NB_OK)
        rc = nb_optimizer_step(m->opt);
    double e = bench_now();
    t[PH_FEED] = b - a;
    t[PH_FWD] = c - b;
    t[PH_BWD] = d - c;
    t[PH_OPT] = e - d;
    return rc;
}

typedef struct {
    const char *name;
    bool ta, tb;
    int64_t m, n, k;
    float beta;
} gemm_shape;

/* The eight products of a batch-64 step (forward X W; dW = X^T dY and
 * dX = dY W^T with beta 1, as backward accumulates) and 1024^3. */
static const gemm_shape shapes[] = {
    {"fwd 64x256x784", false, false, 64, 256, 784, 0},
    {"fwd 64x128x256", false, false, 64, 128, 256, 0},
    {"fwd 64x10x128", false, false, 64, 10, 128, 0},
    {"dW1 784x256x64 T,N", true, false, 784, 256, 64, 1},
    {"dW2 256x128x64 T,N", true, false, 256, 128, 64, 1},
    {"dW3 128x10x64 T,N", true, false, 128, 10, 64, 1},
    {"dX2 64x256x128 N,T", false, true, 64, 256, 128, 1},
    {"dX3 64x128x10 N,T", false, true, 64, 128, 10, 1},
    {"1024^3", false, false, 1024, 1024, 1024, 0},
};
enum { SHAPES = sizeof shapes / sizeof *shapes };

/* Seconds of one product: the median of 5 timings of enough repeats to
 * take about 2 ms. */
static double time_gemm(const gemm_shape *s, const float *a, const float *b,
                        float *c, void *ws)
{
    int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    int reps = (int)(2e-3 / (flops / 50e9)) + 1;
    double v[5];
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
        for (int i = 0; i < reps; i++)
            nb_gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb,
                        s->beta, c, s->n, ws);
        v[r] = (bench_now() - t0) / reps;
    }
    return bench_median(v, 5);
}

/* How far apart the two cores are, which decides what a team can gain: the
 * round trip of one cache line between two threads (each waits for the
 * other's store), and the read speed of 2 MiB that the other thread has
 * just written against re-reading it from the reader's own caches. Every
 * figure is the best of several tries. On one thread (no OpenMP, or one
 * processor) the figures are 0. */
typedef struct {
    double round_trip_ns, remote_gbs, local_gbs;
} core_probe;

#ifdef _OPENMP
static double sum_floats(const float *v, size_t n)
{
    float acc[16] = {0};
    for (size_t i = 0; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += v[i + l];
    double s = 0;
    for (int l = 0; l < 16; l++)
        s += acc[l];
    return s;
}
#endif

static core_probe probe_cores(void)
{
    core_probe r = {0, 0, 0};
#ifdef _OPENMP
    if (omp_get_num_procs() < 2)
        return r;
    enum { TRIPS = 20000, TRIES = 15 };
    const size_t n = (size_t)1 << 19; /* 2 MiB of floats */
    float *buf = malloc(n * sizeof *buf);
    if (!buf)
        return r;
    memset(buf, 0, n * sizeof *buf);
    static _Atomic int turn;
    double best_trip = 1e9, best_remote = 1e9, best_local = 1e9, sink = 0;
    atomic_store(&turn, 0);
#pragma omp parallel num_threads(2) reduction(+ : sink)
    {
        int t = omp_get_thread_num();
        if (omp_get_num_threads() == 2) {
            /* ping-pong: thread 0 stores odd values, thread 1 even ones */
            for (int k = 0; k < TRIES; k++) {
                double t0 = bench_now();
                for (int i = 0; i < TRIPS; i++) {
                    int mine = 2 * (k * TRIPS + i) + 1 + t;
                    while (atomic_load_explicit(&turn, memory_order_acquire) !=
                           mine - 1)
                        ;
                    atomic_store_explicit(&turn, mine, memory_order_release);
                }
                double dt = (bench_now() - t0) / TRIPS;
                if (t == 0 && dt < best_trip)
                    best_trip = dt;
            }
            /* thread 1 writes the buffer, then thread 0 reads it twice */
            for (int k = 0; k < TRIES; k++) {
#pragma omp barrier
                if (t == 1)
                    for (size_t i = 0; i < n; i++)
                        buf[i] = (float)(i + (size_t)k);
#pragma omp barrier
                if (t == 0) {
                    double t0 = bench_now();
                    sink += sum_floats(buf, n);
                    double t1 = bench_now();
                    sink += sum_floats(buf, n);
                    double t2 = bench_now();
                    best_remote = t1 - t0 < best_remote ? t1 - t0 : best_remote;
                    best_local = t2 - t1 < best_local ? t2 - t1 : best_local;
                }
            }
        }
    }
    free(buf);
    if (best_trip < 1e9 && sink == sink) {
        r.round_trip_ns = best_trip * 1e9;
        r.remote_gbs = (double)(n * sizeof(float)) / best_remote / 1e9;
        r.local_gbs = (double)(n * sizeof(float)) / best_local / 1e9;
    }
#endif
    return r;
}

int main(int argc, char **argv)
{
    int rounds = 9, steps = 40;
    int64_t batch = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoll(argv[i + 1]);
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || steps < 1 || batch < 1) {
        fprintf(stderr, "usage: threads [--rounds 1..64] [--steps S] "
                        "[--batch B]\n");
        return 2;
    }
    mlp_bench m;
    if (mlp_setup(&m, batch) != 0) {
        fprintf(stderr, "threads: setting up the MLP: %s\n",
                nb_graph_error(m.g) ? nb_graph_error(m.g) : "out of memory");
        return 1;
    }
    size_t big = 1024 * 1024;
    float *a = malloc(big * sizeof *a), *b = malloc(big * sizeof *b),
          *c = malloc(big * sizeof *c);
    size_t ws_bytes = 0;
    for (int s = 0; s < SHAPES; s++) {
        size_t w = nb_gemm_workspace_f32(shapes[s].m, shapes[s].n, shapes[s].k);
        ws_bytes = w > ws_bytes ? w : ws_bytes;
    }
    void *ws = NULL;
    if (!a || !b || !c ||
        posix_memalign(&ws, 64, ws_bytes ? ws_bytes : 64) != 0) {
        fprintf(stderr, "threads: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < big; i++) {
        a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
        b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
        c[i] = 0;
    }

    static double phase[CONFIGS][PHASES][MAX_ROUNDS];
    static double gemm[CONFIGS][SHAPES][MAX_ROUNDS];
    double *per_step = malloc((size_t)steps * PHASES * sizeof *per_step);
    if (!per_step)
        return 1;
    double t[PHASES];
    for (int cfg = 0; cfg < CONFIGS; cfg++) { /* warm-up: plans, choices */
        use_config(cfg);
        for (int s = 0; s < 20; s++)
            if (mlp_step(&m, t) != NB_OK) {
                fprintf(stderr, "threads: %s\n", nb_graph_error(m.g));
                return 1;
            }
    }
    for (int r = 0; r < rounds; r++) {
        for (int cfg = 0; cfg < CONFIGS; cfg++) {
            use_config(cfg);
            for (int s = 0; s < steps; s++) {
                if (mlp_step(&m, t) != NB_OK) {
                    fprintf(stderr, "threads: %s\n", nb_graph_error(m.g));
                    return 1;
                }
                for (int p = 0; p < PHASES; p++)
                    per_step[p * steps + s] = t[p];
            }
            for (int p = 0; p < PHASES; p++)
                phase[cfg][p][r] = bench_median(per_step + p * steps, steps);
            for (int s = 0; s < SHAPES; s++)
                gemm[cfg][s][r] = time_gemm(&shapes[s], a, b, c, ws);
        }
        bench_log("threads: round %d of %d\n", r + 1, rounds);
    }
    use_config(0);

    core_probe cores = probe_cores();
    if (cores.round_trip_ns > 0)
        printf("The two cores: a cache line's round trip between them takes "
               "%.0f ns; 2 MiB that one core has just written reads on the "
               "other at %.1f GB/s, and again from the reader's own caches "
               "at %.1f GB/s.\n\n",
               cores.round_trip_ns, cores.remote_gbs, cores.local_gbs);
    printf("| per call, us (median of %d rounds) | %s | %s | %s | policy / 1 "
           "|\n| --- | ---: | ---: | ---: | ---: |\n",
           rounds, config_names[0], config_names[1], config_names[2]);
    for (int p = 0; p < PHASES; p++) {
        double v[CONFIGS];
        for (int cfg = 0; cfg < CONFIGS; cfg++)
            v[cfg] = bench_median(phase[cfg][p], rounds) * 1e6;
        printf("| MLP b%lld %s | %.1f | %.1f | %.1f | %.2f |\n",
               (long long)batch, phase_names[p], v[0], v[1], v[2], v[1] / v[0]);
    }
    for (int s = 0; s < SHAPES; s++) {
        double v[CONFIGS];
        for (int cfg = 0; cfg < CONFIGS; cfg++)
            v[cfg] = bench_median(gemm[cfg][s], rounds) * 1e6;
        printf("| GEMM %s | %.1f | %.1f | %.1f | %.2f |\n", shapes[s].name,
               v[0], v[1], v[2], v[1] / v[0]);
    }
    free(per_step);
    free(a);
    free(b);
    free(c);
    free(ws);
    free(m.rows);
    nb_tensor_free(m.src_x);
    nb_tensor_free(m.src_y);
    nb_optimizer_free(m.opt);
    nb_graph_free(m.g);
    return 0;
}
