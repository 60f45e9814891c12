/* End-to-end benchmark: the Fashion-MNIST MLP 784-256-128-10 (ReLU hidden
 * units, softmax cross-entropy on the logits, SGD lr 0.05 momentum 0.9,
 * PyTorch's default initialisation), trained with the hand-written loop a
 * user would write on the public API: nb_feed_rows, nb_forward, nb_backward,
 * nb_optimizer_step. It is the same workload as the PyTorch peer
 * shared/peers/torch/mlp.py: each epoch shuffles the 60,000 training
 * images (outside the timed region, as the peer does with randperm), then
 * times every full batch (a final partial batch is dropped, as in the
 * peer), then scores the 10,000 test images (untimed).
 *
 * Figures, one JSON line per epoch and a summary line on stdout:
 *   samples/s = full batches * batch / train seconds
 *   feed / forward / backward / optimiser seconds of the epoch; the
 *     backward/forward ratio is their quotient over all epochs
 *   cpu/wall: process CPU seconds over wall seconds of the training loops,
 *     i.e. how many cores nabla kept busy (threads come from OpenMP's
 *     OMP_NUM_THREADS if the library uses OpenMP at all)
 *   memory: peak RSS (getrusage ru_maxrss) next to what the run needs to
 *     hold, counted from the live tensors: the datasets, the parameters,
 *     their gradients, the optimiser's state, every other node's value and
 *     gradient (activations and their messages) and the index arrays
 *   allocations per step: calls of the nb_set_allocator allocator, and of
 *     libc's malloc family when the program is linked with bench/
 *     wrap_malloc.c, during every training step but the run's first (the
 *     first plans the buffers); the design requires 0.
 *
 *   mlp [--batch B] [--epochs E] [--seed S] [--lr LR] [--data DIR]
 *       [--limit N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "nabla/nabla.h"

#define CLASSES 10

static int64_t tensor_bytes(nb_tensor *t)
{
    return t ? nb_tensor_size(t) * (int64_t)nb_dtype_size(nb_tensor_dtype(t))
             : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: mlp [--batch B] [--epochs E] [--seed S] [--lr LR] "
                    "[--data DIR] [--limit N]\n");
    return 2;
}

/* Test-set accuracy, fed in batches of the training batch size so that
 * scoring grows no buffer. */
static double test_accuracy(nb_graph *g, nb_node *x, nb_node *logits,
                            const nb_dataset *test, const int64_t *order,
                            int64_t batch, int64_t *pred)
{
    int64_t n = nb_dataset_size(test), right = 0;
    const float *labels = nb_tensor_cdata(test->y);
    nb_graph_set_training(g, false);
    for (int64_t first = 0; first < n; first += batch) {
        int64_t count = n - first < batch ? n - first : batch;
        if (nb_feed_rows(g, x, test->x, order + first, count) != NB_OK ||
            nb_forward(g, logits) != NB_OK)
            return NAN;
        nb_argmax_rows(nb_node_value(logits), pred);
        for (int64_t i = 0; i < count; i++)
            right += pred[i] == (int64_t)labels[first + i];
    }
    nb_graph_set_training(g, true);
    return (double)right / (double)n;
}

int main(int argc, char **argv)
{
    int64_t batch = 64, epochs = 3, seed = 1, limit = 0;
    double lr = 0.05;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        const char *flag = argv[i], *val = argv[++i];
        if (!strcmp(flag, "--batch"))
            batch = atoll(val);
        else if (!strcmp(flag, "--epochs"))
            epochs = atoll(val);
        else if (!strcmp(flag, "--seed"))
            seed = atoll(val);
        else if (!strcmp(flag, "--lr"))
            lr = atof(val);
        else if (!strcmp(flag, "--data"))
            dir = val;
        else if (!strcmp(flag, "--limit"))
            limit = atoll(val);
        else
            return usage();
    }
    if (batch < 1 || epochs < 1 || !(lr > 0))
        return usage();

    nb_set_allocator(&(nb_allocator){bench_counting_alloc, bench_counting_free,
                                     NULL});
    double rss_start = bench_rss();

    char train_x[512], train_y[512], test_x[512], test_y[512];
    nb_status st;
    snprintf(train_x, sizeof train_x, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(train_y, sizeof train_y, "%s/train-labels-idx1-ubyte.gz", dir);
    snprintf(test_x, sizeof test_x, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(test_y, sizeof test_y, "%s/t10k-labels-idx1-ubyte.gz", dir);
    nb_dataset train = {0}, test = {0};
    double t_load = bench_now();
    if (nb_dataset_load_idx(&train, train_x, train_y, NB_F32, limit, &st) != NB_OK ||
        nb_dataset_load_idx(&test, test_x, test_y, NB_F32, 0, &st) != NB_OK) {
        fprintf(stderr, "mlp: %s\n", st.message);
        return 1;
    }
    t_load = bench_now() - t_load;
    double rss_loaded = bench_rss();

    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, (uint64_t)seed);
    nb_node *x = nb_input(g, "x", NB_F32, 2, (int64_t[]){NB_DYNAMIC, 784});
    nb_node *y = nb_input(g, "label", NB_F32, 1, (int64_t[]){NB_DYNAMIC});
    nb_mlp mlp;
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = (const int64_t[]){784, 256, 128, CLASSES},
                        .hidden = NB_ACT_RELU,
                        .output = NB_ACT_SOFTMAX,
                        .init = NB_INIT_TORCH};
    nb_node *loss = NULL;
    if (nb_mlp_build(g, x, &spec, &mlp) == NB_OK)
        loss = nb_mlp_loss(g, &mlp, y);
    nb_optimizer *opt = loss ? nb_optimizer_new(
                                   g,
                                   &(nb_optim_config){.kind = NB_OPTIM_SGD,
                                                      .lr = lr,
                                                      .momentum = 0.9},
                                   0, NULL)
                             : NULL;
    int64_t n = nb_dataset_size(&train), n_test = nb_dataset_size(&test);
    int64_t *order = malloc((size_t)n * sizeof *order);
    int64_t *test_order = malloc((size_t)n_test * sizeof *test_order);
    int64_t *pred = malloc((size_t)batch * sizeof *pred);
    if (!opt || !order || !test_order || !pred) {
        fprintf(stderr, "mlp: setting up: %s\n",
                nb_graph_error(g) ? nb_graph_error(g) : "out of memory");
        return 1;
    }
    nb_iota(order, n);
    nb_iota(test_order, n_test);

    int64_t steps_per_epoch = n / batch;
    double *rate = malloc((size_t)epochs * sizeof *rate);
    double t_feed = 0, t_fwd = 0, t_bwd = 0, t_opt = 0, wall = 0, cpu = 0;
    /* Heap calls during training steps, every step but the run's first. */
    int64_t steady_allocs = 0, steady_libc = 0, counted_steps = 0;
    /* The first step plans every buffer: its count shows the counters are
     * live. */
    int64_t first_allocs = 0, first_libc = 0;
    double accuracy = NAN, last_loss = NAN;
    int64_t node_bytes = 0;
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
            double a = bench_now();
            int rc = nb_feed_rows(g, x, train.x, rows, batch);
            if (rc == NB_OK)
                rc = nb_feed_rows(g, y, train.y, rows, batch);
            double b = bench_now();
            if (rc == NB_OK)
                rc = nb_forward(g, loss);
            double c = bench_now();
            if (rc == NB_OK)
                rc = nb_backward(g, loss);
            double d = bench_now();
            if (rc == NB_OK)
                rc = nb_optimizer_step(opt);
            double t = bench_now();
            if (rc != NB_OK) {
                fprintf(stderr, "mlp: epoch %lld step %lld: %s\n", (long long)e,
                        (long long)s, nb_graph_error(g));
                return 1;
            }
            f += b - a;
            fw += c - b;
            bw += d - c;
            op += t - d;
        }
        double dt = bench_now() - t0;
        cpu += bench_cpu_seconds() - c0;
        wall += dt;
        steady_allocs += bench_alloc_counts.allocs - allocs0;
        steady_libc += bench_libc_calls() - libc0;
        counted_steps += e == 1 ? steps_per_epoch - 1 : steps_per_epoch;
        last_loss = nb_tensor_get(nb_node_value(loss), 0);
        /* Bytes of every node's value and gradient right after a training
         * step, before scoring changes the batch. */
        node_bytes = 0;
        for (int64_t id = 0; id < nb_graph_node_count(g); id++) {
            nb_node *nd = nb_graph_node(g, id);
            node_bytes += tensor_bytes(nb_node_value(nd)) +
                          tensor_bytes(nb_node_grad(nd));
        }
        t_feed += f;
        t_fwd += fw;
        t_bwd += bw;
        t_opt += op;
        rate[e - 1] = (double)(steps_per_epoch * batch) / dt;
        accuracy =
            test_accuracy(g, x, mlp.logits, &test, test_order, batch, pred);
        bench_log("mlp batch %lld epoch %lld: %.3f s, %.0f samples/s, loss "
                  "%.4f, test accuracy %.2f%%\n",
                  (long long)batch, (long long)e, dt, rate[e - 1], last_loss,
                  100 * accuracy);
        bench_json j;
        bench_json_begin(&j, "mlp_epoch");
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
    int64_t data_bytes = tensor_bytes(train.x) + tensor_bytes(train.y) +
                         tensor_bytes(test.x) + tensor_bytes(test.y);
    int64_t param_bytes = 0, param_grad_bytes = 0, state_bytes = 0;
    for (int i = 0; i < nb_optimizer_param_count(opt); i++) {
        nb_node *p = nb_optimizer_param(opt, i);
        param_bytes += tensor_bytes(nb_node_value(p));
        param_grad_bytes += tensor_bytes(nb_node_grad(p));
    }
    for (int i = 0; i < nb_optimizer_state_count(opt); i++)
        state_bytes += tensor_bytes(nb_optimizer_state(opt, i, NULL));
    int64_t activation_bytes = node_bytes - param_bytes - param_grad_bytes;
    int64_t scratch_bytes = (n + n_test + batch) * (int64_t)sizeof(int64_t);
    int64_t needed = data_bytes + param_bytes + param_grad_bytes + state_bytes +
                     activation_bytes + scratch_bytes;

    double median_rate = bench_median(rate, (int)epochs);
    bench_json j;
    bench_json_begin(&j, "mlp");
    bench_json_num(&j, "batch", (double)batch);
    bench_json_num(&j, "epochs", (double)epochs);
    bench_json_num(&j, "steps_per_epoch", (double)steps_per_epoch);
    bench_json_num(&j, "samples_per_s", median_rate);
    bench_json_num(&j, "test_acc", accuracy);
    bench_json_num(&j, "final_loss", last_loss);
    bench_json_num(&j, "load_s", t_load);
    bench_json_num(&j, "step_us", 1e6 * wall / (double)(epochs * steps_per_epoch));
    bench_json_num(&j, "feed_us", 1e6 * t_feed / (double)(epochs * steps_per_epoch));
    bench_json_num(&j, "forward_us", 1e6 * t_fwd / (double)(epochs * steps_per_epoch));
    bench_json_num(&j, "backward_us", 1e6 * t_bwd / (double)(epochs * steps_per_epoch));
    bench_json_num(&j, "optimizer_us", 1e6 * t_opt / (double)(epochs * steps_per_epoch));
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
    bench_json_num(&j, "nb_alloc_peak_bytes", (double)bench_alloc_counts.peak_bytes);
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
