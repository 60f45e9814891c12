/* Data-parallel scaling: the Fashion-MNIST MLP 784-256-128-10 (ReLU,
 * softmax cross-entropy, SGD lr 0.05 momentum 0.9) with a per-rank batch,
 * trained with the loop a user would write on nabla_dist:
 * nb_dist_broadcast once, then per step nb_dist_begin_grads, nb_feed_rows,
 * nb_forward, nb_backward, nb_dist_average_grads, nb_optimizer_step. Run
 * it under mpirun with 1 and with 2 ranks (one OpenMP thread each): weak
 * scaling, the work per rank fixed.
 *
 * Figures, one JSON line from rank 0 (medians over the timed epochs, the
 * overlap over all of them):
 *   samples/s  = ranks * batch * steps / wall seconds of the epoch's steps
 *   compute_ms = feed + forward + backward per step (rank 0), which
 *                includes the packing and ring progress done in backward's
 *                gradient-ready calls
 *   reduce_ms  = nb_dist_average_grads per step (rank 0): the reduction's
 *                wait after backward: the rest of the rings, the
 *                agreement, unpacking, and the wait for the slower rank;
 *                reduce_ms_p10: the 10th percentile of it over the timed
 *                steps, where the ranks arrived nearly together: close to
 *                the reduction's own cost on a loaded machine
 *   overlap    = the fraction of the reduced bytes whose ring started
 *                during backward; overlap_done: of those whose ring had
 *                ended when backward returned
 *   shared     = the fraction summed through the shared-memory window
 *                (every rank on one node) rather than by the ring
 *
 *   mpirun -np R dist_mlp [--batch B] [--epochs E] [--limit N] [--data DIR]
 *                         [--bucket-kib K] [--no-overlap]
 *                         [--window | --ring]
 *
 * --bucket-kib: nb_dist_new's bucket size (default 0: NB_DIST_BUCKET_BYTES,
 * which holds the whole MLP in one bucket); --no-overlap: the same layout
 * with every ring left to nb_dist_average_grads (nb_dist_set_overlap);
 * --window: the gradients summed through the shared-memory window
 * (nb_dist_set_shared_memory) instead of the ring of messages, the
 * library's default and the only path whose steps start during backward
 * (--ring says so explicitly).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "bench_util.h"
#include "nabla/dist.h"
#include "nabla/nabla.h"

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int64_t batch = 64, epochs = 3, limit = 19200, bucket_kib = 0;
    bool overlap = true, window = false;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--no-overlap") || !strcmp(argv[i], "--ring") ||
            !strcmp(argv[i], "--window")) {
            if (!strcmp(argv[i], "--window"))
                window = true;
            else if (!strcmp(argv[i], "--ring"))
                window = false;
            else
                overlap = false;
            for (int j = i; j + 1 < argc; j++)
                argv[j] = argv[j + 1];
            argc--;
            i--;
        }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bucket-kib"))
            bucket_kib = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs"))
            epochs = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--limit"))
            limit = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--data"))
            dir = argv[i + 1];
    }
    nb_status st;
    nb_dist *d = nb_dist_new(MPI_COMM_WORLD, (size_t)bucket_kib << 10, &st);
    if (!d) {
        fprintf(stderr, "dist_mlp: %s\n", st.message);
        MPI_Finalize();
        return 1;
    }
    int rank = nb_dist_rank(d), ranks = nb_dist_size(d);
    nb_dist_set_overlap(d, overlap);
    nb_dist_set_shared_memory(d, window);
    char images[512], labels[512];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(labels, sizeof labels, "%s/train-labels-idx1-ubyte.gz", dir);
    nb_dataset train = {0};
    int rc = nb_dataset_load_idx(&train, images, labels, NB_F32, limit, &st);
    if (rc)
        fprintf(stderr, "dist_mlp: rank %d: %s\n", rank, st.message);
    if (nb_dist_agree(d, rc, &st) != NB_OK) {
        nb_dist_free(d);
        MPI_Finalize();
        return 1;
    }

    nb_graph *g = nb_graph_new();
    nb_graph_seed(g, 1);
    nb_node *x = nb_input(g, "x", NB_F32, 2, (const int64_t[]){NB_DYNAMIC, 784});
    nb_node *y = nb_input(g, "y", NB_F32, 1, (const int64_t[]){NB_DYNAMIC});
    int64_t sizes[] = {784, 256, 128, 10};
    nb_mlp_spec spec = {.n_layers = 3,
                        .sizes = sizes,
                        .hidden = NB_ACT_RELU,
                        .output = NB_ACT_SOFTMAX,
                        .init = NB_INIT_TORCH};
    nb_mlp mlp;
    rc = nb_mlp_build(g, x, &spec, &mlp);
    nb_node *loss = rc ? NULL : nb_mlp_loss(g, &mlp, y);
    nb_optim_config oc = {.kind = NB_OPTIM_SGD, .lr = 0.05, .momentum = 0.9};
    nb_optimizer *opt = loss ? nb_optimizer_new(g, &oc, 0, NULL) : NULL;
    rc = opt ? NB_OK : NB_ERR_ARG;
    if (nb_dist_broadcast(d, g, opt, rc) != NB_OK) {
        fprintf(stderr, "dist_mlp: rank %d: %s\n", rank, nb_graph_error(g));
        nb_dist_free(d);
        MPI_Finalize();
        return 1;
    }

    int64_t n = nb_dataset_size(&train), global = batch * ranks;
    int64_t steps = n / global;
    int64_t *order = malloc((size_t)n * sizeof *order);
    double *rate = malloc((size_t)epochs * sizeof *rate);
    double *comp = malloc((size_t)epochs * sizeof *comp);
    double *red = malloc((size_t)epochs * sizeof *red);
    double *each = malloc((size_t)(steps * epochs + 1) * sizeof *each);
    int64_t n_each = 0;
    nb_graph_set_training(g, true);
    for (int64_t e = 0; rc == NB_OK && e <= epochs; e++) {
        /* Every rank draws the same shuffle: the RNG was broadcast, then
         * reseeded apart on ranks > 0, so rank 0's order is sent. */
        nb_iota(order, n);
        nb_shuffle(g, order, n);
        MPI_Bcast(order, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        if (e == 1)
            nb_dist_reset_stats(d);
        double t0 = bench_now(), tc = 0, tr = 0;
        for (int64_t s = 0; rc == NB_OK && s < steps; s++) {
            double a = bench_now();
            const int64_t *rows = order + s * global + rank * batch;
            rc = nb_dist_begin_grads(d, opt, 1.0 / ranks);
            rc = rc ? rc : nb_feed_rows(g, x, train.x, rows, batch);
            rc = rc ? rc : nb_feed_rows(g, y, train.y, rows, batch);
            rc = rc ? rc : nb_forward(g, loss);
            rc = rc ? rc : nb_backward(g, loss);
            double b = bench_now();
            rc = nb_dist_average_grads(d, opt, 1.0 / ranks, rc);
            double c = bench_now();
            rc = rc ? rc : nb_optimizer_step(opt);
            tc += b - a;
            tr += c - b;
            if (e > 0)
                each[n_each++] = 1e3 * (c - b);
        }
        double wall = bench_now() - t0;
        /* Epoch 0 plans the buffers and warms up: not timed. */
        if (e > 0) {
            rate[e - 1] = (double)(steps * global) / wall;
            comp[e - 1] = 1e3 * tc / (double)steps;
            red[e - 1] = 1e3 * tr / (double)steps;
        }
    }
    nb_dist_stats ds = {0};
    nb_dist_get_stats(d, &ds);
    qsort(each, (size_t)n_each, sizeof *each, bench_cmp_double);
    double p10 = n_each ? each[n_each / 10] : 0;
    double bytes = ds.bytes > 0 ? ds.bytes : 1;
    if (rc != NB_OK)
        fprintf(stderr, "dist_mlp: rank %d: %s\n", rank, nb_graph_error(g));
    else if (rank == 0)
        printf("{\"bench\":\"dist_mlp\",\"ranks\":%d,\"batch_per_rank\":%lld,"
               "\"samples_per_s\":%.0f,\"compute_ms_per_step\":%.3f,"
               "\"reduce_ms_per_step\":%.3f,\"reduce_ms_p10\":%.3f,"
               "\"overlap\":%.3f,"
               "\"overlap_done\":%.3f,\"overlap_on\":%s,\"shared\":%.3f,"
               "\"bucket_bytes\":%lld,\"rows\":%lld,\"epochs\":%lld}\n",
               ranks, (long long)batch, bench_median(rate, (int)epochs),
               bench_median(comp, (int)epochs), bench_median(red, (int)epochs),
               p10,
               ds.bytes_early / bytes, ds.bytes_done_early / bytes,
               overlap ? "true" : "false", ds.bytes_shared / bytes,
               (long long)(bucket_kib ? bucket_kib << 10
                                      : (int64_t)NB_DIST_BUCKET_BYTES),
               (long long)n, (long long)epochs);
    free(order);
    free(rate);
    free(comp);
    free(red);
    free(each);
    nb_optimizer_free(opt);
    nb_graph_free(g);
    nb_dataset_free(&train);
    nb_dist_free(d);
    MPI_Finalize();
    return rc != NB_OK;
}
