/* The end-to-end training benchmark shared by mlp.c and cnn.c: the
 * hand-written loop a user would write on the public API (nb_feed_rows,
 * nb_forward, nb_backward, nb_optimizer_step) over Fashion-MNIST, timed
 * and counted the same way for every model, so that the figures of the
 * two programs mean the same thing.
 *
 * Each epoch shuffles the training images (outside the timed region, as
 * the PyTorch peers do with randperm), then times every full batch (a
 * final partial batch is dropped, as in the peers), then scores the test
 * images (untimed).
 *
 * Figures, one JSON line per epoch ("<kind>_epoch") and a summary line
 * ("<kind>") on stdout:
 *   samples/s = full batches * batch / train seconds
 *   feed / forward / backward / optimiser seconds of the epoch; the
 *     backward/forward ratio is their quotient over all epochs
 *   cpu/wall: process CPU seconds over wall seconds of the training loops,
 *     i.e. how many cores nabla kept busy (OMP_NUM_THREADS caps its team)
 *   memory: peak RSS (getrusage ru_maxrss) next to what the run needs to
 *     hold, counted from the live tensors: the datasets, the parameters,
 *     their gradients, the optimiser's state, every other node's value and
 *     gradient (activations and their messages) and the index arrays
 *   allocations per step: calls of the nb_set_allocator allocator, and of
 *     libc's malloc family when the program is linked with bench/
 *     wrap_malloc.c, during every training step but the run's first (the
 *     first plans the buffers); the design requires 0.
 */
#ifndef NABLA_BENCH_TRAIN_LOOP_H
#define NABLA_BENCH_TRAIN_LOOP_H

#include <math.h>

#include "bench_util.h"
#include "nabla/nabla.h"

typedef struct bench_train_args {
    const char *kind; /* "mlp", "cnn": names the JSON lines */
    int64_t batch, epochs, seed, limit;
    double lr;
    const char *dir;
} bench_train_args;

/* A model built by the program on the graph the loop made: its inputs
 * (images as [N, 784] rows, labels), the loss and the logits. */
typedef struct bench_model {
    nb_node *x, *labels, *loss, *logits;
} bench_model;

typedef int (*bench_build_fn)(nb_graph *g, bench_model *m);

static inline int64_t bench_tensor_bytes(nb_tensor *t)
{
    return t ? nb_tensor_size(t) * (int64_t)nb_dtype_size(nb_tensor_dtype(t))
             : 0;
}

/* Parses the options every training bench takes; returns 0, or 2 after
 * printing the usage. */
static inline int bench_train_parse(int argc, char **argv,
                                    bench_train_args *a)
{
    bool ok = true;
    for (int i = 1; i < argc && ok; i += 2) {
        const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        ok = val != NULL;
        if (!ok)
            break;
        if (!strcmp(flag, "--batch"))
            a->batch = atoll(val);
        else if (!strcmp(flag, "--epochs"))
            a->epochs = atoll(val);
        else if (!strcmp(flag, "--seed"))
            a->seed = atoll(val);
        else if (!strcmp(flag, "--lr"))
            a->lr = atof(val);
        else if (!strcmp(flag, "--data"))
            a->dir = val;
        else if (!strcmp(flag, "--limit"))
            a->limit = atoll(val);
        else
            ok = false;
    }
    if (!ok || a->batch < 1 || a->epochs < 1 || !(a->lr > 0) ||
        a->limit < 0) {
        fprintf(stderr,
                "usage: %s [--batch B] [--epochs E] [--seed S] [--lr LR] "
                "[--data DIR] [--limit N]\n",
                a->kind);
        return 2;
    }
    return 0;
}

/* Test-set accuracy, fed in batches of the training batch size so that
 * scoring grows no buffer. */
static inline double bench_test_accuracy(nb_graph *g, const bench_model *m,
                                         const nb_dataset *test,
                                         const int64_t *order, int64_t batch,
                                         int64_t *pred)
{
    int64_t n = nb_dataset_size(test), right = 0;
    const float *labels = nb_tensor_cdata(test->y);
    nb_graph_set_training(g, false);
    for (int64_t first = 0; first < n; first += batch) {
        int64_t count = n - first < batch ? n - first : batch;
        if (nb_feed_rows(g, m->x, test->x, order + first, count) != NB_OK ||
            nb_forward(g, m->logits) != NB_OK)
            return NAN;
        nb_argmax_rows(nb_node_value(m->logits), pred);
        for (int64_t i = 0; i < count; i++)
            right += pred[i] == (int64_t)labels[first + i];
    }
    nb_graph_set_training(g, true);
    return (double)right / (double)n;
}

/* Loads the data, builds the model with `build`, trains it with SGD
 * momentum 0.9 and prints the figures. Returns the process's exit status. */
static inline int bench_train_run(const bench_train_args *a,
                                  bench_build_fn build)
{
    const char *kind = a->kind;
    const int64_t batch = a->batch, epochs = a->epochs;
    nb_set_allocator(&(nb_allocator){bench_counting_alloc, bench_counting_free,
                                     NULL});
    double rss_start = bench_rss();

    char train_x[512], train_y[512], test_x[512], test_y[512];
    nb_status st;
    snprintf(train_x, sizeof train_x, "%s/train-images-idx3-ubyte.gz", a->dir);
    snprintf(train_y, sizeof train_y, "%s/train-labels-idx1-ubyte.gz", a->dir);
    snprintf(test_x, sizeof test_x, "%s/t10k-images-idx3-ubyte.gz", a->dir);
    snprintf(test_y, sizeof test_y, "%s/t10k-labels-idx1-ubyte.gz", a->dir);
    nb_dataset train = {0}, test = {0};
    double t_load = bench_now();
    if (nb_dataset_load_idx(&train, train_x, train_y, NB_F32, a->limit, &st) !=
            NB_OK ||
        nb_dataset_load_idx(&test, test_x, test_y, NB_F32, 0, &st) != NB_OK) {
        fprintf(stderr, "%s: %s\n", kind, st.message);
        return 1;
    }
    t_load = bench_now() - t_load;
    double rss_loaded = bench_rss();

    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, (uint64_t)a->seed);
    bench_model m = {0};
    m.x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 784});
    m.labels = nb_input(g, "label", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    nb_optimizer *opt =
        build(g, &m) == NB_OK && m.loss
            ? nb_optimizer_new(g,
                               &(nb_optim_config){.kind = NB_OPTIM_SGD,
                                                  .lr = a->lr,
                                                  .momentum = 0.9},
                               0, NULL)
            : NULL;
    int64_t n = nb_dataset_size(&train), n_test = nb_dataset_size(&test);
    int64_t *order = malloc((size_t)n * sizeof *order);
    int64_t *test_order = malloc((size_t)n_test * sizeof *test_order);
    int64_t *pred = malloc((size_t)batch * sizeof *pred);
    double *rate = malloc((size_t)epochs * sizeof *rate);
    int64_t steps_per_epoch = n / batch;
    if (!opt || !order || !test_order || !pred || !rate ||
        steps_per_epoch < 2) {
        fprintf(stderr, "%s: setting up: %s\n", kind,
                nb_graph_error(g) ? nb_graph_error(g)
                                  : "out of memory or fewer than 2 batches");
        return 1;
    }
    nb_iota(order, n);
    nb_iota(test_order, n_test);

    double t_feed = 0, t_fwd = 0, t_bwd = 0, t_opt = 0, wall = 0, cpu = 0;
    /* Heap calls during training steps, every step but the run's first. */
    int64_t steady_allocs = 0, steady_libc = 0, counted_steps = 0;
    /* The first step plans every buffer: its count shows the counters are
     * live. */
    int64_t first_allocs = 0, first_libc = 0;
    double accuracy = NAN, last_loss = NAN;
    int64_t node_bytes = 0;
    char epoch_kind[64];
    snprintf(epoch_kind, sizeof epoch_kind, "%s_epoch", kind);
    for (int64_t e = 1; e <= epochs; e++) {
        nb_shuffle(g, order, n);
        double f = 0, fw = 0, bw = 0, op = 0;
        int64_t allocs0 = bench_alloc_counts.allocs, libc0 = bench_libc_calls();
        double c0 = bench_cpu_seconds(), t0 = bench_now();
        for (int64_t s = 0; s < steps_per_epoch; s++) {
            if (e == 1 && s == 1) {
                first_allocs = bench_alloc_counts.allocs - allocs0;
                first_libc = bench_libc_calls() - libc0;
                allocs0 = bench_alloc_counts.allocs;
                libc0 = bench_libc_calls();
            }
            const int64_t *rows = order + s * batch;
            double ta = bench_now();
            int rc = nb_feed_rows(g, m.x, train.x, rows, batch);
            if (rc == NB_OK)
                rc = nb_feed_rows(g, m.labels, train.y, rows, batch);
            double tb = bench_now();
            if (rc == NB_OK)
                rc = nb_forward(g, m.loss);
            double tc = bench_now();
            if (rc == NB_OK)
                rc = nb_backward(g, m.loss);
            double td = bench_now();
            if (rc == NB_OK)
                rc = nb_optimizer_step(opt);
            double te = bench_now();
            if (rc != NB_OK) {
                fprintf(stderr, "%s: epoch %lld step %lld: %s\n", kind,
                        (long long)e, (long long)s, nb_graph_error(g));
                return 1;
            }
            f += tb - ta;
            fw += tc - tb;
            bw += td - tc;
            op += te - td;
        }
        double dt = bench_now() - t0;
        cpu += bench_cpu_seconds() - c0;
        wall += dt;
        steady_allocs += bench_alloc_counts.allocs - allocs0;
        steady_libc += bench_libc_calls() - libc0;
        counted_steps += e == 1 ? steps_per_epoch - 1 : steps_per_epoch;
        last_loss = nb_tensor_get(nb_node_value(m.loss), 0);
        /* Bytes of every node's value and gradient right after a training
         * step, before scoring changes the batch. */
        node_bytes = 0;
        for (int64_t id = 0; id < nb_graph_node_count(g); id++) {
            nb_node *nd = nb_graph_node(g, id);
            node_bytes += bench_tensor_bytes(nb_node_value(nd)) +
                          bench_tensor_bytes(nb_node_grad(nd));
        }
        t_feed += f;
        t_fwd += fw;
        t_bwd += bw;
        t_opt += op;
        rate[e - 1] = (double)(steps_per_epoch * batch) / dt;
        accuracy = bench_test_accuracy(g, &m, &test, test_order, batch, pred);
        bench_log("%s batch %lld epoch %lld: %.3f s, %.0f samples/s, loss "
                  "%.4f, test accuracy %.2f%%\n",
                  kind, (long long)batch, (long long)e, dt, rate[e - 1],
                  last_loss, 100 * accuracy);
        bench_json j;
        bench_json_begin(&j, epoch_kind);
        bench_json_num(&j, "batch", (double)batch);
        bench_json_num(&j, "epoch", (double)e);
        bench_json_num(&j, "train_s", dt);
        bench_json_num(&j, "samples_per_s", rate[e - 1]);
        bench_json_num(&j, "test_acc", accuracy);
        bench_json_num(&j, "loss", last_loss);
        bench_json_num(&j, "feed_s", f);
        bench_json_num(&j, "forward_s", fw);
        bench_json_num(&j, "backward_s", bw);
        bench_json_num(&j, "optimizer_s", op);
        bench_json_end(&j);
    }
    /* What the run needs to hold. */
    int64_t data_bytes = bench_tensor_bytes(train.x) +
                         bench_tensor_bytes(train.y) +
                         bench_tensor_bytes(test.x) + bench_tensor_bytes(test.y);
    int64_t param_bytes = 0, param_grad_bytes = 0, state_bytes = 0;
    for (int i = 0; i < nb_optimizer_param_count(opt); i++) {
        nb_node *p = nb_optimizer_param(opt, i);
        param_bytes += bench_tensor_bytes(nb_node_value(p));
        param_grad_bytes += bench_tensor_bytes(nb_node_grad(p));
    }
    for (int i = 0; i < nb_optimizer_state_count(opt); i++)
        state_bytes += bench_tensor_bytes(nb_optimizer_state(opt, i, NULL));
    int64_t activation_bytes = node_bytes - param_bytes - param_grad_bytes;
    int64_t scratch_bytes = (n + n_test + batch) * (int64_t)sizeof(int64_t);
    int64_t needed = data_bytes + param_bytes + param_grad_bytes + state_bytes +
                     activation_bytes + scratch_bytes;

    double steps = (double)(epochs * steps_per_epoch);
    bench_json j;
    bench_json_begin(&j, kind);
    bench_json_num(&j, "batch", (double)batch);
    bench_json_num(&j, "epochs", (double)epochs);
    bench_json_num(&j, "steps_per_epoch", (double)steps_per_epoch);
    bench_json_num(&j, "samples_per_s", bench_median(rate, (int)epochs));
    bench_json_num(&j, "test_acc", accuracy);
    bench_json_num(&j, "final_loss", last_loss);
    bench_json_num(&j, "load_s", t_load);
    bench_json_num(&j, "step_us", 1e6 * wall / steps);
    bench_json_num(&j, "feed_us", 1e6 * t_feed / steps);
    bench_json_num(&j, "forward_us", 1e6 * t_fwd / steps);
    bench_json_num(&j, "backward_us", 1e6 * t_bwd / steps);
    bench_json_num(&j, "optimizer_us", 1e6 * t_opt / steps);
    bench_json_num(&j, "backward_forward_ratio", t_bwd / t_fwd);
    bench_json_num(&j, "cpu_per_wall", cpu / wall);
    const char *omp = getenv("OMP_NUM_THREADS");
    bench_json_str(&j, "omp_num_threads", omp ? omp : "");
    bench_json_num(&j, "rss_start", rss_start);
    bench_json_num(&j, "rss_loaded", rss_loaded);
    bench_json_num(&j, "peak_rss", bench_peak_rss());
    bench_json_num(&j, "data_bytes", (double)data_bytes);
    bench_json_num(&j, "param_bytes", (double)param_bytes);
    bench_json_num(&j, "param_grad_bytes", (double)param_grad_bytes);
    bench_json_num(&j, "optimizer_state_bytes", (double)state_bytes);
    bench_json_num(&j, "activation_bytes", (double)activation_bytes);
    bench_json_num(&j, "scratch_bytes", (double)scratch_bytes);
    bench_json_num(&j, "needed_bytes", (double)needed);
    bench_json_num(&j, "nb_alloc_peak_bytes",
                   (double)bench_alloc_counts.peak_bytes);
    bench_json_num(&j, "counted_steps", (double)counted_steps);
    bench_json_num(&j, "first_step_allocs", (double)first_allocs);
    bench_json_num(&j, "first_step_libc_heap_calls",
                   bench_libc_calls() < 0 ? NAN : (double)first_libc);
    bench_json_num(&j, "allocs_per_step",
                   counted_steps ? (double)steady_allocs / (double)counted_steps
                                 : NAN);
    bench_json_num(&j, "libc_heap_calls_per_step",
                   bench_libc_calls() < 0 || !counted_steps
                       ? NAN
                       : (double)steady_libc / (double)counted_steps);
    bench_json_end(&j);

    free(rate);
    free(pred);
    free(test_order);
    free(order);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    nb_dataset_free(&train);
    nb_dataset_free(&test);
    return 0;
}

/* main() of a training bench: the defaults (batch 64, seed 1, lr 0.05,
 * Debian's Fashion-MNIST), the options, the run. */
static inline int bench_train_main(int argc, char **argv, const char *kind,
                                   int64_t epochs, bench_build_fn build)
{
    bench_train_args a = {.kind = kind,
                          .batch = 64,
                          .epochs = epochs,
                          .seed = 1,
                          .lr = 0.05,
                          .dir = "/usr/share/datasets/fashion-mnist"};
    int rc = bench_train_parse(argc, argv, &a);
    return rc ? rc : bench_train_run(&a, build);
}

#endif
