/* Tiny-graph benchmarks: what the engine costs per node when the math is
 * nothing, on the public API.
 *
 *   xor    the 2-4-1 net of shared/peers/torch/tiny.py: sigmoid hidden and
 *          output units, binary cross-entropy on the output probability,
 *          batch 1 (cases in turn), plain SGD lr 0.5. Steps/s over
 *          `steps` steps (feed x and t, forward, backward, optimiser
 *          step), median of `reps` runs that continue training the same
 *          net.
 *   ops    a graph of 1,000 scalar ops (add, mul, tanh, sigmoid in turn on
 *          a [1] tensor): nanoseconds per op of forward, and of forward +
 *          backward, median of several timed batches of calls; beside
 *          it the same 1,000 ops written by hand in plain C with libm
 *          (tanhf, expf), timed in the same rounds: what the math itself
 *          costs on this dependent chain, the floor any engine has.
 *   chain  y = tanh(tanh(...tanh(x))) with 1,000,000 nodes: seconds to
 *          build the graph, to run forward and to run backward, and the
 *          bytes per node, counted two ways: the bytes nabla holds through
 *          the nb_set_allocator allocator once the graph is built, run
 *          forward and backward, and the growth of the resident set over
 *          the same span (first repetition only: later ones reuse freed
 *          pages). Median of `reps` fresh builds. The allocator count
 *          agrees with tests/test_chain.c although x here is rank 1 (f32
 *          [1]) and there rank 0 (f64): the tensors of a graph share their
 *          shape rows, so a node no longer pays two 64-byte rows of its own
 *          (which once made this count 314 against the test's 186), and a
 *          scalar of either dtype takes an 8-byte slot of the arena.
 *
 *   tiny [--steps N] [--reps R] [--chain N] [--only xor|ops|chain]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nabla/nabla.h"

static const float xor_x[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
static const float xor_t[4] = {0, 1, 1, 0};

static int fail(nb_graph *g, const char *what)
{
    fprintf(stderr, "tiny: %s: %s\n", what,
            g && nb_graph_error(g) ? nb_graph_error(g) : "failed");
    return 1;
}

static int bench_xor(int64_t steps, int reps)
{
    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 1);
    nb_node *x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 2});
    nb_node *t = nb_input(g, "t", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 1});
    nb_mlp net;
    nb_mlp_spec spec = {.n_layers = 2,
                        .sizes = (const int64_t[]){2, 4, 1},
                        .hidden = NB_ACT_SIGMOID,
                        .output = NB_ACT_SIGMOID,
                        .init = NB_INIT_XAVIER_UNIFORM};
    nb_node *loss = NULL;
    if (nb_mlp_build(g, x, &spec, &net) == NB_OK)
        loss = nb_bce_loss(g, net.output, t);
    nb_optimizer *opt =
        loss ? nb_optimizer_new(
                   g, &(nb_optim_config){.kind = NB_OPTIM_SGD, .lr = 0.5}, 0,
                   NULL)
             : NULL;
    if (!opt)
        return fail(g, "xor: building");

    double *rate = malloc((size_t)reps * sizeof *rate);
    int64_t allocs0 = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int64_t s = 0; s < steps; s++) {
            if (r == 0 && s == 1)
                allocs0 = bench_alloc_counts.allocs;
            int c = (int)(s % 4);
            if (nb_feed(g, x, 2, (int64_t[]){1, 2}, xor_x[c]) != NB_OK ||
                nb_feed(g, t, 2, (int64_t[]){1, 1}, &xor_t[c]) != NB_OK ||
                nb_forward(g, loss) != NB_OK ||
                nb_backward(g, loss) != NB_OK ||
                nb_optimizer_step(opt) != NB_OK)
                return fail(g, "xor: step");
        }
        rate[r] = (double)steps / (bench_now() - t0);
        bench_log("xor run %d: %.0f steps/s\n", r + 1, rate[r]);
    }
    int64_t allocs = bench_alloc_counts.allocs - allocs0;

    /* The four cases after training, to show that it learned. */
    double out[4];
    int right = 0;
    for (int c = 0; c < 4; c++) {
        nb_feed(g, x, 2, (int64_t[]){1, 2}, xor_x[c]);
        if (nb_forward(g, net.output) != NB_OK)
            return fail(g, "xor: scoring");
        out[c] = nb_tensor_get(nb_node_value(net.output), 0);
        right += (out[c] > 0.5) == (xor_t[c] > 0.5f);
    }
    bench_json j;
    bench_json_begin(&j, "xor");
    bench_json_num(&j, "steps", (double)steps);
    bench_json_num(&j, "reps", reps);
    bench_json_num(&j, "steps_per_s", bench_median(rate, reps));
    bench_json_num(&j, "nodes", (double)nb_graph_node_count(g));
    bench_json_num(&j, "allocs_per_step",
                   (double)allocs / (double)(steps * reps - 1));
    bench_json_num(&j, "out00", out[0]);
    bench_json_num(&j, "out01", out[1]);
    bench_json_num(&j, "out10", out[2]);
    bench_json_num(&j, "out11", out[3]);
    bench_json_num(&j, "cases_right", right);
    bench_json_end(&j);
    free(rate);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    return 0;
}

/* The graph of bench_ops written by hand, as a user would write it without
 * a library: one array of values, one of gradients, the same four ops in
 * turn with libm's tanhf and expf, the same backward formulas. `bump`
 * changes the input from call to call so no call can be folded away. */
enum { SCALAR_OPS = 1000 };

static float by_hand_forward(float *v, float x0)
{
    const float a = 0.25f, m = 0.9f;
    v[0] = x0;
    for (int i = 0; i < SCALAR_OPS; i++) {
        float x = v[i];
        switch (i % 4) {
        case 0: v[i + 1] = x + a; break;
        case 1: v[i + 1] = x * m; break;
        case 2: v[i + 1] = tanhf(x); break;
        default: v[i + 1] = 1 / (1 + expf(-x)); break;
        }
    }
    return v[SCALAR_OPS];
}

static float by_hand_backward(const float *v, float *g)
{
    const float m = 0.9f;
    g[SCALAR_OPS] = 1;
    for (int i = SCALAR_OPS - 1; i >= 0; i--) {
        float y = v[i + 1], dy = g[i + 1];
        switch (i % 4) {
        case 0: g[i] = dy; break;
        case 1: g[i] = dy * m; break;
        case 2: g[i] = dy * (1 - y * y); break;
        default: g[i] = dy * y * (1 - y); break;
        }
    }
    return g[0];
}

static int bench_ops(int reps)
{
    enum { OPS = SCALAR_OPS };
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_param(g, "x", NB_F32, 1, (int64_t[]){1});
    nb_node *a = nb_scalar(g, "a", NB_F32, 0.25);
    nb_node *m = nb_scalar(g, "m", NB_F32, 0.9);
    nb_tensor_set(nb_node_value(x), 0, 0.5);
    nb_node *y = x;
    for (int i = 0; i < OPS; i++) {
        switch (i % 4) {
        case 0: y = nb_add(g, y, a); break;
        case 1: y = nb_mul(g, y, m); break;
        case 2: y = nb_tanh(g, y); break;
        default: y = nb_sigmoid(g, y); break;
        }
    }
    if (!y)
        return fail(g, "ops: building");
    /* Warm-up: plans the order and allocates every buffer. */
    if (nb_forward(g, y) != NB_OK || nb_backward(g, y) != NB_OK)
        return fail(g, "ops: warm-up");

    enum { CALLS = 500 };
    double *fwd = malloc((size_t)reps * sizeof *fwd);
    double *both = malloc((size_t)reps * sizeof *both);
    double *hand_fwd = malloc((size_t)reps * sizeof *hand_fwd);
    double *hand_both = malloc((size_t)reps * sizeof *hand_both);
    static float v[SCALAR_OPS + 1], gv[SCALAR_OPS + 1];
    double hand_sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int c = 0; c < CALLS; c++)
            if (nb_forward(g, y) != NB_OK)
                return fail(g, "ops: forward");
        double t1 = bench_now();
        for (int c = 0; c < CALLS; c++)
            if (nb_forward(g, y) != NB_OK || nb_backward(g, y) != NB_OK)
                return fail(g, "ops: backward");
        double t2 = bench_now();
        fwd[r] = 1e9 * (t1 - t0) / (CALLS * (double)OPS);
        both[r] = 1e9 * (t2 - t1) / (CALLS * (double)OPS);

        /* The same work by hand, timed in the same round. */
        float sink = 0;
        t0 = bench_now();
        for (int c = 0; c < CALLS; c++)
            sink += by_hand_forward(v, 0.5f + 1e-7f * (float)(c & 7));
        t1 = bench_now();
        for (int c = 0; c < CALLS; c++) {
            sink += by_hand_forward(v, 0.5f + 1e-7f * (float)(c & 7));
            sink += by_hand_backward(v, gv);
        }
        t2 = bench_now();
        hand_fwd[r] = 1e9 * (t1 - t0) / (CALLS * (double)OPS);
        hand_both[r] = 1e9 * (t2 - t1) / (CALLS * (double)OPS);
        hand_sink += sink;
    }
    bench_json j;
    bench_json_begin(&j, "scalar_ops");
    bench_json_num(&j, "ops", OPS);
    bench_json_num(&j, "forward_ns_per_op", bench_median(fwd, reps));
    bench_json_num(&j, "forward_backward_ns_per_op", bench_median(both, reps));
    bench_json_num(&j, "by_hand_forward_ns_per_op", bench_median(hand_fwd, reps));
    bench_json_num(&j, "by_hand_forward_backward_ns_per_op",
                   bench_median(hand_both, reps));
    /* nabla's output beside the hand-written one: the same function. */
    bench_json_num(&j, "output", nb_tensor_get(nb_node_value(y), 0));
    bench_json_num(&j, "by_hand_output", by_hand_forward(v, 0.5f));
    bench_json_num(&j, "by_hand_sink", hand_sink);
    bench_json_end(&j);
    free(fwd);
    free(both);
    free(hand_fwd);
    free(hand_both);
    nb_graph_free(g);
    return 0;
}

static int bench_chain(int64_t depth, int reps)
{
    double *build = malloc((size_t)reps * sizeof *build);
    double *fwd = malloc((size_t)reps * sizeof *fwd);
    double *bwd = malloc((size_t)reps * sizeof *bwd);
    double *total = malloc((size_t)reps * sizeof *total);
    double bytes_alloc = 0, bytes_rss = 0, grad = 0, freeing = 0;
    for (int r = 0; r < reps; r++) {
        double rss0 = bench_rss();
        int64_t live0 = bench_alloc_counts.live_bytes;
        double t0 = bench_now();
        nb_graph *g = nb_graph_new();
        nb_node *x = nb_param(g, "x", NB_F32, 1, (int64_t[]){1});
        nb_tensor_set(nb_node_value(x), 0, 0.5);
        nb_node *y = x;
        for (int64_t i = 0; i < depth; i++)
            y = nb_tanh(g, y);
        double t1 = bench_now();
        if (!y || nb_forward(g, y) != NB_OK)
            return fail(g, "chain: forward");
        double t2 = bench_now();
        if (nb_backward(g, y) != NB_OK)
            return fail(g, "chain: backward");
        double t3 = bench_now();
        build[r] = t1 - t0;
        fwd[r] = t2 - t1;
        bwd[r] = t3 - t2;
        total[r] = t3 - t0;
        if (r == 0) {
            bytes_alloc = (double)(bench_alloc_counts.live_bytes - live0) /
                          (double)depth;
            bytes_rss = (bench_rss() - rss0) / (double)depth;
            grad = nb_tensor_get(nb_node_grad(x), 0);
        }
        double t4 = bench_now();
        nb_graph_free(g);
        freeing = bench_now() - t4;
        bench_log("chain %lld run %d: build %.3f s, forward %.3f s, backward "
                  "%.3f s\n",
                  (long long)depth, r + 1, build[r], fwd[r], bwd[r]);
    }
    bench_json j;
    bench_json_begin(&j, "chain");
    bench_json_num(&j, "depth", (double)depth);
    bench_json_num(&j, "reps", reps);
    bench_json_num(&j, "build_s", bench_median(build, reps));
    bench_json_num(&j, "forward_s", bench_median(fwd, reps));
    bench_json_num(&j, "backward_s", bench_median(bwd, reps));
    bench_json_num(&j, "total_s", bench_median(total, reps));
    bench_json_num(&j, "free_s", freeing);
    bench_json_num(&j, "bytes_per_node_alloc", bytes_alloc);
    bench_json_num(&j, "bytes_per_node_rss", bytes_rss);
    bench_json_num(&j, "grad_x", grad);
    bench_json_end(&j);
    free(build);
    free(fwd);
    free(bwd);
    free(total);
    return 0;
}

int main(int argc, char **argv)
{
    int64_t steps = 100000, depth = 1000000;
    int reps = 5;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "usage: tiny [--steps N] [--reps R] [--chain N] "
                            "[--only xor|ops|chain]\n");
            return 2;
        }
        const char *flag = argv[i], *val = argv[++i];
        if (!strcmp(flag, "--steps"))
            steps = atoll(val);
        else if (!strcmp(flag, "--reps"))
            reps = atoi(val);
        else if (!strcmp(flag, "--chain"))
            depth = atoll(val);
        else if (!strcmp(flag, "--only"))
            only = val;
        else {
            fprintf(stderr, "tiny: unknown flag %s\n", flag);
            return 2;
        }
    }
    if (steps < 2 || reps < 1 || depth < 1) {
        fprintf(stderr, "tiny: --steps >= 2, --reps >= 1, --chain >= 1\n");
        return 2;
    }
    nb_set_allocator(&(nb_allocator){bench_counting_alloc, bench_counting_free,
                                     NULL});
    int rc = 0;
    if (!rc && (!only || !strcmp(only, "xor")))
        rc = bench_xor(steps, reps);
    if (!rc && (!only || !strcmp(only, "ops")))
        rc = bench_ops(reps < 3 ? 3 : reps);
    if (!rc && (!only || !strcmp(only, "chain")))
        rc = bench_chain(depth, reps < 3 ? reps : 3);
    return rc;
}
